/* Edit sets: the flat parameter array of RED, LoRA or IA3, the forward pass's view of it and
 * the gradient views (see include/redit/edits.h). Site names and layer lists are in
 * edit_layers.c, edit files in edits_file.c, the base-model fingerprint in fingerprint.c.
 *
 * Layout of the flat array (per edited layer ascending): RED for site attn then ffn (when
 * edited), scale then bias (when trained), dim floats each; LoRA per target in RD_PROJ_*
 * order A (r, in) then B (out, r); IA3 k, v, ffn. The tensor table (one rd_edit_tensor per
 * stored tensor, in that order) describes it; the view rows point into the array and never
 * move: the array is allocated once with the edit set. */
#include "redit/edits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/rng.h"

#include "edit_layers.h"

struct rd_edits {
    rd_config cfg;        /* the model's shape (a copy) */
    int dim, n_layers;
    int method;           /* RD_METHOD_* */
    int sites;            /* RED: RD_SITE_* mask (0 for other methods) */
    int scale, bias;      /* RED: which vectors are trained (and stored) */
    int rank, targets;    /* LoRA */
    float lora_alpha, lora_dropout;
    uint64_t seed;        /* LoRA: A's initial values */
    int *slot;            /* (n_layers): rank among the edited layers, or -1 */
    char *layers_text;    /* canonical layer list */
    size_t n_params;
    float *params;        /* (n_params) see the layout above */
    rd_edit_tensor *tensors; /* (n_tensors) in the flat order */
    int n_tensors;
    rd_site_edit *attn;   /* RED (n_layers) view rows; NULL when attn is not edited */
    rd_site_edit *ffn;    /* RED (n_layers) view rows; NULL when ffn is not edited */
    rd_lora_edit *lora;   /* LoRA (n_layers) view rows, else NULL */
    rd_ia3_edit *ia3;     /* IA3 (n_layers) view rows, else NULL */
};

/* ---- names -------------------------------------------------------------------------- */

static const char *const METHOD_NAMES[] = {"red", "lora", "ia3"};
static const char *const PROJ_NAMES[RD_N_PROJ] = {"q", "k", "v", "o", "gate", "up", "down"};

int rd_method_from_name(const char *name, int *out) {
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, METHOD_NAMES[i])) {
            *out = i;
            return 0;
        }
    return -1;
}

const char *rd_method_name(int method) {
    return method >= 0 && method < 3 ? METHOD_NAMES[method] : "?";
}

const char *rd_proj_name(int proj) { return proj >= 0 && proj < RD_N_PROJ ? PROJ_NAMES[proj] : NULL; }

int rd_lora_targets_parse(const char *text, int *mask, rd_error *err) {
    int m = 0;
    const char *s = text ? text : "";
    if (!strcmp(s, "all")) {
        *mask = (1 << RD_N_PROJ) - 1;
        return 0;
    }
    while (*s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        while (n && *s == ' ') s++, n--;
        while (n && s[n - 1] == ' ') n--;
        int found = -1;
        for (int p = 0; p < RD_N_PROJ; p++)
            if (strlen(PROJ_NAMES[p]) == n && !strncmp(s, PROJ_NAMES[p], n)) found = p;
        if (found < 0)
            return rd_error_set(err, "LoRA target \"%.*s\" is not one of q, k, v, o, gate, up, "
                                     "down (or all)", (int)(n > 40 ? 40 : n), s);
        m |= RD_PROJ_BIT(found);
        s += n;
        while (*s == ' ') s++;
        if (*s == ',') s++;
    }
    if (!m) return rd_error_set(err, "no LoRA target given (q, k, v, o, gate, up, down)");
    *mask = m;
    return 0;
}

char *rd_lora_targets_text(int mask, char *buf, size_t cap) {
    size_t n = 0;
    if (cap) buf[0] = '\0';
    for (int p = 0; p < RD_N_PROJ; p++)
        if (mask & RD_PROJ_BIT(p) && n < cap) {
            int w = snprintf(buf + n, cap - n, "%s%s", n ? "," : "", PROJ_NAMES[p]);
            if (w > 0) n += (size_t)w;
        }
    return buf;
}

