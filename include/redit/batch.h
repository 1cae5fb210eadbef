/* redit — batched generation (gen layer): many sequences decoded together, each with its own
 * edit set and strength, its own sampler settings and seed, joining and leaving between steps
 * (continuous batching).
 *
 * One rd_batch owns one rd_ctx whose KV cache has `slots` slots; a sequence holds one slot from
 * rd_batch_add until it ends. A step (rd_batch_step) runs, in this order:
 *   1. prefill: the next chunk (at most prefill_chunk positions) of ONE sequence still reading
 *      its prompt (oldest first), as its own forward pass — so a long prompt does not stall the
 *      others for more than one chunk;
 *   2. decode: one forward pass over every generating sequence together (one row each, each at
 *      its own position, with its own edit view), reading each weight once for all rows.
 * A row's arithmetic does not depend on the other rows of the pass, so a sequence's tokens are
 * exactly those rd_generate gives for it alone (same prompt, edits, options and seed).
 *
 * Not thread-safe: one thread calls every function of one rd_batch (a server runs the batch on
 * its own engine thread and hands requests to it through a queue). */
#ifndef REDIT_BATCH_H
#define REDIT_BATCH_H

#include <stddef.h>

#include "redit/edits_view.h"
#include "redit/error.h"
#include "redit/generate.h"
#include "redit/model.h"

typedef struct rd_batch rd_batch;

typedef struct rd_batch_opts {
    int slots;         /* sequences at once (KV-cache slots), ≥ 1 */
    int max_seq;       /* context of each sequence (capped at the model's seq_len) */
    int prefill_chunk; /* prompt positions per step; 0: the engine's chunk (256) */
} rd_batch_opts;

/* Creates a batch for m (borrowed: must outlive the batch). NULL with *err when the KV cache
 * for slots × max_seq positions does not fit or the options are out of range. */
rd_batch *rd_batch_new(const rd_model *m, const rd_batch_opts *opts, rd_error *err);

/* Frees the batch; sequences still running end without callbacks. NULL-safe. */
void rd_batch_free(rd_batch *b);

/* Starts a sequence: prompt ids (n_prompt ≥ 1, copied) with the edit view (NULL or strength 0:
 * the base model; the view is copied, the vectors behind it stay the caller's and must live
 * until the sequence's on_done has been called or rd_batch_free returns) and opts (copied:
 * sampling with its own seed, max_tokens, stop_at_eos). user_data is handed back in the
 * callbacks. Returns the sequence's id (≥ 0, unique for the batch's lifetime) or -1 with *err:
 * no free slot, prompt longer than the context, bad options. Nothing runs until the next step. */
int rd_batch_add(rd_batch *b, const rd_edits_view *edits, const int *prompt, size_t n_prompt,
                 const rd_gen_opts *opts, void *user_data, rd_error *err);

/* One generated token of sequence `id`: its text through the model's tokenizer (borrowed for
 * the call, not NUL-terminated, may be empty) and logprob, the log-softmax of the raw logits
 * (before penalties and temperature) at the chosen token — for a sequence that asked with
 * rd_batch_set_top (k ≥ 0), else NAN (a log-softmax over the vocabulary costs several % of a
 * small model's decode step, so it is not computed unasked). Return non-zero to end that
 * sequence (on_done follows with stopped_by 2). EOS ending a stop_at_eos sequence is not
 * passed here. */
typedef int (*rd_batch_token_fn)(void *user_data, int id, int token, const char *text,
                                 size_t len, float logprob);

/* The most alternatives rd_batch_set_top takes. */
#define RD_BATCH_MAX_TOP 20

/* Asks sequence `id` for on_token's logprob (k ≥ 0) and the k (0..RD_BATCH_MAX_TOP) most
 * likely tokens of every row it samples from, read with rd_batch_token_top inside on_token;
 * k = -1 (the default): neither is computed (no cost). 0, or -1 with *err for an unknown id
 * or k out of range. */
int rd_batch_set_top(rd_batch *b, int id, int k, rd_error *err);

/* Inside on_token only (for the token being passed): the rd_batch_set_top k most likely
 * tokens of the raw logits row it was sampled from, most likely first (ties: lower id first),
 * with their log-probabilities computed as on_token's logprob is (the same arithmetic, so the
 * chosen token's entry equals it bit for bit). *ids and *logprobs are borrowed for the call.
 * Returns the count (0 when the sequence asked for none, or outside on_token). */
int rd_batch_token_top(const rd_batch *b, const int **ids, const float **logprobs);

/* The log-probability of token id (0 ≤ id < n) in a raw logits row (n), computed as on_token's
 * logprob is, and with k ≥ 1 the row's k most likely entries as rd_batch_token_top gives them:
 * ids and log-probabilities (each of k), most likely first, *n_top = min(k, n) (0 for k ≤ 0;
 * n_top may be NULL). One log-sum-exp pass serves both. */
float rd_logits_logprob(const float *row, int n, int id, int k, int *ids, float *logprobs,
                        int *n_top);

/* Sequence `id` has ended (stats.stopped_by: 0 token limit, 1 EOS, 2 callback or
 * rd_batch_cancel, 3 context full); its slot is free again when this is called. */
typedef void (*rd_batch_done_fn)(void *user_data, int id, const rd_gen_stats *stats);

/* Runs one step as described at the top, calling on_token / on_done (either may be NULL) with
 * each sequence's user_data. Returns the number of sequences still running after the step
 * (0: idle, nothing ran), or -1 with *err (a failed forward pass: every running sequence is
 * ended with stopped_by 2 and on_done called). */
int rd_batch_step(rd_batch *b, rd_batch_token_fn on_token, rd_batch_done_fn on_done,
                  rd_error *err);

/* Ends sequence id: its on_done (stopped_by 2) comes from the next rd_batch_step, which frees
 * its slot. Unknown or ended ids are ignored. */
void rd_batch_cancel(rd_batch *b, int id);

int rd_batch_running(const rd_batch *b);    /* sequences added and not yet ended */
int rd_batch_free_slots(const rd_batch *b); /* slots an rd_batch_add may take now */
int rd_batch_max_seq(const rd_batch *b);    /* context of each sequence */

#endif
