/* Tests of the generation loop: the step-by-step generator gives exactly the tokens of
 * rd_generate, two generators interleaved on one thread (base and edited, as the TUI's chat
 * pane runs them) give the same answers as separate runs, and the stop reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "redit/edits.h"
#include "redit/forward.h"
#include "redit/generate.h"
#include "redit/model.h"
#include "redit/rng.h"
#include "tiny_model.h"

typedef struct fixture {
    rd_model *model;
    rd_edits *edits; /* ffn and attn edits on every layer, moved away from identity */
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    rd_config cfg = tiny_config();
    rd_model_file file;
    rd_error err = {0};
    if (!f || tiny_model_init(&file, &cfg, 1, 7)) return -1;
    f->model = rd_model_from_file(&file, "tiny", &err);
    if (!f->model) return -1;
    rd_edit_spec spec = {.sites = RD_SITE_BOTH, .layers = "all", .scale = 1, .bias = 1};
    f->edits = rd_edits_new(&cfg, &spec, &err);
    if (!f->edits) return -1;
    float *p = rd_edits_params(f->edits);
    uint64_t rng = 99;
    for (size_t i = 0; i < rd_edits_param_count(f->edits); i++)
        p[i] += 0.5f * ((float)(rd_rng_next(&rng) % 2001) / 1000.0f - 1.0f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    rd_edits_free(f->edits);
    rd_model_free(f->model);
    free(f);
    return 0;
}

static rd_gen_opts greedy_opts(int max_tokens) {
    rd_gen_opts o = {.sampling = rd_sampling_defaults(), .max_tokens = max_tokens};
    o.sampling.temperature = 0;
    return o;
}

static const int prompt[] = {1, 17, 42, 99, 5};
enum { N_PROMPT = 5 };

/* rd_generate's ids for (edits or base). */
static int reference_ids(fixture *f, const rd_edits_view *view, int max_tokens, int *ids,
                         rd_gen_stats *stats) {
    rd_error err = {0};
    rd_ctx *ctx = rd_ctx_new(f->model, 1, 64, &err);
    assert_non_null(ctx);
    rd_gen_opts o = greedy_opts(max_tokens);
    assert_int_equal(rd_generate(ctx, view, prompt, N_PROMPT, &o, NULL, NULL, ids, stats, &err),
                     0);
    rd_ctx_free(ctx);
    return stats->n_generated;
}

static void test_steps_equal_generate(void **state) {
    fixture *f = *state;
    int want[20];
    rd_gen_stats want_stats;
    int n = reference_ids(f, NULL, 20, want, &want_stats);
    assert_int_equal(n, 20);

    rd_error err = {0};
    rd_ctx *ctx = rd_ctx_new(f->model, 1, 64, &err);
    rd_gen_opts o = greedy_opts(20);
    rd_generator *g = rd_generator_start(ctx, NULL, prompt, N_PROMPT, &o, &err);
    assert_non_null(g);
    int token, got = 0;
    const char *text;
    size_t len;
    while (rd_generator_next(g, &token, &text, &len, &err) == 1) {
        assert_true(got < 20);
        assert_int_equal(token, want[got]);
        assert_int_equal(len, 0); /* no tokenizer: no text */
        got++;
    }
    assert_int_equal(got, 20);
    assert_int_equal(rd_generator_stats(g)->n_generated, 20);
    assert_int_equal(rd_generator_stats(g)->stopped_by, 0);
    /* Over: further calls keep returning 0. */
    assert_int_equal(rd_generator_next(g, &token, &text, &len, &err), 0);
    assert_int_equal(token, -1);
    rd_generator_free(g);
    rd_ctx_free(ctx);
}

static void test_interleaved_base_and_edited(void **state) {
    fixture *f = *state;
    rd_edits_view view = rd_edits_view_at(f->edits, 1.0f);
    int want_base[24], want_edit[24];
    rd_gen_stats s;
    reference_ids(f, NULL, 24, want_base, &s);
    reference_ids(f, &view, 24, want_edit, &s);
    /* The edit changes the answer (else this test would not tell the two apart). */
    assert_memory_not_equal(want_base, want_edit, sizeof want_base);

    rd_error err = {0};
    rd_ctx *c1 = rd_ctx_new(f->model, 1, 64, &err), *c2 = rd_ctx_new(f->model, 1, 64, &err);
    rd_gen_opts o = greedy_opts(24);
    rd_generator *base = rd_generator_start(c1, NULL, prompt, N_PROMPT, &o, &err);
    rd_generator *edited = rd_generator_start(c2, &view, prompt, N_PROMPT, &o, &err);
    assert_non_null(base);
    assert_non_null(edited);
    int nb = 0, ne = 0, token, rb = 1, re = 1;
    const char *text;
    size_t len;
    while (rb == 1 || re == 1) {
        if (rb == 1 && (rb = rd_generator_next(base, &token, &text, &len, &err)) == 1)
            assert_int_equal(token, want_base[nb++]);
        if (re == 1 && (re = rd_generator_next(edited, &token, &text, &len, &err)) == 1)
            assert_int_equal(token, want_edit[ne++]);
    }
    assert_int_equal(rb, 0);
    assert_int_equal(re, 0);
    assert_int_equal(nb, 24);
    assert_int_equal(ne, 24);
    rd_generator_free(base);
    rd_generator_free(edited);
    rd_ctx_free(c1);
    rd_ctx_free(c2);
}

static void test_stop_reasons(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    /* Context full: 5 prompt tokens in a context of 8 leave room for 4 tokens. */
    rd_ctx *ctx = rd_ctx_new(f->model, 1, 8, &err);
    rd_gen_opts o = greedy_opts(50);
    rd_generator *g = rd_generator_start(ctx, NULL, prompt, N_PROMPT, &o, &err);
    assert_non_null(g);
    int token, n = 0;
    const char *text;
    size_t len;
    while (rd_generator_next(g, &token, &text, &len, &err) == 1) n++;
    assert_int_equal(n, 4);
    assert_int_equal(rd_generator_stats(g)->stopped_by, 3);
    rd_generator_free(g);

    /* Stopped by the caller. */
    g = rd_generator_start(ctx, NULL, prompt, N_PROMPT, &o, &err);
    assert_int_equal(rd_generator_next(g, &token, &text, &len, &err), 1);
    rd_generator_stop(g, 2);
    assert_int_equal(rd_generator_next(g, &token, &text, &len, &err), 0);
    assert_int_equal(rd_generator_stats(g)->stopped_by, 2);
    assert_int_equal(rd_generator_stats(g)->n_generated, 1);
    rd_generator_free(g);

    /* A prompt longer than the context is refused with a message. */
    int long_prompt[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_null(rd_generator_start(ctx, NULL, long_prompt, 9, &o, &err));
    assert_non_null(strstr(err.msg, "more than the context"));
    rd_ctx_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_equal_generate),
        cmocka_unit_test(test_interleaved_base_and_edited),
        cmocka_unit_test(test_stop_reasons),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
