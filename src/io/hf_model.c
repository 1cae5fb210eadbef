/* Hugging Face model folders: config.json + model.safetensors (or shards listed in
 * model.safetensors.index.json) + tokenizer.json (+ tokenizer_config.json), or else
 * SentencePiece's tokenizer.model. Architectures "llama" and "mistral"; F32, F16 and BF16
 * tensors, used in place in the read-only mappings of the safetensors files (like GGUF's),
 * which the weights keep; only a tensor whose data is not aligned for its type (no known
 * writer makes one) is copied, and F16/BF16 norms are widened to f32. Hugging Face
 * checkpoints rotate halves (rotate_half), so the configuration says RD_ROPE_HALF and Q/K
 * rows stay as stored. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io_internal.h"
#include "redit/model_file.h"
#include "redit/safetensors.h"

#define MAX_SHARDS 256
#define MAX_JSON_BYTES (64u << 20)

/* Reads a whole (small) text file; NULL with *err naming it. */
static char *read_text(const char *path, rd_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        rd_error_set(err, "%s: cannot open", path);
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = n >= 0 && (unsigned long)n <= MAX_JSON_BYTES ? malloc((size_t)n + 1) : NULL;
    if (!s || fread(s, 1, (size_t)n, fp) != (size_t)n) {
        rd_error_set(err, "%s: %s", path, s ? "read error" : "too large or unreadable");
        free(s);
        fclose(fp);
        return NULL;
    }
    s[n] = 0;
    fclose(fp);
    return s;
}

static cJSON *read_json(const char *path, rd_error *err) {
    char *text = read_text(path, err);
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        rd_error_set(err, "%s: not a JSON object", path);
        return NULL;
    }
    return j;
}

/* Integer field: required (def < 0 means required) or default. */
static int json_int(const cJSON *j, const char *key, long def, const char *path, int *out,
                    rd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        if (def < 0) return rd_error_set(err, "%s: \"%s\" is missing", path, key);
        *out = (int)def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > INT_MAX)
        return rd_error_set(err, "%s: \"%s\" must be a non-negative integer", path, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int json_float(const cJSON *j, const char *key, double def, const char *path, float *out,
                      rd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        *out = (float)def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return rd_error_set(err, "%s: \"%s\" must be a finite number", path, key);
    *out = (float)v->valuedouble;
    return 0;
}

static int read_config(const char *path, rd_config *c, int *tied, rd_error *err) {
    cJSON *j = read_json(path, err);
    if (!j) return -1;
    int rc = -1;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (!cJSON_IsString(type) ||
        (strcmp(type->valuestring, "llama") && strcmp(type->valuestring, "mistral"))) {
        rd_error_set(err, "%s: model_type %s%s%s is not one redit runs (llama, mistral)", path,
                     cJSON_IsString(type) ? "\"" : "",
                     cJSON_IsString(type) ? type->valuestring : "(missing)",
                     cJSON_IsString(type) ? "\"" : "");
        goto done;
    }
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling)) {
        rd_error_set(err, "%s: rope_scaling is not supported (only plain RoPE)", path);
        goto done;
    }
    memset(c, 0, sizeof *c);
    int head_dim = 0;
    if (json_int(j, "hidden_size", -1, path, &c->dim, err) ||
        json_int(j, "intermediate_size", -1, path, &c->hidden_dim, err) ||
        json_int(j, "num_hidden_layers", -1, path, &c->n_layers, err) ||
        json_int(j, "num_attention_heads", -1, path, &c->n_heads, err) ||
        json_int(j, "num_key_value_heads", c->n_heads, path, &c->n_kv_heads, err) ||
        json_int(j, "vocab_size", -1, path, &c->vocab_size, err) ||
        json_int(j, "max_position_embeddings", 2048, path, &c->seq_len, err) ||
        json_int(j, "head_dim", 0, path, &head_dim, err) ||
        json_float(j, "rms_norm_eps", 1e-6, path, &c->norm_eps, err) ||
        json_float(j, "rope_theta", 10000.0, path, &c->rope_theta, err))
        goto done;
    c->rope_layout = RD_ROPE_HALF;
    if (rd_config_validate(c, path, err)) goto done;
    if (head_dim && head_dim != c->dim / c->n_heads) {
        rd_error_set(err, "%s: head_dim %d differs from hidden_size / num_attention_heads = %d",
                     path, head_dim, c->dim / c->n_heads);
        goto done;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    *tied = cJSON_IsTrue(tie);
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

/* The open shards and a tensor lookup across them. */
typedef struct shards {
    rd_st_file *files[MAX_SHARDS];
    int n;
} shards;

static void shards_close(shards *s) {
    for (int i = 0; i < s->n; i++) rd_st_close(s->files[i]);
    s->n = 0;
}

static int open_shards(const char *dir, shards *s, rd_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!(s->files[0] = rd_st_open(path, err))) return -1;
        s->n = 1;
        return 0;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    cJSON *idx = read_json(path, err);
    if (!idx) return rd_error_set(err, "%s: no model.safetensors nor model.safetensors.index.json", dir);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(idx);
        return rd_error_set(err, "%s: \"weight_map\" is missing or not an object", path);
    }
    /* the distinct shard names, in first-seen order */
    const char *names[MAX_SHARDS];
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..")) {
            cJSON_Delete(idx);
            return rd_error_set(err, "%s: weight_map entry \"%s\" is not a file name in the folder",
                                path, e->string ? e->string : "?");
        }
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = !strcmp(names[i], e->valuestring);
        if (seen) continue;
        if (n == MAX_SHARDS) {
            cJSON_Delete(idx);
            return rd_error_set(err, "%s: more than %d shards", path, MAX_SHARDS);
        }
        names[n++] = e->valuestring;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char shard[4096];
        snprintf(shard, sizeof shard, "%s/%s", dir, names[i]);
        if (!(s->files[s->n] = rd_st_open(shard, err))) rc = -1;
        else s->n++;
    }
    cJSON_Delete(idx);
    if (rc) shards_close(s);
    return rc;
}

