/* Exporting RED edits (src/model/edits_export.c): the llama.cpp control vector (parsed
 * back with the project's GGUF reader: KVs, tensor names, shapes, types and exact values,
 * and the report of what was dropped), refusal when there is nothing to export, no
 * temporary file left behind, the safetensors export for Python (names, shapes, exact
 * values, metadata), and the merged GGUF: its logits (inference) and loss (training
 * forward) equal the base model's with the edits within f32 rounding, RED on a merged
 * model equals merging twice, the matrices that are not scaled keep their type (a Q8_0
 * base), and the biases load back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/io/gguf.h"
#include "helpers/bytebuf.h"
#include "helpers/tiny_model.h"
#include "redit/edits.h"
#include "redit/backward.h"
#include "redit/export.h"
#include "redit/forward.h"
#include "redit/safetensors.h"

typedef struct fixture {
    char dir[512];
    char path[600]; /* dir/out */
    rd_model *m;    /* tiny random model: dim 64, 3 layers */
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tiny_tempdir(fx->dir, sizeof fx->dir)) return -1;
    snprintf(fx->path, sizeof fx->path, "%s/out", fx->dir);
    rd_config cfg = tiny_config();
    rd_model_file f;
    rd_error err = {{0}};
    if (rd_model_file_random(&f, &cfg, 0, 5, RD_DTYPE_F32, &err)) return -1;
    snprintf(f.name, sizeof f.name, "tiny-export");
    fx->m = rd_model_from_file(&f, NULL, &err);
    *state = fx;
    return fx->m ? 0 : -1;
}

static int teardown(void **state) {
    fixture *fx = *state;
    rd_model_free(fx->m);
    tiny_rmdir(fx->dir);
    free(fx);
    return 0;
}

