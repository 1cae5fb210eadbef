/* Data set tests with the real Llama-2 tokenizer: every format read from a small JSONL
 * written to a temporary directory, exact ids and loss masks (expected ids produced by
 * SentencePiece 0.1.97 from tokenizer.model, and cross-checked by encoding the whole
 * rendered text), the prompt/answer boundary rule, truncation, padded and packed batches,
 * the seeded split, classification labels, and every kind of bad input with its line. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redit/dataset.h"
#include "redit/tokenizer.h"
#include "helpers/tiny_model.h"

#define LLAMA2_VOCAB 32000
#define BOS 1
#define EOS 2

#define ALPACA_HEAD                                                                        \
    "Below is an instruction that describes a task. Write a response that appropriately " \
    "completes the request.\n\n### Instruction:\n"

typedef struct ctx {
    const rd_tokenizer *tok;
    char dir[256];
    char path[512];
} ctx;

/* ---- fixtures and helpers --------------------------------------------------------- */

static int group_setup(void **state) {
    const char *path = shared_fixture("llama2-tokenizer/tokenizer.bin");
    if (!path) {
        print_error("../shared/fixtures/llama2-tokenizer/tokenizer.bin is missing\n");
        return -1;
    }
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_load_llama2c(path, LLAMA2_VOCAB, &err);
    if (!t) print_error("%s\n", err.msg);
    *state = t;
    return t ? 0 : -1;
}

static int group_teardown(void **state) {
    rd_tokenizer_free(*state);
    return 0;
}

