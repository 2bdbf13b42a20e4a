#!/usr/bin/env bash
# Postgres projections throughput, same events, same run:
#   batched:  omsd (release build) folding the topics into the read models,
#             exactly once (one transaction per batch with its offsets,
#             pipelined), from the partition assignment to the last commit;
#             ROUNDS rounds, each on a fresh database, the median reported;
#   naive:    build/tests/tools/oms-pg-naive on the same topics: one
#             transaction per event, same SQL, guards, offsets and session
#             settings (synchronous_commit off), NAIVE_SECONDS right after
#             each batched round (the machine is shared: paired rounds see
#             the same load), ratios per round; once more with Postgres'
#             defaults (synchronous_commit on).
set -eu
cd "$(dirname "$0")/../.."
[ -n "${DATABASE_HOST:-}" ] || eval "$(bash scripts/stack.sh env)"
N=${BENCH_EVENTS:-200000}
ROUNDS=${BENCH_ROUNDS:-5}
NAIVE_SECONDS=${BENCH_NAIVE_SECONDS:-5}
BATCH=${BENCH_BATCH_SIZE:-1000}
BIN=build/bin
T=build/bench/projections
rm -rf "$T"
mkdir -p "$T"
export JWT_SECRET=bench-secret-bench-secret-bench-secret-01
P="oms-bench-proj-$RANDOM$RANDOM"
DBS=()

# only unreaped background jobs of this shell: a pid once waited for may
# belong to another process by now
cleanup() {
    local pid db
    for pid in $(jobs -p); do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for db in "${DBS[@]}"; do
        psql -X -q -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d postgres \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    done
    [ -x build/tests/tools/oms-topics-drop ] && timeout 30 build/tests/tools/oms-topics-drop "$P" >/dev/null 2>&1 || true # its topics
}
trap cleanup EXIT

# a port nobody listens on, below the ephemeral range (32768-60999) where
# outgoing connections would take it from under us
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000))
        ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
    echo $((20000 + RANDOM % 12000))
}

new_db() { # → NEW_DB
    NEW_DB="oms_bench_$RANDOM$RANDOM"
    psql -X -q -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d postgres \
        -c "CREATE DATABASE $NEW_DB" >/dev/null
    DBS+=("$NEW_DB")
}

cat >"$T/omsd.yaml" <<YAML
server: {host: 127.0.0.1}
kafka:
  topics: {orders: $P.orders, inventory: $P.inventory, notifications: $P.notifications, dlq: $P.dlq, presence: $P.presence}
log: {format: json}
projections: {batch_size: $BATCH}
YAML
cat >"$T/topics.yaml" <<YAML
defaults: {partitions: 6, replication_factor: 1}
topics:
  - {name: $P.orders}
  - {name: $P.inventory}
  - {name: $P.notifications}
  - {name: $P.dlq}
YAML
export OMS_CONFIG=$T/omsd.yaml
$BIN/omsctl topics create --file "$T/topics.yaml" >/dev/null
$BIN/oms-producer simulate --rate max --duration 0 --count "$N" --seed 1 --json-summary \
    >"$T/sim.json" 2>"$T/sim.err"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["delivered"]==int(sys.argv[2]), s' \
    "$T/sim.json" "$N"

# one round of omsd on a fresh database and group → RATE (events/s)
run_batched() {
    local r=$1 db log port sum pid
    new_db
    db=$NEW_DB
    log=$T/omsd-$r.log
    port=$(free_port)
    DATABASE_NAME=$db PORT=$port \
        $BIN/omsd --config "$T/omsd.yaml" >"$log" 2>&1 &
    pid=$!
    # its own group: the config's, suffixed (environment cannot set it)
    for _ in $(seq 1 1200); do
        sum=$(psql -X -At -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d "$db" \
            -c "SELECT coalesce(sum(next_offset), 0) FROM oms_offsets" 2>/dev/null || echo 0)
        [ "$sum" = "$N" ] && break
        kill -0 "$pid" 2>/dev/null || { echo "projections: omsd died, see $log" >&2; exit 1; }
        sleep 0.1
    done
    [ "$sum" = "$N" ] || { echo "projections: omsd did not finish in 120 s, see $log" >&2; exit 1; }
    local t1
    t1=$(psql -X -At -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d "$db" \
        -c "SELECT (extract(epoch FROM max(updated_at)) * 1000)::bigint FROM oms_offsets")
    kill -TERM "$pid"
    wait "$pid" || true
    RATE=$(python3 - "$log" "$t1" "$N" <<'PY'
import json, sys
from datetime import datetime, timezone
t0 = None
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("msg") == "projections: partitions assigned":
        t0 = datetime.strptime(j["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        break
secs = int(sys.argv[2]) / 1000 - t0.timestamp()
print(int(int(sys.argv[3]) / secs))
PY
)
}

naive() { # NAME [--sync-commit] → NRATE, NEVENTS
    new_db
    DATABASE_NAME=$NEW_DB build/tests/tools/oms-pg-naive --group "$P-$1" \
        --seconds "$NAIVE_SECONDS" ${2:-} >"$T/$1.json" 2>"$T/$1.err"
    read -r NEVENTS NRATE < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
print(j["events"], int(j["rate"]))' "$T/$1.json")
}

# every round reads the same topics with groups of its own
rates=()
nrates=()
ratios=()
for r in $(seq 1 "$ROUNDS"); do
    sed -i '/projection_group/d' "$T/omsd.yaml"
    sed -i "s|^kafka:|kafka:\n  projection_group: $P-g$r|" "$T/omsd.yaml"
    run_batched "$r"
    rates+=("$RATE")
    naive "naive-$r"
    nrates+=("$NRATE")
    ratios+=("$(python3 -c 'import sys; print("%.1f" % (int(sys.argv[1]) / int(sys.argv[2])))' "$RATE" "$NRATE")")
done
naive naive-sync --sync-commit
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mb=$(median "${rates[@]}")
mn=$(median "${nrates[@]}")
mr=$(median "${ratios[@]}")

mix=$(python3 -c 'import json,sys; print(", ".join("%s %d" % kv for kv in json.load(open(sys.argv[1]))["byType"].items()))' "$T/sim.json")
echo "projections: $N events ($mix), 18 partitions, batch_size $BATCH, batch_ms 50, $ROUNDS rounds"
echo "projections: exactly-once batches (omsd)           ${rates[*]} events/s -> median $mb"
echo "projections: naive, 1 transaction/event (same settings) ${nrates[*]} events/s -> median $mn"
echo "projections: ratio per round                        ${ratios[*]} -> median ${mr}x"
echo "projections: naive with Postgres defaults (synchronous_commit on): $NRATE events/s ($NEVENTS events in $NAIVE_SECONDS s) -> $(python3 -c 'import sys; print("%.0f" % (int(sys.argv[1]) / int(sys.argv[2])))' "$mb" "$NRATE")x"
python3 -c "import sys; b, r = int(sys.argv[1]), float(sys.argv[2]); print('projections: targets >= 100000 events/s: %s; >= 20x the naive loop: %s' % ('met' if b >= 100000 else 'NOT met', 'met' if r >= 20 else 'NOT met'))" "$mb" "$mr"