static rd_edits *new_edits(const rd_model *m, int sites, const char *layers, int scale,
                           int bias) {
    rd_error err = {{0}};
    rd_edit_spec spec = {.sites = sites, .layers = layers, .scale = scale, .bias = bias};
    rd_edits *e = rd_edits_new(rd_model_config(m), &spec, &err);
    if (!e) fail_msg("rd_edits_new: %s", err.msg);
    float *p = rd_edits_params(e);
    uint32_t s = 12345;
    for (size_t i = 0; i < rd_edits_param_count(e); i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    return e;
}

static void assert_string_kv(const rd_gguf *g, const char *key, const char *want) {
    const rd_gguf_value *v = rd_gguf_get(g, key);
    assert_non_null(v);
    assert_int_equal(v->type, RD_GGUF_STRING);
    assert_int_equal(v->n, strlen(want));
    assert_memory_equal(v->as.s, want, strlen(want));
}

/* Both sites, scale and bias, layers 0-2: direction.1 and .2 hold the ffn biases; layer 0's
 * ffn bias, 6 scale vectors and 3 attn biases are dropped. */
static void test_cvec_both_sites(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(fx->m, RD_SITE_BOTH, "all", 1, 1);
    rd_error err = {{0}};
    rd_cvec_report rep;
    if (rd_export_cvec(e, fx->path, &rep, &err)) fail_msg("rd_export_cvec: %s", err.msg);
    assert_int_equal(rep.n_written, 2);
    assert_int_equal(rep.layer0_ffn_bias, 1);
    assert_int_equal(rep.n_scale_dropped, 6);
    assert_int_equal(rep.n_attn_bias_dropped, 3);
    assert_int_equal(tiny_count_entries(fx->dir), 1); /* no temporary file left */

    bytebuf b;
    bb_init(&b);
    assert_int_equal(bb_read_file(&b, fx->path), 0);
    rd_gguf *g = NULL;
    if (rd_gguf_parse(b.data, b.len, fx->path, &g, &err)) fail_msg("parse: %s", err.msg);
    assert_int_equal(g->version, 3);
    assert_string_kv(g, "general.architecture", "controlvector");
    assert_string_kv(g, "controlvector.model_hint", "llama");
    int64_t n_layers = 0;
    assert_int_equal(rd_gguf_value_int(rd_gguf_get(g, "controlvector.layer_count"), &n_layers), 0);
    assert_int_equal(n_layers, 3);
    /* the types llama.cpp requires: general.alignment u32 (it refuses the file otherwise),
     * layer_count i32 as its cvector-generator writes it */
    const rd_gguf_value *align = rd_gguf_get(g, "general.alignment");
    assert_non_null(align);
    assert_int_equal(align->type, RD_GGUF_UINT32);
    assert_int_equal(align->as.u, 32);
    assert_int_equal(rd_gguf_get(g, "controlvector.layer_count")->type, RD_GGUF_INT32);
    assert_int_equal(g->n_tensors, 2);
    assert_null(rd_gguf_tensor_get(g, "direction.0"));
    for (int l = 1; l <= 2; l++) {
        char name[32];
        snprintf(name, sizeof name, "direction.%d", l);
        const rd_gguf_tensor *t = rd_gguf_tensor_get(g, name);
        assert_non_null(t);
        assert_int_equal(t->n_dims, 1);
        assert_int_equal(t->ne[0], 64);
        assert_int_equal(t->type->dtype, RD_DTYPE_F32);
        assert_memory_equal(t->data, rd_edits_vector(e, l, RD_SITE_FFN, 1), 64 * sizeof(float));
    }
    rd_gguf_free(g);
    bb_free(&b);

    /* a layer-0 ffn bias of zeros loses nothing: it is not reported as dropped */
    float *b0 = rd_edits_vector(e, 0, RD_SITE_FFN, 1);
    assert_non_null(b0);
    memset(b0, 0, sizeof(float) * (size_t)rd_edits_dim(e));
    if (rd_export_cvec(e, fx->path, &rep, &err)) fail_msg("rd_export_cvec: %s", err.msg);
    assert_int_equal(rep.layer0_ffn_bias, 0);
    assert_int_equal(rep.n_written, 2);
    rd_edits_free(e);
}

/* Ffn bias only, on layer 2 of 3: one direction tensor, nothing dropped. */
static void test_cvec_bias_only(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(fx->m, RD_SITE_FFN, "2", 0, 1);
    rd_error err = {{0}};
    rd_cvec_report rep;
    if (rd_export_cvec(e, fx->path, &rep, &err)) fail_msg("rd_export_cvec: %s", err.msg);
    assert_int_equal(rep.n_written, 1);
    assert_int_equal(rep.layer0_ffn_bias + rep.n_scale_dropped + rep.n_attn_bias_dropped, 0);
    bytebuf b;
    bb_init(&b);
    assert_int_equal(bb_read_file(&b, fx->path), 0);
    rd_gguf *g = NULL;
    if (rd_gguf_parse(b.data, b.len, fx->path, &g, &err)) fail_msg("parse: %s", err.msg);
    assert_int_equal(g->n_tensors, 1);
    const rd_gguf_tensor *t = rd_gguf_tensor_get(g, "direction.2");
    assert_non_null(t);
    assert_memory_equal(t->data, rd_edits_vector(e, 2, RD_SITE_FFN, 1), 64 * sizeof(float));
    rd_gguf_free(g);
    bb_free(&b);
    rd_edits_free(e);
}

/* Nothing a control vector can carry: refused, no file written. */
static void test_cvec_nothing_to_export(void **state) {
    fixture *fx = *state;
    const struct { int sites; const char *layers; int scale, bias; } cases[] = {
        {RD_SITE_FFN, "0", 1, 1},   /* only layer 0 */
        {RD_SITE_FFN, "all", 1, 0}, /* scale only */
        {RD_SITE_ATTN, "all", 1, 1} /* attn only */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rd_edits *e = new_edits(fx->m, cases[i].sites, cases[i].layers, cases[i].scale,
                                cases[i].bias);
        rd_error err = {{0}};
        rd_cvec_report rep;
        assert_int_equal(rd_export_cvec(e, fx->path, &rep, &err), -1);
        assert_non_null(strstr(err.msg, "nothing to export"));
        assert_non_null(strstr(err.msg, fx->path));
        assert_int_equal(rep.n_written, 0);
        assert_int_equal(tiny_count_entries(fx->dir), 0);
        rd_edits_free(e);
    }
}

static void test_safetensors(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(fx->m, RD_SITE_BOTH, "0,2", 1, 1);
    rd_error err = {{0}};
    if (rd_export_safetensors(e, fx->m, fx->path, &err)) fail_msg("export: %s", err.msg);
    rd_st_file *f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("rd_st_open: %s", err.msg);
    assert_int_equal(rd_st_count(f), 8);
    const int layers[2] = {0, 2};
    for (int i = 0; i < 2; i++)
        for (int site = RD_SITE_ATTN; site <= RD_SITE_FFN; site++)
            for (int bias = 0; bias <= 1; bias++) {
                char name[96];
                snprintf(name, sizeof name, "model.layers.%d.%s.%s", layers[i],
                         site == RD_SITE_FFN ? "mlp.down_proj" : "self_attn.o_proj",
                         bias ? "red_bias" : "red_scale");
                const rd_st_tensor *t = rd_st_find(f, name);
                if (!t) fail_msg("missing %s", name);
                assert_string_equal(t->dtype, "F32");
                assert_int_equal(t->n_dims, 1);
                assert_int_equal(t->shape[0], 64);
                assert_memory_equal(t->data, rd_edits_vector(e, layers[i], site, bias),
                                    64 * sizeof(float));
            }
    assert_null(rd_st_find(f, "model.layers.1.mlp.down_proj.red_bias"));
    assert_string_equal(rd_st_metadata(f, "format"), "redit-red-hf");
    assert_string_equal(rd_st_metadata(f, "base_model"), "tiny-export");
    assert_string_equal(rd_st_metadata(f, "dim"), "64");
    assert_string_equal(rd_st_metadata(f, "layers"), "0,2");
    rd_st_close(f);
    rd_edits_free(e);
}

/* Scale-only ffn edits: only red_scale tensors. */
static void test_safetensors_scale_only(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(fx->m, RD_SITE_FFN, "all", 1, 0);
    rd_error err = {{0}};
    if (rd_export_safetensors(e, NULL, fx->path, &err)) fail_msg("export: %s", err.msg);
    rd_st_file *f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("rd_st_open: %s", err.msg);
    assert_int_equal(rd_st_count(f), 3);
    assert_non_null(rd_st_find(f, "model.layers.1.mlp.down_proj.red_scale"));
    assert_null(rd_st_find(f, "model.layers.1.mlp.down_proj.red_bias"));
    assert_null(rd_st_metadata(f, "base_model"));
    rd_st_close(f);
    rd_edits_free(e);
}


/* ---- merged --------------------------------------------------------------------------- */

enum { SEQ = 12 };

static void fixed_tokens(int *tokens, int V) {
    for (int t = 0; t < SEQ; t++) tokens[t] = (t * 37 + 5) % V;
}

/* Logits (SEQ, V) of a fixed sequence on m with edits e (NULL: base). Malloc'ed. */
static float *run_logits(const rd_model *m, const rd_edits *e) {
    const int V = rd_model_config(m)->vocab_size;
    int tokens[SEQ];
    fixed_tokens(tokens, V);
    rd_error err = {{0}};
    rd_ctx *c = rd_ctx_new(m, 1, SEQ, &err);
    if (!c) fail_msg("ctx: %s", err.msg);
    float *logits = malloc((size_t)SEQ * V * sizeof *logits);
    assert_non_null(logits);
    rd_edits_view v = e ? rd_edits_view_at(e, 1.0f) : (rd_edits_view){0};
    if (rd_forward(c, e ? &v : NULL, tokens, 1, SEQ, RD_LOGITS_ALL, logits, &err))
        fail_msg("forward: %s", err.msg);
    rd_ctx_free(c);
    return logits;
}

/* Training-forward loss sum of the fixed sequence on m with edits e (NULL: base). */
static double run_loss(const rd_model *m, const rd_edits *e) {
    const int V = rd_model_config(m)->vocab_size;
    int tokens[SEQ], targets[SEQ];
    fixed_tokens(tokens, V);
    for (int t = 0; t < SEQ; t++) targets[t] = t + 1 < SEQ ? tokens[t + 1] : -1;
    rd_error err = {{0}};
    rd_train_ctx *c = rd_train_ctx_new(m, 1, SEQ, 0, &err);
    if (!c) fail_msg("train ctx: %s", err.msg);
    rd_edits_view v = e ? rd_edits_view_at(e, 1.0f) : (rd_edits_view){0};
    double loss = 0;
    int n = 0;
    if (rd_train_pass(c, e ? &v : NULL, NULL, NULL, tokens, targets, 1, SEQ, &loss, &n, &err))
        fail_msg("train pass: %s", err.msg);
    rd_train_ctx_free(c);
    return loss;
}

/* Tolerance of merged vs edited logits: f32 rounding of (s_j W_j)·x against s_j (W_j·x),
 * through 3 layers: max |difference| ≤ 1e-5 × max |logit| (plus 1e-6 absolute). */
#define MERGE_RTOL 1e-5

static void assert_logits_close(const float *got, const float *want, size_t n) {
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > max_ref) max_ref = fabs(want[i]);
        if (fabs(got[i] - want[i]) > max_diff) max_diff = fabs(got[i] - want[i]);
    }
    if (max_diff > MERGE_RTOL * max_ref + 1e-6)
        fail_msg("merged logits differ by %g (max |logit| %g)", max_diff, max_ref);
}

