/* redit — forward pass: batched prefill and KV-cache decode (model layer).
 *
 * An rd_ctx is the run state of one model: a KV cache for up to max_batch sequences of up
 * to max_seq positions, and scratch buffers. All sequences of a batch advance together:
 * rd_forward appends T tokens per sequence at position rd_ctx_pos(). Decode is rd_forward
 * with T = 1 (matrix-vector products that read each weight once). */
#ifndef REDIT_FORWARD_H
#define REDIT_FORWARD_H

#include "redit/edits_view.h"
#include "redit/error.h"
#include "redit/model.h"

typedef struct rd_ctx rd_ctx;

/* Creates a run state for m (borrowed: must outlive the ctx). max_seq is capped at the
 * model's seq_len. Returns NULL with *err set (e.g. the KV cache does not fit). */
rd_ctx *rd_ctx_new(const rd_model *m, int max_batch, int max_seq, rd_error *err);

/* The same with a KV cache of `slots` slots for rd_forward_seqs, whose scratch holds one pass
 * of max(slots, chunk) rows (a decode of every slot, or a prefill chunk of one sequence)
 * instead of rd_ctx_new's slots × chunk. */
rd_ctx *rd_ctx_new_slots(const rd_model *m, int slots, int max_seq, rd_error *err);
void rd_ctx_free(rd_ctx *c); /* NULL-safe */

/* Forgets the cached positions (next rd_forward starts at position 0). */
void rd_ctx_reset(rd_ctx *c);
int rd_ctx_pos(const rd_ctx *c);
int rd_ctx_max_seq(const rd_ctx *c);
int rd_ctx_max_batch(const rd_ctx *c);

/* Copies the first n cached positions of slot src into slot dst (every layer's keys and
 * values), so that a prefix prefilled once serves several sequences: e.g. rd_forward with
 * B = 1 over a shared context, this call for slots 1..k−1, then rd_forward with B = k
 * continues every slot at rd_ctx_pos() (or rd_forward_seqs at pos n). The copy is exact, so a
 * continued slot computes what the same slot prefilled with those tokens itself would.
 * Positions n.. of dst are left as they were; rd_ctx_pos is not moved. Fails on a slot
 * outside [0, max_batch) or n outside [0, max_seq]; src == dst does nothing. */
int rd_ctx_copy_slot(rd_ctx *c, int src, int dst, int n, rd_error *err);

/* The model c runs (borrowed). */
const rd_model *rd_ctx_model(const rd_ctx *c);

/* Bytes of the KV cache and scratch held by c. */
size_t rd_ctx_bytes(const rd_ctx *c);

typedef enum rd_logits_mode {
    RD_LOGITS_NONE = 0, /* only fill the cache */
    RD_LOGITS_LAST,     /* logits (B, V) of each sequence's last new position */
    RD_LOGITS_ALL       /* logits (B, T, V) of every new position */
} rd_logits_mode;

/* Runs tokens (B, T) row-major at positions pos..pos+T-1 of sequences 0..B-1 and appends
 * them to the cache. edits == NULL runs the base model at no extra cost. logits receives
 * what `mode` asks for (caller-allocated). Fails (nothing appended) on B > max_batch,
 * pos + T > max_seq or a token outside the vocabulary. */
int rd_forward(rd_ctx *c, const rd_edits_view *edits, const int *tokens, int B, int T,
               rd_logits_mode mode, float *logits, rd_error *err);

/* One sequence of an rd_forward_seqs call. */
typedef struct rd_seq {
    int slot;                   /* its KV-cache slot, [0, max_batch), distinct within a call */
    int pos;                    /* positions already cached in the slot: new rows go at pos.. */
    const rd_edits_view *edits; /* its edits (NULL or strength 0: the base model), borrowed */
} rd_seq;

/* Runs tokens (B, T) row-major where sequence i uses cache slot seqs[i].slot at positions
 * seqs[i].pos..pos+T-1 (RoPE and attention at its own positions) and its own edit view;
 * appends them to those slots. rd_ctx_pos is neither read nor moved. logits as rd_forward's.
 * A row's arithmetic does not depend on the other sequences of the call: decode (T = 1)
 * takes every product by matvec over all B rows, so each sequence's logits are bit for bit
 * those of the same call with B = 1, and with B = 1 the call computes what rd_forward does
 * for one sequence at that position (the same chunks of at most 256 positions). Fails
 * (nothing appended) on a bad slot, a slot given twice, pos + T > max_seq, B > max_batch
 * or a token outside the vocabulary. */
int rd_forward_seqs(rd_ctx *c, const rd_seq *seqs, int B, const int *tokens, int T,
                    rd_logits_mode mode, float *logits, rd_error *err);

#endif
