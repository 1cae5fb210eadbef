/* rd_gguf_write: an rd_model_file → GGUF v3, architecture "llama", written atomically
 * (temp file in the same directory, fsync, rename). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "redit/atomic_file.h"
#include "redit/model_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "norms are written as host floats: a little-endian host is required"
#endif

#define ALIGNMENT 32u

/* ---- the tensors to write ---------------------------------------------------------- */

typedef struct out_tensor {
    char name[RD_GGUF_MAX_NAME + 1];
    const rd_matrix *m;       /* a matrix, or NULL for a norm vector */
    const float *vec;         /* (n_vec) */
    int64_t n_vec;
    int permute_heads;        /* > 0: HF rotate_half rows → adjacent pairs, per head */
    const rd_gguf_type *type; /* the file type */
    uint64_t bytes, offset;   /* offset from the start of the tensor data */
} out_tensor;

typedef struct writer {
    const char *path;
    rd_error *err;
    const rd_model_file *f;
    const rd_gguf_type *mtype; /* file type of the matrices; NULL: each keeps its own */
    out_tensor *t;
    int n;
} writer;

static int add_matrix(writer *w, const char *name, const rd_matrix *m, int64_t rows,
                      int64_t cols, int permute_heads) {
    if (!m->data || !rd_dtype_info_of(m->type))
        return rd_error_set(w->err, "%s: cannot write %s: the matrix is missing", w->path, name);
    if (m->rows != rows || m->cols != cols)
        return rd_error_set(w->err, "%s: cannot write %s: the matrix is %" PRId64 " x %" PRId64
                                    " but the config needs %" PRId64 " x %" PRId64,
                            w->path, name, m->rows, m->cols, rows, cols);
    const rd_gguf_type *type = w->mtype ? w->mtype : rd_gguf_type_for_dtype(m->type);
    if (!type)
        return rd_error_set(w->err, "%s: cannot write %s: its element type has no GGUF type",
                            w->path, name);
    if (cols % type->block_elems)
        return rd_error_set(w->err, "%s: cannot write %s as %s: its %" PRId64 " columns are "
                                    "not a multiple of the block size %u",
                            w->path, name, type->name, cols, type->block_elems);
    out_tensor *t = &w->t[w->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->m = m;
    t->permute_heads = permute_heads;
    t->type = type;
    t->bytes = (uint64_t)rows * (uint64_t)(cols / type->block_elems) * type->block_bytes;
    return 0;
}

static int add_vector(writer *w, const char *name, const float *v, int64_t n) {
    if (!v)
        return rd_error_set(w->err, "%s: cannot write %s: the vector is missing", w->path, name);
    out_tensor *t = &w->t[w->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->vec = v;
    t->n_vec = n;
    t->type = rd_gguf_type_for_dtype(RD_DTYPE_F32);
    t->bytes = (uint64_t)n * sizeof(float);
    return 0;
}

/* Lists every tensor in file order with its size and offset, checking shapes. */
static int plan_tensors(writer *w) {
    const rd_config *c = &w->f->cfg;
    const rd_weights *wt = &w->f->w;
    int64_t d = c->dim, h = c->hidden_dim, kv = rd_config_kv_dim(c);
    int half = c->rope_layout == RD_ROPE_HALF;
    if (!wt->layers)
        return rd_error_set(w->err, "%s: cannot write: the model has no layers", w->path);
    w->t = calloc((size_t)c->n_layers * 11 + 3, sizeof *w->t);
    if (!w->t) return rd_error_set(w->err, "%s: out of memory", w->path);
    if (add_matrix(w, "token_embd.weight", &wt->tok_embeddings, c->vocab_size, d, 0)) return -1;
    char n[RD_GGUF_MAX_NAME + 1];
    for (int l = 0; l < c->n_layers; l++) {
        const rd_layer_weights *L = &wt->layers[l];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s ".weight", l), n)
        if (add_vector(w, NAME("attn_norm"), L->attn_norm, d) ||
            add_matrix(w, NAME("attn_q"), &L->wq, d, d, half ? c->n_heads : 0) ||
            add_matrix(w, NAME("attn_k"), &L->wk, kv, d, half ? c->n_kv_heads : 0) ||
            add_matrix(w, NAME("attn_v"), &L->wv, kv, d, 0) ||
            add_matrix(w, NAME("attn_output"), &L->wo, d, d, 0) ||
            add_vector(w, NAME("ffn_norm"), L->ffn_norm, d) ||
            add_matrix(w, NAME("ffn_gate"), &L->w1, h, d, 0) ||
            add_matrix(w, NAME("ffn_down"), &L->w2, d, h, 0) ||
            add_matrix(w, NAME("ffn_up"), &L->w3, h, d, 0))
            return -1;
#undef NAME
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s ".bias", l), n)
        if ((L->wo_bias && add_vector(w, NAME("attn_output"), L->wo_bias, d)) ||
            (L->w2_bias && add_vector(w, NAME("ffn_down"), L->w2_bias, d)))
            return -1;
