/* GGUF reading and writing (src/io/gguf*.c): round trips through rd_gguf_write in every
 * type, hand-built files (v2, mixed types, every value type, nested arrays) and one test
 * per kind of bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/io/gguf.h"
#include "helpers/bytebuf.h"
#include "helpers/tiny_model.h"
#include "checks.h"
#include "core/kernels.h"
#include "redit/model_file.h"
#include "redit/tokenizer.h"

/* ---- fixture: one temporary directory per test ---------------------------------------- */

typedef struct fixture {
    char dir[512];
    char path[600]; /* dir/model.gguf */
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tiny_tempdir(fx->dir, sizeof fx->dir)) return -1;
    snprintf(fx->path, sizeof fx->path, "%s/model.gguf", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tiny_rmdir(fx->dir);
    free(fx);
    return 0;
}


/* ---- checks on loaded models ---------------------------------------------------------- */


static void assert_in_mapping(const rd_weights *w, const void *p) {
    const char *m = w->map;
    assert_true((const char *)p >= m && (const char *)p < m + w->map_size);
}

/* loaded must hold orig converted to `type` and back: orig widened to f32, narrowed with the
 * type's from_f32, widened again (exact for F32). */
static void assert_matrix_converted(const rd_matrix *loaded, const rd_matrix *orig,
                                    rd_dtype type) {
    assert_int_equal(loaded->type, type);
    assert_int_equal(loaded->rows, orig->rows);
    assert_int_equal(loaded->cols, orig->cols);
    const rd_dtype_info *info = rd_dtype_info_of(type);
    size_t n = (size_t)orig->cols;
    float *src = malloc(n * sizeof *src), *want = malloc(n * sizeof *want);
    float *got = malloc(n * sizeof *got);
    void *conv = malloc(n * sizeof(float));
    assert_true(src && want && got && conv);
    for (int64_t r = 0; r < orig->rows; r++) {
        rd_matrix_row_f32(orig, r, src);
        info->from_f32(src, conv, n);
        info->to_f32(conv, want, n);
        rd_matrix_row_f32(loaded, r, got);
        if (memcmp(got, want, n * sizeof *got) != 0) fail_msg("row %lld differs", (long long)r);
    }
    free(src);
    free(want);
    free(got);
    free(conv);
}

static void assert_vector_equal(const float *a, const float *b, int n) {
    assert_non_null(a);
    assert_memory_equal(a, b, (size_t)n * sizeof *a);
}

static void assert_weights_converted(const rd_model_file *got, const rd_model_file *orig,
                                     rd_dtype type) {
    const rd_config *c = &orig->cfg;
    assert_matrix_converted(&got->w.tok_embeddings, &orig->w.tok_embeddings, type);
    assert_in_mapping(&got->w, got->w.tok_embeddings.data);
    for (int l = 0; l < c->n_layers; l++) {
        const rd_layer_weights *g = &got->w.layers[l], *o = &orig->w.layers[l];
        assert_vector_equal(g->attn_norm, o->attn_norm, c->dim);
        assert_vector_equal(g->ffn_norm, o->ffn_norm, c->dim);
        assert_in_mapping(&got->w, g->attn_norm);
        assert_matrix_converted(&g->wq, &o->wq, type);
        assert_matrix_converted(&g->wk, &o->wk, type);
        assert_matrix_converted(&g->wv, &o->wv, type);
        assert_matrix_converted(&g->wo, &o->wo, type);
        assert_matrix_converted(&g->w1, &o->w1, type);
        assert_matrix_converted(&g->w2, &o->w2, type);
        assert_matrix_converted(&g->w3, &o->w3, type);
        assert_in_mapping(&got->w, g->w2.data);
    }
    assert_vector_equal(got->w.final_norm, orig->w.final_norm, c->dim);
    assert_int_equal(got->w.tied_classifier, orig->w.tied_classifier);
    if (orig->w.tied_classifier) {
        assert_ptr_equal(got->w.classifier.data, got->w.tok_embeddings.data);
        assert_int_equal(got->w.classifier.rows, c->vocab_size);
    } else {
        assert_matrix_converted(&got->w.classifier, &orig->w.classifier, type);
    }
}

/* ---- round trips through the writer --------------------------------------------------- */

static rd_config q8_friendly_config(void) {
    rd_config c = tiny_config(); /* GQA: 8 heads, 4 kv heads */
    c.hidden_dim = 192;          /* a multiple of Q8_0's 32-element blocks */
    return c;
}

static void roundtrip(fixture *fx, const rd_config *cfg, rd_dtype type, int tied) {
    rd_model_file orig = {0}, got = {0};
    rd_error err = {{0}};
    assert_int_equal(tiny_model_init(&orig, cfg, tied, 7 + (uint64_t)type), 0);
    if (rd_gguf_write(fx->path, &orig, type, &err)) fail_msg("write: %s", err.msg);
    assert_int_equal(tiny_count_entries(fx->dir), 1); /* no temporary file left behind */
    if (rd_gguf_load(fx->path, &got, &err)) fail_msg("load: %s", err.msg);
    assert_int_equal(got.format, RD_FORMAT_GGUF);
    assert_int_equal(got.gguf_version, 3);
    assert_string_equal(got.name, orig.name);
    assert_int_equal(got.vocab.n, 0);
    assert_config_equal(&got.cfg, cfg);
    assert_weights_converted(&got, &orig, type);
    /* Writing the loaded model again in its own type changes no byte of any matrix. */
    rd_model_file again = {0};
    char path2[700];
    snprintf(path2, sizeof path2, "%s/again.gguf", fx->dir);
    if (rd_gguf_write(path2, &got, type, &err)) fail_msg("write: %s", err.msg);
    if (rd_gguf_load(path2, &again, &err)) fail_msg("load: %s", err.msg);
    const rd_matrix *pairs[][2] = {{&got.w.tok_embeddings, &again.w.tok_embeddings},
                                   {&got.w.layers[0].w2, &again.w.layers[0].w2},
                                   {&got.w.layers[cfg->n_layers - 1].wk,
                                    &again.w.layers[cfg->n_layers - 1].wk},
                                   {&got.w.classifier, &again.w.classifier}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        assert_int_equal(pairs[i][0]->row_bytes, pairs[i][1]->row_bytes);
        assert_memory_equal(pairs[i][0]->data, pairs[i][1]->data,
                            (size_t)pairs[i][0]->rows * pairs[i][0]->row_bytes);
    }
    rd_model_file_release(&again);
    unlink(path2);
    rd_model_file_release(&got);
    rd_model_file_release(&orig);
}

static void test_roundtrip_f32(void **state) {
    rd_config c = tiny_config();
    roundtrip(*state, &c, RD_DTYPE_F32, 1);
    roundtrip(*state, &c, RD_DTYPE_F32, 0);
}

static void test_roundtrip_f16(void **state) {
    rd_config c = tiny_config();
    roundtrip(*state, &c, RD_DTYPE_F16, 1);
    roundtrip(*state, &c, RD_DTYPE_F16, 0);
}

static void test_roundtrip_bf16(void **state) {
    rd_config c = tiny_config();
    roundtrip(*state, &c, RD_DTYPE_BF16, 0);
    roundtrip(*state, &c, RD_DTYPE_BF16, 1);
}

static void test_roundtrip_q8_0(void **state) {
    rd_config c = q8_friendly_config();
    roundtrip(*state, &c, RD_DTYPE_Q8_0, 1);
    roundtrip(*state, &c, RD_DTYPE_Q8_0, 0);
}

/* Multi-head attention (kv heads = heads) and a single layer, another shape. */
static void test_roundtrip_mha(void **state) {
    rd_config c = tiny_config();
    c.n_kv_heads = c.n_heads;
    c.n_layers = 1;
    roundtrip(*state, &c, RD_DTYPE_F16, 0);
}

