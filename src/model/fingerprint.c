/* The base-model fingerprint written with edit files and training states (see
 * rd_model_fingerprint in include/redit/model.h). */
#include <stdint.h>
#include <string.h>

#include "redit/model.h"
#include "redit/util.h"

/* FNV-1a 64 over the config fields and, for every matrix (with its type and shape) and
 * norm vector, its byte size and a sample of its bytes: all of them up to 4096 bytes, else
 * 32 evenly spaced windows of 128 bytes (the first at the start, the last at the end) —
 * 4096 bytes per tensor, about 1.2 MB read on a 7B model, touching ~32 pages per tensor, so
 * it costs milliseconds on a mapped model. Any real change of weights (fine-tuning moves
 * nearly every weight, a conversion changes types or sizes) is very likely to change the
 * fingerprint; a change confined to bytes between the windows is not detected. */
#define FP_FULL 4096u
#define FP_WINDOWS 32u
#define FP_WINDOW 128u

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    return rd_fnv1a(h, b, 8);
}

static uint64_t fnv_sampled(uint64_t h, const void *p, size_t n) {
    h = fnv_u64(h, n);
    if (!p) return h;
    if (n <= FP_FULL) return rd_fnv1a(h, p, n);
    for (uint64_t k = 0; k < FP_WINDOWS; k++) {
        uint64_t off = k * (uint64_t)(n - FP_WINDOW) / (FP_WINDOWS - 1);
        h = rd_fnv1a(h, (const unsigned char *)p + off, FP_WINDOW);
    }
    return h;
}

static uint64_t fnv_matrix(uint64_t h, const rd_matrix *m) {
    h = fnv_u64(h, (uint64_t)m->type);
    h = fnv_u64(h, (uint64_t)m->rows);
    h = fnv_u64(h, (uint64_t)m->cols);
    return fnv_sampled(h, m->data, (size_t)m->rows * m->row_bytes);
}

static uint64_t fnv_f32(uint64_t h, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return fnv_u64(h, u);
}

static uint64_t fnv_config(uint64_t h, const rd_config *c, int tied) {
    const int fields[] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                          c->vocab_size, c->seq_len, (int)c->rope_layout, tied};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        h = fnv_u64(h, (uint64_t)(int64_t)fields[i]);
    return fnv_f32(fnv_f32(h, c->norm_eps), c->rope_theta);
}

uint64_t rd_model_fingerprint(const rd_model *m) {
    const rd_config *c = &m->file.cfg;
    const rd_weights *w = &m->file.w;
    const size_t norm_bytes = (size_t)c->dim * sizeof(float);
    uint64_t h = fnv_config(RD_FNV1A_INIT, c, w->tied_classifier);
    h = fnv_matrix(h, &w->tok_embeddings);
    for (int l = 0; w->layers && l < c->n_layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        h = fnv_sampled(h, L->attn_norm, norm_bytes);
        const rd_matrix *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) h = fnv_matrix(h, mats[i]);
        h = fnv_sampled(h, L->ffn_norm, norm_bytes);
        /* biases of merged models (redit export --format merged): a base with edits folded
         * in is another model */
        if (L->wo_bias) h = fnv_sampled(h, L->wo_bias, norm_bytes);
        if (L->w2_bias) h = fnv_sampled(h, L->w2_bias, norm_bytes);
    }
    h = fnv_sampled(h, w->final_norm, norm_bytes);
    if (!w->tied_classifier) h = fnv_matrix(h, &w->classifier);
    return h;
}

