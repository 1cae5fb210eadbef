/* bf16 GEMM (src/core/gemm_bf16.c): packing of frozen weights and both products, on both
 * kernels, against a double-precision sum written here.
 *
 * The reference multiplies the SAME bf16-rounded values the kernel multiplies (A and W
 * each rounded with rd_f32_to_bf16; W first widened by its type's to_f32), so the only
 * error left is the kernel's f32 accumulation:
 *   |C − ref| ≤ TOL · (Σ_k |a_k · w_k| + |C₀|) + TINY
 * where C₀ is C's old value when accumulating (0 otherwise). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/dtype.h"
#include "core/gemm_bf16.h"
#include "core/pool.h"
#include "redit/weights.h"
#include "redit/rng.h"

#define TOL 1e-5
#define TINY 1e-30
#define GUARD_VALUE 4242.0f

/* ---- helpers ---------------------------------------------------------------------- */

/* Uniform in [-1, 1). */
static float rng_uniform(uint64_t *s) {
    return (float)((double)(rd_splitmix64(s) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    assert_non_null(p);
    return p;
}

static double bf16_round(float x) { return (double)rd_bf16_to_f32(rd_f32_to_bf16(x)); }

/* A weight of type t from random floats: the rd_matrix view, its storage, and wr
 * (rows, cols): the widened values rounded to bf16, in double — what the kernel must use. */
typedef struct test_weight {
    rd_matrix m;
    void *data;
    double *wr;
} test_weight;

static void test_weight_make(test_weight *tw, rd_dtype t, int64_t rows, int64_t cols,
                             uint64_t *seed) {
    const rd_dtype_info *info = rd_dtype_info_of(t);
    assert_non_null(info);
    assert_int_equal(cols % (int64_t)info->block_elems, 0);
    const size_t row_bytes = (size_t)cols / info->block_elems * info->block_bytes;
    float *row = xmalloc((size_t)cols * sizeof *row);
    tw->data = xmalloc((size_t)rows * row_bytes);
    tw->wr = xmalloc((size_t)(rows * cols) * sizeof *tw->wr);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) row[c] = rng_uniform(seed);
        char *dst = (char *)tw->data + (size_t)r * row_bytes;
        info->from_f32(row, dst, (size_t)cols);
        info->to_f32(dst, row, (size_t)cols);
        for (int64_t c = 0; c < cols; c++) tw->wr[r * cols + c] = bf16_round(row[c]);
    }
    free(row);
    rd_error err = {0};
    assert_int_equal(rd_matrix_init(&tw->m, t, tw->data, rows, cols, &err), 0);
}

static void test_weight_free(test_weight *tw) {
    free(tw->data);
    free(tw->wr);
}

/* One product to check: shapes as the kernel sees them (inner K, output N). */
typedef struct problem {
    const test_weight *tw;
    const rd_bf16_weight *w;
    rd_bf16_mode mode;
    int64_t M, K, N;
    const float *A; /* (M, K), dense */
    double *ref;    /* (M, N): Σ bf16(a)·w, no C₀ */
    double *mag;    /* (M, N): Σ |bf16(a)·w| */
} problem;

static void problem_make(problem *p, const test_weight *tw, const rd_bf16_weight *w,
                         rd_bf16_mode mode, int64_t M, uint64_t *seed) {
    const int64_t R = tw->m.rows, Kc = tw->m.cols;
    *p = (problem){.tw = tw, .w = w, .mode = mode, .M = M};
    p->K = mode == RD_BF16_FORWARD ? Kc : R;
    p->N = mode == RD_BF16_FORWARD ? R : Kc;
    float *A = xmalloc((size_t)(M * p->K) * sizeof *A);
    for (int64_t i = 0; i < M * p->K; i++) A[i] = rng_uniform(seed);
    p->A = A;
    p->ref = xmalloc((size_t)(M * p->N) * sizeof *p->ref);
    p->mag = xmalloc((size_t)(M * p->N) * sizeof *p->mag);
    double *ar = xmalloc((size_t)p->K * sizeof *ar);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t k = 0; k < p->K; k++) ar[k] = bf16_round(A[i * p->K + k]);
        for (int64_t n = 0; n < p->N; n++) {
            double s = 0.0, m = 0.0;
            for (int64_t k = 0; k < p->K; k++) {
                const double wv = mode == RD_BF16_FORWARD ? tw->wr[n * Kc + k] : tw->wr[k * Kc + n];
                s += ar[k] * wv;
                m += fabs(ar[k] * wv);
            }
            p->ref[i * p->N + n] = s;
            p->mag[i * p->N + n] = m;
        }
    }
    free(ar);
}

static void problem_free(problem *p) {
    free((void *)p->A);
    free(p->ref);
    free(p->mag);
}

/* How one call is made. */
typedef struct variant {
    rd_gemm_kernel kernel;
    rd_pool *pool;
    int accumulate;
    size_t lda_pad, ldc_pad; /* extra floats per row of A and C */
} variant;

/* Runs the product with variant v and checks every element of C against the reference and
 * every padding float of C against its guard. Returns C (M, N), dense, for comparisons. */
