/* redit — the trainer's resumable state (train layer, internal to src/train).
 *
 * A state file is a safetensors file: four F32 tensors of the trained numbers (edit vectors,
 * or every weight in full fine-tuning) — "params", "adam_m", "adam_v" (AdamW's moments) and
 * "best" (the numbers of the best evaluation) — and one metadata entry "redit.train_state",
 * a JSON object with the loop's position, the RNG states, the histories and a "setup" text
 * naming everything the run's trajectory depends on (options, data, model, edit layout).
 * Resuming requires the same setup; then the run continues bit for bit as if it had never
 * stopped. */
#ifndef REDIT_TRAIN_STATE_H
#define REDIT_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "redit/error.h"
#include "redit/train.h"

/* Where the loop stands after `step` steps. */
typedef struct train_position {
    int step;             /* steps done */
    int epoch;            /* the epoch of the last step done (from 1); 0 before any step */
    int step_in_epoch;    /* steps of that epoch done */
    uint64_t data_rng;    /* the shuffling stream after that epoch's shuffle (a check of the
                             replay on resume) */
    uint64_t drop_rng;    /* the dropout seeds' stream after the last step */
    double train_seconds; /* time spent in steps so far (tokens/s counts it) */
} train_position;

/* The trained numbers and the optimizer's, n floats each; borrowed. */
typedef struct train_arrays {
    size_t n;
    float *params, *adam_m, *adam_v, *best;
} train_arrays;

/* Writes the state to path atomically. res supplies the histories (loss_history[0, step),
 * the evaluations), the best evaluation and the token count. Returns 0, or -1 with *err
 * naming the file. */
int train_state_save(const char *path, const char *setup, const train_arrays *a,
                     const train_position *pos, const rd_train_result *res, rd_error *err);

/* Reads a state written by train_state_save for the same setup (or old_setup, may be NULL:
 * the setup as an earlier redit wrote it, with the model's sampled fingerprint; then
 * res->resumed_sampled is set) and total step count into
 * a (whose n must match the file), *pos and res: loss_history (room for `total` entries)
 * receives the first pos->step losses, the evaluations are appended to res's (empty)
 * history, and the best evaluation, best step and token count are set. A file written for
 * another setup is refused with the first item that differs. Returns 0, or -1 with *err
 * naming the file and the problem; a and res may then be partly filled. */
int train_state_load(const char *path, const char *setup, const char *old_setup, int total,
                     train_arrays *a, train_position *pos, rd_train_result *res,
                     rd_error *err);

#endif
