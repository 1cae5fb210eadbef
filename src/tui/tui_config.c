/* The workbench's settings: one table of fields, each with its storage in tui_config, its
 * range and its text check, so the config pane, the Lua console and session files share one
 * set of rules. */
#include "tui_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "redit/util.h"

/* How a field's value is stored in tui_config. */
typedef enum storage { ST_FLAG, ST_INT, ST_LLONG, ST_REAL, ST_TEXT } storage;

/* An extra check on a TEXT field's text (after length, UTF-8 and control characters). */
typedef int (*text_check)(const char *text, rd_error *err);

typedef struct field_entry {
    tui_field f;       /* first member: a tui_field pointer into the table is an entry */
    storage st;
    size_t offset;     /* of the member in tui_config */
    size_t size;       /* of the member (ST_TEXT: the char array, NUL included) */
    int multiline;     /* TEXT: newlines and tabs allowed */
    text_check check;  /* TEXT: optional */
} field_entry;

static const char *const METHOD_CHOICES[] = {"red", "lora", "ia3", "full", NULL};
static const char *const SITE_CHOICES[] = {"ffn", "attn", "both", NULL};
static const char *const SCHEDULE_CHOICES[] = {"linear", "cosine", "constant", NULL};
static const char *const COMPUTE_CHOICES[] = {"auto", "f32", "bf16", NULL};
static const char *const FORMAT_CHOICES[] = {"auto",          "alpaca", "chat",
                                             "prompt-completion", "ultrafeedback", "text",
                                             "classification", NULL};

/* 2^53 − 1: the largest seed a JSON number (a double) carries exactly. */
#define MAX_SEED 9007199254740991.0

static int check_layers(const char *text, rd_error *err);
static int check_targets(const char *text, rd_error *err);
static int check_template(const char *text, rd_error *err);