static void test_metadata_roundtrip(void **state) {
    fixture *fx = *state;
    rd_config c = tiny_config();
    c.seq_len = 4096;
    c.norm_eps = 1e-6f;
    c.rope_theta = 500000.0f;
    c.n_kv_heads = 2;
    rd_model_file orig = {0}, got = {0};
    rd_error err = {{0}};
    assert_int_equal(tiny_model_init(&orig, &c, 0, 3), 0);
    snprintf(orig.name, sizeof orig.name, "Tiny Llämа-2 (test)");
    if (rd_gguf_write(fx->path, &orig, RD_DTYPE_F32, &err)) fail_msg("%s", err.msg);
    if (rd_gguf_load(fx->path, &got, &err)) fail_msg("%s", err.msg);
    assert_config_equal(&got.cfg, &c);
    assert_string_equal(got.name, orig.name);
    rd_model_file_release(&got);

    /* The file itself, through the generic reader. */
    bytebuf b;
    bb_init(&b);
    assert_int_equal(bb_read_file(&b, fx->path), 0);
    rd_gguf *g = NULL;
    if (rd_gguf_parse(b.data, b.len, fx->path, &g, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->alignment, 32);
    assert_int_equal(g->data_offset % 32, 0);
    const rd_gguf_value *v = rd_gguf_get(g, "general.architecture");
    assert_non_null(v);
    assert_int_equal(v->type, RD_GGUF_STRING);
    assert_true(v->n == 5 && memcmp(v->as.s, "llama", 5) == 0);
    v = rd_gguf_get(g, "general.alignment");
    assert_true(v && v->type == RD_GGUF_UINT32 && v->as.u == 32);
    v = rd_gguf_get(g, "general.name");
    assert_true(v && v->n == strlen(orig.name) && !memcmp(v->as.s, orig.name, v->n));
    struct { const char *key; uint64_t want; } ints[] = {
        {"llama.embedding_length", 64},     {"llama.feed_forward_length", 172},
        {"llama.block_count", 3},           {"llama.attention.head_count", 8},
        {"llama.attention.head_count_kv", 2}, {"llama.context_length", 4096},
        {"llama.rope.dimension_count", 8},  {"llama.vocab_size", 300}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        v = rd_gguf_get(g, ints[i].key);
        if (!v || v->type != RD_GGUF_UINT32 || v->as.u != ints[i].want)
            fail_msg("%s wrong", ints[i].key);
    }
    v = rd_gguf_get(g, "llama.attention.layer_norm_rms_epsilon");
    assert_true(v && v->type == RD_GGUF_FLOAT32 && (float)v->as.f == 1e-6f);
    v = rd_gguf_get(g, "llama.rope.freq_base");
    assert_true(v && v->type == RD_GGUF_FLOAT32 && v->as.f == 500000.0);
    assert_null(rd_gguf_get(g, "tokenizer.ggml.model"));
    assert_int_equal(g->n_tensors, 1 + 9 * 3 + 2); /* untied: output.weight too */
    const rd_gguf_tensor *t = rd_gguf_tensor_get(g, "blk.2.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 172); /* fastest first: columns */
    assert_int_equal(t->ne[1], 64);
    assert_int_equal(t->type->id, 0);
    t = rd_gguf_tensor_get(g, "blk.0.attn_norm.weight");
    assert_true(t && t->n_dims == 1 && t->ne[0] == 64);
    for (uint64_t i = 0; i < g->n_tensors; i++) assert_int_equal(g->tensors[i].offset % 32, 0);
    rd_gguf_free(g);
    bb_free(&b);
    rd_model_file_release(&orig);
}

static rd_vocab make_vocab(int n, int add_prefix) {
    rd_error err = {{0}};
    rd_vocab v;
    if (tiny_vocab(&v, n, add_prefix, 1, &err)) fail_msg("%s", err.msg);
    return v;
}

static rd_tokenizer *tokenizer_of(const rd_vocab *v) {
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_from_vocab(v, "test vocab", &err);
    if (!t) fail_msg("%s", err.msg);
    return t;
}

static void assert_tokenizers_equal(const rd_tokenizer *a, const rd_tokenizer *b) {
    assert_int_equal(rd_tokenizer_vocab_size(a), rd_tokenizer_vocab_size(b));
    assert_int_equal(rd_tokenizer_bos(a), rd_tokenizer_bos(b));
    assert_int_equal(rd_tokenizer_eos(a), rd_tokenizer_eos(b));
    assert_int_equal(rd_tokenizer_unk(a), rd_tokenizer_unk(b));
    assert_int_equal(rd_tokenizer_adds_dummy_prefix(a), rd_tokenizer_adds_dummy_prefix(b));
    for (int i = 0; i < rd_tokenizer_vocab_size(a); i++) {
        size_t la, lb;
        const char *pa = rd_tokenizer_piece(a, i, &la), *pb = rd_tokenizer_piece(b, i, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(pa, pb, la);
        assert_true(rd_tokenizer_score(a, i) == rd_tokenizer_score(b, i));
        assert_int_equal(rd_tokenizer_type(a, i), rd_tokenizer_type(b, i));
    }
}

static void test_tokenizer_roundtrip(void **state) {
    fixture *fx = *state;
    rd_config c = tiny_config(); /* vocab 300 */
    for (int prefix = 0; prefix <= 1; prefix++) {
        rd_model_file orig = {0}, got = {0};
        rd_error err = {{0}};
        assert_int_equal(tiny_model_init(&orig, &c, 1, 11), 0);
        orig.vocab = make_vocab(c.vocab_size, prefix);
        if (rd_gguf_write(fx->path, &orig, RD_DTYPE_BF16, &err)) fail_msg("%s", err.msg);
        if (rd_gguf_load(fx->path, &got, &err)) fail_msg("%s", err.msg);
        assert_int_equal(got.vocab.n, c.vocab_size);
        rd_tokenizer *ta = tokenizer_of(&orig.vocab), *tb = tokenizer_of(&got.vocab);
        assert_tokenizers_equal(tb, ta);
        /* Both encode text the same way. */
        const char *text = "wa wb <s> \xc3\xa9 wz";
        int *ia = NULL, *ib = NULL;
        size_t na = 0, nb = 0;
        size_t tl = strlen(text);
        assert_int_equal(rd_tokenizer_encode(ta, text, tl, 1, 0, &ia, &na, &err), 0);
        assert_int_equal(rd_tokenizer_encode(tb, text, tl, 1, 0, &ib, &nb, &err), 0);
        assert_int_equal(na, nb);
        assert_memory_equal(ia, ib, na * sizeof *ia);
        free(ia);
        free(ib);
        rd_tokenizer_free(ta);
        rd_tokenizer_free(tb);
        rd_model_file_release(&got);
        rd_model_file_release(&orig);
    }
}

/* A Hugging Face (rotate_half) model is written with llama.cpp's Q/K row permutation: the
 * loaded model (adjacent pairs) must give the same rotated vectors, up to that order. */
static void test_write_permutes_half_rope(void **state) {
    fixture *fx = *state;
    rd_config c = tiny_config();
    c.rope_layout = RD_ROPE_HALF;
    rd_model_file orig = {0}, got = {0};
    rd_error err = {{0}};
    assert_int_equal(tiny_model_init(&orig, &c, 1, 5), 0);
    if (rd_gguf_write(fx->path, &orig, RD_DTYPE_F32, &err)) fail_msg("%s", err.msg);
    if (rd_gguf_load(fx->path, &got, &err)) fail_msg("%s", err.msg);
    assert_int_equal(got.cfg.rope_layout, RD_ROPE_ADJACENT);
    int hs = rd_config_head_dim(&c), d = c.dim, kv = rd_config_kv_dim(&c);
    float x[64], qh[64], qa[64];
    for (int i = 0; i < d; i++) x[i] = sinf(0.3f * (float)i);
    for (int which = 0; which < 3; which++) {
        const rd_matrix *o = which == 0 ? &orig.w.layers[1].wq
                           : which == 1 ? &orig.w.layers[1].wk : &orig.w.layers[1].wv;
        const rd_matrix *g = which == 0 ? &got.w.layers[1].wq
                           : which == 1 ? &got.w.layers[1].wk : &got.w.layers[1].wv;
        int rows = which == 0 ? d : kv, heads = rows / hs;
        rd_matmul_naive(qh, x, o, 1);
        rd_matmul_naive(qa, x, g, 1);
        if (which == 2) { /* V is not rotated, hence not permuted */
            assert_memory_equal(qh, qa, (size_t)rows * sizeof(float));
            continue;
        }
        rd_rope(qh, heads, hs, 5, c.rope_theta, RD_ROPE_HALF);
        rd_rope(qa, heads, hs, 5, c.rope_theta, RD_ROPE_ADJACENT);
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < hs / 2; i++)
                for (int j = 0; j < 2; j++)
                    assert_float_equal(qa[h * hs + 2 * i + j], qh[h * hs + j * hs / 2 + i], 1e-5);
    }
    rd_model_file_release(&got);
    rd_model_file_release(&orig);
}

static void test_write_refuses_and_leaves_nothing(void **state) {
    fixture *fx = *state;
    rd_config c = tiny_config(); /* hidden 172: not a multiple of 32 */
    rd_model_file m = {0}, got = {0};
    rd_error err = {{0}};
    assert_int_equal(tiny_model_init(&m, &c, 1, 2), 0);
    /* An existing file survives a failed write untouched. */
    assert_int_equal(rd_gguf_write(fx->path, &m, RD_DTYPE_F16, &err), 0);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    off_t size = st.st_size;
    assert_int_equal(rd_gguf_write(fx->path, &m, RD_DTYPE_Q8_0, &err), -1);
    assert_non_null(strstr(err.msg, fx->path));
    assert_non_null(strstr(err.msg, "ffn_down"));
    assert_non_null(strstr(err.msg, "multiple of"));
    assert_int_equal(tiny_count_entries(fx->dir), 1);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_size, size);
    assert_int_equal(rd_gguf_load(fx->path, &got, &err), 0);
    rd_model_file_release(&got);
    /* Unwritable place. */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/m.gguf", fx->dir);
    assert_int_equal(rd_gguf_write(bad, &m, RD_DTYPE_F32, &err), -1);
    assert_non_null(strstr(err.msg, bad));
    /* A bad config is refused before anything is created. */
    char other[700];
    snprintf(other, sizeof other, "%s/other.gguf", fx->dir);
    m.cfg.n_heads = 5;
    assert_int_equal(rd_gguf_write(other, &m, RD_DTYPE_F32, &err), -1);
    assert_non_null(strstr(err.msg, "divide"));
    m.cfg = c;
    /* Weights that disagree with the config, or are missing. */
    m.w.layers[2].wk.rows = 8;
    assert_int_equal(rd_gguf_write(other, &m, RD_DTYPE_F32, &err), -1);
    assert_non_null(strstr(err.msg, "blk.2.attn_k.weight"));
    assert_non_null(strstr(err.msg, "8 x 64"));
    m.w.layers[2].wk.rows = rd_config_kv_dim(&c);
    const float *norm = m.w.final_norm;
    m.w.final_norm = NULL;
    assert_int_equal(rd_gguf_write(other, &m, RD_DTYPE_F32, &err), -1);
    assert_non_null(strstr(err.msg, "output_norm.weight"));
    m.w.final_norm = norm;
    /* A tokenizer whose size disagrees with the model. */
    m.vocab = make_vocab(280, 1);
    assert_int_equal(rd_gguf_write(other, &m, RD_DTYPE_F32, &err), -1);
    assert_non_null(strstr(err.msg, "tokenizer"));
    assert_int_equal(tiny_count_entries(fx->dir), 1);
    rd_model_file_release(&m);
}

/* ---- hand-built files ----------------------------------------------------------------- */

/* A GGUF file under construction: key/values and tensors that tests add, replace, remove
 * or corrupt before serialising. */
#define MAX_ENT 64
typedef struct kv_ent {
    char key[128];
    bytebuf val; /* u32 value type, then the value */
} kv_ent;

typedef struct t_ent {
    char name[128];
    uint32_t type, n_dims;
    uint64_t ne[8];
    bytebuf data;
    int has_offset;
    uint64_t offset; /* explicit data offset when has_offset */
    int seed;        /* of the test values in data */
} t_ent;

typedef struct gspec {
    char magic[4];
    uint32_t version;
    uint32_t layout_alignment; /* how the builder pads (the key is set separately) */
    int64_t claim_tensors, claim_kv; /* -1: the real counts */
    kv_ent kv[MAX_ENT];
    int n_kv;
    t_ent t[MAX_ENT];
    int n_t;
} gspec;

static gspec *gs_new(void) {
    gspec *g = calloc(1, sizeof *g);
    assert_non_null(g);
    memcpy(g->magic, "GGUF", 4);
    g->version = 3;
    g->layout_alignment = 32;
    g->claim_tensors = g->claim_kv = -1;
    return g;
}

static void gs_free(gspec *g) {
    for (int i = 0; i < g->n_kv; i++) bb_free(&g->kv[i].val);
    for (int i = 0; i < g->n_t; i++) bb_free(&g->t[i].data);
    free(g);
}

/* The value buffer of key, emptied (created at the end when new). */
static bytebuf *gs_kv(gspec *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) {
            bb_reset(&g->kv[i].val);
            return &g->kv[i].val;
        }
    assert_true(g->n_kv < MAX_ENT);
    kv_ent *e = &g->kv[g->n_kv++];
    snprintf(e->key, sizeof e->key, "%s", key);
    bb_init(&e->val);
    return &e->val;
}

