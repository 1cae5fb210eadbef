/* The trainer end to end on a small model with the Llama-2 tokenizer: RED on ffn lowers
 * held-out loss; saved and reloaded edits give bit-identical logits; strength 0 gives the
 * base model exactly; gradient accumulation matches one big micro-batch; a stop request
 * ends at a step boundary; a non-finite loss stops training and keeps finite edits; full
 * fine-tuning lowers the loss too; an unwritable state file is refused before the first step;
 * training a model with a NaN weight says the model is broken. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redit/edits.h"
#include "redit/forward.h"
#include "redit/model_file.h"
#include "redit/train.h"
#include "core/gemm_bf16.h"
#include "tiny_model.h"

static void expect_same_run(const rd_train_result *a, const rd_train_result *b);

typedef struct fixture {
    char dir[512];
    rd_model *m;
    rd_dataset *train, *eval;
} fixture;

static const char *const COLORS[] = {"red", "blue", "green", "yellow", "purple", "orange"};
static const char *const THINGS[] = {"apple", "sky", "grass", "sun", "plum", "carrot", "rose",
                                     "sea", "leaf", "lemon", "grape", "pumpkin"};

/* "What colour is the X?" → "The X is C." with a fixed colour per thing. */
static void write_task(const char *path, int first, int count) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = first; i < first + count; i++) {
        const char *thing = THINGS[i % 12];
        fprintf(fp, "{\"instruction\": \"What colour is the %s number %d?\", \"output\": \"The %s "
                    "is %s.\"}\n",
                thing, i, thing, COLORS[i % 12 % 6]);
    }
    fclose(fp);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_int_equal(tiny_tempdir(f->dir, sizeof f->dir), 0);
    const char *tok_path = shared_fixture("llama2-tokenizer/tokenizer.bin");
    if (!tok_path) fail_msg("../shared/fixtures/llama2-tokenizer is missing");
    rd_error err = {0};
    rd_config cfg = {.dim = 64, .hidden_dim = 172, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                     .vocab_size = 32000, .seq_len = 128, .norm_eps = 1e-5f,
                     .rope_theta = 10000.0f, .rope_layout = RD_ROPE_ADJACENT};
    rd_model_file mf;
    assert_int_equal(rd_model_file_random(&mf, &cfg, 1, 3, RD_DTYPE_F32, &err), 0);
    assert_int_equal(rd_vocab_load_llama2c(tok_path, 32000, &mf.vocab, &err), 0);
    f->m = rd_model_from_file(&mf, NULL, &err);
    assert_non_null(f->m);
    char path[700];
    rd_data_opts o = rd_data_opts_defaults();
    o.max_len = 64;
    snprintf(path, sizeof path, "%s/train.jsonl", f->dir);
    write_task(path, 0, 96);
    assert_non_null(f->train = rd_dataset_load(path, rd_model_tokenizer(f->m), &o, &err));
    snprintf(path, sizeof path, "%s/eval.jsonl", f->dir);
    write_task(path, 1000, 24);
    assert_non_null(f->eval = rd_dataset_load(path, rd_model_tokenizer(f->m), &o, &err));
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    rd_dataset_free(f->train);
    rd_dataset_free(f->eval);
    rd_model_free(f->m);
    tiny_rmdir(f->dir);
    free(f);
    return 0;
}

static rd_edits *ffn_edits(const rd_model *m) {
    rd_edit_spec spec = {.sites = RD_SITE_FFN, .layers = "all", .scale = 1, .bias = 1};
    rd_error err = {0};
    rd_edits *e = rd_edits_new(&m->file.cfg, &spec, &err);
    assert_non_null(e);
    return e;
}

static rd_train_opts quick_opts(void) {
    rd_train_opts o = rd_train_opts_defaults();
    o.lr = 3e-2;
    o.epochs = 4;
    o.batch = 8;
    o.micro_batch = 4;
    o.max_len = 64;
    o.warmup_ratio = 0.1;
    return o;
}

/* RED on ffn lowers the held-out loss clearly; the best edits are kept. */
static void test_red_learns(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_eval_metrics before, after;
    assert_int_equal(rd_evaluate(f->m, NULL, 1.0f, f->eval, 8, 64, &before, &err), 0);
    rd_edits *e = ffn_edits(f->m);
    rd_train_opts o = quick_opts();
    rd_train_result r;
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, NULL, NULL, &r, &err), 0);
    assert_int_equal(r.stopped, RD_STOP_DONE);
    assert_int_equal(r.steps, 4 * 12);
    assert_int_equal(r.n_evals, 4);
    for (int i = 0; i < r.n_evals; i++) assert_true(isnan(r.eval_accuracy[i])); /* no labels */
    assert_true(isnan(r.best_eval_accuracy));
    assert_int_equal(rd_evaluate(f->m, e, 1.0f, f->eval, 8, 64, &after, &err), 0);
    printf("RED ffn (%zu parameters): held-out loss %.3f → %.3f (%.0f%% lower), best at step %d\n",
           rd_edits_param_count(e), before.loss, after.loss,
           100 * (1 - after.loss / before.loss), r.best_step);
    assert_true(fabs(after.loss - r.best_eval_loss) < 1e-9);
    assert_true(after.loss < 0.75 * before.loss);
    rd_train_result_release(&r);

    /* save → load: bit-identical logits; strength 0: the base model's logits exactly */
    char path[700];
    snprintf(path, sizeof path, "%s/edits.safetensors", f->dir);
    assert_int_equal(rd_edits_save(e, f->m, "{\"test\": true}", path, &err), 0);
    rd_edits *back = rd_edits_load(path, f->m, 0, NULL, &err);
    assert_non_null(back);
    const rd_example *ex = rd_dataset_get(f->eval, 0);
    const int V = 32000, T = ex->n;
    float *a = malloc(sizeof(float) * (size_t)T * V), *b = malloc(sizeof(float) * (size_t)T * V);
    rd_ctx *ctx = rd_ctx_new(f->m, 1, 64, &err);
    rd_edits_view va = rd_edits_view_at(e, 1.0f), vb = rd_edits_view_at(back, 1.0f);
    assert_int_equal(rd_forward(ctx, &va, ex->ids, 1, T, RD_LOGITS_ALL, a, &err), 0);
    rd_ctx_reset(ctx);
    assert_int_equal(rd_forward(ctx, &vb, ex->ids, 1, T, RD_LOGITS_ALL, b, &err), 0);
    assert_memory_equal(a, b, sizeof(float) * (size_t)T * V);
    rd_edits_view zero = rd_edits_view_at(back, 0.0f);
    rd_ctx_reset(ctx);
    assert_int_equal(rd_forward(ctx, &zero, ex->ids, 1, T, RD_LOGITS_ALL, a, &err), 0);
    rd_ctx_reset(ctx);
    assert_int_equal(rd_forward(ctx, NULL, ex->ids, 1, T, RD_LOGITS_ALL, b, &err), 0);
    assert_memory_equal(a, b, sizeof(float) * (size_t)T * V);
    free(a);
    free(b);
    rd_ctx_free(ctx);
    rd_edits_free(back);
    rd_edits_free(e);
}

