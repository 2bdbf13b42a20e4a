#!/usr/bin/env bash
# make bench: benchmarks against the local stack (loopback only, bounded).
# Each bench prints its figures; results also go to build/bench/results.txt.
#   tests/bench/run.sh [NAME...]   (default: all)
set -u
cd "$(dirname "$0")/../.."
eval "$(bash scripts/stack.sh env)"
mkdir -p build/bench
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(producer gateway socketio projections replay resume recovery filters compression peers)
for n in "${names[@]}"; do
    f=tests/bench/bench-$n.sh
    [ -f "$f" ] || { echo "bench: no benchmark '$n'" >&2; exit 2; }
    echo "== $n"
    bash "$f" | tee -a build/bench/results.txt
done