static rd_model *load(const char *path) {
    rd_error err = {{0}};
    rd_model *m = rd_model_load(path, NULL, &err);
    if (!m) fail_msg("load %s: %s", path, err.msg);
    return m;
}

static void merge(rd_edits *e, const rd_model *m, const char *path) {
    rd_error err = {{0}};
    if (rd_export_merged(e, m, path, &err)) fail_msg("rd_export_merged: %s", err.msg);
}

/* Scale near 1 (a trained edit's range), bias small. */
static rd_edits *trained_like(const rd_model *m, int sites, const char *layers) {
    rd_edits *e = new_edits(m, sites, layers, 1, 1);
    for (int l = 0; l < rd_model_config(m)->n_layers; l++)
        for (int site = RD_SITE_ATTN; site <= RD_SITE_FFN; site++) {
            float *s = rd_edits_vector(e, l, site, 0);
            if (s)
                for (int j = 0; j < rd_edits_dim(e); j++) s[j] = 1.0f + s[j];
        }
    return e;
}

static void test_merged_logits(void **state) {
    fixture *fx = *state;
    rd_edits *e = trained_like(fx->m, RD_SITE_BOTH, "all");
    merge(e, fx->m, fx->path);
    assert_int_equal(tiny_count_entries(fx->dir), 1);
    rd_model *merged = load(fx->path);
    const rd_config *c = rd_model_config(fx->m);
    for (int l = 0; l < c->n_layers; l++) {
        const rd_layer_weights *L = &merged->file.w.layers[l];
        assert_non_null(L->wo_bias);
        assert_non_null(L->w2_bias);
        assert_memory_equal(L->w2_bias, rd_edits_vector(e, l, RD_SITE_FFN, 1),
                            (size_t)c->dim * sizeof(float));
        assert_int_equal(L->w2.type, RD_DTYPE_F32);
        assert_null(fx->m->file.w.layers[l].w2_bias);
    }
    /* a base with edits folded in is another model: edits for the base need --force on it */
    assert_true(rd_model_fingerprint(merged) != rd_model_fingerprint(fx->m));
    const size_t n = (size_t)SEQ * c->vocab_size;
    float *want = run_logits(fx->m, e), *got = run_logits(merged, NULL);
    float *base = run_logits(fx->m, NULL);
    assert_logits_close(got, want, n);
    double moved = 0; /* the edits do change the model */
    for (size_t i = 0; i < n; i++) moved = fmax(moved, fabs(base[i] - want[i]));
    assert_true(moved > 1e-2);
    /* training forward: the same loss */
    double lw = run_loss(fx->m, e), lg = run_loss(merged, NULL);
    assert_true(fabs(lw - lg) <= 1e-5 * fabs(lw));
    /* full fine-tuning keeps the biases (they move out of the released storage) */
    rd_error err = {{0}};
    if (rd_model_make_trainable(merged, &err)) fail_msg("trainable: %s", err.msg);
    float *trainable = run_logits(merged, NULL);
    assert_memory_equal(trainable, got, n * sizeof(float));
    free(trainable);
    free(want);
    free(got);
    free(base);
    rd_model_free(merged);
    rd_edits_free(e);
}

