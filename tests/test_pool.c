/* The thread pool (src/core/pool.c): every task of every loop runs exactly once and before
 * rd_pool_run returns, whatever the thread count and the loop sizes; the process's pool is
 * one pool for every context (no thread is started by a second context); two threads
 * running loops on one pool at once both complete every task once, and a caller that finds
 * the workers taken computes the same bits; a loop from inside a task runs inline; idle
 * workers sleep instead of spinning between loops that come milliseconds apart. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/tiny_model.h"
#include "redit/backward.h"
#include "redit/dtype.h"
#include "redit/forward.h"
#include "core/kernels.h"
#include "redit/model.h"
#include "core/pool.h"
#include "redit/weights.h"

/* ---- every task once -------------------------------------------------------- */

#define POOL_REPEATS 2000

typedef struct count_job {
    atomic_int *counts; /* (n_tasks) calls of each task in this loop */
} count_job;

static void count_task(void *arg, int task) {
    const count_job *j = arg;
    atomic_fetch_add_explicit(&j->counts[task], 1, memory_order_relaxed);
}

/* Runs n_loops loops back to back, the task counts cycling through `sizes`. Each loop
 * counts into its own array (a late call from an earlier loop cannot hide in a later one),
 * checked right after rd_pool_run returns (every task done) and again at the end (no task
 * ran twice or ran late). */
static void check_pool_loops(rd_pool *p, const int *sizes, int n_sizes, size_t n_loops) {
    size_t total = 0;
    for (size_t r = 0; r < n_loops; r++) total += (size_t)sizes[r % (size_t)n_sizes];
    atomic_int *counts = calloc(total ? total : 1, sizeof *counts);
    count_job *jobs = calloc(n_loops, sizeof *jobs);
    assert_non_null(counts);
    assert_non_null(jobs);
    size_t off = 0;
    for (size_t r = 0; r < n_loops; r++) {
        const int n = sizes[r % (size_t)n_sizes];
        jobs[r].counts = counts + off;
        rd_pool_run(p, count_task, &jobs[r], n);
        for (int t = 0; t < n; t++) {
            const int c = atomic_load(&jobs[r].counts[t]);
            if (c != 1)
                fail_msg("%d threads, loop %zu of %d tasks: task %d ran %d times by the time "
                         "rd_pool_run returned", rd_pool_threads(p), r, n, t, c);
        }
        off += (size_t)n;
    }
    off = 0;
    for (size_t r = 0; r < n_loops; r++) {
        const int n = sizes[r % (size_t)n_sizes];
        for (int t = 0; t < n; t++)
            if (atomic_load(&counts[off + (size_t)t]) != 1)
                fail_msg("%d threads, loop %zu of %d tasks: task %d ran %d times in all",
                         rd_pool_threads(p), r, n, t, atomic_load(&counts[off + (size_t)t]));
        off += (size_t)n;
    }
    free(jobs);
    free(counts);
}

static void test_pool_every_task_once(void **state) {
    (void)state;
    const int threads[] = {1, 2, 4};
    const int sizes[] = {0, 1, 7, 1000};
    for (size_t ti = 0; ti < 3; ti++) {
        rd_error err = {0};
        rd_pool *p = rd_pool_new(threads[ti], &err);
        if (!p) fail_msg("rd_pool_new(%d): %s", threads[ti], err.msg);
        assert_int_equal(rd_pool_threads(p), threads[ti]);
        for (size_t si = 0; si < 4; si++) check_pool_loops(p, &sizes[si], 1, POOL_REPEATS);
        rd_pool_free(p);
    }
}

/* Loop sizes changing from one loop to the next: a worker still leaving loop k must not
 * claim an index of loop k + 1 against loop k's bound, nor one of loop k against loop
 * k + 1's (the task would run twice and rd_pool_run could return while it still runs).
 * The second part makes many short hand-offs between a 2-task and a 40-task loop, with
 * more threads than cores, so that a worker is often preempted in the middle of one. */
#define HANDOFF_LOOPS 200000
static void test_pool_changing_sizes(void **state) {
    (void)state;
    const int threads[] = {2, 4, 16};
    const int mixed[] = {7, 1000, 1, 64, 0, 3, 513, 2};
    const int small_large[] = {2, 40};
    for (size_t ti = 0; ti < 3; ti++) {
        rd_error err = {0};
        rd_pool *p = rd_pool_new(threads[ti], &err);
        assert_non_null(p);
        check_pool_loops(p, mixed, 8, POOL_REPEATS);
        if (threads[ti] > 2) check_pool_loops(p, small_large, 2, HANDOFF_LOOPS);
        rd_pool_free(p);
    }
}

