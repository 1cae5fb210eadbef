/* One transformer layer forward for inference and training (see layer.h for the steps,
 * the buffer views and the hook points). Row-wise steps run on the pass's pool in tasks of
 * whole rows; every row's arithmetic is the same whatever the split, so results do not
 * depend on the thread count. */
#include "layer.h"

#include <string.h>

#include "core/pool.h"
#include "redit/edits.h"

/* ---- the site edit ---------------------------------------------------------------------- */

void rd_site_apply(float *out, const float *x, const float *h, int n, int d,
                   const rd_site_edit *e, float alpha, const rd_dropout *mask, uint64_t first) {
    const float *s = e && alpha != 0.0f ? e->scale : NULL;
    const float *b = e && alpha != 0.0f ? e->bias : NULL;
    for (size_t i = 0; i < (size_t)n; i++) {
        const float *hi = h + i * d, *xi = x + i * d;
        float *oi = out + i * d;
        for (int j = 0; j < d; j++) {
            float y = hi[j];
            if (s) y *= rd_edit_scale_at(s[j], alpha);
            if (b) y += rd_edit_bias_at(b[j], alpha);
            if (mask) y *= rd_dropout_factor(mask, first + i * (uint64_t)d + (uint64_t)j);
            oi[j] = xi[j] + y;
        }
    }
}

rd_dropout rd_layer_dropout_mask(const rd_dropout *base, int l, int sub, int N, int d) {
    return rd_dropout_at(base, ((uint64_t)l * 2 + (uint64_t)sub) * (uint64_t)N * (uint64_t)d);
}

/* Sequence b's edit view, position of its first new row and cache slot in pass p. */
static const rd_edits_view *seq_edits(const rd_layer_pass *p, int b) {
    return p->seqs ? p->seqs[b].edits : p->edits;
}
static int seq_pos(const rd_layer_pass *p, int b) {
    return p->seqs ? p->seqs[b].pos + p->pos0 : p->pos0;
}
static size_t seq_slot(const rd_layer_pass *p, int b) {
    return (size_t)(p->seqs ? p->seqs[b].slot : b);
}

const rd_site_edit *rd_layer_site_edit(const rd_edits_view *edits, int l, int sub) {
    if (!edits) return NULL;
    const rd_site_edit *arr = sub == 0 ? edits->attn : edits->ffn;
    return arr ? &arr[l] : NULL;
}

/* ---- projections: the hook for adapters on a projection's output (LoRA, IA3's k and v) -- */

rd_dropout rd_layer_lora_mask(const rd_dropout *base, const rd_config *cfg, int l, int proj,
                              int N) {
    const uint64_t wide = (uint64_t)(cfg->dim > cfg->hidden_dim ? cfg->dim : cfg->hidden_dim);
    return rd_dropout_at(base, ((uint64_t)l * RD_N_PROJ + (uint64_t)proj) * (uint64_t)N * wide);
}

size_t rd_layer_lora_scratch_floats(const rd_config *cfg, int N, int r, int dropout) {
    const size_t wide = (size_t)(cfg->dim > cfg->hidden_dim ? cfg->dim : cfg->hidden_dim);
    return (size_t)N * (size_t)r + (size_t)r * wide + (dropout ? (size_t)N * wide : 0);
}

/* ---- LoRA's small products on the pool (no OpenBLAS call: its threads would wake and spin
 * beside the pool's). Each output element's arithmetic is fixed whatever the split. ---- */

typedef struct lora_job {
    float *y;
    const float *x, *w;
    const rd_dropout *mask;
    int n, k, m, per;
    float c;
    int accumulate;
} lora_job;

/* Rows [r0, r1) of task `task` of j->per rows each. */
static void lora_rows(const lora_job *j, int task, int *r0, int *r1) {
    *r0 = task * j->per;
    *r1 = *r0 + j->per < j->n ? *r0 + j->per : j->n;
}

static void lora_run(lora_job *j, rd_task_fn fn, int items, struct rd_pool *pool) {
    const int threads = rd_pool_threads(pool);
    j->per = (items + 4 * threads - 1) / (4 * threads);
    if (j->per < 1) j->per = 1;
    rd_pool_run(items < 16 ? NULL : pool, fn, j, (items + j->per - 1) / j->per);
}

