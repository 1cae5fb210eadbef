#include "tiny_model.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

rd_config tiny_config(void) {
    rd_config c = {.dim = 64, .hidden_dim = 172, .n_layers = 3, .n_heads = 8, .n_kv_heads = 4,
                   .vocab_size = 300, .seq_len = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                   .rope_layout = RD_ROPE_ADJACENT};
    return c;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float gauss(uint64_t *s) {
    double u1 = ((splitmix(s) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (splitmix(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static float *random_block(rd_weights *w, size_t n, float mean, float std, uint64_t *s) {
    float *p = rd_weights_alloc(w, n * sizeof(float), NULL);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) p[i] = mean + std * gauss(s);
    return p;
}

static int random_matrix(rd_weights *w, rd_matrix *m, int64_t rows, int64_t cols, uint64_t *s) {
    float *p = random_block(w, (size_t)(rows * cols), 0.0f, 1.0f / sqrtf((float)cols), s);
    if (!p) return -1;
    return rd_matrix_init(m, RD_DTYPE_F32, p, rows, cols, NULL);
}

int tiny_model_init(rd_model_file *out, const rd_config *cfg, int tied, uint64_t seed) {
    uint64_t s = seed * 7919 + 17;
    out->cfg = *cfg;
    out->format = RD_FORMAT_UNKNOWN;
    snprintf(out->name, sizeof out->name, "tiny-%llu", (unsigned long long)seed);
    rd_weights *w = &out->w;
    int d = cfg->dim, h = cfg->hidden_dim, kv = rd_config_kv_dim(cfg), V = cfg->vocab_size;
    float *emb = random_block(w, (size_t)V * d, 0.0f, 0.3f, &s);
    if (!emb || rd_matrix_init(&w->tok_embeddings, RD_DTYPE_F32, emb, V, d, NULL)) return -1;
    w->layers = calloc((size_t)cfg->n_layers, sizeof *w->layers);
    if (!w->layers) return -1;
    for (int l = 0; l < cfg->n_layers; l++) {
        rd_layer_weights *L = &w->layers[l];
        if (!(L->attn_norm = random_block(w, (size_t)d, 1.0f, 0.1f, &s))) return -1;
        if (!(L->ffn_norm = random_block(w, (size_t)d, 1.0f, 0.1f, &s))) return -1;
        if (random_matrix(w, &L->wq, d, d, &s) || random_matrix(w, &L->wk, kv, d, &s) ||
            random_matrix(w, &L->wv, kv, d, &s) || random_matrix(w, &L->wo, d, d, &s) ||
            random_matrix(w, &L->w1, h, d, &s) || random_matrix(w, &L->w2, d, h, &s) ||
            random_matrix(w, &L->w3, h, d, &s))
            return -1;
    }
    if (!(w->final_norm = random_block(w, (size_t)d, 1.0f, 0.1f, &s))) return -1;
    w->tied_classifier = tied;
    if (tied) {
        w->classifier = w->tok_embeddings;
    } else if (random_matrix(w, &w->classifier, V, d, &s)) {
        return -1;
    }
    return 0;
}

int tiny_tempdir(char *buf, size_t cap) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    if ((size_t)snprintf(buf, cap, "%s/redit-test-XXXXXX", base) >= cap) return -1;
    return mkdtemp(buf) ? 0 : -1;
}

void tiny_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

const char *shared_fixture(const char *rel) {
    static char path[4096];
    snprintf(path, sizeof path, "../shared/fixtures/%s", rel);
    return access(path, R_OK) == 0 ? path : NULL;
}
