/* Exporting RED edits (model layer): llama.cpp control vectors through io's generic GGUF
 * writer, safetensors named after the Hugging Face projections through io's safetensors
 * writer, and a merged model through rd_gguf_write. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/export.h"
#include "redit/gguf_writer.h"
#include "redit/model_file.h"
#include "redit/safetensors.h"

#define CVEC_ALIGNMENT RD_GGUF_WRITER_ALIGNMENT

static const float *ffn_bias(rd_edits *e, int l) {
    return rd_edits_layer_on(e, l) ? rd_edits_vector(e, l, RD_SITE_FFN, 1) : NULL;
}

static void count_report(rd_edits *e, rd_cvec_report *r) {
    memset(r, 0, sizeof *r);
    for (int l = 0; l < rd_edits_n_layers(e); l++) {
        if (!rd_edits_layer_on(e, l)) continue;
        r->n_scale_dropped += (rd_edits_vector(e, l, RD_SITE_FFN, 0) != NULL) +
                              (rd_edits_vector(e, l, RD_SITE_ATTN, 0) != NULL);
        r->n_attn_bias_dropped += rd_edits_vector(e, l, RD_SITE_ATTN, 1) != NULL;
        const float *b = ffn_bias(e, l);
        if (b && l > 0) r->n_written++;
        if (b && l == 0) /* dropped only when there is something to drop */
            for (int i = 0; i < rd_edits_dim(e) && !r->layer0_ffn_bias; i++)
                r->layer0_ffn_bias = b[i] != 0.0f;
    }
}

/* The control vector's key/values and tensors direction.N (F32, dim) for the edited
 * layers N >= 1, ascending. */
static int cvec_fill(rd_gguf_writer *w, rd_edits *e, rd_error *err) {
    const int64_t shape[1] = {rd_edits_dim(e)};
    rd_gguf_writer_kv_str(w, "general.architecture", "controlvector");
    /* GGUF types this key u32 (llama.cpp refuses another type); layer_count is i32, as
     * llama.cpp's own cvector-generator writes it */
    rd_gguf_writer_kv_u32(w, "general.alignment", (uint32_t)CVEC_ALIGNMENT);
    rd_gguf_writer_kv_str(w, "controlvector.model_hint", "llama");
    rd_gguf_writer_kv_i32(w, "controlvector.layer_count", rd_edits_n_layers(e));
    for (int l = 1; l < rd_edits_n_layers(e); l++) {
        const float *b = ffn_bias(e, l);
        if (!b) continue;
        char name[32];
        snprintf(name, sizeof name, "direction.%d", l);
        if (rd_gguf_writer_add(w, name, RD_DTYPE_F32, shape, 1, b, err)) return -1;
    }
    return 0;
}

/* These exports are RED's: LoRA and IA3 sets are refused (not yet). */
static int not_red(const rd_edits *e, const char *path, rd_error *err) {
    if (rd_edits_method(e) == RD_METHOD_RED) return 0;
    return rd_error_set(err, "%s: exporting %s edits is not yet supported (RED edits only)", path,
                        rd_edits_method(e) == RD_METHOD_LORA ? "LoRA" : "IA3");
}

int rd_export_cvec(rd_edits *e, const char *path, rd_cvec_report *rep, rd_error *err) {
    if (not_red(e, path, err)) return -1;
    rd_cvec_report r;
    count_report(e, &r);
    if (rep) *rep = r;
    if (r.n_written == 0)
        return rd_error_set(err, "%s: nothing to export as a control vector: the edits have no "
                                 "ffn bias on a layer above 0 (control vectors carry only "
                                 "ffn biases of layers 1..%d)",
                            path, rd_edits_n_layers(e) - 1);
    rd_gguf_writer *w = rd_gguf_writer_new(err);
    int rc = -1;
    if (!w || cvec_fill(w, e, err))
        rd_error_prefix(err, "%s", path);
    else
        rc = rd_gguf_writer_commit(w, path, err);
    rd_gguf_writer_free(w);
    return rc;
}

/* ---- safetensors named after the Hugging Face projections -------------------------- */

static int add_site(rd_st_writer *w, rd_edits *e, int l, int site, rd_error *err) {
    const char *proj = site == RD_SITE_FFN ? "mlp.down_proj" : "self_attn.o_proj";
    const int64_t shape[1] = {rd_edits_dim(e)};
    for (int want_bias = 0; want_bias <= 1; want_bias++) {
        const float *v = rd_edits_vector(e, l, site, want_bias);
        if (!v) continue;
        char name[96]; /* copied by the writer */
        snprintf(name, sizeof name, "model.layers.%d.%s.%s", l, proj,
                 want_bias ? "red_bias" : "red_scale");
        if (rd_st_writer_add(w, name, RD_DTYPE_F32, shape, 1, v, err)) return -1;
    }
    return 0;
}

static int st_metadata(rd_st_writer *w, rd_edits *e, const rd_model *m, rd_error *err) {
    char num[32];
    if (rd_st_writer_meta(w, "format", "redit-red-hf", err) ||
        rd_st_writer_meta(w, "formula", "out' = red_scale * out + red_bias", err) ||
        (m && rd_st_writer_meta(w, "base_model", m->file.name, err)) ||
        rd_st_writer_meta(w, "sites", rd_sites_name(rd_edits_sites(e)), err) ||
        rd_st_writer_meta(w, "layers", rd_edits_layers_text(e), err))
        return -1;
    snprintf(num, sizeof num, "%d", rd_edits_dim(e));
    if (rd_st_writer_meta(w, "dim", num, err)) return -1;
    snprintf(num, sizeof num, "%d", rd_edits_n_layers(e));
    return rd_st_writer_meta(w, "n_layers", num, err);
}

