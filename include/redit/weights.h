/* redit — the frozen model's configuration and weights as plain data (core layer).
 *
 * Loaders (io/) fill these structs; the forward pass (model/) reads them. Matrices stay in
 * their file's element type (often memory-mapped) and are widened to f32 on use. */
#ifndef REDIT_WEIGHTS_H
#define REDIT_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "redit/dtype.h"
#include "redit/error.h"

/* How query/key vectors pair their dimensions for the rotary embedding.
 * ADJACENT: (x0,x1),(x2,x3)… — llama2.c .bin and GGUF files.
 * HALF:     (x0,x_{hs/2}),(x1,x_{hs/2+1})… — Hugging Face checkpoints (rotate_half). */
typedef enum rd_rope_layout { RD_ROPE_ADJACENT = 0, RD_ROPE_HALF = 1 } rd_rope_layout;

typedef struct rd_config {
    int dim;        /* model width d */
    int hidden_dim; /* FFN width */
    int n_layers;
    int n_heads;
    int n_kv_heads; /* divides n_heads; fewer than n_heads = grouped-query attention */
    int vocab_size;
    int seq_len;    /* maximum context length */
    float norm_eps; /* RMSNorm epsilon */
    float rope_theta;
    rd_rope_layout rope_layout;
} rd_config;

/* head_dim = dim / n_heads; kv_dim = n_kv_heads * head_dim. */
static inline int rd_config_head_dim(const rd_config *c) { return c->dim / c->n_heads; }
static inline int rd_config_kv_dim(const rd_config *c) { return c->n_kv_heads * (c->dim / c->n_heads); }

/* Checks that every field is in range and consistent (heads divide the width, kv heads
 * divide heads, head_dim even, eps finite and positive, sizes below sane limits).
 * `what` names the file in the message. Returns 0 or -1 with *err set. */
int rd_config_validate(const rd_config *c, const char *what, rd_error *err);

/* Number of weights in a model of this shape (embedding, norms, layers, classifier when
 * untied). */
uint64_t rd_config_param_count(const rd_config *c, int tied_classifier);

/* A row-major matrix in its storage type: rows × cols, row r starts at
 * (const char *)data + r * row_bytes. Borrowed: owned by the rd_weights it belongs to. */
struct rd_bf16_weight;

typedef struct rd_matrix {
    rd_dtype type;
    const void *data;
    int64_t rows; /* output features */
    int64_t cols; /* input features; a multiple of the type's block size */
    size_t row_bytes;
    /* A bf16 copy packed for GEMMs (rd_model_set_compute), or NULL: then matrix products over
     * many rows use it (activations rounded to bf16, f32 accumulation). Owned by the model. */
    const struct rd_bf16_weight *bf16;
    /* 1: products over few rows round the activations to 8 bits per block and use integer
     * dot products (quantized types only; src/core/quant_dot.h); set by the model
     * (rd_model_set_quant_products). 0: the activations stay f32 (the reference). */
    int q8_products;
} rd_matrix;

typedef struct rd_layer_weights {
    const float *attn_norm; /* (dim) */
    rd_matrix wq;           /* (n_heads * head_dim, dim) */
    rd_matrix wk;           /* (kv_dim, dim) */
    rd_matrix wv;           /* (kv_dim, dim) */
    rd_matrix wo;           /* (dim, n_heads * head_dim) */
    const float *ffn_norm;  /* (dim) */
    rd_matrix w1;           /* gate_proj (hidden_dim, dim) */
    rd_matrix w2;           /* down_proj (dim, hidden_dim) */
    rd_matrix w3;           /* up_proj   (hidden_dim, dim) */
    /* Output biases added after the wo / w2 products (before any RED edit), as in GGUF
     * blk.N.attn_output.bias / blk.N.ffn_down.bias (a merged RED export); NULL when absent. */
    const float *wo_bias;   /* (dim) or NULL */
    const float *w2_bias;   /* (dim) or NULL */
} rd_layer_weights;