void rd_proj_shape(const rd_config *cfg, int proj, int *out, int *in) {
    const int d = cfg->dim, kv = rd_config_kv_dim(cfg), hd = cfg->hidden_dim;
    switch (proj) {
    case RD_PROJ_K:
    case RD_PROJ_V: *out = kv, *in = d; break;
    case RD_PROJ_GATE:
    case RD_PROJ_UP: *out = hd, *in = d; break;
    case RD_PROJ_DOWN: *out = d, *in = hd; break;
    default: *out = d, *in = d; break;
    }
}

/* ---- the tensor table ----------------------------------------------------------------- */

static const char *site_word(int site) { return site == RD_SITE_ATTN ? "attn" : "ffn"; }

/* Appends a tensor at the end of the flat array (the caller sized the table). */
static void add_tensor(rd_edits *e, int layer, int proj, int kind, int rows, int cols,
                       const char *suffix) {
    rd_edit_tensor *t = &e->tensors[e->n_tensors++];
    memset(t, 0, sizeof *t);
    t->layer = layer;
    t->proj = proj;
    t->kind = kind;
    t->n_dims = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->count = (size_t)rows * (size_t)(cols ? cols : 1);
    t->offset = e->n_params;
    e->n_params += t->count;
    snprintf(t->name, sizeof t->name, "layers.%d.%s", layer, suffix);
}

/* Fills the table for the selected layers (counting only when e->tensors is NULL: then
 * e->n_tensors is the count). */
static void build_table(rd_edits *e, int counting) {
    e->n_params = 0;
    e->n_tensors = 0;
    int n = 0;
    char suffix[24];
    const int kv = e->method == RD_METHOD_RED ? 0 : rd_config_kv_dim(&e->cfg), hd = e->cfg.hidden_dim;
    for (int l = 0; l < e->n_layers; l++) {
        if (e->slot[l] < 0) continue;
        if (e->method == RD_METHOD_RED) {
            for (int site = RD_SITE_ATTN; site <= RD_SITE_FFN; site++)
                for (int kind = 0; kind < 2; kind++) {
                    if (!(e->sites & site) || !(kind ? e->bias : e->scale)) continue;
                    n++;
                    if (counting) continue;
                    snprintf(suffix, sizeof suffix, "%s.%s", site_word(site), kind ? "bias" : "scale");
                    add_tensor(e, l, -1, kind, e->dim, 0, suffix);
                }
        } else if (e->method == RD_METHOD_LORA) {
            for (int p = 0; p < RD_N_PROJ; p++) {
                if (!(e->targets & RD_PROJ_BIT(p))) continue;
                n += 2;
                if (counting) continue;
                int out, in;
                rd_proj_shape(&e->cfg, p, &out, &in);
                snprintf(suffix, sizeof suffix, "%s.lora_a", PROJ_NAMES[p]);
                add_tensor(e, l, p, 0, e->rank, in, suffix);
                snprintf(suffix, sizeof suffix, "%s.lora_b", PROJ_NAMES[p]);
                add_tensor(e, l, p, 1, out, e->rank, suffix);
            }
        } else {
            n += 3;
            if (counting) continue;
            add_tensor(e, l, RD_PROJ_K, 0, kv, 0, "k.ia3");
            add_tensor(e, l, RD_PROJ_V, 0, kv, 0, "v.ia3");
            add_tensor(e, l, RD_PROJ_DOWN, 0, hd, 0, "ffn.ia3");
        }
    }
    if (counting) e->n_tensors = n;
}