/* Σ_l a[l]·b[l] over n in 16 lanes, then the lanes in order (vectorises without reassociation
 * flags). */
static float dot16(const float *restrict a, const float *restrict b, int n) {
    float acc[16] = {0};
    int l = 0;
    for (; l + 16 <= n; l += 16)
        for (int v = 0; v < 16; v++) acc[v] += a[l + v] * b[l + v];
    float s = 0.0f;
    for (int v = 0; v < 16; v++) s += acc[v];
    for (; l < n; l++) s += a[l] * b[l];
    return s;
}

static void dot_task(void *arg, int task) {
    const lora_job *j = arg;
    int r0, r1;
    lora_rows(j, task, &r0, &r1);
    for (int i = r0; i < r1; i++) {
        const float *xi = j->x + (size_t)i * j->k;
        float *yi = j->y + (size_t)i * j->m;
        for (int o = 0; o < j->m; o++) {
            const float v = j->c * dot16(xi, j->w + (size_t)o * j->k, j->k);
            yi[o] = j->accumulate ? yi[o] + v : v;
        }
    }
}

void rd_lora_dot_rows(float *y, const float *x, const float *w, int n, int k, int m, float c,
                      int accumulate, struct rd_pool *pool) {
    lora_job j = {.y = y, .x = x, .w = w, .n = n, .k = k, .m = m, .c = c, .accumulate = accumulate};
    lora_run(&j, dot_task, n, pool);
}

static void axpy_task(void *arg, int task) {
    const lora_job *j = arg;
    int r0, r1;
    lora_rows(j, task, &r0, &r1);
    for (int i = r0; i < r1; i++) {
        const float *xi = j->x + (size_t)i * j->k;
        float *restrict yi = j->y + (size_t)i * j->m;
        const uint64_t first = (uint64_t)i * (uint64_t)j->m;
        if (j->mask) { /* y += mask ⊙ (c·x·w): the row's sum first, then masked */
            for (int o = 0; o < j->m; o++) {
                float v = 0.0f;
                for (int kk = 0; kk < j->k; kk++) v += xi[kk] * j->w[(size_t)kk * j->m + o];
                yi[o] += j->c * v * rd_dropout_factor(j->mask, first + (uint64_t)o);
            }
            continue;
        }
        for (int kk = 0; kk < j->k; kk++) {
            const float a = j->c * xi[kk];
            const float *restrict wk = j->w + (size_t)kk * j->m;
            for (int o = 0; o < j->m; o++) yi[o] += a * wk[o];
        }
    }
}

void rd_lora_axpy_rows(float *y, const float *x, const float *w, int n, int k, int m, float c,
                       const rd_dropout *mask, struct rd_pool *pool) {
    lora_job j = {.y = y, .x = x, .w = w, .mask = mask && mask->threshold ? mask : NULL, .n = n,
                  .k = k, .m = m, .c = c};
    lora_run(&j, axpy_task, n, pool);
}

/* Column blocks of 16 of q, 16 columns of p at a time: acc (16, 16) summed over every row. */
#define OUTER_COLS 16
#define OUTER_ROWS 16
static void outer_task(void *arg, int task) {
    const lora_job *j = arg; /* y: G; x: p (n, k); w: q (n, m); accumulate: G transposed */
    const int o0 = task * OUTER_COLS, o1 = o0 + OUTER_COLS < j->m ? o0 + OUTER_COLS : j->m;
    for (int k0 = 0; k0 < j->k; k0 += OUTER_ROWS) {
        const int k1 = k0 + OUTER_ROWS < j->k ? k0 + OUTER_ROWS : j->k;
        float acc[OUTER_ROWS][OUTER_COLS] = {{0}};
        for (int i = 0; i < j->n; i++) {
            const float *pi = j->x + (size_t)i * j->k;
            const float *restrict qi = j->w + (size_t)i * j->m + o0;
            for (int kk = k0; kk < k1; kk++) {
                const float a = pi[kk];
                float *restrict row = acc[kk - k0];
                for (int o = 0; o < o1 - o0; o++) row[o] += a * qi[o];
            }
        }
        for (int kk = k0; kk < k1; kk++)
            for (int o = o0; o < o1; o++) {
                float *g = j->accumulate ? j->y + (size_t)o * j->k + kk : j->y + (size_t)kk * j->m + o;
                *g += j->c * acc[kk - k0][o - o0];
            }
    }
}

