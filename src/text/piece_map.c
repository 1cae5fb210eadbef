/* Lookup structures of the tokenizer: piece hash map and user-defined trie. */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"
#include "redit/util.h"

uint64_t rd_piece_hash(const char *s, size_t len) { return rd_fnv1a(RD_FNV1A_INIT, s, len); }

int rd_piece_map_init(rd_piece_map *m, int n) {
    size_t cap = 16;
    while (cap < 2 * (size_t)(n > 0 ? n : 1)) cap *= 2;
    m->ids = malloc(cap * sizeof *m->ids);
    m->hashes = malloc(cap * sizeof *m->hashes);
    m->mask = cap - 1;
    if (!m->ids || !m->hashes) {
        rd_piece_map_free(m);
        return -1;
    }
    for (size_t i = 0; i < cap; i++) m->ids[i] = -1;
    return 0;
}

void rd_piece_map_free(rd_piece_map *m) {
    free(m->ids);
    free(m->hashes);
    m->ids = NULL;
    m->hashes = NULL;
}

/* Slot holding s[0..len), or the empty slot where it would go. */
static size_t map_slot(const rd_piece_map *m, const rd_tokenizer *t, const char *s,
                       size_t len) {
    uint64_t h = rd_piece_hash(s, len);
    size_t i = (size_t)h & m->mask;
    for (;; i = (i + 1) & m->mask) {
        int32_t id = m->ids[i];
        if (id < 0) return i;
        size_t plen = t->off[id + 1] - t->off[id];
        if (m->hashes[i] == (uint32_t)h && plen == len &&
            memcmp(t->arena + t->off[id], s, len) == 0)
            return i;
    }
}

int rd_piece_map_insert(rd_piece_map *m, const rd_tokenizer *t, int id) {
    const char *s = t->arena + t->off[id];
    size_t len = t->off[id + 1] - t->off[id];
    size_t i = map_slot(m, t, s, len);
    if (m->ids[i] >= 0) return m->ids[i];
    m->ids[i] = id;
    m->hashes[i] = (uint32_t)rd_piece_hash(s, len);
    return -1;
}

int rd_piece_map_find(const rd_piece_map *m, const rd_tokenizer *t, const char *s,
                      size_t len) {
    return m->ids[map_slot(m, t, s, len)];
}

static int32_t trie_new_node(rd_trie *tr, uint8_t byte) {
    if (tr->n == INT32_MAX ||
        rd_array_reserve(&tr->nodes, &tr->cap, (size_t)tr->n + 1, sizeof *tr->nodes))
        return -1;
    tr->nodes[tr->n] = (rd_trie_node){.child = -1, .sibling = -1, .is_end = 0, .byte = byte};
    return tr->n++;
}

/* Child of node with edge byte b, or -1. */
static int32_t trie_child(const rd_trie *tr, int32_t node, uint8_t b) {
    for (int32_t c = tr->nodes[node].child; c >= 0; c = tr->nodes[c].sibling)
        if (tr->nodes[c].byte == b) return c;
    return -1;
}

int rd_trie_add(rd_trie *tr, const char *s, size_t len) {
    if (tr->n == 0 && trie_new_node(tr, 0) < 0) return -1;
    int32_t node = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = trie_child(tr, node, b);
        if (c < 0) {
            if ((c = trie_new_node(tr, b)) < 0) return -1;
            tr->nodes[c].sibling = tr->nodes[node].child;
            tr->nodes[node].child = c;
        }
        node = c;
    }
    tr->nodes[node].is_end = 1;
    return 0;
}

void rd_trie_free(rd_trie *tr) {
    free(tr->nodes);
    tr->nodes = NULL;
    tr->n = tr->cap = 0;
}

size_t rd_trie_longest(const rd_trie *tr, const char *s, size_t len) {
    if (tr->n == 0) return 0;
    size_t best = 0;
    int32_t node = 0;
    for (size_t i = 0; i < len; i++) {
        node = trie_child(tr, node, (uint8_t)s[i]);
        if (node < 0) break;
        if (tr->nodes[node].is_end) best = i + 1;
    }
    return best;
}

