/* Numeric kernels on OpenBLAS: matmul over weights of any storage type, RMSNorm, RoPE,
 * softmax, SwiGLU and grouped-query causal attention. */
#include "redit/kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "redit/gemm_bf16.h"
#include "redit/pool.h"

/* Rows of a non-f32 weight widened at once: about 1 MiB of f32 per panel. */
static int64_t panel_rows(const rd_matrix *W) {
    int64_t rows = (int64_t)((1u << 18) / (size_t)W->cols);
    if (rows < 16) rows = 16;
    return rows < W->rows ? rows : W->rows;
}

/* ---- matrix-vector products for decode: weights streamed once, widened in registers ---- */

typedef float v16f __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef uint16_t v16h __attribute__((vector_size(32)));

static inline v16f load_f32(const float *p) {
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline v16f load_bf16(const uint16_t *p) {
    v16h h;
    memcpy(&h, p, sizeof h);
    v16u u = __builtin_convertvector(h, v16u) << 16;
    v16f f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline v16f load_f16(const uint16_t *p) {
#if defined(__AVX512F__)
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return (v16f)_mm512_cvtph_ps(h);
#else
    v16f f;
    for (int i = 0; i < 16; i++) f[i] = rd_f16_to_f32(p[i]);
    return f;
#endif
}

static inline float hsum(v16f v) {
#if defined(__AVX512F__)
    return _mm512_reduce_add_ps((__m512)v);
#else
    float s = 0.0f;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
#endif
}

/* acc + a·b, fused where the CPU has FMA (ISO C mode does not contract a*b+c itself). */
static inline v16f fma16(v16f acc, v16f a, v16f b) {
#if defined(__AVX512F__)
    return (v16f)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)acc);
#else
    return acc + a * b;
#endif
}

typedef struct matvec_job {
    float *out;        /* (n, rows) */
    const float *x;    /* (n, cols) */
    const rd_matrix *W;
    int n;
    int64_t rows_per_task;
    float *widen;      /* (tasks, cols) scratch for types without a register path */
} matvec_job;

/* One weight row against one input row x (cols a multiple of 16), two accumulators.
 * One copy per storage type, so the widening is inlined into the loop. */
#define DEFINE_DOT(NAME, ELEM, LOAD)                                                        \
    static float NAME(const void *wrow, const float *x, int64_t cols) {                    \
        const ELEM *w = wrow;                                                               \
        v16f a0 = {0}, a1 = {0};                                                            \
        int64_t c = 0;                                                                      \
        for (; c + 32 <= cols; c += 32) {                                                   \
            a0 = fma16(a0, LOAD(w + c), load_f32(x + c));                                   \
            a1 = fma16(a1, LOAD(w + c + 16), load_f32(x + c + 16));                         \
        }                                                                                   \
        if (c < cols) a0 = fma16(a0, LOAD(w + c), load_f32(x + c));                         \
        return hsum(a0 + a1);                                                               \
    }
DEFINE_DOT(dot_f32, float, load_f32)
DEFINE_DOT(dot_f16, uint16_t, load_f16)
DEFINE_DOT(dot_bf16, uint16_t, load_bf16)

/* One weight row r against the n input rows through the type's widening function. */
static void dot_widened(const matvec_job *j, int64_t r, float *tmp) {
    const rd_matrix *W = j->W;
    rd_dtype_info_of(W->type)->to_f32((const char *)W->data + (size_t)r * W->row_bytes, tmp,
                                      (size_t)W->cols);
    for (int i = 0; i < j->n; i++) {
        const float *x = j->x + (size_t)i * W->cols;
        float s = 0.0f;
        if (W->cols % 16 == 0) { /* the f32 row's sums: same result as the widened f32 model */
            s = dot_f32(tmp, x, W->cols);
        } else {
            for (int64_t k = 0; k < W->cols; k++) s += tmp[k] * x[k];
        }
        j->out[(size_t)i * W->rows + r] = s;
    }
}

static int has_register_path(const rd_matrix *W) {
    return (W->type == RD_DTYPE_F32 || W->type == RD_DTYPE_F16 || W->type == RD_DTYPE_BF16) &&
           W->cols % 16 == 0;
}

