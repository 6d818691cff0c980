#!/usr/bin/env bash
# Runs every Waymark test, the ClickHouse and Kafka integration tests included. Installs what is
# missing first. The tests start their own ClickHouse servers (on loopback, in temp dirs) and their
# own in-process Kafka-protocol brokers.
#
# The ClickHouse-backed tests run on two engines, one after the other: Debian's clickhouse-server
# 18.16 and ClickHouse 26.7 (chDB's engine, npm chdb@3.4.0, installed into the user's cache folder).
# WAYMARK_TEST_CLICKHOUSE=debian or =chdb runs them on that engine only.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
WAYMARK_TEST_LIBCHDB=$(deploy/install-chdb.sh)
export WAYMARK_TEST_LIBCHDB
engines=${WAYMARK_TEST_CLICKHOUSE:-debian chdb}
# The passes of this run: a test that compares the two engines runs in one of them only
# (store/storetest.ComparedInAnotherPass).
export WAYMARK_TEST_PASSES=$engines
echo "== go vet" >&2
go vet ./...
# The packages whose tests start ClickHouse (they import store/storetest).
clickhouse_pkgs=$(go list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... |
  awk '{for (i = 2; i <= NF; i++) if ($i ~ /\/store\/storetest$/) {print $1; break}}')
# -parallel 4: two parallel tests per core. Most integration tests spend much of their time
# waiting (for a server to start, the sessionizer's flush, a consumer to catch up, a query's
# single-threaded planning), so twice the default keeps both cores busier. The timeout only guards
# against a hang: on a machine whose cores are busy with other work the integration tests (real
# ClickHouse, brokers, binaries, Chromium) take several times longer.
#
# The passes run one after the other. Run at the same time (until 2026-12-06) they kept both
# cores busier, but at a load of 25-40 on 2 cores every test took several times longer, and what
# a test costs while it lasts (its servers' and consumers' idle work, polling for what it waits
# for, switching between threads) made the suite cost a third more CPU: 2,439 CPU-s and 21 min 37 s
# at the same time (2026-12-06 00:00, a quiet machine) against 1,787 CPU-s and 17 min 53 s one after
# the other (2026-12-06, a tester's session beside; docs/testing.md, "Suite time"). Each line of
# a pass's output starts with its engine.
#
# The first pass runs every package under the race detector; the second runs the ClickHouse-backed
# packages without it. Its subject is the engine: the Go code it runs is the first pass's, raced
# there, and the detector made store's tests cost a third more CPU on 26.7 (214 against 163
# CPU-s, 2026-12-05) for no race it could find that the first pass does not. The second pass runs
# sessionize too: its tests that push thousands of events through the sessionizer's core from
# one goroutine, where the detector has nothing to find, skip themselves under it in a run of
# several passes and run there instead (sessionize's oneGoroutine; the package cost 59 CPU-s
# under the detector and 11 without it, 2026-12-06). Each pass names its longest packages first,
# so that they start first and the pass does not end with one of them running alone on one core.
#
# -p 3: three packages at a time, where go test's default on 2 cores is two. With two, the
# packages after store (sessionize, ingest, storetest, queryapi: about 160 s under the race
# detector) ran one after another in the slot store left, after cmd/waymark's end: the race pass
# took 455 s and 795 CPU-s; with three, 408 s and 755 CPU-s, bound by cmd/waymark's 401 s (one run
# each, one after the other, 2026-12-07, a quiet machine).
pass() { # engine, race flag or "", packages...
  local engine=$1 race=$2
  shift 2
  echo "== go test ${race:+$race }(ClickHouse engine: $engine): $*" >&2
  # shellcheck disable=SC2086 # no flag when race is empty
  WAYMARK_TEST_CLICKHOUSE=$engine go test $race -p 3 -count=1 -parallel 4 -timeout 45m "$@" 2>&1 | sed -u "s/^/[$engine] /"
  return "${PIPESTATUS[0]}"
}
failed=0
first=1
for engine in $engines; do
  if [ "$first" = 1 ]; then
    pass "$engine" -race ./cmd/waymark ./store ./sessionize ./... || failed=1
    first=0
  else
    # shellcheck disable=SC2086 # one package per word
    pass "$engine" "" $clickhouse_pkgs ./sessionize || failed=1
  fi
