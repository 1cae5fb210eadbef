/* The training pass: forward over fresh sequences keeping activations (layer.c's layer,
 * shared with inference, on one activation set per layer), chunked cross-entropy over the
 * classifier, and backward to the RED edit vectors through the frozen weights.
 * Shapes: N = B·T rows (sequence-major), d = dim, kv = kv_dim, hd = hidden_dim, H = n_heads. */
#include "redit/backward.h"
#include "redit/buf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/gemm_bf16.h"
#include "core/kernels.h"
#include "core/pool.h"

#include "redit/edits.h"

#include "layer.h"

/* Rows of the classifier processed at once: logits (CLS_ROWS, V) live in scratch. */
#define CLS_ROWS 128

struct rd_train_ctx {
    const rd_model *m;
    int max_batch, max_len, checkpointing;
    int n_sets;          /* activation sets: n_layers, or 1 with checkpointing */
    rd_layer_view *acts; /* (n_sets) what backward needs from each layer's forward: every
                          * activation in its own buffer (act is da, the shared scratch) */
    float **x_saved;     /* checkpointing: (n_layers) layer inputs (N, d) each */
    float *x_final;      /* (N, d) residual stream after the last layer */
    float *xf;           /* (N, d) final-normed */
    /* backward scratch */
    float *dx, *dx_mid, *dh, *dxb, *dq; /* (N, d) */
    float *dk, *dv;      /* (N, kv) */
    float *da, *dg, *du; /* (N, hd); da also holds silu(g)·u in forward */
    float *att_scratch;  /* rd_attention_train_scratch_floats(B, T, kv heads, head size) */
    float *cls_logits;   /* (CLS_ROWS, V) */
    float *cls_x, *cls_dx; /* (CLS_ROWS, d) */
    int *cls_rows;       /* (N) rows with a target */
    float *wgrad;        /* full fine-tuning: weight gradients (layout of m->params), else NULL */
    float *wscratch;
    void *gscratch;      /* bf16 weight gradients: rd_gemm_bf16_tn's scratch, made by the
                          * first full fine-tuning pass in bf16 compute (else NULL) */
    rd_pool *pool;       /* the process's pool (borrowed): the row-wise work between GEMMs */
    rd_dropout dropout;  /* of the sub-layer outputs in the next passes (threshold 0: off) */
    rd_dropout lora_drop; /* of LoRA's inputs in the next passes (threshold 0: off) */
    float *lora_fwd;     /* LoRA: (N, r) [+ (N, max(d, hd)) with dropout]: the layer's scratch
                          * (rd_layer_lora_scratch_floats), reused by backward for T and x̃ */
    size_t lora_fwd_floats;
    float *lora_u;       /* LoRA: (N, r) dy·B in backward */
    size_t lora_u_floats;
    int ia3_raw;         /* the activation sets have k_raw, v_raw (IA3) */
    size_t bytes;
    void **blocks;       /* every allocation, for free */
    int n_blocks;
    size_t cap_blocks;
};

static float *ctx_alloc(rd_train_ctx *c, size_t floats) {
    if (rd_array_reserve(&c->blocks, &c->cap_blocks, (size_t)c->n_blocks + 1, sizeof *c->blocks))
        return NULL;
    float *p = calloc(floats ? floats : 1, sizeof(float));
    if (p) {
        c->blocks[c->n_blocks++] = p;
        c->bytes += floats * sizeof(float);
    }
    return p;
}

static size_t acts_floats(const rd_config *cfg, size_t N, size_t B, size_t T) {
    const size_t d = (size_t)cfg->dim, kv = (size_t)rd_config_kv_dim(cfg), hd = (size_t)cfg->hidden_dim;
    return N * d * 8 + N * kv * 2 + N * hd * 2 + B * (size_t)cfg->n_heads * T * T;
}

size_t rd_train_ctx_estimate(const rd_config *cfg, int max_batch, int max_len, int checkpointing) {
    const size_t B = (size_t)max_batch, T = (size_t)max_len, N = B * T;
    const size_t d = (size_t)cfg->dim, kv = (size_t)rd_config_kv_dim(cfg), hd = (size_t)cfg->hidden_dim;
    const size_t L = (size_t)cfg->n_layers, V = (size_t)cfg->vocab_size;
    size_t floats = (checkpointing ? 1 : L) * acts_floats(cfg, N, B, T);
    if (checkpointing) floats += L * N * d;
    floats += N * d * 7 + N * kv * 2 + N * hd * 3 + T * T + CLS_ROWS * (V + 2 * d);
    return floats * sizeof(float);
}

/* An activation set: x_in, xb, q, o, h_attn, x_mid, xb2, h_ffn (N, d); k, v (N, kv); g, u
 * (N, hd); probs (B, H, T, T). The layer's output (x_out) and act are set per pass. */
static int alloc_acts(rd_train_ctx *c, rd_layer_view *a, size_t N, size_t B, size_t T) {
    const rd_config *cfg = &c->m->file.cfg;
    const size_t d = (size_t)cfg->dim, kv = (size_t)rd_config_kv_dim(cfg), hd = (size_t)cfg->hidden_dim;
    float **nd[] = {&a->x_in, &a->xb, &a->q, &a->o, &a->h_attn, &a->x_mid, &a->xb2, &a->h_ffn};
    for (size_t i = 0; i < sizeof nd / sizeof *nd; i++)
        if (!(*nd[i] = ctx_alloc(c, N * d))) return -1;
    if (!(a->k = ctx_alloc(c, N * kv)) || !(a->v = ctx_alloc(c, N * kv)) ||
        !(a->g = ctx_alloc(c, N * hd)) || !(a->u = ctx_alloc(c, N * hd)) ||
        !(a->probs = ctx_alloc(c, B * (size_t)cfg->n_heads * T * T)))
        return -1;
    a->norm_in = 1;
    return 0;
}

