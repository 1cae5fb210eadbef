/* SentencePiece BPE encoding (the algorithm of SentencePiece 0.1.97's bpe_model.cc and
 * the unknown/byte handling of its processor), in O(n log n):
 *
 *   1. normalize: identity, except that each byte that does not start a well-formed UTF-8
 *      character becomes U+FFFD, ' ' becomes "▁", and "▁" is prepended (dummy prefix);
 *   2. split into symbols: the longest USER_DEFINED piece at each position (frozen), else
 *      one character; symbols form a doubly linked list;
 *   3. every adjacent pair whose concatenation is a NORMAL/USER_DEFINED/UNUSED piece goes
 *      into a max-heap ordered by (score desc, left position asc); pop, skip stale pairs,
 *      merge, and offer the two new neighbouring pairs;
 *   4. emit each final symbol: UNUSED pieces are split back into the two parts that formed
 *      them, unknown symbols become byte pieces (one per UTF-8 byte) when the vocabulary
 *      has them, else <unk> (a run of unknown symbols gives one <unk>).
 *
 * Memory: a long text is encoded in parts of about RD_BPE_CHUNK_BYTES normalized bytes, cut
 * only where the result provably cannot change (encode_work), so the working arrays (about
 * 75 bytes per normalized byte: symbols, heap) stay about 2 MB whatever the text's length;
 * beyond them only the output ids grow. */
#include "tokenizer_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"

typedef struct bpe_symbol {
    int32_t start;      /* byte offset in the normalized text */
    int32_t len;        /* bytes; 0 once merged into the left neighbour */
    int32_t prev, next; /* neighbours in the list, -1 at the ends */
    uint8_t frozen;     /* a user-defined piece: never merged */
} bpe_symbol;

typedef struct bpe_pair {
    float score;         /* score of the merged piece */
    int32_t left, right; /* symbol indices */
    int32_t size;        /* bytes of left + right when offered: stale when it changed */
} bpe_pair;

typedef struct bpe_work {
    const rd_tokenizer *t;
    char *norm;             /* (norm_cap) normalized text of the current part, norm_len used */
    size_t norm_len, norm_cap;
    bpe_symbol *sym;        /* (sym_cap >= norm_len + 1) symbols, n_sym used */
    size_t sym_cap;
    int32_t n_sym;
    bpe_pair *heap;         /* (heap_cap >= 3 * n_sym + 1) binary max-heap of merge candidates */
    size_t heap_cap, heap_n;
    int32_t *rev_left;      /* (t->n_unused) left length of the latest pair that formed
                               each UNUSED piece, -1 when none; NULL without UNUSED pieces */
    int32_t *stack;         /* (2 * (t->max_merge_len + 1)) start/len pairs for splitting */
    int *ids;               /* (ids_cap) output, n_ids used */
    size_t n_ids, ids_cap;
    int prev_unk;           /* the last id came from an unknown symbol (no byte pieces) */
} bpe_work;

static void work_free(bpe_work *w) {
    free(w->norm);
    free(w->sym);
    free(w->heap);
    free(w->rev_left);
    free(w->stack);
    free(w->ids);
}

/* Step 1 for one character: the normalized form of the character at text[0..len) (len > 0)
 * into *out (*out_len bytes); returns the input bytes it covers. */
static size_t normalize_char(const char *text, size_t len, const char **out, size_t *out_len) {
    size_t n = rd_utf8_char_len((const unsigned char *)text, len);
    if (n == 0) {
        *out = "\xEF\xBF\xBD"; /* U+FFFD for one malformed byte */
        *out_len = 3;
        return 1;
    }
    if (text[0] == ' ') {
        *out = RD_SPACE_MARK;
        *out_len = RD_SPACE_MARK_LEN;
        return 1;
    }
    *out = text;
    *out_len = n;
    return n;
}

