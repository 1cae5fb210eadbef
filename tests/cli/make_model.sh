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
expect_ok "generate" "$REDIT" generate -m "$TMP/m.gguf" --ids "1 5 9" -n 4 --temp 0
# llama.cpp's Q4_K_M mixture: Q6_K for the classifier and attn_v/ffn_down of 6 of 12 layers
expect_ok "make-model Q4_K_M" "$REDIT" make-model --shape stories110M --type Q4_K_M --untied -o "$TMP/km.gguf"
expect_ok "info Q4_K_M" "$REDIT" info -m "$TMP/km.gguf"
grep -q "Q4_K ×73, Q6_K ×13" "$TMP/out" || fail "Q4_K_M: not 73 Q4_K and 13 Q6_K matrices"
grep -q "untied classifier" "$TMP/out" || fail "--untied: the classifier is tied"
expect_ok "generate Q4_K_M" "$REDIT" generate -m "$TMP/km.gguf" --ids "1 5 9" -n 4 --temp 0
# 288-wide rows are no whole 256-blocks: llama.cpp's fallbacks, Q5_0 and Q8_0
expect_ok "make-model Q4_K_M 288 wide" "$REDIT" make-model --shape stories15M --type Q4_K_M -o "$TMP/k15.gguf"
expect_ok "info Q4_K_M 288 wide" "$REDIT" info -m "$TMP/k15.gguf"
grep -q "Q5_0 ×" "$TMP/out" || fail "Q4_K_M on stories15M: no Q5_0 fallback"
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
