#!/usr/bin/env bash
# Installs chDB (npm package chdb@3.4.0, whose libchdb.so is ClickHouse 26.7 as a library) into the
# user's cache folder, unless it is there already, and prints the path of libchdb.so. The tests
# serve it on loopback as their current-ClickHouse engine (store/storetest). No global install.
set -euo pipefail

version=3.4.0
dir="${XDG_CACHE_HOME:-$HOME/.cache}/waymark/chdb-$version"
lib="$dir/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9 # test packages running side by side may ask at the same time
if [ ! -f "$lib" ]; then
  command -v npm >/dev/null 2>&1 || "$(dirname "$0")/install-deps.sh"
  echo "installing chdb@$version (npm) into $dir..." >&2
  tmp=$(mktemp -d "$dir.XXXXXX")
  npm install --prefix "$tmp" --no-audit --no-fund --loglevel=error "chdb@$version" >&2
  rm -rf "$dir"
  mv "$tmp" "$dir"
fi
echo "$lib"