static void gs_del(gspec *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) {
            bb_free(&g->kv[i].val);
            memmove(&g->kv[i], &g->kv[i + 1], (size_t)(g->n_kv - i - 1) * sizeof g->kv[0]);
            g->n_kv--;
            return;
        }
    fail_msg("no key %s", key);
}

static void gs_u32(gspec *g, const char *key, uint32_t v) {
    bytebuf *b = gs_kv(g, key);
    bb_u32(b, RD_GGUF_UINT32);
    bb_u32(b, v);
}

static void gs_i32(gspec *g, const char *key, int32_t v) {
    bytebuf *b = gs_kv(g, key);
    bb_u32(b, RD_GGUF_INT32);
    bb_i32(b, v);
}

static void gs_u64(gspec *g, const char *key, uint64_t v) {
    bytebuf *b = gs_kv(g, key);
    bb_u32(b, RD_GGUF_UINT64);
    bb_u64(b, v);
}

static void gs_f32(gspec *g, const char *key, float v) {
    bytebuf *b = gs_kv(g, key);
    bb_u32(b, RD_GGUF_FLOAT32);
    bb_f32(b, v);
}

static void gs_str(gspec *g, const char *key, const char *s) {
    bytebuf *b = gs_kv(g, key);
    bb_u32(b, RD_GGUF_STRING);
    bb_str64(b, s, (size_t)-1);
}

static void gs_bool(gspec *g, const char *key, uint8_t v) {
    bytebuf *b = gs_kv(g, key);
    bb_u32(b, RD_GGUF_BOOL);
    bb_u8(b, v);
}

static float test_value(uint64_t i, int seed) {
    return 0.5f * sinf(0.37f * (float)i + (float)seed);
}

/* Bytes of n elements of GGML type id (4 per element for ids the table lacks). */
static size_t type_bytes(uint32_t id, uint64_t n) {
    const rd_gguf_type *t = rd_gguf_type_of(id);
    if (!t) return (size_t)n * 4;
    return (size_t)(n / t->block_elems * t->block_bytes);
}

/* Fills t->data with n elements of its type: readable types get test values, the others
 * zero bytes. */
static void fill_tensor(t_ent *t, int seed) {
    t->seed = seed;
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims && d < 8; d++) n *= t->ne[d];
    bb_reset(&t->data);
    const rd_gguf_type *ty = rd_gguf_type_of(t->type);
    if (!ty || ty->dtype < 0 || n % ty->block_elems) {
        bb_zeros(&t->data, type_bytes(t->type, n));
        return;
    }
    float *f = malloc((size_t)n * sizeof *f);
    assert_non_null(f);
    for (uint64_t i = 0; i < n; i++) f[i] = test_value(i, seed);
    size_t bytes = type_bytes(t->type, n);
    bb_zeros(&t->data, bytes);
    rd_dtype_info_of((rd_dtype)ty->dtype)->from_f32(f, t->data.data, (size_t)n);
    free(f);
}

static t_ent *gs_find_tensor(gspec *g, const char *name) {
    for (int i = 0; i < g->n_t; i++)
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    fail_msg("no tensor %s", name);
    return NULL;
}

static t_ent *gs_tensor(gspec *g, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1) {
    assert_true(g->n_t < MAX_ENT);
    t_ent *t = &g->t[g->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    bb_init(&t->data);
    fill_tensor(t, g->n_t);
    return t;
}

static void gs_retype(gspec *g, const char *name, uint32_t type) {
    t_ent *t = gs_find_tensor(g, name);
    t->type = type;
    fill_tensor(t, (int)(t - g->t) + 1);
}

static void gs_reshape(gspec *g, const char *name, uint64_t ne0, uint64_t ne1) {
    t_ent *t = gs_find_tensor(g, name);
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    fill_tensor(t, t->seed);
}

static void gs_del_tensor(gspec *g, const char *name) {
    t_ent *t = gs_find_tensor(g, name);
    bb_free(&t->data);
    int i = (int)(t - g->t);
    memmove(&g->t[i], &g->t[i + 1], (size_t)(g->n_t - i - 1) * sizeof g->t[0]);
    g->n_t--;
}

/* Serialises g into out. *tensor_info_at (optional) receives the file offset of each
 * tensor info (for patching), *data_at the start of the data. */
static void gs_build(const gspec *g, bytebuf *out, size_t *tensor_info_at, size_t *data_at) {
    bb_reset(out);
    bb_bytes(out, g->magic, 4);
    bb_u32(out, g->version);
    bb_u64(out, g->claim_tensors >= 0 ? (uint64_t)g->claim_tensors : (uint64_t)g->n_t);
    bb_u64(out, g->claim_kv >= 0 ? (uint64_t)g->claim_kv : (uint64_t)g->n_kv);
    for (int i = 0; i < g->n_kv; i++) {
        bb_str64(out, g->kv[i].key, (size_t)-1);
        bb_bytes(out, g->kv[i].val.data, g->kv[i].val.len);
    }
    uint64_t a = g->layout_alignment, off = 0;
    for (int i = 0; i < g->n_t; i++) {
        const t_ent *t = &g->t[i];
        if (tensor_info_at) tensor_info_at[i] = out->len;
        bb_str64(out, t->name, (size_t)-1);
        bb_u32(out, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && d < 8; d++) bb_u64(out, t->ne[d]);
        bb_u32(out, t->type);
        bb_u64(out, t->has_offset ? t->offset : off);
        off += (t->data.len + a - 1) / a * a;
    }
    bb_pad(out, (size_t)a);
    if (data_at) *data_at = out->len;
    for (int i = 0; i < g->n_t; i++) {
        bb_bytes(out, g->t[i].data.data, g->t[i].data.len);
        bb_pad(out, (size_t)a);
    }
}

/* The mini model: dim 32, hidden 64, 2 layers, 4 heads, 2 kv heads, vocab 24, F32 tensors,
 * a 24-piece llama tokenizer, untied classifier. */
enum { M_DIM = 32, M_HID = 64, M_LAYERS = 2, M_HEADS = 4, M_KV = 2, M_VOCAB = 24 };

static void gs_tokenizer(gspec *g, int n) {
    gs_str(g, "tokenizer.ggml.model", "llama");
    bytebuf *b = gs_kv(g, "tokenizer.ggml.tokens");
    bb_u32(b, RD_GGUF_ARRAY);
    bb_u32(b, RD_GGUF_STRING);
    bb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        char p[16];
        if (i == 0) snprintf(p, sizeof p, "<unk>");
        else if (i == 1) snprintf(p, sizeof p, "<s>");
        else if (i == 2) snprintf(p, sizeof p, "</s>");
        else snprintf(p, sizeof p, "\xe2\x96\x81%c", 'a' + i - 3);
        bb_str64(b, p, (size_t)-1);
    }
    b = gs_kv(g, "tokenizer.ggml.scores");
    bb_u32(b, RD_GGUF_ARRAY);
    bb_u32(b, RD_GGUF_FLOAT32);
    bb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) bb_f32(b, -(float)i);
    b = gs_kv(g, "tokenizer.ggml.token_type");
    bb_u32(b, RD_GGUF_ARRAY);
    bb_u32(b, RD_GGUF_INT32);
    bb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) bb_i32(b, i == 0 ? 2 : i < 3 ? 3 : 1);
    gs_u32(g, "tokenizer.ggml.bos_token_id", 1);
    gs_u32(g, "tokenizer.ggml.eos_token_id", 2);
    gs_u32(g, "tokenizer.ggml.unknown_token_id", 0);
}

