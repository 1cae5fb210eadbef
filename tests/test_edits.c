/* RED edit sets (src/model/edits.c): layer lists, parameter counts and the ratio, the flat
 * layout and the forward view, the fingerprint, and edit files — save → load round trips
 * (bit-identical vectors and logits), every refusal, validity for an independent reader
 * (/usr/bin/python3 with json + struct) and the naming the PyTorch reference's loader needs. */
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
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers/bytebuf.h"
#include "helpers/tiny_model.h"
#include "redit/edits.h"
#include "redit/forward.h"
#include "redit/model_file.h"
#include "redit/safetensors.h"

#define PYTHON "/usr/bin/python3"
#define TORCH_REF "../shared/tools/torch_ref/llama_red_ref.py"

typedef struct fixture {
    char dir[512];
    char path[600];  /* dir/edits.safetensors */
    char other[600]; /* dir/other.safetensors */
    rd_model *m;     /* tiny random model: dim 64, 3 layers */
} fixture;

static rd_model *tiny_model(const rd_config *cfg, uint64_t seed) {
    rd_model_file f;
    rd_error err = {{0}};
    if (rd_model_file_random(&f, cfg, 0, seed, RD_DTYPE_F32, &err)) fail_msg("random model: %s", err.msg);
    rd_model *m = rd_model_from_file(&f, NULL, &err);
    if (!m) fail_msg("model: %s", err.msg);
    return m;
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tiny_tempdir(fx->dir, sizeof fx->dir)) return -1;
    snprintf(fx->path, sizeof fx->path, "%s/edits.safetensors", fx->dir);
    snprintf(fx->other, sizeof fx->other, "%s/other.safetensors", fx->dir);
    rd_config cfg = tiny_config();
    fx->m = tiny_model(&cfg, 11);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    rd_model_free(fx->m);
    tiny_rmdir(fx->dir);
    free(fx);
    return 0;
}

static rd_config layers_config(int n_layers) {
    rd_config c = tiny_config();
    c.n_layers = n_layers;
    return c;
}

static rd_edits *new_edits(const rd_config *cfg, int sites, const char *layers, int scale,
                           int bias) {
    rd_error err = {{0}};
    rd_edit_spec spec = {.sites = sites, .layers = layers, .scale = scale, .bias = bias};
    rd_edits *e = rd_edits_new(cfg, &spec, &err);
    if (!e) fail_msg("rd_edits_new(%s): %s", layers ? layers : "NULL", err.msg);
    return e;
}

/* Fills every stored vector with distinct, non-trivial values. */
static void randomize(rd_edits *e, uint32_t seed) {
    float *p = rd_edits_params(e);
    for (size_t i = 0; i < rd_edits_param_count(e); i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.5f + (i % 2 ? 1.0f : 0.0f);
    }
}

/* ---- sites and layer lists ---------------------------------------------------------- */

static void test_sites(void **state) {
    (void)state;
    int s = 0;
    assert_int_equal(rd_sites_from_name("ffn", &s), 0);
    assert_int_equal(s, RD_SITE_FFN);
    assert_int_equal(rd_sites_from_name("attn", &s), 0);
    assert_int_equal(s, RD_SITE_ATTN);
    assert_int_equal(rd_sites_from_name("both", &s), 0);
    assert_int_equal(s, RD_SITE_BOTH);
    assert_int_equal(rd_sites_from_name("mlp", &s), -1);
    assert_int_equal(rd_sites_from_name("", &s), -1);
    assert_int_equal(rd_sites_from_name(NULL, &s), -1);
    assert_string_equal(rd_sites_name(RD_SITE_FFN), "ffn");
    assert_string_equal(rd_sites_name(RD_SITE_ATTN), "attn");
    assert_string_equal(rd_sites_name(RD_SITE_BOTH), "both");
}

static void test_layer_lists(void **state) {
    (void)state;
    static const struct {
        const char *spec, *canonical, *on; /* on: one char per layer of 10 */
    } CASES[] = {
        {"all", "all", "1111111111"},         {" all ", "all", "1111111111"},
        {NULL, "all", "1111111111"},          {"0-5,9", "0-5,9", "1111110001"},
        {" 3 , 7-8 ", "3,7-8", "0001000110"}, {"9,0-5", "0-5,9", "1111110001"},
        {"0-9", "all", "1111111111"},         {"2,3,4", "2-4", "0011100000"},
        {"1, 1 ,1", "1", "0100000000"},       {"0 - 2", "0-2", "1110000000"},
        {"4-4", "4", "0000100000"},           {"0-3,2-6", "0-6", "1111111000"},
        {"9", "9", "0000000001"},             {"0,2,4,6,8", "0,2,4,6,8", "1010101010"},
        {"\t5\t", "5", "0000010000"},
    };
    rd_config cfg = layers_config(10);
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        rd_edits *e = new_edits(&cfg, RD_SITE_FFN, CASES[i].spec, 1, 1);
        if (strcmp(rd_edits_layers_text(e), CASES[i].canonical) != 0)
            fail_msg("\"%s\" → \"%s\", expected \"%s\"", CASES[i].spec, rd_edits_layers_text(e),
                     CASES[i].canonical);
        int n_on = 0;
        for (int l = 0; l < 10; l++) {
            int want = CASES[i].on[l] == '1';
            if (rd_edits_layer_on(e, l) != want)
                fail_msg("\"%s\": layer %d on = %d", CASES[i].spec, l, rd_edits_layer_on(e, l));
            n_on += want;
        }
        assert_false(rd_edits_layer_on(e, -1));
        assert_false(rd_edits_layer_on(e, 10));
        assert_int_equal(rd_edits_param_count(e), (size_t)n_on * 2 * 64);
        rd_edits_free(e);
    }
}

static void test_layer_list_errors(void **state) {
    (void)state;
    static const struct {
        const char *spec, *needle;
    } CASES[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"1,,2", "expected a layer number at \",2\""},
        {"1,", "expected a layer number"},
        {",1", "expected a layer number"},
        {"a", "expected a layer number"},
        {"-1", "expected a layer number"},
        {"+1", "expected a layer number"},
        {"1-", "expected the end of the range"},
        {"1-x", "expected the end of the range"},
        {"5-3", "the range 5-3 is reversed"},
        {"10", "layer 10 is beyond the model's 10 layers"},
        {"0-10", "layer 10 is beyond"},
        {"99999999999999999999", "layer 99999999999999999999 is beyond"},
        {"1,", "at \"(end)\""},
        {"1 2", "unexpected \"2\""},
        {"1;2", "unexpected \";\""},
        {"1.5", "unexpected \".\""},
        {"all,1", "expected a layer number"},
        {"ALL", "expected a layer number"},
    };
    rd_config cfg = layers_config(10);
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        rd_error err = {{0}};
        rd_edit_spec spec = {.sites = RD_SITE_FFN, .layers = CASES[i].spec, .scale = 1, .bias = 1};
        rd_edits *e = rd_edits_new(&cfg, &spec, &err);
        if (e) {
            rd_edits_free(e);
            fail_msg("\"%s\" was accepted", CASES[i].spec);
        }
        if (!strstr(err.msg, CASES[i].needle))
            fail_msg("\"%s\": message '%s' lacks '%s'", CASES[i].spec, err.msg, CASES[i].needle);
    }
}

