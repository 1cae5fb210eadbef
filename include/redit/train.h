/* redit — the trainer (train layer): RED edit vectors on a frozen model with AdamW.
 *
 * Steps: the training set is shuffled each epoch with a seeded RNG and cut into batches of
 * `batch` examples, each run as micro-batches of `micro_batch` (gradient accumulation: the
 * gradient of the mean token loss over the whole batch; each micro-batch's gradient is summed
 * from zero, then the micro-batches' are added in order, so that data-parallel ranks, each
 * computing whole micro-batches, sum the same numbers in the same order). Then global-norm clipping, AdamW
 * (decoupled weight decay towards the identity edit: scale towards 1, bias towards 0) at the
 * scheduled learning rate (linear or cosine decay to 0 after a linear warm-up over
 * warmup_ratio of the steps, or constant). Evaluation on the held-out set every epoch (or
 * every eval_every steps), and always after the last step or a stop, keeps the best edits
 * (lowest loss; on a classification set highest accuracy, then lowest loss), which the edit
 * set holds when training ends
 * (the paper selects the checkpoint with the best validation score). A stop request (flag
 * or callback) ends training at the next step boundary; a non-finite loss or gradient stops
 * it with a message and restores the last good edits. */
#ifndef REDIT_TRAIN_H
#define REDIT_TRAIN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "redit/backward.h"
#include "redit/dataset.h"
#include "redit/dp.h"
#include "redit/edits.h"
#include "redit/error.h"
#include "redit/model.h"

typedef enum rd_schedule { RD_SCHEDULE_LINEAR = 0, RD_SCHEDULE_COSINE, RD_SCHEDULE_CONSTANT } rd_schedule;
int rd_schedule_from_name(const char *name, rd_schedule *out); /* "linear", "cosine", "constant" */
const char *rd_schedule_name(rd_schedule s);

typedef struct rd_train_opts {
    double lr;            /* peak learning rate */
    int epochs;
    int batch;            /* examples per optimizer step */
    int micro_batch;      /* examples per forward/backward (divides the work of a batch) */
    int max_len;          /* positions per sequence (examples are already cut to their max_len) */
    rd_schedule schedule;
    double warmup_ratio;  /* fraction of the steps with linear warm-up */
    double weight_decay;
    double beta1, beta2, eps;
    double clip;          /* global gradient-norm clip; 0 = off */
    double dropout;       /* in [0, 1): dropout of every sub-layer output (attention and FFN,
                             after the edit, before the residual add) in training passes,
                             fresh masks each pass; never in evaluation. 0 = off */
    uint64_t seed;
    int checkpointing;    /* recompute activations per layer in backward */
    int pack;             /* pack several examples per row */
    int group_by_length;  /* after each epoch's shuffle, batches of examples of similar length
                             (less padding: faster when lengths vary; see trainer.c) */
    int eval_every;       /* evaluate every N steps; 0 = at the end of every epoch (the last
                             step is evaluated either way) */
    int max_steps;        /* stop after this many steps; 0 = no limit (epochs decide) */
    atomic_int *stop;     /* optional: a stop request, read between steps and between an
                             evaluation's passes. RD_STOP_AT_STEP (1): stop at the next step
                             boundary; the stopped step is evaluated (its edits may be the
                             best). RD_STOP_SKIP_EVAL (2 or more): also skip evaluating: a
                             running evaluation is cut short at its next pass and not
                             recorded, none starts, and the best edits evaluated so far are
                             kept (the last step's when none was; res->eval_skipped says so) */
    const char *state_path; /* optional (borrowed): the training state — the trained numbers,
                             AdamW's moments, the best evaluation's numbers, the data
                             position, the random streams and the histories — is written
                             there atomically at every evaluation point (every eval_every
                             steps or epoch end, whether or not there is an eval set) and when
                             training ends or is stopped on request. When the file exists at
                             the start, training resumes from it and continues exactly as the
                             uninterrupted run would; it must have been written for the same
                             setup (options except checkpointing, data, model, edit layout),
                             else training is refused with the first difference. A path that
                             could not be written (rd_atomic_file_check) is refused before the
                             first step. */
    rd_dp *dp;            /* optional (borrowed): the ranks of a data-parallel run (redit/dp.h);
                             NULL = one process. Every rank trains the same numbers; rank 0
                             alone writes the state file and gets progress events. Each
                             batch's parts (micro-batches) are shared out among the ranks, and
                             so are the evaluation's passes: the numbers equal one process's
                             for any number of ranks. A stop request is read on rank 0 (an
                             evaluation then is not cut short). */
} rd_train_opts;

/* The values of *rd_train_opts.stop (a first and a second press of a stop key). */
enum { RD_STOP_AT_STEP = 1, RD_STOP_SKIP_EVAL = 2 };

/* redit's defaults (the RED paper tunes per task): lr 2e-3, 1 epoch, batch 8, micro-batch
 * 8, max_len 512, linear schedule, warm-up 0.06, no weight decay, β (0.9, 0.999), ε 1e-8,
 * clip 1.0, no dropout, seed 42, no checkpointing, no packing, no length grouping, evaluate every
 * epoch. */
