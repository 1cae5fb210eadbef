/* redit — numeric kernels (core layer). f32 activations; weights in any rd_dtype.
 * Shapes are given in comments as (rows, cols), row-major. Nothing here allocates except
 * where stated, and nothing fails: callers validate shapes. */
#ifndef REDIT_KERNELS_H
#define REDIT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "redit/rng.h"
#include "redit/weights.h"

/* out (n, W.rows) = x (n, W.cols) · Wᵀ.
 * n ≤ RD_MATVEC_MAX_ROWS (decode): each weight row is read once, widened in registers and
 * dotted with every x row; rows are spread over `pool` (may be NULL). A quantized W with
 * W->q8_products set instead takes integer dots against the x rows rounded to 8 bits per
 * block (quantised once per call into scratch; core/quant_dot.h).
 * Larger n (prefill): W's packed bf16 copy through rd_gemm_bf16 on `pool` when W has one
 * (W->bf16), or bf16 panels packed on the fly from W (rd_gemm_bf16_matrix, allocating its
 * scratch) when W->bf16 is a mark without panels, else one OpenBLAS sgemm for f32 weights,
 * other types widened into `scratch` panel by panel. scratch: at least rd_matmul_scratch_floats(W, n) floats, and
 * rd_matmul_gemm_scratch_floats(pool) when W has a bf16 copy. */
#define RD_MATVEC_MAX_ROWS 4
/* Up to this many rows, a matrix with q8_products set (quantized weights, fast decode) is
 * multiplied by matvec passes of RD_MATVEC_MAX_ROWS rows (a short prompt: each pass streams
 * the quantized weights once, cheaper than widening them for a GEMM). */
#define RD_QUANT_FEW_ROWS 16
struct rd_pool;
void rd_matmul(float *out, const float *x, const rd_matrix *W, int n, float *scratch,
               struct rd_pool *pool);
size_t rd_matmul_scratch_floats(const rd_matrix *W, int n);
size_t rd_matmul_gemm_scratch_floats(const struct rd_pool *pool);

/* outs[i] (n, Ws[i]->rows) = x (n, cols) · Ws[i]ᵀ for count ≤ RD_MATMUL_MANY_MAX matrices
 * sharing the input (q/k/v, gate/up): for small n one parallel loop over all of them, one
 * hand-off to the pool instead of count. scratch: the sum of each matrix's
 * rd_matmul_scratch_floats. */
#define RD_MATMUL_MANY_MAX 4
void rd_matmul_many(float *const *outs, const float *x, const rd_matrix *const *Ws, int count,
                    int n, float *scratch, struct rd_pool *pool);

/* The matrix-vector path of rd_matmul_many for any n (batched decode: one row per sequence):
 * each weight row is read once for up to RD_MATVEC_PASS_ROWS input rows (f32/f16/bf16: in
 * register tiles of 6 weight rows × 4 input rows), and each output row is bit for bit what
 * the same input row alone (n = 1) gives. scratch as for rd_matmul_many with n. */
#define RD_MATVEC_PASS_ROWS 64
void rd_matmul_many_rows(float *const *outs, const float *x, const rd_matrix *const *Ws,
                         int count, int n, float *scratch, struct rd_pool *pool);

/* Reference matmul (naive triple loop on widened rows) for tests. */
void rd_matmul_naive(float *out, const float *x, const rd_matrix *W, int n);

/* out (n, d) = x / sqrt(mean(x²) + eps) ⊙ w, per row. out may equal x. */
void rd_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps);

/* Rotary embedding in place on x (n_heads, head_dim) at position pos. */
void rd_rope(float *x, int n_heads, int head_dim, int pos, float theta, rd_rope_layout layout);

/* Softmax in place over n values (max-subtracted). */
void rd_softmax(float *x, int n);

/* Log-sum-exp in parts, for cross-entropy: returns m = max x[0..n) and sets *sum =
 * Σ e^(x_i − m) (≥ 1, so log(*sum) never meets an underflow), replacing x_i by e^(x_i − m)
 * when store. The exponential is rd_softmax's (within 2 ulp of expf); the sum is of f32
 * lanes. n ≥ 1. */
float rd_exp_sum_shifted(float *x, int n, int store, float *sum);

/* SwiGLU in place: gate (n) = silu(gate) ⊙ up. */
void rd_swiglu(float *gate, const float *up, size_t n);

/* Grouped-query causal attention for one sequence.
 * q   (T, n_heads·hs)         queries of the new positions pos0..pos0+T-1 (RoPE applied)
 * k,v (pos0+T, kv_dim) rows   cached keys/values, row stride kv_stride floats
 * out (T, n_heads·hs)
 * att scratch of at least T·(pos0+T) floats. Head h reads kv head h / (n_heads/n_kv). */
void rd_attention(float *out, const float *q, const float *k, const float *v, int T, int pos0,
                  int n_heads, int n_kv_heads, int hs, size_t kv_stride, float *att);

