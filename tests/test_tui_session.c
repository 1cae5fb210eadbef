/* Workbench settings and sessions (src/tui/tui_config.c, src/tui/session.c): the field table
 * (every key, get/set round trips, bool spellings, rejected values with their messages and
 * the config unchanged), cross-field validation, the engine option structs, config JSON
 * round trips and refusals, session save → load round trips with edits, the exact loss.csv
 * text, damaged files, session names, and the CLI's changes to a saved session (--use,
 * --delete, --edits). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/tui/session.h"
#include "../src/tui/tui_config.h"
#include "helpers/tiny_model.h"
#include "redit/edits.h"
#include "redit/model.h"
#include "redit/workbench.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static const tui_field *field(const char *key) {
    const tui_field *f = tui_config_find(key);
    if (!f) fail_msg("no field \"%s\"", key);
    return f;
}

static void set_ok(tui_config *c, const char *key, const char *text) {
    rd_error err = {{0}};
    if (tui_config_set(c, field(key), text, &err)) fail_msg("set %s = '%s': %s", key, text, err.msg);
}

static void assert_get(const tui_config *c, const char *key, const char *want) {
    char buf[1024];
    int n = tui_config_get(c, field(key), buf, sizeof buf);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
}

/* Two configs hold the same settings: every field reads back as the same text (reals in
 * shortest round-trip form, so equal text means the same double). */
static void assert_config_equal(const tui_config *a, const tui_config *b) {
    char x[1024], y[1024];
    for (size_t i = 0; i < tui_config_field_count(); i++) {
        const tui_field *f = tui_config_field(i);
        tui_config_get(a, f, x, sizeof x);
        tui_config_get(b, f, y, sizeof y);
        if (strcmp(x, y)) fail_msg("field %s: '%s' != '%s'", f->key, x, y);
    }
}

/* Removes a folder and everything below it (test folders only). */
static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char sub[2048];
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_all(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static rd_model *tiny_model(uint64_t seed) {
    rd_model_file f;
    rd_error err = {{0}};
    rd_config cfg = tiny_config();
    if (tiny_model_init(&f, &cfg, 0, seed)) fail_msg("random model");
    rd_model *m = rd_model_from_file(&f, NULL, &err);
    if (!m) fail_msg("model: %s", err.msg);
    return m;
}

/* Counts entries of dir whose name contains ".tmp-". */
static int count_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp-")) n++;
    closedir(d);
    return n;
}

/* ---- the field table ---------------------------------------------------------------------- */

static void test_defaults(void **state) {
    (void)state;
    const tui_config c = tui_config_defaults();
    const rd_train_opts o = rd_train_opts_defaults();
    assert_string_equal(c.method, "red");
    assert_string_equal(c.sites, "ffn");
    assert_string_equal(c.layers, "all");
    assert_int_equal(c.rank, 8); /* PEFT's LoraConfig */
    assert_true(c.lora_alpha == 8 && c.lora_dropout == 0);
    assert_string_equal(c.lora_targets, "q,v");
    assert_int_equal(c.scale, 1);
    assert_int_equal(c.bias, 1);
    assert_true(c.lr == o.lr);
    assert_int_equal(c.epochs, o.epochs);
    assert_int_equal(c.batch, o.batch);
    assert_int_equal(c.micro_batch, o.micro_batch);
    assert_int_equal(c.max_len, o.max_len);
    assert_string_equal(c.schedule, "linear");
    assert_true(c.warmup == o.warmup_ratio);
    assert_true(c.weight_decay == o.weight_decay);
    assert_true(c.clip == o.clip && c.dropout == o.dropout);
    assert_true(c.beta1 == o.beta1 && c.beta2 == o.beta2);
    assert_true(c.seed == 42);
    assert_int_equal(c.eval_every, 0);
    assert_int_equal(c.max_steps, 0);
    assert_string_equal(c.compute, "auto");
    assert_int_equal(c.group_by_length, 0);
    assert_string_equal(c.train_path, "");
    assert_string_equal(c.eval_path, "");
    assert_true(c.eval_split == 0.0);
    assert_string_equal(c.format, "auto");
    assert_string_equal(c.template_name, "");
    assert_string_equal(c.system, "");
    assert_true(c.temperature == 0.0);
    assert_true(c.top_p == 0.9);
    assert_int_equal(c.max_tokens, 64);
    assert_true(c.strength == 1.0);
    assert_get(&c, "lr", "0.002");
    assert_get(&c, "warmup", "0.06");
    assert_get(&c, "scale", "on");
    /* the defaults pass every field check */
    rd_error err = {{0}};
    assert_int_equal(tui_config_check_fields(&c, &err), 0);
}

static const char *const ALL_KEYS[] = {
    "method",      "sites",           "layers",    "scale",         "bias",
    "rank",        "lora_alpha",      "lora_targets", "lora_dropout", "lr",
    "epochs",      "batch",           "micro_batch", "max_len",     "schedule",
    "warmup",      "weight_decay",    "clip",      "dropout",       "beta1",
    "beta2",       "seed",      "eval_every",    "max_steps",
    "group_by_length", "compute",     "train_path", "eval_path",    "eval_split",
    "mc_path",     "format",      "template_name",   "system",    "temperature",   "top_p",
    "max_tokens",  "strength"};
#define N_KEYS (sizeof ALL_KEYS / sizeof ALL_KEYS[0])

static void test_field_table(void **state) {
    (void)state;
    assert_int_equal(tui_config_field_count(), N_KEYS);
    for (size_t i = 0; i < N_KEYS; i++) {
        const tui_field *f = tui_config_find(ALL_KEYS[i]);
        if (!f) fail_msg("key %s not found", ALL_KEYS[i]);
        assert_string_equal(f->key, ALL_KEYS[i]);
    }
    assert_null(tui_config_find("nope"));
    assert_null(tui_config_find(""));
    assert_null(tui_config_find(NULL));
    assert_null(tui_config_field(N_KEYS));
    /* display order is grouped: edits, training, data, chat, each group in one run */
    const char *groups[] = {"edits", "training", "data", "chat"};
    size_t g = 0;
    for (size_t i = 0; i < tui_config_field_count(); i++) {
        const tui_field *f = tui_config_field(i);
        assert_ptr_equal(tui_config_find(f->key), f);
        assert_non_null(f->label);
        assert_non_null(f->help);
        assert_true(strlen(f->help) > 0);
        while (g < 4 && strcmp(f->group, groups[g])) g++;
        if (g == 4) fail_msg("field %s: group %s out of order", f->key, f->group);
        if (f->kind == TUI_FIELD_CHOICE) assert_non_null(f->choices);
        else assert_null(f->choices);
        if (f->kind == TUI_FIELD_INT || f->kind == TUI_FIELD_REAL) assert_true(f->min <= f->max);
    }
    assert_string_equal(tui_config_find("micro_batch")->label, "micro-batch");
    assert_string_equal(tui_config_find("micro_batch")->group, "training");
    assert_int_equal(tui_config_find("scale")->kind, TUI_FIELD_BOOL);
    assert_int_equal(tui_config_find("seed")->kind, TUI_FIELD_INT);
    assert_int_equal(tui_config_find("lr")->kind, TUI_FIELD_REAL);
    assert_int_equal(tui_config_find("format")->kind, TUI_FIELD_CHOICE);
    assert_int_equal(tui_config_find("system")->kind, TUI_FIELD_TEXT);
    /* every choice is a name the engine knows */
    for (const char *const *c = tui_config_find("format")->choices; *c; c++) {
        rd_data_format fmt;
        assert_int_equal(rd_data_format_from_name(*c, &fmt), 0);
    }
    for (const char *const *c = tui_config_find("schedule")->choices; *c; c++) {
        rd_schedule s;
        assert_int_equal(rd_schedule_from_name(*c, &s), 0);
    }
    for (const char *const *c = tui_config_find("compute")->choices; *c; c++) {
        rd_compute mode;
        assert_int_equal(rd_compute_from_name(*c, &mode), 0);
    }
    for (const char *const *c = tui_config_find("sites")->choices; *c; c++) {
        int s;
        assert_int_equal(rd_sites_from_name(*c, &s), 0);
    }
    int n_methods = 0;
    for (const char *const *c = tui_config_find("method")->choices; *c; c++, n_methods++) {
        int m;
        assert_int_equal(rd_method_from_name(*c, &m), strcmp(*c, "full") ? 0 : -1);
    }
    assert_int_equal(n_methods, 4); /* red, lora, ia3 and full (not an edit method) */
}

/* One non-default value per field: text typed → text read back. */
static const struct {
    const char *key, *typed, *shown;
} VALUES[] = {
    {"method", "lora", "lora"},
    {"sites", "both", "both"},
    {"layers", "0-1, 2", "0-1, 2"},
    {"scale", "off", "off"},
    {"bias", "no", "off"},
    {"rank", "16", "16"},
    {"lora_alpha", "32", "32"},
    {"lora_targets", "q,k,v,o", "q,k,v,o"},
    {"lora_dropout", "0.05", "0.05"},
    {"lr", "1e-4", "0.0001"},
    {"epochs", " 3 ", "3"},
    {"batch", "16", "16"},
    {"micro_batch", "4", "4"},
    {"max_len", "256", "256"},
    {"schedule", "cosine", "cosine"},
    {"warmup", "0.1", "0.1"},
    {"weight_decay", "0.01", "0.01"},
    {"clip", "0", "0"},
    {"dropout", "0.1", "0.1"},
    {"beta1", "0.8", "0.8"},
    {"beta2", "0.95", "0.95"},
    {"seed", "9007199254740991", "9007199254740991"},
    {"eval_every", "10", "10"},
    {"max_steps", "100", "100"},
    {"group_by_length", "on", "on"},
    {"compute", "f32", "f32"},
    {"train_path", "data/train set.jsonl", "data/train set.jsonl"},
    {"eval_path", "data/eval.jsonl", "data/eval.jsonl"},
    {"eval_split", "0.25", "0.25"},
    {"mc_path", "datasets/define-words-mc/eval.jsonl", "datasets/define-words-mc/eval.jsonl"},
    {"format", "chat", "chat"},
    {"template_name", "red", "red"},
    {"system", "Be brief.\nSay \"no\" — ✓", "Be brief.\nSay \"no\" — ✓"},
    {"temperature", "0.7", "0.7"},
    {"top_p", "1", "1"},
    {"max_tokens", "128", "128"},
    {"strength", "2.5", "2.5"},
};
#define N_VALUES (sizeof VALUES / sizeof VALUES[0])

