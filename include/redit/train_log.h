/* redit — reading a training run's --log CSV while it runs and after (train layer): what the
 * workbench (wb.follow) and Lua (red.follow) draw of a run on another machine or under
 * mpirun. `redit train --log FILE` writes FILE.partial line by line (flushed per step) and
 * renames it to FILE when the run ends. */
#ifndef REDIT_TRAIN_LOG_H
#define REDIT_TRAIN_LOG_H

#include <stddef.h>

#include "redit/error.h"

typedef struct rd_train_log {
    size_t n_steps;
    int *step;            /* (n_steps) the logged steps, increasing (a resumed run's log starts
                             after its resume) */
    double *loss;         /* (n_steps) each one's mean train loss */
    size_t n_evals;
    int *eval_step;       /* (n_evals) */
    double *eval_loss;    /* (n_evals) */
    double *eval_accuracy; /* (n_evals) NAN without labels */
    double tokens_per_s;  /* the last step's running mean; 0 before the first */
    double elapsed;       /* seconds, as of the last line */
    int done;             /* 1: the run ended (FILE exists, no FILE.partial); 0: running */
} rd_train_log;

/* Reads the log of a run: FILE.partial while it runs (a half-written last line is left for the
 * next read), else FILE. Fills *out (release with rd_train_log_release). -1 with *err when
 * neither exists or the file is not a redit training log. */
int rd_train_log_read(const char *path, rd_train_log *out, rd_error *err);
void rd_train_log_release(rd_train_log *l); /* NULL-safe; leaves *l empty */

#endif
