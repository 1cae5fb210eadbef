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

#endif
