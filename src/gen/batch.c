/* Batched generation (redit/batch.h): continuous batching over one rd_ctx with a KV-cache
 * slot per sequence.
 *
 * A sequence's life: rd_batch_add takes a free slot (state PREFILL); each step prefills one
 * chunk of the oldest prefilling sequence (rd_forward_seqs with B = 1, the chunks rd_generate
 * takes), and when its prompt is in, samples its first token (state DECODE, one token
 * pending). The decode pass then runs every sequence with a pending token as one row of one
 * rd_forward_seqs call (T = 1: each row at its own slot, position and edit view, every
 * product by matvec so the row equals the sequence alone), and each samples its next token.
 * A sequence ends on its token limit, EOS, a full context, a callback's stop or a cancel;
 * its slot is then free for the next rd_batch_add.
 *
 * The per-sequence rules (token limit before context, EOS not passed on, the history the
 * sampler sees) are rd_generator's, so the tokens are those rd_generate gives alone. */
#include "redit/batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"
#include "redit/forward.h"
#include "redit/sampler.h"
#include "redit/tokenizer.h"

#include "gen_internal.h"

#define BATCH_DEFAULT_CHUNK 256

enum { SEQ_FREE = 0, SEQ_PREFILL, SEQ_DECODE };

typedef struct seq {
    int state, id, cancelled;
    rd_edits_view view; /* copy of the caller's view (vectors borrowed) */
    int has_view;
    rd_gen_opts opts;
    rd_sampler *sampler;
    int *history;       /* (n_prompt + max_gen) prompt then generated ids */
    size_t n_history, n_prompt, max_gen;
    int pos;            /* positions in the slot's cache */
    int top;            /* alternatives wanted per sampled row (rd_batch_set_top); -1: no
                         * logprobs at all */
    void *user;
    rd_gen_stats stats;
} seq;

struct rd_batch {
    const rd_model *m;
    rd_ctx *ctx;
    const rd_tokenizer *tok;
    int slots, max_seq, chunk, vocab, eos, next_id, running;
    seq *seqs;          /* (slots), index = KV-cache slot */
    float *logits;      /* (slots, vocab) one row per decoded sequence */
    float *work;        /* (vocab) the row the sampler may change */
    int *tokens;        /* (slots) decode input */
    rd_seq *rows;       /* (slots) decode rows */
    int *row_slot;      /* (slots) slot of each decode row */
    rd_buf text;        /* scratch for a token's text */
    int n_top;          /* alternatives of the token being passed to on_token (else 0) */
    int top_id[RD_BATCH_MAX_TOP];
    float top_lp[RD_BATCH_MAX_TOP];
};

rd_batch *rd_batch_new(const rd_model *m, const rd_batch_opts *opts, rd_error *err) {
    if (!m || !opts) {
        rd_error_set(err, "batch: no model or options given");
        return NULL;
    }
    if (opts->slots < 1 || opts->slots > 4096) {
        rd_error_set(err, "batch: %d slots is out of range [1, 4096]", opts->slots);
        return NULL;
    }
    if (opts->max_seq < 1) {
        rd_error_set(err, "batch: context length %d must be at least 1", opts->max_seq);
        return NULL;
    }
    if (opts->prefill_chunk < 0) {
        rd_error_set(err, "batch: prefill chunk %d must be >= 0", opts->prefill_chunk);
        return NULL;
    }
    rd_batch *b = calloc(1, sizeof *b);
    if (!b) {
        rd_error_set(err, "batch: out of memory");
        return NULL;
    }
    b->m = m;
    b->slots = opts->slots;
    b->chunk = opts->prefill_chunk ? opts->prefill_chunk : BATCH_DEFAULT_CHUNK;
    b->vocab = rd_model_config(m)->vocab_size;
    b->tok = rd_model_tokenizer(m);
    b->eos = b->tok ? rd_tokenizer_eos(b->tok) : -1;
    b->ctx = rd_ctx_new_slots(m, opts->slots, opts->max_seq, err);
    if (!b->ctx) {
        rd_error_prefix(err, "batch");
        free(b);
        return NULL;
    }
    b->max_seq = rd_ctx_max_seq(b->ctx);
    const size_t S = (size_t)b->slots;
    b->seqs = calloc(S, sizeof *b->seqs);
    b->logits = malloc(S * (size_t)b->vocab * sizeof *b->logits);
    b->work = malloc((size_t)b->vocab * sizeof *b->work);
    b->tokens = malloc(S * sizeof *b->tokens);
    b->rows = malloc(S * sizeof *b->rows);
    b->row_slot = malloc(S * sizeof *b->row_slot);
    if (!b->seqs || !b->logits || !b->work || !b->tokens || !b->rows || !b->row_slot ||
        rd_buf_reserve(&b->text, 63)) {
        rd_error_set(err, "batch: out of memory for %d slots", b->slots);
        rd_batch_free(b);
        return NULL;
    }
    return b;
}

