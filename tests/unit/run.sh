#!/bin/sh
# tests/unit/run.sh BIN...
# Runs every unit-test binary (each built from tests/unit/<area>/<file>.c with test.h), shows
# failures as they come, and sums the `N passed, N failed` line each one prints into one final
# line `unit: N passed, N failed`. Exits 1 if any test failed or a binary did not report (it
# crashed outside a test, or was killed). `ok` lines are hidden unless PT_TEST_VERBOSE=1.
set -u

passed=0
failed=0
bad_bins=""
out=$(mktemp "${TMPDIR:-/tmp}/petrel-unit.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT INT TERM

for bin in "$@"; do
    name=${bin#*/tests/unit/}
    "$bin" >"$out" 2>&1
    rc=$?
    if [ "${PT_TEST_VERBOSE:-0}" = 1 ]; then
        sed "s|^|$name: |" "$out"
    else
        grep -v -e '^ok ' -e '^[0-9][0-9]* passed, [0-9][0-9]* failed$' "$out" | sed "s|^|$name: |"
    fi
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    if [ -z "$summary" ]; then
        echo "$name: exited with status $rc without a summary line"
        failed=$((failed + 1))
        bad_bins="$bad_bins $name"
        continue
    fi
    p=${summary%% passed*}
    f=${summary#*passed, }
    f=${f%% failed}
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -eq 0 ] && [ "$rc" -ne 0 ]; then
        # e.g. LeakSanitizer at exit of the runner itself
        echo "$name: all tests passed but the binary exited with status $rc"
        failed=$((failed + 1))
    fi
    [ "$f" -ne 0 ] && bad_bins="$bad_bins $name"
done

[ -n "$bad_bins" ] && echo "failing binaries:$bad_bins"
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
