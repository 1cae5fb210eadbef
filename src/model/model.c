/* Loading a frozen model from any supported file. */
#include "redit/model.h"

#include "core/gemm_bf16.h"
#include "core/kernels.h"
#include "core/pool.h"

#include <cblas.h>
#include <pthread.h>
#include <time.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

/* One tensor for find_nonfinite: its GGUF name, data, type and shape (rows × cols; a vector
 * is one row). */
typedef struct named_tensor {
    char name[48];
    rd_dtype type;
    const void *data;
    int64_t rows, cols;
} named_tensor;

static int add_matrix(named_tensor *t, int n, const char *name, const rd_matrix *m) {
    if (!m->data) return n;
    t[n] = (named_tensor){.type = m->type, .data = m->data, .rows = m->rows, .cols = m->cols};
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    return n + 1;
}

static int add_vector(named_tensor *t, int n, const char *name, const float *v, int d) {
    if (!v) return n;
    t[n] = (named_tensor){.type = RD_DTYPE_F32, .data = v, .rows = 1, .cols = d};
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    return n + 1;
}

/* The tensors of one layer (at most 11: 2 norms, 7 matrices, 2 biases) into t; their count. */
static int layer_tensors(const rd_layer_weights *L, int l, int d, named_tensor *t) {
    char n[48];
    int k = 0;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s, l), n)
    k = add_vector(t, k, NAME("attn_norm.weight"), L->attn_norm, d);
    k = add_matrix(t, k, NAME("attn_q.weight"), &L->wq);
    k = add_matrix(t, k, NAME("attn_k.weight"), &L->wk);
    k = add_matrix(t, k, NAME("attn_v.weight"), &L->wv);
    k = add_matrix(t, k, NAME("attn_output.weight"), &L->wo);
    k = add_vector(t, k, NAME("attn_output.bias"), L->wo_bias, d);
    k = add_vector(t, k, NAME("ffn_norm.weight"), L->ffn_norm, d);
    k = add_matrix(t, k, NAME("ffn_gate.weight"), &L->w1);
    k = add_matrix(t, k, NAME("ffn_down.weight"), &L->w2);
    k = add_matrix(t, k, NAME("ffn_up.weight"), &L->w3);
    k = add_vector(t, k, NAME("ffn_down.bias"), L->w2_bias, d);
#undef NAME
    return k;
}

/* Notes in m->nonfinite the first tensor (and row) holding a NaN or Inf, and how many more
 * tensors do. One pass over the weights' bytes (the scales only, for quantised types). */
static void find_nonfinite(rd_model *m) {
    const rd_config *c = &m->file.cfg;
    const rd_weights *w = &m->file.w;
    m->nonfinite[0] = '\0';
    int bad = 0;
    for (int l = -1; l <= c->n_layers; l++) {
        named_tensor t[11];
        int n = 0;
        if (l == -1) n = add_matrix(t, 0, "token_embd.weight", &w->tok_embeddings);
        else if (l < c->n_layers && w->layers) n = layer_tensors(&w->layers[l], l, c->dim, t);
        else if (l == c->n_layers) {
            n = add_vector(t, 0, "output_norm.weight", w->final_norm, c->dim);
            if (!w->tied_classifier) n = add_matrix(t, n, "output.weight", &w->classifier);
        }
        for (int i = 0; i < n; i++) {
            const int64_t at = rd_dtype_find_nonfinite(t[i].type, t[i].data,
                                                       (uint64_t)t[i].rows * (uint64_t)t[i].cols);
            if (at < 0) continue;
            if (!bad++) {
                if (t[i].rows == 1)
                    snprintf(m->nonfinite, sizeof m->nonfinite, "%.47s element %lld is not finite "
                             "(NaN or Inf)", t[i].name, (long long)at);
                else
                    snprintf(m->nonfinite, sizeof m->nonfinite, "%.47s row %lld has a weight that "
                             "is not finite (NaN or Inf)", t[i].name, (long long)(at / t[i].cols));
            }
        }
    }
    if (bad > 1) {
        const size_t len = strlen(m->nonfinite);
        snprintf(m->nonfinite + len, sizeof m->nonfinite - len, "; %d more tensor%s too", bad - 1,
                 bad == 2 ? "" : "s");
    }
}

