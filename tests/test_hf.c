/* Hugging Face model folders: config.json + safetensors (single file or shards) +
 * tokenizer.json, written by the test from a random model in redit's adjacent RoPE layout
 * with Q/K rows permuted to Hugging Face's rotate_half layout — loading the folder must give
 * the original model's logits. Bad folders give one message naming the problem. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redit/forward.h"
#include "redit/model.h"
#include "redit/safetensors.h"
#include "tiny_model.h"

typedef struct hf_opts {
    int tied, shards, bf16;
    const char *model_type;
    int rope_scaling;     /* write a rope_scaling object */
    const char *drop;     /* a tensor name to leave out */
    int bad_shape;        /* write down_proj of layer 0 transposed */
} hf_opts;

static void write_config(const char *dir, const rd_config *c, const hf_opts *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model_type", o->model_type ? o->model_type : "llama");
    cJSON_AddNumberToObject(j, "hidden_size", c->dim);
    cJSON_AddNumberToObject(j, "intermediate_size", c->hidden_dim);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->seq_len);
    cJSON_AddNumberToObject(j, "rms_norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", o->tied);
    if (o->rope_scaling) {
        cJSON *rs = cJSON_AddObjectToObject(j, "rope_scaling");
        cJSON_AddStringToObject(rs, "type", "linear");
        cJSON_AddNumberToObject(rs, "factor", 2);
    }
    char path[700], *text = cJSON_Print(j);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    free(text);
    cJSON_Delete(j);
}

/* A (rows, cols) f32 copy of m, Q/K rows in rotate_half order when heads > 0. */
static float *hf_rows(const rd_matrix *m, int heads) {
    float *out = malloc(sizeof(float) * (size_t)(m->rows * m->cols));
    for (int64_t r = 0; r < m->rows; r++)
        rd_matrix_row_f32(m, heads ? rd_rope_adjacent_row(r, m->rows / heads) : r,
                          out + r * m->cols);
    return out;
}

typedef struct blob_list {
    void *p[256];
    int n;
} blob_list;

static void add(rd_st_writer *w, blob_list *bl, const char *name, float *data, int64_t rows,
                int64_t cols, int bf16, const hf_opts *o) {
    if (o->drop && !strcmp(o->drop, name)) {
        free(data);
        return;
    }
    int64_t shape[2] = {rows, cols};
    rd_error err = {0};
    void *stored = data;
    size_t n = (size_t)(rows * (cols ? cols : 1));
    if (bf16) {
        uint16_t *h = malloc(n * 2);
        for (size_t i = 0; i < n; i++) h[i] = rd_f32_to_bf16(data[i]);
        free(data);
        stored = h;
    }
    bl->p[bl->n++] = stored;
    assert_int_equal(rd_st_writer_add(w, name, bf16 ? RD_DTYPE_BF16 : RD_DTYPE_F32, shape,
                                      cols ? 2 : 1, stored, &err), 0);
}

static float *vec_copy(const float *v, int d) {
    float *out = malloc(sizeof(float) * (size_t)d);
    memcpy(out, v, sizeof(float) * (size_t)d);
    return out;
}

