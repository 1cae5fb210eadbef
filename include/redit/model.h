/* redit — the loaded frozen model (model layer).
 *
 * One struct for the frozen model: config, weights (in their file types, mapped where
 * possible), vocabulary (io's plain data) and the tokenizer built from it. Created by
 * rd_model_load or rd_model_from_file, freed by rd_model_free; the creator owns it. Once
 * loaded it is shared read-only by every context made on it (rd_ctx, rd_train_ctx,
 * generators, evaluations), on any number of threads.
 *
 * Changing a loaded model. Only these change it after loading:
 *   rd_model_set_compute, rd_model_repack  the bf16 packs its matrices point to;
 *   rd_model_set_quant_products            the matrices' q8_products flag;
 *   rd_model_make_trainable                moves every weight into one f32 array;
 *   rd_train_full (train.h)                writes the weights at every step (and repacks).
 * The owner calls them only while no pass on the model is in flight on any thread: no
 * forward, training pass, generation or evaluation running. Contexts may stay alive across
 * a change (their scratch has room for either compute mode). Enforced for jobs on other
 * threads: code that hands the model to another thread marks it in use for the job's whole
 * run (rd_model_use_begin ... rd_model_use_end, e.g. the workbench's worker); while it is,
 * the first four refuse with an error and change nothing. */
#ifndef REDIT_MODEL_H
#define REDIT_MODEL_H

#include <stdatomic.h>

#include "redit/error.h"
#include "redit/model_file.h"
#include "redit/tokenizer.h"

typedef struct rd_model {
    rd_model_file file;      /* cfg, weights, vocabulary (may be empty), format, name */
    rd_tokenizer *tokenizer; /* built from file.vocab (owned); NULL when it is empty */
    char *path;              /* the path it was loaded from (owned) */
    uint64_t file_key;       /* rd_model_file_key of what rd_model_load read (the file, or the
                                Hugging Face folder), taken before and after loading; 0 when
                                unknown or built in memory: then no fingerprint cache */
    /* Set by rd_model_make_trainable: every weight in one f32 array (owned by file.w), in
     * the order of rd_model_make_trainable's comment; NULL for a frozen model. */
    float *params;
    size_t n_params;
    /* Set by rd_model_set_compute(RD_COMPUTE_BF16): the packed bf16 copies the matrices
     * point to (rd_matrix.bf16), owned here. */
    struct rd_bf16_weight **packed;
    int n_packed;
    int packed_backward;     /* the packs include the backward layout */
    int packed_on_the_fly;   /* the packs are marks without panels: products in bf16 straight
                                from the matrices (rd_gemm_bf16_matrix), no copy held */
    int bf16_weights;        /* rd_bf16_weights policy of the next rd_model_set_compute */
    /* Jobs on other threads using the model (rd_model_use_begin/end). Not part of its
     * value: counted through const pointers, so a job that only reads can hold it. */
    atomic_int users;
    /* Where the weights are not finite, found at load (rd_model_nonfinite); "" when every
     * weight is finite. */
    char nonfinite[256];
} rd_model;

typedef struct rd_load_opts {
    const char *tokenizer_path; /* llama2.c: a tokenizer file (tokenizer.bin, tokenizer.model,
                                   tokenizer.json: rd_vocab_load_file), or NULL */
} rd_load_opts;

/* Loads any supported model file, detecting the format from its content. opts may be
 * NULL. Returns NULL with *err set (naming the file) on failure. */
rd_model *rd_model_load(const char *path, const rd_load_opts *opts, rd_error *err);
void rd_model_free(rd_model *m); /* NULL-safe */

static inline const rd_config *rd_model_config(const rd_model *m) { return &m->file.cfg; }

/* NULL when every weight of m is finite, else what is not, e.g. "blk.3.ffn_down.weight row
 * 17 has a weight that is not finite (NaN or Inf); 2 more tensors too" (GGUF tensor names,
 * whatever the file's format). Found once when the model is made (rd_model_load,
 * rd_model_from_file) in one pass over every byte of F32/F16/BF16 tensors and over the
 * scales of quantised blocks (rd_dtype_find_nonfinite): such a model still loads, but its
 * outputs through that tensor are NaN and training on it stops at once; callers tell the
 * user. Borrowed from m. */
static inline const char *rd_model_nonfinite(const rd_model *m) {
    return m->nonfinite[0] ? m->nonfinite : NULL;
}

/* The model's tokenizer, NULL when its file has no vocabulary. Borrowed: valid while m
 * lives. */
