# subs-lib.sh — shared by bench-filters.sh and bench-compression.sh: a
# release omsd on its own topics and port (start_omsd NAME [YAML lines]),
# one oms-load process (load_start), omsd's CPU and /metrics, cleanup.
# Sourced; expects $NAME (the bench's name) and cd'd to the repository.
BIN=build/bin
LOAD=build/tests/tools/oms-load
T=build/bench/$NAME
rm -rf "$T"
mkdir -p "$T"
for f in "$BIN/omsd" "$BIN/omsctl" "$BIN/oms-producer" "$LOAD"; do
    [ -x "$f" ] || { echo "$NAME: $f is missing: run 'make all tools'" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
JWT_SECRET=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
export JWT_SECRET
say() { echo "$NAME: $*"; }
py() { python3 -c "$@"; }
TICK=$(getconf CLK_TCK)

PORT=""
for p in $(seq "${BENCH_SUBS_PORT:-3800}" 3899); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "$NAME: no free port in 3800..3899" >&2; exit 1; }
URL=ws://127.0.0.1:$PORT/events
BASE=http://127.0.0.1:$PORT

P="oms-bench-$NAME-$RANDOM$RANDOM"
cat >"$T/topics.yaml" <<YAML
defaults: {partitions: 6, replication_factor: 1}
topics:
  - {name: $P.orders}
  - {name: $P.inventory}
  - {name: $P.notifications}
  - {name: $P.dlq}
YAML
$BIN/omsctl topics create --file "$T/topics.yaml" >"$T/topics.out"
cat >"$T/topics-only.yaml" <<YAML
kafka:
  topics: {orders: $P.orders, inventory: $P.inventory, notifications: $P.notifications, dlq: $P.dlq, presence: $P.presence}
YAML

OMSD_PID=""
LOAD_PID=""
cleanup() {
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
    if [ -n "$OMSD_PID" ] && kill -0 "$OMSD_PID" 2>/dev/null; then
        kill -TERM "$OMSD_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$OMSD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$OMSD_PID" 2>/dev/null
    fi
    [ -x build/tests/tools/oms-topics-drop ] && timeout 30 build/tests/tools/oms-topics-drop "$P" >/dev/null 2>&1 || true # its topics
    return 0
}
trap cleanup EXIT

start_omsd() { # NAME [YAML lines under server:]
    local name=$1 extra=${2:-} try
    {
        printf 'server:\n  host: "127.0.0.1"\n  port: %s\n  queue_limit: 262144\n  max_connections_per_address: 0\n' "$PORT"
        [ -n "$extra" ] && printf '%s\n' "$extra"
        cat "$T/topics-only.yaml"
        printf 'projections: {enabled: false}\nlog: {format: json, level: warn}\n'
    } >"$T/$name.yaml"
    for try in $(seq 1 10); do
        OMS_CONFIG=$T/$name.yaml $BIN/omsd >"$T/$name.log" 2>&1 &
        OMSD_PID=$!
        for _ in $(seq 100); do
            kill -0 "$OMSD_PID" 2>/dev/null || break
            curl -sf -o /dev/null "$BASE/websocket/health" && return 0
            sleep 0.1
        done
        kill -0 "$OMSD_PID" 2>/dev/null && { say "omsd not healthy after 10 s"; exit 1; }
        wait "$OMSD_PID" || true
        OMSD_PID=""
        sleep 1 # fresh topics may have no leader yet
    done
    say "omsd ($name) would not start: $(tail -3 "$T/$name.log")"
    exit 1
}
stop_omsd() {
    kill -TERM "$OMSD_PID"
    wait "$OMSD_PID" || true
    OMSD_PID=""
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$OMSD_PID/stat"; }
metric() { # NAME or NAME{labels} -> sum over matching lines
    curl -sf "$BASE/metrics" | awk -v n="$1" '$1 == n || (n !~ /[{]/ && index($1, n "{") == 1) {s += $2} END {printf "%d\n", s}'
}

load_start() { # NAME CONNECTIONS OPTIONS...: one oms-load in the background, waits until ready
    local name=$1 n=$2
    shift 2
    rm -f "$T/$name.ready"
    $LOAD --url "$URL" --connections "$n" --duration 600 --ramp-per-sec 3000 \
        --ready-file "$T/$name.ready" --json "$@" >"$T/$name.json" 2>"$T/$name.err" &
    LOAD_PID=$!
    for _ in $(seq 1200); do
        [ -f "$T/$name.ready" ] && return 0
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.1
    done
    say "FAILED: clients not ready: $(cat "$T/$name.err")"
    exit 1
}
load_stop() {
    kill -INT "$LOAD_PID" 2>/dev/null
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=""
    sleep 1
}

# until a metric has not moved for 1.5 s (at most SECONDS): deliveries done
settle() { # METRIC SECONDS
    local last=-1 same=0 v
    for _ in $(seq $(($2 * 4))); do
        v=$(metric "$1")
        if [ "$v" = "$last" ]; then same=$((same + 1)); [ $same -ge 6 ] && return 0; else same=0; fi
        last=$v
        sleep 0.25
    done
}