rd_train_ctx *rd_train_ctx_new(const rd_model *m, int max_batch, int max_len, int checkpointing,
                               rd_error *err) {
    const rd_config *cfg = &m->file.cfg;
    if (max_batch < 1 || max_len < 2 || max_len > cfg->seq_len) {
        rd_error_set(err, "training shape %d × %d is out of range (batch ≥ 1, 2 ≤ length ≤ %d)",
                     max_batch, max_len, cfg->seq_len);
        return NULL;
    }
    {
        char what[160];
        const size_t need = rd_train_ctx_estimate(cfg, max_batch, max_len, checkpointing);
        snprintf(what, sizeof what, "training activations for %d × %d tokens%s", max_batch,
                 max_len, checkpointing ? "" : " (without --checkpointing)");
        if (rd_memory_check(need, what, err)) return NULL;
    }
    rd_train_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        rd_error_set(err, "out of memory");
        return NULL;
    }
    c->m = m;
    c->max_batch = max_batch;
    c->max_len = max_len;
    c->checkpointing = checkpointing;
    const size_t B = (size_t)max_batch, T = (size_t)max_len, N = B * T;
    const size_t d = (size_t)cfg->dim, kv = (size_t)rd_config_kv_dim(cfg), hd = (size_t)cfg->hidden_dim;
    const int L = cfg->n_layers;
    c->n_sets = checkpointing ? 1 : L;
    int ok = (c->acts = calloc((size_t)c->n_sets, sizeof *c->acts)) != NULL;
    for (int i = 0; ok && i < c->n_sets; i++) ok = alloc_acts(c, &c->acts[i], N, B, T) == 0;
    if (ok && checkpointing) {
        ok = (c->x_saved = calloc((size_t)L, sizeof *c->x_saved)) != NULL;
        for (int l = 0; ok && l < L; l++) ok = (c->x_saved[l] = ctx_alloc(c, N * d)) != NULL;
    }
    float **nd[] = {&c->x_final, &c->xf, &c->dx, &c->dx_mid, &c->dh, &c->dxb, &c->dq};
    for (size_t i = 0; ok && i < sizeof nd / sizeof *nd; i++) ok = (*nd[i] = ctx_alloc(c, N * d)) != NULL;
    const size_t att = rd_attention_train_scratch_floats((int)B, (int)T, cfg->n_kv_heads,
                                                         rd_config_head_dim(cfg));
    ok = ok && (c->dk = ctx_alloc(c, N * kv)) && (c->dv = ctx_alloc(c, N * kv)) &&
         (c->da = ctx_alloc(c, N * hd)) && (c->dg = ctx_alloc(c, N * hd)) &&
         (c->du = ctx_alloc(c, N * hd)) && (c->att_scratch = ctx_alloc(c, att)) &&
         (c->cls_logits = ctx_alloc(c, (size_t)CLS_ROWS * (size_t)cfg->vocab_size)) &&
         (c->cls_x = ctx_alloc(c, CLS_ROWS * d)) && (c->cls_dx = ctx_alloc(c, CLS_ROWS * d));
    if (ok) ok = (c->cls_rows = malloc(N * sizeof(int))) != NULL;
    if (ok) ok = (c->pool = rd_pool_shared(err)) != NULL;
    if (ok) { /* always room for the bf16 GEMM too: the compute mode may change later */
        size_t ws = rd_model_matmul_scratch_floats(m, (int)N), gs = rd_matmul_gemm_scratch_floats(c->pool);
        ok = (c->wscratch = ctx_alloc(c, ws > gs ? ws : gs)) != NULL;
    }
    if (!ok) {
        rd_error_set(err, "out of memory allocating %.1f MB of activations for %d × %d tokens%s",
                     (double)rd_train_ctx_estimate(cfg, max_batch, max_len, checkpointing) / 1e6,
                     max_batch, max_len, checkpointing ? "" : " (try activation checkpointing)");
        rd_train_ctx_free(c);
        return NULL;
    }
    return c;
}

void rd_train_ctx_free(rd_train_ctx *c) {
    if (!c) return;
    for (int i = 0; i < c->n_blocks; i++) free(c->blocks[i]);
    free(c->blocks);
    free(c->acts);
    free(c->x_saved);
    free(c->cls_rows);
    free(c);
}

size_t rd_train_ctx_bytes(const rd_train_ctx *c) { return c->bytes; }

/* ---- row-parallel helpers: the element-wise work between GEMMs, spread over the pool ---- */

typedef struct rows_call {
    void (*fn)(const struct rows_call *r, int r0, int r1);
    int n, per;
    /* arguments of the wrapped kernels */
    float *out, *out2, *dw;
    const float *a, *b, *w;
    int d;
    float eps;
    const void *extra; /* a kernel's own further arguments */
} rows_call;

static void rows_task(void *arg, int task) {
    const rows_call *r = arg;
    const int r0 = task * r->per, r1 = r0 + r->per < r->n ? r0 + r->per : r->n;
    if (r0 < r1) r->fn(r, r0, r1);
}