static void matvec_range(const matvec_job *j, int64_t r0, int64_t r1, float *tmp) {
    int64_t r = r0;
    if (has_register_path(j->W)) {
        const rd_matrix *W = j->W;
        float (*dot)(const void *, const float *, int64_t) =
            W->type == RD_DTYPE_F32 ? dot_f32 : W->type == RD_DTYPE_F16 ? dot_f16 : dot_bf16;
        for (; r < r1; r++) {
            const char *row = (const char *)W->data + (size_t)r * W->row_bytes;
            for (int i = 0; i < j->n; i++)
                j->out[(size_t)i * W->rows + r] = dot(row, j->x + (size_t)i * W->cols, W->cols);
        }
    }
    for (; r < r1; r++) dot_widened(j, r, tmp);
}

static void matvec_task(void *arg, int task) {
    const matvec_job *j = arg;
    const int64_t r0 = (int64_t)task * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < j->W->rows ? r0 + j->rows_per_task : j->W->rows;
    matvec_range(j, r0, r1, j->widen + (size_t)task * (size_t)j->W->cols);
}

/* Tasks of at least 16 rows, about 8 per thread, so threads that start late still help. */
#define MATVEC_MAX_THREADS 64 /* rd_matmul_scratch_floats sizes the scratch for this many */

static int matvec_tasks(const rd_matrix *W, int threads, int64_t *rows_per_task) {
    if (threads > MATVEC_MAX_THREADS) threads = MATVEC_MAX_THREADS;
    int64_t per = (W->rows + 8 * threads - 1) / (8 * threads);
    if (per < 16) per = 16;
    *rows_per_task = per;
    return (int)((W->rows + per - 1) / per);
}

size_t rd_matmul_scratch_floats(const rd_matrix *W, int n) {
    size_t panel = W->type == RD_DTYPE_F32 ? 0 : (size_t)panel_rows(W) * (size_t)W->cols;
    /* the matvec path needs one widened row per task */
    int64_t per;
    size_t widen = (size_t)matvec_tasks(W, MATVEC_MAX_THREADS, &per) * (size_t)W->cols;
    (void)n;
    return panel > widen ? panel : widen;
}

/* Several matrix-vector products in one parallel loop: task t belongs to the first job
 * whose task range holds it. */
typedef struct matvec_batch {
    matvec_job jobs[RD_MATMUL_MANY_MAX];
    int first_task[RD_MATMUL_MANY_MAX + 1];
    int count;
} matvec_batch;

static void matvec_batch_task(void *arg, int task) {
    const matvec_batch *b = arg;
    int i = 0;
    while (task >= b->first_task[i + 1]) i++;
    matvec_task((void *)&b->jobs[i], task - b->first_task[i]);
}

void rd_matmul_many(float *const *outs, const float *x, const rd_matrix *const *Ws, int count,
                    int n, float *scratch, struct rd_pool *pool) {
    if (n > RD_MATVEC_MAX_ROWS) {
        for (int i = 0; i < count; i++) rd_matmul(outs[i], x, Ws[i], n, scratch, pool);
        return;
    }
    matvec_batch b = {.count = count};
    const int threads = rd_pool_threads(pool);
    for (int i = 0; i < count; i++) {
        b.jobs[i] = (matvec_job){outs[i], x, Ws[i], n, 0, scratch};
        b.first_task[i + 1] = b.first_task[i] + matvec_tasks(Ws[i], threads, &b.jobs[i].rows_per_task);
        scratch += rd_matmul_scratch_floats(Ws[i], n);
    }
    rd_pool_run(pool, matvec_batch_task, &b, b.first_task[count]);
}

void rd_matmul(float *out, const float *x, const rd_matrix *W, int n, float *scratch,
               struct rd_pool *pool) {
    const int rows = (int)W->rows, cols = (int)W->cols;
    if (n <= RD_MATVEC_MAX_ROWS) {
        rd_matmul_many(&out, x, &W, 1, n, scratch, pool);
        return;
    }
    if (W->bf16 && W->bf16->fwd.data &&
        rd_gemm_bf16(out, (size_t)rows, x, (size_t)cols, n, W->bf16, RD_BF16_FORWARD, 0, pool,
                     scratch, NULL, NULL) == 0)
        return;
    if (W->type == RD_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, cols, 1.0f, x, cols,
                    W->data, cols, 0.0f, out, rows);
        return;
    }
    const rd_dtype_info *info = rd_dtype_info_of(W->type);
    const int64_t P = panel_rows(W);
    for (int64_t r0 = 0; r0 < W->rows; r0 += P) {
        const int64_t pr = W->rows - r0 < P ? W->rows - r0 : P;
        info->to_f32((const char *)W->data + (size_t)r0 * W->row_bytes, scratch,
                     (size_t)(pr * W->cols));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)pr, cols, 1.0f, x, cols,
                    scratch, cols, 0.0f, out + r0, rows);
    }
}

