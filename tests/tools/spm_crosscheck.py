#!/usr/bin/python3
"""Writes SentencePiece's own encodings as JSONL for tests/test_tokenizer.c to compare with.

  spm_crosscheck.py OUT.jsonl [tokenizer.model]
      A few hundred varied random texts through Llama-2's tokenizer.model, one
      {"text": ..., "ids": [...]} per line. Lines whose input is not valid UTF-8 carry the
      raw bytes as "hex" (and "text": null).
  spm_crosscheck.py --vocabs OUT.jsonl
      Random tiny BPE vocabularies (many equal scores, UNUSED and USER_DEFINED pieces, with
      and without byte pieces and dummy prefix), serialized as a SentencePiece ModelProto by
      hand and loaded by SentencePiece; one line per vocabulary: {"pieces", "scores",
      "types", "add_dummy_prefix", "cases": [{"text", "ids"}, ...]}.

Texts never contain U+0000 (cJSON strings end there). Fixed seeds: same output every run.
Run with /usr/bin/python3 from the repository root. Exit status 77 when the sentencepiece
module is missing (the test then skips)."""
import json
import os
import random
import struct
import sys
import tempfile

try:
    import sentencepiece
except ImportError:
    sys.stderr.write("spm_crosscheck: the python module sentencepiece is not installed\n")
    sys.exit(77)

MODEL = "../shared/fixtures/llama2-tokenizer/tokenizer.model"
SEED = 20240607
N_TEXTS = 400

WORDS = ("the of and to in is was that for on with as by at from it he she they we you "
         "once upon a time there little girl named Lily quick brown fox jumps over lazy dog "
         "representation editing fine-tuning llama model layer token vector scale bias "
         "Hello World OpenAI GPU CPU matrix tensor don't can't I'm it's naïve café résumé "
         "https example com www ifdef printf return int main void struct").split()
PUNCT = list(".,;:!?-_()[]{}<>\"'`~@#$%^&*+=/\\|") + ["...", "--", "<s>", "</s>", "<unk>",
                                                     "<0x41>", "[INST]", "<<SYS>>", "▁"]
ACCENTED = ("àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿßÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝ"
            "ĀāĂăĄąĆćČčĎďĒēĘęĚěĞğĪīİıŁłŃńŇňŌōŐőŒœŘřŚśŞşŠšŢţŤťŪūŮůŰűŸŹźŻżŽž")
GREEK_CYRILLIC = ("αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΩ"
                  "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЖЗИЙЯ")
SPACES = [" ", "  ", "   ", "    ", "        ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ",
          "\u00a0", "\u3000", "\u2009", "\u200b", "\ufeff"]


def rand_word(r):
    k = r.random()
    if k < 0.55:
        w = r.choice(WORDS)
    elif k < 0.8:
        w = "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(1, 12)))
    else:
        w = "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                    for _ in range(r.randint(1, 10)))
    if r.random() < 0.1:
        w = w.capitalize()
    if r.random() < 0.05:
        w = w.upper()
    return w


def rand_codepoint(r, lo, hi):
    while True:
        c = r.randint(lo, hi)
        if not (0xD800 <= c <= 0xDFFF):
            return chr(c)


def rand_rare(r):
    ranges = [(0x80, 0x2FF), (0x300, 0x36F), (0x370, 0x3FF), (0x590, 0x6FF), (0x900, 0x97F),
              (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x22FF),
              (0x2500, 0x259F), (0x2800, 0x28FF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF),
              (0xFB00, 0xFFFD), (0x10000, 0x1FFFF), (0x20000, 0x2FFFF), (0xE0000, 0xE01EF),
              (0xF0000, 0x10FFFF), (0x01, 0x1F)]
    lo, hi = r.choice(ranges)
    return rand_codepoint(r, lo, hi)


def fragment(r):
    k = r.randrange(13)
    if k <= 3:
        return rand_word(r)
    if k == 4:
        return r.choice(PUNCT)
    if k == 5:
        return str(r.randint(0, 10 ** r.randint(1, 12))) + r.choice(["", ".", ",", "%", ".5"])
    if k == 6:
        return r.choice(SPACES)
    if k == 7:
        return "".join(r.choice(ACCENTED + "aeiou") for _ in range(r.randint(1, 8)))
    if k == 8:  # CJK ideographs, kana
        return "".join(rand_codepoint(r, *r.choice([(0x4E00, 0x9FFF), (0x3040, 0x30FF)]))
                       for _ in range(r.randint(1, 6)))
    if k == 9:  # emoji, sometimes with a modifier or a ZWJ sequence
        e = rand_codepoint(r, *r.choice([(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F),
                                         (0x1F900, 0x1F9FF), (0x2600, 0x26FF)]))
        if r.random() < 0.3:
            e += r.choice(["\U0001F3FB", "\u200d\u2640\ufe0f", "\ufe0f"])
        return e
    if k == 10:
        return "".join(rand_rare(r) for _ in range(r.randint(1, 4)))
    if k == 11:
        return "".join(r.choice(GREEK_CYRILLIC) for _ in range(r.randint(1, 9)))
    return r.choice(["x" * r.randint(2, 40), "ab" * r.randint(2, 20), "=" * r.randint(2, 30),
                     " " * r.randint(2, 33), "\n" * r.randint(2, 6), "." * r.randint(2, 12)])


