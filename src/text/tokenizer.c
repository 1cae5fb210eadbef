/* Tokenizer construction, accessors and decoding (encoding is in bpe_encode.c). */
#include "tokenizer_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Value of a "<0xNN>" piece (two hex digits, upper case only when upper_only: the way
 * SentencePiece spells them), or -1 when s is not one. */
static int parse_byte_piece(const char *s, size_t len, int upper_only) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' && !upper_only ? c - 'a' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int piece_is(const char *s, size_t len, const char *lit) {
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Type of piece i when the spec gives none: the special ids first, then the spelling. */
static rd_token_type infer_type(const rd_vocab_spec *spec, int i, const char *s, size_t len) {
    if (i == spec->unk_id) return RD_TOKEN_UNKNOWN;
    if (i == spec->bos_id || i == spec->eos_id) return RD_TOKEN_CONTROL;
    if (parse_byte_piece(s, len, 1) >= 0) return RD_TOKEN_BYTE;
    if (piece_is(s, len, "<unk>")) return RD_TOKEN_UNKNOWN;
    if (piece_is(s, len, "<s>") || piece_is(s, len, "</s>")) return RD_TOKEN_CONTROL;
    return RD_TOKEN_NORMAL;
}

static size_t spec_len(const rd_vocab_spec *spec, int i) {
    if (spec->lens) return spec->lens[i];
    return spec->pieces[i] ? strlen(spec->pieces[i]) : 0;
}

static int utf8_valid(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = rd_utf8_char_len(u + i, len - i);
        if (!n) return 0;
        i += n;
    }
    return 1;
}

static int check_special(int id, int n, const char *name, const char *what, rd_error *err) {
    if (id < -1 || id >= n)
        return rd_error_set(err, "%s: %s id %d is out of range (vocabulary of %d pieces)",
                            what, name, id, n);
    return 0;
}

/* Copies the pieces into the arena and fills off, scores and types. */
static int copy_pieces(rd_tokenizer *t, const rd_vocab_spec *spec, const char *what,
                       rd_error *err) {
    size_t total = 0;
    for (int i = 0; i < t->n; i++) {
        size_t len = spec_len(spec, i);
        if (len && !spec->pieces[i])
            return rd_error_set(err, "%s: piece %d has no bytes", what, i);
        if (len > SIZE_MAX / 2 - total)
            return rd_error_set(err, "%s: pieces are too large", what);
        total += len;
    }
    t->arena = malloc(total ? total : 1);
    if (!t->arena) return rd_error_set(err, "%s: out of memory for the pieces", what);
    for (int i = 0; i < t->n; i++) {
        size_t len = spec_len(spec, i);
        const char *s = spec->pieces[i];
        if (len) memcpy(t->arena + t->off[i], s, len);
        t->off[i + 1] = t->off[i] + len;
        if (!utf8_valid(s, len))
            return rd_error_set(err, "%s: piece %d is not valid UTF-8", what, i);
        float score = spec->scores ? spec->scores[i] : 0.0f;
        if (isnan(score)) return rd_error_set(err, "%s: piece %d has a NaN score", what, i);
        t->scores[i] = score;
        int type = spec->types ? spec->types[i] : (int)infer_type(spec, i, s, len);
        if (type < RD_TOKEN_NORMAL || type > RD_TOKEN_BYTE)
            return rd_error_set(err, "%s: piece %d has unknown type %d", what, i, type);
        t->types[i] = (uint8_t)type;
    }
    return 0;
}

/* Byte pieces into byte_id; duplicates and malformed byte pieces are errors. */
static int index_byte_pieces(rd_tokenizer *t, const char *what, rd_error *err) {
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int i = 0; i < t->n; i++) {
        if (t->types[i] != RD_TOKEN_BYTE) continue;
        int b = parse_byte_piece(t->arena + t->off[i], t->off[i + 1] - t->off[i], 0);
        if (b < 0)
            return rd_error_set(err, "%s: byte piece %d is not of the form <0xNN>", what, i);
        if (t->byte_id[b] >= 0)
            return rd_error_set(err, "%s: pieces %d and %d both stand for byte 0x%02X", what,
                                t->byte_id[b], i, b);
        t->byte_id[b] = i;
        t->has_byte_pieces = 1;
    }
    return 0;
}