static int test_setup(void **state) {
    ctx *c = calloc(1, sizeof *c);
    if (!c) return -1;
    c->tok = *state;
    if (tiny_tempdir(c->dir, sizeof c->dir) < 0) {
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int test_teardown(void **state) {
    ctx *c = *state;
    tiny_rmdir(c->dir);
    free(c);
    return 0;
}

/* Writes n bytes to dir/name; c->path is the file's path. */
static void write_bytes(ctx *c, const char *name, const char *data, size_t n) {
    snprintf(c->path, sizeof c->path, "%s/%s", c->dir, name);
    FILE *f = fopen(c->path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static rd_dataset *load_text(ctx *c, const char *name, const char *content,
                             const rd_data_opts *o, rd_error *err) {
    write_bytes(c, name, content, strlen(content));
    return rd_dataset_load(c->path, c->tok, o, err);
}

/* Loads content that must load; fails the test with the message otherwise. */
static rd_dataset *load_ok(ctx *c, const char *name, const char *content, const rd_data_opts *o) {
    rd_error err = {{0}};
    rd_dataset *d = load_text(c, name, content, o, &err);
    if (!d) fail_msg("load failed: %s", err.msg);
    return d;
}

/* Content that must fail with a message holding "PATH:LINE:" (line > 0) and `what`. */
static void expect_error_bytes(ctx *c, const char *data, size_t n, const rd_data_opts *o,
                               long line, const char *what) {
    write_bytes(c, "bad.jsonl", data, n);
    rd_error err = {{0}};
    rd_dataset *d = rd_dataset_load(c->path, c->tok, o, &err);
    if (d) {
        rd_dataset_free(d);
        fail_msg("loading should have failed (%s)", what);
    }
    char where[600];
    if (line > 0) snprintf(where, sizeof where, "%s:%ld: ", c->path, line);
    else snprintf(where, sizeof where, "%s: ", c->path);
    if (strncmp(err.msg, where, strlen(where)) != 0 || !strstr(err.msg, what))
        fail_msg("message \"%s\" should start with \"%s\" and say \"%s\"", err.msg, where, what);
}

static void expect_error(ctx *c, const char *content, const rd_data_opts *o, long line,
                         const char *what) {
    expect_error_bytes(c, content, strlen(content), o, line, what);
}

static void print_ids(const char *label, const int *ids, size_t n) {
    print_message("  %s (%zu):", label, n);
    for (size_t i = 0; i < n; i++) print_message(" %d", ids[i]);
    print_message("\n");
}

static void expect_ids(const int *got, size_t n_got, const int *want, size_t n_want) {
    int same = n_got == n_want && (n_want == 0 || memcmp(got, want, n_want * sizeof *got) == 0);
    if (!same) {
        print_ids("want", want, n_want);
        print_ids("got ", got, n_got);
    }
    assert_true(same);
}

/* Loss flags that must be 1 exactly on [from, to) of an example of n positions. */
static void expect_loss_range(const rd_example *e, int from, int to) {
    for (int t = 0; t < e->n; t++) {
        int want = t >= from && t < to;
        if (e->loss[t] != want) fail_msg("loss[%d] = %d, want %d (n %d)", t, e->loss[t], want, e->n);
    }
}

/* rd_tokenizer_encode of a whole text (no BOS/EOS); caller frees. */
static int *encode(const ctx *c, const char *text, size_t *n) {
    int *ids = NULL;
    rd_error err = {{0}};
    assert_int_equal(rd_tokenizer_encode(c->tok, text, strlen(text), 0, 0, &ids, n, &err), 0);
    return ids;
}

/* The example must be [BOS] + enc(whole_text) + [EOS]. */
static void expect_whole_text(const ctx *c, const rd_example *e, const char *whole_text) {
    size_t n = 0;
    int *ids = encode(c, whole_text, &n);
    int *want = malloc((n + 2) * sizeof *want);
    assert_non_null(want);
    want[0] = BOS;
    memcpy(want + 1, ids, n * sizeof *ids);
    want[n + 1] = EOS;
    expect_ids(e->ids, (size_t)e->n, want, n + 2);
    free(want);
    free(ids);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- names and options ------------------------------------------------------------ */

static void test_format_names(void **state) {
    (void)state;
    const char *names[] = {"auto", "alpaca", "chat", "prompt-completion", "ultrafeedback",
                           "text", "classification"};
    for (size_t i = 0; i < N(names); i++) {
        rd_data_format f = RD_DATA_AUTO;
        assert_int_equal(rd_data_format_from_name(names[i], &f), 0);
        assert_int_equal((int)f, (int)i);
        assert_string_equal(rd_data_format_name(f), names[i]);
    }
    rd_data_format f;
    assert_int_equal(rd_data_format_from_name("csv", &f), -1);
    rd_data_opts o = rd_data_opts_defaults();
    assert_int_equal(o.format, RD_DATA_AUTO);
    assert_null(o.template_name);
    assert_int_equal(o.max_len, 512);
    assert_int_equal(o.mask_prompt, 1);
    assert_int_equal(o.skip_bad_lines, 0);
}

/* ---- exact ids: alpaca, red, llama2-chat ------------------------------------------ */

/* Alpaca: no space before {answer}, so the answer is the tail of the whole text's
 * encoding ("Hello" 10994 without "▁"), not enc(answer) alone ("▁Hello" 15043). */
static void test_alpaca_exact(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    rd_dataset *d = load_ok(c, "a.jsonl",
                            "{\"instruction\": \"Say hi\", \"input\": \"\", \"output\": \"Hello there!\"}\n", &o);
    assert_int_equal(rd_dataset_format(d), RD_DATA_ALPACA);
    assert_int_equal(rd_dataset_size(d), 1);
    static const int want[] = {BOS, 13866, 338, 385, 15278, 393, 16612, 263, 3414, 29889, 14350,
                               263, 2933, 393, 7128, 2486, 1614, 2167, 278, 2009, 29889, 13, 13,
                               2277, 29937, 2799, 4080, 29901, 13, 29903, 388, 7251, 13, 13, 2277,
                               29937, 13291, 29901, 13, 10994, 727, 29991, EOS};
    const rd_example *e = rd_dataset_get(d, 0);
    expect_ids(e->ids, (size_t)e->n, want, N(want));
    assert_int_equal(e->n_prompt, 39);
    assert_int_equal(e->label, -1);
    expect_loss_range(e, 39, 43); /* "Hello", " there", "!", EOS */
    assert_int_equal(rd_dataset_loss_tokens(d), 4);
    expect_whole_text(c, e, ALPACA_HEAD "Say hi\n\n### Response:\nHello there!");
    assert_string_equal(rd_dataset_prompt_text(d, 0), ALPACA_HEAD "Say hi\n\n### Response:\n");
    assert_string_equal(rd_dataset_answer_text(d, 0), "Hello there!");
    size_t n = 0;
    int *alone = encode(c, "Hello there!", &n);
    assert_int_equal(alone[0], 15043); /* what encoding the answer apart would have given */
    free(alone);
    assert_null(rd_dataset_get(d, 1));
    rd_dataset_free(d);
}

/* The red template: "Human: {prompt}\n\nAssistant: {answer}</s>". The space before
 * {answer} is carried by the answer's dummy-prefix "▁", and "</s>" is the EOS id. */
static void test_red_exact(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    o.template_name = "red";
    rd_dataset *d = load_ok(c, "r.jsonl", "{\"prompt\": \"What is 2+2?\", \"completion\": \"It is 4.\"}\n", &o);
    assert_int_equal(rd_dataset_format(d), RD_DATA_PROMPT_COMPLETION);
    static const int want[] = {BOS, 12968, 29901, 1724, 338, 29871, 29906, 29974, 29906, 29973,
                               13, 13, 7900, 22137, 29901, 739, 338, 29871, 29946, 29889, EOS};
    const rd_example *e = rd_dataset_get(d, 0);
    expect_ids(e->ids, (size_t)e->n, want, N(want));
    assert_int_equal(e->n_prompt, 15);
    expect_loss_range(e, 15, 21);
    expect_whole_text(c, e, "Human: What is 2+2?\n\nAssistant: It is 4.");
    /* enc(prompt part without its trailing space) + enc(answer) is the same split */
    size_t np = 0, na = 0;
    int *p = encode(c, "Human: What is 2+2?\n\nAssistant:", &np);
    int *a = encode(c, "It is 4.", &na);
    expect_ids(e->ids + 1, np, p, np);
    expect_ids(e->ids + 1 + np, na, a, na);
    free(p);
    free(a);
    assert_string_equal(rd_dataset_prompt_text(d, 0), "Human: What is 2+2?\n\nAssistant:");
    assert_string_equal(rd_dataset_answer_text(d, 0), "It is 4.");

    /* mask off: every position but the first */
    o.mask_prompt = 0;
    rd_dataset *d2 = load_ok(c, "r.jsonl", "{\"prompt\": \"What is 2+2?\", \"completion\": \"It is 4.\"}\n", &o);
    e = rd_dataset_get(d2, 0);
    expect_ids(e->ids, (size_t)e->n, want, N(want));
    expect_loss_range(e, 1, 21);
    assert_int_equal(rd_dataset_loss_tokens(d2), 20);
    rd_dataset_free(d2);
    rd_dataset_free(d);
}

/* Multi-turn chat with a system message, llama2-chat: one <s> … </s> segment per turn. */
static void test_llama2_chat_multi_turn(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    o.template_name = "llama2-chat";
    rd_dataset *d = load_ok(c, "c.jsonl",
                            "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
                            " {\"role\": \"user\", \"content\": \"Hi\"},"
                            " {\"role\": \"assistant\", \"content\": \"Hello!\"},"
                            " {\"role\": \"user\", \"content\": \"Bye\"},"
                            " {\"role\": \"assistant\", \"content\": \"Goodbye.\"},"
                            " {\"role\": \"user\", \"content\": \"unanswered\"}]}\n", &o);
    assert_int_equal(rd_dataset_format(d), RD_DATA_CHAT);
    static const int want[] = {
        BOS, 518, 25580, 29962, 3532, 14816, 29903, 6778, 13, 3629, 11473, 29889, 13, 29966, 829,
        14816, 29903, 6778, 13, 13, 18567, 518, 29914, 25580, 29962, /* turn 1 prompt: 0..24 */
        15043, 29991, EOS,                                           /* answer: 25..27 */
        BOS, 518, 25580, 29962, 2648, 29872, 518, 29914, 25580, 29962, /* turn 2: 28..37 */
        7197, 26966, 29889, EOS};                                     /* answer: 38..41 */
    const rd_example *e = rd_dataset_get(d, 0);
    expect_ids(e->ids, (size_t)e->n, want, N(want));
    for (int t = 0; t < e->n; t++) {
        int ans = (t >= 25 && t <= 27) || (t >= 38 && t <= 41);
        if (e->loss[t] != ans) fail_msg("loss[%d] = %d", t, e->loss[t]);
    }
    assert_int_equal(e->n_prompt, 38);
    /* each segment is SentencePiece's encoding of the whole turn text */
    size_t n1 = 0, n2 = 0;
    int *s1 = encode(c, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello!", &n1);
    int *s2 = encode(c, "[INST] Bye [/INST] Goodbye.", &n2);
    expect_ids(e->ids + 1, n1, s1, n1);
    expect_ids(e->ids + 29, n2, s2, n2);
    free(s1);
    free(s2);
    assert_string_equal(rd_dataset_prompt_text(d, 0),
                        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello!</s><s>[INST] Bye [/INST]");
    assert_string_equal(rd_dataset_answer_text(d, 0), "Goodbye.");
    rd_dataset_free(d);

    /* system text from the options when the data has none; no <<SYS>> block without one */
    o.system = "Be brief.";
    d = load_ok(c, "c.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n", &o);
    e = rd_dataset_get(d, 0);
    expect_ids(e->ids, (size_t)e->n, want, 28);
    rd_dataset_free(d);
    o.system = NULL;
    d = load_ok(c, "c.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"Bye\"}, {\"role\": \"assistant\", \"content\": \"Goodbye.\"}]}\n", &o);
    e = rd_dataset_get(d, 0);
    expect_ids(e->ids, (size_t)e->n, want + 28, 14);
    assert_int_equal(e->n_prompt, 10);
    rd_dataset_free(d);
}

/* ---- the other formats ------------------------------------------------------------ */

static void test_alpaca_input_and_system(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    rd_dataset *d = load_ok(c, "a.jsonl",
                            "{\"instruction\": \"Translate\", \"input\": \"chat\", \"output\": \"cat\"}\n", &o);
    const char *head = "Below is an instruction that describes a task, paired with an input that "
                       "provides further context. Write a response that appropriately completes "
                       "the request.\n\n### Instruction:\nTranslate\n\n### Input:\nchat\n\n### Response:\n";
    assert_string_equal(rd_dataset_prompt_text(d, 0), head);
    char whole[1024];
    snprintf(whole, sizeof whole, "%scat", head);
    expect_whole_text(c, rd_dataset_get(d, 0), whole);
    rd_dataset_free(d);

    /* red has no {system} or {input} slot: both are folded into the prompt */
    o.template_name = "red";
    o.system = "Be kind.";
    d = load_ok(c, "a.jsonl", "{\"instruction\": \"Translate\", \"input\": \"chat\", \"output\": \"cat\"}\n", &o);
    assert_string_equal(rd_dataset_prompt_text(d, 0), "Human: Be kind.\n\nTranslate\n\nchat\n\nAssistant:");
    expect_whole_text(c, rd_dataset_get(d, 0), "Human: Be kind.\n\nTranslate\n\nchat\n\nAssistant: cat");
    rd_dataset_free(d);
}

static void test_ultrafeedback(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    o.template_name = "red";
    rd_dataset *d = load_ok(c, "u.jsonl",
                            "{\"prompt\": \"Q1\", \"chosen\": \"A1\", \"rejected\": \"no\"}\n"
                            "\n"
                            "{\"prompt\": \"Q2\", \"chosen\": [{\"role\": \"user\", \"content\": \"Q2\"},"
                            " {\"role\": \"assistant\", \"content\": \"draft\"},"
                            " {\"role\": \"assistant\", \"content\": \"A2\"}], \"score_chosen\": 9}\n", &o);
    assert_int_equal(rd_dataset_format(d), RD_DATA_ULTRAFEEDBACK);
    assert_int_equal(rd_dataset_size(d), 2);
    assert_string_equal(rd_dataset_answer_text(d, 0), "A1");
    assert_string_equal(rd_dataset_answer_text(d, 1), "A2");
    assert_string_equal(rd_dataset_prompt_text(d, 1), "Human: Q2\n\nAssistant:");
    expect_whole_text(c, rd_dataset_get(d, 1), "Human: Q2\n\nAssistant: A2");
    rd_dataset_free(d);
}

/* The plain template and a custom one without a space before {answer}. */
static void test_plain_and_custom_templates(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    o.format = RD_DATA_PROMPT_COMPLETION;
    o.template_name = "plain";
    const char *line = "{\"prompt\": \"2+2=\", \"completion\": \"4\"}\n";
    rd_dataset *d = load_ok(c, "p.jsonl", line, &o);
    const rd_example *e = rd_dataset_get(d, 0);
    expect_whole_text(c, e, "2+2=\n4");
    assert_int_equal(e->ids[e->n_prompt - 1], 13); /* the prompt ends with <0x0A> */
    expect_loss_range(e, e->n_prompt, e->n);
    rd_dataset_free(d);

    o.template_name = "Q: {prompt}\nA: {answer}"; /* space rule */
    d = load_ok(c, "p.jsonl", line, &o);
    e = rd_dataset_get(d, 0);
    expect_whole_text(c, e, "Q: 2+2=\nA: 4");
    assert_string_equal(rd_dataset_prompt_text(d, 0), "Q: 2+2=\nA:");
    expect_loss_range(e, e->n_prompt, e->n);
    assert_int_equal(e->n - e->n_prompt, 3); /* "▁", "4", EOS */
    rd_dataset_free(d);

    o.template_name = "<{prompt}>{answer} [end]</s>"; /* no space: common-prefix rule */
    d = load_ok(c, "p.jsonl", line, &o);
    e = rd_dataset_get(d, 0);
    expect_whole_text(c, e, "<2+2=>4 [end]");
    assert_string_equal(rd_dataset_answer_text(d, 0), "4 [end]");
    rd_dataset_free(d);

    /* data holding a placeholder's spelling stays text */
    o.template_name = "plain";
    d = load_ok(c, "p.jsonl", "{\"prompt\": \"{answer}{system}?\", \"completion\": \"{prompt}\"}\n", &o);
    expect_whole_text(c, rd_dataset_get(d, 0), "{answer}{system}?\n{prompt}");
    rd_dataset_free(d);

    rd_error err = {{0}};
    o.template_name = "no placeholders";
    assert_null(load_text(c, "p.jsonl", line, &o, &err));
    assert_non_null(strstr(err.msg, "{prompt}"));
    o.template_name = "{answer} {prompt}";
    assert_null(load_text(c, "p.jsonl", line, &o, &err));
    o.template_name = "{prompt} {answer} {prompt}";
    assert_null(load_text(c, "p.jsonl", line, &o, &err));
    assert_non_null(strstr(err.msg, "after {answer}"));
}

/* AUTO picks the format from the first non-empty line's keys. */
static void test_auto_detection(void **state) {
    ctx *c = *state;
    static const struct {
        const char *line;
        rd_data_format f;
    } cases[] = {
        {"{\"instruction\": \"i\", \"output\": \"o\"}", RD_DATA_ALPACA},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}", RD_DATA_CHAT},
        {"{\"prompt\": \"p\", \"completion\": \"c\"}", RD_DATA_PROMPT_COMPLETION},
        {"{\"prompt\": \"p\", \"chosen\": \"c\"}", RD_DATA_ULTRAFEEDBACK},
        {"{\"text\": \"t\", \"label\": 1}", RD_DATA_CLASSIFICATION},
        {"{\"text\": \"a document\"}", RD_DATA_TEXT},
        {"not JSON at all", RD_DATA_TEXT},
    };
    rd_data_opts o = rd_data_opts_defaults();
    for (size_t i = 0; i < N(cases); i++) {
        char content[512];
        snprintf(content, sizeof content, "\n  \n%s\n", cases[i].line);
        rd_dataset *d = load_ok(c, "x.jsonl", content, &o);
        if (rd_dataset_format(d) != cases[i].f)
            fail_msg("%s: detected %s", cases[i].line, rd_data_format_name(rd_dataset_format(d)));
        rd_dataset_free(d);
    }
}

/* ---- plain text ------------------------------------------------------------------- */

static void test_plain_text_chunks(void **state) {
    ctx *c = *state;
    const char *text = "Once upon a time, there was a little robot.\nIt liked to sing.\n"
                       "One day it met a cat — a very old cat — and they sang together.\n";
    size_t n_all = 0;
    int *all = encode(c, text, &n_all);
    rd_data_opts o = rd_data_opts_defaults();
    o.max_len = 8;
    rd_dataset *d = load_ok(c, "story.txt", text, &o);
    assert_int_equal(rd_dataset_format(d), RD_DATA_TEXT);
    size_t per = 7, n_chunks = (n_all + per - 1) / per;
    assert_int_equal(rd_dataset_size(d), n_chunks);
    uint64_t loss = 0;
    for (size_t i = 0; i < n_chunks; i++) {
        const rd_example *e = rd_dataset_get(d, i);
        size_t take = n_all - i * per < per ? n_all - i * per : per;
        assert_int_equal(e->n, (int)take + 1);
        assert_int_equal(e->ids[0], BOS);
        expect_ids(e->ids + 1, take, all + i * per, take);
        expect_loss_range(e, 1, e->n);
        assert_int_equal(e->n_prompt, 1);
        assert_string_equal(rd_dataset_prompt_text(d, i), "");
        loss += take;
    }
    assert_int_equal(rd_dataset_loss_tokens(d), loss);
    assert_int_equal(rd_dataset_truncated(d), 0);
    assert_string_equal(rd_dataset_answer_text(d, 0), "Once upon a time, there was");
    rd_dataset_free(d);

    /* the same file without the .txt name is detected as text too; so is format "text" */
    o.format = RD_DATA_TEXT;
    d = load_ok(c, "story.data", text, &o);
    assert_int_equal(rd_dataset_size(d), n_chunks);
    rd_dataset_free(d);
    free(all);
}

/* JSONL lines with "text" alone: one document each, ending with EOS. */
static void test_text_documents(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    o.max_len = 4;
    rd_dataset *d = load_ok(c, "docs.jsonl", "{\"text\": \"Hello there!\"}\n{\"text\": \"Hi\"}\n", &o);
    assert_int_equal(rd_dataset_format(d), RD_DATA_TEXT);
    /* "Hello there!" = 15043 727 29991, then EOS: chunks of 3 → [1 15043 727 29991] [1 2];
       "Hi" = 6324 → [1 6324 2] */
    assert_int_equal(rd_dataset_size(d), 3);
    static const int c0[] = {BOS, 15043, 727, 29991}, c1[] = {BOS, EOS}, c2[] = {BOS, 6324, EOS};
    expect_ids(rd_dataset_get(d, 0)->ids, (size_t)rd_dataset_get(d, 0)->n, c0, 4);
    expect_ids(rd_dataset_get(d, 1)->ids, (size_t)rd_dataset_get(d, 1)->n, c1, 2);
    expect_ids(rd_dataset_get(d, 2)->ids, (size_t)rd_dataset_get(d, 2)->n, c2, 3);
    expect_loss_range(rd_dataset_get(d, 1), 1, 2);
    rd_dataset_free(d);

    /* format "text" given explicitly reads such lines as documents too */
    o.format = RD_DATA_TEXT;
    d = load_ok(c, "docs.jsonl", "{\"text\": \"Hi\"}\n", &o);
    expect_ids(rd_dataset_get(d, 0)->ids, (size_t)rd_dataset_get(d, 0)->n, c2, 3);
    rd_dataset_free(d);
}

/* The bytes of text the scored tokens stand for: the text itself, EOS adds nothing, and
 * max_len cuts like the batches do. */
static void test_loss_bytes(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    o.max_len = 64;
    rd_dataset *d = load_ok(c, "docs.jsonl", "{\"text\": \"Hello there!\"}\n{\"text\": \"Hi\"}\n", &o);
    /* [BOS "▁Hello" "▁there" "!" EOS] and [BOS "▁Hi" EOS]: the dummy-prefix space after BOS
       is not text */
    assert_int_equal(rd_dataset_size(d), 2);
    assert_int_equal(rd_dataset_loss_bytes(d, c->tok, 64), strlen("Hello there!") + strlen("Hi"));
    /* positions 1 and 2 only: "Hello", " there" and "Hi", EOS */
    assert_int_equal(rd_dataset_loss_bytes(d, c->tok, 3), strlen("Hello there") + strlen("Hi"));
    assert_int_equal(rd_dataset_loss_bytes(d, NULL, 64), 0);
    assert_int_equal(rd_dataset_loss_bytes(NULL, c->tok, 64), 0);
    rd_dataset_free(d);

    /* an answer: only its tokens count, not the prompt's */
    d = load_ok(c, "a.jsonl",
                "{\"instruction\": \"Say hi\", \"input\": \"\", \"output\": \"Hello there!\"}\n", &o);
    assert_int_equal(rd_dataset_loss_bytes(d, c->tok, 64), strlen("Hello there!"));
    rd_dataset_free(d);

    /* text chunks: every chunk after the first starts after BOS, so the space its first
       piece carries is not counted (one byte per such chunk) */
    const char *text = "Once upon a time, there was a little robot. It liked to sing.";
    o.max_len = 8;
    d = load_ok(c, "story.txt", text, &o);
    uint64_t spaces_lost = 0;
    for (size_t i = 1; i < rd_dataset_size(d); i++) {
        size_t len = 0;
        const rd_example *e = rd_dataset_get(d, i);
        const char *piece = rd_tokenizer_piece(c->tok, e->ids[1], &len);
        if (len >= 3 && !memcmp(piece, "\xe2\x96\x81", 3)) spaces_lost++;
    }
    assert_true(spaces_lost > 0);
    assert_int_equal(rd_dataset_loss_bytes(d, c->tok, 8), strlen(text) - spaces_lost);
    rd_dataset_free(d);
}

/* ---- classification --------------------------------------------------------------- */

static void test_classification_int_labels(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    rd_dataset *d = load_ok(c, "cls.jsonl",
                            "{\"text\": \"great movie\", \"label\": 10}\n"
                            "{\"text\": \"awful\", \"label\": -1}\n"
                            "{\"text\": \"fine\", \"label\": 2}\n"
                            "{\"text\": \"superb\", \"label\": 10}\n", &o);
    assert_int_equal(rd_dataset_format(d), RD_DATA_CLASSIFICATION);
    assert_int_equal(rd_dataset_n_labels(d), 3);
    assert_string_equal(rd_dataset_label(d, 0), "-1"); /* integers sorted numerically */
    assert_string_equal(rd_dataset_label(d, 1), "2");
    assert_string_equal(rd_dataset_label(d, 2), "10");
    assert_null(rd_dataset_label(d, 3));
    static const int want_label[] = {2, 0, 1, 2};
    static const char *texts[] = {"great movie", "awful", "fine", "superb"};
    for (size_t i = 0; i < 4; i++) {
        const rd_example *e = rd_dataset_get(d, i);
        assert_int_equal(e->label, want_label[i]);
        char whole[128];
        snprintf(whole, sizeof whole, "%s\n%s", texts[i], rd_dataset_label(d, e->label));
        expect_whole_text(c, e, whole); /* the plain template */
        expect_loss_range(e, e->n_prompt, e->n);
        /* candidate k = prompt ids + label ids; the example is the true label's */
        int nl = 0;
        const int *lid = rd_dataset_label_ids(d, e->label, &nl);
        assert_int_equal(e->n_prompt + nl, e->n);
        expect_ids(e->ids + e->n_prompt, (size_t)nl, lid, (size_t)nl);
        assert_int_equal(lid[nl - 1], EOS);
        char ptext[128];
        snprintf(ptext, sizeof ptext, "%s\n", texts[i]);
        assert_string_equal(rd_dataset_prompt_text(d, i), ptext);
    }
    int nl = 0;
    assert_null(rd_dataset_label_ids(d, 5, &nl));
    rd_dataset_free(d);
}

static void test_classification_string_labels(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    o.template_name = "red";
    rd_dataset *d = load_ok(c, "cls.jsonl",
                            "{\"text\": \"a\", \"label\": \"positive\"}\n"
                            "{\"text\": \"b\", \"label\": \"negative\"}\n"
                            "{\"text\": \"c\", \"label\": \"neutral\"}\n"
                            "{\"text\": \"d\", \"label\": \"negative\"}\n", &o);
    assert_int_equal(rd_dataset_n_labels(d), 3);
    assert_string_equal(rd_dataset_label(d, 0), "positive"); /* first-seen order */
    assert_string_equal(rd_dataset_label(d, 1), "negative");
    assert_string_equal(rd_dataset_label(d, 2), "neutral");
    static const int want_label[] = {0, 1, 2, 1};
    for (size_t i = 0; i < 4; i++) assert_int_equal(rd_dataset_get(d, i)->label, want_label[i]);
    expect_whole_text(c, rd_dataset_get(d, 1), "Human: b\n\nAssistant: negative");
    int n = 0;
    const int *ids = rd_dataset_label_ids(d, 2, &n);
    size_t ne = 0;
    int *alone = encode(c, "neutral", &ne); /* after "Assistant: ": the dummy prefix */
    assert_int_equal(n, (int)ne + 1);
    expect_ids(ids, ne, alone, ne);
    free(alone);
    rd_dataset_free(d);
}

/* ---- truncation ------------------------------------------------------------------- */

static void test_truncation(void **state) {
    ctx *c = *state;
    /* red prompt "Human: What is 2+2?\n\nAssistant:" = BOS + 14 ids, answer 5 ids + EOS */
    const char *lines = "{\"prompt\": \"What is 2+2?\", \"completion\": \"It is 4.\"}\n"
                        "{\"prompt\": \"What is 2+2? Tell me, please, with all the details.\", \"completion\": \"It is 4.\"}\n"
                        "{\"prompt\": \"2+2?\", \"completion\": \"4\"}\n";
    rd_data_opts o = rd_data_opts_defaults();
    o.template_name = "red";
    o.max_len = 18; /* example 1: 21 ids → 18, answer partly kept; example 2: all prompt */
    rd_dataset *d = load_ok(c, "t.jsonl", lines, &o);
    assert_int_equal(rd_dataset_size(d), 2);
    assert_int_equal(rd_dataset_truncated(d), 2);
    assert_int_equal(rd_dataset_dropped(d), 1);
    const rd_example *e = rd_dataset_get(d, 0);
    assert_int_equal(e->n, 18);
    static const int want[] = {BOS, 12968, 29901, 1724, 338, 29871, 29906, 29974, 29906, 29973,
                               13, 13, 7900, 22137, 29901, 739, 338, 29871};
    expect_ids(e->ids, 18, want, 18);
    expect_loss_range(e, 15, 18);
    assert_true(rd_dataset_get(d, 1)->n < 18);
    char cuts[200];
    assert_string_equal(rd_dataset_cuts_text(d, 18, cuts, sizeof cuts),
                        "1 example dropped (no answer left within max length 18), "
                        "1 more truncated to max length 18");
    char tiny[12]; /* cut short, still terminated */
    assert_string_equal(rd_dataset_cuts_text(d, 18, tiny, sizeof tiny), "1 example d");
    rd_dataset_free(d);

    /* without the mask the prompt-only example still has something to learn */
    o.mask_prompt = 0;
    d = load_ok(c, "t.jsonl", lines, &o);
    assert_int_equal(rd_dataset_size(d), 3);
    assert_int_equal(rd_dataset_truncated(d), 2);
    assert_int_equal(rd_dataset_dropped(d), 0);
    assert_string_equal(rd_dataset_cuts_text(d, 18, cuts, sizeof cuts), "2 truncated to max length 18");
    e = rd_dataset_get(d, 1);
    assert_int_equal(e->n, 18);
    assert_int_equal(e->n_prompt, 18);
    expect_loss_range(e, 1, 18);
    rd_dataset_free(d);

    /* everything cut away: no examples is an error that says why */
    o.mask_prompt = 1;
    o.max_len = 4;
    expect_error(c, lines, &o, 0, "no examples");
    o.max_len = 1;
    expect_error(c, lines, &o, 0, "max_len");
}

/* ---- batches ---------------------------------------------------------------------- */

/* Expected (tokens, targets) of example e placed at flat position p of a batch. */
static void place_expected(const rd_example *e, int *tok, int *tgt, size_t p, int n) {
    for (int t = 0; t < n; t++) {
        tok[p + (size_t)t] = e->ids[t];
        tgt[p + (size_t)t] = t + 1 < e->n && e->loss[t + 1] ? e->ids[t + 1] : -1;
    }
}

static rd_dataset *batch_set(ctx *c) {
    rd_data_opts o = rd_data_opts_defaults();
    o.template_name = "red";
    /* lengths: 21, 9 ("Human: a\n\nAssistant: b" = 1+6+1+1), 21 */
    return load_ok(c, "b.jsonl",
                   "{\"prompt\": \"What is 2+2?\", \"completion\": \"It is 4.\"}\n"
                   "{\"prompt\": \"a\", \"completion\": \"b\"}\n"
                   "{\"prompt\": \"What is 2+2?\", \"completion\": \"It is 4.\"}\n", &o);
}

static void test_batch_padded(void **state) {
    ctx *c = *state;
    rd_dataset *d = batch_set(c);
    const rd_example *e0 = rd_dataset_get(d, 0), *e1 = rd_dataset_get(d, 1);
    assert_int_equal(e0->n, 21);
    int n1 = e1->n;
    assert_true(n1 < 21);
    rd_batch b = {0};
    rd_error err = {{0}};
    size_t idx[] = {1, 0};
    assert_int_equal(rd_batch_fill(&b, d, idx, 2, 64, 0, 0, &err), 0);
    assert_int_equal(b.B, 2);
    assert_int_equal(b.T, 21);
    int tok[42], tgt[42];
    for (int i = 0; i < 42; i++) tok[i] = 0, tgt[i] = -1;
    place_expected(e1, tok, tgt, 0, n1);
    place_expected(e0, tok, tgt, 21, 21);
    expect_ids(b.tokens, 42, tok, 42);
    expect_ids(b.targets, 42, tgt, 42);
    /* targets exactly: the answer ids and EOS, predicted one position earlier */
    assert_int_equal(b.targets[21 + 14], 739);
    assert_int_equal(b.targets[21 + 19], EOS);
    assert_int_equal(b.targets[21 + 20], -1);
    assert_int_equal(b.targets[21 + 13], -1);
    assert_int_equal(b.n_targets, (int)rd_dataset_loss_tokens(d) - 6);

    /* T_max shorter than an example: the row is cut, its last target still the next id */
    assert_int_equal(rd_batch_fill(&b, d, idx, 2, 17, 0, 7, &err), 0);
    assert_int_equal(b.T, 17);
    assert_int_equal(b.tokens[n1], 7); /* pad_id */
    assert_int_equal(b.targets[17 + 16], 29871); /* ids[17] of example 0 */
    assert_int_equal(b.n_targets, (n1 - e1->n_prompt) + 3);

    size_t bad[] = {3};
    assert_int_equal(rd_batch_fill(&b, d, bad, 1, 64, 0, 0, &err), -1);
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_equal(rd_batch_fill(&b, d, idx, 2, 1, 0, 0, &err), -1);
    rd_batch_release(&b);
    rd_dataset_free(d);
}

static void test_batch_packed(void **state) {
    ctx *c = *state;
    rd_dataset *d = batch_set(c);
    const rd_example *e0 = rd_dataset_get(d, 0), *e1 = rd_dataset_get(d, 1),
                     *e2 = rd_dataset_get(d, 2);
    int n1 = e1->n;
    rd_batch b = {0};
    rd_error err = {{0}};
    /* T 32: [e1 e0 | e2]: e0 fits after e1 (n1 + 21 <= 32), e2 does not */
    size_t idx[] = {1, 0, 2};
    assert_int_equal(rd_batch_fill(&b, d, idx, 3, 32, 1, 0, &err), 0);
    assert_int_equal(b.B, 2);
    assert_int_equal(b.T, 32);
    int tok[64], tgt[64];
    for (int i = 0; i < 64; i++) tok[i] = 0, tgt[i] = -1;
    place_expected(e1, tok, tgt, 0, n1);
    place_expected(e0, tok, tgt, (size_t)n1, 21);
    place_expected(e2, tok, tgt, 32, 21);
    expect_ids(b.tokens, 64, tok, 64);
    expect_ids(b.targets, 64, tgt, 64);
    assert_int_equal(b.targets[n1 - 1], -1); /* no target across examples */
    assert_int_equal(b.n_targets, (int)rd_dataset_loss_tokens(d));

    /* T 16: e0 (21) alone is longer than a row: it starts a row and runs into the next */
    assert_int_equal(rd_batch_fill(&b, d, idx, 3, 16, 1, 5, &err), 0);
    assert_int_equal(b.T, 16);
    assert_int_equal(b.B, 5); /* [e1 pad] [e0 0..15] [e0 16..20 pad] [e2 0..15] [e2 16..20 pad] */
    int tok2[80], tgt2[80];
    for (int i = 0; i < 80; i++) tok2[i] = 5, tgt2[i] = -1;
    place_expected(e1, tok2, tgt2, 0, n1);
    place_expected(e0, tok2, tgt2, 16, 21);
    place_expected(e2, tok2, tgt2, 48, 21);
    expect_ids(b.tokens, 80, tok2, 80);
    expect_ids(b.targets, 80, tgt2, 80);
    assert_int_equal(b.targets[16 + 15], e0->ids[16]); /* across the row boundary */
    assert_int_equal(b.n_targets, (int)rd_dataset_loss_tokens(d));
    rd_batch_release(&b);
    rd_dataset_free(d);
}

/* ---- split ------------------------------------------------------------------------ */

static void test_split(void **state) {
    ctx *c = *state;
    char content[4096] = "";
    for (int i = 0; i < 40; i++) {
        char line[96];
        snprintf(line, sizeof line, "{\"prompt\": \"question %d\", \"completion\": \"answer %d\"}\n", i, i);
        strcat(content, line);
    }
    rd_data_opts o = rd_data_opts_defaults();
    rd_dataset *d = load_ok(c, "s.jsonl", content, &o);
    assert_int_equal(rd_dataset_size(d), 40);
    rd_dataset *tr = NULL, *ho = NULL, *tr2 = NULL, *ho2 = NULL, *tr3 = NULL, *ho3 = NULL;
    rd_error err = {{0}};
    assert_int_equal(rd_dataset_split(d, 0.25, 7, &tr, &ho, &err), 0);
    assert_int_equal(rd_dataset_size(ho), 10);
    assert_int_equal(rd_dataset_size(tr), 30);
    assert_int_equal(rd_dataset_split(d, 0.25, 7, &tr2, &ho2, &err), 0);
    assert_int_equal(rd_dataset_split(d, 0.25, 8, &tr3, &ho3, &err), 0);
    int seen[40] = {0}, same = 1, differs = 0;
    for (size_t i = 0; i < rd_dataset_size(ho); i++) {
        int k = -1;
        sscanf(rd_dataset_answer_text(ho, i), "answer %d", &k);
        assert_true(k >= 0 && k < 40);
        seen[k] += 1;
        same &= strcmp(rd_dataset_answer_text(ho, i), rd_dataset_answer_text(ho2, i)) == 0;
        differs |= strcmp(rd_dataset_answer_text(ho, i), rd_dataset_answer_text(ho3, i)) != 0;
    }
    for (size_t i = 0; i < rd_dataset_size(tr); i++) {
        int k = -1;
        sscanf(rd_dataset_answer_text(tr, i), "answer %d", &k);
        assert_true(k >= 0 && k < 40);
        seen[k] += 2;
        const rd_example *a = rd_dataset_get(tr, i), *b = rd_dataset_get(tr2, i);
        expect_ids(a->ids, (size_t)a->n, b->ids, (size_t)b->n);
    }
    for (int k = 0; k < 40; k++) assert_true(seen[k] == 1 || seen[k] == 2); /* disjoint, whole */
    assert_true(same);    /* same seed, same split */
    assert_true(differs); /* another seed, another split */
    assert_int_equal(rd_dataset_loss_tokens(tr) + rd_dataset_loss_tokens(ho), rd_dataset_loss_tokens(d));
    rd_dataset_free(tr);
    rd_dataset_free(ho);
    rd_dataset_free(tr2);
    rd_dataset_free(ho2);
    rd_dataset_free(tr3);
    rd_dataset_free(ho3);

    /* a tiny fraction still holds out one example; a bad fraction is refused */
    assert_int_equal(rd_dataset_split(d, 0.001, 1, &tr, &ho, &err), 0);
    assert_int_equal(rd_dataset_size(ho), 1);
    rd_dataset_free(tr);
    rd_dataset_free(ho);
    assert_int_equal(rd_dataset_split(d, 1.0, 1, &tr, &ho, &err), -1);
    assert_null(tr);
    assert_int_equal(rd_dataset_split(d, NAN, 1, &tr, &ho, &err), -1);
    rd_dataset_free(d);

    /* classification parts keep the label words */
    d = load_ok(c, "s.jsonl", "{\"text\": \"x\", \"label\": \"yes\"}\n{\"text\": \"y\", \"label\": \"no\"}\n", &o);
    assert_int_equal(rd_dataset_split(d, 0.5, 3, &tr, &ho, &err), 0);
    assert_int_equal(rd_dataset_n_labels(ho), 2);
    assert_string_equal(rd_dataset_label(ho, 1), "no");
    int n = 0;
    assert_non_null(rd_dataset_label_ids(tr, 0, &n));
    assert_true(n > 1);
    rd_dataset_free(tr);
    rd_dataset_free(ho);
    rd_dataset_free(d);
}

/* ---- bad input -------------------------------------------------------------------- */

#define GOOD_PC "{\"prompt\": \"p\", \"completion\": \"c\"}\n"

static void test_bad_lines(void **state) {
    ctx *c = *state;
    rd_data_opts o = rd_data_opts_defaults();
    expect_error(c, GOOD_PC "{\"prompt\": \"p\", \"completion\": \n", &o, 2, "not valid JSON");
    expect_error(c, GOOD_PC GOOD_PC "{\"prompt\": \"p\"} x\n", &o, 3, "not valid JSON");
    expect_error(c, GOOD_PC "[1, 2]\n", &o, 2, "expected a JSON object");
    expect_error(c, GOOD_PC "\n{\"prompt\": \"p\"}\n", &o, 3, "missing \"completion\"");
    expect_error(c, GOOD_PC "{\"prompt\": \"p\", \"completion\": 5}\n", &o, 2,
                 "\"completion\" must be a string, not a number");
    expect_error(c, "{\"instruction\": \"i\", \"output\": \"o\"}\n{\"instruction\": \"i\", \"output\": 3}\n",
                 &o, 2, "\"output\" must be a string");
    expect_error(c, "{\"instruction\": \"i\", \"output\": \"o\"}\n{\"instruction\": \"i\", \"input\": [], \"output\": \"o\"}\n",
                 &o, 2, "\"input\" must be a string");
    expect_error(c, "", &o, 0, "empty file");
    expect_error(c, "\n\n  \n", &o, 0, "empty file");
    o.template_name = "llama2-chat";
    expect_error(c, "{\"messages\": []}\n", &o, 1, "\"messages\" is empty");
    expect_error(c, "{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}]}\n", &o, 1,
                 "no assistant answer");
    expect_error(c, "{\"messages\": \"hi\"}\n", &o, 1, "\"messages\" must be an array");
    expect_error(c, "{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"bot\", \"content\": \"a\"}]}\n",
                 &o, 1, "unknown role");
    expect_error(c, "{\"messages\": [{\"role\": \"assistant\", \"content\": \"a\"}]}\n", &o, 1,
                 "expected role \"user\", found \"assistant\"");
    expect_error(c, "{\"messages\": [{\"role\": \"user\", \"content\": 1}]}\n", &o, 1,
                 "content must be a string");
    expect_error(c, "{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"system\", \"content\": \"s\"}]}\n",
                 &o, 1, "system message must come first");
    o.template_name = NULL;
    expect_error(c, "{\"prompt\": \"p\", \"chosen\": [{\"role\": \"user\", \"content\": \"u\"}]}\n", &o, 1,
                 "no assistant message");
    expect_error(c, "{\"text\": \"t\", \"label\": 1.5}\n", &o, 1, "\"label\" must be a string or an integer");
    expect_error(c, "{\"text\": \"t\", \"label\": true}\n", &o, 1, "\"label\" must be a string or an integer");
    expect_error(c, "{\"text\": \"t\", \"label\": 1}\n{\"text\": \"u\", \"label\": \"one\"}\n", &o, 2,
                 "earlier labels are integers");
    expect_error(c, "{\"text\": \"t\", \"label\": \"\"}\n", &o, 1, "\"label\" is empty");
    expect_error(c, "{\"foo\": 1}\n", &o, 1, "cannot tell the data format");
    expect_error(c, "{\"foo\": 1\n", &o, 1, "not valid JSON"); /* starts like JSONL */
    o.format = RD_DATA_ALPACA;
    expect_error(c, GOOD_PC, &o, 1, "missing \"instruction\"");
    o.format = RD_DATA_AUTO;

    /* invalid UTF-8 inside a JSON string, and in a plain-text file */
    const char bad_utf8[] = GOOD_PC "{\"prompt\": \"caf\xC3\", \"completion\": \"c\"}\n";
    expect_error_bytes(c, bad_utf8, sizeof bad_utf8 - 1, &o, 2, "\"prompt\": invalid UTF-8");
    const char bad_text[] = "line one\nline two \xFF\xFE\nline three\n";
    o.format = RD_DATA_TEXT;
    expect_error_bytes(c, bad_text, sizeof bad_text - 1, &o, 2, "invalid UTF-8");
    o.format = RD_DATA_AUTO;
    /* an escaped lone surrogate is not valid JSON for cJSON */
    expect_error(c, GOOD_PC "{\"prompt\": \"\\ud800\", \"completion\": \"c\"}\n", &o, 2, "not valid JSON");

    const char nul_line[] = GOOD_PC "{\"prompt\": \"p\", \"completion\": \"c\"}\0\n";
    expect_error_bytes(c, nul_line, sizeof nul_line - 1, &o, 2, "NUL byte");

    /* a missing file */
    rd_error err = {{0}};
    assert_null(rd_dataset_load("/nonexistent/dir/x.jsonl", c->tok, &o, &err));
    assert_non_null(strstr(err.msg, "/nonexistent/dir/x.jsonl: cannot open"));
}

/* A line over 64 MiB is refused (or skipped) without reading it into memory whole. */
static void test_line_too_long(void **state) {
    ctx *c = *state;
    size_t big = ((size_t)64 << 20) + 16;
    char *data = malloc(big + 200);
    assert_non_null(data);
    size_t n = 0;
    n += (size_t)sprintf(data + n, GOOD_PC);
    n += (size_t)sprintf(data + n, "{\"prompt\": \"");
    memset(data + n, 'a', big);
    n += big;
    n += (size_t)sprintf(data + n, "\", \"completion\": \"c\"}\n" GOOD_PC);
    rd_data_opts o = rd_data_opts_defaults();
    expect_error_bytes(c, data, n, &o, 2, "line longer than 64 MiB");
    o.skip_bad_lines = 1;
    write_bytes(c, "big.jsonl", data, n);
    free(data);
    rd_error err = {{0}};
    rd_dataset *d = rd_dataset_load(c->path, c->tok, &o, &err);
    if (!d) fail_msg("%s", err.msg);
    assert_int_equal(rd_dataset_size(d), 2);
    assert_int_equal(rd_dataset_skipped(d), 1);
    rd_dataset_free(d);
}

/* The line cap names itself and its override, REDIT_MAX_LINE_BYTES, which raises or lowers
 * it; a malformed override is refused naming the variable. */
static void test_line_cap_override(void **state) {
    ctx *c = *state;
    char line[2200];
    int k = snprintf(line, sizeof line, "{\"prompt\": \"p\", \"completion\": \"");
    memset(line + k, 'a', 2000);
    snprintf(line + k + 2000, sizeof line - (size_t)k - 2000, "\"}\n");
    rd_data_opts o = rd_data_opts_defaults();
    setenv("REDIT_MAX_LINE_BYTES", "1K", 1);
    expect_error(c, line, &o, 1, "line longer than 1 KiB (the limit; the environment variable "
                                 "REDIT_MAX_LINE_BYTES raises it");
    setenv("REDIT_MAX_LINE_BYTES", "4K", 1);
    rd_dataset *d = load_ok(c, "cap.jsonl", line, &o);
    assert_int_equal(rd_dataset_size(d), 1);
    rd_dataset_free(d);
    setenv("REDIT_MAX_LINE_BYTES", "12x", 1);
    expect_error(c, line, &o, 0, "REDIT_MAX_LINE_BYTES=\"12x\": expected a positive number");
    unsetenv("REDIT_MAX_LINE_BYTES");
    d = load_ok(c, "cap.jsonl", line, &o);
    rd_dataset_free(d);
}

/* Peak memory of loading one 8 MB Alpaca line, measured in a child process (ru_maxrss):
 * within 4x the line (the line, its cJSON tree and the record's copy are not all kept while
 * the text is tokenized; before, 37x). */
static void test_long_line_memory(void **state) {
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer's redzones and quarantine are not the program's memory */
    fprintf(stderr, "SKIPPED: %s measures peak memory, which the AddressSanitizer build "
                    "inflates; it runs in the normal build\n", __func__);
    skip();
#endif
    ctx *c = *state;
    const char *words = "Once upon a time there was a little llama named Lily who liked "
                        "to read. ";
    size_t wl = strlen(words), big = (size_t)8 << 20, n = 0;
    char *data = malloc(big + 256);
    assert_non_null(data);
    n += (size_t)sprintf(data + n, "{\"instruction\": \"Summarize.\", \"output\": \"");
    for (size_t end = n + big; n + wl <= end; n += wl) memcpy(data + n, words, wl);
    n += (size_t)sprintf(data + n, "\"}\n");
    write_bytes(c, "long.jsonl", data, n);
    free(data);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rusage before, after;
        getrusage(RUSAGE_SELF, &before);
        rd_error err = {{0}};
        rd_data_opts o = rd_data_opts_defaults();
        rd_dataset *d = rd_dataset_load(c->path, c->tok, &o, &err);
        getrusage(RUSAGE_SELF, &after);
        long grew_kb = after.ru_maxrss - before.ru_maxrss;
        fprintf(stderr, "loading a line of %zu bytes: peak memory grew by %ld KB\n", n, grew_kb);
        if (!d) {
            fprintf(stderr, "%s\n", err.msg);
            _exit(2);
        }
        _exit(rd_dataset_size(d) == 1 && grew_kb * 1024 <= (long)(4 * n) ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_skip_bad_lines(void **state) {
    ctx *c = *state;
    const char data[] = GOOD_PC
        "{\"prompt\": \"p\", \"completion\": 5}\n"
        "not json\n"
        "{\"prompt\": \"caf\xC3\", \"completion\": \"c\"}\n"
        "{\"prompt\": \"q\", \"completion\": \"d\"}\n";
    rd_data_opts o = rd_data_opts_defaults();
    o.skip_bad_lines = 1;
    write_bytes(c, "skip.jsonl", data, sizeof data - 1);
    rd_error err = {{0}};
    rd_dataset *d = rd_dataset_load(c->path, c->tok, &o, &err);
    if (!d) fail_msg("%s", err.msg);
    assert_int_equal(rd_dataset_size(d), 2);
    assert_int_equal(rd_dataset_skipped(d), 3);
    char cuts[100];
    assert_string_equal(rd_dataset_cuts_text(d, 512, cuts, sizeof cuts), "3 bad lines skipped");
    assert_string_equal(rd_dataset_cuts_text(NULL, 512, cuts, sizeof cuts), "");
    assert_string_equal(rd_dataset_answer_text(d, 1), "d");
    rd_dataset_free(d);

    /* every line bad: no examples, and the message counts them */
    expect_error(c, "{\"prompt\": 1, \"completion\": 2}\n{\"prompt\": 1, \"completion\": 2}\n", &o, 0,
                 "no examples (2 bad lines skipped");
    /* plain text: the line with invalid UTF-8 is left out */
    const char bad_text[] = "line one\nline two \xFF\nline three\n";
    o.format = RD_DATA_TEXT;
    write_bytes(c, "skip.txt", bad_text, sizeof bad_text - 1);
    d = rd_dataset_load(c->path, c->tok, &o, &err);
    if (!d) fail_msg("%s", err.msg);
    assert_int_equal(rd_dataset_skipped(d), 1);
    assert_string_equal(rd_dataset_answer_text(d, 0), "line one\nline three\n");
    rd_dataset_free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        cmocka_unit_test(test_format_names),
        T(test_alpaca_exact),
        T(test_red_exact),
        T(test_llama2_chat_multi_turn),
        T(test_alpaca_input_and_system),
        T(test_ultrafeedback),
        T(test_plain_and_custom_templates),
        T(test_auto_detection),
        T(test_plain_text_chunks),
        T(test_text_documents),
    T(test_loss_bytes),
        T(test_classification_int_labels),
        T(test_classification_string_labels),
        T(test_truncation),
        T(test_batch_padded),
        T(test_batch_packed),
        T(test_split),
        T(test_bad_lines),
        T(test_line_too_long),
        T(test_line_cap_override),
        T(test_long_line_memory),
        T(test_skip_bad_lines),
#undef T
    };
    return cmocka_run_group_tests_name("dataset", tests, group_setup, group_teardown) ? 1 : 0;
}