static void test_get_set_round_trip(void **state) {
    (void)state;
    /* every field has a case here */
    assert_int_equal(N_VALUES, tui_config_field_count());
    tui_config c = tui_config_defaults();
    for (size_t i = 0; i < N_VALUES; i++) {
        set_ok(&c, VALUES[i].key, VALUES[i].typed);
        assert_get(&c, VALUES[i].key, VALUES[i].shown);
    }
    assert_int_equal(c.scale, 0);
    assert_true(c.lr == 1e-4);
    assert_int_equal(c.epochs, 3);
    assert_true(c.seed == 9007199254740991LL);
    assert_string_equal(c.system, "Be brief.\nSay \"no\" — ✓");
    /* get → set of every field gives back the same bytes */
    for (size_t i = 0; i < tui_config_field_count(); i++) {
        const tui_field *f = tui_config_field(i);
        char text[1024];
        tui_config copy = c;
        tui_config_get(&c, f, text, sizeof text);
        rd_error err = {{0}};
        if (tui_config_set(&copy, f, text, &err)) fail_msg("%s: %s", f->key, err.msg);
        assert_memory_equal(&copy, &c, sizeof c);
    }
    /* awkward reals read back exactly */
    const char *reals[] = {"0.1", "0.3", "1e-07", "0.0020000000000000001", "3.0000000000000004"};
    for (size_t i = 0; i < 5; i++) {
        set_ok(&c, "lr", reals[i]);
        const double want = strtod(reals[i], NULL);
        char text[64];
        tui_config_get(&c, field("lr"), text, sizeof text);
        assert_true(strtod(text, NULL) == want);
    }
    set_ok(&c, "lr", "0.0020000000000000001"); /* the same double as 0.002 */
    assert_get(&c, "lr", "0.002");
    /* a short buffer is cut but the full length is returned */
    char small[4];
    assert_int_equal(tui_config_get(&c, field("train_path"), small, sizeof small), 20);
    assert_string_equal(small, "dat");
    /* a pointer that is not from the table */
    tui_field fake = *field("lr");
    rd_error err = {{0}};
    assert_int_equal(tui_config_get(&c, &fake, small, sizeof small), -1);
    assert_int_equal(tui_config_set(&c, &fake, "0.1", &err), -1);
    assert_string_equal(err.msg, "config: not a field of the settings table");
}

static void test_bool_spellings(void **state) {
    (void)state;
    const char *on[] = {"on", "true", "yes", "1", "ON", " Yes ", "True"};
    const char *off[] = {"off", "false", "no", "0", "OFF", "No\n"};
    tui_config c = tui_config_defaults();
    for (size_t i = 0; i < sizeof on / sizeof *on; i++) {
        c.bias = 0;
        set_ok(&c, "bias", on[i]);
        assert_int_equal(c.bias, 1);
    }
    for (size_t i = 0; i < sizeof off / sizeof *off; i++) {
        c.bias = 1;
        set_ok(&c, "bias", off[i]);
        assert_int_equal(c.bias, 0);
    }
    const char *bad[] = {"maybe", "2", "", "onn", "y"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rd_error err = {{0}};
        assert_int_equal(tui_config_set(&c, field("bias"), bad[i], &err), -1);
        char want[128];
        snprintf(want, sizeof want, "bias: '%s' is not on or off (also true/false, yes/no, 1/0)", bad[i]);
        assert_string_equal(err.msg, want);
    }
}

static void test_bad_values(void **state) {
    (void)state;
    char long_path[601];
    memset(long_path, 'a', 600);
    long_path[600] = '\0';
    const struct {
        const char *key, *text, *msg;
    } cases[] = {
        {"lr", "abc", "lr: 'abc' is not a number"},
        {"lr", "", "lr: '' is not a number"},
        {"lr", "0.1x", "lr: '0.1x' is not a number"},
        {"lr", "inf", "lr: 'inf' is not a finite number"},
        {"lr", "nan", "lr: 'nan' is not a finite number"},
        {"lr", "0", "lr: 0 is below the minimum 1e-07"},
        {"epochs", "0", "epochs: 0 is below the minimum 1"},
        {"epochs", "1.5", "epochs: '1.5' is not a whole number"},
        {"epochs", "100001", "epochs: 100001 is above the maximum 100000"},
        {"max_len", "1", "max_len: 1 is below the minimum 2"},
        {"max_tokens", "12abc", "max_tokens: '12abc' is not a number"},
        {"seed", "-1", "seed: -1 is below the minimum 0"},
        {"seed", "99999999999999999999",
         "seed: 99999999999999999999 is above the maximum 9007199254740991"},
        {"strength", "5", "strength: 5 is above the maximum 4"},
        {"strength", "-0.5", "strength: -0.5 is below the minimum 0"},
        {"eval_split", "0.6", "eval_split: 0.6 is above the maximum 0.5"},
        {"top_p", "0", "top_p: 0 is below the minimum 0.01"},
        {"warmup", "1", "warmup: 1 is above the maximum 0.99"},
        {"dropout", "1", "dropout: 1 is above the maximum 0.99"},
        {"beta2", "1", "beta2: 1 is above the maximum 0.999999"},
        {"clip", "-1", "clip: -1 is below the minimum 0"},
        {"sites", "mlp", "sites: 'mlp' is not one of ffn, attn, both"},
        {"method", "dora", "method: 'dora' is not one of red, lora, ia3, full"},
        {"rank", "0", "rank: 0 is below the minimum 1"},
        {"rank", "4097", "rank: 4097 is above the maximum 4096"},
        {"lora_alpha", "0", "lora_alpha: 0 is below the minimum 1e-06"},
        {"lora_dropout", "1", "lora_dropout: 1 is above the maximum 0.99"},
        {"lora_targets", "q,x", "lora_targets: LoRA target \"x\" is not one of q, k, v, o"},
        {"lora_targets", "", "lora_targets: no LoRA target given"},
        {"schedule", "Linear", "schedule: 'Linear' is not one of linear, cosine, constant"},
        {"format", "csv",
         "format: 'csv' is not one of auto, alpaca, chat, prompt-completion, ultrafeedback, "
         "text, classification"},
        {"scale", "maybe", "scale: 'maybe' is not on or off (also true/false, yes/no, 1/0)"},
        {"layers", "", "layers: the list is empty (give \"all\" or e.g. 0-5,9)"},
        {"layers", "0-", "layers: '0-': expected the end of the range 0-"},
        {"layers", "3-1", "layers: '3-1': the range 3-1 is reversed"},
        {"layers", "1;2", "layers: '1;2': unexpected \";\" (items are separated by commas, e.g. 0-5,9)"},
        {"layers", "x", "layers: 'x': expected a layer number at \"x\""},
        {"layers", "all,1", "layers: 'all,1': expected a layer number at \"all,1\""},
        {"train_path", long_path, "train_path: the text is 600 bytes long; at most 511 fit"},
        {"train_path", "a\nb", "train_path: the text holds a control character (byte 2)"},
        {"system", "ok \xff", "system: the text is not valid UTF-8 (byte 4)"},
        {"template_name", "nonsense",
         "template_name: template \"nonsense\": not a built-in name (llama2-chat, alpaca, "},
    };
    tui_config c = tui_config_defaults();
    set_ok(&c, "train_path", "data/x.jsonl");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tui_config before = c;
        rd_error err = {{0}};
        if (tui_config_set(&c, field(cases[i].key), cases[i].text, &err) != -1)
            fail_msg("%s = '%s' was accepted", cases[i].key, cases[i].text);
        if (strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)))
            fail_msg("%s = '%s': got \"%s\", want \"%s\"", cases[i].key, cases[i].text, err.msg,
                     cases[i].msg);
        assert_memory_equal(&before, &c, sizeof c);
    }
    /* a long typed value is cut in the message */
    rd_error err = {{0}};
    assert_int_equal(tui_config_set(&c, field("lr"), long_path, &err), -1);
    assert_string_equal(err.msg, "lr: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is "
                                 "not a number");
    /* texts that are fine */
    set_ok(&c, "layers", " all ");
    set_ok(&c, "layers", "0, 2-2");
    set_ok(&c, "template_name", "");
    set_ok(&c, "template_name", "Q: {prompt}\nA: {answer}");
    set_ok(&c, "system", "line one\n\tline two");
    long_path[511] = '\0';
    set_ok(&c, "eval_path", long_path);
    assert_int_equal(strlen(c.eval_path), 511);
}

/* The pane shows the fields of the configured method: RED's sites, scale and bias; LoRA's
 * rank, alpha, targets and dropout; the rest always. */
static void test_field_applies(void **state) {
    (void)state;
    tui_config c = tui_config_defaults();
    const char *red_only[] = {"sites", "scale", "bias"};
    const char *lora_only[] = {"rank", "lora_alpha", "lora_targets", "lora_dropout"};
    const char *methods[] = {"red", "lora", "ia3", "full"};
    for (int m = 0; m < 4; m++) {
        set_ok(&c, "method", methods[m]);
        for (int i = 0; i < 3; i++)
            assert_int_equal(tui_config_field_applies(&c, field(red_only[i])), m == 0);
        for (int i = 0; i < 4; i++)
            assert_int_equal(tui_config_field_applies(&c, field(lora_only[i])), m == 1);
        assert_true(tui_config_field_applies(&c, field("method")));
        assert_int_equal(tui_config_field_applies(&c, field("layers")), m != 3);
        assert_true(tui_config_field_applies(&c, field("lr")));
    }
    assert_false(tui_config_field_applies(&c, NULL));
    /* a session written before the methods (no "method" key) loads as RED */
    tui_config old;
    rd_error err = {{0}};
    const char *json = "{\"sites\": \"attn\", \"lr\": 0.01}";
    assert_int_equal(tui_config_from_json(json, strlen(json), &old, &err), 0);
    assert_string_equal(old.method, "red");
    assert_string_equal(old.sites, "attn");
    assert_int_equal(old.rank, 8);
}

/* ---- validation and the engine's structs --------------------------------------------------- */

static void expect_invalid(const tui_config *c, int n_layers, const char *msg) {
    rd_error err = {{0}};
    assert_int_equal(tui_config_validate(c, n_layers, &err), -1);
    assert_string_equal(err.msg, msg);
}

