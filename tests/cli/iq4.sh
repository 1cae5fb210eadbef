#!/bin/sh
# IQ4_NL / IQ4_XS through the command line: the bundled model converted to each (rows of 256
# and 768: whole blocks), `info` names the type, its logits equal bit for bit those of its
# F32 widening (the f32 reference numerics read the blocks exactly); a file with a tensor in
# a type redit does not read (IQ1_S, patched into the header) is refused naming the file, the
# tensor and the type, with the list of the types redit reads.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

M=models/redit-base.gguf
[ -f "$M" ] || fail "$M is missing"
IDS="1 414 321 526 261 676 4029"
for T in IQ4_NL IQ4_XS; do
    expect_ok "convert to $T" "$REDIT" convert -m "$M" --type "$T" -o "$TMP/q.gguf"
    expect_ok "info of $T" "$REDIT" info -m "$TMP/q.gguf"
    grep -q "$T ×44" "$TMP/out" || fail "$T: info does not list 44 $T matrices: $(cat "$TMP/out")"
    expect_ok "$T widened to F32" "$REDIT" convert -m "$TMP/q.gguf" --type F32 -o "$TMP/w.gguf"
    expect_ok "$T logits" "$REDIT" logits -m "$TMP/q.gguf" --ids "$IDS" -o "$TMP/a.f32"
    expect_ok "F32 logits" "$REDIT" logits -m "$TMP/w.gguf" --ids "$IDS" -o "$TMP/b.f32"
    cmp -s "$TMP/a.f32" "$TMP/b.f32" || fail "$T: logits differ from the F32 widening's"
done

# blk.0.attn_v.weight of the IQ4_XS file retyped IQ4_XS (23) → IQ1_S (19): its 50-byte
# blocks fit in the 136-byte ones, so the file still parses
"$PY" - "$TMP/q.gguf" "$TMP/iq1.gguf" <<'PYEOF'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
name = b"blk.0.attn_v.weight"
at = data.find(struct.pack("<Q", len(name)) + name) + 8 + len(name)
n_dims = struct.unpack_from("<I", data, at)[0]
at += 4 + 8 * n_dims
assert struct.unpack_from("<I", data, at)[0] == 23
struct.pack_into("<I", data, at, 19)
open(sys.argv[2], "wb").write(data)
PYEOF
expect_fail "IQ1_S refused" \
    "iq1\.gguf.*blk\.0\.attn_v\.weight.*IQ1_S.*redit does not read.*IQ4_NL, IQ4_XS" \
    "$REDIT" info -m "$TMP/iq1.gguf"
echo "tests/cli/iq4.sh: ok"
