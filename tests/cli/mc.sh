#!/bin/sh
# redit eval on multiple-choice files: acc, acc_norm and every choice's log-likelihood
# against log-probabilities obtained independently (redit tokenize for the ids, redit logits
# rows for teacher forcing, the sums and argmaxes in Python) for the base model and for
# edits; --compare's McNemar counts and p-value against the per-item file; the ARC and
# HellaSwag styles; clear errors for bad files and misused options; --compare on a loss set.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

M=models/redit-base.gguf
cat >"$TMP/items.jsonl" <<'EOF'
{"context": "Human: Define the word fellow.\n\nAssistant:", "choices": [" A boy or man.", " Wetness caused by water.", " In a way that was not expected by anyone at all."], "gold": 0}
{"context": "The whale swam in the ", "choices": ["sea", "desert of the south"], "gold": 1}
{"context": "Call me", "choices": [" Ishmael.", " a taxi, please, now.", " x", " Ahab, the captain"], "gold": 3}
{"context": "Human: Define the word surprised.\n\nAssistant:", "choices": [" Have ownership or possession of.", " Taken unawares or suddenly and feeling wonder.", " Wetness caused by water."], "gold": 1}
{"context": "It was the best of times, it was the worst of", "choices": [" times", " dogs and cats"], "gold": 0}
EOF

# a few training steps give edits that move the scores
expect_ok "train edits" "$REDIT" train -m "$M" -d datasets/define-words/train.jsonl --template red \
    --max-len 64 --max-steps 4 --batch 16 --lr 0.05 -t 1 -o "$TMP/e.safetensors"

expect_ok "eval --compare" "$REDIT" eval -m "$M" -d "$TMP/items.jsonl" --edits "$TMP/e.safetensors" \
    --compare --json --per-item "$TMP/per.jsonl" -t 1
cp "$TMP/out" "$TMP/cmp.json"
expect_grep "the table" "$TMP/err" "McNemar"
expect_ok "eval (base)" "$REDIT" eval -m "$M" -d "$TMP/items.jsonl" --json -t 1
cp "$TMP/out" "$TMP/base.json"
expect_ok "eval (edited)" "$REDIT" eval -m "$M" -d "$TMP/items.jsonl" --edits "$TMP/e.safetensors" --json -t 1
cp "$TMP/out" "$TMP/edited.json"

"$PY" - "$REDIT" "$M" "$TMP" <<'PY' || fail "scores differ from teacher forcing (above)"
import json, math, struct, subprocess, sys
redit, model, tmp = sys.argv[1:4]
V = 4096
def ids(text):
    out = subprocess.run([redit, "tokenize", "-m", model, "--bos", "-p", text], check=True,
                         capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]
def loglik(row, nctx, edits):
    cmd = [redit, "logits", "-m", model, "--ids", " ".join(map(str, row)), "-o", tmp + "/l.bin", "-t", "1"]
    if edits: cmd += ["--edits", tmp + "/e.safetensors"]
    subprocess.run(cmd, check=True, capture_output=True)
    b = open(tmp + "/l.bin", "rb").read()
    assert len(b) == 4 * V * len(row), len(b)
    ll = 0.0
    for t in range(nctx - 1, len(row) - 1):
        z = struct.unpack_from("<%df" % V, b, 4 * V * t)
        mx = max(z)
        ll += z[row[t + 1]] - mx - math.log(sum(math.exp(v - mx) for v in z))
    return ll
items = [json.loads(l) for l in open(tmp + "/items.jsonl")]
per = [json.loads(l) for l in open(tmp + "/per.jsonl")]
cmp = json.load(open(tmp + "/cmp.json"))
assert len(per) == len(items) == cmp["items"], (len(per), cmp["items"])
right = {}
bad = 0
for which in ("base", "edited"):
    acc = acc_norm = 0
    right[which] = []
    for it, p in zip(items, per):
        ctx_text = it["context"].rstrip()     # the harness moves trailing spaces to the choice
        ctx = ids(ctx_text)
        lls = []
        for c in it["choices"]:
            whole = ids(it["context"] + c)
            lls.append(loglik(ctx + whole[len(ctx):], len(ctx), which == "edited"))
        got = p[which]["loglik"]
        for a, b in zip(lls, got):
            if abs(a - b) > 1e-4 * (1 + abs(a)):
                print(which, it["context"][:20], a, b); bad += 1
        pred = max(range(len(lls)), key=lambda k: (lls[k], -k))
        norm = [lls[k] / len(c) for k, c in enumerate(it["choices"])]
        pred_norm = max(range(len(lls)), key=lambda k: (norm[k], -k))
        if (pred, pred_norm) != (p[which]["pred"], p[which]["pred_norm"]):
            print(which, "predictions", pred, pred_norm, p[which]); bad += 1
        acc += pred == it["gold"]; acc_norm += pred_norm == it["gold"]
        right[which].append((pred == it["gold"], pred_norm == it["gold"]))
    n = len(items)
    single = json.load(open(tmp + "/" + which + ".json"))
    for src in (cmp[which], single):
        if abs(src["acc"] - acc / n) > 1e-12 or abs(src["acc_norm"] - acc_norm / n) > 1e-12:
            print(which, "acc", src, acc, acc_norm); bad += 1
        p_ = acc / n
        if abs(src["acc_stderr"] - math.sqrt(p_ * (1 - p_) / (n - 1))) > 1e-12:
            print(which, "stderr", src); bad += 1