rd_train_opts rd_train_opts_defaults(void);

/* Checks ranges (lr > 0 finite, epochs ≥ 1, 1 ≤ micro_batch ≤ batch, ...). */
int rd_train_opts_validate(const rd_train_opts *o, rd_error *err);

/* One progress event (borrowed for the callback's duration). */
typedef struct rd_progress {
    int kind;             /* RD_PROGRESS_STEP or RD_PROGRESS_EVAL */
    int step, total_steps;
    int epoch, epochs;    /* epoch counts from 1 */
    double loss;          /* mean token loss of this step's batch */
    double eval_loss;     /* RD_PROGRESS_EVAL: mean held-out token loss (else NAN) */
    double eval_accuracy; /* RD_PROGRESS_EVAL on a classification set (labels): the share of
                             held-out examples whose label word scores best (rd_classify);
                             else NAN */
    int best;             /* RD_PROGRESS_EVAL: 1 when this evaluation is the best so far */
    double lr, grad_norm; /* grad_norm before clipping */
    double tokens_per_s;  /* loss tokens per second of training (running mean) */
    double elapsed, eta;  /* seconds */
} rd_progress;
enum { RD_PROGRESS_STEP = 1, RD_PROGRESS_EVAL = 2 };

/* Return non-zero to stop training at the next step boundary (as RD_STOP_AT_STEP). */
typedef int (*rd_progress_fn)(void *user, const rd_progress *p);

typedef struct rd_train_result {
    int steps;
    int stopped;          /* RD_STOP_DONE, RD_STOP_REQUESTED, RD_STOP_NONFINITE */
    double final_loss;    /* mean loss of the last step */
    double best_eval_loss; /* NAN without an eval set; the loss of the best evaluation */
    double best_eval_accuracy; /* classification eval sets: the best evaluation's accuracy
                                  (it decides which is best, then the loss); else NAN */
    int best_step;        /* step whose edits the edit set holds (with an eval set) */
    double seconds;
    double tokens_per_s;  /* all processed tokens (forward + backward) per second */
    uint64_t tokens;      /* tokens processed (padding excluded) */
    double *loss_history; /* (steps) mean loss per step, malloc'ed */
    double *eval_history; /* (n_evals) held-out loss per evaluation, malloc'ed */
    double *eval_accuracy; /* (n_evals) held-out accuracy per evaluation (NAN without labels),
                              malloc'ed */
    int *eval_steps;      /* (n_evals) */
    int n_evals;
    int resumed_step;     /* the step a state file resumed from (opts.state_path); 0 = none */
    int resumed_sampled;  /* 1 when that state was written by an earlier redit, which named
                             the model by its sampled fingerprint (rd_model_fingerprint_sampled):
                             only a sample of the weights was compared */
    int eval_skipped;     /* 1 when a stop request (RD_STOP_SKIP_EVAL) cut an evaluation
                             short or skipped it: the edit set holds the best edits evaluated
                             before, or the last step's when no evaluation had finished */
    char message[512];    /* why training stopped early, if it did */
} rd_train_result;
enum { RD_STOP_DONE = 0, RD_STOP_REQUESTED = 1, RD_STOP_NONFINITE = 2 };

void rd_train_result_release(rd_train_result *r);

/* Trains e on model m with train (and eval, which may be NULL). progress may be NULL.
 * Returns 0 when training ran (check res->stopped), -1 on an error that prevented it. */
int rd_train(const rd_model *m, rd_edits *e, const rd_dataset *train, const rd_dataset *eval,
             const rd_train_opts *o, rd_progress_fn progress, void *user, rd_train_result *res,
             rd_error *err);

/* Full fine-tuning (the paper's "FT" baseline, and pretraining from scratch): every weight
 * of m is trained with the same loop and options (weight decay towards 0 on matrices, none on
 * norm weights). m is made trainable first (rd_model_make_trainable: f32 copies of all
 * weights); with an eval set it holds the best weights when training ends. */
int rd_train_full(rd_model *m, const rd_dataset *train, const rd_dataset *eval,
                  const rd_train_opts *o, rd_progress_fn progress, void *user,
                  rd_train_result *res, rd_error *err);

/* Mean token loss of e (NULL: base model) on d, in micro-batches of `batch`. */
typedef struct rd_eval_metrics {
    double loss;          /* mean token loss */
    double perplexity;
    uint64_t tokens;
    uint64_t bytes;       /* text bytes of the scored tokens (rd_dataset_loss_bytes); 0 when
                             the model has no tokenizer */
    /* classification sets (n_labels > 0): label words scored after the prompt */
    int n_examples;
    double accuracy, mcc, f1; /* f1 of label 1 for two labels, macro-F1 otherwise */
} rd_eval_metrics;

/* Accuracy, Matthews correlation (Gorodkin's R_K for K > 2) and F1 (of label 1 for two
 * labels, macro-F1 otherwise) from a K × K confusion matrix confusion[true · K + predicted];
 * fills those fields and n_examples of out. */
void rd_classification_metrics(const long *confusion, int K, rd_eval_metrics *out);

