/* redit — an edit set: the trained numbers of one parameter-efficient method (model layer).
 *
 * Methods (rd_edit_spec.method), each on the chosen layers, all numbers f32:
 *   RED  — for each site (attn: o_proj output; ffn: down_proj output) a scale vector s
 *          (init 1) and/or a bias vector b (init 0) of the model width: h' = s ⊙ h + b.
 *   LoRA — for each target projection W (out, in) of q k v o gate up down, A (r, in)
 *          (PEFT's Kaiming-uniform init, uniform(−1/√in, 1/√in), from the spec's seed) and
 *          B (out, r) (init 0): out = W·x + (lora_alpha/r)·B·A·x (dropout on x in training).
 *   IA3  — scale vectors (init 1) of k_proj's and v_proj's outputs (kv_dim) and of
 *          down_proj's input silu(g)·u (hidden_dim).
 * At strength α every method is applied so that α = 0 is the base model bit for bit (RED/IA3
 * scales s' = 1 + α(s − 1), biases α·b, LoRA α·(lora_alpha/r)·B·A·x).
 * All trainable numbers live in one flat array (the optimizer's view); rd_edits_view points
 * into it for the forward pass. The identity edit (what weight decay pulls towards) is
 * RED scale 1, bias 0; LoRA A = B = 0; IA3 1. */
#ifndef REDIT_EDITS_H
#define REDIT_EDITS_H

#include <stddef.h>
#include <stdint.h>

#include "redit/edits_view.h"
#include "redit/error.h"
#include "redit/model.h"

enum { RD_SITE_ATTN = 1, RD_SITE_FFN = 2, RD_SITE_BOTH = 3 };

/* Limits of an edit set's shape (and of what an edit file may declare). */
#define RD_EDITS_MAX_DIM (1 << 20)
#define RD_EDITS_MAX_LAYERS (1 << 16)

/* Parses "ffn", "attn", "both" into RD_SITE_*; -1 if unknown. */
int rd_sites_from_name(const char *name, int *out);
const char *rd_sites_name(int sites);

enum { RD_METHOD_RED = 0, RD_METHOD_LORA = 1, RD_METHOD_IA3 = 2 };

/* LoRA's defaults (PEFT's LoraConfig): r = 8, lora_alpha = 8, targets q and v. */
#define RD_LORA_DEFAULT_RANK 8
#define RD_LORA_DEFAULT_ALPHA 8.0f
#define RD_LORA_DEFAULT_TARGETS (RD_PROJ_BIT(RD_PROJ_Q) | RD_PROJ_BIT(RD_PROJ_V))
#define RD_LORA_MAX_RANK 4096

/* Parses "red", "lora", "ia3" into RD_METHOD_*; -1 if unknown. */
int rd_method_from_name(const char *name, int *out);
const char *rd_method_name(int method); /* "red", "lora", "ia3"; "?" otherwise */

/* Projection names: "q" "k" "v" "o" "gate" "up" "down" (RD_PROJ_* order); NULL if out of
 * range. */
const char *rd_proj_name(int proj);
/* Parses a comma-separated list of projection names ("q,v"; "all" = every projection) into a
 * mask of RD_PROJ_BIT; -1 with *err naming the bad word. */
int rd_lora_targets_parse(const char *text, int *mask, rd_error *err);
/* The mask as "q,v" (RD_PROJ_* order) into buf (cap ≥ 32 is always enough); returns buf. */
char *rd_lora_targets_text(int mask, char *buf, size_t cap);
/* Shape (out, in) of projection proj in a model of config cfg (q: d×d, k/v: kv×d, o: d×d,
 * gate/up: hd×d, down: d×hd). */
void rd_proj_shape(const rd_config *cfg, int proj, int *out, int *in);