void rd_lora_outer_sum(float *G, const float *p, const float *q, int n, int k, int m, float c,
                       int transposed, struct rd_pool *pool) {
    lora_job j = {.y = G, .x = p, .w = q, .n = n, .k = k, .m = m, .c = c,
                  .accumulate = transposed};
    rd_pool_run(pool, outer_task, &j, (m + OUTER_COLS - 1) / OUTER_COLS);
}

void rd_lora_transpose(float *dst, const float *src, int rows, int cols) {
    for (int i = 0; i < rows; i++)
        for (int o = 0; o < cols; o++) dst[(size_t)o * rows + i] = src[(size_t)i * cols + o];
}

typedef struct lora_drop_job {
    float *xd;
    const float *x;
    const rd_dropout *mask;
    int n, in, per;
} lora_drop_job;

static void lora_drop_task(void *arg, int task) {
    const lora_drop_job *j = arg;
    const int r0 = task * j->per, r1 = r0 + j->per < j->n ? r0 + j->per : j->n;
    for (size_t k = (size_t)r0 * j->in; k < (size_t)r1 * j->in; k++)
        j->xd[k] = j->x[k] * rd_dropout_factor(j->mask, k);
}

void rd_layer_lora_dropout(float *xd, const float *x, int n, int in, const rd_dropout *mask,
                           struct rd_pool *pool) {
    const int threads = rd_pool_threads(pool);
    lora_drop_job j = {xd, x, mask, n, in, (n + 4 * threads - 1) / (4 * threads)};
    if (j.per < 1) j.per = 1;
    rd_pool_run(pool, lora_drop_task, &j, (n + j.per - 1) / j.per);
}

/* out (N, rows of W) += α·(lora_alpha/r)·B·A·x̃ for layer l's projection id when ed holds
 * LoRA factors for it (x̃: x, or its dropout in training): T = x̃·Aᵀ (N, r), then
 * out += c·T·Bᵀ through Bᵀ (r, rows), all in the pass's LoRA scratch. */
static void lora_add_rows(const rd_layer_pass *p, const rd_edits_view *ed, int l,
                          rd_layer_proj id, float *out, const float *x, int N) {
    if (!ed || !ed->lora || ed->strength == 0.0f) return;
    const float *A = ed->lora[l].a[id], *Bf = ed->lora[l].b[id];
    if (!A || !Bf) return;
    const rd_config *cfg = &p->m->file.cfg;
    const int r = ed->lora_rank;
    const size_t wide = (size_t)(cfg->dim > cfg->hidden_dim ? cfg->dim : cfg->hidden_dim);
    int rows, in;
    rd_proj_shape(cfg, id, &rows, &in);
    float *t = p->lora_scratch, *bt = t + (size_t)N * (size_t)r, *xd = bt + (size_t)r * wide;
    const float *xin = x;
    if (p->lora_dropout && p->lora_dropout->threshold) {
        const rd_dropout mask = rd_layer_lora_mask(p->lora_dropout, cfg, l, id, N);
        rd_layer_lora_dropout(xd, x, N, in, &mask, p->pool);
        xin = xd;
    }
    rd_lora_dot_rows(t, xin, A, N, in, r, 1.0f, 0, p->pool);
    rd_lora_transpose(bt, Bf, rows, r);
    rd_lora_axpy_rows(out, t, bt, N, r, rows, ed->strength * ed->lora_scale, NULL, p->pool);
}

/* LoRA's product on every row of the pass, each sequence block with its own view. */
static void lora_add(const rd_layer_pass *p, int l, rd_layer_proj id, float *out,
                     const float *x) {
    if (!p->seqs) {
        lora_add_rows(p, p->edits, l, id, out, x, p->B * p->T);
        return;
    }
    int rows, in;
    rd_proj_shape(&p->m->file.cfg, id, &rows, &in);
    for (int b = 0; b < p->B; b++)
        lora_add_rows(p, p->seqs[b].edits, l, id, out + (size_t)b * p->T * rows,
                      x + (size_t)b * p->T * in, p->T);
}

