/* redit — model file formats (io layer).
 *
 * Every loader treats its file as untrusted: sizes are checked against the file before
 * anything is allocated or read; a bad file gives one message naming the file and what is
 * wrong, and leaves nothing allocated. */
#ifndef REDIT_MODEL_FILE_H
#define REDIT_MODEL_FILE_H

#include "redit/error.h"
#include "redit/vocab.h"
#include "redit/weights.h"

typedef enum rd_file_format {
    RD_FORMAT_UNKNOWN = 0,
    RD_FORMAT_LLAMA2C,     /* llama2.c legacy .bin checkpoint */
    RD_FORMAT_GGUF,        /* GGUF v2/v3 */
    RD_FORMAT_SAFETENSORS, /* Hugging Face folder: config.json + *.safetensors */
} rd_file_format;

const char *rd_file_format_name(rd_file_format f); /* "llama2.c", "GGUF", ... */

/* Detects the format from the file's content (magic bytes, header plausibility), never its
 * name. Returns RD_FORMAT_UNKNOWN with *err set when unreadable or unrecognised. */
rd_file_format rd_detect_format(const char *path, rd_error *err);

/* What a loader produces. Zero-initialise before loading; release with
 * rd_model_file_release. */
typedef struct rd_model_file {
    rd_config cfg;
    rd_weights w;
    rd_vocab vocab;          /* the tokenizer's vocabulary; vocab.n == 0 when the file has none */
    rd_file_format format;
    char name[128];          /* general.name or the file's base name */
    unsigned gguf_version;   /* GGUF only */
} rd_model_file;

void rd_model_file_release(rd_model_file *f); /* safe on zeroed/half-built */

/* llama2.c .bin: header of 7 int32 (dim, hidden, layers, heads, kv_heads, vocab — negative
 * for an untied classifier —, seq_len), then f32 weights, memory-mapped. tokenizer_path (any
 * tokenizer file, rd_vocab_load_file: tokenizer.bin, tokenizer.model, tokenizer.json) may
 * be NULL: then "tokenizer.bin", else "tokenizer.model", beside the model is used if it
 * exists, else the model loads without a vocabulary. */
int rd_llama2c_load(const char *path, const char *tokenizer_path, rd_model_file *out,
                    rd_error *err);

/* Writes w/cfg as a llama2.c .bin (f32, legacy v0 layout); every matrix is widened to f32,
 * and Q/K rows of a half-split (Hugging Face) RoPE model are permuted to the adjacent
 * layout the format implies. Refuses settings the format cannot store (norm eps other than
 * 1e-5, rope theta other than 10000: use GGUF) and matrices whose shapes disagree with cfg.
 * Written atomically (temp file + rename). */
int rd_llama2c_write(const char *path, const rd_config *cfg, const rd_weights *w,
                     rd_error *err);

/* A Hugging Face model folder: config.json (model_type llama or mistral; no rope_scaling),
 * model.safetensors or shards listed in model.safetensors.index.json (F32/F16/BF16 tensors,
 * memory-mapped and used in place — out->w holds the mappings —; F16/BF16 norms widened to
 * f32, a tensor not aligned for its type copied), the vocabulary of tokenizer.json
 * (+ tokenizer_config.json; rd_vocab_load_hf) when present, else of SentencePiece's
 * tokenizer.model (rd_vocab_load_spm). The RoPE layout is RD_ROPE_HALF
 * (rotate_half), Q/K rows as stored. */
int rd_hf_load(const char *dir, rd_model_file *out, rd_error *err);

/* GGUF v2/v3, architecture "llama", with the vocabulary from tokenizer.ggml.* metadata. */
int rd_gguf_load(const char *path, rd_model_file *out, rd_error *err);

/* Writes f as GGUF v3 (architecture "llama"): the vocabulary (when f has one) as
 * tokenizer.ggml.* metadata, norms (and output biases, when present) as F32 and every matrix
 * converted to `type` (any rd_dtype; a quantised type needs every matrix's columns to be a
 * whole number of its blocks), or, with type RD_DTYPE_COUNT, each matrix kept in its own
 * type. A vocabulary that fails rd_vocab_check is refused. Written atomically (temp file +
 * rename). */
int rd_gguf_write(const char *path, const rd_model_file *f, rd_dtype type, rd_error *err);

#endif
