/* RED edit sets: the flat parameter array, the forward pass's view of it, the base-model
 * fingerprint and edit files (see include/redit/edits.h).
 *
 * Layout of the flat array: for each edited layer ascending, for site attn then ffn (when
 * edited), scale then bias (when trained), dim floats each. The view rows (one rd_site_edit
 * per layer and edited site) point into that array and never move: the array is allocated
 * once with the edit set.
 *
 * Edit files are safetensors files (src/io/safetensors.c): one F32 tensor of shape (dim)
 * per vector, named "layers.{l}.{attn|ffn}.{scale|bias}" — the layer number, a site word
 * and a kind word, as ../shared/tools/torch_ref/llama_red_ref.py's loader expects — and
 * these string metadata:
 *   format "redit-red", version "1", base_model (the model's name), base_fingerprint
 *   (rd_model_fingerprint as 16 lower-case hex digits), sites ("attn"/"ffn"/"both"),
 *   layers (canonical list), dim, n_layers, scale and bias ("true"/"false"), training (the
 *   caller's JSON, only when given).
 * The loader refuses a file that does not fit the model (width, layer count, fingerprint
 * unless forced), a missing vector, and any tensor the metadata does not declare. */
#include "redit/edits.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/safetensors.h"
#include "redit/util.h"

#define EDITS_FORMAT "redit-red"
#define EDITS_VERSION 1
#define MAX_EDIT_DIM (1 << 20)
#define MAX_EDIT_LAYERS (1 << 16)

struct rd_edits {
    int dim, n_layers;
    int sites;            /* RD_SITE_* mask */
    int scale, bias;      /* which vectors are trained (and stored) */
    int *slot;            /* (n_layers): rank among the edited layers, or -1 */
    char *layers_text;    /* canonical layer list */
    size_t n_params;
    float *params;        /* (n_params) see the layout above */
    rd_site_edit *attn;   /* (n_layers) view rows; NULL when attn is not edited */
    rd_site_edit *ffn;    /* (n_layers) view rows; NULL when ffn is not edited */
};

/* ---- sites ------------------------------------------------------------------------ */

int rd_sites_from_name(const char *name, int *out) {
    static const struct { const char *name; int sites; } NAMES[] = {
        {"attn", RD_SITE_ATTN}, {"ffn", RD_SITE_FFN}, {"both", RD_SITE_BOTH}};
    for (size_t i = 0; name && i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(name, NAMES[i].name) == 0) {
            *out = NAMES[i].sites;
            return 0;
        }
    return -1;
}

const char *rd_sites_name(int sites) {
    switch (sites) {
    case RD_SITE_ATTN: return "attn";
    case RD_SITE_FFN: return "ffn";
    case RD_SITE_BOTH: return "both";
    default: return "none";
    }
}

/* ---- layer lists ------------------------------------------------------------------ */

static const char *skip_ws(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* A decimal layer number at *s (advanced past it); -1 when there are no digits. Values
 * past INT_MAX / 10 saturate: they are out of range for any model anyway. */
static long parse_number(const char **s) {
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) v = v < INT_MAX / 10 ? v * 10 + (*p - '0') : INT_MAX;
    *s = p;
    return v;
}

static int is_all(const char *text) {
    const char *s = skip_ws(text);
    if (strncmp(s, "all", 3) != 0) return 0;
    return *skip_ws(s + 3) == '\0';
}

/* What follows a parse position, for messages. */
static const char *at_text(const char *p) { return *p ? p : "(end)"; }

/* One item "A" or "A-B" at *s; sets on[A..B]. */
static int parse_item(const char **s, const char *text, int n_layers, unsigned char *on,
                      rd_error *err) {
    const char *p = skip_ws(*s), *digits = p;
    long a = parse_number(&p), b = a;
    if (a < 0)
        return rd_error_set(err, "layers \"%s\": expected a layer number at \"%s\"", text,
                            at_text(p));
    p = skip_ws(p);
    if (*p == '-') {
        p = skip_ws(p + 1);
        digits = p;
        b = parse_number(&p);
        if (b < 0)
            return rd_error_set(err, "layers \"%s\": expected the end of the range %ld- at "
                                     "\"%s\"", text, a, at_text(p));
        if (b < a)
            return rd_error_set(err, "layers \"%s\": the range %ld-%ld is reversed", text, a, b);
    }
    if (b >= n_layers) /* the digits as written: a huge number saturated in parse_number */
        return rd_error_set(err, "layers \"%s\": layer %.*s is beyond the model's %d layers "
                                 "(0-%d)", text, (int)strspn(digits, "0123456789"), digits,
                            n_layers, n_layers - 1);
    for (long l = a; l <= b; l++) on[l] = 1;
    *s = skip_ws(p);
    return 0;
}