static void test_empty_selections(void **state) {
    (void)state;
    rd_config cfg = layers_config(4);
    const rd_edit_spec bad[] = {
        {.sites = 0, .layers = "all", .scale = 1, .bias = 1},
        {.sites = RD_SITE_FFN, .layers = "all", .scale = 0, .bias = 0},
        {.sites = 8, .layers = "all", .scale = 1, .bias = 1},
        {.sites = RD_SITE_BOTH | 4, .layers = "all", .scale = 1, .bias = 1}};
    const char *needles[] = {"site", "neither", "site", "site"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rd_error err = {{0}};
        rd_edits *e = rd_edits_new(&cfg, &bad[i], &err);
        if (e) {
            rd_edits_free(e);
            fail_msg("selection %zu was accepted", i);
        }
        if (!strstr(err.msg, needles[i])) fail_msg("message '%s' lacks '%s'", err.msg, needles[i]);
    }
}

/* ---- parameter counts and the ratio -------------------------------------------------- */

static rd_config llama2_7b(void) {
    rd_config c = {.dim = 4096, .hidden_dim = 11008, .n_layers = 32, .n_heads = 32,
                   .n_kv_heads = 32, .vocab_size = 32000, .seq_len = 4096, .norm_eps = 1e-5f,
                   .rope_theta = 10000.0f, .rope_layout = RD_ROPE_HALF};
    return c;
}

static void test_param_counts_llama2_7b(void **state) {
    (void)state;
    rd_config cfg = llama2_7b();
    rd_edits *e = new_edits(&cfg, RD_SITE_FFN, "all", 1, 1);
    assert_int_equal(rd_edits_param_count(e), 262144); /* 2 × 4096 × 32, the paper's figure */
    const uint64_t model = rd_config_param_count(&cfg, 0);
    assert_int_equal(model, 6738415616ull); /* Llama-2-7B */
    const double ratio = (double)model / (double)rd_edits_param_count(e);
    if (fabs(ratio - 25700.0) > 50.0) fail_msg("ratio %.1f is not ≈ 25,700", ratio);
    rd_edits_free(e);

    e = new_edits(&cfg, RD_SITE_BOTH, "all", 1, 1);
    assert_int_equal(rd_edits_param_count(e), 524288);
    rd_edits_free(e);
    e = new_edits(&cfg, RD_SITE_FFN, "all", 1, 0);
    assert_int_equal(rd_edits_param_count(e), 131072);
    rd_edits_free(e);
    e = new_edits(&cfg, RD_SITE_ATTN, "0-5,9", 0, 1);
    assert_int_equal(rd_edits_param_count(e), 7 * 4096);
    rd_edits_free(e);
}

static void test_ratio(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_FFN, "all", 1, 1);
    assert_int_equal(rd_edits_param_count(e), 2 * 64 * 3);
    const uint64_t model = rd_model_param_count(fx->m);
    assert_int_equal(model, rd_config_param_count(rd_model_config(fx->m), 0));
    assert_true(rd_edits_ratio(e, fx->m) == (double)model / 384.0);
    assert_true(rd_edits_ratio(e, fx->m) > 100.0);
    rd_edits_free(e);
}

/* ---- layout and view ---------------------------------------------------------------- */

static void test_layout_both_sites(void **state) {
    (void)state;
    rd_config cfg = layers_config(3);
    const int d = cfg.dim;
    rd_edits *e = new_edits(&cfg, RD_SITE_BOTH, "0,2", 1, 1);
    assert_int_equal(rd_edits_dim(e), d);
    assert_int_equal(rd_edits_n_layers(e), 3);
    assert_int_equal(rd_edits_sites(e), RD_SITE_BOTH);
    assert_true(rd_edits_has_scale(e) && rd_edits_has_bias(e));
    assert_int_equal(rd_edits_param_count(e), (size_t)2 * 2 * 2 * d);
    float *p = rd_edits_params(e);
    assert_ptr_equal(rd_edits_params_const(e), p);
    /* fresh: s = 1, b = 0 */
    for (size_t i = 0; i < rd_edits_param_count(e); i++)
        assert_true(p[i] == ((i / (size_t)d) % 2 == 0 ? 1.0f : 0.0f));
    /* the documented order: layer 0 attn s, b, ffn s, b; layer 2 attn s, b, ffn s, b */
    const int layers[2] = {0, 2};
    for (int k = 0; k < 2; k++) {
        const int l = layers[k];
        float *base = p + (size_t)k * 4 * d;
        assert_ptr_equal(rd_edits_vector(e, l, RD_SITE_ATTN, 0), base);
        assert_ptr_equal(rd_edits_vector(e, l, RD_SITE_ATTN, 1), base + d);
        assert_ptr_equal(rd_edits_vector(e, l, RD_SITE_FFN, 0), base + 2 * d);
        assert_ptr_equal(rd_edits_vector(e, l, RD_SITE_FFN, 1), base + 3 * d);
    }
    assert_null(rd_edits_vector(e, 1, RD_SITE_FFN, 0));
    assert_null(rd_edits_vector(e, 3, RD_SITE_FFN, 0));
    assert_null(rd_edits_vector(e, -1, RD_SITE_FFN, 0));
    assert_null(rd_edits_vector(e, 0, RD_SITE_BOTH, 0));
    assert_null(rd_edits_vector(e, 0, 0, 0));

    rd_edits_view v = rd_edits_view_at(e, 0.5f);
    assert_true(v.strength == 0.5f);
    assert_non_null(v.attn);
    assert_non_null(v.ffn);
    for (int l = 0; l < 3; l++) {
        assert_ptr_equal(v.attn[l].scale, rd_edits_vector(e, l, RD_SITE_ATTN, 0));
        assert_ptr_equal(v.attn[l].bias, rd_edits_vector(e, l, RD_SITE_ATTN, 1));
        assert_ptr_equal(v.ffn[l].scale, rd_edits_vector(e, l, RD_SITE_FFN, 0));
        assert_ptr_equal(v.ffn[l].bias, rd_edits_vector(e, l, RD_SITE_FFN, 1));
    }
    assert_null(v.attn[1].scale); /* layer 1 is not edited: identity */
    assert_null(v.attn[1].bias);
    assert_null(v.ffn[1].scale);
    assert_null(v.ffn[1].bias);
    rd_edits_free(e);
}

