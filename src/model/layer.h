/* redit — one transformer layer forward, shared by inference and training (model-internal).
 *
 * rd_layer_forward runs layer l of a Llama block over N = B·T rows (B sequences of T new
 * positions each, sequence-major). Inference (forward.c: KV cache, chunks, decode with T = 1)
 * and the training pass (backward.c: activations kept for backward, checkpointing recompute,
 * dropout) call the same function; they differ only in data:
 *   - where the buffers live: an rd_layer_view per call (inference points every layer at one
 *     scratch set, aliasing what it need not keep; training points each layer at its own
 *     activation set, nothing aliased, so backward finds every intermediate);
 *   - how attention runs: rd_layer_pass.mode (RD_ATTN_CACHE: keys and values appended to a KV
 *     cache at positions pos0..pos0+T-1, queries attend to the cache; RD_ATTN_TRAIN: fresh
 *     sequences at positions 0..T-1, full causal attention keeping the probabilities).
 *
 * The layer, step by step (each step row-parallel or one GEMM):
 *   xb     = rmsnorm(x_in)·attn_norm                    only when view.norm_in
 *   q,k,v  = project(xb, wq / wk / wv); RoPE on q, k at position pos0 + t
 *   o      = attention(q, k, v)                         by mode
 *   h_attn = project(o, wo) + wo_bias                   (bias: merged models only)
 *   x_mid  = rd_site_apply(x_in, h_attn, attention site's edit)
 *   xb2    = rmsnorm(x_mid)·ffn_norm
 *   g, u   = project(xb2, w1 / w3);  act = silu(g)·u
 *   h_ffn  = project(act, w2) + w2_bias
 *   x_out  = rd_site_apply(x_mid, h_ffn, FFN site's edit)
 *   x_out_normed = rmsnorm(x_out)·out_norm              only when view.out_norm
 *
 * Hook points for the methods to come (one each, all in layer.c):
 *   - site edits — RED, and per-row edit sets for batched serving: rd_site_apply is the only
 *     code that applies an edit; the residual step (residual_task in layer.c) picks the edit
 *     of its rows through rd_layer_site_edit. With rd_layer_pass.seqs each sequence has its
 *     own view: the residual step calls rd_site_apply once per sequence block (rows
 *     b·T..b·T+T-1) with that sequence's edit and strength, and LoRA and IA3 (below) read the
 *     view of the rows they touch.
 *   - projection adapters — LoRA: every matrix product of the layer goes through project()
 *     with the projection's id (rd_layer_proj); LoRA adds its low-rank product x·Aᵀ·Bᵀ to the
 *     output there, keyed by (layer, id), before any bias, edit or RoPE.
 *   - activation scales — IA3: its k and v scales apply to project()'s RD_PROJ_K / RD_PROJ_V
 *     outputs (before RoPE and the cache), its FFN scale to act in swiglu_task.
 * The LoRA and IA3 hooks are implemented: project() adds α·(lora_alpha/r)·B·A·x̃ (x̃ = x, or
 * its dropout in training) with two small f32 products on the pool (rd_lora_*); rope_task scales k and v by IA3's
 * vectors before RoPE and the cache; swiglu_task scales act.
 * Backward (backward.c) mirrors these steps; the strength formula it uses is the forward's
 * (rd_edit_scale_at / rd_edit_bias_at in redit/edits_view.h). */
#ifndef REDIT_MODEL_LAYER_H
#define REDIT_MODEL_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "redit/edits_view.h"
#include "redit/forward.h"
#include "core/kernels.h"
#include "redit/model.h"

struct rd_pool;

typedef enum rd_attn_mode {
    RD_ATTN_CACHE, /* inference: KV cache, new positions pos0..pos0+T-1 */
    RD_ATTN_TRAIN  /* training: fresh sequences (pos0 = 0), probabilities kept */
} rd_attn_mode;

/* What is the same for every layer of one forward call (all borrowed for the call). */
typedef struct rd_layer_pass {
    const rd_model *m;
    int B, T;                   /* sequences, new positions per sequence: N = B·T rows */
    rd_attn_mode mode;
    int pos0;                   /* position of each sequence's first new row (TRAIN: 0); with
                                 * seqs: added to each sequence's own pos */
    const rd_edits_view *edits; /* NULL: the base model, at no extra cost (ignored with seqs) */
    const rd_seq *seqs;         /* CACHE: (B) each sequence's cache slot, position and edit
                                 * view (rows b·T.. use seqs[b]); NULL: slot b, pos0, edits */
    int rows_matvec;            /* every product by matvec over all N rows (batched decode:
                                 * each row's result is that of the row alone) */
    const rd_dropout *dropout;  /* masks of the sub-layer outputs (after the edit, before the
                                 * residual add); NULL or threshold 0: none */
    const rd_dropout *lora_dropout; /* training: masks of LoRA's inputs (rd_layer_lora_mask);
                                 * NULL or threshold 0: none */
    float *lora_scratch;        /* LoRA edits: rd_layer_lora_scratch_floats(cfg, N, r, dropout) */
    struct rd_pool *pool;       /* threads for the row-wise steps and the matrix products */
    float *wscratch;            /* rd_model_matmul_scratch_floats(m, N) and the GEMM's */
    float *att;                 /* attention scratch: CACHE (T, pos0 + T) scores;
                                 * TRAIN rd_attention_train_scratch_floats(B, T, ...) */
    size_t seq_stride;          /* CACHE: floats between sequences in the cache (max_seq·kv) */
} rd_layer_pass;

/* Where one layer's activations live. Rows are sequence-major (row = b·T + t); d = dim,
 * kv = kv_dim, hd = hidden_dim. Allowed aliases (what inference uses, as each buffer is
 * consumed before the aliased one is written): x_mid and x_out = x_in; h_attn, xb2, h_ffn
 * and x_out_normed = xb; act = g. Training aliases nothing, so backward reads them all. */