/* The tokenizer from the file's vocabulary (none when the file has none). */
static int build_tokenizer(rd_model *m, const char *what, rd_error *err) {
    if (m->file.vocab.n == 0) return 0;
    m->tokenizer = rd_tokenizer_from_vocab(&m->file.vocab, what ? what : m->file.name, err);
    return m->tokenizer ? 0 : -1;
}

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
    char dir[4096]; /* what a safetensors model is read from: its folder */
    const char *source = path;
    if (fmt != RD_FORMAT_SAFETENSORS) m->file_key = rd_model_file_key(source);
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
    case RD_FORMAT_SAFETENSORS: { /* a folder, or a .safetensors file in one */
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(dir, sizeof dir, "%s", path);
        } else {
            const char *slash = strrchr(path, '/');
            snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
        }
        source = dir;
        m->file_key = rd_model_file_key(source);
        rc = rd_hf_load(dir, &m->file, err);
        break;
    }
    default:
        rd_error_set(err, "%s: %s models are not supported yet", path, rd_file_format_name(fmt));
        rc = -1;
    }
    if (rc || build_tokenizer(m, path, err)) {
        rd_model_free(m);
        return NULL;
    }
    /* a file changed while it was read has no trustworthy key: no cached fingerprint */
    if (m->file_key != rd_model_file_key(source)) m->file_key = 0;
    find_nonfinite(m);
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
    if (build_tokenizer(m, path, err)) {
        rd_model_free(m);
        return NULL;
    }
    find_nonfinite(m);
    return m;
}

/* Drops the packed bf16 copies and unhooks them from the matrices. */
static void drop_packed(rd_model *m) {
    rd_weights *w = &m->file.w;
    w->tok_embeddings.bf16 = NULL;
    w->classifier.bf16 = NULL;
    for (int l = 0; w->layers && l < m->file.cfg.n_layers; l++) {
        rd_layer_weights *L = &w->layers[l];
        L->wq.bf16 = L->wk.bf16 = L->wv.bf16 = L->wo.bf16 = NULL;
        L->w1.bf16 = L->w2.bf16 = L->w3.bf16 = NULL;
    }
    for (int i = 0; i < m->n_packed; i++) rd_bf16_weight_free(m->packed[i]);
    free(m->packed);
    m->packed = NULL;
    m->n_packed = 0;
    m->packed_on_the_fly = 0;
}

/* ---- changes while jobs run: the use count ------------------------------------------ */

/* The count is the one field a job holding a const pointer may change (see model.h): the
 * casts drop the const of a pointer to a model that was allocated writable. */
void rd_model_use_begin(const rd_model *m) {
    atomic_fetch_add_explicit((atomic_int *)&m->users, 1, memory_order_acq_rel);
}

void rd_model_use_end(const rd_model *m) {
    atomic_fetch_sub_explicit((atomic_int *)&m->users, 1, memory_order_acq_rel);
}

int rd_model_in_use(const rd_model *m) {
    return atomic_load_explicit(&m->users, memory_order_acquire) > 0;
}

/* -1 with *err when a job on another thread uses m (what = the refused change). */
static int refuse_in_use(const rd_model *m, const char *what, rd_error *err) {
    if (!rd_model_in_use(m)) return 0;
    return rd_error_set(err, "%s: cannot %s while a job (training or generation) uses the "
                             "model; wait until it has ended",
                        m->file.name[0] ? m->file.name : "the model", what);
}

/* The matrices BF16 compute multiplies (each layer's seven, then the classifier) into all
 * (room for 7·n_layers + 1); returns their count. */