static void test_validate(void **state) {
    (void)state;
    tui_config c = tui_config_defaults();
    rd_error err = {{0}};
    expect_invalid(&c, 3, "train_path: no training file chosen");
    set_ok(&c, "train_path", "data/train.jsonl");
    assert_int_equal(tui_config_validate(&c, 3, &err), 0);

    tui_config b = c;
    set_ok(&b, "micro_batch", "16");
    expect_invalid(&b, 3, "micro_batch: 16 is larger than the batch 8 (a batch runs as micro-batches)");
    set_ok(&b, "micro_batch", "3"); /* need not divide the batch */
    assert_int_equal(tui_config_validate(&b, 3, &err), 0);

    b = c;
    set_ok(&b, "scale", "off");
    assert_int_equal(tui_config_validate(&b, 3, &err), 0);
    set_ok(&b, "bias", "off");
    expect_invalid(&b, 3, "scale and bias are both off: there is nothing to train");

    /* scale and bias are RED's: LoRA and IA3 train without them */
    set_ok(&b, "method", "lora");
    assert_int_equal(tui_config_validate(&b, 3, &err), 0);
    set_ok(&b, "method", "ia3");
    assert_int_equal(tui_config_validate(&b, 3, &err), 0);
    set_ok(&b, "method", "full");
    assert_int_equal(tui_config_validate(&b, 3, &err), 0);

    b = c;
    set_ok(&b, "layers", "0-1,5");
    expect_invalid(&b, 3, "layers: layer 5 is beyond the model's 3 layers (0-2)");
    assert_int_equal(tui_config_validate(&b, 6, &err), 0);
    assert_int_equal(tui_config_validate(&b, 0, &err), 0); /* no model: no range check */
    set_ok(&b, "layers", "2");
    assert_int_equal(tui_config_validate(&b, 3, &err), 0);

    /* values put in by code are held to the field rules */
    b = c;
    b.lr = -1;
    expect_invalid(&b, 3, "lr: -1 is below the minimum 1e-07");
    b = c;
    b.scale = 7;
    expect_invalid(&b, 3, "scale: 7 is not 0 or 1");
    b = c;
    strcpy(b.sites, "mlp");
    expect_invalid(&b, 3, "sites: 'mlp' is not one of ffn, attn, both");
    b = c;
    b.top_p = NAN;
    expect_invalid(&b, 3, "top_p: 'nan' is not a finite number");
    b = c;
    memset(b.layers, '1', sizeof b.layers); /* no terminating NUL */
    expect_invalid(&b, 3, "layers: the text is not terminated within its 64 bytes");
}

static void test_engine_structs(void **state) {
    (void)state;
    tui_config c = tui_config_defaults();
    for (size_t i = 0; i < N_VALUES; i++) set_ok(&c, VALUES[i].key, VALUES[i].typed);
    const rd_train_opts o = tui_config_train_opts(&c);
    const rd_train_opts d = rd_train_opts_defaults();
    assert_true(o.lr == 1e-4);
    assert_int_equal(o.epochs, 3);
    assert_int_equal(o.batch, 16);
    assert_int_equal(o.micro_batch, 4);
    assert_int_equal(o.max_len, 256);
    assert_int_equal(o.schedule, RD_SCHEDULE_COSINE);
    assert_true(o.warmup_ratio == 0.1);
    assert_true(o.weight_decay == 0.01);
    assert_true(o.seed == 9007199254740991ull);
    assert_int_equal(o.eval_every, 10);
    assert_int_equal(o.max_steps, 100);
    assert_null(o.stop);
    assert_true(o.clip == 0 && o.dropout == 0.1 && o.beta1 == 0.8 && o.beta2 == 0.95);
    assert_true(o.eps == d.eps);
    rd_error err = {{0}};
    assert_int_equal(rd_train_opts_validate(&o, &err), 0);

    /* method lora: LoRA's settings, none of RED's */
    const rd_edit_spec sl = tui_config_edit_spec(&c);
    assert_int_equal(sl.method, RD_METHOD_LORA);
    assert_int_equal(sl.rank, 16);
    assert_true(sl.lora_alpha == 32.0f && sl.lora_dropout == 0.05f);
    assert_int_equal(sl.lora_targets, RD_PROJ_BIT(RD_PROJ_Q) | RD_PROJ_BIT(RD_PROJ_K) |
                                          RD_PROJ_BIT(RD_PROJ_V) | RD_PROJ_BIT(RD_PROJ_O));
    assert_ptr_equal(sl.layers, c.layers);
    assert_true(sl.seed == 9007199254740991ull); /* A's init follows the run's seed */
    assert_int_equal(sl.sites, 0);
    set_ok(&c, "method", "ia3");
    const rd_edit_spec si = tui_config_edit_spec(&c);
    assert_int_equal(si.method, RD_METHOD_IA3);
    assert_int_equal(si.rank, 0);
    assert_int_equal(si.sites, 0);
    set_ok(&c, "method", "full"); /* no edit set: an invalid method rd_edits_new refuses */
    const rd_edit_spec sf = tui_config_edit_spec(&c);
    assert_true(sf.method != RD_METHOD_RED && sf.method != RD_METHOD_LORA &&
                sf.method != RD_METHOD_IA3);
    set_ok(&c, "method", "red");
    const rd_edit_spec s = tui_config_edit_spec(&c);
    assert_int_equal(s.method, RD_METHOD_RED);
    assert_int_equal(s.sites, RD_SITE_BOTH);
    assert_ptr_equal(s.layers, c.layers);
    assert_int_equal(s.scale, 0);
    assert_int_equal(s.bias, 0);
    assert_int_equal(s.rank, 0);

    const rd_data_opts dop = tui_config_data_opts(&c);
    assert_int_equal(dop.format, RD_DATA_CHAT);
    assert_ptr_equal(dop.template_name, c.template_name);
    assert_ptr_equal(dop.system, c.system);
    assert_int_equal(dop.max_len, 256);
    assert_int_equal(dop.mask_prompt, 1);
    const tui_config def = tui_config_defaults();
    const rd_data_opts dd = tui_config_data_opts(&def);
    assert_null(dd.template_name);
    assert_null(dd.system);
    assert_int_equal(dd.format, RD_DATA_AUTO);

    const rd_sampling sp = tui_config_sampling(&c);
    assert_true(sp.temperature == 0.7f);
    assert_true(sp.top_p == 1.0f);
    assert_int_equal(sp.top_k, 0);
    assert_true(sp.seed == 9007199254740991ull);
    assert_int_equal(rd_sampling_validate(&sp, &err), 0);
    const rd_sampling greedy = tui_config_sampling(&def);
    assert_true(greedy.temperature == 0.0f);
    assert_true(greedy.top_p == 0.9f);

    /* the edit spec makes an edit set for the tiny model */
    tui_config e = tui_config_defaults();
    set_ok(&e, "layers", "0,2");
    set_ok(&e, "sites", "attn");
    set_ok(&e, "bias", "off");
    const rd_config cfg = tiny_config();
    const rd_edit_spec es = tui_config_edit_spec(&e);
    rd_edits *ed = rd_edits_new(&cfg, &es, &err);
    if (!ed) fail_msg("rd_edits_new: %s", err.msg);
    assert_int_equal(rd_edits_param_count(ed), 2 * 64);
    assert_string_equal(rd_edits_layers_text(ed), "0,2");
    rd_edits_free(ed);
}

/* ---- JSON -------------------------------------------------------------------------------- */

static void test_json_round_trip(void **state) {
    (void)state;
    tui_config c = tui_config_defaults();
    for (size_t i = 0; i < N_VALUES; i++) set_ok(&c, VALUES[i].key, VALUES[i].typed);
    char *json = tui_config_to_json(&c);
    assert_non_null(json);
    cJSON *obj = cJSON_Parse(json);
    assert_non_null(obj);
    assert_int_equal(cJSON_GetArraySize(obj), (int)tui_config_field_count());
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(obj, "scale")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(obj, "lr")));
    assert_true(cJSON_GetObjectItem(obj, "lr")->valuedouble == 1e-4);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(obj, "epochs")));
    assert_string_equal(cJSON_GetObjectItem(obj, "sites")->valuestring, "both");
    assert_string_equal(cJSON_GetObjectItem(obj, "system")->valuestring, "Be brief.\nSay \"no\" — ✓");
    /* table order */
    const cJSON *item = obj->child;
    for (size_t i = 0; i < tui_config_field_count(); i++, item = item->next)
        assert_string_equal(item->string, tui_config_field(i)->key);
    cJSON_Delete(obj);

    tui_config back;
    memset(&back, 0xAB, sizeof back);
    rd_error err = {{0}};
    if (tui_config_from_json(json, strlen(json), &back, &err)) fail_msg("from_json: %s", err.msg);
    assert_config_equal(&back, &c);
    free(json);

    /* missing keys keep their defaults; the text need not be NUL-terminated */
    const char part[] = "{\"epochs\": 5, \"scale\": false}XXXX";
    assert_int_equal(tui_config_from_json(part, strlen(part) - 4, &back, &err), 0);
    tui_config want = tui_config_defaults();
    want.epochs = 5;
    want.scale = 0;
    assert_config_equal(&back, &want);

    /* defaults round-trip too */
    json = tui_config_to_json(&want);
    assert_int_equal(tui_config_from_json(json, strlen(json), &back, &err), 0);
    assert_config_equal(&back, &want);
    free(json);
}

static void test_from_json_errors(void **state) {
    (void)state;
    const struct {
        const char *json, *msg;
    } cases[] = {
        {"[1, 2]", "config: expected a JSON object, not an array"},
        {"{\"lr\": 0.1,", "config: not valid JSON"},
        {"", "config: not valid JSON"},
        {"{\"bogus\": 1}", "config: unknown key \"bogus\""},
        {"{\"lr\": \"abc\"}", "config: lr: expected a number, not a string"},
        {"{\"scale\": 1}", "config: scale: expected true or false, not a number"},
        {"{\"sites\": null}", "config: sites: expected a string, not null"},
        {"{\"layers\": [0, 1]}", "config: layers: expected a string, not an array"},
        {"{\"epochs\": 0}", "config: epochs: 0 is below the minimum 1"},
        {"{\"epochs\": 2.5}", "config: epochs: '2.5' is not a whole number"},
        {"{\"epochs\": 1e300}", "config: epochs: 1e+300 is above the maximum 100000"},
        {"{\"strength\": 9}", "config: strength: 9 is above the maximum 4"},
        {"{\"sites\": \"mlp\"}", "config: sites: 'mlp' is not one of ffn, attn, both"},
        {"{\"layers\": \"1-\"}", "config: layers: '1-': expected the end of the range 1-"},
        {"{\"epochs\": 2, \"max_steps\": -3}", "config: max_steps: -3 is below the minimum 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tui_config out;
        memset(&out, 0x5A, sizeof out);
        tui_config before = out;
        rd_error err = {{0}};
        assert_int_equal(tui_config_from_json(cases[i].json, strlen(cases[i].json), &out, &err), -1);
        if (strcmp(err.msg, cases[i].msg))
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].json, err.msg, cases[i].msg);
        assert_memory_equal(&out, &before, sizeof out);
    }
    /* a text longer than any field */
    char big[3000];
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"system\": \"", 12);
    memcpy(big + sizeof big - 3, "\"}", 3);
    tui_config out;
    rd_error err = {{0}};
    assert_int_equal(tui_config_from_json(big, strlen(big), &out, &err), -1);
    assert_string_equal(err.msg, "config: system: the text is 2985 bytes long; at most 511 fit");
}

/* ---- runs in memory -------------------------------------------------------------------------- */

