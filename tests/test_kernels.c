/* Numeric kernels (src/core/kernels.c), each against an independent double-precision
 * formula written here (the thread pool's own tests: test_pool.c).
 *
 * Tolerances (stated once, used below):
 *   matmul     |out − ref| ≤ MATMUL_TOL · Σ_k |w_k · x_k| per output, where w is the weight
 *              widened by the type's own to_f32 (so quantisation error is not counted, only
 *              the f32 accumulation of the kernel) and ref is the same sum in double.
 *   rmsnorm    |out − ref| ≤ 1e-5 · (|ref| + 1e-6)
 *   rope       |out − ref| ≤ 1e-6 + 2.4e-7 · (pos + 1) · max|x| (angle pos·freq is an f32)
 *   softmax    |out − ref| ≤ 1e-6 · ref + 1e-7; Σ out within 1e-5 of 1
 *   swiglu     |out − ref| ≤ 1e-6 · |ref| + 1e-30
 *   attention  |out − ref| ≤ 2e-5 · (1 + max|v|)
 *   training attention (forward and backward, B sequences) |x − ref| ≤ 3e-5 · (1 + max|ref|)
 *              per tensor; any thread count gives the same bits
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/dtype.h"
#include "core/kernels.h"
#include "core/pool.h"
#include "redit/weights.h"
#include "redit/rng.h"

#define MATMUL_TOL 1e-5

/* ---- helpers ---------------------------------------------------------------------- */

/* Uniform in [-1, 1). */
static float rng_uniform(uint64_t *s) {
    return (float)((double)(rd_splitmix64(s) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static float *random_floats(size_t n, float scale, uint64_t *s) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_uniform(s);
    return x;
}

static float max_abs(const float *x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) > m) m = fabsf(x[i]);
    return m;
}

/* A matrix of type t built from random f32 through the type's from_f32, plus its widened
 * f32 copy (the values rd_matmul really multiplies). */
typedef struct test_matrix {
    rd_matrix m;
    void *data;     /* (rows, row_bytes) in type t */
    float *widened; /* (rows, cols) */
} test_matrix;

static void test_matrix_make(test_matrix *tm, rd_dtype t, int64_t rows, int64_t cols,
                             uint64_t *seed) {
    const rd_dtype_info *info = rd_dtype_info_of(t);
    assert_non_null(info);
    assert_int_equal(cols % (int64_t)info->block_elems, 0);
    const size_t row_bytes = (size_t)cols / info->block_elems * info->block_bytes;
    float *src = random_floats((size_t)(rows * cols), 1.0f, seed);
    tm->data = malloc((size_t)rows * row_bytes);
    tm->widened = malloc((size_t)(rows * cols) * sizeof(float));
    assert_non_null(tm->data);
    assert_non_null(tm->widened);
    for (int64_t r = 0; r < rows; r++) {
        char *dst = (char *)tm->data + (size_t)r * row_bytes;
        info->from_f32(src + r * cols, dst, (size_t)cols);
        info->to_f32(dst, tm->widened + r * cols, (size_t)cols);
    }
    free(src);
    rd_error err = {0};
    assert_int_equal(rd_matrix_init(&tm->m, t, tm->data, rows, cols, &err), 0);
    assert_int_equal(tm->m.row_bytes, row_bytes);
}

static void test_matrix_free(test_matrix *tm) {
    free(tm->data);
    free(tm->widened);
}

/* ---- matmul ------------------------------------------------------------------------ */

#define GUARD 4
#define GUARD_VALUE 12345.0f

/* rd_matmul and rd_matmul_naive against a double sum over the widened weights. The output
 * buffer has guard values behind it and the scratch is exactly rd_matmul_scratch_floats
 * long (ASan sees an overrun). */
static void check_matmul(rd_dtype t, int64_t rows, int64_t cols, int n, rd_pool *pool,
                         uint64_t seed) {
    test_matrix tm;
    test_matrix_make(&tm, t, rows, cols, &seed);
    float *x = random_floats((size_t)n * (size_t)cols, 1.0f, &seed);
    const size_t out_n = (size_t)n * (size_t)rows;
    float *out = malloc((out_n + GUARD) * sizeof *out);
    float *naive = malloc(out_n * sizeof *naive);
    const size_t scratch_n = rd_matmul_scratch_floats(&tm.m, n);
    float *scratch = malloc((scratch_n ? scratch_n : 1) * sizeof *scratch);
    assert_non_null(out);
    assert_non_null(naive);
    assert_non_null(scratch);
    for (size_t i = 0; i < out_n; i++) out[i] = NAN;
    for (size_t i = 0; i < GUARD; i++) out[out_n + i] = GUARD_VALUE;

    rd_matmul(out, x, &tm.m, n, scratch, pool);
    rd_matmul_naive(naive, x, &tm.m, n);

    for (int i = 0; i < n; i++) {
        for (int64_t r = 0; r < rows; r++) {
            double ref = 0.0, mag = 0.0;
            for (int64_t c = 0; c < cols; c++) {
                const double p = (double)tm.widened[r * cols + c] * x[(size_t)i * cols + c];
                ref += p;
                mag += fabs(p);
            }
            const double tol = MATMUL_TOL * mag + 1e-30;
            const size_t o = (size_t)i * (size_t)rows + (size_t)r;
            if (!(fabs(out[o] - ref) <= tol) || !(fabs(naive[o] - ref) <= tol))
                fail_msg("%s rows %lld cols %lld n %d pool %d threads: out[%d][%lld] = %.9g, "
                         "naive %.9g, reference %.9g (tolerance %.3g)",
                         rd_dtype_info_of(t)->name, (long long)rows, (long long)cols, n,
                         rd_pool_threads(pool), i, (long long)r, (double)out[o],
                         (double)naive[o], ref, tol);
        }
    }
    for (size_t i = 0; i < GUARD; i++) assert_true(out[out_n + i] == GUARD_VALUE);
    free(scratch);
    free(naive);
    free(out);
    free(x);
    test_matrix_free(&tm);
}

