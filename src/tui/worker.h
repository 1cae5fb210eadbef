/* redit TUI — the worker thread (no curses here): training and chat generation run on it so
 * the UI thread stays responsive. It runs one job at a time and reports through a locked
 * event queue; an eventfd becomes readable whenever events are waiting, so the UI thread
 * polls {stdin, eventfd} (STYLE.md). Only the UI thread calls these functions. */
#ifndef REDIT_TUI_WORKER_H
#define REDIT_TUI_WORKER_H

#include <stddef.h>

#include "redit/dataset.h"
#include "redit/edits.h"
#include "redit/error.h"
#include "redit/generate.h"
#include "redit/mc.h"
#include "redit/model.h"
#include "redit/train.h"

typedef enum tui_event_kind {
    TUI_EV_TRAIN_STEP = 1, /* progress: one optimizer step */
    TUI_EV_TRAIN_EVAL,     /* progress: an evaluation */
    TUI_EV_TRAIN_STATUS,   /* text: what the job is doing (loading data, ...) */
    TUI_EV_TRAIN_DONE,     /* result fields; text: why it stopped early, or "" */
    TUI_EV_CHAT_TEXT,      /* side, text: a piece of an answer to show */
    TUI_EV_CHAT_DONE,      /* side; text: "" or an error message */
    TUI_EV_MC_STATUS,      /* text: what a multiple-choice evaluation is doing */
    TUI_EV_MC_DONE,        /* mc: the scores (mc.n == 0 when stopped); text: the file */
    TUI_EV_ERROR           /* text: a job could not run (the job is over) */
} tui_event_kind;

/* A multiple-choice evaluation's result: side 0 the base model, 1 the edited one. */
typedef struct tui_mc_result {
    size_t n;                  /* items scored (0: stopped before the end) */
    int n_choices;             /* choices of all items together */
    rd_mc_style style;
    double acc[2], acc_stderr[2], acc_norm[2], acc_norm_stderr[2];
    long only_base[2], only_edited[2]; /* McNemar's discordant items: [0] acc, [1] acc_norm */
    double p[2];               /* McNemar's exact p-value: [0] acc, [1] acc_norm */
    size_t truncated;          /* contexts that lost their oldest tokens to max_len */
    double seconds;
} tui_mc_result;

typedef struct tui_event {
    tui_event_kind kind;
    int side;             /* chat: the column (0 base, 1 edited, or the compared edit sets) */
    rd_progress progress; /* TRAIN_STEP / TRAIN_EVAL */
    /* TRAIN_DONE */
    int steps, stopped;   /* RD_STOP_* */
    double seconds, tokens_per_s, best_eval_loss, final_loss;
    double best_eval_accuracy; /* NAN unless the eval set has labels */
    size_t n_train, n_eval; /* examples (TRAIN_STATUS after loading, TRAIN_DONE) */
    tui_mc_result mc;       /* MC_DONE */
    char text[RD_ERROR_MAX]; /* NUL-terminated; chat pieces longer than this come as several */
} tui_event;

typedef struct tui_worker tui_worker;

/* Events the queue holds by default; the worker waits for the UI when it is full. */
#define TUI_QUEUE_DEFAULT 1024

/* Starts the thread (all signals blocked in it, so SIGWINCH and SIGINT reach the UI
 * thread) with room for queue_cap events (0: TUI_QUEUE_DEFAULT). NULL with *err on
 * failure. */
tui_worker *tui_worker_new(size_t queue_cap, rd_error *err);

/* Asks the running job to stop, waits for the thread to end and frees everything. Events
 * not drained are dropped. NULL-safe. */
void tui_worker_free(tui_worker *w);

/* The file descriptor to poll for POLLIN: readable while events are waiting. */
int tui_worker_fd(const tui_worker *w);

enum { TUI_JOB_NONE = 0, TUI_JOB_TRAIN, TUI_JOB_CHAT, TUI_JOB_MC };

/* The kind of job posted or running now (TUI_JOB_NONE when idle: its last event has been
 * queued and it no longer uses the model). A job's last event (TRAIN_DONE, its last
 * CHAT_DONE, or ERROR) is queued only after the job has let go of everything, together with
 * becoming idle: a UI that has drained it finds the worker idle and may post the next job. Only the UI thread posts jobs, so an idle
 * worker stays idle until the UI thread starts one: then the UI thread is the model's only
 * user and may change it (model.h). While a job is posted or running the worker holds its
 * model in use (rd_model_use_begin), so the model's mutators refuse. */
