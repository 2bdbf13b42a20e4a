#!/usr/bin/env bash
# Postgres projections (DESIGN §3.4): migrations and `omsctl projections`;
# exactly once across SIGKILLs at random moments (tables == an independent
# fold of the topics); a poisoned and a constraint-violating record go to the
# DLQ while everything after them applies; rebuild gives the same tables.
# Real Kafka and Postgres, the ASan omsd, a database and group of its own.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/proj_lib.sh"
trap 'proj_cleanup; drop_db2; finish' EXIT
DB2=
drop_db2() {
    [ -n "$DB2" ] && psql -X -q -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" \
        -d postgres -c "DROP DATABASE IF EXISTS $DB2 WITH (FORCE)" >/dev/null 2>&1
}

check "topics created" proj_config proj
check "test database created" new_db

# ---- the command line and the migrations ------------------------------------------
expect_exit 2 "projections without an action is a usage error" "$BIN/omsctl" projections
expect_exit 2 "an unknown action is a usage error" "$BIN/omsctl" projections frobnicate
check "... which names the actions" grep -q "status, migrate or rebuild" "$T/last.err"
expect_exit 2 "--yes outside rebuild is a usage error" "$BIN/omsctl" projections status --yes
expect_exit 0 "projections --help" "$BIN/omsctl" projections --help
check "... lists every option" bash -c "for o in --json --group --yes --no-wait --timeout \
    --brokers --config --help; do grep -q -- \"\$o\" '$T/last.out' || exit 1; done"
expect_exit 1 "status before the schema exists fails" "$BIN/omsctl" projections status
check "... and says to migrate" grep -q "omsctl projections migrate" "$T/last.err"
DATABASE_PORT=1 expect_exit 1 "status with postgres unreachable fails" \
    "$BIN/omsctl" projections status
check "... naming postgres and the variables to check" \
    grep -q "cannot connect to postgres.*DATABASE_HOST" "$T/last.err"
expect_exit 0 "migrate applies the schema" "$BIN/omsctl" projections migrate
check "... and reports version 3 (projections, alerts, Socket.IO sessions)" grep -q "schema version 3 (was 0)" "$T/last.out"
expect_exit 0 "migrate again" "$BIN/omsctl" projections migrate --json
check "... is up to date" grep -q '"from":3,"to":3' "$T/last.out"
check "each migration is recorded once" test "$(sql 'SELECT count(*) FROM oms_schema_migrations')" = 3
check "the read models exist" test "$(sql "SELECT count(*) FROM information_schema.tables WHERE
    table_name IN ('orders','order_status_history','inventory','notifications','oms_offsets')")" = 5

# concurrent migrations (two omsd starting at once) wait for each other
DB2=oms_t_$RANDOM$RANDOM
psql -X -q -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d postgres \
    -c "CREATE DATABASE $DB2" >/dev/null
for i in 1 2 3 4; do
    DATABASE_NAME=$DB2 "$BIN/omsctl" projections migrate >"$T/mig$i.out" 2>&1 &
done
mig_ok=0
for job in $(jobs -p); do wait "$job" && mig_ok=$((mig_ok + 1)); done
check "four concurrent migrations all succeed" test "$mig_ok" = 4
check "... and apply the schema once" test "$(psql -X -At -h "$DATABASE_HOST" -p "$DATABASE_PORT" \
    -U "$DATABASE_USER" -d "$DB2" -c 'SELECT count(*) FROM oms_schema_migrations')" = 3
drop_db2

expect_exit 2 "rebuild without --yes and without a terminal is refused" \
    "$BIN/omsctl" projections rebuild </dev/null
check "... saying to confirm with --yes" grep -q -- "--yes" "$T/last.err"

# ---- exactly once across SIGKILL --------------------------------------------------
SEED=$RANDOM
note "seed $SEED"
"$BIN/oms-producer" simulate --rate 2500 --duration 0 --count 20000 --seed "$SEED" --json-summary \
    >"$T/sim.json" 2>"$T/sim.err" &
