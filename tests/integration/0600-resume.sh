#!/usr/bin/env bash
# Positions, resume and many instances (DESIGN §3.4-3.5): three omsd (ASan
# builds) against the same topics; node `ws` clients disconnect, miss
# events, reconnect to the same or another instance and resume; presence
# and broadcasts across instances; a slow client resumes after 1013.
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics resume
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
PORT_A=$(free_port) PORT_B=$(free_port) PORT_C=$(free_port)
# B keeps almost no history: its resumes read Kafka; it also holds the
# witnesses, which must never be closed for falling behind (a big queue),
# while A's small queue makes its slow client overflow soon
for inst in A:$PORT_A:5000:256 B:$PORT_B:20:200000 C:$PORT_C:5000:256; do
    IFS=: read -r name port hist ql <<<"$inst"
    cp "$T/omsd.yaml" "$T/omsd-$name.yaml"
    cat >>"$T/omsd-$name.yaml" <<YAML
server:
  port: $port
  host: 127.0.0.1
  queue_limit: $ql
resume:
  history_size: $hist
presence:
  interval_s: 1
  expiry_s: 4
log:
  format: json
projections:
  enabled: false
YAML
done

expect_exit 0 "omsd -t accepts the resume and presence keys" "$ABIN/omsd" -t --config "$T/omsd-A.yaml"
printf 'presence:\n  interval_s: 5\n  expiry_s: 5\n' >"$T/bad.yaml"
expect_exit 2 "omsd -t refuses presence.expiry_s <= interval_s" "$ABIN/omsd" -t --config "$T/bad.yaml"
check "... and says why" grep -q "presence.expiry_s (5) must be greater" "$T/last.err"
printf 'resume:\n  history_size: -1\n' >"$T/bad.yaml"
expect_exit 2 "omsd -t refuses a negative resume.history_size" "$ABIN/omsd" -t --config "$T/bad.yaml"

check "instance A up" start_instance A
check "instance B up" start_instance B
check "instance C up" start_instance C

(cd tests/node && OMS_PORT=$PORT_A PORT_A=$PORT_A PORT_B=$PORT_B PORT_C=$PORT_C \
    PID_A=$PID_A PID_B=$PID_B PID_C=$PID_C BIN=$BIN OMS_CONFIG=$T/omsd.yaml \
    KAFKA_LIBS="$OMS_STATE/kafka/libs" T="$T" \
    TOPIC_ORDERS=$TOPIC_ORDERS TOPIC_INVENTORY=$TOPIC_INVENTORY \
    TOPIC_NOTIFICATIONS=$TOPIC_NOTIFICATIONS \
    timeout 600 node --test --test-force-exit --test-reporter=tap --test-concurrency=1 resume.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80

stop_instances A B C