typedef struct order_job {
    int calls[16]; /* task index of each call, in call order */
    int n_calls;
} order_job;

static void order_task(void *arg, int task) {
    order_job *j = arg;
    if (j->n_calls < 16) j->calls[j->n_calls] = task;
    j->n_calls++;
}

static void test_pool_null_runs_in_order(void **state) {
    (void)state;
    assert_int_equal(rd_pool_threads(NULL), 1);
    order_job j = {{0}, 0};
    rd_pool_run(NULL, order_task, &j, 0);
    assert_int_equal(j.n_calls, 0);
    rd_pool_run(NULL, order_task, &j, 13);
    assert_int_equal(j.n_calls, 13);
    for (int i = 0; i < 13; i++) assert_int_equal(j.calls[i], i);
    rd_pool_free(NULL); /* NULL-safe */

    rd_error err = {0};
    rd_pool *p = rd_pool_new(0, &err); /* one per core */
    assert_non_null(p);
    assert_true(rd_pool_threads(p) >= 1);
    rd_pool_free(p);
}


/* ---- idle workers sleep ------------------------------------------------------------ */

/* The CPU clock of the first thread other than `main` that runs a task. */
typedef struct clock_job {
    pthread_t main;
    atomic_int found;
    clockid_t clock;
} clock_job;

static void clock_task(void *arg, int task) {
    (void)task;
    clock_job *j = arg;
    if (!pthread_equal(pthread_self(), j->main) && !atomic_load(&j->found)) {
        pthread_getcpuclockid(pthread_self(), &j->clock);
        atomic_store(&j->found, 1);
    }
    for (volatile int i = 0; i < 20000; i++) { /* long enough for the worker to join */
    }
}

static double clock_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* Loops 1 ms apart (as between the GEMMs of prefill or training, which OpenBLAS runs):
 * the worker may spin a little after each loop, then must sleep. Its own CPU clock is
 * read (OpenBLAS's threads, which spin after starting, are not counted). Spinning 200 µs
 * after each loop (the former 20,000 pause rounds on this kind of CPU) costs at least
 * 40 ms here; the bound leaves room for the 10 µs spin, the wake-ups and a slow machine. */
#define IDLE_LOOPS 200
#define IDLE_CPU_BOUND_MS 20.0
static void test_pool_idle_workers_sleep(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *p = rd_pool_new(2, &err);
    assert_non_null(p);
    clock_job cj = {.main = pthread_self()};
    for (int r = 0; r < 10000 && !atomic_load(&cj.found); r++) rd_pool_run(p, clock_task, &cj, 8);
    assert_true(atomic_load(&cj.found));
    atomic_int counts[4];
    count_job j = {counts};
    const struct timespec gap = {0, 1000000};
    const double t0 = clock_ms(cj.clock);
    for (int i = 0; i < IDLE_LOOPS; i++) {
        rd_pool_run(p, count_task, &j, 4);
        nanosleep(&gap, NULL);
    }
    const double used = clock_ms(cj.clock) - t0;
    rd_pool_free(p);
    if (used > IDLE_CPU_BOUND_MS)
        fail_msg("%d loops 1 ms apart: the worker used %.1f ms of CPU time (bound %.0f ms): "
                 "idle workers spin instead of sleeping", IDLE_LOOPS, used, IDLE_CPU_BOUND_MS);
    print_message("the worker used %.2f ms of CPU time over %d loops 1 ms apart\n", used,
                  IDLE_LOOPS);
}

/* ---- the process's pool ------------------------------------------------------------ */

static void *shared_on_thread(void *out) {
    *(rd_pool **)out = rd_pool_shared(NULL);
    return NULL;
}

typedef struct who_job {
    pthread_t ids[64]; /* the thread that ran each task */
} who_job;

static void who_task(void *arg, int task) {
    who_job *j = arg;
    j->ids[task] = pthread_self();
    for (volatile int i = 0; i < 20000; i++) { /* long enough for the workers to join */
    }
}

/* Distinct threads among the ids of n tasks. */
static int distinct_threads(const who_job *j, int n) {
    int d = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int k = 0; k < i && !seen; k++) seen = pthread_equal(j->ids[k], j->ids[i]);
        d += !seen;
    }
    return d;
}

/* One pool per process, the same from every thread, sized by OpenBLAS's thread count (at
 * most the cores); its loops run on at most that many threads. */
