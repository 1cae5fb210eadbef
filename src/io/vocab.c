/* Vocabularies as plain data: copying from a spec, the checks a tokenizer relies on, and
 * the sorted index of the pieces BPE may produce (duplicates, Hugging Face merges). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"
#include "redit/vocab.h"

int rd_vocab_byte_piece(const char *s, size_t len, int upper_only) {
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

static int is_trail(unsigned char c) { return (c & 0xC0) == 0x80; }

static int valid_codepoint(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }

size_t rd_utf8_char_len(const unsigned char *s, size_t len) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (len >= 2 && (c & 0xE0) == 0xC0 && is_trail(s[1])) {
        uint32_t cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return cp >= 0x80 ? 2 : 0;
    }
    if (len >= 3 && (c & 0xF0) == 0xE0 && is_trail(s[1]) && is_trail(s[2])) {
        uint32_t cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) |
                      (s[2] & 0x3F);
        return cp >= 0x800 && valid_codepoint(cp) ? 3 : 0;
    }
    if (len >= 4 && (c & 0xF8) == 0xF0 && is_trail(s[1]) && is_trail(s[2]) &&
        is_trail(s[3])) {
        uint32_t cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return cp >= 0x10000 && valid_codepoint(cp) ? 4 : 0;
    }
    return 0;
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

const char *rd_vocab_piece(const rd_vocab *v, int id, size_t *len) {
    if (!v || !v->bytes || !v->off || id < 0 || id >= v->n) return NULL;
    if (len) *len = v->off[id + 1] - v->off[id];
    return v->bytes + v->off[id];
}

void rd_vocab_release(rd_vocab *v) {
    if (!v) return;
    free(v->bytes);
    free(v->off);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}

/* ---- the sorted index -------------------------------------------------------------- */

static int is_mergeable(int type) {
    return type == RD_TOKEN_NORMAL || type == RD_TOKEN_USER_DEFINED || type == RD_TOKEN_UNUSED;
}

static int entry_cmp_text(const char *s, size_t len, const rd_vocab_entry *e) {
    int c = memcmp(s, e->s, len < e->len ? len : e->len);
    if (c) return c;
    return len < e->len ? -1 : len > e->len;
}

