#!/bin/sh
# The command line's conventions (issue 20): the flags redit shares with llama.cpp mean what
# they mean there (-t threads, --temp, -n/--n-predict, -p, -f prompt file, -c, --repeat-last-n,
# --seed, -m), old spellings still work with a one-line deprecation note, and `generate -t 8`
# is 8 threads, never temperature 8; --version on redit, every command and red.version; a
# missing argument or an unknown flag is one line naming it and "see 'redit CMD --help'",
# exit status 2; generate takes --template (name or file) and --system and uses the template
# an edit file was trained with (the README's `generate --compare` example); eval uses and
# names the edit file's template; train --json and eval --json print one JSON object on
# stdout.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf" # random weights, its own tokenizer, context 256

# one_line DESC STATUS CMD...: CMD exits with STATUS and says exactly one line on stderr, which
# ends in "see 'redit CMD --help'"; the line is left in $TMP/err.
one_line() {
    desc=$1
    want=$2
    shift 2
    set +e
    timeout 30 "$@" >"$TMP/out" 2>"$TMP/err"
    st=$?
    set -e
    [ "$st" -eq "$want" ] || fail "$desc: exit status $st, not $want: $(head -c 600 "$TMP/err")"
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$desc: not one line on stderr: $(head -c 600 "$TMP/err")"
    grep -Eq "see 'redit [a-z-]+ --help'\$|see 'redit --help'\$" "$TMP/err" ||
        fail "$desc: no \"see 'redit CMD --help'\": $(cat "$TMP/err")"
    [ ! -s "$TMP/out" ] || fail "$desc: wrote to stdout: $(head -c 300 "$TMP/out")"
}

# --- -t is the thread count ----------------------------------------------------------------
gen() { "$REDIT" generate -m "$M" -p "Once upon a time" -n 16 --seed 5 "$@" 2>"$TMP/gen.err"; }
gen >"$TMP/default.out"
gen -t 8 >"$TMP/t8.out"
gen --threads 1 >"$TMP/threads1.out"
gen --temp 8 >"$TMP/temp8.out"
gen --temperature 8 >"$TMP/temperature8.out"
cmp -s "$TMP/default.out" "$TMP/t8.out" || fail "generate -t 8 changed the sampling (not threads)"
cmp -s "$TMP/default.out" "$TMP/threads1.out" || fail "--threads changed the output"
cmp -s "$TMP/temp8.out" "$TMP/t8.out" && fail "generate -t 8 samples as --temp 8 does"
cmp -s "$TMP/temp8.out" "$TMP/temperature8.out" || fail "--temperature (llama.cpp's alias) is not --temp"
one_line "-t 0.7 (a temperature)" 2 "$REDIT" generate -m "$M" -p hi -t 0.7
expect_grep "-t 0.7 points to --temp" "$TMP/err" "give --temp 0.7"
one_line "-t 0 (greedy before)" 2 "$REDIT" chat -m "$M" -t 0
expect_grep "chat -t 0 points to --temp" "$TMP/err" "give --temp 0"
for cmd in logits edit-grad eval train; do
    expect_fail "$cmd -t x" "redit $cmd: bad value for -t/--threads" "$REDIT" "$cmd" -m "$M" -t x
done

# --- old spellings: still working, one line of deprecation ----------------------------------
expect_ok "--max-tokens" "$REDIT" generate -m "$M" -p "Once upon a time" --max-tokens 16 --seed 5
cmp -s "$TMP/out" "$TMP/default.out" || fail "--max-tokens 16 is not -n 16"
[ "$(grep -c 'deprecated' "$TMP/err")" -eq 1 ] || fail "--max-tokens: no one-line deprecation note"
expect_grep "--max-tokens names -n/--n-predict" "$TMP/err" "--max-tokens is deprecated.*use -n/--n-predict"
expect_ok "--n-predict" "$REDIT" generate -m "$M" -p "Once upon a time" --n-predict 16 --seed 5
cmp -s "$TMP/out" "$TMP/default.out" || fail "--n-predict 16 is not -n 16"
grep -q deprecated "$TMP/err" && fail "--n-predict: a deprecation note"
expect_ok "convert -t" "$REDIT" convert -m "$M" -t F16 -o "$TMP/f16.gguf"
expect_grep "convert -t: deprecated" "$TMP/err" "-t TYPE is deprecated.*use --type TYPE"
expect_ok "convert --type" "$REDIT" convert -m "$M" --type F16 -o "$TMP/f16b.gguf"
cmp -s "$TMP/f16.gguf" "$TMP/f16b.gguf" || fail "convert -t F16 and --type F16 differ"
expect_ok "make-model -t" "$REDIT" make-model --shape stories15M -t Q8_0 -o "$TMP/q8.gguf"
expect_grep "make-model -t: deprecated" "$TMP/err" "-t TYPE is deprecated"

