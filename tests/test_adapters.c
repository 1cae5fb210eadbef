/* LoRA and IA3 adapters for the ecosystem (src/model/edits_adapters.c, rd_export_merged_as):
 * the PEFT folder and the llama.cpp LoRA GGUF are read back byte by byte against those
 * formats' documentation (PEFT: tensor names base_model.model.model.layers.N.{self_attn|mlp}.
 * X_proj.lora_A.weight [r, in] / lora_B.weight [out, r], ia3_l [out, 1] or [1, in] for the
 * feedforward down_proj, F32, adapter_config.json keys; llama.cpp: general.architecture,
 * general.type = "adapter", adapter.type = "lora" (strings), adapter.lora.alpha (FLOAT32),
 * blk.N.attn_q.weight.lora_a with ne [in, r] and .lora_b with ne [r, out]); q/k rows of a
 * GQA model are in HF's rotate-half order in PEFT files (checked against the permutation
 * written out independently here, and end to end: a PEFT export applied to the same model
 * stored in HF order gives the same logits); redit reading its own exports reproduces the
 * edit set bit for bit (and so the unmerged logits); merged LoRA/IA3 exports match the
 * unmerged logits; bad or mismatched adapters are refused with messages naming the problem. */
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
#include <sys/stat.h>

#include "../src/io/gguf.h"
#include "helpers/tiny_model.h"
#include "redit/edits.h"
#include "redit/export.h"
#include "redit/forward.h"
#include "redit/gguf_writer.h"
#include "redit/safetensors.h"

enum { SEQ = 10 };

typedef struct fixture {
    char dir[512];
    rd_model *m; /* tiny GQA model (dim 64, 8 heads, 4 kv heads, 3 layers), adjacent RoPE */
    rd_model *h; /* the same weights with q/k rows in HF's rotate-half order (RD_ROPE_HALF) */
} fixture;

/* HF row r of a q/k matrix (hs rows per head) holds the GGUF (adjacent-pair) row this
 * returns: llama.cpp's convert permutes w.reshape(n_head, 2, hs/2, in).swapaxes(1, 2). */
static int64_t gguf_row_of_hf(int64_t r, int64_t hs) {
    const int64_t h = r / hs, i = r % hs, t = i / (hs / 2), p = i % (hs / 2);
    return h * hs + 2 * p + t;
}

static rd_model *tiny(int layout, rd_config cfg) {
    rd_model_file f;
    rd_error err = {{0}};
    if (tiny_model_init(&f, &cfg, 0, 11)) fail_msg("tiny_model_init");
    if (layout == RD_ROPE_HALF) { /* the adjacent model's q/k rows moved into HF order */
        const int64_t hs = cfg.dim / cfg.n_heads;
        for (int l = 0; l < cfg.n_layers; l++)
            for (int w = 0; w < 2; w++) {
                rd_matrix *mx = w ? &f.w.layers[l].wk : &f.w.layers[l].wq;
                const size_t n = (size_t)mx->rows * (size_t)mx->cols;
                float *src = malloc(n * sizeof *src), *dst = (float *)mx->data;
                memcpy(src, dst, n * sizeof *src);
                for (int64_t r = 0; r < mx->rows; r++)
                    memcpy(dst + r * mx->cols, src + gguf_row_of_hf(r, hs) * mx->cols,
                           (size_t)mx->cols * sizeof *dst);
                free(src);
            }
        f.cfg.rope_layout = RD_ROPE_HALF;
    }
    snprintf(f.name, sizeof f.name, "tiny-adapters");
    rd_model *m = rd_model_from_file(&f, NULL, &err);
    if (!m) fail_msg("model: %s", err.msg);
    return m;
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tiny_tempdir(fx->dir, sizeof fx->dir)) return -1;
    fx->m = tiny(RD_ROPE_ADJACENT, tiny_config());
    fx->h = tiny(RD_ROPE_HALF, tiny_config());
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    rd_model_free(fx->m);
    rd_model_free(fx->h);
    tiny_rmdir(fx->dir);
    free(fx);
    return 0;
}

