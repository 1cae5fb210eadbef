#!/bin/sh
# redit make-model writes a random model of a named shape straight into a storage type
# (GGUF) that loads back with that type and runs; bad requests are refused.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

expect_ok "make-model" "$REDIT" make-model --shape stories110M --type Q4_0 -o "$TMP/m.gguf"
expect_ok "info" "$REDIT" info -m "$TMP/m.gguf"
grep -q "GGUF" "$TMP/out" || fail "info does not say GGUF"
grep -q "Q4_0" "$TMP/out" || fail "info does not show Q4_0 matrices"
grep -q "dim 768" "$TMP/out" || fail "info does not show the stories110M shape"
expect_ok "generate" "$REDIT" generate -m "$TMP/m.gguf" --ids "1 5 9" -n 4 -t 0
# quant blocks cut short by the end of the file: a clear error naming the tensor
expect_ok "make-model Q4_K" "$REDIT" make-model --shape stories110M --type Q4_K -o "$TMP/k.gguf"
size=$(wc -c <"$TMP/k.gguf")
head -c $((size - 100)) "$TMP/k.gguf" >"$TMP/cut.gguf"
expect_fail "truncated Q4_K blocks" "beyond the end" "$REDIT" info -m "$TMP/cut.gguf"
grep -q "cut.gguf" "$TMP/err" || fail "the truncation message does not name the file"
expect_fail "Q4_K on a 288-wide model" "Q4_K" "$REDIT" make-model --shape stories15M --type Q4_K -o "$TMP/x.gguf"
expect_fail "unknown shape" "shape" "$REDIT" make-model --shape gpt5 --type F32 -o "$TMP/x.gguf"
[ ! -e "$TMP/x.gguf" ] || fail "a refused make-model left a file"
echo "tests/cli/make_model.sh: ok"