for j, name in enumerate(("acc", "acc_norm")):
    b = sum(1 for x, y in zip(right["base"], right["edited"]) if x[j] and not y[j])
    c = sum(1 for x, y in zip(right["base"], right["edited"]) if not x[j] and y[j])
    k, m = min(b, c), b + c
    pv = min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m) if m else 1.0
    got = cmp["mcnemar"][name]
    if (got["base_only"], got["edited_only"]) != (b, c) or abs(got["p"] - pv) > 1e-12:
        print("mcnemar", name, got, b, c, pv); bad += 1
sys.exit(1 if bad else 0)
PY

# the other two styles
cat >"$TMP/arc.jsonl" <<'EOF'
{"id": "1", "question": "Which is a gas?", "choices": {"text": ["ice", "steam", "rock"], "label": ["A", "B", "C"]}, "answerKey": "B"}
{"id": "2", "question": "What do whales live in?", "choices": {"text": ["water", "trees"], "label": ["1", "2"]}, "answerKey": "1"}
EOF
expect_ok "ARC style" "$REDIT" eval -m "$M" -d "$TMP/arc.jsonl" --json -t 1
expect_grep "ARC style" "$TMP/out" '"style":[[:space:]]*"ARC"'
expect_grep "ARC items" "$TMP/out" '"items":[[:space:]]*2'
cat >"$TMP/hs.jsonl" <<'EOF'
{"activity_label": "Sailing", "ctx_a": "The man pulls the rope.", "ctx_b": "the sail", "ctx": "x", "endings": ["rises up.", "eats a [title] sandwich.", "sings."], "label": "0"}
EOF
expect_ok "HellaSwag style" "$REDIT" eval -m "$M" -d "$TMP/hs.jsonl" --json -t 1
expect_grep "HellaSwag style" "$TMP/out" '"style":[[:space:]]*"HellaSwag"'

# bad files and options
printf '{"context": "a", "choices": [" b", " c"], "gold": 0}\n{"context": "a", "choices": [" b", " c"], "gold": 5}\n' >"$TMP/bad.jsonl"
expect_fail "gold out of range" 'bad\.jsonl line 2: "gold" 5 is out of range' \
    "$REDIT" eval -m "$M" -d "$TMP/bad.jsonl"
printf '{"question": "q", "choices": [" b", " c"], "answerKey": "A"}\n' >"$TMP/bad2.jsonl"
expect_fail "ARC choices not an object" 'bad2\.jsonl line 1: "choices" must be an object' \
    "$REDIT" eval -m "$M" -d "$TMP/bad2.jsonl"
expect_fail "--compare without --edits" '--compare needs --edits' \
    "$REDIT" eval -m "$M" -d "$TMP/items.jsonl" --compare
expect_fail "--per-item on a loss set" '--per-item is for multiple-choice files' \
    "$REDIT" eval -m "$M" -d datasets/define-words/eval.jsonl --per-item "$TMP/x.jsonl"

# --compare on a loss set: the base column is plain eval's loss
head -n 20 datasets/define-words/eval.jsonl >"$TMP/small.jsonl"
expect_ok "eval base loss" "$REDIT" eval -m "$M" -d "$TMP/small.jsonl" --template red --json -t 1
cp "$TMP/out" "$TMP/loss_base.json"
expect_ok "eval --compare (loss)" "$REDIT" eval -m "$M" -d "$TMP/small.jsonl" --template red \
    --edits "$TMP/e.safetensors" --compare --json -t 1
expect_grep "loss table" "$TMP/err" '^loss +[0-9.]+ +[0-9.]+ +[-+][0-9.]+'
"$PY" - "$TMP/loss_base.json" "$TMP/out" <<'PY' || fail "--compare's base loss is not plain eval's"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["loss"] == b["base"]["loss"], (a["loss"], b["base"])
assert abs(b["difference"]["loss"] - (b["edited"]["loss"] - b["base"]["loss"])) < 1e-12
assert b["edited"]["loss"] != b["base"]["loss"]
PY
# its paired standard error against per-example losses from one-example evals
head -n 8 datasets/define-words/eval.jsonl >"$TMP/eight.jsonl"
expect_ok "eval --compare (8)" "$REDIT" eval -m "$M" -d "$TMP/eight.jsonl" --template red \
    --edits "$TMP/e.safetensors" --compare --json -t 1
cp "$TMP/out" "$TMP/eight.json"
i=0
while IFS= read -r line; do
    i=$((i + 1))
    printf '%s\n' "$line" >"$TMP/one.jsonl"
    "$REDIT" eval -m "$M" -d "$TMP/one.jsonl" --template red --json -t 1 >"$TMP/one-base-$i.json" 2>/dev/null ||
        fail "eval of example $i"
    "$REDIT" eval -m "$M" -d "$TMP/one.jsonl" --template red --edits "$TMP/e.safetensors" --json -t 1 \
        >"$TMP/one-edit-$i.json" 2>/dev/null || fail "eval of example $i with edits"
done <"$TMP/eight.jsonl"
"$PY" - "$TMP" <<'PY' || fail "--compare's paired standard error is wrong"
import json, math, sys
tmp = sys.argv[1]
a, b, t = [], [], []
for i in range(1, 9):
    x, y = json.load(open("%s/one-base-%d.json" % (tmp, i))), json.load(open("%s/one-edit-%d.json" % (tmp, i)))
    a.append(x["loss"] * x["tokens"]); b.append(y["loss"] * y["tokens"]); t.append(x["tokens"])
n, T = len(a), sum(t)
D = (sum(b) - sum(a)) / T
se = math.sqrt(sum(((q - p) - D * c) ** 2 for p, q, c in zip(a, b, t)) * n / (n - 1)) / T
got = json.load(open(tmp + "/eight.json"))["difference"]
assert abs(got["loss"] - D) < 1e-5 and abs(got["loss_stderr"] - se) < 1e-5 * (1 + se), (got, D, se)
PY
echo "mc: ok"