/* The mini model with other widths (dim a multiple of M_HEADS). */
static gspec *mini_spec_dims(uint32_t version, int dim, int hid) {
    gspec *g = gs_new();
    g->version = version;
    gs_str(g, "general.architecture", "llama");
    gs_str(g, "general.name", "mini");
    gs_u32(g, "llama.embedding_length", (uint32_t)dim);
    gs_u32(g, "llama.feed_forward_length", (uint32_t)hid);
    gs_u32(g, "llama.block_count", M_LAYERS);
    gs_u32(g, "llama.attention.head_count", M_HEADS);
    gs_u32(g, "llama.attention.head_count_kv", M_KV);
    gs_u32(g, "llama.context_length", 32);
    gs_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gs_f32(g, "llama.rope.freq_base", 10000.0f);
    gs_tokenizer(g, M_VOCAB);
    const int kv = M_KV * (dim / M_HEADS);
    gs_tensor(g, "token_embd.weight", 0, dim, M_VOCAB);
    for (int l = 0; l < M_LAYERS; l++) {
        char n[64];
#define T(s, ne0, ne1)                                                                       \
    (snprintf(n, sizeof n, "blk.%d." s ".weight", l), gs_tensor(g, n, 0, ne0, ne1))
        T("attn_norm", dim, 0);
        T("attn_q", dim, dim);
        T("attn_k", dim, kv);
        T("attn_v", dim, kv);
        T("attn_output", dim, dim);
        T("ffn_norm", dim, 0);
        T("ffn_gate", dim, hid);
        T("ffn_down", hid, dim);
        T("ffn_up", dim, hid);
#undef T
    }
    gs_tensor(g, "output_norm.weight", 0, dim, 0);
    gs_tensor(g, "output.weight", 0, dim, M_VOCAB);
    return g;
}

static gspec *mini_spec(uint32_t version) { return mini_spec_dims(version, M_DIM, M_HID); }

static void gs_write(const gspec *g, const char *path) {
    bytebuf b;
    bb_init(&b);
    gs_build(g, &b, NULL, NULL);
    assert_int_equal(bb_write_file(&b, path, b.len), 0);
    bb_free(&b);
}

/* The matrix m must hold t's data: same shape, same type, same widened rows. */
static void assert_matrix_is(const rd_matrix *m, const t_ent *t) {
    const rd_gguf_type *ty = rd_gguf_type_of(t->type);
    assert_int_equal(m->type, ty->dtype);
    assert_int_equal(m->cols, t->ne[0]);
    assert_int_equal(m->rows, t->ne[1]);
    float want[M_HID], got[M_HID];
    size_t row_bytes = type_bytes(t->type, t->ne[0]);
    for (int64_t r = 0; r < m->rows; r++) {
        const uint8_t *row = t->data.data + (size_t)r * row_bytes;
        rd_dtype_info_of(m->type)->to_f32(row, want, (size_t)m->cols);
        rd_matrix_row_f32(m, r, got);
        assert_memory_equal(got, want, (size_t)m->cols * sizeof(float));
        for (int64_t j = 0; j < m->cols; j++) /* and close to the values the builder used */
            assert_float_equal(got[j], test_value((uint64_t)(r * m->cols + j), t->seed), 5e-3);
    }
}

static void assert_vector_is(const float *v, const t_ent *t) {
    const rd_gguf_type *ty = rd_gguf_type_of(t->type);
    float want[M_DIM];
    rd_dtype_info_of((rd_dtype)ty->dtype)->to_f32(t->data.data, want, (size_t)t->ne[0]);
    assert_memory_equal(v, want, (size_t)t->ne[0] * sizeof(float));
}

static void assert_mini_loaded(gspec *g, const rd_model_file *f) {
    assert_int_equal(f->cfg.dim, M_DIM);
    assert_int_equal(f->cfg.hidden_dim, M_HID);
    assert_int_equal(f->cfg.n_layers, M_LAYERS);
    assert_int_equal(f->cfg.n_heads, M_HEADS);
    assert_int_equal(f->cfg.vocab_size, M_VOCAB);
    assert_int_equal(f->cfg.seq_len, 32);
    assert_int_equal(f->cfg.rope_layout, RD_ROPE_ADJACENT);
    assert_matrix_is(&f->w.tok_embeddings, gs_find_tensor(g, "token_embd.weight"));
    for (int l = 0; l < M_LAYERS; l++) {
        const rd_layer_weights *L = &f->w.layers[l];
        char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%d." s ".weight", l), gs_find_tensor(g, n))
        assert_vector_is(L->attn_norm, T("attn_norm"));
        assert_matrix_is(&L->wq, T("attn_q"));
        assert_matrix_is(&L->wk, T("attn_k"));
        assert_matrix_is(&L->wv, T("attn_v"));
        assert_matrix_is(&L->wo, T("attn_output"));
        assert_vector_is(L->ffn_norm, T("ffn_norm"));
        assert_matrix_is(&L->w1, T("ffn_gate"));
        assert_matrix_is(&L->w2, T("ffn_down"));
        assert_matrix_is(&L->w3, T("ffn_up"));
#undef T
    }
    assert_vector_is(f->w.final_norm, gs_find_tensor(g, "output_norm.weight"));
    assert_int_equal(f->w.tied_classifier, 0);
    assert_matrix_is(&f->w.classifier, gs_find_tensor(g, "output.weight"));
}

/* A version-2 file made by hand, with mixed tensor types (F16 and BF16 norms, BF16, F16 and
 * Q8_0 matrices), alignment 64, tensors stored out of order, optional keys absent (rope
 * base, head_count_kv → defaults) and extra keys of every value type. */