static void test_layout_one_site_one_kind(void **state) {
    (void)state;
    rd_config cfg = layers_config(4);
    const int d = cfg.dim;
    rd_edits *e = new_edits(&cfg, RD_SITE_FFN, "1-3", 0, 1); /* bias only */
    assert_int_equal(rd_edits_param_count(e), (size_t)3 * d);
    float *p = rd_edits_params(e);
    for (size_t i = 0; i < rd_edits_param_count(e); i++) assert_true(p[i] == 0.0f);
    rd_edits_view v = rd_edits_view_at(e, 1.0f);
    assert_null(v.attn);
    assert_non_null(v.ffn);
    assert_null(v.ffn[0].bias);
    for (int l = 1; l < 4; l++) {
        assert_null(v.ffn[l].scale);
        assert_ptr_equal(v.ffn[l].bias, p + (size_t)(l - 1) * d);
        assert_null(rd_edits_vector(e, l, RD_SITE_FFN, 0));
        assert_null(rd_edits_vector(e, l, RD_SITE_ATTN, 1));
    }
    rd_edits_free(e);

    e = new_edits(&cfg, RD_SITE_ATTN, "all", 1, 0); /* scale only, attn */
    p = rd_edits_params(e);
    for (size_t i = 0; i < rd_edits_param_count(e); i++) assert_true(p[i] == 1.0f);
    v = rd_edits_view_at(e, 2.0f);
    assert_null(v.ffn);
    for (int l = 0; l < 4; l++) {
        assert_ptr_equal(v.attn[l].scale, p + (size_t)l * d);
        assert_null(v.attn[l].bias);
    }
    rd_edits_free(e);
}

static void test_clone(void **state) {
    (void)state;
    rd_config cfg = layers_config(5);
    rd_edits *e = new_edits(&cfg, RD_SITE_BOTH, "1,3-4", 1, 1);
    randomize(e, 3);
    rd_error err = {{0}};
    rd_edits *c = rd_edits_clone(e, &err);
    assert_non_null(c);
    assert_int_equal(rd_edits_param_count(c), rd_edits_param_count(e));
    assert_string_equal(rd_edits_layers_text(c), "1,3-4");
    assert_memory_equal(rd_edits_params(c), rd_edits_params(e),
                        rd_edits_param_count(e) * sizeof(float));
    assert_true(rd_edits_params(c) != rd_edits_params(e));
    rd_edits_view v = rd_edits_view_at(c, 1.0f);
    assert_ptr_equal(v.ffn[3].bias, rd_edits_vector(c, 3, RD_SITE_FFN, 1)); /* into the clone */
    rd_edits_free(c);
    rd_edits_free(e);
    rd_edits_free(NULL);
}

/* ---- fingerprint -------------------------------------------------------------------- */

static void test_fingerprint(void **state) {
    fixture *fx = *state;
    rd_config cfg = tiny_config();
    rd_model *same = tiny_model(&cfg, 11), *other = tiny_model(&cfg, 12);
    const uint64_t fp = rd_model_fingerprint(fx->m);
    assert_true(fp == rd_model_fingerprint(same));
    assert_true(fp != rd_model_fingerprint(other));
    /* one weight of one matrix (inside a sampled window), one norm value, one config field */
    float *w2 = (float *)same->file.w.layers[1].w2.data;
    w2[0] += 1e-3f;
    assert_true(rd_model_fingerprint(same) != fp);
    w2[0] -= 1e-3f;
    assert_true(rd_model_fingerprint(same) == fp);
    float *norm = (float *)same->file.w.layers[2].ffn_norm;
    norm[5] *= 1.01f;
    assert_true(rd_model_fingerprint(same) != fp);
    rd_model_free(same);
    cfg.seq_len = 32;
    same = tiny_model(&cfg, 11);
    assert_true(rd_model_fingerprint(same) != fp);
    rd_model_free(same);
    rd_model_free(other);
}

/* Every weight byte counts: a change between the sampled windows of earlier versions (which
 * rd_model_fingerprint_sampled still computes, and misses it) changes the fingerprint. */
static void test_fingerprint_every_byte(void **state) {
    fixture *fx = *state;
    rd_config cfg = tiny_config();
    rd_model *same = tiny_model(&cfg, 11);
    const uint64_t fp = rd_model_fingerprint(fx->m), old = rd_model_fingerprint_sampled(fx->m);
    assert_true(fp != old);
    /* w2 is 64 × 172 f32 = 44,032 bytes: windows of 128 bytes every ~1,416; float 200 (byte
     * 800) lies between the first two */
    float *w2 = (float *)same->file.w.layers[1].w2.data;
    w2[200] += 1e-3f;
    assert_true(rd_model_fingerprint_sampled(same) == old); /* the old fingerprint is blind */
    assert_true(rd_model_fingerprint(same) != fp);
    char hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fp);
    assert_int_equal(rd_model_fingerprint_match(fx->m, hex, 0), RD_FP_SAME);
    assert_int_equal(rd_model_fingerprint_match(same, hex, 1), RD_FP_OTHER);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)old);
    assert_int_equal(rd_model_fingerprint_match(fx->m, hex, 1), RD_FP_SAME_SAMPLED);
    assert_int_equal(rd_model_fingerprint_match(fx->m, hex, 0), RD_FP_OTHER);
    assert_int_equal(rd_model_fingerprint_match(same, hex, 1), RD_FP_SAME_SAMPLED);
    assert_int_equal(rd_model_fingerprint_match(fx->m, "0123", 1), RD_FP_OTHER);
    assert_int_equal(rd_model_fingerprint_match(fx->m, NULL, 1), RD_FP_OTHER);
    /* the last byte of the classifier, a bias present or not */
    w2[200] -= 1e-3f;
    assert_true(rd_model_fingerprint(same) == fp);
    unsigned char *cls = (unsigned char *)same->file.w.classifier.data;
    const size_t cls_bytes = (size_t)same->file.w.classifier.rows * same->file.w.classifier.row_bytes;
    cls[cls_bytes - 1] ^= 1;
    assert_true(rd_model_fingerprint(same) != fp);
    cls[cls_bytes - 1] ^= 1;
    float bias[64] = {0};
    same->file.w.layers[0].w2_bias = bias;
    assert_true(rd_model_fingerprint(same) != fp);
    same->file.w.layers[0].w2_bias = NULL;
    same->file.w.layers[0].wo_bias = bias;
    const uint64_t with_wo = rd_model_fingerprint(same);
    assert_true(with_wo != fp);
    same->file.w.layers[0].wo_bias = NULL;
    same->file.w.layers[1].wo_bias = bias; /* the same bias on another layer */
    assert_true(rd_model_fingerprint(same) != with_wo);
    same->file.w.layers[1].wo_bias = NULL;
    rd_model_free(same);
}

/* The fingerprint cache: a model loaded from a file is hashed once per file version. The
 * cache is seen to be used by planting another value in it. */
