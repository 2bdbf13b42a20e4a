#!/usr/bin/env bash
# Server-Sent Events (DESIGN §3.5, issue #19): GET /events/stream on two
# omsd instances (ASan builds) and the real broker: headers, refusals,
# roles and subscriptions, ids that resume every partition; omsd killed
# mid-stream, the client reconnects to the other instance with
# Last-Event-ID and misses nothing; an edited id resumes nothing; SIGTERM
# ends a stream with its last chunk.
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics sse
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
export OMS_SSE_HEARTBEAT_MS=500
PORT_A=$(free_port) PORT_B=$(free_port) PORT_C=$(free_port)
# B: a short history (resumes read Kafka) and a small queue (a slow client
# is dropped soon); C holds the witness, which must never fall behind
for inst in A:$PORT_A:5000:4096 B:$PORT_B:20:64 C:$PORT_C:5000:200000; do
    IFS=: read -r name port hist ql <<<"$inst"
    cp "$T/omsd.yaml" "$T/omsd-$name.yaml"
    cat >>"$T/omsd-$name.yaml" <<YAML
server:
  port: $port
  host: 127.0.0.1
  cors_origin: "http://allowed.example"
  queue_limit: $ql
resume:
  history_size: $hist
log:
  format: json
projections:
  enabled: false
YAML
done

check "instance A up" start_instance A
check "instance B up" start_instance B
check "instance C up" start_instance C
check "omsd --help documents OMS_SSE_HEARTBEAT_MS" sh -c "'$ABIN/omsd' --help | grep -q OMS_SSE_HEARTBEAT_MS"

(cd tests/node && OMS_PORT=$PORT_C PORT_A=$PORT_A PORT_B=$PORT_B PID_A=$PID_A PID_B=$PID_B \
    BIN=$BIN OMS_CONFIG=$T/omsd.yaml T="$T" \
    TOPIC_ORDERS=$TOPIC_ORDERS TOPIC_INVENTORY=$TOPIC_INVENTORY \
    TOPIC_NOTIFICATIONS=$TOPIC_NOTIFICATIONS \
    timeout 600 node --test --test-force-exit --test-reporter=tap --test-concurrency=1 sse.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80
grep -qE '^ok ' "$T/node.tap" || { not_ok "node tests ran"; tail -20 "$T/node.tap" | sed 's/^/# /'; }

stop_instances A B C
