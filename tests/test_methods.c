/* LoRA and IA3 edit sets (rd_edits methods): their gradients agree with central finite
 * differences (every LoRA target q k v o gate up down, IA3's k, v and FFN vectors; GQA on and
 * off; a layer selection above layer 0, so the backward stops early; LoRA dropout;
 * checkpointing; strength ≠ 1), checkpointing is bit-exact, strength 0 gives the base
 * model's logits bit for bit on f32, bf16 and quantized bases, training and inference
 * forwards (prefill, decode) agree, and the parameter layout, counts and init. */
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
#include "redit/edits.h"
#include "redit/forward.h"
#include "redit/model.h"
#include "redit/safetensors.h"
#include "test_rng.h"
#include "tiny_model.h"

/* The RED checks' tolerance (test_backward.c): step FD_EPS, agreement
 * |fd − analytic| ≤ FD_REL·max(|fd|, |analytic|) + FD_ABS. */
#define FD_EPS 1e-2f
#define FD_REL 2e-2
#define FD_ABS 2e-3
/* Training vs inference logits (test_backward.c's PATHS_TOL). */
#define PATHS_TOL 2e-5

static uint64_t rng = 4242;
static double urand(void) { return test_urand(&rng); }
static float nrand(void) { return test_nrand(&rng); }

typedef struct shape {
    int dim, hidden, layers, heads, kv_heads, vocab, tied;
} shape;

static rd_model *make_model(const shape *s, uint64_t seed, rd_dtype type) {
    rd_config cfg = {.dim = s->dim, .hidden_dim = s->hidden, .n_layers = s->layers,
                     .n_heads = s->heads, .n_kv_heads = s->kv_heads, .vocab_size = s->vocab,
                     .seq_len = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                     .rope_layout = RD_ROPE_ADJACENT};
    rd_model_file f;
    rd_error err = {0};
    assert_int_equal(rd_model_file_random(&f, &cfg, s->tied, seed, type, &err), 0);
    rd_model *m = rd_model_from_file(&f, NULL, &err);
    assert_non_null(m);
    return m;
}

/* An edit set of the spec with every number moved off the identity (so every gradient is
 * non-trivial): LoRA A, B ~ 0.3·N(0,1)·(1/√in), IA3 1 + 0.3·N(0,1). */
static rd_edits *random_edits(const rd_model *m, const rd_edit_spec *spec) {
    rd_error err = {0};
    rd_edits *e = rd_edits_new(rd_model_config(m), spec, &err);
    if (!e) fail_msg("rd_edits_new: %s", err.msg);
    float *p = rd_edits_params(e);
    for (int i = 0; i < rd_edits_tensor_count(e); i++) {
        const rd_edit_tensor *t = rd_edits_tensor_at(e, i);
        for (size_t j = 0; j < t->count; j++)
            p[t->offset + j] = spec->method == RD_METHOD_IA3 ? 1.0f + 0.3f * nrand()
                                                             : 0.5f * nrand() / sqrtf((float)t->shape[1]);
    }
    return e;
}

typedef struct fd_case {
    const char *name;
    shape s;
    int B, T;
    rd_edit_spec spec;
    int checkpointing;
    float strength;
    rd_dtype type; /* of the frozen base's matrices (0: F32) */
} fd_case;

static double pass_loss(rd_train_ctx *c, const rd_edits_view *v, const int *tok, const int *tgt,
                        int B, int T) {
    double loss;
    int n;
    rd_error err = {0};
    assert_int_equal(rd_train_pass(c, v, NULL, NULL, tok, tgt, B, T, &loss, &n, &err), 0);
    return loss;
}

