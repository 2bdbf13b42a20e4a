#!/usr/bin/env bash
# Two omsd instances in one projection group split the partitions and still
# produce the tables of the reference fold; one of them killed mid-stream
# (SIGKILL) and started again changes nothing.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/proj_lib.sh"
trap 'proj_cleanup; finish' EXIT

check "topics created" proj_config group
check "test database created" new_db

split_done() {
    local a b
    a=$(assigned a)
    b=$(assigned b)
    [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ $((a + b)) -eq 18 ]
}
wait_split() {
    for _ in $(seq 1 60); do
        split_done && return 0
        sleep 0.5
    done
    note "assigned: a $(assigned a), b $(assigned b)"
    return 1
}

# migrate_on_start: false on an empty database: 503 until migrated by hand
cp "$T/omsd.yaml" "$T/nomigrate.yaml"
printf 'projections:\n  migrate_on_start: false\n' >>"$T/nomigrate.yaml"
check "omsd with migrate_on_start: false starts" start_omsd c "$T/nomigrate.yaml"
sleep 1
check "... and answers 503 while the schema is missing" test "$(health_code c)" = 503
health_get c admin >"$T/health-nomigrate.json"
check "... saying to run omsctl projections migrate (to an admin)" grep -q "omsctl projections migrate" \
    "$T/health-nomigrate.json"
health_get c >"$T/health-nomigrate-public.json"
check "... and only that the projections are down without a token" health_public \
    "$T/health-nomigrate-public.json"
check "... and creates no table" test "$(sql "SELECT count(*) FROM information_schema.tables
    WHERE table_name = 'orders'")" = 0
expect_exit 0 "omsctl projections migrate" "$BIN/omsctl" projections migrate
up=0
for _ in $(seq 1 40); do [ "$(health_code c)" = 200 ] && { up=1; break; }; sleep 0.25; done
check "... after which it is 200 by itself" test "$up" = 1
check "that omsd exits 0 on SIGTERM" stop_omsd "$PID_c"

check "omsd a starts" start_omsd a
check "omsd b starts" start_omsd b
check "the two instances split the 18 partitions" wait_split
note "a has $(assigned a) partitions, b has $(assigned b)"

applied() { # NAME → events applied by that instance (health's details)
    health_get "$1" staff |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["dependencies"]["projections"]["eventsApplied"])' 2>/dev/null || echo 0
}
SEED=$RANDOM
note "seed $SEED"
"$BIN/oms-producer" simulate --rate max --duration 0 --count 10000 --seed "$SEED" \
    --json-summary >"$T/sim1.json" 2>"$T/sim1.err"
check "the projections catch up" wait_caught_up 90
check "both instances applied events" test "$(applied a)" -gt 0 -a "$(applied b)" -gt 0
note "applied: a $(applied a), b $(applied b)"

# one of them killed mid-stream, then started again
"$BIN/oms-producer" simulate --rate 4000 --duration 0 --count 10000 --seed "$((SEED + 1))" \
    --json-summary >"$T/sim2.json" 2>"$T/sim2.err" &
sim=$!
sleep 1
note "SIGKILL b at lag $(lag)"
kill -KILL "$PID_b"
wait "$PID_b" 2>/dev/null
sleep 1
check "omsd b starts again" start_omsd b
wait "$sim"
check "the producer delivered 20000 events" python3 -c 'import json,sys
assert sum(json.load(open(f))["delivered"] for f in sys.argv[1:]) == 20000' "$T/sim1.json" "$T/sim2.json"
check "the projections catch up again" wait_caught_up 120
check "the partitions are split again" wait_split
check "the tables equal the reference fold of the topics" compare_reference

# both stop cleanly; the other takes over what the first leaves
check "omsd a exits 0 on SIGTERM" stop_omsd "$PID_a"
check "omsd b exits 0 on SIGTERM" stop_omsd "$PID_b"
check "omsd ran clean under ASan/UBSan" asan_clean "$T/a.log" "$T/b.log" "$T/c.log"
