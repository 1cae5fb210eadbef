#!/bin/sh
# Checks redit's logits and edit-vector gradients against the independent PyTorch
# implementation in ../shared/tools/torch_ref (Debian's python3-torch), on random
# checkpoints it writes (GQA and plain multi-head, tied and untied classifier), with random
# RED vectors at both sites, at edit strengths 1 and 0.5, and on the stories260K fixture.
# Tolerances: logits |Δ| ≤ 1e-4·max(1, |ref|); gradients (torch in float64, redit in f32)
# |Δ| ≤ 1e-3·max|ref|.  LoRA and IA3 edits (issue 21) are checked the same way against
# tests/tools/peft_ref.py (PEFT's formulas on the same reference model; its self-checks run
# first).  Run by `make check-reference`.
set -eu
BUILD=${BUILD:-build}
REDIT="$BUILD/redit"
REF=../shared/tools/torch_ref
PY=/usr/bin/python3
HERE=tests/reference
if ! $PY -c 'import torch, numpy' 2>/dev/null; then
    echo "SKIPPED: the PyTorch reference needs Debian's python3-torch (make check-reference installs it)"
    exit 0
fi
[ -f "$REF/llama_red_ref.py" ] || { echo "FAILED: $REF/llama_red_ref.py is missing"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
IDS="1 17 42 300 5 99 256 7 128 64 3 511 200 11 90 45"

check_model() { # name model dim layers
    name=$1 model=$2 dim=$3 layers=$4
    edits="$tmp/edits.safetensors"
    $PY $HERE/reference.py edits "$dim" "$layers" 7 "$edits"
    for a in 1 0.5; do
        "$REDIT" logits -m "$model" --ids "$IDS" --edits "$edits" --force \
            --strength $a -o "$tmp/ours.f32" 2>/dev/null
        $PY $REF/llama_red_ref.py "$model" --mode logits --ids "$IDS" \
            --edits "$edits" --strength $a -o "$tmp/ref.f32" >/dev/null
        $PY $HERE/reference.py compare "$tmp/ours.f32" "$tmp/ref.f32" 1e-4 \
            "$name logits, edits at strength $a" || fail=1
        "$REDIT" edit-grad -m "$model" --ids "$IDS" --edits "$edits" --force \
            --strength $a -o "$tmp/ours.f32" 2>/dev/null
        $PY $REF/llama_red_ref.py "$model" --mode edit-grad --ids "$IDS" \
            --edits "$edits" --strength $a -o "$tmp/ref.f32" >/dev/null
        $PY $HERE/reference.py compare-scaled "$tmp/ours.f32" "$tmp/ref.f32" 1e-3 \
            "$name edit-vector gradients, strength $a" || fail=1
    done
    "$REDIT" edit-grad -m "$model" --ids "$IDS" -o "$tmp/ours.f32" 2>/dev/null
    $PY $REF/llama_red_ref.py "$model" --mode edit-grad --ids "$IDS" -o "$tmp/ref.f32" >/dev/null
    $PY $HERE/reference.py compare-scaled "$tmp/ours.f32" "$tmp/ref.f32" 1e-3 \
        "$name edit-vector gradients at identity edits" || fail=1
}

$PY $REF/make_ckpt.py "$tmp/gqa.bin" --preset tiny --seed 3 2>/dev/null
$PY $REF/make_ckpt.py "$tmp/mha_untied.bin" --preset tiny --kv-heads 8 --untied --layers 3 --seed 4 2>/dev/null
check_model "tiny GQA 8/4, tied" "$tmp/gqa.bin" 64 5
check_model "tiny MHA, untied" "$tmp/mha_untied.bin" 64 3
if [ -f ../shared/fixtures/stories260K/stories260K.bin ]; then
    check_model "stories260K" ../shared/fixtures/stories260K/stories260K.bin 64 5
fi
# ---- LoRA and IA3 (issue 21) against tests/tools/peft_ref.py ------------------------------
PEFT=tests/tools/peft_ref.py
PEFT_MODELS="$tmp/gqa.bin $tmp/mha_untied.bin"
[ -f ../shared/fixtures/stories260K/stories260K.bin ] &&
    PEFT_MODELS="$PEFT_MODELS ../shared/fixtures/stories260K/stories260K.bin"
# shellcheck disable=SC2086
$PY $PEFT self-check $PEFT_MODELS || fail=1


check_peft() { # name model method targets rank lora_alpha layers
    name=$1 model=$2 method=$3 targets=$4 rank=$5 lalpha=$6 layers=$7
    adapter="$tmp/adapter.safetensors"
    what="$name, $method"
    [ "$method" = lora ] && what="$what r=$rank alpha=$lalpha on $targets"
    [ "$layers" = all ] || what="$what, layers $layers"
    $PY $PEFT make-adapter "$model" --method "$method" --lora-targets "$targets" --rank "$rank" \
        --lora-alpha "$lalpha" --layers "$layers" --seed 21 -o "$adapter"
    $PY $PEFT logits "$model" --adapter "$adapter" --ids "$IDS" --f64 --strength 1 0.5 \
        -o "$tmp/ref1.f32" "$tmp/ref0.5.f32"
    for a in 1 0.5; do
        if ! "$REDIT" logits -m "$model" --ids "$IDS" --edits "$adapter" --force --strength $a \
                -o "$tmp/ours.f32" 2>"$tmp/redit.err"; then
            echo "$what logits, strength $a: FAILED: redit refused the adapter: $(cat "$tmp/redit.err")"
            fail=1
            continue
        fi
        $PY $PEFT compare "$tmp/ours.f32" "$tmp/ref$a.f32" 1e-4 "$what logits, strength $a" || fail=1
    done
}
for m in "tiny GQA 8/4, tied:$tmp/gqa.bin" "tiny MHA, untied:$tmp/mha_untied.bin"; do
    check_peft "${m%%:*}" "${m#*:}" lora q,v 8 16 all
    check_peft "${m%%:*}" "${m#*:}" lora all 2 5 all
    check_peft "${m%%:*}" "${m#*:}" ia3 q,v 8 8 all
done
check_peft "tiny MHA, untied" "$tmp/mha_untied.bin" lora q,k,down 4 4 1-2
check_peft "tiny MHA, untied" "$tmp/mha_untied.bin" ia3 q,v 8 8 0,2
if [ -f ../shared/fixtures/stories260K/stories260K.bin ]; then
    check_peft stories260K ../shared/fixtures/stories260K/stories260K.bin lora q,v 8 8 all
    check_peft stories260K ../shared/fixtures/stories260K/stories260K.bin ia3 q,v 8 8 all
fi

[ $fail -eq 0 ] && echo "reference check: all agree" || echo "reference check: FAILED"
exit $fail
