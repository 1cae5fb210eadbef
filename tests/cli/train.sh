#!/bin/sh
# redit train / eval / generate --edits / logits --edits end to end on the demo model (a
# random GGUF with its own tokenizer): training writes an edit file and a CSV log, lowers
# the training loss, Ctrl-C stops at a step and still writes edits (exit 130; a second Ctrl-C
# skips the evaluation of the stopped step), strength 0 gives the
# base model's logits, bad options are refused.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
i=0
: >"$TMP/train.jsonl"
while [ $i -lt 48 ]; do
    echo "{\"instruction\": \"Name item $i.\", \"output\": \"It is the cat.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
head -n 8 "$TMP/train.jsonl" >"$TMP/eval.jsonl"

expect_ok "train" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" --eval "$TMP/eval.jsonl" \
    -o "$TMP/e.safetensors" --log "$TMP/loss.csv" --epochs 3 --batch 8 --micro-batch 4 \
    --lr 0.05 --max-len 128 --template plain --sites both --layers 0-2
[ -s "$TMP/e.safetensors" ] || fail "no edit file written"
grep -q "trainable" "$TMP/err" || fail "train did not report the trainable parameters"
head -n 1 "$TMP/loss.csv" | grep -q "^step,epoch,loss" || fail "the CSV log has no header"
steps=$(grep -c '^[0-9]*,[0-9]*,[0-9.]' "$TMP/loss.csv")
[ "$steps" -eq 18 ] || fail "expected 18 logged steps, found $steps"
first=$(sed -n 2p "$TMP/loss.csv" | cut -d, -f3)
last=$(grep '^[0-9]*,[0-9]*,[0-9.]' "$TMP/loss.csv" | tail -n 1 | cut -d, -f3)
$PY -c "import sys; sys.exit(0 if $last < 0.8 * $first else 1)" ||
    fail "training loss did not fall enough: $first -> $last"

expect_ok "eval base" "$REDIT" eval -m "$M" -d "$TMP/eval.jsonl" --max-len 128 --template plain
base=$(awk '/^loss/ {print $2}' "$TMP/out")
expect_ok "eval edited" "$REDIT" eval -m "$M" -d "$TMP/eval.jsonl" --max-len 128 --template plain --edits "$TMP/e.safetensors"
edited=$(awk '/^loss/ {print $2}' "$TMP/out")
$PY -c "import sys; sys.exit(0 if $edited < $base else 1)" || fail "edits did not lower the held-out loss ($base -> $edited)"

# --init: a run starts from an edit file's vectors, sites and layers (a near-zero learning
# rate keeps them, so the new file must score as the old one, not as the base model)
expect_ok "train --init" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/init.safetensors" \
    --init "$TMP/e.safetensors" --max-steps 1 --batch 8 --lr 1e-9 --max-len 128 --template plain
grep -q "edits from $TMP/e.safetensors: RED both, layers 0-2, scale + bias" "$TMP/err" ||
    fail "train --init did not report the loaded edits: $(head -c 600 "$TMP/err")"
expect_ok "eval --init edits" "$REDIT" eval -m "$M" -d "$TMP/eval.jsonl" --max-len 128 --template plain \
    --edits "$TMP/init.safetensors"
resumed=$(awk '/^loss/ {print $2}' "$TMP/out")
$PY -c "import sys; sys.exit(0 if abs($resumed - $edited) < 1e-3 * abs($edited) else 1)" ||
    fail "--init did not start from the edit file (held-out loss $resumed, its edits $edited, base $base)"
expect_fail "--init with --sites" "--init takes" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/x" \
    --init "$TMP/e.safetensors" --sites ffn
expect_fail "--init with --full" "--full" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/x" \
    --init "$TMP/e.safetensors" --full
expect_fail "--force alone" "--force only" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/x" --force
printf 'not a safetensors file' >"$TMP/bad-init.safetensors"
expect_fail "--init of a damaged file" "bad-init.safetensors" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" \
    -o "$TMP/x" --init "$TMP/bad-init.safetensors"
[ ! -e "$TMP/x" ] || fail "a failed --init run wrote an output file"

expect_ok "generate --compare" "$REDIT" generate -m "$M" -p "Name item 3." -n 8 --temp 0 \
    --edits "$TMP/e.safetensors" --compare
grep -q "── base ──" "$TMP/out" && grep -q "── edited ──" "$TMP/out" || fail "--compare did not print both answers"

expect_ok "logits base" "$REDIT" logits -m "$M" --ids "1 50 60 70" -o "$TMP/base.f32"
expect_ok "logits α=0" "$REDIT" logits -m "$M" --ids "1 50 60 70" -o "$TMP/zero.f32" \
    --edits "$TMP/e.safetensors" --strength 0
