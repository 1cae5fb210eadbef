/* Edit files: saving and loading RED edit sets (see rd_edits_save / rd_edits_load in
 * include/redit/edits.h).
 *
 * Edit files are safetensors files (src/io/safetensors.c): one F32 tensor of shape (dim)
 * per vector, named "layers.{l}.{attn|ffn}.{scale|bias}" — the layer number, a site word
 * and a kind word, as ../shared/tools/torch_ref/llama_red_ref.py's loader expects — and
 * these string metadata:
 *   format "redit-red", version "1", base_model (the model's name), base_fingerprint
 *   (rd_model_fingerprint as 16 lower-case hex digits), base_fingerprint_kind ("xxh3-64":
 *   the full fingerprint; files without it were written by earlier versions with the
 *   sampled one, rd_model_fingerprint_sampled, still accepted), sites ("attn"/"ffn"/"both"),
 *   layers (canonical list), dim, n_layers, scale and bias ("true"/"false"), training (the
 *   caller's JSON, only when given).
 * LoRA and IA3 sets (version 2, which earlier redits refuse as newer) carry "method" ("lora"
 * or "ia3") instead of sites/scale/bias, and LoRA's rank, lora_alpha, lora_targets ("q,v")
 * and lora_dropout; their tensors are those of rd_edit_tensor ("layers.{l}.q.lora_a" [r, in],
 * ".lora_b" [out, r], "layers.{l}.{k|v|ffn}.ia3" [n]). A file without "method" is RED.
 * The loader refuses a file that does not fit the model (width, layer count, a tensor shape
 * the model's projections do not give, fingerprint unless forced), a missing tensor, and any
 * tensor the metadata does not declare. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/edits.h"
#include "redit/export.h"
#include "redit/safetensors.h"
#include "redit/util.h"

#define EDITS_FORMAT "redit-red"
#define EDITS_VERSION 1      /* RED files: as written since the first version */
#define EDITS_VERSION_METHODS 2 /* LoRA and IA3 files */
#define FINGERPRINT_KIND "xxh3-64" /* base_fingerprint is rd_model_fingerprint */

/* ---- saving ----------------------------------------------------------------------- */

typedef struct save_ctx {
    const rd_edits *e;
    rd_st_writer *w;
    rd_error *err;
} save_ctx;

static int save_tensor(save_ctx *s, const rd_edit_tensor *t) {
    return rd_st_writer_add(s->w, t->name, RD_DTYPE_F32, t->shape, t->n_dims,
                            rd_edits_params_const(s->e) + t->offset, s->err);
}

static int save_metadata(rd_st_writer *w, const rd_edits *e, const rd_model *m,
                         const char *training_json, rd_error *err) {
    char fp[32], dim[16], nl[16], ver[16], rank[16], alpha[32], targets[64], drop[32];
    const int method = rd_edits_method(e);
    snprintf(fp, sizeof fp, "%016" PRIx64, rd_model_fingerprint(m));
    snprintf(dim, sizeof dim, "%d", rd_edits_dim(e));
    snprintf(nl, sizeof nl, "%d", rd_edits_n_layers(e));
    snprintf(ver, sizeof ver, "%d", method == RD_METHOD_RED ? EDITS_VERSION : EDITS_VERSION_METHODS);
    snprintf(rank, sizeof rank, "%d", rd_edits_rank(e));
    rd_format_double(rd_edits_lora_alpha(e), alpha, sizeof alpha);
    rd_lora_targets_text(rd_edits_lora_targets(e), targets, sizeof targets);
    rd_format_double(rd_edits_lora_dropout(e), drop, sizeof drop);
    const int red = method == RD_METHOD_RED, lora = method == RD_METHOD_LORA;
    const char *kv[][2] = {
        {"format", EDITS_FORMAT},    {"version", ver},
        {"base_model", m->file.name}, {"base_fingerprint", fp},
        {"base_fingerprint_kind", FINGERPRINT_KIND},
        {"method", red ? NULL : rd_method_name(method)},
        {"sites", red ? rd_sites_name(rd_edits_sites(e)) : NULL}, {"layers", rd_edits_layers_text(e)},
        {"dim", dim},                {"n_layers", nl},
        {"scale", !red ? NULL : rd_edits_has_scale(e) ? "true" : "false"},
        {"bias", !red ? NULL : rd_edits_has_bias(e) ? "true" : "false"},
        {"rank", lora ? rank : NULL}, {"lora_alpha", lora ? alpha : NULL},
        {"lora_targets", lora ? targets : NULL}, {"lora_dropout", lora ? drop : NULL},
        {"training", training_json}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kv[i][1] && rd_st_writer_meta(w, kv[i][0], kv[i][1], err)) return -1;
    return 0;
}

