#!/bin/sh
# redit export: a control vector, a merged GGUF and a safetensors file from edits trained on
# the demo model (both sites, all layers): what cvec drops is listed, the files parse (Python
# reads the GGUF header and the safetensors header independently), the merged model's logits
# match the base model with the edits, bad arguments are refused.
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
expect_ok "train" "$REDIT" train -m "$M" -d "$TMP/train.jsonl" -o "$TMP/e.safetensors" \
    --epochs 1 --batch 4 --micro-batch 4 --max-len 64 --template plain --sites both --layers all

expect_ok "export cvec" "$REDIT" export --edits "$TMP/e.safetensors" -m "$M" --format cvec \
    -o "$TMP/cv.gguf"
expect_grep "layer 0 dropped" "$TMP/out" '^dropped: ffn bias of layer 0 '
expect_grep "ffn scale dropped" "$TMP/out" '^dropped: ffn scale of layers 0-'
expect_grep "attn scale dropped" "$TMP/out" '^dropped: attn scale of layers 0-'
expect_grep "attn bias dropped" "$TMP/out" '^dropped: attn bias of layers 0-'
expect_grep "written" "$TMP/out" '^wrote .*control vector'
n_layers=$("$REDIT" info -m "$M" | sed -n 's/.*layers \([0-9]*\) .*/\1/p')
"$PY" - "$TMP/cv.gguf" "$n_layers" <<'PYEOF' || fail "the control vector does not parse as expected"
import struct, sys
d = open(sys.argv[1], "rb").read()
n_layers = int(sys.argv[2])
assert d[:4] == b"GGUF" and struct.unpack_from("<I", d, 4)[0] == 3
nt, nkv = struct.unpack_from("<QQ", d, 8)
p = 24
def s():
    global p
    n, = struct.unpack_from("<Q", d, p); p += 8
    v = d[p:p + n].decode(); p += n
    return v
kv = {}
for _ in range(nkv):
    k = s(); t, = struct.unpack_from("<I", d, p); p += 4
    if t == 8: kv[k] = s()
    elif t in (4, 5): kv[k], = struct.unpack_from("<i", d, p); p += 4
    else: raise SystemExit("unexpected kv type %d" % t)
assert kv["general.architecture"] == "controlvector", kv
assert kv["controlvector.model_hint"] == "llama" and kv["controlvector.layer_count"] == n_layers
names = []
for _ in range(nt):
    names.append(s()); nd, = struct.unpack_from("<I", d, p); p += 4 + 8 * nd + 4 + 8
assert names == ["direction.%d" % l for l in range(1, n_layers)], names
PYEOF

expect_ok "export safetensors" "$REDIT" export -e "$TMP/e.safetensors" -m "$M" -f safetensors \
    -o "$TMP/hf.safetensors"
"$PY" - "$TMP/hf.safetensors" "$n_layers" <<'PYEOF' || fail "the safetensors export is not as documented"
import json, struct, sys
d = open(sys.argv[1], "rb").read()
n, = struct.unpack_from("<Q", d, 0)
h = json.loads(d[8:8 + n])
meta = h.pop("__metadata__")
assert meta["format"] == "redit-red-hf", meta
want = set()
for l in range(int(sys.argv[2])):
    for proj in ("mlp.down_proj", "self_attn.o_proj"):
        for v in ("red_scale", "red_bias"):
            want.add("model.layers.%d.%s.%s" % (l, proj, v))
assert set(h) == want, sorted(set(h) ^ want)
for t in h.values():
    assert t["dtype"] == "F32" and t["shape"] == [int(meta["dim"])], t
PYEOF

# merged: the demo model is F16, so the scaled ffn_down / attn_output stay F16 (widened,
# scaled, narrowed): logits within F16 rounding of the base model with the edits (2e-3 of
# the largest logit; the edits themselves move them by far more).
expect_ok "export merged" "$REDIT" export -e "$TMP/e.safetensors" -m "$M" -f merged \
    -o "$TMP/merged.gguf"
expect_grep "merged written" "$TMP/out" '^wrote .*folded in'
expect_ok "logits edited" "$REDIT" logits -m "$M" --ids "1 50 60 70" -o "$TMP/edited.f32" \
    --edits "$TMP/e.safetensors"
expect_ok "logits base" "$REDIT" logits -m "$M" --ids "1 50 60 70" -o "$TMP/base.f32"
expect_ok "logits merged" "$REDIT" logits -m "$TMP/merged.gguf" --ids "1 50 60 70" \
    -o "$TMP/merged.f32"
"$PY" - "$TMP/edited.f32" "$TMP/merged.f32" "$TMP/base.f32" <<'PYEOF' || fail "merged logits differ from base + edits"
import array, sys
def read(p):
    a = array.array("f"); a.frombytes(open(p, "rb").read()); return a
e, m, b = (read(p) for p in sys.argv[1:4])
assert len(e) == len(m) == len(b) > 0
top = max(abs(x) for x in e)
diff = max(abs(x - y) for x, y in zip(e, m))
moved = max(abs(x - y) for x, y in zip(e, b))
assert diff <= 2e-3 * top, (diff, top)
assert moved > 10 * diff, (moved, diff)
PYEOF

expect_fail "unknown format" 'format must be' "$REDIT" export -e "$TMP/e.safetensors" -m "$M" \
    -f onnx -o "$TMP/x"
expect_fail "missing output" "redit export: -o FILE is required; see 'redit export --help'" "$REDIT" export -e "$TMP/e.safetensors" -m "$M" -f cvec
expect_fail "missing edits file" 'nope' "$REDIT" export -e "$TMP/nope.safetensors" -m "$M" \
    -f cvec -o "$TMP/x"
[ ! -e "$TMP/x" ] || fail "a failed export left a file"
