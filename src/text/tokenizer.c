/* Tokenizer construction, accessors and decoding (encoding is in bpe_encode.c). */
#include "tokenizer_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Copies v's pieces, scores and types into t (v has passed rd_vocab_check). */
static int copy_vocab(rd_tokenizer *t, const rd_vocab *v, const char *what, rd_error *err) {
    const size_t total = v->off[v->n];
    t->arena = malloc(total ? total : 1);
    if (!t->arena) return rd_error_set(err, "%s: out of memory for the pieces", what);
    memcpy(t->arena, v->bytes, total);
    memcpy(t->off, v->off, ((size_t)v->n + 1) * sizeof *t->off);
    memcpy(t->scores, v->scores, (size_t)v->n * sizeof *t->scores);
    memcpy(t->types, v->types, (size_t)v->n);
    return 0;
}

/* Byte pieces into byte_id (rd_vocab_check made them <0xNN>, one per byte). */
static void index_byte_pieces(rd_tokenizer *t) {
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int i = 0; i < t->n; i++) {
        if (t->types[i] != RD_TOKEN_BYTE) continue;
        t->byte_id[rd_vocab_byte_piece(t->arena + t->off[i], t->off[i + 1] - t->off[i], 0)] = i;
        t->has_byte_pieces = 1;
    }
}

/* The merge map, the user-defined trie, the unused-piece slots and the cut pairs. */
static int index_pieces(rd_tokenizer *t, const char *what, rd_error *err) {
    if (rd_piece_map_init(&t->merge, t->n) < 0)
        return rd_error_set(err, "%s: out of memory for the piece map", what);
    for (int i = 0; i < t->n; i++) {
        size_t len = t->off[i + 1] - t->off[i];
        if (!rd_piece_mergeable(t->types[i]) || len == 0) continue;
        rd_piece_map_insert(&t->merge, t, i); /* no duplicate: rd_vocab_check */
        if (len > t->max_merge_len) t->max_merge_len = len;
        if (t->types[i] == RD_TOKEN_USER_DEFINED &&
            rd_trie_add(&t->user, t->arena + t->off[i], len) < 0)
            return rd_error_set(err, "%s: out of memory for the user-defined pieces", what);
        if (t->types[i] == RD_TOKEN_UNUSED) t->n_unused++;
    }
    if (t->n_unused == 0)
        return rd_pair_set_build(t) < 0 ? rd_error_set(err, "%s: out of memory", what) : 0;
    t->unused_slot = malloc((size_t)t->n * sizeof *t->unused_slot);
    if (!t->unused_slot) return rd_error_set(err, "%s: out of memory", what);
    int32_t k = 0;
    for (int i = 0; i < t->n; i++) t->unused_slot[i] = t->types[i] == RD_TOKEN_UNUSED ? k++ : -1;
    return 0;
}

rd_tokenizer *rd_tokenizer_from_vocab(const rd_vocab *v, const char *what, rd_error *err) {
    if (!what) what = "tokenizer";
    if (rd_vocab_check(v, what, err)) return NULL;
    const int n = v->n;
    rd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        rd_error_set(err, "%s: out of memory", what);
        return NULL;
    }
    t->n = n;
    t->off = malloc(((size_t)n + 1) * sizeof *t->off);
    t->scores = malloc((size_t)n * sizeof *t->scores);
    t->types = malloc((size_t)n);
    if (!t->off || !t->scores || !t->types) {
        rd_error_set(err, "%s: out of memory for %d pieces", what, n);
        rd_tokenizer_free(t);
        return NULL;
    }
    if (copy_vocab(t, v, what, err) || index_pieces(t, what, err)) {
        rd_tokenizer_free(t);
        return NULL;
    }
    index_byte_pieces(t);
    t->bos = v->bos_id;
    t->eos = v->eos_id;
    t->unk = v->unk_id;
    t->add_dummy_prefix = v->add_dummy_prefix != 0;
    return t;
}

rd_tokenizer *rd_tokenizer_new(const rd_vocab_spec *spec, const char *what, rd_error *err) {
    rd_vocab v;
    if (rd_vocab_from_spec(&v, spec, what, err)) return NULL;
    rd_tokenizer *t = rd_tokenizer_from_vocab(&v, what, err);
    rd_vocab_release(&v);
    return t;
}

int rd_tokenizer_export_vocab(const rd_tokenizer *t, rd_vocab *out, rd_error *err) {
    const size_t total = t->off[t->n];
    rd_vocab v = {.n = t->n, .bos_id = t->bos, .eos_id = t->eos, .unk_id = t->unk,
                  .add_dummy_prefix = t->add_dummy_prefix};
    v.bytes = malloc(total ? total : 1);
    v.off = malloc(((size_t)t->n + 1) * sizeof *v.off);
    v.scores = malloc((size_t)t->n * sizeof *v.scores);
    v.types = malloc((size_t)t->n);
    if (!v.bytes || !v.off || !v.scores || !v.types) {
        rd_vocab_release(&v);
        memset(out, 0, sizeof *out);
        return rd_error_set(err, "tokenizer: out of memory exporting %d pieces", t->n);
    }
    memcpy(v.bytes, t->arena, total);
    memcpy(v.off, t->off, ((size_t)t->n + 1) * sizeof *v.off);
    memcpy(v.scores, t->scores, (size_t)t->n * sizeof *v.scores);
    memcpy(v.types, t->types, (size_t)t->n);
    *out = v;
    return 0;
}

void rd_tokenizer_free(rd_tokenizer *t) {
    if (!t) return;
    rd_piece_map_free(&t->merge);
    rd_trie_free(&t->user);
    rd_pair_set_free(&t->cut);
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
        char b = (char)rd_vocab_byte_piece(s, len, 0);
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
