/* The training pass: loss and logits agree with the inference forward (every edit kind,
 * site and strength, plain and merged models); edit-vector gradients agree
 * with central finite differences (several shapes, GQA on/off, each site, scale/bias
 * on/off, masked targets, checkpointing on/off, dropout on/off); dropout masks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/backward.h"
#include "redit/forward.h"
#include "core/kernels.h"
#include "redit/model.h"
#include "test_rng.h"
#include "tiny_model.h"

/* Finite differences: step FD_EPS on one vector entry, in f32 arithmetic with the loss
 * summed in double. Agreement: |fd − analytic| ≤ FD_REL·max(|fd|, |analytic|) + FD_ABS. */
#define FD_EPS 1e-2f
#define FD_REL 2e-2
#define FD_ABS 2e-3

static uint64_t rng = 12345;
static double urand(void) { return test_urand(&rng); }
static float nrand(void) { return test_nrand(&rng); }

/* Edit vectors for every layer and both sites, with room for their gradients. */
typedef struct edit_set {
    int L, d;
    float *vals;  /* (L, 2 sites, 2 kinds, d) */
    float *grads; /* same layout */
    rd_site_edit *attn, *ffn;
    rd_site_grad *gattn, *gffn;
} edit_set;

static float *vec(const edit_set *e, float *base, int l, int site, int kind) {
    return base + (((size_t)l * 2 + (size_t)site) * 2 + (size_t)kind) * (size_t)e->d;
}

/* sites: bit 1 attn, bit 2 ffn; scale/bias: which vectors exist. */
static void edit_set_init(edit_set *e, int L, int d, int sites, int scale, int bias) {
    e->L = L;
    e->d = d;
    e->vals = malloc(sizeof(float) * (size_t)L * 4 * d);
    e->grads = calloc((size_t)L * 4 * d, sizeof(float));
    e->attn = calloc((size_t)L, sizeof *e->attn);
    e->ffn = calloc((size_t)L, sizeof *e->ffn);
    e->gattn = calloc((size_t)L, sizeof *e->gattn);
    e->gffn = calloc((size_t)L, sizeof *e->gffn);
    for (int l = 0; l < L; l++)
        for (int s = 0; s < 2; s++) {
            float *sv = vec(e, e->vals, l, s, 0), *bv = vec(e, e->vals, l, s, 1);
            for (int j = 0; j < d; j++) {
                sv[j] = 1.0f + 0.2f * nrand();
                bv[j] = 0.2f * nrand();
            }
            const int on = sites & (s == 0 ? 1 : 2);
            rd_site_edit *se = s == 0 ? &e->attn[l] : &e->ffn[l];
            rd_site_grad *sg = s == 0 ? &e->gattn[l] : &e->gffn[l];
            se->scale = on && scale ? sv : NULL;
            se->bias = on && bias ? bv : NULL;
            sg->dscale = on && scale ? vec(e, e->grads, l, s, 0) : NULL;
            sg->dbias = on && bias ? vec(e, e->grads, l, s, 1) : NULL;
        }
}

static void edit_set_free(edit_set *e) {
    free(e->vals);
    free(e->grads);
    free(e->attn);
    free(e->ffn);
    free(e->gattn);
    free(e->gffn);
}

typedef struct fd_case {
    const char *name;
    int dim, hidden, layers, heads, kv_heads, vocab, tied;
    int B, T;
    int sites, scale, bias, masked, checkpointing;
    float dropout; /* of the sub-layer outputs (fixed masks: seed 77) */
} fd_case;

/* A random model of k's shape; output_biases: a merged model's biases on every layer's
 * attention and FFN projections (0.3·N(0,1) from nrand). */
static rd_model *make_model_with(const fd_case *k, uint64_t seed, int output_biases) {
    rd_config cfg = {.dim = k->dim, .hidden_dim = k->hidden, .n_layers = k->layers,
                     .n_heads = k->heads, .n_kv_heads = k->kv_heads, .vocab_size = k->vocab,
                     .seq_len = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                     .rope_layout = RD_ROPE_ADJACENT};
    rd_model_file f;
    rd_error err = {0};
    assert_int_equal(rd_model_file_random(&f, &cfg, k->tied, seed, RD_DTYPE_F32, &err), 0);
    for (int l = 0; output_biases && l < k->layers; l++) {
        float *b = rd_weights_alloc(&f.w, sizeof(float) * 2 * (size_t)k->dim, &err);
        assert_non_null(b);
        for (int j = 0; j < 2 * k->dim; j++) b[j] = 0.3f * nrand();
        f.w.layers[l].wo_bias = b;
        f.w.layers[l].w2_bias = b + k->dim;
    }
    rd_model *m = rd_model_from_file(&f, NULL, &err);
    assert_non_null(m);
    return m;
}

static rd_model *make_model(const fd_case *k, uint64_t seed) { return make_model_with(k, seed, 0); }

static double pass_loss(rd_train_ctx *c, const rd_edits_view *v, const int *tok, const int *tgt,
                        int B, int T) {
    double loss;
    int n;
    rd_error err = {0};
    assert_int_equal(rd_train_pass(c, v, NULL, NULL, tok, tgt, B, T, &loss, &n, &err), 0);
    return loss;
}

