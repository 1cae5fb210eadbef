#!/bin/sh
# The TUI end to end in tmux (a 100×30 terminal): change the edit sites, train and watch the
# chart and numbers move, stop with Esc (Esc twice during a long evaluation skips it), chat
# and see both answers, run Lua in the console,
# resize down to 80×24 and below, quit, restore the session (chart and chat come back), a
# damaged session is moved aside untouched and a fresh one takes its name, quitting while training asks first, SIGTERM (also while the UI
# is busy and the worker's event queue is full) stops and saves. Every step polls
# capture-pane for the text it expects instead of sleeping.
set -eu
TMP=$(mktemp -d)
SOCK="redit-test-$$"
# (the workbenches save their sessions when tmux hangs up on them: give them a moment)
trap 'tmux -L "$SOCK" kill-server 2>/dev/null && sleep 0.5; rm -rf "$TMP"' EXIT
. tests/cli/common.inc

command -v tmux >/dev/null || fail "tmux is not installed (tools/install-deps.sh installs it)"
expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
i=0
: >"$TMP/train.jsonl"
while [ $i -lt 64 ]; do
    echo "{\"instruction\": \"Name item $i.\", \"output\": \"It is the cat.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
head -n 8 "$TMP/train.jsonl" >"$TMP/eval.jsonl"
ROOT="$(pwd)"

# start NAME SESSION: the workbench in a detached tmux session of 100×30 (TUI_SIZE="-x 80 -y 24":
# another size).
start() {
    tmux -L "$SOCK" new-session -d -s "$1" ${TUI_SIZE:--x 100 -y 30} \
        "cd '$TMP' && LANG=${TUI_LOCALE:-C.UTF-8} LC_ALL=${TUI_LOCALE:-C.UTF-8} REDIT_HISTORY='$TMP/hist' ${TUI_ENV:-} '$ROOT/$REDIT' tui ${TUI_MODEL--m '$M'} \
         --train '$TMP/train.jsonl' --eval '$TMP/eval.jsonl' --sessions '$TMP/sessions' \
         --session '$2' --threads 2 --stats '$TMP/stats.$1' ${TUI_EXTRA:-}; echo EXITED \$?; sleep 60"
}
screen() { tmux -L "$SOCK" capture-pane -p -t "$1"; }
keys() {
    t=$1
    shift
    tmux -L "$SOCK" send-keys -t "$t" "$@"
}
# wait_for NAME ERE [SECONDS]: polls the screen every 0.1 s until it matches.
wait_for() {
    n=$(( ${3:-40} * 10 ))
    while [ $n -gt 0 ]; do
        screen "$1" >"$TMP/screen" 2>/dev/null || true
        LC_ALL=C grep -Eq -- "$2" "$TMP/screen" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    fail "screen of $1 never showed /$2/; it shows:
$(cat "$TMP/screen")"
}
# wait_exit NAME: the program has ended (the EXITED line under its last words) with status 0.
wait_exit() {
    wait_for "$1" "EXITED [0-9]+"
    grep -q "EXITED 0" "$TMP/screen" || fail "$1 did not exit cleanly: $(cat "$TMP/screen")"
}
# file_of DIR PATTERN: the session file matching PATTERN (its generation changes at every save)
file_of() {
    for f in "$1"/$2; do [ -e "$f" ] && echo "$f" && return 0; done
    echo "$1/$2 (none)"
}
# wait_top NAME ERE...: pages the focused chat up (PgUp) until the screen matches every ERE.
# It pages only while the status line says idle: paging while answers stream would pass a
# turn's top before its answers end (on a slow machine — the sanitizer build, a loaded host —
# the view then sat at the transcript's top, above a second turn, for good).
wait_top() {
    t=$1
    shift
    n=400
    busy=3000
    while [ $n -gt 0 ] && [ $busy -gt 0 ]; do
        screen "$t" >"$TMP/screen" 2>/dev/null || true
        ok=1
        for re in "$@"; do LC_ALL=C grep -Eq -- "$re" "$TMP/screen" || ok=0; done
        [ $ok = 1 ] && return 0
        if LC_ALL=C grep -q " idle *$" "$TMP/screen"; then
            keys "$t" PPage
            n=$((n - 1))
        else
            busy=$((busy - 1))
        fi
        sleep 0.1
    done
    fail "screen of $t never showed /$*/ at the transcript's top; it shows:
$(cat "$TMP/screen")"
}
step_of() { screen "$1" | sed -n 's/.*TRAINING \([0-9]*\)\/.*/\1/p' | head -n 1; }