static void test_runs_in_memory(void **state) {
    (void)state;
    tui_session s;
    tui_session_init(&s, "sessions", "grow");
    assert_string_equal(s.root, "sessions");
    assert_string_equal(s.name, "grow");
    assert_null(s.runs);
    tui_run *r = NULL;
    for (int i = 0; i < 40; i++) {
        char label[16];
        snprintf(label, sizeof label, "run %d", i);
        r = tui_session_new_run(&s, label);
        assert_non_null(r);
        assert_int_equal(r->stopped, -1);
        assert_true(isnan(r->best_eval_loss));
        assert_true(isnan(r->best_eval_accuracy));
        assert_int_equal(r->n_steps, 0);
    }
    assert_int_equal(s.n_runs, 40);
    assert_string_equal(s.runs[17].label, "run 17");
    for (int i = 0; i < 1000; i++) assert_int_equal(tui_run_add_step(r, i * 0.5), 0);
    assert_int_equal(r->n_steps, 1000);
    for (int i = 0; i < 1000; i++) assert_true(r->loss[i] == i * 0.5);
    for (int i = 0; i < 100; i++) assert_int_equal(tui_run_add_eval(r, i * 10, 1.0 / (i + 1)), 0);
    assert_int_equal(tui_run_add_eval(r, 990, 0.5), 0); /* same step again is fine */
    assert_int_equal(tui_run_add_eval(r, 5, 0.5), -1); /* going back is not */
    assert_int_equal(tui_run_add_eval(r, -1, 0.5), -1);
    assert_int_equal(r->n_evals, 101);
    assert_int_equal(r->eval_step[50], 500);
    assert_true(r->eval_loss[3] == 0.25);
    char long_label[100];
    memset(long_label, 'L', 99);
    long_label[99] = '\0';
    r = tui_session_new_run(&s, long_label);
    assert_int_equal(strlen(r->label), 63);
    assert_int_equal(tui_session_add_chat(&s, "p", NULL, "e", 0.5), 0);
    assert_string_equal(s.chat[0].base, "");
    tui_session_release(&s);
    assert_null(s.runs);
    assert_int_equal(s.n_runs, 0);
    assert_int_equal(s.n_chat, 0);
    tui_session_release(&s); /* twice is fine */
    tui_session z;
    memset(&z, 0, sizeof z);
    tui_session_release(&z); /* zeroed is fine */
}

/* ---- sessions on disk -------------------------------------------------------------------- */

typedef struct fixture {
    char dir[512];
    char root[600]; /* dir/work/sessions: two folders that do not exist yet */
    rd_model *m;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tiny_tempdir(fx->dir, sizeof fx->dir)) return -1;
    snprintf(fx->root, sizeof fx->root, "%s/work/sessions", fx->dir);
    fx->m = tiny_model(7);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    rd_model_free(fx->m);
    rm_tree(fx->dir);
    free(fx);
    return 0;
}

static const char *CHAT_PROMPT = "Say \"hi\",\nthen \\ ünïcödé ✓ 日本語\ttab";
static const char *CHAT_EDITED = "{\"not\": \"json\"}\r\nline2 </s> <s>";

/* A session with two runs and two chat turns. */
static void fill_session(tui_session *s) {
    set_ok(&s->config, "train_path", "datasets/alpaca-mini.jsonl");
    set_ok(&s->config, "layers", "0-1");
    set_ok(&s->config, "lr", "0.30000000000000004"); /* 0.1 + 0.2: needs 17 digits */
    set_ok(&s->config, "system", "You are \"helpful\".\nÜber ✓");
    set_ok(&s->config, "eval_split", "0.1");
    snprintf(s->model_path, sizeof s->model_path, "models/tiny model.gguf");
    tui_run *r = tui_session_new_run(s, "ffn, lr=\"1e-3\"");
    assert_non_null(r);
    for (int i = 0; i < 20; i++) assert_int_equal(tui_run_add_step(r, 3.0 / (i + 1) + 0.123456789), 0);
    for (int i = 1; i <= 4; i++) assert_int_equal(tui_run_add_eval(r, 5 * i, 2.0 - 0.1 * i), 0);
    r->seconds = 0.1 + 0.2;
    r->tokens_per_s = 1234.75;
    r->best_eval_loss = 1.6;
    r->best_eval_accuracy = 0.875;
    r->stopped = RD_STOP_DONE;
    r = tui_session_new_run(s, "attn");
    for (int i = 0; i < 3; i++) assert_int_equal(tui_run_add_step(r, 4.0 - i), 0);
    r->seconds = 0.25;
    assert_int_equal(tui_session_add_chat(s, CHAT_PROMPT, "", CHAT_EDITED, 1.5), 0);
    assert_int_equal(tui_session_add_chat(s, "second", "base answer", "edited answer", 0), 0);
    /* two runs compared: the columns' titles (the second one cut to 63 bytes) */
    assert_int_equal(tui_session_add_chat_titled(s, "third", "run 1 says", "run 2 says", 1,
                                                 "#1 ffn all s b lr 0.05",
                                                 "#2 both all s b lr 0.05 ............................................."),
                     0);
    assert_int_equal(strncmp(s->chat[2].right, "#2 both all s b lr 0.05 ...", 27), 0);
    assert_int_equal(strlen(s->chat[2].right), 63);
    assert_string_equal(s->chat[1].left, "");
    /* the base beside three edit sets: four columns, the last two in "more" */
    const char *answers[4] = {"base says", "run 1 says", "run 2 says", "file says ✓"};
    const char *titles[4] = {"", "#1 ffn all s b lr 0.05", "#2 both", "e1.safetensors"};
    assert_int_equal(tui_session_add_chat_columns(s, "fourth", 4, answers, titles, 0.5), 0);
    assert_int_equal(s->chat[3].n_more, 2);
    assert_string_equal(s->chat[3].more[1], "file says ✓");
    assert_string_equal(s->chat[3].more_titles[0], "#2 both");
    assert_int_equal(tui_session_add_chat_columns(s, "x", 6, answers, titles, 1), -1);
    assert_int_equal(tui_session_add_chat_columns(s, "x", 0, answers, titles, 1), -1);
}

static void assert_sessions_equal(const tui_session *a, const tui_session *b) {
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->model_path, b->model_path);
    assert_config_equal(&a->config, &b->config);
    assert_int_equal(a->n_runs, b->n_runs);
    for (size_t i = 0; i < a->n_runs; i++) {
        const tui_run *x = &a->runs[i], *y = &b->runs[i];
        assert_string_equal(x->label, y->label);
        assert_int_equal(x->n_steps, y->n_steps);
        for (size_t k = 0; k < x->n_steps; k++)
            assert_true(fabs(x->loss[k] - y->loss[k]) <= 1e-8 * fabs(y->loss[k]));
        assert_int_equal(x->n_evals, y->n_evals);
        for (size_t k = 0; k < x->n_evals; k++) {
            assert_int_equal(x->eval_step[k], y->eval_step[k]);
            assert_true(fabs(x->eval_loss[k] - y->eval_loss[k]) <= 1e-8 * fabs(y->eval_loss[k]));
        }
        assert_true(x->seconds == y->seconds);
        assert_true(x->tokens_per_s == y->tokens_per_s);
        assert_true(x->best_eval_loss == y->best_eval_loss ||
                    (isnan(x->best_eval_loss) && isnan(y->best_eval_loss)));
        assert_true(x->best_eval_accuracy == y->best_eval_accuracy ||
                    (isnan(x->best_eval_accuracy) && isnan(y->best_eval_accuracy)));
        assert_int_equal(x->stopped, y->stopped);
    }
    assert_int_equal(a->n_chat, b->n_chat);
    for (size_t i = 0; i < a->n_chat; i++) {
        assert_string_equal(a->chat[i].prompt, b->chat[i].prompt);
        assert_string_equal(a->chat[i].base, b->chat[i].base);
        assert_string_equal(a->chat[i].edited, b->chat[i].edited);
        assert_true(a->chat[i].strength == b->chat[i].strength);
        assert_string_equal(a->chat[i].left, b->chat[i].left);
        assert_string_equal(a->chat[i].right, b->chat[i].right);
        assert_int_equal(a->chat[i].n_more, b->chat[i].n_more);
        for (size_t k = 0; k < a->chat[i].n_more; k++) {
            assert_string_equal(a->chat[i].more[k], b->chat[i].more[k]);
            assert_string_equal(a->chat[i].more_titles[k], b->chat[i].more_titles[k]);
        }
    }
}

static void test_session_round_trip(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    tui_session s;
    tui_session_init(&s, fx->root, "run-1.a_b");
    fill_session(&s);
    assert_int_equal(tui_session_exists(fx->root, "run-1.a_b"), 0);

    rd_edit_spec spec = tui_config_edit_spec(&s.config);
    rd_edits *e = rd_edits_new(rd_model_config(fx->m), &spec, &err);
    if (!e) fail_msg("rd_edits_new: %s", err.msg);
    float *p = rd_edits_params(e);
    for (size_t i = 0; i < rd_edits_param_count(e); i++) p[i] = 0.01f * (float)(i % 97) - 0.3f;

    if (tui_session_save(&s, e, fx->m, &err)) fail_msg("save: %s", err.msg);
    assert_int_equal(tui_session_exists(fx->root, "run-1.a_b"), 1);
    assert_int_equal(tui_session_exists(fx->root, "other"), 0);
    assert_int_equal(tui_session_exists(fx->root, "../x"), 0);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/run-1.a_b", fx->root);
    assert_int_equal(tiny_count_entries(dir), 4);
    assert_int_equal(count_temp_files(dir), 0);

    tui_session back;
    if (tui_session_load(fx->root, "run-1.a_b", &back, &err)) fail_msg("load: %s", err.msg);
    assert_sessions_equal(&back, &s);
    assert_string_equal(back.root, fx->root);
    char fp[17];
    snprintf(fp, sizeof fp, "%016" PRIx64, rd_model_fingerprint(fx->m));
    assert_string_equal(back.model_fingerprint, fp);
    assert_true(isnan(back.runs[1].best_eval_loss));
    assert_int_equal(back.runs[1].stopped, -1);
    assert_string_equal(back.chat[0].prompt, CHAT_PROMPT);
    assert_true(back.config.lr == 0.1 + 0.2);
    assert_true(back.runs[0].seconds == 0.1 + 0.2);

    /* the edit file loads for the model, with the config as its training options */
    char path[800];
    tui_session_edits_path(&back, path, sizeof path);
    char want_path[800];
    snprintf(want_path, sizeof want_path, "%s/run-1.a_b/edits-1.safetensors", fx->root);
    assert_string_equal(path, want_path);
    char *training = NULL;
    rd_edits *loaded = rd_edits_load(path, fx->m, 0, &training, &err);
    if (!loaded) fail_msg("rd_edits_load: %s", err.msg);
    assert_int_equal(rd_edits_param_count(loaded), rd_edits_param_count(e));
    assert_memory_equal(rd_edits_params_const(loaded), rd_edits_params_const(e),
                        rd_edits_param_count(e) * sizeof(float));
    assert_string_equal(rd_edits_layers_text(loaded), "0-1");
    assert_non_null(training);
    tui_config from_edits;
    assert_int_equal(tui_config_from_json(training, strlen(training), &from_edits, &err), 0);
    assert_config_equal(&from_edits, &s.config);
    free(training);
    rd_edits_free(loaded);

    /* saving again without edits keeps the edit file; the loaded copy saves the same */
    tui_session_add_chat(&back, "third", "b", "e", 1);
    if (tui_session_save(&back, NULL, NULL, &err)) fail_msg("save again: %s", err.msg);
    assert_int_equal(tiny_count_entries(dir), 4);
    assert_int_equal(count_temp_files(dir), 0);
    tui_session again;
    assert_int_equal(tui_session_load(fx->root, "run-1.a_b", &again, &err), 0);
    assert_int_equal(again.n_chat, 5);
    assert_string_equal(again.model_fingerprint, fp); /* kept from the session */
    tui_session_release(&again);

    /* edits without the model are refused */
    assert_int_equal(tui_session_save(&s, e, NULL, &err), -1);
    assert_string_equal(err.msg, "session \"run-1.a_b\": saving the edits needs the model");

    tui_session_release(&back);
    tui_session_release(&s);
    rd_edits_free(e);
}