/* Points the view rows at the params and sets the identity (and LoRA's A draw). */
static void fill_views_and_init(rd_edits *e) {
    uint64_t rng = rd_rng_seed(e->seed);
    for (int i = 0; i < e->n_tensors; i++) {
        const rd_edit_tensor *t = &e->tensors[i];
        float *p = e->params + t->offset;
        const int l = t->layer;
        if (e->method == RD_METHOD_RED) {
            const int site = strstr(t->name, ".attn.") ? RD_SITE_ATTN : RD_SITE_FFN;
            rd_site_edit *row = site == RD_SITE_ATTN ? &e->attn[l] : &e->ffn[l];
            if (t->kind) row->bias = p;
            else row->scale = p;
            for (size_t j = 0; j < t->count; j++) p[j] = t->kind ? 0.0f : 1.0f;
        } else if (e->method == RD_METHOD_LORA) {
            if (t->kind) {
                e->lora[l].b[t->proj] = p;
                memset(p, 0, t->count * sizeof *p);
            } else {
                e->lora[l].a[t->proj] = p;
                const float bound = 1.0f / sqrtf((float)t->shape[1]);
                for (size_t j = 0; j < t->count; j++)
                    p[j] = (2.0f * rd_rng_uniform(&rng) - 1.0f) * bound;
            }
        } else {
            const float **dst = t->proj == RD_PROJ_K ? &e->ia3[l].k
                              : t->proj == RD_PROJ_V ? &e->ia3[l].v : &e->ia3[l].ffn;
            *dst = p;
            for (size_t j = 0; j < t->count; j++) p[j] = 1.0f;
        }
    }
}

/* Allocates everything for the selection `on` and sets the identity edit. */
static int edits_alloc(rd_edits *e, const unsigned char *on, rd_error *err) {
    int n_on = 0;
    e->slot = malloc((size_t)e->n_layers * sizeof *e->slot);
    if (!e->slot) return rd_error_set(err, "edits: out of memory");
    for (int l = 0; l < e->n_layers; l++) e->slot[l] = on[l] ? n_on++ : -1;
    if (n_on == 0) return rd_error_set(err, "edits: no layer selected");
    build_table(e, 1);
    e->tensors = calloc((size_t)e->n_tensors, sizeof *e->tensors);
    if (!e->tensors) return rd_error_set(err, "edits: out of memory");
    build_table(e, 0);
    e->params = malloc((e->n_params ? e->n_params : 1) * sizeof *e->params);
    e->layers_text = rd_layer_list_text(on, e->n_layers);
    const size_t L = (size_t)e->n_layers;
    int rows_ok = 1;
    if (e->sites & RD_SITE_ATTN) rows_ok &= (e->attn = calloc(L, sizeof *e->attn)) != NULL;
    if (e->sites & RD_SITE_FFN) rows_ok &= (e->ffn = calloc(L, sizeof *e->ffn)) != NULL;
    if (e->method == RD_METHOD_LORA) rows_ok &= (e->lora = calloc(L, sizeof *e->lora)) != NULL;
    if (e->method == RD_METHOD_IA3) rows_ok &= (e->ia3 = calloc(L, sizeof *e->ia3)) != NULL;
    if (!e->params || !e->layers_text || !rows_ok)
        return rd_error_set(err, "edits: out of memory for %zu parameters", e->n_params);
    fill_views_and_init(e);
    return 0;
}

/* The spec's settings checked and with defaults filled into e. */
static int take_spec(rd_edits *e, const rd_edit_spec *spec, rd_error *err) {
    e->method = spec->method;
    if (spec->method == RD_METHOD_RED) {
        if (!(spec->sites & RD_SITE_BOTH) || (spec->sites & ~RD_SITE_BOTH))
            return rd_error_set(err, "edits: no valid edit site selected (attn, ffn or both)");
        if (!spec->scale && !spec->bias)
            return rd_error_set(err, "edits: neither the scale nor the bias vector is trained");
        e->sites = spec->sites;
        e->scale = !!spec->scale;
        e->bias = !!spec->bias;
        return 0;
    }
    if (spec->method == RD_METHOD_IA3) return 0;
    if (spec->method != RD_METHOD_LORA)
        return rd_error_set(err, "edits: unknown method %d (red, lora or ia3)", spec->method);
    e->rank = spec->rank ? spec->rank : RD_LORA_DEFAULT_RANK;
    e->lora_alpha = spec->lora_alpha != 0.0f ? spec->lora_alpha : RD_LORA_DEFAULT_ALPHA;
    e->targets = spec->lora_targets ? spec->lora_targets : RD_LORA_DEFAULT_TARGETS;
    e->lora_dropout = spec->lora_dropout;
    e->seed = spec->seed;
    if (e->rank < 1 || e->rank > RD_LORA_MAX_RANK)
        return rd_error_set(err, "edits: LoRA rank %d is out of range [1, %d]", e->rank,
                            RD_LORA_MAX_RANK);
    if (!(e->lora_alpha > 0.0f) || !isfinite(e->lora_alpha))
        return rd_error_set(err, "edits: LoRA alpha %g must be > 0", (double)e->lora_alpha);
    if (e->targets & ~((1 << RD_N_PROJ) - 1))
        return rd_error_set(err, "edits: LoRA target mask 0x%x names no projection", e->targets);
    if (!(e->lora_dropout >= 0.0f && e->lora_dropout < 1.0f))
        return rd_error_set(err, "edits: LoRA dropout %g must be in [0, 1)",
                            (double)e->lora_dropout);
    return 0;
}