int rd_edits_save(const rd_edits *e, const rd_model *m, const char *training_json,
                  const char *path, rd_error *err) {
    const rd_config *cfg = rd_model_config(m);
    if (cfg->dim != rd_edits_dim(e) || cfg->n_layers != rd_edits_n_layers(e))
        return rd_error_set(err, "%s: the edits (width %d, %d layers) do not fit the model "
                                 "(width %d, %d layers)", path, rd_edits_dim(e), rd_edits_n_layers(e), cfg->dim,
                            cfg->n_layers);
    if (training_json) {
        cJSON *j = cJSON_Parse(training_json);
        cJSON_Delete(j);
        if (!j) return rd_error_set(err, "%s: the training options are not valid JSON", path);
    }
    rd_st_writer *w = rd_st_writer_new(err);
    if (!w) return -1;
    save_ctx s = {e, w, err};
    int rc = save_metadata(w, e, m, training_json, err);
    for (int i = 0; !rc && i < rd_edits_tensor_count(e); i++)
        rc = save_tensor(&s, rd_edits_tensor_at(e, i));
    if (!rc) rc = rd_st_writer_commit(w, path, err);
    if (rc && err && strncmp(err->msg, path, strlen(path)) != 0) rd_error_prefix(err, "%s", path);
    rd_st_writer_free(w);
    return rc ? -1 : 0;
}

/* ---- loading ---------------------------------------------------------------------- */

/* A metadata integer in [lo, hi]. */
static int meta_int(const rd_st_file *f, const char *path, const char *key, int lo, int hi,
                    int *out, rd_error *err) {
    const char *v = rd_st_metadata(f, key);
    if (!v) return rd_error_set(err, "%s: the edit file has no \"%s\" metadata", path, key);
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi)
        return rd_error_set(err, "%s: metadata \"%s\" = \"%.40s\" is not an integer in [%d, %d]",
                            path, key, v, lo, hi);
    *out = (int)n;
    return 0;
}

