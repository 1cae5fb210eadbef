"""Writes redit's bundled data sets (called by datasets.sh).

usage: datasets.py NPM_PREFIX OUT_DIR [--seed N]

  OUT_DIR/define-words/{train,eval}.jsonl  instruction set, Alpaca format:
      {"instruction": "Define the word harbor.", "input": "", "output": "A sheltered port
      where ships can take on or discharge cargo."} from WordNet 3.0: common words (tagged
      5 times or more in WordNet's semantic concordance), the gloss of their most frequent
      sense when it is short (10-70 characters, 3 words or more, no parenthesis); eval words never appear
      in train.
  OUT_DIR/define-words-mc/eval.jsonl      multiple choice from define-words' eval words only:
      {"context": "Human: Define the word harbor.\n\nAssistant:", "choices": [" A sheltered
      port ...", ...], "gold": 2}: the word's gloss (as define-words' output) and three
      glosses of other eval words, drawn with a seeded RNG (seed + 3), in a seeded order;
      the context is the "red" template's prompt, as the bundled edits are trained with.
  OUT_DIR/spam-ham/{train,eval}.jsonl      classification, {"text": ..., "label": "spam" |
      "ham"} from the SpamAssassin public corpus: the decoded body (MIME, quoted-printable,
      base64 and HTML undone) then the Subject line as the last line, whitespace collapsed,
      e-mail addresses replaced by "[email]", runs of 4 or more of the same punctuation
      shortened to 3, the body cut at a word boundary so that the whole is at most 230 bytes
      of UTF-8 (a SentencePiece text of n bytes has at most n + 1 tokens, so every example,
      label and template "plain" or "red" included, fits --max-len 256, the default model's
      context). The Subject comes last, next to the answer: the small default model reads
      what is near the end of the prompt best (spam-ham with RED on both sites, 4 epochs,
      seed 42: 94.5 % held-out accuracy with the subject last, 89.6 % with it first);
      duplicates and mail with more than 10% non-ASCII characters (mostly other scripts)
      left out; natural class balance.
  OUT_DIR/sotu-obama/{train,eval}.txt      plain text for language-model adaptation: Barack
      Obama's eight State of the Union addresses (2009-2016), two held out; none of them
      is in the default model's pretraining text (corpus.py).

Every split is a seeded shuffle (default seed 1234); the same seed gives the same files.
Standard library only.
"""

import json
import os
import random
import re
import sys

import corpus
import sources

SEED = 1234
WORDS_EVAL = 300
WORDS_TRAIN = 3000
WORD_MIN_COUNT = 5
GLOSS_CHARS = (10, 70)
MAIL_BYTES = 230
MAIL_EVAL_FRACTION = 0.1
ADDRESSES_EVAL = 2


def define_words(rng):
    """(train, eval) lists of Alpaca records."""
    senses = sources.wordnet_sense_counts()
    counts = sources.wordnet_lemma_counts()
    synsets = {(x["pos"], x["offset"]): x for x in sources.wordnet_synsets()}
    best = {}  # lemma -> (tagged senses, pos order, pos, first sense offset)
    for pos_order, (_, pos) in enumerate(sources.WORDNET_POS):
        for (lemma, p), (offsets, tagged) in senses.items():
            if p != pos or not re.fullmatch(r"[a-z]{3,}", lemma):
                continue
            if counts.get(lemma, 0) < WORD_MIN_COUNT or tagged < 1:
                continue
            cand = (tagged, -pos_order, pos, offsets[0])
            if lemma not in best or cand[:2] > best[lemma][:2]:
                best[lemma] = cand
    records = []
    for lemma in sorted(best):
        _, _, pos, offset = best[lemma]
        d = synsets[(pos, offset)]["definition"].rstrip(".;: ")
        if (not GLOSS_CHARS[0] <= len(d) <= GLOSS_CHARS[1] or len(d.split()) < 3
                or "(" in d or '"' in d):
            continue
        records.append({"instruction": "Define the word %s." % lemma, "input": "",
                        "output": d[:1].upper() + d[1:] + "."})
    rng.shuffle(records)
    eval_set = records[:WORDS_EVAL]
    train = records[WORDS_EVAL:WORDS_EVAL + WORDS_TRAIN]
    return train, eval_set, len(records)


MC_CHOICES = 4