sim=$!
check "omsd starts" start_omsd a
for i in 1 2 3; do
    sleep "$(python3 -c 'import random; print(round(random.uniform(1.0, 2.5), 2))')"
    note "SIGKILL $i at lag $(lag)"
    kill -KILL "$OMSD_PID"
    wait "$OMSD_PID" 2>/dev/null
    check "omsd restarts after SIGKILL $i" start_omsd a
done
wait "$sim"
check "the producer delivered 20000 events" \
    python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["delivered"] == 20000' \
    "$T/sim.json"
check "the projections catch up" wait_caught_up 120
check "the tables equal the reference fold of the topics" compare_reference
check "no history row twice" test "$(sql "SELECT count(*) - count(DISTINCT (order_id, position))
    FROM order_status_history")" = 0
check "health is 200 with projections up" test "$(health_code a)" = 200
expect_exit 0 "projections status" "$BIN/omsctl" projections status --group "$GROUP"
check "... shows stored offset, log end, lag and last applied time per partition" \
    grep -q "PARTITION *STORED *LOG END *LAG *LAST APPLIED" "$T/last.out"
check "... 18 partitions" test "$(grep -c "^oms-t-proj" "$T/last.out")" = 18
check "... and the total lag" grep -q "^total lag 0$" "$T/last.out"

# ---- bad records -----------------------------------------------------------------
printf 'this is not avro' >"$T/poison.bin"
kcat -P -b "$KAFKA_BROKERS" -t "$TOPIC_ORDERS" -p 0 -k ord-poison "$T/poison.bin" 2>"$T/kcat.err"
"$BIN/oms-producer" emit OrderStatusChanged --json \
    '{"orderId":"ord-orphan-0001","aliasId":"ORD-ORPHAN","userId":7,"status":"shipped"}' \
    >/dev/null 2>&1
"$BIN/oms-producer" emit OrderCreated --json \
    '{"orderId":"ord-after-0001","aliasId":"ORD-AFTER","userId":7,"totalAmount":12.5}' \
    >/dev/null 2>&1
"$BIN/oms-producer" emit OrderStatusChanged --json \
    '{"orderId":"ord-after-0001","aliasId":"ORD-AFTER","userId":7,"status":"confirmed"}' \
    >/dev/null 2>&1
"$BIN/oms-producer" emit InventoryChanged --json \
    '{"productId":9999,"productName":"After","quantity":5,"threshold":1,"status":"low_stock"}' \
    >/dev/null 2>&1
check "the projections catch up past the bad records" wait_caught_up 60
check "the records after them applied" test \
    "$(sql "SELECT status FROM orders WHERE order_id = 'ord-after-0001'")" = confirmed
check "... all of them" test "$(sql 'SELECT quantity FROM inventory WHERE product_id = 9999')" = 5
check "the orphan status change is not in the history" test \
    "$(sql "SELECT count(*) FROM order_status_history WHERE order_id = 'ord-orphan-0001'")" = 0
kcat -C -b "$KAFKA_BROKERS" -t "$TOPIC_DLQ" -e -q -f '%h|%k\n' >"$T/dlq.txt" 2>/dev/null
grep "oms.stage=projection" "$T/dlq.txt" >"$T/dlq-projection.txt"
check "the poisoned record is in the dlq with its position and reason" \
    grep -q "oms.error=not decodable.*oms.source.topic=$TOPIC_ORDERS,oms.source.partition=0.*|ord-poison" \
    "$T/dlq-projection.txt"
check "the constraint-violating record is in the dlq with the reason" \
    grep -q "oms.error=constraint violated: 23503.*ord-orphan-0001.*oms.source.topic=$TOPIC_ORDERS" \
    "$T/dlq-projection.txt"
check "omsd is still running" kill -0 "$OMSD_PID"
check "the tables equal the reference fold (bad records left out)" compare_reference
check "the reference leaves out exactly the orphan" test \
    "$(python3 "$REF" rejected "$T/tail.json" | wc -l)" = 1
