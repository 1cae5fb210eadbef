/* The generation loop: reset the context, prefill the prompt in one batched forward pass,
 * then sample / stream / decode one token at a time.
 *
 * Timing: prefill_seconds is the prefill forward pass; decode_seconds is the time spent
 * sampling and running the single-token forward passes after it (callbacks and the caller's
 * time between steps excluded, so a slow consumer such as a UI does not lower the reported
 * decode speed). rd_generate is the step-by-step generator run to the end. */
/* clock_gettime under -std=c17 when the build does not already ask for POSIX. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "redit/generate.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "redit/buf.h"
#include "redit/tokenizer.h"

#include "gen_internal.h"

double rd_gen_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int rd_gen_piece_text(const rd_tokenizer *tok, int prev, int id, rd_buf *b, const char **text,
                      size_t *len) {
    *text = "";
    *len = 0;
    if (!tok) return 0;
    size_t n = rd_tokenizer_decode_piece(tok, prev, id, b->data, b->cap);
    if (n > b->cap) {
        if (rd_buf_reserve(b, n)) return -1;
        n = rd_tokenizer_decode_piece(tok, prev, id, b->data, b->cap);
    }
    *text = n ? b->data : "";
    *len = n;
    return 0;
}

static int check_args(const rd_ctx *ctx, const int *prompt, size_t n_prompt,
                      const rd_gen_opts *opts, rd_error *err) {
    if (!ctx || !opts) return rd_error_set(err, "generate: no context or options given");
    if (!prompt || n_prompt == 0)
        return rd_error_set(err, "generate: the prompt is empty (at least one token needed)");
    if (opts->max_tokens < 0)
        return rd_error_set(err, "generate: max_tokens %d must be >= 0", opts->max_tokens);
    int max_seq = rd_ctx_max_seq(ctx);
    if (n_prompt > (size_t)max_seq)
        return rd_error_set(err,
                            "generate: the prompt has %zu tokens, more than the context "
                            "holds (%d)",
                            n_prompt, max_seq);
    if (rd_ctx_max_batch(ctx) < 1)
        return rd_error_set(err, "generate: the context has no room for a sequence");
    return 0;
}

/* A generation in progress: everything it owns, released by rd_generator_free. */
struct rd_generator {
    rd_ctx *ctx;
    rd_edits_view edits;  /* copy of the caller's view (the vectors stay the caller's) */
    int has_edits;
    rd_gen_opts opts;
    const rd_tokenizer *tok;
    int eos, max_seq;
    int pending;          /* a sampled token still needs its forward pass */
    int done;
    rd_sampler *sampler;
    float *logits;        /* (vocab) */
    int *history;         /* (n_prompt + max generated) prompt then generated ids */
    size_t n_history;
    rd_buf text;          /* scratch for the text of the last token */
    rd_gen_stats stats;
};

void rd_generator_free(rd_generator *g) {
    if (!g) return;
    rd_sampler_free(g->sampler);
    free(g->logits);
    free(g->history);
    rd_buf_free(&g->text);
    free(g);
}

