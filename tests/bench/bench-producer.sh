#!/usr/bin/env bash
# oms-producer (Avro-encoded events, simulate --rate max) vs kcat -P producing
# the same number of records of the same average size, with keys, to the same
# number of partitions (3 topics x 6 vs one topic of 18), same producer
# settings (idempotent, acks=all, linger 5 ms). One warm-up each, then
# ROUNDS alternating rounds; the median of each side is reported.
set -eu
N=${BENCH_EVENTS:-1000000}
ROUNDS=${BENCH_ROUNDS:-5}
BIN=build/bin
T=build/bench/producer
rm -rf "$T"
mkdir -p "$T"
ns() { date +%s%N; }

new_topics() { # prefix → config + topics
    local p=$1
    cat >"$T/$p.yaml" <<YAML
kafka:
  topics: {orders: $p.orders, inventory: $p.inventory, notifications: $p.notifications, dlq: $p.dlq, presence: $p.presence}
YAML
    cat >"$T/$p-topics.yaml" <<YAML
defaults: {partitions: 6, replication_factor: 1}
topics:
  - {name: $p.orders}
  - {name: $p.inventory}
  - {name: $p.notifications}
  - {name: $p.dlq}
  - {name: $p.kcat, partitions: 18}
YAML
    $BIN/omsctl topics create --file "$T/$p-topics.yaml" >/dev/null
}

run_ours() { # prefix count → events/s
    local p=$1 n=$2 t0 t1
    t0=$(ns)
    OMS_CONFIG=$T/$p.yaml $BIN/oms-producer simulate --rate max --count "$n" --seed 1 \
        --json-summary >"$T/$p.summary" 2>"$T/$p.err"
    t1=$(ns)
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["delivered"]==int(sys.argv[2]), s' \
        "$T/$p.summary" "$n"
    echo $((n * 1000000000 / (t1 - t0)))
}

run_kcat() { # prefix file count → records/s
    local p=$1 f=$2 n=$3 t0 t1
    t0=$(ns)
    kcat -P -b "$KAFKA_BROKERS" -t "$p.kcat" -K : -l \
        -X enable.idempotence=true -X acks=all -X linger.ms=5 -X batch.num.messages=10000 \
        -X batch.size=1000000 -X queue.buffering.max.messages=1000000 \
        -X queue.buffering.max.kbytes=1048576 "$f"
    t1=$(ns)
    echo $((n * 1000000000 / (t1 - t0)))
}

p0="oms-bench-$RANDOM$RANDOM"
new_topics "$p0"
run_ours "$p0" 200000 >/dev/null
total=0
for t in orders inventory notifications; do
    s=$(kcat -C -b "$KAFKA_BROKERS" -t "$p0.$t" -e -q -f '%S\n' | awk '{s+=$1} END {print s+0}')
    total=$((total + s))
done
avg=$((total / 200000))
python3 - "$N" "$avg" >"$T/kcat-input" <<'PY'
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
pad = "x" * size
w = sys.stdout.write
for i in range(n):
    w("ord-%016x:%s\n" % (i * 2654435761 % (1 << 64), pad))
PY
head -200000 "$T/kcat-input" >"$T/kcat-warm"
run_kcat "$p0" "$T/kcat-warm" 200000 >/dev/null

ours=()
theirs=()
for r in $(seq 1 "$ROUNDS"); do
    p="oms-bench-$RANDOM$RANDOM"
    new_topics "$p"
    if [ $((r % 2)) -eq 1 ]; then
        ours+=("$(run_ours "$p" "$N")")
        theirs+=("$(run_kcat "$p" "$T/kcat-input" "$N")")
    else
        theirs+=("$(run_kcat "$p" "$T/kcat-input" "$N")")
        ours+=("$(run_ours "$p" "$N")")
    fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mo=$(median "${ours[@]}")
mk=$(median "${theirs[@]}")
echo "producer: $N events per round, avg record $avg bytes, $ROUNDS rounds, 18 partitions each side"
echo "producer: oms-producer ${ours[*]} events/s -> median $mo (wall: start to all acknowledged)"
echo "producer: kcat -P      ${theirs[*]} records/s -> median $mk"
python3 -c "import sys; print('producer: ratio %.2fx kcat (target >= 1.0x, >= 300000 events/s)' % (int(sys.argv[1]) / int(sys.argv[2])))" "$mo" "$mk"
