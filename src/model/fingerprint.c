/* The base-model fingerprint written with edit files, training states and sessions (see
 * rd_model_fingerprint in include/redit/model.h), its on-disk cache, and the sampled
 * fingerprint of earlier redit versions (still accepted for old files). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "redit/atomic_file.h"
#include "redit/buf.h"
#include "redit/model.h"
#include "redit/util.h"

/* ---- the fingerprint: XXH3-64 over every byte ---------------------------------------- */

/* What a tensor is, hashed with its bytes' digest so that no two tensors (a bias present in
 * one model and absent in another, say) can be confused. */
enum { T_EMB = 1, T_ATTN_NORM, T_WQ, T_WK, T_WV, T_WO, T_FFN_NORM, T_W1, T_W2, T_W3,
       T_WO_BIAS, T_W2_BIAS, T_FINAL_NORM, T_CLASSIFIER };

static void put_u64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

/* Chains one tensor into h: XXH3-64 of (tag, layer, type, rows, cols, byte count, XXH3-64
 * of the bytes) seeded with h. Per-tensor digests keep the value independent of how the
 * bytes are read. */
static uint64_t chain_tensor(uint64_t h, int tag, int layer, int type, int64_t rows,
                             int64_t cols, const void *p, size_t n) {
    unsigned char item[7 * 8];
    const uint64_t f[7] = {(uint64_t)tag, (uint64_t)(int64_t)layer, (uint64_t)(int64_t)type,
                           (uint64_t)rows, (uint64_t)cols, (uint64_t)n,
                           p ? XXH3_64bits(p, n) : 0};
    for (int i = 0; i < 7; i++) put_u64(item + 8 * i, f[i]);
    return XXH3_64bits_withSeed(item, sizeof item, h);
}

static uint64_t chain_matrix(uint64_t h, int tag, int layer, const rd_matrix *m) {
    return chain_tensor(h, tag, layer, (int)m->type, m->rows, m->cols, m->data,
                        (size_t)m->rows * m->row_bytes);
}

static uint64_t chain_vector(uint64_t h, int tag, int layer, const float *v, int dim) {
    return chain_tensor(h, tag, layer, (int)RD_DTYPE_F32, 1, dim, v, (size_t)dim * sizeof(float));
}

static uint64_t chain_config(uint64_t h, const rd_config *c, int tied) {
    const int64_t fields[] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                              c->vocab_size, c->seq_len, (int)c->rope_layout, tied};
    enum { NF = sizeof fields / sizeof fields[0] };
    unsigned char b[(NF + 2) * 8];
    for (int i = 0; i < NF; i++) put_u64(b + 8 * i, (uint64_t)fields[i]);
    uint32_t eps, theta;
    memcpy(&eps, &c->norm_eps, sizeof eps);
    memcpy(&theta, &c->rope_theta, sizeof theta);
    put_u64(b + 8 * NF, eps);
    put_u64(b + 8 * (NF + 1), theta);
    return XXH3_64bits_withSeed(b, sizeof b, h);
}

/* The full computation, reading every weight byte once. */
static uint64_t fingerprint_all(const rd_model *m) {
    static const char scheme[] = "redit-fingerprint xxh3-64 all-bytes";
    const rd_config *c = &m->file.cfg;
    const rd_weights *w = &m->file.w;
    uint64_t h = XXH3_64bits(scheme, sizeof scheme - 1);
    h = chain_config(h, c, w->tied_classifier);
    h = chain_matrix(h, T_EMB, -1, &w->tok_embeddings);
    for (int l = 0; w->layers && l < c->n_layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        h = chain_vector(h, T_ATTN_NORM, l, L->attn_norm, c->dim);
        const rd_matrix *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        const int tags[] = {T_WQ, T_WK, T_WV, T_WO, T_W1, T_W2, T_W3};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
            h = chain_matrix(h, tags[i], l, mats[i]);
        h = chain_vector(h, T_FFN_NORM, l, L->ffn_norm, c->dim);
        /* biases of merged models (redit export --format merged): a base with edits folded
         * in is another model */
        if (L->wo_bias) h = chain_vector(h, T_WO_BIAS, l, L->wo_bias, c->dim);
        if (L->w2_bias) h = chain_vector(h, T_W2_BIAS, l, L->w2_bias, c->dim);
    }
    h = chain_vector(h, T_FINAL_NORM, -1, w->final_norm, c->dim);
    if (!w->tied_classifier) h = chain_matrix(h, T_CLASSIFIER, -1, &w->classifier);
    return h;
}