static const rd_matrix *proj_matrix(const rd_layer_weights *W, rd_layer_proj id) {
    switch (id) {
    case RD_PROJ_Q: return &W->wq;
    case RD_PROJ_K: return &W->wk;
    case RD_PROJ_V: return &W->wv;
    case RD_PROJ_O: return &W->wo;
    case RD_PROJ_GATE: return &W->w1;
    case RD_PROJ_UP: return &W->w3;
    case RD_PROJ_DOWN: return &W->w2;
    }
    return NULL;
}

/* outs[i] (N, rows of its matrix) = x · Wᵀ for the count projections ids of layer l, in one
 * parallel loop where the products are matrix-vector (decode). */
static void project(const rd_layer_pass *p, int l, const rd_layer_proj *ids, float *const *outs,
                    int count, const float *x) {
    const rd_layer_weights *W = &p->m->file.w.layers[l];
    const rd_matrix *Ws[RD_MATMUL_MANY_MAX] = {0};
    for (int i = 0; i < count; i++) Ws[i] = proj_matrix(W, ids[i]);
    if (p->rows_matvec)
        rd_matmul_many_rows(outs, x, Ws, count, p->B * p->T, p->wscratch, p->pool);
    else
        rd_matmul_many(outs, x, Ws, count, p->B * p->T, p->wscratch, p->pool);
    for (int i = 0; i < count; i++) lora_add(p, l, ids[i], outs[i], x);
}

/* IA3's edit of layer l in the view ed, or NULL (none, or strength 0). */
static const rd_ia3_edit *ia3_of(const rd_edits_view *ed, int l) {
    return ed && ed->ia3 && ed->strength != 0.0f ? &ed->ia3[l] : NULL;
}

/* row (n) *= s' = rd_edit_scale_at(s, α); with raw set, the row is first copied there. */
static void ia3_scale(float *row, float *raw, const float *s, int n, float alpha) {
    if (!s) return;
    if (raw) memcpy(raw, row, (size_t)n * sizeof(float));
    for (int j = 0; j < n; j++) row[j] *= rd_edit_scale_at(s[j], alpha);
}

/* ---- row-wise steps --------------------------------------------------------------------- */

typedef struct rows_job {
    const rd_layer_pass *p;
    const rd_layer_view *v;
    int l, n, per;
    /* residual step of sub-layer `sub` (0 attention, 1 FFN) */
    int sub;
    const float *x, *bias, *norm;
    float *h, *out, *normed;
    const rd_dropout *mask;
} rows_job;

/* Runs fn over rows [0, n) in tasks of `per` rows; fewer than 16 rows (decode) run on the
 * caller alone. */
static void run_rows(rows_job *j, rd_task_fn fn) {
    const int threads = rd_pool_threads(j->p->pool);
    j->per = j->n < 16 ? j->n : (j->n + 4 * threads - 1) / (4 * threads);
    rd_pool_run(j->n < 16 ? NULL : j->p->pool, fn, j, (j->n + j->per - 1) / j->per);
}

static void task_range(const rows_job *j, int task, int *r0, int *r1) {
    *r0 = task * j->per;
    *r1 = *r0 + j->per < j->n ? *r0 + j->per : j->n;
}

static void norm_task(void *arg, int task) {
    const rows_job *j = arg;
    const rd_config *cfg = &j->p->m->file.cfg;
    const size_t d = (size_t)cfg->dim;
    int r0, r1;
    task_range(j, task, &r0, &r1);
    rd_rmsnorm(j->out + r0 * d, j->x + r0 * d, j->norm, r1 - r0, (int)d, cfg->norm_eps);
}

/* IA3's scales of k and v (the raw rows kept when the view asks), then RoPE on q and k of
 * each row at position pos0 + t; CACHE: k, v into the cache there. */
