/* Numeric kernels on OpenBLAS: matmul over weights of any storage type, RMSNorm, RoPE,
 * softmax, SwiGLU and grouped-query causal attention. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__F16C__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include "gemm_bf16.h"
#include "pool.h"
#include "quant_dot.h"

/* ---- matrix-vector products for decode: weights streamed once, widened in registers ---- */

typedef float v16f __attribute__((vector_size(64)));

static inline v16f load_f32(const float *p) {
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline v16f load_bf16(const uint16_t *p) {
#if defined(__AVX512F__)
    const __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return (v16f)_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
#else
    v16f f = {0};
    for (int i = 0; i < 16; i++) f[i] = rd_bf16_to_f32(p[i]);
    return f;
#endif
}

static inline v16f load_f16(const uint16_t *p) {
#if defined(__AVX512F__)
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return (v16f)_mm512_cvtph_ps(h);
#elif defined(__F16C__) /* AVX2-only CPUs: two 8-lane conversions */
    const __m128i lo = _mm_loadu_si128((const __m128i *)p);
    const __m128i hi = _mm_loadu_si128((const __m128i *)(p + 8));
    const __m256 a = _mm256_cvtph_ps(lo), b = _mm256_cvtph_ps(hi);
    v16f f;
    memcpy(&f, &a, sizeof a);
    memcpy((char *)&f + sizeof a, &b, sizeof b);
    return f;
#else
    v16f f = {0};
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
#elif defined(__FMA__) /* two 8-lane halves (AVX2 + FMA) */
    __m256 a2[2], b2[2], c2[2];
    memcpy(a2, &a, sizeof a);
    memcpy(b2, &b, sizeof b);
    memcpy(c2, &acc, sizeof acc);
    c2[0] = _mm256_fmadd_ps(a2[0], b2[0], c2[0]);
    c2[1] = _mm256_fmadd_ps(a2[1], b2[1], c2[1]);
    v16f r;
    memcpy(&r, c2, sizeof r);
    return r;
#else
    return acc + a * b;
#endif
}

/* ---- the GEMM path of non-f32 weights: widened to f32 panel by panel, then sgemm ----------
 * A panel holds up to WIDEN_PANEL_FLOATS floats (16 MiB): large enough that each sgemm has
 * hundreds of rows or columns to work on (a 7B layer's 11008 × 4096 matrix takes 11 panels,
 * where the former 1 MiB panels of 23 to 64 rows made about 175 sgemm calls per product,
 * each packing the whole activation matrix again), small next to the model (the scratch
 * of a context grows by a few such panels). The forward product takes panels of whole rows (output columns); the
 * backward one panels of columns (whole block columns for block types), so every sgemm
 * runs the full inner dimension: both give exactly the result of one sgemm on the whole
 * widened matrix, whatever the panel size or thread count (OpenBLAS splits the rows and
 * columns of the result between its threads, never the inner sum). Panels are widened on
 * every thread of the pool, never while OpenBLAS runs. */
#ifndef WIDEN_PANEL_FLOATS
#define WIDEN_PANEL_FLOATS ((size_t)1 << 22)
#endif

/* Rows of a forward panel (at least 16, at most all). */
static int64_t panel_rows(const rd_matrix *W) {
    int64_t rows = (int64_t)(WIDEN_PANEL_FLOATS / (size_t)W->cols);
    if (rows < 16) rows = 16;
    return rows < W->rows ? rows : W->rows;
}

/* Columns of a backward panel: a multiple of the type's block (at least one block), or all. */
static int64_t panel_cols(const rd_matrix *W) {
    const int64_t be = (int64_t)rd_dtype_info_of(W->type)->block_elems;
    int64_t cols = (int64_t)(WIDEN_PANEL_FLOATS / (size_t)W->rows);
    cols -= cols % be;
    if (cols < be) cols = be;
    return cols < W->cols ? cols : W->cols;
}

typedef struct widen_job {
    const rd_matrix *W;
    float *dst; /* (r1 − r0, c1 − c0) */
    int64_t r0, c0, c1, rows_per_task;
} widen_job;

/* dst[0..n) = the n elements at src in W's type. F16 and BF16 by 16 lanes (the hardware
 * conversion of F16 gives the table's values for every finite and infinite input); the
 * block types through their widening function. */
static void widen_run(rd_dtype type, const void *src, float *dst, size_t n) {
    size_t i = 0;
    if (type == RD_DTYPE_F16 || type == RD_DTYPE_BF16) {
        const uint16_t *h = src;
        for (; i + 16 <= n; i += 16) {
            const v16f v = type == RD_DTYPE_F16 ? load_f16(h + i) : load_bf16(h + i);
            memcpy(dst + i, &v, sizeof v);
        }
        for (; i < n; i++) dst[i] = type == RD_DTYPE_F16 ? rd_f16_to_f32(h[i]) : rd_bf16_to_f32(h[i]);
        return;
    }
    rd_dtype_info_of(type)->to_f32(src, dst, n);
}

static void widen_task(void *arg, int task) {
    const widen_job *j = arg;
    const rd_matrix *W = j->W;
    const rd_dtype_info *info = rd_dtype_info_of(W->type);
    const int64_t r0 = j->r0 + (int64_t)task * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < W->rows ? r0 + j->rows_per_task : W->rows;
    const int64_t w = j->c1 - j->c0;
    const size_t skip = (size_t)(j->c0 / (int64_t)info->block_elems) * info->block_bytes;
    float *dst = j->dst + (size_t)(r0 - j->r0) * (size_t)w;
    if (w == W->cols) { /* whole rows: one run */
        widen_run(W->type, (const char *)W->data + (size_t)r0 * W->row_bytes, dst,
                  (size_t)((r1 - r0) * w));
        return;
    }
    for (int64_t r = r0; r < r1; r++, dst += w)
        widen_run(W->type, (const char *)W->data + (size_t)r * W->row_bytes + skip, dst, (size_t)w);
}

/* dst (r1 − r0, c1 − c0) = W[r0:r1, c0:c1] in f32, on every thread of pool. c0 and c1 are
 * multiples of the type's block or the row's end. */
static void widen_panel(float *dst, const rd_matrix *W, int64_t r0, int64_t r1, int64_t c0,
                        int64_t c1, struct rd_pool *pool) {
    const int64_t rows = r1 - r0, w = c1 - c0;
    /* about 4 tasks per thread, each at least 64 Ki elements (a few tens of µs) */
    int64_t per = (rows + 4 * rd_pool_threads(pool) - 1) / (4 * rd_pool_threads(pool));
    const int64_t min_rows = ((int64_t)1 << 16) / w + 1;
    if (per < min_rows) per = min_rows;
    widen_job j = {W, dst, r0, c0, c1, per};
    rd_pool_run(pool, widen_task, &j, (int)((rows + per - 1) / per));
}

typedef struct matvec_job {
    float *out;        /* (n, rows) */
    const float *x;    /* (n, cols) */
    const rd_matrix *W;
    int n;
    int64_t rows_per_task;
    float *widen;      /* (tasks, cols) scratch for types without a register path */
    /* W->q8_products: the n input rows quantised to 8-bit blocks (rows q8_stride bytes
     * apart) and the integer dot of W's type; else qdot is NULL */
    rd_quant_dot_fn qdot;
    const void *q8;
    size_t q8_stride;
} matvec_job;

/* One weight row against one input row x (cols a multiple of 16), two accumulators.
 * One copy per storage type, so the widening is inlined into the loop. */
/* Rows are streamed once per token: asking for the elements 1024 ahead (4 KB of f32) keeps
 * more lines in flight than the hardware prefetcher alone (f32 decode on the Intel host,
 * alternating runs: stories110M 48.5 → 54 tok/s, stories15M 588–612 → 652–677). */
#define DOT_PREFETCH_ELEMS 1024
#define DEFINE_DOT(NAME, ELEM, LOAD)                                                        \
    static float NAME(const void *wrow, const float *x, int64_t cols) {                    \
        const ELEM *w = wrow;                                                               \
        v16f a0 = {0}, a1 = {0};                                                            \
        int64_t c = 0;                                                                      \
        for (; c + 32 <= cols; c += 32) {                                                   \
            __builtin_prefetch(w + c + DOT_PREFETCH_ELEMS);                                 \
            __builtin_prefetch(w + c + DOT_PREFETCH_ELEMS + 16);                            \
            a0 = fma16(a0, LOAD(w + c), load_f32(x + c));                                   \
            a1 = fma16(a1, LOAD(w + c + 16), load_f32(x + c + 16));                         \
        }                                                                                   \
        if (c < cols) a0 = fma16(a0, LOAD(w + c), load_f32(x + c));                         \
        return hsum(a0 + a1);                                                               \
    }
DEFINE_DOT(dot_f32, float, load_f32)
DEFINE_DOT(dot_f16, uint16_t, load_f16)
DEFINE_DOT(dot_bf16, uint16_t, load_bf16)

/* The same dots for many input rows (batched decode), by register tiles of TILE_W weight
 * rows × TILE_X input rows, each output still bit for bit DEFINE_DOT's: its accumulator a0
 * sums the even 16-lane chunks in order (the tail of an odd count included), a1 the odd
 * ones, and the dot is hsum(a0 + a1). The two sums do not depend on each other, so a tile
 * runs them as two passes over the columns, even chunks then odd ones, with one accumulator
 * per (weight row, input row) pair: 24 accumulators, and each loaded vector serves four
 * (weight) or six (input) FMAs, where DEFINE_DOT4 loaded an input vector for every FMA.
 * 6 × 4 measured best of 4 × 4, 4 × 6, 5 × 4, 8 × 3 in this form, and better than tiles
 * of 2 or 3 weight rows keeping both accumulators in one pass, and than running pass 0 of
 * every input group before pass 1 (stories110M's matrices, 16 rows, one thread). */
enum { TILE_W = 6, TILE_X = 4 };

/* nw ≤ TILE_W weight rows (row_bytes apart from wrow) against ni ≤ TILE_X input rows
 * x (ni, cols): the dot of pair (r, i) in out[i · out_stride + r]. nw and ni are constants
 * where the function is inlined, so the loops unroll into registers. */
#define DEFINE_DOT_TILE(NAME, ELEM, LOAD)                                                   \
    static inline __attribute__((always_inline)) void NAME##_fixed(                         \
        const char *wrow, size_t row_bytes, const float *x, int64_t cols, float *out,       \
        size_t out_stride, const int nw, const int ni) {                                    \
        v16f even[TILE_W][TILE_X], acc[TILE_W][TILE_X];                                     \
        for (int pass = 0; pass < 2; pass++) { /* even chunks, then odd ones */             \
            for (int r = 0; r < nw; r++)                                                    \
                for (int i = 0; i < ni; i++) acc[r][i] = (v16f){0};                         \
            for (int64_t c = pass * 16; c + 16 <= cols; c += 32) {                          \
                v16f xv[TILE_X];                                                            \
                for (int i = 0; i < ni; i++) xv[i] = load_f32(x + i * cols + c);            \
                for (int r = 0; r < nw; r++) {                                              \
                    const v16f w = LOAD((const ELEM *)(wrow + (size_t)r * row_bytes) + c);  \
                    for (int i = 0; i < ni; i++) acc[r][i] = fma16(acc[r][i], w, xv[i]);    \
                }                                                                           \
            }                                                                               \
            if (pass == 0)                                                                  \
                for (int r = 0; r < nw; r++)                                                \
                    for (int i = 0; i < ni; i++) even[r][i] = acc[r][i];                    \
        }                                                                                   \
        for (int r = 0; r < nw; r++)                                                        \
            for (int i = 0; i < ni; i++)                                                    \
                out[(size_t)i * out_stride + r] = hsum(even[r][i] + acc[r][i]);             \
    }                                                                                       \
    static void NAME(const char *wrow, size_t row_bytes, const float *x, int64_t cols,      \
                     float *out, size_t out_stride, int nw, int ni) {                       \
        if (nw == TILE_W) {                                                                 \
            switch (ni) {                                                                   \
            TILE_CASES(NAME##_fixed(wrow, row_bytes, x, cols, out, out_stride, TILE_W, K);  \
                       return;)                                                             \
            }                                                                               \
        }                                                                                   \
        for (int r = 0; r < nw; r++) /* the rows left over, one at a time */               \
            switch (ni) {                                                                   \
            TILE_CASES(NAME##_fixed(wrow + (size_t)r * row_bytes, row_bytes, x, cols,       \
                                    out + r, out_stride, 1, K); break;)                     \
            }                                                                               \
    }