# --- a session: sites, training, stop, chat, console, resize, quit --------------------------
start a s1
wait_for a "Configuration"
wait_for a "ffn, layers all"
keys a F2 Down Space
wait_for a "attn, layers all"
keys a F5 "wb.set{epochs = 40, eval_every = 4, lr = 0.02, dropout = 0.1}" Enter
wait_for a "> wb.set\\{epochs = 40"
keys a F6
wait_for a "TRAINING [0-9]+/[0-9]+"
wait_for a "step [0-9]+/[0-9]+ +epoch"
# at 100 columns the status line keeps the session and the state with the ETA, the training
# line the step, loss and eval (fields drop by priority, the least needed first)
wait_for a "^ .* │ session s1 +TRAINING [0-9]+/[0-9]+ · ETA [0-9]+(\\.[0-9]s|m[0-9]{2}s|h[0-9]{2}m) *$"
wait_for a "step [0-9]+/[0-9]+ .*loss [0-9]+\\.[0-9]{4} +eval ([0-9]+\\.[0-9]{4}|-)"
wait_for a "#1 attn all s b lr 0.02 drop 0.1"
# the numbers move and the chart has braille cells
first=$(step_of a)
n=100
while [ $n -gt 0 ] && [ "$(step_of a)" = "$first" ]; do sleep 0.1; n=$((n - 1)); done
[ "$(step_of a)" != "$first" ] || fail "the step count did not move while training"
# braille cells are U+2800..U+28FF: bytes E2 A0..A3 xx
BRAILLE="$(printf '\342\240')|$(printf '\342\241')|$(printf '\342\242')|$(printf '\342\243')"
wait_for a "$BRAILLE"
# chat while training is refused politely
keys a F4 "Name item 3." Enter
wait_for a "chat is available when it stops"
keys a Escape
wait_for a "stopped: [0-9]+ steps"
wait_for a " idle" 300
keys a Enter
# both answers are written (the answers end: idle again, the prompt, the headers and text on
# both sides of the rule), seen from the transcript's top: a long answer scrolls the prompt
# out of view
wait_top a "you: Name item 3\\." "edited  α=1" " idle" '[^ ] *│ *[^ ]'
keys a F5 "print(1+1)" Enter
wait_for a "^ 2 *$"
# console output wraps at word boundaries rather than being cut: the end of a long line and
# of wb.help()'s list of settings are on screen
keys a 'print(string.rep("word ", 30) .. "END")' Enter
wait_for a "^ word word .* word END *$"
keys a "wb.help()" Enter
wait_for a " max_tokens strength *$"
# a table result shows its fields (the REPL's printer), not "table: 0x..."
keys a "wb.status()" Enter
wait_for a "^   training = false *$"
# a configuration error is shown whole, wrapped in the pane (never "is not a whole numbe")
keys a F2 Home Down Down Down Down Down Down Enter C-u "2.5"
wait_for a "epochs +2\\.5"
screen a | cut -c 1-30 | tr -s ' \n' '  ' >"$TMP/config-text"
grep -q "epochs: '2.5' is not a whole number" "$TMP/config-text" ||
    fail "the configuration error is cut: $(cat "$TMP/config-text")"
keys a Escape
wait_for a "epochs +40 "
keys a F5
keys a "red.vers" Tab
wait_for a "> red.version"
keys a C-u
# resizing
tmux -L "$SOCK" resize-window -t a -x 80 -y 24
wait_for a "F1 help"
screen a | awk '{ if (length($0) > 80) bad = 1 } END { exit bad }' || true
[ "$(screen a | wc -l)" -eq 24 ] || fail "the screen is not 24 rows after the resize"
tmux -L "$SOCK" resize-window -t a -x 70 -y 20
wait_for a "terminal too small"
tmux -L "$SOCK" resize-window -t a -x 100 -y 30
wait_for a "Loss \\(train line"
keys a F10
wait_exit a
grep -q "session saved" "$TMP/screen" || fail "no 'session saved' on quit: $(cat "$TMP/screen")"
S="$TMP/sessions/s1"
for f in session.json 'edits-*.safetensors' 'loss-*.csv' 'chat-*.jsonl' runs/1/edits.safetensors; do
    [ -s "$(file_of "$S" "$f")" ] || fail "the session has no $f: $(ls -R "$S")"
done
grep -q "Name item 3." "$(file_of "$S" 'chat-*.jsonl')" || fail "the chat file lacks the prompt"
[ "$(grep -c ',train,' "$(file_of "$S" 'loss-*.csv')")" -ge 2 ] || fail "the loss file has too few steps"
ls "$S" | grep -q tmp && fail "a temporary file was left in the session folder"
grep -q '"sites":"attn"' "$S/session.json" || fail "the sites change was not saved"
grep -q '"dropout":0.1' "$S/session.json" || fail "the dropout setting was not saved"
cp "$TMP/stats.a" "$TMP/ui-latency.txt"

# --- restoring: chart, chat and settings come back ----------------------------------------
start b s1
wait_for b "restored: 1 run\\(s\\), 1 chat turn"
wait_for b "#1 attn all"
keys b F4 PPage PPage   # the transcript's top may be scrolled away
wait_for b "you: Name item 3\\."
wait_for b "attn, layers all"
keys b F10
wait_exit b

# --- a terminal that is not UTF-8: the same session drawn in ASCII -----------------------
TUI_LOCALE=C start f s1
wait_for f "\\| attn, layers all"
wait_for f " \\+-----"
if screen f | LC_ALL=C grep -q "$(printf '\342')"; then fail "UTF-8 on a non-UTF-8 terminal: $(screen f)"; fi
keys f F10
wait_exit f

# --- a damaged session is moved aside, untouched, and a fresh one takes its name -----------
mkdir -p "$TMP/sessions/bad"
printf '{"format": "redit-session", "version": 1, "config": {"lr": "fast"' >"$TMP/sessions/bad/session.json"
printf 'run,step,kind,loss\n0,1,train,2.5\n' >"$TMP/sessions/bad/loss.csv"
cp -a "$TMP/sessions/bad" "$TMP/bad.orig"
start c bad
wait_for c "session bad is damaged"
wait_for c "moved aside"
wait_for c "no run yet"
keys c F10
wait_exit c
moved=$(ls -d "$TMP/sessions/bad.damaged-"* 2>/dev/null | head -n 1)
[ -n "$moved" ] || fail "the damaged session was not moved aside: $(ls "$TMP/sessions")"
diff -r "$TMP/bad.orig" "$moved" || fail "the damaged session's files changed"
grep -Eq '"version":[[:space:]]*2' "$TMP/sessions/bad/session.json" || fail "no fresh session under the name"
# a loss file naming a run session.json does not list: the same
mkdir -p "$TMP/sessions/bad2"
printf '{"format": "redit-session", "version": 1, "model_path": "", "model_fingerprint": "", "config": {}, "runs": []}' \
    >"$TMP/sessions/bad2/session.json"
printf 'run,step,kind,loss\n2,1,train,2.5\n' >"$TMP/sessions/bad2/loss.csv"
cp -a "$TMP/sessions/bad2" "$TMP/bad2.orig"
start c2 bad2
wait_for c2 "session bad2 is damaged"
keys c2 F10
wait_exit c2
moved=$(ls -d "$TMP/sessions/bad2.damaged-"* 2>/dev/null | head -n 1)
[ -n "$moved" ] || fail "the damaged session bad2 was not moved aside: $(ls "$TMP/sessions")"
diff -r "$TMP/bad2.orig" "$moved" || fail "the damaged session bad2's files changed"