/* An edit set of the spec with every number off the identity. */
static rd_edits *random_edits(const rd_model *m, rd_edit_spec spec) {
    rd_error err = {{0}};
    rd_edits *e = rd_edits_new(rd_model_config(m), &spec, &err);
    if (!e) fail_msg("rd_edits_new: %s", err.msg);
    float *p = rd_edits_params(e);
    uint32_t s = 777;
    for (size_t i = 0; i < rd_edits_param_count(e); i++) {
        s = s * 1664525u + 1013904223u;
        const float u = (float)(s >> 8) / 16777216.0f - 0.5f;
        p[i] = spec.method == RD_METHOD_IA3 ? 1.0f + u : 0.4f * u;
    }
    return e;
}

static rd_edits *lora(const rd_model *m, const char *layers, int targets) {
    return random_edits(m, (rd_edit_spec){.method = RD_METHOD_LORA, .layers = layers, .rank = 3,
                                          .lora_alpha = 6.0f, .lora_targets = targets});
}
#define ALL_PROJ 0x7f

static float *run_logits(const rd_model *m, const rd_edits *e) {
    const int V = rd_model_config(m)->vocab_size;
    int tokens[SEQ];
    for (int t = 0; t < SEQ; t++) tokens[t] = (t * 37 + 5) % V;
    rd_error err = {{0}};
    rd_ctx *c = rd_ctx_new(m, 1, SEQ, &err);
    if (!c) fail_msg("ctx: %s", err.msg);
    float *logits = malloc((size_t)SEQ * V * sizeof *logits);
    rd_edits_view v = e ? rd_edits_view_at(e, 1.0f) : (rd_edits_view){0};
    if (rd_forward(c, e ? &v : NULL, tokens, 1, SEQ, RD_LOGITS_ALL, logits, &err))
        fail_msg("forward: %s", err.msg);
    rd_ctx_free(c);
    return logits;
}

/* max |a − b| ≤ rtol·max |b| + 1e-6 over the logits of m with a and b. */
static void assert_logits_close(const float *got, const float *want, size_t n, double rtol) {
    double ref = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        ref = fmax(ref, fabs(want[i]));
        diff = fmax(diff, fabs(got[i] - want[i]));
    }
    if (diff > rtol * ref + 1e-6) fail_msg("logits differ by %g (max |logit| %g)", diff, ref);
}

static rd_edits *load(const char *path, const rd_model *m, int force) {
    rd_error err = {{0}};
    rd_edits *e = rd_edits_load(path, m, force, NULL, &err);
    if (!e) fail_msg("load %s: %s", path, err.msg);
    return e;
}

static void assert_refused(const char *path, const rd_model *m, const char *needle) {
    rd_error err = {{0}};
    rd_edits *e = rd_edits_load(path, m, 0, NULL, &err);
    if (e) fail_msg("%s loaded, expected a refusal naming \"%s\"", path, needle);
    if (!strstr(err.msg, needle)) fail_msg("refusal \"%s\" does not name \"%s\"", err.msg, needle);
}

static void assert_same_edits(rd_edits *a, rd_edits *b) {
    assert_int_equal(rd_edits_method(a), rd_edits_method(b));
    assert_int_equal(rd_edits_rank(a), rd_edits_rank(b));
    assert_true(rd_edits_lora_alpha(a) == rd_edits_lora_alpha(b));
    assert_int_equal(rd_edits_lora_targets(a), rd_edits_lora_targets(b));
    assert_string_equal(rd_edits_layers_text(a), rd_edits_layers_text(b));
    assert_int_equal(rd_edits_param_count(a), rd_edits_param_count(b));
    assert_memory_equal(rd_edits_params_const(a), rd_edits_params_const(b),
                        rd_edits_param_count(a) * sizeof(float));
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    return j;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *const MODULE[7] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                      "gate_proj", "up_proj", "down_proj"};