/* batch 8 in micro-batches of 2 and of 8: the same gradient, so the same edits after a
 * step (up to summation order). */
static void test_accumulation_matches(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    float *p[2];
    const int micro[2] = {8, 2};
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        rd_edits *e = ffn_edits(f->m);
        rd_train_opts o = quick_opts();
        o.micro_batch = micro[i];
        o.max_steps = 2;
        o.warmup_ratio = 0;
        rd_train_result r;
        assert_int_equal(rd_train(f->m, e, f->train, NULL, &o, NULL, NULL, &r, &err), 0);
        assert_int_equal(r.steps, 2);
        n = rd_edits_param_count(e);
        p[i] = malloc(sizeof(float) * n);
        memcpy(p[i], rd_edits_params(e), sizeof(float) * n);
        rd_train_result_release(&r);
        rd_edits_free(e);
    }
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(p[0][i] - p[1][i]));
    printf("micro-batch 8 vs 2: largest parameter difference after 2 steps %.2e\n", worst);
    assert_true(worst < 1e-4);
    free(p[0]);
    free(p[1]);
}

/* eval_every that does not divide the steps: the last step is evaluated as well. */
static void test_last_step_evaluated(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_edits *e = ffn_edits(f->m);
    rd_train_opts o = quick_opts();
    o.epochs = 1;
    o.eval_every = 5; /* 12 steps: evaluations after 5, 10 and 12 */
    rd_train_result r;
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, NULL, NULL, &r, &err), 0);
    assert_int_equal(r.steps, 12);
    assert_int_equal(r.n_evals, 3);
    assert_int_equal(r.eval_steps[0], 5);
    assert_int_equal(r.eval_steps[1], 10);
    assert_int_equal(r.eval_steps[2], 12);
    rd_train_result_release(&r);
    rd_edits_free(e);
}

static int stop_after_three(void *user, const rd_progress *p) {
    (void)user;
    return p->kind == RD_PROGRESS_STEP && p->step == 3;
}

static void test_stop_request(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_edits *e = ffn_edits(f->m);
    rd_train_opts o = quick_opts();
    rd_train_result r;
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, stop_after_three, NULL, &r, &err), 0);
    assert_int_equal(r.stopped, RD_STOP_REQUESTED);
    assert_int_equal(r.steps, 3);
    assert_int_equal(r.n_evals, 1); /* evaluated once at the stop, best edits kept */
    rd_train_result_release(&r);
    /* the stop flag works the same way, checked before the first step's end */
    atomic_int flag = 1;
    o.stop = &flag;
    assert_int_equal(rd_train(f->m, e, f->train, NULL, &o, NULL, NULL, &r, &err), 0);
    assert_int_equal(r.stopped, RD_STOP_REQUESTED);
    assert_int_equal(r.steps, 1);
    rd_train_result_release(&r);
    rd_edits_free(e);
}

/* A stop key pressed at a chosen step: the flag gets `level` at the step event of `step`
 * (before that step's evaluation), or at the evaluation event of `step` when on_eval. */
typedef struct press {
    atomic_int *flag;
    int step, level, on_eval;
} press;

static int press_at(void *user, const rd_progress *p) {
    const press *k = user;
    if (p->step == k->step && (p->kind == RD_PROGRESS_EVAL) == k->on_eval)
        atomic_store(k->flag, k->level);
    return 0;
}

static int stop_at(void *user, const rd_progress *p);

/* The edits after `steps` steps of o (stopped there, no evaluation: the last step's numbers). */
static rd_edits *edits_after(const fixture *f, rd_train_opts o, int steps) {
    rd_error err = {0};
    rd_edits *e = ffn_edits(f->m);
    rd_train_result r;
    o.stop = NULL;
    assert_int_equal(rd_train(f->m, e, f->train, NULL, &o, stop_at, &steps, &r, &err), 0);
    assert_int_equal(r.steps, steps);
    rd_train_result_release(&r);
    return e;
}

static void assert_same_edits(rd_edits *a, rd_edits *b) {
    assert_memory_equal(rd_edits_params(a), rd_edits_params(b),
                        rd_edits_param_count(a) * sizeof(float));
}

/* Stop, then skip (Esc / Ctrl-C pressed twice): the evaluation of the stopped step is skipped
 * (not recorded) and the best edits evaluated before are kept, or the last step's when none
 * was; one press evaluates the stopped step; a press during a regular evaluation ends
 * training after it without a second one; an evaluation is cut short at its next pass. */
