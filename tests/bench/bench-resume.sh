#!/usr/bin/env bash
# Resume (DESIGN §3.5), measured against release omsd builds on their own
# topics and ports (loopback only, bounded: about 2 minutes):
#   1. one client misses BENCH_RESUME_EVENTS order events (default 10,000)
#      and resumes: time from `resume` sent to `resumed` received, median of
#      5 rounds, from memory (an omsd with the default history) and from
#      Kafka (an omsd with resume.history_size 0)
#   2. live fan-out while 100 clients resume at once: 200 oms-load clients
#      subscribed to all orders, oms-producer at a fixed rate; omsd's live
#      deliveries/s (delivered minus replayed) in a window without resumes
#      and in the window where 100 clients each resume a 1,000-event gap
set -eu
cd "$(dirname "$0")/../.."
BIN=build/bin
LOAD=build/tests/tools/oms-load
T=build/bench/resume
rm -rf "$T"
mkdir -p "$T"
for f in "$BIN/omsd" "$BIN/omsctl" "$BIN/oms-producer" "$LOAD"; do
    [ -x "$f" ] || { echo "resume: $f is missing: run 'make all tools'" >&2; exit 2; }
done
[ -d tests/node/node_modules/ws ] || { echo "resume: tests/node/node_modules missing: run 'make deps'" >&2; exit 2; }
JWT_SECRET=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
export JWT_SECRET
P=oms-bench-resume-$RANDOM$RANDOM
cat >"$T/topics.yaml" <<YAML
defaults: {partitions: 6, replication_factor: 1}
topics:
  - {name: $P.orders}
  - {name: $P.inventory}
  - {name: $P.notifications}
  - {name: $P.dlq}
  - {name: $P.presence, partitions: 1, configs: {cleanup.policy: compact}}
YAML
$BIN/omsctl topics create --file "$T/topics.yaml" >/dev/null
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -x build/tests/tools/oms-topics-drop ] && timeout 30 build/tests/tools/oms-topics-drop "$P" >/dev/null 2>&1 || true # its topics
}
trap cleanup EXIT
base=$((30000 + RANDOM % 20000))
start() { # NAME PORT HISTORY
    cat >"$T/$1.yaml" <<YAML
server: {host: "127.0.0.1", port: $2, compression: false}
kafka:
  topics: {orders: $P.orders, inventory: $P.inventory, notifications: $P.notifications, dlq: $P.dlq, presence: $P.presence}
resume: {history_size: $3}
projections: {enabled: false}
log: {format: json}
YAML
    $BIN/omsd --config "$T/$1.yaml" >"$T/$1.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 150); do
        curl -sf -o /dev/null "http://127.0.0.1:$2/websocket/health" && return 0
        sleep 0.1
    done
    echo "resume: omsd $1 did not start" >&2
    tail -5 "$T/$1.log" >&2
    exit 1
}
start memory $base 20000
start kafka $((base + 1)) 0
export OMS_CONFIG=$T/memory.yaml
NODE_PATH=$PWD/tests/node/node_modules PORT_MEM=$base PORT_KAFKA=$((base + 1)) BIN=$PWD/$BIN \
    LOAD=$PWD/$LOAD OUT=$PWD/$T EVENTS=${BENCH_RESUME_EVENTS:-10000} \
    timeout 600 node tests/bench/resume-bench.js