static const int MATMUL_NS[] = {1, 2, 3, 4, 5, 17, 64};
static const int64_t MATMUL_ROWS[] = {1, 37, 130};

/* Runs every n and row count for one type and column count, with and without a pool. */
static void matmul_sweep(rd_dtype t, int64_t cols, rd_pool *pool2) {
    for (size_t ni = 0; ni < sizeof MATMUL_NS / sizeof *MATMUL_NS; ni++)
        for (size_t ri = 0; ri < sizeof MATMUL_ROWS / sizeof *MATMUL_ROWS; ri++) {
            const uint64_t seed = 1000u * (uint64_t)t + 31u * (uint64_t)cols + ni * 7 + ri;
            check_matmul(t, MATMUL_ROWS[ri], cols, MATMUL_NS[ni], NULL, seed);
            check_matmul(t, MATMUL_ROWS[ri], cols, MATMUL_NS[ni], pool2, seed);
        }
}

static void test_matmul_plain_types(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(2, &err);
    assert_non_null(pool);
    assert_int_equal(rd_pool_threads(pool), 2);
    const rd_dtype types[] = {RD_DTYPE_F32, RD_DTYPE_F16, RD_DTYPE_BF16};
    /* 64, 48: multiples of 16 (register path; 48 leaves a 16-wide remainder after the
     * 32-wide loop); 40, 8: not multiples of 16 (the widened tail path). */
    const int64_t cols[] = {64, 48, 40, 8};
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t ci = 0; ci < 4; ci++) matmul_sweep(types[ti], cols[ci], pool);
    rd_pool_free(pool);
}

static void test_matmul_q8_0(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(2, &err);
    assert_non_null(pool);
    const int64_t cols[] = {32, 64, 96};
    for (size_t ci = 0; ci < 3; ci++) matmul_sweep(RD_DTYPE_Q8_0, cols[ci], pool);
    rd_pool_free(pool);
}

/* Wide rows: the GEMM path widens non-f32 weights panel by panel (at least 16 rows of
 * ~2^22 floats each), so 300 rows of 16384 columns take two panels, the last partial. */
static void test_matmul_several_panels(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(2, &err);
    assert_non_null(pool);
    const rd_dtype types[] = {RD_DTYPE_F32, RD_DTYPE_F16, RD_DTYPE_BF16, RD_DTYPE_Q8_0};
    for (size_t ti = 0; ti < 4; ti++) {
        check_matmul(types[ti], 40, 16384, 5, NULL, 77 + ti);
        check_matmul(types[ti], 300, 16384, 2 + (int)ti % 2 * 3, pool, 99 + ti);
    }
    rd_pool_free(pool);
}

/* The GEMM path of a non-f32 weight (forward and backward, several panels, any thread count)
 * gives exactly the bits of one OpenBLAS sgemm on the whole widened matrix: the panels split
 * only the rows and columns of the result, never an inner sum. */
static void test_matmul_gemm_equals_one_sgemm(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(2, &err);
    assert_non_null(pool);
    uint64_t seed = 5150;
    const rd_dtype types[] = {RD_DTYPE_F16, RD_DTYPE_BF16, RD_DTYPE_Q8_0, RD_DTYPE_Q4_K,
                              RD_DTYPE_Q6_K, RD_DTYPE_IQ4_NL, RD_DTYPE_IQ4_XS};
    const int64_t rows = 272, cols = 16384; /* 4.5 Mi floats: two panels either way */
    const int n = 9;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        test_matrix tm;
        test_matrix_make(&tm, types[ti], rows, cols, &seed);
        float *x = random_floats((size_t)n * cols, 1.0f, &seed);
        float *dy = random_floats((size_t)n * rows, 1.0f, &seed);
        float *dx0 = random_floats((size_t)n * cols, 1.0f, &seed);
        float *out = malloc((size_t)n * rows * sizeof *out), *ref = malloc((size_t)n * rows * sizeof *ref);
        float *dx = malloc((size_t)n * cols * sizeof *dx), *dref = malloc((size_t)n * cols * sizeof *dref);
        float *scratch = malloc(rd_matmul_scratch_floats(&tm.m, n) * sizeof *scratch);
        assert_true(out && ref && dx && dref && scratch);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)rows, (int)cols, 1.0f, x,
                    (int)cols, tm.widened, (int)cols, 0.0f, ref, (int)rows);
        for (int p = 0; p < 2; p++) {
            rd_pool *use = p ? pool : NULL;
            rd_matmul(out, x, &tm.m, n, scratch, use);
            assert_memory_equal(out, ref, (size_t)n * rows * sizeof *out);
            for (int acc = 0; acc < 2; acc++) {
                memcpy(dref, dx0, (size_t)n * cols * sizeof *dx);
                memcpy(dx, dx0, (size_t)n * cols * sizeof *dx);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, (int)cols, (int)rows,
                            1.0f, dy, (int)rows, tm.widened, (int)cols, acc ? 1.0f : 0.0f, dref,
                            (int)cols);
                rd_matmul_backward(dx, dy, &tm.m, n, acc, scratch, use);
                assert_memory_equal(dx, dref, (size_t)n * cols * sizeof *dx);
            }
        }
        free(x), free(dy), free(dx0), free(out), free(ref), free(dx), free(dref), free(scratch);
        test_matrix_free(&tm);
    }
    rd_pool_free(pool);
}

