/* llama2.c .bin checkpoints (src/io/llama2c.c), format detection from content
 * (src/io/model_file.c) and rd_model_load (src/model/model.c): round trips through
 * rd_llama2c_write, agreement of the logits with the same weights saved as GGUF (F32
 * bit-identical; F16, BF16, Q8_0 within a derived tolerance), the stories260K fixture, the
 * tokenizer.bin lookup, and one test per kind of bad input. */
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

#include "helpers/bytebuf.h"
#include "helpers/tiny_model.h"
#include "checks.h"
#include "redit/forward.h"
#include "redit/model.h"
#include "redit/model_file.h"
#include "redit/tokenizer.h"

#define HEADER_BYTES 28 /* 7 int32 */
#define N_TOKENS 20     /* the sequence the logits are compared over */

/* ---- fixture: one temporary directory per test ---------------------------------------- */

typedef struct fixture {
    char dir[512];
    char bin[600];  /* dir/model.bin */
    char gguf[600]; /* dir/model.gguf */
    char tok[600];  /* dir/tokenizer.bin */
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tiny_tempdir(fx->dir, sizeof fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->bin, sizeof fx->bin, "%s/model.bin", fx->dir);
    snprintf(fx->gguf, sizeof fx->gguf, "%s/model.gguf", fx->dir);
    snprintf(fx->tok, sizeof fx->tok, "%s/tokenizer.bin", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tiny_rmdir(fx->dir);
    free(fx);
    return 0;
}

static void path_in(const fixture *fx, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", fx->dir, name);
}


static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ---- configs and models --------------------------------------------------------------- */

/* tiny_config with n_kv_heads = n_heads: plain multi-head attention. */
static rd_config mha_config(void) {
    rd_config c = tiny_config();
    c.n_kv_heads = c.n_heads;
    return c;
}

/* Every column count a multiple of 32 (Q8_0 blocks): dim 64, hidden 192. */
static rd_config q8_config(void) {
    rd_config c = tiny_config();
    c.hidden_dim = 192;
    return c;
}

/* The smallest model worth a file: for the bad-input tests. */
static rd_config small_config(void) {
    rd_config c = {.dim = 16, .hidden_dim = 32, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2,
                   .vocab_size = 32, .seq_len = 8, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                   .rope_layout = RD_ROPE_ADJACENT};
    return c;
}

static void make_random(rd_model_file *f, const rd_config *c, int tied, uint64_t seed) {
    if (tiny_model_init(f, c, tied, seed)) fail_msg("tiny_model_init failed");
}

static void write_bin(const char *path, const rd_model_file *f) {
    rd_error err = {{0}};
    if (rd_llama2c_write(path, &f->cfg, &f->w, &err)) fail_msg("%s", err.msg);
}

static void write_gguf(const char *path, const rd_model_file *f, rd_dtype type) {
    rd_error err = {{0}};
    if (rd_gguf_write(path, f, type, &err)) fail_msg("%s", err.msg);
}

static rd_model *load_ok(const char *path, const rd_load_opts *opts) {
    rd_error err = {{0}};
    rd_model *m = rd_model_load(path, opts, &err);
    if (!m) fail_msg("%s", err.msg);
    return m;
}

/* ---- checks on loaded models ---------------------------------------------------------- */


static void assert_in_map(const rd_weights *w, const void *p, size_t bytes) {
    const char *m = w->map, *q = p;
    assert_non_null(m);
    if (!(q >= m && q + bytes <= m + w->map_size))
        fail_msg("%zu bytes at %p are not inside the file mapping", bytes, p);
}

/* got (loaded, F32, mapped) holds exactly want's values. */
static void assert_matrix_equal(const rd_weights *w, const rd_matrix *got, const rd_matrix *want,
                                const char *name, int layer) {
    assert_int_equal(got->type, RD_DTYPE_F32);
    assert_int_equal(got->rows, want->rows);
    assert_int_equal(got->cols, want->cols);
    assert_int_equal(got->row_bytes, (size_t)got->cols * sizeof(float));
    size_t bytes = (size_t)(got->rows * got->cols) * sizeof(float);
    assert_in_map(w, got->data, bytes);
    if (memcmp(got->data, want->data, bytes) != 0)
        fail_msg("%s of layer %d differs from what was written", name, layer);
}

static void assert_vector_in_map_equal(const rd_weights *w, const float *got, const float *want,
                                       int n) {
    assert_non_null(got);
    assert_in_map(w, got, (size_t)n * sizeof *got);
    assert_memory_equal(got, want, (size_t)n * sizeof *got);
}

static void assert_weights_equal(const rd_model_file *got, const rd_model_file *want) {
    const rd_config *c = &want->cfg;
    const rd_weights *w = &got->w;
    assert_matrix_equal(w, &w->tok_embeddings, &want->w.tok_embeddings, "tok_embeddings", -1);
    assert_non_null(w->layers);
    for (int l = 0; l < c->n_layers; l++) {
        const rd_layer_weights *g = &w->layers[l], *o = &want->w.layers[l];
        assert_vector_in_map_equal(w, g->attn_norm, o->attn_norm, c->dim);
        assert_vector_in_map_equal(w, g->ffn_norm, o->ffn_norm, c->dim);
        assert_matrix_equal(w, &g->wq, &o->wq, "wq", l);
        assert_matrix_equal(w, &g->wk, &o->wk, "wk", l);
        assert_matrix_equal(w, &g->wv, &o->wv, "wv", l);
        assert_matrix_equal(w, &g->wo, &o->wo, "wo", l);
        assert_matrix_equal(w, &g->w1, &o->w1, "w1", l);
        assert_matrix_equal(w, &g->w2, &o->w2, "w2", l);
        assert_matrix_equal(w, &g->w3, &o->w3, "w3", l);
    }
    assert_vector_in_map_equal(w, w->final_norm, want->w.final_norm, c->dim);
    assert_int_equal(w->tied_classifier, want->w.tied_classifier);
    if (want->w.tied_classifier) {
        assert_ptr_equal(w->classifier.data, w->tok_embeddings.data);
        assert_int_equal(w->classifier.rows, c->vocab_size);
        assert_int_equal(w->classifier.cols, c->dim);
    } else {
        assert_ptr_not_equal(w->classifier.data, w->tok_embeddings.data);
        assert_matrix_equal(w, &w->classifier, &want->w.classifier, "classifier", -1);
    }
}

/* ---- logits --------------------------------------------------------------------------- */

/* A fixed sequence of n ids below vocab, starting with BOS (1). */
static void make_tokens(int *t, int n, int vocab) {
    t[0] = 1;
    for (int i = 1; i < n; i++) t[i] = (int)((i * 7919u + 13u) % (unsigned)vocab);
}

/* Logits (T, V) of a prefill over tokens; malloc'ed, the caller frees. */
static float *logits_of(const rd_model *m, const int *tokens, int T) {
    rd_error err = {{0}};
    rd_ctx *ctx = rd_ctx_new(m, 1, T, &err);
    if (!ctx) fail_msg("%s", err.msg);
    const int V = rd_model_config(m)->vocab_size;
    float *out = malloc(sizeof(float) * (size_t)T * (size_t)V);
    assert_non_null(out);
    if (rd_forward(ctx, NULL, tokens, 1, T, RD_LOGITS_ALL, out, &err)) fail_msg("%s", err.msg);
    rd_ctx_free(ctx);
    return out;
}

static float max_abs(const float *x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* Logits of an in-memory model file: f is moved into a model for the run and moved back. */
static float *logits_of_file(rd_model_file *f, const int *tokens, int T) {
    rd_error err = {{0}};
    rd_model *m = rd_model_from_file(f, NULL, &err);
    if (!m) fail_msg("%s", err.msg);
    float *out = logits_of(m, tokens, T);
    *f = m->file; /* move back */
    memset(&m->file, 0, sizeof m->file);
    rd_model_free(m);
    return out;
}

/* ---- a hand-made tokenizer.bin -------------------------------------------------------- */

/* llama2.c's tokenizer.bin for n pieces: <unk>, BOS and EOS as llama2.c's export spells
 * them, the 256 byte pieces, then "tok<i>" (n ≥ 259). */
static void build_tokenizer(bytebuf *b, int n) {
    assert_true(n >= 259);
    bb_init(b);
    bb_i32(b, 8); /* max_token_length: the longest piece below */
    char piece[32];
    for (int i = 0; i < n; i++) {
        if (i == 0) snprintf(piece, sizeof piece, "<unk>");
        else if (i == 1) snprintf(piece, sizeof piece, "\n<s>\n");
        else if (i == 2) snprintf(piece, sizeof piece, "\n</s>\n");
        else if (i < 259) snprintf(piece, sizeof piece, "<0x%02X>", i - 3);
        else snprintf(piece, sizeof piece, "tok%d", i);
        bb_f32(b, i < 259 ? 0.0f : -(float)(i - 259));
        bb_i32(b, (int32_t)strlen(piece));
        bb_bytes(b, piece, strlen(piece));
    }
}

static void write_tokenizer(const char *path, int n) {
    bytebuf b;
    build_tokenizer(&b, n);
    assert_int_equal(bb_write_file(&b, path, b.len), 0);
    bb_free(&b);
}

static void assert_piece(const rd_tokenizer *t, int id, const char *want) {
    size_t len = 0;
    const char *p = rd_tokenizer_piece(t, id, &len);
    assert_non_null(p);
    if (len != strlen(want) || memcmp(p, want, len) != 0)
        fail_msg("piece %d is '%.*s', expected '%s'", id, (int)len, p, want);
}

/* ---- expected failures ---------------------------------------------------------------- */

static int count_occurrences(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* One message: one line, naming `file` once, containing every word of the NULL-ended list. */
static void check_message(const char *msg, const char *file, va_list words) {
    if (!*msg) fail_msg("no message was recorded");
    if (strchr(msg, '\n')) fail_msg("the message has more than one line: %s", msg);
    if (count_occurrences(msg, file) != 1)
        fail_msg("the message should name %s once: %s", file, msg);
    for (const char *w; (w = va_arg(words, const char *));)
        if (!strstr(msg, w)) fail_msg("the message lacks '%s': %s", w, msg);
    printf("    ok: %s\n", msg);
}

/* rd_model_load(path, opts) fails with one message naming `file` and holding every word. */
static void expect_model_fails(const char *path, const rd_load_opts *opts, const char *file,
                               ...) {
    rd_error err = {{0}};
    rd_model *m = rd_model_load(path, opts, &err);
    if (m) {
        rd_model_free(m);
        fail_msg("%s loaded but should not", path);
    }
    va_list ap;
    va_start(ap, file);
    check_message(err.msg, file, ap);
    va_end(ap);
}

/* rd_llama2c_load(path, tok) fails the same way and leaves *out zeroed. */
static void expect_llama2c_fails(const char *path, const char *tok, const char *file, ...) {
    rd_error err = {{0}};
    rd_model_file f, zero;
    memset(&f, 0x5a, sizeof f); /* the loader must zero it */
    memset(&zero, 0, sizeof zero);
    if (rd_llama2c_load(path, tok, &f, &err) == 0) {
        rd_model_file_release(&f);
        fail_msg("%s loaded as llama2.c but should not", path);
    }
    assert_memory_equal(&f, &zero, sizeof f);
    va_list ap;
    va_start(ap, file);
    check_message(err.msg, file, ap);
    va_end(ap);
}

/* ==== 1. round trips ==================================================================== */

static void roundtrip(fixture *fx, const rd_config *c, int tied, const char *name) {
    char path[700];
    path_in(fx, name, path, sizeof path);
    rd_model_file orig;
    make_random(&orig, c, tied, 42 + (uint64_t)tied);
    write_bin(path, &orig);
    assert_int_equal(tiny_count_entries(fx->dir), 1); /* no temporary file left behind */
    uint64_t floats = rd_config_param_count(c, tied) +
                      (uint64_t)c->seq_len * (uint64_t)rd_config_head_dim(c);
    assert_int_equal(file_size(path), HEADER_BYTES + 4 * floats);

    rd_error err = {{0}};
    assert_int_equal(rd_detect_format(path, &err), RD_FORMAT_LLAMA2C);
    rd_model *m = load_ok(path, NULL);
    assert_int_equal(m->file.format, RD_FORMAT_LLAMA2C);
    assert_string_equal(m->path, path);
    assert_string_equal(m->file.name, name);
    assert_null(rd_model_tokenizer(m));
    assert_config_equal(rd_model_config(m), c);
    assert_weights_equal(&m->file, &orig);
    assert_int_equal(m->file.w.map_size, (size_t)file_size(path));
    assert_int_equal(rd_model_param_count(m), rd_config_param_count(c, tied));
    rd_model_free(m);

    /* The loader on its own gives the same. */
    rd_model_file f;
    if (rd_llama2c_load(path, NULL, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f.format, RD_FORMAT_LLAMA2C);
    assert_config_equal(&f.cfg, c);
    assert_weights_equal(&f, &orig);
    rd_model_file_release(&f);
    rd_model_file_release(&orig);
}


static void test_roundtrip_gqa_tied(void **state) {
    rd_config c = tiny_config();
    roundtrip(*state, &c, 1, "model.bin");
}

/* Content decides, not the name: a llama2.c checkpoint called model.gguf. */
static void test_roundtrip_gqa_untied_named_gguf(void **state) {
    rd_config c = tiny_config();
    roundtrip(*state, &c, 0, "model.gguf");
}

static void test_roundtrip_mha_tied(void **state) {
    rd_config c = mha_config();
    roundtrip(*state, &c, 1, "weights");
}

static void test_roundtrip_mha_untied(void **state) {
    rd_config c = mha_config();
    roundtrip(*state, &c, 0, "model.bin");
}

/* A GGUF file called x.bin is GGUF. */
static void test_gguf_named_bin(void **state) {
    fixture *fx = *state;
    char path[700];
    path_in(fx, "x.bin", path, sizeof path);
    rd_config c = tiny_config();
    rd_model_file orig;
    make_random(&orig, &c, 0, 7);
    write_gguf(path, &orig, RD_DTYPE_F32);
    rd_error err = {{0}};
    assert_int_equal(rd_detect_format(path, &err), RD_FORMAT_GGUF);
    rd_model *m = load_ok(path, NULL);
    assert_int_equal(m->file.format, RD_FORMAT_GGUF);
    assert_config_equal(rd_model_config(m), &c);
    assert_weights_equal(&m->file, &orig);
    rd_model_free(m);
    /* ...and the llama2.c loader, asked directly, refuses it with a message, not a crash. */
    expect_llama2c_fails(path, NULL, path, "llama2.c", NULL);
    rd_model_file_release(&orig);
}

/* rd_llama2c_write refuses what the format cannot hold and leaves no file behind; a
 * rotate_half (Hugging Face) model is written with its Q/K rows permuted to llama2.c's
 * adjacent pairs, so it computes the same function. */
static void test_write_refusals_and_half_rope(void **state) {
    fixture *fx = *state;
    rd_config c = tiny_config();
    rd_model_file f;
    make_random(&f, &c, 1, 3);
    rd_error err = {{0}};

    f.cfg.norm_eps = 1e-6f;
    assert_int_equal(rd_llama2c_write(fx->bin, &f.cfg, &f.w, &err), -1);
    assert_non_null(strstr(err.msg, fx->bin));
    assert_non_null(strstr(err.msg, "eps"));
    f.cfg.norm_eps = 1e-5f;
    f.cfg.rope_theta = 500000.0f;
    assert_int_equal(rd_llama2c_write(fx->bin, &f.cfg, &f.w, &err), -1);
    assert_non_null(strstr(err.msg, "theta"));
    f.cfg.rope_theta = 10000.0f;
    f.cfg.n_heads = 3; /* an invalid config */
    assert_int_equal(rd_llama2c_write(fx->bin, &f.cfg, &f.w, &err), -1);
    assert_non_null(strstr(err.msg, "n_heads"));
    f.cfg.n_heads = c.n_heads;
    /* weights that do not match the config (would overrun the writer's row buffer) */
    f.w.layers[1].w2.cols = 512;
    assert_int_equal(rd_llama2c_write(fx->bin, &f.cfg, &f.w, &err), -1);
    assert_non_null(strstr(err.msg, "w2"));
    f.w.layers[1].w2.cols = c.hidden_dim;
    assert_int_equal(tiny_count_entries(fx->dir), 0);

    /* rotate_half: the written (adjacent) model gives the same logits as the original. */
    f.cfg.rope_layout = RD_ROPE_HALF;
    int tokens[N_TOKENS];
    make_tokens(tokens, N_TOKENS, c.vocab_size);
    float *want = logits_of_file(&f, tokens, N_TOKENS);
    write_bin(fx->bin, &f);
    write_gguf(fx->gguf, &f, RD_DTYPE_F32);
    rd_model *bin = load_ok(fx->bin, NULL), *gguf = load_ok(fx->gguf, NULL);
    assert_int_equal(rd_model_config(bin)->rope_layout, RD_ROPE_ADJACENT);
    float *got = logits_of(bin, tokens, N_TOKENS), *got_gguf = logits_of(gguf, tokens, N_TOKENS);
    const size_t n = (size_t)N_TOKENS * (size_t)c.vocab_size;
    /* Same values, attention dot products summed in another order: f32 rounding only. */
    float diff = max_abs_diff(got, want, n), scale = max_abs(want, n);
    printf("    rotate_half written as .bin: max |Δlogit| %.3g of max |logit| %.3g\n",
           (double)diff, (double)scale);
    assert_true(diff <= 1e-5f * scale);
    /* Both writers permute the same way. */
    assert_memory_equal(got, got_gguf, n * sizeof *got);
    free(want);
    free(got);
    free(got_gguf);
    rd_model_free(bin);
    rd_model_free(gguf);
    rd_model_file_release(&f);
}

/* ==== 2. the same weights in other files ================================================ */

/* .bin and GGUF F32 of one model, and the model in memory: bit-identical logits. */
static void test_logits_bin_equal_gguf_f32(void **state) {
    fixture *fx = *state;
    const rd_config cfgs[2] = {tiny_config(), mha_config()};
    for (int k = 0; k < 2; k++)
        for (int tied = 0; tied <= 1; tied++) {
            const rd_config *c = &cfgs[k];
            rd_model_file orig;
            make_random(&orig, c, tied, 100 + (uint64_t)(2 * k + tied));
            write_bin(fx->bin, &orig);
            write_gguf(fx->gguf, &orig, RD_DTYPE_F32);
            int tokens[N_TOKENS];
            make_tokens(tokens, N_TOKENS, c->vocab_size);
            rd_model *bin = load_ok(fx->bin, NULL), *gguf = load_ok(fx->gguf, NULL);
            assert_int_equal(bin->file.format, RD_FORMAT_LLAMA2C);
            assert_int_equal(gguf->file.format, RD_FORMAT_GGUF);
            assert_config_equal(rd_model_config(gguf), rd_model_config(bin));
            float *a = logits_of(bin, tokens, N_TOKENS), *b = logits_of(gguf, tokens, N_TOKENS);
            float *mem = logits_of_file(&orig, tokens, N_TOKENS);
            const size_t n = (size_t)N_TOKENS * (size_t)c->vocab_size;
            assert_true(max_abs(a, n) > 0.1f); /* not a degenerate all-zero output */
            if (memcmp(a, b, n * sizeof *a) != 0)
                fail_msg("%s %s: .bin and GGUF F32 logits differ (max %g)",
                         k ? "MHA" : "GQA", tied ? "tied" : "untied",
                         (double)max_abs_diff(a, b, n));
            assert_memory_equal(a, mem, n * sizeof *a);
            free(a);
            free(b);
            free(mem);
            rd_model_free(bin);
            rd_model_free(gguf);
            rd_model_file_release(&orig);
        }
}

/* Rounds every matrix of f through `type` and back, in place: f's f32 weights are heap
 * buffers it owns (rd_model_file_random), so casting away const is safe here. */
static void round_matrices(rd_model_file *f, rd_dtype type) {
    const rd_dtype_info *info = rd_dtype_info_of(type);
    rd_matrix *ms[8];
    int n = 0;
    ms[n++] = &f->w.tok_embeddings;
    if (!f->w.tied_classifier) ms[n++] = &f->w.classifier;
    for (int k = 0; k < n + 7 * f->cfg.n_layers; k++) {
        rd_matrix *m;
        if (k < n) {
            m = ms[k];
        } else {
            rd_layer_weights *L = &f->w.layers[(k - n) / 7];
            rd_matrix *per[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
            m = per[(k - n) % 7];
        }
        assert_int_equal(m->type, RD_DTYPE_F32);
        void *conv = malloc((size_t)m->cols * sizeof(float));
        assert_non_null(conv);
        for (int64_t r = 0; r < m->rows; r++) {
            float *row = (float *)m->data + r * m->cols;
            info->from_f32(row, conv, (size_t)m->cols);
            info->to_f32(conv, row, (size_t)m->cols);
        }
        free(conv);
    }
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static float top2_gap(const float *x, int n) {
    float a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (x[i] > a) {
            b = a;
            a = x[i];
        } else if (x[i] > b) {
            b = x[i];
        }
    }
    return a - b;
}

/* The tolerance of a lower-precision file against F32.
 *
 * Every stored weight is w(1 + δ) with |δ| ≤ u, the type's unit roundoff: F16 has an
 * 11-bit significand (u = 2^-11), BF16 an 8-bit one (u = 2^-8). Q8_0 stores each block of
 * 32 as d·q with d = amax/127, an error of at most d/2 = amax/254 per weight; for these
 * Gaussian weights amax stays below 4× the block's RMS, so relative to the weights'
 * scale that is ≤ 4/254 < 2^-6. A matrix product then carries a relative error ≤ u of its
 * output's scale, and a logit goes through n_mm = 7·n_layers + 1 products in sequence.
 * Assuming the errors add up without cancelling (a worst case: in practice they are
 * independent and mostly cancel), |Δlogit| ≤ n_mm · u · max|logit|. A weight put in the
 * wrong place or decoded wrongly moves the logits by O(max|logit|) and fails this. */
static float unit_roundoff(rd_dtype t) {
    switch (t) {
    case RD_DTYPE_F16: return 0x1p-11f;
    case RD_DTYPE_BF16: return 0x1p-8f;
    case RD_DTYPE_Q8_0: return 0x1p-6f;
    default: return 0.0f;
    }
}

static void converted_close(fixture *fx, const rd_config *c, int tied, rd_dtype type) {
    const char *tname = rd_dtype_info_of(type)->name;
    rd_model_file orig, rounded;
    make_random(&orig, c, tied, 500 + (uint64_t)type);
    make_random(&rounded, c, tied, 500 + (uint64_t)type);
    round_matrices(&rounded, type);
    write_gguf(fx->gguf, &orig, type);
    rd_model *m = load_ok(fx->gguf, NULL);
    assert_int_equal(m->file.w.layers[0].w2.type, type);
    int tokens[N_TOKENS];
    make_tokens(tokens, N_TOKENS, c->vocab_size);
    const int V = c->vocab_size;
    const size_t n = (size_t)N_TOKENS * (size_t)V;
    float *got = logits_of(m, tokens, N_TOKENS);
    float *f32 = logits_of_file(&orig, tokens, N_TOKENS);
    float *want = logits_of_file(&rounded, tokens, N_TOKENS);

    /* Against the f32 model: the derived tolerance. */
    const int n_mm = 7 * c->n_layers + 1;
    const float scale = max_abs(f32, n), tol = (float)n_mm * unit_roundoff(type) * scale;
    const float diff = max_abs_diff(got, f32, n);
    /* Against an f32 model holding the very values the file stores: only the order of
     * f32 additions may differ. */
    const float diff_exact = max_abs_diff(got, want, n);
    printf("    %s %s: max |Δlogit| %.3g vs F32 (tolerance %.3g = %d products × u %.3g × "
           "max|logit| %.3g); %.3g vs the same values in f32\n",
           tname, tied ? "tied" : "untied", (double)diff, (double)tol, n_mm,
           (double)unit_roundoff(type), (double)scale, (double)diff_exact);
    if (diff > tol) fail_msg("%s logits are %g from F32 (tolerance %g)", tname, (double)diff, (double)tol);
    if (diff_exact > 1e-5f * scale)
        fail_msg("%s logits are %g from the same weights in f32", tname, (double)diff_exact);
    /* Where the f32 model's top two logits are further apart than twice the tolerance, the
     * converted model picks the same token. */
    for (int t = 0; t < N_TOKENS; t++)
        if (top2_gap(f32 + (size_t)t * V, V) > 2 * tol)
            assert_int_equal(argmax(got + (size_t)t * V, V), argmax(f32 + (size_t)t * V, V));
    free(got);
    free(f32);
    free(want);
    rd_model_free(m);
    rd_model_file_release(&orig);
    rd_model_file_release(&rounded);
}

static void test_logits_f16_bf16_close(void **state) {
    rd_config c = tiny_config();
    for (int tied = 0; tied <= 1; tied++) {
        converted_close(*state, &c, tied, RD_DTYPE_F16);
        converted_close(*state, &c, tied, RD_DTYPE_BF16);
    }
}

static void test_logits_q8_0_close(void **state) {
    rd_config c = q8_config();
    for (int tied = 0; tied <= 1; tied++) converted_close(*state, &c, tied, RD_DTYPE_Q8_0);
    /* tiny_config's hidden 172 is not a whole number of Q8_0 blocks: refused, no file. */
    fixture *fx = *state;
    rd_config odd = tiny_config();
    rd_model_file f;
    make_random(&f, &odd, 1, 1);
    rd_error err = {{0}};
    assert_int_equal(rd_gguf_write(fx->bin, &f, RD_DTYPE_Q8_0, &err), -1);
    assert_non_null(strstr(err.msg, "Q8_0"));
    assert_int_equal(file_size(fx->bin), -1);
    rd_model_file_release(&f);
}

/* ==== 3. stories260K ==================================================================== */

static void test_stories260k_as_gguf(void **state) {
    fixture *fx = *state;
    const char *src = shared_fixture("stories260K/stories260K.bin");
    if (!src) fail_msg("../shared/fixtures/stories260K is missing");
    rd_error err = {{0}};
    assert_int_equal(rd_detect_format(src, &err), RD_FORMAT_LLAMA2C);
    rd_model_file f;
    if (rd_llama2c_load(src, NULL, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f.cfg.dim, 64);
    assert_int_equal(f.cfg.n_layers, 5);
    assert_int_equal(f.cfg.n_kv_heads, 4);
    assert_int_equal(f.cfg.vocab_size, 512);
    assert_int_equal(f.w.tied_classifier, 1);
    assert_int_equal(f.vocab.n, 0); /* no tokenizer.bin beside it */
    write_gguf(fx->gguf, &f, RD_DTYPE_F32);
    rd_model *bin = load_ok(src, NULL), *gguf = load_ok(fx->gguf, NULL);
    assert_config_equal(rd_model_config(gguf), &f.cfg);
    assert_weights_equal(&bin->file, &f);
    enum { T = 48 };
    int tokens[T];
    make_tokens(tokens, T, 512);
    float *a = logits_of(bin, tokens, T), *b = logits_of(gguf, tokens, T);
    assert_memory_equal(a, b, sizeof(float) * T * 512);
    /* And a .bin written back from the GGUF is the original file, byte for byte. */
    write_bin(fx->bin, &gguf->file);
    bytebuf x, y;
    bb_init(&x);
    bb_init(&y);
    assert_int_equal(bb_read_file(&x, src), 0);
    assert_int_equal(bb_read_file(&y, fx->bin), 0);
    assert_int_equal(x.len, y.len);
    /* the weights; the legacy freq_cis tables are recomputed and may differ in the last bit */
    const size_t freq_at = HEADER_BYTES + 4 * (size_t)(rd_config_param_count(&f.cfg, 1));
    assert_memory_equal(x.data, y.data, freq_at);
    bb_free(&x);
    bb_free(&y);
    free(a);
    free(b);
    rd_model_free(bin);
    rd_model_free(gguf);
    rd_model_file_release(&f);
}

/* ==== 4. the tokenizer ================================================================== */

static void test_tokenizer_beside_model(void **state) {
    fixture *fx = *state;
    rd_config c = tiny_config();
    rd_model_file orig;
    make_random(&orig, &c, 1, 9);
    write_bin(fx->bin, &orig);
    char other[700];
    path_in(fx, "model.gguf", other, sizeof other); /* llama2.c content, GGUF name */
    write_bin(other, &orig);

    rd_model *m = load_ok(fx->bin, NULL);
    assert_null(rd_model_tokenizer(m)); /* none yet: works in token ids */
    rd_model_free(m);

    write_tokenizer(fx->tok, c.vocab_size);
    const char *paths[2] = {fx->bin, other};
    for (int i = 0; i < 2; i++) {
        m = load_ok(paths[i], NULL);
        const rd_tokenizer *t = rd_model_tokenizer(m);
        assert_non_null(t);
        assert_int_equal(rd_tokenizer_vocab_size(t), c.vocab_size);
        assert_int_equal(rd_tokenizer_bos(t), 1);
        assert_int_equal(rd_tokenizer_eos(t), 2);
        assert_piece(t, 1, "<s>");
        assert_piece(t, 3 + 'A', "<0x41>");
        assert_piece(t, c.vocab_size - 1, "tok299");
        rd_model_free(m);
    }
    /* The loader itself, too. */
    rd_model_file f;
    rd_error err = {{0}};
    if (rd_llama2c_load(fx->bin, NULL, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f.vocab.n, c.vocab_size);
    rd_model_file_release(&f);
    /* A tokenizer.bin is not a model. */
    assert_int_equal(rd_detect_format(fx->tok, &err), RD_FORMAT_UNKNOWN);
    rd_model_file_release(&orig);
}

static void test_tokenizer_explicit_path(void **state) {
    fixture *fx = *state;
    rd_config c = tiny_config();
    rd_model_file orig;
    make_random(&orig, &c, 0, 10);
    write_bin(fx->bin, &orig);
    char tok[700];
    path_in(fx, "vocab300.tok", tok, sizeof tok);
    write_tokenizer(tok, c.vocab_size);
    rd_load_opts opts = {.tokenizer_path = tok};
    rd_model *m = load_ok(fx->bin, &opts);
    assert_non_null(rd_model_tokenizer(m));
    assert_piece(rd_model_tokenizer(m), 260, "tok260");
    rd_model_free(m);
    /* The explicit path wins over a (mismatched) tokenizer.bin beside the model. */
    write_tokenizer(fx->tok, c.vocab_size + 5);
    m = load_ok(fx->bin, &opts);
    assert_int_equal(rd_tokenizer_vocab_size(rd_model_tokenizer(m)), c.vocab_size);
    rd_model_free(m);
    /* An explicit path that does not exist. */
    char none[700];
    path_in(fx, "missing.tok", none, sizeof none);
    opts.tokenizer_path = none;
    expect_model_fails(fx->bin, &opts, none, "cannot open", NULL);
    expect_llama2c_fails(fx->bin, none, none, "cannot open", NULL);
    /* A GGUF file carries its own tokenizer: an explicit one is refused. */
    write_gguf(fx->gguf, &orig, RD_DTYPE_F32);
    opts.tokenizer_path = tok;
    expect_model_fails(fx->gguf, &opts, fx->gguf, "GGUF", "tokenizer", NULL);
    rd_model_file_release(&orig);
}

/* The Llama-2 tokenizer (32000 pieces) beside a model with that vocabulary. */
static void test_tokenizer_llama2_fixture(void **state) {
    fixture *fx = *state;
    const char *src = shared_fixture("llama2-tokenizer/tokenizer.bin");
    if (!src) fail_msg("../shared/fixtures/llama2-tokenizer is missing");
    rd_error err = {{0}};
    assert_int_equal(rd_detect_format(src, &err), RD_FORMAT_UNKNOWN); /* not a model */
    bytebuf b;
    bb_init(&b);
    assert_int_equal(bb_read_file(&b, src), 0);
    assert_int_equal(bb_write_file(&b, fx->tok, b.len), 0);
    bb_free(&b);
    rd_config c = small_config();
    c.vocab_size = 32000;
    rd_model_file orig;
    make_random(&orig, &c, 1, 11);
    write_bin(fx->bin, &orig);
    rd_model *m = load_ok(fx->bin, NULL);
    const rd_tokenizer *t = rd_model_tokenizer(m);
    assert_non_null(t);
    assert_int_equal(rd_tokenizer_vocab_size(t), 32000);
    int *ids = NULL;
    size_t n = 0;
    if (rd_tokenizer_encode(t, "Hello world", 11, 0, 0, &ids, &n, &err)) fail_msg("%s", err.msg);
    assert_int_equal(n, 2); /* expected.jsonl: [15043, 3186] */
    assert_int_equal(ids[0], 15043);
    assert_int_equal(ids[1], 3186);
    free(ids);
    rd_model_free(m);
    rd_model_file_release(&orig);
}

/* A tokenizer whose size is not the model's vocabulary: an error naming the tokenizer. */
static void test_tokenizer_vocab_mismatch(void **state) {
    fixture *fx = *state;
    rd_config c = tiny_config();
    rd_model_file orig;
    make_random(&orig, &c, 1, 12);
    write_bin(fx->bin, &orig);
    const int sizes[2] = {c.vocab_size - 1, c.vocab_size + 1};
    for (int i = 0; i < 2; i++) {
        write_tokenizer(fx->tok, sizes[i]);
        expect_model_fails(fx->bin, NULL, fx->tok, "vocab", NULL);
        expect_llama2c_fails(fx->bin, NULL, fx->tok, "vocab", NULL);
        char tok[700];
        path_in(fx, "other.tok", tok, sizeof tok);
        write_tokenizer(tok, sizes[i]);
        rd_load_opts opts = {.tokenizer_path = tok};
        expect_model_fails(fx->bin, &opts, tok, "vocab", NULL);
    }
    rd_model_file_release(&orig);
}

/* ==== 5. bad input ====================================================================== */

/* A valid small checkpoint's bytes. */
static void valid_bytes(fixture *fx, bytebuf *b, int tied) {
    rd_config c = small_config();
    rd_model_file f;
    make_random(&f, &c, tied, 77);
    write_bin(fx->bin, &f);
    rd_model_file_release(&f);
    bb_init(b);
    assert_int_equal(bb_read_file(b, fx->bin), 0);
}

/* rd_model_load and rd_llama2c_load both fail on path with one message naming it and
 * holding every word. */
#define EXPECT_BOTH_FAIL(path, ...)                                                         \
    do {                                                                                    \
        expect_model_fails(path, NULL, path, __VA_ARGS__, NULL);                            \
        expect_llama2c_fails(path, NULL, path, __VA_ARGS__, NULL);                          \
    } while (0)

static void test_bad_empty_and_short(void **state) {
    fixture *fx = *state;
    bytebuf b;
    valid_bytes(fx, &b, 1);
    assert_int_equal(bb_write_file(&b, fx->bin, 0), 0);
    EXPECT_BOTH_FAIL(fx->bin, "empty");
    const size_t cuts[] = {1, 4, 10, HEADER_BYTES - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(bb_write_file(&b, fx->bin, cuts[i]), 0);
        EXPECT_BOTH_FAIL(fx->bin, "truncated");
    }
    bb_free(&b);
}

static void test_bad_weight_sizes(void **state) {
    fixture *fx = *state;
    for (int tied = 0; tied <= 1; tied++) {
        bytebuf b;
        valid_bytes(fx, &b, tied);
        const size_t len = b.len;
        const size_t cuts[] = {len - 1, len - 4, len / 2, HEADER_BYTES};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            assert_int_equal(bb_write_file(&b, fx->bin, cuts[i]), 0);
            EXPECT_BOTH_FAIL(fx->bin, "truncated", "implies");
        }
        bb_u8(&b, 0);
        assert_int_equal(bb_write_file(&b, fx->bin, b.len), 0);
        EXPECT_BOTH_FAIL(fx->bin, "trailing data");
        bb_zeros(&b, 3);
        assert_int_equal(bb_write_file(&b, fx->bin, b.len), 0);
        EXPECT_BOTH_FAIL(fx->bin, "trailing data");
        b.len = len; /* intact again: loads */
        assert_int_equal(bb_write_file(&b, fx->bin, b.len), 0);
        rd_model_free(load_ok(fx->bin, NULL));
        bb_free(&b);
    }
}

/* Header fields in file order. */
enum { H_DIM, H_HIDDEN, H_LAYERS, H_HEADS, H_KV_HEADS, H_VOCAB, H_SEQ };

typedef struct header_case {
    int32_t v[7];
    const char *words[3];
} header_case;

static void test_bad_header_fields(void **state) {
    fixture *fx = *state;
    bytebuf b;
    valid_bytes(fx, &b, 1);
    /* dim 16, hidden 32, 1 layer, 2 heads, 2 kv heads, vocab 32, seq 8 is valid. */
    const header_case cases[] = {
        {{16, 32, 1, 0, 2, 32, 8}, {"n_heads = 0", "out of range"}},
        {{-16, 32, 1, 2, 2, 32, 8}, {"dim = -16", "out of range"}},
        {{16, -32, 1, 2, 2, 32, 8}, {"hidden_dim = -32", "out of range"}},
        {{16, 32, 0, 2, 2, 32, 8}, {"n_layers = 0", "out of range"}},
        {{16, 32, 1, 2, 0, 32, 8}, {"n_kv_heads = 0", "out of range"}},
        {{16, 32, 1, 2, 2, 32, 0}, {"seq_len = 0", "out of range"}},
        {{16, 32, 1, 3, 3, 32, 8}, {"n_heads = 3 does not divide dim = 16"}},
        {{16, 32, 1, 4, 3, 32, 8}, {"n_kv_heads = 3 does not divide n_heads = 4"}},
        {{16, 32, 1, 2, 4, 32, 8}, {"n_kv_heads = 4 does not divide n_heads = 2"}},
        {{18, 32, 1, 2, 2, 32, 8}, {"head dimension 9 is odd"}},
        {{1 << 30, 32, 1, 2, 2, 32, 8}, {"dim = 1073741824", "out of range"}},
        {{16, 32, 1, 2, 2, INT32_MIN, 8}, {"vocab", "-2147483648", "out of range"}},
        {{16, 32, 1, 2, 2, INT32_MAX, 8}, {"vocab", "out of range"}},
        {{16, 32, 1, 2, 2, 32, INT32_MAX}, {"seq_len", "out of range"}},
        /* a valid header whose implied size (> 2^40 weights: 3 · 4096 · 2^18 · 1024 in the
         * FFN alone) is far beyond the file: refused before anything is allocated */
        {{4096, 1 << 18, 1024, 32, 32, -32000, 2048}, {"implies", "truncated"}},
    };
    char gguf_named[700];
    path_in(fx, "bad.gguf", gguf_named, sizeof gguf_named);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const header_case *hc = &cases[i];
        for (int f = 0; f < 7; f++) bb_patch_u32(&b, (size_t)f * 4, (uint32_t)hc->v[f]);
        const char *path = i % 2 ? gguf_named : fx->bin; /* the name never matters */
        assert_int_equal(bb_write_file(&b, path, b.len), 0);
        expect_model_fails(path, NULL, path, hc->words[0], hc->words[1], hc->words[2], NULL);
        expect_llama2c_fails(path, NULL, path, hc->words[0], hc->words[1], hc->words[2], NULL);
    }
    bb_free(&b);
}

/* llama2.c's version 1/2 exports start with uint32 0x616b3432 ("ak42") in little-endian
 * order, i.e. the bytes "24ka", then int32 version, the 7 header ints, padding to 256. */
static void test_bad_ak42_export(void **state) {
    fixture *fx = *state;
    for (int version = 1; version <= 2; version++) {
        bytebuf b;
        bb_init(&b);
        bb_u32(&b, 0x616b3432u);
        bb_i32(&b, version);
        const int32_t h[7] = {64, 172, 5, 8, 4, 512, 512};
        for (int i = 0; i < 7; i++) bb_i32(&b, h[i]);
        bb_u8(&b, 1); /* shared classifier */
        bb_zeros(&b, 256 - b.len);
        bb_zeros(&b, 4096); /* some "weights" */
        assert_int_equal(bb_write_file(&b, fx->bin, b.len), 0);
        char v[32];
        snprintf(v, sizeof v, "version %d", version);
        EXPECT_BOTH_FAIL(fx->bin, "ak42", v, "--version 0");
        bb_free(&b);
    }
}

static void test_bad_not_a_model(void **state) {
    fixture *fx = *state;
    /* Random bytes. */
    bytebuf b;
    bb_init(&b);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 4096; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        bb_u8(&b, (uint8_t)(s >> 24));
    }
    assert_int_equal(bb_write_file(&b, fx->bin, b.len), 0);
    rd_error err = {{0}};
    assert_int_equal(rd_detect_format(fx->bin, &err), RD_FORMAT_UNKNOWN);
    expect_model_fails(fx->bin, NULL, fx->bin, "not a model file", NULL);
    expect_llama2c_fails(fx->bin, NULL, fx->bin, "out of range", NULL);
    /* Text. */
    bb_reset(&b);
    const char *text = "this is a plain text file, long enough to hold a header\n";
    bb_bytes(&b, text, strlen(text));
    assert_int_equal(bb_write_file(&b, fx->bin, b.len), 0);
    expect_model_fails(fx->bin, NULL, fx->bin, "not a model file", NULL);
    /* All zeros. */
    bb_reset(&b);
    bb_zeros(&b, 1024);
    assert_int_equal(bb_write_file(&b, fx->bin, b.len), 0);
    expect_model_fails(fx->bin, NULL, fx->bin, "not a model file", NULL);
    bb_free(&b);
    /* A directory. */
    char sub[700];
    path_in(fx, "sub.bin", sub, sizeof sub);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(rd_detect_format(sub, &err), RD_FORMAT_UNKNOWN);
    expect_model_fails(sub, NULL, sub, "directory", NULL);
    expect_llama2c_fails(sub, NULL, sub, "not a regular file", NULL);
    rmdir(sub);
    /* A missing file. */
    char none[700];
    path_in(fx, "none.bin", none, sizeof none);
    assert_int_equal(rd_detect_format(none, &err), RD_FORMAT_UNKNOWN);
    expect_model_fails(none, NULL, none, "cannot open", "No such file", NULL);
    expect_llama2c_fails(none, NULL, none, "cannot open", NULL);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_roundtrip_gqa_tied),
        T(test_roundtrip_gqa_untied_named_gguf),
        T(test_roundtrip_mha_tied),
        T(test_roundtrip_mha_untied),
        T(test_gguf_named_bin),
        T(test_write_refusals_and_half_rope),
        T(test_logits_bin_equal_gguf_f32),
        T(test_logits_f16_bf16_close),
        T(test_logits_q8_0_close),
        T(test_stories260k_as_gguf),
        T(test_tokenizer_beside_model),
        T(test_tokenizer_explicit_path),
        T(test_tokenizer_llama2_fixture),
        T(test_tokenizer_vocab_mismatch),
        T(test_bad_empty_and_short),
        T(test_bad_weight_sizes),
        T(test_bad_header_fields),
        T(test_bad_ak42_export),
        T(test_bad_not_a_model),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