static void run_fd_case(const fd_case *k) {
    rd_model *m = make_model(&k->s, 7, k->type);
    const int N = k->B * k->T;
    int *tok = malloc(sizeof(int) * N), *tgt = malloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) {
        tok[i] = (int)(urand() * k->s.vocab);
        tgt[i] = i % 4 == 0 ? -1 : (int)(urand() * k->s.vocab);
    }
    rd_edits *e = random_edits(m, &k->spec);
    const size_t n_params = rd_edits_param_count(e);
    float *grad = calloc(n_params, sizeof(float));
    rd_edits_grad gv;
    rd_error err = {0};
    assert_int_equal(rd_edits_grad_new(e, grad, &gv, &err), 0);
    const rd_edits_view view = rd_edits_view_at(e, k->strength);
    rd_train_ctx *c = rd_train_ctx_new(m, k->B, k->T, k->checkpointing, &err);
    assert_non_null(c);
    rd_train_ctx_set_lora_dropout(c, k->spec.lora_dropout, 31);
    double loss;
    int n;
    assert_int_equal(rd_train_pass(c, &view, &gv, NULL, tok, tgt, k->B, k->T, &loss, &n, &err), 0);
    double worst = 0.0;
    int checked = 0;
    float *p = rd_edits_params(e);
    for (int i = 0; i < rd_edits_tensor_count(e); i++) {
        const rd_edit_tensor *t = rd_edits_tensor_at(e, i);
        for (int probe = 0; probe < 3; probe++) {
            const size_t j = t->offset + (size_t)(urand() * (double)t->count);
            const float old = p[j];
            p[j] = old + FD_EPS;
            const double lp = pass_loss(c, &view, tok, tgt, k->B, k->T);
            p[j] = old - FD_EPS;
            const double lm = pass_loss(c, &view, tok, tgt, k->B, k->T);
            p[j] = old;
            const double fd = (lp - lm) / (2.0 * (double)FD_EPS), an = grad[j];
            const double err_abs = fabs(fd - an);
            if (err_abs > FD_REL * fmax(fabs(fd), fabs(an)) + FD_ABS)
                fail_msg("%s: %s[%zu]: finite difference %.6g, backward %.6g", k->name, t->name,
                         j - t->offset, fd, an);
            const double rel = err_abs / fmax(fmax(fabs(fd), fabs(an)), 1e-3);
            if (rel > worst) worst = rel;
            checked++;
        }
    }
    printf("%-44s %3d entries checked, worst relative difference %.2e\n", k->name, checked, worst);
    assert_true(checked > 0);
    rd_train_ctx_free(c);
    rd_edits_grad_free(&gv);
    free(grad);
    rd_edits_free(e);
    free(tok);
    free(tgt);
    rd_model_free(m);
}

#define ALL_TARGETS ((1 << RD_N_PROJ) - 1)
#define BIT(p) RD_PROJ_BIT(RD_PROJ_##p)
#define LORA(r, targets, which, drop) \
    {.method = RD_METHOD_LORA, .rank = r, .lora_alpha = 2.0f * (r), .lora_targets = targets, \
     .layers = which, .lora_dropout = drop, .seed = 5}
#define IA3(which) {.method = RD_METHOD_IA3, .layers = which}

static const shape GQA = {32, 64, 3, 4, 2, 97, 1};
static const shape MHA = {48, 96, 3, 4, 4, 61, 0};
static const shape Q8 = {64, 128, 2, 4, 2, 70, 0}; /* rows of 32 for Q8_0 */

