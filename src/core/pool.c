#include "redit/pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

struct rd_pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* the current loop */
    rd_task_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next_task;  /* next task index to claim */
    atomic_int done_tasks; /* tasks finished */
    atomic_uint generation; /* bumped for each loop; workers wait for a change */
    atomic_int stop;
    int sleepers; /* workers waiting on `wake` (under lock) */
};

static void work(rd_pool *p) {
    int t;
    while ((t = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_acq_rel)) < p->n_tasks) {
        p->fn(p->arg, t);
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
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->done_tasks, 0);
    atomic_store(&p->next_task, 0);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_mutex_lock(&p->lock);
    if (p->sleepers) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    work(p);
    while (atomic_load_explicit(&p->done_tasks, memory_order_acquire) < n_tasks) CPU_RELAX();
}