rd_edits *rd_edits_new(const rd_config *cfg, const rd_edit_spec *spec, rd_error *err) {
    if (cfg->dim < 1 || cfg->dim > RD_EDITS_MAX_DIM || cfg->n_layers < 1 ||
        cfg->n_layers > RD_EDITS_MAX_LAYERS) {
        rd_error_set(err, "edits: model width %d or layer count %d out of range", cfg->dim,
                     cfg->n_layers);
        return NULL;
    }
    if (spec->method != RD_METHOD_RED &&
        (cfg->hidden_dim < 1 || cfg->hidden_dim > RD_EDITS_MAX_DIM || cfg->n_heads < 1 ||
         cfg->n_kv_heads < 1 || cfg->n_heads % cfg->n_kv_heads)) {
        rd_error_set(err, "edits: model shape (hidden width %d, %d heads, %d kv heads) out of "
                          "range", cfg->hidden_dim, cfg->n_heads, cfg->n_kv_heads);
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
    e->cfg = *cfg;
    e->dim = cfg->dim;
    e->n_layers = cfg->n_layers;
    int rc = take_spec(e, spec, err);
    if (!rc) rc = rd_layer_list_parse(spec->layers, cfg->n_layers, on, err);
    if (!rc) rc = edits_alloc(e, on, err);
    free(on);
    if (rc) {
        rd_edits_free(e);
        return NULL;
    }
    return e;
}

rd_edits *rd_edits_clone(const rd_edits *e, rd_error *err) {
    rd_edit_spec spec = {.sites = e->sites, .layers = e->layers_text, .scale = e->scale,
                         .bias = e->bias, .method = e->method, .rank = e->rank,
                         .lora_alpha = e->lora_alpha, .lora_targets = e->targets,
                         .lora_dropout = e->lora_dropout, .seed = e->seed};
    rd_edits *c = rd_edits_new(&e->cfg, &spec, err);
    if (c) memcpy(c->params, e->params, e->n_params * sizeof *e->params);
    return c;
}

void rd_edits_free(rd_edits *e) {
    if (!e) return;
    free(e->slot);
    free(e->layers_text);
    free(e->params);
    free(e->tensors);
    free(e->attn);
    free(e->ffn);
    free(e->lora);
    free(e->ia3);
    free(e);
}

/* ---- accessors -------------------------------------------------------------------- */

int rd_edits_dim(const rd_edits *e) { return e->dim; }
const rd_config *rd_edits_config(const rd_edits *e) { return &e->cfg; }
int rd_edits_method(const rd_edits *e) { return e->method; }
int rd_edits_rank(const rd_edits *e) { return e->rank; }
float rd_edits_lora_alpha(const rd_edits *e) { return e->lora_alpha; }
int rd_edits_lora_targets(const rd_edits *e) { return e->targets; }
float rd_edits_lora_dropout(const rd_edits *e) { return e->lora_dropout; }
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
int rd_edits_tensor_count(const rd_edits *e) { return e->n_tensors; }
const rd_edit_tensor *rd_edits_tensor_at(const rd_edits *e, int i) {
    return i >= 0 && i < e->n_tensors ? &e->tensors[i] : NULL;
}

double rd_edits_ratio(const rd_edits *e, const rd_model *m) {
    return (double)rd_model_param_count(m) / (double)e->n_params;
}

rd_edits_view rd_edits_view_at(const rd_edits *e, float strength) {
    return (rd_edits_view){.attn = e->attn, .ffn = e->ffn, .strength = strength, .lora = e->lora,
                           .lora_rank = e->lora ? e->rank : 0, .lora_scale = e->lora ? e->lora_alpha / (float)e->rank : 0.0f,
                           .ia3 = e->ia3};
}

int rd_edits_grad_new(rd_edits *e, float *grad, rd_edits_grad *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    const size_t L = (size_t)e->n_layers;
    rd_site_grad *attn = e->attn ? calloc(L, sizeof *attn) : NULL;
    rd_site_grad *ffn = e->ffn ? calloc(L, sizeof *ffn) : NULL;
    rd_lora_grad *lora = e->lora ? calloc(L, sizeof *lora) : NULL;
    rd_ia3_grad *ia3 = e->ia3 ? calloc(L, sizeof *ia3) : NULL;
    if ((e->attn && !attn) || (e->ffn && !ffn) || (e->lora && !lora) || (e->ia3 && !ia3)) {
        free(attn);
        free(ffn);
        free(lora);
        free(ia3);
        return rd_error_set(err, "out of memory");
    }
    for (int i = 0; i < e->n_tensors; i++) {
        const rd_edit_tensor *t = &e->tensors[i];
        float *g = grad + t->offset;
        const int l = t->layer;
        /* (every tensor's array was allocated above; the checks are for the analysers) */
        if (e->method == RD_METHOD_RED) {
            rd_site_grad *arr = strstr(t->name, ".attn.") ? attn : ffn;
            if (!arr) continue;
            if (t->kind) arr[l].dbias = g;
            else arr[l].dscale = g;
        } else if (e->method == RD_METHOD_LORA) {
            if (!lora) continue;
            if (t->kind) lora[l].db[t->proj] = g;
            else lora[l].da[t->proj] = g;
        } else {
            if (!ia3) continue;
            float **dst = t->proj == RD_PROJ_K ? &ia3[l].dk : t->proj == RD_PROJ_V ? &ia3[l].dv
                                                                                   : &ia3[l].dffn;
            *dst = g;
        }
    }
    *out = (rd_edits_grad){.attn = attn, .ffn = ffn, .lora = lora, .ia3 = ia3};
    return 0;
}

void rd_edits_grad_free(rd_edits_grad *g) {
    if (!g) return;
    free((void *)g->attn);
    free((void *)g->ffn);
    free((void *)g->lora);
    free((void *)g->ia3);
    memset(g, 0, sizeof *g);
}

float *rd_edits_vector(rd_edits *e, int layer, int site, int want_bias) {
    if (layer < 0 || layer >= e->n_layers) return NULL;
    const rd_site_edit *rows = site == RD_SITE_ATTN ? e->attn : site == RD_SITE_FFN ? e->ffn : NULL;
    if (!rows) return NULL;
    return (float *)(want_bias ? rows[layer].bias : rows[layer].scale);
}

const float *rd_edits_vector_const(const rd_edits *e, int layer, int site, int want_bias) {
    return rd_edits_vector((rd_edits *)e, layer, site, want_bias);
}

float *rd_edits_lora_a(rd_edits *e, int layer, int proj) {
    return e->lora && layer >= 0 && layer < e->n_layers && proj >= 0 && proj < RD_N_PROJ
               ? (float *)e->lora[layer].a[proj] : NULL;
}

float *rd_edits_lora_b(rd_edits *e, int layer, int proj) {
    return e->lora && layer >= 0 && layer < e->n_layers && proj >= 0 && proj < RD_N_PROJ
               ? (float *)e->lora[layer].b[proj] : NULL;
}

float *rd_edits_ia3(rd_edits *e, int layer, int proj) {
    if (!e->ia3 || layer < 0 || layer >= e->n_layers) return NULL;
    const rd_ia3_edit *r = &e->ia3[layer];
    return (float *)(proj == RD_PROJ_K ? r->k : proj == RD_PROJ_V ? r->v
                                            : proj == RD_PROJ_DOWN ? r->ffn : NULL);
}