static float *run_and_check(const problem *p, const variant *v, uint64_t seed) {
    const size_t lda = (size_t)p->K + v->lda_pad, ldc = (size_t)p->N + v->ldc_pad;
    const size_t M = (size_t)p->M, N = (size_t)p->N, K = (size_t)p->K;
    /* A with its stride; the last row ends exactly at the end of the allocation. */
    float *A = xmalloc(((M ? M - 1 : 0) * lda + K) * sizeof *A);
    for (size_t i = 0; i < M; i++) memcpy(A + i * lda, p->A + i * K, K * sizeof *A);
    float *C = xmalloc((M * ldc) * sizeof *C);
    float *C0 = xmalloc((M * N) * sizeof *C0);
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < ldc; j++)
            C[i * ldc + j] = j >= N ? GUARD_VALUE : v->accumulate ? rng_uniform(&seed) : NAN;
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) C0[i * N + j] = v->accumulate ? C[i * ldc + j] : 0.0f;
    /* Scratch of exactly the documented size, deliberately misaligned. */
    const size_t sbytes = rd_gemm_bf16_scratch_bytes(v->pool);
    unsigned char *sbuf = xmalloc(sbytes + 3);
    rd_gemm_bf16_opts opts = {.kernel = v->kernel};
    rd_error err = {0};
    int rc = rd_gemm_bf16(C, ldc, A, lda, p->M, p->w, p->mode, v->accumulate, v->pool,
                          sbuf + 3, &opts, &err);
    if (rc != 0) fail_msg("rd_gemm_bf16 failed: %s", err.msg);

    float *out = xmalloc((M * N) * sizeof *out);
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            const double ref = p->ref[i * N + j] + C0[i * N + j];
            const double tol = TOL * (p->mag[i * N + j] + fabs(C0[i * N + j])) + TINY;
            const float got = C[i * ldc + j];
            if (!(fabs(got - ref) <= tol))
                fail_msg("%s %s M %zu K %zu N %zu acc %d threads %d lda %zu ldc %zu: "
                         "C[%zu][%zu] = %.9g, reference %.9g (tolerance %.3g)",
                         rd_gemm_kernel_name(v->kernel),
                         p->mode == RD_BF16_FORWARD ? "forward" : "backward", M, K, N,
                         v->accumulate, rd_pool_threads(v->pool), lda, ldc, i, j,
                         (double)got, ref, tol);
            out[i * N + j] = got;
        }
        for (size_t j = N; j < ldc; j++)
            if (C[i * ldc + j] != GUARD_VALUE)
                fail_msg("row %zu: padding column %zu of C was written", i, j);
    }
    free(sbuf);
    free(C0);
    free(C);
    free(A);
    return out;
}

/* The kernels this CPU runs (the portable one always). */
static int n_kernels(rd_gemm_kernel kernels[3]) {
    int n = 0;
    kernels[n++] = RD_GEMM_KERNEL_PORTABLE;
    if (rd_gemm_kernel_available(RD_GEMM_KERNEL_AVX512BF16))
        kernels[n++] = RD_GEMM_KERNEL_AVX512BF16;
    if (rd_gemm_kernel_available(RD_GEMM_KERNEL_AMX)) kernels[n++] = RD_GEMM_KERNEL_AMX;
    return n;
}

/* Every variant (kernel × accumulate × pool, strides tight and padded) on one problem.
 * Overwriting results must not depend on the pool: the split never changes the order in
 * which one element's terms are added, so they agree bit for bit. */
static void check_all_variants(const problem *p, rd_pool *pool2, uint64_t seed) {
    rd_gemm_kernel kernels[3];
    const int nk = n_kernels(kernels);
    for (int ki = 0; ki < nk; ki++) {
        for (int acc = 0; acc < 2; acc++) {
            float *single = NULL;
            for (int pi = 0; pi < 2; pi++) {
                const variant v = {
                    .kernel = kernels[ki], .pool = pi ? pool2 : NULL, .accumulate = acc,
                    .lda_pad = (size_t)(acc + pi) % 2 ? 5 : 0,
                    .ldc_pad = (size_t)(acc + pi + 1) % 2 ? 3 : 0,
                };
                float *out = run_and_check(p, &v, seed + (uint64_t)(ki * 4 + acc * 2 + pi));
                if (!acc && !pi) single = out;
                else if (!acc) {
                    assert_memory_equal(single, out, (size_t)(p->M * p->N) * sizeof *out);
                    free(out);
                } else
                    free(out);
            }
            free(single);
        }
    }
}

static const int64_t MS[] = {1, 3, 7, 64, 300};

/* One weight shape: packed for both products, every M, both modes, every variant. */
static void sweep_shape(rd_dtype t, int64_t rows, int64_t cols, rd_pool *pool2,
                        const int64_t *ms, size_t n_ms, uint64_t seed) {
    test_weight tw;
    test_weight_make(&tw, t, rows, cols, &seed);
    rd_error err = {0};
    rd_bf16_weight *w = rd_bf16_weight_new(&tw.m, RD_BF16_FORWARD | RD_BF16_BACKWARD, pool2, &err);
    if (!w) fail_msg("rd_bf16_weight_new: %s", err.msg);
    for (size_t mi = 0; mi < n_ms; mi++)
        for (int mode = RD_BF16_FORWARD; mode <= RD_BF16_BACKWARD; mode++) {
            problem p;
            problem_make(&p, &tw, w, (rd_bf16_mode)mode, ms[mi], &seed);
            check_all_variants(&p, pool2, seed);
            problem_free(&p);
        }
    rd_bf16_weight_free(w);
    test_weight_free(&tw);
}