static void run_rows(rd_pool *pool, rows_call *r) {
    const int threads = rd_pool_threads(pool);
    r->per = (r->n + 4 * threads - 1) / (4 * threads);
    if (r->per < 1) r->per = 1;
    rd_pool_run(pool, rows_task, r, (r->n + r->per - 1) / r->per);
}

static void rmsnorm_bwd_rows(const rows_call *r, int r0, int r1) {
    const size_t o = (size_t)r0 * r->d;
    rd_rmsnorm_backward(r->out + o, NULL, r->b + o, r->a + o, r->w, r1 - r0, r->d, r->eps);
}

/* dx (n, d) += rmsnorm backward; dw (norm weight gradient) accumulates serially. */
static void par_rmsnorm_backward(rd_train_ctx *c, float *dx, float *dw, const float *dy,
                                 const float *x, const float *w, int n, int d, float eps) {
    if (dw) {
        rd_rmsnorm_backward(dx, dw, dy, x, w, n, d, eps);
        return;
    }
    rows_call r = {.fn = rmsnorm_bwd_rows, .n = n, .out = dx, .a = x, .b = dy, .w = w, .d = d,
                   .eps = eps};
    run_rows(c->pool, &r);
}

static void swiglu_rows(const rows_call *r, int r0, int r1) {
    const size_t o = (size_t)r0 * r->d;
    rd_swiglu(r->out + o, r->a + o, (size_t)(r1 - r0) * r->d);
}

/* gate (n, hd) = silu(gate)·up, rows in parallel. */
static void par_swiglu(rd_train_ctx *c, float *gate, const float *up, int n, int hd) {
    rows_call r = {.fn = swiglu_rows, .n = n, .out = gate, .a = up, .d = hd};
    run_rows(c->pool, &r);
}

static void swiglu_bwd_rows(const rows_call *r, int r0, int r1) {
    const size_t o = (size_t)r0 * r->d;
    rd_swiglu_backward(r->out + o, r->out2 + o, r->b + o, r->a + o, r->w + o,
                       (size_t)(r1 - r0) * r->d);
}

static void par_swiglu_backward(rd_train_ctx *c, float *dg, float *du, const float *da,
                                const float *g, const float *u, int n, int hd) {
    rows_call r = {.fn = swiglu_bwd_rows, .n = n, .out = dg, .out2 = du, .b = da, .a = g, .w = u,
                   .d = hd};
    run_rows(c->pool, &r);
}

void rd_train_ctx_set_dropout(rd_train_ctx *c, float p, uint64_t seed) {
    c->dropout = rd_dropout_make(p, seed);
}

void rd_train_ctx_set_lora_dropout(rd_train_ctx *c, float p, uint64_t seed) {
    c->lora_drop = rd_dropout_make(p, seed);
}

/* The buffers the methods of edits need beyond RED's, made on first use: LoRA's scratch at
 * its rank (and dropout), IA3's raw k and v per activation set. */
static int method_buffers(rd_train_ctx *c, const rd_edits_view *ed, rd_error *err) {
    if (!ed) return 0;
    const rd_config *cfg = &c->m->file.cfg;
    const int N = c->max_batch * c->max_len;
    if (ed->lora) {
        const size_t fwd = rd_layer_lora_scratch_floats(cfg, N, ed->lora_rank,
                                                        c->lora_drop.threshold != 0);
        const size_t u = (size_t)N * (size_t)ed->lora_rank;
        if (fwd > c->lora_fwd_floats) {
            if (!(c->lora_fwd = ctx_alloc(c, fwd))) return rd_error_set(err, "out of memory for LoRA");
            c->lora_fwd_floats = fwd;
        }
        if (u > c->lora_u_floats) {
            if (!(c->lora_u = ctx_alloc(c, u))) return rd_error_set(err, "out of memory for LoRA");
            c->lora_u_floats = u;
        }
    }
    if (ed->ia3 && !c->ia3_raw) {
        const size_t kv = (size_t)N * (size_t)rd_config_kv_dim(cfg);
        for (int i = 0; i < c->n_sets; i++)
            if (!(c->acts[i].k_raw = ctx_alloc(c, kv)) || !(c->acts[i].v_raw = ctx_alloc(c, kv)))
                return rd_error_set(err, "out of memory for IA3's activations");
        c->ia3_raw = 1;
    }
    return 0;
}

static void dropout_bwd_rows(const rows_call *r, int r0, int r1) {
    for (size_t k = (size_t)r0 * r->d; k < (size_t)r1 * r->d; k++)
        r->out[k] = r->a[k] * rd_dropout_factor(r->extra, k);
}

/* ∂/∂ edit(h) of layer l's sub-layer from dy (N, d), the gradient of its output: dy itself
 * without dropout, else mask ⊙ dy written to c->dh (rows in parallel). */
static const float *dropout_backward(rd_train_ctx *c, const float *dy, int l, int sub, int N,
                                     int d) {
    if (!c->dropout.threshold) return dy;
    const rd_dropout m = rd_layer_dropout_mask(&c->dropout, l, sub, N, d);
    rows_call r = {.fn = dropout_bwd_rows, .n = N, .out = c->dh, .a = dy, .d = d, .extra = &m};
    run_rows(c->pool, &r);
    return c->dh;
}

/* Edit gradients of one site (the backward of rd_site_apply's edit) and the gradient flowing
 * into h: ds += α Σ dh'⊙h, db += α Σ dh', dh = s'⊙dh' (dh may alias dhp). */
