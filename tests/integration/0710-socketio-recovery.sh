#!/usr/bin/env bash
# Socket.IO connection-state recovery (DESIGN §3.6, issue #19): the
# unmodified socket.io-client (both transports) behind a TCP relay that the
# test cuts and points at instance A or B of omsd (ASan builds, the real
# broker). 500 events missed while away come back exactly once, in order per
# partition, from memory (A) or Kafka (B, 20 events of history), with
# socket.recovered === true and the subscriptions restored; a forged or
# edited offset gets a customer nothing of other users'; an offset past
# retention gets recovered === false. Subscription filters come back too
# (the session store, ws_sessions in Postgres): on the same instance, and on
# B after instance C was killed with SIGKILL, the replay and the live events
# after it are exactly the matching ones; a session whose instance (D) had
# no Postgres recovers on D (memory) but elsewhere is a fresh session.
. "$(dirname "$0")/lib.sh"

# a database of the test's own (the session store's table, ws_sessions)
DB=oms_t_sio_$RANDOM$RANDOM
sql() { psql -X -q -At -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d "$DB" -c "$1"; }
new_db() {
    psql -X -q -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d postgres \
        -c "CREATE DATABASE $DB" >/dev/null && export DATABASE_NAME=$DB
}
drop_db() {
    psql -X -q -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d postgres \
        -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
}

check "topics created" make_topics siorec
check "a database of its own" new_db
trap 'drop_db; finish' EXIT
retry() { # N CMD...: CMD until it succeeds, N times 0.1 s apart
    local n=$1
    shift
    for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
PORT_A=$(free_port) PORT_B=$(free_port) PORT_C=$(free_port) PORT_D=$(free_port)
PG_DOWN=$(free_port) # nothing listens there: instance D's Postgres is down
for inst in A:$PORT_A:5000 B:$PORT_B:20 C:$PORT_C:5000 D:$PORT_D:5000; do
    IFS=: read -r name port hist <<<"$inst"
    cp "$T/omsd.yaml" "$T/omsd-$name.yaml"
    cat >>"$T/omsd-$name.yaml" <<YAML
server:
  port: $port
  host: 127.0.0.1
resume:
  history_size: $hist
log:
  format: json
projections:
  enabled: false
YAML
done
printf 'resume:\n  token_secret: short\n' >"$T/bad.yaml"
expect_exit 2 "omsd -t refuses a resume.token_secret under 16 bytes" "$ABIN/omsd" -t --config "$T/bad.yaml"
check "... and says why" grep -q "resume.token_secret: 5 bytes; at least 16" "$T/last.err"

start() { # NAME (D: its Postgres is down)
    local dbport=$DATABASE_PORT
    [ "$1" = D ] && dbport=$PG_DOWN
    DATABASE_PORT=$dbport OMS_SSTORE_SWEEP_MS=1000 ASAN_OPTIONS=detect_leaks=1 start_instance "$1"
}
check "instance A up" start A
check "instance B up" start B
check "instance C up" start C
check "instance D up (its Postgres down)" start D
tables() { test "$(sql "SELECT to_regclass('ws_sessions') IS NOT NULL")" = t; }
check "the session table is migrated" retry 50 tables
# a session last written past resume.session_ttl_s (14 days): expired by a sweep
STALE=stale-session-pid-0123456789
sql "INSERT INTO ws_sessions VALUES ('$STALE', 1, '{\"orders\": null}', now() - interval '15 days')"

(cd tests/node && OMS_PORT=$PORT_A PORT_A=$PORT_A PORT_B=$PORT_B PORT_C=$PORT_C PORT_D=$PORT_D \
    PID_C=$PID_C BIN=$BIN OMS_CONFIG=$T/omsd.yaml \
    KAFKA_LIBS="$OMS_STATE/kafka/libs" T="$T" \
    TOPIC_ORDERS=$TOPIC_ORDERS TOPIC_INVENTORY=$TOPIC_INVENTORY \
    TOPIC_NOTIFICATIONS=$TOPIC_NOTIFICATIONS \
    timeout 600 node --test --test-force-exit --test-reporter=tap --test-concurrency=1 sio-recovery.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80
grep -qE '^ok ' "$T/node.tap" || { not_ok "node tests ran"; tail -20 "$T/node.tap" | sed 's/^/# /'; }

# (the polling client's DISCONNECT (9103) goes through the relay, already
# pointed at A, which does not know that session: its row stays, to expire)
gone() { test "$(sql "SELECT count(*) FROM ws_sessions WHERE user_id <> 9103")" = 0; }
check "every session ended (DISCONNECT) or abandoned (recovered false) is deleted, the stale one expired" retry 50 gone
sql "SELECT pid, user_id, subscriptions, updated_at FROM ws_sessions" | sed 's/^/# left: /'
metric() { # PORT NAME: its value on /metrics
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
check "A's store is up and stored the sessions' subscriptions" \
    test "$(metric "$PORT_A" oms_session_store_up)" = 1 -a \
    "$(metric "$PORT_A" 'oms_session_store_saves_total{result="stored"}')" -gt 0
check "B found the killed instance's session in PostgreSQL" \
    test "$(metric "$PORT_B" 'oms_session_store_lookups_total{result="found"}')" -gt 0
check "D's store is down and its saves failed (confirmed unstored)" \
    test "$(metric "$PORT_D" oms_session_store_up)" = 0 -a \
    "$(metric "$PORT_D" 'oms_session_store_saves_total{result="failed"}')" -gt 0
wait "$PID_C" 2>/dev/null
rc_c=$?
check "instance C was killed by the test (SIGKILL)" test "$rc_c" -eq 137
stop_instances A B D