static void rope_task(void *arg, int task) {
    const rows_job *j = arg;
    const rd_layer_pass *p = j->p;
    const rd_layer_view *v = j->v;
    const rd_config *cfg = &p->m->file.cfg;
    const int d = cfg->dim, kv = rd_config_kv_dim(cfg), hs = rd_config_head_dim(cfg);
    int r0, r1;
    task_range(j, task, &r0, &r1);
    for (int row = r0; row < r1; row++) {
        const int b = row / p->T, pos = seq_pos(p, b) + row % p->T;
        const rd_edits_view *ed = seq_edits(p, b);
        const rd_ia3_edit *ia = ia3_of(ed, j->l);
        float *k = v->k + (size_t)row * kv;
        if (ia) {
            const float alpha = ed->strength;
            ia3_scale(k, v->k_raw ? v->k_raw + (size_t)row * kv : NULL, ia->k, kv, alpha);
            ia3_scale(v->v + (size_t)row * kv, v->v_raw ? v->v_raw + (size_t)row * kv : NULL,
                      ia->v, kv, alpha);
        }
        rd_rope(v->q + (size_t)row * d, cfg->n_heads, hs, pos, cfg->rope_theta, cfg->rope_layout);
        rd_rope(k, cfg->n_kv_heads, hs, pos, cfg->rope_theta, cfg->rope_layout);
        if (p->mode == RD_ATTN_CACHE) {
            const size_t at = seq_slot(p, b) * p->seq_stride + (size_t)pos * kv;
            memcpy(v->key_cache + at, k, (size_t)kv * sizeof(float));
            memcpy(v->value_cache + at, v->v + (size_t)row * kv, (size_t)kv * sizeof(float));
        }
    }
}

/* act = silu(g)·u (in place when act aliases g), times IA3's FFN scale when edited. */
static void swiglu_task(void *arg, int task) {
    const rows_job *j = arg;
    const size_t hd = (size_t)j->p->m->file.cfg.hidden_dim;
    int r0, r1;
    task_range(j, task, &r0, &r1);
    float *act = j->v->act + r0 * hd;
    if (act != j->v->g) memcpy(act, j->v->g + r0 * hd, (size_t)(r1 - r0) * hd * sizeof(float));
    rd_swiglu(act, j->v->u + r0 * hd, (size_t)(r1 - r0) * hd);
    for (int r = r0; r < r1; r++, act += hd) {
        const rd_edits_view *ed = seq_edits(j->p, r / j->p->T);
        const rd_ia3_edit *ia = ia3_of(ed, j->l);
        if (ia) ia3_scale(act, NULL, ia->ffn, (int)hd, ed->strength);
    }
}

/* h += the sub-layer's output bias (merged models; frozen, so it has no gradient and leaves
 * the activation gradients as they are), out = rd_site_apply(x, h), then
 * normed = rmsnorm(out)·norm when normed is set (normed may alias h: each row of h is used
 * before its normed row is written). With per-sequence views, rd_site_apply runs once per
 * sequence block of the task's rows, with that sequence's edit and strength. */
static void residual_task(void *arg, int task) {
    const rows_job *j = arg;
    const rd_config *cfg = &j->p->m->file.cfg;
    const int d = cfg->dim;
    int r0, r1;
    task_range(j, task, &r0, &r1);
    const size_t o = (size_t)r0 * d;
    float *h = j->h + o;
    if (j->bias)
        for (int i = 0; i < r1 - r0; i++)
            for (int k = 0; k < d; k++) h[(size_t)i * d + k] += j->bias[k];
    if (!j->p->seqs) {
        const rd_edits_view *ed = j->p->edits;
        rd_site_apply(j->out + o, j->x + o, h, r1 - r0, d, rd_layer_site_edit(ed, j->l, j->sub),
                      ed ? ed->strength : 0.0f, j->mask, o);
    } else {
        const int T = j->p->T;
        for (int a = r0; a < r1;) {
            const int b = a / T, e = (b + 1) * T < r1 ? (b + 1) * T : r1;
            const rd_edits_view *ed = j->p->seqs[b].edits;
            const size_t oa = (size_t)a * d;
            rd_site_apply(j->out + oa, j->x + oa, j->h + oa, e - a, d,
                          rd_layer_site_edit(ed, j->l, j->sub), ed ? ed->strength : 0.0f,
                          j->mask, oa);
            a = e;
        }
    }
    if (j->normed) rd_rmsnorm(j->normed + o, j->out + o, j->norm, r1 - r0, d, cfg->norm_eps);
}

/* The residual step of sub-layer sub: out = x + site(h + bias), then the next norm. */
static void residual(rows_job *j, int sub, float *out, const float *x, float *h,
                     const float *bias, float *normed, const float *norm) {
    const rd_layer_pass *p = j->p;
    const int N = p->B * p->T, d = p->m->file.cfg.dim;
    const int dropout = p->dropout && p->dropout->threshold;
    const rd_dropout mask = dropout ? rd_layer_dropout_mask(p->dropout, j->l, sub, N, d)
                                    : (rd_dropout){0};
    j->mask = dropout ? &mask : NULL;
    j->sub = sub;
    j->out = out;
    j->x = x;
    j->h = h;
    j->bias = bias;
    j->normed = normed;
    j->norm = norm;
    run_rows(j, residual_task);
    j->mask = NULL;
}

