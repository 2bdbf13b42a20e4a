#!/usr/bin/env bash
# omsd against a peer (issue #16): omsd and Centrifugo v6.9.1 one after the
# other under the same load, measured the same way.
#
#   the same events: oms-producer simulate --seed 7 at the same rate; Avro to
#     omsd's topics, and for Centrifugo the same events as JSON (simulate
#     --dry-run --print | oms-jsonpub) on a topic its Kafka consumer reads in
#     publication data mode, the channel in a record header (orders,
#     inventory, system, user.N)
#   the same clients: oms-load, admins subscribed to orders and inventory
#     (PEERS_SUBSCRIBE=all, the default; =orders for orders alone) (omsd:
#     every connection also gets system notifications; Centrifugo: channels
#     orders, inventory and system), spread over several processes and source
#     addresses when there are many
#   compression (PEERS_COMPRESSION: both, the default, on or off): with it
#     on, the clients offer permessage-deflate (oms-load --compress) and each
#     server accepts it: omsd with server.compression: true (each event
#     deflated once for every connection, frames under its
#     compression_min_bytes, 256, sent as they are; zlib level 6), Centrifugo
#     with websocket.compression (deflated per connection, at
#     websocket.compression_level PEERS_CENTRIFUGO_LEVEL, default 1, its own
#     default, and websocket.compression_min_size PEERS_CENTRIFUGO_MIN_SIZE,
#     default 256 like omsd's); off, neither offers nor accepts it (omsd's
#     server.compression set to false explicitly)
#   the same deliveries/s at every connection count (PEERS_DELIVERIES,
#     default 20,000: the producer's rate is chosen so), for PEERS_SECONDS
#
# For each N in PEERS_CONNS, each compression mode and each server (omsd,
# then Centrifugo, one after the other in the same run): server CPU µs per
# delivery (utime+stime from /proc/PID/stat over a steady window ÷ the
# deliveries the clients counted in it), bytes on the wire per delivery (what
# TCP handed the clients from the producer's start to the end of the run,
# TCP_INFO's bytes received: frame headers, compressed payloads, pings, ÷ the
# deliveries meanwhile) and the payload bytes per delivery after inflating,
# RSS per connection (RSS with the N
# clients connected and subscribed, before any event, minus RSS before they
# connected, ÷ N), produce-to-receive p50/p99, the load average meanwhile,
# and the ratios omsd/Centrifugo of CPU and of bytes.
# Then, compression off, the highest deliveries/s of each (PEERS_MAX_CONNS
# clients, a burst of PEERS_MAX_EVENTS events at --rate max read from Kafka
# as fast as the server goes; 0 skips it) and omsd's RSS per idle connection
# at PEERS_IDLE (0 skips it).
#
# Time: each steady run takes about 15 s + PEERS_SECONDS + N / 2,000 s; the
# default (3 counts x 2 modes x 2 servers at 20 s, the max and idle runs)
# about 10 minutes.
#
# Limits of this machine are reported, not hidden: a process here may hold
# at most `ulimit -Hn` descriptors, so a server cannot hold more connections
# than that; a larger N is measured at that limit instead, with a note.
#
# Loopback only; every step is bounded in time; everything started here is
# stopped here. Results: build/bench/peers/results.jsonl and the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
read -r -a CONNS <<<"${PEERS_CONNS-1000 10000 50000}"
read -r -a SERVERS <<<"${PEERS_SERVERS-omsd centrifugo}"
case ${PEERS_COMPRESSION:-both} in
both) MODES=(off on) ;;
on | off) MODES=("$PEERS_COMPRESSION") ;;
*) echo "peers: PEERS_COMPRESSION must be both, on or off, not '$PEERS_COMPRESSION'" >&2; exit 2 ;;
esac
SUBSCRIBE=${PEERS_SUBSCRIBE:-all}
case $SUBSCRIBE in
all | orders) ;;
*) echo "peers: PEERS_SUBSCRIBE must be all or orders, not '$SUBSCRIBE'" >&2; exit 2 ;;
esac
CENTRIFUGO_COMPRESSION_LEVEL=${PEERS_CENTRIFUGO_LEVEL:-1}
CENTRIFUGO_COMPRESSION_MIN_SIZE=${PEERS_CENTRIFUGO_MIN_SIZE:-256}
export CENTRIFUGO_COMPRESSION_LEVEL CENTRIFUGO_COMPRESSION_MIN_SIZE
DELIVERIES=${PEERS_DELIVERIES:-20000}
SECS=${PEERS_SECONDS:-20}
MAX_CONNS=${PEERS_MAX_CONNS:-1000}
MAX_EVENTS=${PEERS_MAX_EVENTS:-5000}
IDLE=${PEERS_IDLE:-100000}
PER_LOADER=${PEERS_PER_LOADER:-15000} # connections per load process
PER_SOURCE=25000                      # connections per source address
BIN=build/bin
LOAD=build/tests/tools/oms-load
PUB=build/tests/tools/oms-jsonpub
T=build/bench/peers
rm -rf "$T"
mkdir -p "$T"
for f in "$BIN/omsd" "$BIN/omsctl" "$BIN/oms-producer" "$LOAD" "$PUB"; do
    [ -x "$f" ] || { echo "peers: $f is missing: run 'make all tools'" >&2; exit 2; }
