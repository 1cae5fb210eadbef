/* redit — the workbench's entry point (tui layer): what `redit tui` and `make run` start. */
#ifndef REDIT_WORKBENCH_H
#define REDIT_WORKBENCH_H

#include "redit/error.h"

typedef struct rd_workbench_args {
    const char *model_path;     /* the model; NULL: the one the session records (an existing
                                   session only) */
    const char *tokenizer_path; /* optional llama2.c tokenizer.bin */
    const char *session;        /* session name ("default" when NULL) */
    const char *sessions_root;  /* "sessions" when NULL */
    const char *train_path;     /* optional: preset the training set of a new session */
    const char *eval_path;
    const char *stats_path;     /* optional: write UI latency figures here on exit */
    const char *const *sets;    /* (n_sets) "key=value" settings applied over the session's
                                   (a restored one too) */
    int n_sets;
    const char *const *init_sets; /* (n_init_sets) "key=value" settings of a NEW session only
                                   (a restored session keeps its own; `make run`'s settings) */
    int n_init_sets;
    int threads;
} rd_workbench_args;

/* The checks rd_workbench_run makes before it loads anything, for callers that want them
 * first (before asking for a terminal): the session name is valid and the session could be
 * saved where it lives (its folder, or the nearest existing one above it, takes a new file);
 * without a model path, the session exists and the model it records is still there. 0, or -1
 * with *err saying why and what to do. */
int rd_workbench_check(const rd_workbench_args *args, rd_error *err);

/* One run of a saved session, as `redit session` lists it. */
typedef struct rd_session_run {
    int id;                    /* "#id" on the workbench's chart and in wb.runs() */
    char label[64];
    size_t steps;              /* training steps recorded */
    double best_eval_loss;     /* NAN when unknown */
    double best_eval_accuracy; /* NAN when unknown or not a classification set */
    int stopped;               /* RD_STOP_* (train.h); -1 when the run never ended */
    int current;               /* its edits are the session's current ones */
    char edits_path[1200];     /* its edits file (root/name/runs/ID/edits.safetensors); "" none */
    char model_path[1200];     /* a full fine-tuning run's model (root/name/runs/ID/model.gguf);
                                  "" none */
} rd_session_run;

typedef struct rd_session_summary {
    char model_path[512];      /* the model's path as last given; "" unknown */
    char model_fingerprint[17]; /* 16 hex digits; "" unknown */
    size_t n_chat;             /* chat turns */
    rd_session_run *runs;      /* (n_runs) owned: release with rd_session_summary_release */
    size_t n_runs;
} rd_session_summary;

/* Reads session root/name (root NULL: "sessions") as the workbench would, without a model:
 * its runs and what they trained. 0, or -1 with *err (no such session, or a damaged one:
 * the file and line) and *out zeroed. Nothing is written. */
int rd_session_summarize(const char *root, const char *name, rd_session_summary *out,
                         rd_error *err);
void rd_session_summary_release(rd_session_summary *s);

/* The path of run id's edits file in session root/name (root NULL: "sessions") into path
 * (cap bytes, cut to fit; "" on failure). 0, or -1 with *err (no such session or run, a
 * damaged session, a run without saved edits). Nothing is written. */
int rd_session_run_edits(const char *root, const char *name, int id, char *path, size_t cap,
                         rd_error *err);

/* Makes run id's edits the current edits of session root/name (as wb.use_run does) and saves
 * the session as one unit, without a model (its stored fingerprint is kept). 0, or -1 with
 * *err: no such session or run, a damaged session (left untouched), a failed save (the
 * previous save stays). */
int rd_session_use_run(const char *root, const char *name, int id, rd_error *err);

/* Deletes run id of session root/name (its curve and its edits file, as wb.delete_run does;
 * the session's current edits stay as they are) and saves the session as one unit. 0, or -1
 * with *err like rd_session_use_run. */
int rd_session_delete_run(const char *root, const char *name, int id, rd_error *err);

/* Runs the workbench until the user quits. Prints errors that prevent it from starting
 * (before the screen is taken) to stderr. Returns the process exit code. */
int rd_workbench_run(const rd_workbench_args *args);

#endif