static void edit_backward(float *dh, const float *dhp, const float *h, size_t n, int d,
                          const rd_site_edit *e, const rd_site_grad *g, float alpha) {
    if (g && (g->dscale || g->dbias)) {
        for (size_t i = 0; i < n; i++) {
            const float *a = dhp + i * d, *hi = h + i * d;
            if (g->dscale)
                for (int j = 0; j < d; j++) g->dscale[j] += alpha * a[j] * hi[j];
            if (g->dbias)
                for (int j = 0; j < d; j++) g->dbias[j] += alpha * a[j];
        }
    }
    if (e && e->scale && alpha != 0.0f) {
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                dh[i * d + j] = dhp[i * d + j] * rd_edit_scale_at(e->scale[j], alpha);
    } else if (dh != dhp) {
        memcpy(dh, dhp, n * d * sizeof(float));
    }
}

/* rd_gemm_bf16_tn's scratch for every weight gradient of a pass: the layers' (K = N tokens;
 * (rows, cols) (d, d), (kv, d), (hd, d) or (d, hd)) and the classifier's (K ≤ CLS_ROWS). */
static size_t weight_grad_scratch_floats(const rd_train_ctx *c) {
    const rd_config *cfg = &c->m->file.cfg;
    const int64_t d = cfg->dim, hd = cfg->hidden_dim, N = (int64_t)c->max_batch * c->max_len;
    const size_t sizes[] = {rd_gemm_bf16_tn_scratch_bytes(d, d, N),
                            rd_gemm_bf16_tn_scratch_bytes(hd, d, N),
                            rd_gemm_bf16_tn_scratch_bytes(d, hd, N),
                            rd_gemm_bf16_tn_scratch_bytes(cfg->vocab_size, d, CLS_ROWS)};
    size_t bytes = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (sizes[i] > bytes) bytes = sizes[i];
    return (bytes + sizeof(float) - 1) / sizeof(float);
}

/* The gradient of a weight (a pointer into m->params) in c->wgrad. */
static float *wgrad_of(const rd_train_ctx *c, const void *weight) {
    return c->wgrad + ((const float *)weight - c->m->params);
}

static const rd_site_grad *gsite(const rd_site_grad *arr, int l) { return arr ? &arr[l] : NULL; }

/* What every layer of a training forward shares: fresh sequences, the context's dropout. */
static rd_layer_pass train_layer_pass(rd_train_ctx *c, const rd_edits_view *ed, int B, int T) {
    return (rd_layer_pass){.m = c->m, .B = B, .T = T, .mode = RD_ATTN_TRAIN, .edits = ed,
                           .dropout = &c->dropout, .lora_dropout = &c->lora_drop,
                           .lora_scratch = c->lora_fwd, .pool = c->pool,
                           .wscratch = c->wscratch, .att = c->att_scratch};
}

/* Forward of layer l from a->x_in, filling a; writes the layer's output to x_out and, when
 * out_norm is set, rmsnorm(x_out)·out_norm to c->xf. */
static void layer_forward_train(rd_train_ctx *c, const rd_layer_pass *p, int l,
                                const rd_layer_view *a, float *x_out, const float *out_norm) {
    rd_layer_view v = *a;
    v.act = c->da; /* silu(g)·u, the input of w2: backward recomputes it where needed */
    v.x_out = x_out;
    v.out_norm = out_norm;
    v.x_out_normed = c->xf;
    rd_layer_forward(p, l, &v);
}

/* How far the backward pass goes into its lowest layer: all of it, only down to the
 * gradient of its attention or FFN site (RED), or down to the parameters of its attention
 * or FFN projections (LoRA, IA3): nothing below that layer has a gradient wanted. */
enum { BOTTOM_NONE, BOTTOM_ATTN_SITE, BOTTOM_FFN_SITE, BOTTOM_ATTN_PROJ, BOTTOM_FFN_PROJ };

static int site_wanted(const rd_site_grad *g) { return g && (g->dscale || g->dbias); }

/* Which sub-layers of layer l have LoRA/IA3 gradients wanted: bit 0 attention, bit 1 FFN. */
static int proj_wanted(const rd_edits_grad *gr, int l) {
    int w = 0;
    if (gr->lora)
        for (int p = 0; p < RD_N_PROJ; p++)
            if (gr->lora[l].da[p] || gr->lora[l].db[p]) w |= p <= RD_PROJ_O ? 1 : 2;
    if (gr->ia3) w |= (gr->ia3[l].dk || gr->ia3[l].dv ? 1 : 0) | (gr->ia3[l].dffn ? 2 : 0);
    return w;
}

/* The lowest layer whose backward is needed and how far into it (*bottom): every layer for
 * weight gradients, else the lowest layer with an edit gradient wanted (L when none is). */
static int backward_floor(const rd_train_ctx *c, const rd_edits_grad *gr, int *bottom) {
    const int L = c->m->file.cfg.n_layers;
    *bottom = BOTTOM_NONE;
    if (c->wgrad) return 0;
    for (int l = 0; gr && l < L; l++) {
        const int attn = site_wanted(gr->attn ? &gr->attn[l] : NULL);
        const int ffn = site_wanted(gr->ffn ? &gr->ffn[l] : NULL);
        const int proj = proj_wanted(gr, l);
        if (attn || ffn) {
            *bottom = attn ? BOTTOM_ATTN_SITE : BOTTOM_FFN_SITE;
            return l;
        }
        if (proj) {
            *bottom = proj & 1 ? BOTTOM_ATTN_PROJ : BOTTOM_FFN_PROJ;
            return l;
        }
    }
    return L;
}

