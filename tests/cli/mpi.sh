#!/bin/sh
# Data-parallel training over MPI (docs/cluster.md): `mpirun -np 2 redit train …` writes the
# same edit bytes as one process with the same global batch, seed and options (RED, IA3 and
# LoRA, full fine-tuning), with the same evaluation figures; a rank that is killed stops the
# others (mpirun), one that hangs stops them after --mpi-timeout; --state resumes a stopped
# run, also on another number of ranks. `mpirun -np 2 redit eval …` prints (and writes) what one
# process does, for every kind of evaluation.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

if ! command -v mpirun >/dev/null 2>&1; then
    echo "tests/cli/mpi.sh: SKIPPED: mpirun is missing (apt-get install openmpi-bin libopenmpi-dev)"
    exit 0
fi
# Open MPI refuses root without these; --oversubscribe: more ranks than free cores is fine
MPI="mpirun --allow-run-as-root --oversubscribe --bind-to none -x ASAN_OPTIONS -x LSAN_OPTIONS"
# under ASan: leaks are checked, Open MPI's own suppressed (tests/lsan-openmpi.supp, named by
# tests/run-tests.sh); the slow unwinder lets the stacks reach Open MPI's libraries
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan-openmpi.supp:print_suppressions=0}"
if "$REDIT" train --help | grep -q -- --mpi-timeout && ! $MPI -np 1 true >/dev/null 2>&1; then
    fail "mpirun is there but cannot start a process"
fi

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
: >"$TMP/train.jsonl"
i=0
while [ $i -lt 24 ]; do
    echo "{\"instruction\": \"Name item $i.\", \"output\": \"It is the cat number $i.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
head -n 7 "$TMP/train.jsonl" >"$TMP/eval.jsonl"
# batch 8 in 3 micro-batches (3 + 3 + 2): parts 0 and 2 on rank 0, part 1 on rank 1
C="-m $M -d $TMP/train.jsonl --eval $TMP/eval.jsonl --epochs 2 --batch 8 --micro-batch 3
   --eval-every 2 --lr 0.05 --max-len 64 --template plain --dropout 0.1 --threads 1 --json"

# one_vs_two NAME OPTIONS...: the same run as one process and as 2 ranks
one_vs_two() {
    name=$1
    shift
    # shellcheck disable=SC2086
    expect_ok "$name: one process" "$REDIT" train $C "$@" -o "$TMP/$name-1.out" --log "$TMP/$name-1.csv"
    cp "$TMP/out" "$TMP/$name-1.json"
    # shellcheck disable=SC2086
    expect_ok "$name: 2 ranks" timeout 300 $MPI -np 2 "$REDIT" train $C "$@" -o "$TMP/$name-2.out" \
        --log "$TMP/$name-2.csv"
    cp "$TMP/out" "$TMP/$name-2.json"
    expect_grep "$name: 2 ranks said so" "$TMP/err" "data-parallel: 2 ranks"
    cmp -s "$TMP/$name-1.out" "$TMP/$name-2.out" ||
        same_edit_tensors "$TMP/$name-1.out" "$TMP/$name-2.out" ||
        fail "$name: the 2-rank run's output differs from the one-process run's"
    # the evaluation figures (loss per evaluation, in the CSV) and the losses are the same
    cut -d, -f1-5,8-9 "$TMP/$name-1.csv" >"$TMP/a.csv"
    cut -d, -f1-5,8-9 "$TMP/$name-2.csv" >"$TMP/b.csv"
    cmp -s "$TMP/a.csv" "$TMP/b.csv" || fail "$name: the logs differ: $(diff "$TMP/a.csv" "$TMP/b.csv" | head -5)"
    grep -Eq '^[0-9]+,[0-9]+,,,,,[0-9.]+,[0-9.]+' "$TMP/$name-1.csv" || fail "$name: no evaluation in the log"
    "$PY" - "$TMP/$name-1.json" "$TMP/$name-2.json" <<'PY' || fail "$name: the JSON summaries differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("steps", "final_loss", "best_eval_loss", "best_step", "tokens"):
    assert a[k] == b[k], (k, a[k], b[k])
assert b["ranks"] == 2 and b["exchange_bytes"] > 0
PY
    grep -o '"exchange_bytes":[^,]*' "$TMP/$name-2.json" | tr -d '\n\t' >&2 || true
    echo " ($name)" >&2
}

