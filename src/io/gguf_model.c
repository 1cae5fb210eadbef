/* rd_gguf_load: a GGUF file of architecture "llama" → rd_model_file (config from llama.*
 * keys, memory-mapped weights in their file types, vocabulary from tokenizer.ggml.*). */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "redit/model_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF tensors are mapped in place: a little-endian host is required"
#endif

typedef struct loader {
    const char *path; /* for messages */
    rd_error *err;
    const rd_gguf *g;
    rd_model_file *f; /* being built */
} loader;

/* ---- metadata ---------------------------------------------------------------------- */

/* Reads integer key into *out. Absent: *out = dflt when !required, else an error. The
 * value must lie in [lo, hi]. */
static int key_int(loader *ld, const char *key, int required, int dflt, int lo, int hi,
                   int *out) {
    const rd_gguf_value *v = rd_gguf_get(ld->g, key);
    if (!v) {
        if (required)
            return rd_error_set(ld->err, "%s: required key %s is missing", ld->path, key);
        *out = dflt;
        return 0;
    }
    int64_t x;
    if (rd_gguf_value_int(v, &x))
        return rd_error_set(ld->err, "%s: key %s is of type %s, not an integer", ld->path, key,
                            rd_gguf_vtype_name(v->type));
    if (x < lo || x > hi)
        return rd_error_set(ld->err, "%s: %s = %" PRId64 " is out of range [%d, %d]", ld->path,
                            key, x, lo, hi);
    *out = (int)x;
    return 0;
}

/* Reads float key into *out (dflt when absent and !required); NaN, infinities and values
 * beyond float's range are refused here, the rest of the range checks are
 * rd_config_validate's. */
static int key_float(loader *ld, const char *key, int required, float dflt, float *out) {
    const rd_gguf_value *v = rd_gguf_get(ld->g, key);
    if (!v) {
        if (required)
            return rd_error_set(ld->err, "%s: required key %s is missing", ld->path, key);
        *out = dflt;
        return 0;
    }
    double x;
    if (rd_gguf_value_float(v, &x))
        return rd_error_set(ld->err, "%s: key %s is of type %s, not a float", ld->path, key,
                            rd_gguf_vtype_name(v->type));
    if (!isfinite(x) || fabs(x) > 3.0e38)
        return rd_error_set(ld->err, "%s: %s = %g is not a finite float", ld->path, key, x);
    *out = (float)x;
    return 0;
}

/* The string value of key (borrowed), or NULL with *err set when present but not a
 * string; *present tells whether the key exists. */
static const rd_gguf_value *key_string(loader *ld, const char *key, int *present) {
    const rd_gguf_value *v = rd_gguf_get(ld->g, key);
    *present = v != NULL;
    if (v && v->type != RD_GGUF_STRING) {
        rd_error_set(ld->err, "%s: key %s is of type %s, not a string", ld->path, key,
                     rd_gguf_vtype_name(v->type));
        return NULL;
    }
    return v;
}

static int str_is(const rd_gguf_value *v, const char *s) {
    return v->n == strlen(s) && memcmp(v->as.s, s, (size_t)v->n) == 0;
}

static int check_architecture(loader *ld) {
    int present;
    const rd_gguf_value *v = key_string(ld, "general.architecture", &present);
    if (!present)
        return rd_error_set(ld->err, "%s: required key general.architecture is missing",
                            ld->path);
    if (!v) return -1;
    if (!str_is(v, "llama")) {
        char name[64];
        return rd_error_set(ld->err, "%s: architecture '%s' is not supported (only 'llama')",
                            ld->path, rd_gguf_printable(name, sizeof name, v->as.s, v->n));
    }
    return 0;
}

/* Refuses llama-architecture variants whose arithmetic redit does not implement, rather
 * than running them wrongly. */