/* rd_matmul_many_rows (batched decode: register tiles of weight rows × input rows) gives
 * every output bit for bit what the input row alone gives (n = 1, the single-row dot):
 * f32, f16 and bf16 weights; 5 … 20 input rows and 67 (two passes of RD_MATVEC_PASS_ROWS),
 * so input groups of every size; row counts that are not a multiple of the tile, whole or
 * split over a pool's tasks; column counts with an even and an odd number of 16-lane
 * chunks (the single-row dot's two accumulators and its tail). Outputs have guard values
 * behind them and the scratch is exactly the documented size. */
static void test_matmul_many_rows_equals_one_row(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(2, &err);
    assert_non_null(pool);
    uint64_t seed = 777;
    const rd_dtype types[] = {RD_DTYPE_F32, RD_DTYPE_F16, RD_DTYPE_BF16};
    const int64_t colss[] = {48, 64, 176};
    const int64_t rows[2] = {37, 13};
    int ns[17];
    for (int k = 0; k < 16; k++) ns[k] = 5 + k;
    ns[16] = 67;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++)
        for (size_t ci = 0; ci < sizeof colss / sizeof *colss; ci++) {
            const int64_t cols = colss[ci];
            test_matrix tm[2];
            const rd_matrix *Ws[2];
            for (int m = 0; m < 2; m++) {
                test_matrix_make(&tm[m], types[ti], rows[m], cols, &seed);
                Ws[m] = &tm[m].m;
            }
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
                for (int p = 0; p < 2; p++) {
                    const int n = ns[ni];
                    float *x = random_floats((size_t)n * (size_t)cols, 1.0f, &seed);
                    const size_t scratch_n =
                        rd_matmul_scratch_floats(Ws[0], n) + rd_matmul_scratch_floats(Ws[1], n);
                    float *scratch = malloc(scratch_n * sizeof *scratch);
                    float *outs[2], one[64];
                    assert_non_null(scratch);
                    for (int m = 0; m < 2; m++) {
                        const size_t out_n = (size_t)n * (size_t)rows[m];
                        outs[m] = malloc((out_n + GUARD) * sizeof(float));
                        assert_non_null(outs[m]);
                        for (size_t i = 0; i < out_n; i++) outs[m][i] = NAN;
                        for (size_t i = 0; i < GUARD; i++) outs[m][out_n + i] = GUARD_VALUE;
                    }
                    rd_matmul_many_rows(outs, x, Ws, 2, n, scratch, p ? pool : NULL);
                    for (int m = 0; m < 2; m++) {
                        for (int i = 0; i < n; i++) {
                            rd_matmul(one, x + (size_t)i * (size_t)cols, Ws[m], 1, scratch, NULL);
                            for (int64_t r = 0; r < rows[m]; r++) {
                                const float got = outs[m][(size_t)i * (size_t)rows[m] + (size_t)r];
                                if (memcmp(&got, &one[r], sizeof got) != 0)
                                    fail_msg("%s cols %lld rows %lld n %d pool %d: out[%d][%lld] "
                                             "= %.9g, the row alone %.9g",
                                             rd_dtype_info_of(types[ti])->name, (long long)cols,
                                             (long long)rows[m], n, p, i, (long long)r,
                                             (double)got, (double)one[r]);
                            }
                        }
                        const size_t out_n = (size_t)n * (size_t)rows[m];
                        for (size_t i = 0; i < GUARD; i++)
                            assert_true(outs[m][out_n + i] == GUARD_VALUE);
                        free(outs[m]);
                    }
                    free(scratch);
                    free(x);
                }
            for (int m = 0; m < 2; m++) test_matrix_free(&tm[m]);
        }
    rd_pool_free(pool);
}

/* ---- rmsnorm ----------------------------------------------------------------------- */

/* rd_matmul_many (q/k/v, gate/up in one parallel loop) gives exactly what separate
 * rd_matmul calls give, for the decode path and the GEMM path, with mixed types and a
 * scratch exactly the sum of the matrices' scratch sizes. */
static void test_matmul_many_equals_separate(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(2, &err);
    assert_non_null(pool);
    uint64_t seed = 4242;
    const int64_t cols = 96;
    const rd_dtype types[3] = {RD_DTYPE_F32, RD_DTYPE_F16, RD_DTYPE_Q8_0};
    const int64_t rows[3] = {96, 37, 130};
    test_matrix tm[3];
    for (int i = 0; i < 3; i++) test_matrix_make(&tm[i], types[i], rows[i], cols, &seed);
    const int ns[] = {1, 3, 4, 9};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        const int n = ns[k];
        float *x = random_floats((size_t)n * cols, 1.0f, &seed);
        size_t scratch_n = 0, single_max = 0;
        for (int i = 0; i < 3; i++) {
            size_t sn = rd_matmul_scratch_floats(&tm[i].m, n);
            scratch_n += sn;
            if (sn > single_max) single_max = sn;
        }
        float *scratch = malloc((scratch_n + 1) * sizeof(float));
        float *outs[3], *refs[3];
        const rd_matrix *Ws[3];
        for (int i = 0; i < 3; i++) {
            outs[i] = malloc((size_t)n * rows[i] * sizeof(float));
            refs[i] = malloc((size_t)n * rows[i] * sizeof(float));
            Ws[i] = &tm[i].m;
            rd_matmul(refs[i], x, Ws[i], n, scratch, pool);
        }
        rd_matmul_many(outs, x, Ws, 3, n, scratch, pool);
        for (int i = 0; i < 3; i++) {
            assert_memory_equal(outs[i], refs[i], (size_t)n * rows[i] * sizeof(float));
            free(outs[i]);
            free(refs[i]);
        }
        free(scratch);
        free(x);
    }
    for (int i = 0; i < 3; i++) test_matrix_free(&tm[i]);
    rd_pool_free(pool);
}

