#!/usr/bin/env bash
# Subscription filters (issue #20): two omsd (ASan builds), A with a
# history and B without (its resumes read Kafka back); node `ws` and
# socket.io-client clients subscribe with filters (tests/node/filters.test.js).
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics filters
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
PORT_A=$(free_port) PORT_B=$(free_port)
for inst in A:$PORT_A:2000 B:$PORT_B:0; do
    IFS=: read -r name port hist <<<"$inst"
    cp "$T/omsd.yaml" "$T/omsd-$name.yaml"
    cat >>"$T/omsd-$name.yaml" <<YAML
server:
  port: $port
  host: 127.0.0.1
  max_connections_per_address: 0
  rate_limit_per_min: 100000
resume:
  history_size: $hist
log:
  format: json
  level: warn
projections:
  enabled: false
YAML
done

expect_exit 0 "omsd -t accepts the filter limits" "$ABIN/omsd" -t --config "$T/omsd-A.yaml"
printf 'server:\n  filter_max_values: 0\n' >"$T/bad.yaml"
expect_exit 2 "omsd -t refuses server.filter_max_values 0" "$ABIN/omsd" -t --config "$T/bad.yaml"
check "... and names the key" grep -q "server.filter_max_values" "$T/last.err"

start() { # NAME
    local port
    port=$(eval echo "\$PORT_$1")
    "$ABIN/omsd" --config "$T/omsd-$1.yaml" >>"$T/omsd-$1.log" 2>&1 &
    eval "PID_$1=$!"
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:$port/websocket/health" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}
check "instance A up" start A
check "instance B up" start B

(cd tests/node && ulimit -n 20000 2>/dev/null; OMS_PORT=$PORT_A PORT_A=$PORT_A PORT_B=$PORT_B BIN=$BIN \
    OMS_CONFIG=$T/omsd.yaml T="$T" FILTER_CONNS=${FILTER_CONNS:-10000} \
    timeout 900 node --test --test-force-exit --test-reporter=tap --test-concurrency=1 filters.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80
grep -qE '^ok ' "$T/node.tap" || { not_ok "node tests ran"; tail -20 "$T/node.tap" | sed 's/^/# /'; }

for name in A B; do
    pid=$(eval echo "\$PID_$name")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid"
        check "instance $name exits 0 after SIGTERM" test $? -eq 0
    else
        not_ok "instance $name still running at the end"
        wait "$pid" 2>/dev/null
    fi
done
for name in A B; do
    asan_clean "instance $name" "$T/omsd-$name.log"
done
