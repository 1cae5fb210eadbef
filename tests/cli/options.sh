#!/bin/sh
# The option groups the sub-commands share (src/cli/options.c): every command that takes a
# group takes all of its options and refuses a bad value with the same message, and a data
# length beyond the model's context is refused by every data command alike.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
MODEL="$TMP/random-demo.gguf" # a random GGUF with its own tokenizer, context 256
printf '{"instruction": "Say hi.", "output": "Hi."}\n{"instruction": "Say yo.", "output": "Yo."}\n' >"$TMP/d.jsonl"

# what each command needs besides the option under test
needs() {
    case $1 in
    logits | edit-grad) echo "--ids 1,2 -o $TMP/x" ;;
    generate) echo "-p hi -n 2" ;;
    eval) echo "-d $TMP/d.jsonl" ;;
    train) echo "-d $TMP/d.jsonl -o $TMP/e.safetensors --max-steps 1" ;;
    chat) echo "" ;;
    esac
}
# the model group: --threads, --compute, --bf16-weights, --tokenizer in every model command
for cmd in logits edit-grad generate eval train chat; do
    # shellcheck disable=SC2046 # needs' words are meant to split
    expect_fail "$cmd --threads x" "redit $cmd: bad value for --threads" \
        "$REDIT" "$cmd" -m "$MODEL" --threads x $(needs $cmd)
    # shellcheck disable=SC2046
    expect_fail "$cmd --compute" "redit $cmd: --compute must be f32, bf16 or auto" \
        "$REDIT" "$cmd" -m "$MODEL" --compute f64 $(needs $cmd) </dev/null
    # shellcheck disable=SC2046
    expect_fail "$cmd --bf16-weights" "redit $cmd: --bf16-weights must be auto, packed or on-the-fly" \
        "$REDIT" "$cmd" -m "$MODEL" --bf16-weights copy $(needs $cmd) </dev/null
    # shellcheck disable=SC2046
    expect_fail "$cmd --tokenizer" "--tokenizer is only for llama2.c checkpoints" \
        "$REDIT" "$cmd" -m "$MODEL" --tokenizer "$TMP/no-such-tokenizer.bin" $(needs $cmd) </dev/null
done
# the edits group: --strength and --edits in every command that applies edits
for cmd in logits edit-grad generate eval chat; do
    # shellcheck disable=SC2046
    expect_fail "$cmd --strength" "redit $cmd: bad value for --strength" \
        "$REDIT" "$cmd" -m "$MODEL" --strength 1e9 $(needs $cmd)
    # shellcheck disable=SC2046
    expect_fail "$cmd --edits missing" "no-such.safetensors" \
        "$REDIT" "$cmd" -m "$MODEL" --edits "$TMP/no-such.safetensors" $(needs $cmd) </dev/null
done
# the data group in train and eval
for cmd in train eval; do
    # shellcheck disable=SC2046
    expect_fail "$cmd --format" "redit $cmd: unknown --format \"yaml\"" \
        "$REDIT" "$cmd" -m "$MODEL" $(needs $cmd) --format yaml
    expect_fail "$cmd --max-len 1" "redit $cmd: bad value for --max-len" \
        "$REDIT" "$cmd" -m "$MODEL" $(needs $cmd) --max-len 1
    expect_fail "$cmd --max-len beyond the context" \
        "redit $cmd: --max-len 5000 exceeds the model's context of 256" \
        "$REDIT" "$cmd" -m "$MODEL" $(needs $cmd) --max-len 5000
done
# the default length is capped at the context, not refused
expect_ok "eval at the default length" "$REDIT" eval -m "$MODEL" -d "$TMP/d.jsonl"
expect_grep "eval scored tokens" "$TMP/out" '^tokens +[1-9]'
# edit-grad now takes --threads like the others, with the same numbers
expect_ok "edit-grad 1 thread" "$REDIT" edit-grad -m "$MODEL" --ids "1 61 61 40" --threads 1 -o "$TMP/g1"
expect_ok "edit-grad all threads" "$REDIT" edit-grad -m "$MODEL" --ids "1 61 61 40" -o "$TMP/g2"
cmp -s "$TMP/g1" "$TMP/g2" || fail "edit-grad gradients depend on --threads"
echo "tests/cli/options.sh: ok"
