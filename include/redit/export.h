/* redit — exporting edits to other tools and reading adapters back (model layer, on io's
 * GGUF and safetensors readers and writers).
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

/* Writes model m with the edits e folded in at strength 1 as a GGUF at path (atomically).
 * RED: per edited layer and site, the scale multiplies the rows of w2 (ffn_down) or wo
 * (attn_output) — out row j by s_j — and the bias becomes blk.N.ffn_down.bias /
 * blk.N.attn_output.bias (F32, dim; a bias m already has is scaled and added to).
 * LoRA: each target W ← W + (lora_alpha/r)·B·A. IA3: the rows of wk and wv scaled by the k
 * and v vectors, the columns of w2 by the ffn vector. Changed matrices are written in
 * F32 (in the model's type when it is F16 or BF16: widened, changed, narrowed); every other
 * matrix keeps its type and bytes. m and e are only read. */
int rd_export_merged(rd_edits *e, const rd_model *m, const char *path, rd_error *err);
/* rd_export_merged writing the changed matrices as `type` (F32, F16 or BF16), or as above
 * when type is RD_DTYPE_COUNT. */
int rd_export_merged_as(rd_edits *e, const rd_model *m, const char *path, rd_dtype type,
                        rd_error *err);

/* ---- adapters: LoRA and IA3 for the ecosystem, and back ------------------------------
 * PEFT folder (rd_export_peft): dir/adapter_model.safetensors with PEFT's names and shapes,
 * F32 — LoRA "base_model.model.model.layers.{l}.{self_attn|mlp}.{q|k|v|o|gate|up|down}_proj
 * .lora_A.weight" [r, in] and ".lora_B.weight" [out, r]; IA3 "...self_attn.{k|v}_proj.ia3_l"
 * [kv_dim, 1] (scales the outputs) and "...mlp.down_proj.ia3_l" [1, hidden_dim] (the
 * feedforward module: scales its input) — metadata {"format": "pt",
 * "redit_base_fingerprint", "redit_base_model"}; and dir/adapter_config.json (peft_type
 * LORA or IA3, task_type CAUSAL_LM, base_model_name_or_path = the model's name,
 * target_modules (a list of module names, or a regular expression over full module names
 * when only some layers are edited), LoRA's r, lora_alpha, lora_dropout, bias "none",
 * use_rslora/use_dora false; IA3's feedforward_modules ["down_proj"]; fan_in_fan_out false,
 * inference_mode true). The q/k rows of lora_B and IA3's k vector are in Hugging Face's
 * rotate-half order: for models with adjacent-pair RoPE rows (GGUF, llama2.c) they are
 * permuted back as llama.cpp's converter permuted the model; for HF folders they are as
 * stored. The folder is made when missing; each file is written atomically.
 * llama.cpp LoRA GGUF (rd_export_llama_lora, LoRA only): general.architecture "llama",
 * general.type "adapter", general.name, adapter.type "lora", adapter.lora.alpha (float32),
 * redit.base_fingerprint; tensors "blk.{l}.{attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|
 * ffn_down}.weight.lora_a" (ne [in, r]) and ".lora_b" (ne [r, out]) in `type` (F32, F16 or
 * BF16), rows in the GGUF model's order (adjacent-pair q/k rows; an HF-folder model's are
 * permuted to it). llama.cpp computes W·x + (alpha/r)·B·A·x, as redit does. */
int rd_export_peft(rd_edits *e, const rd_model *m, const char *dir, rd_error *err);
int rd_export_llama_lora(rd_edits *e, const rd_model *m, const char *path, rd_dtype type,
                         rd_error *err);

/* What an --edits path holds: a redit edit file (or nothing there yet), a folder (read as a
 * PEFT adapter), or a GGUF (read as a llama.cpp LoRA adapter). */
enum { RD_ADAPTER_REDIT = 0, RD_ADAPTER_PEFT = 1, RD_ADAPTER_LLAMA_LORA = 2 };
int rd_adapter_kind(const char *path);

/* Reads a PEFT LoRA/IA3 folder or a llama.cpp LoRA GGUF (as written above, or by PEFT and
 * convert_lora_to_gguf.py) as a LoRA or IA3 edit set for m: the layers and targets are
 * those of the tensors (every edited layer must carry the same projections, all of one
 * rank), q/k rows are moved into m's order. Refused with a message naming the file and the
 * problem: a folder without adapter_config.json or adapter_model.safetensors, another
 * peft_type, settings redit cannot express (DoRA, rsLoRA, rank/alpha patterns, biases,
 * modules_to_save, fan_in_fan_out), an unknown tensor name, a layer beyond the model, a
 * shape the model's projections do not give, a GGUF that is not a llama LoRA adapter, or a
 * redit fingerprint of another model (force skips that check; foreign adapters carry none
 * and are taken on their shapes). *match (may be NULL) is RD_FP_SAME when a recorded
 * fingerprint matched, else RD_FP_OTHER. A llama.cpp adapter without adapter.lora.alpha
 * (or 0) gets lora_alpha = r: llama.cpp then scales by 1. The caller frees the set. */
rd_edits *rd_edits_import(const char *path, const rd_model *m, int force, rd_fp_match *match,
                          rd_error *err);

/* Writes every stored vector of e as safetensors (names above) with metadata format
 * "redit-red-hf", base model name (m may be NULL), dim and n_layers; atomically. */
int rd_export_safetensors(rd_edits *e, const rd_model *m, const char *path, rd_error *err);

#endif