static void test_rmsnorm(void **state) {
    (void)state;
    uint64_t seed = 5;
    const int n = 3, d = 100;
    const float eps = 1e-5f;
    float *x = random_floats((size_t)n * d, 3.0f, &seed);
    float *w = random_floats((size_t)d, 2.0f, &seed);
    for (int j = 0; j < d; j++) x[2 * d + j] *= 1e-3f; /* a row where eps matters */
    float *out = malloc((size_t)n * d * sizeof *out);
    float *inplace = malloc((size_t)n * d * sizeof *inplace);
    assert_non_null(out);
    assert_non_null(inplace);
    memcpy(inplace, x, (size_t)n * d * sizeof *x);
    rd_rmsnorm(out, x, w, n, d, eps);
    rd_rmsnorm(inplace, inplace, w, n, d, eps);
    for (int i = 0; i < n; i++) {
        double ss = 0.0;
        for (int j = 0; j < d; j++) ss += (double)x[i * d + j] * x[i * d + j];
        const double inv = 1.0 / sqrt(ss / d + (double)eps);
        for (int j = 0; j < d; j++) {
            const double ref = (double)x[i * d + j] * inv * w[j];
            const double tol = 1e-5 * (fabs(ref) + 1e-6);
            if (!(fabs(out[i * d + j] - ref) <= tol) || !(fabs(inplace[i * d + j] - ref) <= tol))
                fail_msg("rmsnorm row %d col %d: %.9g / in place %.9g, reference %.9g", i, j,
                         (double)out[i * d + j], (double)inplace[i * d + j], ref);
        }
    }
    free(inplace);
    free(out);
    free(w);
    free(x);
}

/* ---- rope -------------------------------------------------------------------------- */

/* Reference rotation in double: pair i rotated by pos·theta^(-2i/hs). */
static void rope_ref(double *out, const float *x, int n_heads, int hs, int pos, double theta,
                     rd_rope_layout layout) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < hs / 2; i++) {
            const int a = layout == RD_ROPE_ADJACENT ? 2 * i : i;
            const int b = layout == RD_ROPE_ADJACENT ? 2 * i + 1 : i + hs / 2;
            const double angle = pos * pow(theta, -2.0 * i / hs);
            const double x0 = x[h * hs + a], x1 = x[h * hs + b];
            out[h * hs + a] = x0 * cos(angle) - x1 * sin(angle);
            out[h * hs + b] = x0 * sin(angle) + x1 * cos(angle);
        }
}

static void test_rope_matches_formula(void **state) {
    (void)state;
    const int n_heads = 3;
    const int hss[] = {8, 16, 64};
    const int positions[] = {0, 1, 7, 100, 511};
    const float thetas[] = {10000.0f, 500000.0f};
    const rd_rope_layout layouts[] = {RD_ROPE_ADJACENT, RD_ROPE_HALF};
    uint64_t seed = 11;
    for (size_t hi = 0; hi < 3; hi++)
        for (size_t pi = 0; pi < 5; pi++)
            for (size_t th = 0; th < 2; th++)
                for (size_t li = 0; li < 2; li++) {
                    const int hs = hss[hi], pos = positions[pi], n = n_heads * hs;
                    float *x = random_floats((size_t)n, 2.0f, &seed);
                    float *y = malloc((size_t)n * sizeof *y);
                    double *ref = malloc((size_t)n * sizeof *ref);
                    assert_non_null(y);
                    assert_non_null(ref);
                    memcpy(y, x, (size_t)n * sizeof *x);
                    rd_rope(y, n_heads, hs, pos, thetas[th], layouts[li]);
                    rope_ref(ref, x, n_heads, hs, pos, thetas[th], layouts[li]);
                    const double tol = 1e-6 + 2.4e-7 * (pos + 1) * max_abs(x, (size_t)n);
                    for (int j = 0; j < n; j++)
                        if (!(fabs(y[j] - ref[j]) <= tol))
                            fail_msg("rope %s hs %d pos %d theta %g: x[%d] = %.9g, reference "
                                     "%.9g (tolerance %.3g)",
                                     layouts[li] == RD_ROPE_ADJACENT ? "adjacent" : "half", hs,
                                     pos, (double)thetas[th], j, (double)y[j], ref[j], tol);
                    if (pos == 0) assert_memory_equal(x, y, (size_t)n * sizeof *x);
                    free(ref);
                    free(y);
                    free(x);
                }
}

/* adjacent → half layout of one head: half[i] = adj[2i], half[i + hs/2] = adj[2i + 1]. */
static void adjacent_to_half(float *dst, const float *src, int n_heads, int hs) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < hs / 2; i++) {
            dst[h * hs + i] = src[h * hs + 2 * i];
            dst[h * hs + i + hs / 2] = src[h * hs + 2 * i + 1];
        }
}

