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
 *      has them, else <unk> (a run of unknown symbols gives one <unk>). */
#include "tokenizer_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    char *norm;             /* (3 * text length + 3) normalized text, norm_len used */
    size_t norm_len;
    bpe_symbol *sym;        /* (norm_len + 1) symbols, n_sym used */
    int32_t n_sym;
    bpe_pair *heap;         /* (3 * n_sym + 1) binary max-heap of merge candidates */
    size_t heap_n;
    int32_t *rev_left;      /* (t->n_unused) left length of the latest pair that formed
                               each UNUSED piece, -1 when none; NULL without UNUSED pieces */
    int32_t *stack;         /* (2 * (t->max_merge_len + 1)) start/len pairs for splitting */
    int *ids;               /* (norm_len + 2) output */
    size_t n_ids;
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

static void put(bpe_work *w, const char *s, size_t n) {
    memcpy(w->norm + w->norm_len, s, n);
    w->norm_len += n;
}

/* Step 1. */
static void normalize(bpe_work *w, const char *text, size_t len) {
    if (len == 0) return;
    if (w->t->add_dummy_prefix) put(w, RD_SPACE_MARK, RD_SPACE_MARK_LEN);
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t n = rd_utf8_char_len(u + i, len - i);
        if (n == 0) {
            put(w, "\xEF\xBF\xBD", 3); /* U+FFFD for one malformed byte */
            i++;
        } else if (text[i] == ' ') {
            put(w, RD_SPACE_MARK, RD_SPACE_MARK_LEN);
            i++;
        } else {
            put(w, text + i, n);
            i += n;
        }
    }
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

/* The normalized text, the output and the splitting state, before normalizing. */
static int work_alloc(bpe_work *w, size_t len, rd_error *err) {
    const rd_tokenizer *t = w->t;
    w->norm = malloc(3 * len + RD_SPACE_MARK_LEN);
    w->stack = malloc(2 * (t->max_merge_len + 2) * sizeof *w->stack);
    if (t->n_unused > 0 && (w->rev_left = malloc((size_t)t->n_unused * sizeof *w->rev_left)))
        for (int i = 0; i < t->n_unused; i++) w->rev_left[i] = -1;
    if (!w->norm || !w->stack || (t->n_unused > 0 && !w->rev_left))
        return rd_error_set(err, "encode: out of memory for a text of %zu bytes", len);
    return 0;
}

/* Symbols and output (norm_len + 2 ids: every id covers at least one byte). The symbols and
 * the heap are zeroed (one pass, cheap beside the merging): clang's analyser loses track of
 * n_sym and heap_n across the calls and would otherwise report reads of entries that are
 * always written first. */
static int work_alloc_symbols(bpe_work *w, rd_error *err) {
    w->sym = calloc(w->norm_len + 1, sizeof *w->sym);
    w->ids = malloc((w->norm_len + 2) * sizeof *w->ids);
    if (!w->sym || !w->ids)
        return rd_error_set(err, "encode: out of memory for %zu symbols", w->norm_len);
    return 0;
}

/* Merge candidates: n_sym - 1 at first, at most two more per merge. */
static int work_alloc_heap(bpe_work *w, rd_error *err) {
    w->heap = calloc(3 * (size_t)w->n_sym + 1, sizeof *w->heap);
    if (!w->heap) return rd_error_set(err, "encode: out of memory for %d symbols", w->n_sym);
    return 0;
}

/* Runs steps 1-4 into w->ids. */
static int encode_work(bpe_work *w, const char *text, size_t len, int add_bos, int add_eos,
                       rd_error *err) {
    const rd_tokenizer *t = w->t;
    if (work_alloc(w, len, err) < 0) return -1;
    normalize(w, text, len);
    if (work_alloc_symbols(w, err) < 0) return -1;
    if (add_bos && t->bos >= 0) w->ids[w->n_ids++] = t->bos;
    split(w);
    if (work_alloc_heap(w, err) < 0) return -1;
    merge_all(w);
    for (int32_t i = w->n_sym ? 0 : -1; i >= 0; i = w->sym[i].next)
        if (emit_symbol(w, w->sym[i].start, w->sym[i].len, err) < 0) return -1;
    if (add_eos && t->eos >= 0) w->ids[w->n_ids++] = t->eos;
    return 0;
}

int rd_tokenizer_encode(const rd_tokenizer *t, const char *text, size_t len, int add_bos,
                        int add_eos, int **ids, size_t *n, rd_error *err) {
    *ids = NULL;
    *n = 0;
    if (len > (size_t)(INT32_MAX / 4))
        return rd_error_set(err, "encode: a text of %zu bytes is too long (limit %d)", len,
                            INT32_MAX / 4);
    bpe_work w = {.t = t};
    if (encode_work(&w, text, len, add_bos, add_eos, err) < 0) {
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
