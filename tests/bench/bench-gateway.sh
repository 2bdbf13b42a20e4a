#!/usr/bin/env bash
# omsd's WebSocket fan-out, measured with oms-load (one process, many
# connections; BENCH_LOADERS processes share the clients) against a release
# omsd started here on its own topics and port:
#   1. throughput: BENCH_CLIENTS admin clients subscribed to all orders,
#      oms-producer simulate --rate max --count BENCH_GATEWAY_EVENTS
#      -> deliveries/s (client side and omsd's /metrics), omsd CPU and RSS
#   2. latency: the same clients, the producer at BENCH_LATENCY_RATE events/s
#      for BENCH_LATENCY_SECONDS, then a lighter point at a quarter of it
#      -> produce-to-receive p50/p99 (occurredAt has ms resolution: +0..1 ms)
#   3. idle memory: BENCH_IDLE idle connections to a fresh omsd with the
#      shipped defaults -> omsd RSS per connection; the light latency point
#      again with those connections attached (they get system notifications
#      only); then SIGTERM with all of them open (clients must see 1001, omsd
#      must exit 0)
# BENCH_FORMAT=soe|confluent|json: the wire format the producer writes (the
# Confluent one through SCHEMA_REGISTRY_URL, which omsd reads too).
# Loopback only, every step time-bounded (about 2 minutes here, at most ~5).
set -eu
cd "$(dirname "$0")/../.."
CLIENTS=${BENCH_CLIENTS:-200}
IDLE=${BENCH_IDLE:-10000}
EVENTS=${BENCH_GATEWAY_EVENTS:-200000}
LAT_RATE=${BENCH_LATENCY_RATE:-2000}
LAT_SECS=${BENCH_LATENCY_SECONDS:-10}
# one load process per two spare CPUs: on a 2-CPU machine a second one only
# takes CPU from omsd (measured: same rate, worse latency)
LOADERS=${BENCH_LOADERS:-$(($(nproc) > 4 ? 2 : 1))}
BIN=build/bin
LOAD=build/tests/tools/oms-load
T=build/bench/gateway
rm -rf "$T"
mkdir -p "$T"
for f in "$BIN/omsd" "$BIN/omsctl" "$BIN/oms-producer" "$LOAD"; do
    [ -x "$f" ] || { echo "gateway: $f is missing: run 'make all tools'" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# a 40-character secret shared by omsd and the load tool (kept off command lines)
JWT_SECRET=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
export JWT_SECRET
say() { echo "gateway: $*"; }
note() { echo "gateway: note: $*"; }
ns() { date +%s%N; }
py() { python3 -c "$@"; }
jget() { # FILE EXPR(j) -> value
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
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
LOAD_PIDS=()
IDLE_PIDS=()
SAMPLER_PID=""
cleanup() {
    local p
    for p in "${LOAD_PIDS[@]}" "${IDLE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "$SAMPLER_PID" ] && touch "$T/stop-sampler"
    if [ -n "$OMSD_PID" ] && kill -0 "$OMSD_PID" 2>/dev/null; then
        kill -TERM "$OMSD_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$OMSD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$OMSD_PID" 2>/dev/null
    fi
    [ -x build/tests/tools/oms-topics-drop ] && timeout 30 build/tests/tools/oms-topics-drop "$P" >/dev/null 2>&1 || true # its topics
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
  max_connections_per_address: 0
kafka:
  topics: {orders: $P.orders, inventory: $P.inventory, notifications: $P.notifications, dlq: $P.dlq, presence: $P.presence}
projections: {enabled: false}
log: {format: json}
YAML
    for try in $(seq 1 15); do
        OMS_CONFIG=$T/$name.yaml $BIN/omsd >"$T/$name.log" 2>&1 &
        OMSD_PID=$!
        for _ in $(seq 100); do
            kill -0 "$OMSD_PID" 2>/dev/null || break
            if curl -sf -o /dev/null "$BASE/websocket/health"; then
                [ "$try" -eq 1 ] ||
                    note "omsd ($name) started at attempt $try; it exited before: $(cat "$T/$name.failed")"
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
        # fresh topics may have no leader yet, and omsd then exits: try again
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
# machine-wide CPU: "busy total" jiffies; busy_pct A B -> percent busy between two
cpu_stat() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }
busy_pct() { py "a = '$1'.split(); b = '$2'.split(); print('%.0f' % (100 * (int(b[0]) - int(a[0])) / max(1, int(b[1]) - int(a[1]))))"; }

# sample omsd every 0.25 s: "ns delivered cpu_ticks rss_kb" lines in $T/NAME.samples
start_sampler() {
    local out=$T/$1.samples
    (
        while [ ! -f "$T/stop-sampler" ] && kill -0 "$OMSD_PID" 2>/dev/null; do
            echo "$(ns) $(metric oms_events_delivered_total) $(cpu_ticks) $(rss_kb)" >>"$out"
            sleep 0.25
        done
    ) &
    SAMPLER_PID=$!
}
stop_sampler() {
    touch "$T/stop-sampler"
    wait "$SAMPLER_PID" 2>/dev/null || true
    rm -f "$T/stop-sampler"
    SAMPLER_PID=""
}

# run_load NAME SECONDS CONNECTIONS OPTIONS... : LOADERS oms-load processes
# in the background sharing CONNECTIONS (user ids FIRST_UID.., default 1..)
FIRST_UID=1
run_load() {
    local name=$1 secs=$2 n=$3 i first=$FIRST_UID share
    shift 3
    LOAD_PIDS=()
    for i in $(seq 1 "$LOADERS"); do
        share=$((n / LOADERS + (i <= n % LOADERS ? 1 : 0)))
        [ "$share" -gt 0 ] || continue
        $LOAD --url "$URL" --duration "$secs" --connections "$share" --first-user-id "$first" \
            --ready-file "$T/$name.$i.ready" --json "$@" >"$T/$name.$i.json" 2>"$T/$name.$i.err" &
        LOAD_PIDS+=($!)
        first=$((first + share))
    done
}

wait_ready() { # NAME SECONDS: every loader ready
    local name=$1 i k
    for _ in $(seq $(($2 * 10))); do
        k=0
        for i in $(seq 1 ${#LOAD_PIDS[@]}); do [ -f "$T/$name.$i.ready" ] && k=$((k + 1)); done
        [ "$k" -eq ${#LOAD_PIDS[@]} ] && return 0
        sleep 0.1
    done
    return 1
}

# wait for the loaders (a non-zero status, not all connected, is reported, not
# fatal) and merge their results into $T/NAME.json
finish_load() {
    local name=$1 p
    for p in "${LOAD_PIDS[@]}"; do wait "$p" || true; done
    LOAD_PIDS=()
    python3 - "$T" "$name" <<'PY'
import glob, json, sys
T, name = sys.argv[1:]
runs = []
for f in sorted(glob.glob("%s/%s.*.json" % (T, name))):
    txt = open(f).read().strip()
    if not txt:
        sys.exit("gateway: %s is empty: %s" % (f, open(f[:-5] + ".err").read().strip()))
    runs.append(json.loads(txt.splitlines()[-1]))
m = {}
for k in ("connections", "connected", "subscribed", "connect_failures", "closed_by_server",
          "events", "error_frames", "cpu_s", "latency_over_30s"):
    m[k] = sum(r[k] for r in runs)
for k in ("close_codes", "errors", "by_event"):
    d = {}
    for r in runs:
        for a, b in r[k].items():
            d[a] = d.get(a, 0) + b
    m[k] = d
m["ready_s"] = max(r["ready_s"] for r in runs)
m["per_connection_min"] = min(r["per_connection_min"] for r in runs)
m["per_connection_max"] = max(r["per_connection_max"] for r in runs)
firsts = [r["first_event_unix_ms"] for r in runs if r["events"]]
lasts = [r["last_event_unix_ms"] for r in runs if r["events"]]
m["window_s"] = (max(lasts) - min(firsts)) / 1000 if firsts else 0
m["events_per_s"] = m["events"] / m["window_s"] if m["window_s"] else 0
hist = {}
for r in runs:
    for edge, n in r["latency_hist_us"]:
        hist[edge] = hist.get(edge, 0) + n
mx = max(r["latency_max_us"] for r in runs)
total = sum(hist.values()) + m["latency_over_30s"]
def pct(q):
    if not total:
        return 0.0
    rank, seen = min(int(q * total), total - 1), 0
    for edge in sorted(hist):
        seen += hist[edge]
        if seen > rank:
            return min(edge, mx) / 1000
    return mx / 1000
m["latency_ms"] = {"p50": pct(.5), "p90": pct(.9), "p99": pct(.99), "p999": pct(.999), "max": mx / 1000}
m["loaders"] = len(runs)
json.dump(m, open("%s/%s.json" % (T, name), "w"))
PY
}

USERS=$((CLIENTS < 50 ? CLIENTS : 50))

# produce NAME OPTIONS... : oms-producer simulate on our topics, summary in $T/NAME.summary
produce() {
    local name=$1
    shift
    OMS_CONFIG=$T/fanout.yaml timeout 120 $BIN/oms-producer simulate --users "$USERS" --seed 7 \
        --format "${BENCH_FORMAT:-soe}" --json-summary "$@" >"$T/$name.summary" 2>"$T/$name.perr"
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
run_load tp 120 "$CLIENTS" --subscribe orders --quiet-exit 5 --ramp-per-sec 2000
wait_ready tp 30 || { say "FAILED: clients not ready: $(cat "$T"/tp.*.err)"; exit 1; }
start_sampler tp
t0=$(ns)
m0=$(cpu_stat)
produce tp --rate max --count "$EVENTS" --duration 60
tp_prod=$(($(ns) - t0))
finish_load tp
tp_busy=$(busy_pct "$m0" "$(cpu_stat)")
stop_sampler
omsd_alive "the throughput run"
python3 - "$T" "$CLIENTS" "$tp_prod" "$(expected "$T/tp.summary")" "$TICK" "$(hwm_kb)" \
    "$(metric oms_events_dropped_total)" "$(metric oms_queue_overflow_closes_total)" "$tp_busy" <<'PY'
import json, os, sys
T, clients, prod_ns, exp, tick, hwm, drop, ovf, busy = sys.argv[1:]
j = json.load(open(T + "/tp.json"))
s = json.load(open(T + "/tp.summary"))
rows = [list(map(int, l.split())) for l in open(T + "/tp.samples") if len(l.split()) == 4]
say = lambda m: print("gateway: throughput: " + m)
say("%s admin clients subscribed to all orders (%d connected, %d load processes); %d events produced at --rate max in %.1f s"
    % (clients, j["connected"], j["loaders"], s["delivered"], int(prod_ns) / 1e9))
say("clients received %d of %s expected deliveries in %.1f s (first to last): %d deliveries/s (target >= 500000)"
    % (j["events"], exp, j["window_s"], j["events_per_s"]))
# omsd's side: from the last sample before its counter moved to the last that moved
moving = [i for i in range(1, len(rows)) if rows[i][1] != rows[i - 1][1]]
if moving:
    a, b = rows[moving[0] - 1], rows[moving[-1]]
    secs = (b[0] - a[0]) / 1e9; d = b[1] - a[1]; cpu = (b[2] - a[2]) / int(tick)
    say("omsd /metrics: %d frames delivered in %.1f s = %d deliveries/s" % (d, secs, d / secs))
    say("omsd CPU %.1f s = %.0f%% of one core while delivering, %.2f us per delivery (%d deliveries per omsd CPU-second)"
        % (cpu, 100 * cpu / secs, 1e6 * cpu / d, d / cpu if cpu else 0))
    lc = 100 * j["cpu_s"] / j["window_s"] if j["window_s"] else 0
    say("the load processes used %.1f s of CPU (%.0f%% of one core over the window); the %d-CPU machine was %s%% busy"
        % (j["cpu_s"], lc, os.cpu_count(), busy))
say("omsd RSS peak %d MiB, %d MiB at the end (queue_limit 262144); each client got %d..%d events"
    % (int(hwm) // 1024, rows[-1][3] // 1024, j["per_connection_min"], j["per_connection_max"]))
if str(j["events"]) != exp or drop != "0" or ovf != "0" or j["closed_by_server"]:
    print("gateway: note: throughput: received %d of %s; dropped %s, overflow closes %s, closed by server %d %s"
          % (j["events"], exp, drop, ovf, j["closed_by_server"], j["close_codes"]))
PY

# ---- 2. latency ---------------------------------------------------------------------
lat_run() { # NAME RATE [LABEL]
    local name=$1 rate=$2
    run_load "$name" $((LAT_SECS + 40)) "$CLIENTS" --subscribe orders --quiet-exit 5 --ramp-per-sec 2000
    wait_ready "$name" 30 || { say "FAILED: clients not ready: $(cat "$T/$name".*.err)"; exit 1; }
    local m0 busy
    m0=$(cpu_stat)
    produce "$name" --rate "$rate" --duration "$LAT_SECS"
    busy=$(busy_pct "$m0" "$(cpu_stat)")
    finish_load "$name"
    omsd_alive "the latency run"
    python3 - "$T" "$name" "$LAT_SECS" "$(expected "$T/$name.summary")" "$busy" "${3:-}" <<'PY'
import json, os, sys
T, name, secs, exp, busy, extra = sys.argv[1:]
j = json.load(open("%s/%s.json" % (T, name))); l = j["latency_ms"]
s = json.load(open("%s/%s.summary" % (T, name)))
print("gateway: latency" + extra + ": %d events/s produced for %s s -> %d deliveries/s to %d clients: p50 %.1f ms, p90 %.1f, p99 %.1f, max %.1f (target p99 <= 10 ms at 250000/s)"
      % (s["rate"], secs, j["events_per_s"], j["connected"], l["p50"], l["p90"], l["p99"], l["max"]))
print("gateway: latency:   (the %d-CPU machine was %s%% busy meanwhile)" % (os.cpu_count(), busy))
if str(j["events"]) != exp:
    print("gateway: note: latency: received %d of %s expected" % (j["events"], exp))
if j["closed_by_server"] or j["connect_failures"]:
    print("gateway: note: latency: closed %d %s, failed %d %s"
          % (j["closed_by_server"], j["close_codes"], j["connect_failures"], j["errors"]))
PY
}
lat_run lat "$LAT_RATE"
lat_run lat-light $((LAT_RATE / 4))
linger=$(grep -A1 '"linger.ms"' pkg/kafka/kafka.c | grep -o '"[0-9]*"' | tr -d '"' | head -1)
note "latency = receive time - occurredAt: the producer's batching (linger.ms ${linger:-?}), Kafka, omsd and the client; occurredAt is truncated to ms (+0..1 ms)"

# ---- 3. idle memory ------------------------------------------------------------------
stop_omsd
[ "$STOP_RC" = 0 ] || note "omsd (fanout run) exited with status $STOP_RC after SIGTERM ($STOP_SECS s)"
start_omsd idle 4096
sleep 1
rss0=$(rss_kb)
FIRST_UID=$((CLIENTS + 1))
run_load idle 150 "$IDLE" --idle --ramp-per-sec $((2000 / LOADERS + 1)) --max-pending 256
FIRST_UID=1
wait_ready idle 60 || note "idle: not every connection settled within 60 s"
sleep 2
omsd_alive "the idle run"
rss1=$(rss_kb)
open_srv=$(metric oms_connections)
IDLE_PIDS=("${LOAD_PIDS[@]}")
lat_run lat-idle $((LAT_RATE / 4)) " with $open_srv idle connections attached"
stop_omsd
LOAD_PIDS=("${IDLE_PIDS[@]}")
IDLE_PIDS=()
finish_load idle
python3 - "$T" "$IDLE" "$rss0" "$rss1" "$open_srv" "$STOP_RC" "$STOP_SECS" "$(ulimit -n)" <<'PY'
import json, sys
T, want, rss0, rss1, open_srv, rc, secs, fds = sys.argv[1:]
j = json.load(open(T + "/idle.json"))
n = int(open_srv)
print("gateway: idle: %d connections open at omsd (%s asked, %d connected in %.1f s, %d failed): RSS %.1f -> %.1f MiB = %.2f KB per idle connection (target <= 4 KB)"
      % (n, want, j["connected"], j["ready_s"], j["connect_failures"], int(rss0) / 1024, int(rss1) / 1024,
         (int(rss1) - int(rss0)) / n if n else 0))
if j["connected"] < int(want):
    print("gateway: note: idle: only %d of %s reached (file descriptors here: %s); failures: %s"
          % (j["connected"], want, fds, j["errors"]))
print("gateway: shutdown: SIGTERM with %d clients open: omsd exited with status %s in %s s; clients saw close codes %s"
      % (n, rc, secs, j["close_codes"]))
PY