static void test_lora_gradients(void **state) {
    (void)state;
    const fd_case cases[] = {
        {"LoRA GQA, every target, r 4", GQA, 2, 7, LORA(4, ALL_TARGETS, "all", 0), 0, 1.0f, RD_DTYPE_F32},
        {"LoRA MHA, every target, r 2, ckpt", MHA, 2, 6, LORA(2, ALL_TARGETS, "all", 0), 1, 1.0f, RD_DTYPE_F32},
        {"LoRA GQA, q v, layers 1-2 (floor attn)", GQA, 2, 7, LORA(8, BIT(Q) | BIT(V), "1-2", 0), 0, 1.0f, RD_DTYPE_F32},
        {"LoRA GQA, k o, layer 2, strength 0.7", GQA, 2, 7, LORA(3, BIT(K) | BIT(O), "2", 0), 0, 0.7f, RD_DTYPE_F32},
        {"LoRA MHA, gate up down, layers 1-2 (floor ffn)", MHA, 2, 6,
         LORA(4, BIT(GATE) | BIT(UP) | BIT(DOWN), "1-2", 0), 0, 1.0f, RD_DTYPE_F32},
        {"LoRA MHA, down only, layer 1, ckpt", MHA, 3, 5, LORA(1, BIT(DOWN), "1", 0), 1, 1.0f, RD_DTYPE_F32},
        {"LoRA GQA, every target, dropout 0.3", GQA, 2, 7, LORA(2, ALL_TARGETS, "all", 0.3f), 0, 1.0f, RD_DTYPE_F32},
        {"LoRA MHA, q v, dropout 0.5, ckpt", MHA, 2, 6, LORA(4, BIT(Q) | BIT(V), "all", 0.5f), 1, 1.0f, RD_DTYPE_F32},
        {"LoRA Q8_0 base, every target", Q8, 2, 6, LORA(4, ALL_TARGETS, "all", 0), 0, 1.0f, RD_DTYPE_Q8_0},
        {"LoRA BF16 base, q v", Q8, 2, 6, LORA(4, BIT(Q) | BIT(V), "all", 0), 1, 1.0f, RD_DTYPE_BF16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_fd_case(&cases[i]);
}

static void test_ia3_gradients(void **state) {
    (void)state;
    const fd_case cases[] = {
        {"IA3 GQA, all layers", GQA, 2, 7, IA3("all"), 0, 1.0f, RD_DTYPE_F32},
        {"IA3 MHA, all layers, ckpt", MHA, 2, 6, IA3("all"), 1, 1.0f, RD_DTYPE_F32},
        {"IA3 GQA, layers 1-2 (floor)", GQA, 2, 7, IA3("1-2"), 0, 1.0f, RD_DTYPE_F32},
        {"IA3 MHA, layer 2, strength 0.6", MHA, 3, 5, IA3("2"), 0, 0.6f, RD_DTYPE_F32},
        {"IA3 Q8_0 base", Q8, 2, 6, IA3("all"), 0, 1.0f, RD_DTYPE_Q8_0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_fd_case(&cases[i]);
}

/* Loss and every gradient are bit for bit the same with and without checkpointing (with
 * LoRA dropout too: the recompute draws the forward's masks). */
static void test_checkpointing_is_exact(void **state) {
    (void)state;
    const rd_edit_spec specs[] = {LORA(4, ALL_TARGETS, "all", 0.25f), LORA(8, BIT(Q) | BIT(V), "1-2", 0),
                                  IA3("all"), IA3("1-2")};
    int tok[14], tgt[14];
    for (int i = 0; i < 14; i++) {
        tok[i] = (i * 37 + 5) % GQA.vocab;
        tgt[i] = i % 3 ? (i * 11 + 1) % GQA.vocab : -1;
    }
    rd_model *m = make_model(&GQA, 11, RD_DTYPE_F32);
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        float *g[2];
        double loss[2];
        size_t n_params = 0;
        for (int ck = 0; ck < 2; ck++) {
            rng = 99;
            rd_edits *e = random_edits(m, &specs[s]);
            n_params = rd_edits_param_count(e);
            g[ck] = calloc(n_params, sizeof(float));
            rd_edits_grad gv;
            rd_error err = {0};
            assert_int_equal(rd_edits_grad_new(e, g[ck], &gv, &err), 0);
            rd_train_ctx *c = rd_train_ctx_new(m, 2, 7, ck, &err);
            rd_train_ctx_set_lora_dropout(c, specs[s].lora_dropout, 9);
            rd_train_ctx_set_dropout(c, 0.1f, 3);
            const rd_edits_view v = rd_edits_view_at(e, 1.0f);
            int n;
            assert_int_equal(rd_train_pass(c, &v, &gv, NULL, tok, tgt, 2, 7, &loss[ck], &n, &err), 0);
            rd_train_ctx_free(c);
            rd_edits_grad_free(&gv);
            rd_edits_free(e);
        }
        assert_true(loss[0] == loss[1]);
        assert_memory_equal(g[0], g[1], n_params * sizeof(float));
        double norm = 0;
        for (size_t i = 0; i < n_params; i++) norm += fabs(g[0][i]);
        assert_true(norm > 0);
        free(g[0]);
        free(g[1]);
    }
    rd_model_free(m);
}

static double worst_rel(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)a[i]));
        if (d > w) w = d;
    }
    return w;
}

