/* Chat templates: the built-in ones, checking of custom template strings, and rendering
 * of one (system, prompt, input, answer) turn into its prompt and answer parts. */
#include "data_internal.h"

#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"

#define MAX_TEMPLATE_LEN ((size_t)64 << 10)
#define EOS_TEXT "</s>"

static const char LLAMA2[] = "[INST] {prompt} [/INST] {answer}" EOS_TEXT;
static const char LLAMA2_SYS[] =
    "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{prompt} [/INST] {answer}" EOS_TEXT;
static const char ALPACA[] =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{prompt}\n\n### Response:\n{answer}" EOS_TEXT;
static const char ALPACA_INPUT[] =
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{prompt}\n\n### Input:\n{input}\n\n### Response:\n{answer}" EOS_TEXT;
static const char PLAIN[] = "{prompt}\n{answer}" EOS_TEXT;
static const char RED[] = "Human: {prompt}\n\nAssistant: {answer}" EOS_TEXT;

enum { PH_NONE = 0, PH_SYSTEM, PH_PROMPT, PH_INPUT, PH_ANSWER };

/* The placeholder starting at s (its length in *len), or PH_NONE. */
static int placeholder_at(const char *s, size_t *len) {
    static const struct { const char *text; int kind; } ph[] = {
        {"{system}", PH_SYSTEM}, {"{prompt}", PH_PROMPT}, {"{input}", PH_INPUT},
        {"{answer}", PH_ANSWER}};
    if (*s != '{') return PH_NONE;
    for (size_t i = 0; i < sizeof ph / sizeof ph[0]; i++) {
        size_t n = strlen(ph[i].text);
        if (strncmp(s, ph[i].text, n) == 0) {
            *len = n;
            return ph[i].kind;
        }
    }
    return PH_NONE;
}

static int has_placeholder(const char *s, int kind) {
    for (; *s; s++) {
        size_t n;
        if (placeholder_at(s, &n) == kind) return 1;
    }
    return 0;
}

/* Custom template rules: one {answer}, a {prompt} before it, no placeholder after it. */
static int check_custom(const char *s, rd_error *err) {
    int n_answer = 0, prompt_before = 0, after = 0;
    for (const char *p = s; *p; p++) {
        size_t n;
        int k = placeholder_at(p, &n);
        if (k == PH_NONE) continue;
        if (k == PH_ANSWER) n_answer++;
        else if (n_answer > 0) after = 1;
        else if (k == PH_PROMPT) prompt_before = 1;
    }
    if (n_answer != 1 || !prompt_before)
        return rd_error_set(err, "template \"%.60s\": not a built-in name (llama2-chat, alpaca, "
                                 "plain, red), and a custom template needs {prompt} followed by "
                                 "one {answer}", s);
    if (after)
        return rd_error_set(err, "template \"%.60s\": a placeholder after {answer}", s);
    return 0;
}

const char *rd_data_default_template(rd_data_format f) {
    return f == RD_DATA_TEXT || f == RD_DATA_CLASSIFICATION ? "plain" : "alpaca";
}

int rd_data_template_init(rd_template *t, const char *name, rd_data_format f, rd_error *err) {
    memset(t, 0, sizeof *t);
    if (!name) name = rd_data_default_template(f);
    if (strcmp(name, "llama2-chat") == 0) {
        t->main = LLAMA2;
        t->with_system = LLAMA2_SYS;
    } else if (strcmp(name, "alpaca") == 0) {
        t->main = ALPACA;
        t->with_input = ALPACA_INPUT;
    } else if (strcmp(name, "plain") == 0) {
        t->main = PLAIN;
    } else if (strcmp(name, "red") == 0) {
        t->main = RED;
    } else {
        size_t len = strlen(name);
        if (len > MAX_TEMPLATE_LEN)
            return rd_error_set(err, "template: %zu bytes is too long (limit %zu)", len,
                                MAX_TEMPLATE_LEN);
        if (rd_data_utf8_check(name, len) < len)
            return rd_error_set(err, "template: invalid UTF-8");
        if (check_custom(name, err) < 0) return -1;
        t->owned = malloc(len + 1);
        if (!t->owned) return rd_error_set(err, "out of memory");
        memcpy(t->owned, name, len + 1);
        t->main = t->owned;
    }
    return 0;
}