static int bf16_matrices(rd_model *m, rd_matrix **all) {
    rd_weights *w = &m->file.w;
    int n = 0;
    for (int l = 0; l < m->file.cfg.n_layers; l++) {
        rd_layer_weights *Lw = &w->layers[l];
        rd_matrix *mats[] = {&Lw->wq, &Lw->wk, &Lw->wv, &Lw->wo, &Lw->w1, &Lw->w2, &Lw->w3};
        for (int i = 0; i < 7; i++) all[n++] = mats[i];
    }
    all[n++] = &w->classifier;
    return n;
}

size_t rd_model_bf16_copy_bytes(const rd_model *m, int backward) {
    const rd_weights *w = &m->file.w;
    const unsigned modes = RD_BF16_FORWARD | (backward ? RD_BF16_BACKWARD : 0);
    size_t b = rd_bf16_weight_bytes_for(w->classifier.rows, w->classifier.cols, modes);
    for (int l = 0; w->layers && l < m->file.cfg.n_layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        const rd_matrix *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (int i = 0; i < 7; i++) b += rd_bf16_weight_bytes_for(mats[i]->rows, mats[i]->cols, modes);
    }
    return b;
}

void rd_model_set_bf16_weights(rd_model *m, rd_bf16_weights w) { m->bf16_weights = (int)w; }

/* 1 when a layer matrix or the classifier is stored in blocks (a quantized type). */
static int has_quantized_matrix(const rd_model *m) {
    const rd_weights *w = &m->file.w;
    int q = rd_dtype_info_of(w->classifier.type)->block_elems > 1;
    for (int l = 0; w->layers && l < m->file.cfg.n_layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        const rd_matrix *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (int i = 0; i < 7; i++) q |= rd_dtype_info_of(mats[i]->type)->block_elems > 1;
    }
    return q;
}

int rd_model_bf16_plan(const rd_model *m, int backward, size_t *copy_bytes) {
    const size_t need = rd_model_bf16_copy_bytes(m, backward);
    if (copy_bytes) *copy_bytes = need;
    if (m->bf16_weights == RD_BF16_WEIGHTS_ON_THE_FLY) return 0;
    if (m->bf16_weights == RD_BF16_WEIGHTS_PACKED) return 1;
    /* AUTO packs no copies of quantized matrices: a copy is 3.5–4× their size and the
     * products on the fly run at about the copies' speed (large row counts) */
    rd_error mem_err = {0};
    return !has_quantized_matrix(m) &&
           rd_memory_check(need + need / 4, "bf16 weight copies", &mem_err) == 0;
}

int rd_bf16_weights_from_name(const char *name, rd_bf16_weights *out) {
    if (!name) return -1;
    if (!strcmp(name, "auto")) *out = RD_BF16_WEIGHTS_AUTO;
    else if (!strcmp(name, "packed")) *out = RD_BF16_WEIGHTS_PACKED;
    else if (!strcmp(name, "on-the-fly")) *out = RD_BF16_WEIGHTS_ON_THE_FLY;
    else return -1;
    return 0;
}

int rd_model_bf16_on_the_fly(const rd_model *m) { return m->n_packed > 0 && m->packed_on_the_fly; }