static const rd_st_tensor *find(const shards *s, const char *name) {
    for (int i = 0; i < s->n; i++) {
        const rd_st_tensor *t = rd_st_find(s->files[i], name);
        if (t) return t;
    }
    return NULL;
}

/* Tensor `name` of shape (rows, cols) — cols 0 for a vector — in its own type: in place in
 * the shard's mapping (which the weights hold) when its data is aligned for its element
 * type, as every writer lays it out; else copied into an aligned buffer owned by w. */
static const void *take(const shards *s, rd_weights *w, const char *dir, const char *name,
                        int64_t rows, int64_t cols, rd_dtype *type, rd_error *err) {
    const rd_st_tensor *t = find(s, name);
    if (!t) {
        rd_error_set(err, "%s: tensor \"%s\" is missing", dir, name);
        return NULL;
    }
    const int want_dims = cols ? 2 : 1;
    if (!t->has_rd_dtype || (t->type != RD_DTYPE_F32 && t->type != RD_DTYPE_F16 &&
                             t->type != RD_DTYPE_BF16)) {
        rd_error_set(err, "%s: tensor \"%s\" has type %s; redit reads F32, F16 and BF16", dir,
                     name, t->dtype);
        return NULL;
    }
    if (t->n_dims != want_dims || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
        if (cols)
            rd_error_set(err, "%s: tensor \"%s\" has the wrong shape for the config (expected "
                              "[%lld, %lld])", dir, name, (long long)rows, (long long)cols);
        else
            rd_error_set(err, "%s: tensor \"%s\" has the wrong shape for the config (expected "
                              "[%lld])", dir, name, (long long)rows);
        return NULL;
    }
    *type = t->type;
    if ((uintptr_t)t->data % rd_dtype_info_of(t->type)->block_bytes == 0) return t->data;
    void *p = rd_weights_alloc(w, t->n_bytes, err);
    if (p) memcpy(p, t->data, t->n_bytes);
    return p;
}

static int take_matrix(const shards *s, rd_weights *w, const char *dir, const char *name,
                       int64_t rows, int64_t cols, rd_matrix *m, rd_error *err) {
    rd_dtype type;
    const void *p = take(s, w, dir, name, rows, cols, &type, err);
    return p ? rd_matrix_init(m, type, p, rows, cols, err) : -1;
}

/* Norm weights are read as f32 by the forward pass: F32 ones are used in place, F16/BF16
 * ones (dim values each) widened into owned buffers — the only copies of a folder whose
 * tensors are aligned. */
static int take_norm(const shards *s, rd_weights *w, const char *dir, const char *name, int d,
                     const float **out, rd_error *err) {
    rd_dtype type;
    const void *p = take(s, w, dir, name, d, 0, &type, err);
    if (!p) return -1;
    if (type == RD_DTYPE_F32) {
        *out = p;
        return 0;
    }
    float *f = rd_weights_alloc(w, (size_t)d * sizeof(float), err);
    if (!f) return -1;
    rd_dtype_info_of(type)->to_f32(p, f, (size_t)d);
    *out = f;
    return 0;
}

