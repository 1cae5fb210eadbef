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

/* A (rows, cols) matrix of N(0, std²) values stored in `type`: drawn row by row into row
 * (cols floats) and converted, so a quantised model needs only its own size in memory. */
static int random_matrix(rd_weights *w, rd_matrix *m, rd_dtype type, int64_t rows, int64_t cols,
                         float std, uint64_t *s, float *row, rd_error *err) {
    uint64_t row_bytes;
    if (rd_dtype_bytes(type, (uint64_t)cols, &row_bytes))
        return rd_error_set(err, "a %lld-wide row is not a whole number of %s blocks",
                            (long long)cols, rd_dtype_info_of(type)->name);
    char *data = rd_weights_alloc(w, (size_t)(row_bytes * (uint64_t)rows), err);
    if (!data) return -1;
    const rd_dtype_info *info = rd_dtype_info_of(type);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) row[c] = 0.0f + std * gauss(s);
        info->from_f32(row, data + (size_t)r * row_bytes, (size_t)cols);
    }
    return rd_matrix_init(m, type, data, rows, cols, err);
}

/* The storage type of each matrix: one type for all (mix < 0) or a mixture's pick. */
typedef struct type_choice {
    rd_dtype type;
    int mix; /* an rd_type_mix, or -1 */
    const rd_config *cfg;
    int tied;
} type_choice;

static rd_dtype choose(const type_choice *ch, rd_tensor_role role, int layer) {
    return ch->mix < 0 ? ch->type
                       : rd_type_mix_pick((rd_type_mix)ch->mix, ch->cfg, ch->tied, role, layer);
}

static int random_layer(rd_weights *w, rd_layer_weights *L, int l, const type_choice *ch,
                        uint64_t *s, float *row, rd_error *err) {
    const rd_config *cfg = ch->cfg;
    const int d = cfg->dim, h = cfg->hidden_dim, kv = rd_config_kv_dim(cfg);
    const float sd = 1.0f / sqrtf((float)d), sh = 1.0f / sqrtf((float)h);
    if (!(L->attn_norm = random_block(w, (size_t)d, 1.0f, 0.1f, s, err)) ||
        !(L->ffn_norm = random_block(w, (size_t)d, 1.0f, 0.1f, s, err)))
        return -1;
    return random_matrix(w, &L->wq, choose(ch, RD_TENSOR_WQ, l), d, d, sd, s, row, err) ||
                   random_matrix(w, &L->wk, choose(ch, RD_TENSOR_WK, l), kv, d, sd, s, row, err) ||
                   random_matrix(w, &L->wv, choose(ch, RD_TENSOR_WV, l), kv, d, sd, s, row, err) ||
                   random_matrix(w, &L->wo, choose(ch, RD_TENSOR_WO, l), d, d, sd, s, row, err) ||
                   random_matrix(w, &L->w1, choose(ch, RD_TENSOR_W1, l), h, d, sd, s, row, err) ||
                   random_matrix(w, &L->w2, choose(ch, RD_TENSOR_W2, l), d, h, sh, s, row, err) ||
                   random_matrix(w, &L->w3, choose(ch, RD_TENSOR_W3, l), h, d, sd, s, row, err)
               ? -1
               : 0;
}

static int random_model(rd_model_file *out, const rd_config *cfg, int tied, uint64_t seed,
                        type_choice *ch, rd_error *err) {
    memset(out, 0, sizeof *out);
    if (rd_config_validate(cfg, "random model", err)) return -1;
    ch->cfg = cfg;
    ch->tied = tied;
    uint64_t s = seed * 0x2545f4914f6cdd1dull + 17;
    out->cfg = *cfg;
    snprintf(out->name, sizeof out->name, "random-%llu", (unsigned long long)seed);
    rd_weights *w = &out->w;
    const int d = cfg->dim, h = cfg->hidden_dim, V = cfg->vocab_size;
    float *row = malloc(sizeof(float) * (size_t)(h > d ? h : d));
    if (!row) {
        rd_error_set(err, "out of memory");
        goto fail;
    }
    /* Tied: the one matrix is the classifier too, and a mixture types it as one. */
    if (random_matrix(w, &w->tok_embeddings,
                      choose(ch, tied ? RD_TENSOR_CLASSIFIER : RD_TENSOR_EMBEDDINGS, 0), V, d,
                      0.3f, &s, row, err))
        goto fail;
    if (!(w->layers = calloc((size_t)cfg->n_layers, sizeof *w->layers))) {
        rd_error_set(err, "out of memory");
        goto fail;
    }
    for (int l = 0; l < cfg->n_layers; l++)
        if (random_layer(w, &w->layers[l], l, ch, &s, row, err)) goto fail;
    if (!(w->final_norm = random_block(w, (size_t)d, 1.0f, 0.1f, &s, err))) goto fail;
    w->tied_classifier = tied;
    if (tied)
        w->classifier = w->tok_embeddings;
    else if (random_matrix(w, &w->classifier, choose(ch, RD_TENSOR_CLASSIFIER, 0), V, d,
                           1.0f / sqrtf((float)d), &s, row, err))
        goto fail;
    free(row);
    return 0;
fail:
    free(row);
    rd_model_file_release(out);
    return -1;
}

int rd_model_file_random(rd_model_file *out, const rd_config *cfg, int tied, uint64_t seed,
                         rd_dtype type, rd_error *err) {
    if ((unsigned)type >= RD_DTYPE_COUNT) {
        memset(out, 0, sizeof *out);
        return rd_error_set(err, "unknown storage type %d", (int)type);
    }
    type_choice ch = {.type = type, .mix = -1};
    return random_model(out, cfg, tied, seed, &ch, err);
}

int rd_model_file_random_mix(rd_model_file *out, const rd_config *cfg, int tied, uint64_t seed,
                             rd_type_mix mix, rd_error *err) {
    if ((unsigned)mix >= RD_MIX_COUNT) {
        memset(out, 0, sizeof *out);
        return rd_error_set(err, "unknown type mixture %d", (int)mix);
    }
    type_choice ch = {.type = RD_DTYPE_F32, .mix = (int)mix};
    return random_model(out, cfg, tied, seed, &ch, err);
}
