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
go test -race -count=1 -timeout 20m ./...
echo "== fuzz (bounded)" >&2
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "${WAYMARK_FUZZTIME:-10s}" ./ingest
go test -run '^$' -fuzz '^FuzzParseMap$' -fuzztime "${WAYMARK_FUZZTIME:-10s}" ./sessionize
go test -run '^$' -fuzz '^FuzzParseFunnelQuery$' -fuzztime "${WAYMARK_FUZZTIME:-10s}" ./store
