#!/usr/bin/env bash
# Test runner: unit tests (cmocka binaries under build/tests/) and
# integration scripts (tests/integration/NNNN-*.sh, TAP-style "ok"/"not ok"
# lines). Ends with the line "N passed, N failed".
#   tests/run.sh --unit | --integration | --all   [PATTERN]
set -u
cd "$(dirname "$0")/.."
mode=${1:---all}
pattern=${2:-}
passed=0
failed=0
failures=()
out=${OMS_TEST_OUTPUT_DIR:-build/test-output}
mkdir -p "$out"

run_unit() {
    local bin name log p f
    for bin in build/tests/test_*; do
        [ -x "$bin" ] || continue
        name=$(basename "$bin")
        [ -n "$pattern" ] && [[ $name != *$pattern* ]] && continue
        log="$out/$name.log"
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
            "$bin" >"$log" 2>&1
        local rc=$?
        p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | tail -1)
        f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | tail -1)
        p=${p:-0}
        f=${f:-0}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1 # crashed, sanitizer report or leak
        fi
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$f" -ne 0 ]; then
            failures+=("$name (see $log)")
            echo "FAIL $name: $p passed, $f failed"
            grep -E '^\[  (FAILED|ERROR)|ERROR:|runtime error|LeakSanitizer' "$log" | head -20
        else
            echo "ok   $name: $p passed"
        fi
    done
}

run_integration() {
    local t name log p f
    for t in tests/integration/[0-9]*.sh; do
        [ -f "$t" ] || continue
        name=$(basename "$t" .sh)
        [ -n "$pattern" ] && [[ $name != *$pattern* ]] && continue
        log="$out/$name.log"
        local start=$SECONDS
        OMS_TEST_OUT="$out/$name" timeout 900 bash "$t" >"$log" 2>&1
        local rc=$?
        p=$(grep -c '^ok ' "$log")
        f=$(grep -c '^not ok ' "$log")
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1
            echo "not ok - $name exited with status $rc" >>"$log"
        fi
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$f" -ne 0 ]; then
            failures+=("$name (see $log)")
            echo "FAIL $name: $p passed, $f failed ($((SECONDS - start)) s)"
            grep -E '^not ok|^#' "$log" | head -30
        else
            echo "ok   $name: $p passed ($((SECONDS - start)) s)"
        fi
    done
}

case "$mode" in
--unit) run_unit ;;
--integration) run_integration ;;
--all) run_unit; run_integration ;;
*) echo "usage: tests/run.sh --unit|--integration|--all [PATTERN]" >&2; exit 2 ;;
esac

if [ ${#failures[@]} -gt 0 ]; then
    echo "failed:"
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
