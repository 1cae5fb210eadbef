#include "pool.h"

#include <cblas.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long an idle worker spins for the next loop before it sleeps: about the gap between
 * two loops of a decode step (a few microseconds), far shorter than an OpenBLAS GEMM of
 * prefill or training, during which the workers sleep and leave the cores to OpenBLAS's
 * threads. Measured as time, not as pause rounds (a pause takes 10 to 140 cycles depending
 * on the CPU; the former 20,000 rounds were 200 µs on a Xeon of 2023). Decode of the bundled
 * model on 2 busy shared cores, median tokens/s: spin 200 µs 463, 50 µs 553, 10 µs 924,
 * none 1174 — a spinning worker takes the core from the thread it waits for. */
#ifndef RD_POOL_SPIN_NS
#define RD_POOL_SPIN_NS 10000
#endif
#define SPIN_CHECK_ROUNDS 64 /* pauses between two looks at the clock */

/* A loop is published as a 64-bit claim word: the loop's task count in the high 32 bits
 * and the next unclaimed task in the low 32. A worker claims with one fetch-add and checks
 * the index against the count it read in the same word, so a claim and its bound always
 * belong to the same loop: a worker still leaving loop k can neither take a task of loop
 * k + 1 against loop k's bound nor the reverse. The generation only wakes workers.
 * `taken` makes the workers one caller's at a time: a loop runs from the caller's taking
 * them to its release after the last task, so loops never overlap, whichever thread
 * publishes them. */
struct rd_pool {
    int n_threads;
    int forked; /* rd_pool_shared's pool in a fork()ed child: no workers, run inline */
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_int taken;       /* a caller is running a loop on the workers */
    _Atomic(rd_task_fn) fn; /* the current loop */
    _Atomic(void *) arg;
    atomic_uint_fast64_t claim; /* n_tasks << 32 | next task */
    atomic_int done_tasks;      /* tasks of the current loop finished */
    atomic_uint generation;     /* bumped for each loop; workers wait for a change */
    atomic_int stop;
    int sleepers; /* workers waiting on `wake` (under lock) */
};

/* Claims and runs tasks until the current loop has none left. fn and arg are read after a
 * claim that succeeded: the caller published that claim word after storing them, and waits
 * for the claimed task before it starts another loop, so they are the claimed task's. */
static void work(rd_pool *p) {
    for (;;) {
        const uint64_t c = atomic_fetch_add_explicit(&p->claim, 1, memory_order_acq_rel);
        const uint32_t t = (uint32_t)c, n = (uint32_t)(c >> 32);
        if (t >= n) return;
        rd_task_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        fn(atomic_load_explicit(&p->arg, memory_order_relaxed), (int)t);
        atomic_fetch_add_explicit(&p->done_tasks, 1, memory_order_acq_rel);
    }
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits until the generation moves past `seen` or the pool stops: spins up to
 * RD_POOL_SPIN_NS, then sleeps on the condition variable. Returns the new generation. */
static unsigned wait_for_loop(rd_pool *p, unsigned seen) {
    unsigned g;
    int64_t until = 0;
    for (int round = 1;; round++) {
        if ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) != seen ||
            atomic_load(&p->stop))
            return g;
        if (round % SPIN_CHECK_ROUNDS) {
            CPU_RELAX();
            continue;
        }
        const int64_t t = now_ns();
        if (!until) until = t + RD_POOL_SPIN_NS;
        if (t < until) continue;
        pthread_mutex_lock(&p->lock);
        p->sleepers++;
        while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
            pthread_cond_wait(&p->wake, &p->lock);
        p->sleepers--;
        pthread_mutex_unlock(&p->lock);
        until = 0;
    }
}

static void *worker_main(void *arg) {
    rd_pool *p = arg;
    unsigned seen = atomic_load(&p->generation);
    for (;;) {
        seen = wait_for_loop(p, seen);
        if (atomic_load(&p->stop)) return NULL;
        work(p);
    }
}

rd_pool *rd_pool_new(int n_threads, rd_error *err) {
    if (n_threads < 1) n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads < 1) n_threads = 1;
    if (n_threads > RD_POOL_MAX_THREADS) n_threads = RD_POOL_MAX_THREADS;
    rd_pool *p = calloc(1, sizeof *p);
    if (!p) {
        rd_error_set(err, "out of memory");
        return NULL;
    }
    p->n_threads = n_threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (n_threads > 1 && !(p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers))) {
        rd_pool_free(p);
        rd_error_set(err, "out of memory");
        return NULL;
    }
    /* Workers block every signal, so SIGINT/SIGWINCH reach the UI thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < n_threads - 1; i++) {
        if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
            p->n_threads = i + 1; /* the ones started, plus the caller */
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            rd_pool_free(p);
            rd_error_set(err, "cannot start worker thread %d", i + 1);
            return NULL;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
}

void rd_pool_free(rd_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; p->workers && i < p->n_threads - 1; i++) pthread_join(p->workers[i], NULL);
    free(p->workers);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p);
}

/* ---- the process's pool -------------------------------------------------------------------
 * Global state, justified: the pool is a process resource like OpenBLAS's thread team. One
 * pool for every context keeps the busy threads at the core count however many contexts a
 * program has (the workbench's chat makes two, training a third, an eval a fourth), and
 * pthread_once makes its creation safe from any thread. It lives until the process ends. */
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;
static rd_pool *shared_pool;
static rd_error shared_err; /* why shared_pool is NULL */

/* fork() copies only the calling thread: the child's copy of the pool has no workers (and
 * its lock may be held by one that was not copied), so it runs loops inline. */
static void shared_forked(void) {
    if (shared_pool) shared_pool->forked = 1;
}

static void shared_init(void) {
    int n = openblas_get_num_threads();
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores >= 1 && n > cores) n = (int)cores;
    if (n < 1) n = 1;
    /* OpenBLAS's team matches the pool: never more busy threads than cores
     * (OPENBLAS_NUM_THREADS above the core count is capped too) */
    if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
    shared_pool = rd_pool_new(n, &shared_err);
    if (shared_pool) pthread_atfork(NULL, NULL, shared_forked);
    else rd_error_prefix(&shared_err, "starting the thread pool");
}

rd_pool *rd_pool_shared(rd_error *err) {
    pthread_once(&shared_once, shared_init);
    if (!shared_pool) rd_error_set(err, "%s", shared_err.msg);
    return shared_pool;
}

int rd_pool_threads(const rd_pool *p) { return p ? p->n_threads : 1; }

void rd_pool_run(rd_pool *p, rd_task_fn fn, void *arg, int n_tasks) {
    int expected = 0;
    if (!p || p->n_threads == 1 || n_tasks <= 1 || p->forked ||
        !atomic_compare_exchange_strong_explicit(&p->taken, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed)) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t);
        return;
    }
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&p->done_tasks, 0, memory_order_relaxed);
    /* release: fn and arg are visible to whoever claims a task of this loop */
    atomic_store_explicit(&p->claim, (uint64_t)(uint32_t)n_tasks << 32, memory_order_release);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_mutex_lock(&p->lock);
    if (p->sleepers) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    work(p);
    while (atomic_load_explicit(&p->done_tasks, memory_order_acquire) < n_tasks) CPU_RELAX();
    atomic_store_explicit(&p->taken, 0, memory_order_release);
}