# --- quitting while training asks first -------------------------------------------------
start d s2
wait_for d "Configuration"
keys d F5 "wb.set{epochs = 200}" Enter
wait_for d "> wb.set\\{epochs = 200\\}"
keys d F6
wait_for d "TRAINING [0-9]+/"
# at 80×24 the state, step and ETA stay on the status line, step, loss and eval under the chart
tmux -L "$SOCK" resize-window -t d -x 80 -y 24
wait_for d " TRAINING [0-9]+/[0-9]+ · ETA [0-9]"
wait_for d "step [0-9]+/[0-9]+ +loss [0-9]+\\.[0-9]{4} +eval"
keys d F10
wait_for d "quit anyway\\? \\(y/n\\)"
keys d n
wait_for d "quit cancelled"
wait_for d "TRAINING"
keys d F10
wait_for d "quit anyway"
keys d y
wait_exit d
[ -s "$TMP/sessions/s2/runs/1/edits.safetensors" ] || fail "quitting while training lost the edits"
# --- at 80×24 a one-line answer beside a long one stays in view: the shorter column slides
# down with the view (it scrolled away above the long answer's end) ------------------------
start n narrow
tmux -L "$SOCK" resize-window -t n -x 80 -y 24
wait_for n "Configuration"
keys n F5 "wb.set{epochs = 3, lr = 0.1}; wb.train()" Enter
wait_for n "#1 ffn all"
wait_for n " idle" 300
keys n F4 "Name item 3." Enter
wait_top n "you: Name item 3\\." "edited  α=1" " idle" '[^ ] *│ *[^ ]'
keys n NPage NPage NPage NPage NPage NPage
sleep 0.3
screen n >"$TMP/screen"
grep -q "you: Name item 3" "$TMP/screen" && fail "the answers fit the view: the test needs a longer one: $(cat "$TMP/screen")"
sed -n '/Chat: base/,/Lua console/p' "$TMP/screen" | grep -q '│ [^ ]' ||
    fail "the edited answer scrolled out of view at 80×24: $(cat "$TMP/screen")"
keys n F10
wait_exit n

# --- settings from the command line ---------------------------------------------------------
TUI_EXTRA="--set sites=both --set lr=0.05" start g s4
wait_for g "both, layers all"
wait_for g "learning rate +0.05"
keys g F10
wait_exit g
TUI_EXTRA="--set lr=fast" start h s5
wait_for h "--set lr=fast: lr: 'fast' is not a number"
wait_for h "EXITED 2"

# --- every run's edits are kept: two runs, reopened, both come back as trained; run 1 is
# used, exported after run 2, and run 2 deleted ------------------------------------------
start r s8
wait_for r "Configuration"
keys r F5 "wb.set{epochs = 2}; wb.train()" Enter
wait_for r "#1 ffn all"
wait_for r " idle" 300
keys r "wb.edits():save('$TMP/e1.safetensors'); print('saved' .. 1)" Enter
wait_for r "^ saved1 *$"
keys r "wb.set{sites = 'both'}; wb.train()" Enter
wait_for r "#2 both all"
wait_for r " idle" 300
keys r "wb.edits():save('$TMP/e2.safetensors'); print('saved' .. 2)" Enter
wait_for r "^ saved2 *$"
keys r F10
wait_exit r
S8="$TMP/sessions/s8"
[ -s "$S8/runs/1/edits.safetensors" ] && [ -s "$S8/runs/2/edits.safetensors" ] ||
    fail "the two runs' edits were not both kept: $(ls -R "$S8")"
# the CLI lists both runs (no model needed): id, label, steps, best eval, how it ended, edits
expect_ok "redit session s8" "$REDIT" session s8 --root "$TMP/sessions"
expect_grep "session listing" "$TMP/out" "^session s8 .*2 run\\(s\\)"
expect_grep "session listing, run 1" "$TMP/out" "^ +1 +[0-9]+ +[0-9]+\\.[0-9]{4} +done +#1 ffn all"
expect_grep "session listing, run 2" "$TMP/out" "^\\* +2 +[0-9]+ +[0-9]+\\.[0-9]{4} +done +#2 both all"
expect_grep "session listing, run 1's edits" "$TMP/out" "edits: $S8/runs/1/edits.safetensors"
expect_grep "session listing, run 2's edits" "$TMP/out" "edits: $S8/runs/2/edits.safetensors"
expect_fail "redit session of no session" "there is no session nope" "$REDIT" session nope --root "$TMP/sessions"
# the CLI changes a copy of it through the session code (saved as one unit, no model):
# --edits N prints run N's edits file, --use N makes them the current ones, --delete N
cp -r "$S8" "$TMP/sessions/s9"
S9="$TMP/sessions/s9"
expect_ok "redit session --edits 1" "$REDIT" session s9 --root "$TMP/sessions" --edits 1
[ "$(cat "$TMP/out")" = "$S9/runs/1/edits.safetensors" ] || fail "--edits 1 printed $(cat "$TMP/out")"
expect_ok "generate with run 1's edits by path" "$REDIT" generate -m "$M" --edits "$(cat "$TMP/out")" \
    --temp 0 -n 12 -p "Name item 3." --threads 2
cp "$TMP/out" "$TMP/gen-run1"
expect_ok "generate with e1" "$REDIT" generate -m "$M" --edits "$TMP/e1.safetensors" --temp 0 -n 12 \
    -p "Name item 3." --threads 2