static void read_text(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static uint64_t load_fingerprint(const char *path, uint64_t *key) {
    rd_error err = {{0}};
    rd_model *m = rd_model_load(path, NULL, &err);
    if (!m) fail_msg("load %s: %s", path, err.msg);
    const uint64_t fp = rd_model_fingerprint(m);
    if (key) *key = m->file_key;
    rd_model_free(m);
    return fp;
}

static void test_fingerprint_cache(void **state) {
    fixture *fx = *state;
    char model[700], cache_home[700], cache[800], text[4096], planted[200];
    snprintf(model, sizeof model, "%s/model.gguf", fx->dir);
    snprintf(cache_home, sizeof cache_home, "%s/cache", fx->dir);
    snprintf(cache, sizeof cache, "%s/redit/fingerprints", cache_home);
    const char *saved = getenv("XDG_CACHE_HOME");
    char *old_home = saved ? strdup(saved) : NULL;
    setenv("XDG_CACHE_HOME", cache_home, 1);
    unsetenv("REDIT_FINGERPRINT_CACHE");
    rd_error err = {{0}};
    if (rd_gguf_write(model, &fx->m->file, RD_DTYPE_F16, &err)) fail_msg("write: %s", err.msg);

    uint64_t key;
    const uint64_t fp = load_fingerprint(model, &key);
    assert_true(key != 0);
    read_text(cache, text, sizeof text); /* written by the first computation */
    char line[64];
    snprintf(line, sizeof line, "%016llx %016llx\n", (unsigned long long)key, (unsigned long long)fp);
    assert_non_null(strstr(text, line));
    /* a second load reads the cache: a planted value comes back */
    snprintf(planted, sizeof planted, "redit-fingerprint-cache 1\n%016llx 00000000000000aa\n",
             (unsigned long long)key);
    write_text(cache, planted);
    assert_true(load_fingerprint(model, NULL) == 0xaa);
    /* the same model under another spelling of its path: the same key */
    char spelled[800];
    snprintf(spelled, sizeof spelled, "%s/./model.gguf", fx->dir);
    assert_true(load_fingerprint(spelled, NULL) == 0xaa);
    /* a trainable model (f32 weights that training changes) is always hashed */
    rd_model *m = rd_model_load(model, NULL, &err);
    assert_non_null(m);
    assert_int_equal(rd_model_make_trainable(m, &err), 0);
    assert_true(rd_model_fingerprint(m) != 0xaa);
    rd_model_free(m);
    /* a changed file (its mtime here; size or replacement alike) is hashed again */
    struct timespec times[2] = {{0, UTIME_OMIT}, {1234567, 0}};
    assert_int_equal(utimensat(AT_FDCWD, model, times, 0), 0);
    uint64_t key2;
    assert_true(load_fingerprint(model, &key2) == fp);
    assert_true(key2 != key);
    /* a damaged cache is ignored (and replaced) */
    write_text(cache, "redit-fingerprint-cache 1\nzz garbage\n\x01\x02");
    assert_true(load_fingerprint(model, NULL) == fp);
    write_text(cache, "something else\n");
    assert_true(load_fingerprint(model, NULL) == fp);
    read_text(cache, text, sizeof text);
    assert_int_equal(strncmp(text, "redit-fingerprint-cache 1\n", 26), 0);
    /* an unwritable cache folder: still the right value */
    setenv("XDG_CACHE_HOME", "/proc/no-such-folder", 1);
    assert_true(load_fingerprint(model, NULL) == fp);
    /* the cache turned off: planted values are not read */
    setenv("XDG_CACHE_HOME", cache_home, 1);
    snprintf(planted, sizeof planted, "redit-fingerprint-cache 1\n%016llx 00000000000000bb\n",
             (unsigned long long)key2);
    write_text(cache, planted);
    assert_true(load_fingerprint(model, NULL) == 0xbb);
    setenv("REDIT_FINGERPRINT_CACHE", "off", 1);
    assert_true(load_fingerprint(model, NULL) == fp);
    unsetenv("REDIT_FINGERPRINT_CACHE");
    /* a model built in memory has no key and is not cached */
    assert_true(fx->m->file_key == 0);
    if (old_home) setenv("XDG_CACHE_HOME", old_home, 1);
    else unsetenv("XDG_CACHE_HOME");
    free(old_home);
}

/* ---- save / load -------------------------------------------------------------------- */

static void save_ok(const rd_edits *e, const rd_model *m, const char *training, const char *path) {
    rd_error err = {{0}};
    if (rd_edits_save(e, m, training, path, &err)) fail_msg("save: %s", err.msg);
}

static rd_edits *load_ok(const char *path, const rd_model *m, int force, char **training) {
    rd_error err = {{0}};
    rd_edits *e = rd_edits_load(path, m, force, training, &err);
    if (!e) fail_msg("load: %s", err.msg);
    return e;
}

/* Expects rd_edits_load to fail naming the file and every needle. */
static void expect_load_fails(const char *path, const rd_model *m, int force,
                              const char *needle, ...) {
    rd_error err = {{0}};
    char *training = (char *)"untouched";
    rd_edits *e = rd_edits_load(path, m, force, &training, &err);
    if (e) {
        rd_edits_free(e);
        fail_msg("%s loaded, expected an error mentioning '%s'", path, needle);
    }
    assert_null(training);
    if (!strstr(err.msg, path)) fail_msg("message does not name the file: %s", err.msg);
    va_list ap;
    va_start(ap, needle);
    for (const char *n = needle; n; n = va_arg(ap, const char *))
        if (!strstr(err.msg, n)) fail_msg("message '%s' lacks '%s'", err.msg, n);
    va_end(ap);
}

static void assert_same_edits(const rd_edits *a, const rd_edits *b) {
    assert_int_equal(rd_edits_dim(a), rd_edits_dim(b));
    assert_int_equal(rd_edits_n_layers(a), rd_edits_n_layers(b));
    assert_int_equal(rd_edits_sites(a), rd_edits_sites(b));
    assert_int_equal(rd_edits_has_scale(a), rd_edits_has_scale(b));
    assert_int_equal(rd_edits_has_bias(a), rd_edits_has_bias(b));
    assert_string_equal(rd_edits_layers_text(a), rd_edits_layers_text(b));
    assert_int_equal(rd_edits_param_count(a), rd_edits_param_count(b));
    assert_memory_equal(rd_edits_params_const(a), rd_edits_params_const(b),
                        rd_edits_param_count(a) * sizeof(float));
}

/* Logits (T, V) of a fixed sequence on m with edits e (NULL: base model). Malloc'ed. */
static float *run_logits(const rd_model *m, const rd_edits *e, float strength) {
    enum { T = 12 };
    const int V = rd_model_config(m)->vocab_size;
    int tokens[T];
    for (int t = 0; t < T; t++) tokens[t] = (t * 37 + 5) % V;
    rd_error err = {{0}};
    rd_ctx *c = rd_ctx_new(m, 1, T, &err);
    if (!c) fail_msg("ctx: %s", err.msg);
    float *logits = malloc((size_t)T * V * sizeof *logits);
    assert_non_null(logits);
    rd_edits_view v = e ? rd_edits_view_at(e, strength) : (rd_edits_view){0};
    if (rd_forward(c, e ? &v : NULL, tokens, 1, T, RD_LOGITS_ALL, logits, &err))
        fail_msg("forward: %s", err.msg);
    rd_ctx_free(c);
    return logits;
}

static void test_save_load_roundtrip(void **state) {
    fixture *fx = *state;
    const rd_config *cfg = rd_model_config(fx->m);
    const size_t n_logits = (size_t)12 * cfg->vocab_size * sizeof(float);
    static const struct { int sites; const char *layers; int scale, bias; } SPECS[] = {
        {RD_SITE_FFN, "all", 1, 1}, {RD_SITE_BOTH, "0,2", 1, 1},
        {RD_SITE_ATTN, "1", 1, 0},  {RD_SITE_BOTH, "1-2", 0, 1}};
    float *base = run_logits(fx->m, NULL, 1.0f);
    for (size_t i = 0; i < sizeof SPECS / sizeof SPECS[0]; i++) {
        rd_edits *e = new_edits(cfg, SPECS[i].sites, SPECS[i].layers, SPECS[i].scale,
                                SPECS[i].bias);
        randomize(e, 100 + (uint32_t)i);
        const char *training = "{\"lr\": 0.01, \"epochs\": 3, \"template\": \"alpaca\"}";
        save_ok(e, fx->m, i % 2 ? NULL : training, fx->path);
        char *got_training = NULL;
        rd_edits *l = load_ok(fx->path, fx->m, 0, &got_training);
        assert_same_edits(e, l);
        if (i % 2) assert_null(got_training);
        else assert_string_equal(got_training, training);
        free(got_training);

        float *want = run_logits(fx->m, e, 1.0f), *got = run_logits(fx->m, l, 1.0f);
        assert_memory_equal(got, want, n_logits); /* bit-identical */
        if (memcmp(want, base, n_logits) == 0) fail_msg("spec %zu: the edits changed nothing", i);
        free(want);
        free(got);
        got = run_logits(fx->m, l, 0.0f); /* α = 0 is the base model */
        assert_memory_equal(got, base, n_logits);
        free(got);
        rd_edits_free(l);
        rd_edits_free(e);
    }
    free(base);
}

static void test_metadata_written(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_BOTH, "0,2", 1, 0);
    save_ok(e, fx->m, "{\"seed\": 42}", fx->path);
    rd_error err = {{0}};
    rd_st_file *f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)rd_model_fingerprint(fx->m));
    const char *want[][2] = {{"format", "redit-red"}, {"version", "1"},
                             {"base_model", fx->m->file.name}, {"base_fingerprint", fp},
                             {"base_fingerprint_kind", "xxh3-64"}, {"sites", "both"}, {"layers", "0,2"}, {"dim", "64"},
                             {"n_layers", "3"}, {"scale", "true"}, {"bias", "false"},
                             {"training", "{\"seed\": 42}"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *v = rd_st_metadata(f, want[i][0]);
        if (!v || strcmp(v, want[i][1]))
            fail_msg("metadata %s = %s, expected %s", want[i][0], v ? v : "(none)", want[i][1]);
    }
    const char *names[] = {"layers.0.attn.scale", "layers.0.ffn.scale", "layers.2.attn.scale",
                           "layers.2.ffn.scale"};
    assert_int_equal(rd_st_count(f), 4);
    for (int i = 0; i < 4; i++) {
        const rd_st_tensor *t = rd_st_at(f, i);
        assert_string_equal(t->name, names[i]);
        assert_string_equal(t->dtype, "F32");
        assert_int_equal(t->n_dims, 1);
        assert_int_equal(t->shape[0], 64);
    }
    rd_st_close(f);
    /* training options must be JSON; a refused save leaves no file behind */
    assert_int_equal(rd_edits_save(e, fx->m, "{lr: 1", fx->other, &err), -1);
    assert_non_null(strstr(err.msg, "not valid JSON"));
    assert_int_equal(access(fx->other, F_OK), -1);
    rd_edits_free(e);
}

