#!/usr/bin/env bash
# Failure drills (issue #9): a 3-broker Kafka cluster and a PostgreSQL of the
# drills' own (scripts/stack.sh with KAFKA_BROKERS_COUNT=3 in a state folder
# of their own, on free ports: the shared stack is never touched), then each
# drill while `oms-producer simulate` runs at a fixed rate and 200 WebSocket
# clients are subscribed:
#   broker-kill  kill -9 one broker, restart it after 10 s
#   omsd-kill    kill -9 omsd, restart it after 5 s (clients resume)
#   pg-stop      PostgreSQL stopped for 15 s
#   slow-client  a client stops reading, is closed with 1013, resumes
# Prints TAP-like ok/not ok lines and the table (also DIR/drills.txt and
# DIR/drills.json, DIR = $OMS_TEST_OUTPUT_DIR/drills or build/test-output/drills).
#
#   tests/drills/run.sh [--short] [DRILL...]
#
# --short: shorter phases at 200 events/s and no slow-client (make test,
# about 2.5 minutes); otherwise 500 events/s (DRILL_RATE) with 20 s before
# and 40 s after each fault (make drills, about 10 minutes).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
short=0
if [ "${1:-}" = --short ]; then
    short=1
    shift
fi
drills=("$@")
if [ ${#drills[@]} -eq 0 ]; then
    # slow-client needs a minute of stall at the short rate (see its header)
    if [ "$short" = 1 ]; then drills=(broker-kill omsd-kill pg-stop); else
        drills=(broker-kill omsd-kill pg-stop slow-client); fi
fi
for d in "${drills[@]}"; do
    [ -f "tests/drills/$d.sh" ] || { echo "drills: no drill '$d'" >&2; exit 2; }
done

OUT=$(realpath -m "${OMS_TEST_OUTPUT_DIR:-build/test-output}/drills")
rm -rf "$OUT"
mkdir -p "$OUT"
export DRILL_OUT=$OUT DRILL_SHORT=$short
export DRILL_RATE=${DRILL_RATE:-$([ "$short" = 1 ] && echo 200 || echo 500)}
# the Kafka jars of the caller's stack (scripts/deps.sh puts them there)
LIBS=$(realpath -m "${OMS_STATE:-$ROOT/.oms}/kafka/libs")
DRILL_STATE=$(mktemp -d -t oms-drills.XXXXXX)
chmod 755 "$DRILL_STATE"
export DRILL_STATE

free() { ! ss -Hltn "sport = :$1" | grep -q .; }
# seven free ports: three brokers and three controllers interleaved, PostgreSQL
for _ in $(seq 1 100); do
    base=$((20000 + 2 * (RANDOM % 6000)))
    all=1
    for p in $(seq "$base" $((base + 6))); do free "$p" || { all=0; break; }; done
    [ "$all" = 1 ] && break
done
export DRILL_KAFKA_PORT=$base DRILL_KAFKA_CONTROLLER_PORT=$((base + 1)) DRILL_PG_PORT=$((base + 6))

stack() {
    OMS_STATE=$DRILL_STATE KAFKA_BROKERS_COUNT=3 KAFKA_PORT=$DRILL_KAFKA_PORT \
        KAFKA_CONTROLLER_PORT=$DRILL_KAFKA_CONTROLLER_PORT PG_PORT=$DRILL_PG_PORT \
        bash "$ROOT/scripts/stack.sh" "$@"
}
cleanup() {
    stack down --purge >"$OUT/stack-down.out" 2>&1
    # keep the Kafka and PostgreSQL logs of a failed run next to the results
    rm -rf "$DRILL_STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $*"; }

mkdir -p "$DRILL_STATE/kafka"
ln -sfn "$LIBS" "$DRILL_STATE/kafka/libs"
t0=$SECONDS
if stack up >"$OUT/stack-up.out" 2>&1; then
    ok "a 3-broker cluster and a PostgreSQL of the drills are up ($((SECONDS - t0)) s)"
else
    not_ok "a 3-broker cluster and a PostgreSQL of the drills are up"
    sed 's/^/# /' "$OUT/stack-up.out" | tail -20
    exit 1
fi
eval "$(stack env)"
export KAFKA_BROKERS DATABASE_HOST DATABASE_PORT DATABASE_USER DATABASE_PASSWORD
echo "# brokers $KAFKA_BROKERS, PostgreSQL $DATABASE_HOST:$DATABASE_PORT, $DRILL_RATE events/s"

failed=0
for d in "${drills[@]}"; do
    t0=$SECONDS
    echo "# ---- drill $d"
    timeout 420 bash "tests/drills/$d.sh" 2>"$OUT/$d.err" | tee "$OUT/$d.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" != 0 ]; then
        not_ok "drill $d exited with status $rc"
        echo 1 >"$OUT/$d.failed"
    fi
    grep -q '^not ok' "$OUT/$d.log" && echo 1 >"$OUT/$d.failed"
    [ -f "$OUT/$d.failed" ] && failed=1
    # the node logs of the cluster stay with the results
    echo "# drill $d took $((SECONDS - t0)) s"
    if [ -f "$OUT/$d.failed" ]; then
        mkdir -p "$OUT/$d/stack-logs"
        cp -r "$DRILL_STATE/logs/." "$OUT/$d/stack-logs/" 2>/dev/null
    fi
done

python3 - "$OUT" "${drills[@]}" <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
rows = []
for n in names:
    try:
        rows.append(json.load(open(os.path.join(out, n, "row.json"))))
    except (OSError, ValueError):
        rows.append({"drill": n})
cols = [("drill", "drill"), ("produced", "produced"), ("acknowledged", "acked"),
        ("on_topic", "on topic"), ("delivered", "delivered"), ("lost", "lost"),
        ("duplicates", "dups"), ("recovery_s", "recovery s"), ("max_pause_s", "max pause s"),
        ("projections_equal", "tables = fold")]
w = [max(len(h), *(len(str(r.get(k, "-"))) for r in rows)) for k, h in cols]
lines = ["  ".join(h.ljust(w[i]) for i, (_, h) in enumerate(cols))]
for r in rows:
    lines.append("  ".join(str(r.get(k, "-")).ljust(w[i]) for i, (k, _) in enumerate(cols)))
text = "\n".join(lines) + "\n"
open(os.path.join(out, "drills.txt"), "w").write(text)
json.dump(rows, open(os.path.join(out, "drills.json"), "w"), indent=1)
sys.stdout.write("".join("# " + l + "\n" for l in lines))
PY
echo "# table in $OUT/drills.txt"
exit "$failed"
