#!/bin/sh
# Outputs are checked before work starts: train (-o, --log, --state), convert, export, logits,
# edit-grad, make-model and Lua's red.train{state=...} refuse a missing folder, a file where
# the folder should be and a folder given as the file at once (before loading the model or the
# data; train on the bundled model in under 1 s), with a message naming the path; nothing is
# left behind. Tests run as root, so a read-only folder is not among the cases.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

M=models/redit-base.gguf
[ -f "$M" ] || fail "$M is missing (make default-model builds it)"
D=datasets/define-words/train.jsonl
mkdir "$TMP/dir"
echo x >"$TMP/plain.txt"

# now_ms: a monotonic-enough wall clock in milliseconds (date +%s%N)
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# fast_fail DESC PATTERN CMD...: CMD fails, says PATTERN, and takes under 1 s.
fast_fail() {
    desc=$1
    t0=$(now_ms)
    expect_fail "$@"
    ms=$(($(now_ms) - t0))
    [ "$ms" -lt 1000 ] || fail "$desc: took $ms ms; an unwritable output must be refused at once"
    grep -q "step" "$TMP/err" && fail "$desc: training started: $(head -c 600 "$TMP/err")"
    return 0
}

T="$REDIT train -m $M -d $D --max-len 64 --max-steps 2"
fast_fail "train -o into a missing folder" "-o $TMP/nodir/x.safetensors: the folder $TMP/nodir does not exist" \
    $T -o "$TMP/nodir/x.safetensors"
fast_fail "train -o a folder" "-o $TMP/dir is a folder" $T -o "$TMP/dir"
fast_fail "train -o under a file" "$TMP/plain.txt is a file, not a folder" $T -o "$TMP/plain.txt/x.safetensors"
fast_fail "train --log into a missing folder" "--log .*the folder $TMP/nodir does not exist" \
    $T -o "$TMP/ok.safetensors" --log "$TMP/nodir/loss.csv"
fast_fail "train --log a folder" "--log $TMP/dir is a folder" $T -o "$TMP/ok.safetensors" --log "$TMP/dir"
fast_fail "train --state into a missing folder" "--state .*the folder $TMP/nodir does not exist" \
    $T -o "$TMP/ok.safetensors" --state "$TMP/nodir/run.state"
fast_fail "train --state a folder" "--state $TMP/dir is a folder" $T -o "$TMP/ok.safetensors" --state "$TMP/dir"
# the output is checked before the data is read: a missing data file is not what is reported
fast_fail "train -o before the data" "the folder $TMP/nodir does not exist" \
    "$REDIT" train -m "$M" -d "$TMP/no-data.jsonl" -o "$TMP/nodir/x.safetensors"
fast_fail "train --full -o" "the folder $TMP/nodir does not exist" $T --full -o "$TMP/nodir/x.gguf"

fast_fail "convert -o into a missing folder" "convert: -o .*the folder $TMP/nodir does not exist" \
    "$REDIT" convert -m "$M" --type F16 -o "$TMP/nodir/x.gguf"
fast_fail "convert -o a folder" "is a folder" "$REDIT" convert -m "$M" --type F16 -o "$TMP/dir"
fast_fail "export -o into a missing folder" "export: -o .*the folder $TMP/nodir does not exist" \
    "$REDIT" export -e "$TMP/no-edits.safetensors" -m "$M" -f cvec -o "$TMP/nodir/cv.gguf"
fast_fail "export -o under a file" "is a file, not a folder" \
    "$REDIT" export -e "$TMP/no-edits.safetensors" -m "$M" -f merged -o "$TMP/plain.txt/m.gguf"
fast_fail "logits -o a folder" "logits: -o $TMP/dir is a folder" \
    "$REDIT" logits -m "$M" --ids "1 2 3" -o "$TMP/dir"
fast_fail "edit-grad -o into a missing folder" "edit-grad: -o .*$TMP/nodir does not exist" \
    "$REDIT" edit-grad -m "$M" --ids "1 2 3" -o "$TMP/nodir/g.f32"
fast_fail "make-model -o into a missing folder" "make-model: -o .*$TMP/nodir does not exist" \
    "$REDIT" make-model --shape stories15M -o "$TMP/nodir/m.gguf"

# Lua: red.train refuses an unwritable state file before the first step
cat >"$TMP/state.lua" <<'EOF'
local model = red.load(arg[1])
local data = red.dataset(arg[2], {model = model, max_len = 64})
local e = model:edits{sites = "ffn", layers = "all"}
local steps = 0
local ok, msg = pcall(red.train, {model = model, edits = e, data = data, max_len = 64,
    max_steps = 2, state = arg[3], on_step = function() steps = steps + 1 end})
assert(not ok, "red.train accepted an unwritable state file")
assert(steps == 0, "training ran " .. steps .. " steps before refusing the state file")
print(msg)
EOF
expect_ok "Lua red.train state" "$REDIT" run "$TMP/state.lua" "$M" "$D" "$TMP/nodir/run.state"
expect_grep "Lua red.train state message" "$TMP/out" "training state: $TMP/nodir/run.state: the folder $TMP/nodir does not exist"

# nothing was written or left behind
left=$(find "$TMP" -mindepth 1 -not -name plain.txt -not -name dir -not -name state.lua -not -name out -not -name err)
[ -z "$left" ] || fail "files left behind: $left"

# a writable output still works, and the probe leaves nothing beside it
expect_ok "train into a writable folder" $T -o "$TMP/dir/e.safetensors" --log "$TMP/dir/loss.csv" --batch 2
[ -s "$TMP/dir/e.safetensors" ] && [ -s "$TMP/dir/loss.csv" ] || fail "the writable run wrote no files"
stray=$(find "$TMP/dir" -name '*.tmp-*')
[ -z "$stray" ] || fail "temporary files left: $stray"
echo "tests/cli/output_check.sh: ok"