/* ---- PEFT ------------------------------------------------------------------------ */

static void test_peft_lora(void **state) {
    fixture *fx = *state;
    const rd_config *c = rd_model_config(fx->m);
    const int hs = c->dim / c->n_heads, kv = rd_config_kv_dim(c);
    rd_edits *e = lora(fx->m, "0,2", ALL_PROJ);
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/peft", fx->dir);
    rd_error err = {{0}};
    if (rd_export_peft(e, fx->m, dir, &err)) fail_msg("export: %s", err.msg);
    /* adapter_model.safetensors: 2 layers × 7 projections × A, B; PEFT's names and shapes */
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    rd_st_file *f = rd_st_open(path, &err);
    if (!f) fail_msg("%s", err.msg);
    assert_int_equal(rd_st_count(f), 28);
    assert_string_equal(rd_st_metadata(f, "format"), "pt");
    const int out[7] = {c->dim, kv, kv, c->dim, c->hidden_dim, c->hidden_dim, c->dim};
    const int in[7] = {c->dim, c->dim, c->dim, c->dim, c->dim, c->dim, c->hidden_dim};
    for (int l = 0; l <= 2; l += 2)
        for (int p = 0; p < 7; p++)
            for (int ab = 0; ab < 2; ab++) {
                char name[160];
                snprintf(name, sizeof name,
                         "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", l,
                         p < 4 ? "self_attn" : "mlp", MODULE[p], ab ? 'B' : 'A');
                const rd_st_tensor *t = rd_st_find(f, name);
                if (!t) fail_msg("no tensor %s", name);
                assert_string_equal(t->dtype, "F32");
                assert_int_equal(t->n_dims, 2);
                assert_int_equal(t->shape[0], ab ? out[p] : 3);
                assert_int_equal(t->shape[1], ab ? 3 : in[p]);
                const float *want = ab ? rd_edits_lora_b(e, l, p) : rd_edits_lora_a(e, l, p);
                const float *got = t->data;
                for (int64_t r = 0; r < t->shape[0]; r++) {
                    /* q/k lora_B rows: HF row r holds the model's (GGUF) row */
                    const int64_t src = ab && (p == 0 || p == 1) ? gguf_row_of_hf(r, hs) : r;
                    assert_memory_equal(got + r * t->shape[1], want + src * t->shape[1],
                                        (size_t)t->shape[1] * sizeof(float));
                }
            }
    rd_st_close(f);
    /* adapter_config.json */
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    cJSON *j = read_json(path);
    assert_string_equal(cJSON_GetObjectItem(j, "peft_type")->valuestring, "LORA");
    assert_string_equal(cJSON_GetObjectItem(j, "task_type")->valuestring, "CAUSAL_LM");
    assert_string_equal(cJSON_GetObjectItem(j, "base_model_name_or_path")->valuestring,
                        "tiny-adapters");
    assert_string_equal(cJSON_GetObjectItem(j, "bias")->valuestring, "none");
    assert_true(cJSON_GetObjectItem(j, "r")->valuedouble == 3);
    assert_true(cJSON_GetObjectItem(j, "lora_alpha")->valuedouble == 6);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "lora_dropout")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "fan_in_fan_out")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "inference_mode")));
    /* layers 0 and 2 of 3: one regular expression over full module names */
    assert_string_equal(cJSON_GetObjectItem(j, "target_modules")->valuestring,
                        "model\\.layers\\.(0|2)\\.(self_attn|mlp)\\.(q_proj|k_proj|v_proj|o_proj|"
                        "gate_proj|up_proj|down_proj)");
    cJSON_Delete(j);
    /* read back: the same set, bit for bit, and so the same logits */
    rd_edits *back = load(dir, fx->m, 0);
    assert_same_edits(back, e);
    rd_edits_free(back);
    rd_edits_free(e);
}