static void test_pool_shared_is_one_pool(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *a = rd_pool_shared(&err);
    if (!a) fail_msg("rd_pool_shared: %s", err.msg);
    assert_ptr_equal(rd_pool_shared(&err), a);
    pthread_t t;
    rd_pool *b = NULL;
    assert_int_equal(pthread_create(&t, NULL, shared_on_thread, &b), 0);
    pthread_join(t, NULL);
    assert_ptr_equal(b, a);
    int want = openblas_get_num_threads();
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores >= 1 && want > cores) want = (int)cores;
    if (want > RD_POOL_MAX_THREADS) want = RD_POOL_MAX_THREADS;
    assert_int_equal(rd_pool_threads(a), want < 1 ? 1 : want);
    who_job j;
    for (int r = 0; r < 20; r++) {
        rd_pool_run(a, who_task, &j, 64);
        assert_true(distinct_threads(&j, 64) <= rd_pool_threads(a));
    }
}

/* Contexts borrow the process's pool: making more of them (inference and training) and
 * running them starts no thread. */
static void test_contexts_share_the_pool(void **state) {
    (void)state;
    rd_config cfg = tiny_config();
    rd_model_file f;
    assert_int_equal(tiny_model_init(&f, &cfg, 0, 7), 0);
    rd_error err = {0};
    rd_model *m = rd_model_from_file(&f, NULL, &err);
    assert_non_null(m);
    int tokens[8] = {1, 5, 9, 13, 17, 21, 25, 29}, targets[8] = {5, 9, 13, 17, 21, 25, 29, 2};
    float *logits = malloc(sizeof(float) * 8 * (size_t)cfg.vocab_size * 2);
    assert_non_null(logits);
    rd_ctx *c1 = rd_ctx_new(m, 1, 16, &err);
    assert_non_null(c1);
    /* prefill: OpenBLAS's threads and the pool's are up */
    assert_int_equal(rd_forward(c1, NULL, tokens, 1, 8, RD_LOGITS_ALL, logits, &err), 0);
    const int before = tiny_count_entries("/proc/self/task");
    assert_true(before >= 1);
    rd_ctx *c2 = rd_ctx_new(m, 1, 16, &err), *c3 = rd_ctx_new(m, 2, 16, &err);
    rd_train_ctx *tc = rd_train_ctx_new(m, 1, 8, 0, &err);
    assert_non_null(c2);
    assert_non_null(c3);
    assert_non_null(tc);
    assert_int_equal(rd_forward(c2, NULL, tokens, 1, 8, RD_LOGITS_ALL, logits, &err), 0);
    assert_int_equal(rd_forward(c3, NULL, tokens, 2, 4, RD_LOGITS_ALL, logits, &err), 0);
    assert_int_equal(rd_forward(c1, NULL, tokens, 1, 1, RD_LOGITS_LAST, logits, &err), 0);
    double loss;
    int n;
    assert_int_equal(rd_train_pass(tc, NULL, NULL, NULL, tokens, targets, 1, 8, &loss, &n, &err), 0);
    const int after = tiny_count_entries("/proc/self/task");
    if (after != before)
        fail_msg("threads: %d with one context, %d with four (each context started its own "
                 "pool)", before, after);
    rd_train_ctx_free(tc);
    rd_ctx_free(c3);
    rd_ctx_free(c2);
    rd_ctx_free(c1);
    free(logits);
    rd_model_free(m);
}

/* ---- callers on several threads ------------------------------------------------------ */

#define CALLER_LOOPS 20000

typedef struct caller {
    rd_pool *p;
    int salt;   /* varies the loop sizes between the callers */
    int errors; /* tasks that did not run exactly once by the time rd_pool_run returned */
} caller;

static void *caller_main(void *arg) {
    caller *c = arg;
    static const int sizes[] = {7, 100, 1, 33, 2, 64};
    atomic_int counts[100];
    count_job j = {counts};
    for (int r = 0; r < CALLER_LOOPS; r++) {
        const int n = sizes[(r + c->salt) % 6];
        for (int t = 0; t < n; t++) atomic_init(&counts[t], 0);
        rd_pool_run(c->p, count_task, &j, n);
        for (int t = 0; t < n; t++) c->errors += atomic_load(&counts[t]) != 1;
    }
    return NULL;
}

/* Two threads (and the main thread) run loops on one pool at once: each completes every
 * task of its loops exactly once (one gets the workers, the others run inline). */
static void test_pool_concurrent_callers(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *own = rd_pool_new(3, &err);
    assert_non_null(own);
    rd_pool *pools[2] = {own, rd_pool_shared(&err)};
    assert_non_null(pools[1]);
    for (int pi = 0; pi < 2; pi++) {
        caller c[3] = {{pools[pi], 0, 0}, {pools[pi], 1, 0}, {pools[pi], 3, 0}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, caller_main, &c[i]), 0);
        caller_main(&c[2]);
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < 3; i++)
            if (c[i].errors)
                fail_msg("%s pool, caller %d: %d tasks did not run exactly once", pi ? "shared" : "own",
                         i, c[i].errors);
    }
    rd_pool_free(own);
}

