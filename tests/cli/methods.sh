#!/bin/sh
# redit train --method lora|ia3|full on the demo model: the parameter line names the method,
# the loss falls, the edit file works with --edits in logits (strength 0 = base exactly,
# saved+reloaded edits give the same logits as an --init copy), generate, chat, eval;
# --state resume works and a state of another method is refused naming the difference;
# export and edit-grad refuse LoRA/IA3 files clearly; bad method options are refused.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
i=0
: >"$TMP/train.jsonl"
while [ $i -lt 32 ]; do
    echo "{\"instruction\": \"Name item $i.\", \"output\": \"It is the cat.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
head -n 8 "$TMP/train.jsonl" >"$TMP/eval.jsonl"
COMMON="-m $M -d $TMP/train.jsonl --eval $TMP/eval.jsonl --batch 8 --max-len 64 --template plain"

expect_ok "eval base" "$REDIT" eval -m "$M" -d "$TMP/eval.jsonl" --max-len 64 --template plain
base=$(awk '/^loss/ {print $2}' "$TMP/out")
expect_ok "logits base" "$REDIT" logits -m "$M" --ids "1 50 60 70" -o "$TMP/base.f32"

for method in lora ia3; do
    if [ $method = lora ]; then
        extra="--rank 4 --lora-alpha 8 --lora-targets q,v,down --lora-dropout 0.05 --lr 0.02"
        line="LoRA r 4, alpha 8 on q,v,down, layers all"
    else
        extra="--lr 0.05"
        line="IA3 on k, v and the FFN input, layers all"
    fi
    # shellcheck disable=SC2086
    expect_ok "train $method" "$REDIT" train $COMMON --method $method $extra --epochs 3 \
        -o "$TMP/$method.safetensors" --log "$TMP/$method.csv"
    grep -q "$line: [0-9]* trainable (1/[0-9]* of the model)" "$TMP/err" ||
        fail "train $method: no parameter line naming the method: $(head -c 600 "$TMP/err")"
    first=$(sed -n 2p "$TMP/$method.csv" | cut -d, -f3)
    last=$(grep '^[0-9]*,[0-9]*,[0-9.]' "$TMP/$method.csv" | tail -n 1 | cut -d, -f3)
    $PY -c "import sys; sys.exit(0 if $last < 0.9 * $first else 1)" ||
        fail "$method: training loss did not fall: $first -> $last"
    expect_ok "eval $method" "$REDIT" eval -m "$M" -d "$TMP/eval.jsonl" --max-len 64 --template plain \
        --edits "$TMP/$method.safetensors"
    edited=$(awk '/^loss/ {print $2}' "$TMP/out")
    $PY -c "import sys; sys.exit(0 if $edited < $base else 1)" ||
        fail "$method edits did not lower the held-out loss ($base -> $edited)"
    expect_ok "logits $method α=0" "$REDIT" logits -m "$M" --ids "1 50 60 70" -o "$TMP/zero.f32" \
        --edits "$TMP/$method.safetensors" --strength 0
    cmp -s "$TMP/base.f32" "$TMP/zero.f32" || fail "$method: strength 0 did not give the base logits"
    expect_ok "logits $method" "$REDIT" logits -m "$M" --ids "1 50 60 70" -o "$TMP/one.f32" \
        --edits "$TMP/$method.safetensors"
    cmp -s "$TMP/base.f32" "$TMP/one.f32" && fail "$method: the edits did not change the logits"
    # --init starts from the file (lr ~0): the copy scores as the original
    expect_ok "train --init $method" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" --max-steps 1 \
        --batch 8 --lr 1e-12 --max-len 64 --template plain --init "$TMP/$method.safetensors" \
        -o "$TMP/copy.safetensors"
    grep -q "edits from $TMP/$method.safetensors: $line" "$TMP/err" ||
        fail "train --init $method did not report the loaded edits: $(head -c 600 "$TMP/err")"
    expect_ok "eval copy" "$REDIT" eval -m "$M" -d "$TMP/eval.jsonl" --max-len 64 --template plain \
        --edits "$TMP/copy.safetensors"
    copy=$(awk '/^loss/ {print $2}' "$TMP/out")
    $PY -c "import sys; sys.exit(0 if abs($copy - $edited) < 1e-4 * abs($edited) else 1)" ||
        fail "$method: --init did not start from the edit file ($copy vs $edited)"
    expect_ok "generate $method" "$REDIT" generate -m "$M" -p "Name item 3." -n 6 --temp 0 \
        --edits "$TMP/$method.safetensors" --compare
    grep -q "── edited ──" "$TMP/out" || fail "$method: generate --compare printed no edited answer"
    printf 'Name item 3.\n' | "$REDIT" chat -m "$M" -n 6 --temp 0 --edits "$TMP/$method.safetensors" \
        >"$TMP/out" 2>"$TMP/err" || fail "chat $method: $(head -c 600 "$TMP/err")"
    expect_fail "export $method" "takes RED edits" "$REDIT" export --edits "$TMP/$method.safetensors" -m "$M" \
        --format safetensors -o "$TMP/x.safetensors"
    expect_fail "edit-grad $method" "RED edit files only" "$REDIT" edit-grad -m "$M" --ids "1 50 60" \
        -o "$TMP/g.f32" --edits "$TMP/$method.safetensors"