static inline const rd_tokenizer *rd_model_tokenizer(const rd_model *m) { return m->tokenizer; }

/* Marks m in use by a job on another thread, from before the job is handed over until
 * after its last pass; nests (a count). While in use, rd_model_set_compute,
 * rd_model_repack and rd_model_make_trainable fail with an error naming the model. Every
 * begin needs one end, before rd_model_free. */
void rd_model_use_begin(const rd_model *m);
void rd_model_use_end(const rd_model *m);
int rd_model_in_use(const rd_model *m); /* 1 while a begin has no end yet */

/* Scratch floats rd_matmul / rd_matmul_many / rd_matmul_backward need for any of m's
 * matrices over `rows` rows (the fused q/k/v and gate/up loops included). */
size_t rd_model_matmul_scratch_floats(const rd_model *m, int rows);

/* Total weights of the model (what RED's parameter ratio is measured against). */
uint64_t rd_model_param_count(const rd_model *m);

/* What a model is made of, for display (info, the workbench's status line, Lua's
 * model:info()). */
typedef struct rd_model_info {
    const char *name;           /* general.name or the file's base name; borrowed from m */
    rd_file_format format;
    unsigned gguf_version;      /* GGUF only */
    int count[RD_DTYPE_COUNT];  /* matrices by storage type: embeddings, the classifier when
                                   untied, and the 7 of every layer (norms are always F32) */
    rd_dtype layer_type;        /* the type most of the layers' matrices have (Q4_K for a
                                   Q4_K_M file); the lowest such type on a tie */
    int tied_classifier;        /* the classifier is the embedding matrix */
    size_t mapped_bytes;        /* bytes of the file(s) memory-mapped */
    int heap_buffers;           /* weight buffers on the heap (converted or copied) */
    size_t heap_bytes;          /* their bytes */
    const char *nonfinite;      /* rd_model_nonfinite: NULL when every weight is finite */
} rd_model_info;

/* Fills *out for m (valid while m lives and is not changed). */
void rd_model_describe(const rd_model *m, rd_model_info *out);

/* The model's fingerprint, written with edit files, training states and sessions to
 * recognise the base model whatever its path: XXH3-64 over the config and every byte of every
 * tensor (type, shape and bytes as loaded; two spellings, copies or hard links of one file
 * agree, any changed weight byte differs). Reads every weight once (19 ms for the 14.5 MB bundled
 * model, first touch of its mapping included), so for a model rd_model_load read (file_key != 0) that is not trainable
 * (params == NULL) the value is cached in $XDG_CACHE_HOME/redit/fingerprints (else
 * ~/.cache/redit/; written atomically, at most 256 entries, keyed by the file's device, inode,
 * size, mtime and ctime — every file's, for a folder); a damaged or unreadable cache is ignored
 * and an unwritable one only costs hashing again. REDIT_FINGERPRINT_CACHE=off turns the cache
 * off. Never fails. */
uint64_t rd_model_fingerprint(const rd_model *m);

/* The fingerprint of redit versions before the full one (64-bit FNV-1a over the config and
 * 32 windows of 128 bytes per tensor): blind to changes between the windows, kept only to
 * recognise edit files, training states and sessions written with it. Cheap (~1 MB read on
 * a 7B model). */
uint64_t rd_model_fingerprint_sampled(const rd_model *m);

/* How a recorded fingerprint (16 lower-case hex digits) relates to m: RD_FP_SAME when it is
 * rd_model_fingerprint(m); RD_FP_SAME_SAMPLED when accept_sampled and it is
 * rd_model_fingerprint_sampled(m) (an old file: the caller should say that the check was
 * the weaker sampled one); else RD_FP_OTHER (also for NULL or malformed text). */
typedef enum rd_fp_match { RD_FP_OTHER = 0, RD_FP_SAME = 1, RD_FP_SAME_SAMPLED = 2 } rd_fp_match;
rd_fp_match rd_model_fingerprint_match(const rd_model *m, const char *hex, int accept_sampled);

/* The identity of a model file or folder for the fingerprint cache: a hash of its device,
 * inode, size, mtime and ctime (a folder: its own and every regular file's in it, by name).
 * Any write, touch, replacement or copy changes it. 0 when path cannot be examined. */
uint64_t rd_model_file_key(const char *path);