static void test_peft_ia3(void **state) {
    fixture *fx = *state;
    const rd_config *c = rd_model_config(fx->m);
    const int hs = c->dim / c->n_heads, kv = rd_config_kv_dim(c);
    rd_edits *e = random_edits(fx->m, (rd_edit_spec){.method = RD_METHOD_IA3, .layers = "all"});
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/ia3", fx->dir);
    rd_error err = {{0}};
    if (rd_export_peft(e, fx->m, dir, &err)) fail_msg("export: %s", err.msg);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    rd_st_file *f = rd_st_open(path, &err);
    if (!f) fail_msg("%s", err.msg);
    assert_int_equal(rd_st_count(f), 9);
    for (int l = 0; l < 3; l++)
        for (int p = 1; p <= 6; p++) {
            if (p >= 3 && p < 6) continue; /* k, v, down */
            const int pr = p == 6 ? RD_PROJ_DOWN : p;
            char name[160];
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.ia3_l", l,
                     pr == RD_PROJ_DOWN ? "mlp" : "self_attn", MODULE[pr]);
            const rd_st_tensor *t = rd_st_find(f, name);
            if (!t) fail_msg("no tensor %s", name);
            assert_string_equal(t->dtype, "F32");
            assert_int_equal(t->n_dims, 2);
            /* PEFT: (out, 1) for k/v, (1, in) for the feedforward down_proj */
            assert_int_equal(t->shape[0], pr == RD_PROJ_DOWN ? 1 : kv);
            assert_int_equal(t->shape[1], pr == RD_PROJ_DOWN ? c->hidden_dim : 1);
            const float *want = rd_edits_ia3(e, l, pr), *got = t->data;
            for (int64_t i = 0; i < (int64_t)t->n_elems; i++)
                assert_true(got[i] == want[pr == RD_PROJ_K ? gguf_row_of_hf(i, hs) : i]);
        }
    rd_st_close(f);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    cJSON *j = read_json(path);
    assert_string_equal(cJSON_GetObjectItem(j, "peft_type")->valuestring, "IA3");
    const cJSON *tm = cJSON_GetObjectItem(j, "target_modules"),
                *ff = cJSON_GetObjectItem(j, "feedforward_modules");
    assert_int_equal(cJSON_GetArraySize(tm), 3);
    assert_string_equal(cJSON_GetArrayItem(tm, 0)->valuestring, "k_proj");
    assert_string_equal(cJSON_GetArrayItem(tm, 2)->valuestring, "down_proj");
    assert_int_equal(cJSON_GetArraySize(ff), 1);
    assert_string_equal(cJSON_GetArrayItem(ff, 0)->valuestring, "down_proj");
    cJSON_Delete(j);
    rd_edits *back = load(dir, fx->m, 0);
    assert_same_edits(back, e);
    /* applied to the same model stored in HF order (forced: another fingerprint) */
    assert_refused(dir, fx->h, "--force");
    rd_edits *on_h = load(dir, fx->h, 1);
    const size_t n = (size_t)SEQ * c->vocab_size;
    float *want = run_logits(fx->m, e), *got = run_logits(fx->h, on_h);
    assert_logits_close(got, want, n, 1e-5);
    free(want);
    free(got);
    rd_edits_free(on_h);
    rd_edits_free(back);
    rd_edits_free(e);
}

/* End to end on a GQA model: a LoRA on q and k exported as PEFT from the GGUF-order model,
 * applied to the HF-order model, gives the same logits; and exported as a llama.cpp adapter
 * from the HF-order model, it comes back onto the GGUF-order model bit for bit. */