rd_generator *rd_generator_start(rd_ctx *ctx, const rd_edits_view *edits, const int *prompt,
                                 size_t n_prompt, const rd_gen_opts *opts, rd_error *err) {
    if (check_args(ctx, prompt, n_prompt, opts, err)) return NULL;
    rd_generator *g = calloc(1, sizeof *g);
    if (!g) {
        rd_error_set(err, "generate: out of memory");
        return NULL;
    }
    const rd_model *model = rd_ctx_model(ctx);
    int n_vocab = rd_model_config(model)->vocab_size;
    g->ctx = ctx;
    if (edits) {
        g->edits = *edits;
        g->has_edits = 1;
    }
    g->opts = *opts;
    g->tok = rd_model_tokenizer(model);
    g->eos = g->tok ? rd_tokenizer_eos(g->tok) : -1;
    g->max_seq = rd_ctx_max_seq(ctx);
    g->stats.n_prompt = (int)n_prompt;
    /* The last token sampled needs no forward pass, so a full context still yields one. */
    size_t room = (size_t)g->max_seq - n_prompt + 1;
    size_t max_gen = (size_t)opts->max_tokens < room ? (size_t)opts->max_tokens : room;

    g->sampler = rd_sampler_new(&opts->sampling, n_vocab, err);
    if (!g->sampler) {
        rd_error_prefix(err, "generate");
        goto fail;
    }
    g->logits = malloc((size_t)n_vocab * sizeof *g->logits);
    g->history = malloc((n_prompt + max_gen) * sizeof *g->history);
    if (!g->logits || !g->history || rd_buf_reserve(&g->text, 63)) {
        rd_error_set(err, "generate: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_prompt; i++) g->history[i] = prompt[i];
    g->n_history = n_prompt;

    rd_ctx_reset(ctx);
    double t0 = rd_gen_now();
    if (rd_forward(ctx, g->has_edits ? &g->edits : NULL, prompt, 1, (int)n_prompt,
                   RD_LOGITS_LAST, g->logits, err)) {
        rd_error_prefix(err, "generate: prefill of %zu tokens", n_prompt);
        goto fail;
    }
    g->stats.prefill_seconds = rd_gen_now() - t0;
    return g;
fail:
    rd_generator_free(g);
    return NULL;
}

int rd_generator_next(rd_generator *g, int *token, const char **text, size_t *len,
                      rd_error *err) {
    *token = -1;
    *text = "";
    *len = 0;
    if (g->done) return 0;
    if (g->stats.n_generated >= g->opts.max_tokens) {
        g->done = 1;
        return 0;
    }
    double t0 = rd_gen_now();
    if (g->pending) {
        if (rd_ctx_pos(g->ctx) >= g->max_seq) {
            g->stats.stopped_by = 3;
            g->done = 1;
            return 0;
        }
        int last = g->history[g->n_history - 1];
        if (rd_forward(g->ctx, g->has_edits ? &g->edits : NULL, &last, 1, 1, RD_LOGITS_LAST,
                       g->logits, err)) {
            g->done = 1;
            return rd_error_prefix(err, "generate: decode at position %d", rd_ctx_pos(g->ctx));
        }
        g->pending = 0;
    }
    int id = rd_sampler_sample(g->sampler, g->logits, g->history, g->n_history);
    if (g->opts.stop_at_eos && g->eos >= 0 && id == g->eos) {
        g->stats.stopped_by = 1;
        g->done = 1;
        g->stats.decode_seconds += rd_gen_now() - t0;
        return 0;
    }
    int prev = g->history[g->n_history - 1];
    g->history[g->n_history++] = id;
    g->stats.n_generated++;
    g->pending = 1;
    if (rd_gen_piece_text(g->tok, prev, id, &g->text, text, len)) {
        g->done = 1;
        return rd_error_set(err, "generate: out of memory for the text of token %d", id);
    }
    g->stats.decode_seconds += rd_gen_now() - t0;
    *token = id;
    return 1;
}

void rd_generator_stop(rd_generator *g, int stopped_by) {
    if (g->done) return;
    g->done = 1;
    g->stats.stopped_by = stopped_by;
}

const rd_gen_stats *rd_generator_stats(const rd_generator *g) { return &g->stats; }

int rd_generate(rd_ctx *ctx, const rd_edits_view *edits, const int *prompt, size_t n_prompt,
                const rd_gen_opts *opts, rd_token_fn on_token, void *user, int *out_ids,
                rd_gen_stats *stats, rd_error *err) {
    if (stats) *stats = (rd_gen_stats){0};
    rd_generator *g = rd_generator_start(ctx, edits, prompt, n_prompt, opts, err);
    if (!g) return -1;
    int rc = 0, token;
    const char *text;
    size_t len;
    while ((rc = rd_generator_next(g, &token, &text, &len, err)) == 1) {
        if (out_ids) out_ids[g->stats.n_generated - 1] = token;
        if (on_token && on_token(user, token, text, len)) {
            rd_generator_stop(g, 2);
            break;
        }
    }
    if (stats) *stats = g->stats;
    rd_generator_free(g);
    return rc < 0 ? -1 : 0;
}
