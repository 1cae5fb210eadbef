#!/bin/sh
# redit convert: the demo model (F16) written as F32 and back as F16 gives the same logits
# bit for bit (F16 → F32 → F16 is exact), a quantised type with columns that are not whole
# blocks is refused with the tensor named, an unknown type is refused.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
expect_ok "convert to F32" "$REDIT" convert -m "$M" --type F32 -o "$TMP/f32.gguf" --name demo32
expect_ok "info" "$REDIT" info -m "$TMP/f32.gguf"
grep -q "demo32" "$TMP/out" || fail "the new name is not in the file"
grep -q "F32" "$TMP/out" || fail "the converted file is not F32"
expect_ok "convert back to F16" "$REDIT" convert -m "$TMP/f32.gguf" --type F16 -o "$TMP/f16.gguf"
expect_ok "logits of the original" "$REDIT" logits -m "$M" --ids "1 5 9 13" -o "$TMP/a.f32"
expect_ok "logits of the round trip" "$REDIT" logits -m "$TMP/f16.gguf" --ids "1 5 9 13" -o "$TMP/b.f32"
cmp -s "$TMP/a.f32" "$TMP/b.f32" || fail "F16 -> F32 -> F16 changed the logits"
expect_fail "columns not whole blocks" "ffn_down.*not a multiple" "$REDIT" convert -m "$M" --type Q8_0 -o "$TMP/q.gguf"
[ ! -e "$TMP/q.gguf" ] || fail "a refused conversion left a file"
expect_fail "unknown type" "unknown storage type" "$REDIT" convert -m "$M" --type Q9 -o "$TMP/q.gguf"
echo "tests/cli/convert.sh: ok"
