/* Exporting edits (model layer): RED as llama.cpp control vectors through io's generic GGUF
 * writer and as safetensors named after the Hugging Face projections through io's
 * safetensors writer; every method as a merged model through rd_gguf_write. (LoRA and IA3
 * adapter files: edits_adapters.c.) */
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

/* These exports are RED's: LoRA and IA3 sets are refused, naming their formats. */
static int not_red(const rd_edits *e, const char *path, rd_error *err) {
    if (rd_edits_method(e) == RD_METHOD_RED) return 0;
    return rd_error_set(err, "%s: this format holds RED edits; these are %s edits (their "
                             "exports: %s)", path,
                        rd_edits_method(e) == RD_METHOD_LORA ? "LoRA" : "IA3",
                        rd_edits_method(e) == RD_METHOD_LORA ? "peft, llama-lora, merged"
                                                             : "peft, merged");
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

/* The type a changed matrix is written in: `want` when given (not RD_DTYPE_COUNT), else the
 * model's when it is F32/F16/BF16 (widen, change, narrow), else F32. */
static rd_dtype changed_type(rd_dtype t, rd_dtype want) {
    if (want != RD_DTYPE_COUNT) return want;
    return t == RD_DTYPE_F16 || t == RD_DTYPE_BF16 ? t : RD_DTYPE_F32;
}

/* How a matrix W (rows × cols) changes: W ← diag(row_scale)·W·diag(col_scale) + k·B·A
 * (each part optional: NULL scales, a == NULL for no LoRA term; A (rank, cols), B (rows,
 * rank)). */
typedef struct change {
    const float *row_scale, *col_scale;
    const float *a, *b;
    int rank;
    float k;
} change;

/* *dst ← src changed by ch, written as changed_type(src, want) in a buffer owned by store. */
static int change_matrix(rd_weights *store, const rd_matrix *src, const change *ch,
                         rd_dtype want, rd_matrix *dst, float *row, rd_error *err) {
    const rd_dtype type = changed_type(src->type, want);
    const rd_dtype_info *info = rd_dtype_info_of(type);
    const size_t row_bytes = (size_t)src->cols * info->block_bytes / info->block_elems;
    char *data = rd_weights_alloc(store, row_bytes * (size_t)src->rows, err);
    if (!data) return -1;
    const int64_t rows = src->rows, cols = src->cols; /* src may be dst */
    for (int64_t r = 0; r < rows; r++) {
        rd_matrix_row_f32(src, r, row);
        if (ch->row_scale)
            for (int64_t k = 0; k < cols; k++) row[k] *= ch->row_scale[r];
        if (ch->col_scale)
            for (int64_t k = 0; k < cols; k++) row[k] *= ch->col_scale[k];
        for (int j = 0; ch->a && j < ch->rank; j++) {
            const float f = ch->k * ch->b[r * ch->rank + j];
            const float *a = ch->a + (size_t)j * (size_t)cols;
            for (int64_t k = 0; k < cols; k++) row[k] += f * a[k];
        }
        info->from_f32(row, data + (size_t)r * row_bytes, (size_t)cols);
    }
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
                      float *row, rd_dtype want, rd_error *err) {
    const float *s = rd_edits_vector(e, l, site, 0), *b = rd_edits_vector(e, l, site, 1);
    rd_matrix *m = site == RD_SITE_FFN ? &L->w2 : &L->wo;
    const float **bias = site == RD_SITE_FFN ? &L->w2_bias : &L->wo_bias;
    const change ch = {.row_scale = s};
    if (s && change_matrix(store, m, &ch, want, m, row, err)) return -1;
    return merge_bias(store, bias, s, b, rd_edits_dim(e), err);
}

/* The matrix of projection proj (RD_PROJ_*) in L. */
static rd_matrix *proj_matrix(rd_layer_weights *L, int proj) {
    rd_matrix *const m[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2};
    return m[proj];
}

/* Folds layer l's LoRA factors (W += (lora_alpha/r)·B·A) or IA3 vectors (wk, wv rows;
 * w2 columns) into L. */
static int merge_method(rd_weights *store, rd_edits *e, int l, rd_layer_weights *L, float *row,
                        rd_dtype want, rd_error *err) {
    for (int p = RD_PROJ_Q; p <= RD_PROJ_DOWN; p++) {
        change ch = {0};
        if (rd_edits_method(e) == RD_METHOD_LORA) {
            ch.a = rd_edits_lora_a(e, l, p);
            ch.b = rd_edits_lora_b(e, l, p);
            ch.rank = rd_edits_rank(e);
            ch.k = rd_edits_lora_alpha(e) / (float)rd_edits_rank(e);
            if (!ch.a) continue;
        } else {
            const float *s = rd_edits_ia3(e, l, p);
            if (!s) continue;
            if (p == RD_PROJ_DOWN) ch.col_scale = s;
            else ch.row_scale = s;
        }
        rd_matrix *m = proj_matrix(L, p);
        if (change_matrix(store, m, &ch, want, m, row, err)) return -1;
    }
    return 0;
}

int rd_export_merged(rd_edits *e, const rd_model *m, const char *path, rd_error *err) {
    return rd_export_merged_as(e, m, path, RD_DTYPE_COUNT, err);
}

int rd_export_merged_as(rd_edits *e, const rd_model *m, const char *path, rd_dtype want,
                        rd_error *err) {
    if (want != RD_DTYPE_COUNT && want != RD_DTYPE_F32 && want != RD_DTYPE_F16 &&
        want != RD_DTYPE_BF16)
        return rd_error_set(err, "%s: changed matrices are written as F32, F16 or BF16", path);
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
            if (rd_edits_layer_on(e, l) && rd_edits_method(e) != RD_METHOD_RED)
                rc = merge_method(&store, e, l, &layers[l], row, want, err);
            else if (rd_edits_layer_on(e, l))
                rc = merge_site(&store, e, l, RD_SITE_ATTN, &layers[l], row, want, err) ||
                     merge_site(&store, e, l, RD_SITE_FFN, &layers[l], row, want, err);
        if (rc) rd_error_prefix(err, "%s: merging the edits", path);
        else rc = rd_gguf_write(path, &out, RD_DTYPE_COUNT, err);
    }
    free(row);
    free(layers);
    rd_weights_release(&store);
    return rc ? -1 : 0;
}
