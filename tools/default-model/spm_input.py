"""Turns pretrain.txt into SentencePiece training input: one sentence a line.

usage: spm_input.py pretrain.txt OUT.txt

spm_train reads one "sentence" per line and skips lines longer than
--max_sentence_length bytes (4192 by default); a State of the Union address is one
paragraph of up to 100 kB, so paragraphs are cut after sentence ends (. ! ? followed by a
space and an upper-case letter or a quote), and what is still longer than 2000 bytes is
cut at the last space before that. Blank lines (document breaks) are dropped.
Standard library only.
"""

import sys

_MAX = 2000
_ENDS = ".!?"


def sentences(paragraph):
    out, start, n = [], 0, len(paragraph)
    for i in range(n - 2):
        if (paragraph[i] in _ENDS and paragraph[i + 1] == " "
                and (paragraph[i + 2].isupper() or paragraph[i + 2] in "\"'")):
            out.append(paragraph[start:i + 1])
            start = i + 2
    out.append(paragraph[start:])
    return [s for piece in out for s in _wrap(piece) if s]


def _wrap(s):
    while len(s.encode("utf-8")) > _MAX:
        cut = s.rfind(" ", 0, _MAX // 2)
        if cut <= 0:
            cut = _MAX // 2
        yield s[:cut]
        s = s[cut:].lstrip(" ")
    yield s


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    n = 0
    with open(argv[1], encoding="utf-8") as src, open(argv[2], "w", encoding="utf-8") as dst:
        for line in src:
            line = line.rstrip("\n")
            if not line:
                continue
            for s in sentences(line):
                dst.write(s + "\n")
                n += 1
    print("tokenizer: %d sentences for spm_train" % n)


if __name__ == "__main__":
    main(sys.argv)
