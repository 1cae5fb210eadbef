/* llama2.c legacy (v0) checkpoints: a 7-int32 header, then f32 weights in a fixed order,
 * memory-mapped. A negative vocab size in the header means an untied classifier. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redit/model_file.h"
#include "redit/atomic_file.h"
#include "io_internal.h"

typedef struct llama2c_header {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} llama2c_header;

#define HEADER_BYTES ((uint64_t)sizeof(llama2c_header))

/* llama2.c's version 1/2 exports start with uint32 0x616b3432 ("ak42" read as a
 * big-endian number; the file's bytes are "24ka"), then int32 version. */
#define AK42_MAGIC 0x616b3432u

/* h->vocab_size must not be INT32_MIN (its negation overflows). */
static void header_to_config(const llama2c_header *h, rd_config *c) {
    c->dim = h->dim;
    c->hidden_dim = h->hidden_dim;
    c->n_layers = h->n_layers;
    c->n_heads = h->n_heads;
    c->n_kv_heads = h->n_kv_heads;
    c->vocab_size = h->vocab_size < 0 ? -h->vocab_size : h->vocab_size;
    c->seq_len = h->seq_len;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_layout = RD_ROPE_ADJACENT;
}

/* Floats after the header: the weights, the legacy freq_cis tables, the classifier. */
static uint64_t expected_floats(const rd_config *c, int tied) {
    uint64_t hs = (uint64_t)rd_config_head_dim(c);
    uint64_t freq = 2 * (uint64_t)c->seq_len * (hs / 2);
    return rd_config_param_count(c, tied) + freq;
}

/* Reads and checks the header of a file of `size` bytes starting at data. Returns 0 with
 * *c and *tied set, or -1 with *err naming path and the first thing wrong. */
static int check_header(const void *data, size_t size, const char *path, rd_config *c,
                        int *tied, rd_error *err) {
    uint32_t magic = 0;
    if (size >= 8) memcpy(&magic, data, 4);
    if (magic == AK42_MAGIC) {
        int32_t version;
        memcpy(&version, (const char *)data + 4, 4);
        return rd_error_set(err, "%s: llama2.c 'ak42' version %d export; redit reads the "
                                 "legacy v0 layout (export.py --version 0)",
                            path, (int)version);
    }
    if (size < HEADER_BYTES)
        return rd_error_set(err, "%s: truncated llama2.c checkpoint: %zu bytes, the header "
                                 "alone is %d",
                            path, size, (int)HEADER_BYTES);
    llama2c_header h;
    memcpy(&h, data, sizeof h);
    if (h.vocab_size == INT32_MIN)
        return rd_error_set(err, "%s: llama2.c header: vocab_size = %d is out of range", path,
                            (int)h.vocab_size);
    header_to_config(&h, c);
    *tied = h.vocab_size > 0;
    char what[4200];
    snprintf(what, sizeof what, "%s: llama2.c header", path);
    return rd_config_validate(c, what, err);
}

/* 1 when |v| is a size a header could plausibly hold. */
static int small_int(int32_t v) {
    int64_t a = v < 0 ? -(int64_t)v : v;
    return a >= 1 && a <= (1 << 24);
}

int rd_llama2c_probe(const void *data, size_t size, const char *path, rd_error *err) {
    rd_config c;
    int tied;
    if (check_header(data, size, path, &c, &tied, NULL) == 0) return 1;
    uint32_t magic = 0;
    if (size >= 8) memcpy(&magic, data, 4);
    int looks = magic == AK42_MAGIC;
    if (!looks && size >= HEADER_BYTES) {
        /* Most fields small non-zero integers: a llama2.c header with a bad field (random
         * bytes have each in range with probability 2^-7; a tokenizer.bin has 4 at most). */
        int32_t f[7];
        memcpy(f, data, sizeof f);
        int n = 0;
        for (int i = 0; i < 7; i++) n += small_int(f[i]);
        looks = n >= 5;
    }
    if (!looks) return 0;
    check_header(data, size, path, &c, &tied, err);
    return -1;
}

