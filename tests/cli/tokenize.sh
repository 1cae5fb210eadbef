#!/bin/sh
# redit tokenize against SentencePiece's ids for the Llama-2 vocabulary (fixture
# llama2-tokenizer/expected.jsonl, made with SentencePiece 0.1.97).
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

TOK="$FIX/llama2-tokenizer/tokenizer.bin"
EXPECTED="$FIX/llama2-tokenizer/expected.jsonl"
need_fixture "$TOK"
need_fixture "$EXPECTED"

# Plain text on stdin, byte for byte.
printf 'Hello world' >"$TMP/in"
expect_ok "tokenize 'Hello world'" "$REDIT" tokenize -m "$TOK" <"$TMP/in"
[ "$(cat "$TMP/out")" = "15043 3186" ] || fail "'Hello world' gave '$(cat "$TMP/out")', expected '15043 3186'"
expect_ok "tokenize --bos" "$REDIT" tokenize -m "$TOK" --bos <"$TMP/in"
[ "$(cat "$TMP/out")" = "1 15043 3186" ] || fail "--bos gave '$(cat "$TMP/out")', expected '1 15043 3186'"
: >"$TMP/empty"
expect_ok "tokenize of empty stdin" "$REDIT" tokenize -m "$TOK" <"$TMP/empty"
[ "$(cat "$TMP/out")" = "" ] || fail "empty stdin gave '$(cat "$TMP/out")', expected no ids"

# --jsonl: feed the fixture's texts without their ids, compare every ids array.
"$PY" -c '
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        if line.strip():
            print(json.dumps({"text": json.loads(line)["text"]}))
' "$EXPECTED" >"$TMP/texts.jsonl" || fail "python3 could not read $EXPECTED"
expect_ok "tokenize --jsonl" "$REDIT" tokenize -m "$TOK" --jsonl <"$TMP/texts.jsonl"
"$PY" -c '
import json, sys
want = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
got = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
if len(got) != len(want):
    sys.exit("%d output lines for %d texts" % (len(got), len(want)))
bad = 0
for i, (w, g) in enumerate(zip(want, got), 1):
    if g.get("text") != w["text"] or g.get("ids") != w["ids"]:
        bad += 1
        print("line %d: text %r: got %r, expected %r" % (i, w["text"][:60], g.get("ids"), w["ids"]),
              file=sys.stderr)
if bad:
    sys.exit("%d of %d texts tokenized differently" % (bad, len(want)))
' "$EXPECTED" "$TMP/out" || fail "--jsonl output differs from $EXPECTED (see above)"

# Hugging Face tokenizer.json (detected by its content): the same ids as tokenizer.bin for
# every fixture text; Mistral's with its tokenizer_config.json beside it; other kinds refused.
cp "$TMP/out" "$TMP/out_bin"
expect_ok "tokenize --jsonl with tokenizer.json" \
    "$REDIT" tokenize -m "$FIX/llama2-tokenizer/tokenizer.json" --jsonl <"$TMP/texts.jsonl"
cmp -s "$TMP/out" "$TMP/out_bin" || fail "tokenizer.json and tokenizer.bin tokenize the fixture texts differently"
need_fixture "$FIX/mistral-tokenizer/tokenizer.json"
expect_ok "tokenize with Mistral's tokenizer.json" \
    "$REDIT" tokenize -m "$FIX/mistral-tokenizer/tokenizer.json" --bos <"$TMP/in"
[ "$(cat "$TMP/out")" = "1 22557 1526" ] || fail "Mistral 'Hello world' gave '$(cat "$TMP/out")', expected '1 22557 1526'"
printf '  {"model": {"type": "WordPiece", "vocab": {"a": 0}}}' >"$TMP/wordpiece.json"
expect_fail "tokenize with a WordPiece tokenizer.json" "WordPiece tokenizer.*not supported" \
    "$REDIT" tokenize -m "$TMP/wordpiece.json" <"$TMP/in"

# Bad input and a model without a tokenizer.
printf '{"txt": "no text field"}\n' >"$TMP/bad.jsonl"
expect_fail "--jsonl line without text" 'line 1: expected a JSON object with a string "text"' \
    "$REDIT" tokenize -m "$TOK" --jsonl <"$TMP/bad.jsonl"
expect_fail "tokenize with a missing file" "$TMP/missing.bin" \
    "$REDIT" tokenize -m "$TMP/missing.bin" <"$TMP/in"
need_fixture "$FIX/stories260K/stories260K.bin"
expect_fail "tokenize with a model lacking a tokenizer" "has no tokenizer" \
    "$REDIT" tokenize -m "$FIX/stories260K/stories260K.bin" <"$TMP/in"
echo "tests/cli/tokenize.sh: ok"
