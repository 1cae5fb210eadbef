"""Writes the texts for checking redit's tokenizer against spm_encode: one text a line.

usage: tokenizer_lines.py NPM_PREFIX CORPUS_DIR OUT.txt [MAX_MAIL]

The lines: every sentence and every whole paragraph of the held-out pretraining text
(pretrain-eval-sotu.txt, pretrain-eval-moby.txt), then the first MAX_MAIL (default 2000)
SpamAssassin messages as raw as a line allows (subject and body, newlines turned into
spaces; tabs, runs of spaces, HTML entities, non-ASCII and invalid characters kept) — text
unlike the training text, so the byte-fallback and whitespace paths are exercised.
Standard library only.
"""

import os
import sys

import sources
import spm_input


def main(argv):
    if len(argv) not in (4, 5):
        raise SystemExit(__doc__)
    npm_prefix, corpus, out = argv[1], argv[2], argv[3]
    max_mail = int(argv[4]) if len(argv) == 5 else 2000
    lines = []
    for name in ("pretrain-eval-sotu.txt", "pretrain-eval-moby.txt"):
        with open(os.path.join(corpus, name), encoding="utf-8") as f:
            for para in f.read().split("\n"):
                if para:
                    lines.append(para)
                    lines.extend(spm_input.sentences(para))
    for m in sources.spam_assassin(npm_prefix)[::3][:max_mail]:
        text = (m["subject"] + " " + m["body"]).replace("\r", " ").replace("\n", " ")
        if text.strip():
            lines.append(text)
    with open(out, "w", encoding="utf-8", errors="surrogateescape") as f:
        for line in lines:
            f.write(line + "\n")
    print("tokenizer check: %d lines" % len(lines))


if __name__ == "__main__":
    main(sys.argv)
