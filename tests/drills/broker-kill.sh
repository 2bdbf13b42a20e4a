#!/usr/bin/env bash
# Drill (a): kill -9 one broker of the 3-broker cluster while the producer
# runs and 200 clients are subscribed; restart it after 10 s. Recovery: from
# the restart until every partition of the drill's topics has its 3 replicas
# in sync again. Run by tests/drills/run.sh.
. "$(dirname "$0")/lib.sh"

# in_sync: every partition of the drill's topics lists 3 in-sync replicas
in_sync() {
    local out
    out=$(timeout 10 kcat -b "$KAFKA_BROKERS" -L 2>/dev/null | grep -A7 "topic \"${TOPIC_ORDERS%.orders}" |
        grep -E '^\s+partition') || return 1
    [ -n "$out" ] && ! grep -vqE 'isrs: [0-9]+,[0-9]+,[0-9]+$' <<<"$out"
}

check "topics, database and configuration" drill_setup
check "omsd starts" start_omsd
check "${DRILL_CLIENTS:-200} clients connected and subscribed" start_clients
PRE=$(phase 4 20)
POST=$(phase 6 40)
start_producer $((PRE + 10 + POST))
sleep "$PRE"
# the leader of partition 0 of the orders topic
victim=$(timeout 10 kcat -b "$KAFKA_BROKERS" -L -t "$TOPIC_ORDERS" 2>/dev/null |
    sed -n 's/^ *partition 0, leader \([0-9]*\),.*/\1/p')
victim=${victim:-2}
pid=$(cat "$DRILL_STATE/kafka-$victim.pid")
note "kill -9 broker $victim (pid $pid)"
FS=$(now_ms)
kill -KILL "$pid"
sleep 10
FE=$(now_ms)
stack up >"$W/restart.out" 2>&1
check "broker $victim restarts" test $? = 0
deadline=$((SECONDS + 90))
until in_sync; do
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.5
done
check "every partition is back to 3 in-sync replicas" in_sync
REC=$(python3 -c "print(($(now_ms) - $FE) / 1000)")
note "in sync $REC s after the restart began (JVM start included)"
drill_finish "$REC" "$FS" "$FE"
