/* redit — safetensors files (io layer): an 8-byte little-endian header length, a JSON
 * header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the data.
 * Untrusted: the header is parsed with cJSON after checking its length against the file,
 * every tensor's offsets are checked against the data size and its shape and dtype, and
 * overlapping tensors are refused. */
#ifndef REDIT_SAFETENSORS_H
#define REDIT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "redit/dtype.h"
#include "redit/error.h"

#define RD_ST_MAX_DIMS 8

typedef struct rd_st_tensor {
    const char *name;   /* borrowed from the file object */
    const char *dtype;  /* as written: "F32", "F16", "BF16", "I64", ... */
    int has_rd_dtype;   /* 1 when dtype is one of rd_dtype (F32/F16/BF16) */
    rd_dtype type;
    int n_dims;
    int64_t shape[RD_ST_MAX_DIMS];
    uint64_t n_elems;
    const void *data;   /* into the mapping; not necessarily aligned for its type
                           (in practice it is: writers pad the header to 8 bytes) */
    size_t n_bytes;
} rd_st_tensor;

typedef struct rd_st_file rd_st_file;

/* Maps and parses a safetensors file. NULL with *err naming the file and the problem. */
rd_st_file *rd_st_open(const char *path, rd_error *err);
void rd_st_close(rd_st_file *f); /* NULL-safe */
/* Takes the file's read-only mapping (from mmap, *size bytes) away from f: rd_st_close will
 * no longer unmap it, and the tensors' data pointers stay valid until the caller munmaps it
 * (e.g. by handing it to rd_weights_adopt_map). NULL when already taken. */
void *rd_st_take_map(rd_st_file *f, size_t *size);
int rd_st_count(const rd_st_file *f);
const rd_st_tensor *rd_st_at(const rd_st_file *f, int i);
const rd_st_tensor *rd_st_find(const rd_st_file *f, const char *name); /* NULL if absent */
/* Metadata value for key, or NULL. Borrowed. */
const char *rd_st_metadata(const rd_st_file *f, const char *key);

/* Writing: collect tensors (data borrowed until rd_st_writer_commit) and metadata, then
 * write atomically. Tensors are written in the order added. */
typedef struct rd_st_writer rd_st_writer;
rd_st_writer *rd_st_writer_new(rd_error *err);
int rd_st_writer_add(rd_st_writer *w, const char *name, rd_dtype type, const int64_t *shape,
                     int n_dims, const void *data, rd_error *err);
int rd_st_writer_meta(rd_st_writer *w, const char *key, const char *value, rd_error *err);
int rd_st_writer_commit(rd_st_writer *w, const char *path, rd_error *err);
void rd_st_writer_free(rd_st_writer *w); /* NULL-safe */

#endif
