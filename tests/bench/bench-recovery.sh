#!/usr/bin/env bash
# Recovery after an instance dies (issue #19), measured against release
# omsd builds on their own topics and ports (loopback only, bounded: about
# 2 minutes). Twice, once with Socket.IO clients and once with Server-Sent
# Events: BENCH_RECOVERY_CLIENTS (1,000) staff clients subscribed to orders
# on instance A; A is SIGKILLed; BENCH_RECOVERY_EVENTS (1,000) order events
# are produced; all the clients reconnect to instance B at once with their
# offset (Socket.IO CONNECT {pid, offset}) or Last-Event-ID (SSE). Figures:
# time from the reconnect to the recovery's end per client (p50, p95, max),
# all of them done, events replayed, recovered or not; and the live events
# per second received by 1,000 other clients on B (oms-load, subscribed to
# inventory alerts, which the missed orders are not; the producer at
# BENCH_RECOVERY_RATE events/s) before and during the recoveries.
set -eu
cd "$(dirname "$0")/../.."
BIN=build/bin
LOAD=build/tests/tools/oms-load
T=build/bench/recovery
rm -rf "$T"
mkdir -p "$T"
for f in "$BIN/omsd" "$BIN/omsctl" "$BIN/oms-producer" "$LOAD"; do
    [ -x "$f" ] || { echo "recovery: $f is missing: run 'make all tools'" >&2; exit 2; }
done
[ -d tests/node/node_modules/ws ] || { echo "recovery: tests/node/node_modules missing: run 'make deps'" >&2; exit 2; }
JWT_SECRET=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
export JWT_SECRET
P=oms-bench-recovery-$RANDOM$RANDOM
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
base=$((30000 + RANDOM % 20000))
for n in A B; do
    port=$base
    [ $n = B ] && port=$((base + 1))
    cat >"$T/$n.yaml" <<YAML
server: {host: "127.0.0.1", port: $port, compression: false, max_connections_per_address: 0, queue_limit: 8192}
kafka:
  topics: {orders: $P.orders, inventory: $P.inventory, notifications: $P.notifications, dlq: $P.dlq, presence: $P.presence}
resume: {history_size: ${BENCH_RECOVERY_HISTORY:-2000}}
projections: {enabled: false}
log: {format: json, level: warn}
YAML
done
export OMS_CONFIG=$T/A.yaml
NODE_PATH=$PWD/tests/node/node_modules PORT_A=$base PORT_B=$((base + 1)) BIN=$PWD/$BIN \
    LOAD=$PWD/$LOAD OUT=$PWD/$T CLIENTS=${BENCH_RECOVERY_CLIENTS:-1000} \
    EVENTS=${BENCH_RECOVERY_EVENTS:-1000} RATE=${BENCH_RECOVERY_RATE:-200} \
    timeout 900 node tests/bench/recovery-bench.js