static void test_stop_skips_evaluation(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_train_opts o = quick_opts();
    o.epochs = 1; /* 12 steps: regular evaluations after 5, 10 and 12 */
    o.eval_every = 5;
    atomic_int flag = 0;
    o.stop = &flag;
    rd_train_result r;
    /* one press before step 10's evaluation: evaluated (5 and 10), then stopped */
    rd_edits *e = ffn_edits(f->m);
    press k = {&flag, 10, RD_STOP_AT_STEP, 0};
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, press_at, &k, &r, &err), 0);
    assert_int_equal(r.stopped, RD_STOP_REQUESTED);
    assert_int_equal(r.steps, 10);
    assert_int_equal(r.n_evals, 2);
    assert_int_equal(r.eval_steps[1], 10);
    assert_int_equal(r.eval_skipped, 0);
    rd_train_result_release(&r);
    rd_edits_free(e);
    /* two presses before it: step 10 is not evaluated; the best evaluated edits (step 5's,
     * the only evaluation) are kept */
    atomic_store(&flag, 0);
    e = ffn_edits(f->m);
    k.level = RD_STOP_SKIP_EVAL;
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, press_at, &k, &r, &err), 0);
    assert_int_equal(r.stopped, RD_STOP_REQUESTED);
    assert_int_equal(r.steps, 10);
    assert_int_equal(r.n_evals, 1);
    assert_int_equal(r.eval_steps[0], 5);
    assert_int_equal(r.best_step, 5);
    assert_int_equal(r.eval_skipped, 1);
    assert_non_null(strstr(r.message, "evaluation skipped: kept the best edits evaluated so far (step 5)"));
    rd_edits *at5 = edits_after(f, o, 5);
    assert_same_edits(e, at5);
    rd_edits_free(at5);
    rd_train_result_release(&r);
    rd_edits_free(e);
    /* two presses before any evaluation finished: the last step's edits, said so */
    atomic_store(&flag, 0);
    e = ffn_edits(f->m);
    k.step = 3;
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, press_at, &k, &r, &err), 0);
    assert_int_equal(r.steps, 3);
    assert_int_equal(r.n_evals, 0);
    assert_int_equal(r.best_step, 3);
    assert_int_equal(r.eval_skipped, 1);
    assert_true(isnan(r.best_eval_loss));
    assert_non_null(strstr(r.message, "no evaluation finished, kept the last step's edits"));
    rd_edits *at3 = edits_after(f, o, 3);
    assert_same_edits(e, at3);
    rd_edits_free(at3);
    rd_train_result_release(&r);
    rd_edits_free(e);
    /* a press while step 5's regular evaluation runs: training ends after it, with no
     * evaluation of its own */
    atomic_store(&flag, 0);
    e = ffn_edits(f->m);
    k = (press){&flag, 5, RD_STOP_AT_STEP, 1};
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, press_at, &k, &r, &err), 0);
    assert_int_equal(r.stopped, RD_STOP_REQUESTED);
    assert_int_equal(r.steps, 5);
    assert_int_equal(r.n_evals, 1);
    assert_int_equal(r.eval_skipped, 0);
    rd_train_result_release(&r);
    rd_edits_free(e);
    /* the evaluations themselves: a skip request ends them at their next pass (here the
     * first: nothing scored); a plain stop request lets them run */
    rd_train_ctx *tc = rd_train_ctx_new(f->m, 4, 64, 0, &err);
    assert_non_null(tc);
    rd_batch b = {0};
    double sum_all, sum;
    uint64_t tok_all, tok;
    assert_int_equal(rd_eval_loss(tc, NULL, f->eval, 4, 64, 2, &b, NULL, &sum_all, &tok_all, &err), 0);
    atomic_store(&flag, RD_STOP_AT_STEP);
    assert_int_equal(rd_eval_loss(tc, NULL, f->eval, 4, 64, 2, &b, &flag, &sum, &tok, &err), 0);
    assert_true(sum == sum_all && tok == tok_all && tok > 0);
    atomic_store(&flag, RD_STOP_SKIP_EVAL);
    assert_int_equal(rd_eval_loss(tc, NULL, f->eval, 4, 64, 2, &b, &flag, &sum, &tok, &err), 1);
    assert_true(tok == 0);
    rd_batch_release(&b);
    rd_train_ctx_free(tc);
}

/* A regular evaluation skipped by a stop request is made first when the run resumes from its
 * state file: the resumed run ends bit for bit as the uninterrupted one. */
static void test_resume_after_skipped_eval(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_train_opts o = quick_opts();
    o.epochs = 1;
    o.eval_every = 5;
    rd_edits *whole = ffn_edits(f->m);
    rd_train_result ra, rb, rc;
    assert_int_equal(rd_train(f->m, whole, f->train, f->eval, &o, NULL, NULL, &ra, &err), 0);
    char path[700];
    snprintf(path, sizeof path, "%s/skip.state", f->dir);
    unlink(path);
    rd_train_opts os = o;
    os.state_path = path;
    atomic_int flag = 0;
    os.stop = &flag;
    press k = {&flag, 10, RD_STOP_SKIP_EVAL, 0};
    rd_edits *e = ffn_edits(f->m);
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &os, press_at, &k, &rb, &err), 0);
    assert_int_equal(rb.steps, 10);
    assert_int_equal(rb.eval_skipped, 1);
    rd_train_result_release(&rb);
    rd_edits_free(e);
    atomic_store(&flag, 0);
    e = ffn_edits(f->m);
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &os, NULL, NULL, &rc, &err), 0);
    assert_int_equal(rc.resumed_step, 10);
    expect_same_run(&ra, &rc);
    assert_same_edits(e, whole);
    rd_train_result_release(&ra);
    rd_train_result_release(&rc);
    rd_edits_free(e);
    rd_edits_free(whole);
    unlink(path);
}

static void test_nonfinite_stops_cleanly(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_edits *e = ffn_edits(f->m);
    rd_train_opts o = quick_opts();
    o.lr = 1e38; /* a few updates overflow the parameters or the forward pass */
    o.clip = 0;
    o.warmup_ratio = 0;
    o.schedule = RD_SCHEDULE_CONSTANT;
    rd_train_result r;
    assert_int_equal(rd_train(f->m, e, f->train, NULL, &o, NULL, NULL, &r, &err), 0);
    assert_int_equal(r.stopped, RD_STOP_NONFINITE);
    assert_non_null(strstr(r.message, "not finite"));
    assert_non_null(strstr(r.message, "try a lower learning rate")); /* the model is intact */
    assert_true(r.steps < 48); /* it stopped: no epoch after the failure ran */
    printf("non-finite guard: %s\n", r.message);
    const float *p = rd_edits_params(e);
    for (size_t i = 0; i < rd_edits_param_count(e); i++) assert_true(isfinite(p[i]));
    rd_train_result_release(&r);
    rd_edits_free(e);
}

