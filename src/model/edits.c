/* RED edit sets: the flat parameter array, the forward pass's view of it and the gradient
 * views (see include/redit/edits.h). Site names and layer lists are in edit_layers.c, edit
 * files in edits_file.c, the base-model fingerprint in fingerprint.c.
 *
 * Layout of the flat array: for each edited layer ascending, for site attn then ffn (when
 * edited), scale then bias (when trained), dim floats each. The view rows (one rd_site_edit
 * per layer and edited site) point into that array and never move: the array is allocated
 * once with the edit set. */
#include "redit/edits.h"

#include <stdlib.h>
#include <string.h>

#include "edit_layers.h"

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
    e->layers_text = rd_layer_list_text(on, e->n_layers);
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
    if (cfg->dim < 1 || cfg->dim > RD_EDITS_MAX_DIM || cfg->n_layers < 1 ||
        cfg->n_layers > RD_EDITS_MAX_LAYERS) {
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
    int rc = rd_layer_list_parse(spec->layers, cfg->n_layers, on, err);
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

const float *rd_edits_vector_const(const rd_edits *e, int layer, int site, int want_bias) {
    return rd_edits_vector((rd_edits *)e, layer, site, want_bias);
}

