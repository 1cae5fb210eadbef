#!/bin/sh
# redit info on the stories260K checkpoint, and on bad files: empty, random bytes,
# truncated copies of stories260K.bin, a missing file and a folder.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

MODEL="$FIX/stories260K/stories260K.bin"
need_fixture "$MODEL"

expect_ok "info on stories260K" "$REDIT" info -m "$MODEL"
expect_grep "format" "$TMP/out" '^format +llama2\.c$'
expect_grep "width" "$TMP/out" '(^| )dim 64 '
expect_grep "kv heads" "$TMP/out" 'kv heads 4 \(grouped-query\)'
expect_grep "heads and layers" "$TMP/out" 'layers 5 · heads 8 '
expect_grep "vocabulary" "$TMP/out" 'vocab 512 '
expect_grep "parameter count" "$TMP/out" '^parameters +260032 \(tied classifier\)'
expect_grep "no tokenizer" "$TMP/out" '^tokenizer +none'
expect_grep "finite weights" "$TMP/out" '^weights +all finite$'
expect_grep "compute auto's choice" "$TMP/out" '^compute +auto → (bf16|f32) \(.+\)$'
if grep -q avx512_bf16 /proc/cpuinfo; then
    # stories260K is f32: the bf16 copies are 2 bytes a weight (inference: 64·512 classifier
    # + 5 layers of 7 matrices, all padded to the packer's panels, so only the form is fixed)
    expect_grep "bf16 weights plan" "$TMP/out" '^bf16 +weights packed for inference \(copies [0-9.]+ MB\), packed for training \([0-9.]+ MB\)$'
else
    echo "info.sh: SKIP the bf16 weights line check: this CPU has no AVX512-BF16" >&2
fi
grep -q "warning" "$TMP/err" && fail "a warning on an intact model: $(head -c 400 "$TMP/err")"

# A copy with a NaN in row 3 of the embeddings (f32 after the 28-byte header, 64 wide) and an
# Inf in the first layer's attention norm: info names the first, counts the second, and the
# load warns.
"$PY" - "$MODEL" "$TMP/nan.bin" <<'PYEOF'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
b[28 + 4 * (64 * 3 + 5):28 + 4 * (64 * 3 + 6)] = struct.pack("<f", float("nan"))
b[28 + 4 * (512 * 64):28 + 4 * (512 * 64 + 1)] = struct.pack("<f", float("inf"))
open(sys.argv[2], "wb").write(bytes(b))
PYEOF
expect_ok "info on a model with a NaN" "$REDIT" info -m "$TMP/nan.bin"
expect_grep "non-finite weights named" "$TMP/out" \
    '^weights +token_embd\.weight row 3 has a weight that is not finite \(NaN or Inf\); 1 more tensor too$'
expect_grep "load warning" "$TMP/err" "^redit: warning: $TMP/nan.bin: token_embd\.weight row 3 .*the model is broken"

# Bad files: non-zero exit and a message naming the file.
: >"$TMP/empty.bin"
"$PY" -c '
import random, sys
random.seed(20261128)
sys.stdout.buffer.write(bytes(random.getrandbits(8) for _ in range(4096)))
' >"$TMP/random.bin"
head -c 20 "$MODEL" >"$TMP/cut-header.bin"
head -c 1000 "$MODEL" >"$TMP/cut-1000.bin"
size=$(wc -c <"$MODEL")
head -c $((size / 2)) "$MODEL" >"$TMP/cut-half.bin"
head -c $((size - 1)) "$MODEL" >"$TMP/cut-one-byte.bin"
for f in empty random cut-header cut-1000 cut-half cut-one-byte; do
    expect_fail "info on $f.bin" "$TMP/$f.bin" "$REDIT" info -m "$TMP/$f.bin"
done
expect_fail "empty file" "empty" "$REDIT" info -m "$TMP/empty.bin"
for f in cut-1000 cut-half cut-one-byte; do
    expect_fail "$f.bin is reported as truncated" "$TMP/$f.bin: .*truncated" "$REDIT" info -m "$TMP/$f.bin"
done
expect_fail "missing file" "$TMP/missing.bin: cannot open" "$REDIT" info -m "$TMP/missing.bin"
expect_fail "a folder" "$TMP: is a directory" "$REDIT" info -m "$TMP"
# The other commands load through the same path.
expect_fail "generate on a truncated file" "$TMP/cut-half.bin" "$REDIT" generate -m "$TMP/cut-half.bin" --ids 1 -n 1
expect_fail "logits on random bytes" "$TMP/random.bin" "$REDIT" logits -m "$TMP/random.bin" --ids 1 -o "$TMP/l"
echo "tests/cli/info.sh: ok"