static void test_session_file_text(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    tui_session s;
    tui_session_init(&s, fx->root, "small");
    tui_run *r = tui_session_new_run(&s, "first");
    tui_run_add_step(r, 2.5);
    tui_run_add_step(r, 0.1f);
    tui_run_add_step(r, 1.0 / 3);
    tui_run_add_eval(r, 2, 1.25);
    r = tui_session_new_run(&s, "second");
    tui_run_add_step(r, 3);
    tui_session_add_chat(&s, "a \"b\"\nc", "", "ü", 1);
    strcpy(s.model_fingerprint, "0123456789abcdef");
    if (tui_session_save(&s, NULL, NULL, &err)) fail_msg("save: %s", err.msg);
    char path[800];
    snprintf(path, sizeof path, "%s/small/loss-1.csv", fx->root);
    char *csv = read_all(path);
    assert_string_equal(csv, "run,step,kind,loss\n"
                             "0,1,train,2.5\n"
                             "0,2,train,0.100000001\n"
                             "0,3,train,0.333333333\n"
                             "0,2,eval,1.25\n"
                             "1,1,train,3\n");
    free(csv);
    snprintf(path, sizeof path, "%s/small/chat-1.jsonl", fx->root);
    char *jsonl = read_all(path);
    assert_string_equal(jsonl, "{\"prompt\":\"a \\\"b\\\"\\nc\",\"base\":\"\",\"edited\":\"ü\","
                               "\"strength\":1}\n");
    free(jsonl);
    snprintf(path, sizeof path, "%s/small/session.json", fx->root);
    char *json = read_all(path);
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "format")->valuestring, "redit-session");
    assert_true(cJSON_GetObjectItem(o, "version")->valuedouble == 2);
    assert_true(cJSON_GetObjectItem(o, "generation")->valuedouble == 1);
    assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, "small");
    assert_string_equal(cJSON_GetObjectItem(o, "model_fingerprint")->valuestring, "0123456789abcdef");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(o, "config")));
    const cJSON *runs = cJSON_GetObjectItem(o, "runs");
    assert_int_equal(cJSON_GetArraySize(runs), 2);
    const cJSON *r0 = cJSON_GetArrayItem(runs, 0);
    assert_string_equal(cJSON_GetObjectItem(r0, "label")->valuestring, "first");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r0, "best_eval_loss")));
    assert_true(cJSON_GetObjectItem(r0, "stopped")->valuedouble == -1);
    cJSON_Delete(o);
    free(json);
    /* a config a struct assignment made invalid is refused before anything is written */
    s.config.epochs = 0;
    assert_int_equal(tui_session_save(&s, NULL, NULL, &err), -1);
    assert_string_equal(err.msg, "session \"small\": config: epochs: 0 is below the minimum 1");
    tui_session_release(&s);
}

static void expect_load_error(const char *root, const char *name, const char *part1,
                              const char *part2) {
    tui_session out;
    rd_error err = {{0}};
    memset(&out, 0x33, sizeof out);
    assert_int_equal(tui_session_load(root, name, &out, &err), -1);
    if (!strstr(err.msg, part1) || (part2 && !strstr(err.msg, part2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err.msg, part1, part2 ? part2 : "");
    tui_session zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&out, &zero, sizeof out);
}

/* Replaces file with text, expects a load error mentioning file and what, then restores it. */
static void damage(const char *dir, const char *root, const char *file, const char *text,
                   const char *what) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *orig = read_all(path);
    write_all(path, text);
    expect_load_error(root, "dmg", file, what);
    write_all(path, orig);
    free(orig);
}

/* Writes dir/session.json as version 1 wrote it, from the text of a version 2 one. */
static void write_v1_json(const char *dir, const char *v2) {
    cJSON *o = cJSON_Parse(v2);
    assert_non_null(o);
    cJSON_ReplaceItemInObject(o, "version", cJSON_CreateNumber(1));
    const char *gone[] = {"generation", "next_run", "current_run", "files"};
    for (size_t i = 0; i < 4; i++) cJSON_DeleteItemFromObject(o, gone[i]);
    cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "runs")) {
        cJSON_DeleteItemFromObject(r, "id");
        cJSON_DeleteItemFromObject(r, "edits");
    }
    char *text = cJSON_Print(o), path[800];
    snprintf(path, sizeof path, "%s/session.json", dir);
    write_all(path, text);
    cJSON_free(text);
    cJSON_Delete(o);
}

static void test_session_damaged(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    tui_session s;
    tui_session_init(&s, fx->root, "dmg");
    fill_session(&s);
    if (tui_session_save(&s, NULL, NULL, &err)) fail_msg("save: %s", err.msg);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/dmg", fx->root);
    char path[800];
    snprintf(path, sizeof path, "%s/session.json", dir);
    char *json = read_all(path);

    /* session.json */
    char *half = strdup(json);
    half[strlen(half) / 2] = '\0';
    damage(dir, fx->root, "session.json", half, "not valid JSON");
    free(half);
    damage(dir, fx->root, "session.json", "", "line 1: not valid JSON");
    damage(dir, fx->root, "session.json", "{\"format\": \"redit-session\"} x",
           "not valid JSON (text after the value)");
    damage(dir, fx->root, "session.json", "[1]", "expected a JSON object");
    damage(dir, fx->root, "session.json",
           "{\"format\": \"other\", \"version\": 1}", "not a redit session");
    damage(dir, fx->root, "session.json",
           "{\"format\": \"redit-session\", \"version\": 3}",
           "session version 3 is not supported (this redit reads versions 1 and 2)");
    damage(dir, fx->root, "session.json",
           "{\"format\": \"redit-session\", \"version\": 1, \"model_path\": \"m\", "
           "\"model_fingerprint\": \"\", \"config\": {\"epochs\": 0}, \"runs\": []}",
           "session.json: config: epochs: 0 is below the minimum 1");
    damage(dir, fx->root, "session.json",
           "{\"format\": \"redit-session\", \"version\": 1, \"model_path\": \"m\", "
           "\"model_fingerprint\": \"\", \"config\": {\"os.execute\": \"rm -rf /\"}, \"runs\": []}",
           "config: unknown key \"os.execute\"");
    damage(dir, fx->root, "session.json",
           "{\"format\": \"redit-session\", \"version\": 1, \"model_path\": \"m\", "
           "\"model_fingerprint\": \"xyz\", \"config\": {}, \"runs\": []}",
           "\"model_fingerprint\" must be 16 hex digits");
    damage(dir, fx->root, "session.json",
           "{\"format\": \"redit-session\", \"version\": 1, \"model_path\": 5, "
           "\"model_fingerprint\": \"\", \"config\": {}, \"runs\": []}",
           "\"model_path\" must be a string");
    damage(dir, fx->root, "session.json",
           "{\"format\": \"redit-session\", \"version\": 1, \"model_path\": \"\", "
           "\"model_fingerprint\": \"\", \"config\": {}, \"runs\": [{\"label\": \"x\", "
           "\"seconds\": 1, \"tokens_per_s\": 1, \"best_eval_loss\": null, \"stopped\": 7}]}",
           "run 0: \"stopped\" 7 is not -1, 0, 1 or 2");
    damage(dir, fx->root, "session.json",
           "{\"format\": \"redit-session\", \"version\": 1, \"model_path\": \"\", "
           "\"model_fingerprint\": \"\", \"config\": {}, \"runs\": [{\"label\": \"x\", "
           "\"seconds\": 1, \"tokens_per_s\": 1, \"best_eval_loss\": null, "
           "\"best_eval_accuracy\": \"high\", \"stopped\": 0}]}",
           "\"best_eval_accuracy\" must be a number or null");

    /* loss.csv: the session has runs 0 (20 steps, evals at 5..20) and 1 (3 steps) */
    snprintf(path, sizeof path, "%s/loss-1.csv", dir);
    char *csv = read_all(path);
    char *bad = malloc(strlen(csv) + 100);
    sprintf(bad, "%s0,21,train,abc\n", csv);
    damage(dir, fx->root, "loss-1.csv", bad, "loss \"abc\" is not a number");
    sprintf(bad, "%s0,21,train,1.0\n5,1,train,1.0\n", csv);
    damage(dir, fx->root, "loss-1.csv", bad, "line 30: run 5 is unknown (session.json lists 2 runs)");
    sprintf(bad, "%s1,7,train,1.0\n", csv);
    damage(dir, fx->root, "loss-1.csv", bad,
           "train step 7 of run 1 is out of order (expected step 4)");
    sprintf(bad, "%s0,3,eval,1.0\n", csv);
    damage(dir, fx->root, "loss-1.csv", bad, "eval step 3 of run 0 is out of order (after step 20)");
    sprintf(bad, "%s0,21,test,1.0\n", csv);
    damage(dir, fx->root, "loss-1.csv", bad, "kind \"test\" is not train or eval");
    sprintf(bad, "%sgarbage\n", csv);
    damage(dir, fx->root, "loss-1.csv", bad, "line 29: expected 4 fields: run,step,kind,loss");
    sprintf(bad, "%s0,-1,eval,1.0\n", csv);
    damage(dir, fx->root, "loss-1.csv", bad, "step \"-1\" is not a step number");
    damage(dir, fx->root, "loss-1.csv", "run,step,loss\n", "line 1: expected the header");
    free(bad);

    /* chat.jsonl */
    damage(dir, fx->root, "chat-1.jsonl", "{\"prompt\":\"a\",\"base\":\"\",\"edited\":\"\",\"strength\":1}\n"
                                        "{\"prompt\": \"x\"\n", "chat-1.jsonl line 2: not valid JSON");
    damage(dir, fx->root, "chat-1.jsonl", "{\"prompt\":\"a\",\"base\":\"\",\"strength\":1}\n",
           "chat-1.jsonl line 1: \"edited\" must be a string");
    damage(dir, fx->root, "chat-1.jsonl", "\n\n[1]\n", "chat-1.jsonl line 3: expected a JSON object");
    damage(dir, fx->root, "chat-1.jsonl",
           "{\"prompt\":\"a\",\"base\":\"\",\"edited\":\"\",\"strength\":1,\"more\":[]}\n",
           "chat-1.jsonl line 1: \"more\" must be an array of 1 to 3 columns");
    damage(dir, fx->root, "chat-1.jsonl",
           "{\"prompt\":\"a\",\"base\":\"\",\"edited\":\"\",\"strength\":1,\"more\":[{},{},{},{}]}\n",
           "chat-1.jsonl line 1: \"more\" must be an array of 1 to 3 columns");
    damage(dir, fx->root, "chat-1.jsonl",
           "{\"prompt\":\"a\",\"base\":\"\",\"edited\":\"\",\"strength\":1,\"more\":[{\"title\":1,\"text\":\"\"}]}\n",
           "chat-1.jsonl line 1: \"more\": each column must be {\"title\": string, \"text\": string}");
    damage(dir, fx->root, "chat-1.jsonl",
           "{\"prompt\":\"a\",\"base\":\"\",\"edited\":\"\",\"strength\":\"1\"}\n",
           "\"strength\" must be a number");

    /* a file over 64 MiB is refused before it is read (a sparse file costs nothing) */
    snprintf(path, sizeof path, "%s/chat-1.jsonl", dir);
    char *chat = read_all(path);
    assert_int_equal(truncate(path, (64 << 20) + 1), 0);
    expect_load_error(fx->root, "dmg", "chat-1.jsonl", "more than a session file may hold (64 MiB)");
    write_all(path, chat);
    free(chat);

    /* blank lines and a missing final newline are fine; everything restored loads */
    tui_session back;
    if (tui_session_load(fx->root, "dmg", &back, &err)) fail_msg("restored: %s", err.msg);
    assert_sessions_equal(&back, &s);
    tui_session_release(&back);

    /* the files a version 2 session.json names must be there */
    snprintf(path, sizeof path, "%s/chat-1.jsonl", dir);
    unlink(path);
    expect_load_error(fx->root, "dmg", "chat-1.jsonl: cannot open", NULL);
    /* a version 1 session (fixed names): loss.csv and chat.jsonl may be missing */
    char from[800];
    snprintf(from, sizeof from, "%s/loss-1.csv", dir);
    snprintf(path, sizeof path, "%s/loss.csv", dir);
    assert_int_equal(rename(from, path), 0);
    write_v1_json(dir, json);
    if (tui_session_load(fx->root, "dmg", &back, &err)) fail_msg("version 1: %s", err.msg);
    assert_int_equal(back.n_runs, 2);
    assert_int_equal(back.runs[0].n_steps, 20);
    assert_int_equal(back.runs[1].id, 2);
    assert_int_equal(back.next_run_id, 3);
    assert_int_equal(back.generation, 0);
    assert_int_equal(back.n_chat, 0);
    tui_session_release(&back);
    unlink(path);
    if (tui_session_load(fx->root, "dmg", &back, &err)) fail_msg("no csv: %s", err.msg);
    assert_int_equal(back.n_runs, 2);
    assert_int_equal(back.runs[0].n_steps, 0);
    assert_int_equal(back.n_chat, 0);
    tui_session_release(&back);

    /* session.json is not */
    snprintf(path, sizeof path, "%s/session.json", dir);
    unlink(path);
    expect_load_error(fx->root, "dmg", "session.json is missing", NULL);
    expect_load_error(fx->root, "../dmg", "session name", NULL);

    free(csv);
    free(json);
    tui_session_release(&s);
}

