#!/bin/sh
# redit export --format peft|llama-lora|merged for LoRA and IA3 edits trained on the demo
# model (GQA, adjacent-pair RoPE rows): the exports load back as --edits (a PEFT folder, a
# llama.cpp LoRA GGUF) on logits, generate and eval, giving the edit file's logits bit for
# bit; the merged GGUF's logits match within f32 rounding (--type f32) and the message names
# the type of the changed matrices; the PEFT files parse in Python with PEFT's names; wrong
# formats for a method, --type misuse and bad adapters are refused with clear messages.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"
i=0
: >"$TMP/train.jsonl"
while [ $i -lt 8 ]; do
    echo "{\"instruction\": \"Name item $i.\", \"output\": \"It is the cat.\"}" >>"$TMP/train.jsonl"
    i=$((i + 1))
done
COMMON="-m $M -d $TMP/train.jsonl --batch 8 --max-len 64 --template plain --epochs 2"
# shellcheck disable=SC2086
expect_ok "train lora" "$REDIT" train $COMMON --method lora --rank 4 --lora-targets q,k,v,down \
    --layers 1-3 --lr 0.05 -o "$TMP/lora.safetensors"
# shellcheck disable=SC2086
expect_ok "train ia3" "$REDIT" train $COMMON --method ia3 --lr 0.05 -o "$TMP/ia3.safetensors"
IDS="1 50 60 70 80"

for method in lora ia3; do
    E="$TMP/$method.safetensors"
    expect_ok "logits $method" "$REDIT" logits -m "$M" --ids "$IDS" -o "$TMP/$method.f32" --edits "$E"
    expect_ok "export $method peft" "$REDIT" export --edits "$E" -m "$M" --format peft \
        -o "$TMP/$method.peft"
    expect_grep "peft message" "$TMP/out" \
        "^wrote .*PEFT adapter folder.*q/k rows permuted from the GGUF's adjacent-pair order"
    [ -f "$TMP/$method.peft/adapter_config.json" ] && [ -f "$TMP/$method.peft/adapter_model.safetensors" ] ||
        fail "$method: the PEFT folder lacks its files"
    expect_ok "logits $method peft" "$REDIT" logits -m "$M" --ids "$IDS" -o "$TMP/p.f32" \
        --edits "$TMP/$method.peft"
    cmp -s "$TMP/$method.f32" "$TMP/p.f32" || fail "$method: the PEFT folder's logits differ"
    expect_ok "export $method merged" "$REDIT" export --edits "$E" -m "$M" --format merged \
        --type f32 -o "$TMP/$method-merged.gguf"
    expect_grep "merged message" "$TMP/out" "changed matrices written F32"
    expect_ok "logits merged" "$REDIT" logits -m "$TMP/$method-merged.gguf" --ids "$IDS" -o "$TMP/m.f32"
    "$PY" - "$TMP/$method.f32" "$TMP/m.f32" <<'PY' || fail "$method: merged logits differ"
