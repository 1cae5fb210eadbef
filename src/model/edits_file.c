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
 * The loader refuses a file that does not fit the model (width, layer count, fingerprint
 * unless forced), a missing vector, and any tensor the metadata does not declare. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/edits.h"
#include "redit/safetensors.h"

#define EDITS_FORMAT "redit-red"
#define EDITS_VERSION 1
#define FINGERPRINT_KIND "xxh3-64" /* base_fingerprint is rd_model_fingerprint */

/* ---- saving ----------------------------------------------------------------------- */

static const char *site_word(int site) { return site == RD_SITE_ATTN ? "attn" : "ffn"; }

static void vector_name(char *buf, size_t cap, int l, int site, int want_bias) {
    snprintf(buf, cap, "layers.%d.%s.%s", l, site_word(site), want_bias ? "bias" : "scale");
}

/* Calls fn for every stored vector in the flat-array order; stops at the first nonzero. */
typedef int (*vector_fn)(void *ctx, int l, int site, int want_bias);
static int each_vector(const rd_edits *e, vector_fn fn, void *ctx) {
    for (int l = 0; l < rd_edits_n_layers(e); l++)
        for (int site = RD_SITE_ATTN; site <= RD_SITE_FFN; site++)
            for (int kind = 0; kind < 2; kind++)
                if (rd_edits_vector_const(e, l, site, kind)) {
                    int rc = fn(ctx, l, site, kind);
                    if (rc) return rc;
                }
    return 0;
}

typedef struct save_ctx {
    const rd_edits *e;
    rd_st_writer *w;
    rd_error *err;
} save_ctx;

static int save_vector(void *arg, int l, int site, int want_bias) {
    save_ctx *s = arg;
    char name[64];
    vector_name(name, sizeof name, l, site, want_bias);
    const int64_t shape[1] = {rd_edits_dim(s->e)};
    return rd_st_writer_add(s->w, name, RD_DTYPE_F32, shape, 1,
                            rd_edits_vector_const(s->e, l, site, want_bias), s->err);
}

static int save_metadata(rd_st_writer *w, const rd_edits *e, const rd_model *m,
                         const char *training_json, rd_error *err) {
    char fp[32], dim[16], nl[16], ver[16];
    snprintf(fp, sizeof fp, "%016" PRIx64, rd_model_fingerprint(m));
    snprintf(dim, sizeof dim, "%d", rd_edits_dim(e));
    snprintf(nl, sizeof nl, "%d", rd_edits_n_layers(e));
    snprintf(ver, sizeof ver, "%d", EDITS_VERSION);
    const char *kv[][2] = {
        {"format", EDITS_FORMAT},    {"version", ver},
        {"base_model", m->file.name}, {"base_fingerprint", fp},
        {"base_fingerprint_kind", FINGERPRINT_KIND},
        {"sites", rd_sites_name(rd_edits_sites(e))}, {"layers", rd_edits_layers_text(e)},
        {"dim", dim},                {"n_layers", nl},
        {"scale", rd_edits_has_scale(e) ? "true" : "false"}, {"bias", rd_edits_has_bias(e) ? "true" : "false"},
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
    if (!rc) rc = each_vector(e, save_vector, &s);
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
    if (version > EDITS_VERSION)
        return rd_error_set(err, "%s: edit file version %d is newer than this redit reads "
                                 "(version %d)", path, version, EDITS_VERSION);
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
static rd_edits *edits_from_metadata(const rd_st_file *f, const char *path,
                                     const rd_config *cfg, rd_error *err) {
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
    float *tmp; /* (dim) aligned copy of the raw bytes */
    rd_error *err;
} load_ctx;

static int load_vector(void *arg, int l, int site, int want_bias) {
    load_ctx *c = arg;
    const int d = rd_edits_dim(c->e);
    char name[64];
    vector_name(name, sizeof name, l, site, want_bias);
    const rd_st_tensor *t = rd_st_find(c->f, name);
    if (!t)
        return rd_error_set(c->err, "%s: tensor \"%s\" is missing (the metadata declares sites "
                                    "%s, layers %s, %s)", c->path, name,
                            rd_sites_name(rd_edits_sites(c->e)), rd_edits_layers_text(c->e),
                            rd_edits_has_scale(c->e) && rd_edits_has_bias(c->e) ? "scale and bias"
                                                      : rd_edits_has_scale(c->e) ? "scale only" : "bias only");
    if (!t->has_rd_dtype)
        return rd_error_set(c->err, "%s: tensor \"%s\" has dtype %s (edit vectors are F32, F16 "
                                    "or BF16)", c->path, name, t->dtype);
    int shape_ok = t->n_elems == (uint64_t)d &&
                   (t->n_dims == 1 || (t->n_dims == 2 && t->shape[0] == 1));
    if (!shape_ok)
        return rd_error_set(c->err, "%s: tensor \"%s\" has %" PRIu64 " elements in %d "
                                    "dimensions, expected shape (%d)", c->path, name,
                            t->n_elems, t->n_dims, d);
    float *dst = rd_edits_vector(c->e, l, site, want_bias);
    memcpy(c->tmp, t->data, t->n_bytes); /* the mapping gives no alignment guarantee */
    rd_dtype_info_of(t->type)->to_f32(c->tmp, dst, (size_t)d);
    for (int j = 0; j < d; j++)
        if (!isfinite(dst[j]))
            return rd_error_set(c->err, "%s: tensor \"%s\" holds a non-finite value at index %d",
                                c->path, name, j);
    return 0;
}

/* Refuses tensors the metadata does not declare (unknown names, or vectors of layers, sites
 * or kinds that are not edited). */
static int check_no_extra(const rd_edits *e, const rd_st_file *f, const char *path,
                          rd_error *err) {
    for (int i = 0; i < rd_st_count(f); i++) {
        const char *name = rd_st_at(f, i)->name;
        int l, site, kind, known = 0;
        char buf[64];
        for (l = 0; l < rd_edits_n_layers(e) && !known; l++)
            for (site = RD_SITE_ATTN; site <= RD_SITE_FFN && !known; site++)
                for (kind = 0; kind < 2 && !known; kind++) {
                    if (!rd_edits_vector_const(e, l, site, kind)) continue;
                    vector_name(buf, sizeof buf, l, site, kind);
                    known = strcmp(buf, name) == 0;
                }
        if (!known)
            return rd_error_set(err, "%s: unexpected tensor \"%.80s\": the metadata declares "
                                     "sites %s, layers %s, %s", path, name,
                                rd_sites_name(rd_edits_sites(e)), rd_edits_layers_text(e),
                                rd_edits_has_scale(e) && rd_edits_has_bias(e) ? "scale and bias"
                                                    : rd_edits_has_scale(e) ? "scale only" : "bias only");
    }
    return 0;
}

static rd_edits *load_from(const rd_st_file *f, const char *path, const rd_model *m, int force,
                           rd_fp_match *match, rd_error *err) {
    const rd_config *cfg = rd_model_config(m);
    if (check_header(f, path, cfg, err)) return NULL;
    rd_edits *e = edits_from_metadata(f, path, cfg, err);
    if (!e) return NULL;
    load_ctx c = {e, f, path, malloc((size_t)rd_edits_dim(e) * sizeof(float)), err};
    int rc = c.tmp ? 0 : rd_error_set(err, "%s: out of memory", path);
    if (!rc && !force) rc = check_fingerprint(f, path, m, match, err);
    if (!rc) rc = check_no_extra(e, f, path, err);
    if (!rc) rc = each_vector(e, load_vector, &c);
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