static void test_handmade_v2(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(2);
    gs_u32(g, "general.alignment", 64);
    g->layout_alignment = 64;
    gs_del(g, "llama.rope.freq_base");
    gs_del(g, "llama.attention.head_count_kv"); /* → 4 kv heads: K and V are 32 x 32 */
    for (int l = 0; l < M_LAYERS; l++) {
        char n[64];
        snprintf(n, sizeof n, "blk.%d.attn_k.weight", l);
        gs_reshape(g, n, M_DIM, M_DIM);
        snprintf(n, sizeof n, "blk.%d.attn_v.weight", l);
        gs_reshape(g, n, M_DIM, M_DIM);
    }
    gs_retype(g, "blk.0.attn_norm.weight", 1);  /* F16 */
    gs_retype(g, "blk.1.ffn_norm.weight", 30);  /* BF16 */
    gs_retype(g, "output_norm.weight", 8);      /* Q8_0 */
    gs_retype(g, "blk.0.attn_q.weight", 1);
    gs_retype(g, "blk.1.ffn_down.weight", 30);
    gs_retype(g, "blk.1.attn_k.weight", 8);
    gs_retype(g, "token_embd.weight", 8);
    /* Extra keys of every type, including nested arrays. */
    bytebuf *b;
    b = gs_kv(g, "x.u8"); bb_u32(b, RD_GGUF_UINT8); bb_u8(b, 200);
    b = gs_kv(g, "x.i8"); bb_u32(b, RD_GGUF_INT8); bb_u8(b, 0xF6);
    b = gs_kv(g, "x.u16"); bb_u32(b, RD_GGUF_UINT16); bb_u16(b, 60000);
    b = gs_kv(g, "x.i16"); bb_u32(b, RD_GGUF_INT16); bb_u16(b, (uint16_t)-30000);
    gs_i32(g, "x.i32", -7);
    gs_u64(g, "x.u64", 1ull << 40);
    b = gs_kv(g, "x.i64"); bb_u32(b, RD_GGUF_INT64); bb_i64(b, -(1ll << 40));
    b = gs_kv(g, "x.f64"); bb_u32(b, RD_GGUF_FLOAT64); bb_f64(b, 0.125);
    gs_bool(g, "x.bool", 1);
    b = gs_kv(g, "x.nested");
    bb_u32(b, RD_GGUF_ARRAY); bb_u32(b, RD_GGUF_ARRAY); bb_u64(b, 2);
    bb_u32(b, RD_GGUF_STRING); bb_u64(b, 2); bb_str64(b, "ab", 2); bb_str64(b, "", 0);
    bb_u32(b, RD_GGUF_INT16); bb_u64(b, 3); bb_u16(b, 1); bb_u16(b, (uint16_t)-2); bb_u16(b, 3);
    b = gs_kv(g, "x.empty"); bb_u32(b, RD_GGUF_ARRAY); bb_u32(b, RD_GGUF_ARRAY); bb_u64(b, 0);
    b = gs_kv(g, "x.bools");
    bb_u32(b, RD_GGUF_ARRAY); bb_u32(b, RD_GGUF_BOOL); bb_u64(b, 3);
    bb_u8(b, 1); bb_u8(b, 0); bb_u8(b, 1);
    /* Store the data in reverse order of the infos. */
    uint64_t off = 0;
    for (int i = g->n_t - 1; i >= 0; i--) {
        g->t[i].has_offset = 1;
        g->t[i].offset = off;
        off += (g->t[i].data.len + 63) / 64 * 64;
    }
    bytebuf file;
    bb_init(&file);
    size_t data_at;
    gs_build(g, &file, NULL, &data_at);
    /* Rewrite the data section in the stored order. */
    file.len = data_at;
    for (int i = g->n_t - 1; i >= 0; i--) {
        bb_bytes(&file, g->t[i].data.data, g->t[i].data.len);
        bb_pad(&file, 64);
    }
    assert_int_equal(bb_write_file(&file, fx->path, file.len), 0);

    rd_model_file f = {0};
    rd_error err = {{0}};
    if (rd_gguf_load(fx->path, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f.gguf_version, 2);
    assert_int_equal(f.format, RD_FORMAT_GGUF);
    assert_string_equal(f.name, "mini");
    assert_int_equal(f.cfg.n_kv_heads, M_HEADS); /* default: head_count */
    assert_true(f.cfg.rope_theta == 10000.0f);    /* default */
    assert_true(f.cfg.norm_eps == 1e-5f);
    assert_mini_loaded(g, &f);
    assert_int_equal(f.vocab.n, M_VOCAB);
    assert_int_equal(f.vocab.bos_id, 1);
    assert_int_equal(f.vocab.eos_id, 2);
    assert_int_equal(f.vocab.unk_id, 0);
    assert_int_equal(f.vocab.add_dummy_prefix, 1); /* default */
    rd_tokenizer *t = tokenizer_of(&f.vocab);
    assert_int_equal(rd_tokenizer_vocab_size(t), M_VOCAB);
    assert_int_equal(rd_tokenizer_bos(t), 1);
    assert_int_equal(rd_tokenizer_eos(t), 2);
    assert_int_equal(rd_tokenizer_unk(t), 0);
    assert_int_equal(rd_tokenizer_adds_dummy_prefix(t), 1); /* default */
    assert_int_equal(rd_tokenizer_type(t, 1), RD_TOKEN_CONTROL);
    assert_true(rd_tokenizer_score(t, 5) == -5.0f);
    size_t len;
    const char *p = rd_tokenizer_piece(t, 4, &len);
    assert_true(len == 4 && !memcmp(p, "\xe2\x96\x81" "b", 4));
    rd_tokenizer_free(t);
    rd_model_file_release(&f);

    /* The generic reader sees every value. */
    rd_gguf *gg = NULL;
    if (rd_gguf_parse(file.data, file.len, "mem", &gg, &err)) fail_msg("%s", err.msg);
    assert_int_equal(gg->alignment, 64);
    assert_int_equal(gg->data_offset, data_at);
    int64_t i64;
    double f64;
    assert_true(!rd_gguf_value_int(rd_gguf_get(gg, "x.u8"), &i64) && i64 == 200);
    assert_true(!rd_gguf_value_int(rd_gguf_get(gg, "x.i8"), &i64) && i64 == -10);
    assert_true(!rd_gguf_value_int(rd_gguf_get(gg, "x.u16"), &i64) && i64 == 60000);
    assert_true(!rd_gguf_value_int(rd_gguf_get(gg, "x.i16"), &i64) && i64 == -30000);
    assert_true(!rd_gguf_value_int(rd_gguf_get(gg, "x.i32"), &i64) && i64 == -7);
    assert_true(!rd_gguf_value_int(rd_gguf_get(gg, "x.u64"), &i64) && i64 == 1ll << 40);
    assert_true(!rd_gguf_value_int(rd_gguf_get(gg, "x.i64"), &i64) && i64 == -(1ll << 40));
    assert_true(!rd_gguf_value_float(rd_gguf_get(gg, "x.f64"), &f64) && f64 == 0.125);
    assert_int_equal(rd_gguf_value_int(rd_gguf_get(gg, "x.f64"), &i64), -1);
    assert_int_equal(rd_gguf_value_float(rd_gguf_get(gg, "x.i32"), &f64), -1);
    const rd_gguf_value *v = rd_gguf_get(gg, "x.bool");
    assert_true(v->type == RD_GGUF_BOOL && v->as.u == 1);
    v = rd_gguf_get(gg, "x.nested");
    assert_true(v->type == RD_GGUF_ARRAY && v->elem_type == RD_GGUF_ARRAY && v->n == 2);
    rd_gguf_value e, e2;
    assert_int_equal(rd_gguf_array_elem(v, 0, &e), 0);
    assert_true(e.type == RD_GGUF_ARRAY && e.elem_type == RD_GGUF_STRING && e.n == 2);
    assert_int_equal(rd_gguf_array_elem(&e, 0, &e2), 0);
    assert_true(e2.type == RD_GGUF_STRING && e2.n == 2 && !memcmp(e2.as.s, "ab", 2));
    assert_int_equal(rd_gguf_array_elem(&e, 1, &e2), 0);
    assert_true(e2.type == RD_GGUF_STRING && e2.n == 0);
    assert_int_equal(rd_gguf_array_elem(&e, 2, &e2), -1);
    assert_int_equal(rd_gguf_array_elem(v, 1, &e), 0);
    assert_true(e.elem_type == RD_GGUF_INT16 && e.n == 3);
    assert_int_equal(rd_gguf_array_elem(&e, 1, &e2), 0);
    assert_true(!rd_gguf_value_int(&e2, &i64) && i64 == -2);
    v = rd_gguf_get(gg, "x.empty");
    assert_true(v->type == RD_GGUF_ARRAY && v->n == 0);
    v = rd_gguf_get(gg, "x.bools");
    assert_int_equal(rd_gguf_array_elem(v, 1, &e), 0);
    assert_true(e.type == RD_GGUF_BOOL && e.as.u == 0);
    assert_null(rd_gguf_get(gg, "x.nope"));
    assert_null(rd_gguf_tensor_get(gg, "nope.weight"));
    assert_string_equal(rd_gguf_vtype_name(RD_GGUF_FLOAT64), "float64");
    rd_gguf_free(gg);
    bb_free(&file);
    gs_free(g);
}

/* Tied classifier, a file without a tokenizer, and the file's base name as the name. */
static void test_handmade_tied_no_tokenizer(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    gs_del_tensor(g, "output.weight");
    gs_del(g, "general.name");
    const char *tok_keys[] = {"tokenizer.ggml.model", "tokenizer.ggml.tokens",
                              "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                              "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                              "tokenizer.ggml.unknown_token_id"};
    for (size_t i = 0; i < sizeof tok_keys / sizeof *tok_keys; i++) gs_del(g, tok_keys[i]);
    gs_write(g, fx->path);
    rd_model_file f = {0};
    rd_error err = {{0}};
    if (rd_gguf_load(fx->path, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f.vocab.n, 0);
    assert_int_equal(f.w.tied_classifier, 1);
    assert_ptr_equal(f.w.classifier.data, f.w.tok_embeddings.data);
    assert_string_equal(f.name, "model.gguf");
    rd_model_file_release(&f);
    gs_free(g);
}

/* general.alignment 1: tensors start at odd addresses; the loader copies those it cannot
 * point at (f32 rows need 4-byte alignment) and the values are unchanged. */
static void test_handmade_unaligned(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    gs_u32(g, "general.alignment", 1);
    g->layout_alignment = 1;
    gs_retype(g, "blk.0.ffn_norm.weight", 1); /* an F16 vector, 64 bytes: keeps odd offsets */
    gs_retype(g, "blk.1.attn_q.weight", 8);   /* Q8_0 rows of 34 bytes */
    gs_str(g, "general.name", "odd");         /* 3 bytes: the data starts unaligned */
    gs_write(g, fx->path);
    rd_model_file f = {0};
    rd_error err = {{0}};
    if (rd_gguf_load(fx->path, &f, &err)) fail_msg("%s", err.msg);
    assert_mini_loaded(g, &f);
    assert_true(f.w.n_owned > 0); /* some tensors had to be copied */
    assert_int_equal((uintptr_t)f.w.layers[1].wq.data % 2, 0);
    assert_int_equal((uintptr_t)f.w.layers[0].wk.data % 4, 0);
    assert_int_equal((uintptr_t)f.w.layers[0].attn_norm % 4, 0);
    rd_model_file_release(&f);
    gs_free(g);
}

/* Q8_0 blocks that another quantiser made (here |q| ≤ 16 with scale 1, which quantising
 * again would change) are written back byte for byte. */
static void test_rewrite_keeps_quantised_bytes(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    t_ent *t = gs_find_tensor(g, "blk.1.attn_k.weight");
    t->type = 8;
    bb_reset(&t->data);
    for (uint64_t b = 0; b < t->ne[1]; b++) { /* one 32-element block per row */
        bb_u16(&t->data, 0x3C00);
        for (int j = 0; j < 32; j++) bb_u8(&t->data, (uint8_t)(int8_t)((j + (int)b) % 33 - 16));
    }
    gs_write(g, fx->path);
    rd_model_file f = {0}, again = {0};
    rd_error err = {{0}};
    if (rd_gguf_load(fx->path, &f, &err)) fail_msg("%s", err.msg);
    char path2[700];
    snprintf(path2, sizeof path2, "%s/again.gguf", fx->dir);
    if (rd_gguf_write(path2, &f, RD_DTYPE_Q8_0, &err)) fail_msg("%s", err.msg);
    if (rd_gguf_load(path2, &again, &err)) fail_msg("%s", err.msg);
    const rd_matrix *a = &f.w.layers[1].wk, *b = &again.w.layers[1].wk;
    assert_int_equal(b->type, RD_DTYPE_Q8_0);
    assert_memory_equal(b->data, t->data.data, t->data.len);
    assert_memory_equal(a->data, b->data, (size_t)a->rows * a->row_bytes);
    rd_model_file_release(&f);
    rd_model_file_release(&again);
    gs_free(g);
}

/* Every row of the GGML type table that redit reads agrees with its rd_dtype row, and
 * every rd_dtype can be written. */
static void test_type_table(void **state) {
    (void)state;
    for (int t = 0; t < RD_DTYPE_COUNT; t++) {
        const rd_gguf_type *row = rd_gguf_type_for_dtype((rd_dtype)t);
        assert_non_null(row);
        assert_ptr_equal(rd_gguf_type_of(row->id), row);
        const rd_dtype_info *info = rd_dtype_info_of((rd_dtype)t);
        assert_int_equal(row->block_elems, info->block_elems);
        assert_int_equal(row->block_bytes, info->block_bytes);
        assert_string_equal(row->name, info->name);
    }
    assert_int_equal(rd_gguf_type_of(0)->dtype, RD_DTYPE_F32);
    assert_int_equal(rd_gguf_type_of(1)->dtype, RD_DTYPE_F16);
    assert_int_equal(rd_gguf_type_of(8)->dtype, RD_DTYPE_Q8_0);
    assert_int_equal(rd_gguf_type_of(30)->dtype, RD_DTYPE_BF16);
    assert_string_equal(rd_gguf_type_of(12)->name, "Q4_K");
    assert_int_equal(rd_gguf_type_of(12)->block_bytes, 144);
    assert_null(rd_gguf_type_of(4)); /* removed Q4_2 */
    assert_null(rd_gguf_type_of(1000));
}

/* ---- bad input ------------------------------------------------------------------------ */

/* Lines of /proc/self/maps that map `path`. */
static int count_mappings_of(const char *path) {
    FILE *fp = fopen("/proc/self/maps", "r");
    if (!fp) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, fp)) n += strstr(line, path) != NULL;
    fclose(fp);
    return n;
}

