#!/bin/sh
# tools/fuzz-loaders.py itself: a command that runs past --timeout is a finding (reported with
# its kept input and command) and the run goes on with the remaining inputs and kinds; the
# killed commands leave no temporary files; a clean run removes its work folder.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

FUZZ=tools/fuzz-loaders.py
need_fixture "$FIX/stories260K/stories260K.bin"
# a timeout no command meets (a redit that first sleeps 1 s, against a 0.3 s timeout): every
# mutated run is a finding, both kinds still run
case $REDIT in /*) real=$REDIT ;; *) real=$PWD/$REDIT ;; esac
printf '#!/bin/sh\nsleep 1\nexec "%s" "$@"\n' "$real" >"$TMP/slow-redit"
chmod +x "$TMP/slow-redit"
status=0
TMPDIR="$TMP" "$PY" "$FUZZ" "$TMP/slow-redit" --runs 2 --only tokbin edits --timeout 0.3 >"$TMP/out" 2>"$TMP/err" || status=$?
[ "$status" -eq 1 ] || fail "a timed-out run should exit 1, got $status: $(tail -c 800 "$TMP/err")"
grep -q "Traceback" "$TMP/err" && fail "the tool died: $(tail -c 800 "$TMP/err")"
n=$(grep -c '^TIMEOUT ' "$TMP/out" || true)
[ "$n" -eq 4 ] || fail "expected 4 timeouts (2 runs × 2 kinds), found $n: $(head -c 800 "$TMP/out")"
expect_grep "tokbin summary" "$TMP/out" '^tokbin +2 mutated files read: 0 accepted, 2 timed out'
expect_grep "edits summary" "$TMP/out" '^edits +2 mutated files read: 0 accepted, 2 timed out'
expect_grep "command shown" "$TMP/out" '^  command: .*logits .*failed-edits-1\.safetensors'
work=$(sed -n 's/^fuzz-loaders: 4 failures; inputs kept in //p' "$TMP/out")
[ -n "$work" ] && [ -d "$work" ] || fail "the work folder with the findings was not kept"
for f in failed-tokbin-0.bin failed-tokbin-1.bin failed-edits-0.safetensors failed-edits-1.safetensors; do
    [ -s "$work/$f" ] || fail "input $f was not kept"
done
stray=$(find "$work" -name '*.tmp-*' -o -name '*.partial')
[ -z "$stray" ] || fail "killed commands left temporary files: $stray"
rm -rf "$work"
# a clean run: exit 0, nothing left behind
TMPDIR="$TMP" "$PY" "$FUZZ" "$REDIT" --runs 1 --only tokbin >"$TMP/out" 2>&1 || fail "clean run failed: $(tail -c 800 "$TMP/out")"
left=$(find "$TMP" -maxdepth 1 -name 'redit-fuzz-*')
[ -z "$left" ] || fail "a clean run left its work folder: $left"
echo "tests/cli/fuzz_tool.sh: ok"