/* Releases what sequence s owns and marks its slot free. */
static void seq_clear(seq *s) {
    rd_sampler_free(s->sampler);
    free(s->history);
    memset(s, 0, sizeof *s);
}

void rd_batch_free(rd_batch *b) {
    if (!b) return;
    for (int i = 0; b->seqs && i < b->slots; i++) seq_clear(&b->seqs[i]);
    rd_ctx_free(b->ctx);
    free(b->seqs);
    free(b->logits);
    free(b->work);
    free(b->tokens);
    free(b->rows);
    free(b->row_slot);
    rd_buf_free(&b->text);
    free(b);
}

int rd_batch_add(rd_batch *b, const rd_edits_view *edits, const int *prompt, size_t n_prompt,
                 const rd_gen_opts *opts, void *user_data, rd_error *err) {
    if (!b || !opts) return rd_error_set(err, "batch: no batch or options given");
    if (!prompt || n_prompt == 0)
        return rd_error_set(err, "batch: the prompt is empty (at least one token needed)");
    if (opts->max_tokens < 0)
        return rd_error_set(err, "batch: max_tokens %d must be >= 0", opts->max_tokens);
    if (n_prompt > (size_t)b->max_seq)
        return rd_error_set(err, "batch: the prompt has %zu tokens, more than the context "
                                 "holds (%d)",
                            n_prompt, b->max_seq);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= b->vocab)
            return rd_error_set(err, "batch: prompt token %d at index %zu is outside the "
                                     "vocabulary [0, %d)",
                                prompt[i], i, b->vocab);
    int slot = 0;
    while (slot < b->slots && b->seqs[slot].state != SEQ_FREE) slot++;
    if (slot == b->slots)
        return rd_error_set(err, "batch: no free slot (all %d in use)", b->slots);
    seq *s = &b->seqs[slot];
    s->sampler = rd_sampler_new(&opts->sampling, b->vocab, err);
    if (!s->sampler) {
        rd_error_prefix(err, "batch");
        seq_clear(s);
        return -1;
    }
    /* the last token sampled needs no forward pass, so a full context still yields one */
    const size_t room = (size_t)b->max_seq - n_prompt + 1;
    s->max_gen = (size_t)opts->max_tokens < room ? (size_t)opts->max_tokens : room;
    s->history = malloc((n_prompt + s->max_gen) * sizeof *s->history);
    if (!s->history) {
        seq_clear(s);
        return rd_error_set(err, "batch: out of memory for a prompt of %zu tokens", n_prompt);
    }
    memcpy(s->history, prompt, n_prompt * sizeof *prompt);
    s->n_history = s->n_prompt = n_prompt;
    if (edits) {
        s->view = *edits;
        s->has_view = 1;
    }
    s->opts = *opts;
    s->top = -1;
    s->user = user_data;
    s->stats.n_prompt = (int)n_prompt;
    s->id = b->next_id++;
    s->state = SEQ_PREFILL;
    b->running++;
    return s->id;
}

/* Ends the sequence in slot i: frees the slot, then on_done. */
static void seq_end(rd_batch *b, int i, int stopped_by, rd_batch_done_fn on_done) {
    seq *s = &b->seqs[i];
    rd_gen_stats stats = s->stats;
    stats.stopped_by = stopped_by;
    const int id = s->id;
    void *user = s->user;
    seq_clear(s);
    b->running--;
    if (on_done) on_done(user, id, &stats);
}

/* The maximum of logits (n) and the log of the sum of exp(logit - max) (sums in double):
 * a logit's log-softmax is then (float)((double)logit - max - logsum). */
static void log_softmax_terms(const float *logits, int n, double *max, double *logsum) {
    float mx = logits[0];
    for (int k = 1; k < n; k++)
        if (logits[k] > mx) mx = logits[k];
    double sum = 0.0;
    for (int k = 0; k < n; k++) sum += exp((double)logits[k] - (double)mx);
    *max = (double)mx;
    *logsum = log(sum);
}