int tui_worker_busy(const tui_worker *w);

/* Events waiting in the queue (for tests: the worker waits when it is full). */
size_t tui_worker_queued(const tui_worker *w);

/* A training run. Everything is borrowed: model and edits must stay alive and untouched by
 * the UI thread until the job's TRAIN_DONE or ERROR event has been drained; the strings are
 * copied. The job loads train_path (and eval_path, or splits off eval_split of the train
 * set when eval_path is "" and eval_split > 0) with the model's tokenizer on the worker. */
typedef struct tui_train_job {
    const rd_model *model;
    rd_edits *edits;        /* NULL for full fine-tuning */
    rd_model *full_model;   /* non-NULL: full fine-tuning of this model (= model; edits NULL):
                               every weight changes (rd_train_full) */
    const char *train_path, *eval_path;
    double eval_split;
    rd_data_opts data;    /* its strings are copied */
    rd_train_opts train;  /* stop is set by the worker */
} tui_train_job;

/* Columns a chat job answers in, at most (the base model and four edit sets). */
#define TUI_CHAT_MAX_COLUMNS 5

/* What one column of a chat answers with: a model (NULL: the job's model; another one: a
 * full fine-tuning run's copy, of the same shape) and edits on it (NULL: none). */
typedef struct tui_chat_column {
    const rd_model *model;
    const rd_edits *edits;
} tui_chat_column;

/* One chat prompt answered in n_columns columns (1 to TUI_CHAT_MAX_COLUMNS; 0 means one
 * column: the model without edits), a token of each in turn (events' side is the column).
 * Column 0 is usually the base model, the others an edit set each at `strength` (e.g. the
 * current edits; or several runs compared side by side), all answering from the same loaded
 * weights except a column that names its own model. prompt ids are copied; the models and
 * edits must stay alive and unchanged until every column's CHAT_DONE has been drained.
 * stop_text: where a reply ends (rd_chat_turn_start), copied. */
typedef struct tui_chat_job {
    const rd_model *model;
    tui_chat_column columns[TUI_CHAT_MAX_COLUMNS];
    int n_columns;
    float strength;
    const int *prompt;
    size_t n_prompt;
    rd_gen_opts gen;
    const char *stop_text;
} tui_chat_job;

/* A multiple-choice evaluation (rd_mc_score): the items of path scored with the base model,
 * then with the edited one — `edits` at `strength` on model, or (edited_model non-NULL, of
 * the same shape) a full fine-tuning run's model without edits — and compared (McNemar).
 * It ends with MC_DONE (or ERROR); stopped (tui_worker_stop), it ends between items with an
 * MC_DONE of n = 0. The models and edits are borrowed as a chat job's; path is copied.
 * max_len bounds context + continuation (≤ the model's seq_len, else capped). */
typedef struct tui_mc_job {
    const rd_model *model;
    const rd_edits *edits;        /* NULL: the edited side is the base model too */
    const rd_model *edited_model; /* NULL: model with edits */
    float strength;
    const char *path;
    int max_len;
} tui_mc_job;

/* Queue a job; -1 with *err when a job is running or the job is invalid. */
int tui_worker_start_train(tui_worker *w, const tui_train_job *job, rd_error *err);
int tui_worker_start_chat(tui_worker *w, const tui_chat_job *job, rd_error *err);
int tui_worker_start_mc(tui_worker *w, const tui_mc_job *job, rd_error *err);

/* Asks the running job to stop: training at the next step boundary (keeping the best
 * edits), generation at the next token, a multiple-choice evaluation at the next item. */
void tui_worker_stop(tui_worker *w);

/* Asks a stopping training run to skip its evaluation too (a running one is cut short at its
 * next pass): the best edits evaluated so far are kept, or the last step's when none was
 * (RD_STOP_SKIP_EVAL). Stops a chat answer as tui_worker_stop. */
void tui_worker_skip_eval(tui_worker *w);

/* Moves up to max waiting events into out (oldest first) and returns how many. */
size_t tui_worker_drain(tui_worker *w, tui_event *out, size_t max);

#endif