static void half_to_adjacent(float *dst, const float *src, int n_heads, int hs) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < hs / 2; i++) {
            dst[h * hs + 2 * i] = src[h * hs + i];
            dst[h * hs + 2 * i + 1] = src[h * hs + i + hs / 2];
        }
}

/* Permuting to the half layout, rotating with HALF and permuting back is rotating with
 * ADJACENT; and every rotation keeps the norm of each pair (hence of each head). */
static void test_rope_layouts_agree_and_preserve_norm(void **state) {
    (void)state;
    const int n_heads = 4, hs = 32, n = n_heads * hs;
    uint64_t seed = 23;
    float adj[128], half[128], back[128], orig[128];
    for (int pos = 0; pos < 300; pos += 13) {
        for (int j = 0; j < n; j++) orig[j] = adj[j] = 3.0f * rng_uniform(&seed);
        adjacent_to_half(half, adj, n_heads, hs);
        rd_rope(adj, n_heads, hs, pos, 10000.0f, RD_ROPE_ADJACENT);
        rd_rope(half, n_heads, hs, pos, 10000.0f, RD_ROPE_HALF);
        half_to_adjacent(back, half, n_heads, hs);
        for (int j = 0; j < n; j++)
            if (!(fabsf(back[j] - adj[j]) <= 1e-6f * (1.0f + fabsf(adj[j]))))
                fail_msg("pos %d: half layout permuted back gives x[%d] = %.9g, adjacent %.9g",
                         pos, j, (double)back[j], (double)adj[j]);
        for (int j = 0; j < n; j += 2) {
            const double before = hypot(orig[j], orig[j + 1]);
            const double after = hypot(adj[j], adj[j + 1]);
            if (!(fabs(after - before) <= 1e-6 * (before + 1e-3)))
                fail_msg("pos %d: pair %d norm %.9g became %.9g", pos, j / 2, before, after);
        }
    }
}

/* ---- softmax and swiglu ------------------------------------------------------------ */

static void check_softmax(const float *in, int n) {
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    memcpy(x, in, (size_t)n * sizeof *x);
    rd_softmax(x, n);
    double max = in[0], denom = 0.0, sum = 0.0;
    for (int i = 1; i < n; i++) max = in[i] > max ? in[i] : max;
    for (int i = 0; i < n; i++) denom += exp((double)in[i] - max);
    for (int i = 0; i < n; i++) {
        const double ref = exp((double)in[i] - max) / denom;
        if (!isfinite(x[i]) || !(fabs(x[i] - ref) <= 1e-6 * ref + 1e-7))
            fail_msg("softmax of %d values: p[%d] = %.9g, reference %.9g", n, i, (double)x[i],
                     ref);
        sum += x[i];
    }
    if (!(fabs(sum - 1.0) <= 1e-5)) fail_msg("softmax of %d values sums to %.9g", n, sum);
    free(x);
}

static void test_softmax(void **state) {
    (void)state;
    const float one[] = {42.0f};
    const float large[] = {1000.0f, 1001.0f};
    const float very_negative[] = {-1000.0f, -1001.0f, -999.5f};
    const float mixed[] = {-80.0f, 0.0f, 80.0f, 3.0f, 80.0f};
    check_softmax(one, 1);
    check_softmax(large, 2);
    check_softmax(very_negative, 3);
    check_softmax(mixed, 5);
    uint64_t seed = 3;
    float *r = random_floats(1000, 10.0f, &seed);
    check_softmax(r, 1000);
    free(r);
    /* [1000, 1001] is [1/(1+e), e/(1+e)] exactly as the math says, not NaN. */
    float x[2] = {1000.0f, 1001.0f};
    rd_softmax(x, 2);
    assert_true(fabs(x[0] - 1.0 / (1.0 + M_E)) < 1e-6);
    assert_true(fabs(x[1] - M_E / (1.0 + M_E)) < 1e-6);
}

static void test_swiglu(void **state) {
    (void)state;
    uint64_t seed = 9;
    const size_t n = 203;
    float *g = random_floats(n, 8.0f, &seed);
    float *up = random_floats(n, 2.0f, &seed);
    g[0] = 0.0f;
    g[1] = -100.0f;
    g[2] = 100.0f;
    g[3] = -20.0f;
    float *orig = malloc(n * sizeof *orig);
    assert_non_null(orig);
    memcpy(orig, g, n * sizeof *g);
    rd_swiglu(g, up, n);
    for (size_t i = 0; i < n; i++) {
        const double s = (double)orig[i] / (1.0 + exp(-(double)orig[i]));
        const double ref = s * up[i];
        if (!isfinite(g[i]) || !(fabs(g[i] - ref) <= 1e-6 * fabs(ref) + 1e-30))
            fail_msg("swiglu[%zu] of gate %.9g, up %.9g: %.9g, reference %.9g", i,
                     (double)orig[i], (double)up[i], (double)g[i], ref);
    }
    assert_true(fabsf(rd_silu(1.0f) - (float)(1.0 / (1.0 + exp(-1.0)))) < 1e-7f);
    /* the backward: du = da·silu(g), dg = da·u·σ(g)·(1 + g·(1 − σ(g))) */
    float *da = random_floats(n, 1.0f, &seed);
    float *dg = malloc(n * sizeof *dg), *du = malloc(n * sizeof *du);
    assert_non_null(dg);
    assert_non_null(du);
    rd_swiglu_backward(dg, du, da, orig, up, n);
    for (size_t i = 0; i < n; i++) {
        const double x = orig[i], sig = 1.0 / (1.0 + exp(-x));
        const double rdu = (double)da[i] * x * sig;
        const double rdg = (double)da[i] * up[i] * sig * (1.0 + x * (1.0 - sig));
        if (!(fabs(du[i] - rdu) <= 1e-6 * fabs(rdu) + 1e-30) ||
            !(fabs(dg[i] - rdg) <= 1e-5 * fabs(rdg) + 1e-30))
            fail_msg("swiglu backward[%zu] at gate %.9g: du %.9g (reference %.9g), dg %.9g "
                     "(reference %.9g)", i, x, (double)du[i], rdu, (double)dg[i], rdg);
    }
    free(da);
    free(dg);
    free(du);
    free(orig);
    free(up);
    free(g);
}