/* Parses "all" or a comma-separated list of layers and ranges ("0-5,9", spaces allowed
 * around numbers) into on (n_layers, zeroed by the caller). NULL means "all". */
static int parse_layers(const char *text, int n_layers, unsigned char *on, rd_error *err) {
    if (!text || is_all(text)) {
        memset(on, 1, (size_t)n_layers);
        return 0;
    }
    if (*skip_ws(text) == '\0')
        return rd_error_set(err, "layers: the list is empty (give \"all\" or e.g. \"0-5,9\")");
    const char *s = text;
    for (;;) {
        if (parse_item(&s, text, n_layers, on, err)) return -1;
        if (*s == '\0') return 0;
        if (*s != ',')
            return rd_error_set(err, "layers \"%s\": unexpected \"%c\" (items are separated by "
                                     "commas)", text, *s);
        s++;
    }
}

/* Canonical text: "all", or ascending items "a" / "a-b" joined by commas. Malloc'ed. */
static char *layers_canonical(const unsigned char *on, int n_layers) {
    size_t cap = (size_t)n_layers * 24 + 8;
    char *out = malloc(cap);
    if (!out) return NULL;
    int all = 1;
    for (int l = 0; l < n_layers; l++) all &= on[l];
    if (all) {
        strcpy(out, "all");
        return out;
    }
    size_t k = 0;
    out[0] = '\0';
    for (int l = 0; l < n_layers;) {
        if (!on[l]) {
            l++;
            continue;
        }
        int end = l;
        while (end + 1 < n_layers && on[end + 1]) end++;
        k += (size_t)snprintf(out + k, cap - k, end > l ? "%s%d-%d" : "%s%d", k ? "," : "", l,
                              end);
        l = end + 1;
    }
    return out;
}

/* ---- construction ----------------------------------------------------------------- */

static int n_kinds(const rd_edits *e) { return e->scale + e->bias; }
static int n_sites(const rd_edits *e) {
    return !!(e->sites & RD_SITE_ATTN) + !!(e->sites & RD_SITE_FFN);
}

/* Offset in params of layer l's vector at site (RD_SITE_ATTN/FFN), kind 0 scale 1 bias;
 * the caller checks that it exists. */
static size_t vec_offset(const rd_edits *e, int l, int site, int want_bias) {
    size_t d = (size_t)e->dim;
    size_t site_index = site == RD_SITE_FFN && (e->sites & RD_SITE_ATTN) ? 1 : 0;
    size_t kind_index = want_bias && e->scale ? 1 : 0;
    return ((size_t)e->slot[l] * (size_t)n_sites(e) * (size_t)n_kinds(e) +
            site_index * (size_t)n_kinds(e) + kind_index) * d;
}

static int has_vector(const rd_edits *e, int l, int site, int want_bias) {
    return l >= 0 && l < e->n_layers && e->slot[l] >= 0 &&
           (site == RD_SITE_ATTN || site == RD_SITE_FFN) && (e->sites & site) &&
           (want_bias ? e->bias : e->scale);
}

/* Points the view rows of one site at the params ({NULL, NULL} for unedited layers). */
static void fill_view(rd_edits *e, rd_site_edit *rows, int site) {
    for (int l = 0; l < e->n_layers; l++) {
        rows[l].scale = has_vector(e, l, site, 0) ? e->params + vec_offset(e, l, site, 0) : NULL;
        rows[l].bias = has_vector(e, l, site, 1) ? e->params + vec_offset(e, l, site, 1) : NULL;
    }
}