static rd_pool *pool2_new(void) {
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(2, &err);
    assert_non_null(pool);
    assert_int_equal(rd_pool_threads(pool), 2);
    return pool;
}

/* One overwriting call on the caller's thread with its own scratch. */
static int gemm1(float *C, size_t ldc, const float *A, size_t lda, int64_t M,
                 const rd_bf16_weight *w, rd_bf16_mode mode, const rd_gemm_bf16_opts *o,
                 rd_error *err) {
    return rd_gemm_bf16(C, ldc, A, lda, M, w, mode, 0, NULL, NULL, o, err);
}

/* ---- tests -------------------------------------------------------------------------- */

/* Widths below, at and above the 32-column panel, odd and even (odd K leaves a half pair),
 * against every M. */
static void test_small_shapes(void **state) {
    (void)state;
    rd_pool *pool = pool2_new();
    const int64_t dims[] = {1, 2, 31, 32, 33};
    for (size_t r = 0; r < 5; r++)
        for (size_t c = 0; c < 5; c++)
            sweep_shape(RD_DTYPE_F32, dims[r], dims[c], pool, MS, 5, 100 + 10 * r + c);
    rd_pool_free(pool);
}

/* Model widths: K spans several 256-wide blocks (768) or ends in a partial one (288); N
 * spans many panels, and M = 300 spans several row blocks and tasks. */
static void test_model_shapes(void **state) {
    (void)state;
    rd_pool *pool = pool2_new();
    const int64_t shapes[][2] = {{288, 288}, {768, 288}, {33, 768}, {768, 31}, {768, 768}};
    for (size_t s = 0; s < 5; s++)
        sweep_shape(RD_DTYPE_F32, shapes[s][0], shapes[s][1], pool, MS, 5, 200 + s);
    rd_pool_free(pool);
}

/* A long inner dimension: more k blocks than one packed group of A holds, so C is added to
 * across groups. (40, 2700) is long forward, (2700, 40) long backward. A pool of 3 threads
 * (more than the 2 the other tests use) shares the scratch slots differently. */
static void test_long_inner(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(3, &err);
    assert_non_null(pool);
    const int64_t ms[] = {1, 13, 130};
    sweep_shape(RD_DTYPE_F32, 40, 2700, pool, ms, 3, 400);
    sweep_shape(RD_DTYPE_F32, 2700, 40, pool, ms, 3, 401);
    rd_pool_free(pool);
}

/* Weights stored as F16, BF16 and Q8_0 are widened by their type and then rounded. */
static void test_weight_types(void **state) {
    (void)state;
    rd_pool *pool = pool2_new();
    const rd_dtype types[] = {RD_DTYPE_F16, RD_DTYPE_BF16, RD_DTYPE_Q8_0};
    const int64_t ms[] = {5, 70};
    for (size_t t = 0; t < 3; t++) sweep_shape(types[t], 45, 96, pool, ms, 2, 300 + t);
    rd_pool_free(pool);
}

/* The panel layout the header documents, word by word, padding included. */
static void test_packed_layout(void **state) {
    (void)state;
    uint64_t seed = 7;
    test_weight tw;
    const int64_t R = 37, Kc = 5;
    test_weight_make(&tw, RD_DTYPE_F32, R, Kc, &seed);
    rd_error err = {0};
    rd_bf16_weight *w = rd_bf16_weight_new(&tw.m, RD_BF16_FORWARD | RD_BF16_BACKWARD, NULL, &err);
    assert_non_null(w);
    assert_int_equal(w->rows, R);
    assert_int_equal(w->cols, Kc);
    const float *wf = tw.data;
    /* B (k, n) → word [j][p][c] = (B[2p][32j+c], B[2p+1][32j+c]), zero outside B. */
    for (int mode = RD_BF16_FORWARD; mode <= RD_BF16_BACKWARD; mode++) {
        const rd_bf16_panels *p = mode == RD_BF16_FORWARD ? &w->fwd : &w->bwd;
        const int64_t k = mode == RD_BF16_FORWARD ? Kc : R, n = mode == RD_BF16_FORWARD ? R : Kc;
        assert_int_equal(p->k, k);
        assert_int_equal(p->n, n);
        assert_int_equal(p->k_pairs, (k + 1) / 2);
        assert_int_equal(p->k_stride, (p->k_pairs + 15) / 16 * 16);
        assert_int_equal(p->n_panels, (n + 31) / 32);
        assert_int_equal((uintptr_t)p->data % 64, 0);
        for (int64_t j = 0; j < p->n_panels; j++)
            for (int64_t q = 0; q < p->k_stride; q++) /* the pairs past k_pairs are zero */
                for (int64_t c = 0; c < RD_BF16_PANEL; c++) {
                    uint16_t half[2] = {0, 0};
                    for (int h = 0; h < 2; h++) {
                        const int64_t kk = 2 * q + h, nn = 32 * j + c;
                        if (kk >= k || nn >= n) continue;
                        const float b =
                            mode == RD_BF16_FORWARD ? wf[nn * Kc + kk] : wf[kk * Kc + nn];
                        half[h] = rd_f32_to_bf16(b);
                    }
                    const uint32_t want = (uint32_t)half[0] | (uint32_t)half[1] << 16;
                    assert_int_equal(p->data[(j * p->k_stride + q) * RD_BF16_PANEL + c], want);
                }
    }
    /* forward: 2 panels × 16 pairs (3 padded), backward: 1 panel × 32 pairs (19 padded) */
    assert_int_equal(rd_bf16_weight_bytes(w), (size_t)(2 * 16 * 32 + 1 * 32 * 32) * sizeof(uint32_t));
    assert_int_equal(rd_bf16_weight_bytes_for(R, Kc, RD_BF16_FORWARD | RD_BF16_BACKWARD),
                     rd_bf16_weight_bytes(w));
    rd_bf16_weight_free(w);

    /* One packing only: the other stays NULL and is refused by the multiply. */
    w = rd_bf16_weight_new(&tw.m, RD_BF16_BACKWARD, NULL, &err);
    assert_non_null(w);
    assert_null(w->fwd.data);
    assert_non_null(w->bwd.data);
    float A[5] = {1, 2, 3, 4, 5}, C[37];
    for (int i = 0; i < 37; i++) C[i] = GUARD_VALUE;
    err.msg[0] = 0;
    assert_int_equal(gemm1(C, 37, A, 5, 1, w, RD_BF16_FORWARD, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "forward"));
    for (int i = 0; i < 37; i++) assert_true(C[i] == GUARD_VALUE);
    rd_bf16_weight_free(w);
    test_weight_free(&tw);
}