typedef struct rd_edit_spec {
    int sites;          /* RED: RD_SITE_* mask */
    const char *layers; /* every method: "all", or a list of layers and ranges: "0-5,9" */
    int scale;          /* RED: train s (else s is fixed at 1 and not stored) */
    int bias;           /* RED: train b (else b is fixed at 0 and not stored) */
    int method;         /* RD_METHOD_* (0: RED) */
    int rank;           /* LoRA r in [1, RD_LORA_MAX_RANK]; 0: RD_LORA_DEFAULT_RANK */
    float lora_alpha;   /* LoRA α of α/r, > 0; 0: RD_LORA_DEFAULT_ALPHA */
    int lora_targets;   /* LoRA: mask of RD_PROJ_BIT; 0: RD_LORA_DEFAULT_TARGETS */
    float lora_dropout; /* LoRA: dropout probability on the LoRA input in training, [0, 1) */
    uint64_t seed;      /* LoRA: the seed of A's initial values */
} rd_edit_spec;

typedef struct rd_edits rd_edits;

/* A fresh edit set (the identity: RED s = 1, b = 0; LoRA A drawn, B = 0; IA3 1) for a model
 * of config cfg. Fails on an empty selection (no layer; RED: no site, neither scale nor bias;
 * LoRA: no target), a layer list outside [0, n_layers), an unknown method or a LoRA setting
 * out of range. */
rd_edits *rd_edits_new(const rd_config *cfg, const rd_edit_spec *spec, rd_error *err);
rd_edits *rd_edits_clone(const rd_edits *e, rd_error *err);
void rd_edits_free(rd_edits *e); /* NULL-safe */

int rd_edits_dim(const rd_edits *e);
/* The model config the set was made for (a copy; borrowed). */
const rd_config *rd_edits_config(const rd_edits *e);
int rd_edits_method(const rd_edits *e);        /* RD_METHOD_* */
int rd_edits_rank(const rd_edits *e);          /* LoRA r; 0 for other methods */
float rd_edits_lora_alpha(const rd_edits *e);  /* LoRA α; 0 for other methods */
int rd_edits_lora_targets(const rd_edits *e);  /* LoRA target mask; 0 for other methods */
float rd_edits_lora_dropout(const rd_edits *e); /* LoRA dropout; 0 for other methods */
int rd_edits_n_layers(const rd_edits *e);
int rd_edits_sites(const rd_edits *e);
int rd_edits_has_scale(const rd_edits *e);
int rd_edits_has_bias(const rd_edits *e);
int rd_edits_layer_on(const rd_edits *e, int layer);
/* The layer selection written back in canonical form ("all" or "0-5,9"); borrowed. */
const char *rd_edits_layers_text(const rd_edits *e);

/* Trainable numbers: the flat parameter array (n = rd_edits_param_count) in this order,
 * for each edited layer ascending: RED for site attn then ffn (when edited), scale then bias
 * (when trained), dim floats each; LoRA for each target in q k v o gate up down order, A
 * (r, in) then B (out, r); IA3 k (kv_dim), v (kv_dim), ffn (hidden_dim). Borrowed, valid
 * while e lives; writable. */
size_t rd_edits_param_count(const rd_edits *e);
float *rd_edits_params(rd_edits *e);
const float *rd_edits_params_const(const rd_edits *e);

/* The ratio model parameters / trainable parameters (Llama-2-7B, RED ffn, all layers ≈ 25,700). */
double rd_edits_ratio(const rd_edits *e, const rd_model *m);

/* The view the forward pass reads, at strength α. Points into e. */
rd_edits_view rd_edits_view_at(const rd_edits *e, float strength);

/* Gradient views (for rd_train_pass) over grad, an array of rd_edits_param_count floats in
 * the parameter layout: out->attn / out->ffn (RED, per edited site), out->lora, out->ia3 are
 * allocated; release them with rd_edits_grad_free (grad itself stays the caller's). */
int rd_edits_grad_new(rd_edits *e, float *grad, rd_edits_grad *out, rd_error *err);
void rd_edits_grad_free(rd_edits_grad *g);

/* The tensors of the set, in the flat-array order: their file names ("layers.{l}.attn.scale",
 * "layers.{l}.q.lora_a", "layers.{l}.k.ia3", ...), shapes and offsets into the params. */
