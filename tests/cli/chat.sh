#!/bin/sh
# redit chat through a pipe (no terminal: plain lines, no prompts) on the demo model: the
# /help, /reset, /quit commands and EOF; a greedy first turn with the plain template equals
# redit generate on the same text; /reset makes a turn repeat exactly; --compare prints both
# answers, edits trained with the red template answer as trained (the template taken from
# the edit file) and each side continues its own conversation (equal to separate base-only
# and edited-only chats); long conversations drop their oldest exchange, a message longer
# than the context is refused without ending the chat or changing it; bad options are
# refused. On a terminal (tmux, when installed): the prompt, a streamed edited answer, Tab
# completion of /commands, Ctrl-C at the prompt, Ctrl-D.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"

# chat_run NAME INPUT ARGS...: pipes INPUT into redit chat (30 s at most); $TMP/NAME.out and
# $TMP/NAME.err receive its output; it must exit 0.
chat_run() {
    name=$1
    input=$2
    shift 2
    printf '%b' "$input" | timeout 30 "$REDIT" chat "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" ||
        fail "$name: exit status $?; stderr: $(head -c 800 "$TMP/$name.err")"
}

# --- commands and EOF ---------------------------------------------------------------
chat_run cmds 'Hello there\n/help\n/bogus\n/reset\n' -m "$M" -n 8 --temp 0
expect_grep "/help" "$TMP/cmds.out" '^/reset +forget the conversation'
expect_grep "/help lists /quit" "$TMP/cmds.out" '^/quit +leave'
expect_grep "unknown command" "$TMP/cmds.out" '^unknown command /bogus: /help lists the commands'
expect_grep "/reset" "$TMP/cmds.out" '^\(conversation cleared\)$'
# blank lines are no messages: only the help text comes out
chat_run blank '\n   \n/help\n' -m "$M" -n 8 --temp 0
head -n 1 "$TMP/blank.out" | grep -q '^/reset' || fail "a blank line was answered: $(head -c 200 "$TMP/blank.out")"
# "//" sends a message starting with "/"
chat_run slash '//reset\n' -m "$M" -n 8 --temp 0
grep -q 'conversation cleared' "$TMP/slash.out" && fail "//reset ran the command"
[ -s "$TMP/slash.out" ] || fail "//reset was not answered"

chat_run quit 'Hi\n/quit\n/help\n' -m "$M" -n 4 --temp 0
grep -q 'forget the conversation' "$TMP/quit.out" && fail "/quit did not end the chat"
chat_run eof '' -m "$M"
[ -s "$TMP/eof.out" ] && fail "an empty input printed: $(head -c 200 "$TMP/eof.out")"

# --- the first turn equals generate on the rendered text; /reset repeats it -----------
# plain template: the prompt ids are [BOS] + enc("Once upon a time\n"), as generate's.
expect_ok "generate" "$REDIT" generate -m "$M" -p 'Once upon a time
' -n 12 --temp 0
cp "$TMP/out" "$TMP/gen.out"
chat_run plain 'Once upon a time\nsecond message\n/reset\nOnce upon a time\n' -m "$M" --template plain -n 12 --temp 0
"$PY" - "$TMP/gen.out" "$TMP/plain.out" <<'EOF' || fail "chat's first reply differs from generate's continuation"
import sys
gen = open(sys.argv[1], "rb").read()
prompt = b"Once upon a time\n"
assert gen.startswith(prompt), gen[:80]
want = gen[len(prompt):].strip()
lines = open(sys.argv[2], "rb").read().split(b"\n")
assert lines[0] == want, (lines[0], want)
cleared = lines.index(b"(conversation cleared)")
assert lines[cleared + 1] == want, ("after /reset", lines[cleared + 1], want)
EOF

# --- --compare with edits trained on the red template --------------------------------
i=0
: >"$TMP/train.jsonl"
while [ $i -lt 48 ]; do
    echo "{\"messages\": [{\"role\": \"user\", \"content\": \"Name item $i.\"}, {\"role\": \"assistant\", \"content\": \"It is the cat.\"}]}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
expect_ok "train" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/e.safetensors" \
    --epochs 8 --batch 8 --micro-batch 8 --lr 0.1 --max-len 64 --template red --sites both
