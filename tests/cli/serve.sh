#!/bin/sh
# redit serve on loopback (random free ports) with the demo model and two edit sets trained
# here: /v1/models; greedy completions and chat equal `redit generate` (base, each edit set,
# a strength); streaming (SSE) equals the whole answer; stop texts; echo + logprobs equal
# `redit logits` to 1e-5, and so do the generated tokens' top logprobs (legacy and chat,
# whole and streamed) against teacher forcing; every error answered with OpenAI's JSON and status (401 key, 404
# model and URL, 400 malformed JSON / bad values / context, 413 body, 429 queue full); edit
# sets added and removed while running (a removed one finishes its stream; files that do not
# fit are refused with the reason); a client dropping a stream frees its slot; 1,000
# connections opened and dropped; SIGTERM exits 0. The `openai` npm package, when npm can
# install it into the build folder, does a chat, a streamed completion and models.list.
set -eu
TMP=$(mktemp -d)
PIDS=""
trap 'for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc
command -v curl >/dev/null || fail "curl is needed"
CHECK="$PY tests/tools/serve_check.py"
KEY=sekret

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
i=0
: >"$TMP/train.jsonl"
while [ $i -lt 48 ]; do
    echo "{\"messages\": [{\"role\": \"user\", \"content\": \"Name item $i.\"}, {\"role\": \"assistant\", \"content\": \"It is the cat.\"}]}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
expect_ok "train A" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/a.safetensors" \
    --epochs 8 --batch 8 --micro-batch 8 --lr 0.1 --max-len 64 --template red --sites both
expect_ok "train B" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/b.safetensors" \
    --epochs 2 --batch 8 --micro-batch 8 --lr 0.05 --max-len 64 --template red --sites ffn
# edits for another model (same shape, other weights): refused by fingerprint
expect_ok "other model" "$REDIT" convert -m "$M" --type BF16 -o "$TMP/other.gguf"
expect_ok "train other" "$REDIT" train -m "$TMP/other.gguf" -d "$TMP/train.jsonl" \
    -o "$TMP/other.safetensors" --epochs 1 --batch 8 --micro-batch 8 --max-len 64 --template red

# start_server NAME ARGS...: redit serve on a free port; sets PORT and SPID
start_server() {
    name=$1
    shift
    "$REDIT" serve -m "${SERVE_MODEL:-$M}" --port 0 "$@" 2>"$TMP/$name.log" &
    SPID=$!
    PIDS="$PIDS $SPID"
    n=0
    PORT=
    while [ -z "$PORT" ]; do
        n=$((n + 1))
        [ $n -le 300 ] || fail "$name: no 'listening' line in 30 s: $(cat "$TMP/$name.log")"
        kill -0 "$SPID" 2>/dev/null || fail "$name: redit serve exited: $(cat "$TMP/$name.log")"
        sleep 0.1
        PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9][0-9]*\).*/\1/p' "$TMP/$name.log")
    done
}

# req NAME METHOD PATH [BODY]: one request with the key; the body lands in $TMP/NAME.json,
# the status in $STATUS
req() {
    name=$1 method=$2 path=$3
    STATUS=$(curl -s -o "$TMP/$name.json" -w '%{http_code}' -X "$method" \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        ${4+--data-binary "$4"} "http://127.0.0.1:$PORT$path") || fail "$name: curl failed"
}

# expect_status NAME WANT: the last request's status, and an OpenAI error JSON for errors
expect_status() {
    [ "$STATUS" = "$2" ] || fail "$1: status $STATUS, expected $2: $(head -c 400 "$TMP/$1.json")"
    if [ "$2" != 200 ]; then
        "$PY" -c '
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert set(e) == {"message", "type", "param", "code"} and e["message"], e
' "$TMP/$1.json" || fail "$1: not an OpenAI error JSON: $(head -c 400 "$TMP/$1.json")"
    fi
}