done

# --state: a LoRA run stopped by Ctrl-C and resumed from its state file ends with the same
# tensors, bit for bit, as the run that was never stopped; a state of another method is
# refused, naming the difference
C="$COMMON --method lora --rank 2 --lora-dropout 0.1 --epochs 6 --batch 4 --eval-every 5 --lr 0.02"
# shellcheck disable=SC2086
expect_ok "lora uninterrupted" "$REDIT" train $C -o "$TMP/whole.safetensors"
: >"$TMP/err"
# shellcheck disable=SC2086
"$REDIT" train $C -o "$TMP/part.safetensors" --state "$TMP/run.state" >"$TMP/out" 2>"$TMP/err" &
pid=$!
n=0
until grep -q "^step" "$TMP/err" 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 300 ] || { kill $pid; fail "training never printed a step: $(tail -c 400 "$TMP/err")"; }
    sleep 0.05
done
kill -INT $pid
rc=0
wait $pid || rc=$?
[ $rc -eq 130 ] || fail "interrupted LoRA training exited with $rc: $(tail -c 400 "$TMP/err")"
[ -s "$TMP/run.state" ] || fail "no state file after the stop"
# shellcheck disable=SC2086
expect_fail "state of another method" "kind=lora.*kind=ia3" "$REDIT" train $COMMON --method ia3 \
    --epochs 6 --batch 4 --eval-every 5 --lr 0.02 -o "$TMP/x" --state "$TMP/run.state"
# shellcheck disable=SC2086
expect_ok "lora resumed" "$REDIT" train $C -o "$TMP/part.safetensors" --state "$TMP/run.state"
grep -q "state: resuming from $TMP/run.state" "$TMP/err" || fail "no resume message: $(head -c 400 "$TMP/err")"
same_edit_tensors "$TMP/whole.safetensors" "$TMP/part.safetensors" || fail "the resumed LoRA run differs"

# --method full is --full
# shellcheck disable=SC2086
expect_ok "method full" "$REDIT" train $COMMON --method full --max-steps 1 --lr 1e-4 -o "$TMP/full.gguf"
grep -q "full fine-tuning of all" "$TMP/err" || fail "--method full did not fine-tune the model"

# shellcheck disable=SC2086
expect_fail "unknown method" "--method must be" "$REDIT" train $COMMON --method adapter -o "$TMP/x"
# shellcheck disable=SC2086
expect_fail "rank without lora" "need --method lora" "$REDIT" train $COMMON --rank 4 -o "$TMP/x"
# shellcheck disable=SC2086
expect_fail "bad target" "\"w\" is not one of" "$REDIT" train $COMMON --method lora --lora-targets q,w -o "$TMP/x"
# shellcheck disable=SC2086
expect_fail "sites with lora" "RED's" "$REDIT" train $COMMON --method lora --sites both -o "$TMP/x"
[ ! -e "$TMP/x" ] || fail "a refused run wrote an output file"
echo "methods: ok"
