/* redit — data-parallel training over MPI (train layer): the ranks of a run launched by
 * `mpirun -np N redit train …`, and the few exchanges the trainer makes between them.
 *
 * The trainer cuts every global batch into parts (its micro-batches); rank r computes the
 * parts r, r + N, r + 2N, … each from zero, rank 0 adds all parts in their order and sends the
 * sum back, and every rank applies the same update: the numbers are those of one process
 * (which sums the same parts in the same order), whatever N. Every call waits at most the
 * timeout given to rd_dp_open for the other ranks (nonblocking MPI calls polled against a
 * deadline), so a rank that died or hangs stops the others with a message instead of a hang.
 *
 * Built with MPI when Open MPI's development files were found at build time
 * (rd_dp_built_with_mpi); without them rd_dp_open refuses a run started by mpirun. */
#ifndef REDIT_DP_H
#define REDIT_DP_H

#include <stddef.h>
#include <stdint.h>

#include "redit/error.h"

typedef struct rd_dp rd_dp;

/* 1 when this redit was built with MPI. */
int rd_dp_built_with_mpi(void);

/* Joins the ranks of an MPI launch (mpirun sets OMPI_COMM_WORLD_SIZE / PMI_SIZE): returns
 * the communicator (free with rd_dp_close), or NULL. NULL with err->msg empty: not started
 * by an MPI launcher (run as one process). NULL with err->msg set: started by mpirun but
 * this build has no MPI, or MPI could not start. timeout_s (> 0): the longest any exchange
 * waits for another rank. Call once per process, from the main thread. */
rd_dp *rd_dp_open(double timeout_s, rd_error *err);

/* Ends MPI (after every rank's last exchange). NULL-safe. */
void rd_dp_close(rd_dp *dp);

/* Ends every rank at once (after an exchange failed): MPI_Abort with code. Does not return
 * when dp is not NULL. */
void rd_dp_abort(rd_dp *dp, int code);

int rd_dp_rank(const rd_dp *dp); /* 0 for NULL */
int rd_dp_size(const rd_dp *dp); /* 1 for NULL */

/* Rank 0 receives n bytes from rank `from` into buf; any other rank sends its buf (n bytes)
 * to rank 0 (from is then ignored). -1 with *err on a timeout or an MPI error. */
int rd_dp_to_root(rd_dp *dp, int from, void *buf, size_t n, rd_error *err);

/* Rank 0's n bytes of buf to every rank (into buf). -1 with *err as rd_dp_to_root. */
int rd_dp_bcast(rd_dp *dp, void *buf, size_t n, rd_error *err);

/* Waits until every rank has called it (before an exchange: the time ranks wait for the
 * slowest is then counted apart from the exchange's). -1 with *err as rd_dp_to_root. */
int rd_dp_barrier(rd_dp *dp, rd_error *err);

/* What this rank exchanged so far: bytes sent plus received, seconds spent in the exchange
 * calls, and seconds spent in rd_dp_barrier waiting for the slowest rank. */
typedef struct rd_dp_stats {
    uint64_t bytes;
    double seconds;
    double wait_seconds;
    uint64_t calls;
} rd_dp_stats;
rd_dp_stats rd_dp_get_stats(const rd_dp *dp);

#endif