static void run_fd_case(const fd_case *k) {
    rd_model *m = make_model(k, 7);
    const int N = k->B * k->T;
    int *tok = malloc(sizeof(int) * N), *tgt = malloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) {
        tok[i] = (int)(urand() * k->vocab);
        tgt[i] = (int)(urand() * k->vocab);
        if (k->masked && (i % k->T < k->T / 2)) tgt[i] = -1; /* loss on the second half only */
    }
    edit_set e;
    edit_set_init(&e, k->layers, k->dim, k->sites, k->scale, k->bias);
    rd_edits_view view = {.attn = e.attn, .ffn = e.ffn, .strength = 1.0f};
    rd_edits_grad grads = {.attn = e.gattn, .ffn = e.gffn};
    rd_error err = {0};
    rd_train_ctx *c = rd_train_ctx_new(m, k->B, k->T, k->checkpointing, &err);
    assert_non_null(c);
    rd_train_ctx_set_dropout(c, k->dropout, 77);
    double loss;
    int n;
    assert_int_equal(rd_train_pass(c, &view, &grads, NULL, tok, tgt, k->B, k->T, &loss, &n, &err), 0);
    double worst = 0.0;
    int checked = 0;
    for (int l = 0; l < k->layers; l++)
        for (int s = 0; s < 2; s++)
            for (int kind = 0; kind < 2; kind++) {
                const rd_site_edit *se = s == 0 ? &e.attn[l] : &e.ffn[l];
                float *p = kind == 0 ? (float *)se->scale : (float *)se->bias;
                float *g = vec(&e, e.grads, l, s, kind);
                if (!p) { /* not trained: no gradient may appear */
                    for (int j = 0; j < k->dim; j++) assert_true(g[j] == 0.0f);
                    continue;
                }
                for (int probe = 0; probe < 3; probe++) {
                    const int j = (int)(urand() * k->dim);
                    const float old = p[j];
                    p[j] = old + FD_EPS;
                    const double lp = pass_loss(c, &view, tok, tgt, k->B, k->T);
                    p[j] = old - FD_EPS;
                    const double lm = pass_loss(c, &view, tok, tgt, k->B, k->T);
                    p[j] = old;
                    const double fd = (lp - lm) / (2.0 * (double)FD_EPS);
                    const double an = g[j];
                    const double err_abs = fabs(fd - an);
                    const double lim = FD_REL * fmax(fabs(fd), fabs(an)) + FD_ABS;
                    if (err_abs > lim)
                        fail_msg("%s: layer %d %s %s[%d]: finite difference %.6g, backward %.6g",
                                 k->name, l, s ? "ffn" : "attn", kind ? "bias" : "scale", j, fd,
                                 an);
                    const double rel = err_abs / fmax(fmax(fabs(fd), fabs(an)), 1e-3);
                    if (rel > worst) worst = rel;
                    checked++;
                }
            }
    printf("%-36s %3d entries checked, worst relative difference %.2e\n", k->name, checked, worst);
    assert_true(checked > 0);
    rd_train_ctx_free(c);
    edit_set_free(&e);
    free(tok);
    free(tgt);
    rd_model_free(m);
}