/* Writes f as a Hugging Face folder in dir. */
static void write_hf(const char *dir, const rd_model_file *f, const hf_opts *o) {
    const rd_config *c = &f->cfg;
    write_config(dir, c, o);
    rd_error err = {0};
    rd_st_writer *w[2] = {rd_st_writer_new(&err), rd_st_writer_new(&err)};
    blob_list bl = {.n = 0};
    char name[128];
    const rd_weights *W = &f->w;
    add(w[0], &bl, "model.embed_tokens.weight", hf_rows(&W->tok_embeddings, 0), c->vocab_size,
        c->dim, o->bf16, o);
    for (int l = 0; l < c->n_layers; l++) {
        rd_st_writer *sw = w[o->shards ? l % 2 : 0];
        const rd_layer_weights *L = &W->layers[l];
#define N(x) (snprintf(name, sizeof name, "model.layers.%d." x, l), name)
        add(sw, &bl, N("input_layernorm.weight"), vec_copy(L->attn_norm, c->dim), c->dim, 0, 0, o);
        add(sw, &bl, N("self_attn.q_proj.weight"), hf_rows(&L->wq, c->n_heads), L->wq.rows, L->wq.cols, o->bf16, o);
        add(sw, &bl, N("self_attn.k_proj.weight"), hf_rows(&L->wk, c->n_kv_heads), L->wk.rows, L->wk.cols, o->bf16, o);
        add(sw, &bl, N("self_attn.v_proj.weight"), hf_rows(&L->wv, 0), L->wv.rows, L->wv.cols, o->bf16, o);
        add(sw, &bl, N("self_attn.o_proj.weight"), hf_rows(&L->wo, 0), L->wo.rows, L->wo.cols, o->bf16, o);
        add(sw, &bl, N("post_attention_layernorm.weight"), vec_copy(L->ffn_norm, c->dim), c->dim, 0, 0, o);
        add(sw, &bl, N("mlp.gate_proj.weight"), hf_rows(&L->w1, 0), L->w1.rows, L->w1.cols, o->bf16, o);
        if (o->bad_shape && l == 0)
            add(sw, &bl, N("mlp.down_proj.weight"), hf_rows(&L->w2, 0), L->w2.cols, L->w2.rows, o->bf16, o);
        else
            add(sw, &bl, N("mlp.down_proj.weight"), hf_rows(&L->w2, 0), L->w2.rows, L->w2.cols, o->bf16, o);
        add(sw, &bl, N("mlp.up_proj.weight"), hf_rows(&L->w3, 0), L->w3.rows, L->w3.cols, o->bf16, o);
#undef N
    }
    add(w[0], &bl, "model.norm.weight", vec_copy(W->final_norm, c->dim), c->dim, 0, 0, o);
    if (!o->tied) add(w[0], &bl, "lm_head.weight", hf_rows(&W->classifier, 0), c->vocab_size, c->dim, o->bf16, o);
    char path[700];
    if (!o->shards) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        assert_int_equal(rd_st_writer_commit(w[0], path, &err), 0);
    } else {
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, i + 1);
            assert_int_equal(rd_st_writer_commit(w[i], path, &err), 0);
        }
        /* the index: every tensor name → its shard */
        cJSON *idx = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(idx, "weight_map");
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, i + 1);
            rd_st_file *sf = rd_st_open(path, &err);
            assert_non_null(sf);
            char shard[64];
            snprintf(shard, sizeof shard, "model-0000%d-of-00002.safetensors", i + 1);
            for (int t = 0; t < rd_st_count(sf); t++)
                cJSON_AddStringToObject(map, rd_st_at(sf, t)->name, shard);
            rd_st_close(sf);
        }
        char *text = cJSON_Print(idx);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        FILE *fp = fopen(path, "w");
        fputs(text, fp);
        fclose(fp);
        free(text);
        cJSON_Delete(idx);
    }
    for (int i = 0; i < 2; i++) rd_st_writer_free(w[i]);
    for (int i = 0; i < bl.n; i++) free(bl.p[i]);
}

static rd_config cfg32000(void) {
    rd_config c = {.dim = 64, .hidden_dim = 160, .n_layers = 2, .n_heads = 8, .n_kv_heads = 4,
                   .vocab_size = 32000, .seq_len = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                   .rope_layout = RD_ROPE_ADJACENT};
    return c;
}

static float *logits_of(const rd_model *m, const int *tok, int T) {
    rd_error err = {0};
    rd_ctx *ctx = rd_ctx_new(m, 1, T, &err);
    assert_non_null(ctx);
    float *out = malloc(sizeof(float) * (size_t)T * m->file.cfg.vocab_size);
    assert_int_equal(rd_forward(ctx, NULL, tok, 1, T, RD_LOGITS_ALL, out, &err), 0);
    rd_ctx_free(ctx);
    return out;
}