/* A model whose weights hold a NaN: training stops at step 1 and says the model is broken
 * (naming the tensor), not that the learning rate is too high. */
static void test_nonfinite_model_named(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_model_file mf;
    assert_int_equal(rd_model_file_random(&mf, &f->m->file.cfg, 1, 3, RD_DTYPE_F32, &err), 0);
    assert_int_equal(rd_vocab_load_llama2c(shared_fixture("llama2-tokenizer/tokenizer.bin"), 32000,
                                           &mf.vocab, &err), 0);
    const rd_matrix *w2 = &mf.w.layers[1].w2;
    ((float *)((char *)w2->data + 5 * w2->row_bytes))[9] = NAN;
    rd_model *m = rd_model_from_file(&mf, NULL, &err);
    assert_non_null(m);
    rd_edits *e = ffn_edits(m);
    rd_train_opts o = quick_opts();
    rd_train_result r;
    assert_int_equal(rd_train(m, e, f->train, NULL, &o, NULL, NULL, &r, &err), 0);
    assert_int_equal(r.stopped, RD_STOP_NONFINITE);
    assert_int_equal(r.steps, 0);
    printf("broken model: %s\n", r.message);
    assert_non_null(strstr(r.message, "the model's weights are not finite: blk.1.ffn_down.weight row 5"));
    assert_null(strstr(r.message, "learning rate"));
    rd_train_result_release(&r);
    rd_edits_free(e);
    rd_model_free(m);
}

static void test_full_finetuning_learns(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_model_file mf;
    rd_config cfg = f->m->file.cfg;
    assert_int_equal(rd_model_file_random(&mf, &cfg, 1, 3, RD_DTYPE_F32, &err), 0);
    rd_model *m = rd_model_from_file(&mf, NULL, &err);
    rd_eval_metrics before, after;
    assert_int_equal(rd_evaluate(m, NULL, 1.0f, f->eval, 8, 64, &before, &err), 0);
    rd_train_opts o = quick_opts();
    o.lr = 3e-3;
    o.epochs = 2;
    rd_train_result r;
    assert_int_equal(rd_train_full(m, f->train, f->eval, &o, NULL, NULL, &r, &err), 0);
    assert_int_equal(rd_evaluate(m, NULL, 1.0f, f->eval, 8, 64, &after, &err), 0);
    printf("full fine-tuning (%zu parameters): held-out loss %.3f → %.3f\n", m->n_params,
           before.loss, after.loss);
    assert_true(after.loss < 0.5 * before.loss);
    rd_train_result_release(&r);
    rd_model_free(m);
}

/* Full fine-tuning in bf16 compute: the packed bf16 copies follow the f32 master weights
 * after every update (a stale pack would keep computing with the initial weights), and the
 * run learns like the f32 one. */
static void test_full_finetuning_bf16(void **state) {
    if (!rd_gemm_kernel_available(RD_GEMM_KERNEL_AVX512BF16)) {
        print_message("SKIPPED: this CPU has no AVX512-BF16 (bf16 compute is refused on it)\n");
        skip();
    }
    fixture *f = *state;
    rd_error err = {0};
    rd_config cfg = f->m->file.cfg;
    rd_model *m[2];
    rd_eval_metrics after[2];
    for (int i = 0; i < 2; i++) {
        rd_model_file mf;
        assert_int_equal(rd_model_file_random(&mf, &cfg, 1, 3, RD_DTYPE_F32, &err), 0);
        m[i] = rd_model_from_file(&mf, NULL, &err);
        assert_non_null(m[i]);
        if (i == 1) assert_int_equal(rd_model_set_compute(m[i], RD_COMPUTE_BF16, 1, &err), 0);
        rd_train_opts o = quick_opts();
        o.lr = 3e-3;
        o.epochs = 2;
        rd_train_result r;
        assert_int_equal(rd_train_full(m[i], f->train, f->eval, &o, NULL, NULL, &r, &err), 0);
        rd_train_result_release(&r);
        assert_int_equal(rd_model_compute(m[i]), i ? RD_COMPUTE_BF16 : RD_COMPUTE_F32);
        assert_int_equal(rd_evaluate(m[i], NULL, 1.0f, f->eval, 8, 64, &after[i], &err), 0);
    }
    /* The bf16 model's products use its packs: switching it to f32 (its master weights)
     * changes the held-out loss only by bf16 rounding. */
    rd_eval_metrics master;
    assert_int_equal(rd_model_set_compute(m[1], RD_COMPUTE_F32, 0, &err), 0);
    assert_int_equal(rd_evaluate(m[1], NULL, 1.0f, f->eval, 8, 64, &master, &err), 0);
    printf("full fine-tuning: held-out loss f32 %.4f, bf16 %.4f (its f32 weights %.4f)\n",
           after[0].loss, after[1].loss, master.loss);
    assert_true(fabs(after[1].loss - master.loss) < 0.02 * master.loss);
    assert_true(fabs(after[1].loss - after[0].loss) < 0.05 * after[0].loss);
    for (int i = 0; i < 2; i++) rd_model_free(m[i]);
}