import struct, sys
a, b = (open(p, "rb").read() for p in sys.argv[1:3])
a, b = (struct.unpack("<%df" % (len(x) // 4), x) for x in (a, b))
ref = max(abs(x) for x in a)
sys.exit(0 if len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) <= 1e-5 * ref + 1e-6 else 1)
PY
done

# the PEFT files in Python: PEFT's names, shapes and config
"$PY" - "$TMP/lora.peft" "$TMP/ia3.peft" <<'PY' || fail "the PEFT folders do not read as PEFT's"
import json, struct, sys
def header(d):
    b = open(d + "/adapter_model.safetensors", "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return h.pop("__metadata__"), h
meta, h = header(sys.argv[1])
assert meta["format"] == "pt"
p = "base_model.model.model.layers.%d.self_attn.%s.lora_%s.weight"
assert h[p % (1, "q_proj", "A")]["shape"] == [4, 128], h[p % (1, "q_proj", "A")]
assert h[p % (3, "k_proj", "B")]["shape"] == [64, 4]
assert h["base_model.model.model.layers.2.mlp.down_proj.lora_B.weight"]["shape"] == [128, 4]
assert all(t["dtype"] == "F32" for t in h.values()) and len(h) == 3 * 4 * 2
c = json.load(open(sys.argv[1] + "/adapter_config.json"))
assert c["peft_type"] == "LORA" and c["r"] == 4 and c["task_type"] == "CAUSAL_LM", c
assert c["target_modules"] == r"model\.layers\.(1|2|3)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|down_proj)", c
meta, h = header(sys.argv[2])
assert h["base_model.model.model.layers.0.self_attn.v_proj.ia3_l"]["shape"] == [64, 1]
assert h["base_model.model.model.layers.0.mlp.down_proj.ia3_l"]["shape"] == [1, 344]
c = json.load(open(sys.argv[2] + "/adapter_config.json"))
assert c["peft_type"] == "IA3" and c["feedforward_modules"] == ["down_proj"], c
PY

# llama.cpp's LoRA GGUF: loads back on every command
expect_ok "export llama-lora" "$REDIT" export --edits "$TMP/lora.safetensors" -m "$M" \
    --format llama-lora -o "$TMP/lora.gguf"
expect_grep "llama-lora message" "$TMP/out" "^wrote .*llama.cpp LoRA adapter GGUF, LoRA r 4"
expect_ok "logits llama-lora" "$REDIT" logits -m "$M" --ids "$IDS" -o "$TMP/g.f32" --edits "$TMP/lora.gguf"
cmp -s "$TMP/lora.f32" "$TMP/g.f32" || fail "the llama.cpp adapter's logits differ"
expect_ok "generate llama-lora" "$REDIT" generate -m "$M" -p "Name item 3." -n 4 --temp 0 \
    --edits "$TMP/lora.gguf" --compare
expect_ok "eval peft" "$REDIT" eval -m "$M" -d "$TMP/train.jsonl" --max-len 64 --template plain \
    --edits "$TMP/ia3.peft"
expect_ok "export llama-lora f16" "$REDIT" export --edits "$TMP/lora.safetensors" -m "$M" \
    --format llama-lora --type f16 -o "$TMP/lora16.gguf"

# refusals
expect_fail "ia3 as llama-lora" "takes LoRA edits" "$REDIT" export --edits "$TMP/ia3.safetensors" \
    -m "$M" --format llama-lora -o "$TMP/x.gguf"
expect_fail "lora as cvec" "takes RED edits" "$REDIT" export --edits "$TMP/lora.safetensors" \
    -m "$M" --format cvec -o "$TMP/x.gguf"
expect_fail "--type with peft" "--type takes" "$REDIT" export --edits "$TMP/lora.safetensors" \
    -m "$M" --format peft --type f16 -o "$TMP/x"
expect_fail "--type q8_0" "--type takes" "$REDIT" export --edits "$TMP/lora.safetensors" \
    -m "$M" --format merged --type q8_0 -o "$TMP/x"
expect_fail "peft onto a file" "not a folder" "$REDIT" export --edits "$TMP/lora.safetensors" \
    -m "$M" --format peft -o "$TMP/train.jsonl"
mkdir "$TMP/empty"
expect_fail "folder without config" "adapter_config.json" "$REDIT" logits -m "$M" --ids "$IDS" \
    -o "$TMP/x.f32" --edits "$TMP/empty"
expect_fail "a model as --edits" "not a model" "$REDIT" logits -m "$M" --ids "$IDS" \
    -o "$TMP/x.f32" --edits "$M"
expect_ok "other model" "$REDIT" make-model --shape stories15M --type F32 -o "$TMP/other.gguf"
expect_fail "adapter of another model" "exported from another model.*--force" "$REDIT" logits \
    -m "$TMP/other.gguf" --ids "1 2" -o "$TMP/x.f32" --edits "$TMP/lora.peft"
expect_fail "adapter of another width" "is 4 × 128 but this model's q projection \\(rank 4\\) needs 4 × 288" \
    "$REDIT" logits -m "$TMP/other.gguf" --ids "1 2" -o "$TMP/x.f32" --edits "$TMP/lora.gguf" --force