static void check_roundtrip(const hf_opts *o, float tol) {
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_config c = cfg32000();
    rd_model_file f;
    rd_error err = {0};
    assert_int_equal(rd_model_file_random(&f, &c, o->tied, 11, RD_DTYPE_F32, &err), 0);
    write_hf(dir, &f, o);
    rd_model *orig;
    if (o->bf16) { /* the reference: the same weights rounded to bf16, through GGUF */
        char gguf[700];
        snprintf(gguf, sizeof gguf, "%s/reference.gguf", dir);
        assert_int_equal(rd_gguf_write(gguf, &f, RD_DTYPE_BF16, &err), 0);
        rd_model_file_release(&f);
        orig = rd_model_load(gguf, NULL, &err);
        unlink(gguf);
    } else {
        orig = rd_model_from_file(&f, NULL, &err);
    }
    assert_non_null(orig);
    rd_model *hf = rd_model_load(dir, NULL, &err);
    if (!hf) fail_msg("%s", err.msg);
    assert_int_equal(hf->file.format, RD_FORMAT_SAFETENSORS);
    assert_int_equal(hf->file.cfg.rope_layout, RD_ROPE_HALF);
    assert_int_equal(hf->file.cfg.n_kv_heads, 4);
    assert_int_equal(hf->file.w.tied_classifier, o->tied);
    int tok[12] = {1, 15043, 3186, 29892, 920, 526, 366, 29973, 13, 2, 450, 100};
    float *a = logits_of(orig, tok, 12), *b = logits_of(hf, tok, 12);
    float worst = 0;
    for (int i = 0; i < 12 * 32000; i++) worst = fmaxf(worst, fabsf(a[i] - b[i]) / fmaxf(1.0f, fabsf(a[i])));
    printf("HF folder (%s, %s, %s): worst relative logit difference %.2e (tolerance %.0e)\n",
           o->bf16 ? "BF16" : "F32", o->shards ? "2 shards" : "one file",
           o->tied ? "tied" : "untied", worst, (double)tol);
    assert_true(worst <= tol);
    free(a);
    free(b);
    rd_model_free(orig);
    rd_model_free(hf);
    tiny_rmdir(dir);
}

static void test_hf_folders_give_the_same_logits(void **state) {
    (void)state;
    hf_opts cases[] = {{.tied = 0}, {.tied = 1}, {.tied = 0, .shards = 1}};
    for (size_t i = 0; i < 3; i++) check_roundtrip(&cases[i], 1e-5f);
    hf_opts bf = {.tied = 1, .bf16 = 1}; /* against the same bf16 weights in a GGUF file */
    check_roundtrip(&bf, 1e-5f);
}

/* Heap in use (malloc'ed and mmap'ed chunks of malloc), for the no-copy check. */
static size_t heap_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void copy_matrix(rd_weights *w, rd_matrix *m) {
    rd_error err = {0};
    size_t n = (size_t)m->rows * m->row_bytes;
    void *p = rd_weights_alloc(w, n, &err);
    assert_non_null(p);
    memcpy(p, m->data, n);
    m->data = p;
}

static void copy_vector(rd_weights *w, const float **v, int d) {
    rd_error err = {0};
    float *p = rd_weights_alloc(w, (size_t)d * sizeof *p, &err);
    assert_non_null(p);
    memcpy(p, *v, (size_t)d * sizeof *p);
    *v = p;
}

/* The folder's tensors are used in place in its mappings: no heap copy (counted by the
 * weights and measured with mallinfo2), every shard mapped; and the logits are bit for bit
 * those of the same weights copied to the heap. */
static void check_mapped(const hf_opts *o) {
    char dir[512], path[700];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_config c = cfg32000();
    rd_model_file f, g;
    rd_error err = {0};
    assert_int_equal(rd_model_file_random(&f, &c, o->tied, 11, RD_DTYPE_F32, &err), 0);
    write_hf(dir, &f, o);
    rd_model_file_release(&f);
    size_t files = 0;
    for (int i = 0; i < 2; i++) {
        if (o->shards) snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, i + 1);
        else snprintf(path, sizeof path, "%s/model.safetensors", dir);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        files += (size_t)st.st_size;
        if (!o->shards) break;
    }
    size_t before = heap_in_use();
    if (rd_hf_load(dir, &g, &err)) fail_msg("%s", err.msg);
    size_t grown = heap_in_use() - before;
    printf("HF folder (%s, %s): %zu bytes mapped in %d mapping(s), %d heap buffers (%zu bytes); "
           "heap grew %zu bytes for %zu bytes of files\n", o->bf16 ? "BF16" : "F32",
           o->shards ? "2 shards" : "one file", rd_weights_mapped_bytes(&g.w), g.w.n_maps,
           g.w.n_owned, g.w.owned_bytes, grown, files);
    assert_int_equal(g.w.n_owned, 0);
    assert_int_equal(g.w.owned_bytes, 0);
    assert_int_equal(g.w.n_maps, o->shards ? 2 : 1);
    assert_int_equal(rd_weights_mapped_bytes(&g.w), files);
    assert_true(grown < files / 8); /* the layer array and headers, never the tensors */
    /* the same weights copied to the heap */
    rd_model_file h = {.cfg = g.cfg, .format = g.format};
    rd_weights *w = &h.w;
    w->layers = calloc((size_t)c.n_layers, sizeof *w->layers);
    assert_non_null(w->layers);
    w->tok_embeddings = g.w.tok_embeddings;
    copy_matrix(w, &w->tok_embeddings);
    for (int l = 0; l < c.n_layers; l++) {
        rd_layer_weights *L = &w->layers[l];
        *L = g.w.layers[l];
        rd_matrix *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (size_t i = 0; i < 7; i++) copy_matrix(w, all[i]);
        copy_vector(w, &L->attn_norm, c.dim);
        copy_vector(w, &L->ffn_norm, c.dim);
    }
    w->final_norm = g.w.final_norm;
    copy_vector(w, &w->final_norm, c.dim);
    w->tied_classifier = g.w.tied_classifier;
    w->classifier = g.w.classifier;
    if (w->tied_classifier) w->classifier = w->tok_embeddings;
    else copy_matrix(w, &w->classifier);
    rd_model *mapped = rd_model_from_file(&g, NULL, &err), *copied = rd_model_from_file(&h, NULL, &err);
    assert_non_null(mapped);
    assert_non_null(copied);
    assert_true(rd_model_fingerprint(mapped) == rd_model_fingerprint(copied));
    int tok[6] = {1, 15043, 3186, 29892, 920, 2};
    float *a = logits_of(mapped, tok, 6), *b = logits_of(copied, tok, 6);
    assert_memory_equal(a, b, sizeof(float) * 6 * 32000);
    free(a);
    free(b);
    rd_model_free(mapped);
    rd_model_free(copied);
    tiny_rmdir(dir);
}