cmp -s "$TMP/out" "$TMP/gen-run1" || fail "run 1's edits file does not answer as wb.edits() did after run 1"
cp "$S9/session.json" "$TMP/s9.before"
expect_fail "redit session --use of no run" "no run #7" "$REDIT" session s9 --root "$TMP/sessions" --use 7
expect_fail "redit session --delete of no run" "no run #7" "$REDIT" session s9 --root "$TMP/sessions" --delete 7
expect_fail "redit session --use 0" "not a run id" "$REDIT" session s9 --root "$TMP/sessions" --use 0
cmp -s "$S9/session.json" "$TMP/s9.before" || fail "a refused --use/--delete changed the session"
expect_ok "redit session --use 1" "$REDIT" session s9 --root "$TMP/sessions" --use 1
expect_ok "redit session s9" "$REDIT" session s9 --root "$TMP/sessions"
expect_grep "--use 1 marks run 1 current" "$TMP/out" "^\\* +1 .*#1 ffn all"
expect_grep "--use 1: run 2 is not current" "$TMP/out" "^  +2 .*#2 both all"
cur=$(file_of "$S9" 'edits-*.safetensors')
cmp -s "$cur" "$S9/runs/1/edits.safetensors" || fail "the current edits ($cur) are not run 1's"
[ "$(ls "$S9" | grep -c '^edits-')" = 1 ] || fail "old current edits were not tidied: $(ls "$S9")"
expect_ok "redit session --delete 2" "$REDIT" session s9 --root "$TMP/sessions" --delete 2
expect_ok "redit session s9 after --delete" "$REDIT" session s9 --root "$TMP/sessions"
expect_grep "--delete 2 leaves one run" "$TMP/out" "^session s9 .*1 run\\(s\\)"
[ -e "$S9/runs/2" ] && fail "--delete 2 left its edits: $(ls -R "$S9")"
ls -R "$S9" | grep -q '\.tmp-' && fail "a temporary file was left in s9: $(ls -R "$S9")"
expect_fail "redit session --edits of a deleted run" "no run #2" "$REDIT" session s9 --root "$TMP/sessions" --edits 2
# a damaged session is refused, left as it is
cp -r "$S9" "$TMP/sessions/s10"
printf '{"format": "redit-session", "vers' >"$TMP/sessions/s10/session.json"
cp -r "$TMP/sessions/s10" "$TMP/s10.orig"
expect_fail "redit session --use on a damaged session" "damaged.*left as it is" \
    "$REDIT" session s10 --root "$TMP/sessions" --use 1
expect_fail "redit session --delete on a damaged session" "damaged" \
    "$REDIT" session s10 --root "$TMP/sessions" --delete 1
diff -r "$TMP/s10.orig" "$TMP/sessions/s10" >/dev/null || fail "the damaged session s10 was changed"
rm -rf "$TMP/sessions/s10"
start r2 s8
wait_for r2 "restored: 2 run\\(s\\)"
# the base beside two runs in the chat: each column titled with its run, the legend says
# which column (the base is 1)
keys r2 F5 "print('cols ' .. table.concat({wb.compare(1, 2)}, '/')) wb.focus('chat') wb.chat('Name item 5.')" Enter
wait_for r2 "Chat: base \\| run #1 \\| run #2"
wait_for r2 "2:#1 ffn all.*3:\\*?#2 both all"
wait_top r2 "you: Name item 5\\." "base +#1 ffn all.*#2 both al.*α=1" " idle" '[^ │] *│ *[^ │][^│]*│ *[^ │]'
# ":compare" in the chat line: runs by number and an edits file (run 1's), four columns; the
# run and the file with the same edits answer alike (greedy)
keys r2 ":compare 1 #2 $TMP/e1.safetensors" Enter
wait_for r2 "Chat: base \\| run #1 \\| run #2 \\| e1.safetensors"
wait_for r2 "compares the base model with 3 edit sets"
keys r2 "Name item 6." Enter
wait_top r2 "you: Name item 6\\." "base +#1 ffn.*#2 bot.*e1\\.saf.*α=1" " idle" '[^ │] *│ *[^ │][^│]*│ *[^ │][^│]*│ *[^ │]'
# a file that is not there is refused naming it; the comparison stays, the line too
keys r2 ":compare 1 $TMP/no-such.safetensors" Enter
wait_for r2 "no-such.safetensors: cannot open"
wait_for r2 "Chat: base \\| run #1 \\| run #2 \\| e1.safetensors"
keys r2 C-u ":compare" Enter
wait_for r2 "Chat: base \\| edited"
keys r2 F5 "print('cols ' .. table.concat({wb.compare(1, '$TMP/e2.safetensors')}, '/'))" Enter
wait_for r2 "^ cols #1 ffn all s b lr [0-9.]+( bf16)?/e2.safetensors *$"
keys r2 F5 "wb.compare() print('cmp' .. select('#', wb.compare()))" Enter
wait_for r2 "^ cmp0 *$"
wait_for r2 "Chat: base \\| edited"
keys r2 F5 "local a = wb.run_edits(1):compare(red.load_edits('$TMP/e1.safetensors', model)) local b = wb.run_edits(2):compare(red.load_edits('$TMP/e2.safetensors', model)) print('same' .. tostring(a.max_abs_scale + a.max_abs_bias == 0 and b.max_abs_scale + b.max_abs_bias == 0))" Enter
wait_for r2 "^ sametrue *$"
keys r2 "wb.use_run(1) print('cur' .. tostring(wb.runs()[1].current) .. wb.edits():info().sites)" Enter
wait_for r2 "^ curtrueffn *$"
wait_for r2 "\\*#1 ffn all"
keys r2 "wb.delete_run(2) print('left' .. #wb.runs())" Enter
wait_for r2 "^ left1 *$"
keys r2 F10
wait_exit r2
[ -e "$S8/runs/2" ] && fail "the deleted run's edits are still there: $(ls -R "$S8")"
"$PY" - "$(file_of "$S8" 'chat-*.jsonl')" <<'EOF' || fail "the compared turns are not in the chat file: $(cat "$(file_of "$S8" 'chat-*.jsonl')")"
import json, sys
turns = {json.loads(l)["prompt"]: json.loads(l)
         for l in open(sys.argv[1], encoding="utf-8", errors="surrogateescape") if l.strip()}