/* Logits (B, T, V) of rd_forward in one prefill. */
static void prefill(rd_ctx *ctx, const rd_edits_view *v, const int *tok, int B, int T, float *out) {
    rd_error err = {0};
    rd_ctx_reset(ctx);
    assert_int_equal(rd_forward(ctx, v, tok, B, T, RD_LOGITS_ALL, out, &err), 0);
}

/* Per storage type (f32, bf16, Q8_0, Q4_K) and method: strength 0 gives the base logits bit
 * for bit (prefill and decode); strength 1 moves them; decode agrees with prefill, and (f32)
 * the training forward with inference, within PATHS_TOL. */
static void test_strength_zero_and_paths(void **state) {
    (void)state;
    const shape s = {64, 128, 2, 4, 2, 70, 0}; /* Q4_K needs rows of 256: checked below */
    const rd_dtype types[] = {RD_DTYPE_F32, RD_DTYPE_BF16, RD_DTYPE_Q8_0};
    const rd_edit_spec specs[] = {LORA(4, ALL_TARGETS, "all", 0), LORA(8, BIT(Q) | BIT(V), "1", 0.2f),
                                  IA3("all")};
    const int B = 2, T = 6, V = s.vocab;
    int tok[12];
    for (int i = 0; i < B * T; i++) tok[i] = (i * 13 + 3) % V;
    const size_t n = (size_t)B * T * V;
    float *base = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float)),
          *dec = malloc(n * sizeof(float));
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        rd_model *m = make_model(&s, 21, types[ti]);
        rd_error err = {0};
        rd_ctx *ctx = rd_ctx_new(m, B, 16, &err);
        assert_non_null(ctx);
        prefill(ctx, NULL, tok, B, T, base);
        for (size_t si = 0; si < sizeof specs / sizeof *specs; si++) {
            rd_edits *e = random_edits(m, &specs[si]);
            const rd_edits_view v0 = rd_edits_view_at(e, 0.0f), v1 = rd_edits_view_at(e, 1.0f);
            prefill(ctx, &v0, tok, B, T, got);
            assert_memory_equal(base, got, n * sizeof(float));
            prefill(ctx, &v1, tok, B, T, got);
            if (worst_rel(base, got, n) < 1e-3) fail_msg("type %zu spec %zu: edits change nothing", ti, si);
            /* decode: one position at a time */
            rd_ctx_reset(ctx);
            float *row = malloc((size_t)B * V * sizeof(float));
            for (int t = 0; t < T; t++) {
                int step[2] = {tok[t], tok[T + t]};
                assert_int_equal(rd_forward(ctx, &v1, step, B, 1, RD_LOGITS_ALL, row, &err), 0);
                for (int b = 0; b < B; b++)
                    memcpy(dec + ((size_t)b * T + t) * V, row + (size_t)b * V, V * sizeof(float));
            }
            free(row);
            const double wd = worst_rel(got, dec, n);
            if (wd > PATHS_TOL) fail_msg("type %zu spec %zu: decode vs prefill %.3g", ti, si, wd);
            if (types[ti] == RD_DTYPE_F32) { /* the training forward (no dropout) */
                rd_train_ctx *c = rd_train_ctx_new(m, B, T, 0, &err);
                float *tl = malloc(n * sizeof(float));
                assert_int_equal(rd_train_logits(c, &v1, tok, B, T, tl, &err), 0);
                const double wt = worst_rel(got, tl, n);
                if (wt > PATHS_TOL) fail_msg("spec %zu: training vs inference %.3g", si, wt);
                assert_int_equal(rd_train_logits(c, &v0, tok, B, T, tl, &err), 0);
                rd_train_ctx_free(c);
                free(tl);
            }
            rd_edits_free(e);
        }
        rd_ctx_free(ctx);
        rd_model_free(m);
    }
    free(base);
    free(got);
    free(dec);
}