static void test_gradients_match_finite_differences(void **state) {
    (void)state;
    static const fd_case cases[] = {
        {"GQA, both sites, scale+bias", 32, 64, 2, 4, 2, 97, 1, 2, 7, 3, 1, 1, 0, 0, 0},
        {"GQA, both sites, checkpointing", 32, 64, 2, 4, 2, 97, 1, 2, 7, 3, 1, 1, 0, 1, 0},
        {"MHA untied, ffn only, masked", 48, 96, 3, 4, 4, 61, 0, 3, 6, 2, 1, 1, 1, 0, 0},
        {"MHA, attn only, scale only", 32, 80, 2, 2, 2, 50, 1, 2, 9, 1, 1, 0, 0, 0, 0},
        {"GQA 8/2, ffn, bias only, masked, ckpt", 64, 128, 2, 8, 2, 120, 0, 1, 12, 2, 0, 1, 1, 1, 0},
        {"GQA, both sites, dropout 0.3", 32, 64, 2, 4, 2, 97, 1, 2, 7, 3, 1, 1, 0, 0, 0.3f},
        {"MHA, both sites, dropout 0.5, ckpt", 48, 96, 3, 4, 4, 61, 0, 3, 6, 3, 1, 1, 1, 1, 0.5f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_fd_case(&cases[i]);
}

/* Tokens (N) and targets (N, every third masked) for the fixed-input tests. */
static void fixed_tokens(int *tok, int *tgt, int N, int vocab) {
    for (int i = 0; i < N; i++) {
        tok[i] = (i * 37 + 5) % vocab;
        tgt[i] = i % 3 ? (i * 11 + 1) % vocab : -1;
    }
}

/* Checkpointing recomputes exactly what it would have stored: identical loss and grads,
 * with dropout too (the recompute draws the forward's masks). */
static void check_checkpointing_is_exact(float dropout) {
    fd_case k = {"ckpt", 48, 96, 3, 6, 3, 80, 0, 2, 10, 3, 1, 1, 1, 0, dropout};
    rd_model *m = make_model(&k, 11);
    const int N = k.B * k.T;
    int tok[20], tgt[20];
    fixed_tokens(tok, tgt, N, k.vocab);
    float *g[2];
    double loss[2];
    for (int ck = 0; ck < 2; ck++) {
        rng = 99;
        edit_set e;
        edit_set_init(&e, k.layers, k.dim, 3, 1, 1);
        rd_edits_view view = {.attn = e.attn, .ffn = e.ffn, .strength = 1.0f};
        rd_edits_grad grads = {.attn = e.gattn, .ffn = e.gffn};
        rd_error err = {0};
        rd_train_ctx *c = rd_train_ctx_new(m, k.B, k.T, ck, &err);
        rd_train_ctx_set_dropout(c, k.dropout, 9);
        int n;
        assert_int_equal(rd_train_pass(c, &view, &grads, NULL, tok, tgt, k.B, k.T, &loss[ck], &n, &err), 0);
        g[ck] = malloc(sizeof(float) * (size_t)k.layers * 4 * k.dim);
        memcpy(g[ck], e.grads, sizeof(float) * (size_t)k.layers * 4 * k.dim);
        rd_train_ctx_free(c);
        edit_set_free(&e);
    }
    assert_true(loss[0] == loss[1]);
    assert_memory_equal(g[0], g[1], sizeof(float) * (size_t)k.layers * 4 * k.dim);
    free(g[0]);
    free(g[1]);
    rd_model_free(m);
}

/* No backward below the lowest layer with an edit gradient wanted: the gradients of the
 * layers from `lowest` up are bit for bit those of a pass that also wants every lower
 * layer's (and so runs the whole backward), with the lowest layer's attention site wanted or
 * only its FFN site, with and without checkpointing and dropout. */
static void test_backward_stops_at_lowest_edit(void **state) {
    (void)state;
    fd_case k = {"floor", 48, 96, 4, 6, 3, 80, 0, 2, 10, 3, 1, 1, 1, 0, 0.0f};
    rd_model *m = make_model(&k, 13);
    const int N = k.B * k.T, lowest = 2;
    const size_t per_layer = 4 * (size_t)k.dim, all = (size_t)k.layers * per_layer;
    int tok[20], tgt[20];
    fixed_tokens(tok, tgt, N, k.vocab);
    for (int variant = 0; variant < 4; variant++) {
        const int ck = variant & 1, attn_at_lowest = variant >> 1;
        float *g[2];
        double loss[2];
        for (int pass = 0; pass < 2; pass++) { /* pass 0: gradients from `lowest` up only */
            rng = 99;
            edit_set e;
            edit_set_init(&e, k.layers, k.dim, 3, 1, 1);
            for (int l = 0; pass == 0 && l <= lowest; l++) {
                if (l < lowest || !attn_at_lowest) e.gattn[l] = (rd_site_grad){NULL, NULL};
                if (l < lowest) e.gffn[l] = (rd_site_grad){NULL, NULL};
            }
            rd_edits_view view = {.attn = e.attn, .ffn = e.ffn, .strength = 1.0f};
            rd_edits_grad grads = {.attn = e.gattn, .ffn = e.gffn};
            rd_error err = {0};
            rd_train_ctx *c = rd_train_ctx_new(m, k.B, k.T, ck, &err);
            assert_non_null(c);
            rd_train_ctx_set_dropout(c, variant == 3 ? 0.3f : 0.0f, 9);
            int n;
            assert_int_equal(rd_train_pass(c, &view, &grads, NULL, tok, tgt, k.B, k.T, &loss[pass],
                                           &n, &err), 0);
            g[pass] = malloc(sizeof(float) * all);
            memcpy(g[pass], e.grads, sizeof(float) * all);
            rd_train_ctx_free(c);
            edit_set_free(&e);
        }
        assert_true(loss[0] == loss[1]);
        /* layer `lowest`: the FFN site's two vectors, and the attention site's when wanted */
        const size_t at = (size_t)lowest * per_layer;
        assert_memory_equal(g[0] + at + 2 * (size_t)k.dim, g[1] + at + 2 * (size_t)k.dim,
                            sizeof(float) * 2 * (size_t)k.dim);
        if (attn_at_lowest)
            assert_memory_equal(g[0] + at, g[1] + at, sizeof(float) * 2 * (size_t)k.dim);
        assert_memory_equal(g[0] + at + per_layer, g[1] + at + per_layer,
                            sizeof(float) * (all - at - per_layer));
        for (size_t i = 0; i < at; i++) assert_true(g[0][i] == 0.0f); /* none below */
        free(g[0]);
        free(g[1]);
    }
    rd_model_free(m);
}

static void test_checkpointing_is_exact(void **state) {
    (void)state;
    check_checkpointing_is_exact(0.0f);
    check_checkpointing_is_exact(0.3f);
}

/* The training forward's loss equals the cross-entropy of the inference forward's logits
 * (KV-cache path) with the same edits; strength 0 equals no edits. */
static void test_loss_matches_inference_forward(void **state) {
    (void)state;
    fd_case k = {"loss", 64, 172, 3, 8, 4, 300, 1, 2, 16, 3, 1, 1, 0, 0, 0};
    rd_model *m = make_model(&k, 5);
    const int N = k.B * k.T, V = k.vocab;
    int tok[32], tgt[32];
    for (int i = 0; i < N; i++) tok[i] = (i * 53 + 7) % V;
    for (int b = 0; b < k.B; b++)
        for (int t = 0; t < k.T; t++)
            tgt[b * k.T + t] = t + 1 < k.T ? tok[b * k.T + t + 1] : -1;
    edit_set e;
    edit_set_init(&e, k.layers, k.dim, 3, 1, 1);
    rd_edits_view view = {.attn = e.attn, .ffn = e.ffn, .strength = 1.0f};
    rd_error err = {0};
    rd_train_ctx *c = rd_train_ctx_new(m, k.B, k.T, 0, &err);
    double loss;
    int n;
    assert_int_equal(rd_train_pass(c, &view, NULL, NULL, tok, tgt, k.B, k.T, &loss, &n, &err), 0);
    assert_int_equal(n, k.B * (k.T - 1));
    rd_ctx *ctx = rd_ctx_new(m, k.B, k.T, &err);
    float *logits = malloc(sizeof(float) * (size_t)N * V);
    assert_int_equal(rd_forward(ctx, &view, tok, k.B, k.T, RD_LOGITS_ALL, logits, &err), 0);
    double ref = 0.0;
    for (int i = 0; i < N; i++) {
        if (tgt[i] < 0) continue;
        const float *z = logits + (size_t)i * V;
        double mx = z[0], s = 0.0;
        for (int v = 1; v < V; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < V; v++) s += exp(z[v] - mx);
        ref += mx + log(s) - z[tgt[i]];
    }
    printf("training loss %.6f, inference-forward loss %.6f\n", loss, ref);
    assert_true(fabs(loss - ref) <= 1e-5 * fabs(ref));
    /* strength 0 = base model */
    rd_edits_view zero = {.attn = e.attn, .ffn = e.ffn, .strength = 0.0f};
    double l0, lbase;
    assert_int_equal(rd_train_pass(c, &zero, NULL, NULL, tok, tgt, k.B, k.T, &l0, &n, &err), 0);
    assert_int_equal(rd_train_pass(c, NULL, NULL, NULL, tok, tgt, k.B, k.T, &lbase, &n, &err), 0);
    assert_true(l0 == lbase);
    free(logits);
    rd_ctx_free(ctx);
    rd_train_ctx_free(c);
    edit_set_free(&e);
    rd_model_free(m);
}

/* The training forward's logits against the inference forward's (rd_forward, KV cache): the
 * two paths share one layer (src/model/layer.c) and may differ only in attention's arithmetic
 * order (rd_attention over the cache, whose loops depend on T and the start position, vs
 * rd_attention_train) and, for decode, in the matrix-vector products' summation order (rows
 * ≤ RD_MATVEC_MAX_ROWS) against the GEMM's. Those are float rounding differences:
 * |Δ| ≤ PATHS_TOL·max(1, |logit|) (measured on this model: 0 for one-call prefill, ≤ 3.1e-6
 * for two-part prefill and decode). An edit ignored or applied at the wrong strength in either
 * path moves logits by ≥ 1e-2 (checked below as each case's distance from the base model),
 * far above it. */
#define PATHS_TOL 2e-5

/* Largest |a − b| / max(1, |b|) over n logits. */
static double worst_rel(const float *a, const float *b, size_t n) {
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double r = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        if (r > w) w = r;
    }
    return w;
}

/* The logits of tokens (B, T) through the inference path three ways into ref (B, T, V):
 * prefill at once (returned), then two-part prefill (positions 0..4, then 5..T-1) and
 * token-by-token decode of all B sequences together, each checked against the prefill.
 * Returns the larger of those two differences. */
static double inference_logits(rd_ctx *ctx, const rd_edits_view *v, const int *tok, int B, int T,
                             int V, float *ref, float *tmp, const char *what) {
    rd_error err = {0};
    rd_ctx_reset(ctx);
    assert_int_equal(rd_forward(ctx, v, tok, B, T, RD_LOGITS_ALL, ref, &err), 0);
    /* two parts: each call's tokens and logits are (B, part) */
    int part_tok[64];
    float *part = malloc(sizeof(float) * (size_t)B * T * V);
    rd_ctx_reset(ctx);
    for (int t0 = 0, len = 5; t0 < T; t0 += len, len = T - 5) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < len; t++) part_tok[b * len + t] = tok[b * T + t0 + t];
        assert_int_equal(rd_forward(ctx, v, part_tok, B, len, RD_LOGITS_ALL, part, &err), 0);
        for (int b = 0; b < B; b++)
            memcpy(tmp + ((size_t)b * T + t0) * V, part + (size_t)b * len * V,
                   sizeof(float) * (size_t)len * V);
    }
    double two = worst_rel(tmp, ref, (size_t)B * T * V);
    rd_ctx_reset(ctx);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) part_tok[b] = tok[b * T + t];
        assert_int_equal(rd_forward(ctx, v, part_tok, B, 1, RD_LOGITS_ALL, part, &err), 0);
        for (int b = 0; b < B; b++)
            memcpy(tmp + ((size_t)b * T + t) * V, part + (size_t)b * V, sizeof(float) * V);
    }
    double dec = worst_rel(tmp, ref, (size_t)B * T * V);
    free(part);
    if (two > PATHS_TOL || dec > PATHS_TOL)
        fail_msg("%s: inference prefill vs two-part prefill %.3g, vs decode %.3g (tolerance %g)",
                 what, two, dec, PATHS_TOL);
    return fmax(two, dec);
}