def rand_text(r):
    parts = []
    for _ in range(r.randint(1, 30)):
        parts.append(fragment(r))
        if r.random() < 0.6:
            parts.append(" ")
    t = "".join(parts)
    if r.random() < 0.2:
        t = " " * r.randint(1, 4) + t
    if r.random() < 0.2:
        t = t + " " * r.randint(1, 4)
    return t


def invalid_utf8(r):
    """Bytes with malformed UTF-8 (SentencePiece turns each bad byte into U+FFFD)."""
    bad = [b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc3", b"\xe2\x96", b"\xf0\x9f\xa6",
           b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
           b"\xf8\x88\x80\x80\x80", b"\xef\xbf\xbd"]
    parts = []
    for _ in range(r.randint(1, 8)):
        parts.append(r.choice(bad) if r.random() < 0.5 else rand_text(r).encode("utf-8"))
    return b"".join(parts)


# SentencePiece piece types (ModelProto.SentencePiece.Type), as in rd_token_type.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def pb_varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def pb_field(num, value):
    """One protobuf field: int → varint, float → fixed32, bytes → length-delimited."""
    if isinstance(value, float):
        return pb_varint(num << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, int):
        return pb_varint(num << 3) + pb_varint(value)
    return pb_varint(num << 3 | 2) + pb_varint(len(value)) + value


def model_proto(pieces, byte_fallback, dummy_prefix):
    """ModelProto bytes: pieces (1), trainer_spec (2: BPE, byte_fallback), normalizer_spec
    (3: identity, add_dummy_prefix, no whitespace removal, escape whitespaces)."""
    out = b""
    for piece, score, kind in pieces:
        out += pb_field(1, pb_field(1, piece.encode()) + pb_field(2, score) + pb_field(3, kind))
    out += pb_field(2, pb_field(3, 2) + pb_field(4, len(pieces)) + pb_field(35, int(byte_fallback)))
    out += pb_field(3, pb_field(1, b"identity") + pb_field(3, int(dummy_prefix)) +
                    pb_field(4, 0) + pb_field(5, 1))
    return out


def load_proto(data):
    fd, path = tempfile.mkstemp(suffix=".model")
    try:
        os.write(fd, data)
        os.close(fd)
        return sentencepiece.SentencePieceProcessor(model_file=path)
    finally:
        os.unlink(path)


def random_vocab(r):
    alphabet = ["a", "b", "c", "\u2581", "é"]
    pieces = [("<unk>", 0.0, UNKNOWN), ("<s>", 0.0, CONTROL), ("</s>", 0.0, CONTROL)]
    byte_fallback = r.random() < 0.5
    if byte_fallback:
        pieces += [("<0x%02X>" % b, 0.0, BYTE) for b in range(256)]
    extra = {}
    for ch in alphabet[:4]:
        if r.random() < 0.9:
            extra[ch] = (float(r.randint(-5, 0)), NORMAL)
    for _ in range(r.randint(3, 25)):
        p = "".join(r.choice(alphabet) for _ in range(r.randint(2, 5)))
        extra[p] = (float(r.randint(-6, 0)),
                    r.choices([NORMAL, UNUSED, USER_DEFINED], [0.8, 0.15, 0.05])[0])
    pieces += [(p, score, kind) for p, (score, kind) in extra.items()]
    return pieces, byte_fallback, r.random() < 0.8


def write_vocabs(path, n_vocabs=150, n_texts=30):
    r = random.Random(SEED + 1)
    chars = ["a", "b", "c", "\u2581", "é", " ", "x", "e\u0301"]
    with open(path, "w", encoding="utf-8") as out:
        for _ in range(n_vocabs):
            pieces, byte_fallback, dummy = random_vocab(r)
            sp = load_proto(model_proto(pieces, byte_fallback, dummy))
            cases = []
            for _ in range(n_texts):
                t = "".join(r.choice(chars) for _ in range(r.randint(0, 14)))
                cases.append({"text": t, "ids": sp.encode(t)})
            out.write(json.dumps({"pieces": [p for p, _, _ in pieces],
                                  "scores": [s for _, s, _ in pieces],
                                  "types": [k for _, _, k in pieces],
                                  "add_dummy_prefix": int(dummy), "cases": cases},
                                 ensure_ascii=False) + "\n")


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    if sys.argv[1] == "--vocabs" and len(sys.argv) == 3:
        write_vocabs(sys.argv[2])
        return 0
    sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[2] if len(sys.argv) > 2
                                              else MODEL)
    r = random.Random(SEED)
    texts = [rand_text(r) for _ in range(N_TEXTS)]
    texts += ["".join(rand_text(r) for _ in range(200)),  # long texts, ~20-40 KB
              "".join(fragment(r) for _ in range(3000)),
              "y" * 5000, " " * 3000, "\n" * 500 + "end"]
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        for t in texts:
            t = t.replace("\0", "")
            out.write(json.dumps({"text": t, "ids": sp.encode(t)}, ensure_ascii=False) + "\n")
        for _ in range(40):
            b = invalid_utf8(r).replace(b"\0", b"")
            out.write(json.dumps({"text": None, "hex": b.hex(), "ids": sp.encode(b)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
