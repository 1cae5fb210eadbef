#!/bin/sh
# Runs every cmocka suite (build/tests/test_*) and every command-line test
# (tests/cli/*.sh) and prints a closing "N passed, N failed" line (suites and scripts).
BUILD=${1:-build}
passed=0
failed=0
failed_names=""
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== $t"
    if "$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names="$failed_names $t"; fi
done
for s in tests/cli/*.sh; do
    [ -f "$s" ] || continue
    echo "== $s"
    if BUILD="$BUILD" sh "$s"; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names="$failed_names $s"; fi
done
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