/* The k most likely entries of row (n logits) into ids / lps, most likely first (ties:
 * lower id first), as log-probabilities with the terms of log_softmax_terms; their count. */
static int row_top(const float *row, int n, int k, double max, double logsum, int *ids,
                   float *lps) {
    int m = 0;
    for (int v = 0; v < n && k > 0; v++) {
        if (m == k && row[v] <= row[ids[k - 1]]) continue;
        int pos = m < k ? m++ : k - 1;
        while (pos > 0 && row[v] > row[ids[pos - 1]]) {
            ids[pos] = ids[pos - 1];
            pos--;
        }
        ids[pos] = v;
    }
    for (int i = 0; i < m; i++) lps[i] = (float)((double)row[ids[i]] - max - logsum);
    return m;
}

float rd_logits_logprob(const float *row, int n, int id, int k, int *ids, float *logprobs,
                        int *n_top) {
    double max, logsum;
    log_softmax_terms(row, n, &max, &logsum);
    const int m = k > 0 ? row_top(row, n, k < n ? k : n, max, logsum, ids, logprobs) : 0;
    if (n_top) *n_top = m;
    return (float)((double)row[id] - max - logsum);
}

/* Samples the next token of the sequence in slot i from its raw logits row, passes it on and
 * ends the sequence where rd_generator would stop; else leaves the token pending. Returns 0,
 * or -1 when out of memory (the sequence is then ended). */
static int seq_sample(rd_batch *b, int i, const float *row, rd_batch_token_fn on_token,
                      rd_batch_done_fn on_done, rd_error *err) {
    seq *s = &b->seqs[i];
    memcpy(b->work, row, (size_t)b->vocab * sizeof *row);
    const int id = rd_sampler_sample(s->sampler, b->work, s->history, s->n_history);
    if (s->opts.stop_at_eos && b->eos >= 0 && id == b->eos) {
        seq_end(b, i, 1, on_done);
        return 0;
    }
    const float logprob = s->top >= 0 ? rd_logits_logprob(row, b->vocab, id, s->top, b->top_id,
                                                          b->top_lp, &b->n_top)
                                      : NAN;
    const int prev = s->history[s->n_history - 1];
    s->history[s->n_history++] = id;
    s->stats.n_generated++;
    const char *text;
    size_t len;
    if (rd_gen_piece_text(b->tok, prev, id, &b->text, &text, &len)) {
        seq_end(b, i, 2, on_done);
        return rd_error_set(err, "batch: out of memory for the text of token %d", id);
    }
    const int stop = on_token && on_token(s->user, s->id, id, text, len, logprob);
    b->n_top = 0;
    if (stop) {
        seq_end(b, i, 2, on_done);
    } else if (s->stats.n_generated >= s->opts.max_tokens) {
        seq_end(b, i, 0, on_done);
    }
    return 0;
}

/* A failed pass: every running sequence ends (stopped_by 2). */
static int fail_all(rd_batch *b, rd_batch_done_fn on_done) {
    for (int i = 0; i < b->slots; i++)
        if (b->seqs[i].state != SEQ_FREE) seq_end(b, i, 2, on_done);
    return -1;
}

/* The prefill step: the next chunk of the oldest sequence still reading its prompt. */
static int prefill_step(rd_batch *b, rd_batch_token_fn on_token, rd_batch_done_fn on_done,
                        rd_error *err) {
    int i = -1;
    for (int k = 0; k < b->slots; k++)
        if (b->seqs[k].state == SEQ_PREFILL && (i < 0 || b->seqs[k].id < b->seqs[i].id)) i = k;
    if (i < 0) return 0;
    seq *s = &b->seqs[i];
    if (s->opts.max_tokens == 0) { /* nothing to generate: rd_generate's stats, no pass */
        seq_end(b, i, 0, on_done);
        return 0;
    }
    const size_t left = s->n_prompt - (size_t)s->pos;
    const int n = left < (size_t)b->chunk ? (int)left : b->chunk;
    const int last = (size_t)n == left;
    const rd_seq q = {.slot = i, .pos = s->pos, .edits = s->has_view ? &s->view : NULL};
    const double t0 = rd_gen_now();
    if (rd_forward_seqs(b->ctx, &q, 1, s->history + s->pos, n,
                        last ? RD_LOGITS_LAST : RD_LOGITS_NONE, b->logits, err)) {
        rd_error_prefix(err, "batch: prefill of sequence %d at position %d", s->id, s->pos);
        return fail_all(b, on_done);
    }
    s->pos += n;
    s->stats.prefill_seconds += rd_gen_now() - t0;
    if (!last) return 0;
    s->state = SEQ_DECODE;
    const double t1 = rd_gen_now();
    if (seq_sample(b, i, b->logits, on_token, on_done, err)) return -1;
    if (b->seqs[i].state == SEQ_DECODE) b->seqs[i].stats.decode_seconds += rd_gen_now() - t1;
    return 0;
}

