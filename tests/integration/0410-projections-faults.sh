#!/usr/bin/env bash
# Postgres stopped for 10 s mid-stream, then started again: health goes 503
# and back by itself, Kafka consumption pauses instead of losing data, and
# the tables end equal to the reference fold. Then two outages that used to
# leave partitions paused for good: one where the answer to a COMMIT is lost
# (fault injection), one across a rebalance. The shared PostgreSQL is never
# touched: this test runs a throwaway cluster of its own on another port.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/proj_lib.sh"
PGROOT=
pg_own_stop() {
    [ -n "$PGROOT" ] && [ -f "$PGROOT/data/postmaster.pid" ] &&
        as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 30 stop >/dev/null 2>&1
    return 0
}
trap 'proj_cleanup; pg_own_stop; [ -n "$PGROOT" ] && rm -rf "$PGROOT"; finish' EXIT

# initdb and postgres refuse to run as root
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# ---- a PostgreSQL of our own (the folder's parents must be traversable by postgres)
PGROOT=/var/tmp/oms-t-pg-$$-$RANDOM
PGPORT2=$(free_port)
mkdir -p "$PGROOT"
chmod 755 "$PGROOT"
if [ "$(id -u)" -eq 0 ]; then
    install -d -o postgres -g postgres -m 700 "$PGROOT/data"
    install -d -o postgres -g postgres -m 755 "$PGROOT/sock"
    touch "$PGROOT/pg.log" && chown postgres:postgres "$PGROOT/pg.log"
else
    install -d -m 700 "$PGROOT/data"
    install -d -m 755 "$PGROOT/sock"
fi
pg_own_start() {
    as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/pg.log" -w -t 30 \
        -o "-p $PGPORT2 -k $PGROOT/sock -c listen_addresses=127.0.0.1" start >/dev/null
}
check "initdb of a throwaway cluster" as_pg "$PGBIN/initdb" -D "$PGROOT/data" -U postgres \
    --auth=trust -E UTF8 --locale=C.UTF-8 >"$T/initdb.log" 2>&1
check "it starts on port $PGPORT2" pg_own_start
export DATABASE_HOST=127.0.0.1 DATABASE_PORT=$PGPORT2 DATABASE_USER=postgres

check "topics created" proj_config faults
check "test database created" new_db
cat >>"$T/omsd.yaml" <<YAML
projections:
  batch_size: 500
  batch_ms: 20
YAML

check "omsd starts" start_omsd a
for _ in $(seq 1 50); do [ "$(health_code a)" = 200 ] && break; sleep 0.1; done
check "health is 200" test "$(health_code a)" = 200

SEED=$RANDOM
note "seed $SEED"
"$BIN/oms-producer" simulate --rate 1000 --duration 0 --count 20000 --seed "$SEED" --json-summary \
    >"$T/sim.json" 2>"$T/sim.err" &
sim=$!
sleep 4
check "events are being applied before the outage" test "$(sql 'SELECT count(*) FROM notifications')" -gt 0
check "postgres stops" as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 30 stop
stopped=$SECONDS
went_503=0
while [ $((SECONDS - stopped)) -lt 10 ]; do
    [ "$(health_code a)" = 503 ] && went_503=1
    sleep 0.5
done
check "health went 503 while postgres was down" test "$went_503" = 1
health_get a >"$T/health-down.json"
check "... naming postgres and the projections" grep -q '"failing":"postgres, projections"' \
    "$T/health-down.json"
check "... without a token: no error text, no address" health_public "$T/health-down.json"
health_get a staff >"$T/health-down-staff.json"
check "... to staff: the projections' error too" python3 -c \
    'import json,sys; h = json.load(open(sys.argv[1])); assert h["failing"] == "postgres, projections" and h["dependencies"]["projections"]["error"], h' \
    "$T/health-down-staff.json"
check "omsd keeps running without postgres" kill -0 "$OMSD_PID"
check "postgres starts again" pg_own_start
back=0
for _ in $(seq 1 60); do
    [ "$(health_code a)" = 200 ] && { back=1; break; }
    sleep 0.5