/* Loading path must fail with one message naming the file and containing each needle
 * (NULL-terminated list), leave *out zeroed, and keep no mapping or descriptor. */
static void expect_fail_v(const char *path, const char *needle, va_list ap) {
    rd_model_file f, zero;
    memset(&f, 0, sizeof f);
    memset(&zero, 0, sizeof zero);
    rd_error err = {{0}};
    int fds = tiny_count_entries("/proc/self/fd");
    int rc = rd_gguf_load(path, &f, &err);
    if (rc != -1) {
        rd_model_file_release(&f);
        fail_msg("%s loaded, expected an error mentioning '%s'", path, needle);
    }
    assert_memory_equal(&f, &zero, sizeof f);
    assert_int_equal(count_mappings_of(path), 0);
    assert_int_equal(tiny_count_entries("/proc/self/fd"), fds);
    if (!strstr(err.msg, path)) fail_msg("message does not name the file: %s", err.msg);
    for (const char *n = needle; n; n = va_arg(ap, const char *))
        if (!strstr(err.msg, n)) fail_msg("message lacks '%s': %s", n, err.msg);
}

static void expect_fail(const char *path, const char *needle, ...) {
    va_list ap;
    va_start(ap, needle);
    expect_fail_v(path, needle, ap);
    va_end(ap);
}

/* Writes g and expects the load to fail with the needles. */
static void expect_spec_fails(fixture *fx, const gspec *g, const char *needle, ...) {
    gs_write(g, fx->path);
    va_list ap;
    va_start(ap, needle);
    expect_fail_v(fx->path, needle, ap);
    va_end(ap);
}

static void test_bad_empty_and_truncated(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    bytebuf b;
    bb_init(&b);
    size_t data_at;
    gs_build(g, &b, NULL, &data_at);
    assert_int_equal(bb_write_file(&b, fx->path, 0), 0);
    expect_fail(fx->path, "empty", NULL);
    /* Every cut inside the metadata and tensor infos, and some inside the data. */
    for (size_t cut = 1; cut < b.len; cut += cut < data_at + 64 ? 1 : 997) {
        assert_int_equal(bb_write_file(&b, fx->path, cut), 0);
        expect_fail(fx->path, "truncated", NULL);
    }
    assert_int_equal(bb_write_file(&b, fx->path, b.len), 0); /* the whole file loads */
    rd_model_file f = {0};
    rd_error err = {{0}};
    if (rd_gguf_load(fx->path, &f, &err)) fail_msg("%s", err.msg);
    assert_mini_loaded(g, &f);
    rd_model_file_release(&f);
    /* A missing file. */
    char none[700];
    snprintf(none, sizeof none, "%s/none.gguf", fx->dir);
    expect_fail(none, "open", NULL);
    bb_free(&b);
    gs_free(g);
}

static void test_bad_magic_and_version(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    memcpy(g->magic, "GGML", 4);
    expect_spec_fails(fx, g, "magic", NULL);
    memcpy(g->magic, "GGUF", 4);
    g->version = 1;
    expect_spec_fails(fx, g, "version 1", NULL);
    g->version = 4;
    expect_spec_fails(fx, g, "version 4", NULL);
    g->version = 0;
    expect_spec_fails(fx, g, "version", NULL);
    g->version = 0x03000000u;
    expect_spec_fails(fx, g, "big-endian", NULL);
    gs_free(g);
}

static void test_bad_tensor_types(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    gs_retype(g, "blk.1.attn_v.weight", 99);
    expect_spec_fails(fx, g, "blk.1.attn_v.weight", "type", "99", NULL);
    gs_retype(g, "blk.1.attn_v.weight", 4); /* a removed type id */
    expect_spec_fails(fx, g, "blk.1.attn_v.weight", "type id 4", NULL);
    gs_retype(g, "blk.1.attn_v.weight", 0);
    gs_retype(g, "output_norm.weight", 12); /* Q4_K: 32 columns is not a block of 256 */
    expect_spec_fails(fx, g, "output_norm.weight", "Q4_K", "block size 256", NULL);
    gs_free(g);
}

/* The types redit reads, as every refusal lists them. */
#define READABLE                                                                             \
    "F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, BF16"

/* Each GGML type redit does not read (IQ1–IQ3, TQ, ...), in a model whose rows are whole
 * blocks of 256, and type ids ggml does not have: the message names the file, the tensor,
 * the type and says that redit does not read it, with the list of what it reads. */