static int entry_cmp(const void *pa, const void *pb) {
    const rd_vocab_entry *a = pa, *b = pb;
    int c = entry_cmp_text(a->s, a->len, b);
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

int rd_vocab_index_init(rd_vocab_index *ix, const rd_vocab *v) {
    memset(ix, 0, sizeof *ix);
    ix->e = malloc((size_t)(v->n > 0 ? v->n : 1) * sizeof *ix->e);
    if (!ix->e) return -1;
    for (int i = 0; i < v->n; i++) {
        size_t len = v->off[i + 1] - v->off[i];
        if (!is_mergeable(v->types[i]) || len == 0) continue;
        ix->e[ix->n++] = (rd_vocab_entry){.s = v->bytes + v->off[i], .len = len, .id = i};
        if (len > ix->max_len) ix->max_len = len;
    }
    qsort(ix->e, (size_t)ix->n, sizeof *ix->e, entry_cmp);
    return 0;
}

int rd_vocab_index_find(const rd_vocab_index *ix, const char *s, size_t len) {
    int lo = 0, hi = ix->n; /* first entry not below s */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (entry_cmp_text(s, len, &ix->e[mid]) > 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < ix->n && entry_cmp_text(s, len, &ix->e[lo]) == 0 ? ix->e[lo].id : -1;
}

void rd_vocab_index_free(rd_vocab_index *ix) {
    free(ix->e);
    memset(ix, 0, sizeof *ix);
}

/* ---- checks ------------------------------------------------------------------------ */

static int check_special(int id, int n, const char *name, const char *what, rd_error *err) {
    if (id < -1 || id >= n)
        return rd_error_set(err, "%s: %s id %d is out of range (vocabulary of %d pieces)",
                            what, name, id, n);
    return 0;
}

static int check_specials(int n, int bos, int eos, int unk, const char *what, rd_error *err) {
    return check_special(bos, n, "BOS", what, err) || check_special(eos, n, "EOS", what, err) ||
           check_special(unk, n, "UNK", what, err);
}

/* Piece i's text and score, and its type (an int: a spec's may be any value). */
static int check_piece(const rd_vocab *v, int i, int type, const char *what, rd_error *err) {
    if (!utf8_valid(v->bytes + v->off[i], v->off[i + 1] - v->off[i]))
        return rd_error_set(err, "%s: piece %d is not valid UTF-8", what, i);
    if (isnan(v->scores[i])) return rd_error_set(err, "%s: piece %d has a NaN score", what, i);
    if (type < RD_TOKEN_NORMAL || type > RD_TOKEN_BYTE)
        return rd_error_set(err, "%s: piece %d has unknown type %d", what, i, type);
    return 0;
}

/* BYTE pieces are <0xNN>, one per byte. */
static int check_byte_pieces(const rd_vocab *v, const char *what, rd_error *err) {
    int seen[256];
    for (int b = 0; b < 256; b++) seen[b] = -1;
    for (int i = 0; i < v->n; i++) {
        if (v->types[i] != RD_TOKEN_BYTE) continue;
        int b = rd_vocab_byte_piece(v->bytes + v->off[i], v->off[i + 1] - v->off[i], 0);
        if (b < 0)
            return rd_error_set(err, "%s: byte piece %d is not of the form <0xNN>", what, i);
        if (seen[b] >= 0)
            return rd_error_set(err, "%s: pieces %d and %d both stand for byte 0x%02X", what,
                                seen[b], i, b);
        seen[b] = i;
    }
    return 0;
}

/* No two mergeable pieces with one text. Reports the lowest id that repeats an earlier
 * piece, with the first piece of that text. */
static int check_duplicates(const rd_vocab *v, const char *what, rd_error *err) {
    rd_vocab_index ix;
    if (rd_vocab_index_init(&ix, v)) return rd_error_set(err, "%s: out of memory", what);
    int first = -1, second = -1;
    for (int k = 0; k + 1 < ix.n; k++) {
        const rd_vocab_entry *a = &ix.e[k], *b = &ix.e[k + 1];
        int group_start = k == 0 || entry_cmp_text(a->s, a->len, &ix.e[k - 1]) != 0;
        if (group_start && entry_cmp_text(a->s, a->len, b) == 0 && (second < 0 || b->id < second)) {
            first = a->id;
            second = b->id;
        }
    }
    rd_vocab_index_free(&ix);
    if (second < 0) return 0;
    size_t len = v->off[second + 1] - v->off[second];
    return rd_error_set(err, "%s: pieces %d and %d are the same text \"%.*s\"", what, first,
                        second, (int)(len > 64 ? 64 : len), v->bytes + v->off[second]);
}

int rd_vocab_check(const rd_vocab *v, const char *what, rd_error *err) {
    if (!what) what = "vocabulary";
    if (!v || v->n <= 0 || !v->bytes || !v->off || !v->scores || !v->types)
        return rd_error_set(err, "%s: the vocabulary is empty", what);
    if (check_specials(v->n, v->bos_id, v->eos_id, v->unk_id, what, err)) return -1;
    for (int i = 0; i < v->n; i++) {
        if (v->off[i + 1] < v->off[i])
            return rd_error_set(err, "%s: piece %d ends before it starts", what, i);
        if (check_piece(v, i, v->types[i], what, err)) return -1;
    }
    return check_byte_pieces(v, what, err) || check_duplicates(v, what, err) ? -1 : 0;
}

/* ---- from a spec ------------------------------------------------------------------- */

static int piece_is(const char *s, size_t len, const char *lit) {
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Type of piece i when the spec gives none: the special ids first, then the spelling. */
static rd_token_type infer_type(const rd_vocab_spec *spec, int i, const char *s, size_t len) {
    if (i == spec->unk_id) return RD_TOKEN_UNKNOWN;
    if (i == spec->bos_id || i == spec->eos_id) return RD_TOKEN_CONTROL;
    if (rd_vocab_byte_piece(s, len, 1) >= 0) return RD_TOKEN_BYTE;
    if (piece_is(s, len, "<unk>")) return RD_TOKEN_UNKNOWN;
    if (piece_is(s, len, "<s>") || piece_is(s, len, "</s>")) return RD_TOKEN_CONTROL;
    return RD_TOKEN_NORMAL;
}

static size_t spec_len(const rd_vocab_spec *spec, int i) {
    if (spec->lens) return spec->lens[i];
    return spec->pieces[i] ? strlen(spec->pieces[i]) : 0;
}

/* Copies the pieces into v->bytes and fills off, scores and types, checking each piece. */
static int copy_pieces(rd_vocab *v, const rd_vocab_spec *spec, const char *what,
                       rd_error *err) {
    size_t total = 0;
    for (int i = 0; i < v->n; i++) {
        size_t len = spec_len(spec, i);
        if (len && !spec->pieces[i])
            return rd_error_set(err, "%s: piece %d has no bytes", what, i);
        if (len > SIZE_MAX / 2 - total)
            return rd_error_set(err, "%s: pieces are too large", what);
        total += len;
    }
    v->bytes = malloc(total ? total : 1);
    if (!v->bytes) return rd_error_set(err, "%s: out of memory for the pieces", what);
    for (int i = 0; i < v->n; i++) {
        size_t len = spec_len(spec, i);
        const char *s = spec->pieces[i];
        if (len) memcpy(v->bytes + v->off[i], s, len);
        v->off[i + 1] = v->off[i] + len;
        v->scores[i] = spec->scores ? spec->scores[i] : 0.0f;
        int type = spec->types ? spec->types[i] : (int)infer_type(spec, i, s, len);
        if (check_piece(v, i, type, what, err)) return -1;
        v->types[i] = (uint8_t)type;
    }
    return 0;
}

/* First piece of type UNKNOWN, or -1. */
static int find_unknown(const rd_vocab *v) {
    for (int i = 0; i < v->n; i++)
        if (v->types[i] == RD_TOKEN_UNKNOWN) return i;
    return -1;
}

int rd_vocab_from_spec(rd_vocab *out, const rd_vocab_spec *spec, const char *what,
                       rd_error *err) {
    memset(out, 0, sizeof *out);
    if (!what) what = "tokenizer";
    if (!spec || spec->n_pieces <= 0 || !spec->pieces)
        return rd_error_set(err, "%s: the vocabulary is empty", what);
    int n = spec->n_pieces;
    if (check_specials(n, spec->bos_id, spec->eos_id, spec->unk_id, what, err)) return -1;
    rd_vocab v = {.n = n, .bos_id = spec->bos_id, .eos_id = spec->eos_id,
                  .unk_id = spec->unk_id, .add_dummy_prefix = spec->add_dummy_prefix != 0};
    v.off = calloc((size_t)n + 1, sizeof *v.off);
    v.scores = malloc((size_t)n * sizeof *v.scores);
    v.types = malloc((size_t)n);
    if (!v.off || !v.scores || !v.types) {
        rd_vocab_release(&v);
        return rd_error_set(err, "%s: out of memory for %d pieces", what, n);
    }
    if (copy_pieces(&v, spec, what, err) || check_byte_pieces(&v, what, err) ||
        check_duplicates(&v, what, err)) {
        rd_vocab_release(&v);
        return -1;
    }
    if (v.unk_id < 0) v.unk_id = find_unknown(&v);
    *out = v;
    return 0;
}
