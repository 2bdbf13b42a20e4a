#!/usr/bin/env bash
# Hardening of the gateway (issue #15, items 1-5) against two ASan builds of
# omsd; tests/node/hardening.test.js holds the attacks:
#   1. a Socket.IO polling session whose queue overflows as its resume ends
#      (was a use-after-free)
#   2. unauthenticated polling sessions: per address (429) and in total (503)
#   3. before CONNECT: 8 KiB at most, CONNECT within server.connect_timeout_s
#   4. a token with a huge exp (used to hang the service thread)
#   5. resumes reading Kafka share resume.read_budget_mb
# Each omsd must survive, exit 0 on SIGTERM, and ASan must see nothing.
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics hardening
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
PORT=$(free_port)
PORT_B=$(free_port)
cat >>"$T/omsd.yaml" <<YAML
log:
  format: json
projections:
  enabled: false
YAML
cp "$T/omsd.yaml" "$T/omsd-b.yaml"
cat >>"$T/omsd.yaml" <<YAML
server:
  port: $PORT
  host: 127.0.0.1
  queue_limit: 400
  max_connections_per_address: 60
  max_unauthenticated_sessions: 100
  connect_timeout_s: 2
YAML
cat >>"$T/omsd-b.yaml" <<YAML
server:
  port: $PORT_B
  host: 127.0.0.1
resume:
  history_size: 0
  read_budget_mb: 1
YAML

start() { # CONFIG PORT LOG -> pid in STARTED
    ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 "$ABIN/omsd" --config "$1" >"$3" 2>&1 &
    STARTED=$!
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:$2/websocket/health" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}
check "omsd A up" start "$T/omsd.yaml" $PORT "$T/omsd.log"
pid=$STARTED
check "omsd B up" start "$T/omsd-b.yaml" $PORT_B "$T/omsd-b.log"
pid_b=$STARTED
check "omsd -t knows the new keys" "$BIN/omsd" -t --config "$T/omsd.yaml"

(cd tests/node && OMS_PORT=$PORT PORT_B=$PORT_B BIN=$BIN T="$T" OMS_CONFIG=$T/omsd.yaml \
    TOPIC_ORDERS=$TOPIC_ORDERS TOPIC_INVENTORY=$TOPIC_INVENTORY TOPIC_NOTIFICATIONS=$TOPIC_NOTIFICATIONS \
    timeout 400 node --test --test-force-exit --test-reporter=tap --test-concurrency=1 hardening.test.js) \
    >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80
grep -qE '^ok ' "$T/node.tap" || { not_ok "node tests ran"; tail -20 "$T/node.tap" | sed 's/^/# /'; }

for p in $pid $pid_b; do
    if kill -0 "$p" 2>/dev/null; then
        ok "omsd $p survived"
        kill -TERM "$p"
        wait "$p"
        check "omsd $p exits 0 after SIGTERM" test $? -eq 0
    else
        not_ok "omsd $p survived"
    fi
done
asan_clean "omsd A" "$T/omsd.log"
asan_clean "omsd B" "$T/omsd-b.log"