/* Bad arguments are refused with a message and leave C alone; M = 0 does nothing. */
static void test_errors(void **state) {
    (void)state;
    uint64_t seed = 9;
    test_weight tw;
    test_weight_make(&tw, RD_DTYPE_F32, 4, 6, &seed);
    rd_error err = {0};
    assert_null(rd_bf16_weight_new(&tw.m, 8, NULL, &err));
    assert_non_null(strstr(err.msg, "modes"));
    assert_null(rd_bf16_weight_new(NULL, RD_BF16_FORWARD, NULL, &err));
    rd_matrix empty = tw.m;
    empty.rows = 0;
    assert_null(rd_bf16_weight_new(&empty, RD_BF16_FORWARD, NULL, &err));

    rd_bf16_weight *w = rd_bf16_weight_new(&tw.m, RD_BF16_FORWARD | RD_BF16_BACKWARD, NULL, &err);
    assert_non_null(w);
    float A[2 * 6] = {0}, C[2 * 6];
    for (int i = 0; i < 12; i++) C[i] = GUARD_VALUE;
    err.msg[0] = 0;
    /* forward: K = 6, N = 4 */
    assert_int_equal(gemm1(C, 4, A, 5, 2, w, RD_BF16_FORWARD, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "lda"));
    assert_int_equal(gemm1(C, 3, A, 6, 2, w, RD_BF16_FORWARD, NULL, &err), -1);
    assert_int_equal(gemm1(C, 4, A, 6, -1, w, RD_BF16_FORWARD, NULL, &err), -1);
    assert_int_equal(gemm1(C, 4, A, 6, 2, w, (rd_bf16_mode)3, NULL, &err), -1);
    assert_int_equal(gemm1(C, 4, A, 6, 2, NULL, RD_BF16_FORWARD, NULL, &err), -1);
    /* backward: K = 4, N = 6 — ldc 4 is too small there */
    assert_int_equal(gemm1(C, 4, A, 6, 2, w, RD_BF16_BACKWARD, NULL, &err), -1);
    if (!rd_gemm_kernel_available(RD_GEMM_KERNEL_AVX512BF16)) {
        rd_gemm_bf16_opts o = {.kernel = RD_GEMM_KERNEL_AVX512BF16};
        assert_int_equal(gemm1(C, 4, A, 6, 2, w, RD_BF16_FORWARD, &o, &err), -1);
    }
    for (int i = 0; i < 12; i++) assert_true(C[i] == GUARD_VALUE);
    assert_int_equal(gemm1(NULL, 4, NULL, 6, 0, w, RD_BF16_FORWARD, NULL, &err), 0);
    rd_bf16_weight_free(w);
    test_weight_free(&tw);
}

/* Kernel names and availability are consistent; AUTO picks the fast one where it runs. */
static void test_kernel_choice(void **state) {
    (void)state;
    assert_true(rd_gemm_kernel_available(RD_GEMM_KERNEL_AUTO));
    assert_true(rd_gemm_kernel_available(RD_GEMM_KERNEL_PORTABLE));
    assert_string_equal(rd_gemm_kernel_name(RD_GEMM_KERNEL_PORTABLE), "portable");
    assert_string_equal(rd_gemm_kernel_name(RD_GEMM_KERNEL_AUTO),
                        rd_gemm_kernel_available(RD_GEMM_KERNEL_AMX)          ? "amx"
                        : rd_gemm_kernel_available(RD_GEMM_KERNEL_AVX512BF16) ? "avx512bf16"
                                                                              : "portable");
    assert_string_equal(rd_gemm_kernel_name(RD_GEMM_KERNEL_AMX), "amx");
    /* AMX packs with the AVX512-BF16 code: never one without the other */
    if (rd_gemm_kernel_available(RD_GEMM_KERNEL_AMX))
        assert_true(rd_gemm_kernel_available(RD_GEMM_KERNEL_AVX512BF16));
    printf("bf16 gemm kernel here: %s\n", rd_gemm_kernel_name(RD_GEMM_KERNEL_AUTO));
}