t5, t6 = turns["Name item 5."], turns["Name item 6."]
assert t5.get("left", "") == "" and t5["right"].startswith("#1 ffn all"), t5
assert [m["title"][:11] for m in t5["more"]] == ["#2 both all"], t5
assert t6["right"].startswith("#1 ffn all"), t6
assert [m["title"][:11] for m in t6["more"]] == ["#2 both all", "e1.safetens"], t6
assert t6["more"][1]["text"] == t6["edited"] and t6["edited"], t6  # run 1 = its file
assert all(m["text"] for m in t6["more"]) and t6["base"], t6
EOF
# at 80×24 the base and three edit sets still fit the chat pane: four titled columns
TUI_SIZE="-x 80 -y 24" start r3 s8
wait_for r3 "restored: 1 run\\(s\\)"
keys r3 F5 "wb.compare(1, '$TMP/e1.safetensors', red.load_edits('$TMP/e2.safetensors', model)) wb.focus('chat') wb.chat('Name item 7.')" Enter
wait_for r3 "Chat: base \\| run #1 \\| e1.safetensors \\| edits 3"
wait_top r3 "you: Name item 7\\." "base .*α=1.*α=1.*α=1" " idle" '[^ │] *│ *[^ │][^│]*│ *[^ │][^│]*│ *[^ │]'
keys r3 F10
wait_exit r3
expect_ok "export run 1 after run 2" "$REDIT" export --edits "$S8/runs/1/edits.safetensors" -m "$M" \
    --format safetensors -o "$TMP/run1-export.safetensors"
[ -s "$TMP/run1-export.safetensors" ] || fail "the export of run 1 is empty"

# --- sessions find their model by fingerprint, not the spelling of its path -------------
# (s8 holds run 1, ffn, current; its settings say both): a symlink, a relative path, a copy
# elsewhere restore everything, edits included, and the session records the path given
ln -s "$M" "$TMP/link.gguf"
mkdir -p "$TMP/moved"
cp "$M" "$TMP/moved/copy.gguf"
k=0
for spelling in "$TMP/link.gguf" "random-demo.gguf" "$TMP/moved/copy.gguf"; do
    k=$((k + 1))
    TUI_MODEL="-m '$spelling'" start "p$k" s8
    wait_for "p$k" "restored: 1 run\\(s\\)"
    grep -Eq "another model|made with|not loaded|need" "$TMP/screen" &&
        fail "$spelling counted as another model: $(cat "$TMP/screen")"
    keys "p$k" F5 "print('cur' .. tostring(wb.runs()[1].current) .. wb.edits():info().sites)" Enter
    wait_for "p$k" "^ curtrueffn *$"
    keys "p$k" F10
    wait_exit "p$k"
    grep -Eq "\"model_path\":[[:space:]]*\"$spelling\"" "$S8/session.json" ||
        fail "the session does not record the path given last ($spelling): $(cat "$S8/session.json")"
done
# the model moves: without -m the session says where it looked and asks for the new path
mv "$TMP/moved/copy.gguf" "$TMP/moved/copy2.gguf"
expect_fail "a session whose model moved" "copy.gguf is not found.*new path with -m" \
    "$REDIT" tui --sessions "$TMP/sessions" --session s8
TUI_MODEL="-m '$TMP/moved/copy2.gguf'" start p4 s8
wait_for p4 "restored: 1 run\\(s\\).*found again at"
keys p4 F10
wait_exit p4
# without -m the session's model is opened
TUI_MODEL=" " start p5 s8
wait_for p5 "restored: 1 run\\(s\\)"
keys p5 F10
wait_exit p5
# another model (one weight byte changed) is refused with both fingerprints, the session untouched
cp "$M" "$TMP/other.gguf"
size=$(wc -c <"$TMP/other.gguf")
printf '\177' | dd of="$TMP/other.gguf" bs=1 seek=$((size - 7)) conv=notrunc 2>/dev/null
cp -a "$S8" "$TMP/s8.before"
TUI_MODEL="-m '$TMP/other.gguf'" start p6 s8
wait_for p6 "EXITED 2"
tmux -L "$SOCK" capture-pane -p -J -t p6 >"$TMP/screen"
grep -Eq "made with another model" "$TMP/screen" || fail "another model was not refused: $(cat "$TMP/screen")"
[ "$(grep -Eo 'fingerprint [0-9a-f]{16}' "$TMP/screen" | sort -u | wc -l)" -eq 2 ] ||
    fail "the refusal does not name both fingerprints: $(cat "$TMP/screen")"
diff -r "$TMP/s8.before" "$S8" || fail "the session changed when another model was refused"

# --- `make run` on an existing session restores it: the Makefile's settings only seed a new
# session (--init-set); an explicit --set still overrides ---------------------------------
QS=$(sed -n '/^QUICKSTART_SETTINGS :=/,/[^\\]$/p' Makefile | sed 's/^QUICKSTART_SETTINGS :=//; s/\\$//' | tr '\n' ' ')
case "$QS" in *sites=ffn*) ;; *) fail "no QUICKSTART_SETTINGS in the Makefile: $QS" ;; esac
TUI_EXTRA="$QS" start w1 qs
wait_for w1 "ffn, layers all"
wait_for w1 "learning rate +0.05"
keys w1 F5 "wb.set{sites = 'both', lr = 0.02}" Enter
wait_for w1 "both, layers all"
keys w1 F10
wait_exit w1
TUI_EXTRA="$QS" start w2 qs
wait_for w2 "both, layers all"
wait_for w2 "learning rate +0.02"
wait_for w2 "both, layers all, scale\\+bias │ 2,048 params"
keys w2 F5 "print('sites' .. wb.get('sites') .. wb.get('epochs'))" Enter
wait_for w2 "^ sitesboth14 *$"
keys w2 F10
wait_exit w2
grep -q '"sites":"both"' "$TMP/sessions/qs/session.json" || fail "make run rewrote the session's sites"
TUI_EXTRA="$QS --set lr=0.03" start w3 qs
wait_for w3 "learning rate +0.03"
wait_for w3 "both, layers all"
keys w3 F10
wait_exit w3

