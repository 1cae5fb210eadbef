#!/bin/sh
# Pretrains the default model from random initialisation with redit's own full fine-tuning
# (`redit train --full`), then reports held-out perplexity and sample continuations.
# Needs the corpus (corpus.sh) and the tokenizer (tokenizer.sh).
#
# usage: tools/default-model/pretrain.sh CORPUS_DIR TOKENIZER_DIR OUT_DIR [SEED]
# environment (defaults in brackets):
#   REDIT [build/redit]  TOKENS [24576000] tokens to train on (~5 passes over the corpus)
#   BATCH [16] sequences of 256  LR [3e-3]  WARMUP [0.02]  WEIGHT_DECAY [0.1]  BETA2 [0.95]
#   DROPOUT [0.1] of the sub-layer outputs, in training passes only
#   EVAL_EVERY [500] steps  THREADS [all]  COMPUTE [bf16 with AVX512-BF16, else f32]
#   Shape: DIM [256] HIDDEN [768] LAYERS [6] HEADS [8] KV_HEADS [8] VOCAB [4096] SEQ [256]
#
# Files in OUT_DIR: init.bin (the random start, llama2.c format), pretrain-eval.txt (both
# held-out sets, the trainer's eval), model-f32.gguf (the best weights by held-out loss,
# tokenizer inside), train.csv (loss per step), eval.txt (perplexities and samples),
# train.state (the training state, written at every evaluation: run the script again after an
# interruption and the training resumes from the last evaluation exactly; train.csv then
# holds the steps after the resume; remove OUT_DIR to start afresh).
# Measured here (2 vCPUs, AVX512-BF16): the committed model's run took 6,017 s of training,
# 100 minutes (4,109 tokens/s in bf16 compute, other jobs beside it part of the time; f32 is
# about 1.4x slower).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: $0 CORPUS_DIR TOKENIZER_DIR OUT_DIR [SEED]" >&2
    exit 2
fi
corpus=$1
tok=$2/tokenizer.bin
out=$3
seed=${4:-1234}
REDIT=${REDIT:-build/redit}
TOKENS=${TOKENS:-24576000}
BATCH=${BATCH:-16}
LR=${LR:-3e-3}
WARMUP=${WARMUP:-0.02}
WEIGHT_DECAY=${WEIGHT_DECAY:-0.1}
BETA2=${BETA2:-0.95}
DROPOUT=${DROPOUT:-0.1}
EVAL_EVERY=${EVAL_EVERY:-500}
# OpenBLAS's idle threads spin for 2^28 cycles by default, taking CPU from redit's own
# worker threads between matrix products; 2^12 is 5-10% faster here. It is read when the
# library loads, so it has to be in the environment before redit starts.
export OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-12}
SEQ=${SEQ:-256}
threads=""
[ -n "${THREADS:-}" ] && threads="--threads $THREADS"
# bf16 matrix products (f32 master weights) where the CPU has AVX512-BF16: about 1.2-1.4x
# faster here; f32 elsewhere. COMPUTE overrides.
if [ -z "${COMPUTE:-}" ]; then
    if grep -q avx512_bf16 /proc/cpuinfo 2>/dev/null; then COMPUTE=bf16; else COMPUTE=f32; fi
fi
mkdir -p "$out"
start=$(date +%s)

/usr/bin/python3 "$here/init_model.py" "$out/init.bin" --dim "${DIM:-256}" \
    --hidden "${HIDDEN:-768}" --layers "${LAYERS:-6}" --heads "${HEADS:-8}" \
    --kv-heads "${KV_HEADS:-8}" --vocab "${VOCAB:-4096}" --seq "$SEQ" --seed "$seed"
cat "$corpus/pretrain-eval-sotu.txt" "$corpus/pretrain-eval-moby.txt" > "$out/pretrain-eval.txt"

# Steps of BATCH packed SEQ-token rows (6,000 with the defaults); --max-steps sets the
# schedule's length, so the cosine decay ends exactly at the last step (epochs is only an
# upper bound). The trainer evaluates every EVAL_EVERY steps and after the last one, and keeps
# the weights of the best evaluation.
steps=$(( TOKENS / (BATCH * SEQ) ))
[ "$steps" -ge 1 ] || steps=1
echo "pretrain: $steps steps of $BATCH x $SEQ tokens (~$TOKENS tokens), lr $LR, beta2 $BETA2, dropout $DROPOUT, seed $seed, $COMPUTE"
# shellcheck disable=SC2086
"$REDIT" train --full -m "$out/init.bin" --tokenizer "$tok" \
    -d "$corpus/pretrain.jsonl" --eval "$out/pretrain-eval.txt" --eval-every "$EVAL_EVERY" \
    --max-len "$SEQ" --pack --full-loss --batch "$BATCH" --micro-batch 8 \
    --lr "$LR" --schedule cosine --warmup "$WARMUP" --weight-decay "$WEIGHT_DECAY" --beta2 "$BETA2" \
    --dropout "$DROPOUT" \
    --clip 1 --epochs 100 --max-steps "$steps" --seed "$seed" $threads --compute "$COMPUTE" \
    --log "$out/train.csv" --state "$out/train.state" -o "$out/model-f32.gguf"

# shellcheck disable=SC2086 # $threads is empty or two words
{
    for set in sotu moby; do
        echo "held-out $set:"
        "$REDIT" eval -m "$out/model-f32.gguf" -d "$corpus/pretrain-eval-$set.txt" \
            --max-len "$SEQ" --full-loss $threads 2>&1 | grep -E 'tokens|loss|perplexity|bytes|bits'
    done
    for prompt in "The President said that" "Call me Ishmael." "In the beginning" \
        "A harbor is"; do
        echo "--- $prompt"
        "$REDIT" generate -m "$out/model-f32.gguf" -p "$prompt" -n 60 --temp 0.8 --top-k 40 \
            --seed "$seed" 2>/dev/null
        echo
    done
} | tee "$out/eval.txt"
size=$(wc -c < "$out/model-f32.gguf")
echo "pretrain: done in $(( $(date +%s) - start )) s; $out/model-f32.gguf is F32, $size bytes"