static int check_unsupported_features(loader *ld, const rd_config *c) {
    int experts;
    if (key_int(ld, "llama.expert_count", 0, 0, 0, INT_MAX, &experts)) return -1;
    if (experts > 0)
        return rd_error_set(ld->err, "%s: mixture-of-experts models (llama.expert_count = %d) "
                                     "are not supported", ld->path, experts);
    int rope_dims;
    int hs = c->dim / c->n_heads;
    if (key_int(ld, "llama.rope.dimension_count", 0, hs, 1, INT_MAX, &rope_dims)) return -1;
    if (rope_dims != hs)
        return rd_error_set(ld->err, "%s: llama.rope.dimension_count = %d differs from the "
                                     "head dimension %d (partial rotary embedding is not "
                                     "supported)", ld->path, rope_dims, hs);
    int present;
    const rd_gguf_value *v = key_string(ld, "llama.rope.scaling.type", &present);
    if (present && !v) return -1;
    if (v && !str_is(v, "none")) {
        char name[64];
        return rd_error_set(ld->err, "%s: rope scaling '%s' (llama.rope.scaling.type) is not "
                                     "supported", ld->path,
                            rd_gguf_printable(name, sizeof name, v->as.s, v->n));
    }
    if (rd_gguf_tensor_get(ld->g, "rope_freqs.weight"))
        return rd_error_set(ld->err, "%s: tensor rope_freqs.weight (scaled rotary frequencies) "
                                     "is not supported", ld->path);
    return 0;
}

/* vocab_size is the row count of token_embd.weight (ne = [dim, vocab]). */
static int read_vocab_size(loader *ld, int *vocab) {
    const rd_gguf_tensor *t = rd_gguf_tensor_get(ld->g, "token_embd.weight");
    if (!t)
        return rd_error_set(ld->err, "%s: required tensor token_embd.weight is missing",
                            ld->path);
    if (t->n_dims < 2 || t->ne[1] > INT_MAX)
        return rd_error_set(ld->err, "%s: tensor token_embd.weight has %u dimensions and %"
                                     PRIu64 " rows; expected a (vocab, dim) matrix",
                            ld->path, t->n_dims, t->n_dims < 2 ? 1 : t->ne[1]);
    *vocab = (int)t->ne[1];
    int declared;
    if (key_int(ld, "llama.vocab_size", 0, *vocab, 1, INT_MAX, &declared)) return -1;
    if (declared != *vocab)
        return rd_error_set(ld->err, "%s: llama.vocab_size = %d disagrees with the %d rows of "
                                     "token_embd.weight", ld->path, declared, *vocab);
    return 0;
}

static int read_config(loader *ld, rd_config *c) {
    memset(c, 0, sizeof *c);
    if (key_int(ld, "llama.embedding_length", 1, 0, 1, INT_MAX, &c->dim) ||
        key_int(ld, "llama.feed_forward_length", 1, 0, 1, INT_MAX, &c->hidden_dim) ||
        key_int(ld, "llama.block_count", 1, 0, 1, INT_MAX, &c->n_layers) ||
        key_int(ld, "llama.attention.head_count", 1, 0, 1, INT_MAX, &c->n_heads) ||
        key_int(ld, "llama.attention.head_count_kv", 0, c->n_heads, 1, INT_MAX,
                &c->n_kv_heads) ||
        key_int(ld, "llama.context_length", 1, 0, 1, INT_MAX, &c->seq_len) ||
        key_float(ld, "llama.attention.layer_norm_rms_epsilon", 1, 0.0f, &c->norm_eps) ||
        key_float(ld, "llama.rope.freq_base", 0, 10000.0f, &c->rope_theta) ||
        read_vocab_size(ld, &c->vocab_size))
        return -1;
    c->rope_layout = RD_ROPE_ADJACENT; /* llama.cpp's converter permutes HF Q/K rows */
    if (rd_config_validate(c, ld->path, ld->err)) return -1;
    return check_unsupported_features(ld, c);
}

