/* Multiple-choice items and their scoring: the three input styles load into the contexts
 * and choices lm-evaluation-harness builds; malformed files are refused naming the file and
 * line; McNemar's exact test and the stderr on known numbers; and rd_mc_score's
 * log-likelihoods, acc and acc_norm against log-probabilities computed here independently
 * (one teacher-forced rd_forward of each whole row, B = 1, no shared prefill) on the bundled
 * model. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"
#include "redit/forward.h"
#include "redit/mc.h"
#include "redit/mc_eval.h"
#include "redit/model.h"
#include "redit/tokenizer.h"
#include "redit/train.h"
#include "tiny_model.h"

static char g_dir[512];

static const char *write_file(const char *name, const char *text) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int group_setup(void **state) {
    (void)state;
    return tiny_tempdir(g_dir, sizeof g_dir);
}

static int group_teardown(void **state) {
    (void)state;
    tiny_rmdir(g_dir);
    return 0;
}

static void test_plain(void **state) {
    (void)state;
    const char *p = write_file("plain.jsonl",
                               "{\"context\": \"2 + 2 =\", \"choices\": [\" 4\", \" five\"], \"gold\": 0}\n"
                               "\n"
                               "{\"context\": \"Der Bär\", \"choices\": [\" läuft\", \" x\", \" yz\"], \"gold\": 2}\n");
    rd_error err = {0};
    rd_mc_set *s = rd_mc_load(p, &err);
    assert_non_null(s);
    assert_int_equal(rd_mc_style_of(s), RD_MC_PLAIN);
    assert_int_equal(rd_mc_size(s), 2);
    assert_int_equal(rd_mc_max_choices(s), 3);
    const rd_mc_item *a = rd_mc_get(s, 0), *b = rd_mc_get(s, 1);
    assert_string_equal(a->context, "2 + 2 =");
    assert_string_equal(a->choices[1], " five");
    assert_int_equal(a->norm_len[1], 5); /* the choice as given, its space included */
    assert_int_equal(a->gold, 0);
    assert_int_equal(b->line, 3);
    assert_int_equal(b->norm_len[0], 6); /* characters, not bytes: " läuft" */
    assert_int_equal(b->gold, 2);
    assert_true(rd_mc_sniff(p));
    /* slices: a share of the items, borrowing their text (freed alone, the set still whole) */
    rd_mc_set *t = rd_mc_slice(s, 1, 2, &err);
    assert_non_null(t);
    assert_int_equal(rd_mc_size(t), 1);
    assert_ptr_equal(rd_mc_get(t, 0)->context, b->context);
    assert_int_equal(rd_mc_get(t, 0)->line, 3);
    assert_int_equal(rd_mc_max_choices(t), 3);
    assert_string_equal(rd_mc_path(t), rd_mc_path(s));
    rd_mc_free(t);
    t = rd_mc_slice(s, 0, 1, &err);
    assert_int_equal(rd_mc_max_choices(t), 2);
    rd_mc_free(t);
    assert_null(rd_mc_slice(s, 1, 3, &err));
    assert_non_null(strstr(err.msg, "plain.jsonl"));
    assert_string_equal(rd_mc_get(s, 1)->choices[0], " läuft");
    rd_mc_free(s);
}

static void test_arc(void **state) {
    (void)state;
    const char *p = write_file(
        "arc.jsonl",
        "{\"id\": \"q1\", \"question\": \"Which is a gas?\", \"choices\": {\"text\": [\"ice\", "
        "\"steam\", \"rock\"], \"label\": [\"A\", \"B\", \"C\"]}, \"answerKey\": \"B\"}\n"
        "{\"question\": \"Pick 4\", \"choices\": {\"text\": [\"3\", \"4\", \"5\", \"6\"], "
        "\"label\": [\"1\", \"2\", \"3\", \"4\"]}, \"answerKey\": \"2\"}\n");
    rd_error err = {0};
    rd_mc_set *s = rd_mc_load(p, &err);
    assert_non_null(s);
    assert_int_equal(rd_mc_style_of(s), RD_MC_ARC);
    const rd_mc_item *a = rd_mc_get(s, 0);
    assert_string_equal(a->context, "Question: Which is a gas?\nAnswer:");
    assert_string_equal(a->choices[1], " steam");
    assert_int_equal(a->norm_len[1], 5); /* the text without the delimiter */
    assert_int_equal(a->gold, 1);
    assert_int_equal(rd_mc_get(s, 1)->gold, 1);
    assert_int_equal(rd_mc_get(s, 1)->n_choices, 4);
    rd_mc_free(s);
}

