#!/bin/sh
# redit logits on stories260K against the llama2.c reference logits (teacher forcing along
# the greedy sequence: rows 0..3 are the logits after [1], [1 461], [1 461 461],
# [1 461 461 401]).
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
. tests/cli/common.inc

MODEL="$FIX/stories260K/stories260K.bin"
REF="$FIX/stories260K/logits_64x512.f32"
need_fixture "$MODEL"
need_fixture "$REF"

expect_ok "logits of 4 ids" "$REDIT" logits -m "$MODEL" --ids "1 461 461 401" -o "$TMP/F"
size=$(wc -c <"$TMP/F")
[ "$size" -eq 8192 ] || fail "$TMP/F has $size bytes, expected 4 × 512 float32 = 8192"
# |ours − ref| ≤ 1e-4 · max(1, |ref|) per logit (the forward suite's tolerance).
"$PY" -c '
import array, sys
ours, ref = array.array("f"), array.array("f")
with open(sys.argv[1], "rb") as f: ours.frombytes(f.read())
with open(sys.argv[2], "rb") as f: ref.frombytes(f.read(4 * 512 * 4))
if sys.byteorder != "little":
    ours.byteswap(); ref.byteswap()
worst = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(ours, ref))
bad = [(i // 512, i % 512, a, b) for i, (a, b) in enumerate(zip(ours, ref))
       if not abs(a - b) <= 1e-4 * max(1.0, abs(b))]
if bad:
    r, c, a, b = bad[0]
    sys.exit("%d logits off; first: row %d token %d: %.7g vs reference %.7g" % (len(bad), r, c, a, b))
print("largest relative difference %.2g" % worst)
' "$TMP/F" "$REF" || fail "logits differ from $REF"

# Comma-separated ids and a single thread give the same numbers.
expect_ok "logits with commas, 1 thread" "$REDIT" logits -m "$MODEL" --ids "1,461,461,401" --threads 1 -o "$TMP/G"
"$PY" -c '
import array, sys
a, b = array.array("f"), array.array("f")
a.frombytes(open(sys.argv[1], "rb").read()); b.frombytes(open(sys.argv[2], "rb").read())
sys.exit(0 if len(a) == len(b) and all(abs(x - y) <= 1e-5 * max(1.0, abs(y)) for x, y in zip(a, b)) else 1)
' "$TMP/F" "$TMP/G" || fail "--ids \"1,461,461,401\" --threads 1 gives different logits"

# An id outside the vocabulary fails and leaves no output file behind.
expect_fail "logits with id 512" "outside the vocabulary" \
    "$REDIT" logits -m "$MODEL" --ids "1 512" -o "$TMP/H"
[ ! -e "$TMP/H" ] || fail "a failed logits run left $TMP/H behind"
stray=$(ls -A "$TMP" | grep -Ev '^(F|G|out|err)$' || true)
[ -z "$stray" ] || fail "temporary files left beside the output: $stray"
# An output that is a FIFO (or a device such as /dev/null) is written in place: an atomic
# rename over it would replace the node with a regular file.
mkfifo "$TMP/pipe"
cat "$TMP/pipe" >"$TMP/from-pipe" &
reader=$!
expect_ok "logits into a FIFO" timeout 60 "$REDIT" logits -m "$MODEL" --ids "1 461" -o "$TMP/pipe"
[ -p "$TMP/pipe" ] || { kill $reader; fail "the FIFO was replaced by a regular file"; }
wait $reader
[ "$(wc -c <"$TMP/from-pipe")" -eq 4096 ] || fail "the FIFO's reader got $(wc -c <"$TMP/from-pipe") bytes, expected 4096"
echo "tests/cli/logits.sh: ok"
