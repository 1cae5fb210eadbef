/* Chat conversations (chat_format.h) with the real Llama-2 tokenizer: prompt ids of a
 * multi-turn conversation against SentencePiece's ids and against the data layer's ids for
 * the same messages as a chat example (every built-in template and a custom one), where
 * the system text goes, bad input; the turn-start text of each template; and the reply
 * filter (stop text split at every byte, held prefixes that do not complete, whitespace). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/chat_format.h"
#include "redit/dataset.h"
#include "redit/tokenizer.h"
#include "helpers/tiny_model.h"

#define LLAMA2_VOCAB 32000
#define BOS 1
#define EOS 2
#define N(a) (sizeof(a) / sizeof((a)[0]))

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

static void expect_ids(const int *got, size_t n_got, const int *want, size_t n_want) {
    int same = n_got == n_want && (n_want == 0 || memcmp(got, want, n_want * sizeof *got) == 0);
    if (!same) {
        print_message("  want (%zu):", n_want);
        for (size_t i = 0; i < n_want; i++) print_message(" %d", want[i]);
        print_message("\n  got  (%zu):", n_got);
        for (size_t i = 0; i < n_got; i++) print_message(" %d", got[i]);
        print_message("\n");
    }
    assert_true(same);
}

static int *prompt_ok(const rd_tokenizer *tok, const char *tmpl, const char *system,
                      const rd_chat_exchange *past, size_t n_past, const char *user, size_t *n) {
    rd_error err = {{0}};
    int *ids = NULL;
    if (rd_chat_prompt_ids(tok, tmpl, system, past, n_past, user, &ids, n, &err) < 0)
        fail_msg("rd_chat_prompt_ids: %s", err.msg);
    return ids;
}

/* Ids SentencePiece 0.1.97 gives (the data set suite's llama2-chat case): system "Be
 * brief.", "Hi" answered "Hello!", then the prompt for "Bye". */
static void test_llama2_chat_exact(void **state) {
    const rd_tokenizer *tok = *state;
    static const int want[] = {
        BOS, 518, 25580, 29962, 3532, 14816, 29903, 6778, 13, 3629, 11473, 29889, 13, 29966, 829,
        14816, 29903, 6778, 13, 13, 18567, 518, 29914, 25580, 29962, 15043, 29991, EOS,
        BOS, 518, 25580, 29962, 2648, 29872, 518, 29914, 25580, 29962};
    rd_chat_exchange past[] = {{"Hi", "Hello!"}};
    size_t n = 0;
    int *ids = prompt_ok(tok, "llama2-chat", "Be brief.", past, 1, "Bye", &n);
    expect_ids(ids, n, want, N(want));
    free(ids);
    /* NULL template: llama2-chat */
    ids = prompt_ok(tok, NULL, "Be brief.", past, 1, "Bye", &n);
    expect_ids(ids, n, want, N(want));
    free(ids);
    /* the first turn alone: BOS + the turn's prompt (the system block in it), no EOS */
    ids = prompt_ok(tok, "llama2-chat", "Be brief.", NULL, 0, "Hi", &n);
    expect_ids(ids, n, want, 25);
    free(ids);
    /* no <<SYS>> block without a system text: "[INST] Bye [/INST]" */
    ids = prompt_ok(tok, "llama2-chat", "", NULL, 0, "Bye", &n);
    expect_ids(ids, n, want + 28, N(want) - 28);
    free(ids);
}

/* Writes a chat JSONL line with the system text, the exchanges and a last exchange
 * (user, answer) and loads it with template tmpl. */
static rd_dataset *load_chat(const rd_tokenizer *tok, const char *dir, const char *tmpl,
                             const char *system, const rd_chat_exchange *turns, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/chat.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"messages\": [");
    if (system) fprintf(f, "{\"role\": \"system\", \"content\": \"%s\"}, ", system);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s{\"role\": \"user\", \"content\": \"%s\"}, "
                   "{\"role\": \"assistant\", \"content\": \"%s\"}",
                i ? ", " : "", turns[i].user, turns[i].assistant);
    fprintf(f, "]}\n");
    assert_int_equal(fclose(f), 0);
    rd_data_opts o = rd_data_opts_defaults();
    o.template_name = tmpl;
    o.max_len = 4096;
    rd_error err = {{0}};
    rd_dataset *d = rd_dataset_load(path, tok, &o, &err);
    if (!d) fail_msg("loading %s: %s", path, err.msg);
    return d;
}