int rd_model_set_compute(rd_model *m, rd_compute compute, int backward, rd_error *err) {
    if (refuse_in_use(m, "change the compute mode", err)) return -1;
    drop_packed(m);
    if (compute == RD_COMPUTE_F32) return 0;
    if (compute != RD_COMPUTE_BF16) return rd_error_set(err, "unknown compute mode %d", (int)compute);
    if (!rd_gemm_kernel_available(RD_GEMM_KERNEL_AVX512BF16))
        return rd_error_set(err, "bf16 compute needs a CPU with AVX512-BF16; this one has none "
                                 "(use f32)");
    rd_matrix **all = malloc(sizeof *all * ((size_t)m->file.cfg.n_layers * 7 + 1));
    if (!all) return rd_error_set(err, "out of memory");
    const int n = bf16_matrices(m, all);
    if (!(m->packed = calloc((size_t)n, sizeof *m->packed))) {
        free(all);
        return rd_error_set(err, "out of memory");
    }
    /* copies where they fit (or as asked), else marks for products on the fly */
    size_t need;
    const int fly = !rd_model_bf16_plan(m, backward, &need);
    if (m->bf16_weights == RD_BF16_WEIGHTS_PACKED &&
        rd_memory_check(need, "the packed bf16 weight copies", err) != 0) {
        free(all);
        drop_packed(m);
        return rd_error_prefix(err, "%s", m->file.name);
    }
    const unsigned modes = fly ? 0u : RD_BF16_FORWARD | (backward ? RD_BF16_BACKWARD : 0);
    rd_pool *pool = rd_pool_shared(err); /* packing spread over the process's threads */
    if (!pool) {
        free(all);
        drop_packed(m);
        return -1;
    }
    m->packed_backward = backward;
    m->packed_on_the_fly = fly;
    for (int i = 0; i < n; i++) {
        if (!(m->packed[i] = rd_bf16_weight_new(all[i], modes, pool, err))) {
            free(all);
            drop_packed(m);
            return rd_error_prefix(err, "%s: packing weights in bf16", m->file.name);
        }
        m->n_packed = i + 1;
        all[i]->bf16 = m->packed[i];
    }
    free(all);
    return 0;
}

int rd_model_set_quant_products(rd_model *m, int on, rd_error *err) {
    if (refuse_in_use(m, "change how decode multiplies quantized weights", err)) return -1;
    on = on != 0;
    rd_weights *w = &m->file.w;
    w->tok_embeddings.q8_products = w->classifier.q8_products = on;
    for (int l = 0; w->layers && l < m->file.cfg.n_layers; l++) {
        rd_layer_weights *L = &w->layers[l];
        rd_matrix *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (int i = 0; i < 7; i++) mats[i]->q8_products = on;
    }
    return 0;
}

int rd_model_quant_products(const rd_model *m) { return m->file.w.classifier.q8_products; }

int rd_model_repack(rd_model *m, rd_error *err) {
    if (refuse_in_use(m, "pack the weights again", err)) return -1;
    if (!m->n_packed || m->packed_on_the_fly) return 0; /* on the fly: read at each product */
    return rd_model_set_compute(m, RD_COMPUTE_BF16, m->packed_backward, err);
}

rd_compute rd_model_compute(const rd_model *m) {
    return m->n_packed ? RD_COMPUTE_BF16 : RD_COMPUTE_F32;
}

int rd_compute_available(rd_compute c) {
    return c == RD_COMPUTE_F32 ||
           (c == RD_COMPUTE_BF16 && rd_gemm_kernel_available(RD_GEMM_KERNEL_AVX512BF16));
}

/* ---- "auto": whichever GEMM is faster on this CPU, measured once per process ------------
 * Global state, justified: the choice is a property of the CPU (and of the thread count
 * fixed at the first context), measured once in a few milliseconds and then read by every
 * caller; pthread_once makes the first measurement safe from any thread. */
static pthread_once_t auto_once = PTHREAD_ONCE_INIT;
static rd_compute auto_choice = RD_COMPUTE_F32;
static char auto_why[128];

/* bf16 is chosen only when its GEMM beats sgemm by more than this factor: its rounding costs
 * some precision, so a tie goes to f32, the reference numerics. */
#define AUTO_BF16_MARGIN 1.10

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of a few alternating timings of one training-sized product, C (256, 1024) =
 * A (256, 1024) · Wᵀ: OpenBLAS sgemm against rd_gemm_bf16 with its AUTO kernel (whatever
 * kernel that picks here), both on the process's threads. About 20 ms. Returns
 * t_sgemm / t_bf16, or 0 when the bf16 product could not run. */