/* Rounding of A follows rd_f32_to_bf16 exactly (ties to even, carries into the exponent),
 * on both kernels: with W = the identity, C reproduces bf16(A). */
static void test_rounding_of_a(void **state) {
    (void)state;
    const int64_t K = 40;
    float *wv = xmalloc((size_t)(K * K) * sizeof *wv);
    for (int64_t r = 0; r < K; r++)
        for (int64_t c = 0; c < K; c++) wv[r * K + c] = r == c ? 1.0f : 0.0f;
    rd_matrix m;
    rd_error err = {0};
    assert_int_equal(rd_matrix_init(&m, RD_DTYPE_F32, wv, K, K, &err), 0);
    rd_bf16_weight *w = rd_bf16_weight_new(&m, RD_BF16_FORWARD, NULL, &err);
    assert_non_null(w);
    float A[40], C[40];
    const uint32_t bits[] = {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f807fffu, 0xbf808000u,
                             0x477fffffu, 0x00000001u, 0x80000000u};
    for (int i = 0; i < 40; i++) {
        uint32_t b = bits[i % 8] + (uint32_t)(i / 8) * 0x00800000u * (i % 8 < 4);
        memcpy(&A[i], &b, sizeof b);
    }
    rd_gemm_kernel kernels[3];
    const int nk = n_kernels(kernels);
    for (int ki = 0; ki < nk; ki++) {
        rd_gemm_bf16_opts o = {.kernel = kernels[ki]};
        assert_int_equal(gemm1(C, 40, A, 40, 1, w, RD_BF16_FORWARD, &o, &err), 0);
        for (int i = 0; i < 40; i++) {
            const float want = rd_bf16_to_f32(rd_f32_to_bf16(A[i]));
            /* vdpbf16ps flushes denormals */
            if (fabsf(want) < 1e-37f) {
                assert_true(fabsf(C[i]) < 1e-37f);
                continue;
            }
            if (C[i] != want)
                fail_msg("%s: A %a rounds to %a, expected %a", rd_gemm_kernel_name(kernels[ki]),
                         (double)A[i], (double)C[i], (double)want);
        }
    }
    rd_bf16_weight_free(w);
    free(wv);
}

/* ---- the weight gradient: C (M, N) = Aᵀ · B, A (K, M), B (K, N) -------------------- */

/* One call of rd_gemm_bf16_tn with padded strides, checked element by element against the
 * double sum of the bf16-rounded operands, with C's padding guarded. Returns C (M, N),
 * dense, for comparisons. */
static float *tn_run_and_check(int64_t M, int64_t N, int64_t K, const float *A, const float *B,
                               const double *ref, const double *mag, rd_gemm_kernel kernel,
                               rd_pool *pool, int accumulate, size_t pad, uint64_t seed) {
    const size_t lda = (size_t)M + pad, ldb = (size_t)N + 2 * pad, ldc = (size_t)N + pad;
    float *As = xmalloc((size_t)K * lda * sizeof *As), *Bs = xmalloc((size_t)K * ldb * sizeof *Bs);
    for (int64_t e = 0; e < K; e++) {
        for (size_t i = 0; i < lda; i++) As[e * lda + i] = i < (size_t)M ? A[e * M + i] : NAN;
        for (size_t j = 0; j < ldb; j++) Bs[e * ldb + j] = j < (size_t)N ? B[e * N + j] : NAN;
    }
    float *C = xmalloc((size_t)M * ldc * sizeof *C), *C0 = xmalloc((size_t)(M * N) * sizeof *C0);
    for (int64_t i = 0; i < M; i++)
        for (size_t j = 0; j < ldc; j++) {
            C[i * ldc + j] = j >= (size_t)N ? GUARD_VALUE : accumulate ? rng_uniform(&seed) : NAN;
            if (j < (size_t)N) C0[i * N + j] = accumulate ? C[i * ldc + j] : 0.0f;
        }
    const size_t sbytes = rd_gemm_bf16_tn_scratch_bytes(M, N, K);
    unsigned char *sbuf = xmalloc(sbytes + 5);
    rd_gemm_bf16_opts opts = {.kernel = kernel};
    rd_error err = {0};
    if (rd_gemm_bf16_tn(C, ldc, As, lda, Bs, ldb, M, N, K, accumulate, pool, sbuf + 5, &opts,
                        &err) != 0)
        fail_msg("rd_gemm_bf16_tn failed: %s", err.msg);
    float *out = xmalloc((size_t)(M * N) * sizeof *out);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            const double want = ref[i * N + j] + C0[i * N + j];
            const double tol = TOL * (mag[i * N + j] + fabs(C0[i * N + j])) + TINY;
            const float got = C[i * ldc + j];
            if (!(fabs(got - want) <= tol))
                fail_msg("%s tn M %lld N %lld K %lld acc %d threads %d: C[%lld][%lld] = %.9g, "
                         "reference %.9g (tolerance %.3g)", rd_gemm_kernel_name(kernel),
                         (long long)M, (long long)N, (long long)K, accumulate,
                         rd_pool_threads(pool), (long long)i, (long long)j, (double)got, want, tol);
            out[i * N + j] = got;
        }
        for (size_t j = (size_t)N; j < ldc; j++)
            if (C[i * ldc + j] != GUARD_VALUE) fail_msg("tn: padding column %zu written", j);
    }
    free(sbuf);
    free(C0);
    free(C);
    free(Bs);
    free(As);
    return out;
}