health_get a staff >"$T/health-staff.json"
check "health reports the rejected records to staff" python3 -c \
    'import json,sys; assert json.load(open(sys.argv[1]))["dependencies"]["projections"]["rejected"] >= 2' \
    "$T/health-staff.json"
check "... and the brokers" grep -q "\"brokers\":\"$KAFKA_BROKERS\"" "$T/health-staff.json"
health_get a >"$T/health-public.json"
check "health without a token: status only, no brokers, counters or addresses" \
    health_public "$T/health-public.json"
check "... still saying which dependencies are up" python3 -c \
    'import json,sys; h = json.load(open(sys.argv[1])); d = {k: v["status"] for k, v in h["dependencies"].items()}; assert h["status"] == "ok" and d.pop("schemaRegistry", "up") == "up" and d == {"kafka": "up", "postgres": "up", "projections": "up"}, h' \
    "$T/health-public.json"
health_get a customer >"$T/health-customer.json"
check "health to a customer: the public answer" health_public "$T/health-customer.json"
bad_token_health() { # an invalid token is not refused (probes never send one): public answer
    local code
    code=$(curl -s -H "Authorization: Bearer not-a-jwt" -o "$T/health-badtoken.json" \
        -w '%{http_code}' "http://127.0.0.1:$PORT_a/websocket/health")
    [ "$code" = 200 ] && health_public "$T/health-badtoken.json"
}
check "health with an invalid token: 200 and the public answer" bad_token_health

# ---- rebuild -----------------------------------------------------------------------
python3 "$REF" dump >"$T/before.txt"
expect_exit 0 "rebuild --yes waits until caught up" timeout 150 \
    "$BIN/omsctl" projections rebuild --yes --timeout 120 --group "$GROUP"
check "... and says what it folded" grep -q "^rebuilt: .* events folded" "$T/last.out"
python3 "$REF" dump >"$T/after.txt"
check "the tables after the rebuild equal the tables before" cmp -s "$T/before.txt" "$T/after.txt"
check "... which are not empty" test "$(wc -l <"$T/after.txt")" -gt 10000

# ---- replay: the stored offsets rewound, the tables kept ---------------------------
# (what a manual reset would do): every event is applied a second time, and
# the position guards must leave every row as it is, with no second history row
moved=$(grep -c 'stored offsets moved' "$T/a.log")
sql "UPDATE oms_offsets SET next_offset = 0 WHERE group_id = '$GROUP'" >/dev/null
check "omsd notices the rewound offsets and refolds" bash -c "for _ in \$(seq 1 40); do
    [ \$(grep -c 'stored offsets moved' '$T/a.log') -gt $moved ] && exit 0; sleep 0.25; done; exit 1"
check "the replay catches up" wait_caught_up 120
python3 "$REF" dump >"$T/replayed.txt"
check "a replay changes no row and adds none" cmp -s "$T/before.txt" "$T/replayed.txt"

# ---- rebuild without waiting --------------------------------------------------------
expect_exit 0 "rebuild --yes --no-wait returns at once" "$BIN/omsctl" projections rebuild --yes \
    --no-wait --json
check "... having reset the offsets" grep -q '"reset":true' "$T/last.out"
check "... and omsd folds the log again" wait_caught_up 120
python3 "$REF" dump >"$T/rebuilt2.txt"
check "... into the same tables" cmp -s "$T/before.txt" "$T/rebuilt2.txt"

# ---- stop ----------------------------------------------------------------------------
check "omsd exits 0 on SIGTERM" stop_omsd "$OMSD_PID"
check "omsd ran clean under ASan/UBSan" asan_clean "$T/a.log"
check "... and logged no error" bash -c "! grep '\"level\":\"error\"' '$T/a.log'"
check "... nor left records uncommitted at exit" bash -c "! grep 'not committed' '$T/a.log'"