# --- -f, -c, -n -1, --repeat-last-n ----------------------------------------------------------
printf 'Once upon a time\n' >"$TMP/prompt.txt"
expect_ok "-f FILE" "$REDIT" generate -m "$M" -f "$TMP/prompt.txt" -n 16 --seed 5
cmp -s "$TMP/out" "$TMP/default.out" || fail "-f FILE (one final newline dropped) is not -p TEXT"
one_line "-f and -p" 2 "$REDIT" generate -m "$M" -f "$TMP/prompt.txt" -p hi
expect_fail "-f missing file" "-f $TMP/none.txt: cannot open" "$REDIT" generate -m "$M" -f "$TMP/none.txt"
expect_ok "-c 20 -n -1" "$REDIT" generate -m "$M" --ids "1 5 9 14" -c 20 -n -1 --temp 0 --no-repeat-ngram 0
expect_grep "-n -1 runs to the -c context" "$TMP/err" "generated 17 tokens.*context full"
expect_ok "--ctx-size 20 -n 100" "$REDIT" generate -m "$M" --ids "1 5 9 14" --ctx-size 20 -n 100 --temp 0
expect_grep "--ctx-size caps the run" "$TMP/err" "generated 17 tokens.*context full"
expect_ok "-c beyond the context" "$REDIT" generate -m "$M" --ids "1 5" -c 100000 -n 2
expect_grep "-c beyond the context: a note" "$TMP/err" "-c 100000 is beyond the model's context of 256: 256 used"
B=models/redit-base.gguf # a trained model repeats itself greedily: the penalty shows
bgen() { "$REDIT" generate -m "$B" -p "Call me Ishmael." -n 40 --temp 0 "$@" 2>/dev/null; }
bgen >"$TMP/rp-none.out"
bgen --repeat-penalty 1.5 >"$TMP/rp.out"
bgen --repeat-penalty 1.5 --repeat-last-n 0 >"$TMP/rp0.out"
bgen --repeat-penalty 1.5 --repeat-last-n 2 >"$TMP/rp2.out"
cmp -s "$TMP/rp-none.out" "$TMP/rp.out" && fail "--repeat-penalty 1.5 changed nothing: the test cannot see it"
cmp -s "$TMP/rp-none.out" "$TMP/rp0.out" || fail "--repeat-last-n 0 (llama.cpp: no penalty) still penalised"
cmp -s "$TMP/rp.out" "$TMP/rp2.out" && fail "--repeat-last-n 2 is the default window"
expect_fail "--repeat-last-n -3" "bad value for --repeat-last-n" "$REDIT" generate -m "$M" -p hi --repeat-last-n -3

# --- --version --------------------------------------------------------------------------------
V=$(sed -n 's/^#define RD_VERSION "\(.*\)"$/\1/p' include/redit/version.h)
[ -n "$V" ] || fail "no RD_VERSION in include/redit/version.h"
expect_ok "redit --version" "$REDIT" --version
grep -Eq "^redit $V( \(git [^)]+\))?\$" "$TMP/out" || fail "redit --version: $(cat "$TMP/out")"
cp "$TMP/out" "$TMP/version"
for cmd in info generate tokenize logits train eval edit-grad chat lua tui session convert export \
    run demo make-model bench serve; do
    expect_ok "$cmd --version" "$REDIT" "$cmd" --version
    cmp -s "$TMP/out" "$TMP/version" || fail "$cmd --version: $(cat "$TMP/out")"
done
printf 'print(red.version)\n' >"$TMP/v.lua"
expect_ok "red.version" "$REDIT" run "$TMP/v.lua"
[ "$(cat "$TMP/out")" = "$V" ] || fail "red.version is $(cat "$TMP/out"), not $V"

# --- one-line usage errors --------------------------------------------------------------------
for cmd in info generate tokenize logits train eval edit-grad chat lua tui session convert export \
    demo make-model bench serve; do
    one_line "$cmd --bogus" 2 "$REDIT" "$cmd" --bogus
    expect_grep "$cmd --bogus named" "$TMP/err" "^redit $cmd: unknown option '--bogus'"
