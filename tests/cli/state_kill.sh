#!/bin/sh
# `redit train --state` survives a kill at every step that commits a file: SIGKILL is injected
# (strace) at the n-th fsync, and at the n-th rename, of a run, for every n the run reaches;
# each time the state left behind must load, and resuming from it must end with the same edit
# vectors, bit for bit, as the run that was never killed (the old state or the new one, never
# a broken one).
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

if ! command -v strace >/dev/null 2>&1 ||
    ! strace -f -qq -o /dev/null -e trace=getpid -e inject=getpid:signal=KILL:when=99 true \
        >/dev/null 2>&1; then
    echo "tests/cli/state_kill.sh: SKIPPED: needs strace (apt-get install strace) with ptrace allowed"
    exit 0
fi

# the sanitizer build: LeakSanitizer cannot stop the world under strace's ptrace
ASAN_OPTIONS=detect_leaks=0
export ASAN_OPTIONS

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
: >"$TMP/train.jsonl"
i=0
while [ $i -lt 24 ]; do
    echo "{\"instruction\": \"Name item $i.\", \"output\": \"It is the cat.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
head -n 4 "$TMP/train.jsonl" >"$TMP/eval.jsonl"
# 12 steps, a state saved at steps 3, 6, 9, 12 (and the edits at the end)
C="-m $M -d $TMP/train.jsonl --eval $TMP/eval.jsonl --epochs 2 --batch 4 --eval-every 3
   --lr 0.05 --max-len 64 --template plain --dropout 0.1 --threads 1"
# shellcheck disable=SC2086
expect_ok "train uninterrupted" "$REDIT" train $C -o "$TMP/whole.safetensors" --state "$TMP/whole.state"

kills=0
for call in fsync rename; do
    n=1
    while :; do
        rm -f "$TMP/run.state" "$TMP/part.safetensors"
        rc=0
        # shellcheck disable=SC2086
        strace -f -qq -o /dev/null -e trace=$call -e inject=$call:signal=KILL:when=$n \
            "$REDIT" train $C -o "$TMP/part.safetensors" --state "$TMP/run.state" \
            >/dev/null 2>"$TMP/killed.err" || rc=$?
        # 0: the run made fewer than n such calls, every one has been tried
        [ $rc -eq 0 ] && break
        [ $rc -eq 137 ] || fail "the run under strace ended with status $rc, not killed at $call #$n: $(tail -c 400 "$TMP/killed.err")"
        kills=$((kills + 1))
        # shellcheck disable=SC2086
        expect_ok "resume after a kill at $call #$n" "$REDIT" train $C -o "$TMP/part.safetensors" \
            --state "$TMP/run.state"
        same_edit_tensors "$TMP/whole.safetensors" "$TMP/part.safetensors" ||
            fail "after a kill at $call #$n and a resume the edits differ from the uninterrupted run's"
        n=$((n + 1))
        [ $n -le 40 ] || fail "more than 40 ${call} calls: is the injection counting something else?"
    done
    [ $n -gt 2 ] || fail "only $((n - 1)) kill point(s) for $call: the run should commit 5 files"
done
echo "tests/cli/state_kill.sh: ok ($kills kills, each resumed to the uninterrupted run's edits)"
