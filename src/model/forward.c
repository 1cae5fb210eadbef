/* The forward pass: batched prefill over (B, T) tokens and single-token decode, both over
 * a KV cache, with RED edits applied to sub-layer outputs before their residual adds.
 *
 * Long inputs run in chunks of at most `chunk` positions per sequence, so scratch memory
 * is bounded by max_batch · chunk rows whatever the context length. */
#include "redit/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "redit/kernels.h"
#include "redit/pool.h"

#define CHUNK_POSITIONS 256

struct rd_ctx {
    const rd_model *m;
    int max_batch, max_seq, chunk, pos;
    float *key_cache;   /* (n_layers, max_batch, max_seq, kv_dim) */
    float *value_cache; /* (n_layers, max_batch, max_seq, kv_dim) */
    /* scratch, rows = max_batch · chunk */
    float *x;       /* (rows, dim) residual stream */
    float *xb;      /* (rows, dim) normed input / sub-layer output */
    float *xb2;     /* (rows, dim) attention output before o_proj */
    float *q;       /* (rows, dim) */
    float *k, *v;   /* (rows, kv_dim) */
    float *hb, *hb2; /* (rows, hidden_dim) */
    float *att;     /* (chunk, max_seq) attention probabilities of one head */
    float *last;    /* (max_batch, dim) final hidden state of each sequence's last position */
    float *wscratch; /* widened weight panels for non-f32 matrices */
    rd_pool *pool;   /* the process's pool (borrowed): threads for the matrix-vector path */
    size_t bytes;
};

/* Allocates n floats, adding to *total; NULL on failure. */
static float *alloc_floats(size_t n, size_t *total) {
    size_t bytes = (n ? n : 1) * sizeof(float);
    *total += bytes;
    return calloc(1, bytes);
}

rd_ctx *rd_ctx_new(const rd_model *m, int max_batch, int max_seq, rd_error *err) {
    const rd_config *c = &m->file.cfg;
    if (max_batch < 1 || max_batch > 4096) {
        rd_error_set(err, "batch size %d is out of range [1, 4096]", max_batch);
        return NULL;
    }
    if (max_seq < 1) {
        rd_error_set(err, "context length %d must be at least 1", max_seq);
        return NULL;
    }
    if (max_seq > c->seq_len) max_seq = c->seq_len;
    {
        const size_t kv = (size_t)rd_config_kv_dim(c), L = (size_t)c->n_layers;
        const size_t rows = (size_t)max_batch * (size_t)(max_seq < CHUNK_POSITIONS ? max_seq : CHUNK_POSITIONS);
        const size_t need = sizeof(float) * (2 * L * (size_t)max_batch * (size_t)max_seq * kv +
                                             rows * (5 * (size_t)c->dim + 2 * kv + 2 * (size_t)c->hidden_dim));
        char what[128];
        snprintf(what, sizeof what, "a KV cache and scratch for %d × %d positions", max_batch, max_seq);
        if (rd_memory_check(need, what, err)) return NULL;
    }
    rd_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        rd_error_set(err, "out of memory");
        return NULL;
    }
    x->m = m;
    x->max_batch = max_batch;
    x->max_seq = max_seq;
    x->chunk = max_seq < CHUNK_POSITIONS ? max_seq : CHUNK_POSITIONS;
    const size_t kv = (size_t)rd_config_kv_dim(c);
    const size_t cache = (size_t)c->n_layers * (size_t)max_batch * (size_t)max_seq * kv;
    const size_t rows = (size_t)max_batch * (size_t)x->chunk;
    const size_t d = (size_t)c->dim, h = (size_t)c->hidden_dim;
    size_t *t = &x->bytes;
    x->key_cache = alloc_floats(cache, t);
    x->value_cache = alloc_floats(cache, t);
    x->x = alloc_floats(rows * d, t);
    x->xb = alloc_floats(rows * d, t);
    x->xb2 = alloc_floats(rows * d, t);
    x->q = alloc_floats(rows * d, t);
    x->k = alloc_floats(rows * kv, t);
    x->v = alloc_floats(rows * kv, t);
    x->hb = alloc_floats(rows * h, t);
    x->hb2 = alloc_floats(rows * h, t);
    x->att = alloc_floats((size_t)x->chunk * (size_t)max_seq, t);
    x->last = alloc_floats((size_t)max_batch * d, t);
    if (!(x->pool = rd_pool_shared(err))) {
        rd_ctx_free(x);
        return NULL;
    }
    /* always room for the bf16 GEMM too: the model's compute mode may change later */
    size_t ws = rd_model_matmul_scratch_floats(m, (int)rows), gs = rd_matmul_gemm_scratch_floats(x->pool);
    x->wscratch = alloc_floats(ws > gs ? ws : gs, t);
    if (!x->key_cache || !x->value_cache || !x->x || !x->xb || !x->xb2 || !x->q || !x->k ||
        !x->v || !x->hb || !x->hb2 || !x->att || !x->last || !x->wscratch) {
        rd_error_set(err, "out of memory allocating %.1f MB for the KV cache and scratch "
                          "(batch %d, context %d)",
                     (double)x->bytes / 1e6, max_batch, max_seq);
        rd_ctx_free(x);
        return NULL;
    }
    return x;
}