static void test_unreadable_types(void **state) {
    fixture *fx = *state;
    static const struct {
        uint32_t id;
        const char *name;
    } UNREAD[] = {{9, "Q8_1"},     {15, "Q8_K"},   {16, "IQ2_XXS"}, {17, "IQ2_XS"},
                  {18, "IQ3_XXS"}, {19, "IQ1_S"},  {21, "IQ3_S"},   {22, "IQ2_S"},
                  {24, "I8"},      {25, "I16"},    {26, "I32"},     {27, "I64"},
                  {28, "F64"},     {29, "IQ1_M"},  {34, "TQ1_0"},   {35, "TQ2_0"},
                  {39, "MXFP4"}};
    gspec *g = mini_spec_dims(3, 256, 512);
    char type[64];
    for (size_t i = 0; i < sizeof UNREAD / sizeof *UNREAD; i++) {
        gs_retype(g, "blk.1.attn_v.weight", UNREAD[i].id);
        snprintf(type, sizeof type, "has type %s (GGML type %u)", UNREAD[i].name, UNREAD[i].id);
        expect_spec_fails(fx, g, "blk.1.attn_v.weight", type, "redit does not read",
                          "(it reads " READABLE ")", NULL);
    }
    static const uint32_t UNKNOWN[] = {4, 5, 31, 36, 99, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof UNKNOWN / sizeof *UNKNOWN; i++) {
        gs_retype(g, "blk.0.ffn_up.weight", UNKNOWN[i]);
        snprintf(type, sizeof type, "unknown GGML type id %u", UNKNOWN[i]);
        expect_spec_fails(fx, g, "blk.0.ffn_up.weight", type, "redit does not read",
                          "(it reads " READABLE ")", NULL);
    }
    /* the readable ones load, IQ4_NL and IQ4_XS among them */
    gs_retype(g, "blk.0.ffn_up.weight", 20);
    gs_retype(g, "blk.1.attn_v.weight", 23);
    gs_write(g, fx->path);
    rd_model_file f = {0};
    rd_error err = {{0}};
    if (rd_gguf_load(fx->path, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f.w.layers[0].w3.type, RD_DTYPE_IQ4_NL);
    assert_int_equal(f.w.layers[1].wv.type, RD_DTYPE_IQ4_XS);
    const t_ent *t = gs_find_tensor(g, "blk.1.attn_v.weight");
    assert_memory_equal(f.w.layers[1].wv.data, t->data.data, t->data.len);
    rd_model_file_release(&f);
    gs_free(g);
}

static void test_bad_dimensions(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    t_ent *t = gs_find_tensor(g, "blk.0.attn_q.weight");
    t->ne[1] = 16; /* disagrees with the config */
    fill_tensor(t, 3);
    expect_spec_fails(fx, g, "blk.0.attn_q.weight", "shape", "[32, 16]", NULL);
    t->ne[1] = 32;
    fill_tensor(t, 3);
    t = gs_find_tensor(g, "blk.1.ffn_norm.weight");
    t->n_dims = 2; /* a (2, 32) matrix where a vector belongs */
    t->ne[1] = 2;
    fill_tensor(t, 3);
    expect_spec_fails(fx, g, "blk.1.ffn_norm.weight", "shape", NULL);
    t->n_dims = 1;
    t->ne[1] = 0;
    fill_tensor(t, 3);
    t = gs_find_tensor(g, "output.weight");
    t->ne[0] = 16; /* the classifier's width disagrees with dim */
    fill_tensor(t, 3);
    expect_spec_fails(fx, g, "output.weight", "shape", NULL);
    t->ne[0] = 32;
    fill_tensor(t, 3);
    /* token_embd's vocabulary disagrees with llama.vocab_size. */
    gs_u32(g, "llama.vocab_size", 25);
    expect_spec_fails(fx, g, "vocab_size", "25", NULL);
    gs_del(g, "llama.vocab_size");
    /* n_dims > 4 and 0. */
    t = gs_find_tensor(g, "blk.0.ffn_up.weight");
    t->n_dims = 5;
    t->ne[2] = t->ne[3] = t->ne[4] = 1;
    expect_spec_fails(fx, g, "blk.0.ffn_up.weight", "n_dims = 5", NULL);
    t->n_dims = 0;
    expect_spec_fails(fx, g, "blk.0.ffn_up.weight", "n_dims = 0", NULL);
    t->n_dims = 2;
    /* A zero dimension. */
    t->ne[1] = 0;
    expect_spec_fails(fx, g, "blk.0.ffn_up.weight", "dimension 1", NULL);
    t->ne[1] = M_HID;
    /* Columns not a whole number of Q8_0 blocks. */
    t = gs_find_tensor(g, "blk.0.attn_k.weight");
    t->type = 8;
    t->ne[0] = 33;
    expect_spec_fails(fx, g, "blk.0.attn_k.weight", "block size 32", NULL);
    gs_free(g);
}

static void test_bad_sizes_and_offsets(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    /* A 2^40-element tensor: its data cannot be in the file. */
    t_ent *t = gs_find_tensor(g, "blk.1.attn_output.weight");
    t->ne[0] = 1u << 20;
    t->ne[1] = 1u << 20;
    expect_spec_fails(fx, g, "blk.1.attn_output.weight", "beyond the end", NULL);
    /* Dimensions whose product overflows. */
    t->ne[0] = 1ull << 62;
    t->ne[1] = 16;
    expect_spec_fails(fx, g, "blk.1.attn_output.weight", "overflows", NULL);
    t->ne[0] = t->ne[1] = M_DIM;
    /* Offsets: beyond the end, misaligned, overlapping. */
    t->has_offset = 1;
    t->offset = 1ull << 40;
    expect_spec_fails(fx, g, "blk.1.attn_output.weight", "beyond the end", NULL);
    t->offset = 0xFFFFFFFFFFFFFFE0ull; /* offset + size wraps around */
    expect_spec_fails(fx, g, "blk.1.attn_output.weight", "beyond the end", NULL);
    t->offset = 36;
    expect_spec_fails(fx, g, "blk.1.attn_output.weight", "alignment", NULL);
    t->offset = 0; /* on top of token_embd.weight */
    expect_spec_fails(fx, g, "overlap", "token_embd.weight", NULL);
    t->has_offset = 0;
    /* Absurd counts. */
    g->claim_tensors = 1ll << 60;
    expect_spec_fails(fx, g, "tensors", "claims", NULL);
    g->claim_tensors = -1;
    g->claim_kv = 1ll << 60;
    expect_spec_fails(fx, g, "key/value", "claims", NULL);
    g->claim_kv = -1;
    gs_free(g);
}

static void test_bad_strings_and_arrays(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    bytebuf b;
    bb_init(&b);
    size_t info_at[MAX_ENT];
    /* A key whose length runs past the end (the first key: right after the header). */
    gs_build(g, &b, info_at, NULL);
    bb_patch_u64(&b, 24, 1ull << 62);
    assert_int_equal(bb_write_file(&b, fx->path, b.len), 0);
    expect_fail(fx->path, "string length", "past the end", NULL);
    /* A tensor name longer than the file. */
    gs_build(g, &b, info_at, NULL);
    bb_patch_u64(&b, info_at[3], (uint64_t)b.len);
    assert_int_equal(bb_write_file(&b, fx->path, b.len), 0);
    expect_fail(fx->path, "string length", "tensor info 3", NULL);
    /* A tensor name longer than GGUF allows. */
    char longname[100];
    memset(longname, 'x', 80);
    longname[80] = 0;
    snprintf(g->t[3].name, sizeof g->t[3].name, "%s", longname);
    expect_spec_fails(fx, g, "tensor info 3", "name of 80 bytes", NULL);
    gs_free(g);
    g = mini_spec(3);
    /* A string value whose length runs past the end. */
    bytebuf *v = gs_kv(g, "general.name");
    bb_u32(v, RD_GGUF_STRING);
    bb_u64(v, 1ull << 50);
    expect_spec_fails(fx, g, "general.name", "string length", NULL);
    gs_str(g, "general.name", "mini");
    /* An array claiming 2^50 elements. */
    v = gs_kv(g, "x.big");
    bb_u32(v, RD_GGUF_ARRAY);
    bb_u32(v, RD_GGUF_UINT32);
    bb_u64(v, 1ull << 50);
    expect_spec_fails(fx, g, "x.big", "claims", NULL);
    /* An array of an unknown element type. */
    v = gs_kv(g, "x.big");
    bb_u32(v, RD_GGUF_ARRAY);
    bb_u32(v, 13);
    bb_u64(v, 1);
    expect_spec_fails(fx, g, "x.big", "unknown value type 13", NULL);
    /* Arrays nested too deep. */
    v = gs_kv(g, "x.big");
    bb_u32(v, RD_GGUF_ARRAY);
    for (int i = 0; i < 20; i++) { /* an array of one array of one array of ... */
        bb_u32(v, RD_GGUF_ARRAY);
        bb_u64(v, 1);
    }
    expect_spec_fails(fx, g, "x.big", "nests", NULL);
    /* A value of an unknown type. */
    v = gs_kv(g, "x.big");
    bb_u32(v, 77);
    expect_spec_fails(fx, g, "x.big", "unknown value type 77", NULL);
    /* A bool that is neither 0 nor 1. */
    gs_bool(g, "x.big", 2);
    expect_spec_fails(fx, g, "x.big", "bool", NULL);
    gs_del(g, "x.big");
    /* An empty key; a key that appears twice; a tensor that appears twice. */
    gs_str(g, "", "x");
    expect_spec_fails(fx, g, "key of 0 bytes", NULL);
    gs_del(g, "");
    gs_u32(g, "x.dup", 1);
    snprintf(g->kv[g->n_kv - 1].key, sizeof g->kv[0].key, "llama.block_count");
    expect_spec_fails(fx, g, "llama.block_count", "more than once", NULL);
    g->n_kv--;
    bb_free(&g->kv[g->n_kv].val);
    snprintf(g->t[5].name, sizeof g->t[5].name, "blk.0.attn_q.weight");
    expect_spec_fails(fx, g, "blk.0.attn_q.weight", "more than once", NULL);
    bb_free(&b);
    gs_free(g);
}

static void test_bad_alignment(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    gs_u32(g, "general.alignment", 0);
    expect_spec_fails(fx, g, "general.alignment", "power of two", NULL);
    gs_u32(g, "general.alignment", 48);
    expect_spec_fails(fx, g, "general.alignment", "power of two", NULL);
    gs_str(g, "general.alignment", "32");
    expect_spec_fails(fx, g, "general.alignment", "not an integer", NULL);
    gs_free(g);
}

static void test_bad_hyperparameters(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    gs_f32(g, "llama.attention.layer_norm_rms_epsilon", NAN);
    expect_spec_fails(fx, g, "layer_norm_rms_epsilon", "finite", NULL);
    gs_f32(g, "llama.attention.layer_norm_rms_epsilon", INFINITY);
    expect_spec_fails(fx, g, "layer_norm_rms_epsilon", "finite", NULL);
    gs_f32(g, "llama.attention.layer_norm_rms_epsilon", -1.0f);
    expect_spec_fails(fx, g, "epsilon", NULL);
    gs_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gs_f32(g, "llama.rope.freq_base", NAN);
    expect_spec_fails(fx, g, "llama.rope.freq_base", "finite", NULL);
    gs_f32(g, "llama.rope.freq_base", 0.5f);
    expect_spec_fails(fx, g, "rope theta", NULL);
    gs_f32(g, "llama.rope.freq_base", 10000.0f);
    gs_u32(g, "llama.attention.head_count", 0);
    expect_spec_fails(fx, g, "llama.attention.head_count", "out of range", NULL);
    gs_u32(g, "llama.attention.head_count", 5); /* does not divide 32 */
    gs_u32(g, "llama.attention.head_count_kv", 5);
    expect_spec_fails(fx, g, "n_heads = 5", "divide", NULL);
    gs_u32(g, "llama.attention.head_count", 4);
    gs_u32(g, "llama.attention.head_count_kv", 3); /* does not divide 4 */
    expect_spec_fails(fx, g, "n_kv_heads = 3", "divide", NULL);
    gs_u32(g, "llama.attention.head_count_kv", M_KV);
    gs_u32(g, "llama.block_count", 0);
    expect_spec_fails(fx, g, "llama.block_count", "out of range", NULL);
    gs_u64(g, "llama.block_count", 1ull << 40);
    expect_spec_fails(fx, g, "llama.block_count", "out of range", NULL);
    gs_u32(g, "llama.block_count", 5000); /* integer, but beyond sane limits */
    expect_spec_fails(fx, g, "n_layers", "out of range", NULL);
    gs_u32(g, "llama.block_count", M_LAYERS);
    gs_i32(g, "llama.context_length", -1);
    expect_spec_fails(fx, g, "llama.context_length", "out of range", NULL);
    gs_str(g, "llama.context_length", "32");
    expect_spec_fails(fx, g, "llama.context_length", "not an integer", NULL);
    gs_u32(g, "llama.context_length", 32);
    gs_str(g, "llama.attention.layer_norm_rms_epsilon", "tiny");
    expect_spec_fails(fx, g, "layer_norm_rms_epsilon", "not a float", NULL);
    gs_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gs_u32(g, "llama.rope.dimension_count", 4);
    expect_spec_fails(fx, g, "llama.rope.dimension_count", "partial", NULL);
    gs_del(g, "llama.rope.dimension_count");
    gs_u32(g, "llama.expert_count", 8);
    expect_spec_fails(fx, g, "expert", NULL);
    gs_del(g, "llama.expert_count");
    gs_str(g, "llama.rope.scaling.type", "yarn");
    expect_spec_fails(fx, g, "yarn", NULL);
    gs_del(g, "llama.rope.scaling.type");
    gs_del(g, "llama.embedding_length");
    expect_spec_fails(fx, g, "llama.embedding_length", "missing", NULL);
    gs_free(g);
}

static void test_bad_architecture_and_tensors(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    gs_str(g, "general.architecture", "gpt2");
    expect_spec_fails(fx, g, "architecture", "gpt2", NULL);
    gs_u32(g, "general.architecture", 1);
    expect_spec_fails(fx, g, "general.architecture", "not a string", NULL);
    gs_del(g, "general.architecture");
    expect_spec_fails(fx, g, "general.architecture", "missing", NULL);
    gs_str(g, "general.architecture", "llama");
    gs_u32(g, "general.name", 3);
    expect_spec_fails(fx, g, "general.name", "not a string", NULL);
    gs_str(g, "general.name", "mini");
    gs_del_tensor(g, "blk.1.ffn_up.weight");
    expect_spec_fails(fx, g, "blk.1.ffn_up.weight", "missing", NULL);
    gs_free(g);
    g = mini_spec(3);
    gs_del_tensor(g, "token_embd.weight");
    expect_spec_fails(fx, g, "token_embd.weight", "missing", NULL);
    gs_free(g);
    g = mini_spec(3);
    gs_del_tensor(g, "output_norm.weight");
    expect_spec_fails(fx, g, "output_norm.weight", "missing", NULL);
    gs_tensor(g, "output_norm.weight", 0, M_DIM, 0);
    gs_tensor(g, "rope_freqs.weight", 0, 4, 0);
    expect_spec_fails(fx, g, "rope_freqs", NULL);
    gs_free(g);
}

static void test_bad_tokenizer(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    gs_str(g, "tokenizer.ggml.model", "gpt2");
    expect_spec_fails(fx, g, "tokenizer model 'gpt2'", NULL);
    gs_str(g, "tokenizer.ggml.model", "llama");
    /* Empty vocabulary. */
    bytebuf *b = gs_kv(g, "tokenizer.ggml.tokens");
    bb_u32(b, RD_GGUF_ARRAY);
    bb_u32(b, RD_GGUF_STRING);
    bb_u64(b, 0);
    expect_spec_fails(fx, g, "tokenizer.ggml.tokens", "empty", NULL);
    /* Missing vocabulary. */
    gs_del(g, "tokenizer.ggml.tokens");
    expect_spec_fails(fx, g, "tokenizer.ggml.tokens", "missing", NULL);
    /* Tokens of the wrong element type. */
    b = gs_kv(g, "tokenizer.ggml.tokens");
    bb_u32(b, RD_GGUF_ARRAY);
    bb_u32(b, RD_GGUF_UINT32);
    bb_u64(b, M_VOCAB);
    for (int i = 0; i < M_VOCAB; i++) bb_u32(b, (uint32_t)i);
    expect_spec_fails(fx, g, "tokenizer.ggml.tokens", "not of strings", NULL);
    gs_del(g, "tokenizer.ggml.tokens");
    /* More tokens than embedding rows. */
    gs_tokenizer(g, M_VOCAB + 1);
    expect_spec_fails(fx, g, "25 tokens", "24 rows", NULL);
    gs_tokenizer(g, M_VOCAB);
    /* Scores or types of the wrong length. */
    b = gs_kv(g, "tokenizer.ggml.scores");
    bb_u32(b, RD_GGUF_ARRAY);
    bb_u32(b, RD_GGUF_FLOAT32);
    bb_u64(b, 3);
    bb_f32(b, 0);
    bb_f32(b, 0);
    bb_f32(b, 0);
    expect_spec_fails(fx, g, "tokenizer.ggml.scores", "3 entries", NULL);
    gs_tokenizer(g, M_VOCAB);
    /* A token type outside 1..6. */
    b = gs_kv(g, "tokenizer.ggml.token_type");
    bb_u32(b, RD_GGUF_ARRAY);
    bb_u32(b, RD_GGUF_INT32);
    bb_u64(b, M_VOCAB);
    for (int i = 0; i < M_VOCAB; i++) bb_i32(b, i == 7 ? 9 : 1);
    expect_spec_fails(fx, g, "token_type", "token 7", "9", NULL);
    gs_tokenizer(g, M_VOCAB);
    /* Special ids out of range. */
    gs_u32(g, "tokenizer.ggml.bos_token_id", 24);
    expect_spec_fails(fx, g, "tokenizer.ggml.bos_token_id", "out of range", NULL);
    gs_u32(g, "tokenizer.ggml.bos_token_id", 1);
    gs_i32(g, "tokenizer.ggml.eos_token_id", -5);
    expect_spec_fails(fx, g, "tokenizer.ggml.eos_token_id", "out of range", NULL);
    gs_u32(g, "tokenizer.ggml.eos_token_id", 2);
    gs_u64(g, "tokenizer.ggml.unknown_token_id", 1ull << 40);
    expect_spec_fails(fx, g, "tokenizer.ggml.unknown_token_id", "out of range", NULL);
    gs_u32(g, "tokenizer.ggml.unknown_token_id", 0);
    gs_u32(g, "tokenizer.ggml.add_space_prefix", 1);
    expect_spec_fails(fx, g, "add_space_prefix", "not a bool", NULL);
    gs_bool(g, "tokenizer.ggml.add_space_prefix", 0);
    /* Tokens without a model kind. */
    gs_del(g, "tokenizer.ggml.model");
    expect_spec_fails(fx, g, "tokenizer.ggml.model", "missing", NULL);
    gs_str(g, "tokenizer.ggml.model", "llama");
    /* A piece the tokenizer refuses (invalid UTF-8): its message names the file too. */
    b = gs_kv(g, "tokenizer.ggml.tokens");
    bb_u32(b, RD_GGUF_ARRAY);
    bb_u32(b, RD_GGUF_STRING);
    bb_u64(b, M_VOCAB);
    for (int i = 0; i < M_VOCAB; i++) {
        char p[8];
        snprintf(p, sizeof p, i == 9 ? "\xff%d" : "t%d", i);
        bb_str64(b, p, (size_t)-1);
    }
    expect_spec_fails(fx, g, "UTF-8", NULL);
    /* And with a valid vocabulary, add_space_prefix = false loads. */
    gs_tokenizer(g, M_VOCAB);
    gs_write(g, fx->path);
    rd_model_file f = {0};
    rd_error err = {{0}};
    if (rd_gguf_load(fx->path, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f.vocab.add_dummy_prefix, 0);
    rd_tokenizer *t = tokenizer_of(&f.vocab);
    assert_int_equal(rd_tokenizer_adds_dummy_prefix(t), 0);
    rd_tokenizer_free(t);
    rd_model_file_release(&f);
    gs_free(g);
}

/* Random byte corruption of a valid file never crashes or leaks (the sanitizer run checks
 * the memory side): each result is either a load or one error naming the file. */
static void test_fuzz_corruption(void **state) {
    fixture *fx = *state;
    gspec *g = mini_spec(3);
    bytebuf b;
    bb_init(&b);
    size_t data_at;
    gs_build(g, &b, NULL, &data_at);
    uint64_t s = 12345;
    for (int iter = 0; iter < 400; iter++) {
        bytebuf c;
        bb_init(&c);
        bb_bytes(&c, b.data, b.len);
        for (int k = 0; k < 1 + iter % 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(s >> 33) % data_at;
            c.data[pos] ^= (uint8_t)(1u << ((s >> 20) % 8));
        }
        assert_int_equal(bb_write_file(&c, fx->path, c.len), 0);
        rd_model_file f = {0};
        rd_error err = {{0}};
        if (rd_gguf_load(fx->path, &f, &err) == 0) rd_model_file_release(&f);
        else if (!strstr(err.msg, fx->path)) fail_msg("message without the file: %s", err.msg);
        bb_free(&c);
    }
    bb_free(&b);
    gs_free(g);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_roundtrip_f32),
        T(test_roundtrip_f16),
        T(test_roundtrip_bf16),
        T(test_roundtrip_q8_0),
        T(test_roundtrip_mha),
        T(test_metadata_roundtrip),
        T(test_tokenizer_roundtrip),
        T(test_write_permutes_half_rope),
        T(test_write_refuses_and_leaves_nothing),
        T(test_handmade_v2),
        T(test_handmade_tied_no_tokenizer),
        T(test_handmade_unaligned),
        T(test_rewrite_keeps_quantised_bytes),
        T(test_type_table),
        T(test_bad_empty_and_truncated),
        T(test_bad_magic_and_version),
        T(test_bad_tensor_types),
        T(test_unreadable_types),
        T(test_bad_dimensions),
        T(test_bad_sizes_and_offsets),
        T(test_bad_strings_and_arrays),
        T(test_bad_alignment),
        T(test_bad_hyperparameters),
        T(test_bad_architecture_and_tensors),
        T(test_bad_tokenizer),
        T(test_fuzz_corruption),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
