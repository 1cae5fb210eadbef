/* redit — the loaded frozen model (model layer).
 *
 * One struct for the frozen model: config, weights (in their file types, mapped where
 * possible), tokenizer. Created by rd_model_load, freed by rd_model_free; the creator owns
 * it. A model is read-only after loading and may be shared by several rd_ctx. */
#ifndef REDIT_MODEL_H
#define REDIT_MODEL_H

#include "redit/error.h"
#include "redit/model_file.h"

typedef struct rd_model {
    rd_model_file file;      /* cfg, weights, tokenizer (may be NULL), format, name */
    char *path;              /* the path it was loaded from (owned) */
} rd_model;

typedef struct rd_load_opts {
    const char *tokenizer_path; /* llama2.c: explicit tokenizer.bin, or NULL */
} rd_load_opts;

/* Loads any supported model file, detecting the format from its content. opts may be
 * NULL. Returns NULL with *err set (naming the file) on failure. */
rd_model *rd_model_load(const char *path, const rd_load_opts *opts, rd_error *err);
void rd_model_free(rd_model *m); /* NULL-safe */

static inline const rd_config *rd_model_config(const rd_model *m) { return &m->file.cfg; }

/* Total weights of the model (what RED's parameter ratio is measured against). */
uint64_t rd_model_param_count(const rd_model *m);

#endif