static int map_matrices(rd_matrix *dst, size_t stride, int n, const float **cursor, int64_t rows,
                        int64_t cols) {
    for (int i = 0; i < n; i++) {
        rd_matrix *m = (rd_matrix *)((char *)dst + (size_t)i * stride);
        if (rd_matrix_init(m, RD_DTYPE_F32, *cursor, rows, cols, NULL)) return -1;
        *cursor += (size_t)(rows * cols);
    }
    return 0;
}

static void map_vectors(const float **dst, size_t stride, int n, const float **cursor, int d) {
    for (int i = 0; i < n; i++) {
        *(const float **)((char *)dst + (size_t)i * stride) = *cursor;
        *cursor += d;
    }
}

static int load_vocab(const char *model_path, const char *tokenizer_path, rd_model_file *out,
                      rd_error *err) {
    char beside[4096];
    static const char *const names[] = {"tokenizer.bin", "tokenizer.model"};
    for (size_t i = 0; !tokenizer_path && i < sizeof names / sizeof *names; i++) {
        const char *slash = strrchr(model_path, '/');
        int dir_len = slash ? (int)(slash - model_path + 1) : 0;
        if (snprintf(beside, sizeof beside, "%.*s%s", dir_len, model_path, names[i]) <
                (int)sizeof beside &&
            access(beside, R_OK) == 0)
            tokenizer_path = beside;
    }
    if (!tokenizer_path) return 0; /* no tokenizer: work in token ids */
    if (rd_vocab_load_file(tokenizer_path, out->cfg.vocab_size, &out->vocab, err))
        return rd_error_prefix(err, "%s (vocab %d)", model_path, out->cfg.vocab_size);
    return 0;
}

int rd_llama2c_load(const char *path, const char *tokenizer_path, rd_model_file *out,
                    rd_error *err) {
    memset(out, 0, sizeof *out);
    int tied;
    if (rd_weights_map_file(&out->w, path, err) ||
        check_header(out->w.map, out->w.map_size, path, &out->cfg, &tied, err))
        goto fail;
    out->format = RD_FORMAT_LLAMA2C;
    const rd_config *c = &out->cfg;
    const uint64_t need = HEADER_BYTES + 4 * expected_floats(c, tied);
    if (out->w.map_size != need) {
        rd_error_set(err,
                     "%s: llama2.c header (dim %d, hidden %d, %d layers, %d heads, %d kv heads, "
                     "vocab %d%s, seq_len %d) implies %llu bytes but the file has %zu%s",
                     path, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                     c->vocab_size, tied ? "" : " untied", c->seq_len,
                     (unsigned long long)need, out->w.map_size,
                     out->w.map_size < need ? " (truncated)" : " (trailing data)");
        goto fail;
    }
    rd_weights *w = &out->w;
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) {
        rd_error_set(err, "%s: out of memory", path);
        goto fail;
    }
    const int L = c->n_layers, d = c->dim, hd = c->hidden_dim, kv = rd_config_kv_dim(c);
    const size_t st = sizeof(rd_layer_weights);
    rd_layer_weights *ly = w->layers;
    const float *p = (const float *)((const char *)w->map + HEADER_BYTES);
    if (rd_matrix_init(&w->tok_embeddings, RD_DTYPE_F32, p, c->vocab_size, d, err)) goto fail;
    p += (size_t)c->vocab_size * d;
    map_vectors(&ly->attn_norm, st, L, &p, d);
    if (map_matrices(&ly->wq, st, L, &p, d, d) || map_matrices(&ly->wk, st, L, &p, kv, d) ||
        map_matrices(&ly->wv, st, L, &p, kv, d) || map_matrices(&ly->wo, st, L, &p, d, d))
        goto fail;
    map_vectors(&ly->ffn_norm, st, L, &p, d);
    if (map_matrices(&ly->w1, st, L, &p, hd, d) || map_matrices(&ly->w2, st, L, &p, d, hd) ||
        map_matrices(&ly->w3, st, L, &p, hd, d))
        goto fail;
    w->final_norm = p;
    p += d;
    p += (size_t)c->seq_len * (size_t)rd_config_head_dim(c); /* legacy freq_cis real + imag */
    w->tied_classifier = tied;
    if (tied) {
        w->classifier = w->tok_embeddings;
    } else if (rd_matrix_init(&w->classifier, RD_DTYPE_F32, p, c->vocab_size, d, err)) {
        goto fail;
    }
    const char *base = strrchr(path, '/');
    snprintf(out->name, sizeof out->name, "%s", base ? base + 1 : path);
    if (load_vocab(path, tokenizer_path, out, err)) goto fail;
    return 0;