/* Allocates everything for the selection `on` and sets s = 1, b = 0. */
static int edits_alloc(rd_edits *e, const unsigned char *on, rd_error *err) {
    int n_on = 0;
    e->slot = malloc((size_t)e->n_layers * sizeof *e->slot);
    if (!e->slot) return rd_error_set(err, "edits: out of memory");
    for (int l = 0; l < e->n_layers; l++) e->slot[l] = on[l] ? n_on++ : -1;
    if (n_on == 0) return rd_error_set(err, "edits: no layer selected");
    e->n_params = (size_t)n_on * (size_t)n_sites(e) * (size_t)n_kinds(e) * (size_t)e->dim;
    e->params = malloc(e->n_params * sizeof *e->params);
    e->layers_text = layers_canonical(on, e->n_layers);
    if (e->sites & RD_SITE_ATTN) e->attn = calloc((size_t)e->n_layers, sizeof *e->attn);
    if (e->sites & RD_SITE_FFN) e->ffn = calloc((size_t)e->n_layers, sizeof *e->ffn);
    if (!e->params || !e->layers_text || (e->sites & RD_SITE_ATTN && !e->attn) ||
        (e->sites & RD_SITE_FFN && !e->ffn))
        return rd_error_set(err, "edits: out of memory for %zu parameters", e->n_params);
    if (e->attn) fill_view(e, e->attn, RD_SITE_ATTN);
    if (e->ffn) fill_view(e, e->ffn, RD_SITE_FFN);
    for (int l = 0; l < e->n_layers; l++)
        for (int site = RD_SITE_ATTN; site <= RD_SITE_FFN; site++) {
            if (has_vector(e, l, site, 0))
                for (int j = 0; j < e->dim; j++) e->params[vec_offset(e, l, site, 0) + j] = 1.0f;
            if (has_vector(e, l, site, 1))
                memset(e->params + vec_offset(e, l, site, 1), 0, (size_t)e->dim * sizeof(float));
        }
    return 0;
}

rd_edits *rd_edits_new(const rd_config *cfg, const rd_edit_spec *spec, rd_error *err) {
    if (cfg->dim < 1 || cfg->dim > MAX_EDIT_DIM || cfg->n_layers < 1 ||
        cfg->n_layers > MAX_EDIT_LAYERS) {
        rd_error_set(err, "edits: model width %d or layer count %d out of range", cfg->dim,
                     cfg->n_layers);
        return NULL;
    }
    if (!(spec->sites & RD_SITE_BOTH) || (spec->sites & ~RD_SITE_BOTH)) {
        rd_error_set(err, "edits: no valid edit site selected (attn, ffn or both)");
        return NULL;
    }
    if (!spec->scale && !spec->bias) {
        rd_error_set(err, "edits: neither the scale nor the bias vector is trained");
        return NULL;
    }
    rd_edits *e = calloc(1, sizeof *e);
    unsigned char *on = calloc((size_t)cfg->n_layers, 1);
    if (!e || !on) {
        free(e);
        free(on);
        rd_error_set(err, "edits: out of memory");
        return NULL;
    }
    *e = (rd_edits){.dim = cfg->dim, .n_layers = cfg->n_layers, .sites = spec->sites,
                    .scale = !!spec->scale, .bias = !!spec->bias};
    int rc = parse_layers(spec->layers, cfg->n_layers, on, err);
    if (!rc) rc = edits_alloc(e, on, err);
    free(on);
    if (rc) {
        rd_edits_free(e);
        return NULL;
    }
    return e;
}

rd_edits *rd_edits_clone(const rd_edits *e, rd_error *err) {
    rd_edit_spec spec = {e->sites, e->layers_text, e->scale, e->bias};
    rd_config cfg = {.dim = e->dim, .n_layers = e->n_layers};
    rd_edits *c = rd_edits_new(&cfg, &spec, err);
    if (c) memcpy(c->params, e->params, e->n_params * sizeof *e->params);
    return c;
}

void rd_edits_free(rd_edits *e) {
    if (!e) return;
    free(e->slot);
    free(e->layers_text);
    free(e->params);
    free(e->attn);
    free(e->ffn);
    free(e);
}

/* ---- accessors -------------------------------------------------------------------- */

int rd_edits_dim(const rd_edits *e) { return e->dim; }
int rd_edits_n_layers(const rd_edits *e) { return e->n_layers; }
int rd_edits_sites(const rd_edits *e) { return e->sites; }
int rd_edits_has_scale(const rd_edits *e) { return e->scale; }
int rd_edits_has_bias(const rd_edits *e) { return e->bias; }
int rd_edits_layer_on(const rd_edits *e, int layer) {
    return layer >= 0 && layer < e->n_layers && e->slot[layer] >= 0;
}
const char *rd_edits_layers_text(const rd_edits *e) { return e->layers_text; }
size_t rd_edits_param_count(const rd_edits *e) { return e->n_params; }
float *rd_edits_params(rd_edits *e) { return e->params; }
const float *rd_edits_params_const(const rd_edits *e) { return e->params; }