IN='Name item 3.\nName item 5 please.\n'
chat_run cmp "$IN" -m "$M" --edits "$TMP/e.safetensors" --compare --temp 0 -n 16
expect_grep "template from the edit file" "$TMP/cmp.err" 'template "red", as the edits were trained with'
[ "$(grep -c '^── base ──$' "$TMP/cmp.out")" -eq 2 ] || fail "--compare: not one base answer per turn"
[ "$(grep -c '^── edited ──$' "$TMP/cmp.out")" -eq 2 ] || fail "--compare: not one edited answer per turn"
chat_run base "$IN" -m "$M" --template red --temp 0 -n 16
chat_run edited "$IN" -m "$M" --edits "$TMP/e.safetensors" --temp 0 -n 16
"$PY" - "$TMP/cmp.out" "$TMP/base.out" "$TMP/edited.out" <<'EOF' || fail "--compare answers are not those of separate base and edited chats"
import sys
out = open(sys.argv[1], "rb").read().decode("utf-8", "replace").split("\n")
base, edited, side = [], [], None
for line in out:
    if line == "── base ──": side = base; continue
    if line == "── edited ──": side = edited; continue
    if line and side is not None: side.append(line)
want_base = [l for l in open(sys.argv[2], "rb").read().decode("utf-8", "replace").split("\n") if l]
want_edited = [l for l in open(sys.argv[3], "rb").read().decode("utf-8", "replace").split("\n") if l]
assert base == want_base, (base, want_base)
assert edited == want_edited, (edited, want_edited)
assert edited[0] == "It is the cat.", edited
assert base[0] != edited[0]
EOF

# --- two edit sets side by side: --edits A --edits-b B (chat and generate) ------------
expect_ok "train B" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/e2.safetensors" \
    --epochs 3 --batch 8 --micro-batch 8 --lr 0.05 --max-len 64 --template red --sites ffn
chat_run ab "$IN" -m "$M" --edits "$TMP/e.safetensors" --edits-b "$TMP/e2.safetensors" --temp 0 -n 16
chat_run edited2 "$IN" -m "$M" --edits "$TMP/e2.safetensors" --temp 0 -n 16
"$PY" - "$TMP/ab.out" "$TMP/edited.out" "$TMP/edited2.out" "$TMP/e.safetensors" "$TMP/e2.safetensors" <<'EOF' || fail "--edits-b answers are not those of separate chats with each edit set"
import sys
out = open(sys.argv[1], "rb").read().decode("utf-8", "replace").split("\n")
a, b, side = [], [], None
titles = {"── %s ──" % sys.argv[4]: a, "── %s ──" % sys.argv[5]: b}
n_titles = 0
for line in out:
    if line in titles:
        side = titles[line]
        n_titles += 1
        continue
    if line and side is not None: side.append(line)
assert n_titles == 4, out
want_a = [l for l in open(sys.argv[2], "rb").read().decode("utf-8", "replace").split("\n") if l]
want_b = [l for l in open(sys.argv[3], "rb").read().decode("utf-8", "replace").split("\n") if l]
assert a == want_a, (a, want_a)
assert b == want_b, (b, want_b)
assert a != b, (a, b)
EOF
P="[INST] Name item 3. [/INST]"
expect_ok "generate --edits-b" "$REDIT" generate -m "$M" --edits "$TMP/e.safetensors" \
    --edits-b "$TMP/e2.safetensors" -p "$P" --temp 0 -n 12
cp "$TMP/out" "$TMP/gab.out"
expect_ok "generate A" "$REDIT" generate -m "$M" --edits "$TMP/e.safetensors" -p "$P" --temp 0 -n 12
cp "$TMP/out" "$TMP/ga.out"
expect_ok "generate B" "$REDIT" generate -m "$M" --edits "$TMP/e2.safetensors" -p "$P" --temp 0 -n 12
{ echo "── $TMP/e.safetensors ──"; cat "$TMP/ga.out"; echo; echo "── $TMP/e2.safetensors ──"; cat "$TMP/out"; } >"$TMP/gwant.out"
cmp -s "$TMP/gab.out" "$TMP/gwant.out" || fail "generate --edits-b is not A's answer then B's, titled: $(cat "$TMP/gab.out")"
cmp -s "$TMP/ga.out" "$TMP/out" && fail "the two edit sets answer alike: the test cannot tell them apart"
expect_fail "--edits-b without --edits" "--edits-b needs --edits" "$REDIT" generate -m "$M" \
    --edits-b "$TMP/e2.safetensors" -p "$P"
expect_fail "chat --edits-b without --edits" "--edits-b needs --edits" "$REDIT" chat -m "$M" \
    --edits-b "$TMP/e2.safetensors"