/* The cases ni = 1 … TILE_X (4) of a switch, K the constant. */
#define TILE_CASES(S)                                                                       \
    case 1: { enum { K = 1 }; S }                                                           \
    case 2: { enum { K = 2 }; S }                                                           \
    case 3: { enum { K = 3 }; S }                                                           \
    default: { enum { K = 4 }; S }
DEFINE_DOT_TILE(dot_tile_f32, float, load_f32)
DEFINE_DOT_TILE(dot_tile_f16, uint16_t, load_f16)
DEFINE_DOT_TILE(dot_tile_bf16, uint16_t, load_bf16)

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

/* Weight rows [r0, r1) against the job's n input rows (n ≤ RD_MATVEC_PASS_ROWS): each weight
 * row is read from memory once for all n rows (more than RD_MATVEC_MAX_ROWS: in register
 * tiles, a block of TILE_W weight rows against every group of TILE_X inputs), and every
 * output element has the arithmetic of the single-row product (n = 1), whatever n is. */
static void matvec_range(const matvec_job *j, int64_t r0, int64_t r1, float *tmp) {
    int64_t r = r0;
    const rd_matrix *W = j->W;
    if (j->qdot) { /* groups of RD_QUANT_DOT_MAX_ROWS: each weight block unpacked once */
        float o[RD_QUANT_DOT_MAX_ROWS];
        for (; r < r1; r++) {
            const char *row = (const char *)W->data + (size_t)r * W->row_bytes;
            for (int i0 = 0; i0 < j->n; i0 += RD_QUANT_DOT_MAX_ROWS) {
                const int k =
                    j->n - i0 < RD_QUANT_DOT_MAX_ROWS ? j->n - i0 : RD_QUANT_DOT_MAX_ROWS;
                j->qdot(row, (const char *)j->q8 + (size_t)i0 * j->q8_stride, j->q8_stride, k,
                        W->cols, o);
                for (int i = 0; i < k; i++) j->out[(size_t)(i0 + i) * W->rows + r] = o[i];
            }
        }
        return;
    }
    if (has_register_path(W)) {
        float (*dot)(const void *, const float *, int64_t) =
            W->type == RD_DTYPE_F32 ? dot_f32 : W->type == RD_DTYPE_F16 ? dot_f16 : dot_bf16;
        if (j->n > RD_MATVEC_MAX_ROWS) { /* many rows (batched decode): register tiles */
            void (*tile)(const char *, size_t, const float *, int64_t, float *, size_t, int,
                         int) = W->type == RD_DTYPE_F32   ? dot_tile_f32
                                : W->type == RD_DTYPE_F16 ? dot_tile_f16
                                                          : dot_tile_bf16;
            for (; r < r1; r += TILE_W) { /* a block of weight rows against every input */
                const int nw = r1 - r < TILE_W ? (int)(r1 - r) : TILE_W;
                const char *row = (const char *)W->data + (size_t)r * W->row_bytes;
                for (int i = 0; i < j->n; i += TILE_X)
                    tile(row, W->row_bytes, j->x + (size_t)i * W->cols, W->cols,
                         j->out + (size_t)i * W->rows + r, (size_t)W->rows, nw,
                         j->n - i < TILE_X ? j->n - i : TILE_X);
            }
        }
        for (; r < r1; r++) {
            const char *row = (const char *)W->data + (size_t)r * W->row_bytes;
            int i = 0;
            for (; i < j->n; i++)
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

/* Floats of the quantised input rows of the integer matvec path (n rows, at most
 * RD_MATVEC_PASS_ROWS at a time). */
static size_t q8_floats(const rd_matrix *W, int n) {
    const int rows = n < RD_MATVEC_PASS_ROWS ? n : RD_MATVEC_PASS_ROWS;
    return ((size_t)rows * rd_q8_row_bytes(rd_q8_format_of(W->type), W->cols) + 3) / 4;
}

size_t rd_matmul_scratch_floats(const rd_matrix *W, int n) {
    size_t panel = 0;
    if (W->type != RD_DTYPE_F32) {
        const size_t fwd = (size_t)panel_rows(W) * (size_t)W->cols;
        const size_t bwd = (size_t)W->rows * (size_t)panel_cols(W);
        panel = fwd > bwd ? fwd : bwd;
    }
    /* the matvec path needs one widened row per task, or the quantised input rows */
    int64_t per;
    size_t widen = (size_t)matvec_tasks(W, MATVEC_MAX_THREADS, &per) * (size_t)W->cols;
    const size_t q8 = q8_floats(W, n);
    if (q8 > widen) widen = q8;
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

/* The matrix-vector products of rd_matmul_many_rows for n ≤ RD_MATVEC_PASS_ROWS rows. */
static void matvec_many(float *const *outs, const float *x, const rd_matrix *const *Ws, int count,
                        int n, float *scratch, struct rd_pool *pool) {
    matvec_batch b = {.count = count};
    const int threads = rd_pool_threads(pool);
    for (int i = 0; i < count; i++) {
        matvec_job *j = &b.jobs[i];
        *j = (matvec_job){outs[i], x, Ws[i], n, 0, scratch, NULL, NULL, 0};
        b.first_task[i + 1] = b.first_task[i] + matvec_tasks(Ws[i], threads, &j->rows_per_task);
        const rd_q8_format f = rd_q8_format_of(Ws[i]->type);
        if (Ws[i]->q8_products && f != RD_Q8_NONE) {
            /* the inputs quantised once, here, for every row of W (and shared with an
             * earlier matrix of the batch that takes the same format) */
            j->qdot = rd_quant_dot_for(Ws[i]->type);
            j->q8_stride = rd_q8_row_bytes(f, Ws[i]->cols);
            for (int k = 0; k < i && !j->q8; k++)
                if (b.jobs[k].q8 && rd_q8_format_of(Ws[k]->type) == f) j->q8 = b.jobs[k].q8;
            if (!j->q8) {
                for (int r = 0; r < n; r++)
                    rd_q8_quantize(f, x + (size_t)r * Ws[i]->cols,
                                   (char *)scratch + (size_t)r * j->q8_stride, Ws[i]->cols);
                j->q8 = scratch;
            }
        }
        scratch += rd_matmul_scratch_floats(Ws[i], n);
    }
    rd_pool_run(pool, matvec_batch_task, &b, b.first_task[count]);
}

void rd_matmul_many_rows(float *const *outs, const float *x, const rd_matrix *const *Ws,
                         int count, int n, float *scratch, struct rd_pool *pool) {
    for (int i0 = 0; i0 < n; i0 += RD_MATVEC_PASS_ROWS) {
        const int part = n - i0 < RD_MATVEC_PASS_ROWS ? n - i0 : RD_MATVEC_PASS_ROWS;
        float *o[RD_MATMUL_MANY_MAX];
        for (int i = 0; i < count; i++) o[i] = outs[i] + (size_t)i0 * (size_t)Ws[i]->rows;
        matvec_many(o, x + (size_t)i0 * (size_t)Ws[0]->cols, Ws, count, part, scratch, pool);
    }
}

void rd_matmul_many(float *const *outs, const float *x, const rd_matrix *const *Ws, int count,
                    int n, float *scratch, struct rd_pool *pool) {
    if (n > RD_MATVEC_MAX_ROWS) {
        for (int i = 0; i < count; i++) rd_matmul(outs[i], x, Ws[i], n, scratch, pool);
        return;
    }
    matvec_many(outs, x, Ws, count, n, scratch, pool);
}

void rd_matmul(float *out, const float *x, const rd_matrix *W, int n, float *scratch,
               struct rd_pool *pool) {
    const int rows = (int)W->rows, cols = (int)W->cols;
    if (n <= RD_MATVEC_MAX_ROWS) {
        rd_matmul_many(&out, x, &W, 1, n, scratch, pool);
        return;
    }
    if (W->q8_products && n <= RD_QUANT_FEW_ROWS) { /* a short prompt: a few matvec passes */
        for (int i = 0; i < n; i += RD_MATVEC_MAX_ROWS) {
            const int part = n - i < RD_MATVEC_MAX_ROWS ? n - i : RD_MATVEC_MAX_ROWS;
            rd_matmul_many(&(float *){out + (size_t)i * (size_t)rows}, x + (size_t)i * (size_t)cols,
                           &W, 1, part, scratch, pool);
        }
        return;
    }
    if (W->bf16 && W->bf16->fwd.data &&
        rd_gemm_bf16(out, (size_t)rows, x, (size_t)cols, n, W->bf16, RD_BF16_FORWARD, 0, pool,
                     scratch, NULL, NULL) == 0)
        return;
    if (rd_bf16_weight_on_the_fly(W->bf16) &&
        rd_gemm_bf16_matrix(out, (size_t)rows, x, (size_t)cols, n, W, RD_BF16_FORWARD, 0, pool,
                            NULL, NULL, NULL) == 0)
        return;
    if (W->type == RD_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, cols, 1.0f, x, cols,
                    W->data, cols, 0.0f, out, rows);
        return;
    }
    const int64_t P = panel_rows(W);
    for (int64_t r0 = 0; r0 < W->rows; r0 += P) {
        const int64_t pr = W->rows - r0 < P ? W->rows - r0 : P;
        widen_panel(scratch, W, r0, r0 + pr, 0, W->cols, pool);
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

/* The largest of x[0..n), n ≥ 1 (rd_softmax and rd_exp_sum_shifted subtract it). */
static inline float max16(const float *x, int n) {
    __m512 vmax = _mm512_set1_ps(x[0]);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = lanes((size_t)(n - i));
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
    }
    return _mm512_reduce_max_ps(vmax);
}
#endif

void rd_softmax(float *x, int n) {
    float sum = 0.0f;
#if defined(__AVX512F__)
    const float max = max16(x, n);
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
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
#endif
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

float rd_exp_sum_shifted(float *x, int n, int store, float *sum) {
#if defined(__AVX512F__)
    const float max = max16(x, n);
    const __m512 mx = _mm512_set1_ps(max);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
        const __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mx));
        if (store) {
            _mm512_storeu_ps(x + i, e0);
            _mm512_storeu_ps(x + i + 16, e1);
        }
        acc0 = _mm512_add_ps(acc0, e0);
        acc1 = _mm512_add_ps(acc1, e1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = lanes((size_t)(n - i));
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx));
        if (store) _mm512_mask_storeu_ps(x + i, m, e);
        acc0 = _mm512_mask_add_ps(acc0, m, acc0, e);
    }
    *sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    return max;
#else
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        const float e = expf(x[i] - max);
        if (store) x[i] = e;
        s += e;
    }
    *sum = (float)s;
    return max;
#endif
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

/* oh (nv · 16) = Σ_{p < visible} att[p] · v_p (v_p kv_stride floats apart), kept in nv ≤ 8
 * registers: the products and sums of attention_small's loop, in its order and each rounded
 * once (ISO C contracts neither into an FMA), so the bits are the same, without the loop's
 * load and store of oh at every position. */
static inline __attribute__((always_inline)) void att_values_fixed(float *oh, const float *att,
                                                                 const float *v,
                                                                 size_t kv_stride, int visible,
                                                                 const int nv) {
    v16f o[8];
    for (int k = 0; k < nv; k++) o[k] = (v16f){0};
    for (int p = 0; p < visible; p++) {
        const float *vp = v + (size_t)p * kv_stride;
        for (int k = 0; k < nv; k++) o[k] = o[k] + att[p] * load_f32(vp + 16 * k);
    }
    for (int k = 0; k < nv; k++) memcpy(oh + 16 * k, &o[k], sizeof o[k]);
}

/* att_values_fixed for the usual head sizes (32, 48, 64, 128); 0 for others. */
static int att_values(float *oh, const float *att, const float *v, size_t kv_stride,
                      int visible, int hs) {
    switch (hs) {
    case 32: att_values_fixed(oh, att, v, kv_stride, visible, 2); return 1;
    case 48: att_values_fixed(oh, att, v, kv_stride, visible, 3); return 1;
    case 64: att_values_fixed(oh, att, v, kv_stride, visible, 4); return 1;
    case 128: att_values_fixed(oh, att, v, kv_stride, visible, 8); return 1;
    default: return 0;
    }
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
            if (att_values(oh, att, v + kv_off, kv_stride, visible, hs)) continue;
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
    if (rd_bf16_weight_on_the_fly(W->bf16) &&
        rd_gemm_bf16_matrix(dx, (size_t)cols, dy, (size_t)rows, n, W, RD_BF16_BACKWARD,
                            accumulate, pool, NULL, NULL, NULL) == 0)
        return;
    if (W->type == RD_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, cols, rows, 1.0f, dy, rows,
                    W->data, cols, accumulate ? 1.0f : 0.0f, dx, cols);
        return;
    }
    const int64_t P = panel_cols(W);
    for (int64_t c0 = 0; c0 < W->cols; c0 += P) {
        const int64_t pc = W->cols - c0 < P ? W->cols - c0 : P;
        widen_panel(scratch, W, 0, W->rows, c0, c0 + pc, pool);
        /* dx[:, c0:c0+pc] (=|+=) dy · W[:, c0:c0+pc] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, (int)pc, rows, 1.0f, dy, rows,
                    scratch, (int)pc, accumulate ? 1.0f : 0.0f, dx + c0, cols);
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

/* ---- causal attention for training: one task per (sequence, kv head) --------------------
 * Only the causal half of each T × T product is computed. Scores run along a transposed copy
 * of the keys (kᵀ, (hs, T) per task), so a block of 16 keys is one contiguous load; with
 * AVX-512 four query rows are worked at once, so each loaded block of keys, values or
 * gradients serves four rows. The heads of one kv group share a task, so dk and dv (summed
 * over the group) have one writer, and the result does not depend on the thread count. */

#define ATT_ROWS 4

typedef struct attention_args {
    float *out, *probs, *dq, *dk, *dv, *scratch;
    const float *q, *k, *v, *dout;
    int T, n_heads, n_kv_heads, hs;
} attention_args;

/* Per task: the transposed (hs, T) copy, ATT_ROWS rows of T floats, one row of zeros. */
static size_t attention_task_floats(int T, int hs) {
    return (size_t)T * ((size_t)hs + ATT_ROWS + 1);
}

size_t rd_attention_train_scratch_floats(int B, int T, int n_kv_heads, int hs) {
    return (size_t)B * (size_t)n_kv_heads * attention_task_floats(T, hs);
}

/* This task's scratch: the ATT_ROWS rows of T floats and the row of zeros follow the
 * (hs, T) transposed copy. */
static float *task_scratch(const attention_args *a, int b, int g) {
    return a->scratch + ((size_t)b * a->n_kv_heads + g) * attention_task_floats(a->T, a->hs);
}

/* Writes the (hs, T) transposed copy of kv head g of sequence b of x into the task's scratch
 * and returns it. */
static float *transpose_head(const attention_args *a, const float *x, int b, int g) {
    const int T = a->T, hs = a->hs, kvd = a->n_kv_heads * hs;
    float *xt = task_scratch(a, b, g);
    const float *src = x + (size_t)b * T * kvd + (size_t)g * hs;
    for (int j = 0; j < T; j++)
        for (int c = 0; c < hs; c++) xt[(size_t)c * T + j] = src[(size_t)j * kvd + c];
    return xt;
}

#if defined(__AVX512F__)
/* r_i[j] = scale · Σ_c x_i[c] · yt[c][j] for the ATT_ROWS rows and j < n; also writes the
 * rest of the 16-key block that holds n − 1 (never past T). */
static void rows_times_transposed(float *const r[ATT_ROWS], const float *const x[ATT_ROWS],
                                  const float *yt, int n, int T, int hs, float scale) {
    const __m512 sc = _mm512_set1_ps(scale);
    for (int j0 = 0; j0 < n; j0 += 16) {
        const __mmask16 m = lanes((size_t)(T - j0));
        __m512 acc[ATT_ROWS];
        for (int i = 0; i < ATT_ROWS; i++) acc[i] = _mm512_setzero_ps();
        const float *y = yt + j0;
        for (int c = 0; c < hs; c++, y += T) {
            const __m512 yv = _mm512_maskz_loadu_ps(m, y);
            for (int i = 0; i < ATT_ROWS; i++)
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(x[i][c]), yv, acc[i]);
        }
        for (int i = 0; i < ATT_ROWS; i++) _mm512_mask_storeu_ps(r[i] + j0, m, _mm512_mul_ps(acc[i], sc));
    }
}

/* o_i (hs) = Σ_{j<n} w_i[j] · y_j for the ATT_ROWS rows, y_j = y + j·stride (hs floats). */
static void weighted_rows(float *const o[ATT_ROWS], const float *const w[ATT_ROWS],
                          const float *y, int n, size_t stride, int hs) {
    for (int c0 = 0; c0 < hs; c0 += 32) {
        const __mmask16 m0 = lanes((size_t)(hs - c0));
        const __mmask16 m1 = hs - c0 > 16 ? lanes((size_t)(hs - c0 - 16)) : 0;
        __m512 acc[ATT_ROWS][2];
        for (int i = 0; i < ATT_ROWS; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        for (int j = 0; j < n; j++) {
            const float *yj = y + (size_t)j * stride + c0;
            const __m512 y0 = _mm512_maskz_loadu_ps(m0, yj), y1 = _mm512_maskz_loadu_ps(m1, yj + 16);
            for (int i = 0; i < ATT_ROWS; i++) {
                const __m512 wi = _mm512_set1_ps(w[i][j]);
                acc[i][0] = _mm512_fmadd_ps(wi, y0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(wi, y1, acc[i][1]);
            }
        }
        for (int i = 0; i < ATT_ROWS; i++) {
            _mm512_mask_storeu_ps(o[i] + c0, m0, acc[i][0]);
            _mm512_mask_storeu_ps(o[i] + c0 + 16, m1, acc[i][1]);
        }
    }
}

/* y_j += Σ_i w_i[j] · x_i for j < n (y_j = y + j·stride, hs floats): each y_j read and
 * written once for the ATT_ROWS rows. */
static void add_weighted_outer(float *y, size_t stride, const float *const w[ATT_ROWS],
                               const float *const x[ATT_ROWS], int n, int hs) {
    for (int c0 = 0; c0 < hs; c0 += 32) {
        const __mmask16 m0 = lanes((size_t)(hs - c0));
        const __mmask16 m1 = hs - c0 > 16 ? lanes((size_t)(hs - c0 - 16)) : 0;
        __m512 x0[ATT_ROWS], x1[ATT_ROWS];
        for (int i = 0; i < ATT_ROWS; i++) {
            x0[i] = _mm512_maskz_loadu_ps(m0, x[i] + c0);
            x1[i] = _mm512_maskz_loadu_ps(m1, x[i] + c0 + 16);
        }
        for (int j = 0; j < n; j++) {
            float *yj = y + (size_t)j * stride + c0;
            __m512 y0 = _mm512_maskz_loadu_ps(m0, yj), y1 = _mm512_maskz_loadu_ps(m1, yj + 16);
            for (int i = 0; i < ATT_ROWS; i++) {
                const __m512 wi = _mm512_set1_ps(w[i][j]);
                y0 = _mm512_fmadd_ps(wi, x0[i], y0);
                y1 = _mm512_fmadd_ps(wi, x1[i], y1);
            }
            _mm512_mask_storeu_ps(yj, m0, y0);
            _mm512_mask_storeu_ps(yj + 16, m1, y1);
        }
    }
}
#else
static void rows_times_transposed(float *const r[ATT_ROWS], const float *const x[ATT_ROWS],
                                  const float *yt, int n, int T, int hs, float scale) {
    for (int i = 0; i < ATT_ROWS; i++) {
        memset(r[i], 0, (size_t)n * sizeof(float));
        for (int c = 0; c < hs; c++) {
            const float xc = x[i][c] * scale, *y = yt + (size_t)c * T;
            for (int j = 0; j < n; j++) r[i][j] += xc * y[j];
        }
    }
}

static void weighted_rows(float *const o[ATT_ROWS], const float *const w[ATT_ROWS],
                          const float *y, int n, size_t stride, int hs) {
    for (int i = 0; i < ATT_ROWS; i++) {
        memset(o[i], 0, (size_t)hs * sizeof(float));
        for (int j = 0; j < n; j++)
            for (int c = 0; c < hs; c++) o[i][c] += w[i][j] * y[(size_t)j * stride + c];
    }
}

static void add_weighted_outer(float *y, size_t stride, const float *const w[ATT_ROWS],
                               const float *const x[ATT_ROWS], int n, int hs) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < ATT_ROWS; i++)
            for (int c = 0; c < hs; c++) y[(size_t)j * stride + c] += w[i][j] * x[i][c];
}
#endif

/* Σ_{j<n} x[j]·y[j]. */
static float dot(const float *x, const float *y, int n) {
#if defined(__AVX512F__)
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = lanes((size_t)(n - j));
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, y + j), acc);
    }
    return _mm512_reduce_add_ps(acc);