static void test_rope_layouts(void **state) {
    fixture *fx = *state;
    const rd_config *c = rd_model_config(fx->m);
    rd_edits *e = lora(fx->m, "all", ALL_PROJ);
    char dir[600], gguf[600];
    snprintf(dir, sizeof dir, "%s/qk", fx->dir);
    snprintf(gguf, sizeof gguf, "%s/qk.gguf", fx->dir);
    rd_error err = {{0}};
    if (rd_export_peft(e, fx->m, dir, &err)) fail_msg("export: %s", err.msg);
    rd_edits *on_h = load(dir, fx->h, 1);
    const size_t n = (size_t)SEQ * c->vocab_size;
    float *want = run_logits(fx->m, e), *got = run_logits(fx->h, on_h);
    float *base = run_logits(fx->m, NULL);
    assert_logits_close(got, want, n, 1e-5);
    double moved = 0;
    for (size_t i = 0; i < n; i++) moved = fmax(moved, fabs(base[i] - want[i]));
    assert_true(moved > 1e-2);
    if (rd_export_llama_lora(on_h, fx->h, gguf, RD_DTYPE_F32, &err)) fail_msg("%s", err.msg);
    rd_edits *back = load(gguf, fx->m, 1);
    assert_same_edits(back, e);
    free(want);
    free(got);
    free(base);
    rd_edits_free(back);
    rd_edits_free(on_h);
    rd_edits_free(e);
}

/* ---- llama.cpp LoRA GGUF ----------------------------------------------------------- */

static void assert_string_kv(const rd_gguf *g, const char *key, const char *want) {
    const rd_gguf_value *v = rd_gguf_get(g, key);
    if (!v) fail_msg("no key %s", key);
    assert_int_equal(v->type, RD_GGUF_STRING);
    assert_int_equal(v->n, strlen(want));
    assert_memory_equal(v->as.s, want, strlen(want));
}

static void check_llama_file(const char *path, rd_edits *e, const rd_config *c, int f16) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[1 << 20];
    const size_t size = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    rd_gguf *g = NULL;
    rd_error err = {{0}};
    if (rd_gguf_parse(buf, size, path, &g, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g->version, 3);
    assert_string_kv(g, "general.architecture", "llama");
    assert_string_kv(g, "general.type", "adapter");
    assert_string_kv(g, "adapter.type", "lora");
    const rd_gguf_value *a = rd_gguf_get(g, "adapter.lora.alpha");
    assert_non_null(a);
    assert_int_equal(a->type, RD_GGUF_FLOAT32);
    assert_true(a->as.f == 6.0);
    static const char *const NAME[7] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                        "ffn_gate", "ffn_up", "ffn_down"};
    const int kv = rd_config_kv_dim(c);
    const int out[7] = {c->dim, kv, kv, c->dim, c->hidden_dim, c->hidden_dim, c->dim};
    const int in[7] = {c->dim, c->dim, c->dim, c->dim, c->dim, c->dim, c->hidden_dim};
    assert_int_equal(g->n_tensors, 2 * 2 * 2); /* layers 1-2, q and down, a and b */
    for (int l = 1; l <= 2; l++)
        for (int p = 0; p < 7; p += 6)
            for (int ab = 0; ab < 2; ab++) {
                char name[96];
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", l, NAME[p], ab ? 'b' : 'a');
                const rd_gguf_tensor *t = rd_gguf_tensor_get(g, name);
                if (!t) fail_msg("no tensor %s", name);
                assert_int_equal(t->n_dims, 2);
                /* llama.cpp: a ne [in, r], b ne [r, out]; GGML type 0 = F32, 1 = F16 */
                assert_int_equal(t->ne[0], ab ? 3 : in[p]);
                assert_int_equal(t->ne[1], ab ? out[p] : 3);
                assert_int_equal(t->type->id, f16 ? 1 : 0);
                const float *want = ab ? rd_edits_lora_b(e, l, p) : rd_edits_lora_a(e, l, p);
                if (!f16) /* rows as the GGUF model stores them: no permutation */
                    assert_memory_equal(t->data, want, t->n_elems * sizeof(float));
            }
    rd_gguf_free(g);
}

