/* redit command line: the option groups several sub-commands share, parsed in one place
 * (cli layer).
 *
 * Each group has its getopt_long entries (a macro to put in the command's table), a struct the
 * values go into, and one handler: cli_X_option(cmd, c, arg, &args) returns 1 when c was one
 * of the group's options (stored), 0 when it was not, -1 on a bad value (already printed as
 * "redit CMD: ..."). The long-only codes below are above every short option character. */
#ifndef REDIT_CLI_OPTIONS_H
#define REDIT_CLI_OPTIONS_H

#include <getopt.h>

#include "redit/dataset.h"
#include "redit/edits.h"
#include "redit/model.h"

enum {
    CLI_O_TOKENIZER = 0x1000, CLI_O_THREADS, CLI_O_COMPUTE, CLI_O_BF16_WEIGHTS, /* model */
    CLI_O_EDITS, CLI_O_STRENGTH, CLI_O_FORCE,                         /* edits group */
    CLI_O_FORMAT, CLI_O_TEMPLATE, CLI_O_SYSTEM, CLI_O_MAX_LEN, CLI_O_FULL_LOSS,
    CLI_O_SKIP_BAD_LINES,                                             /* data group */
    CLI_O_FIRST_FREE                                                  /* a command's own codes */
};

/* -m/--model FILE, --tokenizer FILE, --threads N, --compute f32|bf16|auto,
 * --bf16-weights auto|packed|on-the-fly */
#define CLI_MODEL_LONG_OPTIONS                                                                 \
    {"model", required_argument, 0, 'm'}, {"tokenizer", required_argument, 0, CLI_O_TOKENIZER}, \
        {"threads", required_argument, 0, CLI_O_THREADS},                                       \
        {"compute", required_argument, 0, CLI_O_COMPUTE},                                       \
        {"bf16-weights", required_argument, 0, CLI_O_BF16_WEIGHTS}

typedef struct cli_model_args {
    const char *path;      /* -m; NULL until given */
    const char *tokenizer; /* llama2.c tokenizer.bin, or NULL */
    const char *compute;   /* NULL: f32 */
    const char *bf16_weights; /* NULL: auto (rd_bf16_weights_from_name) */
    int threads;           /* 0: one per core */
} cli_model_args;

int cli_model_option(const char *cmd, int c, const char *arg, cli_model_args *a);

/* Sets the thread count, loads the model and applies --compute (backward: also the packs
 * training needs). Prints "redit CMD: ..." and returns NULL on failure; the caller frees the
 * model with rd_model_free. */
rd_model *cli_open_model(const char *cmd, const cli_model_args *a, int backward);

/* --edits FILE, --strength A, --force */
#define CLI_EDITS_LONG_OPTIONS                                                                 \
    {"edits", required_argument, 0, CLI_O_EDITS},                                              \
        {"strength", required_argument, 0, CLI_O_STRENGTH}, {"force", no_argument, 0, CLI_O_FORCE}

typedef struct cli_edits_args {
    const char *path; /* NULL: the base model */
    float strength;   /* α, 1 unless given */
    int force;        /* accept edits made for another base model */
} cli_edits_args;

#define CLI_EDITS_ARGS_DEFAULT ((cli_edits_args){.strength = 1.0f})

int cli_edits_option(const char *cmd, int c, const char *arg, cli_edits_args *a);

/* The edits a->path names for m into *out (NULL without --edits). Prints "redit: ..." and
 * returns -1 on failure. The caller frees *out with rd_edits_free. */
int cli_open_edits(const cli_edits_args *a, const rd_model *m, rd_edits **out);

/* The view of e at the args' strength; a zero view (the base model) when e is NULL. */
rd_edits_view cli_edits_view(const cli_edits_args *a, const rd_edits *e);

/* --format NAME, --template T, --system TEXT, --max-len N, --full-loss, --skip-bad-lines */
#define CLI_DATA_LONG_OPTIONS                                                                  \
    {"format", required_argument, 0, CLI_O_FORMAT},                                            \
        {"template", required_argument, 0, CLI_O_TEMPLATE},                                    \
        {"system", required_argument, 0, CLI_O_SYSTEM},                                        \
        {"max-len", required_argument, 0, CLI_O_MAX_LEN},                                      \
        {"full-loss", no_argument, 0, CLI_O_FULL_LOSS},                                        \
        {"skip-bad-lines", no_argument, 0, CLI_O_SKIP_BAD_LINES}

typedef struct cli_data_args {
    rd_data_opts opts;       /* rd_data_opts_defaults() plus what was given */
    const char *format_name; /* as given, NULL for auto */
    int max_len_given;       /* --max-len was given (else opts.max_len is the default) */
} cli_data_args;

#define CLI_DATA_ARGS_DEFAULT ((cli_data_args){.opts = rd_data_opts_defaults()})

int cli_data_option(const char *cmd, int c, const char *arg, cli_data_args *a);

/* Caps the data's max length at m's context unless --max-len was given; a given length
 * beyond the context is refused (printed, -1). */
int cli_data_fit_context(const char *cmd, cli_data_args *a, const rd_model *m);

#endif
