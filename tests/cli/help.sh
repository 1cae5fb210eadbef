#!/bin/sh
# redit --help, CMD --help for every command, unknown commands and bad option values.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

expect_ok "redit --help" "$REDIT" --help
for cmd in info generate tokenize logits demo bench session; do
    expect_grep "redit --help lists $cmd" "$TMP/out" "^  $cmd "
done

# Options each command's --help must mention.
options_of() {
    case $1 in
    info) echo "--model --tokenizer --help" ;;
    generate) echo "--model --prompt --file --ids --n-predict --ctx-size --temp --top-k --top-p --repeat-penalty --no-repeat-ngram --repeat-last-n --seed --tokenizer --threads --template --system --help --version" ;;
    tokenize) echo "--model --tokenizer --jsonl --bos --help" ;;
    logits) echo "--model --ids --output --tokenizer --threads --help" ;;
    demo) echo "--dir --prompt --help" ;;
    bench) echo "--dir --sections --only --rounds --llama-bench --no-torch --torch-ref --help" ;;
    session) echo "--root --help" ;;
    tui) echo "--model --session --sessions --train --eval --set --init-set --help" ;;
    esac
}
for cmd in info generate tokenize logits demo bench session tui; do
    for flag in --help -h; do
        expect_ok "redit $cmd $flag" timeout 30 "$REDIT" "$cmd" "$flag"
        expect_grep "redit $cmd $flag" "$TMP/out" "^usage: redit $cmd"
    done
    for opt in $(options_of "$cmd"); do
        expect_grep "redit $cmd --help mentions $opt" "$TMP/out" "$opt"
    done
done

expect_fail "redit without a command" "usage: redit COMMAND" "$REDIT"
expect_fail "unknown command" 'unknown command "frobnicate"' "$REDIT" frobnicate
expect_fail "unknown option" "redit info: unknown option '--bogus'; see 'redit info --help'" "$REDIT" info --bogus
expect_fail "option without its value" "redit info: -m needs a value; see 'redit info --help'" "$REDIT" info -m
expect_fail "info without -m" "redit info: -m MODEL is required; see 'redit info --help'" "$REDIT" info
expect_fail "tokenize without -m" "redit tokenize: -m MODEL_OR_TOKENIZER is required" "$REDIT" tokenize
expect_fail "logits without --ids" "redit logits: --ids LIST is required" "$REDIT" logits -m x -o "$TMP/l"
expect_fail "stray argument" "redit demo: unexpected argument 'stray'" "$REDIT" demo --dir "$TMP/demo" stray

# Bad values are refused before any model is opened (the model path does not exist).
M="$TMP/no-such-model.bin"
expect_fail "-n abc" 'bad value for -n/--n-predict: "abc"' "$REDIT" generate -m "$M" --ids 1 -n abc
expect_fail "-n 0" 'bad value for -n/--n-predict: "0"' "$REDIT" generate -m "$M" --ids 1 -n 0
expect_fail "-n 12x" 'bad value for -n/--n-predict: "12x"' "$REDIT" generate -m "$M" --ids 1 -n 12x
expect_fail "--temp -1" 'bad value for --temp' "$REDIT" generate -m "$M" --ids 1 --temp -1
expect_fail "--temp nan" 'bad value for --temp' "$REDIT" generate -m "$M" --ids 1 --temp nan
expect_fail "--top-p 1.5" 'bad value for --top-p' "$REDIT" generate -m "$M" --ids 1 --top-p 1.5
expect_fail "--top-k x" 'bad value for --top-k' "$REDIT" generate -m "$M" --ids 1 --top-k x
expect_fail "--repeat-penalty 0" 'bad value for --repeat-penalty' "$REDIT" generate -m "$M" --ids 1 --repeat-penalty 0
expect_fail "--no-repeat-ngram -2" 'bad value for --no-repeat-ngram' "$REDIT" generate -m "$M" --ids 1 --no-repeat-ngram -2
expect_fail "--seed -3" 'bad value for --seed' "$REDIT" generate -m "$M" --ids 1 --seed -3
expect_fail "generate --threads many" 'bad value for --threads' "$REDIT" generate -m "$M" --ids 1 --threads many
expect_fail "logits --threads -1" 'bad value for --threads' "$REDIT" logits -m "$M" --ids 1 -o "$TMP/l" --threads -1
expect_fail "-p and --ids together" 'exactly one of -p PROMPT, -f FILE or --ids' "$REDIT" generate -m "$M" --ids 1 -p hi
expect_fail "logits --ids with a word" 'bad token id near "x"' "$REDIT" logits -m "$M" --ids "1 x" -o "$TMP/l"
expect_fail "logits --ids negative" 'bad token id' "$REDIT" logits -m "$M" --ids "1 -5" -o "$TMP/l"
expect_fail "logits empty --ids" '--ids is empty' "$REDIT" logits -m "$M" --ids " , " -o "$TMP/l"
expect_fail "bench --only unknown" 'unknown shape for --only: "tiny"' "$REDIT" bench --dir "$TMP/bench" --only tiny
expect_fail "bench --sections unknown" '--sections must be small, methods, serve, 7b or all, not "big"' "$REDIT" bench --dir "$TMP/bench" --sections big
expect_fail "bench --rounds 0" 'bad value for --rounds: "0"' "$REDIT" bench --dir "$TMP/bench" --rounds 0
expect_fail "bench --llama-bench missing" "--llama-bench $TMP/no-llama-bench is not an executable file" "$REDIT" bench --dir "$TMP/bench" --sections 7b --llama-bench "$TMP/no-llama-bench"
[ ! -e "$TMP/l" ] || fail "a refused logits command wrote its output file"
[ ! -e "$TMP/bench" ] || fail "a refused bench command created its folder"
echo "tests/cli/help.sh: ok"
