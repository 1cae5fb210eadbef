/* redit — exporting RED edits to other tools (model layer, on io's GGUF and safetensors
 * writers).
 *
 * merged:      a full GGUF of the model with the edits folded into ffn_down / attn_output
 *              (rows scaled) and their output biases (rd_export_merged).
 * cvec:        the ffn-bias part of an edit set as a llama.cpp control vector (GGUF,
 *              general.architecture = "controlvector", one F32 tensor "direction.N" (dim) per
 *              edited layer N ≥ 1). llama.cpp adds direction.N to the output of layer N after
 *              its residual add, which equals RED's ffn bias exactly; it never applies one to
 *              layer 0, and a control vector cannot scale nor act between the attention and
 *              FFN sub-layers, so layer 0's ffn bias, every scale vector and every attn-site
 *              vector are dropped (counted in rd_cvec_report).
 * safetensors: the edit vectors named after the Hugging Face projections whose outputs they
 *              edit: "model.layers.{i}.mlp.down_proj.red_scale" / ".red_bias" and
 *              "model.layers.{i}.self_attn.o_proj.red_scale" / ".red_bias", F32 [dim]:
 *              out' = red_scale ⊙ out + red_bias. Vectors the edit set does not train are
 *              absent (scale 1, bias 0). */
#ifndef REDIT_EXPORT_H
#define REDIT_EXPORT_H

#include "redit/edits.h"
#include "redit/error.h"
#include "redit/model.h"

/* What a control-vector export wrote and what it had to drop (vector counts). */
typedef struct rd_cvec_report {
    int n_written;         /* direction.N tensors written (edited layers N ≥ 1 with ffn bias) */
    int layer0_ffn_bias;   /* 1 when layer 0's ffn bias was edited (not all zero) and dropped */
    int n_scale_dropped;   /* scale vectors dropped (both sites) */
    int n_attn_bias_dropped; /* attn-site bias vectors dropped */
} rd_cvec_report;

/* Writes the ffn biases of e (at strength 1) as a llama.cpp control vector GGUF at path,
 * atomically: KVs general.architecture = "controlvector", controlvector.model_hint =
 * "llama", controlvector.layer_count = n_layers (int32); tensors direction.N (F32, dim) for
 * each layer N ≥ 1 whose ffn bias is edited, ascending. rep (may be NULL) receives what was
 * written and dropped. Fails (-1, *err) when e has no ffn bias on any layer ≥ 1 (nothing
 * to write) or the file cannot be written. e is only read (non-const for rd_edits_vector). */
int rd_export_cvec(rd_edits *e, const char *path, rd_cvec_report *rep, rd_error *err);

/* Writes model m with the edits e folded in at strength 1 as a GGUF at path (atomically):
 * per edited layer and site, the scale multiplies the rows of w2 (ffn_down) or wo
 * (attn_output) — out row j by s_j — and the bias becomes blk.N.ffn_down.bias /
 * blk.N.attn_output.bias (F32, dim; a bias m already has is scaled and added to). Scaled
 * matrices are written in F32 (in the model's type when it is F16 or BF16: widened, scaled,
 * narrowed); every other matrix keeps its type and bytes. m and e are only read. */
int rd_export_merged(rd_edits *e, const rd_model *m, const char *path, rd_error *err);

/* Writes every stored vector of e as safetensors (names above) with metadata format
 * "redit-red-hf", base model name (m may be NULL), dim and n_layers; atomically. */
int rd_export_safetensors(rd_edits *e, const rd_model *m, const char *path, rd_error *err);

#endif