done
check "health is back to 200 by itself" test "$back" = 1
wait "$sim"
check "the producer delivered 20000 events" \
    python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["delivered"] == 20000' \
    "$T/sim.json"
check "the projections catch up" wait_caught_up 90
check "the tables equal the reference fold of the topics" compare_reference
check "the outage was logged and the recovery too" bash -c "grep -q 'projections: cannot apply, consumption paused' '$T/a.log' &&
    grep -q 'projections: postgres ready' '$T/a.log'"
check "omsd exits 0 on SIGTERM" stop_omsd "$OMSD_PID"
check "omsd ran clean under ASan/UBSan" asan_clean "$T/a.log"

# ---- a COMMIT whose answer is lost in an outage (issue 15, item 6)
# Postgres may commit a batch and go away before its answer reaches omsd: the
# worker reconnects, tries the batch again and finds the stored offsets moved
# past it, while its partitions are still paused from the outage. That window
# is too narrow to hit on purpose, so omsd's fault injection makes the first
# batch each worker commits after a failure lose its answer: every worker goes
# through it, every run. The lag must drain all the same.
export OMS_FAULT_PROJ_LOST_COMMIT=1
check "omsd starts with the lost-answer fault armed" start_omsd b
unset OMS_FAULT_PROJ_LOST_COMMIT
for _ in $(seq 1 50); do [ "$(health_code b)" = 200 ] && break; sleep 0.1; done
check "health is 200" test "$(health_code b)" = 200
"$BIN/oms-producer" simulate --rate 1000 --duration 0 --count 8000 --seed "$((SEED + 1))" \
    --json-summary >"$T/sim2.json" 2>"$T/sim2.err" &
sim=$!
sleep 2
check "postgres stops again" as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 30 stop
sleep 3
check "postgres starts again" pg_own_start
wait "$sim"
check "the producer delivered 8000 more events" \
    python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["delivered"] == 8000' \
    "$T/sim2.json"
check "the projections catch up after the lost answers" wait_caught_up 60
lost=$(grep -c 'fault injection: the answer to COMMIT is lost' "$T/b.log")
check "... answers to COMMIT were lost ($lost)" test "$lost" -ge 1
check "... and every such worker read again from the stored offsets" \
    test "$(grep -c 'stored offsets moved' "$T/b.log")" -ge "$lost"
check "the tables equal the reference fold of the topics" compare_reference

# ---- partitions revoked while paused come back paused (librdkafka 2.0.2 keeps
# the application's pause across revocation and reassignment): omsd c joins
# the group while Postgres is down, so b's workers give up some of their
# paused partitions; Postgres comes back, b resumes what it holds; c leaves
# and b gets those partitions again — they must be fetched from.
check "postgres stops a third time" as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 30 stop
down=0
for _ in $(seq 1 40); do [ "$(health_code b)" = 503 ] && { down=1; break; }; sleep 0.25; done
check "b noticed (503)" test "$down" = 1
check "omsd c joins the group while postgres is down" start_omsd c
b_and_c() { [ "$(assigned b)" -gt 0 ] && [ "$(assigned c)" -gt 0 ] &&
    [ $(($(assigned b) + $(assigned c))) -eq 18 ]; }
check "b and c split the partitions" wait_for 30 b_and_c
check "postgres starts again" pg_own_start
back=0
for _ in $(seq 1 60); do [ "$(health_code b)" = 200 ] && { back=1; break; }; sleep 0.5; done
check "b is back to 200" test "$back" = 1
check "omsd c leaves the group" stop_omsd "$PID_c"
all_b() { [ "$(assigned b)" -eq 18 ]; }
check "b holds the 18 partitions again" wait_for 30 all_b
"$BIN/oms-producer" simulate --rate max --duration 0 --count 3000 --seed "$((SEED + 2))" \
    --json-summary >"$T/sim3.json" 2>"$T/sim3.err"
check "the projections catch up on every partition b got back" wait_caught_up 60
check "the tables equal the reference fold of the topics" compare_reference
check "omsd b exits 0 on SIGTERM" stop_omsd "$PID_b"
check "omsd b and c ran clean under ASan/UBSan" asan_clean "$T/b.log" "$T/c.log"