static void test_session_names(void **state) {
    fixture *fx = *state;
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'b', 65);
    n65[65] = '\0';
    const char *bad[] = {"../x", "", ".hidden", n65, "a/b", "a b", "..", "x\n", "ü"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rd_error err = {{0}};
        if (tui_session_name_ok(bad[i], &err)) fail_msg("name '%s' accepted", bad[i]);
        assert_true(strncmp(err.msg, "session name", 12) == 0);
    }
    rd_error err = {{0}};
    assert_int_equal(tui_session_name_ok(NULL, &err), 0);
    assert_int_equal(tui_session_name_ok("", &err), 0);
    assert_string_equal(err.msg, "session name: the name is empty");
    assert_int_equal(tui_session_name_ok("../x", &err), 0);
    assert_string_equal(err.msg,
                        "session name \"../x\": must not start with '.'");
    assert_int_equal(tui_session_name_ok("a/b", &err), 0);
    assert_string_equal(err.msg, "session name \"a/b\": only letters, digits, '.', '_' and '-' "
                                 "are allowed");
    assert_int_equal(tui_session_name_ok(n65, &err), 0);
    assert_string_equal(err.msg, "session name: 65 characters is too long (at most 64)");
    assert_int_equal(tui_session_name_ok("run-1.a_b", NULL), 1);
    assert_int_equal(tui_session_name_ok(n64, NULL), 1);
    assert_int_equal(tui_session_name_ok("A..b", NULL), 1);

    /* save refuses a bad name and writes nothing */
    tui_session s;
    tui_session_init(&s, fx->root, "x/../../escape");
    assert_int_equal(tui_session_save(&s, NULL, NULL, &err), -1);
    assert_true(strncmp(err.msg, "session name", 12) == 0);
    struct stat st;
    char path[700];
    snprintf(path, sizeof path, "%s/work", fx->dir);
    assert_int_equal(stat(path, &st), -1);
    tui_session_release(&s);
}

/* ---- checked before work starts: the folder, the model -------------------------------------- */

static void test_session_check_writable(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    /* a new session under folders that do not exist yet: the nearest existing one is checked */
    assert_int_equal(tui_session_check_writable(fx->root, "fresh", &err), 0);
    struct stat st;
    assert_int_equal(stat(fx->root, &st), -1); /* touches nothing */
    /* a bad name */
    assert_int_equal(tui_session_check_writable(fx->root, "../x", &err), -1);
    assert_true(strncmp(err.msg, "session name \"../x\"", 19) == 0);
    /* a sessions folder under a regular file */
    char file[700], under[800];
    snprintf(file, sizeof file, "%s/afile", fx->dir);
    write_all(file, "x");
    snprintf(under, sizeof under, "%s/sessions", file);
    assert_int_equal(tui_session_check_writable(under, "s", &err), -1);
    assert_non_null(strstr(err.msg, "part of it is a file, not a folder"));
    /* a session "folder" that is a file */
    char root2[700], sess[800];
    snprintf(root2, sizeof root2, "%s/r2", fx->dir);
    assert_int_equal(mkdir(root2, 0700), 0);
    snprintf(sess, sizeof sess, "%s/s", root2);
    write_all(sess, "x");
    assert_int_equal(tui_session_check_writable(root2, "s", &err), -1);
    assert_non_null(strstr(err.msg, "is not a folder"));
    /* an existing session folder: fine, and no temporary file is left in it */
    unlink(sess);
    assert_int_equal(mkdir(sess, 0700), 0);
    assert_int_equal(tui_session_check_writable(root2, "s", &err), 0);
    assert_int_equal(tiny_count_entries(sess), 0);
    /* a read-only folder (root may write anyway: checked only when the mode stops us) */
    assert_int_equal(chmod(sess, 0500), 0);
    if (access(sess, W_OK) != 0) {
        assert_int_equal(tui_session_check_writable(root2, "s", &err), -1);
        assert_non_null(strstr(err.msg, "cannot create a file"));
    }
    chmod(sess, 0700);
}

static void test_session_check_model(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    tui_session s;
    tui_session_init(&s, fx->root, "m");
    assert_int_equal(tui_session_check_model(&s, fx->m, &err), TUI_MODEL_NEW);
    /* the full fingerprint, whatever the path recorded */
    snprintf(s.model_path, sizeof s.model_path, "/somewhere/else/model.gguf");
    snprintf(s.model_fingerprint, sizeof s.model_fingerprint, "%016" PRIx64,
             rd_model_fingerprint(fx->m));
    assert_int_equal(tui_session_check_model(&s, fx->m, &err), TUI_MODEL_SAME);
    /* a session of an earlier redit: the sampled fingerprint */
    snprintf(s.model_fingerprint, sizeof s.model_fingerprint, "%016" PRIx64,
             rd_model_fingerprint_sampled(fx->m));
    assert_int_equal(tui_session_check_model(&s, fx->m, &err), TUI_MODEL_SAME_SAMPLED);
    /* another model: both fingerprints named; the recorded path is gone: asks for its new one */
    rd_model *other = tiny_model(99);
    char mine[17], theirs[17];
    snprintf(mine, sizeof mine, "%016" PRIx64, rd_model_fingerprint(other));
    snprintf(theirs, sizeof theirs, "%016" PRIx64, rd_model_fingerprint(fx->m));
    snprintf(s.model_fingerprint, sizeof s.model_fingerprint, "%s", theirs);
    assert_int_equal(tui_session_check_model(&s, other, &err), TUI_MODEL_OTHER);
    assert_non_null(strstr(err.msg, mine));
    assert_non_null(strstr(err.msg, theirs));
    assert_non_null(strstr(err.msg, "is not found"));
    assert_non_null(strstr(err.msg, "new path with -m"));
    /* the recorded path exists: another model, open it with that one */
    char path[700];
    snprintf(path, sizeof path, "%s/model.bin", fx->dir);
    write_all(path, "x");
    snprintf(s.model_path, sizeof s.model_path, "%.500s", path);
    assert_int_equal(tui_session_check_model(&s, other, &err), TUI_MODEL_OTHER);
    assert_non_null(strstr(err.msg, "made with another model"));
    assert_non_null(strstr(err.msg, mine));
    assert_non_null(strstr(err.msg, theirs));
    rd_model_free(other);
    tui_session_release(&s);
}

/* ---- a save is one unit: a kill at any write, rename, fsync ... of a save ------------------ */

/* The changes the "new" save makes to the "old" session: a run with its own edits (kept in
 * memory, so runs/ID/ is written), a chat turn, a setting, new current edits. */
static rd_edits *apply_new_changes(tui_session *s, const rd_model *m) {
    rd_error err = {{0}};
    set_ok(&s->config, "lr", "0.125");
    tui_run *r = tui_session_new_run(s, "new run");
    assert_non_null(r);
    for (int i = 0; i < 5; i++) assert_int_equal(tui_run_add_step(r, 1.5 - 0.25 * i), 0);
    r->stopped = RD_STOP_DONE;
    assert_int_equal(tui_session_add_chat(s, "new prompt", "b", "e", 0.5), 0);
    rd_edit_spec spec = tui_config_edit_spec(&s->config);
    rd_edits *e = rd_edits_new(rd_model_config(m), &spec, &err);
    if (!e) fail_msg("edits: %s", err.msg);
    float *p = rd_edits_params(e);
    for (size_t i = 0; i < rd_edits_param_count(e); i++) p[i] = 0.5f + 0.001f * (float)(i % 31);
    assert_int_equal(tui_run_keep_edits(r, e, &err), 0);
    r->model = m; /* as a full fine-tuning run's model: runs/ID/model.gguf */
    s->current_run = r->id;
    return e;
}