/* How matrix products over many rows (prefill, training) compute:
 * F32  — OpenBLAS sgemm on f32 (widened) weights: the reference numerics;
 * BF16 — weights packed once into bf16 panels and activations rounded to bf16 per product,
 *        f32 accumulation (AVX512-BF16: about twice the f32 GEMM rate). Edit vectors, norms,
 *        attention, softmax and the loss stay f32; decode (few rows) is unaffected.
 * `backward` also packs the transposed layout that training's activation gradients use.
 * BF16 is refused on CPUs without AVX512-BF16 (the portable kernel is slower than sgemm).
 * A trainable (full fine-tuning) model keeps its f32 master weights; its packs are redone
 * after every update (rd_model_repack; the trainer does it). Costs one bf16 copy of the
 * matrices per layout (rd_model_compute_bytes), or none where the copies do not fit or are
 * not wanted (rd_model_set_bf16_weights): then the products pack the weights on the fly. */
typedef enum rd_compute { RD_COMPUTE_F32 = 0, RD_COMPUTE_BF16 = 1 } rd_compute;
int rd_model_set_compute(rd_model *m, rd_compute compute, int backward, rd_error *err);
rd_compute rd_model_compute(const rd_model *m);

/* Where BF16 compute gets its bf16 weights (rd_model_set_bf16_weights, before
 * rd_model_set_compute):
 * AUTO       — packed copies of F32/F16/BF16 matrices when they fit in the memory
 *              available (rd_memory_check of rd_model_bf16_copy_bytes plus a quarter for the
 *              run), else on the fly; always on the fly when a matrix is quantized (a copy
 *              would be 3.5–4× its size);
 * PACKED     — packed copies (2 bytes a weight per layout: a 7B model 13.5 GB forward, as
 *              much again for training's backward layout); refused when they do not fit;
 * ON_THE_FLY — no copies: each product widens, rounds and packs slices of the matrices on all
 *              threads (rd_gemm_bf16_matrix); the same numbers as PACKED, bit for bit, slower
 *              by the widening (little for large row counts). */
typedef enum rd_bf16_weights {
    RD_BF16_WEIGHTS_AUTO = 0,
    RD_BF16_WEIGHTS_PACKED,
    RD_BF16_WEIGHTS_ON_THE_FLY,
} rd_bf16_weights;
void rd_model_set_bf16_weights(rd_model *m, rd_bf16_weights w);

/* "auto", "packed" or "on-the-fly" → *out (0), else -1 with *out untouched. */
int rd_bf16_weights_from_name(const char *name, rd_bf16_weights *out);

/* Bytes of the packed copies BF16 compute would hold (backward: with training's layout). */
size_t rd_model_bf16_copy_bytes(const rd_model *m, int backward);

/* Where rd_model_set_compute(m, RD_COMPUTE_BF16, backward) would take its bf16 weights under
 * the current policy (rd_model_set_bf16_weights): 1 packed copies, 0 on the fly. *copy_bytes
 * (optional) gets the copies' size, rd_model_bf16_copy_bytes. Allocates nothing. */
int rd_model_bf16_plan(const rd_model *m, int backward, size_t *copy_bytes);

/* 1 when the model computes in bf16 straight from its matrices (no packed copies). */
int rd_model_bf16_on_the_fly(const rd_model *m);

/* 1 when this CPU runs compute mode c (F32 always; BF16 needs AVX512-BF16), else 0. */
int rd_compute_available(rd_compute c);

/* What "auto" means on this CPU: bf16 when the bf16 GEMM (rd_gemm_bf16's AUTO kernel, so
 * AMX or AVX512-BF16, whichever it runs) is more than 1.10× as fast as OpenBLAS sgemm on a
 * training-sized product, else f32 (always f32 without AVX512-BF16). Measured at the first
 * call (about 20 ms, on the process's threads: set the thread count first), the same answer
 * for the rest of the process. The environment variable REDIT_COMPUTE_AUTO=f32|bf16 sets it
 * without measuring (tests, CI; bf16 only where available). *why, when not NULL, gets a
 * line saying what was measured ("auto: sgemm 1.21× the avx512bf16 bf16 kernel here"),
 * static storage. Thread-safe. */
rd_compute rd_compute_auto(const char **why);

/* A compute mode by name: "f32", "bf16", or "auto" (rd_compute_auto). Returns 0 with *out
 * set, or -1 for any other name (*out untouched). */
int rd_compute_from_name(const char *name, rd_compute *out);

/* Decode's products over few rows (RD_MATVEC_MAX_ROWS) on quantized matrices: on = 1 rounds
 * the activations to 8 bits per block and takes integer dot products, as llama.cpp does
 * (about 4× less arithmetic per weight; logits move by about 1 % of their range), on = 0 keeps
 * them f32 (the reference numerics, the default). Sets rd_matrix.q8_products on every layer
 * matrix and the classifier; F32/F16/BF16 matrices ignore it. Refused (-1 with *err, nothing
 * changed) while the model is in use (rd_model_use_begin). */
