/* redit — tokenizer internals shared by the files of src/text (not a public header).
 *
 * Pieces live back to back in one arena; two lookup structures sit on top of it: a hash
 * map from piece bytes to id for every piece BPE may produce (NORMAL, USER_DEFINED,
 * UNUSED — what SentencePiece calls its "pieces_" map), and a byte trie of the
 * USER_DEFINED pieces for the greedy longest match that splits the text before BPE. */
#ifndef REDIT_TOKENIZER_INTERNAL_H
#define REDIT_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "redit/tokenizer.h"

/* Open-addressing hash map piece bytes → id; the keys are the pieces of the arena. */
typedef struct rd_piece_map {
    int32_t *ids;     /* (cap) id in the slot, -1 when empty */
    uint32_t *hashes; /* (cap) low hash bits of the slot's key */
    size_t mask;      /* cap - 1, cap a power of two */
} rd_piece_map;

/* Byte trie of the USER_DEFINED pieces (empty when there are none). */
typedef struct rd_trie_node {
    int32_t child;   /* first child node, -1 when none */
    int32_t sibling; /* next child of the same parent, -1 when none */
    int32_t is_end;  /* 1 when the path from the root to here is a user-defined piece */
    uint8_t byte;    /* edge label from the parent */
} rd_trie_node;

typedef struct rd_trie {
    rd_trie_node *nodes; /* (n) node 0 is the root */
    int32_t n;
    size_t cap;
} rd_trie;

struct rd_tokenizer {
    int n;               /* number of pieces */
    char *arena;         /* (off[n]) every piece's bytes, back to back */
    size_t *off;         /* (n + 1) piece i is arena[off[i] .. off[i + 1]) */
    float *scores;       /* (n) */
    uint8_t *types;      /* (n) rd_token_type */
    int bos, eos, unk;   /* -1 when absent */
    int add_dummy_prefix;
    int has_byte_pieces; /* byte fallback on: at least one BYTE piece */
    int byte_id[256];    /* id of <0xNN>, -1 when absent */
    size_t max_merge_len; /* longest piece in `merge`: longer concatenations never match */
    rd_piece_map merge;  /* NORMAL, USER_DEFINED and UNUSED pieces → id */
    rd_trie user;        /* USER_DEFINED pieces */
    int n_unused;        /* number of UNUSED pieces */
    int32_t *unused_slot; /* (n) index of an UNUSED piece among them, -1 otherwise; NULL
                             when n_unused == 0 */
};

/* FNV-1a over len bytes. */
uint64_t rd_piece_hash(const char *s, size_t len);

/* Allocates an empty map for up to n keys. Returns 0 or -1 (out of memory). */
int rd_piece_map_init(rd_piece_map *m, int n);
void rd_piece_map_free(rd_piece_map *m);

/* Inserts piece id of t (its bytes must be in t->arena). Returns -1 when inserted, or the
 * id already stored under the same bytes (nothing inserted). */
int rd_piece_map_insert(rd_piece_map *m, const rd_tokenizer *t, int id);

/* The id stored under s[0..len), or -1. */
int rd_piece_map_find(const rd_piece_map *m, const rd_tokenizer *t, const char *s, size_t len);

/* Adds s[0..len) (len > 0) to the trie. Returns 0 or -1 (out of memory). */
int rd_trie_add(rd_trie *tr, const char *s, size_t len);
void rd_trie_free(rd_trie *tr);

/* Byte length of the longest trie entry that prefixes s[0..len), 0 when none. */
size_t rd_trie_longest(const rd_trie *tr, const char *s, size_t len);

#endif
