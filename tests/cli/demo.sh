#!/bin/sh
# redit demo writes a random-weight GGUF model (F16, with a tokenizer) that the other
# commands read back; a truncated copy of it is refused.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

expect_ok "redit demo" "$REDIT" demo --dir "$TMP"
G="$TMP/random-demo.gguf"
[ -s "$G" ] || fail "redit demo did not write $G"
expect_grep "demo says what it wrote" "$TMP/out" "wrote $G"

expect_ok "info on the demo model" "$REDIT" info -m "$G"
expect_grep "GGUF" "$TMP/out" '^format +GGUF v[23]$'
expect_grep "F16 matrices" "$TMP/out" '^matrices +F16 '
expect_grep "tokenizer inside" "$TMP/out" '^tokenizer +SentencePiece BPE'

# Greedy generation from a text prompt is reproducible.
expect_ok "generate from the demo model" "$REDIT" generate -m "$G" -p "the" -n 8 --temp 0
cp "$TMP/out" "$TMP/first"
expect_ok "generate again" "$REDIT" generate -m "$G" -p "the" -n 8 --temp 0
cmp -s "$TMP/out" "$TMP/first" || fail "greedy generation differs between two runs"
expect_grep "generation starts with the prompt" "$TMP/first" '^the'
printf 'the ball' >"$TMP/in"
expect_ok "tokenize with the demo model" "$REDIT" tokenize -m "$G" <"$TMP/in"
expect_grep "ids printed" "$TMP/out" '^[0-9]+( [0-9]+)+$'

size=$(wc -c <"$G")
head -c $((size / 2)) "$G" >"$TMP/cut.gguf"
expect_fail "truncated GGUF" "$TMP/cut.gguf: .*(truncated|beyond the end)" "$REDIT" info -m "$TMP/cut.gguf"
echo "tests/cli/demo.sh: ok"