static void test_hellaswag(void **state) {
    (void)state;
    const char *p = write_file(
        "hs.jsonl",
        "{\"activity_label\": \"Removing ice from car\", \"ctx_a\": \"Then, the man writes "
        "over the snow.\", \"ctx_b\": \"then\", \"ctx\": \"ignored\", \"endings\": [\", the man "
        "[title] leaves.  \", \" he stops [step] now\"], \"label\": \"1\"}\n"
        "{\"ctx\": \"  A cat sits.  \", \"endings\": [\"It sleeps.\", \"It runs.\", \"It eats.\"], "
        "\"label\": 0}\n");
    rd_error err = {0};
    rd_mc_set *s = rd_mc_load(p, &err);
    assert_non_null(s);
    assert_int_equal(rd_mc_style_of(s), RD_MC_HELLASWAG);
    const rd_mc_item *a = rd_mc_get(s, 0), *b = rd_mc_get(s, 1);
    assert_string_equal(a->context, "Removing ice from car: Then, the man writes over the snow. Then");
    assert_string_equal(a->choices[0], " , the man. leaves.");
    assert_string_equal(a->choices[1], " he stops now");
    assert_int_equal(a->norm_len[1], 12);
    assert_int_equal(a->gold, 1);
    assert_string_equal(b->context, "A cat sits.");
    assert_string_equal(b->choices[2], " It eats.");
    assert_int_equal(b->gold, 0);
    rd_mc_free(s);
}

/* The file must be refused with a message holding every one of the words. */
static void expect_refused(const char *name, const char *text, const char *w1, const char *w2) {
    const char *p = write_file(name, text);
    rd_error err = {0};
    rd_mc_set *s = rd_mc_load(p, &err);
    if (s) fail_msg("%s loaded", name);
    if (!strstr(err.msg, name) || !strstr(err.msg, w1) || (w2 && !strstr(err.msg, w2)))
        fail_msg("%s: message \"%s\" lacks the file, \"%s\" or \"%s\"", name, err.msg, w1,
                 w2 ? w2 : "");
}

static void test_bad_files(void **state) {
    (void)state;
    expect_refused("unknown.jsonl", "{\"instruction\": \"x\", \"output\": \"y\"}\n", "line 1",
                   "not a multiple-choice item");
    expect_refused("mixed.jsonl",
                   "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": 1}\n"
                   "{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": 0}\n",
                   "line 2", "context/choices/gold");
    expect_refused("range.jsonl",
                   "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": 0}\n\n"
                   "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": 2}\n",
                   "line 3", "out of range");
    expect_refused("one.jsonl", "{\"context\": \"a\", \"choices\": [\" b\"], \"gold\": 0}\n",
                   "line 1", "2 to 64");
    expect_refused("type.jsonl", "{\"context\": \"a\", \"choices\": [\" b\", 3], \"gold\": 0}\n",
                   "line 1", "\"choices\"[1]");
    expect_refused("json.jsonl", "{\"context\": \"a\", \"choices\": [\n", "line 1", "JSON");
    expect_refused("key.jsonl",
                   "{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": "
                   "[\"A\", \"B\"]}, \"answerKey\": \"E\"}\n",
                   "line 1", "answerKey");
    expect_refused("hslabel.jsonl", "{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": \"x\"}\n",
                   "line 1", "label");
    expect_refused("empty.jsonl", "\n\n", "no items", NULL);
    rd_error err = {0};
    assert_null(rd_mc_load("/nonexistent/mc.jsonl", &err));
    assert_non_null(strstr(err.msg, "/nonexistent/mc.jsonl"));
    assert_false(rd_mc_sniff(write_file("alpaca.jsonl", "{\"instruction\": \"x\", \"output\": \"y\"}\n")));
}

