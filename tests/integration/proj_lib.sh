# proj_lib.sh — shared by the 04xx projection tests, sourced after lib.sh:
# a database of the test's own, omsd instances (the ASan build), waiting for
# the projections to catch up, and the reference comparison.
REF=$ROOT/tests/integration/projections_ref.py
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
DB=

sql() { # SQL... → rows (unaligned, tuples only) from the test database
    psql -X -q -At -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d "$DB" -c "$1"
}

# new_db: a database oms_t_<random> of this test on the server of DATABASE_*
new_db() {
    DB=oms_t_$RANDOM$RANDOM
    psql -X -q -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d postgres \
        -c "CREATE DATABASE $DB" >/dev/null || return 1
    export DATABASE_NAME=$DB
}

drop_db() {
    [ -n "$DB" ] || return 0
    psql -X -q -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d postgres \
        -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
}

# proj_config NAME: topics of the test (lib.sh make_topics), its own consumer
# group, JSON logs; then the test appends what else it needs
proj_config() {
    make_topics "$1" || return 1
    GROUP=oms-t-$1-$RANDOM$RANDOM
    cat >>"$T/omsd.yaml" <<YAML
  projection_group: $GROUP
server:
  host: 127.0.0.1
log:
  format: json
YAML
}

# start_omsd NAME [CONFIG]: the ASan omsd in the background on a port of its
# own, log $T/NAME.log (appended); sets OMSD_PID, PID_NAME and PORT_NAME;
# waits for /health. A port taken in between: another port, three tries.
start_omsd() {
    local name=$1 config=${2:-$T/omsd.yaml} port try size
    for try in 1 2 3; do
        port=$(free_port)
        touch "$T/$name.log"
        size=$(stat -c %s "$T/$name.log")
        eval "PORT_$name=$port"
        PORT=$port ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 \
            "$ABIN/omsd" --config "$config" >>"$T/$name.log" 2>&1 &
        OMSD_PID=$!
        eval "PID_$name=$OMSD_PID"
        for _ in $(seq 1 100); do
            curl -s -o /dev/null "http://127.0.0.1:$port/websocket/health" && return 0
            kill -0 "$OMSD_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$OMSD_PID" 2>/dev/null; then
            return 1
        fi
        wait "$OMSD_PID"
        note "omsd $name did not start on port $port (try $try), see $name-start$try.log"
        # that failed start is not what the test checks: its output moves aside
        tail -c +$((size + 1)) "$T/$name.log" >"$T/$name-start$try.log"
        truncate -s "$size" "$T/$name.log"
    done
    return 1
}

# health_code NAME: the HTTP status of omsd NAME's health
health_code() {
    local port
    eval "port=\$PORT_$1"
    curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$port/websocket/health"
}

# health_get NAME [ROLE]: omsd NAME's health answer; with ROLE, as a user of
# that role (staff or admin see the details: errors, counters), else without
# a token (the public answer)
health_get() {
    local port auth=()
    eval "port=\$PORT_$1"
    [ -n "${2:-}" ] && auth=(-H "Authorization: Bearer $("$BIN/omsctl" token --sub 1 --role "$2")")
    curl -s --max-time 3 "${auth[@]}" "http://127.0.0.1:$port/websocket/health"
}

# stop_omsd PID: SIGTERM, wait up to 15 s; 0 when it exited with status 0
stop_omsd() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 1
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null
        return 1
    fi
    wait "$pid"
}

# assigned NAME: the partitions omsd NAME holds: per worker, the count of its
# last assignment, unless it was revoked since
assigned() {
    python3 - "$T/$1.log" <<'PY'
import json, sys
held = {}
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("msg") == "projections: partitions assigned":
        held[j["worker"]] = j["count"]
    elif j.get("msg") in ("projections: partitions revoked", "projections: consuming"):
        held[j["worker"]] = 0
print(sum(held.values()))
PY
}

# wait_for SECONDS COMMAND...: until the command succeeds
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    while [ "$SECONDS" -lt "$deadline" ]; do
        "$@" && return 0
        sleep 0.5
    done
    "$@"
}

# lag: the group's total lag per `omsctl projections status --json` (-1 on failure)
lag() {
    "$BIN/omsctl" projections status --json --group "$GROUP" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["lag"])' 2>/dev/null || echo -1
}

# wait_caught_up SECONDS: until the stored offsets reach the end of every partition
wait_caught_up() {
    local deadline=$((SECONDS + $1)) l
    while [ "$SECONDS" -lt "$deadline" ]; do
        l=$(lag)
        [ "$l" = 0 ] && return 0
        sleep 0.5
    done
    note "lag still $(lag) after $1 s"
    return 1
}

# compare_reference: read the topics back and fold them independently
compare_reference() {
    timeout 60 "$BIN/omsctl" tail all --from-beginning --exit-at-end --format json \
        >"$T/tail.json" 2>"$T/tail.err"
    python3 "$REF" compare "$T/tail.json" >"$T/compare.out" 2>&1
    local rc=$?
    sed 's/^/# /' "$T/compare.out"
    return $rc
}

# asan_clean LOG...: no sanitizer report in the logs
asan_clean() {
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$@"; then
        grep -h -A20 -E "AddressSanitizer|LeakSanitizer|runtime error" "$@" | head -40 | sed 's/^/# /'
        return 1
    fi
}

# Background jobs of this shell still unreaped (omsd, producers) are ours:
# a pid once waited for may belong to another process by now, so only these.
proj_cleanup() {
    local pid
    for pid in $(jobs -p); do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    drop_db
}
