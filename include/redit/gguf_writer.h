/* redit — writing a GGUF file of named tensors and metadata (io layer).
 *
 * The generic writer: the caller lists key/values and tensors (data borrowed until the
 * commit), and rd_gguf_writer_commit writes GGUF v3 atomically (temp file + rename): "GGUF",
 * version 3, the counts, the key/values and tensor infos in the order given, padding, then
 * each tensor's bytes padded with zeros to the 32-byte alignment (GGUF's default; a
 * general.alignment key, when the caller writes one, must say 32). Models are written by
 * rd_gguf_write (redit/model_file.h). */
#ifndef REDIT_GGUF_WRITER_H
#define REDIT_GGUF_WRITER_H

#include <stdint.h>

#include "redit/dtype.h"
#include "redit/error.h"

#define RD_GGUF_WRITER_ALIGNMENT 32u

typedef struct rd_gguf_writer rd_gguf_writer;

/* A new, empty writer. NULL with *err on out of memory. Free with rd_gguf_writer_free. */
rd_gguf_writer *rd_gguf_writer_new(rd_error *err);
void rd_gguf_writer_free(rd_gguf_writer *w); /* NULL-safe */

/* Key/values, written in the order added (key and value copied). Running out of memory
 * here or in rd_gguf_writer_add is remembered and reported by rd_gguf_writer_commit. */
void rd_gguf_writer_kv_str(rd_gguf_writer *w, const char *key, const char *value);
void rd_gguf_writer_kv_i32(rd_gguf_writer *w, const char *key, int32_t value);
void rd_gguf_writer_kv_u32(rd_gguf_writer *w, const char *key, uint32_t value);
void rd_gguf_writer_kv_f32(rd_gguf_writer *w, const char *key, float value);

/* A tensor named `name` (at most 64 bytes; copied) of element type `type` (one GGUF can
 * store: F32, F16, BF16, the quantised types) and shape[0..n_dims) given outermost first, as
 * for safetensors (a matrix is {rows, cols}; the file stores the dimensions fastest first).
 * data is borrowed until rd_gguf_writer_commit and holds the tensor's bytes in its type.
 * Returns 0, or -1 with *err naming the tensor (a name too long, a type GGUF cannot store,
 * a shape that is empty or not whole blocks). */
int rd_gguf_writer_add(rd_gguf_writer *w, const char *name, rd_dtype type,
                       const int64_t *shape, int n_dims, const void *data, rd_error *err);

/* Writes everything to path atomically. Returns 0, or -1 with *err naming path (out of
 * memory building the header, "write failed: <reason>"). The writer stays to be freed. */
int rd_gguf_writer_commit(rd_gguf_writer *w, const char *path, rd_error *err);

#endif