static int read_name(loader *ld) {
    char *dst = ld->f->name;
    size_t cap = sizeof ld->f->name;
    int present;
    const rd_gguf_value *v = key_string(ld, "general.name", &present);
    if (present && !v) return -1;
    const char *src;
    size_t n;
    if (v) {
        src = v->as.s;
        n = (size_t)v->n;
    } else { /* the file's base name */
        const char *slash = strrchr(ld->path, '/');
        src = slash ? slash + 1 : ld->path;
        n = strlen(src);
    }
    if (n >= cap) { /* cut at a UTF-8 character boundary */
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

/* ---- tensors ----------------------------------------------------------------------- */

static void shape_str(char *buf, size_t cap, const rd_gguf_tensor *t) {
    int k = snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < t->n_dims && k > 0 && (size_t)k < cap; d++)
        k += snprintf(buf + k, cap - (size_t)k, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
    if (k > 0 && (size_t)k < cap) snprintf(buf + k, cap - (size_t)k, "]");
}

/* Finds `name`, checks its shape is ne = [cols, rows] (rows = 0: a vector of cols, any
 * trailing dimensions 1) and that redit can read its type. */
static const rd_gguf_tensor *find_tensor(loader *ld, const char *name, int64_t rows,
                                         int64_t cols) {
    const rd_gguf_tensor *t = rd_gguf_tensor_get(ld->g, name);
    if (!t) {
        rd_error_set(ld->err, "%s: required tensor %s is missing", ld->path, name);
        return NULL;
    }
    uint64_t want[RD_GGUF_MAX_DIMS] = {(uint64_t)cols, rows ? (uint64_t)rows : 1, 1, 1};
    if (memcmp(t->ne, want, sizeof want) != 0) {
        char got[128];
        shape_str(got, sizeof got, t);
        if (rows)
            rd_error_set(ld->err, "%s: tensor %s has shape %s but the config needs [%" PRId64
                                  ", %" PRId64 "] (columns, rows)",
                         ld->path, name, got, cols, rows);
        else
            rd_error_set(ld->err, "%s: tensor %s has shape %s but the config needs [%" PRId64
                                  "]", ld->path, name, got, cols);
        return NULL;
    }
    if (t->type->dtype < 0) {
        char readable[256];
        rd_error_set(ld->err, "%s: tensor %s has type %s (GGML type %u), which redit does "
                              "not read (it reads %s)",
                     ld->path, name, t->type->name, t->type->id,
                     rd_gguf_readable_types(readable, sizeof readable));
        return NULL;
    }
    return t;
}

/* Data of t as a pointer aligned for its element type: in the mapping when it already is
 * (always, with a power-of-two alignment ≥ 4), else a copy owned by the weights. */
static const void *aligned_data(loader *ld, const rd_gguf_tensor *t) {
    size_t need = t->type->block_bytes % 4 == 0 ? 4 : 2;
    if ((uintptr_t)t->data % need == 0) return t->data;
    void *copy = rd_weights_alloc(&ld->f->w, (size_t)t->bytes, ld->err);
    if (!copy) {
        rd_error_prefix(ld->err, "%s", ld->path);
        return NULL;
    }
    memcpy(copy, t->data, (size_t)t->bytes);
    return copy;
}

static int load_matrix(loader *ld, const char *name, int64_t rows, int64_t cols,
                       rd_matrix *m) {
    const rd_gguf_tensor *t = find_tensor(ld, name, rows, cols);
    if (!t) return -1;
    const void *data = aligned_data(ld, t);
    if (!data) return -1;
    if (rd_matrix_init(m, (rd_dtype)t->type->dtype, data, rows, cols, ld->err))
        return rd_error_prefix(ld->err, "%s: tensor %s", ld->path, name);
    return 0;
}

/* A norm vector of n floats: in the mapping when it is aligned F32, else widened into a
 * buffer owned by the weights. */
static int load_vector(loader *ld, const char *name, int64_t n, const float **out) {
    const rd_gguf_tensor *t = find_tensor(ld, name, 0, n);
    if (!t) return -1;
    if (t->type->dtype == RD_DTYPE_F32 && (uintptr_t)t->data % sizeof(float) == 0) {
        *out = t->data;
        return 0;
    }
    float *v = rd_weights_alloc(&ld->f->w, (size_t)n * sizeof *v, ld->err);
    if (!v) return rd_error_prefix(ld->err, "%s", ld->path);
    const void *src = aligned_data(ld, t);
    if (!src) return -1;
    rd_dtype_info_of((rd_dtype)t->type->dtype)->to_f32(src, v, (size_t)n);
    *out = v;
    return 0;
}

/* An optional output bias (n floats, any readable type): absent leaves *out NULL; present,
 * it is widened into a buffer owned by the weights (never left in the mapping, so it
 * survives rd_model_make_trainable). */
static int load_bias(loader *ld, const char *name, int64_t n, const float **out) {
    *out = NULL;
    if (!rd_gguf_tensor_get(ld->g, name)) return 0;
    const rd_gguf_tensor *t = find_tensor(ld, name, 0, n);
    if (!t) return -1;
    const void *src = aligned_data(ld, t);
    float *v = src ? rd_weights_alloc(&ld->f->w, (size_t)n * sizeof(float), ld->err) : NULL;
    if (!v) return src ? rd_error_prefix(ld->err, "%s", ld->path) : -1;
    rd_dtype_info_of((rd_dtype)t->type->dtype)->to_f32(src, v, (size_t)n);
    *out = v;
    return 0;
}

static int load_layer(loader *ld, int l, rd_layer_weights *L) {
    const rd_config *c = &ld->f->cfg;
    int64_t d = c->dim, h = c->hidden_dim, kv = rd_config_kv_dim(c);
    int64_t q = (int64_t)c->n_heads * rd_config_head_dim(c);
    char n[RD_GGUF_MAX_NAME + 1];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s ".weight", l), n)
    if (load_vector(ld, NAME("attn_norm"), d, &L->attn_norm) ||
        load_matrix(ld, NAME("attn_q"), q, d, &L->wq) ||
        load_matrix(ld, NAME("attn_k"), kv, d, &L->wk) ||
        load_matrix(ld, NAME("attn_v"), kv, d, &L->wv) ||
        load_matrix(ld, NAME("attn_output"), d, q, &L->wo) ||
        load_vector(ld, NAME("ffn_norm"), d, &L->ffn_norm) ||
        load_matrix(ld, NAME("ffn_gate"), h, d, &L->w1) ||
        load_matrix(ld, NAME("ffn_down"), d, h, &L->w2) ||
        load_matrix(ld, NAME("ffn_up"), h, d, &L->w3))
        return -1;
#undef NAME
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s ".bias", l), n)
    if (load_bias(ld, NAME("attn_output"), d, &L->wo_bias) ||
        load_bias(ld, NAME("ffn_down"), d, &L->w2_bias))
        return -1;