static double measure_bf16_speedup(void) {
    enum { M = 128, K = 1024, NO = 1024, ROUNDS = 12 };
    rd_error err = {0};
    rd_pool *pool = rd_pool_shared(&err);
    float *a = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * NO * K);
    float *c = malloc(sizeof(float) * M * NO);
    void *scratch = malloc(rd_gemm_bf16_scratch_bytes(pool));
    rd_bf16_weight *pw = NULL;
    double ratio = 0.0;
    rd_matrix W;
    if (!a || !w || !c || !scratch) goto done;
    uint64_t seed = 1;
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(rd_splitmix64(&seed) >> 40) * 0x1p-24f - 0.5f;
    for (size_t i = 0; i < (size_t)NO * K; i++) w[i] = (float)(rd_splitmix64(&seed) >> 40) * 0x1p-24f - 0.5f;
    if (rd_matrix_init(&W, RD_DTYPE_F32, w, NO, K, &err) ||
        !(pw = rd_bf16_weight_new(&W, RD_BF16_FORWARD, pool, &err)))
        goto done;
    double best_f32 = 1e30, best_bf16 = 1e30;
    for (int r = 0; r <= ROUNDS; r++) { /* round 0 warms both up */
        double t0 = seconds_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, NO, K, 1.0f, a, K, w, K, 0.0f, c, NO);
        const double t_f32 = seconds_now() - t0;
        t0 = seconds_now();
        if (rd_gemm_bf16(c, NO, a, K, M, pw, RD_BF16_FORWARD, 0, pool, scratch, NULL, &err)) goto done;
        const double t_bf16 = seconds_now() - t0;
        if (r > 0 && t_f32 < best_f32) best_f32 = t_f32;
        if (r > 0 && t_bf16 < best_bf16) best_bf16 = t_bf16;
    }
    ratio = best_f32 / best_bf16;
done:
    rd_bf16_weight_free(pw);
    free(a), free(w), free(c), free(scratch);
    return ratio;
}

static void auto_init(void) {
    const char *env = getenv("REDIT_COMPUTE_AUTO");
    if (env && (!strcmp(env, "f32") || !strcmp(env, "bf16"))) {
        auto_choice = !strcmp(env, "bf16") && rd_compute_available(RD_COMPUTE_BF16)
                          ? RD_COMPUTE_BF16 : RD_COMPUTE_F32;
        snprintf(auto_why, sizeof auto_why, "auto: set by REDIT_COMPUTE_AUTO=%s", env);
        return;
    }
    if (!rd_compute_available(RD_COMPUTE_BF16)) {
        auto_choice = RD_COMPUTE_F32;
        snprintf(auto_why, sizeof auto_why, "auto: no AVX512-BF16 on this CPU");
        return;
    }
    const double r = measure_bf16_speedup();
    const char *kernel = rd_gemm_kernel_name(RD_GEMM_KERNEL_AUTO);
    auto_choice = r > AUTO_BF16_MARGIN ? RD_COMPUTE_BF16 : RD_COMPUTE_F32;
    if (r <= 0.0)
        snprintf(auto_why, sizeof auto_why, "auto: the bf16 kernel could not be measured");
    else if (r >= 1.0)
        snprintf(auto_why, sizeof auto_why, "auto: the %s bf16 kernel %.2f× sgemm here%s", kernel,
                 r, auto_choice == RD_COMPUTE_F32 ? ", under the 1.10× bf16 needs" : "");
    else
        snprintf(auto_why, sizeof auto_why, "auto: sgemm %.2f× the %s bf16 kernel here", 1.0 / r,
                 kernel);
}

rd_compute rd_compute_auto(const char **why) {
    pthread_once(&auto_once, auto_init);
    if (why) *why = auto_why;
    return auto_choice;
}