done
one_line "unknown short option" 2 "$REDIT" generate -m "$M" -p hi -x
expect_grep "-x named" "$TMP/err" "unknown option '-x'"
one_line "option without its value" 2 "$REDIT" generate -m "$M" -p
expect_grep "-p named" "$TMP/err" "-p needs a value"
one_line "long option without its value" 2 "$REDIT" eval -m "$M" --data
expect_grep "--data named" "$TMP/err" "--data needs a value"
one_line "value to a flag" 2 "$REDIT" generate -m "$M" -p hi --compare=yes
expect_grep "--compare named" "$TMP/err" "--compare takes no value"
one_line "ambiguous abbreviation" 2 "$REDIT" generate -m "$M" -p hi --to 3
expect_grep "--to ambiguous" "$TMP/err" "'--to' is ambiguous"
one_line "generate without -m" 2 "$REDIT" generate -p hi
expect_grep "-m named" "$TMP/err" "redit generate: -m MODEL is required"
one_line "train without -o" 2 "$REDIT" train -m "$M" -d x.jsonl
expect_grep "-o named" "$TMP/err" "redit train: -o EDITS is required"
one_line "export without --format" 2 "$REDIT" export -e x -m "$M" -o y
expect_grep "--format named" "$TMP/err" "--format NAME is required"
one_line "stray argument" 2 "$REDIT" eval -m "$M" -d x stray
expect_grep "stray named" "$TMP/err" "unexpected argument 'stray'"
one_line "session without NAME" 2 "$REDIT" session
one_line "run without a script" 2 "$REDIT" run
one_line "unknown command" 2 "$REDIT" frobnicate

# --- generate --template / --system and the edit file's template -----------------------------
i=0
: >"$TMP/train.jsonl"
while [ $i -lt 32 ]; do
    echo "{\"instruction\": \"Name item $i.\", \"output\": \"It is the cat.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
expect_ok "train --template red --json" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" \
    --eval-split 0.25 -o "$TMP/red.safetensors" --epochs 2 --batch 8 --lr 0.1 --max-len 64 \
    --template red --json
"$PY" -m json.tool "$TMP/out" >/dev/null || fail "train --json: stdout is not JSON: $(head -c 400 "$TMP/out")"
"$PY" - "$TMP/out" "$TMP/red.safetensors" <<'EOF' || fail "train --json fields: $(cat "$TMP/out")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["edits"] == sys.argv[2], j
assert j["steps"] == 6 and j["stopped_by"] == "done", j
assert j["final_loss"] > 0 and j["best_eval_loss"] > 0 and 1 <= j["best_step"] <= 6, j
assert j["seconds"] > 0 and j["tokens_per_s"] > 0 and j["tokens"] > 0, j
EOF
expect_grep "train's progress stays on stderr" "$TMP/err" "^wrote $TMP/red.safetensors"
P="Name item 3."
expect_ok "generate, the edit file's template" "$REDIT" generate -m "$M" --edits "$TMP/red.safetensors" -p "$P" --temp 0 -n 12
cp "$TMP/out" "$TMP/stored.out"
expect_grep "generate names the stored template" "$TMP/err" 'template "red", as the edits were trained with'
expect_ok "generate --template red" "$REDIT" generate -m "$M" --edits "$TMP/red.safetensors" -p "$P" --temp 0 -n 12 --template red
cmp -s "$TMP/out" "$TMP/stored.out" || fail "the edit file's template is not --template red"
printf 'Human: {prompt}\n\nAssistant: {answer}</s>\n' >"$TMP/red.tmpl"
expect_ok "generate --template FILE" "$REDIT" generate -m "$M" --edits "$TMP/red.safetensors" -p "$P" --temp 0 -n 12 --template "$TMP/red.tmpl"
cmp -s "$TMP/out" "$TMP/stored.out" || fail "--template FILE (the red template's text) is not --template red"
expect_ok "generate --template none" "$REDIT" generate -m "$M" --edits "$TMP/red.safetensors" -p "$P" --temp 0 -n 12 --template none
cmp -s "$TMP/out" "$TMP/stored.out" && fail "--template none still renders the template"
# the template's answer is what chat answers on the same first turn
printf '%s\n' "$P" | timeout 30 "$REDIT" chat -m "$M" --edits "$TMP/red.safetensors" --temp 0 -n 12 >"$TMP/chat.out" 2>/dev/null
[ "$(sed -n 2p "$TMP/stored.out")" = "$(sed -n 1p "$TMP/chat.out")" ] ||
    fail "generate's templated answer is not chat's: $(cat "$TMP/stored.out") / $(cat "$TMP/chat.out")"