/* The prompt ids equal the data layer's ids of the same conversation up to the last answer. */
static void test_same_ids_as_training(void **state) {
    const rd_tokenizer *tok = *state;
    char dir[256];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    static const rd_chat_exchange conv[] = {
        {"What is 2+2?", "It is 4."},
        {"And times three?", "Twelve, since 4 x 3 = 12."},
        {"Thanks! Bye now.", "Goodbye."}};
    const char *templates[] = {"llama2-chat", "red", "plain", "alpaca",
                               "### User: {prompt}\\n### Bot: {answer}"};
    const char *custom = "### User: {prompt}\n### Bot: {answer}";
    for (size_t k = 0; k < N(templates); k++) {
        for (int with_sys = 0; with_sys < 2; with_sys++) {
            const char *sys = with_sys ? "You are terse." : NULL;
            rd_dataset *d = load_chat(tok, dir, k == 4 ? custom : templates[k], sys, conv, 3);
            const rd_example *e = rd_dataset_get(d, 0);
            assert_non_null(e);
            size_t n = 0;
            int *ids = prompt_ok(tok, k == 4 ? custom : templates[k], sys, conv, 2, conv[2].user, &n);
            print_message("  %s%s: %zu prompt ids\n", templates[k], sys ? " + system" : "", n);
            expect_ids(ids, n, e->ids, (size_t)e->n_prompt);
            free(ids);
            rd_dataset_free(d);
        }
    }
    tiny_rmdir(dir);
}

static void test_bad_input(void **state) {
    const rd_tokenizer *tok = *state;
    rd_error err = {{0}};
    int *ids = (int *)&err; /* must be reset to NULL on failure */
    size_t n = 7;
    assert_int_equal(rd_chat_prompt_ids(tok, "no-such-template", NULL, NULL, 0, "hi", &ids, &n, &err), -1);
    assert_null(ids);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err.msg, "chat: template \"no-such-template\""));
    rd_chat_exchange half[] = {{"hi", NULL}};
    err = (rd_error){{0}};
    assert_int_equal(rd_chat_prompt_ids(tok, "red", NULL, half, 1, "again", &ids, &n, &err), -1);
    assert_non_null(strstr(err.msg, "exchange 1"));
    err = (rd_error){{0}};
    assert_int_equal(rd_chat_prompt_ids(tok, "red", NULL, NULL, 0, NULL, &ids, &n, &err), -1);
    assert_true(err.msg[0] != '\0');
    err = (rd_error){{0}};
    assert_null(rd_chat_turn_start("{answer} before {prompt}", &err));
    assert_non_null(strstr(err.msg, "chat: template"));
}

static void expect_turn_start(const char *tmpl, const char *want) {
    rd_error err = {{0}};
    char *s = rd_chat_turn_start(tmpl, &err);
    if (!s) fail_msg("%s: %s", tmpl, err.msg);
    assert_string_equal(s, want);
    free(s);
}

static void test_turn_start(void **state) {
    (void)state;
    expect_turn_start("llama2-chat", "[INST]");
    expect_turn_start(NULL, "[INST]");
    expect_turn_start("red", "Human:");
    expect_turn_start("plain", "");
    expect_turn_start("alpaca", "Below is an instruction that describes a task. Write a response "
                                "that appropriately completes the request.\n\n### Instruction:");
    expect_turn_start("\n  ### User: {prompt}\n### Bot: {answer}", "### User:");
    expect_turn_start("<{system}> Q: {prompt} A: {answer}", "<> Q:");
}

/* Pushes text in pieces of `step` bytes (0: all at once); returns what was shown, the last
 * push's result in *rc. */
