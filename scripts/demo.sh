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
rate=${DEMO_RATE:-20}
$BIN/oms-producer simulate --rate "$rate" --duration 0 --users 20 --products 12 \
    >"$OMS_STATE/logs/demo-simulate.log" 2>&1 &
sim=$!
cleanup() {
    kill "$sim" 2>/dev/null || true
    wait "$sim" 2>/dev/null || true
    echo
    echo "demo: simulation stopped (its summary: $OMS_STATE/logs/demo-simulate.log)"
    echo "demo: the stack keeps running; stop it with 'make stack-down'"
}
trap cleanup EXIT
cat <<MSG

demo: Kafka at $KAFKA_BROKERS, PostgreSQL at $DATABASE_HOST:$DATABASE_PORT (db $DATABASE_NAME)
demo: oms-producer simulate is emitting $rate events/s (orders, stock, notifications)
demo: following every event topic with 'omsctl tail all' — Ctrl-C to stop
demo: in another shell:  eval "\$(make -s stack-env)"; build/bin/omsctl topics list

MSG
if [ -n "${DEMO_SECONDS:-}" ]; then
    timeout "$DEMO_SECONDS" $BIN/omsctl tail all --format pretty || true
else
    $BIN/omsctl tail all --format pretty || true
fi