void rd_data_template_free(rd_template *t) {
    free(t->owned);
    memset(t, 0, sizeof *t);
}

/* ---- rendering -------------------------------------------------------------------- */

void rd_data_rendered_free(rd_rendered *r) {
    free(r->P);
    free(r->A);
    free(r->ctx);
    r->P = r->A = r->ctx = NULL;
}

int rd_data_template_render(const rd_template *t, const char *system, const char *prompt,
                            const char *input, const char *answer, rd_rendered *out,
                            rd_error *err) {
    memset(out, 0, sizeof *out);
    int has_sys = system && *system, has_in = input && *input;
    const char *s = t->main;
    if (has_sys && t->with_system) s = t->with_system;
    if (has_in && t->with_input) s = t->with_input;

    rd_buf pr = {0}; /* the prompt with what the template has no slot for folded in */
    if (has_sys && !has_placeholder(s, PH_SYSTEM)) {
        rd_buf_puts(&pr, system);
        rd_buf_puts(&pr, "\n\n");
    }
    rd_buf_puts(&pr, prompt);
    if (has_in && !has_placeholder(s, PH_INPUT)) {
        rd_buf_puts(&pr, "\n\n");
        rd_buf_puts(&pr, input);
    }
    char *full_prompt = rd_buf_take(&pr);
    if (!full_prompt) return rd_error_set(err, "out of memory");

    rd_buf P = {0}, A = {0}; /* failures latch in .oom: rd_buf_take gives NULL */
    const char *lit = s; /* start of the literal text before the next placeholder */
    const char *p = s;
    size_t n = 0;
    for (; *p; p++) {
        int k = placeholder_at(p, &n);
        if (k == PH_NONE) continue;
        rd_buf_append(&P, lit, (size_t)(p - lit));
        if (k == PH_ANSWER) break;
        rd_buf_puts(&P, k == PH_SYSTEM ? (has_sys ? system : "")
                   : k == PH_PROMPT ? full_prompt
                                    : (has_in ? input : ""));
        lit = p + n;
        p += n - 1;
    }
    out->ctx = malloc((size_t)(p - lit) + 1);
    if (out->ctx) {
        memcpy(out->ctx, lit, (size_t)(p - lit));
        out->ctx[p - lit] = '\0';
    }
    const char *after = *p ? p + n : p;
    size_t after_len = strlen(after);
    size_t eos_len = strlen(EOS_TEXT);
    if (after_len >= eos_len && strcmp(after + after_len - eos_len, EOS_TEXT) == 0)
        after_len -= eos_len;
    rd_buf_puts(&A, answer);
    rd_buf_append(&A, after, after_len);
    free(full_prompt);
    out->P = rd_buf_take(&P);
    out->A = rd_buf_take(&A);
    if (!out->P || !out->A || !out->ctx) {
        rd_data_rendered_free(out);
        return rd_error_set(err, "out of memory");
    }
    return 0;
}

/* ---- the prompt part alone, for generation --------------------------------------- */

char *rd_data_render_prompt(const char *template_name, const char *system, const char *prompt,
                            const rd_tokenizer *tok, rd_error *err) {
    rd_template t;
    if (rd_data_template_init(&t, template_name, RD_DATA_ALPACA, err) < 0) return NULL;
    rd_rendered r;
    int rc = rd_data_template_render(&t, system, prompt ? prompt : "", NULL, "", &r, err);
    rd_data_template_free(&t);
    if (rc < 0) return NULL;
    /* the rule of encode.c's space_rule: one space (not two) before {answer} */
    size_t pl = strlen(r.P), cl = strlen(r.ctx);
    if (tok && rd_tokenizer_adds_dummy_prefix(tok) && cl >= 1 && r.ctx[cl - 1] == ' ' &&
        (cl < 2 || r.ctx[cl - 2] != ' ') && pl >= 1)
        r.P[pl - 1] = '\0';
    char *out = r.P;
    r.P = NULL;
    rd_data_rendered_free(&r);
    return out;
}
