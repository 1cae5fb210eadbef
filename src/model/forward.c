/* The forward pass: batched prefill over (B, T) tokens and single-token decode, both over
 * a KV cache, with RED edits applied to sub-layer outputs before their residual adds. The
 * layer itself is layer.c's, shared with the training pass; this file holds the run state
 * (KV cache, scratch), the chunking and the logits.
 *
 * Long inputs run in chunks of at most `chunk` positions per sequence, so scratch memory
 * is bounded by max_batch · chunk rows whatever the context length (rd_ctx_new_slots: one
 * pass of max(slots, chunk) rows).
 *
 * rd_forward (every sequence at the context's position, in slots 0..B-1, one edit view) and
 * rd_forward_seqs (each sequence at its own slot, position and edit view: batched serving)
 * are one path, forward_run: the layer reads each sequence's slot, position and view from
 * rd_layer_pass.seqs when it is set. */
#include "redit/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/kernels.h"
#include "core/pool.h"

#include "layer.h"

#define CHUNK_POSITIONS 256

struct rd_ctx {
    const rd_model *m;
    int max_batch, max_seq, chunk, pos;
    int max_rows;       /* rows of one pass the scratch holds */
    float *key_cache;   /* (n_layers, max_batch, max_seq, kv_dim) */
    float *value_cache; /* (n_layers, max_batch, max_seq, kv_dim) */
    /* scratch, rows = max_rows (rd_ctx_new: max_batch · chunk) */
    float *x;       /* (rows, dim) residual stream */
    float *xb;      /* (rows, dim) normed input / sub-layer output */
    float *xb2;     /* (rows, dim) attention output before o_proj */
    float *q;       /* (rows, dim) */
    float *k, *v;   /* (rows, kv_dim) */
    float *hb, *hb2; /* (rows, hidden_dim) */
    float *att;     /* (max(chunk, max_batch), max_seq) attention probabilities of one head,
                     * or one row per sequence (decode of several) */
    float *last;    /* (max_batch, dim) final hidden state of each sequence's last position */
    float *wscratch; /* widened weight panels for non-f32 matrices */
    rd_pool *pool;   /* the process's pool (borrowed): threads for the matrix-vector path */
    float *lora_scratch; /* LoRA edits: (rows, r), made by the first call with LoRA edits */
    size_t lora_floats;  /* its size */
    size_t bytes;
};

/* Allocates n floats, adding to *total; NULL on failure. */
static float *alloc_floats(size_t n, size_t *total) {
    size_t bytes = (n ? n : 1) * sizeof(float);
    *total += bytes;
    return calloc(1, bytes);
}