# --- at 80×24 a long notice wraps on rows taken from the console; the help fits ----------
mkdir -p "$TMP/sessions/bad3"
printf '{"format": "redit-session"' >"$TMP/sessions/bad3/session.json"
TUI_SIZE="-x 80 -y 24" start m1 bad3
wait_for m1 "^session bad3 is damaged: moved aside to"
# its last words (a word is never split), the console above it
wait_for m1 "JSON\\)"
wait_for m1 "^ Lua console "
# (the chart's line before a run fits its 48 columns too)
wait_for m1 "no run yet: F6 \\(or t\\) starts training"
# the help's longest lines end in the box
keys m1 F1
wait_for m1 "redit workbench"
for end in "a new run; old curves stay\\)" "best edits kept; Esc again" "stops a job or chunk" \
    "Space/Left/Right toggle or cycle" "edited answers side by" "Up/Down history,"; do
    wait_for m1 "$end"
done
keys m1 x
# a notice beyond 4 rows ends in "…" and is printed in full in the console
DEEP="$TMP/a-folder-with-a-rather-long-name-for-the-sessions"
DEEP="$DEEP/and-another-one-below-it/and-one-more-below-that"
mkdir -p "$DEEP/bad4"
printf '{"format": "redit-session"' >"$DEEP/bad4/session.json"
TUI_SIZE="-x 80 -y 24" TUI_EXTRA="--sessions '$DEEP'" start m2 bad4
wait_for m2 "^session bad4 is damaged: moved aside to"
wait_for m2 "…$"
keys m2 F5
wait_for m2 "^F1 help"
wait_for m2 "JSON\\)"
keys m2 F10
wait_exit m2
keys m1 F10
wait_exit m1

# --- a session that cannot be saved is refused before anything starts ---------------------
: >"$TMP/afile"
t0=$(date +%s%N)
expect_fail "a session name that cannot be saved" "session name \"\\.\\./x\": must not start" \
    "$REDIT" tui -m "$M" --sessions "$TMP/sessions" --session ../x
expect_fail "a sessions folder under a file" "cannot be saved.*part of it is a file" \
    "$REDIT" tui -m "$M" --sessions "$TMP/afile/sessions" --session s
t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -lt 1000 ] || fail "the refusals took $(( (t1 - t0) / 1000000 )) ms"
TUI_EXTRA="--sessions '$TMP/afile/sessions'" start v s10
wait_for v "EXITED 2"
tmux -L "$SOCK" capture-pane -p -J -t v >"$TMP/screen"
grep -q "cannot be saved" "$TMP/screen" || fail "the workbench did not refuse the folder: $(cat "$TMP/screen")"

# --- a save that fails at quit asks first: stay, then save in another folder, the run's
# edits (saved after training in the first folder) included -------------------------------
# (folders in the way of the next save's loss file make it fail, also for root)
mkdir -p "$TMP/home"
TUI_ENV="HOME='$TMP/home'" TUI_EXTRA="--sessions '$TMP/s9root/sessions'" start u s9
wait_for u "Configuration"
keys u F5 "wb.set{epochs = 1}; wb.train()" Enter
wait_for u "#1 ffn all"
wait_for u " idle" 300
[ -s "$TMP/s9root/sessions/s9/runs/1/edits.safetensors" ] || fail "the run was not saved after training"
for g in 2 3 4 5 6; do mkdir -p "$TMP/s9root/sessions/s9/loss-$g.csv"; done
keys u F10
wait_for u "not saved .* o: save in .*y: quit without saving"
keys u n
wait_for u "quit cancelled"
keys u F10
wait_for u "not saved"
keys u o
wait_exit u
grep -q "session saved in $TMP/home/redit-sessions/s9" "$TMP/screen" || fail "not saved elsewhere: $(cat "$TMP/screen")"
[ -s "$TMP/home/redit-sessions/s9/runs/1/edits.safetensors" ] || fail "the run was not saved in the other folder"
expect_ok "the session saved elsewhere loads" "$REDIT" session s9 --root "$TMP/home/redit-sessions"
expect_grep "the session saved elsewhere" "$TMP/out" "edits: $TMP/home/redit-sessions/s9/runs/1/edits.safetensors"

# --- a classification set: the eval accuracy on the chart line and in the result ------------
: >"$TMP/cls.jsonl"
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    if [ $((i % 2)) -eq 0 ]; then t="money and prizes" l=spam; else t="the weekly meeting" l=ham; fi
    echo "{\"text\": \"message $i about $t\", \"label\": \"$l\"}" >>"$TMP/cls.jsonl"
done
TUI_EXTRA="--set train_path=$TMP/cls.jsonl --set eval_path=$TMP/cls.jsonl --set epochs=3 --set batch=4 --set micro_batch=4" \
    start k s6
wait_for k "Configuration"
keys k F6
wait_for k "best eval accuracy [0-9.]+% \\(loss [0-9.]+\\)"
wait_for k "9 steps  best eval [0-9.]+ \\(acc [0-9.]+%\\)"
keys k F10
wait_exit k

# --- Esc while training with a large held-out set: at once "evaluating… (Esc again to skip)"
# on the training line; a second Esc skips the evaluation (none is recorded) and the run's
# edits (the last step's) are saved ------------------------------------------------------
i=0
: >"$TMP/bigeval.jsonl"
while [ $i -lt 3000 ]; do
    echo "{\"instruction\": \"Name item $i, and say a few more words about it.\", \"output\": \"It is the cat, a fine cat.\"}" >>"$TMP/bigeval.jsonl"
    i=$((i + 1))
done
TUI_EXTRA="--set eval_path=$TMP/bigeval.jsonl --set epochs=50" start x s13
wait_for x "Configuration"
keys x F6
wait_for x "step [0-9]+/[0-9]+ +epoch"
keys x Escape
wait_for x "stopping: evaluating(…|\.\.\.) \(Esc again to skip\)"
keys x Escape
wait_for x "stopped: [0-9]+ steps .*evaluation skipped"
keys x F10
wait_exit x
[ -s "$TMP/sessions/s13/runs/1/edits.safetensors" ] || fail "a run whose evaluation was skipped lost its edits"
grep -q ',train,' "$(file_of "$TMP/sessions/s13" 'loss-*.csv')" || fail "a skipped evaluation lost the loss history"
grep -q ',eval,' "$(file_of "$TMP/sessions/s13" 'loss-*.csv')" && fail "the skipped evaluation was recorded"

