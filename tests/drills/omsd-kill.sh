#!/usr/bin/env bash
# Drill (b): kill -9 omsd while the producer runs and 200 clients are
# subscribed; restart it on the same port after 5 s. The clients reconnect and
# send `resume {since}` with their highest position per partition (DESIGN
# §3.5). Recovery: from the restart until every client is subscribed again
# and has its `resumed` answer. Run by tests/drills/run.sh.
. "$(dirname "$0")/lib.sh"

check "topics, database and configuration" drill_setup
check "omsd starts" start_omsd
check "${DRILL_CLIENTS:-200} clients connected and subscribed" start_clients
PRE=$(phase 4 20)
POST=$(phase 6 40)
start_producer $((PRE + 5 + POST))
sleep "$PRE"
note "kill -9 omsd (pid $OMSD_PID)"
FS=$(now_ms)
kill -KILL "$OMSD_PID"
wait "$OMSD_PID" 2>/dev/null
OMSD_PID=
sleep 5
check "omsd restarts on the same port" start_omsd
FE=$(now_ms)
n=${DRILL_CLIENTS:-200}
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
    r=$(( $(status resumedOk) + $(status resumedFail) ))
    [ "$(status ready)" = "$n" ] && [ "$r" -ge "$n" ] && break
    sleep 0.2
done
REC=$(python3 -c "print(($(now_ms) - $FE) / 1000)")
check "every client reconnected and got its resumed answer" test "$r" -ge "$n"
check "every resume recovered the gap (resumed {recovered:true}: $(status resumedOk) of $n)" \
    test "$(status resumedFail)" = 0
note "clients back $REC s after the restart"
drill_finish "$REC" "$FS" "$FE"
