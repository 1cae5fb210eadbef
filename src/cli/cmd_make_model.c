/* redit make-model: writes a random-weight Llama model of a given shape straight into a
 * storage type (GGUF), row by row, so a Llama-2-7B-shaped Q4_K file needs only its own
 * size in memory — for measuring load time, memory and throughput at scale. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "redit/model_file.h"
#include "redit/rng.h"
#include "redit/tokenizer.h"

typedef struct shape {
    const char *name;
    rd_config cfg;
} shape;

static const shape SHAPES[] = {
    {"llama2-7b", {4096, 11008, 32, 32, 32, 32000, 4096, 1e-5f, 10000.0f, RD_ROPE_ADJACENT}},
    {"stories110M", {768, 2048, 12, 12, 12, 32000, 1024, 1e-5f, 10000.0f, RD_ROPE_ADJACENT}},
    {"stories15M", {288, 768, 6, 6, 6, 32000, 256, 1e-5f, 10000.0f, RD_ROPE_ADJACENT}},
};

/* xorshift64* + Box–Muller: a fixed stream per seed. */
static float gauss(uint64_t *s) {
    const double u0 = (double)(rd_rng_next(s) >> 11) / 9007199254740992.0;
    const double u1 = (double)(rd_rng_next(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u0 + 1e-300)) * cos(6.283185307179586 * u1));
}

/* A (rows, cols) matrix of N(0, std²) values stored in `type`, quantized row by row. */
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
        for (int64_t c = 0; c < cols; c++) row[c] = std * gauss(s);
        info->from_f32(row, data + (size_t)r * row_bytes, (size_t)cols);
    }
    return rd_matrix_init(m, type, data, rows, cols, err);
}

static float *norm_vector(rd_weights *w, int d, uint64_t *s, rd_error *err) {
    float *v = rd_weights_alloc(w, (size_t)d * sizeof(float), err);
    if (v)
        for (int i = 0; i < d; i++) v[i] = 1.0f + 0.1f * gauss(s);
    return v;
}

static int build(rd_model_file *f, const rd_config *c, rd_dtype type, uint64_t seed, rd_error *err) {
    rd_weights *w = &f->w;
    const int d = c->dim, kv = rd_config_kv_dim(c), h = c->hidden_dim;
    uint64_t s = seed * RD_RNG_GOLDEN + 1;
    float *row = malloc(sizeof(float) * (size_t)(h > d ? h : d));
    if (!row) return rd_error_set(err, "out of memory");
    int rc = random_matrix(w, &w->tok_embeddings, type, c->vocab_size, d, 0.3f, &s, row, err);
    if (!rc && !(w->layers = calloc((size_t)c->n_layers, sizeof *w->layers)))
        rc = rd_error_set(err, "out of memory");
    for (int l = 0; !rc && l < c->n_layers; l++) {
        rd_layer_weights *L = &w->layers[l];
        const float sd = 1.0f / sqrtf((float)d), sh = 1.0f / sqrtf((float)h);
        if (!(L->attn_norm = norm_vector(w, d, &s, err)) || !(L->ffn_norm = norm_vector(w, d, &s, err)) ||
            random_matrix(w, &L->wq, type, d, d, sd, &s, row, err) ||
            random_matrix(w, &L->wk, type, kv, d, sd, &s, row, err) ||
            random_matrix(w, &L->wv, type, kv, d, sd, &s, row, err) ||
            random_matrix(w, &L->wo, type, d, d, sd, &s, row, err) ||
            random_matrix(w, &L->w1, type, h, d, sd, &s, row, err) ||
            random_matrix(w, &L->w2, type, d, h, sh, &s, row, err) ||
            random_matrix(w, &L->w3, type, h, d, sd, &s, row, err))
            rc = -1;
        if (!rc) fprintf(stderr, "\rlayer %d/%d", l + 1, c->n_layers);
    }
    if (!rc && !(w->final_norm = norm_vector(w, d, &s, err))) rc = -1;
    if (!rc) {
        w->classifier = w->tok_embeddings;
        w->tied_classifier = 1;
        fprintf(stderr, "\n");
    }
    free(row);
    return rc;
}

int cmd_make_model(int argc, char **argv) {
    static const struct option opts[] = {{"shape", required_argument, 0, 's'},
                                         {"type", required_argument, 0, 't'},
                                         {"tokenizer", required_argument, 0, 'k'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *shape_name = "stories15M", *type_name = "F32", *tok = NULL, *out = NULL;
    int seed = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:t:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': shape_name = optarg; break;
        case 't': type_name = optarg; break;
        case 'k': tok = optarg; break;
        case 'S':
            if (cli_int("make-model", "--seed", optarg, 0, 0x7fffffff, &seed)) return 2;
            break;
        case 'o': out = optarg; break;
        case 'h':
            printf("usage: redit make-model --shape SHAPE --type TYPE [--tokenizer tokenizer.bin] "
                   "[--seed S] -o FILE.gguf\n\nWrites a random-weight Llama model (GGUF) of SHAPE "
                   "(llama2-7b, stories110M, stories15M)\nwith every matrix in TYPE (F32, F16, BF16, "
                   "Q8_0, Q4_0, Q4_K, ...), quantized row by\nrow: memory is the file's size. With "
                   "--tokenizer, a llama2.c tokenizer.bin of 32000\npieces goes inside. For "
                   "measuring load time, memory and throughput at scale;\nthe text it generates is "
                   "noise.\n");
            return 0;
        default: return 2;
        }
    }
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++)
        if (!strcmp(SHAPES[i].name, shape_name)) sh = &SHAPES[i];
    rd_dtype type;
    if (!out || optind != argc || !sh || rd_dtype_from_name(type_name, &type)) {
        fprintf(stderr, "redit make-model: give --shape (llama2-7b, stories110M, stories15M), "
                        "--type (a storage type name) and -o FILE\n");
        return 2;
    }
    rd_error err = {0};
    rd_model_file f;
    memset(&f, 0, sizeof f);
    f.cfg = sh->cfg;
    snprintf(f.name, sizeof f.name, "random %s %s", sh->name, rd_dtype_info_of(type)->name);
    double t0 = cli_now();
    int rc = 1;
    if (tok && !(f.tokenizer = rd_tokenizer_load_llama2c(tok, sh->cfg.vocab_size, &err))) {
        fprintf(stderr, "redit make-model: %s\n", err.msg);
    } else if (build(&f, &sh->cfg, type, (uint64_t)seed, &err) ||
               rd_gguf_write(out, &f, RD_DTYPE_COUNT, &err)) {
        fprintf(stderr, "redit make-model: %s\n", err.msg);
    } else {
        fprintf(stderr, "wrote %s (%s, %s, %.1f s)\n", out, sh->name,
                rd_dtype_info_of(type)->name, cli_now() - t0);
        rc = 0;
    }
    rd_model_file_release(&f);
    return rc;
}
