#!/usr/bin/env bash
# omsctl replay (Avro decode + RealTimeEvent JSON frame per record, written to
# a file) vs kcat -C -e reading the same records raw to /dev/null.
#   1. BENCH_EVENTS (default 1,000,000) events from oms-producer simulate
#      --rate max --seed 1 into three fresh topics of 6 partitions each;
#   2. one warm-up read of each side (page cache, broker), then BENCH_ROUNDS
#      (default 5) alternating rounds of
#        omsctl replay --topic orders --topic inventory --topic notifications
#               --from beginning --output FILE           (one process, 3 topics)
#        kcat -C -e -q -o beginning -t TOPIC >/dev/null  (the three topics one
#               after the other: one process at a time, like omsctl)
#      and, for reference, kcat on the three topics at once (3 processes in
#      parallel on this machine's cores; wall time until the last ends);
#   3. the replay output must have exactly BENCH_EVENTS lines; the first
#      one's are all checked to be frames, one per record.
# Reports the medians: decoded events/s, kcat records/s and the ratio.
# Loopback only, bounded (about a minute here).
set -eu
cd "$(dirname "$0")/../.."
N=${BENCH_EVENTS:-1000000}
ROUNDS=${BENCH_ROUNDS:-5}
BIN=build/bin
T=build/bench/replay
say() { echo "replay: $*"; }
for f in "$BIN/omsctl" "$BIN/oms-producer"; do
    [ -x "$f" ] || { echo "replay: $f is missing: run 'make all'" >&2; exit 2; }
done
command -v kcat >/dev/null || { echo "replay: kcat is missing (make deps)" >&2; exit 2; }
rm -rf "$T"
mkdir -p "$T"
ns() { date +%s%N; }

P="oms-bench-rp-$RANDOM$RANDOM"
cat >"$T/oms.yaml" <<YAML
kafka:
  topics: {orders: $P.orders, inventory: $P.inventory, notifications: $P.notifications, dlq: $P.dlq, presence: $P.presence}
YAML
cat >"$T/topics.yaml" <<YAML
defaults: {partitions: 6, replication_factor: 1}
topics:
  - {name: $P.orders}
  - {name: $P.inventory}
  - {name: $P.notifications}
  - {name: $P.dlq}
YAML
export OMS_CONFIG=$T/oms.yaml
$BIN/omsctl topics create --file "$T/topics.yaml" >/dev/null
$BIN/oms-producer simulate --rate max --count "$N" --duration 0 --seed 1 --json-summary \
    >"$T/produce.json" 2>"$T/produce.err"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["delivered"]==int(sys.argv[2]), s' \
    "$T/produce.json" "$N"

OUT=$T/out.jsonl
run_replay() { # → events/s; checks the output
    local t0 t1 lines
    rm -f "$OUT"
    sync # the last round's file: freed and written back before the clock starts
    t0=$(ns)
    $BIN/omsctl replay --topic orders --topic inventory --topic notifications \
        --from beginning --output "$OUT" 2>"$T/replay.err"
    t1=$(ns)
    lines=$(wc -l <"$OUT")
    [ "$lines" -eq "$N" ] || { echo "replay: output has $lines lines, expected $N" >&2; exit 1; }
    echo $((N * 1000000000 / (t1 - t0)))
}
kcat_one() { # topic: read it from the beginning to its end, raw, to /dev/null
    kcat -C -b "$KAFKA_BROKERS" -t "$1" -e -q -o beginning >/dev/null
}
run_kcat_seq() { # → records/s, the three topics one after the other
    local t0 t1
    t0=$(ns)
    for t in orders inventory notifications; do kcat_one "$P.$t"; done
    t1=$(ns)
    echo $((N * 1000000000 / (t1 - t0)))
}
run_kcat_par() { # → records/s, the three topics at once
    local t0 t1 pids=()
    t0=$(ns)
    for t in orders inventory notifications; do
        kcat_one "$P.$t" &
        pids+=($!)
    done
    wait "${pids[@]}"
    t1=$(ns)
    echo $((N * 1000000000 / (t1 - t0)))
}

# same records on both sides: kcat counts them once
total=0
for t in orders inventory notifications; do
    c=$(kcat -C -b "$KAFKA_BROKERS" -t "$P.$t" -e -q -o beginning -f 'x\n' | wc -l)
    total=$((total + c))
done
[ "$total" -eq "$N" ] || { echo "replay: kcat sees $total records, expected $N" >&2; exit 1; }

run_replay >/dev/null
run_kcat_seq >/dev/null
# every line a frame, every record once
python3 - "$OUT" "$N" <<'PY'
import json, sys
ids = set()
for line in open(sys.argv[1], encoding="utf-8"):
    f = json.loads(line)
    assert f["event"] and f["data"]["type"] and f["data"]["data"]["eventId"], f
    ids.add(f["data"]["id"])
assert len(ids) == int(sys.argv[2]), len(ids)
PY

ours=()
seq_=()
par=()
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
        ours+=("$(run_replay)")
        seq_+=("$(run_kcat_seq)")
    else
        seq_+=("$(run_kcat_seq)")
        ours+=("$(run_replay)")
    fi
    par+=("$(run_kcat_par)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mo=$(median "${ours[@]}")
ms=$(median "${seq_[@]}")
mp=$(median "${par[@]}")
bytes=$(stat -c %s "$OUT")
say "$N events in 3 topics x 6 partitions, $ROUNDS rounds, output $OUT ($N lines, $((bytes / N)) bytes/line)"
say "omsctl replay --output    ${ours[*]} events/s -> median $mo (wall: start to exit)"
say "kcat -C -e, sequential    ${seq_[*]} records/s -> median $ms (3 topics one after the other)"
say "kcat -C -e, parallel      ${par[*]} records/s -> median $mp (3 processes at once, reference)"
python3 -c "import sys; o,s,p=map(int,sys.argv[1:]); print('replay: ratio %.2fx kcat sequential, %.2fx kcat parallel (target >= 0.5x, >= 1000000 events/s)' % (o/s, o/p))" "$mo" "$ms" "$mp"
