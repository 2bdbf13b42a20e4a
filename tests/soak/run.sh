#!/usr/bin/env bash
# Soak (issue #9): the whole pipeline under steady load for SOAK_MINUTES —
# omsd (release build) with projections, `oms-producer simulate` at
# SOAK_RATE events/s, SOAK_CLIENTS WebSocket clients (tests/node/drill-client.js)
# of which SOAK_CHURN a minute close and reconnect with resume — on the running
# stack (make stack-up), with topics, a consumer group and a database of its
# own. Every SOAK_EVERY seconds omsd's resident memory (VmRSS) and open file
# descriptors are read from /proc. At the end: the curve, and the verdict:
# after the warm-up (the first 20% of the samples) neither may grow — the
# median of the last fifth against the median of the fifth after the warm-up,
# RSS by at most SOAK_RSS_TOL_PCT % (and 8 MiB), fds by at most SOAK_FD_TOL.
# Exit 0 when neither grew and the tables equal the fold of the log. omsd
# keeps its resume history for SOAK_HISTORY_TTL_S (60) seconds here, so that
# the history is full within the warm-up.
#
#   SOAK_MINUTES=10 tests/soak/run.sh        (make soak SOAK_MINUTES=10)
#
# Output in $OMS_TEST_OUTPUT_DIR/soak (default build/test-output/soak):
# samples.csv (seconds, rss_kib, fds, clients_open, events_delivered), omsd.log.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
MINUTES=${SOAK_MINUTES:-10}
RATE=${SOAK_RATE:-200}
CLIENTS=${SOAK_CLIENTS:-200}
CHURN=${SOAK_CHURN:-60}
EVERY=${SOAK_EVERY:-5}
RSS_TOL=${SOAK_RSS_TOL_PCT:-10}
FD_TOL=${SOAK_FD_TOL:-16}
BIN=$ROOT/build/bin
W=$(realpath -m "${OMS_TEST_OUTPUT_DIR:-build/test-output}/soak")
rm -rf "$W"
mkdir -p "$W"
[[ "$MINUTES" =~ ^[0-9]+$ ]] && [ "$MINUTES" -ge 1 ] || { echo "soak: SOAK_MINUTES must be a whole number >= 1" >&2; exit 2; }
eval "$(bash scripts/stack.sh env)"
export KAFKA_BROKERS DATABASE_HOST DATABASE_PORT DATABASE_USER DATABASE_PASSWORD
export JWT_SECRET=${JWT_SECRET:-soak-secret-soak-secret-soak-secret-0123456}
unset OMS_CONFIG

OMSD_PID= SIM_PID= CLIENT_PID= DB=
sql_admin() { psql -X -q -At -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d postgres -c "$1"; }
stop_pid() { # PID SECONDS
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 1 $(($2 * 10))); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
cleanup() {
    [ -n "$SIM_PID" ] && kill -KILL "$SIM_PID" 2>/dev/null
    stop_pid "$CLIENT_PID" 10
    stop_pid "$OMSD_PID" 15
    [ -n "$DB" ] && sql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

p=oms-soak-$RANDOM$RANDOM
GROUP=$p
cat >"$W/topics.yaml" <<YAML
defaults:
  partitions: 6
  replication_factor: 1
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
kafka:
  projection_group: $GROUP
  topics:
    orders: $p.orders
    inventory: $p.inventory
    notifications: $p.notifications
    dlq: $p.dlq
    presence: $p.presence
log:
  format: json
YAML
# The resume history fills for resume.history_ttl_s (5 min by default) before
# it is steady; a minute keeps that inside the warm-up of a 10-minute soak.
if grep -q 'resume.history_ttl_s' pkg/config/config.c 2>/dev/null; then
    printf 'resume:\n  history_ttl_s: %s\n' "${SOAK_HISTORY_TTL_S:-60}" >>"$W/omsd.yaml"
fi
export OMS_CONFIG=$W/omsd.yaml
"$BIN/omsctl" topics create --file "$W/topics.yaml" >"$W/topics.out" 2>&1 || { cat "$W/topics.out"; exit 1; }
DB=oms_soak_$RANDOM$RANDOM
sql_admin "CREATE DATABASE $DB" >/dev/null || exit 1
export DATABASE_NAME=$DB

for _ in $(seq 1 50); do
    PORT=$((20000 + RANDOM % 12000))
    ss -Hltn "sport = :$PORT" | grep -q . || break
done
PORT=$PORT "$BIN/omsd" --config "$W/omsd.yaml" >"$W/omsd.log" 2>&1 &
OMSD_PID=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/websocket/health" && break
    sleep 0.1
done
kill -0 "$OMSD_PID" 2>/dev/null || { echo "soak: omsd did not start"; tail "$W/omsd.log"; exit 1; }

node tests/node/drill-client.js --url "ws://127.0.0.1:$PORT/events" --out "$W/clients" \
    --clients "$CLIENTS" --customers $((CLIENTS / 5)) --churn "$CHURN" \
    --max-seconds $((MINUTES * 60 + 300)) >"$W/clients.log" 2>&1 &
CLIENT_PID=$!
"$BIN/oms-producer" simulate --rate "$RATE" --duration $((MINUTES * 60)) --seed "$RANDOM" \
    --json-summary >"$W/sim.json" 2>"$W/sim.err" &
SIM_PID=$!
echo "# soak: $MINUTES min, $RATE events/s, $CLIENTS clients ($CHURN reconnects a minute), omsd pid $OMSD_PID, sample every $EVERY s"

field() {
    python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))[sys.argv[2]])