/* ---- attention --------------------------------------------------------------------- */

/* Naive causal attention in double, straight from the definition. */
static void attention_ref(double *out, const float *q, const float *k, const float *v, int T,
                          int pos0, int n_heads, int n_kv_heads, int hs, size_t kv_stride) {
    const int group = n_heads / n_kv_heads, qd = n_heads * hs, L = pos0 + T;
    double *score = malloc((size_t)L * sizeof *score);
    assert_non_null(score);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_heads; h++) {
            const int kvh = h / group, visible = pos0 + t + 1;
            double max = -INFINITY, denom = 0.0;
            for (int p = 0; p < visible; p++) {
                double s = 0.0;
                for (int i = 0; i < hs; i++)
                    s += (double)q[t * qd + h * hs + i] * k[p * kv_stride + (size_t)kvh * hs + i];
                score[p] = s / sqrt((double)hs);
                if (score[p] > max) max = score[p];
            }
            for (int p = 0; p < visible; p++) denom += (score[p] = exp(score[p] - max));
            for (int i = 0; i < hs; i++) {
                double acc = 0.0;
                for (int p = 0; p < visible; p++)
                    acc += score[p] / denom * v[p * kv_stride + (size_t)kvh * hs + i];
                out[t * qd + h * hs + i] = acc;
            }
        }
    free(score);
}

static void check_attention(int T, int pos0, int n_heads, int n_kv_heads, int hs,
                            uint64_t seed) {
    const int qd = n_heads * hs, kv_dim = n_kv_heads * hs, L = pos0 + T;
    const size_t kv_stride = (size_t)kv_dim + 8; /* rows wider than kv_dim, as in a cache */
    float *q = random_floats((size_t)T * qd, 2.0f, &seed);
    float *k = random_floats((size_t)L * kv_stride, 2.0f, &seed);
    float *v = random_floats((size_t)L * kv_stride, 3.0f, &seed);
    float *out = malloc(((size_t)T * qd + GUARD) * sizeof *out);
    float *att = malloc((size_t)T * (size_t)L * sizeof *att); /* exactly the documented size */
    double *ref = malloc((size_t)T * qd * sizeof *ref);
    assert_non_null(out);
    assert_non_null(att);
    assert_non_null(ref);
    for (size_t i = 0; i < (size_t)T * qd; i++) out[i] = NAN;
    for (size_t i = 0; i < GUARD; i++) out[(size_t)T * qd + i] = GUARD_VALUE;
    rd_attention(out, q, k, v, T, pos0, n_heads, n_kv_heads, hs, kv_stride, att);
    attention_ref(ref, q, k, v, T, pos0, n_heads, n_kv_heads, hs, kv_stride);
    const double tol = 2e-5 * (1.0 + max_abs(v, (size_t)L * kv_stride));
    for (size_t i = 0; i < (size_t)T * qd; i++)
        if (!(fabs(out[i] - ref[i]) <= tol))
            fail_msg("attention T %d pos0 %d heads %d/%d hs %d: out[t %zu][%zu] = %.9g, "
                     "reference %.9g (tolerance %.3g)",
                     T, pos0, n_heads, n_kv_heads, hs, i / (size_t)qd, i % (size_t)qd,
                     (double)out[i], ref[i], tol);
    for (size_t i = 0; i < GUARD; i++) assert_true(out[(size_t)T * qd + i] == GUARD_VALUE);
    free(ref);
    free(att);
    free(out);
    free(v);
    free(k);
    free(q);
}

static void test_attention_small_path(void **state) {
    (void)state;
    const int pos0s[] = {0, 1, 9, 30};
    for (int T = 1; T <= RD_MATVEC_MAX_ROWS; T++)
        for (size_t pi = 0; pi < 4; pi++) {
            check_attention(T, pos0s[pi], 8, 2, 16, 100u + (uint64_t)T * 10 + pi); /* GQA */
            check_attention(T, pos0s[pi], 4, 4, 32, 200u + (uint64_t)T * 10 + pi); /* MHA */
        }
}

static void test_attention_blas_path(void **state) {
    (void)state;
    const int pos0s[] = {0, 3, 21};
    for (int T = RD_MATVEC_MAX_ROWS + 1; T <= 40; T++)
        for (size_t pi = 0; pi < 3; pi++) {
            check_attention(T, pos0s[pi], 8, 2, 16, 300u + (uint64_t)T * 10 + pi); /* GQA */
            check_attention(T, pos0s[pi], 4, 4, 32, 400u + (uint64_t)T * 10 + pi); /* MHA */
        }
}

