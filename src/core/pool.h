/* redit — the thread pool for the kernels OpenBLAS does not run (core layer).
 *
 * One pool per process (rd_pool_shared), shared by every context: inference (rd_ctx),
 * training and evaluation (rd_train_ctx), the workbench's two chat sides and its training
 * worker. Like OpenBLAS's own threads it is a process resource: created on first use with as
 * many threads as OpenBLAS uses (at most one per online core), never freed.
 *
 * A parallel loop returns only when every task is done, so the pool is never busy at the
 * same time as an OpenBLAS call of the same caller. Idle workers spin for a few tens of
 * microseconds (a decode step issues a loop every few microseconds) and then sleep on a
 * condition variable, so they do not compete with OpenBLAS's threads for the cores.
 *
 * Several threads may run loops on one pool at once: the first gets the workers, a caller
 * that finds them taken runs its tasks on its own thread (never waits, never starts more
 * threads). Kernels split their work by rd_pool_threads alone, so who runs the tasks does
 * not change any result. */
#ifndef REDIT_POOL_H
#define REDIT_POOL_H

#include "redit/error.h"

typedef struct rd_pool rd_pool;

/* The most threads a pool has (rd_pool_new caps n_threads at it). */
#define RD_POOL_MAX_THREADS 64

/* The process's pool, created by the first call (thread-safe) with
 * min(openblas_get_num_threads(), online cores, RD_POOL_MAX_THREADS) threads: set OpenBLAS's
 * thread count (--threads, red.threads) before the first context is made to size it; when
 * OpenBLAS was set to more threads than cores, its count is lowered to the pool's. The
 * pool is borrowed: never pass it to rd_pool_free. NULL with *err when its threads could not
 * be started (every later call fails the same way). In a child made by fork() the pool runs
 * every loop on the calling thread (the workers were not copied). */
rd_pool *rd_pool_shared(rd_error *err);

/* A pool of its own with n_threads threads in all, the caller included (n_threads - 1
 * workers are started); n_threads < 1 means one per online core, at most
 * RD_POOL_MAX_THREADS. For tests and benchmarks that need a given thread count; contexts use
 * rd_pool_shared. NULL with *err on failure. Freed by rd_pool_free. */
rd_pool *rd_pool_new(int n_threads, rd_error *err);
void rd_pool_free(rd_pool *p); /* joins the workers; NULL-safe; not for rd_pool_shared's */
int rd_pool_threads(const rd_pool *p); /* 1 for a NULL pool; fixed for the pool's life */

/* Calls fn(arg, task) for every task in [0, n_tasks), spread over the pool's threads (the
 * caller works too), and returns when all are done. p may be NULL: runs them in order on
 * the caller. Safe to call from several threads at once (see above); a call from inside a
 * task of the same pool runs its tasks on that task's thread. */
typedef void (*rd_task_fn)(void *arg, int task);
void rd_pool_run(rd_pool *p, rd_task_fn fn, void *arg, int n_tasks);

#endif
