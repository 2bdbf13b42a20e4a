#!/usr/bin/env bash
# make demo: the pipeline on this machine. Starts the stack, creates the
# topics, runs the domain simulation in the background and follows the live
# event stream with omsctl tail until Ctrl-C (or DEMO_SECONDS).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
bash scripts/stack.sh up
eval "$(bash scripts/stack.sh env)"
unset OMS_CONFIG
$BIN/omsctl topics create --file configs/topics.yaml
mkdir -p "$OMS_STATE/logs"
port=${PORT:-3000}
PORT=$port $BIN/omsd --dev >"$OMS_STATE/logs/demo-omsd.log" 2>&1 &
omsd=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/websocket/health" >/dev/null 2>&1 && break
    kill -0 "$omsd" 2>/dev/null || { tail -5 "$OMS_STATE/logs/demo-omsd.log" >&2; echo "demo: omsd did not start" >&2; exit 1; }
    sleep 0.1
done
tokens=$(curl -sf "http://127.0.0.1:$port/dev/tokens" | grep -o '"role":"[a-z]*","userId":[0-9]*,"token":"[^"]*"' |
    sed 's/"role":"\([a-z]*\)","userId":\([0-9]*\),"token":"\([^"]*\)"/  \1 (user \2): \3/')
rate=${DEMO_RATE:-20}
$BIN/oms-producer simulate --rate "$rate" --duration 0 --users 20 --products 12 \
    >"$OMS_STATE/logs/demo-simulate.log" 2>&1 &
sim=$!
cleanup() {
    kill "$sim" 2>/dev/null || true
    wait "$sim" 2>/dev/null || true
    kill "$omsd" 2>/dev/null || true
    wait "$omsd" 2>/dev/null || true
    echo
    echo "demo: simulation and omsd stopped (logs: $OMS_STATE/logs/demo-*.log)"
    echo "demo: the stack keeps running; stop it with 'make stack-down'"
}
trap cleanup EXIT
cat <<MSG

demo: Kafka at $KAFKA_BROKERS, PostgreSQL at $DATABASE_HOST:$DATABASE_PORT (db $DATABASE_NAME)
demo: omsd (dev mode) at http://127.0.0.1:$port — WebSocket ws://127.0.0.1:$port/events
demo: web console: open http://127.0.0.1:$port/ — pick a sample token, Connect, turn on Order Updates
demo: sample tokens (Authorization: Bearer TOKEN, or ws://127.0.0.1:$port/events?token=TOKEN):
$tokens
demo: try  curl -H "Authorization: Bearer <admin token>" http://127.0.0.1:$port/websocket/stats
demo: oms-producer simulate is emitting $rate events/s (orders, stock, notifications)
demo: following every event topic with 'omsctl tail all' — Ctrl-C to stop
demo: in another shell:  eval "\$(make -s stack-env)"; build/bin/omsctl topics list

MSG
if [ -n "${DEMO_SECONDS:-}" ]; then
    timeout "$DEMO_SECONDS" $BIN/omsctl tail all --format pretty || true
else
    $BIN/omsctl tail all --format pretty || true
fi
