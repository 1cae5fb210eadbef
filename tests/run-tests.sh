#!/bin/sh
# Runs every cmocka suite (build/tests/test_*) and every command-line test
# (tests/cli/*.sh) and prints a closing "N passed, N failed" line (suites and scripts).
BUILD=${1:-build}
# Model fingerprints are cached under $XDG_CACHE_HOME/redit (rd_model_fingerprint): the tests
# use a folder of their own, removed at the end.
XDG_CACHE_HOME=$(mktemp -d "${TMPDIR:-/tmp}/redit-test-cache.XXXXXX") || exit 1
export XDG_CACHE_HOME
trap 'rm -rf "$XDG_CACHE_HOME"' EXIT
# Under AddressSanitizer (make test-asan) LeakSanitizer leaves out Open MPI's own leaks at
# exit (tests/lsan-openmpi.supp names only its libraries); redit's are reported.
LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan-openmpi.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
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