/* The decode step: one row per sequence with a pending token, in one pass. */
static int decode_step(rd_batch *b, rd_batch_token_fn on_token, rd_batch_done_fn on_done,
                       rd_error *err) {
    int B = 0;
    for (int i = 0; i < b->slots; i++) {
        seq *s = &b->seqs[i];
        if (s->state != SEQ_DECODE) continue;
        if (s->pos >= b->max_seq) { /* the pending token has no room */
            seq_end(b, i, 3, on_done);
            continue;
        }
        b->tokens[B] = s->history[s->n_history - 1];
        b->rows[B] = (rd_seq){.slot = i, .pos = s->pos, .edits = s->has_view ? &s->view : NULL};
        b->row_slot[B++] = i;
    }
    if (B == 0) return 0;
    const double t0 = rd_gen_now();
    if (rd_forward_seqs(b->ctx, b->rows, B, b->tokens, 1, RD_LOGITS_LAST, b->logits, err)) {
        rd_error_prefix(err, "batch: decode of %d sequences", B);
        return fail_all(b, on_done);
    }
    const double pass = rd_gen_now() - t0;
    for (int r = 0; r < B; r++) {
        const int i = b->row_slot[r];
        b->seqs[i].pos++;
        const double t1 = rd_gen_now();
        if (seq_sample(b, i, b->logits + (size_t)r * b->vocab, on_token, on_done, err))
            return -1;
        if (b->seqs[i].state == SEQ_DECODE)
            b->seqs[i].stats.decode_seconds += pass + (rd_gen_now() - t1);
    }
    return 0;
}

int rd_batch_step(rd_batch *b, rd_batch_token_fn on_token, rd_batch_done_fn on_done,
                  rd_error *err) {
    if (!b) return rd_error_set(err, "batch: no batch given");
    for (int i = 0; i < b->slots; i++)
        if (b->seqs[i].state != SEQ_FREE && b->seqs[i].cancelled) seq_end(b, i, 2, on_done);
    if (b->running == 0) return 0;
    if (prefill_step(b, on_token, on_done, err)) return -1;
    if (decode_step(b, on_token, on_done, err)) return -1;
    return b->running;
}

void rd_batch_cancel(rd_batch *b, int id) {
    if (!b || id < 0) return;
    for (int i = 0; i < b->slots; i++)
        if (b->seqs[i].state != SEQ_FREE && b->seqs[i].id == id) b->seqs[i].cancelled = 1;
}

int rd_batch_set_top(rd_batch *b, int id, int k, rd_error *err) {
    if (!b) return rd_error_set(err, "batch: no batch given");
    if (k < -1 || k > RD_BATCH_MAX_TOP)
        return rd_error_set(err, "batch: %d alternatives per token is out of range [-1, %d]", k,
                            RD_BATCH_MAX_TOP);
    for (int i = 0; id >= 0 && i < b->slots; i++)
        if (b->seqs[i].state != SEQ_FREE && b->seqs[i].id == id) {
            b->seqs[i].top = k;
            return 0;
        }
    return rd_error_set(err, "batch: no running sequence %d", id);
}

int rd_batch_token_top(const rd_batch *b, const int **ids, const float **logprobs) {
    if (!b || b->n_top == 0) return 0;
    if (ids) *ids = b->top_id;
    if (logprobs) *logprobs = b->top_lp;
    return b->n_top;
}

int rd_batch_running(const rd_batch *b) { return b ? b->running : 0; }
int rd_batch_free_slots(const rd_batch *b) { return b ? b->slots - b->running : 0; }
int rd_batch_max_seq(const rd_batch *b) { return b ? b->max_seq : 0; }
