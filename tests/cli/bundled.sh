#!/bin/sh
# The bundled base model (models/redit-base.gguf) and data sets: the model loads through the
# GGUF path with its tokenizer inside; that tokenizer encodes every line of the bundled
# data sets exactly as SentencePiece does with the model's own tokenizer.model; the model
# is trained (held-out perplexity on State of the Union text far below the vocabulary's
# 4,096); every data set loads with it.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

M=models/redit-base.gguf
SPM=models/redit-base.tokenizer.model
[ -f "$M" ] || fail "$M is missing (make default-model builds it)"
expect_ok "info" "$REDIT" info -m "$M"
grep -q "redit-base" "$TMP/out" || fail "the model's name is not redit-base: $(head -5 "$TMP/out")"
grep -qi "4096" "$TMP/out" || fail "the vocabulary is not 4,096 pieces"

# SentencePiece itself against redit, on every text of the bundled sets.
"$PY" -c 'import sentencepiece' 2>/dev/null || fail "python3-sentencepiece is missing (tools/install-deps.sh installs it)"
"$PY" - "$TMP/texts.jsonl" "$TMP/spm.jsonl" "$SPM" <<'PY'
import json, sys, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[3])
texts = []
for path in ["datasets/define-words/eval.jsonl", "datasets/spam-ham/eval.jsonl"]:
    for line in open(path, encoding="utf-8"):
        o = json.loads(line)
        texts += [o[k] for k in ("instruction", "output", "text") if k in o]
texts += [l for l in open("datasets/sotu-obama/eval.txt", encoding="utf-8").read().split("\n") if l][:50]
with open(sys.argv[1], "w") as t, open(sys.argv[2], "w") as s:
    for x in texts:
        t.write(json.dumps({"text": x}) + "\n")
        s.write(json.dumps(sp.encode(x)) + "\n")
PY
expect_ok "tokenize --jsonl" "$REDIT" tokenize -m "$M" --jsonl <"$TMP/texts.jsonl"
"$PY" - "$TMP/out" "$TMP/spm.jsonl" <<'PY' || fail "redit and SentencePiece disagree on the bundled model's tokenizer"
import json, sys
red = [json.loads(l)["ids"] for l in open(sys.argv[1])]
ref = [json.loads(l) for l in open(sys.argv[2])]
assert len(red) == len(ref), (len(red), len(ref))
bad = [i for i in range(len(ref)) if red[i] != ref[i]]
print("bundled tokenizer: %d texts, %d tokens, %d differ" % (len(ref), sum(map(len, ref)), len(bad)))
sys.exit(1 if bad else 0)
PY

# Trained: held-out perplexity on the adaptation set's eval split.
expect_ok "eval" "$REDIT" eval -m "$M" -d datasets/sotu-obama/eval.txt --max-len 256 --full-loss
ppl=$(awk '/^perplexity/ {print $2}' "$TMP/out")
"$PY" -c "import sys; sys.exit(0 if float('$ppl') < 200 else 1)" || fail "held-out perplexity $ppl: the model is not trained"
# Bits per byte: the file's bytes, less at most one space per chunk after the first (the
# space a chunk's first piece carries after BOS), and loss · tokens / bytes / ln 2.
"$PY" - "$TMP/out" datasets/sotu-obama/eval.txt <<'PY' || fail "bytes or bits/byte wrong: $(cat "$TMP/out")"
import math, os, sys
f = dict(l.split(None, 1) for l in open(sys.argv[1]) if l.strip())
examples, tokens, loss = int(f["examples"]), int(f["tokens"]), float(f["loss"])
nbytes = int(f["bytes"].split()[0])
bpb = float(f["bits/byte"].split()[0])
size = os.path.getsize(sys.argv[2])
assert 0 <= size - nbytes < examples, (size, nbytes, examples)
assert abs(bpb - loss * tokens / nbytes / math.log(2)) < 1e-3, bpb
PY

# The bundled sets load with the model's tokenizer (their first 40 lines: the whole spam set
# would be scored label by label), none cut short at the model's context of 256.
for f in datasets/define-words/train.jsonl datasets/spam-ham/train.jsonl; do
    head -n 40 "$f" >"$TMP/part.jsonl"
    expect_ok "load $f" "$REDIT" eval -m "$M" -d "$TMP/part.jsonl" --max-len 256 --template red
    grep -qi "truncated" "$TMP/err" && fail "$f: examples were truncated: $(cat "$TMP/err")"
done
# define-words-mc: one item per define-words eval word (none in train), its gloss among the
# choices at "gold", three other eval glosses as distractors; the first items score.
"$PY" <<'PY' || fail "datasets/define-words-mc does not match define-words"
import json
def words(path):
    return {json.loads(l)["instruction"][len("Define the word "):-1]: json.loads(l)["output"]
            for l in open(path, encoding="utf-8")}
ev, tr = words("datasets/define-words/eval.jsonl"), words("datasets/define-words/train.jsonl")
items = [json.loads(l) for l in open("datasets/define-words-mc/eval.jsonl", encoding="utf-8")]
assert len(items) == len(ev) == 300, len(items)
seen = set()
glosses = set(ev.values())
for it in items:
    w = it["context"][len("Human: Define the word "):-len(".\n\nAssistant:")]
    assert it["context"] == "Human: Define the word %s.\n\nAssistant:" % w, it["context"]
    assert w in ev and w not in tr and w not in seen, w
    seen.add(w)
    ch = [c[1:] for c in it["choices"]]
    assert len(ch) == 4 and ch[it["gold"]] == ev[w] and all(c in glosses for c in ch), it
    assert sum(c == ev[w] for c in ch) == 1, it
PY
head -n 5 datasets/define-words-mc/eval.jsonl >"$TMP/mc.jsonl"
expect_ok "score define-words-mc" "$REDIT" eval -m "$M" -d "$TMP/mc.jsonl" -t 1
expect_grep "define-words-mc" "$TMP/out" '^acc_norm +[0-9.]+ ± [0-9.]+'
echo "tests/cli/bundled.sh: ok"