#undef NAME
    }
    if (add_vector(w, "output_norm.weight", wt->final_norm, d)) return -1;
    if (!wt->tied_classifier &&
        add_matrix(w, "output.weight", &wt->classifier, c->vocab_size, d, 0))
        return -1;
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        w->t[i].offset = off;
        off += (w->t[i].bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }
    return 0;
}

/* ---- header ------------------------------------------------------------------------ */

/* llama.cpp's general.file_type (LLAMA_FTYPE_*) for a model whose matrices are `t`. */
static uint32_t file_type(rd_dtype t) {
    switch (t) {
    case RD_DTYPE_F16: return 1;
    case RD_DTYPE_Q4_0: return 2;
    case RD_DTYPE_Q4_1: return 3;
    case RD_DTYPE_Q8_0: return 7;
    case RD_DTYPE_Q5_0: return 8;
    case RD_DTYPE_Q5_1: return 9;
    case RD_DTYPE_Q2_K: return 10;
    case RD_DTYPE_Q3_K: return 11; /* the _S ("small") mixes: every matrix in one type */
    case RD_DTYPE_Q4_K: return 14;
    case RD_DTYPE_Q5_K: return 16;
    case RD_DTYPE_Q6_K: return 18;
    case RD_DTYPE_IQ4_NL: return 25;
    case RD_DTYPE_IQ4_XS: return 30;
    case RD_DTYPE_BF16: return 32;
    default: return 0;
    }
}

/* general.file_type of a file whose matrices keep their own types: that of wq, except that
 * Q4_K matrices with Q6_K in some ffn_down are llama.cpp's Q4_K_M mixture (15). */
static uint32_t mixed_file_type(const rd_weights *w, int n_layers) {
    const rd_dtype t = w->layers[0].wq.type;
    if (t == RD_DTYPE_Q4_K)
        for (int l = 0; l < n_layers; l++)
            if (w->layers[l].w2.type == RD_DTYPE_Q6_K) return 15;
    return file_type(t);
}

static int n_vocab_kvs(const rd_vocab *v) {
    if (v->n == 0) return 0;
    return 5 + (v->bos_id >= 0) + (v->eos_id >= 0) + (v->unk_id >= 0);
}

static void put_vocab(rd_gguf_buf *b, const rd_vocab *v) {
    int n = v->n;
    rd_gguf_kv_str(b, "tokenizer.ggml.model", "llama");
    rd_gguf_put_array_head(b, "tokenizer.ggml.tokens", RD_GGUF_STRING, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        const char *p = rd_vocab_piece(v, i, &len); /* not NULL: rd_vocab_check */
        rd_gguf_put_str(b, p, len);
    }
    rd_gguf_put_array_head(b, "tokenizer.ggml.scores", RD_GGUF_FLOAT32, (uint64_t)n);
    for (int i = 0; i < n; i++) rd_gguf_put_f32(b, v->scores[i]);
    rd_gguf_put_array_head(b, "tokenizer.ggml.token_type", RD_GGUF_INT32, (uint64_t)n);
    for (int i = 0; i < n; i++) rd_gguf_put_le(b, (uint32_t)v->types[i], 4);
    if (v->bos_id >= 0) rd_gguf_kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos_id);
    if (v->eos_id >= 0) rd_gguf_kv_u32(b, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos_id);
    if (v->unk_id >= 0)
        rd_gguf_kv_u32(b, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk_id);
    rd_gguf_kv_bool(b, "tokenizer.ggml.add_space_prefix", v->add_dummy_prefix);
}