cmp -s "$TMP/base.f32" "$TMP/zero.f32" || fail "strength 0 did not give the base logits exactly"
expect_ok "logits α=1" "$REDIT" logits -m "$M" --ids "1 50 60 70" -o "$TMP/one.f32" \
    --edits "$TMP/e.safetensors"
cmp -s "$TMP/base.f32" "$TMP/one.f32" && fail "the edits did not change the logits"

expect_ok "edit-grad" "$REDIT" edit-grad -m "$M" --ids "1 50 60 70 80" -o "$TMP/g.f32" --edits "$TMP/e.safetensors"
size=$(wc -c <"$TMP/g.f32")
[ "$size" -eq $((4 * 4 * 4 * 128)) ] || fail "edit-grad wrote $size bytes, expected 4 layers × 4 vectors × 128 floats"

# Ctrl-C: the run stops at the next step and still writes the edits
i=0
: >"$TMP/big.jsonl"
while [ $i -lt 400 ]; do
    echo "{\"prompt\": \"Say something about number $i please.\", \"completion\": \"Number $i is a fine number.\"}" >>"$TMP/big.jsonl"
    i=$((i + 1))
done
# wait_err PATTERN: waits (15 s at most) until the background run's stderr matches PATTERN.
wait_err() {
    n=0
    until grep -q -- "$1" "$TMP/err" 2>/dev/null; do
        n=$((n + 1))
        [ $n -lt 300 ] || { kill $pid; fail "training never printed /$1/: $(tail -c 400 "$TMP/err")"; }
        sleep 0.05
    done
}
# start_train ARGS...: runs `redit train ARGS` in the background ($pid) until its first
# progress line
start_train() {
    # empty the file first: the background job's own redirection may come after the first
    # grep below, which would then see the previous command's progress lines
    : >"$TMP/err"
    "$REDIT" train "$@" >"$TMP/out" 2>"$TMP/err" &
    pid=$!
    wait_err "^step"
}
# wait_interrupted: the run ends with 130 (128 + SIGINT, after writing) and says it stopped
wait_interrupted() {
    rc=0
    wait $pid || rc=$?
    [ $rc -eq 130 ] || fail "interrupted training exited with $rc, not 130: $(tail -c 400 "$TMP/err")"
    grep -q "stopped on request" "$TMP/err" || fail "no stop message: $(tail -c 400 "$TMP/err")"
}
# interrupt_train ARGS...: runs `redit train ARGS`, sends Ctrl-C (SIGINT) after its first
# progress line, and expects a clean stop (exit 130, "stopped on request")
interrupt_train() {
    start_train "$@"
    kill -INT $pid
    wait_interrupted
}
interrupt_train -m "$M" -d "$TMP/big.jsonl" -o "$TMP/stopped.safetensors" --epochs 50 --batch 4 \
    --max-len 128 --template plain
[ -s "$TMP/stopped.safetensors" ] || fail "interrupted training wrote no edits"
grep -q "stopping after this step (Ctrl-C again to quit without writing)" "$TMP/err" ||
    fail "no stopping message without an eval set: $(tail -c 400 "$TMP/err")"

# with a held-out set, one Ctrl-C says at once that it evaluates the stopped step, which is
# evaluated; the edits, the log and the state are written
start_train -m "$M" -d "$TMP/big.jsonl" --eval "$TMP/eval.jsonl" -o "$TMP/stop1.safetensors" \
    --epochs 50 --batch 4 --max-len 128 --template plain --log "$TMP/stop1.csv" --state "$TMP/stop1.state"
kill -INT $pid
wait_err "stopping: evaluating… (Ctrl-C again to skip)"
wait_interrupted
grep -q "^eval after step [0-9]*: loss" "$TMP/err" || fail "the stopped step was not evaluated: $(tail -c 400 "$TMP/err")"
[ -s "$TMP/stop1.safetensors" ] && [ -s "$TMP/stop1.csv" ] && [ -s "$TMP/stop1.state" ] ||
    fail "an interrupted run did not write its edits, log and state"
# twice: the evaluation (of a large held-out set) is skipped; with none finished, the last
# step's edits are written, and so are the log and the state
i=0
: >"$TMP/bigeval.jsonl"
while [ $i -lt 3000 ]; do
    echo "{\"prompt\": \"Say something about number $i please, in a few more words.\", \"completion\": \"Number $i is a fine number indeed.\"}" >>"$TMP/bigeval.jsonl"
    i=$((i + 1))
done
start_train -m "$M" -d "$TMP/big.jsonl" --eval "$TMP/bigeval.jsonl" -o "$TMP/stop2.safetensors" \
    --epochs 50 --batch 4 --max-len 128 --template plain --log "$TMP/stop2.csv" --state "$TMP/stop2.state"