/* Odd and even K (a half pair at the end), K across several k blocks and packed groups
 * (2,700 pairs > 8 blocks of 160), M and N off the tile and panel sizes, the model's
 * weight-gradient shapes (K = tokens, M × N = 256 × 768 and 768 × 256); every kernel,
 * overwriting and accumulating, one thread and a pool. Overwriting results agree bit for
 * bit across the pool sizes. */
static void test_weight_gradient_product(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(3, &err);
    assert_non_null(pool);
    const int64_t shapes[][3] = {{1, 1, 1},     {5, 33, 7},     {13, 31, 64},  {40, 70, 5401},
                                 {256, 768, 512}, {768, 256, 300}, {300, 40, 33}};
    rd_gemm_kernel kernels[3];
    const int nk = n_kernels(kernels);
    uint64_t seed = 900;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = xmalloc((size_t)(K * M) * sizeof *A), *B = xmalloc((size_t)(K * N) * sizeof *B);
        for (int64_t i = 0; i < K * M; i++) A[i] = rng_uniform(&seed);
        for (int64_t i = 0; i < K * N; i++) B[i] = rng_uniform(&seed);
        double *ref = xmalloc((size_t)(M * N) * sizeof *ref), *mag = xmalloc((size_t)(M * N) * sizeof *mag);
        for (int64_t i = 0; i < M * N; i++) ref[i] = mag[i] = 0.0;
        for (int64_t e = 0; e < K; e++)
            for (int64_t i = 0; i < M; i++) {
                const double a = bf16_round(A[e * M + i]);
                for (int64_t j = 0; j < N; j++) {
                    const double t = a * bf16_round(B[e * N + j]);
                    ref[i * N + j] += t;
                    mag[i * N + j] += fabs(t);
                }
            }
        for (int ki = 0; ki < nk; ki++) {
            float *single = NULL;
            for (int acc = 0; acc < 2; acc++)
                for (int pi = 0; pi < 2; pi++) {
                    float *out = tn_run_and_check(M, N, K, A, B, ref, mag, kernels[ki],
                                                  pi ? pool : NULL, acc, (size_t)(acc + pi) % 2 * 3,
                                                  seed + (uint64_t)(acc * 2 + pi));
                    if (!acc && !pi) {
                        single = out;
                        continue;
                    }
                    if (!acc) assert_memory_equal(single, out, (size_t)(M * N) * sizeof *out);
                    free(out);
                }
            free(single);
        }
        free(mag);
        free(ref);
        free(B);
        free(A);
    }
    rd_pool_free(pool);
}

/* K = 0 is an empty sum (zeros, or C unchanged when accumulating); bad strides and shapes
 * are errors that leave C alone. */
static void test_weight_gradient_edges(void **state) {
    (void)state;
    float C[6] = {1, 2, 3, 4, 5, 6}, A[6] = {0}, B[6] = {0};
    rd_error err = {0};
    assert_int_equal(rd_gemm_bf16_tn(C, 3, A, 2, B, 3, 2, 3, 0, 1, NULL, NULL, NULL, &err), 0);
    for (int i = 0; i < 6; i++) assert_true(C[i] == (float)(i + 1));
    assert_int_equal(rd_gemm_bf16_tn(C, 3, A, 2, B, 3, 2, 3, 0, 0, NULL, NULL, NULL, &err), 0);
    for (int i = 0; i < 6; i++) assert_true(C[i] == 0.0f);
    C[0] = 7.0f;
    assert_int_equal(rd_gemm_bf16_tn(C, 3, A, 1, B, 3, 2, 3, 1, 0, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "strides"));
    assert_int_equal(rd_gemm_bf16_tn(C, 2, A, 2, B, 3, 2, 3, 1, 0, NULL, NULL, NULL, &err), -1);
    assert_int_equal(rd_gemm_bf16_tn(C, 3, A, 2, B, 3, -1, 3, 1, 0, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "shape"));
    assert_true(C[0] == 7.0f);
    assert_int_equal(rd_gemm_bf16_tn_scratch_bytes(2, -1, 4), 0);
}

/* ---- the AMX kernel ------------------------------------------------------------------- */

/* 1 when AMX runs here; else says loudly that its tests are skipped (CI machines often lack
 * it: the portable and AVX512-BF16 kernels are still tested everywhere). */
static int amx_or_skip(const char *test) {
    if (rd_gemm_kernel_available(RD_GEMM_KERNEL_AMX)) return 1;
    printf("SKIPPED %s: this CPU has no AMX-BF16 or the kernel refused the tile state — the "
           "AMX kernel is NOT tested on this machine\n", test);
    return 0;
}

/* Random shapes with edges (M, K, N off 16 and 32, odd K, K across several k blocks and
 * packed groups), all three products, overwriting and accumulating, pools of 1, 2, 3 and 5
 * threads: every AMX result within the f32-summation bound of the double reference (as the
 * portable kernel's, checked by run_and_check / tn_run_and_check), and bit for bit the same
 * across pool sizes. */
