#!/usr/bin/env bash
# omsd with TLS (self-signed certificate) and a short heartbeat: wss, https,
# server pings, silent peers dropped.
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics tls
PORT=$(free_port)
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
check "test certificate made" test -s "$T/cert.pem"
cat >>"$T/omsd.yaml" <<YAML
server:
  port: $PORT
  host: 127.0.0.1
  tls_cert: $T/cert.pem
  tls_key: $T/key.pem
  ping_interval_s: 1
  idle_timeout_s: 3
projections:
  enabled: false
log:
  format: json
YAML
printf 'server:\n  tls_cert: %s\n' "$T/cert.pem" >"$T/half.yaml"
expect_exit 2 "a certificate without a key is a config error" "$ABIN/omsd" -t --config "$T/half.yaml"

ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 "$ABIN/omsd" --config "$T/omsd.yaml" >"$T/omsd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    curl -skf "https://127.0.0.1:$PORT/websocket/health" >/dev/null && break
    sleep 0.1
done
check "omsd answers health over https" curl -skf "https://127.0.0.1:$PORT/websocket/health" -o /dev/null
(cd tests/node && OMS_PORT=$PORT timeout 120 node --test --test-reporter=tap heartbeat.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -A20 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -40
kill -TERM "$pid"
wait "$pid"
check "omsd exit status 0 after SIGTERM" test $? -eq 0
if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$T/omsd.log"; then
    not_ok "omsd ran clean under ASan/UBSan"
    grep -A20 -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/omsd.log" | head -40 | sed 's/^/# /'
else
    ok "omsd ran clean under ASan/UBSan"
fi