double rd_edits_ratio(const rd_edits *e, const rd_model *m) {
    return (double)rd_model_param_count(m) / (double)e->n_params;
}

rd_edits_view rd_edits_view_at(const rd_edits *e, float strength) {
    return (rd_edits_view){.attn = e->attn, .ffn = e->ffn, .strength = strength};
}

int rd_edits_grad_new(rd_edits *e, float *grad, rd_edits_grad *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    rd_site_grad *rows[2] = {NULL, NULL};
    for (int s = 0; s < 2; s++) {
        const int site = s ? RD_SITE_FFN : RD_SITE_ATTN;
        if (!(e->sites & site)) continue;
        if (!(rows[s] = calloc((size_t)e->n_layers, sizeof *rows[s]))) {
            free(rows[0]);
            return rd_error_set(err, "out of memory");
        }
        for (int l = 0; l < e->n_layers; l++) {
            if (has_vector(e, l, site, 0)) rows[s][l].dscale = grad + vec_offset(e, l, site, 0);
            if (has_vector(e, l, site, 1)) rows[s][l].dbias = grad + vec_offset(e, l, site, 1);
        }
    }
    out->attn = rows[0];
    out->ffn = rows[1];
    return 0;
}

void rd_edits_grad_free(rd_edits_grad *g) {
    if (!g) return;
    free((void *)g->attn);
    free((void *)g->ffn);
    g->attn = g->ffn = NULL;
}

float *rd_edits_vector(rd_edits *e, int layer, int site, int want_bias) {
    return has_vector(e, layer, site, want_bias) ? e->params + vec_offset(e, layer, site, want_bias)
                                                 : NULL;
}

/* ---- fingerprint ------------------------------------------------------------------ */

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

/* ---- saving ----------------------------------------------------------------------- */

static const char *site_word(int site) { return site == RD_SITE_ATTN ? "attn" : "ffn"; }

static void vector_name(char *buf, size_t cap, int l, int site, int want_bias) {
    snprintf(buf, cap, "layers.%d.%s.%s", l, site_word(site), want_bias ? "bias" : "scale");
}