int rd_export_safetensors(rd_edits *e, const rd_model *m, const char *path, rd_error *err) {
    if (not_red(e, path, err)) return -1;
    rd_st_writer *w = rd_st_writer_new(err);
    if (!w) return -1;
    int rc = st_metadata(w, e, m, err);
    for (int l = 0; l < rd_edits_n_layers(e) && !rc; l++)
        if (rd_edits_layer_on(e, l))
            rc = add_site(w, e, l, RD_SITE_ATTN, err) || add_site(w, e, l, RD_SITE_FFN, err);
    if (!rc) rc = rd_st_writer_commit(w, path, err);
    rd_st_writer_free(w);
    return rc ? -1 : 0;
}

/* ---- merged: the edit folded into the model's weights ------------------------------ */

/* The type a scaled matrix is written in: the model's when it is F32/F16/BF16 (widen,
 * scale, narrow), else F32. */
static rd_dtype scaled_type(rd_dtype t) {
    return t == RD_DTYPE_F16 || t == RD_DTYPE_BF16 ? t : RD_DTYPE_F32;
}

/* *dst ← rows of src scaled by s (row r by s[r]), in a buffer owned by store. */
static int scale_rows(rd_weights *store, const rd_matrix *src, const float *s, rd_matrix *dst,
                      float *row, rd_error *err) {
    const rd_dtype type = scaled_type(src->type);
    const rd_dtype_info *info = rd_dtype_info_of(type);
    const size_t row_bytes = (size_t)src->cols * info->block_bytes / info->block_elems;
    char *data = rd_weights_alloc(store, row_bytes * (size_t)src->rows, err);
    if (!data) return -1;
    for (int64_t r = 0; r < src->rows; r++) {
        rd_matrix_row_f32(src, r, row);
        for (int64_t k = 0; k < src->cols; k++) row[k] *= s[r];
        info->from_f32(row, data + (size_t)r * row_bytes, (size_t)src->cols);
    }
    const int64_t rows = src->rows, cols = src->cols; /* src may be dst */
    memset(dst, 0, sizeof *dst);
    return rd_matrix_init(dst, type, data, rows, cols, err);
}

/* *bias ← s ⊙ old + b (old: the model's own output bias, or none), in a buffer owned by
 * store; left as it is when the site has neither an old bias nor an edit bias. */
static int merge_bias(rd_weights *store, const float **bias, const float *s, const float *b,
                      int d, rd_error *err) {
    const float *old = *bias;
    if (!old && !b) return 0;
    float *v = rd_weights_alloc(store, (size_t)d * sizeof(float), err);
    if (!v) return -1;
    for (int j = 0; j < d; j++)
        v[j] = (old ? (s ? s[j] * old[j] : old[j]) : 0.0f) + (b ? b[j] : 0.0f);
    *bias = v;
    return 0;
}

/* Folds the edits of layer l, site `site` into the matrix and bias of L. */
static int merge_site(rd_weights *store, rd_edits *e, int l, int site, rd_layer_weights *L,
                      float *row, rd_error *err) {
    const float *s = rd_edits_vector(e, l, site, 0), *b = rd_edits_vector(e, l, site, 1);
    rd_matrix *m = site == RD_SITE_FFN ? &L->w2 : &L->wo;
    const float **bias = site == RD_SITE_FFN ? &L->w2_bias : &L->wo_bias;
    if (s && scale_rows(store, m, s, m, row, err)) return -1;
    return merge_bias(store, bias, s, b, rd_edits_dim(e), err);
}

int rd_export_merged(rd_edits *e, const rd_model *m, const char *path, rd_error *err) {
    if (not_red(e, path, err)) return -1;
    const rd_config *c = rd_model_config(m);
    if (rd_edits_dim(e) != c->dim || rd_edits_n_layers(e) != c->n_layers)
        return rd_error_set(err, "%s: the edits (width %d, %d layers) do not fit the model "
                                 "(width %d, %d layers)",
                            path, rd_edits_dim(e), rd_edits_n_layers(e), c->dim, c->n_layers);
    rd_model_file out = m->file; /* shallow: borrows the model's weights and vocabulary */
    rd_weights store = {0};      /* owns what merging creates */
    rd_layer_weights *layers = malloc((size_t)c->n_layers * sizeof *layers);
    float *row = malloc((size_t)(c->hidden_dim > c->dim ? c->hidden_dim : c->dim) * sizeof *row);
    int rc = -1;
    if (!layers || !row) {
        rd_error_set(err, "%s: out of memory", path);
    } else {
        memcpy(layers, m->file.w.layers, (size_t)c->n_layers * sizeof *layers);
        out.w.layers = layers;
        rc = 0;
        for (int l = 0; l < c->n_layers && !rc; l++)
            if (rd_edits_layer_on(e, l))
                rc = merge_site(&store, e, l, RD_SITE_ATTN, &layers[l], row, err) ||
                     merge_site(&store, e, l, RD_SITE_FFN, &layers[l], row, err);
        if (rc) rd_error_prefix(err, "%s: merging the edits", path);
        else rc = rd_gguf_write(path, &out, RD_DTYPE_COUNT, err);
    }
    free(row);
    free(layers);
    rd_weights_release(&store);
    return rc ? -1 : 0;
}