static void test_save_refuses_other_model(void **state) {
    fixture *fx = *state;
    rd_config cfg = layers_config(2);
    rd_edits *e = new_edits(&cfg, RD_SITE_FFN, "all", 1, 1);
    rd_error err = {{0}};
    assert_int_equal(rd_edits_save(e, fx->m, NULL, fx->path, &err), -1);
    assert_non_null(strstr(err.msg, "do not fit"));
    assert_int_equal(access(fx->path, F_OK), -1);
    rd_edits_free(e);
}

/* ---- refusals ----------------------------------------------------------------------- */

static void test_refuse_other_width_and_layers(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_FFN, "all", 1, 1);
    save_ok(e, fx->m, NULL, fx->path);
    rd_edits_free(e);

    rd_config narrow = tiny_config();
    narrow.dim = 32;
    narrow.n_heads = 4;
    narrow.n_kv_heads = 2;
    rd_model *m = tiny_model(&narrow, 11);
    expect_load_fails(fx->path, m, 0, "width 64", "width is 32", NULL);
    expect_load_fails(fx->path, m, 1, "width 64", "width is 32", NULL); /* force: no */
    rd_model_free(m);

    rd_config shallow = layers_config(2);
    m = tiny_model(&shallow, 11);
    expect_load_fails(fx->path, m, 1, "3 layers", "has 2", NULL);
    rd_model_free(m);
}

static void test_refuse_other_fingerprint(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_BOTH, "all", 1, 1);
    randomize(e, 9);
    save_ok(e, fx->m, NULL, fx->path);
    rd_config cfg = tiny_config();
    rd_model *other = tiny_model(&cfg, 99);
    expect_load_fails(fx->path, other, 0, "another model", "--force", NULL);
    rd_edits *l = load_ok(fx->path, other, 1, NULL); /* force skips only this check */
    assert_same_edits(e, l);
    rd_edits_free(l);
    rd_model_free(other);
    rd_edits_free(e);
}

static void test_refuse_damaged_files(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_FFN, "all", 1, 1);
    save_ok(e, fx->m, NULL, fx->path);
    rd_edits_free(e);
    bytebuf b;
    bb_init(&b);
    assert_int_equal(bb_read_file(&b, fx->path), 0);
    assert_int_equal(bb_write_file(&b, fx->other, b.len - 10), 0); /* data cut short */
    expect_load_fails(fx->other, fx->m, 0, "past the end", NULL);
    assert_int_equal(bb_write_file(&b, fx->other, 40), 0); /* header cut short */
    expect_load_fails(fx->other, fx->m, 0, "past the end", NULL);
    assert_int_equal(bb_write_file(&b, fx->other, 5), 0);
    expect_load_fails(fx->other, fx->m, 0, "truncated", NULL);
    b.data[8] = 'x'; /* the header's opening brace */
    assert_int_equal(bb_write_file(&b, fx->other, b.len), 0);
    expect_load_fails(fx->other, fx->m, 0, "not valid JSON", NULL);
    bb_free(&b);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/none.safetensors", fx->dir);
    expect_load_fails(missing, fx->m, 0, "cannot open", NULL);
}

/* Rewrites the header of src into dst with `from` replaced by `to` (first occurrence),
 * keeping the data section. */
static void rewrite_header(const char *src, const char *dst, const char *from, const char *to) {
    bytebuf b, out;
    bb_init(&b);
    bb_init(&out);
    assert_int_equal(bb_read_file(&b, src), 0);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b.data[i];
    char *hdr = calloc(1, (size_t)n + 1);
    memcpy(hdr, b.data + 8, (size_t)n);
    char *at = strstr(hdr, from);
    if (!at) fail_msg("'%s' not in header %s", from, hdr);
    size_t pre = (size_t)(at - hdr), nf = strlen(from), nt = strlen(to);
    bb_u64(&out, n - nf + nt);
    bb_bytes(&out, hdr, pre);
    bb_bytes(&out, to, nt);
    bb_bytes(&out, at + nf, (size_t)n - pre - nf);
    bb_bytes(&out, b.data + 8 + n, b.len - 8 - (size_t)n);
    assert_int_equal(bb_write_file(&out, dst, out.len), 0);
    free(hdr);
    bb_free(&b);
    bb_free(&out);
}

