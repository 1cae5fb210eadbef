/* Data-parallel exchanges over MPI (redit/dp.h). Every exchange is a nonblocking MPI call
 * polled against a deadline: a rank that died or hangs costs the others at most the timeout.
 * Built with MPI when the Makefile found Open MPI (RD_HAVE_MPI); else the
 * one-process build: every exchange is the identity and an mpirun launch is refused by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redit/dp.h"

#ifdef RD_HAVE_MPI
#include <mpi.h>
#endif

/* Whether an MPI launcher started this process, and with how many ranks (0: none). */
static int launcher_size(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atoi(v) > 0 ? atoi(v) : 1;
    }
    return 0;
}

struct rd_dp {
    int rank, size;
    double timeout;
    rd_dp_stats stats;
};

int rd_dp_rank(const rd_dp *dp) { return dp ? dp->rank : 0; }
int rd_dp_size(const rd_dp *dp) { return dp ? dp->size : 1; }
rd_dp_stats rd_dp_get_stats(const rd_dp *dp) { return dp ? dp->stats : (rd_dp_stats){0}; }

#ifdef RD_HAVE_MPI

int rd_dp_built_with_mpi(void) { return 1; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

rd_dp *rd_dp_open(double timeout_s, rd_error *err) {
    if (err) err->msg[0] = 0;
    if (!launcher_size()) return NULL;
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        rd_error_set(err, "MPI could not start");
        return NULL;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    rd_dp *dp = calloc(1, sizeof *dp);
    if (!dp) {
        rd_error_set(err, "out of memory");
        return NULL;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &dp->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dp->size);
    dp->timeout = timeout_s > 0 ? timeout_s : 600;
    return dp;
}

void rd_dp_close(rd_dp *dp) {
    if (!dp) return;
    MPI_Finalize();
    free(dp);
}

void rd_dp_abort(rd_dp *dp, int code) {
    if (dp) MPI_Abort(MPI_COMM_WORLD, code);
}

/* Waits for req until the deadline, polling (short sleeps once the first spins found it
 * unfinished, so a waiting rank leaves its core to the computing ones). */
static int wait_deadline(rd_dp *dp, MPI_Request *req, double deadline, const char *what,
                         rd_error *err) {
    for (long spin = 0;; spin++) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return rd_error_set(err, "rank %d: MPI failed in %s (a rank has died?)", dp->rank, what);
        if (done) return 0;
        if (spin > 64) {
            if (now_s() > deadline) {
                return rd_error_set(err, "rank %d: no answer from the other ranks in %s within "
                                         "%g s (a rank has died or hangs; --mpi-timeout sets the "
                                         "wait): stopping every rank", dp->rank, what,
                                    dp->timeout);
            }
            nanosleep(&(struct timespec){0, spin > 4096 ? 200000 : 20000}, NULL);
        }
    }
}

#define CHUNK ((size_t)1 << 30) /* MPI counts are ints: a large buffer goes in pieces */

int rd_dp_to_root(rd_dp *dp, int from, void *buf, size_t n, rd_error *err) {
    if (!dp || dp->size == 1) return 0;
    const double t0 = now_s(), deadline = t0 + dp->timeout;
    for (size_t off = 0; off < n || (n == 0 && off == 0); off += CHUNK) {
        const int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Request req;
        const int rc = dp->rank == 0
                           ? MPI_Irecv((char *)buf + off, c, MPI_BYTE, from, 7, MPI_COMM_WORLD, &req)
                           : MPI_Isend((char *)buf + off, c, MPI_BYTE, 0, 7, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) return rd_error_set(err, "rank %d: MPI send/receive failed", dp->rank);
        if (wait_deadline(dp, &req, deadline, dp->rank ? "sending to rank 0" : "receiving a gradient",
                          err))
            return -1;
        if (n == 0) break;
    }
    dp->stats.bytes += n;
    dp->stats.seconds += now_s() - t0;
    dp->stats.calls++;
    return 0;
}

int rd_dp_bcast(rd_dp *dp, void *buf, size_t n, rd_error *err) {
    if (!dp || dp->size == 1) return 0;
    const double t0 = now_s(), deadline = t0 + dp->timeout;
    for (size_t off = 0; off < n; off += CHUNK) {
        const int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Request req;
        if (MPI_Ibcast((char *)buf + off, c, MPI_BYTE, 0, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
            return rd_error_set(err, "rank %d: MPI broadcast failed", dp->rank);
        if (wait_deadline(dp, &req, deadline, "a broadcast", err)) return -1;
    }
    /* rank 0 sends to every other rank (a tree in MPI; counted as N − 1 copies), the others
     * receive one */
    dp->stats.bytes += dp->rank == 0 ? n * (size_t)(dp->size - 1) : n;
    dp->stats.seconds += now_s() - t0;
    dp->stats.calls++;
    return 0;
}

int rd_dp_barrier(rd_dp *dp, rd_error *err) {
    if (!dp || dp->size == 1) return 0;
    const double t0 = now_s();
    MPI_Request req;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return rd_error_set(err, "rank %d: MPI barrier failed", dp->rank);
    if (wait_deadline(dp, &req, t0 + dp->timeout, "waiting for every rank", err)) return -1;
    dp->stats.wait_seconds += now_s() - t0;
    return 0;
}

#else /* no MPI in this build */

int rd_dp_built_with_mpi(void) { return 0; }

rd_dp *rd_dp_open(double timeout_s, rd_error *err) {
    (void)timeout_s;
    if (err) err->msg[0] = 0;
    if (launcher_size() > 1)
        rd_error_set(err, "this redit was built without MPI (install libopenmpi-dev and rebuild "
                          "to train over mpirun); run it without mpirun for one process");
    return NULL;
}

void rd_dp_close(rd_dp *dp) { free(dp); }
void rd_dp_abort(rd_dp *dp, int code) {
    if (dp) exit(code);
}
int rd_dp_to_root(rd_dp *dp, int from, void *buf, size_t n, rd_error *err) { return 0; }
int rd_dp_bcast(rd_dp *dp, void *buf, size_t n, rd_error *err) { return 0; }
int rd_dp_barrier(rd_dp *dp, rd_error *err) { return 0; }

#endif
