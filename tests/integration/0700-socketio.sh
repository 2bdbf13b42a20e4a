#!/usr/bin/env bash
# omsd's Socket.IO v4 dialect end to end: socket.io-client 4 (npm) and raw
# Engine.IO traffic in node against omsd (ASan build) and the real broker,
# with sub-second heartbeat timers; then SIGTERM and a clean exit.
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics socketio
PORT=$(free_port)
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
# millisecond timers for the heartbeat and connect-timeout tests (omsd --help)
export OMS_SIO_PING_INTERVAL_MS=1000 OMS_SIO_PING_TIMEOUT_MS=1000 OMS_SIO_CONNECT_TIMEOUT_MS=3000
cat >>"$T/omsd.yaml" <<YAML
server:
  port: $PORT
  host: 127.0.0.1
  cors_origin: "http://allowed.example"
log:
  format: json
projections:
  enabled: false
YAML

check "node has socket.io-client 4" node -e \
    'process.exit(/^4\./.test(require("./tests/node/node_modules/socket.io-client/package.json").version) ? 0 : 1)'

ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 "$ABIN/omsd" --config "$T/omsd.yaml" >"$T/omsd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/websocket/health" >/dev/null && break
    sleep 0.1
done
check "omsd answers health" curl -sf "http://127.0.0.1:$PORT/websocket/health" -o /dev/null
check "omsd --help documents the OMS_SIO_* overrides" sh -c "'$ABIN/omsd' --help | grep -q OMS_SIO_PING_INTERVAL_MS"

(cd tests/node && OMS_PORT=$PORT OMSD_PID=$pid BIN=$BIN TOPIC_ORDERS=$TOPIC_ORDERS \
    TOPIC_INVENTORY=$TOPIC_INVENTORY TOPIC_NOTIFICATIONS=$TOPIC_NOTIFICATIONS TOPIC_DLQ=$TOPIC_DLQ \
    timeout 300 node --test --test-reporter=tap socketio.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80
grep -qE '^ok ' "$T/node.tap" || { not_ok "node tests ran"; tail -20 "$T/node.tap" | sed 's/^/# /'; }

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
