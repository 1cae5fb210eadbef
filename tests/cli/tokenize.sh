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

# SentencePiece's tokenizer.model (a protobuf, detected by its content, not its name): the
# fixture's ids exactly; the bundled model's tokenizer.model gives the GGUF's ids and the
# ids of SentencePiece itself (Debian's python3-sentencepiece) on mixed texts.
need_fixture "$FIX/llama2-tokenizer/tokenizer.model"
cp "$FIX/llama2-tokenizer/tokenizer.model" "$TMP/llama2.vocab"
expect_ok "tokenize --jsonl with tokenizer.model" "$REDIT" tokenize -m "$TMP/llama2.vocab" --jsonl <"$TMP/texts.jsonl"
cmp -s "$TMP/out" "$TMP/out_bin" || fail "tokenizer.model tokenizes the fixture texts differently from expected.jsonl"
expect_ok "tokenize --bos with tokenizer.model" "$REDIT" tokenize -m "$TMP/llama2.vocab" --bos <"$TMP/in"
[ "$(cat "$TMP/out")" = "1 15043 3186" ] || fail "tokenizer.model --bos gave '$(cat "$TMP/out")', expected '1 15043 3186'"
SPM_BASE=models/redit-base.tokenizer.model
cat >"$TMP/mixed.jsonl" <<'JSONL'
{"text": "Define the word \"ocean\": a very large body of salt water."}
{"text": "  two leading spaces,   three inside and a tab\there\n"}
{"text": "Ünïcödé, 日本語, emoji \ud83d\ude00 and bytes: \u00ff\u0101"}
{"text": "Once upon a time, there was a little girl named Lily. She loved to play outside."}
{"text": ""}
JSONL
expect_ok "tokenize --jsonl with the bundled tokenizer.model" "$REDIT" tokenize -m "$SPM_BASE" --jsonl <"$TMP/mixed.jsonl"
cp "$TMP/out" "$TMP/out_spm"
expect_ok "tokenize --jsonl with the bundled GGUF" "$REDIT" tokenize -m models/redit-base.gguf --jsonl <"$TMP/mixed.jsonl"
cmp -s "$TMP/out" "$TMP/out_spm" || fail "the bundled tokenizer.model and redit-base.gguf tokenize differently"
if "$PY" -c 'import sentencepiece' 2>/dev/null; then
    "$PY" -c '
import json, sys, sentencepiece
sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
got = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
texts = [json.loads(l)["text"] for l in open(sys.argv[3], encoding="utf-8") if l.strip()]
assert len(got) == len(texts), "%d lines for %d texts" % (len(got), len(texts))
for g, t in zip(got, texts):
    if g["ids"] != sp.encode(t):
        sys.exit("text %r: redit %r, SentencePiece %r" % (t, g["ids"], sp.encode(t)))
' "$SPM_BASE" "$TMP/out_spm" "$TMP/mixed.jsonl" || fail "the bundled tokenizer.model: ids differ from SentencePiece's"
fi
# a unigram model and a truncated file are refused with a message naming the file
"$PY" -c '
import sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d[: len(d) // 2])
# trainer_spec.model_type (field 3 of field 2) BPE (2) -> UNIGRAM (1): find the spec by its tag
i = d.rfind(b"\x18\x02\x20")  # model_type=2 followed by vocab_size tag
assert i > 0
open(sys.argv[3], "wb").write(d[:i] + b"\x18\x01" + d[i + 2:])
' "$SPM_BASE" "$TMP/half.model" "$TMP/unigram.model" || fail "python3 could not make the broken tokenizer.model files"
expect_fail "tokenize with a truncated tokenizer.model" "half.model: (not a valid SentencePiece model: the protobuf breaks off|no trainer_spec)" \
    "$REDIT" tokenize -m "$TMP/half.model" <"$TMP/in"
expect_fail "tokenize with a unigram tokenizer.model" "unigram.model: a SentencePiece unigram model" \
    "$REDIT" tokenize -m "$TMP/unigram.model" <"$TMP/in"

# Bad input and a model without a tokenizer.
printf '{"txt": "no text field"}\n' >"$TMP/bad.jsonl"
expect_fail "--jsonl line without text" 'line 1: expected a JSON object with a string "text"' \
    "$REDIT" tokenize -m "$TOK" --jsonl <"$TMP/bad.jsonl"
expect_fail "tokenize with a missing file" "$TMP/missing.bin" \
    "$REDIT" tokenize -m "$TMP/missing.bin" <"$TMP/in"
need_fixture "$FIX/stories260K/stories260K.bin"
expect_fail "tokenize with a model lacking a tokenizer" "has no tokenizer" \
    "$REDIT" tokenize -m "$FIX/stories260K/stories260K.bin" <"$TMP/in"
# -p TEXT and -f FILE (llama-tokenize's flags) give the ids stdin gives.
printf 'Hello world' >"$TMP/hw.txt"
"$REDIT" tokenize -m models/redit-base.gguf <"$TMP/hw.txt" >"$TMP/stdin.ids" || fail "tokenize from stdin"
expect_ok "tokenize -p" "$REDIT" tokenize -m models/redit-base.gguf -p 'Hello world'
cmp -s "$TMP/out" "$TMP/stdin.ids" || fail "tokenize -p gave $(cat "$TMP/out"), stdin $(cat "$TMP/stdin.ids")"
expect_ok "tokenize -f" "$REDIT" tokenize -m models/redit-base.gguf -f "$TMP/hw.txt" </dev/null
cmp -s "$TMP/out" "$TMP/stdin.ids" || fail "tokenize -f gave $(cat "$TMP/out"), stdin $(cat "$TMP/stdin.ids")"
expect_fail "tokenize -p and -f" "give one of -p TEXT, -f FILE" \
    "$REDIT" tokenize -m models/redit-base.gguf -p x -f "$TMP/hw.txt"
echo "tests/cli/tokenize.sh: ok"