typedef struct rd_weights {
    rd_matrix tok_embeddings; /* (vocab_size, dim) */
    rd_layer_weights *layers; /* (n_layers) */
    const float *final_norm;  /* (dim) */
    rd_matrix classifier;     /* (vocab_size, dim); same data as tok_embeddings when tied */
    int tied_classifier;
    /* Storage: a read-only mapping of the model file, further read-only mappings (the
     * shards of a Hugging Face folder: rd_weights_adopt_map) and heap buffers, all released
     * by rd_weights_release. */
    void *map;
    size_t map_size;
    struct rd_weights_map *maps; /* (n_maps) */
    int n_maps;
    size_t cap_maps;
    void **owned;
    int n_owned;
    size_t cap_owned;
    size_t owned_bytes; /* what rd_weights_alloc gave out, in all */
} rd_weights;

typedef struct rd_weights_map {
    void *p;
    size_t size;
} rd_weights_map;

/* Memory this process can still take: MemAvailable of /proc/meminfo (bytes), or SIZE_MAX
 * when it cannot be read. */
size_t rd_memory_available(void);

/* Refuses an allocation of `bytes` for `what` that the machine does not have: returns -1
 * with "<what> needs X GB of memory but Y GB are available" in *err, else 0. */
int rd_memory_check(size_t bytes, const char *what, rd_error *err);

/* Allocates `bytes` (64-byte aligned, zeroed) owned by w; freed by rd_weights_release.
 * Returns NULL with *err set when out of memory. */
void *rd_weights_alloc(rd_weights *w, size_t bytes, rd_error *err);

/* Maps `path` read-only into w->map/map_size. Returns 0 or -1 with *err naming the file. */
int rd_weights_map_file(rd_weights *w, const char *path, rd_error *err);

/* Hands w a read-only mapping made with mmap (p, size bytes), to be unmapped by
 * rd_weights_release: tensors may point into it from then on. On failure (out of memory)
 * the mapping is unmapped at once and -1 returned with *err set. */
int rd_weights_adopt_map(rd_weights *w, void *p, size_t size, rd_error *err);

/* Bytes of files mapped by w: map_size plus every adopted mapping. */
size_t rd_weights_mapped_bytes(const rd_weights *w);

/* Frees everything w owns (mapping, buffers, layer array) and zeroes *w. Safe on a
 * zeroed or half-built rd_weights. */
void rd_weights_release(rd_weights *w);

/* Creates a matrix view with row_bytes computed from the type (no bf16 copy, q8_products
 * off); -1 when cols is not a whole number of blocks. */
int rd_matrix_init(rd_matrix *m, rd_dtype type, const void *data, int64_t rows, int64_t cols,
                   rd_error *err);

/* The RoPE layout change of a Q or K matrix with n_heads heads of rows_per_head rows:
 * the half-split (Hugging Face) row that becomes adjacent-pair row r, as llama.cpp's
 * converter permutes (adjacent row h·hs + 2i + j ← half-split row h·hs + j·hs/2 + i). Its
 * inverse, for writing half-split files from adjacent ones, is rd_rope_adjacent_row. */
static inline int64_t rd_rope_half_row(int64_t r, int64_t rows_per_head) {
    const int64_t h = r / rows_per_head, k = r % rows_per_head;
    return h * rows_per_head + (k % 2) * (rows_per_head / 2) + k / 2;
}
static inline int64_t rd_rope_adjacent_row(int64_t r, int64_t rows_per_head) {
    const int64_t h = r / rows_per_head, k = r % rows_per_head, half = rows_per_head / 2;
    return h * rows_per_head + 2 * (k % half) + k / half;
}

/* Widens row r of m into dst (m->cols floats). */
void rd_matrix_row_f32(const rd_matrix *m, int64_t r, float *dst);

#endif
