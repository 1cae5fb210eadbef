/* Micro-benchmark: the bf16 GEMM's kernels against each other and against OpenBLAS
 * cblas_sgemm on the model's shapes, 2 threads. Not part of `make test`.
 *
 * Build (after `make`):
 *   cc -std=c17 -O3 -march=native -Iinclude -Isrc $(pkg-config --cflags openblas) \
 *      tests/tools/bench_gemm_kernels.c build/libredit.a $(pkg-config --libs openblas) \
 *      -lm -lpthread -o build/bench_gemm_kernels
 * Run: ./build/bench_gemm_kernels [rounds] [M] [threads]
 *
 * Per shape (forward C (M, N) = A (M, K) · Wᵀ), the contestants run in alternating rounds
 * (sgemm, amx, avx512bf16, then amx from a Q4_K matrix — Q8_0 where K is not a
 * multiple of 256 — packed on the fly, …) and the median
 * of each is printed as GFLOP/s = 2·M·N·K / s, so the ratios compare them at the same
 * machine load. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gemm_bf16.h"
#include "core/pool.h"
#include "redit/dtype.h"
#include "redit/weights.h"

void openblas_set_num_threads(int);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static float *random_floats(size_t n, unsigned *seed) {
    float *x = malloc(n * sizeof *x);
    if (!x) exit(1);
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        x[i] = (float)((*seed >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0);
    }
    return x;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum { SGEMM, AMX, AVX512, AMX_Q4K, N_WAYS };
static const char *const NAMES[N_WAYS] = {"sgemm", "amx", "avx512bf16", "amx-fly-q"};

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 5;
    const int M = argc > 2 ? atoi(argv[2]) : 2048;
    const int threads = argc > 3 ? atoi(argv[3]) : 2;
    const int shapes[][2] = {{288, 288},   {768, 288},   {288, 768},    {768, 768},
                             {2048, 768},  {768, 2048},  {4096, 4096},  {11008, 4096},
                             {4096, 11008}};
    rd_error err = {0};
    rd_pool *pool = rd_pool_new(threads, &err);
    openblas_set_num_threads(threads);
    const int have[N_WAYS] = {1, rd_gemm_kernel_available(RD_GEMM_KERNEL_AMX),
                              rd_gemm_kernel_available(RD_GEMM_KERNEL_AVX512BF16),
                              rd_gemm_kernel_available(RD_GEMM_KERNEL_AMX)};
    printf("M = %d, %d threads, median of %d alternating rounds, GFLOP/s\n", M, threads, rounds);
    printf("%6s %6s |", "N", "K");
    for (int w = 0; w < N_WAYS; w++) printf(" %11s", NAMES[w]);
    printf(" | amx/avx512 amx/sgemm\n");
    unsigned seed = 1;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int N = shapes[si][0], K = shapes[si][1];
        float *W = random_floats((size_t)N * K, &seed), *A = random_floats((size_t)M * K, &seed);
        float *C = malloc((size_t)M * N * sizeof *C);
        rd_matrix m, q;
        rd_matrix_init(&m, RD_DTYPE_F32, W, N, K, &err);
        const rd_dtype qt = K % 256 ? RD_DTYPE_Q8_0 : RD_DTYPE_Q4_K; /* Q8_0 where K is off 256 */
        const rd_dtype_info *qi = rd_dtype_info_of(qt);
        void *qd = malloc((size_t)N * K / qi->block_elems * qi->block_bytes);
        qi->from_f32(W, qd, (size_t)N * K);
        rd_matrix_init(&q, qt, qd, N, K, &err);
        rd_bf16_weight *w = rd_bf16_weight_new(&m, RD_BF16_FORWARD, pool, &err);
        double *t = malloc(sizeof(double) * N_WAYS * rounds);
        for (int r = 0; r < rounds; r++)
            for (int way = 0; way < N_WAYS; way++) {
                if (!have[way]) continue;
                pause_ms(way == AMX ? 50 : 0); /* OpenBLAS's threads go to sleep */
                rd_gemm_bf16_opts o = {way == AVX512 ? RD_GEMM_KERNEL_AVX512BF16 : RD_GEMM_KERNEL_AMX};
                const double t0 = now();
                int rc = 0;
                if (way == SGEMM)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K,
                                0.0f, C, N);
                else if (way == AMX_Q4K)
                    rc = rd_gemm_bf16_matrix(C, N, A, K, M, &q, RD_BF16_FORWARD, 0, pool, NULL, &o, &err);
                else
                    rc = rd_gemm_bf16(C, N, A, K, M, w, RD_BF16_FORWARD, 0, pool, NULL, &o, &err);
                if (rc) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
                t[way * rounds + r] = now() - t0;
            }
        double gf[N_WAYS] = {0};
        printf("%6d %6d |", N, K);
        for (int way = 0; way < N_WAYS; way++) {
            if (have[way]) {
                qsort(t + way * rounds, (size_t)rounds, sizeof *t, cmp_double);
                gf[way] = 2.0 * M * N * K / t[way * rounds + rounds / 2] * 1e-9;
            }
            printf(" %11.0f", gf[way]);
        }
        printf(" | %9.2fx %8.2fx\n", gf[AVX512] > 0 ? gf[AMX] / gf[AVX512] : 0, gf[AMX] / gf[SGEMM]);
        fflush(stdout);
        rd_bf16_weight_free(w);
        free(t);
        free(qd);
        free(C);
        free(A);
        free(W);
    }
    rd_pool_free(pool);
    return 0;
}