static char *feed(rd_chat_filter *f, const char *text, size_t step, int finish, int *rc) {
    size_t len = strlen(text), n_out = 0;
    char *out = calloc(len + 1, 1);
    assert_non_null(out);
    *rc = 0;
    for (size_t at = 0; at < len;) {
        size_t take = step && step < len - at ? step : len - at;
        const char *show;
        size_t n_show;
        *rc = rd_chat_filter_push(f, text + at, take, &show, &n_show);
        assert_true(*rc >= 0);
        assert_true(n_out + n_show <= len);
        memcpy(out + n_out, show, n_show);
        n_out += n_show;
        at += take;
    }
    if (finish) {
        const char *show;
        size_t n_show;
        rd_chat_filter_finish(f, &show, &n_show);
        memcpy(out + n_out, show, n_show);
        n_out += n_show;
    }
    out[n_out] = '\0';
    return out;
}

static void expect_filtered(const char *stop, const char *text, const char *want, int stopped) {
    rd_chat_filter *f = rd_chat_filter_new(stop);
    assert_non_null(f);
    size_t len = strlen(text);
    for (size_t step = 0; step <= len; step++) {
        rd_chat_filter_reset(f);
        int rc;
        char *got = feed(f, text, step, 1, &rc);
        if (strcmp(got, want) != 0)
            fail_msg("stop \"%s\", text \"%s\" in pieces of %zu: shown \"%s\", want \"%s\"", stop,
                     text, step, got, want);
        assert_string_equal(rd_chat_filter_reply(f), want);
        assert_int_equal(rd_chat_filter_stopped(f), stopped);
        assert_int_equal(rc, stopped);
        free(got);
    }
    rd_chat_filter_free(f);
}

static void test_filter(void **state) {
    (void)state;
    expect_filtered("Human:", "  Hello there!\n\nHuman: and more", "Hello there!", 1);
    expect_filtered("[INST]", " Sure. [INST] next", "Sure.", 1);
    expect_filtered("[INST]", " a [IN] b [INS", "a [IN] b [INS", 0);
    expect_filtered("[INST]", "[INST] at once", "", 1);
    expect_filtered("[INST]", "x\n\n", "x", 0);
    expect_filtered("", "  keep [INST] all \n", "keep [INST] all", 0);
    expect_filtered(NULL, "\n\n", "", 0);
    expect_filtered("aab", "aaab tail", "a", 1); /* the match after a false start */

    /* text is shown as soon as nothing after it can change it */
    rd_chat_filter *f = rd_chat_filter_new("Human:");
    assert_non_null(f);
    const char *show;
    size_t n;
    assert_int_equal(rd_chat_filter_push(f, " One", 4, &show, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(show, "One", 3);
    assert_int_equal(rd_chat_filter_push(f, " two\n", 5, &show, &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(show, " two", 4); /* the newline is held */
    assert_int_equal(rd_chat_filter_push(f, "Hu", 2, &show, &n), 0);
    assert_int_equal(n, 0);
    assert_string_equal(rd_chat_filter_reply(f), "One two");
    assert_int_equal(rd_chat_filter_push(f, "go", 2, &show, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(show, "\nHugo", 5);
    assert_int_equal(rd_chat_filter_push(f, "\nHuman:", 7, &show, &n), 1);
    assert_int_equal(n, 0); /* the newline before the stop text is dropped */
    assert_string_equal(rd_chat_filter_reply(f), "One two\nHugo");
    assert_int_equal(rd_chat_filter_push(f, "later", 5, &show, &n), 1);
    assert_int_equal(n, 0);
    rd_chat_filter_reset(f);
    assert_string_equal(rd_chat_filter_reply(f), "");
    assert_int_equal(rd_chat_filter_stopped(f), 0);
    rd_chat_filter_free(f);
    rd_chat_filter_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2_chat_exact),
        cmocka_unit_test(test_same_ids_as_training),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_turn_start),
        cmocka_unit_test(test_filter),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
