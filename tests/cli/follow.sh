#!/bin/sh
# red.follow reads a training run's --log CSV while it runs (FILE.partial, a half-written last
# line left for later) and when it has ended (FILE): the steps' losses and the evaluations,
# as the run logged them.
set -eu
TMP=$(mktemp -d)
SOCK="redit-follow-$$"
trap 'tmux -L "$SOCK" kill-server 2>/dev/null && sleep 1; rm -rf "$TMP" 2>/dev/null || true' EXIT
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
: >"$TMP/train.jsonl"
i=0
while [ $i -lt 12 ]; do
    echo "{\"instruction\": \"Name item $i.\", \"output\": \"It is the cat.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
expect_ok "train with a log" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" --eval "$TMP/train.jsonl" \
    --batch 4 --epochs 2 --eval-every 3 --max-len 32 --template plain --threads 1 \
    -o "$TMP/e.safetensors" --log "$TMP/log.csv"
[ ! -e "$TMP/log.csv.partial" ] || fail "the .partial log is left after the run"
# a run still writing: the first two steps and half of the third line
head -n 3 "$TMP/log.csv" >"$TMP/live.csv.partial"
sed -n 4p "$TMP/log.csv" | head -c 5 >>"$TMP/live.csv.partial"
cat >"$TMP/f.lua" <<'LUA'
local log, live = ...
local f = red.follow(log)
assert(f.done == true, "a finished log")
assert(#f.loss == 6 and #f.steps == 6 and f.steps[6] == 6, "six steps: " .. #f.loss)
assert(#f.evals == 2 and f.evals[1].step == 3 and f.evals[2].step == 6, "evaluations at 3 and 6")
assert(f.evals[2].loss > 0 and f.evals[2].accuracy == nil and f.tokens_per_s > 0)
local g = red.follow(live)
assert(g.done == false, "a running log")
assert(#g.loss == 2 and g.loss[1] == f.loss[1], "two whole steps of the running log: " .. #g.loss)
local ok, err = pcall(red.follow, log .. ".missing")
assert(not ok and err:find("no training log"), err)
print("follow ok")
LUA
expect_ok "red.follow" "$REDIT" run "$TMP/f.lua" "$TMP/log.csv" "$TMP/live.csv"
expect_grep "red.follow" "$TMP/out" "^follow ok$"

# the workbench: wb.follow draws the running log as a run, then takes its edits when it ends
if ! command -v tmux >/dev/null 2>&1; then
    echo "tests/cli/follow.sh: SKIPPED the workbench part: tmux is missing"
    exit 0
fi
screen() { tmux -L "$SOCK" capture-pane -p -t w; }
wait_for() {
    n=300
    while [ $n -gt 0 ]; do
        screen >"$TMP/screen" 2>/dev/null || true
        LC_ALL=C grep -Eq -- "$1" "$TMP/screen" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    fail "the workbench never showed /$1/; it shows:
$(cat "$TMP/screen")"
}
ROOT="$(pwd)"
tmux -L "$SOCK" new-session -d -s w -x 100 -y 30 \
    "cd '$TMP' && LANG=C.UTF-8 LC_ALL=C.UTF-8 REDIT_HISTORY='$TMP/hist' '$ROOT/$REDIT' tui -m '$M' \
     --train '$TMP/train.jsonl' --sessions '$TMP/sessions' --session f --threads 1; echo EXITED \$?; sleep 60"
wait_for "Configuration"
tmux -L "$SOCK" send-keys -t w F5 "n = wb.follow('live.csv', 'done.safetensors')" Enter
wait_for "> n = wb.follow"
tmux -L "$SOCK" send-keys -t w "r = wb.runs()[#wb.runs()] print('steps', #r.loss, r.edits, r.label)" Enter
wait_for "^ *steps +2 +nil +followed live.csv"
# the run ends: its log is renamed and its edits written
cp "$TMP/e.safetensors" "$TMP/done.safetensors"
cp "$TMP/log.csv" "$TMP/live.csv"
rm "$TMP/live.csv.partial"
wait_for "ended: its edits from done.safetensors"
tmux -L "$SOCK" send-keys -t w "r = wb.runs()[#wb.runs()] print('now', #r.loss, #r.evals, wb.run_edits(n):params())" Enter
wait_for "^ *now +6 +2 +[0-9]+"
echo "tests/cli/follow.sh: ok"