fail:
    rd_model_file_release(out);
    return -1;
}

/* Row of m that lands at row r of the file: the identity, or, for a rotate_half (Hugging
 * Face) Q/K matrix of permute_heads heads, the permutation to llama2.c's adjacent pairs
 * (file row h·hs + 2i + j ← source row h·hs + j·hs/2 + i), as llama.cpp's converter does. */
static int64_t source_row(const rd_matrix *m, int permute_heads, int64_t r) {
    return permute_heads ? rd_rope_half_row(r, m->rows / permute_heads) : r;
}

/* Writes row-major matrix m (any type) widened to f32 row by row; row holds m->cols floats. */
static int write_matrix(rd_atomic_file *f, const rd_matrix *m, int permute_heads, float *row) {
    for (int64_t r = 0; r < m->rows; r++) {
        rd_matrix_row_f32(m, source_row(m, permute_heads, r), row);
        if (rd_atomic_file_write(f, row, (size_t)m->cols * sizeof(float))) return -1;
    }
    return 0;
}

static int check_matrix(const char *path, const char *name, int layer, const rd_matrix *m,
                        int64_t rows, int64_t cols, rd_error *err) {
    char what[64];
    if (layer >= 0) snprintf(what, sizeof what, "layer %d %s", layer, name);
    else snprintf(what, sizeof what, "%s", name);
    if (!m->data || !rd_dtype_info_of(m->type))
        return rd_error_set(err, "%s: cannot write %s: the matrix is missing", path, what);
    if (m->rows != rows || m->cols != cols)
        return rd_error_set(err, "%s: cannot write %s: the matrix is %lld x %lld but the config "
                                 "needs %lld x %lld",
                            path, what, (long long)m->rows, (long long)m->cols, (long long)rows,
                            (long long)cols);
    return 0;
}

/* Refuses what a llama2.c .bin cannot hold (its readers assume eps 1e-5 and theta 10000)
 * and weights whose shapes are not the config's. */
static int check_writable(const char *path, const rd_config *c, const rd_weights *w,
                          rd_error *err) {
    if (rd_config_validate(c, path, err)) return -1;
    if (c->norm_eps != 1e-5f)
        return rd_error_set(err, "%s: a llama2.c .bin cannot store norm eps %g (readers assume "
                                 "1e-5); save the model as GGUF",
                            path, (double)c->norm_eps);
    if (c->rope_theta != 10000.0f)
        return rd_error_set(err, "%s: a llama2.c .bin cannot store rope theta %g (readers "
                                 "assume 10000); save the model as GGUF",
                            path, (double)c->rope_theta);
    const int64_t d = c->dim, hd = c->hidden_dim, kv = rd_config_kv_dim(c), V = c->vocab_size;
    if (!w->layers || !w->final_norm)
        return rd_error_set(err, "%s: cannot write: the model's weights are missing", path);
    if (check_matrix(path, "tok_embeddings", -1, &w->tok_embeddings, V, d, err) ||
        (!w->tied_classifier && check_matrix(path, "classifier", -1, &w->classifier, V, d, err)))
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        if (!L->attn_norm || !L->ffn_norm)
            return rd_error_set(err, "%s: cannot write layer %d: a norm is missing", path, l);
        if (check_matrix(path, "wq", l, &L->wq, d, d, err) ||
            check_matrix(path, "wk", l, &L->wk, kv, d, err) ||
            check_matrix(path, "wv", l, &L->wv, kv, d, err) ||
            check_matrix(path, "wo", l, &L->wo, d, d, err) ||
            check_matrix(path, "w1", l, &L->w1, hd, d, err) ||
            check_matrix(path, "w2", l, &L->w2, d, hd, err) ||
            check_matrix(path, "w3", l, &L->w3, hd, d, err))
            return -1;
    }
    return 0;
}