#else
    float s = 0.0f;
    for (int j = 0; j < n; j++) s += x[j] * y[j];
    return s;
#endif
}

/* Rows t0 … t0 + ATT_ROWS − 1 of a block, clipped to T: *valid of them are real; the others
 * repeat the last real row (their stores repeat its values; sums must skip them). */
static int block_rows(int t0, int T, int t[ATT_ROWS]) {
    int valid = 0;
    for (int i = 0; i < ATT_ROWS; i++) {
        t[i] = t0 + i < T ? t0 + i : T - 1;
        valid += t0 + i < T;
    }
    return valid;
}

static void attention_task(void *arg, int task) {
    const attention_args *a = arg;
    const int T = a->T, hs = a->hs, H = a->n_heads, KV = a->n_kv_heads;
    const int b = task / KV, g = task % KV, group = H / KV;
    const size_t qd = (size_t)H * hs, kvd = (size_t)KV * hs;
    const float scale = 1.0f / sqrtf((float)hs);
    const float *kt = transpose_head(a, a->k, b, g);
    const float *vg = a->v + (size_t)b * T * kvd + (size_t)g * hs;
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
            int t[ATT_ROWS];
            const int valid = block_rows(t0, T, t), n = t[ATT_ROWS - 1] + 1;
            float *P[ATT_ROWS], *out[ATT_ROWS];
            const float *q[ATT_ROWS];
            for (int i = 0; i < ATT_ROWS; i++) {
                const size_t r = (size_t)b * T + t[i];
                P[i] = a->probs + (((size_t)b * H + h) * T + t[i]) * T;
                q[i] = a->q + r * qd + (size_t)h * hs;
                out[i] = a->out + r * qd + (size_t)h * hs;
            }
            /* P[t, j≤t] = softmax(scale · q_t · k_j), zeros after t */
            rows_times_transposed(P, q, kt, n, T, hs, scale);
            for (int i = 0; i < valid; i++) {
                rd_softmax(P[i], t[i] + 1);
                memset(P[i] + t[i] + 1, 0, (size_t)(T - t[i] - 1) * sizeof(float));
            }
            /* out_t = Σ_j P[t, j] · v_j (P is 0 past t) */
            weighted_rows(out, (const float *const *)P, vg, n, kvd, hs);
        }
}