except Exception: print(0)' "$W/clients/status.json" "$1"
}
echo "seconds,rss_kib,fds,clients_open,events_delivered" >"$W/samples.csv"
t0=$SECONDS
end=$((t0 + MINUTES * 60))
alive=1
while [ "$SECONDS" -lt "$end" ]; do
    if ! kill -0 "$OMSD_PID" 2>/dev/null; then alive=0; break; fi
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$OMSD_PID/status" 2>/dev/null)
    fds=$(ls "/proc/$OMSD_PID/fd" 2>/dev/null | wc -l)
    echo "$((SECONDS - t0)),${rss:-0},$fds,$(field open),$(field events)" >>"$W/samples.csv"
    sleep "$EVERY"
done
wait "$SIM_PID"
sim_rc=$?
SIM_PID=

python3 - "$W/samples.csv" "$RSS_TOL" "$FD_TOL" >"$W/verdict.txt" <<'PY'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
tol_pct, fd_tol = float(sys.argv[2]), int(sys.argv[3])
t = [int(r["seconds"]) for r in rows]
rss = [int(r["rss_kib"]) for r in rows]
fds = [int(r["fds"]) for r in rows]
n = len(rows)
step = max(1, n // 30)
print("# %8s %10s %6s %8s %12s" % ("seconds", "rss MiB", "fds", "clients", "delivered"))
for i in list(range(0, n, step)) + ([n - 1] if (n - 1) % step else []):
    r = rows[i]
    print("# %8s %10.1f %6s %8s %12s" % (r["seconds"], int(r["rss_kib"]) / 1024, r["fds"],
                                        r["clients_open"], r["events_delivered"]))
if n < 10:
    print("too few samples (%d)" % n)
    sys.exit(1)
warm = n // 5
after, last = slice(warm, warm + max(1, n // 5)), slice(n - max(1, n // 5), n)
r0, r1 = statistics.median(rss[after]), statistics.median(rss[last])
f0, f1 = statistics.median(fds[after]), statistics.median(fds[last])
rss_ok = r1 - r0 <= max(r0 * tol_pct / 100.0, 8 * 1024)
fd_ok = f1 - f0 <= fd_tol
print("start rss %.1f MiB fds %d; after warm-up (t=%d s) rss %.1f MiB fds %d; end rss %.1f MiB fds %d"
      % (rss[0] / 1024, fds[0], t[warm], r0 / 1024, f0, r1 / 1024, f1))
print("rss %s: %+.1f MiB (tolerance %.0f%% / 8 MiB); fds %s: %+d (tolerance %d)"
      % ("steady" if rss_ok else "GREW", (r1 - r0) / 1024, tol_pct, "steady" if fd_ok else "GREW",
         f1 - f0, fd_tol))
sys.exit(0 if rss_ok and fd_ok else 1)
PY
verdict=$?
cat "$W/verdict.txt"

fail=0
[ "$alive" = 1 ] || { echo "not ok - omsd died during the soak (see $W/omsd.log)"; fail=1; }
[ "$verdict" = 0 ] && echo "ok - omsd's RSS and open fds do not grow after the warm-up" ||
    { echo "not ok - omsd's RSS or open fds grew after the warm-up"; fail=1; }
[ "$sim_rc" = 0 ] && echo "ok - the producer delivered everything ($(cat "$W/sim.json" | tr -d '\n' | head -c 120))" ||
    { echo "not ok - the producer failed (exit $sim_rc)"; fail=1; }
# the projections kept up: they catch up and equal the fold of the log
for _ in $(seq 1 120); do
    l=$("$BIN/omsctl" projections status --json --group "$GROUP" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["lag"])' 2>/dev/null)
    [ "$l" = 0 ] && break
    sleep 0.5
done
timeout 120 "$BIN/omsctl" tail all --from-beginning --exit-at-end --format json >"$W/tail.json" 2>"$W/tail.err"
if python3 tests/integration/projections_ref.py compare "$W/tail.json" >"$W/compare.out" 2>&1; then
    echo "ok - the Postgres tables equal the fold of the log"
else
    echo "not ok - the Postgres tables equal the fold of the log"; sed 's/^/# /' "$W/compare.out" | head; fail=1
fi
echo "# samples in $W/samples.csv"
exit "$fail"