/* Bits per byte of text: loss · tokens / bytes / ln 2 (NAN when bytes is 0). */
double rd_eval_bits_per_byte(const rd_eval_metrics *r);

/* Per-example answer-token losses of d with edits `view` (NULL: none), for paired
 * comparisons: sums[i] receives the summed token loss (nats) of example i's loss positions
 * among its first max_len ids, counts[i] their number (both caller-allocated, size of d).
 * Examples run `batch` rows a pass through rd_forward (inference; the sums equal
 * rd_eval_loss's to float rounding). Returns 0 or -1 with *err. */
int rd_eval_example_losses(const rd_model *m, const rd_edits_view *view, const rd_dataset *d,
                           int batch, int max_len, double *sums, int *counts, rd_error *err);
/* The same with its passes shared among the ranks of dp (NULL: one process): pass p (`batch`
 * rows, or fewer where the logits would pass 32 M floats) runs on rank p mod N and every rank
 * receives all of sums and counts, equal to one process's. Every rank must call it together. */
int rd_eval_example_losses_dp(const rd_model *m, const rd_edits_view *view, const rd_dataset *d,
                              int batch, int max_len, rd_dp *dp, double *sums, int *counts,
                              rd_error *err);

/* The token-weighted mean loss difference D = Σ(b_i − a_i) / Σ counts_i of two scorings of
 * the same n examples (a: base, b: edited sums) into *diff (may be NULL), and its paired
 * standard error: the ratio estimator's sqrt(n/(n−1) · Σ((b_i − a_i) − D·counts_i)²) / Σ
 * counts_i, examples as the units (NAN for n < 2 or no tokens). */
double rd_paired_loss_stderr(const double *a, const double *b, const int *counts, size_t n,
                             double *diff);

/* A run's best evaluation as text for listings: "3.2121", "0.1234 (acc 95.9%)" with an
 * accuracy, "-" when the loss is unknown (NAN). Writes at most cap bytes into buf (48 hold
 * any); returns buf. */
const char *rd_eval_best_text(double loss, double accuracy, char *buf, size_t cap);

int rd_evaluate(const rd_model *m, const rd_edits *e, float strength, const rd_dataset *d,
                int batch, int max_len, rd_eval_metrics *out, rd_error *err);

/* rd_evaluate with its passes shared among the ranks of dp (NULL: one process) through
 * rd_eval_loss_dp and rd_classify_dp: every rank receives the figures, equal to one
 * process's. Every rank must call it together. */
int rd_evaluate_dp(const rd_model *m, const rd_edits *e, float strength, const rd_dataset *d,
                   int batch, int max_len, rd_dp *dp, rd_eval_metrics *out, rd_error *err);

/* The loss part of rd_evaluate, on a caller's training context: sums the token loss of d's
 * loss positions (answers, or everything for text sets) with edits `view` (NULL: none),
 * grads off, `batch` examples a pass (at most tc's batch) cut to max_len and padded with
 * pad_id; examples run longest first, so a pass holds examples of similar length. b is the
 * caller's batch buffer (filled and reused). *loss_sum and *tokens receive the sum and the
 * count. Turns tc's dropout off (an evaluation never drops). stop (may be NULL) is read
 * before each pass: at RD_STOP_SKIP_EVAL or more the evaluation ends there and returns 1
 * (the sums are then partial). Returns 0, 1 when cut short, or -1 with *err set. */
int rd_eval_loss(rd_train_ctx *tc, const rd_edits_view *view, const rd_dataset *d,
                 int batch, int max_len, int pad_id, rd_batch *b, const atomic_int *stop,
                 double *loss_sum, uint64_t *tokens, rd_error *err);

/* The classification part of rd_evaluate: scores every label word after every example's
 * prompt with edits `view` (NULL: none), `batch` candidates per forward pass, and fills
 * n_examples, accuracy, mcc and f1 of *out (other fields untouched). d must have labels
 * (rd_dataset_n_labels > 0). stop (may be NULL) is read before each pass as by rd_eval_loss:
 * cut short, *out is left untouched and 1 is returned. Returns 0, 1 when cut short, or -1
 * with *err (out of memory). */
int rd_classify(const rd_model *m, const rd_edits_view *view, const rd_dataset *d,
                int batch, int max_len, const atomic_int *stop, rd_eval_metrics *out,
                rd_error *err);

/* rd_eval_loss and rd_classify with their passes shared among the ranks of dp (NULL: one
 * process, as the functions above): pass p runs on rank p mod N, rank 0 combines the passes'
 * sums (scores) in their order and every rank receives its figures, equal to one process's.
 * Every rank must call them together; with more than one rank stop is not read. */
int rd_eval_loss_dp(rd_train_ctx *tc, const rd_edits_view *view, const rd_dataset *d,
                    int batch, int max_len, int pad_id, rd_batch *b, const atomic_int *stop,
                    rd_dp *dp, double *loss_sum, uint64_t *tokens, rd_error *err);
int rd_classify_dp(const rd_model *m, const rd_edits_view *view, const rd_dataset *d,
                   int batch, int max_len, const atomic_int *stop, rd_dp *dp,
                   rd_eval_metrics *out, rd_error *err);

#endif