done
[[ $SECS =~ ^[0-9]+$ ]] && [ "$SECS" -ge 10 ] || { echo "peers: PEERS_SECONDS must be at least 10" >&2; exit 2; }
for n in "${CONNS[@]}"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "peers: PEERS_CONNS wants connection counts, not '$n'" >&2; exit 2; }
done
say() { echo "peers: $*"; }
note() { echo "peers: note: $*"; }
ns() { date +%s%N; }
ms() { echo $(($(date +%s%N) / 1000000)); }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

CENTRIFUGO=""
for s in "${SERVERS[@]}"; do
    case $s in
    omsd) ;;
    centrifugo) CENTRIFUGO=$(bash tests/bench/centrifugo.sh install) ;;
    *) echo "peers: unknown server '$s' in PEERS_SERVERS (omsd, centrifugo)" >&2; exit 2 ;;
    esac
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
# a 40-character secret shared by the servers and the load tool (kept off command lines)
JWT_SECRET=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
export JWT_SECRET
BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}
TICK=$(getconf CLK_TCK)

free_port() { # FROM TO
    local p
    for p in $(seq "$1" "$2"); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}
PORT=$(free_port "${PEERS_PORT:-3800}" 3899) || { echo "peers: no free port in 3800..3899" >&2; exit 1; }

# omsd's topics (Avro), and one JSON topic per Centrifugo start: a new
# consumer group starts at the beginning of its topic, so each start gets a
# fresh one rather than the records of the runs before
P="oms-bench-peers-$RANDOM$RANDOM"
cat >"$T/topics.yaml" <<YAML
defaults: {partitions: 6, replication_factor: 1}
topics:
  - {name: $P.orders}
  - {name: $P.inventory}
  - {name: $P.notifications}
  - {name: $P.dlq}
YAML
$BIN/omsctl topics create --file "$T/topics.yaml" >"$T/topics.out"
JSON_TOPICS=0

SRV_PID=""
SRV_KIND=""
COMP=off # the compression mode of the run under way
OMSD_CONF=""
LOAD_PIDS=()
cleanup() {
    local p
    for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill -TERM "$SRV_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
    [ -x build/tests/tools/oms-topics-drop ] && timeout 30 build/tests/tools/oms-topics-drop "$P" >/dev/null 2>&1 || true # its topics
    return 0
}
trap cleanup EXIT

# omsd's service threads: `server.threads` if this omsd knows the key
THREADS_LINE=""
cat >"$T/threads.yaml" <<YAML
server: {threads: 2}
YAML
if OMS_CONFIG=$T/threads.yaml JWT_SECRET=$JWT_SECRET $BIN/omsd -t >/dev/null 2>&1; then
    THREADS_LINE="  threads: 2"
    OMSD_THREADS=2
else
    OMSD_THREADS=1
fi

