/* redit — the workbench's entry point (tui layer): what `redit tui` and `make run` start. */
#ifndef REDIT_WORKBENCH_H
#define REDIT_WORKBENCH_H

typedef struct rd_workbench_args {
    const char *model_path;     /* required */
    const char *tokenizer_path; /* optional llama2.c tokenizer.bin */
    const char *session;        /* session name ("default" when NULL) */
    const char *sessions_root;  /* "sessions" when NULL */
    const char *train_path;     /* optional: preset the training set of a new session */
    const char *eval_path;
    const char *stats_path;     /* optional: write UI latency figures here on exit */
    const char *const *sets;    /* (n_sets) "key=value" settings applied over the session's */
    int n_sets;
    int threads;
} rd_workbench_args;

/* Runs the workbench until the user quits. Prints errors that prevent it from starting
 * (before the screen is taken) to stderr. Returns the process exit code. */
int rd_workbench_run(const rd_workbench_args *args);

#endif