/* Every edit kind (scale, bias, both) at every site choice (attention, FFN, both) and
 * strength {0, 0.5, 1, 1.7}, and no edits, on a plain and a merged (output biases) model:
 * the training forward's logits equal the inference forward's (prefill, two-part prefill,
 * decode) within PATHS_TOL; strength 0 and no edits give the base model's logits exactly
 * on each path; every other case moves the logits well beyond the tolerance. */
static void test_training_logits_match_inference(void **state) {
    (void)state;
    fd_case k = {"paths", 64, 172, 3, 8, 4, 300, 0, 2, 16, 0, 0, 0, 0, 0, 0};
    const int B = k.B, T = k.T, V = k.vocab, N = B * T;
    int tok[32];
    for (int i = 0; i < N; i++) tok[i] = (i * 53 + 7) % V;
    const float strengths[] = {0.0f, 0.5f, 1.0f, 1.7f};
    const char *site_names[] = {"", "attn", "ffn", "both"};
    const char *kind_names[] = {"", "bias", "scale", "scale+bias"};
    const size_t bytes = sizeof(float) * (size_t)N * V;
    float *train = malloc(bytes), *infer = malloc(bytes), *tmp = malloc(bytes);
    float *base_train = malloc(bytes), *base_infer = malloc(bytes);
    int cases = 0;
    double worst = 0.0, worst_infer = 0.0;
    for (int merged = 0; merged < 2; merged++) {
        rd_model *m = make_model_with(&k, 9, merged);
        rd_error err = {0};
        rd_train_ctx *c = rd_train_ctx_new(m, B, T, 0, &err);
        rd_ctx *ctx = rd_ctx_new(m, B, T, &err);
        assert_non_null(c);
        assert_non_null(ctx);
        const char *model_name = merged ? "merged model" : "plain model";
        /* no edits: the base model on both paths */
        assert_int_equal(rd_train_logits(c, NULL, tok, B, T, base_train, &err), 0);
        worst_infer = fmax(worst_infer, inference_logits(ctx, NULL, tok, B, T, V, base_infer, tmp,
                                                         model_name));
        double w = worst_rel(base_train, base_infer, (size_t)N * V);
        if (w > PATHS_TOL) fail_msg("%s, no edits: training vs inference %.3g", model_name, w);
        worst = fmax(worst, w);
        cases++;
        for (int sites = 1; sites <= 3; sites++)
            for (int kind = 1; kind <= 3; kind++) {
                edit_set e;
                edit_set_init(&e, k.layers, k.dim, sites, kind & 2, kind & 1);
                for (size_t si = 0; si < sizeof strengths / sizeof *strengths; si++) {
                    char what[128];
                    snprintf(what, sizeof what, "%s, %s site(s), %s, strength %g", model_name,
                             site_names[sites], kind_names[kind], strengths[si]);
                    const rd_edits_view view = {.attn = e.attn, .ffn = e.ffn, .strength = strengths[si]};
                    assert_int_equal(rd_train_logits(c, &view, tok, B, T, train, &err), 0);
                    const double wi = inference_logits(ctx, &view, tok, B, T, V, infer, tmp, what);
                    worst_infer = fmax(worst_infer, wi);
                    w = worst_rel(train, infer, (size_t)N * V);
                    if (w > PATHS_TOL)
                        fail_msg("%s: training vs inference logits differ by %.3g (tolerance %g)",
                                 what, w, PATHS_TOL);
                    worst = fmax(worst, w);
                    if (strengths[si] == 0.0f) { /* the base model, bit for bit, on each path */
                        assert_memory_equal(train, base_train, sizeof(float) * (size_t)N * V);
                        assert_memory_equal(infer, base_infer, sizeof(float) * (size_t)N * V);
                    } else if (worst_rel(train, base_train, (size_t)N * V) < 1e-2 ||
                               worst_rel(infer, base_infer, (size_t)N * V) < 1e-2) {
                        fail_msg("%s: the edit barely changes the logits", what);
                    }
                    cases++;
                }
                edit_set_free(&e);
            }
        rd_ctx_free(ctx);
        rd_train_ctx_free(c);
        rd_model_free(m);
    }
    printf("training and inference logits agree in %d cases: worst relative difference %.3g "
           "(prefill), %.3g (two-part prefill, decode); tolerance %g\n", cases, worst, worst_infer,
           PATHS_TOL);
    free(train);
    free(infer);
    free(tmp);
    free(base_train);
    free(base_infer);
}

