/* Loading a frozen model from any supported file. */
#include "redit/model.h"

#include <stdlib.h>
#include <string.h>

rd_model *rd_model_load(const char *path, const rd_load_opts *opts, rd_error *err) {
    rd_file_format fmt = rd_detect_format(path, err);
    if (fmt == RD_FORMAT_UNKNOWN) return NULL;
    rd_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        rd_error_set(err, "%s: out of memory", path);
        return NULL;
    }
    int rc;
    switch (fmt) {
    case RD_FORMAT_LLAMA2C:
        rc = rd_llama2c_load(path, opts ? opts->tokenizer_path : NULL, &m->file, err);
        break;
    case RD_FORMAT_GGUF:
        if (opts && opts->tokenizer_path) {
            rd_error_set(err, "%s: a GGUF file carries its own tokenizer; --tokenizer is only "
                              "for llama2.c checkpoints", path);
            rc = -1;
            break;
        }
        rc = rd_gguf_load(path, &m->file, err);
        break;
    default:
        rd_error_set(err, "%s: %s models are not supported yet", path, rd_file_format_name(fmt));
        rc = -1;
    }
    if (rc) {
        rd_model_free(m);
        return NULL;
    }
    return m;
}

rd_model *rd_model_from_file(rd_model_file *f, const char *path, rd_error *err) {
    rd_model *m = calloc(1, sizeof *m);
    if (!m || (path && !(m->path = strdup(path)))) {
        free(m);
        rd_model_file_release(f);
        rd_error_set(err, "out of memory");
        return NULL;
    }
    m->file = *f;
    memset(f, 0, sizeof *f);
    return m;
}

void rd_model_free(rd_model *m) {
    if (!m) return;
    rd_model_file_release(&m->file);
    free(m->path);
    free(m);
}

uint64_t rd_model_param_count(const rd_model *m) {
    return rd_config_param_count(&m->file.cfg, m->file.w.tied_classifier);
}

/* Copies matrix *mat into the arena at *cursor (widened to f32) and repoints it there. */
static void move_matrix(rd_matrix *mat, float **cursor) {
    float *dst = *cursor;
    for (int64_t r = 0; r < mat->rows; r++) rd_matrix_row_f32(mat, r, dst + r * mat->cols);
    rd_matrix_init(mat, RD_DTYPE_F32, dst, mat->rows, mat->cols, NULL);
    *cursor += (size_t)(mat->rows * mat->cols);
}

static void move_vector(const float **vec, int d, float **cursor) {
    memcpy(*cursor, *vec, (size_t)d * sizeof(float));
    *vec = *cursor;
    *cursor += d;
}

int rd_model_make_trainable(rd_model *m, rd_error *err) {
    if (m->params) return 0;
    const rd_config *c = &m->file.cfg;
    rd_weights *w = &m->file.w;
    const size_t n = (size_t)rd_config_param_count(c, w->tied_classifier);
    rd_weights fresh = {0};
    float *arena = rd_weights_alloc(&fresh, n * sizeof(float), err);
    if (!arena) return rd_error_prefix(err, "making %s trainable (%.1f MB of f32 weights)",
                                       m->file.name, (double)n * 4 / 1e6);
    float *cur = arena;
    move_matrix(&w->tok_embeddings, &cur);
    for (int l = 0; l < c->n_layers; l++) {
        rd_layer_weights *L = &w->layers[l];
        move_vector(&L->attn_norm, c->dim, &cur);
        move_matrix(&L->wq, &cur);
        move_matrix(&L->wk, &cur);
        move_matrix(&L->wv, &cur);
        move_matrix(&L->wo, &cur);
        move_vector(&L->ffn_norm, c->dim, &cur);
        move_matrix(&L->w1, &cur);
        move_matrix(&L->w2, &cur);
        move_matrix(&L->w3, &cur);
    }
    move_vector(&w->final_norm, c->dim, &cur);
    if (w->tied_classifier)
        w->classifier = w->tok_embeddings;
    else
        move_matrix(&w->classifier, &cur);
    /* the old storage (mapping, buffers) is no longer referenced: swap it for the arena */
    rd_layer_weights *layers = w->layers;
    w->layers = NULL;
    rd_weights old = *w;
    rd_weights_release(&old);
    fresh.tok_embeddings = w->tok_embeddings;
    fresh.final_norm = w->final_norm;
    fresh.classifier = w->classifier;
    fresh.tied_classifier = w->tied_classifier;
    fresh.layers = layers;
    *w = fresh;
    m->params = arena;
    m->n_params = n;
    return 0;
}