start_omsd() { # NAME
    local name=$1 try
    cat >"$T/$name.yaml" <<YAML
server:
  host: "127.0.0.1"
  port: $PORT
  queue_limit: 262144
  max_connections_per_address: 0
  max_unauthenticated_sessions: 1000000
  compression: $([ "$COMP" = on ] && echo true || echo false)
$THREADS_LINE
kafka:
  topics: {orders: $P.orders, inventory: $P.inventory, notifications: $P.notifications, dlq: $P.dlq, presence: $P.presence}
projections: {enabled: false}
log: {format: json}
YAML
    OMSD_CONF=$T/$name.yaml
    for try in $(seq 1 15); do
        OMS_CONFIG=$T/$name.yaml $BIN/omsd >"$T/$name.log" 2>&1 &
        SRV_PID=$!
        for _ in $(seq 100); do
            kill -0 "$SRV_PID" 2>/dev/null || break
            curl -sf -o /dev/null "http://127.0.0.1:$PORT/websocket/health" && return 0
            sleep 0.1
        done
        if kill -0 "$SRV_PID" 2>/dev/null; then
            say "FAILED: omsd ($name) not healthy after 10 s: $(tail -3 "$T/$name.log")"
            exit 1
        fi
        wait "$SRV_PID" || true # fresh topics may have no leader yet: try again
        SRV_PID=""
        sleep 1
    done
    say "FAILED: omsd ($name) would not start: $(tail -3 "$T/$name.log")"
    exit 1
}

start_centrifugo() { # NAME
    local name=$1
    JSON_TOPICS=$((JSON_TOPICS + 1))
    JSON_TOPIC=$P.json$JSON_TOPICS
    printf 'defaults: {partitions: 6, replication_factor: 1}\ntopics:\n  - {name: %s}\n' \
        "$JSON_TOPIC" >"$T/$name.topics.yaml"
    $BIN/omsctl topics create --file "$T/$name.topics.yaml" >>"$T/topics.out"
    bash tests/bench/centrifugo.sh config "$PORT" "$BROKERS" "$JSON_TOPIC" "$P-$name" "$COMP" >"$T/conf-$name.json"
    # GOMAXPROCS defaults to the cores: Centrifugo uses both
    "$CENTRIFUGO" --config "$T/conf-$name.json" >"$T/$name.log" 2>&1 &
    SRV_PID=$!
    for _ in $(seq 100); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    say "FAILED: Centrifugo ($name) not listening after 10 s: $(tail -3 "$T/$name.log")"
    exit 1
}

start_server() { # KIND NAME
    SRV_KIND=$1
    case $1 in
    omsd) start_omsd "$2" ;;
    centrifugo) start_centrifugo "$2" ;;
    esac
}

stop_server() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
}

server_alive() { # WHEN
    kill -0 "$SRV_PID" 2>/dev/null && return 0
    say "FAILED: $SRV_KIND died during $1: $(tail -3 "$T"/*.log | tail -3)"
    SRV_PID=""
    exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SRV_PID/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SRV_PID/status"; }

url() {
    case $SRV_KIND in
    omsd) echo "ws://127.0.0.1:$PORT/events" ;;
    centrifugo) echo "ws://127.0.0.1:$PORT/connection/websocket" ;;
    esac
}
proto() { [ "$SRV_KIND" = omsd ] && echo plain || echo centrifugo; }

# produce RATE SECONDS [COUNT] -> $T/NAME.summary: the same events for
# either server, Avro to omsd's topics or JSON to Centrifugo's
produce() {
    local name=$1 rate=$2 secs=$3 count=${4:-}
    local extra=()
    [ -z "$count" ] || extra=(--count "$count")
    if [ "$SRV_KIND" = omsd ]; then
        OMS_CONFIG=$OMSD_CONF timeout $((secs + 60)) $BIN/oms-producer simulate --users 50 --seed 7 --rate "$rate" \
            --duration "$secs" "${extra[@]}" --json-summary >"$T/$name.summary" 2>"$T/$name.perr"
    else
        # line-buffered, so each event reaches Kafka when simulate paces it
        timeout $((secs + 60)) stdbuf -oL $BIN/oms-producer simulate --dry-run --print --users 50 \
            --seed 7 --rate "$rate" --duration "$secs" "${extra[@]}" 2>"$T/$name.perr" |
            tee "$T/$name.events.jsonl" | timeout $((secs + 60)) $PUB --topic "$JSON_TOPIC" --brokers "$BROKERS" 2>"$T/$name.summary"
    fi
}