/* dx (n, d) += mask ⊙ y (rows in parallel). */
static void masked_add_rows(const rows_call *r, int r0, int r1) {
    for (size_t k = (size_t)r0 * r->d; k < (size_t)r1 * r->d; k++)
        r->out[k] += r->a[k] * rd_dropout_factor(r->extra, k);
}

/* LoRA's backward at layer l's projection id (out = W·x + c·B·A·x̃, c = α·lora_alpha/r), with
 * x (N, in) the projection's input and dy (N, rows) its output's gradient:
 *   T = x̃·Aᵀ, U = dy·B (N, r);  dB += c·dyᵀ·T;  dA += c·Uᵀ·x̃;  dx += c·mask ⊙ (U·A)
 * (dx NULL: not wanted). Nothing without LoRA factors there or at strength 0. */
static void lora_backward(rd_train_ctx *c, int l, int id, const rd_edits_view *ed,
                          const rd_edits_grad *gr, const float *dy, const float *x, float *dx,
                          int N) {
    if (!ed || !ed->lora || ed->strength == 0.0f || !ed->lora[l].a[id]) return;
    const float *A = ed->lora[l].a[id], *Bf = ed->lora[l].b[id];
    float *dA = gr && gr->lora ? gr->lora[l].da[id] : NULL;
    float *dB = gr && gr->lora ? gr->lora[l].db[id] : NULL;
    if (!dA && !dB && !dx) return;
    const rd_config *cfg = &c->m->file.cfg;
    const float cs = ed->strength * ed->lora_scale;
    const int r = ed->lora_rank;
    int rows, in;
    rd_proj_shape(cfg, id, &rows, &in);
    float *t = c->lora_fwd, *u = c->lora_u, *xd = c->lora_fwd + (size_t)N * (size_t)r;
    const int drop = c->lora_drop.threshold != 0;
    const rd_dropout mask = drop ? rd_layer_lora_mask(&c->lora_drop, cfg, l, id, N) : (rd_dropout){0};
    const float *xin = x;
    if (drop && (dA || dB)) {
        rd_layer_lora_dropout(xd, x, N, in, &mask, c->pool);
        xin = xd;
    }
    if (dB) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, xin, in, A, in,
                    0.0f, t, r);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, r, N, cs, dy, rows, t, r,
                    1.0f, dB, r);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, rows, 1.0f, dy, rows, Bf, r,
                0.0f, u, r);
    if (dA)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, cs, u, r, xin, in, 1.0f,
                    dA, in);
    if (!dx) return;
    if (!drop) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, cs, u, r, A, in, 1.0f,
                    dx, in);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, cs, u, r, A, in, 0.0f, xd,
                in);
    rows_call rc = {.fn = masked_add_rows, .n = N, .out = dx, .a = xd, .d = in, .extra = &mask};
    run_rows(c->pool, &rc);
}

/* IA3's backward of y = s'⊙x (s' = rd_edit_scale_at(s, α)) over (n, w) rows, given dy:
 * ds += α Σ dy⊙x, then dy *= s' in place (the gradient flowing into x). Columns in parallel
 * blocks, each summed over the rows in order. */
typedef struct ia3_job {
    float *dy, *ds;
    const float *x, *s;
    float alpha;
    int n, w, per;
} ia3_job;

static void ia3_task(void *arg, int task) {
    const ia3_job *j = arg;
    const int c0 = task * j->per, c1 = c0 + j->per < j->w ? c0 + j->per : j->w;
    for (int i = 0; i < j->n; i++) {
        float *dyi = j->dy + (size_t)i * j->w;
        const float *xi = j->x + (size_t)i * j->w;
        if (j->ds)
            for (int k = c0; k < c1; k++) j->ds[k] += j->alpha * dyi[k] * xi[k];
        for (int k = c0; k < c1; k++) dyi[k] *= rd_edit_scale_at(j->s[k], j->alpha);
    }
}

static void ia3_backward(rd_train_ctx *c, float *dy, float *ds, const float *x, const float *s,
                         float alpha, int n, int w) {
    if (!s) return;
    ia3_job j = {dy, ds, x, s, alpha, n, w, 64};
    rd_pool_run(c->pool, ia3_task, &j, (w + j.per - 1) / j.per);
}

/* Backward of layer l: c->dx holds ∂/∂(layer output) on entry, ∂/∂(layer input) on exit
 * (with bottom ≠ BOTTOM_NONE only the edit gradients down to that site or those
 * projections, c->dx undefined). */