# --- multiple-choice evaluation: `e` scores the configured mc file with the base model and the
# current edits (session s1's trained run) in the background; the console's table has the
# numbers `redit eval --compare` gives for the same edits; wb.mc() returns them; without a
# file it says how to set one; a stop ends a long one -----------------------------------------
cat >"$TMP/mc.jsonl" <<'EOF'
{"context": "Name item 3.", "choices": [" It is the cat.", " Wetness caused by water.", " A dog"], "gold": 0}
{"context": "Name item 7.", "choices": [" A boy or man.", " It is the cat, a fine cat."], "gold": 1}
{"context": "Call me", "choices": [" Ishmael.", " a taxi, please, now.", " x", " It is"], "gold": 3}
{"context": "Human: Define the word fellow.\n\nAssistant:", "choices": [" A boy or man.", " It is the cat."], "gold": 0}
{"context": "The whale swam in the ", "choices": ["sea", "desert of the south"], "gold": 0}
{"context": "Name item 12.", "choices": [" Ahab", " It is the cat."], "gold": 1}
EOF
i=0
: >"$TMP/big-mc.jsonl"
while [ $i -lt 2000 ]; do cat "$TMP/mc.jsonl" >>"$TMP/big-mc.jsonl"; i=$((i + 1)); done
start e1 s1
wait_for e1 "Configuration"
keys e1 F5 'wb.eval_mc()' Enter
wait_for e1 "no multiple-choice file"
keys e1 'wb.set("mc_path", "mc.jsonl"); wb.strength(4)' Enter
keys e1 F3 e
wait_for e1 "MC eval mc.jsonl: 6 items \\(context/choices/gold style"
wait_for e1 "edited: #[0-9]+ .* at α 4"
wait_for e1 " idle *$"
screen e1 >"$TMP/mc-screen"
keys e1 F5 'm = wb.mc(); print(m.items, m.base.acc, m.edited_scores.acc_norm, m.mcnemar.acc.p)' Enter
wait_for e1 "^ 6 +[0-9.]+ +[0-9.]+ +[0-9.]+ *$"
# Esc (here wb.stop(), in the same chunk) stops a long one between items
keys e1 'wb.eval_mc("big-mc.jsonl"); wb.stop()' Enter
wait_for e1 "multiple-choice evaluation stopped"
keys e1 F10
wait_exit e1
grep -q '"mc_path":[[:space:]]*"mc.jsonl"' "$TMP/sessions/s1/session.json" || fail "the mc file setting was not saved"
expect_ok "eval --compare on the session's edits" "$REDIT" eval -m "$M" -d "$TMP/mc.jsonl" \
    --edits "$(file_of "$TMP/sessions/s1" 'edits-*.safetensors')" --strength 4 --compare --json -t 2
"$PY" - "$TMP/out" "$TMP/mc-screen" <<'PY' || fail "the workbench's MC table differs from redit eval --compare"
import json, re, sys
j = json.load(open(sys.argv[1]))
screen = open(sys.argv[2], encoding="utf-8").read()
for k in ("acc", "acc_norm"):
    b, e, m = j["base"], j["edited"], j["mcnemar"][k]
    f = ["%.4f ± %.4f" % (b[k], b[k + "_stderr"]), "%.4f ± %.4f" % (e[k], e[k + "_stderr"]),
         "%+.4f" % (e[k] - b[k]),
         "%.3g (%d base only, %d edited only)" % (m["p"], m["base_only"], m["edited_only"])]
    want = " " + k + " +" + " +".join(re.escape(x) for x in f)
    if not re.search(want, screen):
        sys.exit("no /%s/ in:\n%s" % (want, screen))
PY

# --- methods: a LoRA run after a RED run, one chart with both legends; the pane shows the
# method's settings; the status line counts the LoRA numbers; chat base ∥ LoRA; the method
# comes back with the session -----------------------------------------------------------
start lo s14
wait_for lo "Configuration"
wait_for lo " method +red "
keys lo F5 "wb.set{epochs = 2}; wb.train()" Enter
wait_for lo "#1 ffn all s b lr"
wait_for lo " idle" 300
keys lo "wb.set{method = 'lora', rank = 4, lr = 0.005}" Enter
wait_for lo "lora r4 q,v, layers all, alpha 8 │ [0-9,]+ params"
# the configuration pane: LoRA's fields, not RED's
wait_for lo " rank +4 "
wait_for lo " lora targets +q,v "
screen lo | grep -Eq " sites +ffn " && fail "the pane shows RED's sites for a LoRA run: $(screen lo)"
keys lo "wb.train()" Enter
wait_for lo "#2 lora r4 q,v lr 0.005"
wait_for lo " idle" 300
# both runs in the chart's legend
wait_for lo "#1 ffn all s b lr [0-9.]+"
wait_for lo "\\*?#2 lora r4 q,v lr 0.005"
keys lo F4 "Name item 3." Enter
wait_top lo "you: Name item 3\\." "edited  α=1" " idle" '[^ ] *│ *[^ ]'
keys lo F5 "wb.set{method = 'ia3'}" Enter
wait_for lo "ia3, layers all │ [0-9,]+ params"
# full fine-tuning: a copy of the model trains (in f32, greedy chat: the answers after the
# restart must be the same); the chat's edited side answers with it; the session keeps it
# (runs/3/model.gguf) and answers with it again after a restart. The run's label is read
# from the console: the notice naming it lasts only until the data are loaded (a loaded
# machine's poll can miss it), and the chart's legend cuts it at this width.
keys lo "wb.set{method = 'full', lr = 0.001, epochs = 1, compute = 'f32', temperature = 0}; wb.train()" Enter
wait_for lo "full fine-tuning │ [0-9,]+ params"
wait_for lo " idle" 300
keys lo "print('run3 ' .. wb.runs()[3].label .. ' ' .. tostring(wb.runs()[3].current))" Enter
wait_for lo "^ run3 #3 full lr 0.001 true *$"
wait_for lo "#2 lora r4 q,v lr 0.005"
# at once after the run's end (no waiting for the worker): the chat is not refused
keys lo F4 "Name item 4." Enter
wait_top lo "you: Name item 4\\." "edited  α=1" " idle" '[^ ] *│ *[^ ]'
screen lo | grep -q "still ending" && fail "the chat was refused after the run ended: $(screen lo)"
keys lo F5 "wb.set{method = 'lora'}" Enter
keys lo F10
wait_exit lo
grep -q '"method":"lora"' "$TMP/sessions/s14/session.json" || fail "the session lost the method"
grep -q '"rank":4' "$TMP/sessions/s14/session.json" || fail "the session lost the rank"
[ -s "$TMP/sessions/s14/runs/2/edits.safetensors" ] || fail "the LoRA run's edits were not saved"
[ -s "$TMP/sessions/s14/runs/3/model.gguf" ] || fail "the full run's model was not saved: $(ls -R "$TMP/sessions/s14")"
grep -q '"model":[[:space:]]*"runs/3/model.gguf"' "$TMP/sessions/s14/session.json" ||
    fail "session.json does not name the full run's model"
