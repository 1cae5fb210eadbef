#!/bin/sh
# redit generate on stories260K: greedy ids match llama2.c's run.c (expected_greedy.json);
# text prompts need a tokenizer.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

MODEL="$FIX/stories260K/stories260K.bin"
GREEDY="$FIX/stories260K/expected_greedy.json"
need_fixture "$MODEL"
need_fixture "$GREEDY"

want=$("$PY" -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["prompt_ids"] == [1]
print(" ".join(str(i) for i in j["greedy_next_ids"][:16]))
' "$GREEDY") || fail "cannot read $GREEDY"

for threads in 1 2; do
    expect_ok "greedy generate, $threads thread(s)" "$REDIT" generate -m "$MODEL" --ids 1 -n 16 --temp 0 --threads "$threads"
    got=$(tr -s ' \n' ' ' <"$TMP/out" | sed 's/^ //; s/ $//')
    [ "$got" = "$want" ] || fail "greedy ids ($threads threads): got '$got', expected '$want'"
    expect_grep "statistics on stderr" "$TMP/err" 'generated 16 tokens'
done

expect_fail "text prompt without a tokenizer" "has no tokenizer.*needs one" \
    "$REDIT" generate -m "$MODEL" -p hello
expect_fail "id outside the vocabulary" "redit generate: prefill .*outside the vocabulary" \
    "$REDIT" generate -m "$MODEL" --ids "1 600" -n 2
expect_fail "--ids with a word" 'bad token id near "x"' "$REDIT" generate -m "$MODEL" --ids "1 x"
if grep -q "at least one id" "$TMP/err"; then fail "a bad --ids also claims the list is empty"; fi
echo "tests/cli/generate.sh: ok"