/* Full fine-tuning: the gradient of every kind of weight (embedding, q/k/v/o, gate/down/up,
 * both norms, final norm, untied and tied classifier) against finite differences, with
 * edits present at both sites. */
static void check_full_ft(int tied, float dropout) {
    fd_case k = {"full", 32, 64, 2, 4, 2, 53, tied, 2, 6, 3, 1, 1, 0, 0, dropout};
    rd_model *m = make_model(&k, 21);
    rd_error err = {0};
    assert_int_equal(rd_model_make_trainable(m, &err), 0);
    assert_int_equal(m->n_params, (size_t)rd_model_param_count(m));
    const int N = k.B * k.T;
    int tok[12], tgt[12];
    for (int i = 0; i < N; i++) {
        tok[i] = (i * 17 + 3) % k.vocab;
        tgt[i] = i % 4 == 0 ? -1 : (i * 29 + 11) % k.vocab;
    }
    edit_set e;
    edit_set_init(&e, k.layers, k.dim, 3, 1, 1);
    rd_edits_view view = {.attn = e.attn, .ffn = e.ffn, .strength = 1.0f};
    float *wg = calloc(m->n_params, sizeof(float));
    rd_train_ctx *c = rd_train_ctx_new(m, k.B, k.T, 0, &err);
    rd_train_ctx_set_dropout(c, k.dropout, 5);
    double loss;
    int n;
    assert_int_equal(rd_train_pass(c, &view, NULL, wg, tok, tgt, k.B, k.T, &loss, &n, &err), 0);
    const rd_weights *w = &m->file.w;
    const rd_layer_weights *L1 = &w->layers[1];
    const float *tensors[] = {w->tok_embeddings.data, w->layers[0].attn_norm, L1->wq.data,
                              L1->wk.data, L1->wv.data, L1->wo.data, L1->ffn_norm, L1->w1.data,
                              L1->w2.data, L1->w3.data, w->final_norm, w->classifier.data};
    const size_t sizes[] = {(size_t)k.vocab * k.dim, (size_t)k.dim, (size_t)k.dim * k.dim,
                            (size_t)k.dim * 16, (size_t)k.dim * 16, (size_t)k.dim * k.dim,
                            (size_t)k.dim, (size_t)k.hidden * k.dim, (size_t)k.hidden * k.dim,
                            (size_t)k.hidden * k.dim, (size_t)k.dim, (size_t)k.vocab * k.dim};
    int checked = 0;
    for (size_t ti = 0; ti < sizeof tensors / sizeof *tensors; ti++) {
        float *p = (float *)tensors[ti];
        for (int probe = 0; probe < 3; probe++) {
            size_t j = (size_t)(urand() * sizes[ti]);
            if (ti == 0 || ti == 11) j = (size_t)tok[probe] * k.dim + (size_t)(urand() * k.dim);
            const float old = p[j];
            p[j] = old + FD_EPS;
            const double lp = pass_loss(c, &view, tok, tgt, k.B, k.T);
            p[j] = old - FD_EPS;
            const double lm = pass_loss(c, &view, tok, tgt, k.B, k.T);
            p[j] = old;
            const double fd = (lp - lm) / (2.0 * (double)FD_EPS);
            const double an = wg[p + j - m->params];
            if (fabs(fd - an) > FD_REL * fmax(fabs(fd), fabs(an)) + FD_ABS)
                fail_msg("full FT (%s classifier, dropout %g): tensor %zu entry %zu: finite "
                         "difference %.6g, backward %.6g", tied ? "tied" : "untied", k.dropout,
                         ti, j, fd, an);
            checked++;
        }
    }
    printf("full fine-tuning, %s classifier, dropout %g: %d weight gradients agree with finite "
           "differences\n", tied ? "tied" : "untied", k.dropout, checked);
    free(wg);
    rd_train_ctx_free(c);
    edit_set_free(&e);
    rd_model_free(m);
}

