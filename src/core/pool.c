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

/* A loop is published as a 64-bit ticket: the loop's generation in the high 32 bits and
 * the next unclaimed task in the low 32. Claiming a task is a compare-and-swap on the
 * ticket, so a worker still finishing an earlier loop can never claim a task of the next
 * one (its generation no longer matches). */
struct rd_pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Atomic(rd_task_fn) fn; /* the current loop */
    _Atomic(void *) arg;
    atomic_int n_tasks;
    atomic_uint_fast64_t ticket; /* generation << 32 | next task */
    atomic_int done_tasks;       /* tasks of the current loop finished */
    atomic_int stop;
    int sleepers; /* workers waiting on `wake` (under lock) */
};

static uint32_t generation_of(uint64_t ticket) { return (uint32_t)(ticket >> 32); }

/* Claims and runs tasks of loop `gen` until none is left (or a newer loop started). */
static void work(rd_pool *p, uint32_t gen, rd_task_fn fn, void *arg, int n_tasks) {
    uint64_t v = atomic_load_explicit(&p->ticket, memory_order_acquire);
    for (;;) {
        if (generation_of(v) != gen || (int)(uint32_t)v >= n_tasks) return;
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* v was reloaded */
        fn(arg, (int)(uint32_t)v);
        atomic_fetch_add_explicit(&p->done_tasks, 1, memory_order_acq_rel);
        v = atomic_load_explicit(&p->ticket, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    rd_pool *p = arg;
    uint32_t seen = generation_of(atomic_load(&p->ticket));
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = generation_of(atomic_load_explicit(&p->ticket, memory_order_acquire))) ==
                   seen &&
               !atomic_load(&p->stop)) {
            if (++spins < SPIN_ROUNDS) {
                CPU_RELAX();
                continue;
            }
            pthread_mutex_lock(&p->lock);
            p->sleepers++;
            while (generation_of(atomic_load(&p->ticket)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->lock);
            p->sleepers--;
            pthread_mutex_unlock(&p->lock);
            spins = 0;
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        work(p, g, atomic_load_explicit(&p->fn, memory_order_relaxed),
             atomic_load_explicit(&p->arg, memory_order_relaxed),
             atomic_load_explicit(&p->n_tasks, memory_order_relaxed));
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
    atomic_store_explicit(&p->n_tasks, n_tasks, memory_order_relaxed);
    atomic_store_explicit(&p->done_tasks, 0, memory_order_relaxed);
    const uint32_t gen = generation_of(atomic_load(&p->ticket)) + 1;
    /* release: the loop's fields above are visible to whoever sees the new generation */
    atomic_store_explicit(&p->ticket, (uint64_t)gen << 32, memory_order_release);
    pthread_mutex_lock(&p->lock);
    if (p->sleepers) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    work(p, gen, fn, arg, n_tasks);
    while (atomic_load_explicit(&p->done_tasks, memory_order_acquire) < n_tasks) CPU_RELAX();
}