static void test_hf_folders_are_mapped(void **state) {
    (void)state;
    hf_opts cases[] = {{.tied = 0}, {.tied = 1, .bf16 = 1}, {.tied = 0, .shards = 1}};
    for (size_t i = 0; i < 3; i++) check_mapped(&cases[i]);
}

/* A truncated or overwritten shard gives a message naming it. */
static void test_hf_damaged_safetensors(void **state) {
    (void)state;
    char dir[512], path[700];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_config c = cfg32000();
    c.vocab_size = 300;
    rd_model_file f;
    rd_error err = {0};
    assert_int_equal(rd_model_file_random(&f, &c, 0, 5, RD_DTYPE_F32, &err), 0);
    hf_opts o = {.shards = 1};
    write_hf(dir, &f, &o);
    rd_model_file_release(&f);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 100), 0);
    assert_null(rd_model_load(dir, NULL, &err));
    if (!strstr(err.msg, "model-00002-of-00002.safetensors")) fail_msg("%s", err.msg);
    assert_int_equal(truncate(path, 5), 0);
    assert_null(rd_model_load(dir, NULL, &err));
    if (!strstr(err.msg, "model-00002-of-00002.safetensors") || !strstr(err.msg, "truncated"))
        fail_msg("%s", err.msg);
    FILE *fp = fopen(path, "wb"); /* a header length beyond the file */
    fwrite("\xff\xff\xff\x00\x00\x00\x00\x00{}", 1, 10, fp);
    fclose(fp);
    assert_null(rd_model_load(dir, NULL, &err));
    if (!strstr(err.msg, "model-00002-of-00002.safetensors")) fail_msg("%s", err.msg);
    tiny_rmdir(dir);
}