/* Dropout masks: the dropped share is p and the mean factor 1 (1e6 draws: 6σ bounds);
 * seeds draw different masks; a pass is deterministic for a seed, differs for another, and
 * p 0 gives exactly the loss of a context that never had dropout. */
static void test_dropout(void **state) {
    (void)state;
    const float ps[] = {0.1f, 0.5f};
    for (size_t pi = 0; pi < 2; pi++) {
        const rd_dropout d = rd_dropout_make(ps[pi], 3), d2 = rd_dropout_make(ps[pi], 4);
        const int n = 1000000;
        int dropped = 0, differ = 0;
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            const float f = rd_dropout_factor(&d, (uint64_t)i);
            assert_true(f == 0.0f || fabsf(f - 1.0f / (1.0f - ps[pi])) < 1e-6f);
            dropped += f == 0.0f;
            sum += f;
            differ += (f == 0.0f) != (rd_dropout_factor(&d2, (uint64_t)i) == 0.0f);
        }
        const double share = (double)dropped / n, sd = sqrt(ps[pi] * (1.0 - ps[pi]) / n);
        printf("dropout %.1f: dropped %.4f of 1e6, mean factor %.4f, %d differ between seeds\n",
               ps[pi], share, sum / n, differ);
        assert_true(fabs(share - ps[pi]) < 6 * sd);
        assert_true(fabs(sum / n - 1.0) < 6 * sd / (1.0 - ps[pi]));
        assert_true(fabs((double)differ / n - 2.0 * ps[pi] * (1.0 - ps[pi])) < 0.01);
    }
    /* a mask moved to start at `first` is the same mask read from there */
    const rd_dropout d = rd_dropout_make(0.3f, 11), at = rd_dropout_at(&d, 123456789);
    for (uint64_t k = 0; k < 1000; k++)
        assert_true(rd_dropout_factor(&at, k) == rd_dropout_factor(&d, 123456789 + k));
    const rd_dropout off = rd_dropout_make(0.0f, 3);
    for (int i = 0; i < 1000; i++) assert_true(rd_dropout_factor(&off, (uint64_t)i) == 1.0f);

    fd_case k = {"dropout", 48, 96, 3, 6, 3, 80, 0, 2, 10, 3, 1, 1, 1, 0, 0};
    rd_model *m = make_model(&k, 13);
    const int N = k.B * k.T;
    int tok[20], tgt[20];
    fixed_tokens(tok, tgt, N, k.vocab);
    rng = 7;
    edit_set e;
    edit_set_init(&e, k.layers, k.dim, 3, 1, 1);
    rd_edits_view view = {.attn = e.attn, .ffn = e.ffn, .strength = 1.0f};
    rd_error err = {0};
    rd_train_ctx *c = rd_train_ctx_new(m, k.B, k.T, 0, &err);
    const double base = pass_loss(c, &view, tok, tgt, k.B, k.T);
    rd_train_ctx_set_dropout(c, 0.2f, 1);
    const double a1 = pass_loss(c, &view, tok, tgt, k.B, k.T);
    const double a2 = pass_loss(c, &view, tok, tgt, k.B, k.T);
    rd_train_ctx_set_dropout(c, 0.2f, 2);
    const double b1 = pass_loss(c, &view, tok, tgt, k.B, k.T);
    rd_train_ctx_set_dropout(c, 0.0f, 2);
    const double off_again = pass_loss(c, &view, tok, tgt, k.B, k.T);
    printf("loss without dropout %.6f; dropout 0.2 seed 1 %.6f, %.6f; seed 2 %.6f; off %.6f\n",
           base, a1, a2, b1, off_again);
    assert_true(a1 == a2 && a1 != base && b1 != a1 && off_again == base);
    rd_train_ctx_free(c);
    edit_set_free(&e);
    rd_model_free(m);
}