static inline float rd_silu(float x) {
    return x / (1.0f + __builtin_expf(-x));
}

/* Dropout masks as a pure function of (seed, index): element `index` is dropped (factor 0)
 * with probability p, else kept with factor 1/(1 − p), so the expectation is unchanged.
 * Stateless, so a training pass's backward recomputes its forward's mask instead of storing
 * it. Hash: splitmix64's finaliser of seed + index·φ, its top 32 bits against p·2³². */
typedef struct rd_dropout {
    uint32_t threshold; /* p · 2³²; 0 = nothing dropped */
    float scale;        /* 1 / (1 − p) */
    uint64_t seed;
} rd_dropout;

/* p in [0, 1); anything else gives no dropout. */
static inline rd_dropout rd_dropout_make(float p, uint64_t seed) {
    const int on = p > 0.0f && p < 1.0f;
    return (rd_dropout){on ? (uint32_t)((double)p * 4294967296.0) : 0u,
                        on ? 1.0f / (1.0f - p) : 1.0f, seed};
}

/* The same masks with index 0 moved to `first`: rd_dropout_factor(&at, k) equals
 * rd_dropout_factor(d, first + k) (the hash's input is seed + index·φ). */
static inline rd_dropout rd_dropout_at(const rd_dropout *d, uint64_t first) {
    return (rd_dropout){d->threshold, d->scale, d->seed + first * RD_RNG_GOLDEN};
}

static inline float rd_dropout_factor(const rd_dropout *d, uint64_t index) {
    const uint64_t z = rd_mix64(d->seed + index * RD_RNG_GOLDEN);
    return (uint32_t)(z >> 32) < d->threshold ? 0.0f : d->scale;
}

/* ---- backward kernels (training) ------------------------------------------------------
 * d-prefixed buffers are gradients. "accumulate" adds into the output instead of
 * overwriting it. */

/* dx (n, W.cols) (=|+=) dy (n, W.rows) · W: the activation gradient of y = x·Wᵀ. Uses W's
 * packed bf16 copy on `pool` when it has a backward packing; else OpenBLAS, non-f32 weights
 * widened into scratch panel by panel (scratch as for rd_matmul). */
void rd_matmul_backward(float *dx, const float *dy, const rd_matrix *W, int n, int accumulate,
                        float *scratch, struct rd_pool *pool);

/* dW (W.rows, W.cols) += dyᵀ (W.rows, n) · x (n, W.cols): the weight gradient of y = x·Wᵀ.
 * When W has a packed bf16 copy (the model computes in bf16) and gscratch is given: in bf16
 * with f32 sums on `pool` (rd_gemm_bf16_tn; gscratch of at least
 * rd_gemm_bf16_tn_scratch_bytes(W.rows, W.cols, n) bytes, not shared with a concurrent call);
 * else f32 OpenBLAS. W's values are not read. */
void rd_matmul_weight_grad(float *dW, const float *dy, const float *x, int n, const rd_matrix *W,
                           void *gscratch, struct rd_pool *pool);

/* y = rmsnorm(x)·w per row: dx (n, d) += ∂/∂x, and dw (d) += ∂/∂w when dw is not NULL. */
void rd_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         int n, int d, float eps);

/* a = silu(g) ⊙ u: dg, du (n) from da (n). dg/du may not alias g/u. */
void rd_swiglu_backward(float *dg, float *du, const float *da, const float *g, const float *u,
                        size_t n);

struct rd_pool;

/* Causal self-attention of B sequences of T positions each (no cache), keeping the
 * probabilities for backward.
 * q (B·T, n_heads·hs), k, v (B·T, kv_dim) (RoPE applied), out (B·T, n_heads·hs),
 * probs (B, n_heads, T, T) (row t holds zeros after column t).
 * scratch: rd_attention_train_scratch_floats(B, T, n_kv_heads, hs) floats, the caller's.
 * One task per (sequence, kv head) on pool (NULL: the calling thread). */
void rd_attention_train(float *out, float *probs, const float *q, const float *k, const float *v,
                        int B, int T, int n_heads, int n_kv_heads, int hs, float *scratch,
                        struct rd_pool *pool);

/* Backward of rd_attention_train: dq (B·T, n_heads·hs) = ∂, dk, dv (B·T, kv_dim) = ∂ (the
 * heads of a kv group add up; dk and dv are overwritten). scratch and pool as there. */
void rd_attention_train_backward(float *dq, float *dk, float *dv, const float *dout,
                                 const float *probs, const float *q, const float *k,
                                 const float *v, int B, int T, int n_heads, int n_kv_heads,
                                 int hs, float *scratch, struct rd_pool *pool);

/* Scratch floats rd_attention_train and its backward need: a transposed (hs, T) copy and a
 * few rows of T floats per (sequence, kv head). */
size_t rd_attention_train_scratch_floats(int B, int T, int n_kv_heads, int hs);

#endif