int rd_llama2c_write(const char *path, const rd_config *c, const rd_weights *w, rd_error *err) {
    if (check_writable(path, c, w, err)) return -1;
    llama2c_header h = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                        w->tied_classifier ? c->vocab_size : -c->vocab_size, c->seq_len};
    const int hs = rd_config_head_dim(c);
    const int qh = c->rope_layout == RD_ROPE_HALF ? c->n_heads : 0;
    const int kh = c->rope_layout == RD_ROPE_HALF ? c->n_kv_heads : 0;
    size_t row_floats = (size_t)(c->hidden_dim > c->dim ? c->hidden_dim : c->dim);
    if ((size_t)c->seq_len * (size_t)(hs / 2) > row_floats) row_floats = (size_t)c->seq_len * (size_t)(hs / 2);
    float *row = malloc(row_floats * sizeof(float));
    if (!row) return rd_error_set(err, "%s: out of memory", path);
    rd_atomic_file f;
    if (rd_atomic_file_open(&f, path, err)) {
        free(row);
        return -1;
    }
    int bad = rd_atomic_file_write(&f, &h, sizeof h) || write_matrix(&f, &w->tok_embeddings, 0, row);
    const int L = c->n_layers, d = c->dim;
    for (int l = 0; l < L && !bad; l++) bad = rd_atomic_file_write(&f, w->layers[l].attn_norm, (size_t)d * 4);
    for (int l = 0; l < L && !bad; l++) bad = write_matrix(&f, &w->layers[l].wq, qh, row);
    for (int l = 0; l < L && !bad; l++) bad = write_matrix(&f, &w->layers[l].wk, kh, row);
    for (int l = 0; l < L && !bad; l++) bad = write_matrix(&f, &w->layers[l].wv, 0, row);
    for (int l = 0; l < L && !bad; l++) bad = write_matrix(&f, &w->layers[l].wo, 0, row);
    for (int l = 0; l < L && !bad; l++) bad = rd_atomic_file_write(&f, w->layers[l].ffn_norm, (size_t)d * 4);
    for (int l = 0; l < L && !bad; l++) bad = write_matrix(&f, &w->layers[l].w1, 0, row);
    for (int l = 0; l < L && !bad; l++) bad = write_matrix(&f, &w->layers[l].w2, 0, row);
    for (int l = 0; l < L && !bad; l++) bad = write_matrix(&f, &w->layers[l].w3, 0, row);
    if (!bad) bad = rd_atomic_file_write(&f, w->final_norm, (size_t)d * 4);
    /* legacy freq_cis tables (cos then sin), ignored on load but part of the layout */
    for (int part = 0; part < 2 && !bad; part++) {
        size_t k = 0;
        for (int pos = 0; pos < c->seq_len; pos++)
            for (int i = 0; i < hs / 2; i++) {
                float angle = (float)pos / powf(c->rope_theta, (float)(2 * i) / (float)hs);
                row[k++] = part == 0 ? cosf(angle) : sinf(angle);
            }
        bad = rd_atomic_file_write(&f, row, k * sizeof(float));
    }
    if (!bad && !w->tied_classifier) bad = write_matrix(&f, &w->classifier, 0, row);
    free(row);
    if (bad) {
        rd_atomic_file_abort(&f);
        return rd_error_set(err, "%s: write failed: %s", path, strerror(errno));
    }
    return rd_atomic_file_commit(&f, err);
}
