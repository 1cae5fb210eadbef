/* Declarations shared between the io layer's files only. */
#ifndef REDIT_IO_INTERNAL_H
#define REDIT_IO_INTERNAL_H

#include <stddef.h>

#include "redit/error.h"
#include "redit/vocab.h"

/* Checks the first `size` bytes of the file `path` as a llama2.c header: 1 when they are a
 * valid v0 header (every field in range and consistent); -1 when they are recognisably a
 * llama2.c header that is broken (a field out of range, an 'ak42' v1/v2 export), with *err
 * naming path and the problem; 0 when they do not look like llama2.c at all (err untouched). */
int rd_llama2c_probe(const void *data, size_t size, const char *path, rd_error *err);

/* The pieces of a vocabulary that BPE may produce (NORMAL, USER_DEFINED, UNUSED; not
 * empty), sorted by text then id: lookups by text for the duplicate check and for the
 * Hugging Face merge list. Borrows the vocabulary's bytes. */
typedef struct rd_vocab_entry {
    const char *s; /* len bytes, borrowed */
    size_t len;
    int id;
} rd_vocab_entry;

typedef struct rd_vocab_index {
    rd_vocab_entry *e; /* (n) */
    int n;
    size_t max_len; /* the longest entry */
} rd_vocab_index;

/* Builds the index of v (whose types must be filled). Returns 0 or -1 (out of memory). */
int rd_vocab_index_init(rd_vocab_index *ix, const rd_vocab *v);
/* The lowest id whose text is s[0..len), or -1. */
int rd_vocab_index_find(const rd_vocab_index *ix, const char *s, size_t len);
void rd_vocab_index_free(rd_vocab_index *ix); /* safe on a zeroed index */

#endif