void rd_attention_train(float *out, float *probs, const float *q, const float *k, const float *v,
                        int B, int T, int n_heads, int n_kv_heads, int hs, float *scratch,
                        struct rd_pool *pool) {
    attention_args a = {.out = out, .probs = probs, .scratch = scratch, .q = q, .k = k, .v = v,
                         .T = T, .n_heads = n_heads, .n_kv_heads = n_kv_heads, .hs = hs};
    rd_pool_run(pool, attention_task, &a, B * n_kv_heads);
}

static void attention_backward_task(void *arg, int task) {
    const attention_args *a = arg;
    const int T = a->T, hs = a->hs, H = a->n_heads, KV = a->n_kv_heads;
    const int b = task / KV, g = task % KV, group = H / KV;
    const size_t qd = (size_t)H * hs, kvd = (size_t)KV * hs;
    const float scale = 1.0f / sqrtf((float)hs);
    const float *vt = transpose_head(a, a->v, b, g);
    float *rows = task_scratch(a, b, g) + (size_t)hs * T, *zeros = rows + (size_t)ATT_ROWS * T;
    memset(zeros, 0, (size_t)T * sizeof *zeros);
    const size_t kv0 = (size_t)b * T * kvd + (size_t)g * hs;
    const float *kg = a->k + kv0;
    float *dkg = a->dk + kv0, *dvg = a->dv + kv0;
    for (int j = 0; j < T; j++) {
        memset(dkg + (size_t)j * kvd, 0, (size_t)hs * sizeof(float));
        memset(dvg + (size_t)j * kvd, 0, (size_t)hs * sizeof(float));
    }
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
            int t[ATT_ROWS];
            const int valid = block_rows(t0, T, t), n = t[ATT_ROWS - 1] + 1;
            float *dS[ATT_ROWS], *dq[ATT_ROWS];
            const float *P[ATT_ROWS], *dO[ATT_ROWS], *q[ATT_ROWS];
            const float *dS_sum[ATT_ROWS], *P_sum[ATT_ROWS]; /* zeros for repeated rows */
            for (int i = 0; i < ATT_ROWS; i++) {
                const size_t r = (size_t)b * T + t[i];
                P[i] = a->probs + (((size_t)b * H + h) * T + t[i]) * T;
                dO[i] = a->dout + r * qd + (size_t)h * hs;
                q[i] = a->q + r * qd + (size_t)h * hs;
                dq[i] = a->dq + r * qd + (size_t)h * hs;
                dS[i] = rows + (size_t)(i < valid ? i : valid - 1) * T;
                dS_sum[i] = i < valid ? dS[i] : zeros;
                P_sum[i] = i < valid ? P[i] : zeros;
            }
            /* dP[t, j] = dout_t · v_j;  dS = P ⊙ (dP − Σ_j P·dP) · scale, 0 past t */
            rows_times_transposed(dS, dO, vt, n, T, hs, 1.0f);
            for (int i = 0; i < valid; i++) {
                const float s = dot(P[i], dS[i], t[i] + 1);
                for (int j = 0; j <= t[i]; j++) dS[i][j] = P[i][j] * (dS[i][j] - s) * scale;
                for (int j = t[i] + 1; j < n; j++) dS[i][j] = 0.0f;
            }
            /* dq_t = Σ_j dS[t, j] · k_j;  dk_j += Σ_t dS[t, j] · q_t;  dv_j += Σ_t P[t, j] · dout_t */
            weighted_rows(dq, (const float *const *)dS, kg, n, kvd, hs);
            add_weighted_outer(dkg, kvd, dS_sum, q, n, hs);
            add_weighted_outer(dvg, kvd, P_sum, dO, n, hs);
        }
}

void rd_attention_train_backward(float *dq, float *dk, float *dv, const float *dout,
                                 const float *probs, const float *q, const float *k,
                                 const float *v, int B, int T, int n_heads, int n_kv_heads,
                                 int hs, float *scratch, struct rd_pool *pool) {
    attention_args a = {.probs = (float *)probs, .dq = dq, .dk = dk, .dv = dv,
                        .scratch = scratch, .q = q, .k = k, .v = v, .dout = dout, .T = T,
                        .n_heads = n_heads, .n_kv_heads = n_kv_heads, .hs = hs};
    rd_pool_run(pool, attention_backward_task, &a, B * n_kv_heads);
}