static void layer_backward(rd_train_ctx *c, int l, const rd_layer_view *a, const rd_edits_view *ed,
                           const rd_edits_grad *gr, int B, int T, int bottom) {
    const rd_config *cfg = &c->m->file.cfg;
    const rd_layer_weights *W = &c->m->file.w.layers[l];
    const int d = cfg->dim, kv = rd_config_kv_dim(cfg), hs = rd_config_head_dim(cfg);
    const int H = cfg->n_heads, hd = cfg->hidden_dim, N = B * T;
    const float alpha = ed ? ed->strength : 0.0f;
    const rd_ia3_edit *ia = ed && ed->ia3 && alpha != 0.0f ? &ed->ia3[l] : NULL;
    const rd_ia3_grad *iag = gr && gr->ia3 ? &gr->ia3[l] : NULL;
    const int lora = ed && ed->lora && alpha != 0.0f;
    const int lora_down = lora && ed->lora[l].a[RD_PROJ_DOWN];

    /* FFN sub-layer: x_out = x_mid + mask ⊙ edit(h_ffn), h_ffn = act·w2ᵀ (+ LoRA),
     * act = s_ffn ⊙ silu(g)·u */
    edit_backward(c->dh, dropout_backward(c, c->dx, l, 1, N, d), a->h_ffn, (size_t)N, d,
                  rd_layer_site_edit(ed, l, 1), gr ? gsite(gr->ffn, l) : NULL, alpha);
    if (bottom == BOTTOM_FFN_SITE) return;
    if (c->wgrad || lora_down || (ia && ia->ffn)) { /* c->dg = silu(g)·u (unscaled) */
        memcpy(c->dg, a->g, (size_t)N * hd * sizeof(float));
        par_swiglu(c, c->dg, a->u, N, hd);
    }
    if (c->wgrad) /* dW2 += dhᵀ · (silu(g)·u) */
        rd_matmul_weight_grad(wgrad_of(c, W->w2.data), c->dh, c->dg, N, &W->w2, c->gscratch, c->pool);
    rd_matmul_backward(c->da, c->dh, &W->w2, N, 0, c->wscratch, c->pool);
    lora_backward(c, l, RD_PROJ_DOWN, ed, gr, c->dh, c->dg, c->da, N);
    if (ia) ia3_backward(c, c->da, iag ? iag->dffn : NULL, c->dg, ia->ffn, alpha, N, hd);
    par_swiglu_backward(c, c->dg, c->du, c->da, a->g, a->u, N, hd);
    const int ffn_dx = bottom != BOTTOM_FFN_PROJ;
    if (ffn_dx) {
        rd_matmul_backward(c->dxb, c->dg, &W->w1, N, 0, c->wscratch, c->pool);
        rd_matmul_backward(c->dxb, c->du, &W->w3, N, 1, c->wscratch, c->pool);
    }
    lora_backward(c, l, RD_PROJ_GATE, ed, gr, c->dg, a->xb2, ffn_dx ? c->dxb : NULL, N);
    lora_backward(c, l, RD_PROJ_UP, ed, gr, c->du, a->xb2, ffn_dx ? c->dxb : NULL, N);
    if (bottom == BOTTOM_FFN_PROJ) return;
    if (c->wgrad) {
        rd_matmul_weight_grad(wgrad_of(c, W->w1.data), c->dg, a->xb2, N, &W->w1, c->gscratch, c->pool);
        rd_matmul_weight_grad(wgrad_of(c, W->w3.data), c->du, a->xb2, N, &W->w3, c->gscratch, c->pool);
    }
    memcpy(c->dx_mid, c->dx, (size_t)N * d * sizeof(float));
    par_rmsnorm_backward(c, c->dx_mid, c->wgrad ? wgrad_of(c, W->ffn_norm) : NULL, c->dxb,
                         a->x_mid, W->ffn_norm, N, d, cfg->norm_eps);

    /* attention sub-layer: x_mid = x_in + mask ⊙ edit(h_attn), h_attn = o·woᵀ (+ LoRA) */
    edit_backward(c->dh, dropout_backward(c, c->dx_mid, l, 0, N, d), a->h_attn, (size_t)N, d,
                  rd_layer_site_edit(ed, l, 0), gr ? gsite(gr->attn, l) : NULL, alpha);
    if (bottom == BOTTOM_ATTN_SITE) return;
    rd_matmul_backward(c->dxb, c->dh, &W->wo, N, 0, c->wscratch, c->pool); /* dxb = ∂/∂o */
    lora_backward(c, l, RD_PROJ_O, ed, gr, c->dh, a->o, c->dxb, N);
    if (c->wgrad) rd_matmul_weight_grad(wgrad_of(c, W->wo.data), c->dh, a->o, N, &W->wo, c->gscratch,
                                      c->pool);
    rd_attention_train_backward(c->dq, c->dk, c->dv, c->dxb, a->probs, a->q, a->k, a->v, B, T,
                                H, cfg->n_kv_heads, hs, c->att_scratch, c->pool);
    for (int r = 0; r < N; r++) { /* RoPE is a rotation: its backward rotates back */
        rd_rope(c->dq + (size_t)r * d, H, hs, -(r % T), cfg->rope_theta, cfg->rope_layout);
        rd_rope(c->dk + (size_t)r * kv, cfg->n_kv_heads, hs, -(r % T), cfg->rope_theta,
                cfg->rope_layout);
    }
    if (ia) { /* k = s_k ⊙ k_raw, v = s_v ⊙ v_raw */
        ia3_backward(c, c->dk, iag ? iag->dk : NULL, a->k_raw, ia->k, alpha, N, kv);
        ia3_backward(c, c->dv, iag ? iag->dv : NULL, a->v_raw, ia->v, alpha, N, kv);
    }
    const int attn_dx = bottom != BOTTOM_ATTN_PROJ;
    if (attn_dx) {
        rd_matmul_backward(c->dxb, c->dq, &W->wq, N, 0, c->wscratch, c->pool);
        rd_matmul_backward(c->dxb, c->dk, &W->wk, N, 1, c->wscratch, c->pool);
        rd_matmul_backward(c->dxb, c->dv, &W->wv, N, 1, c->wscratch, c->pool);
    }
    lora_backward(c, l, RD_PROJ_Q, ed, gr, c->dq, a->xb, attn_dx ? c->dxb : NULL, N);
    lora_backward(c, l, RD_PROJ_K, ed, gr, c->dk, a->xb, attn_dx ? c->dxb : NULL, N);
    lora_backward(c, l, RD_PROJ_V, ed, gr, c->dv, a->xb, attn_dx ? c->dxb : NULL, N);
    if (!attn_dx) return;
    if (c->wgrad) {
        rd_matmul_weight_grad(wgrad_of(c, W->wq.data), c->dq, a->xb, N, &W->wq, c->gscratch, c->pool);
        rd_matmul_weight_grad(wgrad_of(c, W->wk.data), c->dk, a->xb, N, &W->wk, c->gscratch, c->pool);
        rd_matmul_weight_grad(wgrad_of(c, W->wv.data), c->dv, a->xb, N, &W->wv, c->gscratch, c->pool);
    }
    memcpy(c->dx, c->dx_mid, (size_t)N * d * sizeof(float));
    par_rmsnorm_backward(c, c->dx, c->wgrad ? wgrad_of(c, W->attn_norm) : NULL, c->dxb, a->x_in,
                         W->attn_norm, N, d, cfg->norm_eps);
}

