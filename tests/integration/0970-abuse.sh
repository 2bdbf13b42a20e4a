#!/usr/bin/env bash
# Abuse (issue #9): each attack against omsd (ASan build) with a bystander
# client that must keep receiving; omsd must neither crash nor leak.
#   - HS256 token signed with the RS256 public key (algorithm confusion)
#   - expired token on a live connection, foreign Origin
#   - 10,000 connections from one address (server.max_connections_per_address)
#   - a handshake that never completes, headers over the limit
#   - a frame just over the limit, fragments reassembling past the limit
#   - ../ in console paths, a customer resuming with everyone's positions
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics abuse
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
PORT=$(free_port)
PORT_RS=$(free_port)
cat >>"$T/omsd.yaml" <<YAML
server:
  port: $PORT
  host: 127.0.0.1
  max_connections_per_address: 1000
  max_frame_bytes: 65536
log:
  format: json
projections:
  enabled: false
YAML
openssl genrsa -out "$T/rs.key" 2048 2>/dev/null
openssl rsa -in "$T/rs.key" -pubout -out "$T/rs.pub" 2>/dev/null
sed -e "s/port: $PORT/port: $PORT_RS/" "$T/omsd.yaml" >"$T/omsd-rs.yaml"
cat >>"$T/omsd-rs.yaml" <<YAML
auth:
  algorithm: RS256
  public_key_file: $T/rs.pub
YAML

start() { # CONFIG PORT LOG -> pid in STARTED
    "$ABIN/omsd" --config "$1" >"$3" 2>&1 &
    STARTED=$!
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:$2/websocket/health" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}
check "omsd (HS256) up" start "$T/omsd.yaml" $PORT "$T/omsd.log"
pid=$STARTED
check "omsd (RS256) up" start "$T/omsd-rs.yaml" $PORT_RS "$T/omsd-rs.log"
pid_rs=$STARTED

ulimit -n 20000 2>/dev/null || true
(cd tests/node && OMS_PORT=$PORT PORT_RS=$PORT_RS RS_KEY="$T/rs.key" RS_PUB="$T/rs.pub" BIN=$BIN \
    TOOLS=$TOOLS TOPIC_ORDERS=$TOPIC_ORDERS TOPIC_INVENTORY=$TOPIC_INVENTORY \
    TOPIC_NOTIFICATIONS=$TOPIC_NOTIFICATIONS OMS_CONFIG=$T/omsd.yaml T="$T" \
    timeout 400 node --test --test-force-exit --test-reporter=tap --test-concurrency=1 abuse.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80

for p in $pid $pid_rs; do
    if kill -0 "$p" 2>/dev/null; then
        ok "omsd $p survived every attack"
        kill -TERM "$p"
        wait "$p"
        check "omsd $p exits 0 after SIGTERM" test $? -eq 0
    else
        not_ok "omsd $p survived every attack"
    fi
done
asan_clean "omsd (HS256)" "$T/omsd.log"
asan_clean "omsd (RS256)" "$T/omsd-rs.log"