/* The child of test_session_kill: loads root/name, makes the new changes, saves. */
static int save_child(const char *root, const char *name) {
    rd_error err = {{0}};
    rd_model *m = tiny_model(7);
    tui_session s;
    if (tui_session_load(root, name, &s, &err)) return 3;
    rd_edits *e = apply_new_changes(&s, m);
    const int rc = tui_session_save(&s, e, m, &err) ? 4 : 0;
    rd_edits_free(e);
    tui_session_release(&s);
    rd_model_free(m);
    return rc;
}

/* 1 when strace can run here and inject a signal (the kill tests need it). */
static int strace_can_kill(void) {
    return system("strace -f -qq -o /dev/null -e trace=getpid -e "
                  "inject=getpid:signal=KILL:when=99 true 2>/dev/null") == 0;
}

static const char *self_path; /* argv[0]: the suite runs itself as the child (set by main) */

/* Runs the child under strace with SIGKILL injected at the n-th call of syscall (n 0: none).
 * Returns the signal that ended it, or -(exit status + 1). */
static int run_child_as(const char *mode, const char *root, const char *name,
                        const char *syscall, int n) {
    char inject[128], trace[64];
    snprintf(inject, sizeof inject, "inject=%s:signal=KILL:when=%d", syscall, n > 0 ? n : 1);
    snprintf(trace, sizeof trace, "trace=%s", syscall); /* only a traced call is injected */
    const pid_t pid = fork();
    if (pid == 0) {
        /* LeakSanitizer (the sanitizer build) cannot stop the world under strace's ptrace:
         * it would fail the child at exit */
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        if (n > 0)
            execlp("strace", "strace", "-f", "-qq", "-o", "/dev/null", "-e", trace, "-e",
                   inject, self_path, mode, root, name, (char *)NULL);
        else
            execl(self_path, self_path, mode, root, name, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) return WTERMSIG(st);
    return -(WEXITSTATUS(st) + 1);
}

static int run_child(const char *root, const char *name, const char *syscall, int n) {
    return run_child_as("--save-child", root, name, syscall, n);
}

/* 1 when the saved session is `want` in every part the test changes. */
static int session_is(const tui_session *got, const tui_session *want) {
    if (got->n_runs != want->n_runs || got->n_chat != want->n_chat ||
        got->config.lr != want->config.lr || got->current_run != want->current_run)
        return 0;
    for (size_t i = 0; i < got->n_runs; i++) {
        const tui_run *x = &got->runs[i], *y = &want->runs[i];
        if (x->id != y->id || strcmp(x->label, y->label) || x->n_steps != y->n_steps ||
            x->n_evals != y->n_evals)
            return 0;
        for (size_t k = 0; k < x->n_steps; k++)
            if (fabs(x->loss[k] - y->loss[k]) > 1e-8 * fabs(y->loss[k])) return 0;
    }
    return 1;
}

/* The edits file at path holds exactly e's numbers. */
static void assert_edits_file(const char *path, const rd_edits *e, const rd_model *m) {
    rd_error err = {{0}};
    rd_edits *got = rd_edits_load(path, m, 0, NULL, &err);
    if (!got) fail_msg("%s: %s", path, err.msg);
    assert_int_equal(rd_edits_param_count(got), rd_edits_param_count(e));
    assert_memory_equal(rd_edits_params_const(got), rd_edits_params_const(e),
                        rd_edits_param_count(e) * sizeof(float));
    rd_edits_free(got);
}

/* Every entry of dir (and of dir/runs/ID/) is a file the session names. */
static void assert_only_named_files(const char *dir, const tui_session *s) {
    char runs[800];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    int want = 1 + 2 + (s->edits_file[0] && strncmp(s->edits_file, "runs/", 5) ? 1 : 0);
    int run_files = 0;
    for (size_t i = 0; i < s->n_runs; i++) run_files += !strncmp(s->runs[i].edits_file, "runs/", 5);
    want += run_files > 0; /* the runs folder */
    if (tiny_count_entries(dir) != want) {
        char cmd[900];
        snprintf(cmd, sizeof cmd, "ls -laR '%s' >&2", dir);
        if (system(cmd)) {}
        fail_msg("%s: %d entries, expected %d", dir, tiny_count_entries(dir), want);
    }
    if (run_files) assert_int_equal(tiny_count_entries(runs), run_files);
    assert_int_equal(count_temp_files(dir), 0);
}

/* The model file at path holds m's config and weights (the same fingerprint). */
static void assert_model_file(const char *path, const rd_model *m) {
    rd_error err = {{0}};
    rd_model *got = path[0] ? rd_model_load(path, NULL, &err) : NULL;
    if (!got) fail_msg("model file \"%s\": %s", path, err.msg);
    assert_true(rd_model_fingerprint(got) == rd_model_fingerprint(m));
    rd_model_free(got);
}

static void copy_tree(const char *from, const char *to) {
    char cmd[4096];
    if (snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", to, from, to) >= (int)sizeof cmd ||
        system(cmd) != 0) fail_msg("%s failed", cmd);
}

static void test_session_kill(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    if (!strace_can_kill()) {
        fprintf(stderr, "SKIPPED: test_session_kill needs strace (apt-get install strace) and "
                        "ptrace permission\n");
        skip();
    }
    /* the old save: two runs (the first with its edits in runs/1/), chat, current edits */
    tui_session old;
    tui_session_init(&old, fx->root, "k");
    fill_session(&old);
    rd_edit_spec spec = tui_config_edit_spec(&old.config);
    rd_edits *e_old = rd_edits_new(rd_model_config(fx->m), &spec, &err);
    assert_non_null(e_old);
    float *p = rd_edits_params(e_old);
    for (size_t i = 0; i < rd_edits_param_count(e_old); i++) p[i] = -0.25f + 0.002f * (float)(i % 13);
    assert_int_equal(tui_run_keep_edits(&old.runs[0], e_old, &err), 0);
    old.current_run = 1;
    if (tui_session_save(&old, e_old, fx->m, &err)) fail_msg("old save: %s", err.msg);
    char dir[700], pristine[800];
    snprintf(dir, sizeof dir, "%s/k", fx->root);
    snprintf(pristine, sizeof pristine, "%s/pristine", fx->dir);
    copy_tree(dir, pristine);
    /* the new save, as the child makes it */
    tui_session want_old, want_new;
    assert_int_equal(tui_session_load(fx->root, "k", &want_old, &err), 0);
    assert_int_equal(tui_session_load(fx->root, "k", &want_new, &err), 0);
    rd_edits *e_new = apply_new_changes(&want_new, fx->m);

    /* without a fault the child saves the new session */
    assert_int_equal(run_child(fx->root, "k", "none", 0), -1);
    tui_session got;
    if (tui_session_load(fx->root, "k", &got, &err)) fail_msg("new: %s", err.msg);
    assert_true(session_is(&got, &want_new));
    tui_session_release(&got);

    static const char *const calls[] = {"write", "openat", "fsync", "rename", "renameat",
                                        "renameat2", "mkdir", "unlink", "close", "fchmod"};
    int kills = 0, olds = 0, news = 0;
    for (size_t c = 0; c < sizeof calls / sizeof *calls; c++) {
        for (int n = 1; n < 400; n++) {
            copy_tree(pristine, dir);
            const int how = run_child(fx->root, "k", calls[c], n);
            if (how != SIGKILL) {
                if (how != -1) fail_msg("%s #%d: the child ended with %d", calls[c], n, how);
                break; /* fewer than n such calls: this syscall is done */
            }
            kills++;
            if (tui_session_load(fx->root, "k", &got, &err))
                fail_msg("killed at %s #%d: the session does not load: %s", calls[c], n, err.msg);
            const int is_new = session_is(&got, &want_new);
            if (!is_new && !session_is(&got, &want_old))
                fail_msg("killed at %s #%d: the session is neither the old nor the new one",
                         calls[c], n);
            is_new ? news++ : olds++;
            char path[1200];
            tui_session_edits_path(&got, path, sizeof path);
            assert_edits_file(path, is_new ? e_new : e_old, fx->m);
            tui_session_run_edits_path(&got, &got.runs[0], path, sizeof path);
            assert_edits_file(path, e_old, fx->m);
            if (is_new) {
                tui_session_run_edits_path(&got, &got.runs[2], path, sizeof path);
                assert_edits_file(path, e_new, fx->m);
                tui_session_run_model_path(&got, &got.runs[2], path, sizeof path);
                assert_model_file(path, fx->m);
            }
            /* opening tidies what the killed save left */
            tui_session_tidy(&got);
            assert_only_named_files(dir, &got);
            tui_session_release(&got);
        }
    }
    fprintf(stderr, "test_session_kill: %d kills, %d left the old save, %d the new one\n", kills,
            olds, news);
    assert_true(kills >= 20);
    assert_true(olds > 0 && news > 0);
    tui_session_release(&want_old);
    tui_session_release(&want_new);
    tui_session_release(&old);
    rd_edits_free(e_old);
    rd_edits_free(e_new);
}

/* ---- full fine-tuning runs keep their model ----------------------------------------------- */

/* A run's model (full fine-tuning) is written by the next save as runs/ID/model.gguf, named
 * in session.json, read back, kept by later saves, removed with the run; a session naming
 * a model file outside the patterns is refused; older sessions without "model" load. */
static void test_session_run_model(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    tui_session s;
    tui_session_init(&s, fx->root, "fm");
    fill_session(&s);
    tui_run *r = tui_session_new_run(&s, "#3 full lr 0.001");
    assert_int_equal(tui_run_add_step(r, 2.5), 0);
    r->stopped = RD_STOP_DONE;
    r->model = fx->m;
    s.current_run = r->id;
    if (tui_session_save(&s, NULL, fx->m, &err)) fail_msg("save: %s", err.msg);
    assert_null(s.runs[2].model);
    assert_string_equal(s.runs[2].model_file, "runs/3/model.gguf");
    assert_string_equal(s.runs[0].model_file, "");
    char path[1200], json[1200];
    tui_session_run_model_path(&s, &s.runs[2], path, sizeof path);
    assert_model_file(path, fx->m);
    snprintf(json, sizeof json, "%s/fm/session.json", fx->root);
    char *text = read_all(json);
    assert_non_null(strstr(text, "\"model\":\t\"runs/3/model.gguf\""));
    free(text);
    /* read back; a later save keeps it (written once) */
    tui_session got;
    if (tui_session_load(fx->root, "fm", &got, &err)) fail_msg("load: %s", err.msg);
    assert_string_equal(got.runs[2].model_file, "runs/3/model.gguf");
    assert_string_equal(got.runs[1].model_file, "");
    assert_int_equal(got.current_run, 3);
    assert_int_equal(tui_session_save(&got, NULL, NULL, &err), 0);
    assert_int_equal(tui_session_tidy(&got), 0);
    assert_model_file(path, fx->m);
    /* deleting the run removes its model at the next save */
    assert_int_equal(tui_session_delete_run(&got, 3), 0);
    assert_int_equal(tui_session_save(&got, NULL, NULL, &err), 0);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/fm/runs/3", fx->root);
    assert_int_not_equal(stat(path, &st), 0);
    tui_session_release(&got);
    tui_session_release(&s);
    /* a model name that could leave the folder, or is not a run's model, is refused */
    static const char *const bad[] = {"../model.gguf", "runs/3/../../x.gguf", "model.gguf",
                                      "runs/x/model.gguf", "runs/3/edits.safetensors"};
    tui_session_init(&s, fx->root, "fm2");
    fill_session(&s);
    assert_int_equal(tui_session_save(&s, NULL, NULL, &err), 0);
    snprintf(json, sizeof json, "%s/fm2/session.json", fx->root);
    char *orig = read_all(json);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *t = strdup(orig), *at = strstr(t, "\"stopped\"");
        assert_non_null(at);
        char *patched = malloc(strlen(t) + 200);
        snprintf(patched, strlen(t) + 200, "%.*s\"model\": \"%s\",\n%s", (int)(at - t), t, bad[i], at);
        write_all(json, patched);
        assert_int_equal(tui_session_load(fx->root, "fm2", &got, &err), -1);
        if (!strstr(err.msg, "is not a session file name")) fail_msg("%s: %s", bad[i], err.msg);
        free(patched);
        free(t);
    }
    write_all(json, orig); /* no "model" key: an earlier version's session */
    assert_null(strstr(orig, "\"model\": \"runs"));
    assert_int_equal(tui_session_load(fx->root, "fm2", &got, &err), 0);
    assert_string_equal(got.runs[0].model_file, "");
    tui_session_release(&got);
    tui_session_release(&s);
    free(orig);
}