static void test_hf_tokenizer(void **state) {
    (void)state;
    const char *tj = shared_fixture("llama2-tokenizer/tokenizer.json");
    if (!tj) fail_msg("../shared/fixtures/llama2-tokenizer/tokenizer.json is missing");
    char dir[512], cmd[2048];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_config c = cfg32000();
    rd_model_file f;
    rd_error err = {0};
    assert_int_equal(rd_model_file_random(&f, &c, 1, 3, RD_DTYPE_F32, &err), 0);
    hf_opts o = {.tied = 1};
    write_hf(dir, &f, &o);
    rd_model_file_release(&f);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/tokenizer.json'", tj, dir);
    assert_int_equal(system(cmd), 0);
    rd_model *m = rd_model_load(dir, NULL, &err);
    if (!m) fail_msg("%s", err.msg);
    const rd_tokenizer *t = rd_model_tokenizer(m);
    assert_non_null(t);
    int *ids;
    size_t n;
    assert_int_equal(rd_tokenizer_encode(t, "Hello world", 11, 0, 0, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 15043);
    assert_int_equal(ids[1], 3186);
    free(ids);
    rd_model_free(m);
    /* without tokenizer.json, SentencePiece's tokenizer.model is read */
    const char *tm = shared_fixture("llama2-tokenizer/tokenizer.model");
    if (!tm) fail_msg("../shared/fixtures/llama2-tokenizer/tokenizer.model is missing");
    snprintf(cmd, sizeof cmd, "rm '%s/tokenizer.json' && cp '%s' '%s/tokenizer.model'", dir, tm, dir);
    assert_int_equal(system(cmd), 0);
    if (!(m = rd_model_load(dir, NULL, &err))) fail_msg("%s", err.msg);
    assert_non_null(t = rd_model_tokenizer(m));
    assert_int_equal(rd_tokenizer_encode(t, "Hello world", 11, 1, 0, &ids, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043);
    assert_int_equal(ids[2], 3186);
    free(ids);
    rd_model_free(m);
    /* a .safetensors file path loads its folder */
    char file[700];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    assert_non_null(m = rd_model_load(file, NULL, &err));
    rd_model_free(m);
    tiny_rmdir(dir);
}

static void expect_bad(const hf_opts *o, const char *words) {
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_config c = cfg32000();
    c.vocab_size = 300;
    rd_model_file f;
    rd_error err = {0};
    assert_int_equal(rd_model_file_random(&f, &c, o->tied, 5, RD_DTYPE_F32, &err), 0);
    write_hf(dir, &f, o);
    rd_model_file_release(&f);
    rd_model *m = rd_model_load(dir, NULL, &err);
    if (m) fail_msg("a bad folder loaded (expected \"%s\")", words);
    if (!strstr(err.msg, words) || !strstr(err.msg, dir))
        fail_msg("message \"%s\" should name the folder and say \"%s\"", err.msg, words);
    tiny_rmdir(dir);
}

static void test_hf_bad_folders(void **state) {
    (void)state;
    hf_opts scaling = {.rope_scaling = 1}, gpt2 = {.model_type = "gpt2"},
            missing = {.drop = "model.layers.1.mlp.up_proj.weight"},
            shape = {.bad_shape = 1}, no_norm = {.drop = "model.norm.weight"};
    expect_bad(&scaling, "rope_scaling");
    expect_bad(&gpt2, "gpt2");
    expect_bad(&missing, "model.layers.1.mlp.up_proj.weight");
    expect_bad(&shape, "wrong shape");
    expect_bad(&no_norm, "model.norm.weight");
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_error err = {0};
    assert_null(rd_model_load(dir, NULL, &err));
    assert_non_null(strstr(err.msg, "directory"));
    tiny_rmdir(dir);

    /* a shard index naming a file that is not there */
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_config c = cfg32000();
    c.vocab_size = 300;
    rd_model_file f;
    assert_int_equal(rd_model_file_random(&f, &c, 0, 5, RD_DTYPE_F32, &err), 0);
    hf_opts sharded = {.shards = 1};
    write_hf(dir, &f, &sharded);
    char path[700];
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    assert_int_equal(unlink(path), 0);
    assert_null(rd_model_load(dir, NULL, &err));
    assert_non_null(strstr(err.msg, "model-00002-of-00002.safetensors"));
    tiny_rmdir(dir);

    /* a tensor of a type redit does not read (I32 embeddings) */
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    write_config(dir, &c, &sharded);
    rd_st_writer *w = rd_st_writer_new(&err);
    int32_t *ints = calloc((size_t)c.vocab_size * c.dim, sizeof(int32_t));
    int64_t dims[2] = {c.vocab_size, c.dim};
    /* written as F32 bytes, then the dtype string patched to I32 in the header */
    assert_int_equal(rd_st_writer_add(w, "model.embed_tokens.weight", RD_DTYPE_F32, dims, 2, ints, &err), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(rd_st_writer_commit(w, path, &err), 0);
    rd_st_writer_free(w);
    free(ints);
    FILE *fp = fopen(path, "r+b");
    char head[512];
    size_t got = fread(head, 1, sizeof head, fp);
    char *at = NULL;
    for (size_t i = 0; i + 5 <= got && !at; i++)
        if (!memcmp(head + i, "\"F32\"", 5)) at = head + i;
    assert_non_null(at);
    fseek(fp, at - head, SEEK_SET);
    fwrite("\"I32\"", 1, 5, fp);
    fclose(fp);
    assert_null(rd_model_load(dir, NULL, &err));
    assert_non_null(strstr(err.msg, "I32"));
    rd_model_file_release(&f);
    tiny_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_folders_give_the_same_logits),
        cmocka_unit_test(test_hf_folders_are_mapped),
        cmocka_unit_test(test_hf_damaged_safetensors),
        cmocka_unit_test(test_hf_tokenizer),
        cmocka_unit_test(test_hf_bad_folders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
