#!/bin/sh
# redit generate --batch: prompts of a JSONL file with named edit sets (--edits NAME=FILE),
# the plain --edits as the default, strengths, sampling and chat messages, run --parallel at
# a time: results in input order, each greedy (and seeded sampled) text equal to
# `redit generate` alone with the same settings; -o writes the file; bad lines are refused
# naming the line, before any generation.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"

# two RED edit sets with different biases
cat >"$TMP/mk.lua" <<'LUA'
local model_path, dir = ...
local m <close> = red.load(model_path)
for k, name in ipairs({"a", "b"}) do
  local e = m:edits{sites = "both"}
  local dim = e:info().dim
  for l = 0, m:info().layers - 1 do
    local b = {}
    for i = 1, dim do b[i] = ((i * (2 * k + 1)) % 7 - 3) * 0.5 end
    e:set_vector(l, "ffn", "bias", b)
  end
  e:save(dir .. "/" .. name .. ".safetensors")
end
LUA
expect_ok "edit files" "$REDIT" run "$TMP/mk.lua" "$M" "$TMP"

cat >"$TMP/p.jsonl" <<'EOF'
{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0, "id": "first"}
{"prompt": "Once upon a time", "edits": "a", "max_tokens": 12, "temperature": 0}

{"prompt": "The cat", "edits": "b", "strength": 0.5, "max_tokens": 9, "temperature": 0}
{"prompt": "The cat", "edits": null, "max_tokens": 7, "temperature": 0, "repeat_penalty": 1.2}
{"prompt": "A dog", "edits": "a", "max_tokens": 10, "temperature": 0.9, "seed": 7, "top_k": 20, "top_p": 0.9}
{"messages": [{"role": "user", "content": "Name a colour."}], "edits": "b", "max_tokens": 8, "temperature": 0}
EOF
expect_ok "generate --batch" "$REDIT" generate -m "$M" --batch "$TMP/p.jsonl" --parallel 3 \
    --edits a="$TMP/a.safetensors" --edits b="$TMP/b.safetensors" --edits "$TMP/b.safetensors"
cp "$TMP/out" "$TMP/results.jsonl"
expect_grep "summary on stderr" "$TMP/err" '^6 prompts, [0-9]+ tokens in .* tok/s \(3 at once\)'

# each line against generate alone (its stdout is the prompt, the text, a newline)
alone() { # LINE ARGS...: generate alone, compared with result LINE's text
    n=$1
    shift
    expect_ok "generate alone (line $n)" "$REDIT" generate -m "$M" "$@"
    "$PY" - "$TMP/results.jsonl" "$n" "$TMP/out" <<'PY' || fail "line $n differs from generate alone"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
row = [r for r in rows if r["line"] == int(sys.argv[2])][0]
# redit writes each byte that starts no UTF-8 character as U+FFFD (the demo's text is noise)
alone = re.sub("[\udc80-\udcff]", "\ufffd",
               open(sys.argv[3], "rb").read().decode("utf-8", errors="surrogateescape"))
ok = alone.endswith(row["text"] + "\n") and row["tokens"] > 0
if not ok:
    print("batch:", repr(row["text"]), "alone:", repr(alone), file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}
alone 1 -p "Once upon a time" -n 12 --temp 0 --edits "$TMP/b.safetensors" --strength 1
alone 2 -p "Once upon a time" -n 12 --temp 0 --edits "$TMP/a.safetensors"
alone 4 -p "The cat" -n 9 --temp 0 --edits "$TMP/b.safetensors" --strength 0.5
alone 5 -p "The cat" -n 7 --temp 0 --repeat-penalty 1.2
alone 6 -p "A dog" -n 10 --temp 0.9 --seed 7 --top-k 20 --top-p 0.9 --edits "$TMP/a.safetensors"
alone 7 -p "Name a colour." --template llama2-chat -n 8 --temp 0 --edits "$TMP/b.safetensors"

"$PY" - "$TMP/results.jsonl" <<'PY' || fail "results: $(cat "$TMP/results.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["line"] for r in rows] == [1, 2, 4, 5, 6, 7], rows
assert rows[0]["id"] == "first" and rows[1]["id"] == 2
assert rows[0]["text"] != rows[1]["text"]  # edits a changed the answer
for r in rows:
    assert r["stopped_by"] in ("length", "eos", "template", "context"), r
    assert isinstance(r["seconds"], (int, float)) and r["tokens"] >= 0
PY

# -o: the same results into a file, nothing on stdout
expect_ok "generate --batch -o" "$REDIT" generate -m "$M" --batch "$TMP/p.jsonl" --parallel 2 \
    --edits a="$TMP/a.safetensors" --edits b="$TMP/b.safetensors" --edits "$TMP/b.safetensors" \
    -o "$TMP/o.jsonl"
[ -s "$TMP/out" ] && fail "-o also wrote to stdout"
"$PY" - "$TMP/results.jsonl" "$TMP/o.jsonl" <<'PY' || fail "-o differs from stdout's results"
import json, sys
strip = lambda p: [{k: v for k, v in json.loads(l).items() if k != "seconds"} for l in open(p)]
sys.exit(0 if strip(sys.argv[1]) == strip(sys.argv[2]) else 1)
PY

# bad lines: named, nothing generated
printf '{"prompt": "x"}\n{"prompt": "y", "edits": "zzz"}\n' >"$TMP/bad1.jsonl"
expect_fail "unknown edit name" 'bad1.jsonl line 2: "edits": "zzz" names no edit set' \
    "$REDIT" generate -m "$M" --batch "$TMP/bad1.jsonl"
[ -s "$TMP/out" ] && fail "a bad line still generated"
printf '{"prompt": "x"}\n\n{"prompt": "y", "temperature": "hot"}\n' >"$TMP/bad2.jsonl"
expect_fail "bad number" 'bad2.jsonl line 3: "temperature" must be a number' \
    "$REDIT" generate -m "$M" --batch "$TMP/bad2.jsonl"
printf '{"prompt": "x"\n' >"$TMP/bad3.jsonl"
expect_fail "bad JSON" 'bad3.jsonl line 1: not a JSON object' \
    "$REDIT" generate -m "$M" --batch "$TMP/bad3.jsonl"
printf '{"text": "x"}\n' >"$TMP/bad4.jsonl"
expect_fail "no prompt" 'line 1: give exactly one of "prompt"' \
    "$REDIT" generate -m "$M" --batch "$TMP/bad4.jsonl"
printf '{"messages": [{"role": "assistant", "content": "hi"}]}\n' >"$TMP/bad5.jsonl"
expect_fail "messages out of turn" 'line 1: message 1: role "assistant" out of turn' \
    "$REDIT" generate -m "$M" --batch "$TMP/bad5.jsonl"
expect_fail "--batch with -p" "no -p, -f, --ids" \
    "$REDIT" generate -m "$M" --batch "$TMP/p.jsonl" -p hi
expect_fail "--parallel without --batch" "--parallel needs --batch" \
    "$REDIT" generate -m "$M" -p hi --parallel 2
expect_fail "--parallel 0" "parallel" \
    "$REDIT" generate -m "$M" --batch "$TMP/p.jsonl" --parallel 0
expect_fail "missing file" "cannot open" "$REDIT" generate -m "$M" --batch "$TMP/none.jsonl"
echo "tests/cli/generate_batch.sh: ok"
