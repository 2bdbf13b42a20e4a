#!/usr/bin/env bash
# Drill (d): one client (an admin, client 0) stops reading while the producer
# runs; its queue fills and omsd closes it with 1013; then it reads again,
# reconnects and resumes. The 199 others must not notice. omsd runs with
# server.queue_limit 256, but before its queue fills the kernel buffers the
# connection: omsd's send buffer autotunes up to net.ipv4.tcp_wmem's maximum
# (4 MiB by default), about 25 s of this client's events at 500 events/s, a
# minute at 200. So this drill is not in the short set (make test). Recovery: from
# the 1013 close until the client has its `resumed` answer.
. "$(dirname "$0")/lib.sh"

overflows() {
    curl -s --max-time 3 "http://127.0.0.1:$OMSD_PORT/metrics" |
        sed -n 's/^oms_queue_overflow_closes_total \([0-9]*\).*/\1/p' | head -1
}
c0() { # FIELD of client 0
    python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["c0"][sys.argv[2]])
except Exception: print(0)' "$W/clients/status.json" "$1"
}

check "topics, database and configuration" drill_setup 256
check "omsd starts" start_omsd
check "${DRILL_CLIENTS:-200} clients connected and subscribed" start_clients
PRE=$(phase 3 20)
POST=$(phase 5 40)
STALL_MAX=$(phase 90 120)
# It stops reading before the events start: a socket that has been read
# fast has kernel buffers grown to megabytes (tcp_rmem autotuning), which
# would take minutes to fill at this rate before omsd's queue gets anything.
note "client 0 stops reading"
echo stall >"$W/clients/control"
start_producer $((PRE + STALL_MAX + POST))
FS=$(now_ms)
deadline=$((SECONDS + STALL_MAX))
until [ "$(overflows)" -ge 1 ] 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.2
done
FE=$(now_ms)
check "omsd closed the stalled client (queue overflow, 1013) after $(( (FE - FS) / 1000 )) s" \
    test "$(overflows)" -ge 1
echo read >"$W/clients/control"
deadline=$((SECONDS + 30))
until [ "$(c0 resumes)" -ge 1 ]; do
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.2
done
REC=$(python3 -c "print(($(now_ms) - $FE) / 1000)")
check "the client reconnected and got its resumed answer" test "$(c0 resumes)" -ge 1
check "no other client was closed" test "$(status reconnects)" = "$(( $(c0 connects) - 1 ))"
note "client resumed $REC s after the close"
# the producer runs on for POST seconds after the stall
kill -0 "$SIM_PID" 2>/dev/null && sleep "$POST" && kill -INT "$SIM_PID" 2>/dev/null
drill_finish "$REC" "$FS" "$FE" --stalled 0