void rd_matmul_naive(float *out, const float *x, const rd_matrix *W, int n) {
    const rd_dtype_info *info = rd_dtype_info_of(W->type);
    const size_t be = info->block_elems; /* widen one block at a time: no allocation */
    float block[256];
    for (int64_t r = 0; r < W->rows; r++) {
        const char *src = (const char *)W->data + (size_t)r * W->row_bytes;
        for (int i = 0; i < n; i++) {
            double acc = 0.0;
            for (int64_t c0 = 0; c0 < W->cols; c0 += (int64_t)be) {
                info->to_f32(src + (size_t)(c0 / (int64_t)be) * info->block_bytes, block, be);
                for (size_t j = 0; j < be; j++)
                    acc += (double)block[j] * x[(size_t)i * W->cols + (size_t)c0 + j];
            }
            out[(size_t)i * W->rows + r] = (float)acc;
        }
    }
}

void rd_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps) {
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *oi = out + (size_t)i * d;
        float ss = 0.0f;
        for (int j = 0; j < d; j++) ss += xi[j] * xi[j];
        const float inv = 1.0f / sqrtf(ss / (float)d + eps);
        for (int j = 0; j < d; j++) oi[j] = xi[j] * inv * w[j];
    }
}

void rd_rope(float *x, int n_heads, int head_dim, int pos, float theta, rd_rope_layout layout) {
    const int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        const float freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        const float angle = (float)pos * freq;
        const float c = cosf(angle), s = sinf(angle);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_dim;
            float *a, *b;
            if (layout == RD_ROPE_ADJACENT) {
                a = &v[2 * i];
                b = &v[2 * i + 1];
            } else {
                a = &v[i];
                b = &v[i + half];
            }
            const float x0 = *a, x1 = *b;
            *a = x0 * c - x1 * s;
            *b = x0 * s + x1 * c;
        }
    }
}

/* ---- exp, 16 lanes: softmax and SwiGLU ---------------------------------------------
 * Cephes' expf: x = n·ln 2 + r (ln 2 in two parts), e^r by a degree-7 polynomial on
 * |r| ≤ ln2/2, times 2^n by vscalefps; within 2 ulp of expf. Inputs are clamped to
 * ±88.376 (e^88.376 ≈ 2.4e38 < FLT_MAX), which the callers never meet in practice. */
#if defined(__AVX512F__)
static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f)),
                      _mm512_set1_ps(88.3762626647949f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* σ(g) = 1 / (1 + e^−g), 16 lanes. */
static inline __m512 sigmoid16(__m512 g) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

static inline __mmask16 lanes(size_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}
#endif

void rd_softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    float sum = 0.0f;
#if defined(__AVX512F__)
    const __m512 mx = _mm512_set1_ps(max);
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = lanes((size_t)(n - i));
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx));
        _mm512_mask_storeu_ps(x + i, m, e);
        acc = _mm512_mask_add_ps(acc, m, acc, e);
    }
    sum = _mm512_reduce_add_ps(acc);
#else
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
#endif
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void rd_swiglu(float *gate, const float *up, size_t n) {
#if defined(__AVX512F__)
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes(n - i);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i), u = _mm512_maskz_loadu_ps(m, up + i);
        _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(_mm512_mul_ps(g, sigmoid16(g)), u));
    }
#else
    for (size_t i = 0; i < n; i++) gate[i] = rd_silu(gate[i]) * up[i];
#endif
}

/* Attention of few new positions (decode): plain loops, no OpenBLAS call, so OpenBLAS's
 * threads stay asleep between decode steps. */
static void attention_small(float *out, const float *q, const float *k, const float *v, int T,
                            int pos0, int n_heads, int n_kv_heads, int hs, size_t kv_stride,
                            float *att) {
    const int group = n_heads / n_kv_heads;
    const int qd = n_heads * hs;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int t = 0; t < T; t++) {
        const int visible = pos0 + t + 1;
        for (int h = 0; h < n_heads; h++) {
            const float *qh = q + (size_t)t * qd + (size_t)h * hs;
            const size_t kv_off = (size_t)(h / group) * hs;
            for (int p = 0; p < visible; p++) {
                const float *kp = k + (size_t)p * kv_stride + kv_off;
                float s;
                if (hs % 16 == 0) {
                    s = dot_f32(kp, qh, hs);
                } else {
                    s = 0.0f;
                    for (int i = 0; i < hs; i++) s += qh[i] * kp[i];
                }
                att[p] = s * scale;
            }
            rd_softmax(att, visible);
            float *oh = out + (size_t)t * qd + (size_t)h * hs;
            memset(oh, 0, (size_t)hs * sizeof(float));
            for (int p = 0; p < visible; p++) {
                const float *vp = v + (size_t)p * kv_stride + kv_off;
                const float a = att[p];
                for (int i = 0; i < hs; i++) oh[i] += a * vp[i];
            }
        }
    }
}

