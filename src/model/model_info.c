/* What a loaded model is made of, for the layers above (rd_model_describe in model.h): they
 * read this instead of reaching into the weights. */
#include <string.h>

#include "redit/model.h"

void rd_model_describe(const rd_model *m, rd_model_info *out) {
    const rd_model_file *f = &m->file;
    const rd_weights *w = &f->w;
    memset(out, 0, sizeof *out);
    out->name = f->name;
    out->format = f->format;
    out->gguf_version = f->gguf_version;
    out->tied_classifier = w->tied_classifier;
    out->mapped_bytes = rd_weights_mapped_bytes(w);
    out->heap_buffers = w->n_owned;
    out->heap_bytes = w->owned_bytes;
    out->nonfinite = rd_model_nonfinite(m);
    out->count[w->tok_embeddings.type]++;
    if (!w->tied_classifier) out->count[w->classifier.type]++;
    int in_layers[RD_DTYPE_COUNT] = {0};
    for (int l = 0; l < f->cfg.n_layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        const rd_matrix *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
            out->count[all[i]->type]++;
            in_layers[all[i]->type]++;
        }
    }
    out->layer_type = RD_DTYPE_F32;
    for (int t = 0; t < RD_DTYPE_COUNT; t++)
        if (in_layers[t] > in_layers[out->layer_type]) out->layer_type = (rd_dtype)t;
}