/* Step 2. */
static void split(bpe_work *w) {
    const unsigned char *u = (const unsigned char *)w->norm;
    for (size_t i = 0; i < w->norm_len;) {
        size_t n = rd_trie_longest(&w->t->user, w->norm + i, w->norm_len - i);
        int frozen = n > 0;
        if (!frozen) n = rd_utf8_char_len(u + i, w->norm_len - i); /* > 0: text is valid */
        int32_t k = w->n_sym++;
        w->sym[k] = (bpe_symbol){.start = (int32_t)i, .len = (int32_t)n, .prev = k - 1,
                                 .next = -1, .frozen = (uint8_t)frozen};
        if (k > 0) w->sym[k - 1].next = k;
        i += n;
    }
}

/* Higher score first, then the leftmost. */
static int pair_before(const bpe_pair *a, const bpe_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(bpe_work *w, bpe_pair p) {
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = p;
}

static bpe_pair heap_pop(bpe_work *w) {
    bpe_pair top = w->heap[0];
    bpe_pair last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!pair_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

/* Offers the pair (l, r) when their concatenation is a piece. */
static void offer_pair(bpe_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || w->sym[l].frozen || w->sym[r].frozen) return;
    const rd_tokenizer *t = w->t;
    size_t size = (size_t)w->sym[l].len + (size_t)w->sym[r].len;
    if (size > t->max_merge_len) return;
    int id = rd_piece_map_find(&t->merge, t, w->norm + w->sym[l].start, size);
    if (id < 0) return;
    heap_push(w, (bpe_pair){.score = t->scores[id], .left = l, .right = r, .size = (int32_t)size});
    if (w->rev_left && t->unused_slot[id] >= 0) w->rev_left[t->unused_slot[id]] = w->sym[l].len;
}

/* Step 3. */
static void merge_all(bpe_work *w) {
    bpe_symbol *s = w->sym;
    for (int32_t i = 1; i < w->n_sym; i++) offer_pair(w, i - 1, i);
    while (w->heap_n > 0) {
        bpe_pair p = heap_pop(w);
        if (s[p.left].len == 0 || s[p.right].len == 0 || s[p.left].len + s[p.right].len != p.size)
            continue; /* stale: one side has changed since the pair was offered */
        s[p.left].len = p.size;
        s[p.left].next = s[p.right].next;
        if (s[p.right].next >= 0) s[s[p.right].next].prev = p.left;
        s[p.right].len = 0;
        offer_pair(w, s[p.left].prev, p.left);
        offer_pair(w, p.left, s[p.left].next);
    }
}

/* A symbol with no piece: its bytes as byte pieces, else one <unk> per run. */
static int emit_unknown(bpe_work *w, int32_t start, int32_t len, rd_error *err) {
    const rd_tokenizer *t = w->t;
    if (t->has_byte_pieces) {
        for (int32_t i = 0; i < len; i++) {
            int id = t->byte_id[(unsigned char)w->norm[start + i]];
            if (id < 0) id = t->unk;
            if (id < 0)
                return rd_error_set(err, "encode: no piece for byte 0x%02X and no <unk> piece",
                                    (unsigned char)w->norm[start + i]);
            w->ids[w->n_ids++] = id;
        }
        w->prev_unk = 0;
        return 0;
    }
    if (t->unk < 0)
        return rd_error_set(err, "encode: the vocabulary has no piece for \"%.*s\" and no <unk>",
                            (int)len, w->norm + start);
    if (!w->prev_unk) w->ids[w->n_ids++] = t->unk;
    w->prev_unk = 1;
    return 0;
}

/* Id of the mergeable piece norm[start .. start + len), or -1. */
static int find_piece(const bpe_work *w, int32_t start, int32_t len) {
    if ((size_t)len > w->t->max_merge_len) return -1;
    return rd_piece_map_find(&w->t->merge, w->t, w->norm + start, (size_t)len);
}

/* Step 4 for one final symbol. */
static int emit_symbol(bpe_work *w, int32_t start, int32_t len, rd_error *err) {
    const rd_tokenizer *t = w->t;
    size_t top = 0;
    w->stack[top++] = start;
    w->stack[top++] = len;
    while (top > 0) {
        len = w->stack[--top];
        start = w->stack[--top];
        int id = find_piece(w, start, len);
        int32_t k = id >= 0 && w->rev_left && t->unused_slot[id] >= 0
                        ? w->rev_left[t->unused_slot[id]]
                        : -1;
        if (k > 0 && k < len) { /* UNUSED: split into what formed it, left part first */
            w->stack[top++] = start + k;
            w->stack[top++] = len - k;
            w->stack[top++] = start;
            w->stack[top++] = k;
        } else if (id >= 0) {
            w->ids[w->n_ids++] = id;
            w->prev_unk = 0;
        } else if (emit_unknown(w, start, len, err) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The splitting state, before the first part. */
static int work_alloc(bpe_work *w, size_t len, rd_error *err) {
    const rd_tokenizer *t = w->t;
    w->stack = malloc(2 * (t->max_merge_len + 2) * sizeof *w->stack);
    if (t->n_unused > 0 && (w->rev_left = malloc((size_t)t->n_unused * sizeof *w->rev_left)))
        for (int i = 0; i < t->n_unused; i++) w->rev_left[i] = -1;
    if (!w->stack || (t->n_unused > 0 && !w->rev_left))
        return rd_error_set(err, "encode: out of memory for a text of %zu bytes", len);
    return 0;
}

/* Symbols, heap and room for the part's ids (norm_len + 1 more: every id covers at least one
 * byte, and EOS). The symbols and the heap are zeroed (one pass, cheap beside the merging):
 * clang's analyser loses track of n_sym and heap_n across the calls and would otherwise
 * report reads of entries that are always written first. */
static int part_alloc(bpe_work *w, rd_error *err) {
    size_t n = w->norm_len + 1;
    if (rd_array_reserve(&w->sym, &w->sym_cap, n, sizeof *w->sym) < 0 ||
        rd_array_reserve(&w->heap, &w->heap_cap, 3 * n + 1, sizeof *w->heap) < 0 ||
        rd_array_reserve(&w->ids, &w->ids_cap, w->n_ids + n + 1, sizeof *w->ids) < 0)
        return rd_error_set(err, "encode: out of memory for %zu symbols", w->norm_len);
    memset(w->sym, 0, n * sizeof *w->sym);
    memset(w->heap, 0, (3 * n + 1) * sizeof *w->heap);
    return 0;
}

/* Steps 2-4 for the normalized part in w->norm, appending to w->ids; empties the part. */
static int encode_part(bpe_work *w, rd_error *err) {
    if (part_alloc(w, err) < 0) return -1;
    w->n_sym = 0;
    w->heap_n = 0;
    split(w);
    merge_all(w);
    for (int32_t i = w->n_sym ? 0 : -1; i >= 0; i = w->sym[i].next)
        if (emit_symbol(w, w->sym[i].start, w->sym[i].len, err) < 0) return -1;
    w->norm_len = 0;
    return 0;
}

/* Appends s[0..n) (n <= 4) to the part. */
static int put(bpe_work *w, const char *s, size_t n, rd_error *err) {
    if (w->norm_len + n > w->norm_cap &&
        rd_array_reserve(&w->norm, &w->norm_cap, w->norm_len + n, 1) < 0)
        return rd_error_set(err, "encode: out of memory for a part of %zu bytes", w->norm_len);
    memcpy(w->norm + w->norm_len, s, n);
    w->norm_len += n;
    return 0;
}

/* Normalizes the text (x->a then x->b, read as one) character by character into parts and encodes each part once it
 * holds chunk_bytes and the next character may start a new one: the place between its last
 * character and the next is not inside any piece (t->cut; the argument is at
 * rd_pair_set_build). Symbols never span such a place, merges on either side never see each
 * other, and the merge order within a part (score, then leftmost) is the order within the
 * whole text, so the ids are those of one pass. Cutting needs no UNUSED pieces: the split
 * of an UNUSED piece depends on the latest offer in the whole text (rev_left). A text with
 * no such place (a run of one letter whose doubles are pieces) is one part. */
static int encode_work(bpe_work *w, const rd_text2 *x, int add_bos, int add_eos,
                       size_t chunk_bytes, rd_error *err) {
    const rd_tokenizer *t = w->t;
    const size_t len = x->na + x->nb;
    if (work_alloc(w, len, err) < 0) return -1;
    if (rd_array_reserve(&w->ids, &w->ids_cap, 2, sizeof *w->ids) < 0)
        return rd_error_set(err, "encode: out of memory");
    if (add_bos && t->bos >= 0) w->ids[w->n_ids++] = t->bos;
    char last[4]; /* the part's last character, last_len bytes (0: none yet) */
    size_t last_len = 0;
    if (len > 0 && t->add_dummy_prefix) {
        if (put(w, RD_SPACE_MARK, RD_SPACE_MARK_LEN, err) < 0) return -1;
        memcpy(last, RD_SPACE_MARK, RD_SPACE_MARK_LEN);
        last_len = RD_SPACE_MARK_LEN;
    }
    for (size_t i = 0; i < len;) {
        const char *c;
        size_t c_len;
        char tmp[8];
        if (i >= x->na) { /* in b */
            i += normalize_char(x->b + (i - x->na), len - i, &c, &c_len);
        } else if (x->na - i >= 4 || x->nb == 0) { /* in a, the character whole in it */
            i += normalize_char(x->a + i, x->na - i, &c, &c_len);
        } else { /* a's last bytes, with what of b could end their character */
            size_t ka = x->na - i, kb = x->nb < 4 - ka ? x->nb : 4 - ka;
            memcpy(tmp, x->a + i, ka);
            memcpy(tmp + ka, x->b, kb);
            i += normalize_char(tmp, ka + kb, &c, &c_len);
        }
        if (w->norm_len >= chunk_bytes && t->cut.keys && last_len &&
            !rd_pair_set_has(&t->cut, rd_char_pair_key(last, last_len, c, c_len)) &&
            encode_part(w, err) < 0)
            return -1;
        if (put(w, c, c_len, err) < 0) return -1;
        memcpy(last, c, c_len);
        last_len = c_len;
    }
    if (encode_part(w, err) < 0) return -1;
    if (add_eos && t->eos >= 0) w->ids[w->n_ids++] = t->eos;
    return 0;
}

int rd_bpe_encode(const rd_tokenizer *t, const rd_text2 *x, int add_bos, int add_eos,
                  size_t chunk_bytes, int **ids, size_t *n, rd_error *err) {
    *ids = NULL;
    *n = 0;
    if (x->na > (size_t)(INT32_MAX / 4) || x->nb > (size_t)(INT32_MAX / 4) - x->na)
        return rd_error_set(err, "encode: a text of %zu bytes is too long (limit %d)",
                            x->na + x->nb, INT32_MAX / 4);
    bpe_work w = {.t = t};
    if (encode_work(&w, x, add_bos, add_eos, chunk_bytes, err) < 0) {
        work_free(&w);
        return -1;
    }
    int *shrunk = realloc(w.ids, (w.n_ids ? w.n_ids : 1) * sizeof *w.ids);
    *ids = shrunk ? shrunk : w.ids;
    *n = w.n_ids;
    w.ids = NULL;
    work_free(&w);
    return 0;
}

int rd_tokenizer_encode(const rd_tokenizer *t, const char *text, size_t len, int add_bos,
                        int add_eos, int **ids, size_t *n, rd_error *err) {
    rd_text2 x = {.a = text, .na = len};
    return rd_bpe_encode(t, &x, add_bos, add_eos, RD_BPE_CHUNK_BYTES, ids, n, err);
}

int rd_tokenizer_encode2(const rd_tokenizer *t, const char *a, size_t na, const char *b,
                         size_t nb, int add_bos, int add_eos, int **ids, size_t *n,
                         rd_error *err) {
    rd_text2 x = {.a = a, .na = na, .b = b, .nb = nb};
    return rd_bpe_encode(t, &x, add_bos, add_eos, RD_BPE_CHUNK_BYTES, ids, n, err);
}