/* Calls fn for every stored vector in the flat-array order; stops at the first nonzero. */
typedef int (*vector_fn)(void *ctx, int l, int site, int want_bias);
static int each_vector(const rd_edits *e, vector_fn fn, void *ctx) {
    for (int l = 0; l < e->n_layers; l++)
        for (int site = RD_SITE_ATTN; site <= RD_SITE_FFN; site++)
            for (int kind = 0; kind < 2; kind++)
                if (has_vector(e, l, site, kind)) {
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
    const int64_t shape[1] = {s->e->dim};
    return rd_st_writer_add(s->w, name, RD_DTYPE_F32, shape, 1,
                            s->e->params + vec_offset(s->e, l, site, want_bias), s->err);
}

static int save_metadata(rd_st_writer *w, const rd_edits *e, const rd_model *m,
                         const char *training_json, rd_error *err) {
    char fp[32], dim[16], nl[16], ver[16];
    snprintf(fp, sizeof fp, "%016" PRIx64, rd_model_fingerprint(m));
    snprintf(dim, sizeof dim, "%d", e->dim);
    snprintf(nl, sizeof nl, "%d", e->n_layers);
    snprintf(ver, sizeof ver, "%d", EDITS_VERSION);
    const char *kv[][2] = {
        {"format", EDITS_FORMAT},    {"version", ver},
        {"base_model", m->file.name}, {"base_fingerprint", fp},
        {"sites", rd_sites_name(e->sites)}, {"layers", e->layers_text},
        {"dim", dim},                {"n_layers", nl},
        {"scale", e->scale ? "true" : "false"}, {"bias", e->bias ? "true" : "false"},
        {"training", training_json}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kv[i][1] && rd_st_writer_meta(w, kv[i][0], kv[i][1], err)) return -1;
    return 0;
}

int rd_edits_save(const rd_edits *e, const rd_model *m, const char *training_json,
                  const char *path, rd_error *err) {
    const rd_config *cfg = rd_model_config(m);
    if (cfg->dim != e->dim || cfg->n_layers != e->n_layers)
        return rd_error_set(err, "%s: the edits (width %d, %d layers) do not fit the model "
                                 "(width %d, %d layers)", path, e->dim, e->n_layers, cfg->dim,
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
    if (meta_int(f, path, "dim", 1, MAX_EDIT_DIM, &dim, err) ||
        meta_int(f, path, "n_layers", 1, MAX_EDIT_LAYERS, &n_layers, err))
        return -1;
    if (dim != cfg->dim)
        return rd_error_set(err, "%s: the edits are for a model of width %d, but this model's "
                                 "width is %d", path, dim, cfg->dim);
    if (n_layers != cfg->n_layers)
        return rd_error_set(err, "%s: the edits are for a model with %d layers, but this model "
                                 "has %d", path, n_layers, cfg->n_layers);
    return 0;
}

static int check_fingerprint(const rd_st_file *f, const char *path, const rd_model *m,
                             rd_error *err) {
    char mine[32];
    snprintf(mine, sizeof mine, "%016" PRIx64, rd_model_fingerprint(m));
    const char *theirs = rd_st_metadata(f, "base_fingerprint");
    const char *base = rd_st_metadata(f, "base_model");
    if (theirs && strcmp(theirs, mine) == 0) return 0;
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
    const int d = c->e->dim;
    char name[64];
    vector_name(name, sizeof name, l, site, want_bias);
    const rd_st_tensor *t = rd_st_find(c->f, name);
    if (!t)
        return rd_error_set(c->err, "%s: tensor \"%s\" is missing (the metadata declares sites "
                                    "%s, layers %s, %s)", c->path, name,
                            rd_sites_name(c->e->sites), c->e->layers_text,
                            c->e->scale && c->e->bias ? "scale and bias"
                                                      : c->e->scale ? "scale only" : "bias only");
    if (!t->has_rd_dtype)
        return rd_error_set(c->err, "%s: tensor \"%s\" has dtype %s (edit vectors are F32, F16 "
                                    "or BF16)", c->path, name, t->dtype);
    int shape_ok = t->n_elems == (uint64_t)d &&
                   (t->n_dims == 1 || (t->n_dims == 2 && t->shape[0] == 1));
    if (!shape_ok)
        return rd_error_set(c->err, "%s: tensor \"%s\" has %" PRIu64 " elements in %d "
                                    "dimensions, expected shape (%d)", c->path, name,
                            t->n_elems, t->n_dims, d);
    float *dst = c->e->params + vec_offset(c->e, l, site, want_bias);
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
        for (l = 0; l < e->n_layers && !known; l++)
            for (site = RD_SITE_ATTN; site <= RD_SITE_FFN && !known; site++)
                for (kind = 0; kind < 2 && !known; kind++) {
                    if (!has_vector(e, l, site, kind)) continue;
                    vector_name(buf, sizeof buf, l, site, kind);
                    known = strcmp(buf, name) == 0;
                }
        if (!known)
            return rd_error_set(err, "%s: unexpected tensor \"%.80s\": the metadata declares "
                                     "sites %s, layers %s, %s", path, name,
                                rd_sites_name(e->sites), e->layers_text,
                                e->scale && e->bias ? "scale and bias"
                                                    : e->scale ? "scale only" : "bias only");
    }
    return 0;
}

static rd_edits *load_from(const rd_st_file *f, const char *path, const rd_model *m, int force,
                           rd_error *err) {
    const rd_config *cfg = rd_model_config(m);
    if (check_header(f, path, cfg, err)) return NULL;
    rd_edits *e = edits_from_metadata(f, path, cfg, err);
    if (!e) return NULL;
    load_ctx c = {e, f, path, malloc((size_t)e->dim * sizeof(float)), err};
    int rc = c.tmp ? 0 : rd_error_set(err, "%s: out of memory", path);
    if (!rc && !force) rc = check_fingerprint(f, path, m, err);
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
    if (training_json) *training_json = NULL;
    rd_st_file *f = rd_st_open(path, err);
    if (!f) return NULL;
    rd_edits *e = load_from(f, path, m, force, err);
    const char *training = e ? rd_st_metadata(f, "training") : NULL;
    if (e && training && training_json && !(*training_json = strdup(training))) {
        rd_edits_free(e);
        e = NULL;
        rd_error_set(err, "%s: out of memory", path);
    }
    rd_st_close(f);
    return e;
}
