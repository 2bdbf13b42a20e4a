#!/usr/bin/env bash
# deploy/nginx in front of two omsd: Debian's nginx runs the shipped
# oms.conf and oms-locations.conf with loopback ports, a self-signed
# certificate and this test's paths substituted; tests/node/nginx.test.js
# then talks to omsd only through nginx (REST, console, Socket.IO, ws://,
# wss://), kills the omsd holding its clients and resumes on the other.
# Its WebSocket clients send the token as ?token= (as the web console does):
# no token and no query string may reach nginx's logs.
. "$(dirname "$0")/lib.sh"

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    ok "nginx through two omsd # skip nginx is not installed (make deps installs nginx-light)"
    exit 0
fi

check "topics created" make_topics nginx
export JWT_SECRET="nginx-test-secret-nginx-test-secret-0123"
port() { free_port; }
P1=$(port); P2=$(port); NGINX_HTTP=$(port); NGINX_HTTPS=$(port)

# ---- two omsd on the same topics ----------------------------------------------------
pids=()
start_omsd() {
    local n=$1 p=$2
    cp "$T/omsd.yaml" "$T/omsd-$n.yaml"
    cat >>"$T/omsd-$n.yaml" <<YAML
server:
  host: 127.0.0.1
  port: $p
projections:
  enabled: false
log:
  format: json
YAML
    "$BIN/omsd" --config "$T/omsd-$n.yaml" >"$T/omsd-$n.log" 2>&1 &
    pids+=($!)
}
start_omsd 1 "$P1"
start_omsd 2 "$P2"
for p in "$P1" "$P2"; do
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$p/websocket/health" >/dev/null && break
        sleep 0.1
    done
done
check "omsd 1 is up" curl -sf "http://127.0.0.1:$P1/websocket/health" -o /dev/null
check "omsd 2 is up" curl -sf "http://127.0.0.1:$P2/websocket/health" -o /dev/null

# ---- nginx with the shipped configuration -------------------------------------------
N=$T/nginx
mkdir -p "$N/tmp"
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=oms.test" -addext "subjectAltName=IP:127.0.0.1" \
    -days 1 -keyout "$N/privkey.pem" -out "$N/fullchain.pem" >/dev/null 2>&1
check "self-signed certificate made" test -s "$N/fullchain.pem"

# The shipped files with this machine's ports and paths: the upstream's
# servers, the listeners (IPv4 loopback only), the certificate, the include,
# the logs.
sed -e "s|server omsd-1.internal:3000|server 127.0.0.1:$P1|" \
    -e "s|server omsd-2.internal:3000|server 127.0.0.1:$P2|" \
    -e "/listen \[::\]/d" \
    -e "s|listen 80;|listen 127.0.0.1:$NGINX_HTTP;|" \
    -e "s|listen 443 ssl http2;|listen 127.0.0.1:$NGINX_HTTPS ssl http2;|" \
    -e "s|/etc/ssl/oms/|$N/|" \
    -e "s|/var/log/nginx/|$N/|" \
    -e "s|include /etc/nginx/oms-locations.conf;|include $N/oms-locations.conf;|" \
    deploy/nginx/oms.conf >"$N/oms.conf"
cp deploy/nginx/oms-locations.conf "$N/oms-locations.conf"
check "every substitution applied" bash -c "! grep -v '^ *#' '$N/oms.conf' | grep -qE 'omsd-[12].internal|/etc/(ssl|nginx)/|/var/log/|listen (80|443)'"

# The http-level logs are those of a distribution's nginx.conf (Debian's:
# access_log in "combined", error_log at the default level); the shipped
# server blocks must replace them.
# As root, nginx's workers drop to nobody (the master only binds loopback
# ports and reads the key); as anyone else everything runs as that user.
user_line=""
if [ "$(id -u)" -eq 0 ]; then user_line="user nobody nogroup;"; fi
cat >"$N/nginx.conf" <<CONF
$user_line
worker_processes 1;
pid $N/nginx.pid;
error_log $N/error.log info;
events { worker_connections 512; }
http {
    access_log $N/access.log;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    include $N/oms.conf;
}
CONF
expect_exit 0 "nginx -t accepts the configuration" "$NGINX" -p "$N" -e "$N/error.log" -c "$N/nginx.conf" -t
"$NGINX" -p "$N" -e "$N/error.log" -c "$N/nginx.conf" -g "daemon off;" >"$N/stdout.log" 2>&1 &
nginx_pid=$!
for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$NGINX_HTTP/websocket/health" >/dev/null && break
    sleep 0.1
done
check "nginx proxies health (http)" curl -sf "http://127.0.0.1:$NGINX_HTTP/websocket/health" -o /dev/null
check "nginx proxies health (https, verified)" curl -sf --cacert "$N/fullchain.pem" \
    "https://127.0.0.1:$NGINX_HTTPS/websocket/health" -o /dev/null

# ---- the clients ------------------------------------------------------------------------
(cd tests/node && T=$T BIN=$BIN NGINX_HTTP=$NGINX_HTTP NGINX_HTTPS=$NGINX_HTTPS NGINX_CA=$N/fullchain.pem \
    OMSD1_PORT=$P1 OMSD1_PID=${pids[0]} OMSD2_PORT=$P2 OMSD2_PID=${pids[1]} \
    timeout 180 node --test --test-reporter=tap nginx.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -60
grep -qE '^ok ' "$T/node.tap" || { not_ok "node test ran"; sed 's/^/# /' "$T/node.tap" | tail -20; }

# ---- the logs ----------------------------------------------------------------------------
kill -TERM "$nginx_pid" 2>/dev/null
wait "$nginx_pid" 2>/dev/null
check "the access log has the WebSocket upgrades, without their query" \
    grep -q '"GET /events HTTP/1.1" 101 ' "$N/oms-access.log"
check "nginx saw the failed upstream and went on (upstream_status 502, then 101)" \
    grep -qE '"GET /events HTTP/1.1" 101 .* upstream_status=502, 101 ' "$N/oms-access.log"
check "the clients sent tokens in URLs (the check below sees them)" test -s "$T/url-tokens.txt"
# every log nginx wrote: the shipped ones, the http-level ones, its stdout
leaked=$(grep -lF -e "token=" -f "$T/url-tokens.txt" "$N"/*.log 2>/dev/null)
check "no token and no 'token=' in nginx's logs${leaked:+ (found in: $leaked)}" test -z "$leaked"

# ---- clean up -----------------------------------------------------------------------------
alive=0
for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
        alive=$((alive + 1))
        kill -TERM "$p"
        wait "$p"
        check "surviving omsd exits 0 after SIGTERM" test $? -eq 0
    else
        wait "$p" 2>/dev/null
    fi
done
check "exactly one omsd was killed" test "$alive" -eq 1