def define_words_mc(eval_set, rng):
    """Multiple-choice items for define-words' eval words: gloss vs 3 other eval glosses."""
    items = []
    glosses = [r["output"] for r in eval_set]
    for i, r in enumerate(eval_set):
        word = r["instruction"][len("Define the word "):-1]
        others = rng.sample([j for j in range(len(eval_set)) if glosses[j] != glosses[i]],
                            MC_CHOICES - 1)
        gold = rng.randrange(MC_CHOICES)
        choices = [glosses[j] for j in others]
        choices.insert(gold, glosses[i])
        items.append({"context": "Human: Define the word %s.\n\nAssistant:" % word,
                      "choices": [" " + c for c in choices], "gold": gold})
    return items


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_RUNS = re.compile(r"([^\w\s])\1{3,}")  # "*****" -> "***"
_BLANKS = re.compile(r"[ \t\u00a0\x0b\x0c]+")


def mail_text(m):
    body = _EMAIL.sub("[email]", m["body"].replace("\r", ""))
    lines = [_BLANKS.sub(" ", line).strip() for line in body.split("\n")]
    body = "\n".join(line for line in lines if line)
    subject = _BLANKS.sub(" ", _EMAIL.sub("[email]", m["subject"])).strip()
    text = sources.clean_text_keep_lines("Subject: %s\n%s" % (subject, body))
    text = _RUNS.sub(r"\1\1\1", text)
    if len(text.encode("utf-8")) > MAIL_BYTES:
        head = text.encode("utf-8")[:MAIL_BYTES].decode("utf-8", errors="ignore")
        cut = head.rfind(" ")
        text = head[:cut if cut > len(head) // 2 else len(head)].rstrip()
    subject_line, _, body = text.partition("\n")  # the subject moves to the end
    return body + "\n" + subject_line if body else subject_line


def mostly_ascii(text):
    """False for mail mostly in other scripts (their characters become 2-4 byte pieces each
    and would not fit a 256-token example)."""
    return sum(ord(c) > 127 for c in text) <= 0.1 * len(text)


def spam_ham(npm_prefix, rng):
    seen, records = set(), []
    for m in sources.spam_assassin(npm_prefix):
        text = mail_text(m)
        if text in seen or len(text) < 20 or not mostly_ascii(text):
            continue
        seen.add(text)
        records.append({"text": text, "label": m["label"]})
    rng.shuffle(records)
    n_eval = round(len(records) * MAIL_EVAL_FRACTION)
    return records[n_eval:], records[:n_eval]


def sotu_obama(npm_prefix, rng):
    addresses = [a for a in sources.sotu(npm_prefix) if a["name"] == corpus.ADAPT_PRESIDENT]
    held = {a["key"] for a in rng.sample(addresses, ADDRESSES_EVAL)}
    train = [corpus.sotu_document(a) for a in addresses if a["key"] not in held]
    eval_set = [corpus.sotu_document(a) for a in addresses if a["key"] in held]
    return train, eval_set, sorted(held)


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def report(path, what):
    print("datasets: wrote %s (%s, %.2f MB)" % (path, what, os.path.getsize(path) / 1e6))


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--seed"):
        raise SystemExit(__doc__)
    npm_prefix, out = argv[1], argv[2]
    seed = int(argv[4]) if len(argv) == 5 else SEED
    for sub in ("define-words", "define-words-mc", "spam-ham", "sotu-obama"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)

    train, eval_set, total = define_words(random.Random(seed))
    print("datasets: define-words: %d short glosses of common words; %d train, %d eval"
          % (total, len(train), len(eval_set)))
    for name, recs in (("train", train), ("eval", eval_set)):
        report(write_jsonl(os.path.join(out, "define-words", name + ".jsonl"), recs),
               "%d examples" % len(recs))
    mc = define_words_mc(eval_set, random.Random(seed + 3))
    report(write_jsonl(os.path.join(out, "define-words-mc", "eval.jsonl"), mc),
           "%d items, %d choices each" % (len(mc), MC_CHOICES))

    train, eval_set = spam_ham(npm_prefix, random.Random(seed + 1))
    for name, recs in (("train", train), ("eval", eval_set)):
        spam = sum(r["label"] == "spam" for r in recs)
        report(write_jsonl(os.path.join(out, "spam-ham", name + ".jsonl"), recs),
               "%d examples: %d ham, %d spam; majority (ham) %.1f%%"
               % (len(recs), len(recs) - spam, spam, 100.0 * (len(recs) - spam) / len(recs)))

    train, eval_set, held = sotu_obama(npm_prefix, random.Random(seed + 2))
    print("datasets: sotu-obama: held out %s" % ", ".join(held))
    for name, docs in (("train", train), ("eval", eval_set)):
        path = os.path.join(out, "sotu-obama", name + ".txt")
        corpus.write_text(path, docs)
        report(path, "%d addresses" % len(docs))


if __name__ == "__main__":
    main(sys.argv)