/* RED on a merged model (bias before the edit, in inference and training) equals merging a
 * second edit set into it (an existing bias is scaled and added to). */
static void test_merged_twice(void **state) {
    fixture *fx = *state;
    rd_edits *e1 = trained_like(fx->m, RD_SITE_BOTH, "all");
    rd_edits *e2 = trained_like(fx->m, RD_SITE_FFN, "1-2");
    char twice[700];
    snprintf(twice, sizeof twice, "%s/twice.gguf", fx->dir);
    merge(e1, fx->m, fx->path);
    rd_model *m1 = load(fx->path);
    merge(e2, m1, twice);
    rd_model *m2 = load(twice);
    const size_t n = (size_t)SEQ * rd_model_config(fx->m)->vocab_size;
    float *want = run_logits(m1, e2), *got = run_logits(m2, NULL);
    assert_logits_close(got, want, n);
    double lw = run_loss(m1, e2), lg = run_loss(m2, NULL);
    assert_true(fabs(lw - lg) <= 1e-5 * fabs(lw));
    free(want);
    free(got);
    rd_model_free(m2);
    rd_model_free(m1);
    rd_edits_free(e2);
    rd_edits_free(e1);
}

/* A Q8_0 base: the scaled ffn_down matrices become F32, every other matrix stays Q8_0 (same
 * bytes), and the logits still match the base with edits. */
