/* redit — multiple-choice scoring (train layer): lm-evaluation-harness's log-likelihood
 * rules on an rd_mc_set, accuracy with its standard error, per-item results, and McNemar's
 * test for two scorings of the same items (base vs edited).
 *
 * Tokens, as the harness's _encode_pair: trailing whitespace of the context is moved to
 * the front of the continuation; ctx = [BOS] + enc(context), whole = [BOS] + enc(context +
 * choice), and the continuation is whole[len(ctx):] — scored after ctx (not after whole's
 * first tokens, which may differ where a token straddles the boundary). The BOS is one id
 * in front of both and so never changes the split; the harness's Hugging Face model adds
 * none by default (add_bos_token=False) and its local-completions model sends what the
 * server's tokenizer makes of the text; redit always puts the BOS first (as Llama is
 * trained and as redit's own data sets are encoded), i.e. the harness with
 * add_bos_token=True. When the context and the item's longest continuation exceed
 * max_len, the context's oldest tokens after the BOS are left out, the same for every choice
 * (they share it; the harness keeps the last max_length tokens of each request on its own).
 *
 * The log-likelihood of a choice is the sum of log-softmax(logits)[token] over its
 * continuation tokens; acc takes the choice with the highest sum (the first of equals, as
 * numpy's argmax), acc_norm the highest sum / norm_len (the choice's characters: the
 * harness's len(choice); 1 for an empty choice text). Standard errors as the harness's
 * mean_stderr: the sample standard deviation (n − 1) of the 0/1 scores over √n.
 *
 * All choices of an item share the context's KV cache: the context is prefilled once (one
 * row, rd_forward with B = 1), its cache copied to the other choices' slots
 * (rd_ctx_copy_slot), then every choice's tokens run in one batched pass (B = its choices)
 * with their logits. */
#ifndef REDIT_MC_EVAL_H
#define REDIT_MC_EVAL_H

#include <stdatomic.h>
#include <stddef.h>

#include "redit/dp.h"
#include "redit/edits_view.h"
#include "redit/error.h"
#include "redit/mc.h"
#include "redit/model.h"

typedef struct rd_mc_scores {
    size_t n;              /* items scored */
    double acc, acc_stderr;
    double acc_norm, acc_norm_stderr;
    int *pred, *pred_norm; /* (n) the chosen index of each item */
    double *loglik;        /* (sum of n_choices) each choice's summed log-probability, item
                              after item (offset[i] .. offset[i + 1]) */
    int *tokens;           /* (sum of n_choices) continuation tokens of each choice */
    size_t *offset;        /* (n + 1) */
    size_t truncated;      /* items whose context lost tokens to max_len */
} rd_mc_scores;

/* Scores every item of s with edits `view` (NULL: the base model) on m (needs its
 * tokenizer); max_len (≤ the model's seq_len, else capped) bounds context + continuation.
 * stop (may be NULL) is read between items: at RD_STOP_SKIP_EVAL (2) or more it returns 1,
 * out released. Returns 0 with *out filled (release with rd_mc_scores_release), 1 when
 * stopped, or -1 with *err (no tokenizer, a choice with no tokens after its context, a
 * continuation longer than max_len — each naming the file and line — or out of memory). */
int rd_mc_score(const rd_model *m, const rd_edits_view *view, const rd_mc_set *s, int max_len,
                const atomic_int *stop, rd_mc_scores *out, rd_error *err);
void rd_mc_scores_release(rd_mc_scores *r); /* zeroes *r; a zeroed one may be released */

/* rd_mc_score with the items shared among the ranks of dp (NULL or one rank: rd_mc_score
 * itself): rank r scores the items [n·r/N, n·(r+1)/N) of the n (each item on its own, as one
 * process does) and rank 0 gathers them, so rank 0's *out equals one process's, array for
 * array; on the other ranks *out is left zeroed. Every rank must call it together and returns
 * the same code: 0, or -1 when a share failed (rank 0's *err then holds the earliest failing
 * item's error, the one a single process reports) or an exchange failed. With more than one
 * rank stop is not read. */
int rd_mc_score_dp(const rd_model *m, const rd_edits_view *view, const rd_mc_set *s, int max_len,
                   const atomic_int *stop, rd_dp *dp, rd_mc_scores *out, rd_error *err);

/* The harness's stderr of a mean of 0/1 scores: sqrt(p (1 − p) / (n − 1)) for `correct` of
 * n (NAN when n < 2). */
double rd_mc_stderr(size_t correct, size_t n);

/* McNemar's exact test: the two-sided binomial p-value of b against c discordant pairs
 * (b + c trials, probability 1/2): min(1, 2 · P(X ≤ min(b, c))); 1 when b + c is 0. */
double rd_mcnemar_exact(long b, long c);

/* McNemar's test of two scorings of the same items of s, by their predictions (pred or
 * pred_norm of each, n = rd_mc_size(s)): *b items only `base` got right, *c only `edited`;
 * returns rd_mcnemar_exact(*b, *c). */
double rd_mc_mcnemar(const rd_mc_set *s, const int *base, const int *edited, long *b, long *c);

/* Writes one JSON line per item to path (atomically): {"item" (0-based), "line", "gold",
 * "n_choices", then for each scoring: "loglik": [...], "tokens": [...], "pred",
 * "pred_norm", "acc" (0/1), "acc_norm"}. With `edited` (may be NULL) the scorings are
 * objects "base" and "edited", else at the top level. Both must be of s. */
int rd_mc_write_per_item(const char *path, const rd_mc_set *s, const rd_mc_scores *base,
                         const rd_mc_scores *edited, rd_error *err);

#endif