/* ---- the cache: $XDG_CACHE_HOME/redit/fingerprints ----------------------------------- */

/* One line per model file: "<file key> <fingerprint>", 16 lower-case hex digits each,
 * after a first line naming the format; the newest entries last, at most CACHE_ENTRIES of
 * them. A line that does not have this form is ignored, so is a file that does not start
 * with the format line (a damaged cache costs one re-hash, nothing else). */
#define CACHE_HEADER "redit-fingerprint-cache 1\n"
#define CACHE_ENTRIES 256
#define CACHE_LINE 34 /* 16 + 1 + 16 + '\n' */

/* The cache folder into buf (cap bytes); -1 when the cache is off (REDIT_FINGERPRINT_CACHE
 * set to "0" or "off") or there is neither $XDG_CACHE_HOME nor $HOME. */
static int cache_dir(char *buf, size_t cap) {
    const char *off = getenv("REDIT_FINGERPRINT_CACHE");
    if (off && (!strcmp(off, "0") || !strcmp(off, "off"))) return -1;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(buf, cap, "%s/redit", xdg);
    else if (home && *home) n = snprintf(buf, cap, "%s/.cache/redit", home);
    else return -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int parse_hex16(const char *s, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        const char ch = s[i];
        int d;
        if (ch >= '0' && ch <= '9') d = ch - '0';
        else if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
        else return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* Reads the cache's entries (keys[i], fps[i], oldest first) into the arrays (CACHE_ENTRIES
 * each); returns how many. A missing, unreadable or damaged file gives what it validly
 * holds, maybe nothing. */
static int cache_read(const char *file, uint64_t *keys, uint64_t *fps) {
    FILE *f = fopen(file, "rb");
    if (!f) return 0;
    char line[64];
    int n = 0;
    if (!fgets(line, sizeof line, f) || strcmp(line, CACHE_HEADER)) {
        fclose(f);
        return 0;
    }
    /* at most CACHE_ENTRIES lines are read: a huge file costs no more */
    for (int read = 0; read < CACHE_ENTRIES && fgets(line, sizeof line, f); read++) {
        uint64_t k, v;
        if (strlen(line) != CACHE_LINE || line[16] != ' ' || line[33] != '\n' ||
            parse_hex16(line, &k) || parse_hex16(line + 17, &v))
            continue;
        keys[n] = k;
        fps[n] = v;
        n++;
    }
    fclose(f);
    return n;
}

static int cache_lookup(uint64_t key, uint64_t *fp) {
    char dir[4096], file[4200];
    if (cache_dir(dir, sizeof dir)) return -1;
    snprintf(file, sizeof file, "%s/fingerprints", dir);
    uint64_t keys[CACHE_ENTRIES], fps[CACHE_ENTRIES];
    const int n = cache_read(file, keys, fps);
    for (int i = n - 1; i >= 0; i--)
        if (keys[i] == key) {
            *fp = fps[i];
            return 0;
        }
    return -1;
}

/* mkdir -p for the cache folder (mode 0700: it is the user's). */
static int make_dirs(char *dir) {
    for (char *p = dir + 1;; p++) {
        const char ch = *p;
        if (ch != '/' && ch != '\0') continue;
        *p = '\0';
        const int rc = mkdir(dir, 0700);
        *p = ch;
        if (rc && errno != EEXIST) return -1;
        if (!ch) return 0;
    }
}

/* Adds (key, fp) as the newest entry, dropping an older one of the same key and the oldest
 * beyond CACHE_ENTRIES; written atomically. Best effort: a cache that cannot be written
 * (read-only home, full disk) only means hashing again next time. */
static void cache_store(uint64_t key, uint64_t fp) {
    char dir[4096], file[4200];
    if (cache_dir(dir, sizeof dir) || make_dirs(dir)) return;
    snprintf(file, sizeof file, "%s/fingerprints", dir);
    uint64_t keys[CACHE_ENTRIES], fps[CACHE_ENTRIES];
    const int n = cache_read(file, keys, fps);
    int first = 0, kept = 0;
    for (int i = 0; i < n; i++) kept += keys[i] != key;
    if (kept >= CACHE_ENTRIES) first = 1; /* drop the oldest other entry */
    rd_atomic_file af;
    rd_error err = {{0}};
    if (rd_atomic_file_open(&af, file, &err)) return;
    int bad = rd_atomic_file_write(&af, CACHE_HEADER, strlen(CACHE_HEADER));
    char line[CACHE_LINE + 1];
    for (int i = 0, skipped = 0; i < n && !bad; i++) {
        if (keys[i] == key) continue;
        if (skipped < first) {
            skipped++;
            continue;
        }
        snprintf(line, sizeof line, "%016" PRIx64 " %016" PRIx64 "\n", keys[i], fps[i]);
        bad = rd_atomic_file_write(&af, line, CACHE_LINE);
    }
    snprintf(line, sizeof line, "%016" PRIx64 " %016" PRIx64 "\n", key, fp);
    if (!bad) bad = rd_atomic_file_write(&af, line, CACHE_LINE);
    if (bad) rd_atomic_file_abort(&af);
    else rd_atomic_file_commit(&af, &err);
}

/* ---- the file key ----------------------------------------------------------------------- */

static uint64_t chain_stat(uint64_t h, const struct stat *st, const char *name) {
    unsigned char b[7 * 8];
    const uint64_t f[7] = {(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
                           (uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec,
                           (uint64_t)st->st_ctim.tv_sec, (uint64_t)st->st_ctim.tv_nsec};
    for (int i = 0; i < 7; i++) put_u64(b + 8 * i, f[i]);
    h = XXH3_64bits_withSeed(b, sizeof b, h);
    return name ? XXH3_64bits_withSeed(name, strlen(name) + 1, h) : h;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A folder's key: its regular files' (name, identity), in name order. */
static uint64_t folder_key(const char *path, uint64_t h) {
    DIR *d = opendir(path);
    if (!d) return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int ok = 1;
    for (struct dirent *e; ok && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        /* a model folder holds a handful of files: 100,000 is no model's */
        if (n >= 100000 || rd_array_reserve(&names, &cap, n + 1, sizeof *names)) ok = 0;
        else if (!(names[n] = strdup(e->d_name))) ok = 0;
        else n++;
    }
    closedir(d);
    if (ok && n > 1) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n && ok; i++) {
        char file[8192];
        struct stat st;
        if (snprintf(file, sizeof file, "%s/%s", path, names[i]) >= (int)sizeof file ||
            stat(file, &st))
            ok = 0;
        else if (S_ISREG(st.st_mode))
            h = chain_stat(h, &st, names[i]);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return ok ? h : 0;
}

uint64_t rd_model_file_key(const char *path) {
    static const char scheme[] = "redit-file-key 1"; /* bump when the loaders' weights change */
    struct stat st;
    if (!path || stat(path, &st)) return 0;
    uint64_t h = XXH3_64bits(scheme, sizeof scheme - 1);
    if (S_ISREG(st.st_mode)) h = chain_stat(h, &st, NULL);
    else if (S_ISDIR(st.st_mode)) h = folder_key(path, chain_stat(h, &st, NULL));
    else return 0;
    return h ? h : 1;
}

uint64_t rd_model_fingerprint(const rd_model *m) {
    /* the cache holds the weights as loaded: a trainable model (f32 master weights that
     * training changes) is always hashed */
    const int cacheable = m->file_key != 0 && !m->params;
    uint64_t fp;
    if (cacheable && cache_lookup(m->file_key, &fp) == 0) return fp;
    fp = fingerprint_all(m);
    if (cacheable) cache_store(m->file_key, fp);
    return fp;
}

/* ---- the sampled fingerprint of redit before the full one ------------------------------ */

/* FNV-1a 64 over the config fields and, for every matrix (with its type and shape) and
 * norm vector, its byte size and a sample of its bytes: all of them up to 4096 bytes, else
 * 32 evenly spaced windows of 128 bytes (the first at the start, the last at the end). A
 * change confined to bytes between the windows is not detected: kept only to recognise
 * files written with it. */
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

uint64_t rd_model_fingerprint_sampled(const rd_model *m) {
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
        if (L->wo_bias) h = fnv_sampled(h, L->wo_bias, norm_bytes);
        if (L->w2_bias) h = fnv_sampled(h, L->w2_bias, norm_bytes);
    }
    h = fnv_sampled(h, w->final_norm, norm_bytes);
    if (!w->tied_classifier) h = fnv_matrix(h, &w->classifier);
    return h;
}

rd_fp_match rd_model_fingerprint_match(const rd_model *m, const char *hex, int accept_sampled) {
    uint64_t v;
    if (!hex || strlen(hex) != 16 || parse_hex16(hex, &v)) return RD_FP_OTHER;
    if (v == rd_model_fingerprint(m)) return RD_FP_SAME;
    if (accept_sampled && v == rd_model_fingerprint_sampled(m)) return RD_FP_SAME_SAMPLED;
    return RD_FP_OTHER;
}