/* The decode path's weighted sum of values is bit for bit the plain loop (the probabilities
 * times each value row, added in position order, one rounding each): q = 0 makes every
 * score 0, so the probabilities are rd_softmax of zeros, and the reference needs no dot
 * product. Head sizes with a register path (32, 48, 64, 128) and one without (40). */
static void test_attention_small_values_bit_exact(void **state) {
    (void)state;
    const int hss[] = {32, 48, 64, 128, 40};
    uint64_t seed = 5150;
    for (size_t hi = 0; hi < sizeof hss / sizeof *hss; hi++)
        for (int T = 1; T <= RD_MATVEC_MAX_ROWS; T++) {
            const int hs = hss[hi], n_heads = 4, n_kv = 2, pos0 = 37, L = pos0 + T;
            const int qd = n_heads * hs, group = n_heads / n_kv;
            const size_t kv_stride = (size_t)n_kv * hs + 16; /* rows padded */
            float *q = calloc((size_t)T * qd, sizeof *q);
            float *k = random_floats((size_t)L * kv_stride, 1.0f, &seed);
            float *v = random_floats((size_t)L * kv_stride, 3.0f, &seed);
            float *out = malloc((size_t)T * qd * sizeof *out);
            float *ref = malloc((size_t)T * qd * sizeof *ref);
            float *att = malloc((size_t)T * (size_t)L * sizeof *att);
            assert_non_null(q);
            assert_non_null(out);
            assert_non_null(ref);
            assert_non_null(att);
            rd_attention(out, q, k, v, T, pos0, n_heads, n_kv, hs, kv_stride, att);
            for (int t = 0; t < T; t++) {
                const int visible = pos0 + t + 1;
                for (int p = 0; p < visible; p++) att[p] = 0.0f;
                rd_softmax(att, visible);
                for (int h = 0; h < n_heads; h++) {
                    float *oh = ref + (size_t)t * qd + (size_t)h * hs;
                    for (int i = 0; i < hs; i++) oh[i] = 0.0f;
                    for (int p = 0; p < visible; p++) {
                        const float *vp = v + (size_t)p * kv_stride + (size_t)(h / group) * hs;
                        for (int i = 0; i < hs; i++) oh[i] += att[p] * vp[i];
                    }
                }
            }
            for (size_t i = 0; i < (size_t)T * qd; i++)
                if (memcmp(&out[i], &ref[i], sizeof out[i]) != 0)
                    fail_msg("hs %d T %d: out[%zu] = %.9g, the plain sum %.9g", hs, T, i,
                             (double)out[i], (double)ref[i]);
            free(att);
            free(ref);
            free(out);
            free(v);
            free(k);
            free(q);
        }
}

/* ---- attention for training (B sequences, probabilities kept, backward) ------------- */

typedef struct attention_train_ref {
    double *out, *dq, *dk, *dv; /* (B·T, qd), (B·T, qd), (B·T, kvd), (B·T, kvd) */
} attention_train_ref;

/* Forward and backward in double from the definitions: P = softmax(q·kᵀ/√hs) causal,
 * out = P·v; dP = dout·vᵀ, dS = P ⊙ (dP − Σ_j P·dP)/√hs, dq = dS·k, dk = dSᵀ·q, dv = Pᵀ·dout. */
static attention_train_ref attention_train_reference(const float *q, const float *k,
                                                     const float *v, const float *dout, int B,
                                                     int T, int H, int KV, int hs) {
    const int qd = H * hs, kvd = KV * hs, group = H / KV;
    const size_t N = (size_t)B * T;
    attention_train_ref r = {calloc(N * qd, sizeof(double)), calloc(N * qd, sizeof(double)),
                             calloc(N * kvd, sizeof(double)), calloc(N * kvd, sizeof(double))};
    double *P = malloc((size_t)T * sizeof *P), *dS = malloc((size_t)T * sizeof *dS);
    assert_true(r.out && r.dq && r.dk && r.dv && P && dS);
    const double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const size_t rt = (size_t)b * T + t, qo = rt * qd + (size_t)h * hs;
                const size_t ko = (size_t)(h / group) * hs;
                double max = -INFINITY, denom = 0.0, s = 0.0;
                for (int j = 0; j <= t; j++) {
                    double x = 0.0;
                    for (int c = 0; c < hs; c++)
                        x += (double)q[qo + c] * k[((size_t)b * T + j) * kvd + ko + c];
                    P[j] = x * scale;
                    if (P[j] > max) max = P[j];
                }
                for (int j = 0; j <= t; j++) denom += (P[j] = exp(P[j] - max));
                for (int j = 0; j <= t; j++) {
                    P[j] /= denom;
                    const float *vj = v + ((size_t)b * T + j) * kvd + ko;
                    double dp = 0.0;
                    for (int c = 0; c < hs; c++) {
                        r.out[qo + c] += P[j] * vj[c];
                        dp += (double)dout[qo + c] * vj[c];
                    }
                    dS[j] = dp;
                    s += P[j] * dp;
                }
                for (int j = 0; j <= t; j++) {
                    const size_t jo = ((size_t)b * T + j) * kvd + ko;
                    const double ds = P[j] * (dS[j] - s) * scale;
                    for (int c = 0; c < hs; c++) {
                        r.dq[qo + c] += ds * k[jo + c];
                        r.dk[jo + c] += ds * q[qo + c];
                        r.dv[jo + c] += P[j] * dout[qo + c];
                    }
                }
            }
    free(P);
    free(dS);
    return r;
}

