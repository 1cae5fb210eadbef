/* redit — a small thread pool for the kernels OpenBLAS does not run (core layer).
 *
 * One pool per run state (rd_ctx), never busy at the same time as an OpenBLAS call: the
 * caller runs a parallel loop and gets control back only when every task is done. Idle
 * workers spin briefly (a decode step issues a loop every few microseconds) and then sleep
 * on a condition variable, so an idle pool costs nothing. */
#ifndef REDIT_POOL_H
#define REDIT_POOL_H

#include "redit/error.h"

typedef struct rd_pool rd_pool;

/* A pool of n_threads threads in all, the caller included (n_threads - 1 workers are
 * started). n_threads < 1 means one per online core. NULL with *err on failure. */
rd_pool *rd_pool_new(int n_threads, rd_error *err);
void rd_pool_free(rd_pool *p); /* joins the workers; NULL-safe */
int rd_pool_threads(const rd_pool *p); /* 1 for a NULL pool */

/* Calls fn(arg, task) for every task in [0, n_tasks), spread over the pool's threads (the
 * caller works too), and returns when all are done. p may be NULL: runs them in order on
 * the caller. fn must not call rd_pool_run on the same pool. */
typedef void (*rd_task_fn)(void *arg, int task);
void rd_pool_run(rd_pool *p, rd_task_fn fn, void *arg, int n_tasks);

#endif
