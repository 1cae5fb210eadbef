/* redit — the training pass: forward over fresh (B, T) sequences keeping what backward
 * needs, next-token cross-entropy, and backward (model layer).
 *
 * Backward propagates activation gradients through the frozen weights (dX = dY·W; no
 * weight gradients) and produces the gradients of the RED edit vectors:
 *   ds = Σ_tokens dh' ⊙ h,   db = Σ_tokens dh',   dh = s ⊙ dh'
 * (times α at strength α). With checkpointing only each layer's input is kept and the layer
 * is recomputed during backward, so activation memory grows with one layer, not all. */
#ifndef REDIT_BACKWARD_H
#define REDIT_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#include "redit/edits_view.h"
#include "redit/error.h"
#include "redit/model.h"

typedef struct rd_train_ctx rd_train_ctx;

/* Activation storage for micro-batches of up to max_batch sequences of up to max_len
 * positions on model m (borrowed: must outlive the context). NULL with *err when the
 * memory (reported in the message) cannot be allocated. */
rd_train_ctx *rd_train_ctx_new(const rd_model *m, int max_batch, int max_len, int checkpointing,
                               rd_error *err);
void rd_train_ctx_free(rd_train_ctx *c); /* NULL-safe */
size_t rd_train_ctx_bytes(const rd_train_ctx *c);

/* Dropout for the passes that follow (until changed): each element of every sub-layer's output
 * (attention and FFN, after the edit, before the residual add) is zeroed with probability p
 * and the rest scaled by 1/(1 − p); the masks are a pure function of seed, the layer, the
 * sub-layer and the element's place in the (B·T, dim) output, so a pass's backward (and its
 * checkpointing recompute) uses its forward's masks. Callers change seed between passes for
 * fresh masks. p 0 (the default) turns dropout off: evaluation must run with it off. */
void rd_train_ctx_set_dropout(rd_train_ctx *c, float p, uint64_t seed);

/* LoRA's dropout for the passes that follow (until changed): each element of every LoRA
 * target's input x (the A·x̃ of its product, per layer and projection) is zeroed with
 * probability p and the rest scaled by 1/(1 − p), masks a pure function of seed, the layer,
 * the projection and the element's place, as rd_train_ctx_set_dropout's. p 0 (the default):
 * off; evaluation must run with it off. */
void rd_train_ctx_set_lora_dropout(rd_train_ctx *c, float p, uint64_t seed);

/* Bytes rd_train_ctx_new would allocate (for reporting before allocating). */
size_t rd_train_ctx_estimate(const rd_config *cfg, int max_batch, int max_len, int checkpointing);

/* Runs tokens (B, T) through the model with edits (NULL = base model) and returns the SUM
 * over positions with targets[i] ≥ 0 of −log p(targets[i] | tokens[..i]) in *loss_sum and
 * the number of such positions in *n_targets. When grads is not NULL, adds the gradient of
 * that sum with respect to every edit vector into grads (callers zero them first and divide
 * by the total count for a mean). targets (B, T): the id to predict after each position,
 * or -1. Fails on shapes beyond the context or ids outside the vocabulary.
 * Full fine-tuning: weight_grad (m->n_params floats, the layout of m->params; the model
 * made trainable with rd_model_make_trainable) receives += the gradient of every weight;
 * NULL for RED, where no weight gradient is computed. */
int rd_train_pass(rd_train_ctx *c, const rd_edits_view *edits, const rd_edits_grad *grads,
                  float *weight_grad, const int *tokens, const int *targets, int B, int T,
                  double *loss_sum, int *n_targets, rd_error *err);

/* The logits (B, T, V) of the training forward (the layers exactly as rd_train_pass runs
 * them, with the context's dropout: set p 0 for the model's own logits) for tokens (B, T),
 * into the caller's logits. For comparing the training path with the inference path
 * (rd_forward) in tests; loss and gradients come from rd_train_pass. Fails on shapes beyond
 * the context or ids outside the vocabulary (nothing written then). */
int rd_train_logits(rd_train_ctx *c, const rd_edits_view *edits, const int *tokens, int B, int T,
                    float *logits, rd_error *err);

#endif