ls -R "$TMP/sessions/s14" | grep -q '\.tmp-' && fail "a temporary file was left in s14"
expect_ok "the full run's model loads" "$REDIT" info -m "$TMP/sessions/s14/runs/3/model.gguf"
expect_ok "redit session s14" "$REDIT" session s14 --root "$TMP/sessions"
expect_grep "redit session lists the full run's model" "$TMP/out" "model: .*s14/runs/3/model.gguf"
start lo2 s14
wait_for lo2 "lora r4 q,v, layers all"
wait_for lo2 "#2 lora r4 q,v lr 0.005"
keys lo2 F5 "print('model ' .. tostring(wb.runs()[3].model))" Enter
wait_for lo2 "^ model .*sessions/s14/runs/3/model.gguf *$"
keys lo2 F4 "Name item 4." Enter
wait_top lo2 "you: Name item 4\\." "edited  α=1" " idle" '[^ ] *│ *[^ ]'
keys lo2 F10
wait_exit lo2
# the restored session's edited side answered with the saved model, as before the restart
"$PY" - "$(file_of "$TMP/sessions/s14" 'chat-*.jsonl')" <<'EOF' || fail "after the restart the chat did not answer with the full run's model"
import json, sys
# (a random model's answers may hold bytes that are not UTF-8: kept as they are)
turns = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8", errors="surrogateescape") if l.strip()]
t = [x for x in turns if x["prompt"] == "Name item 4."]
assert len(t) == 2, len(t)
assert t[0]["edited"] and t[0]["edited"] != t[0]["base"], t[0]
assert t[1]["edited"] == t[0]["edited"] and t[1]["base"] == t[0]["base"], (t[0], t[1])
EOF

# --- SIGTERM while training: stops at a step, saves the session --------------------------
start e s3
wait_for e "Configuration"
keys e F5 "wb.set{epochs = 200}" Enter
wait_for e "> wb.set\\{epochs = 200\\}"
keys e F6
wait_for e "TRAINING [0-9]+/"
pid=$(pgrep -f -- "--stats $TMP/stats.e" | head -n 1)
[ -n "$pid" ] || fail "cannot find the workbench process"
kill -TERM "$pid"
wait_exit e
[ -s "$TMP/sessions/s3/runs/1/edits.safetensors" ] || fail "SIGTERM lost the edits"
grep -q ',train,' "$(file_of "$TMP/sessions/s3" 'loss-*.csv')" || fail "SIGTERM lost the loss history"

# --- SIGTERM while a console chunk keeps the UI busy and the worker's queue (4 events here)
# is full: quitting drains the queue while it waits for the job to stop at a step (waiting
# alone hung: the worker waits for room before it looks at the stop flag) -----------------
TUI_ENV="REDIT_TUI_QUEUE=4" start q s7
wait_for q "Configuration"
keys q F5 "wb.set{epochs = 200}" Enter
wait_for q "> wb.set\\{epochs = 200\\}"
keys q F6
wait_for q "TRAINING [0-9]+/"
[ "$(tmux -L "$SOCK" display -p -t q '#{alternate_on}')" = 1 ] || fail "the workbench is not on the alternate screen"
keys q "local t = os.time() + 3 while os.time() < t do end" Enter
wait_for q "running"
pid=$(pgrep -f -- "--stats $TMP/stats.q" | head -n 1)
[ -n "$pid" ] || fail "cannot find the workbench process"
kill -TERM "$pid"
wait_for q "EXITED [0-9]+" 20
grep -q "EXITED 0" "$TMP/screen" || fail "SIGTERM with a full queue: $(cat "$TMP/screen")"
grep -q "session saved" "$TMP/screen" || fail "SIGTERM with a full queue: no 'session saved'"
[ "$(tmux -L "$SOCK" display -p -t q '#{alternate_on}')" = 0 ] || fail "the terminal was not restored"
[ -s "$TMP/sessions/s7/runs/1/edits.safetensors" ] || fail "SIGTERM with a full queue lost the edits"
grep -q ',train,' "$(file_of "$TMP/sessions/s7" 'loss-*.csv')" || fail "SIGTERM with a full queue lost the loss history"

# --- a model with non-finite weights: the status line says so ---------------------------
cp "$M" "$TMP/nan.gguf"
size=$(wc -c <"$TMP/nan.gguf")
printf '\377\377\377\377' | dd of="$TMP/nan.gguf" bs=1 seek=$((size - 8)) conv=notrunc 2>/dev/null
TUI_MODEL="-m '$TMP/nan.gguf'" start n1 s11
wait_for n1 "^ redit random demo .* NON-FINITE WEIGHTS: [a-z_.0-9]+ "
wait_for n1 "the model is broken"
keys n1 F10
wait_exit n1
start n2 s12
wait_for n2 "Configuration"
screen n2 | grep -q "NON-FINITE" && fail "a finite model shows the non-finite warning: $(screen n2)"
keys n2 F10
wait_exit n2

echo "tests/cli/tui.sh: ok ($(tr '\n' ' ' <"$TMP/ui-latency.txt"))"
