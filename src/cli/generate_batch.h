/* redit generate --batch: many prompts of a JSONL file through one batched engine
 * (redit/batch.h), each with its own edit set, strength and sampling. */
#ifndef REDIT_CLI_GENERATE_BATCH_H
#define REDIT_CLI_GENERATE_BATCH_H

#include "options.h"
#include "redit/generate.h"
#include "redit/model.h"

/* --edits NAME=FILE: an edit set a line selects with "edits": "NAME". */
typedef struct cli_named_edits {
    const char *name, *path; /* borrowed from argv */
} cli_named_edits;

typedef struct cli_batch_args {
    const char *input;            /* --batch FILE */
    const char *output;           /* -o FILE (written atomically), or NULL: stdout */
    int parallel;                 /* --parallel N: sequences at once */
    const cli_named_edits *named; /* (n_named) */
    int n_named;
    const cli_edits_args *edits;  /* the plain --edits FILE (every line without "edits"),
                                   * --strength and --force */
    const char *tmpl, *system;    /* --template, --system (NULL: not given) */
    const rd_gen_opts *gen;       /* the command line's sampling and token limit */
    int context;                  /* each sequence's context */
} cli_batch_args;

/* Parses every line of a->input (refusing the first bad one, naming its line, before any
 * generation), runs them a->parallel at a time and writes one JSON object per line in
 * input order: {"id", "line", "text", "tokens", "stopped_by", "seconds"}. Prints
 * "redit generate: ..." on failure. Returns the exit status (0, or 1). */
int cli_generate_batch(const rd_model *m, const cli_batch_args *a);

#endif