#undef NAME
    return 0;
}

static int load_weights(loader *ld) {
    const rd_config *c = &ld->f->cfg;
    rd_weights *w = &ld->f->w;
    if (load_matrix(ld, "token_embd.weight", c->vocab_size, c->dim, &w->tok_embeddings))
        return -1;
    if (!(w->layers = calloc((size_t)c->n_layers, sizeof *w->layers)))
        return rd_error_set(ld->err, "%s: out of memory", ld->path);
    for (int l = 0; l < c->n_layers; l++)
        if (load_layer(ld, l, &w->layers[l])) return -1;
    if (load_vector(ld, "output_norm.weight", c->dim, &w->final_norm)) return -1;
    w->tied_classifier = rd_gguf_tensor_get(ld->g, "output.weight") == NULL;
    if (w->tied_classifier) {
        w->classifier = w->tok_embeddings;
        return 0;
    }
    return load_matrix(ld, "output.weight", c->vocab_size, c->dim, &w->classifier);
}

/* ---- vocabulary -------------------------------------------------------------------- */

/* The array key `key` of n elements (absent → NULL when !required). */
static int key_array(loader *ld, const char *key, int required, uint64_t n,
                     const rd_gguf_value **out) {
    const rd_gguf_value *v = rd_gguf_get(ld->g, key);
    *out = NULL;
    if (!v) {
        if (required)
            return rd_error_set(ld->err, "%s: the tokenizer vocabulary (%s) is missing",
                                ld->path, key);
        return 0;
    }
    if (v->type != RD_GGUF_ARRAY)
        return rd_error_set(ld->err, "%s: key %s is of type %s, not an array", ld->path, key,
                            rd_gguf_vtype_name(v->type));
    if (n != UINT64_MAX && v->n != n)
        return rd_error_set(ld->err, "%s: %s has %" PRIu64 " entries but the vocabulary has %"
                                     PRIu64, ld->path, key, v->n, n);
    *out = v;
    return 0;
}