expect_ok "generate --system" "$REDIT" generate -m "$M" -p "$P" --temp 0 -n 12 --template llama2-chat --system "Answer in French."
cp "$TMP/out" "$TMP/sys.out"
expect_ok "generate llama2-chat" "$REDIT" generate -m "$M" -p "$P" --temp 0 -n 12 --template llama2-chat
expect_grep "the prompt is printed" "$TMP/out" "^$P\$"
cmp -s "$TMP/out" "$TMP/sys.out" && fail "--system changed nothing"
one_line "--template with --ids" 2 "$REDIT" generate -m "$M" --ids "1 2" --template red
expect_fail "bad template" "^redit generate: template .*custom template needs \{prompt\}" "$REDIT" generate -m "$M" -p hi --template '{answer}'
grep -q compute "$TMP/err" && fail "a bad --template is found only after the model loaded"

# the README's example: edits trained with --template red on define-words, then
# `generate --compare` with a bare prompt: the edited side answers (it was empty)
expect_ok "train on define-words" "$REDIT" train -m "$B" -d datasets/define-words/train.jsonl \
    --template red --max-len 64 --sites ffn --lr 0.1 --batch 8 --max-steps 40 \
    --group-by-length --compute auto -o "$TMP/words.safetensors"
expect_ok "README generate --compare" "$REDIT" generate -m "$B" -p "Define the word harbor." \
    --edits "$TMP/words.safetensors" --compare -n 40
"$PY" - "$TMP/out" <<'EOF' || fail "README generate --compare: $(cat "$TMP/out")"
import sys
text = open(sys.argv[1], encoding="utf-8").read()
base, edited = text.split("── edited ──\n")
lines = [l for l in edited.split("\n") if l.strip()]
assert lines[0] == "Define the word harbor.", lines
assert len(lines) >= 2 and len(lines[1]) > 3, ("the edited side is empty", lines)
EOF

# --- eval: the edit file's template, named; --json ---------------------------------------------
expect_ok "eval, the edit file's template" "$REDIT" eval -m "$M" -d "$TMP/train.jsonl" --edits "$TMP/red.safetensors" --max-len 64
expect_grep "eval names the template" "$TMP/out" "^template +red \(the edit file's training template\)"
grep '^loss' "$TMP/out" >"$TMP/loss-stored"
expect_ok "eval --template red" "$REDIT" eval -m "$M" -d "$TMP/train.jsonl" --edits "$TMP/red.safetensors" --max-len 64 --template red
expect_grep "eval names --template" "$TMP/out" "^template +red \(--template\)"
grep '^loss' "$TMP/out" | cmp -s - "$TMP/loss-stored" || fail "eval with the stored template is not eval --template red"
expect_ok "eval, the base" "$REDIT" eval -m "$M" -d "$TMP/train.jsonl" --max-len 256
expect_grep "eval names the format's default" "$TMP/out" "^template +alpaca \(the format's default\)"
expect_ok "eval --json" "$REDIT" eval -m "$M" -d "$TMP/train.jsonl" --edits "$TMP/red.safetensors" --max-len 64 --json
"$PY" -m json.tool "$TMP/out" >/dev/null || fail "eval --json: stdout is not JSON: $(head -c 400 "$TMP/out")"
"$PY" - "$TMP/out" "$TMP/loss-stored" <<'EOF' || fail "eval --json fields: $(cat "$TMP/out")"
import json, sys
j = json.load(open(sys.argv[1]))
want = float(open(sys.argv[2]).read().split()[1])
assert abs(j["loss"] - want) < 1e-6 and j["perplexity"] > 1 and j["tokens"] > 0, (j, want)
assert j["examples"] == 32 and j["template"] == "red" and j["bits_per_byte"] > 0, j
EOF
expect_grep "eval --json: the table on stderr" "$TMP/err" "^perplexity"
# a run without --template records the template its data was rendered with (alpaca here)
expect_ok "train without --template" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/alpaca.safetensors" \
    --max-steps 1 --batch 8 --max-len 256
expect_ok "eval its edits" "$REDIT" eval -m "$M" -d "$TMP/train.jsonl" --edits "$TMP/alpaca.safetensors" --max-len 256
expect_grep "the default template is recorded" "$TMP/out" "^template +alpaca \(the edit file's training template\)"
echo "tests/cli/conventions.sh: ok"