/* Metrics from known confusion matrices (values computed by hand / as scikit-learn gives). */
static void test_classification_metrics(void **state) {
    (void)state;
    rd_eval_metrics m;
    /* binary: TN 50, FP 10, FN 5, TP 35 */
    const long bin[4] = {50, 10, 5, 35};
    rd_classification_metrics(bin, 2, &m);
    assert_int_equal(m.n_examples, 100);
    assert_float_equal(m.accuracy, 0.85, 1e-12);
    assert_float_equal(m.f1, 70.0 / 85.0, 1e-12); /* 2·35 / (2·35 + 10 + 5) */
    const double mcc = (35.0 * 50 - 10.0 * 5) / sqrt(45.0 * 40 * 60 * 55);
    assert_float_equal(m.mcc, mcc, 1e-12);
    /* three classes: the multi-class MCC as scikit-learn's matthews_corrcoef defines it
     * (computed independently in Python from its formula), macro-F1 by hand */
    const long tri[9] = {5, 1, 0, 2, 3, 1, 0, 0, 4};
    rd_classification_metrics(tri, 3, &m);
    assert_float_equal(m.accuracy, 12.0 / 16.0, 1e-12);
    const double f1a = 2.0 * 5 / (2.0 * 5 + 2 + 1), f1b = 2.0 * 3 / (2.0 * 3 + 1 + 3),
                 f1c = 2.0 * 4 / (2.0 * 4 + 1 + 0);
    assert_float_equal(m.f1, (f1a + f1b + f1c) / 3, 1e-12);
    assert_float_equal(m.mcc, 0.6347419188140273, 1e-9);
    /* a constant predictor: MCC 0 */
    const long flat[4] = {30, 0, 20, 0};
    rd_classification_metrics(flat, 2, &m);
    assert_float_equal(m.mcc, 0.0, 1e-12);
}

/* Length grouping visits every example once per epoch (micro-batch 1: no padding, the same
 * tokens as without it), pads much less when lengths vary (micro-batch 8), and is seeded. */
static void test_group_by_length(void **state) {
    fixture *f = *state;
    char path[700];
    snprintf(path, sizeof path, "%s/lengths.jsonl", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 96; i++) { /* prompts of 1 to 24 repeated words, interleaved */
        fprintf(fp, "{\"instruction\": \"Say");
        for (int w = 0; w < 1 + (i * 7) % 24; w++) fprintf(fp, " word");
        fprintf(fp, ".\", \"output\": \"Done %d.\"}\n", i % 5);
    }
    fclose(fp);
    rd_error err = {0};
    rd_data_opts dopt = rd_data_opts_defaults();
    dopt.max_len = 64;
    rd_dataset *d = rd_dataset_load(path, rd_model_tokenizer(f->m), &dopt, &err);
    if (!d) fail_msg("%s", err.msg);
    uint64_t tokens[2][2];
    float first[4];
    for (int micro = 0; micro < 2; micro++)
        for (int grouped = 0; grouped < 2; grouped++) {
            rd_edits *e = ffn_edits(f->m);
            rd_train_opts o = quick_opts();
            o.epochs = 1;
            o.batch = o.micro_batch = micro ? 8 : 1;
            o.group_by_length = grouped;
            rd_train_result r;
            assert_int_equal(rd_train(f->m, e, d, NULL, &o, NULL, NULL, &r, &err), 0);
            tokens[micro][grouped] = r.tokens;
            if (micro) first[grouped] = rd_edits_params(e)[0];
            if (micro && grouped) { /* the same seed: the same run again */
                rd_edits *again = ffn_edits(f->m);
                rd_train_result r2;
                assert_int_equal(rd_train(f->m, again, d, NULL, &o, NULL, NULL, &r2, &err), 0);
                assert_memory_equal(rd_edits_params(e), rd_edits_params(again),
                                    rd_edits_param_count(e) * sizeof(float));
                rd_train_result_release(&r2);
                rd_edits_free(again);
            }
            rd_train_result_release(&r);
            rd_edits_free(e);
        }
    printf("length grouping: %llu tokens with padding → %llu (without padding %llu)\n",
           (unsigned long long)tokens[1][0], (unsigned long long)tokens[1][1],
           (unsigned long long)tokens[0][0]);
    assert_true(tokens[0][0] == tokens[0][1]);
    /* the padding (tokens beyond the examples' own) shrinks to a fifth at most */
    assert_true(tokens[1][1] >= tokens[0][0] && tokens[1][0] > tokens[0][0]);
    assert_true(5 * (tokens[1][1] - tokens[0][0]) < tokens[1][0] - tokens[0][0]);
    assert_true(first[0] != first[1]); /* grouping changed which examples met in a step */
    rd_dataset_free(d);
}

/* What the progress callback saw of the evaluations. */
typedef struct eval_log {
    int n;
    double accuracy[16];
} eval_log;

static int record_eval(void *user, const rd_progress *p) {
    eval_log *log = user;
    if (p->kind == RD_PROGRESS_EVAL && log->n < 16) log->accuracy[log->n++] = p->eval_accuracy;
    if (p->kind == RD_PROGRESS_STEP && !isnan(p->eval_accuracy)) log->n = 100; /* fails below */
    return 0;
}

/* A classification set: the label word is scored after the prompt; RED on ffn learns a
 * keyword rule the random base model cannot know. */