/* rd_ctx_new with scratch for `rows` rows per pass (0: max_batch · chunk). */
static rd_ctx *ctx_new(const rd_model *m, int max_batch, int max_seq, int rows_per_pass,
                       rd_error *err) {
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
    const int chunk = max_seq < CHUNK_POSITIONS ? max_seq : CHUNK_POSITIONS;
    if (rows_per_pass == 0) rows_per_pass = max_batch * chunk;
    {
        const size_t kv = (size_t)rd_config_kv_dim(c), L = (size_t)c->n_layers;
        const size_t rows = (size_t)rows_per_pass;
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
    x->chunk = chunk;
    x->max_rows = rows_per_pass;
    const size_t kv = (size_t)rd_config_kv_dim(c);
    const size_t cache = (size_t)c->n_layers * (size_t)max_batch * (size_t)max_seq * kv;
    const size_t rows = (size_t)rows_per_pass;
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
    x->att = alloc_floats((size_t)(chunk > max_batch ? chunk : max_batch) * (size_t)max_seq, t);
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

rd_ctx *rd_ctx_new(const rd_model *m, int max_batch, int max_seq, rd_error *err) {
    return ctx_new(m, max_batch, max_seq, 0, err);
}

rd_ctx *rd_ctx_new_slots(const rd_model *m, int slots, int max_seq, rd_error *err) {
    const int seq = max_seq < m->file.cfg.seq_len ? max_seq : m->file.cfg.seq_len;
    const int chunk = seq < CHUNK_POSITIONS ? seq : CHUNK_POSITIONS;
    return ctx_new(m, slots, max_seq, slots > chunk ? slots : chunk, err);
}

void rd_ctx_free(rd_ctx *c) {
    if (!c) return;
    float *bufs[] = {c->key_cache, c->value_cache, c->x, c->xb, c->xb2, c->q, c->k,
                     c->v, c->hb, c->hb2, c->att, c->last, c->wscratch, c->lora_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(c);
}

void rd_ctx_reset(rd_ctx *c) { c->pos = 0; }
int rd_ctx_pos(const rd_ctx *c) { return c->pos; }
int rd_ctx_max_seq(const rd_ctx *c) { return c->max_seq; }
int rd_ctx_max_batch(const rd_ctx *c) { return c->max_batch; }
const rd_model *rd_ctx_model(const rd_ctx *c) { return c->m; }

int rd_ctx_copy_slot(rd_ctx *c, int src, int dst, int n, rd_error *err) {
    if (src < 0 || src >= c->max_batch || dst < 0 || dst >= c->max_batch)
        return rd_error_set(err, "slot copy %d → %d: slots are [0, %d)", src, dst, c->max_batch);
    if (n < 0 || n > c->max_seq)
        return rd_error_set(err, "slot copy of %d positions: the context holds 0 to %d", n,
                            c->max_seq);
    if (src == dst || n == 0) return 0;
    const size_t kv = (size_t)rd_config_kv_dim(&c->m->file.cfg);
    const size_t seq = (size_t)c->max_seq * kv, bytes = (size_t)n * kv * sizeof(float);
    for (int l = 0; l < c->m->file.cfg.n_layers; l++) {
        const size_t layer = (size_t)l * (size_t)c->max_batch * seq;
        float *caches[] = {c->key_cache, c->value_cache};
        for (int i = 0; i < 2; i++)
            memcpy(caches[i] + layer + (size_t)dst * seq, caches[i] + layer + (size_t)src * seq,
                   bytes);
    }
    return 0;
}
size_t rd_ctx_bytes(const rd_ctx *c) { return c->bytes; }

/* The norm that follows layer l's FFN residual: the next layer's attention norm, or the
 * final norm after the last layer (logits read its output from c->xb). */
static const float *next_norm(const rd_ctx *c, int l) {
    const rd_weights *w = &c->m->file.w;
    return l + 1 < c->m->file.cfg.n_layers ? w->layers[l + 1].attn_norm : w->final_norm;
}

/* Runs one chunk: tokens (B, T) with row stride `stride` (the caller's full T), new
 * positions pos0..pos0+T-1 of sequences 0..B-1 (slot b), or with seqs each sequence's own
 * slot and positions seqs[b].pos + pos0.. with its own edits. Every layer runs on the one
 * scratch set: the residual stream is updated in place in c->x, and c->xb carries each
 * sub-layer's normed input, then its output, then the next norm (layer.h's allowed aliases).
 * On return c->xb holds the final-normed hidden states (B·T, dim). */
static void chunk_forward(rd_ctx *c, const rd_edits_view *edits, const rd_seq *seqs,
                          const int *tokens, size_t stride, int B, int T, int pos0,
                          int rows_matvec) {
    const rd_model *m = c->m;
    const int d = m->file.cfg.dim;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            rd_matrix_row_f32(&m->file.w.tok_embeddings, tokens[(size_t)b * stride + t],
                              c->x + ((size_t)b * T + t) * d);
    const size_t seq_stride = (size_t)c->max_seq * (size_t)rd_config_kv_dim(&m->file.cfg);
    const rd_layer_pass pass = {.m = m, .B = B, .T = T, .mode = RD_ATTN_CACHE, .pos0 = pos0,
                                .edits = edits, .seqs = seqs, .rows_matvec = rows_matvec,
                                .lora_scratch = c->lora_scratch,
                                .pool = c->pool, .wscratch = c->wscratch,
                                .att = c->att, .seq_stride = seq_stride};
    for (int l = 0; l < m->file.cfg.n_layers; l++) {
        const size_t layer_cache = (size_t)l * (size_t)c->max_batch * seq_stride;
        const rd_layer_view v = {
            .x_in = c->x, .xb = c->xb, .q = c->q, .k = c->k, .v = c->v, .o = c->xb2,
            .h_attn = c->xb, .x_mid = c->x, .xb2 = c->xb, .g = c->hb, .u = c->hb2,
            .act = c->hb, .h_ffn = c->xb, .x_out = c->x, .x_out_normed = c->xb,
            .out_norm = next_norm(c, l), .norm_in = l == 0,
            .key_cache = c->key_cache + layer_cache, .value_cache = c->value_cache + layer_cache};
        rd_layer_forward(&pass, l, &v);
    }
}

/* Makes the LoRA scratch hold a pass of max_rows rows at rank r. */
static int lora_reserve(rd_ctx *c, const rd_edits_view *edits, rd_error *err) {
    if (!edits || !edits->lora) return 0;
    const size_t need = rd_layer_lora_scratch_floats(&c->m->file.cfg, c->max_rows,
                                                     edits->lora_rank, 0);
    if (need <= c->lora_floats) return 0;
    float *s = realloc(c->lora_scratch, need * sizeof(float));
    if (!s) return rd_error_set(err, "out of memory for the LoRA scratch");
    c->bytes += (need - c->lora_floats) * sizeof(float);
    c->lora_scratch = s;
    c->lora_floats = need;
    return 0;
}

/* The one forward pass behind rd_forward (seqs NULL: sequences 0..B-1 at pos0 with edits)
 * and rd_forward_seqs (each sequence's slot, position and edits; pos0 = 0). Shapes and
 * tokens checked by the callers. rows_matvec: every product by matvec (decode of many). */
static int forward_run(rd_ctx *c, const rd_edits_view *edits, const rd_seq *seqs,
                       const int *tokens, int B, int T, int pos0, rd_logits_mode mode,
                       float *logits, int rows_matvec, rd_error *err) {
    const rd_model *m = c->m;
    const rd_config *cfg = &m->file.cfg;
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= cfg->vocab_size)
            return rd_error_set(err, "token id %d at index %zu is outside the vocabulary [0, %d)",
                                tokens[i], i, cfg->vocab_size);
    if (lora_reserve(c, edits, err)) return -1;
    for (int b = 0; seqs && b < B; b++)
        if (lora_reserve(c, seqs[b].edits, err)) return -1;
    const int d = cfg->dim, V = cfg->vocab_size;
    const rd_matrix *cls = &m->file.w.classifier;
    /* positions per pass: the chunk, as long as B of them fit the scratch */
    const int chunk = c->max_rows / B < c->chunk ? c->max_rows / B : c->chunk;
    for (int t0 = 0; t0 < T; t0 += chunk) {
        const int tc = T - t0 < chunk ? T - t0 : chunk;
        chunk_forward(c, edits, seqs, tokens + t0, (size_t)T, B, tc, pos0 + t0, rows_matvec);
        if (mode == RD_LOGITS_ALL) {
            if (rows_matvec) {
                rd_matmul_many_rows(&logits, c->xb, &cls, 1, B * T, c->wscratch, c->pool);
            } else if (tc == T) {
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
            if (rows_matvec)
                rd_matmul_many_rows(&logits, c->last, &cls, 1, B, c->wscratch, c->pool);
            else
                rd_matmul(logits, c->last, cls, B, c->wscratch, c->pool);
        }
    }
    return 0;
}

int rd_forward(rd_ctx *c, const rd_edits_view *edits, const int *tokens, int B, int T,
               rd_logits_mode mode, float *logits, rd_error *err) {
    if (B < 1 || B > c->max_batch)
        return rd_error_set(err, "batch of %d sequences, the context holds 1 to %d", B,
                            c->max_batch);
    if (T < 1 || T > c->max_seq - c->pos)
        return rd_error_set(err, "%d new positions after %d do not fit the context of %d", T,
                            c->pos, c->max_seq);
    if (forward_run(c, edits, NULL, tokens, B, T, c->pos, mode, logits, 0, err)) return -1;
    c->pos += T;
    return 0;
}

int rd_forward_seqs(rd_ctx *c, const rd_seq *seqs, int B, const int *tokens, int T,
                    rd_logits_mode mode, float *logits, rd_error *err) {
    if (B < 1 || B > c->max_batch || B > c->max_rows)
        return rd_error_set(err, "batch of %d sequences, the context holds 1 to %d", B,
                            c->max_batch < c->max_rows ? c->max_batch : c->max_rows);
    if (T < 1) return rd_error_set(err, "%d new positions: at least 1 needed", T);
    for (int b = 0; b < B; b++) {
        const rd_seq *q = &seqs[b];
        if (q->slot < 0 || q->slot >= c->max_batch)
            return rd_error_set(err, "sequence %d: slot %d is outside [0, %d)", b, q->slot,
                                c->max_batch);
        if (q->pos < 0 || T > c->max_seq - q->pos)
            return rd_error_set(err,
                                "sequence %d: %d new positions after %d do not fit the "
                                "context of %d",
                                b, T, q->pos, c->max_seq);
        for (int k = 0; k < b; k++)
            if (seqs[k].slot == q->slot)
                return rd_error_set(err, "sequences %d and %d both use slot %d", k, b, q->slot);
    }
    return forward_run(c, NULL, seqs, tokens, B, T, 0, mode, logits, T == 1, err);
}