static int meta_bool(const rd_st_file *f, const char *path, const char *key, int *out,
                     rd_error *err) {
    const char *v = rd_st_metadata(f, key);
    if (!v) return rd_error_set(err, "%s: the edit file has no \"%s\" metadata", path, key);
    if (!strcmp(v, "true") || !strcmp(v, "1")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0")) *out = 0;
    else
        return rd_error_set(err, "%s: metadata \"%s\" = \"%.40s\" is not true or false", path,
                            key, v);
    return 0;
}

/* Format, version, and the fit of width and layer count. */
static int check_header(const rd_st_file *f, const char *path, const rd_config *cfg,
                        rd_error *err) {
    const char *format = rd_st_metadata(f, "format");
    if (!format || strcmp(format, EDITS_FORMAT) != 0)
        return rd_error_set(err, "%s: not a redit edit file (metadata \"format\" is %s%.40s%s, "
                                 "expected \"" EDITS_FORMAT "\")", path, format ? "\"" : "",
                            format ? format : "missing", format ? "\"" : "");
    int version, dim, n_layers;
    if (meta_int(f, path, "version", 1, INT_MAX, &version, err)) return -1;
    if (version > EDITS_VERSION_METHODS)
        return rd_error_set(err, "%s: edit file version %d is newer than this redit reads "
                                 "(version %d)", path, version, EDITS_VERSION_METHODS);
    if (meta_int(f, path, "dim", 1, RD_EDITS_MAX_DIM, &dim, err) ||
        meta_int(f, path, "n_layers", 1, RD_EDITS_MAX_LAYERS, &n_layers, err))
        return -1;
    if (dim != cfg->dim)
        return rd_error_set(err, "%s: the edits are for a model of width %d, but this model's "
                                 "width is %d", path, dim, cfg->dim);
    if (n_layers != cfg->n_layers)
        return rd_error_set(err, "%s: the edits are for a model with %d layers, but this model "
                                 "has %d", path, n_layers, cfg->n_layers);
    return 0;
}

/* Files with base_fingerprint_kind carry the full fingerprint; files without it (earlier
 * versions) the sampled one, or the full one: both are accepted, *match says which. */
static int check_fingerprint(const rd_st_file *f, const char *path, const rd_model *m,
                             rd_fp_match *match, rd_error *err) {
    const char *theirs = rd_st_metadata(f, "base_fingerprint");
    const char *kind = rd_st_metadata(f, "base_fingerprint_kind");
    const char *base = rd_st_metadata(f, "base_model");
    if (kind && strcmp(kind, FINGERPRINT_KIND))
        return rd_error_set(err, "%s: the edits' base-model fingerprint is of kind \"%.20s\", "
                                 "which this redit does not know (it writes \"%s\"); --force "
                                 "skips this check", path, kind, FINGERPRINT_KIND);
    *match = rd_model_fingerprint_match(m, theirs, kind == NULL);
    if (*match != RD_FP_OTHER) return 0;
    char mine[32];
    snprintf(mine, sizeof mine, "%016" PRIx64, rd_model_fingerprint(m));
    return rd_error_set(err, "%s: the edits were made for another model (base model \"%.60s\", "
                             "fingerprint %.20s) but this model (\"%.60s\") has fingerprint %s; "
                             "--force skips this check", path, base ? base : "?",
                        theirs ? theirs : "missing", m->file.name, mine);
}

/* The edit set the metadata declares, s = 1 and b = 0. */
/* A metadata number (finite, in [lo, hi]). */
static int meta_float(const rd_st_file *f, const char *path, const char *key, double lo,
                      double hi, float *out, rd_error *err) {
    const char *v = rd_st_metadata(f, key);
    if (!v) return rd_error_set(err, "%s: the edit file has no \"%s\" metadata", path, key);
    char *end;
    errno = 0;
    const double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        return rd_error_set(err, "%s: metadata \"%s\" = \"%.40s\" is not a number in [%g, %g]",
                            path, key, v, lo, hi);
    *out = (float)x;
    return 0;
}

/* The LoRA or IA3 set the metadata declares (method given), at its initial values. */
static rd_edits *method_from_metadata(const rd_st_file *f, const char *path, const char *method,
                                      const rd_config *cfg, rd_error *err) {
    rd_edit_spec spec = {.layers = rd_st_metadata(f, "layers")};
    if (rd_method_from_name(method, &spec.method) || spec.method == RD_METHOD_RED) {
        rd_error_set(err, "%s: metadata \"method\" is \"%.40s\", not lora or ia3 (RED files "
                          "have no \"method\")", path, method);
        return NULL;
    }
    if (!spec.layers) {
        rd_error_set(err, "%s: the edit file has no \"layers\" metadata", path);
        return NULL;
    }
    if (spec.method == RD_METHOD_LORA) {
        const char *targets = rd_st_metadata(f, "lora_targets");
        if (meta_int(f, path, "rank", 1, RD_LORA_MAX_RANK, &spec.rank, err) ||
            meta_float(f, path, "lora_alpha", 1e-30, 1e30, &spec.lora_alpha, err) ||
            meta_float(f, path, "lora_dropout", 0.0, 0.999999, &spec.lora_dropout, err))
            return NULL;
        if (!targets) {
            rd_error_set(err, "%s: the edit file has no \"lora_targets\" metadata", path);
            return NULL;
        }
        if (rd_lora_targets_parse(targets, &spec.lora_targets, err)) {
            rd_error_prefix(err, "%s: metadata \"lora_targets\"", path);
            return NULL;
        }
    }
    rd_edits *e = rd_edits_new(cfg, &spec, err);
    if (!e) rd_error_prefix(err, "%s: metadata", path);
    return e;
}

static rd_edits *edits_from_metadata(const rd_st_file *f, const char *path,
                                     const rd_config *cfg, rd_error *err) {
    const char *method = rd_st_metadata(f, "method");
    if (method) return method_from_metadata(f, path, method, cfg, err);
    rd_edit_spec spec = {0};
    const char *sites = rd_st_metadata(f, "sites");
    if (!sites || rd_sites_from_name(sites, &spec.sites)) {
        rd_error_set(err, "%s: metadata \"sites\" is %s%.40s%s, not attn, ffn or both", path,
                     sites ? "\"" : "", sites ? sites : "missing", sites ? "\"" : "");
        return NULL;
    }
    spec.layers = rd_st_metadata(f, "layers");
    if (!spec.layers) {
        rd_error_set(err, "%s: the edit file has no \"layers\" metadata", path);
        return NULL;
    }
    if (meta_bool(f, path, "scale", &spec.scale, err) ||
        meta_bool(f, path, "bias", &spec.bias, err))
        return NULL;
    rd_edits *e = rd_edits_new(cfg, &spec, err);
    if (!e) rd_error_prefix(err, "%s: metadata", path);
    return e;
}

typedef struct load_ctx {
    rd_edits *e;
    const rd_st_file *f;
    const char *path;
    float *tmp; /* (largest tensor) aligned copy of the raw bytes */
    rd_error *err;
} load_ctx;

/* What the metadata declares, for messages. */
static void declared(const rd_edits *e, char *buf, size_t cap) {
    char targets[64];
    if (rd_edits_method(e) == RD_METHOD_LORA)
        snprintf(buf, cap, "LoRA rank %d on %s, layers %s", rd_edits_rank(e),
                 rd_lora_targets_text(rd_edits_lora_targets(e), targets, sizeof targets),
                 rd_edits_layers_text(e));
    else if (rd_edits_method(e) == RD_METHOD_IA3)
        snprintf(buf, cap, "IA3, layers %s", rd_edits_layers_text(e));
    else
        snprintf(buf, cap, "sites %s, layers %s, %s", rd_sites_name(rd_edits_sites(e)),
                 rd_edits_layers_text(e),
                 rd_edits_has_scale(e) && rd_edits_has_bias(e) ? "scale and bias"
                 : rd_edits_has_scale(e)                       ? "scale only" : "bias only");
}

static int load_tensor(load_ctx *c, const rd_edit_tensor *want) {
    const char *name = want->name;
    char what[160];
    const rd_st_tensor *t = rd_st_find(c->f, name);
    if (!t) {
        declared(c->e, what, sizeof what);
        return rd_error_set(c->err, "%s: tensor \"%s\" is missing (the metadata declares %s)",
                            c->path, name, what);
    }
    if (!t->has_rd_dtype)
        return rd_error_set(c->err, "%s: tensor \"%s\" has dtype %s (edit tensors are F32, F16 "
                                    "or BF16)", c->path, name, t->dtype);
    int shape_ok;
    if (want->n_dims == 1)
        shape_ok = t->n_elems == (uint64_t)want->shape[0] &&
                   (t->n_dims == 1 || (t->n_dims == 2 && t->shape[0] == 1));
    else
        shape_ok = t->n_dims == 2 && t->shape[0] == want->shape[0] &&
                   t->shape[1] == want->shape[1];
    if (!shape_ok) {
        char got[64] = "";
        size_t n = 0;
        for (int i = 0; i < t->n_dims && n < sizeof got; i++)
            n += (size_t)snprintf(got + n, sizeof got - n, "%s%" PRIu64, i ? ", " : "",
                                  (uint64_t)t->shape[i]);
        if (want->n_dims == 1)
            return rd_error_set(c->err, "%s: tensor \"%s\" has %" PRIu64 " elements in %d "
                                        "dimensions, expected shape (%" PRId64 ")", c->path, name,
                                t->n_elems, t->n_dims, want->shape[0]);
        return rd_error_set(c->err, "%s: tensor \"%s\" has shape [%s], expected [%" PRId64
                                    ", %" PRId64 "] (rank %d and this model's projection)",
                            c->path, name, got, want->shape[0], want->shape[1], rd_edits_rank(c->e));
    }
    float *dst = rd_edits_params(c->e) + want->offset;
    memcpy(c->tmp, t->data, t->n_bytes); /* the mapping gives no alignment guarantee */
    rd_dtype_info_of(t->type)->to_f32(c->tmp, dst, want->count);
    for (size_t j = 0; j < want->count; j++)
        if (!isfinite(dst[j]))
            return rd_error_set(c->err, "%s: tensor \"%s\" holds a non-finite value at index %zu",
                                c->path, name, j);
    return 0;
}

/* Refuses tensors the metadata does not declare (unknown names, or tensors of layers, sites,
 * kinds or projections that are not edited). */
static int check_no_extra(const rd_edits *e, const rd_st_file *f, const char *path,
                          rd_error *err) {
    for (int i = 0; i < rd_st_count(f); i++) {
        const char *name = rd_st_at(f, i)->name;
        int known = 0;
        for (int k = 0; k < rd_edits_tensor_count(e) && !known; k++)
            known = strcmp(rd_edits_tensor_at(e, k)->name, name) == 0;
        if (!known) {
            char what[160];
            declared(e, what, sizeof what);
            return rd_error_set(err, "%s: unexpected tensor \"%.80s\": the metadata declares %s",
                                path, name, what);
        }
    }
    return 0;
}

static rd_edits *load_from(const rd_st_file *f, const char *path, const rd_model *m, int force,
                           rd_fp_match *match, rd_error *err) {
    const rd_config *cfg = rd_model_config(m);
    if (check_header(f, path, cfg, err)) return NULL;
    rd_edits *e = edits_from_metadata(f, path, cfg, err);
    if (!e) return NULL;
    size_t largest = 1;
    for (int i = 0; i < rd_edits_tensor_count(e); i++)
        if (rd_edits_tensor_at(e, i)->count > largest) largest = rd_edits_tensor_at(e, i)->count;
    load_ctx c = {e, f, path, malloc(largest * sizeof(float)), err};
    int rc = c.tmp ? 0 : rd_error_set(err, "%s: out of memory", path);
    if (!rc && !force) rc = check_fingerprint(f, path, m, match, err);
    if (!rc) rc = check_no_extra(e, f, path, err);
    for (int i = 0; !rc && i < rd_edits_tensor_count(e); i++)
        rc = load_tensor(&c, rd_edits_tensor_at(e, i));
    free(c.tmp);
    if (rc) {
        rd_edits_free(e);
        return NULL;
    }
    return e;
}

rd_edits *rd_edits_load(const char *path, const rd_model *m, int force, char **training_json,
                        rd_error *err) {
    return rd_edits_load_match(path, m, force, training_json, NULL, err);
}

rd_edits *rd_edits_load_match(const char *path, const rd_model *m, int force,
                              char **training_json, rd_fp_match *match, rd_error *err) {
    rd_fp_match how = RD_FP_OTHER; /* stays so when forced */
    if (match) *match = RD_FP_OTHER;
    if (training_json) *training_json = NULL;
    if (rd_adapter_kind(path) != RD_ADAPTER_REDIT) /* a PEFT folder or a llama.cpp LoRA GGUF */
        return rd_edits_import(path, m, force, match, err);
    rd_st_file *f = rd_st_open(path, err);
    if (!f) return NULL;
    rd_edits *e = load_from(f, path, m, force, &how, err);
    if (e && match) *match = how;
    const char *training = e ? rd_st_metadata(f, "training") : NULL;
    if (e && training && training_json && !(*training_json = strdup(training))) {
        rd_edits_free(e);
        e = NULL;
        rd_error_set(err, "%s: out of memory", path);
    }
    rd_st_close(f);
    return e;
}


char *rd_edits_training_template(const char *training_json) {
    cJSON *j = training_json ? cJSON_Parse(training_json) : NULL;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "template");
    char *out = cJSON_IsString(t) && t->valuestring[0] ? strdup(t->valuestring) : NULL;
    cJSON_Delete(j);
    return out;
}