int rd_model_set_quant_products(rd_model *m, int on, rd_error *err);
int rd_model_quant_products(const rd_model *m); /* the last value set: 0 or 1 */

/* Packs the bf16 copies again from the current f32 weights (after they changed: a full
 * fine-tuning step). No-op in f32 compute. Returns 0 or -1 with *err (out of memory; the
 * model is then back in f32 compute). */
int rd_model_repack(rd_model *m, rd_error *err);
size_t rd_model_compute_bytes(const rd_model *m);

/* Full fine-tuning: copies every weight into one owned f32 array (m->params, n_params) in
 * this order — token embeddings; per layer: attn_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3;
 * final_norm; the classifier when untied — repoints the weights into it and drops the
 * mapping. The model's function is unchanged (weights are widened exactly). */
int rd_model_make_trainable(rd_model *m, rd_error *err);

/* Fills out (zeroed by the call) with cfg and random weights owned by out->w, no vocabulary:
 * matrices ~ N(0, 1/fan_in), norm weights ~ 1 + 0.1·N(0,1), embeddings ~ N(0, 0.3²) (the
 * initialisation of llama2.c's make_ckpt.py), every matrix stored in `type` (drawn in f32 row
 * by row and converted, so a quantised model needs only its own size; a quantised type needs
 * whole blocks per row), norms in F32. The same seed gives the same weights on every machine.
 * For tests, benchmarks (`redit make-model`) and pretraining from scratch. */
int rd_model_file_random(rd_model_file *out, const rd_config *cfg, int tied, uint64_t seed,
                         rd_dtype type, rd_error *err);

/* The matrices of a Llama model, for per-matrix choices such as a type mixture. */
typedef enum rd_tensor_role {
    RD_TENSOR_EMBEDDINGS, /* token_embd */
    RD_TENSOR_CLASSIFIER, /* output (the embeddings when tied) */
    RD_TENSOR_WQ,
    RD_TENSOR_WK,
    RD_TENSOR_WV, /* attn_v */
    RD_TENSOR_WO,
    RD_TENSOR_W1, /* ffn_gate */
    RD_TENSOR_W2, /* ffn_down */
    RD_TENSOR_W3  /* ffn_up */
} rd_tensor_role;

/* Storage type mixtures, named as llama.cpp names its file types. */
typedef enum rd_type_mix {
    RD_MIX_Q4_K_M, /* llama.cpp's Q4_K_M: Q4_K, with Q6_K for the classifier and for attn_v and
                      ffn_down of the layers its use_more_bits rule picks */
    RD_MIX_COUNT
} rd_type_mix;

/* "Q4_K_M" → RD_MIX_Q4_K_M; -1 for a name that is no mixture (then it may be a type name). */
int rd_type_mix_from_name(const char *name, rd_type_mix *out);
const char *rd_type_mix_name(rd_type_mix mix); /* static string; "?" when unknown */

/* The storage type `mix` gives the matrix `role` of layer `layer` (ignored for the
 * embeddings and the classifier) of a model of shape cfg, tied or not, following llama.cpp's
 * llama_tensor_get_type for the llama architecture (de3ff81): the classifier (the
 * embeddings when tied) Q6_K; attn_v and ffn_down Q6_K where use_more_bits(layer, n_layers)
 * (layer < n/8, layer >= 7n/8, or (layer - n/8) % 3 == 2), else Q4_K; every other matrix
 * Q4_K. A type whose block does not divide the matrix's columns falls back as llama.cpp's
 * does (Q4_K → Q5_0, Q6_K and the classifier's → Q8_0, then F16). */
rd_dtype rd_type_mix_pick(rd_type_mix mix, const rd_config *cfg, int tied, rd_tensor_role role,
                          int layer);

/* rd_model_file_random with every matrix in the type rd_type_mix_pick gives it: the same
 * random draws as rd_model_file_random for the same seed, only the storage types differ. */
int rd_model_file_random_mix(rd_model_file *out, const rd_config *cfg, int tied, uint64_t seed,
                             rd_type_mix mix, rd_error *err);

/* Wraps an rd_model_file built in memory (moved into the model: *f is zeroed) as a model,
 * building the tokenizer from f->vocab when it has one (checked: rd_vocab_check). path may
 * be NULL. Returns NULL with *err on failure (f is released then). */
rd_model *rd_model_from_file(rd_model_file *f, const char *path, rd_error *err);

#endif