done
if [ "$failed" = 1 ]; then
  echo "== go test failed (see the lines above, each starting with its engine)" >&2
  exit 1
fi
# The benchmarks and fuzzing below run after the passes. Run beside them (2026-12-04) they saved
# nothing: the passes keep both cores busy throughout, and the suite used about 2,500
# CPU-seconds either way (docs/testing.md, "Suite time").
for engine in $engines; do
  # Two benchmarks at a tiny size (a few seconds), in one run (one build, one server): issue 16's
  # journey query benchmark, so its baselines and queries keep running on both engines (it
  # measures nothing worth reading at this size); and where the per-person work runs, compared at
  # the same size, which first checks that every journey query (and the journey page's batch)
  # answers the same in Waymark and in ClickHouse. The second needs the waymark_funnel UDF: on an
  # engine without it, it skips.
  echo "== journey query and in-engine matching benchmarks, 20,000 events (ClickHouse engine: $engine)" >&2
  WAYMARK_TEST_CLICKHOUSE=$engine WAYMARK_BENCH_EVENTS=20000 go test -count=1 -run '^$' -bench '^(BenchmarkQueryScale|BenchmarkFunnelMatching)$' -benchtime 1x ./store
done
# Every benchmark that needs no ClickHouse runs once too (about 10 CPU-s in all), so that none
# stops working unseen: BenchmarkServeFunnelUDF failed for two days after the UDF's wire format
# moved on (2026-12-06).
echo "== benchmarks without ClickHouse, once each" >&2
go test -count=1 -run '^$' -bench . -benchtime 1x ./ingest ./sessionize
go test -count=1 -run '^$' -bench '^(BenchmarkServeFunnelUDF|BenchmarkPathFinder.*|BenchmarkScanPerson)$' -benchtime 1x ./store
echo "== fuzz (bounded)" >&2
# Bounded by executions, not by time: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a -fuzztime duration runs out (golang/go#75804).
# WAYMARK_FUZZ_EXECS scales every budget (e.g. WAYMARK_FUZZ_EXECS=10 for a ten times longer run).
# The budgets were halved on 2026-12-04 to keep the suite near its 15 minutes (FuzzDecode: 23
# CPU-s at 55,000, 14 at 27,000); Go keeps the inputs that found new code in its cache
# ($GOCACHE/fuzz), so each run on a machine goes on from the ones before.
scale=${WAYMARK_FUZZ_EXECS:-1}
# Each package's fuzz targets run from one instrumented test binary (go test -c -fuzz), run in
# the package's folder (its testdata/fuzz corpus, where a failing input is written) with go
# test's cache of found inputs: one build and link per package rather than one `go test -fuzz`
# per target (each links the package again and runs vet first, about 5 s of the 64 s the fuzzing
# took on 2026-12-07, a quiet machine).
fuzz() { # package, then target=executions...
  local pkg=$1 bin spec
  shift
  bin="$(mktemp -d)/fuzz.test"
  go test -c -fuzz . -o "$bin" "./$pkg"
  for spec in "$@"; do
    (cd "$pkg" && "$bin" -test.run '^$' -test.timeout 10m -test.fuzz "^${spec%%=*}\$" \
      -test.fuzztime "$((${spec#*=} * scale))x" -test.fuzzcachedir "$(go env GOCACHE)/fuzz/$(go list "./")")
  done
  rm -r "$(dirname "$bin")"
}
fuzz ingest FuzzDecode=27000 FuzzCanonicalNumber=17000
fuzz sessionize FuzzParseMap=32000 FuzzRunnerMetrics=17000 FuzzColdCustomer=32000
fuzz store FuzzParseFunnelQuery=27000
