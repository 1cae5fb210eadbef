#!/bin/sh
# The layering of src/ (DESIGN.md: core < io < text < model < gen < data < train < lua < tui <
# cli; data flows downward only), checked from the #include lines by tools/check-layers.py:
# no upward include, no cycle between folders, engine-internal headers only in the engine,
# no folder reaching into another's private headers. Also checks that the checker catches an
# upward include (a copy of the tree with one planted).
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

"$PY" tools/check-layers.py --graph >"$TMP/graph" 2>&1 || fail "layering: $(cat "$TMP/graph")"

# the checker must see a violation: io including a model header, and a cli file including a
# private tui header
mkdir -p "$TMP/tree/tools"
cp -R src include "$TMP/tree/"
cp tools/check-layers.py "$TMP/tree/tools/"
printf '#include "redit/model.h"\n' >>"$TMP/tree/src/io/gguf.c"
printf '#include "tui/app.h"\n' >>"$TMP/tree/src/cli/main.c"
if "$PY" "$TMP/tree/tools/check-layers.py" >"$TMP/bad" 2>&1; then
    fail "the checker accepted an upward include: $(cat "$TMP/bad")"
fi
grep -q 'src/io/gguf.c:.*the io floor includes "redit/model.h" of the model floor above it' "$TMP/bad" ||
    fail "no report of the planted io -> model include: $(cat "$TMP/bad")"
grep -q 'src/cli/main.c:.*"tui/app.h" is private to src/tui/' "$TMP/bad" ||
    fail "no report of the planted private include: $(cat "$TMP/bad")"
echo "tests/cli/layers.sh: ok ($(tail -n 1 "$TMP/graph"))"