static void test_full_finetuning_gradients(void **state) {
    (void)state;
    check_full_ft(0, 0.0f);
    check_full_ft(1, 0.0f);
    check_full_ft(0, 0.25f);
}

/* bf16 compute (packed bf16 weights, activations rounded per product, f32 accumulation):
 * the loss stays within 1% and the edit gradients point the same way as in f32. Skipped,
 * saying so, on CPUs without AVX512-BF16. */
static void test_bf16_compute_close_to_f32(void **state) {
    (void)state;
    fd_case k = {"bf16", 64, 192, 2, 8, 4, 300, 1, 2, 32, 3, 1, 1, 0, 0, 0};
    rd_model *m = make_model(&k, 9);
    rd_error err = {0};
    if (rd_model_set_compute(m, RD_COMPUTE_BF16, 1, &err) != 0) {
        printf("SKIPPED test_bf16_compute_close_to_f32: %s\n", err.msg);
        rd_model_free(m);
        skip();
    }
    assert_int_equal(rd_model_compute(m), RD_COMPUTE_BF16);
    const int N = k.B * k.T;
    int tok[64], tgt[64];
    for (int i = 0; i < N; i++) {
        tok[i] = (i * 37 + 11) % k.vocab;
        tgt[i] = (i * 53 + 2) % k.vocab;
    }
    double loss[2];
    float *g[2];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) assert_int_equal(rd_model_set_compute(m, RD_COMPUTE_F32, 0, &err), 0);
        rng = 5;
        edit_set e;
        edit_set_init(&e, k.layers, k.dim, 3, 1, 1);
        rd_edits_view view = {.attn = e.attn, .ffn = e.ffn, .strength = 1.0f};
        rd_edits_grad grads = {.attn = e.gattn, .ffn = e.gffn};
        rd_train_ctx *c = rd_train_ctx_new(m, k.B, k.T, 0, &err);
        int n;
        assert_int_equal(rd_train_pass(c, &view, &grads, NULL, tok, tgt, k.B, k.T, &loss[pass], &n, &err), 0);
        g[pass] = malloc(sizeof(float) * (size_t)k.layers * 4 * k.dim);
        memcpy(g[pass], e.grads, sizeof(float) * (size_t)k.layers * 4 * k.dim);
        rd_train_ctx_free(c);
        edit_set_free(&e);
    }
    double dot = 0, n0 = 0, n1 = 0;
    for (int i = 0; i < k.layers * 4 * k.dim; i++) {
        dot += (double)g[0][i] * g[1][i];
        n0 += (double)g[0][i] * g[0][i];
        n1 += (double)g[1][i] * g[1][i];
    }
    const double cosine = dot / sqrt(n0 * n1);
    printf("bf16 vs f32: loss %.5f vs %.5f, gradient cosine %.5f\n", loss[0], loss[1], cosine);
    assert_true(fabs(loss[0] - loss[1]) <= 0.01 * fabs(loss[1]));
    assert_true(cosine > 0.99);
    free(g[0]);
    free(g[1]);
    rd_model_free(m);
}

/* bf16 compute without packed copies (rd_model_set_bf16_weights ON_THE_FLY: the products
 * widen, round and pack slices of the matrices at each call) gives the training pass of the
 * packed copies bit for bit: loss and edit gradients. The copies' bytes are not held. */