/* Softmax cross-entropy of one chunk's rows, in parallel: each task takes rows of
 * c->cls_logits (R, V); loss per row into row_loss; with need_grad the logits become
 * dz = softmax(z) − onehot(target). */
typedef struct ce_job {
    rd_train_ctx *c;
    const int *targets; /* (R) */
    int R, V, need_grad, per;
    double *row_loss;   /* (R) */
} ce_job;

static void ce_task(void *arg, int task) {
    const ce_job *j = arg;
    const int r0 = task * j->per, r1 = r0 + j->per < j->R ? r0 + j->per : j->R;
    for (int i = r0; i < r1; i++) {
        float *z = j->c->cls_logits + (size_t)i * j->V;
        const int tgt = j->targets[i];
        const float z_tgt = z[tgt];
        float sum;
        const float mx = rd_exp_sum_shifted(z, j->V, j->need_grad, &sum);
        if (j->need_grad) {
            const float inv = 1.0f / sum;
            for (int v = 0; v < j->V; v++) z[v] *= inv;
            z[tgt] -= 1.0f;
        }
        j->row_loss[i] = (double)mx + log(sum) - (double)z_tgt;
    }
}

/* Cross-entropy over the rows with a target, CLS_ROWS at a time. Fills c->dx (N, d) with
 * ∂(loss sum)/∂xf when need_grad. */
static void classifier_loss(rd_train_ctx *c, const int *targets, int N, int need_grad,
                            double *loss_sum, int *n_targets) {
    const rd_config *cfg = &c->m->file.cfg;
    const rd_matrix *cls = &c->m->file.w.classifier;
    const int d = cfg->dim, V = cfg->vocab_size;
    int n = 0;
    for (int r = 0; r < N; r++)
        if (targets[r] >= 0) c->cls_rows[n++] = r;
    *n_targets = n;
    double total = 0.0, row_loss[CLS_ROWS];
    int row_tgt[CLS_ROWS];
    if (need_grad) memset(c->dx, 0, (size_t)N * d * sizeof(float));
    const int threads = rd_pool_threads(c->pool);
    for (int r0 = 0; r0 < n; r0 += CLS_ROWS) {
        const int R = n - r0 < CLS_ROWS ? n - r0 : CLS_ROWS;
        for (int i = 0; i < R; i++) {
            memcpy(c->cls_x + (size_t)i * d, c->xf + (size_t)c->cls_rows[r0 + i] * d,
                   (size_t)d * sizeof(float));
            row_tgt[i] = targets[c->cls_rows[r0 + i]];
        }
        rd_matmul(c->cls_logits, c->cls_x, cls, R, c->wscratch, c->pool);
        ce_job job = {c, row_tgt, R, V, need_grad, (R + 4 * threads - 1) / (4 * threads), row_loss};
        rd_pool_run(c->pool, ce_task, &job, (R + job.per - 1) / job.per);
        for (int i = 0; i < R; i++) total += row_loss[i];
        if (need_grad) {
            if (c->wgrad) /* dWcls += dzᵀ · x (into the embedding's gradient when tied) */
                rd_matmul_weight_grad(wgrad_of(c, cls->data), c->cls_logits, c->cls_x, R, cls,
                                      c->gscratch, c->pool);
            rd_matmul_backward(c->cls_dx, c->cls_logits, cls, R, 0, c->wscratch, c->pool);
            for (int i = 0; i < R; i++)
                memcpy(c->dx + (size_t)c->cls_rows[r0 + i] * d, c->cls_dx + (size_t)i * d,
                       (size_t)d * sizeof(float));
        }
    }
    *loss_sum = total;
}

static int check_shape(const rd_train_ctx *c, int B, int T, rd_error *err) {
    if (B < 1 || B > c->max_batch || T < 1 || T > c->max_len)
        return rd_error_set(err, "micro-batch %d × %d exceeds the training context %d × %d", B, T,
                            c->max_batch, c->max_len);
    return 0;
}