kill -INT $pid
wait_err "stopping: evaluating… (Ctrl-C again to skip)"
kill -INT $pid
wait_err "stopping: evaluation skipped"
wait_interrupted
grep -q "evaluation skipped: no evaluation finished, kept the last step's edits" "$TMP/err" ||
    fail "a skipped evaluation was not reported: $(tail -c 400 "$TMP/err")"
grep -q "^eval after" "$TMP/err" && fail "the skipped evaluation ran: $(tail -c 400 "$TMP/err")"
[ -s "$TMP/stop2.safetensors" ] && [ -s "$TMP/stop2.csv" ] && [ -s "$TMP/stop2.state" ] ||
    fail "a run whose evaluation was skipped did not write its edits, log and state"
ls "$TMP" | grep -q '\.tmp-\|\.partial$' && fail "an interrupted run left temporary files: $(ls "$TMP")"

# --state: a run stopped by Ctrl-C and resumed from its state file ends with the same edit
# vectors, bit for bit, as the run that was never stopped; other options are refused
C="-m $M -d $TMP/train.jsonl --eval $TMP/eval.jsonl --epochs 8 --batch 4 --eval-every 5 --lr 0.05
   --max-len 128 --template plain --dropout 0.1"
# shellcheck disable=SC2086
expect_ok "train uninterrupted" "$REDIT" train $C -o "$TMP/whole.safetensors"
# shellcheck disable=SC2086
interrupt_train $C -o "$TMP/part.safetensors" --state "$TMP/run.state"
[ -s "$TMP/run.state" ] || fail "no state file after the stop"
# shellcheck disable=SC2086
expect_ok "train resumed" "$REDIT" train $C -o "$TMP/part.safetensors" --state "$TMP/run.state"
grep -q "state: resuming from $TMP/run.state" "$TMP/err" || fail "no resume message: $(head -c 400 "$TMP/err")"
grep -q "^96 steps (resumed after step [0-9]*)" "$TMP/err" || fail "not resumed: $(tail -c 300 "$TMP/err")"
same_edit_tensors "$TMP/whole.safetensors" "$TMP/part.safetensors" || fail "the resumed run's edits differ"
# shellcheck disable=SC2086
expect_fail "resume with another lr" "written for lr=0\.05[0-9]*, this run has lr=0\.0(2|19)[0-9]*" \
    "$REDIT" train $C --lr 0.02 -o "$TMP/x" --state "$TMP/run.state"
printf 'not a state' >"$TMP/bad.state"
# shellcheck disable=SC2086
expect_fail "damaged state" "$TMP/bad.state" "$REDIT" train $C -o "$TMP/x" --state "$TMP/bad.state"

expect_fail "bad sites" "sites" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/x" --sites mlp
# a classification eval set: every evaluation reports its accuracy, on stderr and in the log
: >"$TMP/cls.jsonl"
for i in 1 2 3 4 5 6 7 8; do
    if [ $((i % 2)) -eq 0 ]; then t="money and prizes" l=spam; else t="the weekly meeting" l=ham; fi
    echo "{\"text\": \"message $i about $t\", \"label\": \"$l\"}" >>"$TMP/cls.jsonl"
done
expect_ok "train classification" "$REDIT" train -m "$M" -d "$TMP/cls.jsonl" --eval "$TMP/cls.jsonl" \
    -o "$TMP/cls.safetensors" --log "$TMP/cls.csv" --epochs 2 --batch 4 --lr 0.05
[ "$(grep -c 'eval after step [0-9]*: loss [0-9.]* (perplexity [0-9.]*), accuracy [0-9.]* %' "$TMP/err")" -eq 2 ] ||
    fail "train did not report the accuracy of both evaluations: $(grep eval "$TMP/err")"
head -n 1 "$TMP/cls.csv" | grep -q ",eval_loss,eval_accuracy$" || fail "the CSV log has no eval_accuracy column"
[ "$(grep -c ',[0-9.]*,0\.[0-9]*$\|,[0-9.]*,1\.0*$' "$TMP/cls.csv")" -eq 2 ] ||
    fail "the CSV log lacks the accuracy of the evaluations: $(cat "$TMP/cls.csv")"
# examples whose answer does not fit --max-len are left out, and train says how many
cp "$TMP/cls.jsonl" "$TMP/cls-long.jsonl"
long=$(printf 'word %.0s' $(seq 1 80))
echo "{\"text\": \"$long\", \"label\": \"ham\"}" >>"$TMP/cls-long.jsonl"
expect_ok "train with a long example" "$REDIT" train -m "$M" -d "$TMP/cls-long.jsonl" -o "$TMP/x.safetensors" \
    --max-len 48 --max-steps 1