static void test_classification_eval_learns(void **state) {
    fixture *f = *state;
    char train_path[700], eval_path[700];
    snprintf(train_path, sizeof train_path, "%s/cls_train.jsonl", f->dir);
    snprintf(eval_path, sizeof eval_path, "%s/cls_eval.jsonl", f->dir);
    for (int part = 0; part < 2; part++) {
        FILE *fp = fopen(part ? eval_path : train_path, "w");
        for (int i = part * 1000; i < part * 1000 + (part ? 40 : 120); i++)
            fprintf(fp, "{\"text\": \"message %d about %s\", \"label\": \"%s\"}\n", i,
                    i % 2 ? "money and prizes" : "the weekly meeting", i % 2 ? "spam" : "ham");
        fclose(fp);
    }
    rd_error err = {0};
    rd_data_opts o = rd_data_opts_defaults();
    o.max_len = 64;
    rd_dataset *tr = rd_dataset_load(train_path, rd_model_tokenizer(f->m), &o, &err);
    rd_dataset *ev = rd_dataset_load(eval_path, rd_model_tokenizer(f->m), &o, &err);
    assert_non_null(tr);
    assert_non_null(ev);
    assert_int_equal(rd_dataset_n_labels(ev), 2);
    rd_eval_metrics before, after;
    assert_int_equal(rd_evaluate(f->m, NULL, 1.0f, ev, 8, 64, &before, &err), 0);
    assert_int_equal(before.n_examples, 40);
    rd_edit_spec spec = {.sites = RD_SITE_BOTH, .layers = "all", .scale = 1, .bias = 1};
    rd_edits *e = rd_edits_new(&f->m->file.cfg, &spec, &err);
    assert_non_null(e);
    rd_train_opts t = quick_opts();
    t.epochs = 8;
    t.lr = 5e-2;
    rd_train_result r;
    eval_log log = {0};
    assert_int_equal(rd_train(f->m, e, tr, ev, &t, record_eval, &log, &r, &err), 0);
    assert_int_equal(rd_evaluate(f->m, e, 1.0f, ev, 8, 64, &after, &err), 0);
    /* every evaluation during training scored the labels too; the edits kept are the best
     * evaluation's, so its accuracy is what rd_evaluate measures now */
    assert_int_equal(r.n_evals, 8);
    assert_int_equal(log.n, 8);
    int best = -1;
    for (int i = 0; i < r.n_evals; i++) {
        assert_true(r.eval_accuracy[i] >= 0 && r.eval_accuracy[i] <= 1);
        assert_true(r.eval_accuracy[i] == log.accuracy[i]);
        if (r.eval_steps[i] == r.best_step) best = i;
    }
    assert_true(best >= 0);
    assert_true(fabs(r.eval_accuracy[best] - after.accuracy) < 1e-12);
    /* the best evaluation is the most accurate one */
    double top = 0;
    for (int i = 0; i < r.n_evals; i++) top = r.eval_accuracy[i] > top ? r.eval_accuracy[i] : top;
    assert_true(r.best_eval_accuracy == top && r.eval_accuracy[best] == top);
    assert_true(r.best_eval_loss == r.eval_history[best]);
    assert_true(r.eval_accuracy[r.n_evals - 1] > before.accuracy);
    printf("classification (ham/spam by keyword): accuracy %.3f → %.3f, MCC %.3f → %.3f, "
           "F1 %.3f → %.3f\n", before.accuracy, after.accuracy, before.mcc, after.mcc, before.f1,
           after.f1);
    assert_true(after.accuracy >= 0.9);
    assert_true(after.mcc > 0.8);
    rd_train_result_release(&r);
    rd_edits_free(e);
    rd_dataset_free(tr);
    rd_dataset_free(ev);
}

/* RED on a quantized frozen base: the same random model stored as F32, Q4_0 and Q4_K GGUF,
 * trained with the same data and seed; the edit vectors stay f32 and the final held-out
 * losses stay close to the F32 run's. */
static void test_red_on_quantized_base(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_config cfg = {.dim = 256, .hidden_dim = 512, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                     .vocab_size = 32000, .seq_len = 128, .norm_eps = 1e-5f,
                     .rope_theta = 10000.0f, .rope_layout = RD_ROPE_ADJACENT};
    const rd_dtype types[3] = {RD_DTYPE_F32, RD_DTYPE_Q4_0, RD_DTYPE_Q4_K};
    double base_loss[3], final_loss[3];
    for (int i = 0; i < 3; i++) {
        rd_model_file mf;
        assert_int_equal(rd_model_file_random(&mf, &cfg, 1, 21, RD_DTYPE_F32, &err), 0);
        char path[700];
        snprintf(path, sizeof path, "%s/quant-%d.gguf", f->dir, i);
        if (rd_gguf_write(path, &mf, types[i], &err)) fail_msg("%s", err.msg);
        rd_model_file_release(&mf);
        rd_model *m = rd_model_load(path, NULL, &err);
        assert_non_null(m);
        assert_int_equal(m->file.w.layers[0].w1.type, types[i]);
        rd_eval_metrics before, after;
        assert_int_equal(rd_evaluate(m, NULL, 1.0f, f->eval, 8, 64, &before, &err), 0);
        rd_edits *e = ffn_edits(m);
        rd_train_opts o = quick_opts();
        o.epochs = 2;
        rd_train_result r;
        assert_int_equal(rd_train(m, e, f->train, NULL, &o, NULL, NULL, &r, &err), 0);
        assert_int_equal(rd_evaluate(m, e, 1.0f, f->eval, 8, 64, &after, &err), 0);
        base_loss[i] = before.loss;
        final_loss[i] = after.loss;
        rd_train_result_release(&r);
        rd_edits_free(e);
        rd_model_free(m);
        unlink(path);
    }
    printf("RED on a quantized base (held-out loss, base → trained): F32 %.3f → %.3f, "
           "Q4_0 %.3f → %.3f, Q4_K %.3f → %.3f\n", base_loss[0], final_loss[0], base_loss[1],
           final_loss[1], base_loss[2], final_loss[2]);
    for (int i = 0; i < 3; i++) assert_true(final_loss[i] < 0.8 * base_loss[i]);
    for (int i = 1; i < 3; i++) assert_true(fabs(final_loss[i] - final_loss[0]) < 0.1 * final_loss[0]);
}

static int stop_at(void *user, const rd_progress *p) {
    return p->kind == RD_PROGRESS_STEP && p->step == *(const int *)user;
}

static void expect_same_run(const rd_train_result *a, const rd_train_result *b) {
    assert_int_equal(a->steps, b->steps);
    for (int i = 0; i < a->steps; i++)
        if (a->loss_history[i] != b->loss_history[i])
            fail_msg("step %d: loss %.17g vs %.17g", i + 1, a->loss_history[i], b->loss_history[i]);
    assert_int_equal(a->n_evals, b->n_evals);
    for (int i = 0; i < a->n_evals; i++) {
        assert_int_equal(a->eval_steps[i], b->eval_steps[i]);
        assert_true(a->eval_history[i] == b->eval_history[i]);
    }
    assert_int_equal(a->best_step, b->best_step);
    assert_true(a->best_eval_loss == b->best_eval_loss);
    assert_true(a->final_loss == b->final_loss);
    assert_int_equal(a->tokens, b->tokens);
}

