# lib.sh — shared by the integration scripts: stack environment, TAP-style
# results, and per-test topic names so tests never see each other's data.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
eval "$(bash scripts/stack.sh env)"
BIN=$ROOT/build/bin
ABIN=$ROOT/build/asan-bin
TOOLS=$ROOT/build/tests/tools
T=$(realpath -m "${OMS_TEST_OUT:-$ROOT/build/test-output/$(basename "$0" .sh)}")
rm -rf "$T"
mkdir -p "$T"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
unset OMS_CONFIG
_n=0

# free_port: a TCP port nobody listens on, below the ephemeral range
# (32768-60999) where outgoing connections (Kafka clients, nginx upstreams)
# would take it from under us. Every server a test starts gets its own.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000))
        ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
    echo $((20000 + RANDOM % 12000))
}

ok() { _n=$((_n + 1)); echo "ok $_n - $*"; }
not_ok() { _n=$((_n + 1)); echo "not ok $_n - $*"; }
note() { echo "# $*"; }

# check DESCRIPTION COMMAND...: ok when the command succeeds
check() {
    local d=$1
    shift
    if "$@"; then ok "$d"; else not_ok "$d"; fi
}

# expect_exit CODE DESCRIPTION COMMAND...
expect_exit() {
    local want=$1 d=$2
    shift 2
    "$@" >"$T/last.out" 2>"$T/last.err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then
        ok "$d"
    else
        not_ok "$d (exit $rc, wanted $want)"
        sed 's/^/#   /' "$T/last.err" | head -10
    fi
}

# asan_clean LABEL LOG: ok when an ASan/UBSan build's log has no report
asan_clean() {
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$2"; then
        not_ok "$1 ran clean under ASan/UBSan"
        grep -A20 -E "AddressSanitizer|LeakSanitizer|runtime error" "$2" | head -40 | sed 's/^/# /'
    else
        ok "$1 ran clean under ASan/UBSan"
    fi
}

# start_instance NAME: the ASan omsd with $T/omsd-NAME.yaml on $PORT_NAME,
# logging to $T/omsd-NAME.log, its pid in $PID_NAME; 0 once it answers
# /websocket/health (15 s at most). Variables set before the call reach it.
start_instance() {
    local port
    port=$(eval echo "\$PORT_$1")
    "$ABIN/omsd" --config "$T/omsd-$1.yaml" >>"$T/omsd-$1.log" 2>&1 &
    eval "PID_$1=$!"
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:$port/websocket/health" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# stop_instances [--all-running] NAME...: SIGTERM to each instance still
# running, which must exit 0 (--all-running: one that is not running is a
# failure too), then each log must be clean under ASan/UBSan.
stop_instances() {
    local strict=false name pid
    [ "$1" = --all-running ] && { strict=true; shift; }
    for name in "$@"; do
        pid=$(eval echo "\$PID_$name")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid"
            check "instance $name exits 0 after SIGTERM" test $? -eq 0
        else
            $strict && not_ok "instance $name still running at the end"
            wait "$pid" 2>/dev/null
        fi
    done
    for name in "$@"; do
        asan_clean "instance $name" "$T/omsd-$name.log"
    done
}

# health_public FILE: FILE holds the public answer of /websocket/health (no
# token, or one that is not staff or admin): the status, the uptime, which
# dependency is down, and nothing else: no brokers, no error text, no address
# of Kafka or PostgreSQL, no connection count.
health_public() {
    python3 - "$1" "${KAFKA_BROKERS:-}" "${DATABASE_HOST:-}:${DATABASE_PORT:-}" <<'PY'
import json, sys
raw = open(sys.argv[1]).read()
h = json.loads(raw)
assert set(h) <= {"status", "uptimeSeconds", "dependencies", "failing"}, sorted(h)
for name, dep in h["dependencies"].items():
    assert set(dep) <= {"status", "required"}, (name, sorted(dep))
for addr in sys.argv[2].split(",") + [sys.argv[3]]:
    assert len(addr) < 3 or addr not in raw, addr
assert '"brokers"' not in raw and '"error"' not in raw, raw
PY
}

# make_topics NAME: writes $T/omsd.yaml and $T/topics.yaml naming topics
# oms-t-NAME-<random>.{orders,inventory,notifications,dlq,presence}, and
# creates them.
make_topics() {
    local p="oms-t-$1-$RANDOM$RANDOM"
    TOPIC_PREFIXES="${TOPIC_PREFIXES:-} $p."
    TOPIC_ORDERS=$p.orders
    TOPIC_INVENTORY=$p.inventory
    TOPIC_NOTIFICATIONS=$p.notifications
    TOPIC_DLQ=$p.dlq
    TOPIC_PRESENCE=$p.presence
    cat >"$T/omsd.yaml" <<YAML
kafka:
  topics:
    orders: $TOPIC_ORDERS
    inventory: $TOPIC_INVENTORY
    notifications: $TOPIC_NOTIFICATIONS
    dlq: $TOPIC_DLQ
    presence: $TOPIC_PRESENCE
YAML
    cat >"$T/topics.yaml" <<YAML
defaults:
  partitions: ${PARTITIONS:-6}
  replication_factor: 1
topics:
  - name: $TOPIC_ORDERS
  - name: $TOPIC_INVENTORY
  - name: $TOPIC_NOTIFICATIONS
  - name: $TOPIC_DLQ
  - name: $TOPIC_PRESENCE
    partitions: 1
    configs:
      cleanup.policy: compact
YAML
    export OMS_CONFIG=$T/omsd.yaml
    "$BIN/omsctl" topics create --file "$T/topics.yaml" >"$T/topics-create.out" 2>&1
}

# records in a topic (sum of high watermarks; topics start empty)
topic_count() {
    "$BIN/omsctl" topics list --json | python3 -c '
import json, sys
t = sys.argv[1]
print(sum(x["records"] for x in json.load(sys.stdin) if x["topic"] == t))' "$1"
}

# At the end: the topics make_topics made are deleted (a broker that kept
# every run's topics would end up with tens of thousands of partitions and
# run out of file descriptors).
finish() {
    if [ -n "${TOPIC_PREFIXES:-}" ] && [ -x "$TOOLS/oms-topics-drop" ]; then
        # shellcheck disable=SC2086 # one argument per prefix
        timeout 30 "$TOOLS/oms-topics-drop" $TOPIC_PREFIXES >"$T/topics-drop.out" 2>&1 ||
            echo "# (topics not deleted: $(tail -1 "$T/topics-drop.out"))"
    fi
    echo "# $_n checks"
}
trap finish EXIT
