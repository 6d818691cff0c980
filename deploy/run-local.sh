#!/usr/bin/env bash
# Runs Waymark end to end on this machine: installs ClickHouse if missing, starts it on loopback with
# its data under .local/ (or reuses one already listening on 127.0.0.1:9000), starts `waymark serve`
# with the embedded dev broker, replays the Taobao sample through Kafka, waits until it is stored and
# prints the stage funnel and the view → cart → order funnel. Everything keeps running afterwards.
#
#   deploy/run-local.sh        start (or restart Waymark) and replay
#   deploy/run-local.sh stop   stop Waymark and the ClickHouse this script started
#
# Ports, for a machine others share (each a loopback port; the defaults in brackets):
# WAYMARK_LOCAL_CLICKHOUSE_PORT (9000, native) and WAYMARK_LOCAL_CLICKHOUSE_HTTP_PORT (8123) for
# ClickHouse, WAYMARK_LOCAL_HTTP_PORT (8080) for Waymark's API and page, WAYMARK_LOCAL_BROKER_PORT
# (9092) for the dev broker. Every waymark command the script runs gets them through the flags'
# environment variables (WAYMARK_CLICKHOUSE_ADDR, WAYMARK_HTTP_ADDR, WAYMARK_DEV_BROKER_ADDR).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
local_dir="$root/.local"
ch_dir="$local_dir/clickhouse"
bin="$local_dir/bin/waymark"
mkdir -p "$local_dir/bin"
ch_port=${WAYMARK_LOCAL_CLICKHOUSE_PORT:-9000}
ch_http_port=${WAYMARK_LOCAL_CLICKHOUSE_HTTP_PORT:-8123}
http_port=${WAYMARK_LOCAL_HTTP_PORT:-8080}
broker_port=${WAYMARK_LOCAL_BROKER_PORT:-9092}
export WAYMARK_CLICKHOUSE_ADDR="127.0.0.1:$ch_port" WAYMARK_HTTP_ADDR="127.0.0.1:$http_port" \
  WAYMARK_DEV_BROKER_ADDR="127.0.0.1:$broker_port"

stop_pid() { # name pidfile
  if [ -f "$2" ] && kill -0 "$(cat "$2")" 2>/dev/null; then
    kill "$(cat "$2")"
    # serve may take its --drain-delay plus its --stop-timeout (15 s) to store what it holds.
    for _ in $(seq 600); do kill -0 "$(cat "$2")" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$(cat "$2")" 2>/dev/null; then
      echo "$1 (pid $(cat "$2")) is still stopping after 60 s; not waiting longer" >&2
      return 1
    fi
    echo "stopped $1"
  fi
  rm -f "$2"
}

if [ "${1:-}" = "stop" ]; then
  stop_pid "waymark serve" "$local_dir/waymark.pid"
  stop_pid "clickhouse-server" "$ch_dir/clickhouse.pid"
  exit 0
fi

deploy/install-deps.sh

# Waymark talks to ClickHouse's native port, so that is the one to find answering (a server with
# only its HTTP port here would leave Waymark unable to connect).
if clickhouse-client --host 127.0.0.1 --port "$ch_port" -q 'SELECT 1' >/dev/null 2>&1; then
  echo "using the ClickHouse already listening on 127.0.0.1:$ch_port (another port: WAYMARK_LOCAL_CLICKHOUSE_PORT)"
else
  echo "starting clickhouse-server on 127.0.0.1:$ch_port with data in $ch_dir"
  mkdir -p "$ch_dir/log"
  sed -e "s#__DIR__#$ch_dir#g; s#__TCP_PORT__#$ch_port#; s#__HTTP_PORT__#$ch_http_port#" deploy/clickhouse/local-config.xml > "$ch_dir/config.xml"
  nohup "$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)" --config-file="$ch_dir/config.xml" \
    >"$ch_dir/log/stdout.log" 2>&1 &
  echo $! > "$ch_dir/clickhouse.pid"
  for _ in $(seq 300); do
    clickhouse-client --host 127.0.0.1 --port "$ch_port" -q 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  clickhouse-client --host 127.0.0.1 --port "$ch_port" -q 'SELECT 1' >/dev/null || { cat "$ch_dir/log/"*.log >&2; exit 1; }
fi

echo "building waymark"
go build -o "$bin" ./cmd/waymark

stop_pid "the previous waymark serve" "$local_dir/waymark.pid"
if curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; then
  echo "127.0.0.1:$http_port already answers (another Waymark?): set WAYMARK_LOCAL_HTTP_PORT" >&2
  exit 1
fi
echo "starting waymark serve (log: .local/waymark.log)"
read_key=${WAYMARK_LOCAL_READ_KEY:-dev-read-key}
nohup "$bin" serve --write-keys-inline "${WAYMARK_LOCAL_WRITE_KEY:-dev-key}=local" \
  --read-keys-inline "$read_key=local" >"$local_dir/waymark.log" 2>&1 &
echo $! > "$local_dir/waymark.pid"
for _ in $(seq 300); do
  curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$local_dir/waymark.pid")" 2>/dev/null || { cat "$local_dir/waymark.log" >&2; exit 1; }
  sleep 0.1
done

"$bin" replay --format taobao --file deploy/data/taobao/UserBehavior.csv --wait 5m

stages=$("$bin" journey-map show | sed -n 's/^ *- name: //p' | paste -sd, -)
echo
echo "Stage funnel ($stages), window 7 days:"
"$bin" funnel --steps "$stages" --window 7d
echo
echo "View → cart → order, window 24 hours:"
"$bin" funnel --steps "Product Viewed,Product Added,Order Completed" --window 24h

metrics_url="http://127.0.0.1:$http_port/metrics"
if [ -n "${WAYMARK_METRICS_ADDR:-}" ]; then # serve takes it from the environment: /metrics apart
  metrics_url="http://${WAYMARK_METRICS_ADDR}/metrics"
fi

cat <<MSG

Waymark is running. Open the journey map: http://127.0.0.1:$http_port/ (read key: $read_key)
Metrics on $metrics_url, readiness on /readyz, the query API under /api/v1/
(with the read key), the dev broker on 127.0.0.1:$broker_port (in memory only), ClickHouse on
127.0.0.1:$ch_port (database waymark).
Ask more questions (in another shell, first: export WAYMARK_CLICKHOUSE_ADDR=$WAYMARK_CLICKHOUSE_ADDR
WAYMARK_HTTP_ADDR=$WAYMARK_HTTP_ADDR WAYMARK_DEV_BROKER_ADDR=$WAYMARK_DEV_BROKER_ADDR):
  curl -H 'Authorization: Bearer $read_key' 'http://127.0.0.1:$http_port/api/v1/funnel?steps=Product+Viewed,Order+Completed'
  $bin funnel --steps "awareness,conversion,loyalty" --window 7d --json
  $bin dropoff --steps "Product Viewed,Product Added,Order Completed"
  $bin next --anchor "Product Added"
  $bin stages
  clickhouse-client --port $ch_port -q "SELECT event, count() FROM waymark.events GROUP BY event"
Send events over HTTP (write key dev-key), as analytics.js or analytics-node would:
  curl -u dev-key: http://127.0.0.1:$http_port/v1/track -d '{"userId":"u1","event":"Product Viewed"}'
Send more events:  $bin replay --format segment --file my-events.jsonl --wait 1m
Stop everything:   deploy/run-local.sh stop
MSG