static void test_bf16_on_the_fly_same_as_packed(void **state) {
    (void)state;
    fd_case k = {"bf16-fly", 64, 192, 2, 8, 4, 300, 1, 2, 32, 3, 1, 1, 0, 0, 0};
    rd_model *m = make_model(&k, 9);
    rd_error err = {0};
    if (!rd_compute_available(RD_COMPUTE_BF16)) {
        printf("SKIPPED test_bf16_on_the_fly_same_as_packed: no bf16 compute on this CPU\n");
        rd_model_free(m);
        skip();
    }
    const int N = k.B * k.T;
    int tok[64], tgt[64];
    for (int i = 0; i < N; i++) {
        tok[i] = (i * 41 + 7) % k.vocab;
        tgt[i] = (i * 29 + 3) % k.vocab;
    }
    double loss[2];
    float *g[2];
    for (int pass = 0; pass < 2; pass++) {
        rd_model_set_bf16_weights(m, pass ? RD_BF16_WEIGHTS_ON_THE_FLY : RD_BF16_WEIGHTS_PACKED);
        assert_int_equal(rd_model_set_compute(m, RD_COMPUTE_BF16, 1, &err), 0);
        assert_int_equal(rd_model_compute(m), RD_COMPUTE_BF16);
        assert_int_equal(rd_model_bf16_on_the_fly(m), pass);
        if (pass) assert_int_equal(rd_model_compute_bytes(m), 0);
        else assert_int_equal(rd_model_compute_bytes(m), rd_model_bf16_copy_bytes(m, 1));
        rng = 5;
        edit_set e;
        edit_set_init(&e, k.layers, k.dim, 3, 1, 1);
        rd_edits_view view = {.attn = e.attn, .ffn = e.ffn, .strength = 1.0f};
        rd_edits_grad grads = {.attn = e.gattn, .ffn = e.gffn};
        rd_train_ctx *c = rd_train_ctx_new(m, k.B, k.T, 0, &err);
        int n;
        assert_int_equal(rd_train_pass(c, &view, &grads, NULL, tok, tgt, k.B, k.T, &loss[pass], &n, &err), 0);
        g[pass] = malloc(sizeof(float) * (size_t)k.layers * 4 * k.dim);
        memcpy(g[pass], e.grads, sizeof(float) * (size_t)k.layers * 4 * k.dim);
        rd_train_ctx_free(c);
        edit_set_free(&e);
    }
    printf("bf16 packed vs on the fly: loss %.9g vs %.9g\n", loss[0], loss[1]);
    assert_true(loss[0] == loss[1]);
    assert_memory_equal(g[0], g[1], sizeof(float) * (size_t)k.layers * 4 * k.dim);
    free(g[0]);
    free(g[1]);
    rd_model_free(m);
}

/* Full fine-tuning in bf16 compute: the weight gradients are bf16 products too
 * (rd_gemm_bf16_tn); every matrix's gradient points as in f32 (cosine > 0.99) with a norm
 * within 3 %, for an untied and a tied classifier. Skipped, saying so, on CPUs without
 * AVX512-BF16. */
static void check_bf16_weight_gradients(int tied) {
    fd_case k = {"bf16-full", 64, 192, 2, 8, 4, 300, tied, 2, 32, 3, 1, 1, 0, 0, 0};
    const int N = k.B * k.T;
    int tok[64], tgt[64];
    for (int i = 0; i < N; i++) {
        tok[i] = (i * 37 + 11) % k.vocab;
        tgt[i] = (i * 53 + 2) % k.vocab;
    }
    float *wg[2] = {NULL, NULL};
    size_t n_params = 0;
    rd_model *m[2];
    rd_error err = {0};
    for (int pass = 0; pass < 2; pass++) { /* 0: bf16, 1: f32, from the same weights */
        m[pass] = make_model(&k, 9);
        assert_int_equal(rd_model_make_trainable(m[pass], &err), 0);
        if (pass == 0 && rd_model_set_compute(m[0], RD_COMPUTE_BF16, 1, &err) != 0) {
            printf("SKIPPED test_bf16_weight_gradients_close_to_f32: %s\n", err.msg);
            rd_model_free(m[0]);
            skip();
        }
        n_params = m[pass]->n_params;
        wg[pass] = calloc(n_params, sizeof(float));
        rd_train_ctx *c = rd_train_ctx_new(m[pass], k.B, k.T, 0, &err);
        assert_non_null(c);
        double loss;
        int n;
        assert_int_equal(rd_train_pass(c, NULL, NULL, wg[pass], tok, tgt, k.B, k.T, &loss, &n, &err), 0);
        rd_train_ctx_free(c);
    }
    const rd_weights *w = &m[1]->file.w;
    const rd_matrix *mats[16];
    int nm = 0;
    for (int l = 0; l < k.layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        const rd_matrix *lm[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (int i = 0; i < 7; i++) mats[nm++] = lm[i];
    }
    mats[nm++] = &w->classifier;
    for (int i = 0; i < nm; i++) {
        const size_t off = (size_t)((const float *)mats[i]->data - m[1]->params);
        const size_t len = (size_t)(mats[i]->rows * mats[i]->cols);
        double dot = 0, n0 = 0, n1 = 0;
        for (size_t j = off; j < off + len; j++) {
            dot += (double)wg[0][j] * wg[1][j];
            n0 += (double)wg[0][j] * wg[0][j];
            n1 += (double)wg[1][j] * wg[1][j];
        }
        const double cosine = dot / sqrt(n0 * n1), ratio = sqrt(n0 / n1);
        if (!(cosine > 0.99 && fabs(ratio - 1.0) < 0.03))
            fail_msg("%s classifier, matrix %d: bf16 vs f32 weight gradient cosine %.5f, norm "
                     "ratio %.4f", tied ? "tied" : "untied", i, cosine, ratio);
    }
    printf("bf16 vs f32 weight gradients (%s classifier): %d matrices agree\n",
           tied ? "tied" : "untied", nm);
    free(wg[0]);
    free(wg[1]);
    rd_model_free(m[0]);
    rd_model_free(m[1]);
}

static void test_bf16_weight_gradients_close_to_f32(void **state) {
    (void)state;
    check_bf16_weight_gradients(0);
    check_bf16_weight_gradients(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_matches_inference_forward),
        cmocka_unit_test(test_training_logits_match_inference),
        cmocka_unit_test(test_checkpointing_is_exact),
        cmocka_unit_test(test_backward_stops_at_lowest_edit),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_full_finetuning_gradients),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_bf16_compute_close_to_f32),
        cmocka_unit_test(test_bf16_on_the_fly_same_as_packed),
        cmocka_unit_test(test_bf16_weight_gradients_close_to_f32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