/* A run stopped and resumed from its state file ends bit for bit where the uninterrupted run
 * ends (edits, losses, evaluations, best step), with dropout and length grouping on,
 * stopped inside an epoch or at its end; a finished state resumes to the same result; a
 * state made for other options or data, or a damaged one, is refused naming the file. */
static void test_resume_red(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_train_opts o = quick_opts();
    o.epochs = 3; /* 12 steps an epoch */
    o.eval_every = 5;
    o.dropout = 0.2;
    o.group_by_length = 1;
    rd_edits *whole = ffn_edits(f->m);
    rd_train_result ra;
    assert_int_equal(rd_train(f->m, whole, f->train, f->eval, &o, NULL, NULL, &ra, &err), 0);
    assert_int_equal(ra.steps, 36);
    char path[700];
    snprintf(path, sizeof path, "%s/run.state", f->dir);
    const int stops[] = {17, 24};
    for (int k = 0; k < 2; k++) {
        unlink(path);
        rd_train_opts os = o;
        os.state_path = path;
        rd_edits *e = ffn_edits(f->m);
        rd_train_result rb, rc;
        int stop = stops[k];
        assert_int_equal(rd_train(f->m, e, f->train, f->eval, &os, stop_at, &stop, &rb, &err), 0);
        assert_int_equal(rb.stopped, RD_STOP_REQUESTED);
        assert_int_equal(rb.steps, stop);
        assert_int_equal(rb.resumed_step, 0);
        rd_train_result_release(&rb);
        rd_edits_free(e);
        e = ffn_edits(f->m); /* a fresh identity edit: the state supplies the numbers */
        assert_int_equal(rd_train(f->m, e, f->train, f->eval, &os, NULL, NULL, &rc, &err), 0);
        assert_int_equal(rc.resumed_step, stop);
        assert_int_equal(rc.stopped, RD_STOP_DONE);
        expect_same_run(&ra, &rc);
        assert_memory_equal(rd_edits_params(e), rd_edits_params(whole),
                            rd_edits_param_count(e) * sizeof(float));
        rd_train_result_release(&rc);
        rd_edits_free(e);
    }
    /* the finished state: nothing left to train, the same best edits */
    rd_train_opts os = o;
    os.state_path = path;
    rd_edits *e = ffn_edits(f->m);
    rd_train_result rd;
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &os, NULL, NULL, &rd, &err), 0);
    assert_int_equal(rd.resumed_step, 36);
    expect_same_run(&ra, &rd);
    assert_memory_equal(rd_edits_params(e), rd_edits_params(whole),
                        rd_edits_param_count(e) * sizeof(float));
    rd_train_result_release(&rd);
    /* other options, other data, other edits: refused with the difference */
    os.lr = 0.02;
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &os, NULL, NULL, &rd, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "written for lr=0.03, this run has lr=0.02"));
    os.lr = o.lr;
    assert_int_equal(rd_train(f->m, e, f->eval, f->eval, &os, NULL, NULL, &rd, &err), -1);
    assert_non_null(strstr(err.msg, "train_data="));
    rd_edit_spec spec = {.sites = RD_SITE_BOTH, .layers = "all", .scale = 1, .bias = 1};
    rd_edits *both = rd_edits_new(&f->m->file.cfg, &spec, &err);
    assert_int_equal(rd_train(f->m, both, f->train, f->eval, &os, NULL, NULL, &rd, &err), -1);
    assert_non_null(strstr(err.msg, "written for params=256, this run has params=512"));
    printf("resume refused: %s\n", err.msg);
    rd_edits_free(both);
    /* a damaged state file: a clean error naming it, the edits untouched */
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    const long size = ftell(fp);
    assert_int_equal(fseek(fp, size / 2, SEEK_SET), 0);
    fclose(fp);
    assert_int_equal(truncate(path, size / 2), 0);
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &os, NULL, NULL, &rd, &err), -1);
    assert_non_null(strstr(err.msg, path));
    printf("damaged state: %s\n", err.msg);
    rd_edits_free(e);
    rd_train_result_release(&ra);
    rd_edits_free(whole);
    unlink(path);
}

static int count_events(void *user, const rd_progress *p) {
    (void)p;
    ++*(int *)user;
    return 0;
}

/* An unwritable state file is refused before the first step (it is first written at the
 * first evaluation point), with the reason; the edits stay as they were. */
static void test_state_path_checked_first(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_train_opts o = quick_opts();
    char path[700];
    snprintf(path, sizeof path, "%s/nodir/run.state", f->dir);
    o.state_path = path;
    rd_edits *e = ffn_edits(f->m);
    rd_train_result r;
    int events = 0;
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, count_events, &events, &r, &err), -1);
    assert_int_equal(events, 0);
    assert_non_null(strstr(err.msg, "nodir does not exist"));
    printf("state refused: %s\n", err.msg);
    o.state_path = f->dir; /* a folder given as the file */
    assert_int_equal(rd_train(f->m, e, f->train, NULL, &o, count_events, &events, &r, &err), -1);
    assert_int_equal(events, 0);
    assert_non_null(strstr(err.msg, "is a folder"));
    const float *p = rd_edits_params(e);
    for (size_t i = 0; i < rd_edits_param_count(e); i++) assert_true(p[i] == 0.0f || p[i] == 1.0f);
    rd_edits_free(e);
}

