/* redit — a set of RED edit vectors (model layer).
 *
 * For each chosen layer and site (attn: o_proj output; ffn: down_proj output) a scale
 * vector s (init 1) and/or a bias vector b (init 0) of the model width, always f32:
 * h' = s ⊙ h + b. All trainable numbers live in one flat array (the optimizer's view);
 * rd_edits_view points into it for the forward pass. */
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

typedef struct rd_edit_spec {
    int sites;          /* RD_SITE_* mask */
    const char *layers; /* "all", or a list of layers and ranges: "0-5,9" */
    int scale;          /* train s (else s is fixed at 1 and not stored) */
    int bias;           /* train b (else b is fixed at 0 and not stored) */
} rd_edit_spec;

typedef struct rd_edits rd_edits;

/* A fresh edit set (s = 1, b = 0) for a model of config cfg. Fails on an empty selection
 * (no site, no layer, neither scale nor bias) or a layer list outside [0, n_layers). */
rd_edits *rd_edits_new(const rd_config *cfg, const rd_edit_spec *spec, rd_error *err);
rd_edits *rd_edits_clone(const rd_edits *e, rd_error *err);
void rd_edits_free(rd_edits *e); /* NULL-safe */

int rd_edits_dim(const rd_edits *e);
int rd_edits_n_layers(const rd_edits *e);
int rd_edits_sites(const rd_edits *e);
int rd_edits_has_scale(const rd_edits *e);
int rd_edits_has_bias(const rd_edits *e);
int rd_edits_layer_on(const rd_edits *e, int layer);
/* The layer selection written back in canonical form ("all" or "0-5,9"); borrowed. */
const char *rd_edits_layers_text(const rd_edits *e);

/* Trainable numbers: the flat parameter array (n = rd_edits_param_count) in this order:
 * for each edited layer ascending, for site attn then ffn (when edited), scale then bias
 * (when trained), dim floats each. Borrowed, valid while e lives; writable. */
size_t rd_edits_param_count(const rd_edits *e);
float *rd_edits_params(rd_edits *e);
const float *rd_edits_params_const(const rd_edits *e);

/* The ratio model parameters / trainable parameters (Llama-2-7B, ffn, all layers ≈ 25,700). */
double rd_edits_ratio(const rd_edits *e, const rd_model *m);

/* The view the forward pass reads, at strength α. Points into e. */
rd_edits_view rd_edits_view_at(const rd_edits *e, float strength);

/* Gradient views (for rd_train_pass) over grad, an array of rd_edits_param_count floats in
 * the parameter layout: out->attn / out->ffn are allocated per edited site; release them
 * with rd_edits_grad_free (grad itself stays the caller's). */
int rd_edits_grad_new(rd_edits *e, float *grad, rd_edits_grad *out, rd_error *err);
void rd_edits_grad_free(rd_edits_grad *g);

/* Vector of one layer and site (RD_SITE_ATTN or RD_SITE_FFN): scale or bias, or NULL when
 * not edited/trained. Borrowed, writable. */
float *rd_edits_vector(rd_edits *e, int layer, int site, int want_bias);
const float *rd_edits_vector_const(const rd_edits *e, int layer, int site, int want_bias);

/* Edit files: safetensors with one F32 tensor (dim) per vector, named
 * "layers.{l}.{attn|ffn}.{scale|bias}", and metadata: format "redit-red", version, base
 * model name and fingerprint (hex, rd_model_fingerprint) with its kind ("xxh3-64"), sites, layers, dim, n_layers, scale, bias, and the
 * caller's training options (a JSON string, may be NULL). Written atomically. */
int rd_edits_save(const rd_edits *e, const rd_model *m, const char *training_json,
                  const char *path, rd_error *err);

/* Loads an edit file for model m. Refused with a message saying why when it does not fit:
 * other width, other layer count, a layer beyond the model, or another model fingerprint
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

#endif
