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
# Server-Sent Events over TLS: HTTP/2 (ALPN h2, what browsers pick) and
# HTTP/1.1 (chunked), each with its events and heartbeat comments intact
STAFF=$(cd tests/node && node -e "console.log(require('./lib').tok('staff', 5))")
for v in http2 http1.1; do
    curl -sk --$v -N --max-time 3 -H "Authorization: Bearer $STAFF" -w '\n%{http_version}\n' \
        "https://127.0.0.1:$PORT/events/stream" >"$T/sse-$v.out" 2>/dev/null
    want=2; [ $v = http1.1 ] && want=1.1
    check "SSE over TLS, $v: the protocol" test "$(tail -1 "$T/sse-$v.out")" = "$want"
    check "SSE over TLS, $v: connected, with an id" \
        sh -c "grep -q '^event: connected\$' '$T/sse-$v.out' && grep -q '^id: 0[A-Za-z0-9_-]*\$' '$T/sse-$v.out'"
    check "SSE over TLS, $v: heartbeat comments" grep -q '^: ping$' "$T/sse-$v.out"
    check "SSE over TLS, $v: nothing but SSE lines" \
        sh -c "head -n -2 '$T/sse-$v.out' | grep -vqE '^(id|event|data|retry): |^: ping\$|^\$' && exit 1 || exit 0"
done
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
