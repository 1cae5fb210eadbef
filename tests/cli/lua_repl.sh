#!/bin/sh
# redit lua, the REPL. Through a pipe (plain lines, no prompts): expressions print their
# values, multi-line chunks (a function definition, an expression cut after an operator)
# continue, errors print a traceback and the session goes on, red.version prints, -m/--edits
# preload `model` and `edits`; the history file ($REDIT_HISTORY) keeps every chunk, a
# multi-line one as one entry, across runs; Ctrl-C (SIGINT) stops a runaway chunk or drops
# a half-typed one and the REPL goes on; bad options are refused. On a terminal (tmux, when
# installed): Tab completion of red. names and model methods, Ctrl-C at the prompt, the
# history recalled in a new session.
set -eu
TMP=$(mktemp -d)
TMUX_SOCK="$TMP/tmux.sock"
cleanup() {
    if command -v tmux >/dev/null 2>&1; then tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
export REDIT_HISTORY="$TMP/history"

# repl NAME INPUT ARGS...: pipes INPUT into redit lua (30 s at most); $TMP/NAME.out and
# $TMP/NAME.err receive its output; the exit status is in $rc.
repl() {
    name=$1
    input=$2
    shift 2
    rc=0
    printf '%b' "$input" | timeout 30 "$REDIT" lua "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
}

# same FILE EXPECTED: FILE's content must be EXPECTED exactly.
same() {
    [ "$(cat "$1")" = "$2" ] || fail "$(basename "$1"): got '$(cat "$1")', expected '$2'"
}

# --- values, multi-line chunks, errors --------------------------------------------------
repl basic 'red.version\n1 + 1\n1, "a", nil\nlocal x = 5\nfunction f(x)\n  return x * 2\nend\nf(21)\n1 +\n2\nerror("boom")\nfunction bad() error("deep") end\nbad()\nx = = 1\nprint("still here")\ntype(red.load)\n'
[ "$rc" -eq 0 ] || fail "basic session: exit status $rc; stderr: $(head -c 800 "$TMP/basic.err")"
version=$(sed -n 1p "$TMP/basic.out")
echo "$version" | grep -Eq '^[0-9]+\.[0-9]+' || fail "red.version printed '$version'"
printf '%s\n' "$version" 2 "$(printf '1\ta\tnil')" 42 3 "still here" function >"$TMP/want"
cmp -s "$TMP/basic.out" "$TMP/want" || fail "basic session printed: $(cat "$TMP/basic.out")"
expect_grep "runtime error" "$TMP/basic.err" '^stdin:1: boom$'
expect_grep "traceback" "$TMP/basic.err" '^stack traceback:'
expect_grep "traceback names the function" "$TMP/basic.err" "in function 'bad'"
expect_grep "syntax error" "$TMP/basic.err" "unexpected symbol near '='"

# a chunk still open at the end of the input is reported; os.exit ends the session
repl open 't = {\n' 
[ "$rc" -eq 0 ] || fail "open chunk at EOF: exit status $rc"
expect_grep "open chunk at EOF" "$TMP/open.err" '<eof>'
repl exit 'print("a")\nos.exit(3)\nprint("b")\n'
[ "$rc" -eq 3 ] || fail "os.exit(3) gave exit status $rc"
same "$TMP/exit.out" a

# --- history --------------------------------------------------------------------------
"$PY" - "$REDIT_HISTORY" <<'EOF' || fail "history file after the first sessions"
import re, sys
text = open(sys.argv[1]).read()
entries = [e.strip("\n") for e in re.split(r"^#\d+\n", text, flags=re.M) if e.strip()]
assert entries[0] == "red.version", entries[:3]
assert "function f(x)\n  return x * 2\nend" in entries, entries
assert "1 +\n2" in entries, entries
assert entries[-1] == "os.exit(3)", entries[-3:]
EOF
repl more 'red.version\nred.version\n'
"$PY" - "$REDIT_HISTORY" <<'EOF' || fail "history file after another session"
import re, sys
text = open(sys.argv[1]).read()
entries = [e.strip("\n") for e in re.split(r"^#\d+\n", text, flags=re.M) if e.strip()]
# the earlier entries were read back whole (the multi-line one too) and rewritten
assert entries[0] == "red.version", entries[:3]
assert "function f(x)\n  return x * 2\nend" in entries, entries
assert entries[-2:] == ["os.exit(3)", "red.version"], entries[-3:]  # a repeat is kept once
EOF
REDIT_HISTORY= repl nohist '1\n'
same "$TMP/nohist.out" 1

# --- a model and edits preloaded --------------------------------------------------------
i=0
: >"$TMP/train.jsonl"
while [ $i -lt 8 ]; do
    echo "{\"prompt\": \"Item $i.\", \"completion\": \"A cat.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
expect_ok "train" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/e.safetensors" --epochs 1 --batch 4 --max-len 64 --template plain
repl model 'model:info().dim\ntype(edits)\n' -m "$M" --edits "$TMP/e.safetensors"
[ "$rc" -eq 0 ] || fail "-m --edits: exit status $rc; $(head -c 800 "$TMP/model.err")"
same "$TMP/model.out" "$(printf '128\nuserdata')"
# tables print their fields, not "table: 0x...": model:info() and edits:info(), sorted, a
# field a line when long, nested tables one level deep
repl tables 'model:info()\nedits:info()\n{b = 1, a = {x = 2}}\n' -m "$M" --edits "$TMP/e.safetensors"
[ "$rc" -eq 0 ] || fail "tables: exit status $rc; $(head -c 800 "$TMP/tables.err")"
grep -q "table: 0x" "$TMP/tables.out" && fail "a table printed as its address: $(cat "$TMP/tables.out")"
expect_grep "model:info() shows its fields" "$TMP/tables.out" '^  dim = 128,$'
expect_grep "model:info() shows its format" "$TMP/tables.out" '^  format = "GGUF",$'
expect_grep "edits:info() shows its sites" "$TMP/tables.out" 'sites = "ffn"'
expect_grep "a short table on one line" "$TMP/tables.out" '^\{a = \{x = 2\}, b = 1\}$'

# --- Ctrl-C -----------------------------------------------------------------------------
# A fifo feeds the REPL so that SIGINT comes while a chunk runs or a chunk is half typed.
mkfifo "$TMP/in"
"$REDIT" lua <"$TMP/in" >"$TMP/int.out" 2>"$TMP/int.err" &
pid=$!
exec 3>"$TMP/in"
printf 'x = 0\nwhile true do x = x + 1 end\n' >&3
sleep 1
kill -INT "$pid"
printf 'print("alive", x > 0)\nfunction g()\n' >&3
sleep 1
kill -INT "$pid"
sleep 0.5 # the signal first: data arriving with it would end the read instead
printf 'print("next")\n' >&3
exec 3>&-
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || fail "Ctrl-C session: exit status $rc; $(head -c 800 "$TMP/int.err")"
same "$TMP/int.out" "$(printf 'alive\ttrue\nnext')"
expect_grep "interrupted" "$TMP/int.err" 'interrupted'

# --- bad options ----------------------------------------------------------------------
expect_fail "--edits without a model" "need -m MODEL" "$REDIT" lua --edits "$TMP/e.safetensors"
expect_fail "extra argument" "redit lua: unexpected argument 'script.lua' \\(redit run SCRIPT.lua runs a script\\); see 'redit lua --help'" "$REDIT" lua script.lua
expect_fail "missing model" "$TMP/nope.gguf" "$REDIT" lua -m "$TMP/nope.gguf"
expect_fail "missing edits" "nope.safetensors" "$REDIT" lua -m "$M" --edits "$TMP/nope.safetensors"
expect_ok "help" "$REDIT" lua --help
expect_grep "help text" "$TMP/out" '^usage: redit lua'

# --- on a terminal ------------------------------------------------------------------------
if ! command -v tmux >/dev/null 2>&1; then
    echo "tests/cli/lua_repl.sh: ok (tmux missing: the terminal part was skipped)"
    exit 0
fi
# screen_has PATTERN: polls the pane (5 s at most) until a line matches PATTERN.
screen_has() {
    n=0
    while [ $n -lt 50 ]; do
        tmux -S "$TMUX_SOCK" capture-pane -p -t "$PANE" >"$TMP/screen" 2>/dev/null || true
        grep -Eq -- "$1" "$TMP/screen" && return 0
        sleep 0.1
        n=$((n + 1))
    done
    fail "terminal: /$1/ not on the screen: $(cat "$TMP/screen")"
}
# screen_count PATTERN N: polls until N lines match PATTERN.
screen_count() {
    n=0
    while [ $n -lt 50 ]; do
        tmux -S "$TMUX_SOCK" capture-pane -p -t "$PANE" >"$TMP/screen" 2>/dev/null || true
        [ "$(grep -Ec -- "$1" "$TMP/screen")" -eq "$2" ] && return 0
        sleep 0.1
        n=$((n + 1))
    done
    fail "terminal: not $2 lines /$1/ on the screen: $(cat "$TMP/screen")"
}
keys() { tmux -S "$TMUX_SOCK" send-keys -t "$PANE" "$@"; }
PANE=first
tmux -S "$TMUX_SOCK" new-session -d -s "$PANE" -x 100 -y 30 \
    "REDIT_HISTORY='$REDIT_HISTORY' '$REDIT' lua -m '$M'; echo REPL-ENDED \$?; sleep 30"
screen_has '^> ?$'
keys 'red.lo' Tab
screen_has '^> red\.load$'
keys Tab Tab # (readline lists after a Tab that changed nothing)
screen_has 'red\.load +red\.load_edits'
keys C-u 'model:det' Tab
screen_has '^> model:detokenize$'
keys '(model:tokenize("Hi"))' Enter
screen_has '^Hi$'
keys 'unfinished line'
screen_has '^> unfinished line$' # typed keys not yet read are flushed by Ctrl-C
keys C-c
screen_has '^> unfinished line\^C$'
keys 'print("after ctrl-c")' Enter
screen_has '^after ctrl-c$'
keys Up Up Enter # the entry before the last, run again
screen_count '^Hi$' 2
keys C-d
screen_has '^REPL-ENDED 0$'
# a new session recalls the previous session's entries
PANE=second
tmux -S "$TMUX_SOCK" new-session -d -s "$PANE" -x 100 -y 30 \
    "REDIT_HISTORY='$REDIT_HISTORY' '$REDIT' lua; echo REPL-ENDED \$?; sleep 30"
screen_has '^> ?$'
keys Up
screen_has '^> model:detokenize\(model:tokenize\("Hi"\)\)$'
keys C-u C-d
screen_has '^REPL-ENDED 0$'
echo "tests/cli/lua_repl.sh: ok"