static void put_tensor_info(rd_gguf_buf *b, const out_tensor *t) {
    rd_gguf_put_str(b, t->name, strlen(t->name));
    if (t->m) {
        rd_gguf_put_le(b, 2, 4);
        rd_gguf_put_le(b, (uint64_t)t->m->cols, 8);
        rd_gguf_put_le(b, (uint64_t)t->m->rows, 8);
    } else {
        rd_gguf_put_le(b, 1, 4);
        rd_gguf_put_le(b, (uint64_t)t->n_vec, 8);
    }
    rd_gguf_put_le(b, t->type->id, 4);
    rd_gguf_put_le(b, t->offset, 8);
}

/* Everything before the tensor data, padded to the alignment. */
static int build_header(writer *w, rd_gguf_buf *b) {
    const rd_config *c = &w->f->cfg;
    const rd_vocab *vocab = &w->f->vocab;
    int named = w->f->name[0] != '\0';
    rd_gguf_put(b, "GGUF", 4);
    rd_gguf_put_le(b, 3, 4);
    rd_gguf_put_le(b, (uint64_t)w->n, 8);
    rd_gguf_put_le(b, (uint64_t)(13 + named + n_vocab_kvs(vocab)), 8);
    rd_gguf_kv_str(b, "general.architecture", "llama");
    if (named) rd_gguf_kv_str(b, "general.name", w->f->name);
    rd_gguf_kv_u32(b, "general.alignment", ALIGNMENT);
    rd_gguf_kv_u32(b, "general.file_type",
           w->mtype ? file_type((rd_dtype)w->mtype->dtype)
                    : mixed_file_type(&w->f->w, w->f->cfg.n_layers));
    rd_gguf_kv_u32(b, "llama.vocab_size", (uint32_t)c->vocab_size);
    rd_gguf_kv_u32(b, "llama.context_length", (uint32_t)c->seq_len);
    rd_gguf_kv_u32(b, "llama.embedding_length", (uint32_t)c->dim);
    rd_gguf_kv_u32(b, "llama.block_count", (uint32_t)c->n_layers);
    rd_gguf_kv_u32(b, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    rd_gguf_kv_u32(b, "llama.rope.dimension_count", (uint32_t)rd_config_head_dim(c));
    rd_gguf_kv_u32(b, "llama.attention.head_count", (uint32_t)c->n_heads);
    rd_gguf_kv_u32(b, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    rd_gguf_kv_f32(b, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    rd_gguf_kv_f32(b, "llama.rope.freq_base", c->rope_theta);
    if (vocab->n) put_vocab(b, vocab);
    for (int i = 0; i < w->n; i++) put_tensor_info(b, &w->t[i]);
    rd_gguf_pad(b, ALIGNMENT);
    if (b->oom) return rd_error_set(w->err, "%s: out of memory building the GGUF header", w->path);
    return 0;
}

/* ---- data -------------------------------------------------------------------------- */

/* Row of the source matrix that lands at row r of the file: the identity, or, for a
 * rotate_half (Hugging Face) Q/K matrix, llama.cpp's permutation to adjacent pairs
 * (file row h·hs + 2i + j ← source row h·hs + j·hs/2 + i). */
static int64_t source_row(const out_tensor *t, int64_t r) {
    return t->permute_heads ? rd_rope_half_row(r, t->m->rows / t->permute_heads) : r;
}

static int write_bytes(writer *w, FILE *fp, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, fp) != n)
        return rd_error_set(w->err, "%s: write failed: %s", w->path, strerror(errno));
    return 0;
}

/* Writes matrix t row by row in the file type: a row already in that type is copied as it
 * is (so re-writing a quantised model does not quantise it twice), any other is widened
 * with rd_matrix_row_f32 and narrowed with the type's from_f32. */
static int write_matrix(writer *w, FILE *fp, const out_tensor *t, float *row, void *conv) {
    const rd_matrix *m = t->m;
    rd_dtype type = (rd_dtype)t->type->dtype;
    const rd_dtype_info *info = rd_dtype_info_of(type);
    size_t row_bytes = (size_t)(t->bytes / (uint64_t)m->rows);
    for (int64_t r = 0; r < m->rows; r++) {
        int64_t src = source_row(t, r);
        const void *bytes = conv;
        if (m->type == type) {
            bytes = (const char *)m->data + (size_t)src * m->row_bytes;
        } else {
            rd_matrix_row_f32(m, src, row);
            info->from_f32(row, conv, (size_t)m->cols);
        }
        if (write_bytes(w, fp, bytes, row_bytes)) return -1;
    }
    return 0;
}

static int write_tensor(writer *w, FILE *fp, const out_tensor *t, float *row, void *conv) {
    static const uint8_t zeros[ALIGNMENT];
    if (t->m ? write_matrix(w, fp, t, row, conv) : write_bytes(w, fp, t->vec, (size_t)t->bytes))
        return -1;
    return write_bytes(w, fp, zeros, (size_t)((ALIGNMENT - t->bytes % ALIGNMENT) % ALIGNMENT));
}

static int write_all(writer *w, FILE *fp, const rd_gguf_buf *header) {
    int64_t max_cols = 0;
    for (int i = 0; i < w->n; i++)
        if (w->t[i].m && w->t[i].m->cols > max_cols) max_cols = w->t[i].m->cols;
    float *row = malloc((size_t)max_cols * sizeof *row + 1);
    void *conv = malloc((size_t)max_cols * sizeof(float) + 1); /* ≥ any type's row */
    int rc = (!row || !conv) ? rd_error_set(w->err, "%s: out of memory", w->path)
                             : write_bytes(w, fp, header->data, header->len);
    for (int i = 0; i < w->n && !rc; i++) rc = write_tensor(w, fp, &w->t[i], row, conv);
    free(row);
    free(conv);
    return rc;
}

/* Writes header + data to a temp file beside path, then renames it over path. */
static int write_file(writer *w, const rd_gguf_buf *header) {
    rd_atomic_file af;
    if (rd_atomic_file_open(&af, w->path, w->err)) return -1;
    if (write_all(w, af.fp, header)) {
        rd_atomic_file_abort(&af);
        return -1;
    }
    return rd_atomic_file_commit(&af, w->err);
}

static int check_model(writer *w, rd_dtype type) {
    const rd_model_file *f = w->f;
    w->mtype = rd_dtype_info_of(type) ? rd_gguf_type_for_dtype(type) : NULL;
    if (!w->mtype && type != RD_DTYPE_COUNT)
        return rd_error_set(w->err, "%s: cannot write matrices of element type %d as GGUF",
                            w->path, (int)type);
    if (rd_config_validate(&f->cfg, w->path, w->err)) return -1;
    if (f->vocab.n && f->vocab.n != f->cfg.vocab_size)
        return rd_error_set(w->err, "%s: cannot write: the tokenizer has %d tokens but the "
                                    "model's vocabulary is %d",
                            w->path, f->vocab.n, f->cfg.vocab_size);
    char what[RD_ERROR_MAX];
    snprintf(what, sizeof what, "%s: cannot write the vocabulary", w->path);
    return f->vocab.n ? rd_vocab_check(&f->vocab, what, w->err) : 0;
}

int rd_gguf_write(const char *path, const rd_model_file *f, rd_dtype type, rd_error *err) {
    writer w = {.path = path, .err = err, .f = f};
    rd_gguf_buf header = {0};
    int rc = -1;
    if (!check_model(&w, type) && !plan_tensors(&w) && !build_header(&w, &header))
        rc = write_file(&w, &header);
    rd_buf_free(&header);
    free(w.t);
    return rc;
}