/* Edit files of earlier versions carry the sampled fingerprint and no kind: still loaded,
 * and the caller is told; with the kind written now, a sampled match is not enough. */
static void test_old_edit_file_loads(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_FFN, "all", 1, 1);
    randomize(e, 5);
    save_ok(e, fx->m, NULL, fx->path);
    char now[64], old[64];
    snprintf(now, sizeof now, "\"base_fingerprint\":\"%016llx\"",
             (unsigned long long)rd_model_fingerprint(fx->m));
    snprintf(old, sizeof old, "\"base_fingerprint\":\"%016llx\"",
             (unsigned long long)rd_model_fingerprint_sampled(fx->m));
    rd_error err = {{0}};
    rd_fp_match match = RD_FP_OTHER;
    rd_edits *l = rd_edits_load_match(fx->path, fx->m, 0, NULL, &match, &err);
    if (!l) fail_msg("load: %s", err.msg);
    assert_int_equal(match, RD_FP_SAME);
    rd_edits_free(l);
    /* an old file: sampled fingerprint, no kind */
    char mid[700];
    snprintf(mid, sizeof mid, "%s/mid.safetensors", fx->dir);
    rewrite_header(fx->path, mid, now, old);
    rewrite_header(mid, fx->other, "\"base_fingerprint_kind\":\"xxh3-64\",", "");
    l = rd_edits_load_match(fx->other, fx->m, 0, NULL, &match, &err);
    if (!l) fail_msg("old file: %s", err.msg);
    assert_int_equal(match, RD_FP_SAME_SAMPLED);
    assert_same_edits(e, l);
    rd_edits_free(l);
    l = load_ok(fx->other, fx->m, 0, NULL); /* rd_edits_load too */
    rd_edits_free(l);
    /* an old file for a model that differs only between the windows: still accepted (all
     * an old file can say), but a new file is not */
    rd_config cfg = tiny_config();
    rd_model *near = tiny_model(&cfg, 11);
    ((float *)near->file.w.layers[1].w2.data)[200] += 1e-3f;
    l = rd_edits_load_match(fx->other, near, 0, NULL, &match, &err);
    assert_non_null(l);
    assert_int_equal(match, RD_FP_SAME_SAMPLED);
    rd_edits_free(l);
    expect_load_fails(fx->path, near, 0, "another model", NULL);
    l = rd_edits_load_match(fx->path, near, 1, NULL, &match, &err); /* forced */
    assert_non_null(l);
    assert_int_equal(match, RD_FP_OTHER);
    rd_edits_free(l);
    rd_model_free(near);
    /* the new kind with a sampled value: refused; an unknown kind: refused */
    rewrite_header(fx->path, fx->other, now, old);
    expect_load_fails(fx->other, fx->m, 0, "another model", NULL);
    rewrite_header(fx->path, fx->other, "\"xxh3-64\"", "\"sha-9\"");
    expect_load_fails(fx->other, fx->m, 0, "kind \"sha-9\"", "--force", NULL);
    rd_edits_free(e);
}

static void test_refuse_bad_tensors(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_FFN, "all", 1, 1);
    save_ok(e, fx->m, NULL, fx->path);
    rd_edits_free(e);
    /* tensors are 256 bytes each: layers.0.ffn.scale [0,256], layers.0.ffn.bias [256,512] */
    rewrite_header(fx->path, fx->other, "[256,512]", "[0,256]");
    expect_load_fails(fx->other, fx->m, 0, "overlap", NULL);
    rewrite_header(fx->path, fx->other, "\"dtype\":\"F32\"", "\"dtype\":\"F3X\"");
    expect_load_fails(fx->other, fx->m, 0, "unknown dtype \"F3X\"", NULL);
    rewrite_header(fx->path, fx->other, "\"dtype\":\"F32\"", "\"dtype\":\"I32\"");
    expect_load_fails(fx->other, fx->m, 0, "has dtype I32", NULL);
    rewrite_header(fx->path, fx->other, "\"shape\":[64]", "\"shape\":[65]");
    expect_load_fails(fx->other, fx->m, 0, "disagree", NULL);
    rewrite_header(fx->path, fx->other, "\"shape\":[64]", "\"shape\":[32,2]");
    expect_load_fails(fx->other, fx->m, 0, "expected shape (64)", NULL);
    rewrite_header(fx->path, fx->other, "layers.1.ffn.bias", "layers.1.ffn.bias2");
    expect_load_fails(fx->other, fx->m, 0, "unexpected tensor \"layers.1.ffn.bias2\"", NULL);
    rewrite_header(fx->path, fx->other, "\"format\":\"redit-red\"", "\"format\":\"other\"");
    expect_load_fails(fx->other, fx->m, 0, "not a redit edit file", NULL);
    rewrite_header(fx->path, fx->other, "\"version\":\"1\"", "\"version\":\"3\"");
    expect_load_fails(fx->other, fx->m, 0, "newer", NULL);
    rewrite_header(fx->path, fx->other, "\"sites\":\"ffn\"", "\"sites\":\"mlp\"");
    expect_load_fails(fx->other, fx->m, 0, "\"sites\"", NULL);
    rewrite_header(fx->path, fx->other, "\"layers\":\"all\"", "\"layers\":\"0-7\"");
    expect_load_fails(fx->other, fx->m, 0, "beyond", NULL);
    rewrite_header(fx->path, fx->other, "\"dim\":\"64\"", "\"dim\":\"64x\"");
    expect_load_fails(fx->other, fx->m, 0, "\"dim\"", NULL);
    rewrite_header(fx->path, fx->other, "\"scale\":\"true\"", "\"scale\":\"yes\"");
    expect_load_fails(fx->other, fx->m, 0, "\"scale\"", NULL);
    /* a declared vector that the file lacks: metadata says scale, bias and attn too */
    rewrite_header(fx->path, fx->other, "\"sites\":\"ffn\"", "\"sites\":\"both\"");
    expect_load_fails(fx->other, fx->m, 0, "tensor \"layers.0.attn.scale\" is missing", NULL);
    /* vectors the metadata does not declare */
    rewrite_header(fx->path, fx->other, "\"bias\":\"true\"", "\"bias\":\"false\"");
    expect_load_fails(fx->other, fx->m, 0, "unexpected tensor \"layers.0.ffn.bias\"", NULL);
    rewrite_header(fx->path, fx->other, "\"layers\":\"all\"", "\"layers\":\"0,2\"");
    expect_load_fails(fx->other, fx->m, 0, "unexpected tensor \"layers.1.ffn.", NULL);
}

/* Copies the edit file src into dst through the generic writer, tensors converted to
 * `type`; `skip` (may be NULL) is left out and `extra` (may be NULL) added as zeros;
 * shape_2d writes (1, dim) shapes. */