# jget FILE EXPR: a Python expression over the JSON in FILE (as d)
jget() {
    "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# --- the main server -------------------------------------------------------------------
start_server s1 --edits "A=$TMP/a.safetensors" --edits "B=$TMP/b.safetensors" \
    --api-key "$KEY" --parallel 4 --queue 8 --ctx 128 --max-tokens 48 --max-body 8192 \
    --compute f32
BASE=random-demo
GEN="$REDIT generate -m $M --compute f32 -c 128 --temp 0"

req models GET /v1/models
expect_status models 200
[ "$(jget "$TMP/models.json" '" ".join(sorted(m["id"] for m in d["data"]))')" = "A B $BASE" ] ||
    fail "/v1/models: $(cat "$TMP/models.json")"

# greedy completions equal redit generate (the prompt as given: --template none)
P="Once upon a time"
for spec in "$BASE||1" "A|$TMP/a.safetensors|1" "B|$TMP/b.safetensors|1" "A|$TMP/a.safetensors|0.5"; do
    model=${spec%%|*} rest=${spec#*|}
    file=${rest%%|*} strength=${rest#*|}
    req cmpl POST /v1/completions "{\"model\": \"$model\", \"prompt\": \"$P\", \"max_tokens\": 24, \"temperature\": 0, \"edit_strength\": $strength}"
    expect_status cmpl 200
    # shellcheck disable=SC2086
    $GEN --template none -p "$P" -n 24 ${file:+--edits "$file" --strength "$strength"} >"$TMP/gen.out" 2>"$TMP/gen.err" ||
        fail "generate $model: $(cat "$TMP/gen.err")"
    want=$($CHECK generated "$TMP/gen.out" "$P") || fail "generate output"
    got=$(jget "$TMP/cmpl.json" 'd["choices"][0]["text"]')
    [ "$got" = "$want" ] || fail "completion of $model at $strength: '$got', redit generate: '$want'"
    [ "$(jget "$TMP/cmpl.json" 'd["usage"]["completion_tokens"] + d["usage"]["prompt_tokens"] == d["usage"]["total_tokens"] and d["object"] == "text_completion"')" = True ] ||
        fail "usage: $(cat "$TMP/cmpl.json")"
done

# streaming: the deltas add up to the whole answer; usage with include_usage
req whole POST /v1/completions "{\"prompt\": \"$P\", \"max_tokens\": 24, \"temperature\": 0}"
curl -sN -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/completions" \
    -d "{\"prompt\": \"$P\", \"max_tokens\": 24, \"temperature\": 0, \"stream\": true, \"stream_options\": {\"include_usage\": true}}" \
    >"$TMP/stream.sse" || fail "stream: curl failed"
$CHECK sse "$TMP/stream.sse" >"$TMP/stream.json" || fail "stream: $(head -c 600 "$TMP/stream.sse")"
[ "$(jget "$TMP/stream.json" 'd["text"]')" = "$(jget "$TMP/whole.json" 'd["choices"][0]["text"]')" ] ||
    fail "streamed text differs from the whole answer"
[ "$(jget "$TMP/stream.json" 'd["usage"]["completion_tokens"] > 0')" = True ] || fail "stream: no usage chunk"

# chat: the edit set's template (red, from its file) and redit generate's answer
for spec in "A|$TMP/a.safetensors|" "$BASE||llama2-chat"; do
    model=${spec%%|*} rest=${spec#*|}
    file=${rest%%|*} tmpl=${rest#*|}
    req chat POST /v1/chat/completions "{\"model\": \"$model\", \"messages\": [{\"role\": \"user\", \"content\": \"Name item 3.\"}], \"max_tokens\": 24, \"temperature\": 0}"
    expect_status chat 200
    # shellcheck disable=SC2086
    $GEN -p "Name item 3." -n 24 ${file:+--edits "$file"} ${tmpl:+--template "$tmpl"} >"$TMP/gen.out" 2>"$TMP/gen.err" ||
        fail "generate chat $model: $(cat "$TMP/gen.err")"
    want=$($CHECK generated "$TMP/gen.out" "Name item 3.
") || fail "generate output"
    got=$(jget "$TMP/chat.json" 'd["choices"][0]["message"]["content"]')
    [ "$got" = "$want" ] || fail "chat with $model: '$got', redit generate: '$want'"
    curl -sN -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/chat/completions" \
        -d "{\"model\": \"$model\", \"messages\": [{\"role\": \"user\", \"content\": \"Name item 3.\"}], \"max_tokens\": 24, \"temperature\": 0, \"stream\": true}" \
        >"$TMP/chat.sse" || fail "chat stream: curl failed"
    $CHECK sse "$TMP/chat.sse" >"$TMP/chats.json" || fail "chat stream: $(head -c 600 "$TMP/chat.sse")"
    [ "$(jget "$TMP/chats.json" 'd["text"]')" = "$got" ] || fail "streamed chat differs from the whole answer"
done

# stop texts: the answer ends before the first one, finish_reason "stop"
req chat POST /v1/chat/completions '{"model": "A", "messages": [{"role": "user", "content": "Name item 3."}], "max_tokens": 24, "temperature": 0}'
full=$(jget "$TMP/chat.json" 'd["choices"][0]["message"]["content"]')
[ ${#full} -ge 6 ] || fail "edit set A's answer is too short to test stop texts: '$full'"
stop=$(printf '%s' "$full" | cut -c4-5)
want=$("$PY" -c 'import sys; print(sys.argv[1][:sys.argv[1].index(sys.argv[2])])' "$full" "$stop")
req stop POST /v1/chat/completions "{\"model\": \"A\", \"messages\": [{\"role\": \"user\", \"content\": \"Name item 3.\"}], \"max_tokens\": 24, \"temperature\": 0, \"stop\": [\"zzz\", \"$stop\"]}"
expect_status stop 200
[ "$(jget "$TMP/stop.json" 'd["choices"][0]["message"]["content"] + "|" + d["choices"][0]["finish_reason"]')" = "$want|stop" ] ||
    fail "stop \"$stop\" in '$full': $(cat "$TMP/stop.json")"

# echo + logprobs (lm-evaluation-harness's local-completions) against redit logits
IDS="1 72 101 108 108 111 44 32 119 111 114 108 100"
IDS_JSON=$(echo "$IDS" | sed 's/ /, /g')
for e in "" "A"; do
    req lp POST /v1/completions "{\"model\": \"${e:-$BASE}\", \"prompt\": [$IDS_JSON], \"max_tokens\": 0, \"echo\": true, \"logprobs\": 3, \"temperature\": 0}"
    expect_status lp 200
    expect_ok "redit logits" "$REDIT" logits -m "$M" --ids "$IDS" -o "$TMP/logits.f32" \
        ${e:+--edits "$TMP/a.safetensors"}
    V=$(( $(wc -c <"$TMP/logits.f32") / 4 / 13 ))
    $CHECK logprobs "$TMP/lp.json" "$TMP/logits.f32" "$V" "$IDS" >/dev/null || fail "logprobs of ${e:-the base}"
done
# the harness asks max_tokens 1 and drops the last token: the echoed part is the same
req lp1 POST /v1/completions "{\"prompt\": [$IDS_JSON], \"max_tokens\": 1, \"echo\": true, \"logprobs\": 1, \"temperature\": 0}"
expect_status lp1 200
[ "$(jget "$TMP/lp1.json" 'len(d["choices"][0]["logprobs"]["token_logprobs"])')" = 14 ] || fail "echo with max_tokens 1: $(cat "$TMP/lp1.json")"
# logprobs of generated tokens: the N most likely alternatives (legacy and chat), equal to
# teacher forcing to 1e-5, sorted, the greedy token first; streams carry the same, chunk by
# chunk
for e in "" "A"; do
    req glp POST /v1/completions "{\"model\": \"${e:-$BASE}\", \"prompt\": [$IDS_JSON], \"max_tokens\": 5, \"logprobs\": 4, \"temperature\": 0}"
    expect_status glp 200
    $CHECK gen_logprobs "$TMP/glp.json" 4 "$IDS" "$REDIT" logits -m "$M" ${e:+--edits "$TMP/a.safetensors"} >/dev/null ||
        fail "logprobs of the tokens generated by ${e:-the base}"
done
curl -sN -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/completions" \
    -d "{\"model\": \"A\", \"prompt\": [$IDS_JSON], \"max_tokens\": 5, \"logprobs\": 4, \"temperature\": 0, \"stream\": true}" \
    >"$TMP/glp.sse" || fail "logprobs stream: curl failed"
$CHECK sse_logprobs "$TMP/glp.sse" >"$TMP/glps.json" || fail "logprobs stream: $(head -c 600 "$TMP/glp.sse")"
[ "$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1])) == json.load(open(sys.argv[2]))["choices"][0]["logprobs"])' "$TMP/glps.json" "$TMP/glp.json")" = True ] ||
    fail "the streamed logprobs differ from the whole answer's: $(head -c 600 "$TMP/glp.sse")"
# echo + logprobs streamed: the prompt's entries come with the echo chunk, once scored
req elp POST /v1/completions "{\"prompt\": [$IDS_JSON], \"max_tokens\": 3, \"echo\": true, \"logprobs\": 2, \"temperature\": 0}"
expect_status elp 200
curl -sN -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/completions" \
    -d "{\"prompt\": [$IDS_JSON], \"max_tokens\": 3, \"echo\": true, \"logprobs\": 2, \"temperature\": 0, \"stream\": true}" \
    >"$TMP/elp.sse" || fail "echo logprobs stream: curl failed"
$CHECK sse_logprobs "$TMP/elp.sse" >"$TMP/elps.json" || fail "echo logprobs stream: $(head -c 600 "$TMP/elp.sse")"
[ "$("$PY" -c 'import json, sys; a = json.load(open(sys.argv[1])); print(a == json.load(open(sys.argv[2]))["choices"][0]["logprobs"] and len(a["tokens"]) == 16)' "$TMP/elps.json" "$TMP/elp.json")" = True ] ||
    fail "the streamed echo logprobs differ from the whole answer's: $(head -c 600 "$TMP/elp.sse")"
CHAT_IDS=$("$REDIT" tokenize -m "$M" --bos -p "[INST] Name item 3. [/INST]") # llama2-chat's turn
CHAT_LP="\"messages\": [{\"role\": \"user\", \"content\": \"Name item 3.\"}], \"max_tokens\": 5, \"temperature\": 0, \"logprobs\": true, \"top_logprobs\": 3"
req clp POST /v1/chat/completions "{$CHAT_LP}"
expect_status clp 200
$CHECK gen_logprobs "$TMP/clp.json" 3 "$CHAT_IDS" "$REDIT" logits -m "$M" >/dev/null ||
    fail "chat logprobs: $(head -c 600 "$TMP/clp.json")"
curl -sN -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/chat/completions" \
    -d "{$CHAT_LP, \"stream\": true}" >"$TMP/clp.sse" || fail "chat logprobs stream: curl failed"
$CHECK sse_logprobs "$TMP/clp.sse" >"$TMP/clps.json" || fail "chat logprobs stream: $(head -c 600 "$TMP/clp.sse")"
[ "$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1])) == json.load(open(sys.argv[2]))["choices"][0]["logprobs"])' "$TMP/clps.json" "$TMP/clp.json")" = True ] ||
    fail "the streamed chat logprobs differ from the whole answer's: $(head -c 600 "$TMP/clp.sse")"
req nolp POST /v1/chat/completions '{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}'
expect_status nolp 400
req toplp POST /v1/chat/completions '{"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}'
expect_status toplp 400
# several prompts in one request: one choice each, in order
req multi POST /v1/completions "{\"prompt\": [\"$P\", \"Hello\"], \"max_tokens\": 4, \"temperature\": 0}"
expect_status multi 200
[ "$(jget "$TMP/multi.json" '[c["index"] for c in d["choices"]]')" = "[0, 1]" ] || fail "two prompts: $(cat "$TMP/multi.json")"

# --- errors ----------------------------------------------------------------------------
STATUS=$(curl -s -o "$TMP/nokey.json" -w '%{http_code}' "http://127.0.0.1:$PORT/v1/models")
expect_status nokey 401
STATUS=$(curl -s -o "$TMP/badkey.json" -w '%{http_code}' -H 'Authorization: Bearer nope' "http://127.0.0.1:$PORT/v1/models")
expect_status badkey 401
req unknown POST /v1/completions '{"model": "nobody", "prompt": "x"}'
expect_status unknown 404
[ "$(jget "$TMP/unknown.json" 'd["error"]["code"]')" = model_not_found ] || fail "unknown model code"
req url GET /v1/nothing
expect_status url 404
req badjson POST /v1/completions '{"prompt": "x", '
expect_status badjson 400
req badtype POST /v1/completions '{"prompt": "x", "max_tokens": "ten"}'
expect_status badtype 400
[ "$(jget "$TMP/badtype.json" 'd["error"]["param"]')" = max_tokens ] || fail "bad max_tokens: param"
req n2 POST /v1/completions '{"prompt": "x", "n": 2}'
expect_status n2 400
req noprompt POST /v1/completions '{"max_tokens": 2}'
expect_status noprompt 400
req badmsgs POST /v1/chat/completions '{"messages": [{"role": "assistant", "content": "hi"}]}'
expect_status badmsgs 400
req toomany POST /v1/completions '{"prompt": "x", "max_tokens": 100}'
expect_status toomany 400
LONG=$("$PY" -c 'print(", ".join(["65"] * 200))')
req longp POST /v1/completions "{\"prompt\": [$LONG], \"max_tokens\": 1}"
expect_status longp 400
[ "$(jget "$TMP/longp.json" 'd["error"]["code"]')" = context_length_exceeded ] || fail "long prompt: code"
MID=$("$PY" -c 'print(", ".join(["65"] * 100))')
req midp POST /v1/completions "{\"prompt\": [$MID], \"max_tokens\": 40}"
expect_status midp 400
"$PY" -c 'print("{\"prompt\": \"" + "x" * 10000 + "\"}")' >"$TMP/big.json"
STATUS=$(curl -s -o "$TMP/big413.json" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    --data-binary @"$TMP/big.json" "http://127.0.0.1:$PORT/v1/completions")
expect_status big413 413
STATUS=$(curl -s -o "$TMP/chunk413.json" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big.json" "http://127.0.0.1:$PORT/v1/completions")
expect_status chunk413 413

# --- edit sets while running -------------------------------------------------------------
req addc POST /v1/edits "{\"name\": \"C\", \"path\": \"$TMP/a.safetensors\"}"
expect_status addc 200
req cmplc POST /v1/completions "{\"model\": \"C\", \"prompt\": \"$P\", \"max_tokens\": 24, \"temperature\": 0}"
req cmpla POST /v1/completions "{\"model\": \"A\", \"prompt\": \"$P\", \"max_tokens\": 24, \"temperature\": 0}"
[ "$(jget "$TMP/cmplc.json" 'd["choices"][0]["text"]')" = "$(jget "$TMP/cmpla.json" 'd["choices"][0]["text"]')" ] ||
    fail "edit set C (A's file) answers unlike A"
req dup POST /v1/edits "{\"name\": \"A\", \"path\": \"$TMP/a.safetensors\"}"
expect_status dup 400
req missing POST /v1/edits "{\"name\": \"D\", \"path\": \"$TMP/none.safetensors\"}"
expect_status missing 400
expect_grep "missing file: the reason" "$TMP/missing.json" 'none.safetensors'
req other POST /v1/edits "{\"name\": \"D\", \"path\": \"$TMP/other.safetensors\"}"
expect_status other 400
expect_grep "edits of another model: the reason" "$TMP/other.json" 'another model'
req badname POST /v1/edits "{\"name\": \"a b\", \"path\": \"$TMP/a.safetensors\"}"
expect_status badname 400
# remove C while a stream uses it: the stream still ends properly
curl -sN -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/completions" \
    -d '{"model": "C", "prompt": "Once", "max_tokens": 48, "temperature": 0, "ignore_eos": true, "stream": true}' \
    >"$TMP/cstream.sse" &
CURL=$!
n=0
until grep -q '^data: ' "$TMP/cstream.sse" 2>/dev/null; do
    n=$((n + 1))
    [ $n -le 100 ] || fail "no stream on edit set C: $(head -c 300 "$TMP/cstream.sse")"
    sleep 0.05
done
req delc DELETE /v1/edits/C
expect_status delc 200
wait "$CURL" || fail "the stream on the removed edit set failed"
$CHECK sse "$TMP/cstream.sse" >/dev/null || fail "stream on removed edit set: $(head -c 400 "$TMP/cstream.sse")"
req gone POST /v1/completions '{"model": "C", "prompt": "x", "max_tokens": 1}'
expect_status gone 404
req delx DELETE /v1/edits/C
expect_status delx 404

# 1,000 connections opened and dropped (some mid-request): still answering
$CHECK conns "$PORT" 1000 >/dev/null || fail "opening connections"
req after POST /v1/completions "{\"prompt\": \"$P\", \"max_tokens\": 24, \"temperature\": 0}"
expect_status after 200
[ "$(jget "$TMP/after.json" 'd["choices"][0]["text"]')" = "$(jget "$TMP/whole.json" 'd["choices"][0]["text"]')" ] ||
    fail "the answer changed after the connection storm"

# --- the openai npm package ----------------------------------------------------------------
NPM_DIR="$BUILD/npm-openai"
if command -v npm >/dev/null && command -v node >/dev/null; then
    if [ ! -d "$NPM_DIR/node_modules/openai" ]; then
        mkdir -p "$NPM_DIR"
        timeout 120 npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error openai@4 \
            >"$TMP/npm.log" 2>&1 || echo "tests/cli/serve.sh: SKIPPED the openai npm client: npm install failed: $(tail -n 3 "$TMP/npm.log")" >&2
    fi
    if [ -d "$NPM_DIR/node_modules/openai" ]; then
        NODE_PATH="$NPM_DIR/node_modules" OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1" \
            OPENAI_API_KEY="$KEY" MODEL=A BASE_ID="$BASE" \
            timeout 60 node tests/tools/openai_client.cjs >"$TMP/node.json" 2>"$TMP/node.err" ||
            fail "the openai npm client: $(cat "$TMP/node.err")"
        [ "$(jget "$TMP/node.json" 'sorted(d["models"]) == ["A", "B", "'"$BASE"'"] and d["chat"] == """'"$full"'""" and d["finish"] in ("stop", "length") and d["notFound"]["status"] == 404')" = True ] ||
            fail "the openai npm client got: $(cat "$TMP/node.json")"
        [ "$(jget "$TMP/node.json" 'd["streamed"]')" = "$(jget "$TMP/whole.json" 'd["choices"][0]["text"]')" ] ||
            fail "the openai client's streamed completion differs: $(cat "$TMP/node.json")"
        [ "$(jget "$TMP/node.json" 'len(d["logprobs"]) == d["logprobs_tokens"] and all(len(e["top_logprobs"]) == 2 and e["top_logprobs"][0]["logprob"] == e["logprob"] and e["top_logprobs"][1]["logprob"] <= e["logprob"] for e in d["logprobs"]) and d["streamed_logprobs"] == d["logprobs"]')" = True ] ||
            fail "the openai client's chat logprobs: $(cat "$TMP/node.json")"
    fi
else
    echo "tests/cli/serve.sh: SKIPPED the openai npm client: npm or node is not installed" >&2
fi

# --- SIGTERM: exit 0 within the grace period ---------------------------------------------
curl -sN -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/completions" \
    -d '{"prompt": "Once", "max_tokens": 48, "temperature": 0, "ignore_eos": true, "stream": true}' \
    >"$TMP/term.sse" &
CURL=$!
sleep 0.2
kill -TERM "$SPID"
n=0
while kill -0 "$SPID" 2>/dev/null; do
    n=$((n + 1))
    [ $n -le 150 ] || fail "redit serve still runs 15 s after SIGTERM"
    sleep 0.1
done
wait "$SPID" || fail "redit serve exited $? after SIGTERM: $(tail -n 5 "$TMP/s1.log")"
wait "$CURL" || true
expect_grep "SIGTERM noted" "$TMP/s1.log" 'SIGTERM: no new connections'
expect_grep "stopped" "$TMP/s1.log" 'redit serve: stopped'

# --- limits: one slot, no queue: 429 beyond it; a dropped stream frees its slot ------------
REDIT_SERVE_STEP_DELAY_MS=20 start_server s2 --parallel 1 --queue 0 --compute f32
KEY=
BODY='{"prompt": "Once", "max_tokens": 200, "temperature": 0, "ignore_eos": true}'
sts=$($CHECK burst "$PORT" "" 8 "$BODY") || fail "burst"
case " $sts " in *" 200 "*) ;; *) fail "burst: no request answered: $sts" ;; esac
case " $sts " in *" 429 "*) ;; *) fail "burst of 8 on one slot and no queue: no 429: $sts" ;; esac
$CHECK disconnect "$PORT" "" '{"prompt": "Once", "max_tokens": 200, "temperature": 0, "ignore_eos": true, "stream": true}' >/dev/null ||
    fail "disconnect"
n=0
until grep -q ' 499 ' "$TMP/s2.log"; do
    n=$((n + 1))
    [ $n -le 100 ] || fail "the dropped stream was not noticed: $(tail -n 3 "$TMP/s2.log")"
    sleep 0.1
done
grep ' 499 ' "$TMP/s2.log" | grep -q 'completion=200 ' && fail "the dropped stream ran to its end: $(grep ' 499 ' "$TMP/s2.log")"
req free POST /v1/completions '{"prompt": "Hello", "max_tokens": 4}'
expect_status free 200
kill -INT "$SPID"
wait "$SPID" || fail "redit serve exited $? after SIGINT"

# --- SIGTERM with a request running: 503 for new requests on open connections; the running
# stream finishes within --grace, or is cancelled when the grace is over -------------------
need_fixture "$FIX/llama2-tokenizer/tokenizer.bin"
expect_ok "stories15M-shaped model" "$REDIT" make-model --shape stories15M --type F32 \
    --tokenizer "$FIX/llama2-tokenizer/tokenizer.bin" -o "$TMP/s15.gguf"
SERVE_MODEL="$TMP/s15.gguf"
REDIT_SERVE_STEP_DELAY_MS=20 start_server s3 --parallel 1 --grace 20 --compute f32
$CHECK drain "$PORT" "$SPID" 120 >"$TMP/drain.json" || fail "drain"
[ "$(jget "$TMP/drain.json" 'd["late_status"] == 503 and d["late_code"] == "service_unavailable" and d["done"] and d["finished"] and not d["error_event"]')" = True ] ||
    fail "SIGTERM with a stream running (grace 20 s): $(cat "$TMP/drain.json")"
wait "$SPID" || fail "redit serve exited $? after SIGTERM"
expect_grep "nothing cancelled" "$TMP/s3.log" 'stopped \(0 requests cancelled\)'
REDIT_SERVE_STEP_DELAY_MS=20 start_server s4 --parallel 1 --grace 0.5 --compute f32
$CHECK drain "$PORT" "$SPID" 250 >"$TMP/drain.json" || fail "drain"
[ "$(jget "$TMP/drain.json" 'd["late_status"] == 503 and d["done"] and d["error_event"]')" = True ] ||
    fail "SIGTERM with a stream running past the grace: $(cat "$TMP/drain.json")"
wait "$SPID" || fail "redit serve exited $? after SIGTERM"
expect_grep "one cancelled" "$TMP/s4.log" 'stopped \(1 request cancelled\)'

# --- usage errors ---------------------------------------------------------------------------
expect_fail "serve without -m" "-m MODEL is required" "$REDIT" serve
expect_fail "bad --edits" "NAME=FILE" "$REDIT" serve -m "$M" --edits foo
expect_fail "edits that do not fit" "another model" "$REDIT" serve -m "$M" --edits "X=$TMP/other.safetensors" --port 0
echo "tests/cli/serve.sh: ok"