int rd_compute_from_name(const char *name, rd_compute *out) {
    if (!name) return -1;
    if (!strcmp(name, "f32")) *out = RD_COMPUTE_F32;
    else if (!strcmp(name, "bf16")) *out = RD_COMPUTE_BF16;
    else if (!strcmp(name, "auto")) *out = rd_compute_auto(NULL);
    else return -1;
    return 0;
}

size_t rd_model_compute_bytes(const rd_model *m) {
    size_t b = 0;
    for (int i = 0; i < m->n_packed; i++) b += rd_bf16_weight_bytes(m->packed[i]);
    return b;
}

void rd_model_free(rd_model *m) {
    if (!m) return;
    drop_packed(m);
    rd_tokenizer_free(m->tokenizer);
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

/* Copies the layers' output biases (frozen, not parameters) into one buffer owned by fresh
 * and repoints them there, so they outlive the old storage. */
static int keep_biases(rd_weights *fresh, rd_layer_weights *layers, int n_layers, int d,
                       rd_error *err) {
    size_t count = 0;
    for (int l = 0; l < n_layers; l++)
        count += (layers[l].wo_bias != NULL) + (layers[l].w2_bias != NULL);
    if (!count) return 0;
    float *dst = rd_weights_alloc(fresh, count * (size_t)d * sizeof(float), err);
    if (!dst) return -1;
    for (int l = 0; l < n_layers; l++) {
        const float **b[2] = {&layers[l].wo_bias, &layers[l].w2_bias};
        for (int i = 0; i < 2; i++) {
            if (!*b[i]) continue;
            memcpy(dst, *b[i], (size_t)d * sizeof(float));
            *b[i] = dst;
            dst += d;
        }
    }
    return 0;
}

int rd_model_make_trainable(rd_model *m, rd_error *err) {
    if (refuse_in_use(m, "be made trainable", err)) return -1;
    if (m->params) return 0;
    const int was_bf16 = m->n_packed > 0; /* packed again from the new arrays below */
    drop_packed(m);
    const rd_config *c = &m->file.cfg;
    rd_weights *w = &m->file.w;
    const size_t n = (size_t)rd_config_param_count(c, w->tied_classifier);
    char what[200];
    snprintf(what, sizeof what, "%s: full fine-tuning (f32 weights, gradients and Adam state)",
             m->file.name);
    if (rd_memory_check(n * sizeof(float) * 4, what, err)) return -1;
    rd_weights fresh = {0};
    float *arena = rd_weights_alloc(&fresh, n * sizeof(float), err);
    if (!arena) return rd_error_prefix(err, "making %s trainable (%.1f MB of f32 weights)",
                                       m->file.name, (double)n * 4 / 1e6);
    if (keep_biases(&fresh, w->layers, c->n_layers, c->dim, err)) {
        rd_weights_release(&fresh);
        return rd_error_prefix(err, "making %s trainable", m->file.name);
    }
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
    if (was_bf16) return rd_model_set_compute(m, RD_COMPUTE_BF16, m->packed_backward, err);
    return 0;
}

size_t rd_model_matmul_scratch_floats(const rd_model *m, int rows) {
    const rd_weights *w = &m->file.w;
    size_t best = rd_matmul_scratch_floats(&w->classifier, rows);
    for (int l = 0; l < m->file.cfg.n_layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        const rd_matrix *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
            size_t s = rd_matmul_scratch_floats(all[i], rows);
            if (s > best) best = s;
        }
        /* the fused q/k/v and gate/up loops need their matrices' scratch side by side */
        size_t qkv = rd_matmul_scratch_floats(&L->wq, rows) +
                     rd_matmul_scratch_floats(&L->wk, rows) +
                     rd_matmul_scratch_floats(&L->wv, rows);
        size_t gate_up = rd_matmul_scratch_floats(&L->w1, rows) +
                         rd_matmul_scratch_floats(&L->w3, rows);
        if (qkv > best) best = qkv;
        if (gate_up > best) best = gate_up;
    }
    return best;
}