grep -q "^training set: 1 example dropped (no answer left within max length 48)" "$TMP/err" ||
    fail "train did not report the dropped example: $(cat "$TMP/err")"
expect_ok "eval with a long example" "$REDIT" eval -m "$M" -d "$TMP/cls-long.jsonl" --max-len 48
grep -q "^left out    1 example dropped" "$TMP/out" || fail "eval did not report the dropped example"
# Adam's betas: the first update is the same for any betas (bias correction; up to
# rounding), the second is not, so the third step's loss tells
for b2 in 0.999 0.5; do
    expect_ok "train --beta2 $b2" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/b.safetensors" \
        --max-steps 3 --batch 4 --template plain --beta1 0.9 --beta2 $b2 --log "$TMP/beta-$b2.csv"
done
$PY - "$TMP/beta-0.999.csv" "$TMP/beta-0.5.csv" <<'PY' || fail "--beta2: $(cat "$TMP/beta-0.5.csv")"
import sys
a, b = ([float(l.split(",")[2]) for l in open(f).read().split("\n")[1:4]] for f in sys.argv[1:])
rel = lambda x, y: abs(x - y) / abs(x)
sys.exit(0 if rel(a[1], b[1]) < 1e-6 and rel(a[2], b[2]) > 1e-5 else 1)
PY
expect_fail "bad beta2" "beta2" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/x" --beta2 1
# Dropout: the training losses change, the evaluation does not drop (at lr 1e-9 the edits
# stay the identity, so the held-out loss after the step is the same with and without it);
# the options JSON records it
for p in 0 0.3; do
    expect_ok "train --dropout $p" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" --eval "$TMP/eval.jsonl" \
        -o "$TMP/drop-$p.safetensors" --max-steps 2 --batch 4 --lr 1e-9 --template plain \
        --dropout $p --log "$TMP/drop-$p.csv"
done
$PY - "$TMP/drop-0.csv" "$TMP/drop-0.3.csv" <<'PY' || fail "--dropout: $(cat "$TMP/drop-0.3.csv")"
import sys
def read(f):
    rows = [l.split(",") for l in open(f).read().split("\n")[1:] if l]
    return [float(r[2]) for r in rows if r[2]], [float(r[7]) for r in rows if r[7]]
(ta, ea), (tb, eb) = read(sys.argv[1]), read(sys.argv[2])
rel = lambda x, y: abs(x - y) / abs(x)
print("dropout 0: train", ta, "eval", ea, "; dropout 0.3: train", tb, "eval", eb)
sys.exit(0 if rel(ta[0], tb[0]) > 1e-4 and rel(ea[-1], eb[-1]) < 1e-6 else 1)
PY
grep -q 'dropout[^0-9]*0\.3' "$TMP/drop-0.3.safetensors" || fail "the edit file's options do not record the dropout"
expect_fail "bad dropout" "dropout" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/x" --dropout 1
expect_fail "bad compute" "f32, bf16 or auto" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/x" --compute fast
expect_ok "compute auto" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/auto.safetensors" \
    --max-steps 2 --batch 4 --template plain --compute auto
[ -s "$TMP/auto.safetensors" ] || fail "--compute auto wrote no edit file"
expect_fail "bad layers" "layer" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/x" --layers 7-99
expect_fail "missing data" "train.missing" "$REDIT" train -m "$M" -d "$TMP/train.missing" -o "$TMP/x"
printf '{"instruction": "x", "output": 3}\n' >"$TMP/bad.jsonl"
expect_fail "bad line" "bad.jsonl:1" "$REDIT" train -m "$M" -d "$TMP/bad.jsonl" -o "$TMP/x"
cat "$TMP/eval.jsonl" "$TMP/bad.jsonl" >"$TMP/eval-bad.jsonl"
expect_fail "eval of a bad line" "eval-bad.jsonl:9" "$REDIT" eval -m "$M" -d "$TMP/eval-bad.jsonl"
expect_ok "eval --skip-bad-lines" "$REDIT" eval -m "$M" -d "$TMP/eval-bad.jsonl" --skip-bad-lines
grep -q "^examples    8$" "$TMP/out" && grep -q "^left out    1 bad line skipped" "$TMP/out" ||
    fail "eval --skip-bad-lines did not skip and count the bad line: $(cat "$TMP/out")"
expect_fail "edits for another width" "width|dim" "$REDIT" logits -m "$FIX/stories260K/stories260K.bin" \
    --ids "1 2" -o "$TMP/x" --edits "$TMP/e.safetensors"
echo "tests/cli/train.sh: ok"
