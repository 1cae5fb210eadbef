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

/* Open-addressing set of character pairs: two characters' UTF-8 bytes packed big-endian
 * into 32 bits each (rd_char_pair_key), RD_PAIR_EMPTY in an empty slot (no character packs
 * to 0xFFFFFFFF: 0xFF never starts one). */
#define RD_PAIR_EMPTY UINT64_MAX
typedef struct rd_pair_set {
    uint64_t *keys; /* (mask + 1) NULL when the set was not built */
    size_t mask;
} rd_pair_set;

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
    rd_pair_set cut;     /* every two adjacent characters inside a piece of `merge`: a text
                            may be encoded in parts cut between two characters not in it
                            (bpe_encode.c); keys NULL when texts are never cut (UNUSED pieces,
                            or a piece that is not valid UTF-8) */
};

/* Pieces BPE may produce (the keys of rd_tokenizer.merge): NORMAL, USER_DEFINED, UNUSED. */
static inline int rd_piece_mergeable(uint8_t type) {
    return type == RD_TOKEN_NORMAL || type == RD_TOKEN_USER_DEFINED || type == RD_TOKEN_UNUSED;
}

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

/* The key of the character pair a[0..na) b[0..nb) (1..4 bytes each). */
uint64_t rd_char_pair_key(const char *a, size_t na, const char *b, size_t nb);

/* Builds t->cut from the pieces of t->merge (see rd_tokenizer.cut); leaves it unbuilt when
 * t has UNUSED pieces or a mergeable piece that is not valid UTF-8. 0, or -1 when out of
 * memory. */
int rd_pair_set_build(rd_tokenizer *t);
void rd_pair_set_free(rd_pair_set *s);

/* 1 when key is in the set. */
int rd_pair_set_has(const rd_pair_set *s, uint64_t key);

/* A text given as two spans read as one: a[0..na) then b[0..nb) (b may be NULL when nb is
 * 0; a character may straddle them). */
typedef struct rd_text2 {
    const char *a, *b;
    size_t na, nb;
} rd_text2;

/* Encodes like rd_tokenizer_encode2, cutting the text into parts of at least chunk_bytes
 * normalized bytes where t->cut allows (chunk_bytes 0: at every such place, SIZE_MAX:
 * never). The result does not depend on chunk_bytes; rd_tokenizer_encode uses
 * RD_BPE_CHUNK_BYTES. */
#define RD_BPE_CHUNK_BYTES ((size_t)16 * 1024)
int rd_bpe_encode(const rd_tokenizer *t, const rd_text2 *x, int add_bos, int add_eos,
                  size_t chunk_bytes, int **ids, size_t *n, rd_error *err);

/* Adds s[0..len) (len > 0) to the trie. Returns 0 or -1 (out of memory). */
int rd_trie_add(rd_trie *tr, const char *s, size_t len);
void rd_trie_free(rd_trie *tr);

/* Byte length of the longest trie entry that prefixes s[0..len), 0 when none. */
size_t rd_trie_longest(const rd_trie *tr, const char *s, size_t len);

#endif