/* The disk space check: a size the disk has passes (also for a session folder not made
 * yet), one it cannot have is refused with both sizes and the folder. */
static void test_session_check_space(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    assert_int_equal(tui_session_check_space(fx->root, "nope", 4096, &err), 0);
    assert_int_equal(tui_session_check_space(fx->root, "nope", (uint64_t)1 << 62, &err), -1);
    if (!strstr(err.msg, "of disk space is needed in") || !strstr(err.msg, "MB is free") ||
        !strstr(err.msg, fx->dir))
        fail_msg("%s", err.msg);
    assert_int_equal(tui_session_check_space(fx->root, "../x", 1, &err), -1);
    assert_true(tui_session_model_bytes(fx->m) >= rd_model_param_count(fx->m) * 4);
}

/* ---- the CLI's changes to a saved session (redit session --use/--delete/--edits) ---------- */

/* Edits of the session's shape with numbers from base. */
static rd_edits *edits_like(const tui_session *s, const rd_model *m, float base) {
    rd_error err = {{0}};
    rd_edit_spec spec = tui_config_edit_spec(&s->config);
    rd_edits *e = rd_edits_new(rd_model_config(m), &spec, &err);
    if (!e) fail_msg("edits: %s", err.msg);
    float *p = rd_edits_params(e);
    for (size_t i = 0; i < rd_edits_param_count(e); i++) p[i] = base + 0.003f * (float)(i % 17);
    return e;
}

/* Session root/name with two runs, each with its edits in runs/ID/, run 2's current. */
static void save_two_runs(const char *root, const char *name, const rd_model *m, rd_edits **e1,
                          rd_edits **e2) {
    rd_error err = {{0}};
    tui_session s;
    tui_session_init(&s, root, name);
    fill_session(&s);
    *e1 = edits_like(&s, m, 0.25f);
    *e2 = edits_like(&s, m, -0.75f);
    assert_int_equal(tui_run_keep_edits(&s.runs[0], *e1, &err), 0);
    assert_int_equal(tui_run_keep_edits(&s.runs[1], *e2, &err), 0);
    s.current_run = 2;
    if (tui_session_save(&s, *e2, m, &err)) fail_msg("save: %s", err.msg);
    tui_session_release(&s);
}

/* The child of test_session_use_run_kill: makes run 1 current through the public entry. */
static int use_child(const char *root, const char *name) {
    rd_error err = {{0}};
    return rd_session_use_run(root, name, 1, &err) ? 4 : 0;
}

static void test_session_use_delete_run(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    rd_edits *e1, *e2;
    save_two_runs(fx->root, "u", fx->m, &e1, &e2);
    char dir[700], path[1200], want[1200];
    snprintf(dir, sizeof dir, "%s/u", fx->root);
    /* run 1's edits file */
    assert_int_equal(rd_session_run_edits(fx->root, "u", 1, path, sizeof path, &err), 0);
    snprintf(want, sizeof want, "%s/runs/1/edits.safetensors", dir);
    assert_string_equal(path, want);
    assert_int_equal(rd_session_run_edits(fx->root, "u", 3, path, sizeof path, &err), -1);
    assert_non_null(strstr(err.msg, "no run #3"));
    assert_string_equal(path, "");
    /* run 1 becomes the current edits: saved without a model, the fingerprint kept */
    tui_session before, got;
    assert_int_equal(tui_session_load(fx->root, "u", &before, &err), 0);
    assert_int_equal(rd_session_use_run(fx->root, "u", 1, &err), 0);
    assert_int_equal(tui_session_load(fx->root, "u", &got, &err), 0);
    assert_int_equal(got.current_run, 1);
    assert_int_equal(got.generation, before.generation + 1);
    assert_string_equal(got.model_fingerprint, before.model_fingerprint);
    assert_int_equal(got.n_runs, 2);
    tui_session_edits_path(&got, path, sizeof path);
    assert_edits_file(path, e1, fx->m);
    assert_only_named_files(dir, &got);
    /* a refused change leaves the session as it was */
    assert_int_equal(rd_session_use_run(fx->root, "u", 9, &err), -1);
    assert_non_null(strstr(err.msg, "no run #9"));
    assert_int_equal(rd_session_delete_run(fx->root, "u", 9, &err), -1);
    tui_session same;
    assert_int_equal(tui_session_load(fx->root, "u", &same, &err), 0);
    assert_int_equal(same.generation, got.generation);
    tui_session_release(&same);
    /* in memory: a run whose edits are not on disk, and a failed save, change nothing */
    tui_run *r3 = tui_session_new_run(&got, "unsaved");
    assert_non_null(r3);
    assert_int_equal(tui_session_save_using_run(&got, r3->id, &err), -1);
    assert_non_null(strstr(err.msg, "has no saved edits"));
    tui_session_drop_last_run(&got);
    assert_int_equal(chmod(dir, 0500), 0);
    if (access(dir, W_OK) != 0) {
        char file[64];
        snprintf(file, sizeof file, "%s", got.edits_file);
        assert_int_equal(tui_session_save_using_run(&got, 2, &err), -1);
        assert_string_equal(got.edits_file, file);
        assert_int_equal(got.current_run, 1);
    }
    chmod(dir, 0700);
    tui_session_release(&got);
    tui_session_release(&before);
    /* delete run 2: its curve and its edits; the current edits (run 1's) stay */
    assert_int_equal(rd_session_delete_run(fx->root, "u", 2, &err), 0);
    assert_int_equal(tui_session_load(fx->root, "u", &got, &err), 0);
    assert_int_equal(got.n_runs, 1);
    assert_int_equal(got.runs[0].id, 1);
    assert_int_equal(got.current_run, 1);
    snprintf(path, sizeof path, "%s/runs/2", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    tui_session_edits_path(&got, path, sizeof path);
    assert_edits_file(path, e1, fx->m);
    assert_only_named_files(dir, &got);
    tui_session_release(&got);
    /* a damaged session is refused and left as it is */
    char json[800];
    snprintf(json, sizeof json, "%s/session.json", dir);
    write_all(json, "{\"format\": \"redit-session\", \"vers");
    assert_int_equal(rd_session_use_run(fx->root, "u", 1, &err), -1);
    assert_non_null(strstr(err.msg, "damaged"));
    assert_int_equal(rd_session_delete_run(fx->root, "u", 1, &err), -1);
    char *text = read_all(json);
    assert_string_equal(text, "{\"format\": \"redit-session\", \"vers");
    free(text);
    rd_edits_free(e1);
    rd_edits_free(e2);
}

/* A kill at any call of `redit session --use` leaves the previous save or the new one. */
static void test_session_use_run_kill(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    if (!strace_can_kill()) {
        fprintf(stderr, "SKIPPED: test_session_use_run_kill needs strace and ptrace permission\n");
        skip();
    }
    rd_edits *e1, *e2;
    save_two_runs(fx->root, "k", fx->m, &e1, &e2);
    char dir[700], pristine[800], path[1200];
    snprintf(dir, sizeof dir, "%s/k", fx->root);
    snprintf(pristine, sizeof pristine, "%s/pristine", fx->dir);
    copy_tree(dir, pristine);
    static const char *const calls[] = {"write", "openat", "fsync", "rename", "renameat",
                                        "renameat2", "unlink", "close", "fchmod"};
    int kills = 0, olds = 0, news = 0;
    for (size_t c = 0; c < sizeof calls / sizeof *calls; c++) {
        for (int n = 1; n < 400; n++) {
            copy_tree(pristine, dir);
            const int how = run_child_as("--use-child", fx->root, "k", calls[c], n);
            if (how != SIGKILL) {
                if (how != -1) fail_msg("%s #%d: the child ended with %d", calls[c], n, how);
                break;
            }
            kills++;
            tui_session got;
            if (tui_session_load(fx->root, "k", &got, &err))
                fail_msg("killed at %s #%d: the session does not load: %s", calls[c], n, err.msg);
            const int is_new = got.current_run == 1;
            assert_true(is_new || got.current_run == 2);
            assert_int_equal(got.n_runs, 2);
            is_new ? news++ : olds++;
            tui_session_edits_path(&got, path, sizeof path);
            assert_edits_file(path, is_new ? e1 : e2, fx->m);
            tui_session_tidy(&got);
            assert_only_named_files(dir, &got);
            tui_session_release(&got);
        }
    }
    fprintf(stderr, "test_session_use_run_kill: %d kills, %d left the old save, %d the new one\n",
            kills, olds, news);
    assert_true(kills >= 8);
    assert_true(olds > 0 && news > 0);
    rd_edits_free(e1);
    rd_edits_free(e2);
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--save-child")) return save_child(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "--use-child")) return use_child(argv[2], argv[3]);
    self_path = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_field_table),
        cmocka_unit_test(test_get_set_round_trip),
        cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_field_applies),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_engine_structs),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_from_json_errors),
        cmocka_unit_test(test_runs_in_memory),
        cmocka_unit_test_setup_teardown(test_session_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_file_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_check_writable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_check_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_run_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_check_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_use_delete_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_use_run_kill, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