static void test_llama_lora(void **state) {
    fixture *fx = *state;
    const rd_config *c = rd_model_config(fx->m);
    rd_edits *e = lora(fx->m, "1-2",
                       RD_PROJ_BIT(RD_PROJ_Q) | RD_PROJ_BIT(RD_PROJ_DOWN));
    char path[600];
    snprintf(path, sizeof path, "%s/a.gguf", fx->dir);
    rd_error err = {{0}};
    if (rd_export_llama_lora(e, fx->m, path, RD_DTYPE_F32, &err)) fail_msg("%s", err.msg);
    check_llama_file(path, e, c, 0);
    rd_edits *back = load(path, fx->m, 0);
    assert_same_edits(back, e);
    rd_edits_free(back);
    /* F16 factors: llama.cpp's common type; read back within f16 rounding */
    if (rd_export_llama_lora(e, fx->m, path, RD_DTYPE_F16, &err)) fail_msg("%s", err.msg);
    check_llama_file(path, e, c, 1);
    back = load(path, fx->m, 0);
    for (size_t i = 0; i < rd_edits_param_count(e); i++)
        assert_true(fabsf(rd_edits_params(back)[i] - rd_edits_params(e)[i]) <= 1e-3f);
    rd_edits_free(back);
    /* IA3 and RED have no llama.cpp adapter form */
    rd_edits *ia3 = random_edits(fx->m, (rd_edit_spec){.method = RD_METHOD_IA3, .layers = "all"});
    assert_int_equal(rd_export_llama_lora(ia3, fx->m, path, RD_DTYPE_F32, &err), -1);
    assert_non_null(strstr(err.msg, "LoRA"));
    rd_edits_free(ia3);
    rd_edits_free(e);
}

/* ---- merged -------------------------------------------------------------------------- */

static void test_merged(void **state) {
    fixture *fx = *state;
    const rd_config *c = rd_model_config(fx->m);
    const size_t n = (size_t)SEQ * c->vocab_size;
    char path[600];
    snprintf(path, sizeof path, "%s/merged.gguf", fx->dir);
    for (int method = RD_METHOD_LORA; method <= RD_METHOD_IA3; method++) {
        rd_edits *e = method == RD_METHOD_LORA
                          ? lora(fx->m, "0,2", ALL_PROJ)
                          : random_edits(fx->m, (rd_edit_spec){.method = RD_METHOD_IA3, .layers = "1-2"});
        rd_error err = {{0}};
        if (rd_export_merged(e, fx->m, path, &err)) fail_msg("merged: %s", err.msg);
        rd_model *merged = rd_model_load(path, NULL, &err);
        if (!merged) fail_msg("%s", err.msg);
        float *want = run_logits(fx->m, e), *got = run_logits(merged, NULL);
        assert_logits_close(got, want, n, 1e-5);
        /* F16 on request: the changed matrices only */
        if (rd_export_merged_as(e, fx->m, path, RD_DTYPE_F16, &err)) fail_msg("%s", err.msg);
        rd_model *m16 = rd_model_load(path, NULL, &err);
        if (!m16) fail_msg("%s", err.msg);
        assert_int_equal(m16->file.w.layers[2].wv.type, RD_DTYPE_F16);
        assert_int_equal(m16->file.w.layers[0].wv.type,
                         method == RD_METHOD_LORA ? RD_DTYPE_F16 : RD_DTYPE_F32);
        rd_model_free(m16);
        free(want);
        free(got);
        rd_model_free(merged);
        rd_edits_free(e);
    }
}

/* ---- refusals -------------------------------------------------------------------------- */