uint64_t rd_char_pair_key(const char *a, size_t na, const char *b, size_t nb) {
    uint32_t ka = 0, kb = 0;
    for (size_t i = 0; i < na; i++) ka = ka << 8 | (unsigned char)a[i];
    for (size_t i = 0; i < nb; i++) kb = kb << 8 | (unsigned char)b[i];
    return (uint64_t)ka << 32 | kb;
}

static size_t pair_slot(const rd_pair_set *s, uint64_t key) {
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & s->mask;
    while (s->keys[i] != RD_PAIR_EMPTY && s->keys[i] != key) i = (i + 1) & s->mask;
    return i;
}

int rd_pair_set_has(const rd_pair_set *s, uint64_t key) {
    return s->keys && s->keys[pair_slot(s, key)] == key;
}

void rd_pair_set_free(rd_pair_set *s) {
    free(s->keys);
    s->keys = NULL;
    s->mask = 0;
}

/* Number of characters of piece i when it is valid UTF-8, else 0. */
static size_t piece_chars(const rd_tokenizer *t, int i) {
    const unsigned char *u = (const unsigned char *)t->arena + t->off[i];
    size_t len = t->off[i + 1] - t->off[i], k = 0;
    for (size_t j = 0; j < len; k++) {
        size_t c = rd_utf8_char_len(u + j, len - j);
        if (c == 0) return 0;
        j += c;
    }
    return k;
}

/* Why the cut is exact (bpe_encode.c relies on it): every symbol BPE ever forms, and every
 * user-defined match, is a piece of `merge` made of whole characters. A symbol that spans
 * the place between characters a and b holds "ab", so when no piece holds it no symbol spans
 * it, and the symbols on either side evolve without seeing each other. */
/* Inserts key into s (n keys held, counted), doubling the table past half full. */
static int pair_set_add(rd_pair_set *s, size_t *n, uint64_t key) {
    if (2 * (*n + 1) > s->mask + 1) {
        const size_t cap = 2 * (s->mask + 1), old_mask = s->mask;
        uint64_t *old = s->keys, *keys = malloc(cap * sizeof *keys);
        if (!keys) return -1;
        for (size_t i = 0; i < cap; i++) keys[i] = RD_PAIR_EMPTY;
        s->keys = keys;
        s->mask = cap - 1;
        for (size_t i = 0; i <= old_mask; i++)
            if (old[i] != RD_PAIR_EMPTY) s->keys[pair_slot(s, old[i])] = old[i];
        free(old);
    }
    size_t i = pair_slot(s, key);
    if (s->keys[i] == RD_PAIR_EMPTY) {
        s->keys[i] = key;
        ++*n;
    }
    return 0;
}

int rd_pair_set_build(rd_tokenizer *t) {
    rd_pair_set_free(&t->cut);
    if (t->n_unused > 0) return 0;
    for (int i = 0; i < t->n; i++)
        if (rd_piece_mergeable(t->types[i]) && t->off[i + 1] > t->off[i] && piece_chars(t, i) == 0)
            return 0; /* not valid UTF-8: it could match across characters */
    size_t cap = 1024, n = 0;
    t->cut.keys = malloc(cap * sizeof *t->cut.keys);
    if (!t->cut.keys) return -1;
    t->cut.mask = cap - 1;
    for (size_t i = 0; i < cap; i++) t->cut.keys[i] = RD_PAIR_EMPTY;
    for (int i = 0; i < t->n; i++) {
        const char *s = t->arena + t->off[i];
        size_t len = t->off[i + 1] - t->off[i];
        if (!rd_piece_mergeable(t->types[i]) || len == 0) continue;
        const unsigned char *u = (const unsigned char *)s;
        size_t a = rd_utf8_char_len(u, len);
        for (size_t j = a; j < len;) {
            size_t b = rd_utf8_char_len(u + j, len - j);
            if (pair_set_add(&t->cut, &n, rd_char_pair_key(s + j - a, a, s + j, b)) < 0) {
                rd_pair_set_free(&t->cut);
                return -1;
            }
            j += b;
            a = b;
        }
    }
    return 0;
}