static void test_merged_quantized(void **state) {
    fixture *fx = *state;
    rd_config cfg = tiny_config();
    cfg.hidden_dim = 192; /* whole Q8_0 blocks */
    rd_model_file f;
    rd_error err = {{0}};
    if (rd_model_file_random(&f, &cfg, 0, 9, RD_DTYPE_F32, &err)) fail_msg("random: %s", err.msg);
    char q8[700];
    snprintf(q8, sizeof q8, "%s/q8.gguf", fx->dir);
    if (rd_gguf_write(q8, &f, RD_DTYPE_Q8_0, &err)) fail_msg("write q8: %s", err.msg);
    rd_model_file_release(&f);
    rd_model *base = load(q8);
    rd_edits *e = trained_like(base, RD_SITE_FFN, "all");
    merge(e, base, fx->path);
    rd_model *merged = load(fx->path);
    for (int l = 0; l < cfg.n_layers; l++) {
        const rd_layer_weights *B = &base->file.w.layers[l], *M = &merged->file.w.layers[l];
        assert_int_equal(M->w2.type, RD_DTYPE_F32);
        assert_int_equal(M->wo.type, RD_DTYPE_Q8_0);
        assert_int_equal(M->w1.type, RD_DTYPE_Q8_0);
        assert_memory_equal(M->wo.data, B->wo.data, B->wo.row_bytes * (size_t)B->wo.rows);
        assert_null(M->wo_bias);
        assert_non_null(M->w2_bias);
    }
    float *want = run_logits(base, e), *got = run_logits(merged, NULL);
    assert_logits_close(got, want, (size_t)SEQ * cfg.vocab_size);
    free(want);
    free(got);
    rd_model_free(merged);
    rd_model_free(base);
    rd_edits_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cvec_both_sites, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cvec_bias_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cvec_nothing_to_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safetensors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safetensors_scale_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merged_logits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merged_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merged_quantized, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
