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
# Then the same events written in each other wire format of BENCH_FORMATS
# (default: confluent json; --format of oms-producer, the Confluent one
# through the schema registry of SCHEMA_REGISTRY_URL) into topics of their
# own, replayed BENCH_ROUNDS times each: decoded events/s per format against
# single-object (targets: Confluent within 10 %, JSON at least half).
# Loopback only, bounded (a few minutes here).
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

# setup_format F: N events in wire format F into topics of their own; their
# configuration in $T/oms-F.yaml
setup_format() {
    local f=$1 p="oms-bench-rp-$1-$RANDOM$RANDOM"
    cat >"$T/oms-$f.yaml" <<YAML
kafka:
  topics: {orders: $p.orders, inventory: $p.inventory, notifications: $p.notifications, dlq: $p.dlq, presence: $p.presence}
YAML
    cat >"$T/topics-$f.yaml" <<YAML
defaults: {partitions: 6, replication_factor: 1}
topics:
  - {name: $p.orders}
  - {name: $p.inventory}
  - {name: $p.notifications}
  - {name: $p.dlq}
YAML
    OMS_CONFIG=$T/oms-$f.yaml $BIN/omsctl topics create --file "$T/topics-$f.yaml" >/dev/null
    OMS_CONFIG=$T/oms-$f.yaml $BIN/oms-producer simulate --rate max --count "$N" --duration 0 \
        --seed 1 --format "$f" --json-summary >"$T/produce-$f.json" 2>"$T/produce-$f.err" \
        || { cat "$T/produce-$f.err" >&2; exit 1; }
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["delivered"]==int(sys.argv[2]), s' \
        "$T/produce-$f.json" "$N"
    if [ "$f" = soe ]; then P=$p; fi
}
setup_format soe
export OMS_CONFIG=$T/oms-soe.yaml
OUT=$T/out.jsonl
# run_replay [FORMAT] → events/s (wall); checks the output. The events per
# second of CPU time omsctl used (user + system) go to $T/cpu-FORMAT: on a
# machine shared with other work, wall time measures the neighbours too.
run_replay() {
    local t0 t1 lines f=${1:-soe} cpu
    rm -f "$OUT"
    sync # the last round's file: freed and written back before the clock starts
    t0=$(ns)
    OMS_CONFIG=$T/oms-$f.yaml /usr/bin/time -f '%U %S' -o "$T/time" $BIN/omsctl replay \
        --topic orders --topic inventory --topic notifications --from beginning \
        --output "$OUT" 2>"$T/replay.err" || { cat "$T/replay.err" >&2; exit 1; }
    t1=$(ns)
    lines=$(wc -l <"$OUT")
    [ "$lines" -eq "$N" ] || { echo "replay: output has $lines lines, expected $N" >&2; exit 1; }
    cpu=$(awk -v n="$N" '{ s = $1 + $2; print (s > 0 ? int(n / s) : 0) }' "$T/time")
    echo "$cpu" >>"$T/cpu-$f"
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

# ---- the other wire formats: same events, same reader ---------------------------
FORMATS=${BENCH_FORMATS:-confluent json}
for f in $FORMATS; do
    if [ "$f" = confluent ] && [ -z "${SCHEMA_REGISTRY_URL:-}" ]; then
        say "confluent: skipped, no schema registry (REGISTRY=1 make stack-up, or make bench)"
        continue
    fi
    setup_format "$f"
    run_replay "$f" >/dev/null # warm-up
    rm -f "$T/cpu-$f" "$T/cpu-soe"
    fr=()
    so=()
    for r in $(seq 1 "$ROUNDS"); do
        # alternate with single-object rounds: the same machine load on both
        if [ $((r % 2)) -eq 1 ]; then
            fr+=("$(run_replay "$f")")
            so+=("$(run_replay soe)")
        else
            so+=("$(run_replay soe)")
            fr+=("$(run_replay "$f")")
        fi
    done
    mf=$(median "${fr[@]}")
    ms2=$(median "${so[@]}")
    # shellcheck disable=SC2046
    cf=$(median $(cat "$T/cpu-$f"))
    # shellcheck disable=SC2046
    cs=$(median $(cat "$T/cpu-soe"))
    say "format $f: ${fr[*]} events/s -> median $mf; single-object alongside: median $ms2"
    say "format $f: per CPU second $(paste -sd' ' "$T/cpu-$f") -> median $cf; single-object $cs"
    python3 -c "import sys; f,o,cf,co=map(int,sys.argv[2:]); print('replay: %s %.2fx single-object in wall time, %.2fx per CPU second (target: %s)' % (sys.argv[1], f/o, cf/co, '>= 0.90x' if sys.argv[1]=='confluent' else '>= 0.50x'))" "$f" "$mf" "$ms2" "$cf" "$cs"
done
