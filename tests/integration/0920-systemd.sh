#!/usr/bin/env bash
# deploy/systemd: the units verify (systemd-analyze, where present) and are
# hardened; omsd speaks sd_notify (READY=1, RELOADING=1, STOPPING=1) to a
# NOTIFY_SOCKET datagram listener; SIGHUP re-reads log.level and the TLS
# certificate and key (a new TLS connection sees the new certificate) and
# keeps the running settings when the new ones are broken.
. "$(dirname "$0")/lib.sh"

# ---- the units ------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$T/units"
    for u in omsd.service oms-producer-serve.service; do
        # verify wants the ExecStart binaries to exist: point them at ours
        sed -e "s|/usr/local/bin/|$BIN/|g" "deploy/systemd/$u" >"$T/units/$u"
    done
    # verify exits 0 on unknown keys and bad values too: any message fails
    systemd-analyze verify "$T/units/omsd.service" "$T/units/oms-producer-serve.service" \
        >"$T/verify.out" 2>&1
    check "systemd-analyze verify: both units, no message" test $? -eq 0 -a ! -s "$T/verify.out"
    sed 's/^/#   /' "$T/verify.out" | head -10
    for u in omsd.service oms-producer-serve.service; do
        systemd-analyze security --offline=yes "$T/units/$u" >"$T/security-$u.out" 2>&1
        score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$T/security-$u.out")
        check "$u is hardened (exposure ${score:-?} <= 2.0)" \
            python3 -c "import sys; sys.exit(0 if float(sys.argv[1] or 99) <= 2.0 else 1)" "${score:-}"
    done
else
    ok "systemd-analyze verify # skip systemd-analyze is not installed"
fi
for key in NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes ProtectHome=yes; do
    check "omsd.service has $key" grep -qx "$key" deploy/systemd/omsd.service
done
check "omsd.service is Type=notify and reloads with SIGHUP" \
    bash -c 'grep -qx "Type=notify" deploy/systemd/omsd.service && grep -q "^ExecReload=.*kill -HUP \$MAINPID" deploy/systemd/omsd.service'

# ---- sd_notify and SIGHUP -------------------------------------------------------------
check "topics created" make_topics systemd
PORT=$(free_port)
export JWT_SECRET="systemd-test-secret-systemd-test-secret"
cert() { # NAME: a self-signed certificate with CN=NAME into $T/NAME.{crt,key}
    openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=$1" -days 1 \
        -keyout "$T/$1.key" -out "$T/$1.crt" >/dev/null 2>&1
}
cert cert-one
cert cert-two
cert cert-three
cp "$T/cert-one.crt" "$T/live.crt"
cp "$T/cert-one.key" "$T/live.key"
cp "$T/omsd.yaml" "$T/base.yaml"
write_config() { # LEVEL
    cp "$T/base.yaml" "$T/omsd.yaml.new"
    cat >>"$T/omsd.yaml.new" <<YAML
server:
  host: 127.0.0.1
  port: $PORT
  tls_cert: $T/live.crt
  tls_key: $T/live.key
projections:
  enabled: false
log:
  format: json
  level: $1
YAML
    mv "$T/omsd.yaml.new" "$T/omsd.yaml"
}
write_config info

# The service manager's end of NOTIFY_SOCKET: one line per datagram.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
        f.flush()
' "$T/notify.sock" "$T/notify.log" &
listener=$!
for _ in $(seq 1 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done

NOTIFY_SOCKET=$T/notify.sock ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 \
    "$ABIN/omsd" --config "$T/omsd.yaml" >"$T/omsd.log" 2>&1 &
pid=$!
wait_for() { # FILE PATTERN [TENTHS]
    for _ in $(seq 1 "${3:-100}"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
check "READY=1 arrives on NOTIFY_SOCKET" wait_for "$T/notify.log" "^READY=1" 600 # ASan, busy CI
check "omsd answers over https once ready" curl -skf "https://127.0.0.1:$PORT/livez" -o /dev/null
live=$(curl -sk "https://127.0.0.1:$PORT/livez")
check "GET /livez answers {status: alive}" test "$live" = '{"status":"alive"}'

subject() {
    openssl s_client -connect "127.0.0.1:$PORT" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -subject 2>/dev/null | sed 's/.*CN *= *//'
}
check "the first certificate is served" test "$(subject)" = cert-one

# a new certificate in place (as certbot or cert-manager would) and debug logs
cp "$T/cert-two.crt" "$T/live.crt.new" && mv "$T/live.crt.new" "$T/live.crt"
cp "$T/cert-two.key" "$T/live.key.new" && mv "$T/live.key.new" "$T/live.key"
write_config debug
kill -HUP "$pid"
check "RELOADING=1 then READY=1 on NOTIFY_SOCKET" wait_for "$T/notify.log" "^READY=1|STATUS=reloaded" 300
grep -q "^RELOADING=1|MONOTONIC_USEC=[0-9]*$" "$T/notify.log"
check "RELOADING=1 carries MONOTONIC_USEC" test $? -eq 0
check "the reload is logged" wait_for "$T/omsd.log" '"msg":"reload: TLS certificate re-read"' 300
# every new connection, whichever service thread accepts it (an idle one
# used to serve its first client with the old certificate)
subjects=""
for _ in 1 2 3 4 5 6 7 8; do subjects="$subjects $(subject)"; done
check "a new TLS connection sees the new certificate (8 of them:$subjects)" \
    test "$subjects" = "$(printf ' cert-two%.0s' 1 2 3 4 5 6 7 8)"
check "log level changed from info to debug" \
    grep -q '"msg":"reload: log level","from":"info","to":"debug"' "$T/omsd.log"
curl -sk "https://127.0.0.1:$PORT/websocket/health" -o /dev/null
check "debug lines are logged after the reload" wait_for "$T/omsd.log" '"level":"debug"' 100

# broken settings: the running ones stay
cp "$T/cert-three.crt" "$T/live.crt.new" && mv "$T/live.crt.new" "$T/live.crt" # key still cert-two's
sed -i 's/level: debug/level: loud/' "$T/omsd.yaml"
kill -HUP "$pid"
check "an invalid configuration is refused" wait_for "$T/omsd.log" '"msg":"reload: configuration invalid, nothing changed"' 300
sed -i 's/level: loud/level: warn/' "$T/omsd.yaml"
kill -HUP "$pid"
check "a certificate that does not match its key is refused" \
    wait_for "$T/omsd.log" '"msg":"reload: keeping the current TLS certificate".*does not match' 300
check "the previous certificate is still served" test "$(subject)" = cert-two
check "log level then changed from debug to warn" \
    grep -q '"msg":"reload: log level","from":"debug","to":"warn"' "$T/omsd.log"

kill -TERM "$pid"
wait "$pid"
check "omsd exit status 0 after SIGTERM" test $? -eq 0
check "STOPPING=1 sent on the way out" grep -q "^STOPPING=1" "$T/notify.log"
check "... as the drain began (closing clients), once" \
    test "$(grep -c '^STOPPING=1|STATUS=closing clients$' "$T/notify.log")" = 1 -a \
    "$(grep -c '^STOPPING=1' "$T/notify.log")" = 1
kill "$listener" 2>/dev/null
wait "$listener" 2>/dev/null
if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$T/omsd.log"; then
    not_ok "omsd ran clean under ASan/UBSan"
    grep -A20 -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/omsd.log" | head -40 | sed 's/^/# /'
else
    ok "omsd ran clean under ASan/UBSan"
fi