static void copy_edit_file(const char *src, const char *dst, rd_dtype type, const char *skip,
                           const char *extra, int shape_2d) {
    static const char *const KEYS[] = {"format", "version", "base_model", "base_fingerprint",
                                       "base_fingerprint_kind", "sites", "layers", "dim", "n_layers", "scale", "bias",
                                       "training"};
    rd_error err = {{0}};
    rd_st_file *f = rd_st_open(src, &err);
    if (!f) fail_msg("open: %s", err.msg);
    rd_st_writer *w = rd_st_writer_new(&err);
    assert_non_null(w);
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++)
        if (rd_st_metadata(f, KEYS[i]))
            assert_int_equal(rd_st_writer_meta(w, KEYS[i], rd_st_metadata(f, KEYS[i]), &err), 0);
    const int n = rd_st_count(f);
    const int d = (int)rd_st_at(f, 0)->n_elems;
    uint8_t *buf = calloc((size_t)(n + 1) * d, 4); /* borrowed by the writer until commit */
    assert_non_null(buf);
    const int64_t shape1[1] = {d}, shape2[2] = {1, d};
    for (int i = 0; i < n; i++) {
        const rd_st_tensor *t = rd_st_at(f, i);
        if (skip && strcmp(t->name, skip) == 0) continue;
        float *tmp = malloc((size_t)d * sizeof *tmp);
        memcpy(tmp, t->data, (size_t)d * sizeof *tmp);
        rd_dtype_info_of(type)->from_f32(tmp, buf + (size_t)i * d * 4, (size_t)d);
        free(tmp);
        assert_int_equal(rd_st_writer_add(w, t->name, type, shape_2d ? shape2 : shape1,
                                          shape_2d ? 2 : 1, buf + (size_t)i * d * 4, &err), 0);
    }
    if (extra)
        assert_int_equal(rd_st_writer_add(w, extra, type, shape1, 1, buf + (size_t)n * d * 4,
                                          &err), 0);
    if (rd_st_writer_commit(w, dst, &err)) fail_msg("commit: %s", err.msg);
    rd_st_writer_free(w);
    free(buf);
    rd_st_close(f);
}

static void test_missing_and_extra_tensors(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_FFN, "0,2", 1, 1);
    randomize(e, 5);
    save_ok(e, fx->m, NULL, fx->path);
    copy_edit_file(fx->path, fx->other, RD_DTYPE_F32, NULL, NULL, 0); /* a faithful copy loads */
    rd_edits *l = load_ok(fx->other, fx->m, 0, NULL);
    assert_same_edits(e, l);
    rd_edits_free(l);
    copy_edit_file(fx->path, fx->other, RD_DTYPE_F32, "layers.2.ffn.bias", NULL, 0);
    expect_load_fails(fx->other, fx->m, 0, "\"layers.2.ffn.bias\" is missing", "layers 0,2", NULL);
    copy_edit_file(fx->path, fx->other, RD_DTYPE_F32, NULL, "layers.1.ffn.scale", 0);
    expect_load_fails(fx->other, fx->m, 0, "unexpected tensor \"layers.1.ffn.scale\"", NULL);
    copy_edit_file(fx->path, fx->other, RD_DTYPE_F32, NULL, "layers.0.attn.bias", 0);
    expect_load_fails(fx->other, fx->m, 0, "unexpected tensor \"layers.0.attn.bias\"", NULL);
    copy_edit_file(fx->path, fx->other, RD_DTYPE_F32, NULL, "embedding", 0);
    expect_load_fails(fx->other, fx->m, 0, "unexpected tensor \"embedding\"", NULL);
    rd_edits_free(e);
}

static void test_half_precision_widened(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_BOTH, "1", 1, 1);
    randomize(e, 21);
    save_ok(e, fx->m, NULL, fx->path);
    const rd_dtype types[2] = {RD_DTYPE_F16, RD_DTYPE_BF16};
    const size_t n = rd_edits_param_count(e);
    for (int k = 0; k < 2; k++) {
        copy_edit_file(fx->path, fx->other, types[k], NULL, NULL, k); /* BF16 as (1, dim) */
        rd_edits *l = load_ok(fx->other, fx->m, 0, NULL);
        const rd_dtype_info *info = rd_dtype_info_of(types[k]);
        float *want = malloc(n * sizeof *want);
        uint16_t *half = malloc(n * sizeof *half);
        info->from_f32(rd_edits_params_const(e), half, n);
        info->to_f32(half, want, n);
        assert_memory_equal(rd_edits_params_const(l), want, n * sizeof *want);
        if (memcmp(want, rd_edits_params_const(e), n * sizeof *want) == 0)
            fail_msg("%s kept every value exactly: the test checks nothing", info->name);
        free(want);
        free(half);
        rd_edits_free(l);
    }
    rd_edits_free(e);
}

static void test_refuse_non_finite(void **state) {
    fixture *fx = *state;
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_FFN, "0", 0, 1);
    rd_edits_vector(e, 0, RD_SITE_FFN, 1)[7] = NAN;
    save_ok(e, fx->m, NULL, fx->path);
    expect_load_fails(fx->path, fx->m, 0, "non-finite value at index 7", NULL);
    rd_edits_free(e);
}

/* ---- other readers ------------------------------------------------------------------ */

/* The PyTorch reference's loader (llama_red_ref.py, load_edits_safetensors) takes the first
 * number in a tensor's name as its layer, "attn|attention|o_proj" (checked first) or
 * "ffn|mlp|down_proj" as its site and "scal" or "bias" as its kind. */