static void test_amx_random_shapes(void **state) {
    (void)state;
    if (!amx_or_skip("test_amx_random_shapes")) skip();
    rd_error err = {0};
    rd_pool *pools[4] = {NULL};
    const int sizes[4] = {1, 2, 3, 5};
    for (int i = 1; i < 4; i++) assert_non_null(pools[i] = rd_pool_new(sizes[i], &err));
    uint64_t seed = 1900;
    for (int round = 0; round < 10; round++) {
        const int64_t rows = 1 + (int64_t)(rd_splitmix64(&seed) % (round < 5 ? 80 : 700));
        const int64_t cols = 1 + (int64_t)(rd_splitmix64(&seed) % (round % 3 ? 90 : 1400));
        const int64_t M = 1 + (int64_t)(rd_splitmix64(&seed) % (round % 2 ? 40 : 260));
        test_weight tw;
        test_weight_make(&tw, RD_DTYPE_F32, rows, cols, &seed);
        rd_bf16_weight *w =
            rd_bf16_weight_new(&tw.m, RD_BF16_FORWARD | RD_BF16_BACKWARD, pools[1], &err);
        assert_non_null(w);
        for (int mode = RD_BF16_FORWARD; mode <= RD_BF16_BACKWARD; mode++) {
            problem p;
            problem_make(&p, &tw, w, (rd_bf16_mode)mode, M, &seed);
            for (int acc = 0; acc < 2; acc++) {
                float *first = NULL;
                for (int pi = 0; pi < 4; pi++) {
                    const variant v = {.kernel = RD_GEMM_KERNEL_AMX, .pool = pools[pi],
                                       .accumulate = acc, .lda_pad = (size_t)pi, .ldc_pad = 1};
                    float *out = run_and_check(&p, &v, seed + (uint64_t)acc); /* same C₀ */
                    if (!first) first = out;
                    else {
                        assert_memory_equal(first, out, (size_t)(p.M * p.N) * sizeof *out);
                        free(out);
                    }
                }
                free(first);
            }
            problem_free(&p);
        }
        /* the weight gradient C (rows, cols) = Aᵀ · B over M tokens */
        const int64_t tm = rows, tn = cols, tk = M;
        float *A = xmalloc((size_t)(tk * tm) * sizeof *A), *B = xmalloc((size_t)(tk * tn) * sizeof *B);
        for (int64_t i = 0; i < tk * tm; i++) A[i] = rng_uniform(&seed);
        for (int64_t i = 0; i < tk * tn; i++) B[i] = rng_uniform(&seed);
        double *ref = xmalloc((size_t)(tm * tn) * sizeof *ref), *mag = xmalloc((size_t)(tm * tn) * sizeof *mag);
        for (int64_t i = 0; i < tm * tn; i++) ref[i] = mag[i] = 0.0;
        for (int64_t e = 0; e < tk; e++)
            for (int64_t i = 0; i < tm; i++) {
                const double a = bf16_round(A[e * tm + i]);
                for (int64_t j = 0; j < tn; j++) {
                    const double t = a * bf16_round(B[e * tn + j]);
                    ref[i * tn + j] += t;
                    mag[i * tn + j] += fabs(t);
                }
            }
        for (int acc = 0; acc < 2; acc++) {
            float *first = NULL;
            for (int pi = 0; pi < 4; pi++) {
                float *out = tn_run_and_check(tm, tn, tk, A, B, ref, mag, RD_GEMM_KERNEL_AMX,
                                              pools[pi], acc, (size_t)pi, seed + (uint64_t)acc);
                if (!first) first = out;
                else {
                    assert_memory_equal(first, out, (size_t)(tm * tn) * sizeof *out);
                    free(out);
                }
            }
            free(first);
        }
        free(mag);
        free(ref);
        free(B);
        free(A);
        rd_bf16_weight_free(w);
        test_weight_free(&tw);
    }
    for (int i = 1; i < 4; i++) rd_pool_free(pools[i]);
}

/* ---- products straight from the matrix (rd_gemm_bf16_matrix) --------------------------- */

/* rd_gemm_bf16_matrix against rd_gemm_bf16 on the packed copy: bit for bit, for every
 * kernel, storage types plain and quantized (blocks of 32 and 256), both products,
 * overwriting and accumulating, one thread and pools of 2 and 3. Shapes: many panels
 * (several slices), K over several k blocks and slices (2,816 forward, 2,700 backward),
 * odd widths, M off every tile size. */