/* Full fine-tuning resumes exactly too: every weight and AdamW moment comes back. */
static void test_resume_full(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_config cfg = f->m->file.cfg;
    rd_model *m[3];
    for (int i = 0; i < 3; i++) {
        rd_model_file mf;
        assert_int_equal(rd_model_file_random(&mf, &cfg, 1, 3, RD_DTYPE_F32, &err), 0);
        assert_non_null(m[i] = rd_model_from_file(&mf, NULL, &err));
    }
    rd_train_opts o = quick_opts();
    o.lr = 3e-3;
    o.epochs = 2;
    o.dropout = 0.1;
    rd_train_result ra, rb, rc;
    assert_int_equal(rd_train_full(m[0], f->train, f->eval, &o, NULL, NULL, &ra, &err), 0);
    char path[700];
    snprintf(path, sizeof path, "%s/full.state", f->dir);
    o.state_path = path;
    int stop = 7;
    assert_int_equal(rd_train_full(m[1], f->train, f->eval, &o, stop_at, &stop, &rb, &err), 0);
    assert_int_equal(rb.steps, 7);
    assert_int_equal(rd_train_full(m[2], f->train, f->eval, &o, NULL, NULL, &rc, &err), 0);
    assert_int_equal(rc.resumed_step, 7);
    expect_same_run(&ra, &rc);
    assert_memory_equal(m[2]->params, m[0]->params, m[0]->n_params * sizeof(float));
    rd_train_result_release(&ra);
    rd_train_result_release(&rb);
    rd_train_result_release(&rc);
    for (int i = 0; i < 3; i++) rd_model_free(m[i]);
    unlink(path);
}

/* Replaces the first `from` in the file by `to` (same length) in place. */
static void patch_file(const char *path, const char *from, const char *to) {
    assert_int_equal(strlen(from), strlen(to));
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    const long size = ftell(fp);
    char *buf = malloc((size_t)size);
    assert_non_null(buf);
    rewind(fp);
    assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
    char *at = NULL;
    for (long i = 0; !at && i + (long)strlen(from) <= size; i++)
        if (!memcmp(buf + i, from, strlen(from))) at = buf + i;
    if (!at) fail_msg("'%s' not in %s", from, path);
    assert_int_equal(fseek(fp, at - buf, SEEK_SET), 0);
    assert_int_equal(fwrite(to, 1, strlen(to), fp), strlen(to));
    fclose(fp);
    free(buf);
}

/* A state written by an earlier redit names the model by its sampled fingerprint: it still
 * resumes (bit for bit), and the result says so; any other fingerprint is refused. */
static void test_resume_old_state(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_train_opts o = quick_opts();
    rd_edits *whole = ffn_edits(f->m);
    rd_train_result ra, rb, rc;
    assert_int_equal(rd_train(f->m, whole, f->train, f->eval, &o, NULL, NULL, &ra, &err), 0);
    char path[700], now[40], old[40];
    snprintf(path, sizeof path, "%s/old.state", f->dir);
    unlink(path);
    o.state_path = path;
    rd_edits *e = ffn_edits(f->m);
    int stop = 5;
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, stop_at, &stop, &rb, &err), 0);
    assert_int_equal(rb.resumed_sampled, 0);
    rd_train_result_release(&rb);
    rd_edits_free(e);
    snprintf(now, sizeof now, "model=%016llx", (unsigned long long)rd_model_fingerprint(f->m));
    snprintf(old, sizeof old, "model=%016llx", (unsigned long long)rd_model_fingerprint_sampled(f->m));
    patch_file(path, now, old);
    enum { CAP = 1 << 20 };
    char *saved = malloc(CAP);
    FILE *fp = fopen(path, "rb");
    assert_non_null(saved);
    assert_non_null(fp);
    const size_t n = fread(saved, 1, CAP, fp);
    fclose(fp);
    assert_true(n < CAP);
    e = ffn_edits(f->m);
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, NULL, NULL, &rc, &err), 0);
    assert_int_equal(rc.resumed_step, 5);
    assert_int_equal(rc.resumed_sampled, 1);
    expect_same_run(&ra, &rc);
    assert_memory_equal(rd_edits_params(e), rd_edits_params(whole),
                        rd_edits_param_count(e) * sizeof(float));
    rd_train_result_release(&rc);
    /* another model's fingerprint: refused, naming it */
    fp = fopen(path, "wb");
    assert_int_equal(fwrite(saved, 1, n, fp), n);
    fclose(fp);
    patch_file(path, old, "model=00000000000000aa");
    assert_int_equal(rd_train(f->m, e, f->train, f->eval, &o, NULL, NULL, &rc, &err), -1);
    assert_non_null(strstr(err.msg, "model=00000000000000aa"));
    free(saved);
    rd_edits_free(e);
    rd_edits_free(whole);
    rd_train_result_release(&ra);
    unlink(path);
}

/* The best-evaluation text the workbench's chart line and `redit session` show. */
static void test_eval_best_text(void **state) {
    (void)state;
    char b[48];
    assert_string_equal(rd_eval_best_text(3.21214, NAN, b, sizeof b), "3.2121");
    assert_string_equal(rd_eval_best_text(0.12341, 0.9585, b, sizeof b), "0.1234 (acc 95.9%)");
    assert_string_equal(rd_eval_best_text(NAN, 0.5, b, sizeof b), "-");
    assert_string_equal(rd_eval_best_text(1.0, NAN, b, 4), "1.0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_red_learns),
        cmocka_unit_test(test_accumulation_matches),
        cmocka_unit_test(test_stop_request),
        cmocka_unit_test(test_stop_skips_evaluation),
        cmocka_unit_test(test_resume_after_skipped_eval),
        cmocka_unit_test(test_nonfinite_stops_cleanly),
        cmocka_unit_test(test_nonfinite_model_named),
        cmocka_unit_test(test_full_finetuning_learns),
        cmocka_unit_test(test_full_finetuning_bf16),
        cmocka_unit_test(test_classification_metrics),
        cmocka_unit_test(test_classification_eval_learns),
        cmocka_unit_test(test_group_by_length),
        cmocka_unit_test(test_last_step_evaluated),
        cmocka_unit_test(test_red_on_quantized_base),
        cmocka_unit_test(test_resume_red),
        cmocka_unit_test(test_resume_full),
        cmocka_unit_test(test_resume_old_state),
        cmocka_unit_test(test_eval_best_text),
        cmocka_unit_test(test_state_path_checked_first),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