one_vs_two red --sites ffn --layers all
one_vs_two ia3 --method ia3
one_vs_two lora --method lora --rank 2
one_vs_two full --full

# classification: the held-out accuracy is combined exactly too (label scoring shared)
: >"$TMP/cls.jsonl"
i=0
while [ $i -lt 24 ]; do
    echo "{\"text\": \"item $i is a cat number $i\", \"label\": \"$([ $((i % 2)) -eq 0 ] && echo yes || echo no)\"}" >>"$TMP/cls.jsonl"
    i=$((i + 1))
done
head -n 9 "$TMP/cls.jsonl" >"$TMP/cls-eval.jsonl"
# 9 examples × 2 labels in passes of 3 candidates: 6 passes, 3 on each rank
CC="-m $M -d $TMP/cls.jsonl --eval $TMP/cls-eval.jsonl --batch 8 --micro-batch 3 --epochs 1
    --eval-every 1 --lr 0.05 --max-len 48 --threads 1 --json"
# shellcheck disable=SC2086
expect_ok "classification: one process" "$REDIT" train $CC -o "$TMP/c1.st" --log "$TMP/c1.csv"
cp "$TMP/out" "$TMP/c1.json"
# shellcheck disable=SC2086
expect_ok "classification: 2 ranks" timeout 300 $MPI -np 2 "$REDIT" train $CC -o "$TMP/c2.st" --log "$TMP/c2.csv"
same_edit_tensors "$TMP/c1.st" "$TMP/c2.st" || fail "classification: the edits differ"
grep -Eq ',[0-9.]+,[0-9.]+$' "$TMP/c1.csv" || fail "classification: no accuracy in the log: $(cat "$TMP/c1.csv")"
cut -d, -f1-3,8-9 "$TMP/c1.csv" >"$TMP/a.csv"
cut -d, -f1-3,8-9 "$TMP/c2.csv" >"$TMP/b.csv"
cmp -s "$TMP/a.csv" "$TMP/b.csv" || fail "classification: the evaluations differ: $(diff "$TMP/a.csv" "$TMP/b.csv" | head -4)"
grep -q best_eval_accuracy "$TMP/c1.json" || fail "classification: no accuracy in the summary"

# redit eval under mpirun: the ranks share the passes (multiple choice: the items) and rank 0
# alone prints and writes: the same stdout and stderr (but the data-parallel line) and the
# same --per-item file as one process, for every kind of evaluation.
# eval_one_vs_two NAME ARGS...: ARGS may name --per-item $TMP/NAME-pi.jsonl
eval_one_vs_two() {
    name=$1
    shift
    rm -f "$TMP/$name-pi.jsonl"
    expect_ok "eval $name: one process" "$REDIT" eval "$@" -t 1
    mv "$TMP/out" "$TMP/e-$name-1.out"
    grep -v '^data-parallel' "$TMP/err" >"$TMP/e-$name-1.err" || true
    [ ! -f "$TMP/$name-pi.jsonl" ] || mv "$TMP/$name-pi.jsonl" "$TMP/$name-pi-1.jsonl"
    # shellcheck disable=SC2086
    expect_ok "eval $name: 2 ranks" timeout 300 $MPI -np 2 "$REDIT" eval "$@" -t 1
    grep -v '^data-parallel' "$TMP/err" >"$TMP/e-$name-2.err" || true
    [ -s "$TMP/e-$name-1.out" ] || fail "eval $name: nothing printed"
    cmp -s "$TMP/e-$name-1.out" "$TMP/out" ||
        fail "eval $name: 2 ranks printed otherwise: $(diff "$TMP/e-$name-1.out" "$TMP/out" | head -6)"
    cmp -s "$TMP/e-$name-1.err" "$TMP/e-$name-2.err" ||
        fail "eval $name: 2 ranks said otherwise: $(diff "$TMP/e-$name-1.err" "$TMP/e-$name-2.err" | head -6)"
    expect_grep "eval $name: 2 ranks said so" "$TMP/err" "data-parallel: 2 ranks"
    if [ -f "$TMP/$name-pi-1.jsonl" ]; then
        cmp -s "$TMP/$name-pi-1.jsonl" "$TMP/$name-pi.jsonl" ||
            fail "eval $name: the --per-item files differ: $(diff "$TMP/$name-pi-1.jsonl" "$TMP/$name-pi.jsonl" | head -4)"
    fi
}
# loss, perplexity and bits per byte (11 examples in passes of 3: 4 passes, 2 on each rank)
head -n 11 "$TMP/train.jsonl" >"$TMP/eval11.jsonl"
EV="-m $M --max-len 64 --template plain --batch 3"
# shellcheck disable=SC2086
eval_one_vs_two loss $EV -d "$TMP/eval11.jsonl"
# shellcheck disable=SC2086
eval_one_vs_two loss-json $EV -d "$TMP/eval11.jsonl" --edits "$TMP/red-1.out" --json
i=0
while [ $i -lt 9 ]; do echo "Line $i of a plain text about cats and the number $i." >>"$TMP/text.txt"; i=$((i + 1)); done
# shellcheck disable=SC2086
eval_one_vs_two text $EV -d "$TMP/text.txt" --max-len 16
# shellcheck disable=SC2086
eval_one_vs_two compare $EV -d "$TMP/eval11.jsonl" --edits "$TMP/red-1.out" --compare
# shellcheck disable=SC2086
eval_one_vs_two compare-json $EV -d "$TMP/eval11.jsonl" --edits "$TMP/red-1.out" --compare --json
# label-word classification (accuracy, mcc, f1), alone and compared
eval_one_vs_two labels -m "$M" -d "$TMP/cls-eval.jsonl" --max-len 48 --batch 3 --edits "$TMP/c1.st"
eval_one_vs_two labels-compare -m "$M" -d "$TMP/cls-eval.jsonl" --max-len 48 --batch 3 \
    --edits "$TMP/c1.st" --compare --json
