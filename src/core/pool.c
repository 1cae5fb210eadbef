#include "redit/pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spins before sleeping: ~30–60 µs, longer than the gap between two kernels of a decode
 * step, far shorter than a human-visible delay. */
#define SPIN_ROUNDS 20000

/* A loop is published as a 64-bit claim word: the loop's task count in the high 32 bits
 * and the next unclaimed task in the low 32. A worker claims with one fetch-add and checks
 * the index against the count it read in the same word, so a claim and its bound always
 * belong to the same loop: a worker still leaving loop k can neither take a task of loop
 * k + 1 against loop k's bound nor the reverse. The generation only wakes workers. */
struct rd_pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
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

static void *worker_main(void *arg) {
    rd_pool *p = arg;
    unsigned seen = atomic_load(&p->generation);
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins < SPIN_ROUNDS) {
                CPU_RELAX();
                continue;
            }
            pthread_mutex_lock(&p->lock);
            p->sleepers++;
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->lock);
            p->sleepers--;
            pthread_mutex_unlock(&p->lock);
            spins = 0;
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        work(p);
    }
}

rd_pool *rd_pool_new(int n_threads, rd_error *err) {
    if (n_threads < 1) n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads < 1) n_threads = 1;
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

int rd_pool_threads(const rd_pool *p) { return p ? p->n_threads : 1; }

void rd_pool_run(rd_pool *p, rd_task_fn fn, void *arg, int n_tasks) {
    if (!p || p->n_threads == 1 || n_tasks <= 1) {
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
}