static int is_mergeable(uint8_t type) {
    return type == RD_TOKEN_NORMAL || type == RD_TOKEN_USER_DEFINED || type == RD_TOKEN_UNUSED;
}

/* The merge map, the user-defined trie and the unused-piece slots. */
static int index_pieces(rd_tokenizer *t, const char *what, rd_error *err) {
    if (rd_piece_map_init(&t->merge, t->n) < 0)
        return rd_error_set(err, "%s: out of memory for the piece map", what);
    for (int i = 0; i < t->n; i++) {
        size_t len = t->off[i + 1] - t->off[i];
        if (!is_mergeable(t->types[i]) || len == 0) continue;
        int dup = rd_piece_map_insert(&t->merge, t, i);
        if (dup >= 0)
            return rd_error_set(err, "%s: pieces %d and %d are the same text \"%.*s\"", what,
                                dup, i, (int)(len > 64 ? 64 : len), t->arena + t->off[i]);
        if (len > t->max_merge_len) t->max_merge_len = len;
        if (t->types[i] == RD_TOKEN_USER_DEFINED &&
            rd_trie_add(&t->user, t->arena + t->off[i], len) < 0)
            return rd_error_set(err, "%s: out of memory for the user-defined pieces", what);
        if (t->types[i] == RD_TOKEN_UNUSED) t->n_unused++;
    }
    if (t->n_unused == 0) return 0;
    t->unused_slot = malloc((size_t)t->n * sizeof *t->unused_slot);
    if (!t->unused_slot) return rd_error_set(err, "%s: out of memory", what);
    int32_t k = 0;
    for (int i = 0; i < t->n; i++) t->unused_slot[i] = t->types[i] == RD_TOKEN_UNUSED ? k++ : -1;
    return 0;
}

/* First piece of type UNKNOWN, or -1. */
static int find_unknown(const rd_tokenizer *t) {
    for (int i = 0; i < t->n; i++)
        if (t->types[i] == RD_TOKEN_UNKNOWN) return i;
    return -1;
}

/* Beyond the header: with spec->types NULL the pieces at unk_id / bos_id / eos_id are typed
 * UNKNOWN / CONTROL whatever their spelling (so "<|bos|>"-style specials are never produced
 * from text), and with unk_id -1 the first UNKNOWN piece, if any, serves as <unk>.
 * Duplicate texts are errors among the pieces BPE can produce (NORMAL, USER_DEFINED,
 * UNUSED) and among byte pieces; repeated CONTROL/UNKNOWN spellings are allowed. */
rd_tokenizer *rd_tokenizer_new(const rd_vocab_spec *spec, const char *what, rd_error *err) {
    if (!what) what = "tokenizer";
    if (!spec || spec->n_pieces <= 0 || !spec->pieces) {
        rd_error_set(err, "%s: the vocabulary is empty", what);
        return NULL;
    }
    int n = spec->n_pieces;
    if (check_special(spec->bos_id, n, "BOS", what, err) ||
        check_special(spec->eos_id, n, "EOS", what, err) ||
        check_special(spec->unk_id, n, "UNK", what, err))
        return NULL;
    rd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        rd_error_set(err, "%s: out of memory", what);
        return NULL;
    }
    t->n = n;
    t->off = calloc((size_t)n + 1, sizeof *t->off);
    t->scores = malloc((size_t)n * sizeof *t->scores);
    t->types = malloc((size_t)n);
    if (!t->off || !t->scores || !t->types) {
        rd_error_set(err, "%s: out of memory for %d pieces", what, n);
        rd_tokenizer_free(t);
        return NULL;
    }
    if (copy_pieces(t, spec, what, err) || index_byte_pieces(t, what, err) ||
        index_pieces(t, what, err)) {
        rd_tokenizer_free(t);
        return NULL;
    }
    t->bos = spec->bos_id;
    t->eos = spec->eos_id;
    t->unk = spec->unk_id >= 0 ? spec->unk_id : find_unknown(t);
    t->add_dummy_prefix = spec->add_dummy_prefix != 0;
    return t;
}

