#!/usr/bin/env bash
# omsd's WebSocket fan-out, measured with oms-wsload (one process, many
# connections) against a release omsd started here on its own topics and port:
#   1. throughput: BENCH_CLIENTS admin clients subscribed to all orders,
#      oms-producer simulate --rate max --count BENCH_GATEWAY_EVENTS
#      -> deliveries/s (client side and omsd's /metrics), omsd CPU and RSS
#   2. latency: the same clients, the producer at BENCH_LATENCY_RATE events/s
#      for BENCH_LATENCY_SECONDS (and a lighter point at a quarter of it)
#      -> produce-to-receive p50/p99 (occurredAt has ms resolution: +0..1 ms)
#   3. idle memory: BENCH_IDLE idle connections to a fresh omsd with the
#      shipped defaults -> omsd RSS per connection; then SIGTERM with all of
#      them open (clients must see 1001, omsd must exit 0)
# Loopback only, every step time-bounded (whole bench well under 5 minutes).
set -eu
cd "$(dirname "$0")/../.."
CLIENTS=${BENCH_CLIENTS:-200}
IDLE=${BENCH_IDLE:-10000}
EVENTS=${BENCH_GATEWAY_EVENTS:-200000}
LAT_RATE=${BENCH_LATENCY_RATE:-2000}
LAT_SECS=${BENCH_LATENCY_SECONDS:-10}
BIN=build/bin
LOAD=build/tests/tools/oms-wsload
T=build/bench/gateway
rm -rf "$T"
mkdir -p "$T"
for f in "$BIN/omsd" "$BIN/omsctl" "$BIN/oms-producer" "$LOAD"; do
    [ -x "$f" ] || { echo "gateway: $f is missing: run 'make all tools'" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# a 40-character secret, shared by omsd and the load tool (never on a command line)
JWT_SECRET=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
export JWT_SECRET
say() { echo "gateway: $*"; }
note() { echo "gateway: note: $*"; }
ns() { date +%s%N; }
py() { python3 -c "$@"; }
jget() { # FILE EXPR(j) -> value
    python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(eval(sys.argv[2]))' "$1" "$2"
}

PORT=""
for p in $(seq "${BENCH_GATEWAY_PORT:-3900}" 3999); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "gateway: no free port in 3900..3999" >&2; exit 1; }
URL=ws://127.0.0.1:$PORT/events
BASE=http://127.0.0.1:$PORT

# topics of our own
P="oms-bench-gw-$RANDOM$RANDOM"
cat >"$T/topics.yaml" <<YAML
defaults: {partitions: 6, replication_factor: 1}
topics:
  - {name: $P.orders}
  - {name: $P.inventory}
  - {name: $P.notifications}
  - {name: $P.dlq}
YAML
$BIN/omsctl topics create --file "$T/topics.yaml" >"$T/topics.out"

OMSD_PID=""
LOAD_PID=""
cleanup() {
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
    if [ -n "$OMSD_PID" ] && kill -0 "$OMSD_PID" 2>/dev/null; then
        kill -TERM "$OMSD_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$OMSD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$OMSD_PID" 2>/dev/null
    fi
    return 0
}
trap cleanup EXIT

# start_omsd NAME QUEUE_LIMIT: omsd on $PORT with its own config; sets OMSD_PID
start_omsd() {
    local name=$1 ql=$2 try
    cat >"$T/$name.yaml" <<YAML
server:
  host: "127.0.0.1"
  port: $PORT
  queue_limit: $ql
kafka:
  topics: {orders: $P.orders, inventory: $P.inventory, notifications: $P.notifications, dlq: $P.dlq}
projections: {enabled: false}
log: {format: json}
YAML
    for try in $(seq 1 15); do
        OMS_CONFIG=$T/$name.yaml $BIN/omsd >"$T/$name.log" 2>&1 &
        OMSD_PID=$!
        for _ in $(seq 100); do
            kill -0 "$OMSD_PID" 2>/dev/null || break
            if curl -sf -o /dev/null "$BASE/websocket/health"; then
                [ "$try" -gt 1 ] && note "omsd ($name) started at attempt $try; earlier: $(cat "$T/$name.failed")"
                return 0
            fi
            sleep 0.1
        done
        if kill -0 "$OMSD_PID" 2>/dev/null; then
            echo "gateway: omsd ($name) not healthy after 10 s" >&2
            tail -5 "$T/$name.log" >&2
            exit 1
        fi
        wait "$OMSD_PID" || true
        # fresh topics may not have a leader yet: omsd exits; try again
        grep -o '"error":"[^"]*"' "$T/$name.log" | tail -1 >"$T/$name.failed" || true
        OMSD_PID=""
        sleep 1
    done
    echo "gateway: omsd ($name) would not start:" >&2
    tail -5 "$T/$name.log" >&2
    exit 1
}

