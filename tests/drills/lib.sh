# lib.sh — shared by the failure drills (tests/drills/*.sh, run by run.sh):
# topics of the drill on the 3-broker cluster, omsd, the 200 WebSocket
# clients (tests/node/drill-client.js), the producer at a fixed rate, and the
# final checks (tests/drills/check.py). run.sh exports the cluster's
# environment (KAFKA_BROKERS, DATABASE_*, DRILL_STATE, DRILL_OUT, DRILL_SHORT).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BIN=$ROOT/build/bin
DRILL=$(basename "$0" .sh)
W=$DRILL_OUT/$DRILL
rm -rf "$W"
mkdir -p "$W"
export JWT_SECRET=${JWT_SECRET:-drill-secret-drill-secret-drill-secret-0123}
unset OMS_CONFIG
_n=0
OMSD_PID=
CLIENT_PID=
SIM_PID=
DB=

ok() { _n=$((_n + 1)); echo "ok $_n - $DRILL: $*"; }
not_ok() { _n=$((_n + 1)); echo "not ok $_n - $DRILL: $*"; }
note() { echo "# $*"; }
check() {
    local d=$1
    shift
    if "$@"; then ok "$d"; else not_ok "$d"; fi
}
now_ms() { date +%s%3N; }

sql_admin() {
    psql -X -q -At -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d postgres -c "$1"
}

# a port nobody listens on, below the ephemeral range
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000))
        ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
    echo $((20000 + RANDOM % 12000))
}

# drill_setup [QUEUE_LIMIT]: topics (replication 3, min.insync.replicas 2),
# a database and a consumer group of this drill, omsd's configuration
drill_setup() {
    local p="oms-d-$DRILL-$RANDOM$RANDOM"
    TOPIC_ORDERS=$p.orders
    GROUP=oms-d-$DRILL-$RANDOM$RANDOM
    cat >"$W/topics.yaml" <<YAML
defaults:
  partitions: 6
  replication_factor: 3
  configs:
    min.insync.replicas: "2"
topics:
  - name: $p.orders
  - name: $p.inventory
  - name: $p.notifications
  - name: $p.dlq
  - name: $p.presence
    configs:
      cleanup.policy: compact
YAML
    cat >"$W/omsd.yaml" <<YAML
server:
  host: 127.0.0.1
  queue_limit: ${1:-4096}
  rate_limit_per_min: 6000
kafka:
  projection_group: $GROUP
  topics:
    orders: $p.orders
    inventory: $p.inventory
    notifications: $p.notifications
    dlq: $p.dlq
    presence: $p.presence
projections:
  batch_size: 500
  batch_ms: 20
log:
  format: json
YAML
    export OMS_CONFIG=$W/omsd.yaml
    "$BIN/omsctl" topics create --file "$W/topics.yaml" >"$W/topics-create.out" 2>&1 || return 1
    DB=oms_d_$RANDOM$RANDOM
    sql_admin "CREATE DATABASE $DB" >/dev/null || return 1
    export DATABASE_NAME=$DB
    OMSD_PORT=$(free_port)
}

# start_omsd: the release omsd on OMSD_PORT (same port across restarts, the
# clients reconnect to it), log $W/omsd.log; waits for /health to answer
start_omsd() {
    PORT=$OMSD_PORT "$BIN/omsd" --config "$W/omsd.yaml" >>"$W/omsd.log" 2>&1 &
    OMSD_PID=$!
    for _ in $(seq 1 150); do
        curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$OMSD_PORT/websocket/health" && return 0
        kill -0 "$OMSD_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

health_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$OMSD_PORT/websocket/health"
}

# status FIELD: a field of the clients' status file
status() {
    python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))[sys.argv[2]])
except Exception: print(0)' "$W/clients/status.json" "$1"
}

# start_clients: 200 clients (40 customers); waits until all are subscribed
start_clients() {
    node "$ROOT/tests/node/drill-client.js" --url "ws://127.0.0.1:$OMSD_PORT/events" \
        --out "$W/clients" --clients "${DRILL_CLIENTS:-200}" --customers 40 \
        --max-seconds 900 "$@" >"$W/clients.log" 2>&1 &
    CLIENT_PID=$!
    local deadline=$((SECONDS + 60))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ "$(status ready)" = "${DRILL_CLIENTS:-200}" ] && return 0
        kill -0 "$CLIENT_PID" 2>/dev/null || return 1
        sleep 0.3
    done
    note "only $(status ready) clients ready"
    return 1
}

# start_producer SECONDS: oms-producer simulate at DRILL_RATE for SECONDS
start_producer() {
    SIM_START=$(now_ms)
    "$BIN/oms-producer" simulate --rate "$DRILL_RATE" --duration "$1" --seed "$RANDOM" \
        --users 50 --record "$W/record.jsonl" --json-summary >"$W/sim.json" 2>"$W/sim.err" &
    SIM_PID=$!
}