static void test_mcnemar(void **state) {
    (void)state;
    /* P(X ≤ 1 | n = 10) = 11/1024, doubled */
    assert_true(fabs(rd_mcnemar_exact(1, 9) - 22.0 / 1024) < 1e-12);
    assert_true(fabs(rd_mcnemar_exact(9, 1) - 22.0 / 1024) < 1e-12);
    /* n = 15, k = 3: 2 (1 + 15 + 105 + 455) / 32768 */
    assert_true(fabs(rd_mcnemar_exact(12, 3) - 1152.0 / 32768) < 1e-12);
    assert_true(rd_mcnemar_exact(0, 0) == 1.0);
    assert_true(rd_mcnemar_exact(5, 5) == 1.0);
    assert_true(fabs(rd_mcnemar_exact(0, 6) - 2.0 / 64) < 1e-12);
    /* the sample std (n − 1) of 0/1 scores over √n: 1 right of 4 gives sqrt(.25·.75/3) */
    assert_true(fabs(rd_mc_stderr(1, 4) - 0.25) < 1e-12);
    assert_true(isnan(rd_mc_stderr(1, 1)));
    /* the paired loss difference: x = b − a = (−0.5, 0.5, −1), 4 tokens, D = −0.25,
     * residuals x − D·count = (−0.25, 1, −0.75) */
    const double a[] = {1, 2, 3}, b[] = {0.5, 2.5, 2};
    const int c[] = {1, 2, 1};
    double d;
    const double se = rd_paired_loss_stderr(a, b, c, 3, &d);
    assert_true(fabs(d + 0.25) < 1e-15);
    assert_true(fabs(se - sqrt((0.0625 + 1 + 0.5625) * 3 / 2) / 4) < 1e-15);
}

/* log-softmax(z)[id] */
static double lp_of(const float *z, int V, int id) {
    double mx = z[0], s = 0;
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    for (int v = 0; v < V; v++) s += exp(z[v] - mx);
    return z[id] - mx - log(s);
}

/* The harness's log-likelihood of choice k of item it, computed with a whole-row forward
 * pass: ids = [BOS] + enc(rstrip(context)) + (whole)[len(ctx):], the oldest context tokens
 * after the BOS left out when the context and the item's longest continuation exceed
 * max_len. */
static double independent_loglik(const rd_model *m, const rd_mc_item *it, int k, int max_len) {
    const rd_tokenizer *tok = rd_model_tokenizer(m);
    rd_error err = {0};
    size_t ce = strlen(it->context);
    while (ce && isspace((unsigned char)it->context[ce - 1])) ce--;
    char *text = malloc(strlen(it->context) + strlen(it->choices[k]) + 1);
    strcpy(text, it->context);
    strcat(text, it->choices[k]);
    int *ctx, *whole;
    size_t nc, nw;
    assert_int_equal(rd_tokenizer_encode(tok, it->context, ce, 1, 0, &ctx, &nc, &err), 0);
    assert_int_equal(rd_tokenizer_encode(tok, text, strlen(text), 1, 0, &whole, &nw, &err), 0);
    assert_true(nw > nc);
    size_t longest = 0; /* the item's longest continuation: its choices share one context */
    for (int c = 0; c < it->n_choices; c++) {
        int *w;
        size_t n;
        rd_buf b = {0};
        rd_buf_puts(&b, it->context);
        rd_buf_puts(&b, it->choices[c]);
        assert_int_equal(rd_tokenizer_encode(tok, b.data, b.len, 1, 0, &w, &n, &err), 0);
        longest = n - nc > longest ? n - nc : longest;
        free(w);
        rd_buf_free(&b);
    }
    size_t drop = nc + longest - 1 > (size_t)max_len ? nc + longest - 1 - (size_t)max_len : 0;
    int *ids = malloc(sizeof *ids * (nw + 1));
    size_t n = 0;
    ids[n++] = ctx[0];
    for (size_t j = 1 + drop; j < nc; j++) ids[n++] = ctx[j];
    const size_t nctx = n;
    for (size_t j = nc; j < nw; j++) ids[n++] = whole[j];
    const int V = rd_model_config(m)->vocab_size, T = (int)n - 1;
    float *logits = malloc(sizeof *logits * (size_t)T * V);
    rd_ctx *c = rd_ctx_new(m, 1, T, &err);
    assert_non_null(c);
    assert_int_equal(rd_forward(c, NULL, ids, 1, T, RD_LOGITS_ALL, logits, &err), 0);
    double ll = 0;
    for (size_t j = nctx; j < n; j++) ll += lp_of(logits + (j - 1) * V, V, ids[j]);
    rd_ctx_free(c);
    free(logits);
    free(ids);
    free(ctx);
    free(whole);
    free(text);
    return ll;
}