/* Counts, layout order, names, shapes and the initial values of each method. */
static void test_layout_and_init(void **state) {
    (void)state;
    rd_model *m = make_model(&GQA, 3, RD_DTYPE_F32);
    const rd_config *cfg = rd_model_config(m);
    const int d = cfg->dim, kv = rd_config_kv_dim(cfg), hd = cfg->hidden_dim;
    rd_error err = {0};
    rd_edit_spec lora = {.method = RD_METHOD_LORA, .layers = "0,2", .seed = 1};
    rd_edits *e = rd_edits_new(cfg, &lora, &err);
    assert_non_null(e);
    assert_int_equal(rd_edits_rank(e), 8);
    assert_true(rd_edits_lora_alpha(e) == 8.0f);
    assert_int_equal(rd_edits_lora_targets(e), BIT(Q) | BIT(V));
    assert_int_equal(rd_edits_param_count(e), 2 * (size_t)(8 * d + d * 8 + 8 * d + kv * 8));
    assert_int_equal(rd_edits_tensor_count(e), 8);
    const char *names[] = {"layers.0.q.lora_a", "layers.0.q.lora_b", "layers.0.v.lora_a",
                           "layers.0.v.lora_b", "layers.2.q.lora_a"};
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        const rd_edit_tensor *t = rd_edits_tensor_at(e, i);
        assert_string_equal(t->name, names[i]);
        assert_int_equal(t->offset, off);
        off += t->count;
    }
    assert_int_equal(rd_edits_tensor_at(e, 3)->shape[0], kv);
    assert_int_equal(rd_edits_tensor_at(e, 3)->shape[1], 8);
    const float *A = rd_edits_lora_a(e, 2, RD_PROJ_V), *Bf = rd_edits_lora_b(e, 2, RD_PROJ_V);
    assert_non_null(A);
    assert_null(rd_edits_lora_a(e, 1, RD_PROJ_V));
    assert_null(rd_edits_lora_a(e, 0, RD_PROJ_K));
    double mx = 0;
    for (int i = 0; i < 8 * d; i++) mx = fmax(mx, fabs(A[i]));
    assert_true(mx > 0.5 / sqrt(d) && mx <= 1.0 / sqrt(d));
    for (int i = 0; i < kv * 8; i++) assert_true(Bf[i] == 0.0f);
    rd_edits *c = rd_edits_clone(e, &err);
    assert_memory_equal(rd_edits_params(c), rd_edits_params(e), rd_edits_param_count(e) * sizeof(float));
    rd_edits_free(c);
    rd_edits_free(e);

    rd_edit_spec ia3 = {.method = RD_METHOD_IA3, .layers = "all"};
    e = rd_edits_new(cfg, &ia3, &err);
    assert_int_equal(rd_edits_param_count(e), 3 * (size_t)(2 * kv + hd));
    for (size_t i = 0; i < rd_edits_param_count(e); i++) assert_true(rd_edits_params(e)[i] == 1.0f);
    assert_ptr_equal(rd_edits_ia3(e, 1, RD_PROJ_DOWN), rd_edits_params(e) + 3 * (2 * kv + hd) / 3 * 1 + 2 * kv);
    assert_string_equal(rd_edits_tensor_at(e, 2)->name, "layers.0.ffn.ia3");
    rd_edits_free(e);

    /* refusals */
    rd_edit_spec bad = {.method = RD_METHOD_LORA, .rank = -1};
    assert_null(rd_edits_new(cfg, &bad, &err));
    assert_non_null(strstr(err.msg, "rank"));
    int mask;
    assert_int_equal(rd_lora_targets_parse("q, v,down", &mask, &err), 0);
    assert_int_equal(mask, BIT(Q) | BIT(V) | BIT(DOWN));
    assert_int_equal(rd_lora_targets_parse("q,x", &mask, &err), -1);
    assert_non_null(strstr(err.msg, "\"x\""));
    char buf[64];
    assert_string_equal(rd_lora_targets_text(ALL_TARGETS, buf, sizeof buf), "q,k,v,o,gate,up,down");
    rd_model_free(m);
}

/* Saved and reloaded LoRA/IA3 sets: the same settings and numbers, bit-identical logits;
 * a tensor of another shape than the metadata and model give is refused, naming it. */
