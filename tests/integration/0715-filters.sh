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

check "instance A up" start_instance A
check "instance B up" start_instance B

(cd tests/node && ulimit -n 20000 2>/dev/null; OMS_PORT=$PORT_A PORT_A=$PORT_A PORT_B=$PORT_B BIN=$BIN \
    OMS_CONFIG=$T/omsd.yaml T="$T" FILTER_CONNS=${FILTER_CONNS:-10000} \
    timeout 900 node --test --test-force-exit --test-reporter=tap --test-concurrency=1 filters.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80
grep -qE '^ok ' "$T/node.tap" || { not_ok "node tests ran"; tail -20 "$T/node.tap" | sed 's/^/# /'; }

stop_instances --all-running A B
