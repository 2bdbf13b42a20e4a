#!/usr/bin/env bash
# Fuzzing, the short version run by make test (tests/fuzz/README.md):
#   1. every corpus input and every crash input ever found replayed through
#      each harness built as a plain ASan+UBSan program (the regressions);
#   2. when clang is installed, each libFuzzer target for FUZZ_SHORT_SECONDS
#      (default 10) on a copy of its corpus: nothing in the tree changes,
#      a crash input found is kept under this test's output directory.
# Needs no stack.
source "$(dirname "$0")/lib.sh"
TARGETS="ws_frame rest jwt avro socketio config wire"
SECS=${FUZZ_SHORT_SECONDS:-10}

for t in $TARGETS; do
    bin=build/fuzz-replay/$t
    if [ ! -x "$bin" ]; then
        not_ok "replay $t: $bin missing (make fuzz-test-bins)"
        continue
    fi
    if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" "tests/fuzz/corpus/$t" "tests/fuzz/crashes/$t" >"$T/replay-$t.log" 2>&1; then
        ok "replay $t: $(paste -sd' ' "$T/replay-$t.log" | sed 's|tests/fuzz/||g')"
    else
        not_ok "replay $t: see $T/replay-$t.log"
        grep -E 'ERROR: |runtime error|fuzz invariant|replay:' "$T/replay-$t.log" | head -5 | sed 's/^/#   /'
    fi
done

if ! command -v clang >/dev/null 2>&1; then
    note "clang is not installed: the fuzzers are not run (scripts/deps.sh installs it)"
    exit 0
fi
for t in $TARGETS; do
    if [ ! -x "build/fuzz/$t" ]; then
        not_ok "fuzz $t: build/fuzz/$t missing (make fuzz-test-bins)"
        continue
    fi
    while read -r line; do
        case "$line" in
        "ok - "*) ok "${line#ok - }" ;;
        "not ok - "*) not_ok "${line#not ok - }" ;;
        esac
    done < <(bash tests/fuzz/run.sh --seconds "$SECS" --out "$T/fuzz" --tap "$t")
done