void rd_tokenizer_free(rd_tokenizer *t) {
    if (!t) return;
    rd_piece_map_free(&t->merge);
    rd_trie_free(&t->user);
    free(t->unused_slot);
    free(t->arena);
    free(t->off);
    free(t->scores);
    free(t->types);
    free(t);
}

int rd_tokenizer_vocab_size(const rd_tokenizer *t) { return t->n; }
int rd_tokenizer_bos(const rd_tokenizer *t) { return t->bos; }
int rd_tokenizer_eos(const rd_tokenizer *t) { return t->eos; }
int rd_tokenizer_unk(const rd_tokenizer *t) { return t->unk; }
int rd_tokenizer_adds_dummy_prefix(const rd_tokenizer *t) { return t->add_dummy_prefix; }

float rd_tokenizer_score(const rd_tokenizer *t, int id) {
    return id >= 0 && id < t->n ? t->scores[id] : 0.0f;
}

rd_token_type rd_tokenizer_type(const rd_tokenizer *t, int id) {
    return id >= 0 && id < t->n ? (rd_token_type)t->types[id] : RD_TOKEN_UNUSED;
}

const char *rd_tokenizer_piece(const rd_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n) return NULL;
    if (len) *len = t->off[id + 1] - t->off[id];
    return t->arena + t->off[id];
}

/* Appends n bytes at *pos, writing only what fits below cap. */
static void put(char *buf, size_t cap, size_t *pos, const char *s, size_t n) {
    if (*pos < cap) memcpy(buf + *pos, s, n < cap - *pos ? n : cap - *pos);
    *pos += n;
}

size_t rd_tokenizer_decode_piece(const rd_tokenizer *t, int prev_id, int id, char *buf,
                                 size_t cap) {
    if (id < 0 || id >= t->n) return 0;
    uint8_t type = t->types[id];
    if (type == RD_TOKEN_CONTROL || type == RD_TOKEN_UNKNOWN) return 0;
    const char *s = t->arena + t->off[id];
    size_t len = t->off[id + 1] - t->off[id];
    size_t pos = 0;
    if (type == RD_TOKEN_BYTE) {
        char b = (char)parse_byte_piece(s, len, 0);
        put(buf, cap, &pos, &b, 1);
        return pos;
    }
    size_t i = 0;
    int first = prev_id < 0 || (prev_id == t->bos && t->bos >= 0);
    if (first && t->add_dummy_prefix && len >= RD_SPACE_MARK_LEN &&
        memcmp(s, RD_SPACE_MARK, RD_SPACE_MARK_LEN) == 0)
        i = RD_SPACE_MARK_LEN;
    while (i < len) {
        if (len - i >= RD_SPACE_MARK_LEN && memcmp(s + i, RD_SPACE_MARK, RD_SPACE_MARK_LEN) == 0) {
            put(buf, cap, &pos, " ", 1);
            i += RD_SPACE_MARK_LEN;
            continue;
        }
        size_t j = i + 1;
        while (j < len && s[j] != RD_SPACE_MARK[0]) j++;
        put(buf, cap, &pos, s + i, j - i);
        i = j;
    }
    return pos;
}

char *rd_tokenizer_decode(const rd_tokenizer *t, const int *ids, size_t n, rd_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n) {
            rd_error_set(err, "decode: token %zu has id %d, outside the vocabulary of %d", i,
                         ids[i], t->n);
            return NULL;
        }
        total += rd_tokenizer_decode_piece(t, i ? ids[i - 1] : -1, ids[i], NULL, 0);
    }
    char *out = malloc(total + 1);
    if (!out) {
        rd_error_set(err, "decode: out of memory for %zu bytes", total + 1);
        return NULL;
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += rd_tokenizer_decode_piece(t, i ? ids[i - 1] : -1, ids[i], out + pos, total - pos);
    out[pos] = '\0';
    return out;
}