/* A special token id: absent → -1; else it must be an id of the vocabulary. */
static int special_id(loader *ld, const char *key, int n_vocab, int *out) {
    const rd_gguf_value *v = rd_gguf_get(ld->g, key);
    *out = -1;
    if (!v) return 0;
    int64_t id;
    if (rd_gguf_value_int(v, &id))
        return rd_error_set(ld->err, "%s: key %s is of type %s, not an integer", ld->path, key,
                            rd_gguf_vtype_name(v->type));
    if (id < 0 || id >= n_vocab)
        return rd_error_set(ld->err, "%s: %s = %" PRId64 " is out of range (token ids 0 to %d)",
                            ld->path, key, id, n_vocab - 1);
    *out = (int)id;
    return 0;
}

/* Whether the file declares a tokenizer redit reads: 1 yes, 0 none, -1 error. */
static int tokenizer_kind(loader *ld) {
    int present;
    const rd_gguf_value *model = key_string(ld, "tokenizer.ggml.model", &present);
    if (present && !model) return -1;
    if (!present || str_is(model, "no_vocab")) {
        if (rd_gguf_get(ld->g, "tokenizer.ggml.tokens"))
            return rd_error_set(ld->err, "%s: tokenizer.ggml.tokens is present but "
                                         "tokenizer.ggml.model is missing", ld->path);
        return 0;
    }
    if (!str_is(model, "llama")) {
        char name[64];
        return rd_error_set(ld->err, "%s: tokenizer model '%s' (tokenizer.ggml.model) is not "
                                     "supported: only 'llama' (SentencePiece BPE)",
                            ld->path, rd_gguf_printable(name, sizeof name, model->as.s,
                                                        model->n));
    }
    return 1;
}

typedef struct vocab_arrays {
    const char **pieces;
    size_t *lens;
    float *scores;
    int *types;
} vocab_arrays;

static void vocab_arrays_free(vocab_arrays *a) {
    free(a->pieces);
    free(a->lens);
    free(a->scores);
    free(a->types);
}

/* Fills the per-token arrays from tokens (strings), scores (floats, optional) and
 * token_type (integers 1..6, optional). */
static int fill_vocab(loader *ld, int n, const rd_gguf_value *tokens,
                      const rd_gguf_value *scores, const rd_gguf_value *types,
                      vocab_arrays *a) {
    if (tokens->elem_type != RD_GGUF_STRING)
        return rd_error_set(ld->err, "%s: tokenizer.ggml.tokens is an array of %s, not of "
                                     "strings", ld->path, rd_gguf_vtype_name(tokens->elem_type));
    if (scores && scores->elem_type != RD_GGUF_FLOAT32 && scores->elem_type != RD_GGUF_FLOAT64)
        return rd_error_set(ld->err, "%s: tokenizer.ggml.scores is an array of %s, not of "
                                     "floats", ld->path, rd_gguf_vtype_name(scores->elem_type));
    a->pieces = malloc((size_t)n * sizeof *a->pieces);
    a->lens = malloc((size_t)n * sizeof *a->lens);
    a->scores = scores ? malloc((size_t)n * sizeof *a->scores) : NULL;
    a->types = types ? malloc((size_t)n * sizeof *a->types) : NULL;
    if (!a->pieces || !a->lens || (scores && !a->scores) || (types && !a->types))
        return rd_error_set(ld->err, "%s: out of memory reading the tokenizer", ld->path);
    for (int i = 0; i < n; i++) {
        rd_gguf_value e;
        rd_gguf_array_elem(tokens, (uint64_t)i, &e);
        a->pieces[i] = e.as.s;
        a->lens[i] = (size_t)e.n;
        if (scores) {
            rd_gguf_array_elem(scores, (uint64_t)i, &e);
            a->scores[i] = (float)e.as.f;
        }
        if (types) {
            int64_t ty;
            rd_gguf_array_elem(types, (uint64_t)i, &e);
            if (rd_gguf_value_int(&e, &ty))
                return rd_error_set(ld->err, "%s: tokenizer.ggml.token_type is an array of %s, "
                                             "not of integers",
                                    ld->path, rd_gguf_vtype_name(types->elem_type));
            if (ty < RD_TOKEN_NORMAL || ty > RD_TOKEN_BYTE)
                return rd_error_set(ld->err, "%s: tokenizer.ggml.token_type of token %d is %"
                                             PRId64 " (valid types are 1 to 6)",
                                    ld->path, i, ty);
            a->types[i] = (int)ty;
        }
    }
    return 0;
}