static void test_matrix_on_the_fly(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *pools[3] = {NULL};
    assert_non_null(pools[1] = rd_pool_new(2, &err));
    assert_non_null(pools[2] = rd_pool_new(3, &err));
    rd_gemm_kernel kernels[3];
    const int nk = n_kernels(kernels);
    const struct {
        rd_dtype t;
        int64_t rows, cols;
    } cases[] = {
        {RD_DTYPE_F32, 37, 5},      {RD_DTYPE_F32, 700, 33},    {RD_DTYPE_F16, 300, 96},
        {RD_DTYPE_BF16, 45, 2816},  {RD_DTYPE_Q8_0, 2700, 64},  {RD_DTYPE_Q4_K, 290, 2816},
        {RD_DTYPE_Q6_K, 33, 512},   {RD_DTYPE_Q4_0, 65, 160},   {RD_DTYPE_IQ4_NL, 40, 96},
        {RD_DTYPE_IQ4_XS, 70, 768},
    };
    const int64_t ms[] = {1, 7, 70, 131};
    uint64_t seed = 2900;
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        test_weight tw;
        test_weight_make(&tw, cases[ci].t, cases[ci].rows, cases[ci].cols, &seed);
        rd_bf16_weight *w =
            rd_bf16_weight_new(&tw.m, RD_BF16_FORWARD | RD_BF16_BACKWARD, NULL, &err);
        assert_non_null(w);
        for (int mode = RD_BF16_FORWARD; mode <= RD_BF16_BACKWARD; mode++) {
            const int64_t K = mode == RD_BF16_FORWARD ? tw.m.cols : tw.m.rows;
            const int64_t N = mode == RD_BF16_FORWARD ? tw.m.rows : tw.m.cols;
            const int64_t M = ms[(ci + (size_t)mode) % 4];
            const size_t ldc = (size_t)N + 2;
            float *A = xmalloc((size_t)(M * K) * sizeof *A);
            for (int64_t i = 0; i < M * K; i++) A[i] = rng_uniform(&seed);
            float *C0 = xmalloc((size_t)M * ldc * sizeof *C0), *C1 = xmalloc((size_t)M * ldc * sizeof *C1);
            for (int ki = 0; ki < nk; ki++)
                for (int acc = 0; acc < 2; acc++)
                    for (int pi = 0; pi < 3; pi++) {
                        uint64_t cs = seed + (uint64_t)acc;
                        for (size_t i = 0; i < (size_t)M * ldc; i++)
                            C0[i] = C1[i] = (i % ldc) >= (size_t)N ? GUARD_VALUE
                                                                   : rng_uniform(&cs);
                        rd_gemm_bf16_opts o = {.kernel = kernels[ki]};
                        assert_int_equal(rd_gemm_bf16(C0, ldc, A, (size_t)K, M, w, (rd_bf16_mode)mode,
                                                      acc, pools[pi], NULL, &o, &err), 0);
                        const size_t sb = rd_gemm_bf16_matrix_scratch_bytes(M, &tw.m, (rd_bf16_mode)mode,
                                                                            pools[pi]);
                        assert_true(sb > 0);
                        unsigned char *sbuf = xmalloc(sb + 7);
                        if (rd_gemm_bf16_matrix(C1, ldc, A, (size_t)K, M, &tw.m, (rd_bf16_mode)mode,
                                                acc, pools[pi], sbuf + 7, &o, &err) != 0)
                            fail_msg("rd_gemm_bf16_matrix: %s", err.msg);
                        free(sbuf);
                        if (memcmp(C0, C1, (size_t)M * ldc * sizeof *C0) != 0)
                            fail_msg("%s %s, %s %lld × %lld, M %lld, acc %d, %d threads: the "
                                     "product from the matrix differs from the packed one",
                                     rd_gemm_kernel_name(kernels[ki]),
                                     mode == RD_BF16_FORWARD ? "forward" : "backward",
                                     rd_dtype_info_of(cases[ci].t)->name, (long long)tw.m.rows,
                                     (long long)tw.m.cols, (long long)M, acc,
                                     rd_pool_threads(pools[pi]));
                    }
            free(C1);
            free(C0);
            free(A);
        }
        rd_bf16_weight_free(w);
        test_weight_free(&tw);
    }
    /* a weight with no panels marks W for on-the-fly products and is refused by rd_gemm_bf16;
     * bad arguments are refused */
    test_weight tw;
    test_weight_make(&tw, RD_DTYPE_F32, 4, 6, &seed);
    rd_bf16_weight *mark = rd_bf16_weight_new(&tw.m, 0, NULL, &err);
    assert_non_null(mark);
    assert_null(mark->fwd.data);
    assert_null(mark->bwd.data);
    assert_int_equal(rd_bf16_weight_bytes(mark), 0);
    float A[12] = {0}, C[12];
    for (int i = 0; i < 12; i++) C[i] = GUARD_VALUE;
    assert_int_equal(gemm1(C, 4, A, 6, 2, mark, RD_BF16_FORWARD, NULL, &err), -1);
    assert_int_equal(rd_gemm_bf16_matrix(C, 4, A, 5, 2, &tw.m, RD_BF16_FORWARD, 0, NULL, NULL,
                                         NULL, &err), -1);
    assert_non_null(strstr(err.msg, "lda"));
    assert_int_equal(rd_gemm_bf16_matrix(C, 4, A, 6, 2, &tw.m, (rd_bf16_mode)3, 0, NULL, NULL,
                                         NULL, &err), -1);
    assert_int_equal(rd_gemm_bf16_matrix(C, 4, A, 6, 2, NULL, RD_BF16_FORWARD, 0, NULL, NULL,
                                         NULL, &err), -1);
    for (int i = 0; i < 12; i++) assert_true(C[i] == GUARD_VALUE);
    assert_int_equal(rd_gemm_bf16_matrix(NULL, 4, NULL, 6, 0, &tw.m, RD_BF16_FORWARD, 0, NULL,
                                         NULL, NULL, &err), 0);
    rd_bf16_weight_free(mark);
    test_weight_free(&tw);
    rd_pool_free(pools[1]);
    rd_pool_free(pools[2]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_choice),
        cmocka_unit_test(test_packed_layout),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_rounding_of_a),
        cmocka_unit_test(test_weight_types),
        cmocka_unit_test(test_small_shapes),
        cmocka_unit_test(test_model_shapes),
        cmocka_unit_test(test_long_inner),
        cmocka_unit_test(test_weight_gradient_product),
        cmocka_unit_test(test_weight_gradient_edges),
        cmocka_unit_test(test_amx_random_shapes),
        cmocka_unit_test(test_matrix_on_the_fly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