stop_omsd() { # sets STOP_SECS and STOP_RC
    local t0
    t0=$(ns)
    STOP_RC=0
    kill -TERM "$OMSD_PID"
    for _ in $(seq 150); do kill -0 "$OMSD_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$OMSD_PID" 2>/dev/null; then
        kill -KILL "$OMSD_PID"
        STOP_RC="still running after 15 s, killed"
        wait "$OMSD_PID" 2>/dev/null || true
    else
        wait "$OMSD_PID" || STOP_RC=$?
    fi
    STOP_SECS=$(py "print('%.2f' % (($(ns) - $t0) / 1e9))")
    OMSD_PID=""
}

omsd_alive() {
    if ! kill -0 "$OMSD_PID" 2>/dev/null; then
        local rc=0
        wait "$OMSD_PID" || rc=$?
        say "FAILED: omsd died (exit status $rc) during $1; last log lines:"
        tail -5 "$T"/*.log | sed 's/^/gateway:   /'
        OMSD_PID=""
        exit 1
    fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$OMSD_PID/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$OMSD_PID/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$OMSD_PID/status"; }
metric() { # NAME -> sum over its label sets
    curl -sf "$BASE/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%d\n", s}'
}
TICK=$(getconf CLK_TCK)

wait_ready() { # FILE SECONDS
    local i
    for i in $(seq $(($2 * 10))); do
        [ -f "$1" ] && return 0
        kill -0 "$LOAD_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# run_load NAME SECONDS OPTIONS... : starts oms-wsload in the background
run_load() {
    local name=$1 secs=$2
    shift 2
    rm -f "$T/$name.ready"
    $LOAD --url "$URL" --duration "$secs" --ready-file "$T/$name.ready" --json "$@" \
        >"$T/$name.json" 2>"$T/$name.err" &
    LOAD_PID=$!
}

finish_load() { # wait for the tool; a non-zero status (not all connected) is reported, not fatal
    wait "$LOAD_PID" || true
    LOAD_PID=""
}

USERS=$((CLIENTS < 50 ? CLIENTS : 50))

# produce NAME OPTIONS... : oms-producer simulate on our topics, summary in $T/NAME.summary
produce() {
    local name=$1
    shift
    OMS_CONFIG=$T/fanout.yaml timeout 120 $BIN/oms-producer simulate --users "$USERS" --seed 7 \
        --json-summary "$@" >"$T/$name.summary" 2>"$T/$name.perr"
}

# deliveries the clients should get from a run: orders and system notifications
# go to every client, a user notification to the one client with that user id
expected() {
    py 'import json,sys
s = json.load(open(sys.argv[1]))["byType"]; n = int(sys.argv[2])
print((s.get("OrderCreated", 0) + s.get("OrderStatusChanged", 0) + s.get("SystemNotification", 0)) * n
      + s.get("UserNotification", 0))' "$1" "$CLIENTS"
}

# ---- 1. throughput ------------------------------------------------------------------
start_omsd fanout 262144
run_load tp 150 --connections "$CLIENTS" --subscribe orders --quiet-exit 3 --ramp-per-sec 2000
wait_ready "$T/tp.ready" 30 || { say "FAILED: clients not ready: $(cat "$T/tp.err")"; exit 1; }
d0=$(metric oms_events_delivered_total)
c0=$(cpu_ticks)
t0=$(ns)
produce tp --rate max --count "$EVENTS" --duration 60
tp_prod=$(($(ns) - t0))
finish_load
omsd_alive "the throughput run"
c1=$(cpu_ticks)
d1=$(metric oms_events_delivered_total)
tp_rss=$(rss_kb)
tp_hwm=$(hwm_kb)
tp_drop=$(metric oms_events_dropped_total)
tp_ovf=$(metric oms_queue_overflow_closes_total)
tp_exp=$(expected "$T/tp.summary")
tp_ev=$(jget "$T/tp.json" 'j["events"]')
tp_win=$(jget "$T/tp.json" 'j["window_s"]')
tp_rate=$(jget "$T/tp.json" 'int(j["events_per_s"])')
tp_conn=$(jget "$T/tp.json" 'j["connected"]')
tp_closed=$(jget "$T/tp.json" 'j["closed_by_server"]')
tp_codes=$(jget "$T/tp.json" 'j["close_codes"]')
sent=$(jget "$T/tp.summary" 'j["delivered"]')
prod_rate=$(py "print(int($sent / ($tp_prod / 1e9)))")
say "throughput: $CLIENTS clients subscribed to all orders ($tp_conn connected), $sent events produced at --rate max ($prod_rate events/s incl. start-up)"
say "throughput: clients received $tp_ev of $tp_exp expected deliveries in ${tp_win} s (first to last)"
py "
d = $d1 - $d0; w = $tp_win; cpu = ($c1 - $c0) / $TICK
print('gateway: throughput: %d deliveries/s at the clients, %d/s by omsd /metrics (%d frames) — target >= 500000' % ($tp_rate, d / w if w else 0, d))
print('gateway: throughput: omsd CPU %.1f s = %.0f%% of one core over the delivery window, %.2f us CPU per delivery' % (cpu, 100 * cpu / w if w else 0, 1e6 * cpu / d if d else 0))
"
say "throughput: omsd RSS $((tp_rss / 1024)) MiB after the run, peak $((tp_hwm / 1024)) MiB (queue_limit 262144)"
[ "$tp_ev" = "$tp_exp" ] || note "throughput: clients got $tp_ev deliveries, $tp_exp expected"
[ "$tp_drop" = 0 ] && [ "$tp_ovf" = 0 ] && [ "$tp_closed" = 0 ] ||
    note "throughput: dropped $tp_drop, overflow closes $tp_ovf, closed by server $tp_closed $tp_codes"

# ---- 2. latency ---------------------------------------------------------------------
lat_run() { # NAME RATE
    local name=$1 rate=$2 d0 d1
    run_load "$name" $((LAT_SECS + 40)) --connections "$CLIENTS" --subscribe orders --quiet-exit 3 --ramp-per-sec 2000
    wait_ready "$T/$name.ready" 30 || { say "FAILED: clients not ready: $(cat "$T/$name.err")"; exit 1; }
    produce "$name" --rate "$rate" --duration "$LAT_SECS"
    finish_load
    omsd_alive "the latency run"
    py "
import json
j = json.loads(open('$T/$name.json').read().strip().splitlines()[-1]); l = j['latency_ms']
s = json.load(open('$T/$name.summary'))
print('gateway: latency: %d events/s produced for %d s -> %d deliveries/s to %d clients: p50 %.1f ms, p90 %.1f, p99 %.1f, max %.1f (target p99 <= 10 ms at 250000/s)'
      % (s['rate'], $LAT_SECS, j['events_per_s'], j['connected'], l['p50'], l['p90'], l['p99'], l['max']))
if j['closed_by_server'] or j['connect_failures']:
    print('gateway: note: latency: closed %d %s, failed %d %s' % (j['closed_by_server'], j['close_codes'], j['connect_failures'], j['errors']))
"
}
lat_run lat "$LAT_RATE"
lat_run lat-light $((LAT_RATE / 4))

# ---- 3. idle memory ------------------------------------------------------------------
stop_omsd
[ "$STOP_RC" = 0 ] || note "omsd (fanout run) exited with status $STOP_RC after SIGTERM ($STOP_SECS s)"
start_omsd idle 4096
sleep 1
rss0=$(rss_kb)
run_load idle 150 --connections "$IDLE" --idle --ramp-per-sec 2000 --max-pending 256
if wait_ready "$T/idle.ready" 60; then :; else note "idle: not every connection settled within 60 s"; fi
sleep 2
omsd_alive "the idle run"
rss1=$(rss_kb)
open_srv=$(metric oms_connections)
stop_omsd
finish_load
idle_conn=$(jget "$T/idle.json" 'j["connected"]')
idle_fail=$(jget "$T/idle.json" 'j["connect_failures"]')
idle_err=$(jget "$T/idle.json" 'j["errors"]')
idle_codes=$(jget "$T/idle.json" 'j["close_codes"]')
idle_ready=$(jget "$T/idle.json" 'j["ready_s"]')
py "
c = $open_srv or 1
print('gateway: idle: %d connections open at omsd (%d asked, %d connected in %.1f s, %d failed): RSS %.1f -> %.1f MiB = %.2f KB per idle connection (target <= 4 KB)'
      % ($open_srv, $IDLE, $idle_conn, $idle_ready, $idle_fail, $rss0 / 1024, $rss1 / 1024, ($rss1 - $rss0) / c))
"
[ "$idle_conn" -ge "$IDLE" ] || note "idle: only $idle_conn of $IDLE reached; failures: $idle_err (fd limit here: $(ulimit -n))"
say "shutdown: SIGTERM with $open_srv clients open: omsd exited with status $STOP_RC in $STOP_SECS s; clients saw close codes $idle_codes"