/* Token ids (N) and, when not NULL, target ids (N) in the vocabulary (targets may be -1). */
static int check_ids(const rd_train_ctx *c, const int *tokens, const int *targets, int N,
                     rd_error *err) {
    const int V = c->m->file.cfg.vocab_size;
    for (int i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return rd_error_set(err, "token id %d at index %d is outside the vocabulary [0, %d)",
                                tokens[i], i, V);
        if (targets && (targets[i] < -1 || targets[i] >= V))
            return rd_error_set(err, "target id %d at index %d is outside the vocabulary",
                                targets[i], i);
    }
    return 0;
}

/* The training forward of tokens (p->B, p->T): each layer's activations into its set (with
 * checkpointing: each layer's input into x_saved, the one set holding the last layer's),
 * the last layer's output into x_final and its final-normed rows into xf. Checkpointing
 * saves the inputs of layers keep_from and above only (backward recomputes no other). */
static void train_forward(rd_train_ctx *c, const rd_layer_pass *p, const int *tokens,
                          int keep_from) {
    const rd_model *m = c->m;
    const int N = p->B * p->T, d = m->file.cfg.dim, L = m->file.cfg.n_layers;
    float *x = c->acts[0].x_in;
    for (int i = 0; i < N; i++)
        rd_matrix_row_f32(&m->file.w.tok_embeddings, tokens[i], x + (size_t)i * d);
    for (int l = 0; l < L; l++) {
        rd_layer_view *a = &c->acts[c->checkpointing ? 0 : l];
        if (c->checkpointing && l >= keep_from) memcpy(c->x_saved[l], a->x_in, (size_t)N * d * sizeof(float));
        float *out = l + 1 < L ? c->acts[c->checkpointing ? 0 : l + 1].x_in : c->x_final;
        if (c->checkpointing && l + 1 < L) out = c->dx; /* x_in of the one set is still in use */
        layer_forward_train(c, p, l, a, out, l + 1 < L ? NULL : m->file.w.final_norm);
        if (c->checkpointing && l + 1 < L) memcpy(a->x_in, out, (size_t)N * d * sizeof(float));
    }
}

int rd_train_logits(rd_train_ctx *c, const rd_edits_view *edits, const int *tokens, int B, int T,
                    float *logits, rd_error *err) {
    if (check_shape(c, B, T, err) || check_ids(c, tokens, NULL, B * T, err) ||
        method_buffers(c, edits, err))
        return -1;
    const rd_layer_pass p = train_layer_pass(c, edits, B, T);
    train_forward(c, &p, tokens, c->m->file.cfg.n_layers);
    rd_matmul(logits, c->xf, &c->m->file.w.classifier, B * T, c->wscratch, c->pool);
    return 0;
}

int rd_train_pass(rd_train_ctx *c, const rd_edits_view *edits, const rd_edits_grad *grads,
                  float *weight_grad, const int *tokens, const int *targets, int B, int T,
                  double *loss_sum, int *n_targets, rd_error *err) {
    const rd_model *m = c->m;
    const rd_config *cfg = &m->file.cfg;
    if (check_shape(c, B, T, err)) return -1;
    const int N = B * T, d = cfg->dim, L = cfg->n_layers;
    if (weight_grad && !m->params)
        return rd_error_set(err, "weight gradients need a trainable model (rd_model_make_trainable)");
    if (weight_grad && !c->gscratch && rd_model_compute(m) == RD_COMPUTE_BF16 &&
        !(c->gscratch = ctx_alloc(c, weight_grad_scratch_floats(c))))
        return rd_error_set(err, "out of memory for the bf16 weight gradients");
    c->wgrad = weight_grad;
    if (check_ids(c, tokens, targets, N, err) || method_buffers(c, edits, err)) return -1;
    const rd_layer_pass p = train_layer_pass(c, edits, B, T);
    int bottom;
    const int floor = backward_floor(c, grads, &bottom);
    train_forward(c, &p, tokens, floor);
    const int need_grad = grads != NULL || weight_grad != NULL;
    classifier_loss(c, targets, N, need_grad, loss_sum, n_targets);
    if (!need_grad || *n_targets == 0) return 0;
    /* backward: ∂/∂x_final through the final norm, then the layers in reverse */
    memset(c->dx_mid, 0, (size_t)N * d * sizeof(float));
    rd_rmsnorm_backward(c->dx_mid, c->wgrad ? wgrad_of(c, m->file.w.final_norm) : NULL, c->dx,
                        c->x_final, m->file.w.final_norm, N, d, cfg->norm_eps);
    memcpy(c->dx, c->dx_mid, (size_t)N * d * sizeof(float));
    /* no backward below the lowest layer with a gradient wanted */
    for (int l = L - 1; l >= floor; l--) {
        rd_layer_view *a = &c->acts[c->checkpointing ? 0 : l];
        if (c->checkpointing) { /* recompute layer l from its saved input */
            memcpy(a->x_in, c->x_saved[l], (size_t)N * d * sizeof(float));
            layer_forward_train(c, &p, l, a, c->dh, NULL);
        }
        layer_backward(c, l, a, edits, grads, B, T, l == floor ? bottom : BOTTOM_NONE);
    }
    if (c->wgrad) { /* embedding rows: dE[token] += ∂/∂(layer-0 input) */
        float *dE = wgrad_of(c, m->file.w.tok_embeddings.data);
        for (int i = 0; i < N; i++) {
            float *row = dE + (size_t)tokens[i] * d;
            const float *g = c->dx + (size_t)i * d;
            for (int j = 0; j < d; j++) row[j] += g[j];
        }
    }
    return 0;
}