/* ---- the layer -------------------------------------------------------------------------- */

typedef struct attn_job {
    const rd_layer_pass *p;
    const rd_layer_view *v;
    int l;
} attn_job;

/* Cached attention of sequence `task` (few new rows, no OpenBLAS call: safe on the pool's
 * threads), with its own slice of the attention scratch (max_seq floats per sequence). */
static void attn_task(void *arg, int task) {
    const attn_job *j = arg;
    const rd_layer_pass *p = j->p;
    const rd_config *cfg = &p->m->file.cfg;
    const int d = cfg->dim, kv = rd_config_kv_dim(cfg), T = p->T;
    const size_t at = seq_slot(p, task) * p->seq_stride, max_seq = p->seq_stride / (size_t)kv;
    rd_attention(j->v->o + (size_t)task * T * d, j->v->q + (size_t)task * T * d,
                 j->v->key_cache + at, j->v->value_cache + at, T, seq_pos(p, task),
                 cfg->n_heads, cfg->n_kv_heads, rd_config_head_dim(cfg), (size_t)kv,
                 p->att + (size_t)task * max_seq);
}

void rd_layer_forward(const rd_layer_pass *p, int l, const rd_layer_view *v) {
    const rd_config *cfg = &p->m->file.cfg;
    const rd_layer_weights *W = &p->m->file.w.layers[l];
    const int d = cfg->dim, kv = rd_config_kv_dim(cfg), hs = rd_config_head_dim(cfg);
    const int B = p->B, T = p->T;
    rows_job rows = {.p = p, .v = v, .l = l, .n = B * T};

    /* attention sub-layer */
    if (v->norm_in) {
        rows.out = v->xb;
        rows.x = v->x_in;
        rows.norm = W->attn_norm;
        run_rows(&rows, norm_task);
    }
    static const rd_layer_proj qkv[] = {RD_PROJ_Q, RD_PROJ_K, RD_PROJ_V};
    float *const qkv_out[] = {v->q, v->k, v->v};
    project(p, l, qkv, qkv_out, 3, v->xb);
    run_rows(&rows, rope_task);
    if (p->mode == RD_ATTN_CACHE && T <= RD_MATVEC_MAX_ROWS && B > 1) {
        attn_job aj = {p, v, l};  /* decode of several sequences: one task each */
        rd_pool_run(p->pool, attn_task, &aj, B);
    } else if (p->mode == RD_ATTN_CACHE) {
        for (int b = 0; b < B; b++) {
            const size_t at = seq_slot(p, b) * p->seq_stride;
            rd_attention(v->o + (size_t)b * T * d, v->q + (size_t)b * T * d, v->key_cache + at,
                         v->value_cache + at, T, seq_pos(p, b), cfg->n_heads, cfg->n_kv_heads, hs,
                         (size_t)kv, p->att);
        }
    } else {
        rd_attention_train(v->o, v->probs, v->q, v->k, v->v, B, T, cfg->n_heads,
                           cfg->n_kv_heads, hs, p->att, p->pool);
    }
    static const rd_layer_proj o_proj[] = {RD_PROJ_O};
    project(p, l, o_proj, &v->h_attn, 1, v->o);
    residual(&rows, 0, v->x_mid, v->x_in, v->h_attn, W->wo_bias, v->xb2, W->ffn_norm);

    /* FFN sub-layer (SwiGLU) */
    static const rd_layer_proj gate_up[] = {RD_PROJ_GATE, RD_PROJ_UP};
    float *const gate_up_out[] = {v->g, v->u};
    project(p, l, gate_up, gate_up_out, 2, v->xb2);
    run_rows(&rows, swiglu_task);
    static const rd_layer_proj down[] = {RD_PROJ_DOWN};
    project(p, l, down, &v->h_ffn, 1, v->act);
    residual(&rows, 1, v->x_out, v->x_mid, v->h_ffn, W->w2_bias,
             v->out_norm ? v->x_out_normed : NULL, v->out_norm);
}
