#!/bin/sh
# Trains the default model's SentencePiece BPE tokenizer (vocab 4096, byte fallback, Llama-2's
# normalisation: none) on the pretraining text and writes it for redit as llama2.c's
# tokenizer.bin. Files in OUT_DIR: spm-input.txt (sentences), tokenizer.model and
# tokenizer.vocab (SentencePiece's), tokenizer.tsv (spm_export_vocab), tokenizer.bin.
#
# usage: tools/default-model/tokenizer.sh CORPUS_DIR OUT_DIR [SEED]
#   CORPUS_DIR holds pretrain.txt (tools/default-model/corpus.sh)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 CORPUS_DIR OUT_DIR [SEED]" >&2
    exit 2
fi
corpus=$1
out=$2
seed=${3:-1234}
VOCAB=${VOCAB:-4096}
CACHE=${CACHE:-build/corpus-cache}
# shellcheck source=tools/default-model/fetch.sh
. "$here/fetch.sh"
REDIT_DEBS="sentencepiece" redit_fetch_debs
mkdir -p "$out"
start=$(date +%s)
/usr/bin/python3 "$here/spm_input.py" "$corpus/pretrain.txt" "$out/spm-input.txt"
# Every printable ASCII character that the text has gets a piece of its own: the corpus has
# too few of "@%&*+/=[]_QX" for --character_coverage to keep them, and chat input has
# them (spm_train refuses a required character that never occurs).
/usr/bin/python3 -c '
import sys
seen = set(open(sys.argv[1], encoding="utf-8").read())
print("".join(c for c in map(chr, range(33, 127)) if c in seen), end="")
' "$out/spm-input.txt" > "$out/required-chars.txt"
echo "tokenizer: spm_train BPE, vocab $VOCAB, byte fallback, seed $seed"
# Llama-2's trainer settings where they matter for encoding: identity normalisation, no
# whitespace clean-up, dummy prefix, digits split, whitespace-only pieces allowed, byte
# fallback, <unk>=0 <s>=1 </s>=2. One thread: the result does not depend on the machine.
spm_train --input="$out/spm-input.txt" --model_prefix="$out/tokenizer" \
    --model_type=bpe --vocab_size="$VOCAB" --character_coverage=0.9999 \
    --required_chars_file="$out/required-chars.txt" --byte_fallback=true \
    --split_digits=true --allow_whitespace_only_pieces=true \
    --normalization_rule_name=identity --remove_extra_whitespaces=false \
    --add_dummy_prefix=true --max_sentence_length=4192 \
    --input_sentence_size=3000000 --shuffle_input_sentence=true --random_seed="$seed" \
    --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 \
    --num_threads=1 --minloglevel=1 > "$out/spm_train.log" 2>&1 ||
    { tail -20 "$out/spm_train.log" >&2; exit 1; }
spm_export_vocab --model="$out/tokenizer.model" --output_format=vocab > "$out/tokenizer.tsv"
/usr/bin/python3 "$here/spm_to_llama2c.py" "$out/tokenizer.tsv" "$out/tokenizer.bin"
echo "tokenizer: done in $(( $(date +%s) - start )) s"