void rd_attention(float *out, const float *q, const float *k, const float *v, int T, int pos0,
                  int n_heads, int n_kv_heads, int hs, size_t kv_stride, float *att) {
    if (T <= RD_MATVEC_MAX_ROWS) {
        attention_small(out, q, k, v, T, pos0, n_heads, n_kv_heads, hs, kv_stride, att);
        return;
    }
    const int L = pos0 + T; /* keys visible to the last new position */
    const int group = n_heads / n_kv_heads;
    const int qd = n_heads * hs;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < n_heads; h++) {
        const float *qh = q + (size_t)h * hs;
        const float *kh = k + (size_t)(h / group) * hs;
        const float *vh = v + (size_t)(h / group) * hs;
        float *oh = out + (size_t)h * hs;
        /* att (T, L) = scale · q_h (T, hs) · k_hᵀ (hs, L) */
        if (T == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, L, hs, scale, kh, (int)kv_stride, qh, 1,
                        0.0f, att, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L, hs, scale, qh, qd, kh,
                        (int)kv_stride, 0.0f, att, L);
        for (int t = 0; t < T; t++) {
            float *row = att + (size_t)t * L;
            const int visible = pos0 + t + 1;
            rd_softmax(row, visible);
            if (visible < L) memset(row + visible, 0, (size_t)(L - visible) * sizeof(float));
        }
        /* out_h (T, hs) = att (T, L) · v_h (L, hs) */
        if (T == 1)
            cblas_sgemv(CblasRowMajor, CblasTrans, L, hs, 1.0f, vh, (int)kv_stride, att, 1, 0.0f,
                        oh, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, L, 1.0f, att, L, vh,
                        (int)kv_stride, 0.0f, oh, qd);
    }
}

/* ---- backward kernels -------------------------------------------------------------- */

size_t rd_matmul_gemm_scratch_floats(const struct rd_pool *pool) {
    return (rd_gemm_bf16_scratch_bytes(pool) + sizeof(float) - 1) / sizeof(float);
}

void rd_matmul_backward(float *dx, const float *dy, const rd_matrix *W, int n, int accumulate,
                        float *scratch, struct rd_pool *pool) {
    const int rows = (int)W->rows, cols = (int)W->cols;
    if (W->bf16 && W->bf16->bwd.data &&
        rd_gemm_bf16(dx, (size_t)cols, dy, (size_t)rows, n, W->bf16, RD_BF16_BACKWARD,
                     accumulate, pool, scratch, NULL, NULL) == 0)
        return;
    if (W->type == RD_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, cols, rows, 1.0f, dy, rows,
                    W->data, cols, accumulate ? 1.0f : 0.0f, dx, cols);
        return;
    }
    const rd_dtype_info *info = rd_dtype_info_of(W->type);
    const int64_t P = panel_rows(W);
    for (int64_t r0 = 0; r0 < W->rows; r0 += P) {
        const int64_t pr = W->rows - r0 < P ? W->rows - r0 : P;
        info->to_f32((const char *)W->data + (size_t)r0 * W->row_bytes, scratch,
                     (size_t)(pr * W->cols));
        /* dx += dy[:, r0:r0+pr] · W[r0:r0+pr, :] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, cols, (int)pr, 1.0f, dy + r0,
                    rows, scratch, cols, (r0 == 0 && !accumulate) ? 0.0f : 1.0f, dx, cols);
    }
}

void rd_matmul_weight_grad(float *dW, const float *dy, const float *x, int n, const rd_matrix *W,
                           void *gscratch, struct rd_pool *pool) {
    const int rows = (int)W->rows, cols = (int)W->cols;
    if (W->bf16 && gscratch &&
        rd_gemm_bf16_tn(dW, (size_t)cols, dy, (size_t)rows, x, (size_t)cols, rows, cols, n, 1,
                        pool, gscratch, NULL, NULL) == 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, cols, n, 1.0f, dy, rows, x, cols,
                1.0f, dW, cols);
}

void rd_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         int n, int d, float eps) {
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *dyi = dy + (size_t)i * d;
        float *dxi = dx + (size_t)i * d;
        float ss = 0.0f;
        for (int j = 0; j < d; j++) ss += xi[j] * xi[j];
        const float r = 1.0f / sqrtf(ss / (float)d + eps);
        /* y_j = x_j·r·w_j;  dx_j = r·w_j·dy_j − x_j·r³/d · Σ_k w_k·dy_k·x_k */
        float dot = 0.0f;
        for (int j = 0; j < d; j++) dot += w[j] * dyi[j] * xi[j];
        const float c = dot * r * r * r / (float)d;
        for (int j = 0; j < d; j++) dxi[j] += r * w[j] * dyi[j] - c * xi[j];
        if (dw)
            for (int j = 0; j < d; j++) dw[j] += dyi[j] * xi[j] * r;
    }
}