static void expect_close_to_ref(const float *x, const double *ref, size_t n, const char *what,
                                 int B, int T, int H, int KV, int hs) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(ref[i]));
    const double tol = 3e-5 * (1.0 + m);
    for (size_t i = 0; i < n; i++)
        if (!(fabs(x[i] - ref[i]) <= tol))
            fail_msg("training attention B %d T %d heads %d/%d hs %d: %s[%zu] = %.9g, "
                     "reference %.9g (tolerance %.3g)", B, T, H, KV, hs, what, i, (double)x[i],
                     ref[i], tol);
}

/* One shape: forward and backward against the double reference with no pool, then with a
 * 3-thread pool, which must give the same bits. dk and dv start as NaN (overwritten), the
 * scratch is exactly the documented size with a guard after it. */
static void check_attention_train(int B, int T, int H, int KV, int hs, uint64_t seed,
                                  rd_pool *pool) {
    const int qd = H * hs, kvd = KV * hs;
    const size_t N = (size_t)B * T, np = (size_t)B * H * T * T;
    const size_t ns = rd_attention_train_scratch_floats(B, T, KV, hs);
    float *q = random_floats(N * qd, 2.0f, &seed), *k = random_floats(N * kvd, 2.0f, &seed);
    float *v = random_floats(N * kvd, 3.0f, &seed), *dout = random_floats(N * qd, 1.0f, &seed);
    attention_train_ref r = attention_train_reference(q, k, v, dout, B, T, H, KV, hs);
    float *res[2][5]; /* [run] out, probs, dq, dk, dv */
    const size_t sizes[5] = {N * qd, np, N * qd, N * kvd, N * kvd};
    float *scratch = malloc((ns + GUARD) * sizeof *scratch);
    assert_non_null(scratch);
    for (int run = 0; run < 2; run++) {
        for (int i = 0; i < 5; i++) {
            assert_non_null(res[run][i] = malloc(sizes[i] * sizeof(float)));
            for (size_t j = 0; j < sizes[i]; j++) res[run][i][j] = NAN;
        }
        for (size_t i = 0; i < GUARD; i++) scratch[ns + i] = GUARD_VALUE;
        rd_pool *p = run ? pool : NULL;
        rd_attention_train(res[run][0], res[run][1], q, k, v, B, T, H, KV, hs, scratch, p);
        rd_attention_train_backward(res[run][2], res[run][3], res[run][4], dout, res[run][1], q,
                                    k, v, B, T, H, KV, hs, scratch, p);
        for (size_t i = 0; i < GUARD; i++) assert_true(scratch[ns + i] == GUARD_VALUE);
    }
    expect_close_to_ref(res[0][0], r.out, N * qd, "out", B, T, H, KV, hs);
    expect_close_to_ref(res[0][2], r.dq, N * qd, "dq", B, T, H, KV, hs);
    expect_close_to_ref(res[0][3], r.dk, N * kvd, "dk", B, T, H, KV, hs);
    expect_close_to_ref(res[0][4], r.dv, N * kvd, "dv", B, T, H, KV, hs);
    /* probabilities: rows sum to 1 up to t, zeros after */
    for (size_t row = 0; row < (size_t)B * H * T; row++) {
        const float *pr = res[0][1] + row * T;
        const int t = (int)(row % (size_t)T);
        double sum = 0.0;
        for (int j = 0; j <= t; j++) sum += pr[j];
        assert_true(fabs(sum - 1.0) < 1e-5);
        for (int j = t + 1; j < T; j++) assert_true(pr[j] == 0.0f);
    }
    for (int i = 0; i < 5; i++) {
        if (memcmp(res[0][i], res[1][i], sizes[i] * sizeof(float)) != 0)
            fail_msg("training attention B %d T %d heads %d/%d hs %d: output %d differs between "
                     "1 and %d threads", B, T, H, KV, hs, i, rd_pool_threads(pool));
        free(res[0][i]);
        free(res[1][i]);
    }
    free(r.out);
    free(r.dq);
    free(r.dk);
    free(r.dv);
    free(scratch);
    free(dout);
    free(v);
    free(k);
    free(q);
}

static void test_attention_train(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(3, &err);
    assert_non_null(pool);
    check_attention_train(2, 7, 4, 2, 5, 11, pool);   /* GQA, odd sizes */
    check_attention_train(3, 33, 8, 8, 16, 12, pool); /* MHA */
    check_attention_train(1, 64, 6, 1, 48, 13, pool); /* MQA: one task per sequence */
    check_attention_train(2, 1, 2, 2, 32, 14, pool);  /* one position */
    check_attention_train(4, 20, 8, 4, 32, 15, pool);
    rd_pool_free(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_plain_types),
        cmocka_unit_test(test_matmul_q8_0),
        cmocka_unit_test(test_matmul_several_panels),
        cmocka_unit_test(test_matmul_gemm_equals_one_sgemm),
        cmocka_unit_test(test_matmul_many_equals_separate),
        cmocka_unit_test(test_matmul_many_rows_equals_one_row),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope_matches_formula),
        cmocka_unit_test(test_rope_layouts_agree_and_preserve_norm),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_attention_small_path),
        cmocka_unit_test(test_attention_small_values_bit_exact),
        cmocka_unit_test(test_attention_blas_path),
        cmocka_unit_test(test_attention_train),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
