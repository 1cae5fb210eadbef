"""Writes a SentencePiece vocabulary as llama2.c's tokenizer.bin, which redit loads.

usage: spm_to_llama2c.py VOCAB.tsv tokenizer.bin

VOCAB.tsv is `spm_export_vocab --model=M.model --output_format=vocab`: one "piece<TAB>score"
line per id, in id order. tokenizer.bin is what llama2.c's tokenizer.py export writes:
int32 max_token_length, then per id float32 score, int32 byte length and the UTF-8 bytes,
little-endian, with "▁" written as a space and BOS / EOS spelled "\\n<s>\\n" / "\\n</s>\\n"
(redit undoes both). The vocabulary must look like Llama-2's: <unk> = 0, <s> = 1,
</s> = 2 and the 256 byte pieces <0x00>..<0xFF> (byte_fallback); redit infers the piece
types from these names, as it does for Llama-2's own tokenizer.bin. Standard library only.
"""

import struct
import sys


def read_vocab(path):
    pieces = []
    with open(path, encoding="utf-8", newline="\n") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            piece, tab, score = line.rpartition("\t")
            if not tab:
                raise SystemExit("%s:%d: expected piece<TAB>score" % (path, n))
            pieces.append((piece, float(score)))
    return pieces


def check(pieces, path):
    want = {0: "<unk>", 1: "<s>", 2: "</s>"}
    for i, p in want.items():
        if len(pieces) <= i or pieces[i][0] != p:
            raise SystemExit("%s: id %d is %r, expected %s (train with --unk_id=0 --bos_id=1 "
                             "--eos_id=2)" % (path, i, pieces[i][0] if len(pieces) > i else None, p))
    have = {p for p, _ in pieces}
    absent = [b for b in range(256) if "<0x%02X>" % b not in have]
    if absent:
        raise SystemExit("%s: %d byte pieces are missing (train with --byte_fallback=true)"
                         % (path, len(absent)))
    if len(have) != len(pieces):
        raise SystemExit("%s: duplicate pieces" % path)


def write_bin(pieces, path):
    encoded = []
    for i, (piece, score) in enumerate(pieces):
        if i == 1:
            piece = "\n<s>\n"
        elif i == 2:
            piece = "\n</s>\n"
        encoded.append((piece.replace("\u2581", " ").encode("utf-8"), score))
    with open(path, "wb") as f:
        f.write(struct.pack("<i", max(len(b) for b, _ in encoded)))
        for b, score in encoded:
            f.write(struct.pack("<fi", score, len(b)))
            f.write(b)


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    pieces = read_vocab(argv[1])
    check(pieces, argv[1])
    write_bin(pieces, argv[2])
    print("tokenizer: wrote %s (%d pieces)" % (argv[2], len(pieces)))


if __name__ == "__main__":
    main(sys.argv)