static void ref_parse(const char *name, int *layer, int *site, int *bias) {
    char low[128];
    size_t i = 0;
    for (; name[i] && i < sizeof low - 1; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    low[i] = '\0';
    const char *p = low;
    while (*p && (*p < '0' || *p > '9')) p++;
    *layer = *p ? atoi(p) : -1;
    *site = strstr(low, "attn") || strstr(low, "attention") || strstr(low, "o_proj") ? RD_SITE_ATTN
            : strstr(low, "ffn") || strstr(low, "mlp") || strstr(low, "down_proj") ? RD_SITE_FFN
                                                                                  : 0;
    *bias = strstr(low, "scal") ? 0 : strstr(low, "bias") ? 1 : -1;
}

static void test_torch_ref_conventions(void **state) {
    fixture *fx = *state;
    /* the conventions mirrored above are the reference's own */
    FILE *fp = fopen(TORCH_REF, "r");
    if (fp) {
        char *src = calloc(1, 1 << 20);
        size_t n = fread(src, 1, (1 << 20) - 1, fp);
        fclose(fp);
        src[n] = '\0';
        assert_non_null(strstr(src, "attn|attention|o_proj"));
        assert_non_null(strstr(src, "ffn|mlp|down_proj"));
        assert_non_null(strstr(src, "r\"(\\d+)\""));
        assert_non_null(strstr(src, "\"scal\""));
        free(src);
    } else {
        fprintf(stderr, "note: %s not found; checking names against the documented rules\n",
                TORCH_REF);
    }
    rd_config cfg = layers_config(12); /* two-digit layers too */
    rd_model *m = tiny_model(&cfg, 4);
    rd_edits *e = new_edits(&cfg, RD_SITE_BOTH, "0,5,10-11", 1, 1);
    randomize(e, 8);
    save_ok(e, m, NULL, fx->path);
    rd_error err = {{0}};
    rd_st_file *f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    assert_int_equal(rd_st_count(f), 4 * 4);
    for (int i = 0; i < rd_st_count(f); i++) {
        const rd_st_tensor *t = rd_st_at(f, i);
        int layer, site, bias;
        ref_parse(t->name, &layer, &site, &bias);
        assert_true(rd_edits_layer_on(e, layer));
        assert_true(site == RD_SITE_ATTN || site == RD_SITE_FFN);
        assert_true(bias == 0 || bias == 1);
        assert_true(strstr(t->name, site == RD_SITE_ATTN ? "attn" : "ffn") != NULL);
        assert_true(strstr(t->name, bias ? "bias" : "scale") != NULL);
        /* the vector the reference would fill is the one saved there */
        assert_memory_equal(t->data, rd_edits_vector(e, layer, site, bias), 64 * sizeof(float));
    }
    rd_st_close(f);
    rd_edits_free(e);
    rd_model_free(m);
}

static const char PY_SCRIPT[] =
    "import json, re, struct, sys\n"
    "b = open(sys.argv[1], 'rb').read()\n"
    "n = struct.unpack('<Q', b[:8])[0]\n"
    "assert n % 8 == 0, 'header length %d is not a multiple of 8' % n\n"
    "h = json.loads(b[8:8 + n].decode('utf-8'))\n"
    "meta = h.pop('__metadata__')\n"
    "assert all(isinstance(v, str) for v in meta.values())\n"
    "data = b[8 + n:]\n"
    "pos = 0\n"
    "for a, e in sorted(tuple(v['data_offsets']) for v in h.values()):\n"
    "    assert a == pos, 'hole or overlap at %d' % a\n"
    "    pos = e\n"
    "assert pos == len(data), 'data section %d bytes, tensors cover %d' % (len(data), pos)\n"
    "for k in sorted(meta): print('M', k, json.dumps(meta[k]))\n"
    "for name, v in h.items():\n"
    "    assert v['dtype'] == 'F32' and len(v['shape']) == 1\n"
    "    a, e = v['data_offsets']\n"
    "    vals = struct.unpack('<%df' % v['shape'][0], data[a:e])\n"
    "    low = name.lower()\n"
    "    m = re.search(r'(\\d+)', low)\n"
    "    site = 'attn' if re.search(r'attn|attention|o_proj', low) else ('ffn' if "
    "re.search(r'ffn|mlp|down_proj', low) else 'none')\n"
    "    kind = 's' if re.search(r'scal', low) else ('b' if 'bias' in low else 'none')\n"
    "    print('T', name, int(m.group(1)), site, kind, len(vals),\n"
    "          ' '.join(repr(x) for x in vals))\n"
    "print('END')\n";

/* One 'T' line: name layer site kind n values... */
static void check_python_tensor(char *line, rd_edits *e, int *seen) {
    char *save = NULL;
    strtok_r(line, " \n", &save); /* "T" */
    const char *name = strtok_r(NULL, " \n", &save);
    int layer = atoi(strtok_r(NULL, " \n", &save));
    const char *site = strtok_r(NULL, " \n", &save), *kind = strtok_r(NULL, " \n", &save);
    int n = atoi(strtok_r(NULL, " \n", &save));
    assert_int_equal(n, rd_edits_dim(e));
    const int s = strcmp(site, "attn") == 0  ? RD_SITE_ATTN
                  : strcmp(site, "ffn") == 0 ? RD_SITE_FFN
                                             : 0;
    const int want_bias = strcmp(kind, "b") == 0;
    if (!s || (!want_bias && strcmp(kind, "s") != 0))
        fail_msg("python could not place tensor %s (site %s, kind %s)", name, site, kind);
    const float *v = rd_edits_vector(e, layer, s, want_bias);
    if (!v)
        fail_msg("python placed %s at layer %d %s %s: not an edited vector", name, layer, site,
                 kind);
    for (int j = 0; j < n; j++) {
        const char *tok = strtok_r(NULL, " \n", &save);
        assert_non_null(tok);
        float got = (float)strtod(tok, NULL);
        if (memcmp(&got, &v[j], sizeof got) != 0)
            fail_msg("%s[%d]: python read %s, saved %.9g", name, j, tok, (double)v[j]);
    }
    (*seen)++;
}

static void test_python_reads_file(void **state) {
    fixture *fx = *state;
    if (access(PYTHON, X_OK) != 0) {
        fprintf(stderr, "SKIPPED test_python_reads_file: %s is missing, the edit file's "
                        "validity for other readers is NOT checked\n", PYTHON);
        skip();
    }
    rd_edits *e = new_edits(rd_model_config(fx->m), RD_SITE_BOTH, "0,2", 1, 1);
    randomize(e, 77);
    rd_edits_vector(e, 2, RD_SITE_FFN, 1)[3] = -0.0f;
    rd_edits_vector(e, 2, RD_SITE_FFN, 1)[4] = 1e-40f; /* subnormal */
    const char *training = "{\"lr\": 0.0001, \"note\": \"caf\\u00e9 \\\"quoted\\\"\"}";
    save_ok(e, fx->m, training, fx->path);
    char script[700], cmd[2000];
    snprintf(script, sizeof script, "%s/check.py", fx->dir);
    FILE *sf = fopen(script, "w");
    assert_non_null(sf);
    fputs(PY_SCRIPT, sf);
    fclose(sf);
    snprintf(cmd, sizeof cmd, "%s '%s' '%s' 2>&1", PYTHON, script, fx->path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    rd_error err = {{0}};
    rd_st_file *f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    char *line = NULL;
    size_t cap = 0;
    int tensors = 0, metas = 0, end = 0;
    while (getline(&line, &cap, p) > 0) {
        if (strncmp(line, "M ", 2) == 0) {
            char key[64], val[512];
            assert_int_equal(sscanf(line, "M %63s %511[^\n]", key, val), 2);
            const char *mine = rd_st_metadata(f, key);
            if (!mine) fail_msg("python saw metadata %s that redit does not", key);
            cJSON *j = cJSON_Parse(val); /* python wrote json.dumps(value) */
            if (!cJSON_IsString(j) || strcmp(j->valuestring, mine) != 0)
                fail_msg("metadata %s: python read %s, redit %s", key, val, mine);
            cJSON_Delete(j);
            metas++;
        } else if (strncmp(line, "T ", 2) == 0) {
            check_python_tensor(line, e, &tensors);
        } else if (strcmp(line, "END\n") == 0) {
            end = 1;
        } else {
            fail_msg("python: %s", line);
        }
    }
    free(line);
    int status = pclose(p);
    rd_st_close(f);
    assert_int_equal(status, 0);
    assert_true(end);
    assert_int_equal(tensors, 8);
    assert_int_equal(metas, 12);
    rd_edits_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sites),
        cmocka_unit_test(test_layer_lists),
        cmocka_unit_test(test_layer_list_errors),
        cmocka_unit_test(test_empty_selections),
        cmocka_unit_test(test_param_counts_llama2_7b),
        cmocka_unit_test_setup_teardown(test_ratio, setup, teardown),
        cmocka_unit_test(test_layout_both_sites),
        cmocka_unit_test(test_layout_one_site_one_kind),
        cmocka_unit_test(test_clone),
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_edit_file_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_other_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_other_width_and_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_other_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_damaged_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_bad_tensors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_extra_tensors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_precision_widened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_non_finite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torch_ref_conventions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_python_reads_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