#define MEMBER(m) offsetof(tui_config, m), sizeof(((tui_config *)0)->m)
#define BOOL_F(k, lbl, grp, hlp) \
    {{#k, lbl, grp, TUI_FIELD_BOOL, NULL, 0, 1, hlp}, ST_FLAG, MEMBER(k), 0, NULL}
#define INT_F(k, lbl, grp, lo, hi, hlp) \
    {{#k, lbl, grp, TUI_FIELD_INT, NULL, lo, hi, hlp}, ST_INT, MEMBER(k), 0, NULL}
#define REAL_F(k, lbl, grp, lo, hi, hlp) \
    {{#k, lbl, grp, TUI_FIELD_REAL, NULL, lo, hi, hlp}, ST_REAL, MEMBER(k), 0, NULL}
#define CHOICE_F(k, lbl, grp, list, hlp) \
    {{#k, lbl, grp, TUI_FIELD_CHOICE, list, 0, 0, hlp}, ST_TEXT, MEMBER(k), 0, NULL}
#define TEXT_F(k, lbl, grp, multi, chk, hlp)                                          \
    {{#k, lbl, grp, TUI_FIELD_TEXT, NULL, 0, sizeof(((tui_config *)0)->k) - 1, hlp}, \
     ST_TEXT, MEMBER(k), multi, chk}

static const field_entry FIELDS[] = {
    CHOICE_F(method, "method", "edits", METHOD_CHOICES,
             "red: scale and bias vectors on sub-layer outputs (h' = s*h + b); lora: low-rank "
             "updates W + (alpha/r)*B*A of chosen projections; ia3: scale vectors on the k and v "
             "outputs and the FFN's inner activation; full: every weight of a copy of the model "
             "(twice the memory; the tuned weights are saved with the session: runs/ID/model.gguf)"),
    CHOICE_F(sites, "sites", "edits", SITE_CHOICES,
             "where edits apply: ffn (MLP output, the paper's default), attn or both"),
    TEXT_F(layers, "layers", "edits", 0, check_layers,
           "\"all\" or a list of layers and ranges, e.g. 0-5,9"),
    BOOL_F(scale, "scale vectors", "edits", "train a scale vector s (h' = s*h + b)"),
    BOOL_F(bias, "bias vectors", "edits", "train a bias vector b (h' = s*h + b)"),
    INT_F(rank, "rank", "edits", 1, RD_LORA_MAX_RANK, "LoRA's rank r (A is r x in, B out x r)"),
    REAL_F(lora_alpha, "lora alpha", "edits", 1e-6, 1e6,
           "LoRA's alpha: the update is scaled by alpha/r"),
    TEXT_F(lora_targets, "lora targets", "edits", 0, check_targets,
           "projections LoRA adapts: a list of q, k, v, o, gate, up, down (e.g. q,v), or all"),
    REAL_F(lora_dropout, "lora dropout", "edits", 0, 0.99,
           "dropout on the LoRA input in training passes"),

    REAL_F(lr, "learning rate", "training", 1e-7, 10, "peak learning rate of AdamW"),
    INT_F(epochs, "epochs", "training", 1, 100000, "passes over the training set"),
    INT_F(batch, "batch", "training", 1, 65536, "examples per optimizer step"),
    INT_F(micro_batch, "micro-batch", "training", 1, 65536,
          "examples per forward/backward pass (at most the batch; lower it to save memory)"),
    INT_F(max_len, "max length", "training", 2, 1048576,
          "tokens per example; longer examples are cut"),
    CHOICE_F(schedule, "schedule", "training", SCHEDULE_CHOICES,
             "learning-rate schedule after the warm-up: linear, cosine or constant"),
    REAL_F(warmup, "warm-up ratio", "training", 0, 0.99,
           "share of the steps with a linear warm-up of the learning rate"),
    REAL_F(weight_decay, "weight decay", "training", 0, 100,
           "decoupled weight decay towards the identity edit"),
    REAL_F(clip, "clip", "training", 0, 1e6,
           "clip the gradient's norm to this before each step; 0 = off"),
    REAL_F(dropout, "dropout", "training", 0, 0.99,
           "drop each sub-layer output element with this probability in training passes"),
    REAL_F(beta1, "beta1", "training", 0, 0.999999, "AdamW's first-moment decay"),
    REAL_F(beta2, "beta2", "training", 0, 0.999999,
           "AdamW's second-moment decay (0.95 steadies long full fine-tuning runs)"),
    {{"seed", "seed", "training", TUI_FIELD_INT, NULL, 0, MAX_SEED,
      "seed of the shuffling and the held-out split"},
     ST_LLONG, MEMBER(seed), 0, NULL},
    INT_F(eval_every, "eval every", "training", 0, 1000000000,
          "evaluate every N steps; 0 = at the end of every epoch"),
    INT_F(max_steps, "max steps", "training", 0, 1000000000,
          "stop after this many steps; 0 = the epochs decide"),
    BOOL_F(group_by_length, "length groups", "training",
           "batches of examples of similar length: less padding, faster when lengths vary"),
    CHOICE_F(compute, "compute", "training", COMPUTE_CHOICES,
             "matrix products in f32 (reference numerics) or bf16 (CPUs with AVX512-BF16, "
             "~1.5x faster); auto = bf16 where the CPU has it; auto and bf16 also decode "
             "quantized weights with 8-bit activation products (as llama.cpp)"),

    TEXT_F(train_path, "train file", "data", 0, NULL,
           "training data: JSONL (alpaca, chat, prompt/completion, ...) or a text file"),
    TEXT_F(eval_path, "eval file", "data", 0, NULL,
           "held-out data; empty = hold out the eval split of the training file"),
    REAL_F(eval_split, "eval split", "data", 0, 0.5,
           "share of the training file held out when no eval file is given (0 = none)"),
    TEXT_F(mc_path, "mc file", "data", 0, NULL,
           "multiple-choice JSONL (context/choices/gold, ARC, HellaSwag): e (or wb.eval_mc()) "
           "scores base vs edits on it"),
    CHOICE_F(format, "format", "data", FORMAT_CHOICES,
             "data format; auto decides from the first line"),
    TEXT_F(template_name, "template", "data", 1, check_template,
           "empty = the format's default; llama2-chat, alpaca, plain, red, or a custom "
           "template with {prompt} and {answer}"),
    TEXT_F(system, "system text", "data", 1, NULL,
           "system text for chat data and templates with a {system} slot"),

    REAL_F(temperature, "temperature", "chat", 0, 5, "sampling temperature; 0 = greedy"),
    REAL_F(top_p, "top-p", "chat", 0.01, 1, "nucleus sampling mass; 1 = off"),
    INT_F(max_tokens, "max tokens", "chat", 1, 65536, "tokens generated per answer"),
    REAL_F(strength, "strength", "chat", 0, 4,
           "edit strength: h' = h + a*(s*h + b - h); 1 = as trained, 0 = base model"),
};

#define N_FIELDS (sizeof FIELDS / sizeof FIELDS[0])

tui_config tui_config_defaults(void) {
    const rd_train_opts o = rd_train_opts_defaults();
    tui_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.method, "red");
    strcpy(c.sites, "ffn");
    strcpy(c.layers, "all");
    c.scale = 1;
    c.bias = 1;
    c.rank = RD_LORA_DEFAULT_RANK;
    c.lora_alpha = RD_LORA_DEFAULT_ALPHA;
    rd_lora_targets_text(RD_LORA_DEFAULT_TARGETS, c.lora_targets, sizeof c.lora_targets);
    c.lora_dropout = 0;
    c.lr = o.lr;
    c.epochs = o.epochs;
    c.batch = o.batch;
    c.micro_batch = o.micro_batch;
    c.max_len = o.max_len;
    snprintf(c.schedule, sizeof c.schedule, "%s", rd_schedule_name(o.schedule));
    c.warmup = o.warmup_ratio;
    c.weight_decay = o.weight_decay;
    c.clip = o.clip;
    c.dropout = o.dropout;
    c.beta1 = o.beta1;
    c.beta2 = o.beta2;
    c.seed = (long long)o.seed;
    c.eval_every = 0;
    c.max_steps = 0;
    strcpy(c.compute, "auto");
    c.eval_split = 0.0;
    strcpy(c.format, "auto");
    c.temperature = 0.0;
    c.top_p = 0.9;
    c.max_tokens = 64;
    c.strength = 1.0;
    return c;
}

size_t tui_config_field_count(void) { return N_FIELDS; }

const tui_field *tui_config_field(size_t i) { return i < N_FIELDS ? &FIELDS[i].f : NULL; }

const tui_field *tui_config_find(const char *key) {
    if (!key) return NULL;
    for (size_t i = 0; i < N_FIELDS; i++)
        if (!strcmp(FIELDS[i].f.key, key)) return &FIELDS[i].f;
    return NULL;
}

int tui_config_field_applies(const tui_config *c, const tui_field *f) {
    static const char *const red_only[] = {"sites", "scale", "bias"};
    static const char *const lora_only[] = {"rank", "lora_alpha", "lora_targets", "lora_dropout"};
    if (!f) return 0;
    if (!strcmp(f->key, "layers")) return strcmp(c->method, "full") != 0;
    for (size_t i = 0; i < 3; i++)
        if (!strcmp(f->key, red_only[i])) return !strcmp(c->method, "red");
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(f->key, lora_only[i])) return !strcmp(c->method, "lora");
    return 1;
}

/* The table entry of f, or NULL when f is not one of the table's fields. */
static const field_entry *entry_of(const tui_field *f) {
    for (size_t i = 0; i < N_FIELDS; i++)
        if (&FIELDS[i].f == f) return &FIELDS[i];
    return NULL;
}

/* ---- text helpers ---------------------------------------------------------------------- */

int tui_format_real(double v, char *buf, size_t cap) {
    char tmp[40];
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e17) { /* whole numbers in full: "100000" */
        snprintf(tmp, sizeof tmp, "%.0f", v);
        if (strtod(tmp, NULL) == v) return snprintf(buf, cap, "%s", tmp);
    }
    return snprintf(buf, cap, "%s", rd_format_double(v, tmp, sizeof tmp));
}

/* Length of the UTF-8 sequence starting at s (1–4), or 0 when it is malformed. */
static size_t utf8_seq_len(const unsigned char *s) {
    if (s[0] < 0x80) return 1;
    size_t n;
    unsigned min;
    unsigned cp;
    if ((s[0] & 0xE0) == 0xC0) n = 2, cp = s[0] & 0x1F, min = 0x80;
    else if ((s[0] & 0xF0) == 0xE0) n = 3, cp = s[0] & 0x0F, min = 0x800;
    else if ((s[0] & 0xF8) == 0xF0) n = 4, cp = s[0] & 0x07, min = 0x10000;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* The user's text for a message: at most ~48 bytes (cut at a character boundary, "..."
 * appended), control characters shown as spaces, so a message stays one readable line. */
static const char *quoted(const char *text, char *out, size_t cap) {
    const size_t limit = 48 < cap - 4 ? 48 : cap - 4;
    size_t i = 0, o = 0;
    const unsigned char *s = (const unsigned char *)text;
    while (s[i]) {
        size_t n = utf8_seq_len(s + i);
        if (n == 0) n = 1;
        if (o + n > limit) break;
        for (size_t k = 0; k < n; k++) out[o++] = s[i + k] < 0x20 || s[i + k] == 0x7F ? ' ' : (char)s[i + k];
        i += n;
    }
    if (s[i]) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* text without leading and trailing white space, in buf (cap bytes); -1 when it does not fit. */
static int trimmed(const char *text, char *buf, size_t cap) {
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r') text++;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n' ||
                     text[n - 1] == '\r'))
        n--;
    if (n >= cap) return -1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    return 0;
}

/* ---- layer lists (rd_edit_spec syntax) ----------------------------------------------------- */

static const char *skip_spaces(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* A decimal number at *s (saturating at INT_MAX); -1 when there is no digit. */
static long layer_number(const char **s) {
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) v = v < INT_MAX / 10 ? v * 10 + (*p - '0') : INT_MAX;
    *s = p;
    return v;
}

/* Parses "all" or "A[-B][,...]" (spaces allowed around numbers) as rd_edits_new does.
 * *highest receives the highest listed layer (-1 for "all"). */
static int parse_layer_list(const char *text, long *highest, rd_error *err) {
    char q[64], at[64];
    const char *s = skip_spaces(text);
    *highest = -1;
    if (!strncmp(s, "all", 3) && *skip_spaces(s + 3) == '\0') return 0;
    if (*s == '\0') return rd_error_set(err, "layers: the list is empty (give \"all\" or e.g. 0-5,9)");
    for (;;) {
        s = skip_spaces(s);
        long a = layer_number(&s), b = a;
        if (a < 0)
            return rd_error_set(err, "layers: '%s': expected a layer number at \"%s\"",
                                quoted(text, q, sizeof q), *s ? quoted(s, at, sizeof at) : "(end)");
        s = skip_spaces(s);
        if (*s == '-') {
            s = skip_spaces(s + 1);
            b = layer_number(&s);
            if (b < 0)
                return rd_error_set(err, "layers: '%s': expected the end of the range %ld-",
                                    quoted(text, q, sizeof q), a);
            if (b < a)
                return rd_error_set(err, "layers: '%s': the range %ld-%ld is reversed",
                                    quoted(text, q, sizeof q), a, b);
            s = skip_spaces(s);
        }
        if (b > *highest) *highest = b;
        if (*s == '\0') return 0;
        if (*s != ',')
            return rd_error_set(err, "layers: '%s': unexpected \"%c\" (items are separated by "
                                     "commas, e.g. 0-5,9)", quoted(text, q, sizeof q), *s);
        s++;
    }
}

static int check_layers(const char *text, rd_error *err) {
    long highest;
    return parse_layer_list(text, &highest, err);
}

static int check_targets(const char *text, rd_error *err) {
    int mask;
    if (rd_lora_targets_parse(text, &mask, err)) return rd_error_prefix(err, "lora_targets");
    return 0;
}

static int check_template(const char *text, rd_error *err) {
    if (!*text) return 0;
    char *probe = rd_data_render_prompt(text, NULL, "", NULL, err);
    if (!probe) return rd_error_prefix(err, "template_name");
    free(probe);
    return 0;
}

/* ---- parsing one field --------------------------------------------------------------------- */

static int parse_bool(const field_entry *fe, const char *text, int *out, rd_error *err) {
    static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false", "no", "0"};
    char t[16], q[64];
    if (trimmed(text, t, sizeof t) == 0)
        for (size_t i = 0; i < 4; i++) {
            if (!strcasecmp(t, yes[i])) return *out = 1, 0;
            if (!strcasecmp(t, no[i])) return *out = 0, 0;
        }
    return rd_error_set(err, "%s: '%s' is not on or off (also true/false, yes/no, 1/0)",
                        fe->f.key, quoted(text, q, sizeof q));
}

static int out_of_range(const field_entry *fe, const char *value_text, double v, rd_error *err) {
    char bound[40];
    if (v < fe->f.min) {
        tui_format_real(fe->f.min, bound, sizeof bound);
        return rd_error_set(err, "%s: %s is below the minimum %s", fe->f.key, value_text, bound);
    }
    tui_format_real(fe->f.max, bound, sizeof bound);
    return rd_error_set(err, "%s: %s is above the maximum %s", fe->f.key, value_text, bound);
}

static int parse_integer(const field_entry *fe, const char *text, long long *out, rd_error *err) {
    char t[64], q[64];
    if (trimmed(text, t, sizeof t) || !*t)
        return rd_error_set(err, "%s: '%s' is not a number", fe->f.key, quoted(text, q, sizeof q));
    char *end;
    const double d = strtod(t, &end);
    if (*end != '\0' || end == t)
        return rd_error_set(err, "%s: '%s' is not a number", fe->f.key, quoted(text, q, sizeof q));
    if (!isfinite(d)) return rd_error_set(err, "%s: '%s' is not a finite number", fe->f.key, t);
    if (d != floor(d)) return rd_error_set(err, "%s: '%s' is not a whole number", fe->f.key, t);
    if (d < fe->f.min || d > fe->f.max) return out_of_range(fe, t, d, err);
    /* the range is within ±2^53, so d is exact; strtoll keeps plain digits exact anyway */
    const long long v = strtoll(t, &end, 10);
    *out = *end == '\0' ? v : (long long)d;
    return 0;
}

static int parse_real(const field_entry *fe, const char *text, double *out, rd_error *err) {
    char t[64], q[64];
    if (trimmed(text, t, sizeof t) || !*t)
        return rd_error_set(err, "%s: '%s' is not a number", fe->f.key, quoted(text, q, sizeof q));
    char *end;
    double v = strtod(t, &end);
    if (*end != '\0' || end == t)
        return rd_error_set(err, "%s: '%s' is not a number", fe->f.key, quoted(text, q, sizeof q));
    if (!isfinite(v)) return rd_error_set(err, "%s: '%s' is not a finite number", fe->f.key, t);
    if (v < fe->f.min || v > fe->f.max) {
        char shown[40];
        tui_format_real(v, shown, sizeof shown);
        return out_of_range(fe, shown, v, err);
    }
    *out = v;
    return 0;
}

/* Copies text (shorter than size) into a member and zeroes the rest of it, so equal settings
 * are equal bytes. */
static void store_text(char *member, size_t size, const char *text) {
    const size_t n = strlen(text);
    memcpy(member, text, n);
    memset(member + n, 0, size - n);
}

static int parse_choice(const field_entry *fe, const char *text, char *out, rd_error *err) {
    char t[32], q[64], list[160] = "";
    if (trimmed(text, t, sizeof t) == 0)
        for (const char *const *c = fe->f.choices; *c; c++)
            if (!strcmp(t, *c)) {
                store_text(out, fe->size, t);
                return 0;
            }
    for (const char *const *c = fe->f.choices; *c; c++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", c == fe->f.choices ? "" : ", ", *c);
    }
    return rd_error_set(err, "%s: '%s' is not one of %s", fe->f.key, quoted(text, q, sizeof q),
                        list);
}

static int check_text(const field_entry *fe, const char *text, rd_error *err) {
    const size_t n = strlen(text);
    if (n >= fe->size)
        return rd_error_set(err, "%s: the text is %zu bytes long; at most %zu fit", fe->f.key, n,
                            fe->size - 1);
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq_len(s + i);
        if (len == 0) return rd_error_set(err, "%s: the text is not valid UTF-8 (byte %zu)", fe->f.key, i + 1);
        if (len == 1 && (s[i] < 0x20 || s[i] == 0x7F) &&
            !(fe->multiline && (s[i] == '\n' || s[i] == '\t' || s[i] == '\r')))
            return rd_error_set(err, "%s: the text holds a control character (byte %zu)",
                                fe->f.key, i + 1);
        i += len;
    }
    return fe->check ? fe->check(text, err) : 0;
}

int tui_config_set(tui_config *c, const tui_field *f, const char *text, rd_error *err) {
    const field_entry *fe = entry_of(f);
    if (!fe) return rd_error_set(err, "config: not a field of the settings table");
    if (!text) return rd_error_set(err, "%s: no value given", fe->f.key);
    char *member = (char *)c + fe->offset;
    switch (fe->f.kind) {
    case TUI_FIELD_BOOL: {
        int v = 0;
        if (parse_bool(fe, text, &v, err)) return -1;
        *(int *)member = v;
        return 0;
    }
    case TUI_FIELD_INT: {
        long long v = 0;
        if (parse_integer(fe, text, &v, err)) return -1;
        if (fe->st == ST_LLONG) *(long long *)member = v;
        else *(int *)member = (int)v;
        return 0;
    }
    case TUI_FIELD_REAL: {
        double v = 0;
        if (parse_real(fe, text, &v, err)) return -1;
        *(double *)member = v;
        return 0;
    }
    case TUI_FIELD_CHOICE: return parse_choice(fe, text, member, err);
    case TUI_FIELD_TEXT:
        if (check_text(fe, text, err)) return -1;
        store_text(member, fe->size, text);
        return 0;
    }
    return rd_error_set(err, "%s: unknown field kind", fe->f.key);
}

int tui_config_get(const tui_config *c, const tui_field *f, char *buf, size_t cap) {
    const field_entry *fe = entry_of(f);
    if (!fe) {
        if (cap) buf[0] = '\0';
        return -1;
    }
    const char *member = (const char *)c + fe->offset;
    switch (fe->st) {
    case ST_FLAG: return snprintf(buf, cap, "%s", *(const int *)member ? "on" : "off");
    case ST_INT: return snprintf(buf, cap, "%d", *(const int *)member);
    case ST_LLONG: return snprintf(buf, cap, "%lld", *(const long long *)member);
    case ST_REAL: return tui_format_real(*(const double *)member, buf, cap);
    case ST_TEXT: return snprintf(buf, cap, "%.*s", (int)strnlen(member, fe->size), member);
    }
    return -1;
}

int tui_config_check_fields(const tui_config *c, rd_error *err) {
    char text[1024];
    for (size_t i = 0; i < N_FIELDS; i++) {
        const field_entry *fe = &FIELDS[i];
        if (fe->st == ST_TEXT && strnlen((const char *)c + fe->offset, fe->size) == fe->size)
            return rd_error_set(err, "%s: the text is not terminated within its %zu bytes",
                                fe->f.key, fe->size);
        if (fe->st == ST_FLAG) { /* any non-zero int would read as "on": hold it to 0/1 */
            const int v = *(const int *)((const char *)c + fe->offset);
            if (v != 0 && v != 1) return rd_error_set(err, "%s: %d is not 0 or 1", fe->f.key, v);
            continue;
        }
        tui_config scratch = *c;
        tui_config_get(c, &fe->f, text, sizeof text);
        if (tui_config_set(&scratch, &fe->f, text, err)) return -1;
    }
    return 0;
}

/* ---- cross-field checks and the engine's option structs -------------------------------------- */

int tui_config_validate(const tui_config *c, int n_layers, rd_error *err) {
    if (tui_config_check_fields(c, err)) return -1;
    if (!strcmp(c->method, "red") && !c->scale && !c->bias)
        return rd_error_set(err, "scale and bias are both off: there is nothing to train");
    if (!c->train_path[0]) return rd_error_set(err, "train_path: no training file chosen");
    if (c->micro_batch > c->batch)
        return rd_error_set(err, "micro_batch: %d is larger than the batch %d (a batch runs as "
                                 "micro-batches)", c->micro_batch, c->batch);
    const rd_train_opts o = tui_config_train_opts(c);
    if (rd_train_opts_validate(&o, err)) return rd_error_prefix(err, "training");
    if (n_layers > 0) {
        long highest;
        if (parse_layer_list(c->layers, &highest, err)) return -1;
        if (highest >= n_layers)
            return rd_error_set(err, "layers: layer %ld is beyond the model's %d layers (0-%d)",
                                highest, n_layers, n_layers - 1);
    }
    const rd_sampling s = tui_config_sampling(c);
    if (rd_sampling_validate(&s, err)) return rd_error_prefix(err, "chat");
    return 0;
}

rd_train_opts tui_config_train_opts(const tui_config *c) {
    rd_train_opts o = rd_train_opts_defaults();
    o.lr = c->lr;
    o.epochs = c->epochs;
    o.batch = c->batch;
    o.micro_batch = c->micro_batch;
    o.max_len = c->max_len;
    if (rd_schedule_from_name(c->schedule, &o.schedule)) o.schedule = RD_SCHEDULE_LINEAR;
    o.warmup_ratio = c->warmup;
    o.weight_decay = c->weight_decay;
    o.clip = c->clip;
    o.dropout = c->dropout;
    o.beta1 = c->beta1;
    o.beta2 = c->beta2;
    o.seed = (uint64_t)c->seed;
    o.eval_every = c->eval_every;
    o.max_steps = c->max_steps;
    o.group_by_length = c->group_by_length;
    o.stop = NULL;
    return o;
}

rd_edit_spec tui_config_edit_spec(const tui_config *c) {
    rd_edit_spec s = {.layers = c->layers, .scale = c->scale, .bias = c->bias, .seed = (uint64_t)c->seed};
    if (rd_method_from_name(c->method, &s.method)) s.method = -1; /* rd_edits_new refuses it */
    if (s.method != RD_METHOD_RED) { /* RED's settings stay in c, unused */
        s.scale = s.bias = 0;
    } else if (rd_sites_from_name(c->sites, &s.sites)) {
        s.sites = 0; /* rd_edits_new refuses 0 */
    }
    if (s.method == RD_METHOD_LORA) {
        s.rank = c->rank;
        s.lora_alpha = (float)c->lora_alpha;
        if (rd_lora_targets_parse(c->lora_targets, &s.lora_targets, NULL)) s.lora_targets = -1;
        s.lora_dropout = (float)c->lora_dropout;
    }
    return s;
}

rd_data_opts tui_config_data_opts(const tui_config *c) {
    rd_data_opts o = rd_data_opts_defaults();
    if (rd_data_format_from_name(c->format, &o.format)) o.format = RD_DATA_AUTO;
    o.template_name = c->template_name[0] ? c->template_name : NULL;
    o.max_len = c->max_len;
    o.system = c->system[0] ? c->system : NULL;
    return o;
}

rd_sampling tui_config_sampling(const tui_config *c) {
    rd_sampling s = rd_sampling_defaults();
    s.temperature = (float)c->temperature;
    s.top_p = (float)c->top_p;
    s.top_k = 0;
    s.seed = (uint64_t)c->seed;
    return s;
}

/* ---- JSON -------------------------------------------------------------------------------- */

static cJSON *field_to_json(const tui_config *c, const field_entry *fe) {
    const char *member = (const char *)c + fe->offset;
    char num[48];
    switch (fe->st) {
    case ST_FLAG: return cJSON_CreateBool(*(const int *)member != 0);
    case ST_INT:
    case ST_LLONG:
    case ST_REAL: /* written as raw text: cJSON prints doubles to only ~15 digits */
        tui_config_get(c, &fe->f, num, sizeof num);
        if (fe->st == ST_REAL && !isfinite(*(const double *)member)) return cJSON_CreateNull();
        return cJSON_CreateRaw(num);
    case ST_TEXT: {
        char text[1024];
        snprintf(text, sizeof text, "%.*s", (int)strnlen(member, fe->size), member);
        return cJSON_CreateString(text);
    }
    }
    return NULL;
}

char *tui_config_to_json(const tui_config *c) {
    cJSON *obj = cJSON_CreateObject();
    if (!obj) return NULL;
    for (size_t i = 0; i < N_FIELDS; i++) {
        cJSON *v = field_to_json(c, &FIELDS[i]);
        if (!v || !cJSON_AddItemToObject(obj, FIELDS[i].f.key, v)) {
            cJSON_Delete(v);
            cJSON_Delete(obj);
            return NULL;
        }
    }
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return text;
}

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

/* The JSON value v as the text tui_config_set reads for field fe, or -1 on a wrong type. */
static int json_value_text(const field_entry *fe, const cJSON *v, char *buf, size_t cap,
                           rd_error *err) {
    const char *want = NULL;
    switch (fe->f.kind) {
    case TUI_FIELD_BOOL:
        if (cJSON_IsBool(v)) return snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "on" : "off"), 0;
        want = "true or false";
        break;
    case TUI_FIELD_INT:
    case TUI_FIELD_REAL:
        if (cJSON_IsNumber(v)) {
            const double d = v->valuedouble;
            if (fe->f.kind == TUI_FIELD_INT && d == floor(d) && fabs(d) < 1e18)
                snprintf(buf, cap, "%.0f", d);
            else
                tui_format_real(d, buf, cap);
            return 0;
        }
        want = "a number";
        break;
    case TUI_FIELD_CHOICE:
    case TUI_FIELD_TEXT:
        if (cJSON_IsString(v) && v->valuestring) {
            if (strlen(v->valuestring) >= cap)
                return rd_error_set(err, "%s: the text is %zu bytes long; at most %zu fit",
                                    fe->f.key, strlen(v->valuestring), fe->size - 1);
            snprintf(buf, cap, "%s", v->valuestring);
            return 0;
        }
        want = "a string";
        break;
    }
    return rd_error_set(err, "%s: expected %s, not %s", fe->f.key, want,
                        json_type_name(v));
}

int tui_config_from_cjson(const cJSON *obj, tui_config *out, rd_error *err) {
    tui_config c = tui_config_defaults();
    char text[1024];
    if (!cJSON_IsObject(obj))
        return rd_error_set(err, "config: expected a JSON object, not %s", json_type_name(obj));
    for (const cJSON *item = obj->child; item; item = item->next) {
        const char *key = item->string ? item->string : "";
        const tui_field *f = tui_config_find(key);
        if (!f) {
            char q[64];
            return rd_error_set(err, "config: unknown key \"%s\"", quoted(key, q, sizeof q));
        }
        const field_entry *fe = entry_of(f); /* (found: f comes from the same table) */
        if (!fe) return rd_error_set(err, "config: \"%s\" is not a field of the settings table", key);
        if (json_value_text(fe, item, text, sizeof text, err) ||
            tui_config_set(&c, f, text, err))
            return rd_error_prefix(err, "config");
    }
    *out = c;
    return 0;
}

int tui_config_from_json(const char *json, size_t len, tui_config *out, rd_error *err) {
    cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
    if (!root) return rd_error_set(err, "config: not valid JSON");
    const int rc = tui_config_from_cjson(root, out, err);
    cJSON_Delete(root);
    return rc;
}