typedef struct rd_edit_tensor {
    char name[64];
    int layer;
    int proj;         /* LoRA: RD_PROJ_*; IA3: RD_PROJ_K, RD_PROJ_V, or RD_PROJ_DOWN (ffn);
                       * RED: -1 */
    int kind;         /* RED: 0 scale, 1 bias; LoRA: 0 A, 1 B; IA3: 0 */
    int n_dims;       /* 1 (vectors) or 2 (LoRA factors) */
    int64_t shape[2]; /* rows (and columns) */
    size_t offset, count; /* floats into rd_edits_params, and how many */
} rd_edit_tensor;
int rd_edits_tensor_count(const rd_edits *e);
const rd_edit_tensor *rd_edits_tensor_at(const rd_edits *e, int i); /* borrowed */

/* LoRA factors of a layer's projection (RD_PROJ_*): A (r, in), B (out, r) row-major, or NULL
 * when not a target (or not a LoRA set). Borrowed, writable. */
float *rd_edits_lora_a(rd_edits *e, int layer, int proj);
float *rd_edits_lora_b(rd_edits *e, int layer, int proj);
/* IA3 vector of a layer: proj RD_PROJ_K or RD_PROJ_V (kv_dim), RD_PROJ_DOWN (down_proj's
 * input, hidden_dim), or NULL. Borrowed, writable. */
float *rd_edits_ia3(rd_edits *e, int layer, int proj);

/* Vector of one layer and site (RD_SITE_ATTN or RD_SITE_FFN): scale or bias, or NULL when
 * not edited/trained. Borrowed, writable. */
float *rd_edits_vector(rd_edits *e, int layer, int site, int want_bias);
const float *rd_edits_vector_const(const rd_edits *e, int layer, int site, int want_bias);

/* Edit files: safetensors with one F32 tensor per rd_edit_tensor (its name and shape; RED
 * "layers.{l}.{attn|ffn}.{scale|bias}" (dim); LoRA "layers.{l}.{q|k|v|o|gate|up|down}.lora_a"
 * [r, in] and ".lora_b" [out, r]; IA3 "layers.{l}.{k|v|ffn}.ia3"), and metadata: format
 * "redit-red", version (1 for RED, as before; 2 for LoRA/IA3), base model name and
 * fingerprint (hex, rd_model_fingerprint) with its kind ("xxh3-64"), layers, dim, n_layers,
 * RED: sites, scale, bias; LoRA/IA3: method, and LoRA's rank, lora_alpha, lora_targets
 * ("q,v"), lora_dropout; and the caller's training options (a JSON string, may be NULL).
 * Written atomically. */
int rd_edits_save(const rd_edits *e, const rd_model *m, const char *training_json,
                  const char *path, rd_error *err);

/* Loads an edit file for model m. Refused with a message saying why when it does not fit:
 * other width, other layer count, a layer beyond the model, a tensor of another shape than
 * the model's projections give, or another model fingerprint
 * (force = 1 skips only the fingerprint check). Tensors may be F32, F16 or BF16 (widened to
 * f32). *training_json (optional) receives a malloc'ed copy of the training options or
 * NULL. */
rd_edits *rd_edits_load(const char *path, const rd_model *m, int force, char **training_json,
                        rd_error *err);

/* rd_edits_load, also telling how the file's base-model fingerprint matched m (match may be
 * NULL): RD_FP_SAME; RD_FP_SAME_SAMPLED for a file of an earlier redit whose sampled
 * fingerprint matched (the caller should note that only a sample of the weights was
 * compared); RD_FP_OTHER when force skipped the check. */
rd_edits *rd_edits_load_match(const char *path, const rd_model *m, int force,
                              char **training_json, rd_fp_match *match, rd_error *err);

/* The chat template named in an edit file's training options (the JSON text rd_edits_load
 * hands out; may be NULL): malloc'ed (the caller frees it), or NULL when none is recorded. */
char *rd_edits_training_template(const char *training_json);

#endif
