/* redit — the generation loop (gen layer): prefill the prompt, then decode one token at a
 * time, streaming each token's text through a callback. */
#ifndef REDIT_GENERATE_H
#define REDIT_GENERATE_H

#include <stddef.h>

#include "redit/edits_view.h"
#include "redit/error.h"
#include "redit/forward.h"
#include "redit/sampler.h"

/* Called for every generated token with the text it adds (may be empty, not
 * NUL-terminated; borrowed for the call). Return non-zero to stop generating. */
typedef int (*rd_token_fn)(void *user, int token, const char *text, size_t len);

typedef struct rd_gen_opts {
    rd_sampling sampling;
    int max_tokens;  /* tokens to generate at most */
    int stop_at_eos; /* stop when the model emits EOS (not passed to the callback) */
} rd_gen_opts;

typedef struct rd_gen_stats {
    int n_prompt, n_generated;
    double prefill_seconds, decode_seconds;
    int stopped_by; /* 0 token limit, 1 EOS, 2 callback, 3 context full */
} rd_gen_stats;

/* Generates from prompt ids (n_prompt ≥ 1) with the model behind ctx, which is reset
 * first. out_ids (optional, capacity max_tokens) receives the generated ids. Text comes
 * through the model's tokenizer when it has one; else text is empty. Returns 0 or -1. */
int rd_generate(rd_ctx *ctx, const rd_edits_view *edits, const int *prompt, size_t n_prompt,
                const rd_gen_opts *opts, rd_token_fn on_token, void *user, int *out_ids,
                rd_gen_stats *stats, rd_error *err);

/* The same generation one token at a time, for callers that interleave several (the TUI
 * streams the base and the edited model's answers side by side from one thread). */
typedef struct rd_generator rd_generator;

/* Resets ctx and prefills the prompt. ctx, the vectors behind edits (NULL: base model) and
 * the model stay the caller's and must outlive the generator; the view itself is copied.
 * Returns NULL with *err on bad arguments or a failed prefill. */
rd_generator *rd_generator_start(rd_ctx *ctx, const rd_edits_view *edits, const int *prompt,
                                 size_t n_prompt, const rd_gen_opts *opts, rd_error *err);

/* Samples the next token (running the forward pass of the previous one first). Returns 1
 * with *token and its text (*text, *len: borrowed until the next call), 0 when generation
 * is over (token limit, EOS, full context: see the stats' stopped_by), -1 with *err. */
int rd_generator_next(rd_generator *g, int *token, const char **text, size_t *len,
                      rd_error *err);

/* Ends the generation early: later rd_generator_next calls return 0 and stopped_by
 * becomes `stopped_by` (2 = stopped by the caller). */
void rd_generator_stop(rd_generator *g, int stopped_by);

/* Counts and timings so far (borrowed, valid while g lives). */
const rd_gen_stats *rd_generator_stats(const rd_generator *g);

void rd_generator_free(rd_generator *g); /* NULL-safe */

#endif