static void test_score_against_teacher_forcing(void **state) {
    (void)state;
    rd_error err = {0};
    rd_model *m = rd_model_load("models/redit-base.gguf", NULL, &err);
    if (!m) fail_msg("%s", err.msg);
    /* hand-made: a trailing space moved to the choices (item 2), choices of very different
     * lengths so that acc and acc_norm part ways, 2 to 4 choices, and a long context */
    const char *p = write_file(
        "score.jsonl",
        "{\"context\": \"Human: Define the word fellow.\\n\\nAssistant:\", \"choices\": [\" A "
        "boy or man.\", \" Wetness caused by water.\", \" In a way that was not expected and "
        "that nobody could have foreseen at all.\"], \"gold\": 0}\n"
        "{\"context\": \"The whale swam in the \", \"choices\": [\"sea\", \"desert of the "
        "south\"], \"gold\": 1}\n"
        "{\"context\": \"Call me\", \"choices\": [\" Ishmael.\", \" a taxi, please, now.\", \" "
        "x\", \" Ahab, the captain of the ship\"], \"gold\": 3}\n"
        "{\"context\": \"It was the best of times, it was the worst of times, it was the age "
        "of wisdom, it was the age of foolishness, it was the epoch of belief\", \"choices\": "
        "[\", it was\", \" and then\", \".\"], \"gold\": 0}\n");
    rd_mc_set *s = rd_mc_load(p, &err);
    assert_non_null(s);
    for (int pass = 0; pass < 2; pass++) {
        const int max_len = pass ? 24 : 256; /* 24: long contexts lose their oldest tokens */
        rd_mc_scores r;
        if (rd_mc_score(m, NULL, s, max_len, NULL, &r, &err)) fail_msg("%s", err.msg);
        assert_int_equal(r.n, 4);
        assert_true(pass ? r.truncated >= 1 : r.truncated == 0);
        size_t acc = 0, acc_norm = 0;
        for (size_t i = 0; i < rd_mc_size(s); i++) {
            const rd_mc_item *it = rd_mc_get(s, i);
            int best = 0, best_norm = 0;
            double bl = -INFINITY, bn = -INFINITY;
            for (int k = 0; k < it->n_choices; k++) {
                const double ll = independent_loglik(m, it, k, max_len);
                const double got = r.loglik[r.offset[i] + (size_t)k];
                if (fabs(ll - got) > 1e-4 * (1 + fabs(ll)))
                    fail_msg("max_len %d item %zu choice %d: %.6f scored, %.6f teacher-forced", max_len, i, k, got, ll);
                if (ll > bl) bl = ll, best = k;
                if (ll / (double)it->norm_len[k] > bn) bn = ll / (double)it->norm_len[k], best_norm = k;
            }
            assert_int_equal(r.pred[i], best);
            assert_int_equal(r.pred_norm[i], best_norm);
            acc += best == it->gold;
            acc_norm += best_norm == it->gold;
        }
        assert_true(fabs(r.acc - (double)acc / 4) < 1e-12);
        assert_true(fabs(r.acc_norm - (double)acc_norm / 4) < 1e-12);
        assert_true(fabs(r.acc_stderr - rd_mc_stderr(acc, 4)) < 1e-12);
        if (pass == 0) { /* the items are made so that the two part ways */
            assert_int_not_equal(r.pred[0], r.pred_norm[0]);
        }
        rd_mc_scores_release(&r);
    }
    /* a choice that cannot fit */
    rd_mc_scores r;
    assert_int_equal(rd_mc_score(m, NULL, s, 3, NULL, &r, &err), -1);
    assert_non_null(strstr(err.msg, "score.jsonl line 1"));
    rd_mc_free(s);
    rd_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_arc),
        cmocka_unit_test(test_hellaswag),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_mcnemar),
        cmocka_unit_test(test_score_against_teacher_forcing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
