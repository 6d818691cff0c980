#!/usr/bin/env bash
# Runs every Waymark test, the ClickHouse and Kafka integration tests included. Installs what is
# missing first. The tests start their own ClickHouse servers (on loopback, in temp dirs) and their
# own in-process Kafka-protocol brokers.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
echo "== go vet" >&2
go vet ./...
echo "== go test" >&2
# The timeout only guards against a hang: on a machine whose cores are busy with other work the
# integration tests (real ClickHouse, brokers, binaries, Chromium) take several times longer.
go test -race -count=1 -timeout 45m ./...
echo "== fuzz (bounded)" >&2
# Bounded by executions, not by time: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a -fuzztime duration runs out (golang/go#75804).
# WAYMARK_FUZZ_EXECS scales every budget (e.g. WAYMARK_FUZZ_EXECS=10 for a ten times longer run).
scale=${WAYMARK_FUZZ_EXECS:-1}
go test -run '^$' -timeout 10m -fuzz '^FuzzDecode$' -fuzztime "$((80000 * scale))x" ./ingest
go test -run '^$' -timeout 10m -fuzz '^FuzzParseMap$' -fuzztime "$((100000 * scale))x" ./sessionize
go test -run '^$' -timeout 10m -fuzz '^FuzzParseFunnelQuery$' -fuzztime "$((80000 * scale))x" ./store
