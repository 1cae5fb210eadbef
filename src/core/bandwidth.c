/* The memory read bandwidth (rd_read_bandwidth in redit/util.h), measured with the pool. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"
#include "redit/util.h"

#define READ_TASKS 64

typedef struct read_job {
    const float *data;
    size_t floats_per_task;
    float sums[READ_TASKS]; /* kept so the reads are not optimised away */
} read_job;

static void read_task(void *arg, int task) {
    read_job *j = arg;
    typedef float v16f __attribute__((vector_size(64)));
    const v16f *p = (const v16f *)(j->data + (size_t)task * j->floats_per_task);
    v16f a0 = {0}, a1 = {0};
    for (size_t i = 0; i + 1 < j->floats_per_task / 16; i += 2) {
        a0 += p[i];
        a1 += p[i + 1];
    }
    j->sums[task] += a0[0] + a1[1];
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double rd_read_bandwidth(size_t bytes, int rounds, rd_error *err) {
    rd_pool *pool = rd_pool_shared(err);
    if (!pool) return 0;
    bytes = (bytes + 64 * READ_TASKS - 1) / (64 * READ_TASKS) * (64 * READ_TASKS);
    float *buf = bytes ? aligned_alloc(64, bytes) : NULL;
    if (!buf) {
        rd_error_set(err, "out of memory for a %zu-byte read buffer", bytes);
        return 0;
    }
    memset(buf, 1, bytes);
    read_job j = {.data = buf, .floats_per_task = bytes / sizeof(float) / READ_TASKS};
    double best = 1e30;
    for (int it = 0; it <= rounds; it++) {
        const double t0 = seconds();
        rd_pool_run(pool, read_task, &j, READ_TASKS);
        const double t = seconds() - t0;
        if (it > 0 && t < best) best = t;
    }
    free(buf);
    return best > 0 && best < 1e30 ? (double)bytes / best / 1e9 : 0;
}
