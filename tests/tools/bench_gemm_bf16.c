/* Micro-benchmark: rd_gemm_bf16 (bf16 × bf16, f32 accumulation) against OpenBLAS
 * cblas_sgemm (f32) on the model's GEMM shapes, 1 and 2 threads. Not part of `make test`.
 *
 * Build (after `make`):
 *   cc -std=c17 -O3 -march=native -Iinclude -Isrc $(pkg-config --cflags openblas) \
 *      tests/tools/bench_gemm_bf16.c build/libredit.a $(pkg-config --libs openblas) \
 *      -lm -lpthread -o build/bench_gemm_bf16
 * Run: ./build/bench_gemm_bf16 [rounds] [M] [shape]
 *   rounds: best of (default 3); M: rows of A (default 2048); shape: index in the table
 *   below to run only that one (default all).
 *
 * Each shape is timed in alternating rounds (sgemm, then bf16, …) and the best round of
 * each is kept, so the ratio compares the two at the same machine load. A pause between
 * the two lets OpenBLAS's spinning threads go to sleep before the pool starts. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/gemm_bf16.h"
#include "core/pool.h"
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
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        x[i] = (float)((*seed >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0);
    }
    return x;
}

typedef struct shape {
    int N, K; /* W (N, K) */
    rd_bf16_mode mode;
} shape;

typedef struct bench {
    int M;
    const shape *s;
    const float *A, *W;
    float *C;
    rd_bf16_weight *w;
    rd_pool *pool;
    void *scratch;
} bench;

static void run_sgemm(const bench *b) {
    const int M = b->M, N = b->s->N, K = b->s->K;
    if (b->s->mode == RD_BF16_FORWARD) /* C (M, N) = A (M, K) · Wᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, b->A, K, b->W, K,
                    0.0f, b->C, N);
    else /* C (M, K) = A (M, N) · W */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, b->A, N, b->W, K,
                    0.0f, b->C, K);
}

static void run_bf16(const bench *b) {
    const int fwd = b->s->mode == RD_BF16_FORWARD;
    const size_t in = (size_t)(fwd ? b->s->K : b->s->N), out = (size_t)(fwd ? b->s->N : b->s->K);
    rd_error err = {0};
    if (rd_gemm_bf16(b->C, out, b->A, in, b->M, b->w, b->s->mode, 0, b->pool, b->scratch, NULL,
                     &err) != 0) {
        fprintf(stderr, "rd_gemm_bf16: %s\n", err.msg);
        exit(1);
    }
}

/* Seconds of the fastest of `reps` calls. */
static double best_of(void (*fn)(const bench *), const bench *b, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        fn(b);
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 3;
    const int M = argc > 2 ? atoi(argv[2]) : 2048;
    const int only = argc > 3 ? atoi(argv[3]) : -1;
    const shape shapes[] = {
        {768, 768, RD_BF16_FORWARD},    {2048, 768, RD_BF16_FORWARD},
        {768, 2048, RD_BF16_FORWARD},   {32000, 768, RD_BF16_FORWARD},
        {288, 288, RD_BF16_FORWARD},    {768, 288, RD_BF16_FORWARD},
        {288, 768, RD_BF16_FORWARD},    {32000, 288, RD_BF16_FORWARD},
        {768, 768, RD_BF16_BACKWARD},   {2048, 768, RD_BF16_BACKWARD},
        {32000, 768, RD_BF16_BACKWARD}, {768, 288, RD_BF16_BACKWARD},
    };
    rd_error err = {0};
    rd_pool *pool2 = rd_pool_new(2, &err);
    if (!pool2) {
        fprintf(stderr, "pool: %s\n", err.msg);
        return 1;
    }
    void *scratch = malloc(rd_gemm_bf16_scratch_bytes(pool2));
    printf("rd_gemm_bf16 (%s kernel) vs OpenBLAS cblas_sgemm, M = %d, best of %d rounds; "
           "GFLOP/s = 2·M·N·K / s\n",
           rd_gemm_kernel_name(RD_GEMM_KERNEL_AUTO), M, rounds);
    printf("%-9s %6s %6s | %8s %8s %6s | %8s %8s %6s | %9s\n", "mode", "N", "K", "sgemm1",
           "bf16_1", "x", "sgemm2", "bf16_2", "x", "max|d|");
    unsigned seed = 1;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        if (only >= 0 && (size_t)only != si) continue;
        const shape *s = &shapes[si];
        const int fwd = s->mode == RD_BF16_FORWARD;
        const size_t in = (size_t)(fwd ? s->K : s->N), out = (size_t)(fwd ? s->N : s->K);
        float *W = random_floats((size_t)s->N * (size_t)s->K, &seed);
        float *A = random_floats((size_t)M * in, &seed);
        float *C = malloc((size_t)M * out * sizeof *C);
        float *C2 = malloc((size_t)M * out * sizeof *C2);
        rd_matrix m;
        rd_matrix_init(&m, RD_DTYPE_F32, W, s->N, s->K, &err);
        rd_bf16_weight *w = rd_bf16_weight_new(&m, (unsigned)s->mode, pool2, &err);
        if (!w || !C || !C2 || !scratch) {
            fprintf(stderr, "setup: %s\n", err.msg);
            return 1;
        }
        const double flop = 2.0 * M * (double)s->N * (double)s->K;
        const int reps = flop > 5e10 ? 1 : flop > 5e9 ? 2 : 5;
        double best[4] = {1e30, 1e30, 1e30, 1e30};
        for (int r = 0; r < rounds; r++) {
            for (int threads = 1; threads <= 2; threads++) {
                bench b = {.M = M, .s = s, .A = A, .W = W, .C = C, .w = w,
                           .pool = threads == 2 ? pool2 : NULL, .scratch = scratch};
                openblas_set_num_threads(threads);
                double t = best_of(run_sgemm, &b, reps);
                if (t < best[(threads - 1) * 2]) best[(threads - 1) * 2] = t;
                pause_ms(150);
                b.C = C2;
                t = best_of(run_bf16, &b, reps);
                if (t < best[(threads - 1) * 2 + 1]) best[(threads - 1) * 2 + 1] = t;
                pause_ms(50);
            }
        }
        /* bf16 rounding differs from f32 by ~2^-9 relative per factor */
        double maxd = 0.0;
        for (size_t i = 0; i < (size_t)M * out; i++) {
            double d = fabs((double)C[i] - (double)C2[i]);
            if (d > maxd) maxd = d;
        }
        printf("%-9s %6d %6d | %8.1f %8.1f %6.2f | %8.1f %8.1f %6.2f | %9.2e\n",
               fwd ? "forward" : "backward", s->N, s->K, flop / best[0] * 1e-9,
               flop / best[1] * 1e-9, best[0] / best[1], flop / best[2] * 1e-9,
               flop / best[3] * 1e-9, best[2] / best[3], maxd);
        fflush(stdout);
        rd_bf16_weight_free(w);
        free(C2);
        free(C);
        free(A);
        free(W);
    }
    free(scratch);
    rd_pool_free(pool2);
    return 0;
}
