#!/usr/bin/env bash
# Drill (c): stop the drills' own PostgreSQL for 15 s while the producer runs
# and 200 clients are subscribed, then start it again. Fan-out goes on;
# projections pause and catch up. Recovery: from the start of PostgreSQL
# until the projections have applied the backlog (lag 0). Run by
# tests/drills/run.sh.
. "$(dirname "$0")/lib.sh"

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

check "topics, database and configuration" drill_setup
check "omsd starts" start_omsd
check "${DRILL_CLIENTS:-200} clients connected and subscribed" start_clients
PRE=$(phase 4 20)
POST=$(phase 6 40)
start_producer $((PRE + 15 + POST))
sleep "$PRE"
pgdata=$(stack status 2>/dev/null | sed -n 's/.*postgres .* data \(.*\)$/\1/p')
note "stopping PostgreSQL ($pgdata)"
FS=$(now_ms)
check "PostgreSQL stops" as_pg "$PGBIN/pg_ctl" -D "$pgdata" -m fast -w -t 30 stop >/dev/null
went_503=0
while [ $(( $(now_ms) - FS )) -lt 15000 ]; do
    [ "$(health_code)" = 503 ] && went_503=1
    sleep 0.5
done
check "omsd's health went 503 while PostgreSQL was down" test "$went_503" = 1
check "omsd kept running" kill -0 "$OMSD_PID"
FE=$(now_ms)
stack up >"$W/restart.out" 2>&1
check "PostgreSQL starts again" test $? = 0
deadline=$((SECONDS + 60))
until [ "$(health_code)" = 200 ]; do
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.2
done
check "health is 200 again by itself" test "$(health_code)" = 200
note "healthy $(python3 -c "print(($(now_ms) - $FE) / 1000)") s after the start of PostgreSQL began"
# caught up: the backlog of the outage applied (the producer still runs)
deadline=$((SECONDS + 60))
until [ "$(lag)" = 0 ]; do
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.2
done
REC=$(python3 -c "print(($(now_ms) - $FE) / 1000)")
note "projections caught up $REC s after the start of PostgreSQL began"
drill_finish "$REC" "$FS" "$FE"