# multiple choice: 7 items of 2 to 4 choices (3 on rank 0, 4 on rank 1), some contexts cut
: >"$TMP/mc.jsonl"
i=0
while [ $i -lt 7 ]; do
    ctx="The cat number $i sat on the mat and then it"
    [ $((i % 3)) -ne 0 ] || ctx="$ctx looked around the old house for a long while, and"
    case $((i % 3)) in
    0) ch='" ran.", " slept."' ;;
    1) ch='" ran.", " slept.", " ate the fish."' ;;
    *) ch='" ran.", " slept.", " ate.", " sang a song."' ;;
    esac
    echo "{\"context\": \"$ctx\", \"choices\": [$ch], \"gold\": $((i % 2))}" >>"$TMP/mc.jsonl"
    i=$((i + 1))
done
MC="-m $M -d $TMP/mc.jsonl --max-len 20"
# shellcheck disable=SC2086
eval_one_vs_two mc $MC --per-item "$TMP/mc-pi.jsonl"
grep -q '^cut ' "$TMP/e-mc-1.out" || fail "eval mc: no context was cut (the test wants some)"
# shellcheck disable=SC2086
eval_one_vs_two mc-json $MC --edits "$TMP/red-1.out" --json
# shellcheck disable=SC2086
eval_one_vs_two mc-compare $MC --edits "$TMP/red-1.out" --compare --json \
    --per-item "$TMP/mc-compare-pi.jsonl"
[ "$(wc -l <"$TMP/mc-compare-pi-1.jsonl")" -eq 7 ] || fail "eval mc-compare: not 7 per-item lines"
# an item that fails in rank 1's share: every rank stops, rank 0 gives one process's message
sed '6s/" ran\."/""/' "$TMP/mc.jsonl" >"$TMP/mc-bad.jsonl"
expect_fail "eval mc-bad: one process" "no tokens after the context" "$REDIT" eval -m "$M" \
    -d "$TMP/mc-bad.jsonl" -t 1
cp "$TMP/err" "$TMP/mc-bad-1.err"
expect_fail "eval mc-bad: 2 ranks" "no tokens after the context" $MPI -np 2 "$REDIT" eval \
    -m "$M" -d "$TMP/mc-bad.jsonl" -t 1
[ "$(grep -c 'redit eval:' "$TMP/err")" -eq 1 ] || fail "eval mc-bad: not one message: $(cat "$TMP/err")"
grep -F "$(cat "$TMP/mc-bad-1.err")" "$TMP/err" >/dev/null ||
    fail "eval mc-bad: another message than one process's: $(cat "$TMP/err")"

