#!/bin/sh
# Checks that redit encodes exactly like SentencePiece with the default model's tokenizer:
# every line of held-out pretraining text and of SpamAssassin mail (tokenizer_lines.py) is
# encoded by spm_encode --output_format=id (tokenizer.model) and by `redit tokenize --jsonl`
# (tokenizer.bin); the ids must be equal line by line. Prints the first differences.
#
# usage: tools/default-model/check_tokenizer.sh CORPUS_DIR TOKENIZER_DIR [REDIT]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 CORPUS_DIR TOKENIZER_DIR [REDIT]" >&2
    exit 2
fi
corpus=$1
tok=$2
redit=${3:-build/redit}
CACHE=${CACHE:-build/corpus-cache}
work=$tok/check
mkdir -p "$work"
/usr/bin/python3 "$here/tokenizer_lines.py" "$CACHE/npm" "$corpus" "$work/lines.txt"
spm_encode --model="$tok/tokenizer.model" --output_format=id < "$work/lines.txt" > "$work/spm.ids"
/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="surrogateescape"):
    print(json.dumps({"text": line.rstrip("\n")}))' "$work/lines.txt" > "$work/lines.jsonl"
"$redit" tokenize -m "$tok/tokenizer.bin" --jsonl < "$work/lines.jsonl" > "$work/redit.jsonl"
/usr/bin/python3 - "$work/spm.ids" "$work/redit.jsonl" "$work/lines.txt" <<'PY'
import json, sys
spm = [l.split() for l in open(sys.argv[1])]
red = [[str(i) for i in json.loads(l)["ids"]] for l in open(sys.argv[2])]
text = open(sys.argv[3], encoding="utf-8", errors="surrogateescape").read().split("\n")
if len(spm) != len(red):
    sys.exit("tokenizer check: %d lines from spm_encode, %d from redit" % (len(spm), len(red)))
bad = [i for i in range(len(spm)) if spm[i] != red[i]]
ntok = sum(len(s) for s in spm)
for i in bad[:5]:
    k = next((j for j in range(min(len(spm[i]), len(red[i]))) if spm[i][j] != red[i][j]),
             min(len(spm[i]), len(red[i])))
    print("line %d differs at id %d: spm %s | redit %s\n  text: %r" % (
        i + 1, k, " ".join(spm[i][k:k + 8]), " ".join(red[i][k:k + 8]), text[i][:200]))
print("tokenizer check: %d lines, %d tokens, %d lines differ" % (len(spm), ntok, len(bad)))
sys.exit(1 if bad else 0)
PY