typedef struct nested_job {
    rd_pool *p;
    atomic_int counts[8 * 16];
} nested_job;

static void nested_task(void *arg, int task) {
    nested_job *j = arg;
    count_job inner = {j->counts + task * 16};
    rd_pool_run(j->p, count_task, &inner, 16); /* the workers are taken: runs inline */
}

/* A loop started from inside a task of the same pool runs on that task's thread. */
static void test_pool_nested_loop(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *p = rd_pool_new(4, &err);
    assert_non_null(p);
    nested_job *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->p = p;
    for (int r = 0; r < 200; r++) {
        for (int i = 0; i < 8 * 16; i++) atomic_init(&j->counts[i], 0);
        rd_pool_run(p, nested_task, j, 8);
        for (int i = 0; i < 8 * 16; i++) assert_int_equal(atomic_load(&j->counts[i]), 1);
    }
    free(j);
    rd_pool_free(p);
}

typedef struct hog {
    rd_pool *p;
    atomic_int stop;
    atomic_long loops;
} hog;

static void hog_task(void *arg, int task) {
    (void)arg;
    (void)task;
    for (volatile int i = 0; i < 2000; i++) {
    }
}

static void *hog_main(void *arg) {
    hog *h = arg;
    while (!atomic_load(&h->stop)) {
        rd_pool_run(h->p, hog_task, h, 16);
        atomic_fetch_add(&h->loops, 1);
    }
    return NULL;
}

/* A matrix-vector product (the decode path) while another thread keeps the pool's workers
 * busy gives the bits it gives on an idle pool: the tasks are split by the pool's size, not
 * by who runs them. */
static void test_pool_busy_caller_same_bits(void **state) {
    (void)state;
    rd_error err = {0};
    rd_pool *p = rd_pool_shared(&err);
    assert_non_null(p);
    const int rows = 300, cols = 64, n = 3;
    uint16_t *w = malloc(sizeof *w * (size_t)rows * cols);
    float *x = malloc(sizeof *x * (size_t)n * cols), *x32 = malloc(sizeof *x32 * (size_t)rows * cols);
    float *want = malloc(sizeof *want * (size_t)n * rows), *got = malloc(sizeof *got * (size_t)n * rows);
    assert_true(w && x && x32 && want && got);
    uint64_t s = 12345;
    for (int i = 0; i < rows * cols; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x32[i] = (float)((double)(s >> 40) / (double)(1 << 24) - 0.5);
    }
    for (int i = 0; i < n * cols; i++) x[i] = x32[i * 7 % (rows * cols)] * 3.0f;
    const rd_dtype_info *f16 = rd_dtype_info_of(RD_DTYPE_F16);
    f16->from_f32(x32, w, (size_t)rows * cols);
    rd_matrix W;
    assert_int_equal(rd_matrix_init(&W, RD_DTYPE_F16, w, rows, cols, &err), 0);
    const size_t scratch_n = rd_matmul_scratch_floats(&W, n);
    float *scratch = malloc(sizeof(float) * (scratch_n ? scratch_n : 1));
    assert_non_null(scratch);
    rd_matmul(want, x, &W, n, scratch, p);
    hog h = {.p = p};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hog_main, &h), 0);
    /* on a loaded machine the hog may start late: compare only once it has the pool */
    while (atomic_load(&h.loops) == 0) sched_yield();
    for (int r = 0; r < 500; r++) {
        memset(got, 0, sizeof *got * (size_t)n * rows);
        rd_matmul(got, x, &W, n, scratch, p);
        if (memcmp(got, want, sizeof *got * (size_t)n * rows)) {
            atomic_store(&h.stop, 1);
            pthread_join(t, NULL);
            fail_msg("run %d beside a busy pool: the product differs from the idle pool's", r);
        }
    }
    atomic_store(&h.stop, 1);
    pthread_join(t, NULL);
    free(scratch);
    free(got);
    free(want);
    free(x32);
    free(x);
    free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_idle_workers_sleep),
        cmocka_unit_test(test_pool_every_task_once),
        cmocka_unit_test(test_pool_changing_sizes),
        cmocka_unit_test(test_pool_null_runs_in_order),
        cmocka_unit_test(test_pool_shared_is_one_pool),
        cmocka_unit_test(test_contexts_share_the_pool),
        cmocka_unit_test(test_pool_concurrent_callers),
        cmocka_unit_test(test_pool_nested_loop),
        cmocka_unit_test(test_pool_busy_caller_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