typedef struct rd_layer_view {
    float *x_in;   /* (N, d) residual stream entering the layer */
    float *xb;     /* (N, d) rmsnorm(x_in)·attn_norm: input of wq, wk, wv (the caller's when
                    * norm_in is 0) */
    float *q;      /* (N, d) after RoPE */
    float *k, *v;  /* (N, kv) after IA3's scales and RoPE (k); CACHE: also copied into the
                    * cache */
    float *k_raw, *v_raw; /* (N, kv) k_proj's and v_proj's outputs before IA3's scales (kept
                    * for backward), or NULL (inference: not kept) */
    float *o;      /* (N, d) attention output: input of wo */
    float *h_attn; /* (N, d) wo output (+ wo_bias) before the edit */
    float *x_mid;  /* (N, d) residual stream after the attention sub-layer */
    float *xb2;    /* (N, d) rmsnorm(x_mid)·ffn_norm: input of w1, w3 */
    float *g, *u;  /* (N, hd) gate and up projections */
    float *act;    /* (N, hd) silu(g)·u: input of w2 */
    float *h_ffn;  /* (N, d) w2 output (+ w2_bias) before the edit */
    float *x_out;  /* (N, d) the layer's output */
    float *x_out_normed;    /* (N, d) rmsnorm(x_out)·out_norm; unused when out_norm is NULL */
    const float *out_norm;  /* (d) the next norm's weights (inference fuses it), or NULL */
    int norm_in;            /* compute xb from x_in (else the previous layer put it there) */
    /* RD_ATTN_CACHE: this layer's cache, (max_batch, max_seq, kv) each */
    float *key_cache, *value_cache;
    /* RD_ATTN_TRAIN: (B, H, T, T) attention probabilities, kept for backward */
    float *probs;
} rd_layer_view;

/* Runs layer l of p->m as described at the top, reading and writing v's buffers (and, in
 * CACHE mode, the cache rows of positions pos0..pos0+T-1). No allocation, no failure:
 * shapes and token ids are the caller's to check. */
void rd_layer_forward(const rd_layer_pass *p, int l, const rd_layer_view *v);

/* The one place a site's edit is applied, for n rows of a sub-layer's output h (n, d):
 *   out = x + mask ⊙ (s'⊙h + b'),   s' = rd_edit_scale_at(s, α), b' = rd_edit_bias_at(b, α)
 * e NULL, a missing vector or α = 0 leave that part out (α = 0 or no edit: out = x + mask ⊙ h
 * exactly; α = 1 uses s and b as they are). mask NULL: no dropout; else element j of row i
 * uses rd_dropout_factor(mask, first + i·d + j). out may alias x; h is not changed. */
void rd_site_apply(float *out, const float *x, const float *h, int n, int d,
                   const rd_site_edit *e, float alpha, const rd_dropout *mask, uint64_t first);

/* The dropout masks of layer l's sub-layer sub (0 attention, 1 FFN) over its (N, d) output:
 * base's masks from element (2l + sub)·N·d on, so every sub-layer of a pass draws its own. */
rd_dropout rd_layer_dropout_mask(const rd_dropout *base, int l, int sub, int N, int d);

/* The dropout masks of LoRA's input of layer l's projection proj (RD_PROJ_*) over its
 * (N, in) rows: base's masks from element (l·RD_N_PROJ + proj)·N·max(d, hd) on. */
rd_dropout rd_layer_lora_mask(const rd_dropout *base, const rd_config *cfg, int l, int proj,
                              int N);

/* Floats of rd_layer_pass.lora_scratch for N rows at rank r: T (N, r), Bᵀ (r, max(d, hd)),
 * and (N, max(d, hd)) for the dropped-out input when dropout is on, in that order. */
size_t rd_layer_lora_scratch_floats(const rd_config *cfg, int N, int r, int dropout);

/* x̃ (n, in) = mask ⊙ x with mask = rd_layer_lora_mask(...) (rows in parallel on pool). */
void rd_layer_lora_dropout(float *xd, const float *x, int n, int in, const rd_dropout *mask,
                           struct rd_pool *pool);

/* LoRA's small products, rows (or column blocks) in parallel on pool, no OpenBLAS call; every
 * element's arithmetic is the same whatever the thread count. Shapes row-major:
 *   rd_lora_dot_rows   y (n, m) = c·x (n, k)·wᵀ, w (m, k)   (accumulate: y += instead)
 *   rd_lora_axpy_rows  y (n, m) += c·x (n, k)·w, w (k, m)    (mask: y += mask ⊙ (…), element
 *                      (i, o) using rd_dropout_factor(mask, i·m + o))
 *   rd_lora_outer_sum  G += c·pᵀ (k, n)·q (n, m): G (k, m), or G (m, k) when transposed
 *   rd_lora_transpose  dst (cols, rows) = srcᵀ, src (rows, cols); serial */
void rd_lora_dot_rows(float *y, const float *x, const float *w, int n, int k, int m, float c,
                      int accumulate, struct rd_pool *pool);
void rd_lora_axpy_rows(float *y, const float *x, const float *w, int n, int k, int m, float c,
                       const rd_dropout *mask, struct rd_pool *pool);
void rd_lora_outer_sum(float *G, const float *p, const float *q, int n, int k, int m, float c,
                       int transposed, struct rd_pool *pool);
void rd_lora_transpose(float *dst, const float *src, int rows, int cols);

/* Layer l's edit of site sub (0 attention, 1 FFN) in edits, or NULL (no edits, site off). */
const rd_site_edit *rd_layer_site_edit(const rd_edits_view *edits, int l, int sub);

#endif