void rd_ctx_free(rd_ctx *c) {
    if (!c) return;
    float *bufs[] = {c->key_cache, c->value_cache, c->x, c->xb, c->xb2, c->q, c->k,
                     c->v, c->hb, c->hb2, c->att, c->last, c->wscratch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(c);
}

void rd_ctx_reset(rd_ctx *c) { c->pos = 0; }
int rd_ctx_pos(const rd_ctx *c) { return c->pos; }
int rd_ctx_max_seq(const rd_ctx *c) { return c->max_seq; }
int rd_ctx_max_batch(const rd_ctx *c) { return c->max_batch; }
const rd_model *rd_ctx_model(const rd_ctx *c) { return c->m; }
size_t rd_ctx_bytes(const rd_ctx *c) { return c->bytes; }

/* h (n, d) ← s' ⊙ h + b' with s' = 1 + α(s − 1), b' = α·b; α = 1 uses s and b as they are
 * (so training and inference agree bit for bit), α = 0 leaves h untouched. */
static void apply_edit(float *h, int n, int d, const rd_site_edit *e, float alpha) {
    if (alpha == 0.0f || (!e->scale && !e->bias)) return;
    for (int i = 0; i < n; i++) {
        float *row = h + (size_t)i * d;
        if (e->scale) {
            if (alpha == 1.0f)
                for (int j = 0; j < d; j++) row[j] *= e->scale[j];
            else
                for (int j = 0; j < d; j++) row[j] *= 1.0f + alpha * (e->scale[j] - 1.0f);
        }
        if (e->bias) {
            if (alpha == 1.0f)
                for (int j = 0; j < d; j++) row[j] += e->bias[j];
            else
                for (int j = 0; j < d; j++) row[j] += alpha * e->bias[j];
        }
    }
}

/* Row-parallel steps between the matmuls. A job covers rows [0, n) of the chunk; each
 * task takes `per` rows. Small chunks (decode) run on the caller alone. */
typedef struct rows_job {
    rd_ctx *c;
    int n, per;
    int l, T;                  /* layer and positions per sequence (rope step) */
    const float *bias;         /* residual step: the sub-layer's output bias (dim), or NULL */
    const rd_site_edit *edit;  /* residual step: the site's edit, or NULL */
    float alpha;
    const float *norm;         /* residual step: the next sub-layer's norm weights */
} rows_job;

static void run_rows(rows_job *j, rd_task_fn fn) {
    const int threads = rd_pool_threads(j->c->pool);
    j->per = j->n < 16 ? j->n : (j->n + 4 * threads - 1) / (4 * threads);
    rd_pool_run(j->n < 16 ? NULL : j->c->pool, fn, j, (j->n + j->per - 1) / j->per);
}

static void task_range(const rows_job *j, int task, int *r0, int *r1) {
    *r0 = task * j->per;
    *r1 = *r0 + j->per < j->n ? *r0 + j->per : j->n;
}

/* x += edit(h + bias) (h = c->xb, the sub-layer output; bias only in merged models), then
 * xb = rmsnorm(x) with the next sub-layer's weights. */
static void residual_task(void *arg, int task) {
    const rows_job *j = arg;
    rd_ctx *c = j->c;
    const rd_config *cfg = &c->m->file.cfg;
    const int d = cfg->dim;
    int r0, r1;
    task_range(j, task, &r0, &r1);
    float *h = c->xb + (size_t)r0 * d, *x = c->x + (size_t)r0 * d;
    if (j->bias)
        for (int i = 0; i < r1 - r0; i++)
            for (int k = 0; k < d; k++) h[(size_t)i * d + k] += j->bias[k];
    if (j->edit) apply_edit(h, r1 - r0, d, j->edit, j->alpha);
    for (size_t i = 0; i < (size_t)(r1 - r0) * d; i++) x[i] += h[i];
    rd_rmsnorm(h, x, j->norm, r1 - r0, d, cfg->norm_eps);
}

/* RoPE on q and k of each row, and k, v into the cache at the row's position. */
static void rope_task(void *arg, int task) {
    const rows_job *j = arg;
    rd_ctx *c = j->c;
    const rd_config *cfg = &c->m->file.cfg;
    const int d = cfg->dim, kv = rd_config_kv_dim(cfg), hs = rd_config_head_dim(cfg);
    const size_t seq_stride = (size_t)c->max_seq * kv;
    float *kc = c->key_cache + (size_t)j->l * c->max_batch * seq_stride;
    float *vc = c->value_cache + (size_t)j->l * c->max_batch * seq_stride;
    int r0, r1;
    task_range(j, task, &r0, &r1);
    for (int row = r0; row < r1; row++) {
        const int b = row / j->T, pos = c->pos + row % j->T;
        rd_rope(c->q + (size_t)row * d, cfg->n_heads, hs, pos, cfg->rope_theta, cfg->rope_layout);
        rd_rope(c->k + (size_t)row * kv, cfg->n_kv_heads, hs, pos, cfg->rope_theta,
                cfg->rope_layout);
        memcpy(kc + b * seq_stride + (size_t)pos * kv, c->k + (size_t)row * kv, kv * sizeof(float));
        memcpy(vc + b * seq_stride + (size_t)pos * kv, c->v + (size_t)row * kv, kv * sizeof(float));
    }
}

static void swiglu_task(void *arg, int task) {
    const rows_job *j = arg;
    const size_t h = (size_t)j->c->m->file.cfg.hidden_dim;
    int r0, r1;
    task_range(j, task, &r0, &r1);
    rd_swiglu(j->c->hb + (size_t)r0 * h, j->c->hb2 + (size_t)r0 * h, (size_t)(r1 - r0) * h);
}

/* The norm that follows layer l's FFN residual: the next layer's attention norm, or the
 * final norm after the last layer (then applied to xb only; logits read it from there). */
static const float *next_norm(const rd_ctx *c, int l) {
    const rd_weights *w = &c->m->file.w;
    return l + 1 < c->m->file.cfg.n_layers ? w->layers[l + 1].attn_norm : w->final_norm;
}

/* One transformer block over the chunk's rows = B·T (sequence-major), new positions
 * pos..pos+T-1. On entry c->xb holds rmsnorm(x) with this layer's attention norm; on exit
 * c->x is updated and c->xb holds rmsnorm(x) with the next norm (next_norm). */
static void layer_forward(rd_ctx *c, int l, const rd_edits_view *edits, int B, int T) {
    const rd_config *cfg = &c->m->file.cfg;
    const rd_layer_weights *W = &c->m->file.w.layers[l];
    const int d = cfg->dim, kv = rd_config_kv_dim(cfg), hs = rd_config_head_dim(cfg);
    const int n = B * T;
    rows_job rows = {.c = c, .n = n, .l = l, .T = T};

    /* attention sub-layer */
    float *const qkv_out[] = {c->q, c->k, c->v};
    const rd_matrix *const qkv[] = {&W->wq, &W->wk, &W->wv};
    rd_matmul_many(qkv_out, c->xb, qkv, 3, n, c->wscratch, c->pool);
    run_rows(&rows, rope_task);
    const size_t seq_stride = (size_t)c->max_seq * kv;
    float *kc = c->key_cache + (size_t)l * c->max_batch * seq_stride;
    float *vc = c->value_cache + (size_t)l * c->max_batch * seq_stride;
    for (int b = 0; b < B; b++)
        rd_attention(c->xb2 + (size_t)b * T * d, c->q + (size_t)b * T * d, kc + b * seq_stride,
                     vc + b * seq_stride, T, c->pos, cfg->n_heads, cfg->n_kv_heads, hs,
                     (size_t)kv, c->att);
    rd_matmul(c->xb, c->xb2, &W->wo, n, c->wscratch, c->pool);
    rows.bias = W->wo_bias;
    rows.edit = edits && edits->attn ? &edits->attn[l] : NULL;
    rows.alpha = edits ? edits->strength : 0.0f;
    rows.norm = W->ffn_norm;
    run_rows(&rows, residual_task);

    /* FFN sub-layer (SwiGLU) */
    float *const gate_up_out[] = {c->hb, c->hb2};
    const rd_matrix *const gate_up[] = {&W->w1, &W->w3};
    rd_matmul_many(gate_up_out, c->xb, gate_up, 2, n, c->wscratch, c->pool);
    run_rows(&rows, swiglu_task);
    rd_matmul(c->xb, c->hb, &W->w2, n, c->wscratch, c->pool);
    rows.bias = W->w2_bias;
    rows.edit = edits && edits->ffn ? &edits->ffn[l] : NULL;
    rows.norm = next_norm(c, l);
    run_rows(&rows, residual_task);
}

/* Runs one chunk: tokens (B, T) with row stride `stride` (the caller's full T). */
static void chunk_forward(rd_ctx *c, const rd_edits_view *edits, const int *tokens,
                          size_t stride, int B, int T) {
    const rd_model *m = c->m;
    const int d = m->file.cfg.dim;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            rd_matrix_row_f32(&m->file.w.tok_embeddings, tokens[(size_t)b * stride + t],
                              c->x + ((size_t)b * T + t) * d);
    rd_rmsnorm(c->xb, c->x, m->file.w.layers[0].attn_norm, B * T, d, m->file.cfg.norm_eps);
    for (int l = 0; l < m->file.cfg.n_layers; l++) layer_forward(c, l, edits, B, T);
    /* c->xb now holds the final-normed hidden states (B·T, dim) */
}

int rd_forward(rd_ctx *c, const rd_edits_view *edits, const int *tokens, int B, int T,
               rd_logits_mode mode, float *logits, rd_error *err) {
    const rd_model *m = c->m;
    const rd_config *cfg = &m->file.cfg;
    if (B < 1 || B > c->max_batch)
        return rd_error_set(err, "batch of %d sequences, the context holds 1 to %d", B,
                            c->max_batch);
    if (T < 1 || T > c->max_seq - c->pos)
        return rd_error_set(err, "%d new positions after %d do not fit the context of %d", T,
                            c->pos, c->max_seq);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= cfg->vocab_size)
            return rd_error_set(err, "token id %d at index %zu is outside the vocabulary [0, %d)",
                                tokens[i], i, cfg->vocab_size);
    const int d = cfg->dim, V = cfg->vocab_size;
    const rd_matrix *cls = &m->file.w.classifier;
    for (int t0 = 0; t0 < T; t0 += c->chunk) {
        const int tc = T - t0 < c->chunk ? T - t0 : c->chunk;
        chunk_forward(c, edits, tokens + t0, (size_t)T, B, tc);
        if (mode == RD_LOGITS_ALL) {
            if (tc == T) {
                rd_matmul(logits, c->xb, cls, B * T, c->wscratch, c->pool);
            } else {
                for (int b = 0; b < B; b++)
                    rd_matmul(logits + ((size_t)b * T + t0) * V, c->xb + (size_t)b * tc * d, cls,
                              tc, c->wscratch, c->pool);
            }
        } else if (mode == RD_LOGITS_LAST && t0 + tc == T) {
            for (int b = 0; b < B; b++)
                memcpy(c->last + (size_t)b * d, c->xb + ((size_t)b * tc + tc - 1) * d,
                       (size_t)d * sizeof(float));
            rd_matmul(logits, c->last, cls, B, c->wscratch, c->pool);
        }
        c->pos += tc;
    }
    return 0;
}