# --- the context (256 tokens on the demo model) ---------------------------------------
LONG=$("$PY" -c 'print("word " * 80)')
chat_run ctx "Tell me a long story about the park.\nAnd another one about the sun.\nAnd a third about a dog.\nAnd one more.\n$LONG\n/reset\nStill there?\n" -m "$M" -n 100 --temp 0
expect_grep "oldest exchange dropped" "$TMP/ctx.err" '1 oldest exchange is left out'
expect_grep "too long a message" "$TMP/ctx.err" 'the message takes [0-9]+ tokens; the context holds 256'
# the chat goes on: the answer after /reset is the one a fresh chat gives
chat_run fresh 'Still there?\n' -m "$M" -n 100 --temp 0
"$PY" - "$TMP/ctx.out" "$TMP/fresh.out" <<'EOF' || fail "the chat did not go on after the long message"
import sys
out = open(sys.argv[1], "rb").read()
fresh = open(sys.argv[2], "rb").read()
mark = b"(conversation cleared)\n"
assert mark in out
assert out.split(mark, 1)[1] == fresh, (out.split(mark, 1)[1][:200], fresh[:200])
EOF

# a refused message leaves the conversation as it was
chat_run keep1 "Hello there.\n$LONG\nAnd now?\n" -m "$M" -n 20 --temp 0
chat_run keep2 'Hello there.\nAnd now?\n' -m "$M" -n 20 --temp 0
cmp -s "$TMP/keep1.out" "$TMP/keep2.out" || fail "a refused message changed the conversation"

# --- bad options ------------------------------------------------------------------------
expect_fail "no model" "redit chat: -m MODEL is required; see .redit chat --help." "$REDIT" chat
expect_fail "--compare without edits" "--compare needs --edits" "$REDIT" chat -m "$M" --compare
expect_fail "bad template" "template .*custom template needs \{prompt\}" "$REDIT" chat -m "$M" --template '{answer} {prompt}'
expect_fail "bad -n" "bad value for -n/--n-predict" "$REDIT" chat -m "$M" -n 0
expect_fail "bad temperature" "bad value for --temp" "$REDIT" chat -m "$M" --temp hot
expect_fail "extra argument" "redit chat: unexpected argument .extra." "$REDIT" chat -m "$M" extra
expect_fail "missing model file" "$TMP/nope.gguf" "$REDIT" chat -m "$TMP/nope.gguf"
expect_fail "missing edits file" "$TMP/nope.safetensors" "$REDIT" chat -m "$M" --edits "$TMP/nope.safetensors"
if [ -f "$FIX/stories260K/stories260K.bin" ]; then
    expect_fail "model without tokenizer" "has no tokenizer; chat needs one" \
        "$REDIT" chat -m "$FIX/stories260K/stories260K.bin"
fi
expect_ok "help" "$REDIT" chat --help
expect_grep "help text" "$TMP/out" '^usage: redit chat -m MODEL'

# --- on a terminal (tmux, when installed) ------------------------------------------------
if ! command -v tmux >/dev/null 2>&1; then
    echo "tests/cli/chat.sh: ok (tmux missing: the terminal part was skipped)"
    exit 0
fi
SOCK="$TMP/tmux.sock"
trap 'tmux -S "$SOCK" kill-server 2>/dev/null || true; rm -rf "$TMP"' EXIT INT TERM
# screen_has PATTERN: polls the pane (5 s at most) until a line matches PATTERN.
screen_has() {
    n=0
    while [ $n -lt 50 ]; do
        tmux -S "$SOCK" capture-pane -p -t chat >"$TMP/screen" 2>/dev/null || true
        grep -Eq -- "$1" "$TMP/screen" && return 0
        sleep 0.1
        n=$((n + 1))
    done
    fail "terminal: /$1/ not on the screen: $(cat "$TMP/screen")"
}
keys() { tmux -S "$SOCK" send-keys -t chat "$@"; }
tmux -S "$SOCK" new-session -d -s chat -x 100 -y 30 \
    "'$REDIT' chat -m '$M' --edits '$TMP/e.safetensors' --temp 0 -n 16; echo CHAT-ENDED \$?; sleep 30"
screen_has '^chat with .*\(edited\) — /help'
screen_has '^you> ?$'
keys 'Name item 3.' Enter
screen_has '^It is the cat\.$'
keys '/re' Tab
screen_has '^you> /reset$'
keys Enter
screen_has '^\(conversation cleared\)$'
keys 'half typed'
screen_has '^you> half typed$'
keys C-c
screen_has '^you> half typed\^C$'
keys C-d
screen_has '^CHAT-ENDED 0$'
echo "tests/cli/chat.sh: ok"