wait_producer() {
    local deadline=$((SECONDS + ${1:-120}))
    while kill -0 "$SIM_PID" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill -INT "$SIM_PID" 2>/dev/null
            sleep 5
            kill -KILL "$SIM_PID" 2>/dev/null
            break
        fi
        sleep 0.3
    done
    wait "$SIM_PID"
    SIM_RC=$?
    SIM_END=$(now_ms)
    SIM_PID=
}

# quiesce SECONDS: until the clients received nothing for 3 s (or SECONDS pass)
quiesce() {
    local deadline=$((SECONDS + $1)) last=-1 same=0 e
    while [ "$SECONDS" -lt "$deadline" ]; do
        e=$(status events)
        if [ "$e" = "$last" ]; then
            same=$((same + 1))
            [ "$same" -ge 6 ] && return 0
        else
            same=0
            last=$e
        fi
        sleep 0.5
    done
}

lag() {
    "$BIN/omsctl" projections status --json --group "$GROUP" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["lag"])' 2>/dev/null || echo -1
}

wait_caught_up() {
    local deadline=$((SECONDS + $1))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ "$(lag)" = 0 ] && return 0
        sleep 0.5
    done
    note "projection lag still $(lag) after $1 s"
    return 1
}

stop_clients() {
    [ -n "$CLIENT_PID" ] || return 0
    kill -TERM "$CLIENT_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CLIENT_PID" 2>/dev/null
    wait "$CLIENT_PID" 2>/dev/null
    CLIENT_PID=
}

stop_omsd() {
    [ -n "$OMSD_PID" ] || return 0
    kill -TERM "$OMSD_PID" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$OMSD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$OMSD_PID" 2>/dev/null
    wait "$OMSD_PID" 2>/dev/null
    OMSD_PID=
}

drill_cleanup() {
    local pid
    [ -n "$SIM_PID" ] && kill -KILL "$SIM_PID" 2>/dev/null
    stop_clients
    stop_omsd
    for pid in $(jobs -p); do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    [ -n "$DB" ] && sql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    return 0
}
trap drill_cleanup EXIT

# drill_finish RECOVERY_S FAULT_START_MS FAULT_END_MS [check.py options]:
# waits for the end, reads the topics back, compares the tables with the
# reference fold and the clients with the topics; prints the row
drill_finish() {
    local recovery=$1 fs=$2 fe=$3
    shift 3
    wait_producer 180
    check "the producer finished (exit $SIM_RC)" test "$SIM_RC" = 0
    quiesce 60
    check "the projections caught up" wait_caught_up 90
    stop_clients
    timeout 120 "$BIN/omsctl" tail all --from-beginning --exit-at-end --format json \
        >"$W/tail.json" 2>"$W/tail.err"
    python3 "$ROOT/tests/integration/projections_ref.py" compare "$W/tail.json" >"$W/compare.out" 2>&1
    local rc=$?
    sed 's/^/# /' "$W/compare.out" | head -20
    if [ "$rc" = 0 ]; then ok "the Postgres tables equal the fold of the log"; else not_ok "the Postgres tables equal the fold of the log"; fi
    python3 "$ROOT/tests/drills/check.py" --name "$DRILL" --record "$W/record.jsonl" \
        --sim "$W/sim.json" --tail "$W/tail.json" --clients "$W/clients/clients.jsonl" \
        --summary "$W/clients/summary.json" --recovery "$recovery" --fault "$fs" "$fe" \
        --projections "$rc" --run "$SIM_START" "$SIM_END" --row "$W/row.json" "$@" >"$W/check.out" 2>&1
    rc=$?
    cat "$W/check.out"
    if [ "$rc" = 0 ]; then
        ok "nothing lost, nothing duplicated (topic and clients)"
    else
        not_ok "nothing lost, nothing duplicated (topic and clients)"
    fi
}

# stack ARGS: scripts/stack.sh on the drills' own cluster and PostgreSQL
stack() {
    OMS_STATE=$DRILL_STATE KAFKA_BROKERS_COUNT=3 KAFKA_PORT=$DRILL_KAFKA_PORT \
        KAFKA_CONTROLLER_PORT=$DRILL_KAFKA_CONTROLLER_PORT PG_PORT=$DRILL_PG_PORT \
        bash "$ROOT/scripts/stack.sh" "$@"
}

# phase SHORT FULL: the length of a phase in seconds, short or full drill
phase() { if [ "${DRILL_SHORT:-0}" = 1 ]; then echo "$1"; else echo "$2"; fi; }
