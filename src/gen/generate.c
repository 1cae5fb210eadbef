/* The generation loop: reset the context, prefill the prompt in one batched forward pass,
 * then sample / stream / decode one token at a time.
 *
 * Timing: prefill_seconds is the prefill forward pass; decode_seconds is the time spent
 * sampling and running the single-token forward passes after it (callbacks excluded, so
 * a slow consumer such as a UI does not lower the reported decode speed). */
/* clock_gettime under -std=c17 when the build does not already ask for POSIX. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "redit/generate.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "redit/tokenizer.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Growable text buffer for streamed pieces. */
typedef struct text_buf {
    char *data;
    size_t cap;
} text_buf;

/* The text `id` adds after `prev` through tok (empty without a tokenizer). Sets *text and
 * *len; returns 0, or -1 when out of memory. */
static int piece_text(const rd_tokenizer *tok, int prev, int id, text_buf *b,
                      const char **text, size_t *len) {
    *text = "";
    *len = 0;
    if (!tok) return 0;
    size_t n = rd_tokenizer_decode_piece(tok, prev, id, b->data, b->cap);
    if (n > b->cap) {
        char *grown = realloc(b->data, n);
        if (!grown) return -1;
        b->data = grown;
        b->cap = n;
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

/* Everything the loop owns; released by gen_release. */
typedef struct gen_state {
    rd_sampler *sampler;
    float *logits; /* (vocab) */
    int *history;  /* (n_prompt + max generated) prompt then generated ids */
    size_t n_history;
    text_buf text;
} gen_state;

static void gen_release(gen_state *g) {
    rd_sampler_free(g->sampler);
    free(g->logits);
    free(g->history);
    free(g->text.data);
}

int rd_generate(rd_ctx *ctx, const rd_edits_view *edits, const int *prompt, size_t n_prompt,
                const rd_gen_opts *opts, rd_token_fn on_token, void *user, int *out_ids,
                rd_gen_stats *stats, rd_error *err) {
    rd_gen_stats local;
    if (!stats) stats = &local;
    *stats = (rd_gen_stats){0};
    if (check_args(ctx, prompt, n_prompt, opts, err)) return -1;
    stats->n_prompt = (int)n_prompt;

    const rd_model *model = rd_ctx_model(ctx);
    const rd_tokenizer *tok = model->file.tokenizer;
    int n_vocab = rd_model_config(model)->vocab_size;
    int max_seq = rd_ctx_max_seq(ctx);
    int eos = tok ? rd_tokenizer_eos(tok) : -1;
    /* The last token sampled needs no forward pass, so a full context still yields one. */
    size_t room = (size_t)max_seq - n_prompt + 1;
    size_t max_gen = (size_t)opts->max_tokens < room ? (size_t)opts->max_tokens : room;

    gen_state g = {0};
    g.sampler = rd_sampler_new(&opts->sampling, n_vocab, err);
    if (!g.sampler) {
        rd_error_prefix(err, "generate");
        goto fail;
    }
    g.logits = malloc((size_t)n_vocab * sizeof *g.logits);
    g.history = malloc((n_prompt + max_gen) * sizeof *g.history);
    g.text.cap = 64;
    g.text.data = malloc(g.text.cap);
    if (!g.logits || !g.history || !g.text.data) {
        rd_error_set(err, "generate: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_prompt; i++) g.history[i] = prompt[i];
    g.n_history = n_prompt;

    rd_ctx_reset(ctx);
    double t0 = now_seconds();
    if (rd_forward(ctx, edits, prompt, 1, (int)n_prompt, RD_LOGITS_LAST, g.logits, err)) {
        rd_error_prefix(err, "generate: prefill of %zu tokens", n_prompt);
        goto fail;
    }
    stats->prefill_seconds = now_seconds() - t0;

    t0 = now_seconds();
    int stopped_by = 0;
    while (stats->n_generated < opts->max_tokens) {
        int id = rd_sampler_sample(g.sampler, g.logits, g.history, g.n_history);
        if (opts->stop_at_eos && eos >= 0 && id == eos) {
            stopped_by = 1;
            break;
        }
        int prev = g.history[g.n_history - 1];
        g.history[g.n_history++] = id;
        if (out_ids) out_ids[stats->n_generated] = id;
        stats->n_generated++;
        if (on_token) {
            const char *text;
            size_t len;
            if (piece_text(tok, prev, id, &g.text, &text, &len)) {
                rd_error_set(err, "generate: out of memory for the text of token %d", id);
                goto fail;
            }
            stats->decode_seconds += now_seconds() - t0; /* callback time not counted */
            int stop = on_token(user, id, text, len);
            t0 = now_seconds();
            if (stop) {
                stopped_by = 2;
                break;
            }
        }
        if (stats->n_generated >= opts->max_tokens) break;
        if (rd_ctx_pos(ctx) >= max_seq) {
            stopped_by = 3;
            break;
        }
        if (rd_forward(ctx, edits, &id, 1, 1, RD_LOGITS_LAST, g.logits, err)) {
            rd_error_prefix(err, "generate: decode at position %d", rd_ctx_pos(ctx));
            goto fail;
        }
    }
    stats->decode_seconds += now_seconds() - t0;
    stats->stopped_by = stopped_by;
    gen_release(&g);
    return 0;
fail:
    gen_release(&g);
    return -1;
}