void rd_swiglu_backward(float *dg, float *du, const float *da, const float *g, const float *u,
                        size_t n) {
#if defined(__AVX512F__)
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes(n - i);
        const __m512 gi = _mm512_maskz_loadu_ps(m, g + i), ui = _mm512_maskz_loadu_ps(m, u + i);
        const __m512 dai = _mm512_maskz_loadu_ps(m, da + i), sig = sigmoid16(gi);
        _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(dai, _mm512_mul_ps(gi, sig)));
        /* da·u·σ·(1 + g·(1 − σ)) */
        const __m512 t = _mm512_fmadd_ps(gi, _mm512_sub_ps(one, sig), one);
        _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(dai, ui), _mm512_mul_ps(sig, t)));
    }
#else
    for (size_t i = 0; i < n; i++) {
        const float sig = 1.0f / (1.0f + expf(-g[i]));
        const float silu = g[i] * sig;
        du[i] = da[i] * silu;
        dg[i] = da[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    }
#endif
}

void rd_attention_train(float *out, float *probs, const float *q, const float *k, const float *v,
                        int T, int n_heads, int n_kv_heads, int hs) {
    const int group = n_heads / n_kv_heads, qd = n_heads * hs, kvd = n_kv_heads * hs;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < n_heads; h++) {
        const float *qh = q + (size_t)h * hs;
        const float *kh = k + (size_t)(h / group) * hs, *vh = v + (size_t)(h / group) * hs;
        float *P = probs + (size_t)h * T * T;
        /* P (T, T) = scale · q_h · k_hᵀ, causal softmax per row */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, qh, qd, kh, kvd,
                    0.0f, P, T);
        for (int t = 0; t < T; t++) {
            float *row = P + (size_t)t * T;
            rd_softmax(row, t + 1);
            if (t + 1 < T) memset(row + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
        }
        /* out_h (T, hs) = P · v_h */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, P, T, vh, kvd,
                    0.0f, out + (size_t)h * hs, qd);
    }
}

void rd_attention_train_backward(float *dq, float *dk, float *dv, const float *dout,
                                 const float *probs, const float *q, const float *k,
                                 const float *v, int T, int n_heads, int n_kv_heads, int hs,
                                 float *scratch) {
    const int group = n_heads / n_kv_heads, qd = n_heads * hs, kvd = n_kv_heads * hs;
    const float scale = 1.0f / sqrtf((float)hs);
    memset(dk, 0, (size_t)T * kvd * sizeof(float));
    memset(dv, 0, (size_t)T * kvd * sizeof(float));
    float *dP = scratch; /* (T, T) */
    for (int h = 0; h < n_heads; h++) {
        const size_t ko = (size_t)(h / group) * hs;
        const float *P = probs + (size_t)h * T * T;
        const float *doh = dout + (size_t)h * hs;
        /* dv_h (T, hs) += Pᵀ · dout_h */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, P, T, doh, qd, 1.0f,
                    dv + ko, kvd);
        /* dP (T, T) = dout_h · v_hᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, doh, qd, v + ko, kvd,
                    0.0f, dP, T);
        /* dS = P ⊙ (dP − Σ_j P·dP) · scale, causal rows */
        for (int t = 0; t < T; t++) {
            const float *pr = P + (size_t)t * T;
            float *dr = dP + (size_t)t * T;
            float s = 0.0f;
            for (int j = 0; j <= t; j++) s += pr[j] * dr[j];
            for (int j = 0; j <= t; j++) dr[j] = pr[j] * (dr[j] - s) * scale;
            for (int j = t + 1; j < T; j++) dr[j] = 0.0f;
        }
        /* dq_h (T, hs) = dS · k_h;  dk_h (T, hs) += dSᵀ · q_h */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dP, T, k + ko, kvd,
                    0.0f, dq + (size_t)h * hs, qd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dP, T,
                    q + (size_t)h * hs, qd, 1.0f, dk + ko, kvd);
    }
}