# the server's Kafka consumer must be assigned and reading before anything
# is measured: one client waits for one event while events flow for 5 s
warm_up() {
    local name=$1
    $LOAD --protocol "$(proto)" --url "$(url)" --connections 1 --first-user-id 999999 \
        --expect 1 --duration 30 --json >"$T/warm-$name.json" 2>"$T/warm-$name.err" &
    local probe=$!
    sleep 1
    produce "warm-$name" 20 5 || true
    local ok=0
    for _ in $(seq 250); do kill -0 "$probe" 2>/dev/null || { ok=1; break; }; sleep 0.1; done
    [ "$ok" = 1 ] || kill "$probe" 2>/dev/null || true
    wait "$probe" 2>/dev/null || true
    grep -q '"events":[1-9]' "$T/warm-$name.json" || {
        say "FAILED: $SRV_KIND delivered nothing in the warm-up: $(cat "$T/warm-$name.err") $(tail -3 "$T/$name.log")"
        exit 1
    }
}

# connect NAME N [OPTIONS...]: N clients over ceil(N / PER_LOADER) processes,
# offering permessage-deflate when the run's compression is on
connect() {
    local name=$1 n=$2 i first=1 share loaders sources
    shift 2
    [ "$COMP" = off ] || set -- "$@" --compress
    loaders=$(((n + PER_LOADER - 1) / PER_LOADER))
    sources=0
    [ "$n" -le "$PER_SOURCE" ] || sources=$(((n + PER_SOURCE - 1) / PER_SOURCE))
    LOAD_PIDS=()
    for i in $(seq 1 "$loaders"); do
        share=$((n / loaders + (i <= n % loaders ? 1 : 0)))
        $LOAD --protocol "$(proto)" --url "$(url)" --connections "$share" --first-user-id "$first" \
            --source-addresses "$sources" --ramp-per-sec $((3000 / loaders + 1)) --max-pending 256 \
            --ready-file "$T/$name.$i.ready" --progress-file "$T/$name.$i.progress" --json "$@" \
            >"$T/$name.$i.json" 2>"$T/$name.$i.err" &
        LOAD_PIDS+=($!)
        first=$((first + share))
    done
}