static void test_files_round_trip(void **state) {
    (void)state;
    char dir[256], path[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/e.safetensors", dir);
    rd_model *m = make_model(&GQA, 5, RD_DTYPE_F32);
    const rd_edit_spec specs[] = {LORA(4, BIT(Q) | BIT(V) | BIT(DOWN), "0,2", 0.1f), IA3("1-2")};
    const int T = 9, V = GQA.vocab;
    int tok[9];
    for (int i = 0; i < T; i++) tok[i] = (i * 7 + 1) % V;
    float *a = malloc(sizeof(float) * T * V), *b = malloc(sizeof(float) * T * V);
    rd_error err = {0};
    rd_ctx *ctx = rd_ctx_new(m, 1, 16, &err);
    for (int si = 0; si < 2; si++) {
        rd_edits *e = random_edits(m, &specs[si]);
        assert_int_equal(rd_edits_save(e, m, "{\"lr\":0.01}", path, &err), 0);
        char *training = NULL;
        rd_edits *r = rd_edits_load(path, m, 0, &training, &err);
        if (!r) fail_msg("load: %s", err.msg);
        assert_string_equal(training, "{\"lr\":0.01}");
        free(training);
        assert_int_equal(rd_edits_method(r), specs[si].method);
        assert_int_equal(rd_edits_rank(r), rd_edits_rank(e));
        assert_true(rd_edits_lora_alpha(r) == rd_edits_lora_alpha(e));
        assert_true(rd_edits_lora_dropout(r) == rd_edits_lora_dropout(e));
        assert_int_equal(rd_edits_lora_targets(r), rd_edits_lora_targets(e));
        assert_string_equal(rd_edits_layers_text(r), rd_edits_layers_text(e));
        assert_int_equal(rd_edits_param_count(r), rd_edits_param_count(e));
        assert_memory_equal(rd_edits_params(r), rd_edits_params(e),
                            rd_edits_param_count(e) * sizeof(float));
        const rd_edits_view ve = rd_edits_view_at(e, 1.0f), vr = rd_edits_view_at(r, 1.0f);
        prefill(ctx, &ve, tok, 1, T, a);
        prefill(ctx, &vr, tok, 1, T, b);
        assert_memory_equal(a, b, sizeof(float) * T * V);
        rd_edits_free(r);
        rd_edits_free(e);
    }
    /* a LoRA file whose A has rank 4 while its metadata says 8 */
    rd_st_writer *w = rd_st_writer_new(&err);
    const char *kv[][2] = {{"format", "redit-red"}, {"version", "2"}, {"method", "lora"},
                           {"layers", "1"}, {"dim", "32"}, {"n_layers", "3"}, {"rank", "8"},
                           {"lora_alpha", "8"}, {"lora_targets", "q"}, {"lora_dropout", "0"}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        assert_int_equal(rd_st_writer_meta(w, kv[i][0], kv[i][1], &err), 0);
    static float zeros[8 * 32];
    const int64_t sa[2] = {4, 32}, sb[2] = {32, 8};
    assert_int_equal(rd_st_writer_add(w, "layers.1.q.lora_a", RD_DTYPE_F32, sa, 2, zeros, &err), 0);
    assert_int_equal(rd_st_writer_add(w, "layers.1.q.lora_b", RD_DTYPE_F32, sb, 2, zeros, &err), 0);
    assert_int_equal(rd_st_writer_commit(w, path, &err), 0);
    rd_st_writer_free(w);
    assert_null(rd_edits_load(path, m, 1, NULL, &err));
    assert_non_null(strstr(err.msg, "\"layers.1.q.lora_a\" has shape [4, 32], expected [8, 32]"));
    rd_ctx_free(ctx);
    free(a);
    free(b);
    rd_model_free(m);
    tiny_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_init),
        cmocka_unit_test(test_files_round_trip),
        cmocka_unit_test(test_strength_zero_and_paths),
        cmocka_unit_test(test_checkpointing_is_exact),
        cmocka_unit_test(test_lora_gradients),
        cmocka_unit_test(test_ia3_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
