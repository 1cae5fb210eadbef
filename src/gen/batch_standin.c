/* TEMPORARY stand-in for helper A's batch.c, delete at merge */
/* include/redit/batch.h's contract on one rd_ctx + rd_generator per slot, advanced round-robin
 * (no shared forward pass: correct, not fast), so that `redit serve` can be built and tested
 * end to end before the batched engine lands. The logprob passed to on_token is 0 here. */
#include "redit/batch.h"

#include <stdlib.h>

typedef struct seq {
    int id, active, started, cancel;
    unsigned long order;
    rd_ctx *ctx;
    rd_generator *g;
    int *prompt;
    size_t n_prompt;
    rd_edits_view view;
    int has_view;
    rd_gen_opts opts;
    void *user;
} seq;

struct rd_batch {
    const rd_model *m;
    int slots, max_seq, next_id;
    unsigned long order;
    seq *seq;
};

void rd_batch_free(rd_batch *b) {
    if (!b) return;
    for (int i = 0; i < b->slots; i++) {
        rd_generator_free(b->seq[i].g);
        free(b->seq[i].prompt);
        rd_ctx_free(b->seq[i].ctx);
    }
    free(b->seq);
    free(b);
}

rd_batch *rd_batch_new(const rd_model *m, const rd_batch_opts *opts, rd_error *err) {
    if (!m || !opts || opts->slots < 1 || opts->slots > 4096 || opts->max_seq < 1) {
        rd_error_set(err, "batch: slots must be in [1, 4096] and max_seq >= 1");
        return NULL;
    }
    rd_batch *b = calloc(1, sizeof *b);
    if (!b || !(b->seq = calloc((size_t)opts->slots, sizeof *b->seq))) {
        free(b);
        rd_error_set(err, "batch: out of memory");
        return NULL;
    }
    b->m = m;
    b->slots = opts->slots;
    for (int i = 0; i < b->slots; i++)
        if (!(b->seq[i].ctx = rd_ctx_new(m, 1, opts->max_seq, err))) {
            rd_batch_free(b);
            return NULL;
        }
    b->max_seq = rd_ctx_max_seq(b->seq[0].ctx);
    return b;
}

int rd_batch_add(rd_batch *b, const rd_edits_view *edits, const int *prompt, size_t n_prompt,
                 const rd_gen_opts *opts, void *user_data, rd_error *err) {
    if (!prompt || n_prompt == 0 || !opts || opts->max_tokens < 0)
        return rd_error_set(err, "batch: empty prompt or bad options");
    if (n_prompt > (size_t)b->max_seq)
        return rd_error_set(err, "batch: the prompt has %zu tokens, more than the context (%d)",
                            n_prompt, b->max_seq);
    for (int i = 0; i < b->slots; i++) {
        seq *s = &b->seq[i];
        if (s->active) continue;
        if (!(s->prompt = malloc(n_prompt * sizeof *prompt)))
            return rd_error_set(err, "batch: out of memory");
        for (size_t k = 0; k < n_prompt; k++) s->prompt[k] = prompt[k];
        s->n_prompt = n_prompt;
        s->has_view = edits && edits->strength != 0.0f;
        if (s->has_view) s->view = *edits;
        s->opts = *opts;
        s->user = user_data;
        s->active = 1;
        s->started = s->cancel = 0;
        s->order = b->order++;
        s->id = b->next_id++;
        return s->id;
    }
    return rd_error_set(err, "batch: no free slot (%d in use)", b->slots);
}

static void end_seq(seq *s, rd_batch_done_fn on_done, int stopped_by) {
    rd_gen_stats st = {0};
    if (s->g) st = *rd_generator_stats(s->g);
    st.n_prompt = (int)s->n_prompt;
    if (stopped_by >= 0) st.stopped_by = stopped_by;
    rd_generator_free(s->g);
    s->g = NULL;
    free(s->prompt);
    s->prompt = NULL;
    s->active = 0;
    if (on_done) on_done(s->user, s->id, &st);
}

int rd_batch_step(rd_batch *b, rd_batch_token_fn on_token, rd_batch_done_fn on_done,
                  rd_error *err) {
    for (int i = 0; i < b->slots; i++)
        if (b->seq[i].active && b->seq[i].cancel) end_seq(&b->seq[i], on_done, 2);
    seq *first = NULL;
    for (int i = 0; i < b->slots; i++)
        if (b->seq[i].active && !b->seq[i].started && (!first || b->seq[i].order < first->order))
            first = &b->seq[i];
    if (first) {
        first->g = rd_generator_start(first->ctx, first->has_view ? &first->view : NULL,
                                      first->prompt, first->n_prompt, &first->opts, err);
        if (!first->g) {
            for (int i = 0; i < b->slots; i++)
                if (b->seq[i].active) end_seq(&b->seq[i], on_done, 2);
            return -1;
        }
        first->started = 1;
    }
    for (int i = 0; i < b->slots; i++) {
        seq *s = &b->seq[i];
        if (!s->active || !s->started) continue;
        int tok;
        const char *text;
        size_t len;
        const int r = rd_generator_next(s->g, &tok, &text, &len, err);
        if (r < 0) {
            for (int k = 0; k < b->slots; k++)
                if (b->seq[k].active) end_seq(&b->seq[k], on_done, 2);
            return -1;
        }
        if (r == 0) end_seq(s, on_done, -1);
        else if (on_token && on_token(s->user, s->id, tok, text, len, 0.0f)) end_seq(s, on_done, 2);
    }
    return rd_batch_running(b);
}

void rd_batch_cancel(rd_batch *b, int id) {
    for (int i = 0; i < b->slots; i++)
        if (b->seq[i].active && b->seq[i].id == id) b->seq[i].cancel = 1;
}

int rd_batch_running(const rd_batch *b) {
    int n = 0;
    for (int i = 0; i < b->slots; i++) n += b->seq[i].active;
    return n;
}

int rd_batch_free_slots(const rd_batch *b) { return b->slots - rd_batch_running(b); }
int rd_batch_max_seq(const rd_batch *b) { return b->max_seq; }
