#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz one after the other, each for a
# bounded time, nice'd (see README.md). Fuzzers are expected in build/fuzz/
# (make fuzz-build).
#   tests/fuzz/run.sh [--seconds N] [--merge] [--out DIR] [--tap] TARGET...
#     --merge  new inputs that add coverage are merged into tests/fuzz/corpus/T
#              and crash inputs are kept in tests/fuzz/crashes/T (make fuzz);
#              without it the run works on a copy and the tree is not touched
#     --out    where logs (and crash inputs without --merge) go
#     --tap    print "ok"/"not ok" lines (the integration test)
# Prints one line per target: seconds, runs, execs/s, corpus size, crashes.
# Exits 1 when a target crashed.
set -u
cd "$(dirname "$0")/../.."
seconds=60
merge=0
tap=0
out=build/fuzz/runs
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    --out) out=$2; shift 2 ;;
    --tap) tap=1; shift ;;
    -*) echo "usage: tests/fuzz/run.sh [--seconds N] [--merge] [--out DIR] [--tap] TARGET..." >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || { echo "run.sh: no target named" >&2; exit 2; }
mkdir -p "$out"

# Largest input per target: small inputs keep the corpora small and the
# executions fast; every target's interesting structure fits.
max_len() {
    case "$1" in
    config) echo 4096 ;;
    avro) echo 2048 ;;
    *) echo 3072 ;;
    esac
}

status=0
for t in "${targets[@]}"; do
    bin=build/fuzz/$t
    if [ ! -x "$bin" ]; then
        echo "run.sh: $bin is missing (make fuzz-build)" >&2
        status=1
        [ $tap -eq 1 ] && echo "not ok - fuzz $t: $bin missing"
        continue
    fi
    corpus=tests/fuzz/corpus/$t
    work=$(mktemp -d)
    if [ $merge -eq 1 ]; then
        crashes=tests/fuzz/crashes/$t
    else
        crashes=$out/crashes/$t
    fi
    mkdir -p "$crashes" "$corpus"
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    before=$(find "$corpus" -type f | wc -l)
    log=$out/$t.log
    # the corpus directory is read only (new inputs go to $work); a
    # broken invariant aborts, a leak fails as well
    nice -n 15 "$bin" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" -artifact_prefix="$crashes/" \
        "$work" "$corpus" </dev/null >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    new=$(find "$work" -type f | wc -l)
    after=$before
    if [ $merge -eq 1 ] && [ "$new" -gt 0 ]; then
        nice -n 15 "$bin" -merge=1 -max_len="$(max_len "$t")" -timeout=10 "$corpus" "$work" \
            </dev/null >>"$log" 2>&1
        after=$(find "$corpus" -type f | wc -l)
    fi
    rm -rf "$work"
    if [ $rc -ne 0 ]; then
        status=1
        art=$(grep -o 'Test unit written to .*' "$log" | tail -1 | sed 's/Test unit written to //')
        echo "$t: CRASHED after ${runs:-?} runs (exit $rc): ${art:-see $log}"
        grep -E 'ERROR: |runtime error|fuzz invariant' "$log" | head -5
        [ $tap -eq 1 ] && echo "not ok - fuzz $t: crash ${art:-}, log $log"
    else
        echo "$t: ${seconds} s, ${runs:-0} runs, ${eps:-0} exec/s, corpus $before -> $after files ($new new in the run), 0 crashes"
        [ $tap -eq 1 ] && echo "ok - fuzz $t ${seconds} s, ${runs:-0} runs, 0 crashes"
    fi
done
exit $status