static int load_weights(const shards *s, const char *dir, const rd_config *c, int tied,
                        rd_weights *w, rd_error *err) {
    const int d = c->dim, kv = rd_config_kv_dim(c), h = c->hidden_dim, V = c->vocab_size;
    if (take_matrix(s, w, dir, "model.embed_tokens.weight", V, d, &w->tok_embeddings, err))
        return -1;
    if (!(w->layers = calloc((size_t)c->n_layers, sizeof *w->layers)))
        return rd_error_set(err, "out of memory");
    char name[256];
#define LAYER(fmt) (snprintf(name, sizeof name, "model.layers.%d." fmt, l), name)
    for (int l = 0; l < c->n_layers; l++) {
        rd_layer_weights *L = &w->layers[l];
        if (take_norm(s, w, dir, LAYER("input_layernorm.weight"), d, &L->attn_norm, err) ||
            take_matrix(s, w, dir, LAYER("self_attn.q_proj.weight"), d, d, &L->wq, err) ||
            take_matrix(s, w, dir, LAYER("self_attn.k_proj.weight"), kv, d, &L->wk, err) ||
            take_matrix(s, w, dir, LAYER("self_attn.v_proj.weight"), kv, d, &L->wv, err) ||
            take_matrix(s, w, dir, LAYER("self_attn.o_proj.weight"), d, d, &L->wo, err) ||
            take_norm(s, w, dir, LAYER("post_attention_layernorm.weight"), d, &L->ffn_norm, err) ||
            take_matrix(s, w, dir, LAYER("mlp.gate_proj.weight"), h, d, &L->w1, err) ||
            take_matrix(s, w, dir, LAYER("mlp.down_proj.weight"), d, h, &L->w2, err) ||
            take_matrix(s, w, dir, LAYER("mlp.up_proj.weight"), h, d, &L->w3, err))
            return -1;
    }
#undef LAYER
    if (take_norm(s, w, dir, "model.norm.weight", d, &w->final_norm, err)) return -1;
    /* a checkpoint without lm_head ties the classifier whatever the config says */
    w->tied_classifier = tied || !find(s, "lm_head.weight");
    if (w->tied_classifier) {
        w->classifier = w->tok_embeddings;
        return 0;
    }
    return take_matrix(s, w, dir, "lm_head.weight", V, d, &w->classifier, err);
}

int rd_hf_load(const char *dir, rd_model_file *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    out->format = RD_FORMAT_SAFETENSORS;
    char path[4096], tok_cfg[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int tied = 0;
    if (read_config(path, &out->cfg, &tied, err)) return -1;
    shards s = {.n = 0};
    if (open_shards(dir, &s, err)) return -1;
    /* the weights hold the shards' mappings (tensors are used in place); the file objects,
     * closed below, keep only their parsed headers */
    int rc = 0;
    for (int i = 0; i < s.n && rc == 0; i++) {
        size_t size;
        void *map = rd_st_take_map(s.files[i], &size);
        if (map && rd_weights_adopt_map(&out->w, map, size, err)) rc = -1;
    }
    if (rc == 0) rc = load_weights(&s, dir, &out->cfg, tied, &out->w, err);
    shards_close(&s);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        snprintf(tok_cfg, sizeof tok_cfg, "%s/tokenizer_config.json", dir);
        struct stat st;
        if (stat(path, &st) == 0) {
            if (rd_vocab_load_hf(path, stat(tok_cfg, &st) == 0 ? tok_cfg : NULL, &out->vocab, err))
                rc = -1;
            else if (out->vocab.n > out->cfg.vocab_size)
                rc = rd_error_set(err, "%s: %d pieces, more than the model's vocabulary of %d",
                                  path, out->vocab.n, out->cfg.vocab_size);
        } else { /* no tokenizer.json: SentencePiece's tokenizer.model, when there is one */
            snprintf(path, sizeof path, "%s/tokenizer.model", dir);
            if (stat(path, &st) == 0 &&
                rd_vocab_load_spm(path, out->cfg.vocab_size, &out->vocab, err))
                rc = -1;
        }
    }
    if (rc) {
        rd_model_file_release(out);
        return -1;
    }
    const char *base = strrchr(dir, '/');
    snprintf(out->name, sizeof out->name, "%s", base && base[1] ? base + 1 : dir);
    return 0;
}