wait_ready() { # NAME SECONDS
    local name=$1 i k
    for _ in $(seq $(($2 * 10))); do
        k=0
        for i in $(seq 1 ${#LOAD_PIDS[@]}); do [ -f "$T/$name.$i.ready" ] && k=$((k + 1)); done
        [ "$k" -eq ${#LOAD_PIDS[@]} ] && return 0
        sleep 0.1
    done
    return 1
}

stop_load() {
    local p
    for p in "${LOAD_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    LOAD_PIDS=()
}

# the event types every subscribed client receives (orders, inventory with
# PEERS_SUBSCRIBE=all, and system notifications) and the fraction of
# simulate's events they are, so that the rate gives DELIVERIES/s
EVERY="OrderCreated OrderStatusChanged SystemNotification"
[ "$SUBSCRIBE" = orders ] || EVERY="$EVERY InventoryChanged"
export EVERY
$BIN/oms-producer simulate --dry-run --print --users 50 --seed 7 --rate max --count 20000 \
    2>/dev/null >"$T/mix.jsonl"
FRACTION=$(python3 -c '
import json, os, sys
n = k = 0
for l in open(sys.argv[1]):
    if l.startswith("{"):
        n += 1
        k += json.loads(l)["type"] in os.environ["EVERY"].split()
print("%.4f" % (k / n))' "$T/mix.jsonl")
rm -f "$T/mix.jsonl"

# ---- 1. the same deliveries/s at each connection count ------------------------------
steady() { # KIND N (compression: $COMP)
    local kind=$1 n=$2 name="$1-$2-$COMP"
    local rate
    rate=$(python3 -c "print(max(1, round($DELIVERIES / ($n * $FRACTION))))")
    start_server "$kind" "$name"
    warm_up "$name"
    sleep 1
    local rss0 la0 rss1 t0 ta tb ca cb la1 ready_s
    rss0=$(rss_kb)
    la0=$(loadavg)
    t0=$(ns)
    # the clients outlive connecting (bounded by wait_ready) and the run
    connect "$name" "$n" --subscribe "$SUBSCRIBE" --duration $((SECS + 90 + 2 * n / 500))
    if ! wait_ready "$name" $((60 + n / 500)); then
        # a half-connected run measures nothing comparable: say how far it got
        server_alive "connecting $n clients"
        stop_load
        stop_server
        python3 - "$T" "$name" "$kind" "$n" "$((60 + n / 500))" "$COMP" <<'PY'
import glob, json, sys
T, name, kind, n, secs, comp = sys.argv[1:]
runs = [json.loads(open(f).read().strip().splitlines()[-1]) for f in sorted(glob.glob("%s/%s.*.json" % (T, name)))]
res = {"run": "steady", "server": kind, "connections": int(n), "compression": comp == "on",
       "skipped": "not connected in %s s" % secs,
       "connected": sum(r["connected"] for r in runs), "subscribed": sum(r["subscribed"] for r in runs),
       "errors": [r["errors"] for r in runs if r["errors"]]}
open(T + "/results.jsonl", "a").write(json.dumps(res) + "\n")
print("peers: note: %s at %s connections, compression %s: only %d connected and %d subscribed within %s s (%s); not measured"
      % (kind, n, comp, res["connected"], res["subscribed"], secs, res["errors"]))
PY
        return 0
    fi
    ready_s=$(python3 -c "print('%.1f' % (($(ns) - $t0) / 1e9))")
    server_alive "connecting $n clients"
    sleep 2
    rss1=$(rss_kb)
    local tp
    tp=$(ms)
    produce "$name" "$rate" "$SECS" &
    local prod=$!
    sleep 4
    ca=$(cpu_ticks)
    ta=$(ms)
    sleep $((SECS - 6))
    cb=$(cpu_ticks)
    tb=$(ms)
    la1=$(loadavg)
    wait "$prod" || note "$name: the producer reported a failure: $(tail -2 "$T/$name.perr" "$T/$name.summary")"
    sleep 3
    server_alive "the $name run"
    stop_load
    stop_server
    python3 - "$T" "$name" "$kind" "$n" "$rate" "$rss0" "$rss1" "$ca" "$cb" "$ta" "$tb" "$TICK" \
        "$la0" "$la1" "$ready_s" "$FRACTION" "$COMP" "$tp" <<'PY'
import glob, json, os, sys
T, name, kind, n, rate, rss0, rss1, ca, cb, ta, tb, tick, la0, la1, ready_s, frac, comp, tp = sys.argv[1:]
n, ta, tb, tp = int(n), int(ta), int(tb), int(tp)
runs = [json.loads(open(f).read().strip().splitlines()[-1]) for f in sorted(glob.glob("%s/%s.*.json" % (T, name)))]
def at(rows, t, col):  # column col (events, wire bytes, payload bytes) at time t, interpolated
    for r0, r1 in zip(rows, rows[1:]):
        if r0[0] <= t <= r1[0]:
            return r0[col] + (r1[col] - r0[col]) * (t - r0[0]) / max(1, r1[0] - r0[0])
    return None
# progress lines: UNIX_MS EVENTS OPEN WIRE_BYTES PAYLOAD_BYTES. Bytes are
# taken from just before the producer started to the end of the run, not over
# the CPU window: TCP counts bytes when they arrive, the clients count
# deliveries when they read them, and a client running behind has bytes in
# its socket buffer that it has not read yet (by the end it has read them:
# the run waits for the last deliveries)
window = wire = payload = run_deliveries = 0.0
for f in sorted(glob.glob("%s/%s.*.progress" % (T, name))):
    rows = [tuple(map(int, l.split())) for l in open(f) if len(l.split()) == 5]
    a, b, p = at(rows, ta, 1), at(rows, tb, 1), at(rows, tp, 1)
    if a is None or b is None or p is None:
        print("peers: note: %s: the progress of %s does not cover the window: not measured" % (name, f))
        sys.exit(0)
    window += b - a
    run_deliveries += rows[-1][1] - p
    wire += rows[-1][3] - at(rows, tp, 3)
    payload += rows[-1][4] - at(rows, tp, 4)
secs = (tb - ta) / 1000
cpu = (int(cb) - int(ca)) / int(tick)
hist = {}
for r in runs:
    for edge, c in r["latency_hist_us"]:
        hist[edge] = hist.get(edge, 0) + c
over = sum(r["latency_over_30s"] for r in runs)
mx = max(r["latency_max_us"] for r in runs)
total = sum(hist.values()) + over
def pct(q):
    if not total:
        return 0.0
    rank, seen = min(int(q * total), total - 1), 0
    for edge in sorted(hist):
        seen += hist[edge]
        if seen > rank:
            return min(edge, mx) / 1000
    return mx / 1000
res = {
    "run": "steady", "server": kind, "connections": n, "compression": comp == "on", "rate": int(rate),
    "negotiated": sum(r.get("negotiated", 0) for r in runs),
    "connected": sum(r["connected"] for r in runs), "subscribed": sum(r["subscribed"] for r in runs),
    "closed_by_server": sum(r["closed_by_server"] for r in runs),
    "errors": [r["errors"] for r in runs if r["errors"]],
    "events": sum(r["events"] for r in runs),
    "window_s": secs, "window_deliveries": round(window), "deliveries_per_s": window / secs,
    "cpu_s": cpu, "cpu_us_per_delivery": 1e6 * cpu / window if window else None,
    "cpu_pct": 100 * cpu / secs,
    "wire_bytes_per_delivery": wire / run_deliveries if run_deliveries else None,
    "payload_bytes_per_delivery": payload / run_deliveries if run_deliveries else None,
    "rss0_kb": int(rss0), "rss1_kb": int(rss1), "rss_per_conn_kb": (int(rss1) - int(rss0)) / n,
    "p50_ms": pct(.5), "p99_ms": pct(.99), "max_ms": mx / 1000,
    "load_cpu_s": sum(r["cpu_s"] for r in runs), "loaders": len(runs),
    "loadavg": [la0, la1], "ready_s": float(ready_s),
}
print("peers: %-10s %6d conns, compression %-3s: %5.0f deliveries/s, %6.2f us CPU per delivery (%3.0f%% of a core), "
      "%5.1f bytes on the wire per delivery (%5.1f of payload), RSS %.1f KB/conn, p50 %.1f ms p99 %.1f ms; "
      "%d/%d subscribed, %d negotiated permessage-deflate, %d closed; load avg %s -> %s"
      % (kind, n, comp, res["deliveries_per_s"], res["cpu_us_per_delivery"] or 0, res["cpu_pct"],
         res["wire_bytes_per_delivery"] or 0, res["payload_bytes_per_delivery"] or 0,
         res["rss_per_conn_kb"], res["p50_ms"], res["p99_ms"], res["subscribed"], n,
         res["negotiated"], res["closed_by_server"], la0, la1))
if comp == "on" and res["negotiated"] < res["connected"]:
    print("peers: note: %s at %d connections: only %d of %d connections negotiated permessage-deflate"
          % (kind, n, res["negotiated"], res["connected"]))
# what a server that keeps up delivers in the run: every order event and
# system notification produced, to every client
every = os.environ["EVERY"].split()
try:
    by = json.load(open("%s/%s.summary" % (T, name)))["byType"]
    produced = sum(by.get(t, 0) for t in every)
except (ValueError, KeyError):
    produced = sum(json.loads(l)["type"] in every for l in open("%s/%s.events.jsonl" % (T, name)) if l.startswith("{"))
res["expected"] = produced * n
open(T + "/results.jsonl", "a").write(json.dumps(res) + "\n")
if res["events"] < 0.97 * res["expected"]:
    print("peers: note: %s at %d connections, compression %s, fell behind: %d of %d deliveries arrived by the end "
          "of the run; its CPU per delivery is not comparable" % (kind, n, comp, res["events"], res["expected"]))
PY
}

done_n=" "
for n in "${CONNS[@]}"; do
    if [ $((n + 200)) -gt "$FDS" ]; then
        # a server is one process: it cannot hold more than the descriptor
        # limit, so measure the most it can hold instead, and say so
        note "$n connections asked, $((FDS - 200)) measured: a process here may hold $FDS descriptors (ulimit -Hn)"
        n=$((FDS - 200))
    fi
    case $done_n in *" $n "*) continue ;; esac
    done_n="$done_n$n "
    for COMP in "${MODES[@]}"; do
        for s in "${SERVERS[@]}"; do steady "$s" "$n"; done
    done
done
COMP=off

# ---- 2. the highest deliveries/s ----------------------------------------------------
maxrate() { # KIND
    local kind=$1 name="$1-max"
    start_server "$kind" "$name"
    warm_up "$name"
    connect "$name" "$MAX_CONNS" --subscribe "$SUBSCRIBE" --duration 150 --quiet-exit 5
    wait_ready "$name" 60 || note "$name: not every client settled in time"
    local ca cb ta tb la0 la1
    la0=$(loadavg)
    ca=$(cpu_ticks)
    ta=$(ms)
    produce "$name" max 60 "$MAX_EVENTS" || note "$name: the producer reported a failure"
    local p
    for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    LOAD_PIDS=()
    cb=$(cpu_ticks)
    tb=$(ms)
    la1=$(loadavg)
    server_alive "the $name run"
    stop_server
    python3 - "$T" "$name" "$kind" "$MAX_CONNS" "$ca" "$cb" "$TICK" "$la0" "$la1" "$OMSD_THREADS" <<'PY'
import glob, json, sys
T, name, kind, n, ca, cb, tick, la0, la1, threads = sys.argv[1:]
runs = [json.loads(open(f).read().strip().splitlines()[-1]) for f in sorted(glob.glob("%s/%s.*.json" % (T, name)))]
ev = sum(r["events"] for r in runs)
first = min(r["first_event_unix_ms"] for r in runs if r["events"])
last = max(r["last_event_unix_ms"] for r in runs if r["events"])
secs = (last - first) / 1000
cpu = (int(cb) - int(ca)) / int(tick)
res = {"run": "max", "server": kind, "connections": int(n), "events": ev, "window_s": secs,
       "deliveries_per_s": ev / secs if secs else 0, "cpu_s": cpu,
       "cpu_us_per_delivery": 1e6 * cpu / ev if ev else None,
       "closed_by_server": sum(r["closed_by_server"] for r in runs),
       "close_codes": [r["close_codes"] for r in runs if r["close_codes"]],
       "load_cpu_s": sum(r["cpu_s"] for r in runs), "loadavg": [la0, la1],
       "threads": int(threads) if kind == "omsd" else "GOMAXPROCS"}
open(T + "/results.jsonl", "a").write(json.dumps(res) + "\n")
print("peers: max %-10s %d conns: %d deliveries in %.1f s = %.0f deliveries/s, %.2f us CPU per delivery "
      "(server %.1f s CPU, clients %.1f s); closed %d; load avg %s -> %s"
      % (kind, int(n), ev, secs, res["deliveries_per_s"], res["cpu_us_per_delivery"] or 0, cpu,
         res["load_cpu_s"], res["closed_by_server"], la0, la1))
PY
}
if [ "$MAX_EVENTS" -gt 0 ]; then
    for s in "${SERVERS[@]}"; do maxrate "$s"; done
fi

# ---- 3. omsd's memory per idle connection -------------------------------------------
if [ "$IDLE" -gt 0 ]; then
    idle=$IDLE
    if [ $((idle + 200)) -gt "$FDS" ]; then
        idle=$((FDS - 200))
        note "idle: $IDLE connections asked, $idle measured: a process here may hold $FDS descriptors (ulimit -Hn)"
    fi
    start_server omsd idle
    sleep 1
    rss0=$(rss_kb)
    t0=$(ns)
    connect idle "$idle" --idle --duration $((120 + idle / 500))
    wait_ready idle $((60 + idle / 500)) || note "idle: not every client settled in time"
    ready_s=$(python3 -c "print('%.1f' % (($(ns) - $t0) / 1e9))")
    sleep 2
    server_alive "the idle run"
    rss1=$(rss_kb)
    open_srv=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1 == "oms_connections" {print $2}')
    stop_load
    stop_server
    python3 - "$T" "$idle" "$rss0" "$rss1" "${open_srv:-0}" "$ready_s" <<'PY'
import glob, json, sys
T, want, rss0, rss1, open_srv, ready_s = sys.argv[1:]
runs = [json.loads(open(f).read().strip().splitlines()[-1]) for f in sorted(glob.glob(T + "/idle.*.json"))]
n = int(float(open_srv)) or sum(r["connected"] for r in runs)
res = {"run": "idle", "server": "omsd", "asked": int(want), "open": n,
       "failed": sum(r["connect_failures"] for r in runs), "rss0_kb": int(rss0), "rss1_kb": int(rss1),
       "rss_per_conn_kb": (int(rss1) - int(rss0)) / n if n else None, "ready_s": float(ready_s)}
open(T + "/results.jsonl", "a").write(json.dumps(res) + "\n")
print("peers: idle omsd: %d connections open (%s asked, %d failed, %.1f s to connect): RSS %.1f -> %.1f MiB = %.2f KB per idle connection (target <= 4 KB)"
      % (n, want, res["failed"], float(ready_s), int(rss0) / 1024, int(rss1) / 1024, res["rss_per_conn_kb"] or 0))
PY
fi

# ---- the table ----------------------------------------------------------------------
python3 - "$T" "$OMSD_THREADS" "$FRACTION" "$DELIVERIES" "$SUBSCRIBE" "$CENTRIFUGO_COMPRESSION_LEVEL" \
    "$CENTRIFUGO_COMPRESSION_MIN_SIZE" <<'PY'
import json, sys
T, threads, frac, target, subscribe, clevel, cmin = sys.argv[1:]
rows = [json.loads(l) for l in open(T + "/results.jsonl")]
def key(r):
    return (r["server"], r["connections"], r.get("compression", False))
steady = {key(r): r for r in rows if r["run"] == "steady" and "skipped" not in r}
skipped = {key(r): r for r in rows if r["run"] == "steady" and "skipped" in r}
cases = sorted({(r["connections"], r.get("compression", False)) for r in rows if r["run"] == "steady"})
print("peers: same events, same clients (oms-load, subscribed to %s), %s deliveries/s asked; omsd with %s service thread(s), "
      "Centrifugo with GOMAXPROCS = the cores; compression on: omsd deflates each event once (zlib level 6, frames >= 256 bytes), "
      "Centrifugo per connection (level %s, messages >= %s bytes)"
      % ("orders and inventory" if subscribe == "all" else "orders", target, threads, clevel, cmin))
print("peers: us/deliv = server CPU per delivery, B/deliv = bytes on the wire per delivery (TCP payload the clients received), "
      "ratio = omsd / Centrifugo")
hdr = "us/deliv B/deliv KB/conn p50/p99 ms"
print("peers: %-6s | %-4s | %-36s | %-36s | %-11s | %s"
      % ("conns", "comp", "omsd " + hdr, "Centrifugo " + hdr, "ratio CPU/B", "load avg (omsd; Centrifugo)"))
for n, comp in cases:
    o, c = steady.get(("omsd", n, comp)), steady.get(("centrifugo", n, comp))
    if not o and not c:
        continue
    def f(r, kind):
        if r:
            return "%8.2f %7.1f %7.1f %5.1f/%-6.1f" % (r["cpu_us_per_delivery"], r["wire_bytes_per_delivery"] or 0,
                                                      r["rss_per_conn_kb"], r["p50_ms"], r["p99_ms"])
        sk = skipped.get((kind, n, comp))
        return "%d connected: %s" % (sk["connected"], sk["skipped"]) if sk else "-"
    ratio = "-"
    if o and c:
        ratio = "%.2f/%.2f" % (o["cpu_us_per_delivery"] / c["cpu_us_per_delivery"],
                               (o["wire_bytes_per_delivery"] or 0) / (c["wire_bytes_per_delivery"] or 1))
    la = "; ".join(r["loadavg"][1] if r else "-" for r in (o, c))
    print("peers: %-6d | %-4s | %-36s | %-36s | %-11s | %s" % (n, "on" if comp else "off", f(o, "omsd"), f(c, "centrifugo"), ratio, la))
for comp in (False, True):
    o1, o10 = steady.get(("omsd", 1000, comp)), steady.get(("omsd", 10000, comp))
    c10 = steady.get(("centrifugo", 10000, comp))
    label = "compression on" if comp else "compression off"
    if o10 and c10:
        r = o10["cpu_us_per_delivery"] / c10["cpu_us_per_delivery"]
        print("peers: target (%s): omsd's CPU per delivery at 10,000 <= 1/3 of Centrifugo's: %.2f -> %s"
              % (label, r, "PASS" if r <= 1 / 3 else "FAIL"))
    big = max((k[1] for k in steady if k[0] == "omsd" and k[2] == comp), default=None)
    if o1 and big and big > 1000:
        r = steady[("omsd", big, comp)]["cpu_us_per_delivery"] / o1["cpu_us_per_delivery"]
        print("peers: target (%s): omsd at %d <= 1.3 x omsd at 1,000 (asked at 50,000): %.2f -> %s"
              % (label, big, r, "PASS" if r <= 1.3 else "FAIL"))

for r in rows:
    if r["run"] == "max":
        print("peers: highest: %-10s %7.0f deliveries/s to %d clients (%.2f us CPU per delivery; threads: %s)"
              % (r["server"], r["deliveries_per_s"], r["connections"], r["cpu_us_per_delivery"] or 0, r["threads"]))
    if r["run"] == "idle":
        print("peers: idle: omsd %.2f KB per connection at %d (target <= 4 KB at 100,000): %s"
              % (r["rss_per_conn_kb"] or 0, r["open"], "PASS" if (r["rss_per_conn_kb"] or 99) <= 4 else "FAIL"))
PY