static int load_vocab(loader *ld) {
    int kind = tokenizer_kind(ld);
    if (kind <= 0) return kind;
    const rd_gguf_value *tokens, *scores, *types;
    if (key_array(ld, "tokenizer.ggml.tokens", 1, UINT64_MAX, &tokens)) return -1;
    if (tokens->n == 0)
        return rd_error_set(ld->err, "%s: the tokenizer vocabulary (tokenizer.ggml.tokens) is "
                                     "empty", ld->path);
    if (tokens->n != (uint64_t)ld->f->cfg.vocab_size)
        return rd_error_set(ld->err, "%s: the tokenizer has %" PRIu64 " tokens but "
                                     "token_embd.weight has %d rows",
                            ld->path, tokens->n, ld->f->cfg.vocab_size);
    int n = ld->f->cfg.vocab_size;
    if (key_array(ld, "tokenizer.ggml.scores", 0, (uint64_t)n, &scores) ||
        key_array(ld, "tokenizer.ggml.token_type", 0, (uint64_t)n, &types))
        return -1;
    rd_vocab_spec spec = {.n_pieces = n};
    int prefix = 1;
    const rd_gguf_value *v = rd_gguf_get(ld->g, "tokenizer.ggml.add_space_prefix");
    if (v && v->type != RD_GGUF_BOOL)
        return rd_error_set(ld->err, "%s: key tokenizer.ggml.add_space_prefix is of type %s, not a "
                                     "bool", ld->path, rd_gguf_vtype_name(v->type));
    if (v) prefix = (int)v->as.u;
    if (special_id(ld, "tokenizer.ggml.bos_token_id", n, &spec.bos_id) ||
        special_id(ld, "tokenizer.ggml.eos_token_id", n, &spec.eos_id) ||
        special_id(ld, "tokenizer.ggml.unknown_token_id", n, &spec.unk_id))
        return -1;
    vocab_arrays a = {0};
    if (fill_vocab(ld, n, tokens, scores, types, &a)) {
        vocab_arrays_free(&a);
        return -1;
    }
    spec.pieces = a.pieces;
    spec.lens = a.lens;
    spec.scores = a.scores;
    spec.types = a.types;
    spec.add_dummy_prefix = prefix;
    int rc = rd_vocab_from_spec(&ld->f->vocab, &spec, ld->path, ld->err);
    vocab_arrays_free(&a);
    return rc;
}

/* ---- entry point ------------------------------------------------------------------- */

int rd_gguf_load(const char *path, rd_model_file *out, rd_error *err) {
    rd_model_file f;
    memset(&f, 0, sizeof f);
    rd_gguf *g = NULL;
    if (rd_weights_map_file(&f.w, path, err)) return -1;
    if (rd_gguf_parse(f.w.map, f.w.map_size, path, &g, err)) goto fail;
    loader ld = {.path = path, .err = err, .g = g, .f = &f};
    if (check_architecture(&ld) || read_config(&ld, &f.cfg) || load_weights(&ld) ||
        load_vocab(&ld) || read_name(&ld))
        goto fail;
    f.format = RD_FORMAT_GGUF;
    f.gguf_version = g->version;
    rd_gguf_free(g);
    *out = f;
    return 0;
fail:
    rd_gguf_free(g);
    rd_vocab_release(&f.vocab);
    rd_weights_release(&f.w);
    return -1;
}