# a rank killed mid-run: mpirun stops the others with a message, in bounded time
C2="-m $M -d $TMP/train.jsonl --eval $TMP/eval.jsonl --epochs 40 --batch 8 --micro-batch 4
    --eval-every 3 --lr 0.05 --max-len 64 --template plain --threads 1"
rm -f "$TMP/k.state"
# shellcheck disable=SC2086
timeout 120 $MPI -np 2 "$REDIT" train $C2 -o "$TMP/k.out" --state "$TMP/k.state" \
    >"$TMP/k.log" 2>&1 &
mpipid=$!
n=0
while [ ! -f "$TMP/k.state" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
[ -f "$TMP/k.state" ] || fail "the 2-rank run wrote no state in 60 s: $(tail -c 600 "$TMP/k.log")"
# the ranks (not mpirun, whose command line names redit too): their command line starts with it
victim=$(pgrep -f -- "^$REDIT train .*$TMP/k.out" | tail -n 1 || true)
[ -n "$victim" ] || fail "no rank process found to kill"
t0=$(date +%s)
kill -9 "$victim"
rc=0
wait "$mpipid" || rc=$?
t1=$(date +%s)
[ $rc -ne 0 ] || fail "the run ended with status 0 after a rank was killed"
[ $rc -ne 124 ] || fail "the other rank did not stop within 120 s of a rank being killed"
[ $((t1 - t0)) -le 60 ] || fail "the other rank took $((t1 - t0)) s to stop"
grep -Eqi "exited on signal|killed|died|no answer|aborted" "$TMP/k.log" ||
    fail "no message after a rank was killed: $(tail -c 600 "$TMP/k.log")"
[ ! -f "$TMP/k.out" ] || fail "an edit file was written by the killed run"
echo "killed rank: the others stopped in $((t1 - t0)) s" >&2

# a hung rank (stopped, not dead): the others give up after --mpi-timeout with a message
rm -f "$TMP/h.state"
# shellcheck disable=SC2086
timeout 120 $MPI -np 2 "$REDIT" train $C2 --mpi-timeout 3 -o "$TMP/h.out" --state "$TMP/h.state" \
    >"$TMP/h.log" 2>&1 &
mpipid=$!
n=0
while [ ! -f "$TMP/h.state" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
victim=$(pgrep -f -- "^$REDIT train .*$TMP/h.out" | tail -n 1 || true)
[ -n "$victim" ] || fail "no rank process found to stop"
t0=$(date +%s)
kill -STOP "$victim"
rc=0
wait "$mpipid" || rc=$?
t1=$(date +%s)
kill -CONT "$victim" 2>/dev/null || true
kill -9 "$victim" 2>/dev/null || true
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a hung rank: the run ended with status $rc (124: no timeout)"
grep -q "no answer from the other ranks" "$TMP/h.log" ||
    fail "a hung rank: no timeout message: $(tail -c 600 "$TMP/h.log")"
echo "hung rank: the others stopped in $((t1 - t0)) s (timeout 3 s)" >&2

# --state resumes the killed run: on 2 ranks, and on 3 (another N) from a copy; both end as
# the uninterrupted one-process run
cp "$TMP/k.state" "$TMP/k3.state"
C3="$C2 --max-steps 0"
# shellcheck disable=SC2086
expect_ok "uninterrupted one-process run" "$REDIT" train $C3 -o "$TMP/u.out" --state "$TMP/u.state"
# shellcheck disable=SC2086
expect_ok "resume on 2 ranks" timeout 300 $MPI -np 2 "$REDIT" train $C3 -o "$TMP/r2.out" --state "$TMP/k.state"
expect_grep "resume said so" "$TMP/err" "resumed after step"
# shellcheck disable=SC2086
expect_ok "resume on 3 ranks" timeout 300 $MPI -np 3 "$REDIT" train $C3 -o "$TMP/r3.out" --state "$TMP/k3.state"
same_edit_tensors "$TMP/u.out" "$TMP/r2.out" || fail "resumed on 2 ranks: edits differ from the uninterrupted run"
same_edit_tensors "$TMP/u.out" "$TMP/r3.out" || fail "resumed on 3 ranks: edits differ from the uninterrupted run"
echo "tests/cli/mpi.sh: ok"
