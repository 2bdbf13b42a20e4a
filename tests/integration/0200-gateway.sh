#!/usr/bin/env bash
# omsd gateway end to end: the node `ws` client against omsd (ASan build)
# and the real broker; start-up checks; SIGTERM exit.
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics gateway
PORT=$(free_port)
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
cat >>"$T/omsd.yaml" <<YAML
server:
  port: $PORT
  host: 127.0.0.1
  cors_origin: "http://allowed.example"
  queue_limit: 4096
log:
  format: json
projections:
  enabled: false
YAML

# start-up checks
expect_exit 0 "omsd -t accepts the test configuration" "$ABIN/omsd" -t --config "$T/omsd.yaml"
JWT_SECRET=short expect_exit 2 "omsd refuses a secret under 32 bytes" "$ABIN/omsd" --config "$T/omsd.yaml"
check "... and says why" grep -q "at least 32 are required" "$T/last.err"
JWT_SECRET= expect_exit 2 "omsd refuses to start without a secret" "$ABIN/omsd" --config "$T/omsd.yaml"
check "... and names JWT_SECRET and --dev" grep -q "JWT_SECRET.*--dev" "$T/last.err"
printf 'server:\n  prot: 3000\n' >"$T/bad.yaml"
expect_exit 2 "omsd -t refuses an unknown key" "$ABIN/omsd" -t --config "$T/bad.yaml"
check "... naming the key and line" grep -q "bad.yaml:2:.*server.prot" "$T/last.err"

ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 "$ABIN/omsd" --config "$T/omsd.yaml" >"$T/omsd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/websocket/health" >/dev/null && break
    sleep 0.1
done
check "omsd answers health" curl -sf "http://127.0.0.1:$PORT/websocket/health" -o /dev/null

(cd tests/node && OMS_PORT=$PORT OMSD_PID=$pid BIN=$BIN TOPIC_ORDERS=$TOPIC_ORDERS \
    TOPIC_INVENTORY=$TOPIC_INVENTORY TOPIC_NOTIFICATIONS=$TOPIC_NOTIFICATIONS TOPIC_DLQ=$TOPIC_DLQ \
    timeout 300 node --test --test-reporter=tap gateway.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80

# the last node test sent SIGTERM: omsd must exit 0 within 5 s
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
    not_ok "omsd exits within 5 s of SIGTERM"
    kill -9 "$pid"
    wait "$pid"
else
    ok "omsd exits within 5 s of SIGTERM"
    wait "$pid"
    check "omsd exit status 0 after SIGTERM" test $? -eq 0
fi
if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$T/omsd.log"; then
    not_ok "omsd ran clean under ASan/UBSan"
    grep -A20 -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/omsd.log" | head -40 | sed 's/^/# /'
else
    ok "omsd ran clean under ASan/UBSan"
fi
