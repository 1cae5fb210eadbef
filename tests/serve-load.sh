#!/bin/sh
# make test-serve-load: 64 concurrent streaming clients over mixed edit sets (the base, two RED
# sets, one of them also at strength 0.5) for SERVE_LOAD_SECONDS (default 60) against redit
# serve --parallel 16 on loopback. Every response must complete; greedy ones must equal
# `redit generate`'s single-sequence output. Not part of `make test`.
set -eu
BUILD=${BUILD:-build}
TMP=$(mktemp -d)
SPID=
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc
SECONDS_=${SERVE_LOAD_SECONDS:-60}
N=32

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
i=0
: >"$TMP/train.jsonl"
while [ $i -lt 48 ]; do
    echo "{\"text\": \"Item $i is the cat and the dog of the house number $i.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
expect_ok "train A" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/a.safetensors" \
    --epochs 4 --batch 8 --micro-batch 8 --lr 0.1 --max-len 64 --sites both
expect_ok "train B" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/b.safetensors" \
    --epochs 2 --batch 8 --micro-batch 8 --lr 0.05 --max-len 64 --sites ffn

# the single-sequence references
echo "{" >"$TMP/refs.json"
sep=
for spec in "random-demo||1" "A|$TMP/a.safetensors|1" "B|$TMP/b.safetensors|1" "A|$TMP/a.safetensors|0.5"; do
    model=${spec%%|*} rest=${spec#*|}
    file=${rest%%|*} strength=${rest#*|}
    for P in "Once upon a time" "Item 3 is" "The dog" "Hello"; do
        # shellcheck disable=SC2086
        "$REDIT" generate -m "$M" --template none -p "$P" -n $N --temp 0 \
            ${file:+--edits "$file" --strength "$strength"} >"$TMP/gen.out" 2>"$TMP/gen.err" ||
            fail "generate: $(cat "$TMP/gen.err")"
        text=$("$PY" tests/tools/serve_check.py generated "$TMP/gen.out" "$P")
        printf '%s%s: %s\n' "$sep" "$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$model|$strength|$P")" \
            "$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$text")" >>"$TMP/refs.json"
        sep=,
    done
done
echo "}" >>"$TMP/refs.json"

"$REDIT" serve -m "$M" --port 0 --parallel 16 --queue 64 --edits "A=$TMP/a.safetensors" \
    --edits "B=$TMP/b.safetensors" 2>"$TMP/serve.log" &
SPID=$!
PORT=
n=0
while [ -z "$PORT" ]; do
    n=$((n + 1))
    [ $n -le 300 ] || fail "redit serve did not start: $(cat "$TMP/serve.log")"
    sleep 0.1
    PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9][0-9]*\).*/\1/p' "$TMP/serve.log")
done
"$PY" tests/tools/serve_load.py "$PORT" "$TMP/refs.json" 64 "$SECONDS_" $N ||
    fail "load: see above (server log: $(tail -n 3 "$TMP/serve.log"))"
kill -TERM "$SPID"
wait "$SPID" || fail "redit serve exited $? after SIGTERM"
SPID=
echo "tests/serve-load.sh: ok"
