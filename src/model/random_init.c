/* Random-weight models: for tests, benchmarks and pretraining from scratch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/model.h"
#include "redit/rng.h"

/* Box–Muller over splitmix64: a fixed, portable stream so a seed means the same weights
 * everywhere. */
static float gauss(uint64_t *s) {
    double u1 = ((rd_splitmix64(s) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(rd_splitmix64(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static float *random_block(rd_weights *w, size_t n, float mean, float std, uint64_t *s,
                           rd_error *err) {
    float *p = rd_weights_alloc(w, n * sizeof(float), err);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = mean + std * gauss(s);
    return p;
}

static int random_matrix(rd_weights *w, rd_matrix *m, int64_t rows, int64_t cols, uint64_t *s,
                         rd_error *err) {
    float *p = random_block(w, (size_t)(rows * cols), 0.0f, 1.0f / sqrtf((float)cols), s, err);
    return p ? rd_matrix_init(m, RD_DTYPE_F32, p, rows, cols, err) : -1;
}

int rd_model_file_random(rd_model_file *out, const rd_config *cfg, int tied, uint64_t seed,
                         rd_error *err) {
    memset(out, 0, sizeof *out);
    if (rd_config_validate(cfg, "random model", err)) return -1;
    uint64_t s = seed * 0x2545f4914f6cdd1dull + 17;
    out->cfg = *cfg;
    snprintf(out->name, sizeof out->name, "random-%llu", (unsigned long long)seed);
    rd_weights *w = &out->w;
    const int d = cfg->dim, h = cfg->hidden_dim, kv = rd_config_kv_dim(cfg), V = cfg->vocab_size;
    float *emb = random_block(w, (size_t)V * d, 0.0f, 0.3f, &s, err);
    if (!emb || rd_matrix_init(&w->tok_embeddings, RD_DTYPE_F32, emb, V, d, err)) goto fail;
    if (!(w->layers = calloc((size_t)cfg->n_layers, sizeof *w->layers))) {
        rd_error_set(err, "out of memory");
        goto fail;
    }
    for (int l = 0; l < cfg->n_layers; l++) {
        rd_layer_weights *L = &w->layers[l];
        if (!(L->attn_norm = random_block(w, (size_t)d, 1.0f, 0.1f, &s, err))) goto fail;
        if (!(L->ffn_norm = random_block(w, (size_t)d, 1.0f, 0.1f, &s, err))) goto fail;
        if (random_matrix(w, &L->wq, d, d, &s, err) || random_matrix(w, &L->wk, kv, d, &s, err) ||
            random_matrix(w, &L->wv, kv, d, &s, err) || random_matrix(w, &L->wo, d, d, &s, err) ||
            random_matrix(w, &L->w1, h, d, &s, err) || random_matrix(w, &L->w2, d, h, &s, err) ||
            random_matrix(w, &L->w3, h, d, &s, err))
            goto fail;
    }
    if (!(w->final_norm = random_block(w, (size_t)d, 1.0f, 0.1f, &s, err))) goto fail;
    w->tied_classifier = tied;
    if (tied)
        w->classifier = w->tok_embeddings;
    else if (random_matrix(w, &w->classifier, V, d, &s, err))
        goto fail;
    return 0;
fail:
    rd_model_file_release(out);
    return -1;
}