static void test_refusals(void **state) {
    fixture *fx = *state;
    char dir[600], path[700];
    rd_error err = {{0}};
    /* a folder that is not a PEFT adapter */
    snprintf(dir, sizeof dir, "%s/empty", fx->dir);
    mkdir(dir, 0777);
    assert_refused(dir, fx->m, "adapter_config.json");
    /* another width: the model's projections do not give the shapes */
    rd_config small = tiny_config();
    small.dim = 32;
    small.n_layers = 2;
    rd_model *other = tiny(RD_ROPE_ADJACENT, small);
    rd_edits *e = lora(fx->m, "all", RD_LORA_DEFAULT_TARGETS);
    snprintf(dir, sizeof dir, "%s/p", fx->dir);
    if (rd_export_peft(e, fx->m, dir, &err)) fail_msg("%s", err.msg);
    assert_refused(dir, other, "layer 2, but this model has 2 layers");
    rd_edits *l01 = lora(fx->m, "0-1", RD_LORA_DEFAULT_TARGETS);
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/p01", fx->dir);
    if (rd_export_peft(l01, fx->m, dir2, &err)) fail_msg("%s", err.msg);
    rd_edits *forced = rd_edits_load(dir2, other, 1, NULL, &err);
    assert_null(forced);
    assert_non_null(strstr(err.msg, "needs"));
    /* settings redit cannot express */
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    write_file(path, "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"use_dora\": true}");
    assert_refused(dir, fx->m, "use_dora");
    write_file(path, "{\"peft_type\": \"PREFIX_TUNING\"}");
    assert_refused(dir, fx->m, "PREFIX_TUNING");
    write_file(path, "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 8}");
    assert_refused(dir, fx->m, "rank 8"); /* config says 8, the tensors are rank 3 */
    /* an unknown tensor name */
    rd_st_writer *w = rd_st_writer_new(&err);
    const float zero[4] = {0};
    const int64_t shape[2] = {2, 2};
    rd_st_writer_add(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight",
                     RD_DTYPE_F32, shape, 2, zero, &err);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (rd_st_writer_commit(w, path, &err)) fail_msg("%s", err.msg);
    rd_st_writer_free(w);
    assert_refused(dir, fx->m, "unexpected tensor \"base_model.model.model.layers.0.self_attn."
                               "q_proj.lora_C.weight\"");
    /* a model GGUF is not an adapter; a llama.cpp adapter with an unknown tensor */
    snprintf(path, sizeof path, "%s/model.gguf", fx->dir);
    if (rd_gguf_write(path, &fx->m->file, RD_DTYPE_COUNT, &err)) fail_msg("%s", err.msg);
    assert_refused(path, fx->m, "not a model");
    rd_gguf_writer *g = rd_gguf_writer_new(&err);
    rd_gguf_writer_kv_str(g, "general.architecture", "llama");
    rd_gguf_writer_kv_str(g, "general.type", "adapter");
    rd_gguf_writer_kv_str(g, "adapter.type", "lora");
    rd_gguf_writer_kv_f32(g, "adapter.lora.alpha", 4.0f);
    rd_gguf_writer_add(g, "blk.0.attn_qq.weight.lora_a", RD_DTYPE_F32, shape, 2, zero, &err);
    snprintf(path, sizeof path, "%s/bad.gguf", fx->dir);
    if (rd_gguf_writer_commit(g, path, &err)) fail_msg("%s", err.msg);
    rd_gguf_writer_free(g);
    assert_refused(path, fx->m, "unexpected tensor \"blk.0.attn_qq.weight.lora_a\"");
    /* RED edits have no adapter form */
    rd_edits *red = rd_edits_new(rd_model_config(fx->m),
                                 &(rd_edit_spec){.sites = RD_SITE_FFN, .layers = "all", .scale = 1,
                                                 .bias = 1}, &err);
    assert_int_equal(rd_export_peft(red, fx->m, dir, &err), -1);
    assert_non_null(strstr(err.msg, "RED"));
    rd_edits_free(red);
    rd_edits_free(l01);
    rd_edits_free(e);
    rd_model_free(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_peft_lora, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peft_ia3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rope_layouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_llama_lora, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
