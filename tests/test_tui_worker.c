/* The model's use count and the workbench's worker (src/model/model.c, src/tui/worker.c,
 * src/tui/app.c): a model in use refuses every change and changes nothing; the worker
 * holds its job's model from post to end, so the Lua console or a key cannot change the
 * compute mode under a running job; the workbench checks the worker itself, not only its
 * own flags, before it changes the model; quitting drains the worker's queue while it waits
 * (a worker blocked on a full queue would otherwise never end). On the bundled model. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../src/tui/app.h"
#include "../src/tui/tui_config.h"
#include "helpers/tiny_model.h"
#include "redit/dataset.h"
#include "redit/edits.h"
#include "redit/mc_eval.h"
#include "redit/model.h"

#define MODEL "models/redit-base.gguf"

typedef struct fixture {
    char dir[300];
    char train_path[400];
    rd_model *m;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(tiny_tempdir(f->dir, sizeof f->dir), 0);
    rd_error err = {0};
    if (!(f->m = rd_model_load(MODEL, NULL, &err))) fail_msg("%s", err.msg);
    snprintf(f->train_path, sizeof f->train_path, "%s/train.jsonl", f->dir);
    FILE *fp = fopen(f->train_path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 64; i++)
        fprintf(fp, "{\"instruction\": \"Name item %d.\", \"output\": \"It is the cat.\"}\n", i);
    fclose(fp);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    rd_model_free(f->m);
    tiny_rmdir(f->dir);
    free(f);
    return 0;
}

static void assert_refused(int rc, const rd_error *err) {
    assert_int_equal(rc, -1);
    if (!strstr(err->msg, "uses the model")) fail_msg("unexpected message: %s", err->msg);
}

/* While a begin has no end, set_compute, repack and make_trainable fail and change
 * nothing; the count nests; after the last end they work. */
static void test_model_in_use_refuses_changes(void **state) {
    fixture *f = *state;
    rd_model *m = f->m;
    rd_error err = {0};
    assert_false(rd_model_in_use(m));
    rd_model_use_begin(m);
    rd_model_use_begin(m);
    assert_true(rd_model_in_use(m));
    const rd_compute before = rd_model_compute(m);
    assert_refused(rd_model_set_compute(m, RD_COMPUTE_F32, 1, &err), &err);
    assert_refused(rd_model_repack(m, &err), &err);
    assert_refused(rd_model_make_trainable(m, &err), &err);
    assert_null(m->params);
    assert_int_equal(rd_model_compute(m), before);
    rd_model_use_end(m);
    assert_true(rd_model_in_use(m));
    assert_refused(rd_model_set_compute(m, RD_COMPUTE_F32, 1, &err), &err);
    rd_model_use_end(m);
    assert_false(rd_model_in_use(m));
    assert_int_equal(rd_model_set_compute(m, RD_COMPUTE_F32, 1, &err), 0);
}

/* Polls until cond() or a few seconds passed. */
static int wait_until(int (*cond)(const tui_worker *), const tui_worker *w) {
    for (int i = 0; i < 3000; i++) {
        if (cond(w)) return 1;
        struct timespec ms = {0, 10000000};
        nanosleep(&ms, NULL);
    }
    return cond(w);
}

#define QUEUE 4
static int queue_full(const tui_worker *w) { return tui_worker_queued(w) == QUEUE; }

/* A training job whose events nobody drains: the worker fills its small queue and waits.
 * Meanwhile the model is in use (the console's model:compute would be refused), and the
 * workbench, whose own flags say idle, refuses to start training (which would change the
 * compute mode first). app_finish_jobs then ends it: it must drain while it waits. */
static void test_worker_holds_model_and_quit_drains(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    tui_app *a = calloc(1, sizeof *a);
    assert_non_null(a);
    a->model = f->m;
    tui_session_init(&a->session, f->dir, "worker");
    tui_config *c = &a->session.config;
    snprintf(c->train_path, sizeof c->train_path, "%s", f->train_path);
    if (!(a->worker = tui_worker_new(QUEUE, &err))) fail_msg("%s", err.msg);
    rd_edit_spec spec = tui_config_edit_spec(c);
    rd_edits *e = rd_edits_new(rd_model_config(f->m), &spec, &err);
    assert_non_null(e);
    rd_train_opts topts = tui_config_train_opts(c);
    rd_data_opts dopts = tui_config_data_opts(c);
    topts.epochs = 50;
    topts.batch = topts.micro_batch = 1;
    topts.max_len = dopts.max_len = 128;
    tui_train_job job = {.model = f->m, .edits = e, .train_path = f->train_path, .eval_path = "",
                         .data = dopts, .train = topts};
    assert_int_equal(tui_worker_start_train(a->worker, &job, &err), 0);
    a->edits = e; /* as app_train does: the session's edits are the ones being trained */
    assert_true(rd_model_in_use(f->m)); /* from the post on */
    if (!wait_until(queue_full, a->worker)) fail_msg("the worker did not fill its queue");
    assert_int_equal(tui_worker_busy(a->worker), TUI_JOB_TRAIN);
    assert_true(rd_model_in_use(f->m));
    assert_refused(rd_model_set_compute(f->m, RD_COMPUTE_F32, 1, &err), &err);

    /* the UI's flags say idle; the worker is not */
    assert_int_equal(a->training, 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(app_train(a, &err), -1);
    if (!strstr(err.msg, "still ending")) fail_msg("app_train: %s", err.msg);
    assert_int_equal(tui_worker_busy(a->worker), TUI_JOB_TRAIN);
    assert_int_equal(a->session.n_runs, 0);

    /* quitting: a hang here is killed by the alarm and fails the suite */
    a->training = 1;
    alarm(60);
    app_finish_jobs(a);
    alarm(0);
    assert_int_equal(tui_worker_busy(a->worker), TUI_JOB_NONE);
    assert_false(rd_model_in_use(f->m));
    assert_int_equal(a->training, 0); /* its TRAIN_DONE was handled */
    assert_int_equal(tui_worker_queued(a->worker), 0);
    assert_int_equal(rd_model_set_compute(f->m, RD_COMPUTE_F32, 1, &err), 0);

    tui_worker_free(a->worker);
    rd_edits_free(a->edits);
    tui_session_release(&a->session);
    free(a);
}

/* A chat job holds the model too, from the post until the worker has let go of it. */
static void test_chat_job_holds_model(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    tui_worker *w = tui_worker_new(QUEUE, &err);
    assert_non_null(w);
    int prompt[3] = {1, 100, 200};
    tui_chat_job job = {.model = f->m, .prompt = prompt, .n_prompt = 3,
                        .gen = {.max_tokens = 100}, .stop_text = ""};
    assert_int_equal(tui_worker_start_chat(w, &job, &err), 0);
    assert_true(rd_model_in_use(f->m));
    assert_refused(rd_model_set_compute(f->m, RD_COMPUTE_F32, 0, &err), &err);
    tui_event evs[16];
    int done = 0;
    for (int i = 0; i < 30000 && tui_worker_busy(w); i++) {
        for (size_t n = tui_worker_drain(w, evs, 16), k = 0; k < n; k++)
            done += evs[k].kind == TUI_EV_CHAT_DONE || evs[k].kind == TUI_EV_ERROR;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    assert_int_equal(tui_worker_busy(w), TUI_JOB_NONE);
    for (size_t n = tui_worker_drain(w, evs, 16), k = 0; k < n; k++)
        done += evs[k].kind == TUI_EV_CHAT_DONE || evs[k].kind == TUI_EV_ERROR;
    assert_int_equal(done, 1);
    assert_false(rd_model_in_use(f->m));
    tui_worker_free(w);
}

/* Drains w until it is idle: counts the events of kind `kind` and of TUI_EV_ERROR, and
 * appends chat text to side[0] / side[1] (cap bytes each). */
static void drain_idle(tui_worker *w, tui_event_kind kind, int *n_kind, int *n_error,
                       char (*side)[512], size_t cap) {
    tui_event evs[16];
    for (int i = 0; i < 600000; i++) {
        const int idle = tui_worker_busy(w) == TUI_JOB_NONE; /* then drain what is left */
        for (size_t n = tui_worker_drain(w, evs, 16), k = 0; k < n; k++) {
            *n_kind += evs[k].kind == kind;
            if (evs[k].kind == TUI_EV_ERROR) {
                (*n_error)++;
                fprintf(stderr, "worker error: %s\n", evs[k].text);
            }
            if (side && evs[k].kind == TUI_EV_CHAT_TEXT) {
                char *s = side[evs[k].side];
                strncat(s, evs[k].text, cap - strlen(s) - 1);
            }
        }
        if (idle) return;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    fail_msg("the worker never became idle");
}

/* The workbench's full fine-tuning: the job trains a copy of the model (not held "in use":
 * rd_train_full changes it; the loaded model is untouched), and a chat with that copy as the
 * edited model answers with the tuned weights on side 1 (the base model on side 0). */
static void test_full_job_and_tuned_chat(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_model *copy = rd_model_load(MODEL, NULL, &err);
    if (!copy || rd_model_make_trainable(copy, &err)) fail_msg("%s", err.msg);
    tui_worker *w = tui_worker_new(QUEUE, &err);
    assert_non_null(w);
    rd_train_opts o = rd_train_opts_defaults();
    o.lr = 1e-3;
    o.batch = o.micro_batch = 8;
    o.max_steps = 8;
    o.max_len = 128;
    rd_data_opts d = rd_data_opts_defaults();
    d.max_len = 128;
    tui_train_job job = {.model = copy, .full_model = copy, .train_path = f->train_path,
                         .eval_path = "", .data = d, .train = o};
    /* a full job takes no edits, and fine-tunes the model it names */
    rd_edit_spec spec = {.sites = RD_SITE_FFN, .layers = "all", .scale = 1, .bias = 1};
    rd_edits *e = rd_edits_new(rd_model_config(copy), &spec, &err);
    tui_train_job bad = job;
    bad.edits = e;
    assert_int_equal(tui_worker_start_train(w, &bad, &err), -1);
    bad = job;
    bad.model = f->m;
    assert_int_equal(tui_worker_start_train(w, &bad, &err), -1);
    rd_edits_free(e);

    assert_int_equal(tui_worker_start_train(w, &job, &err), 0);
    assert_false(rd_model_in_use(copy));
    int done = 0, errors = 0;
    drain_idle(w, TUI_EV_TRAIN_DONE, &done, &errors, NULL, 0);
    assert_int_equal(done, 1);
    assert_int_equal(errors, 0);

    int prompt[3] = {1, 100, 200};
    rd_gen_opts gen = {.sampling = rd_sampling_defaults(), .max_tokens = 16};
    gen.sampling.temperature = 0; /* greedy: the same model answers alike */
    tui_chat_job chat = {.model = f->m, .columns = {{NULL, NULL}, {copy, NULL}}, .n_columns = 2,
                         .prompt = prompt, .n_prompt = 3, .gen = gen, .stop_text = ""};
    tui_chat_job wrong = chat;
    wrong.columns[1].edits = (const rd_edits *)1; /* never read: refused first */
    assert_int_equal(tui_worker_start_chat(w, &wrong, &err), -1);
    assert_non_null(strstr(err.msg, "takes no edits"));
    char text[2][512] = {"", ""};
    assert_int_equal(tui_worker_start_chat(w, &chat, &err), 0);
    done = errors = 0;
    drain_idle(w, TUI_EV_CHAT_DONE, &done, &errors, text, sizeof text[0]);
    assert_int_equal(done, 2);
    assert_int_equal(errors, 0);
    assert_true(text[0][0] && text[1][0]);
    if (!strcmp(text[0], text[1])) fail_msg("the tuned model answered as the base: \"%s\"", text[0]);
    /* the same chat with the base model on both sides answers alike: the difference is the
     * tuned weights */
    char again[2][512] = {"", ""};
    chat.columns[1].model = f->m;
    assert_int_equal(tui_worker_start_chat(w, &chat, &err), 0);
    done = errors = 0;
    drain_idle(w, TUI_EV_CHAT_DONE, &done, &errors, again, sizeof again[0]);
    assert_string_equal(again[0], again[1]);
    assert_string_equal(again[0], text[0]);
    /* four columns side by side: the base, the tuned copy, identity edits (= the base) and
     * the base again; a column with another model takes no edits */
    rd_edit_spec spec2 = {.sites = RD_SITE_FFN, .layers = "all", .scale = 1, .bias = 1};
    rd_edits *id = rd_edits_new(rd_model_config(f->m), &spec2, &err);
    assert_non_null(id);
    char four[4][512] = {"", "", "", ""};
    tui_chat_job cols = {.model = f->m, .columns = {{NULL, NULL}, {copy, NULL}, {NULL, id}, {f->m, NULL}},
                         .n_columns = 4, .prompt = prompt, .n_prompt = 3, .gen = gen,
                         .stop_text = ""};
    assert_int_equal(tui_worker_start_chat(w, &cols, &err), 0);
    done = errors = 0;
    drain_idle(w, TUI_EV_CHAT_DONE, &done, &errors, four, sizeof four[0]);
    assert_int_equal(done, 4);
    assert_int_equal(errors, 0);
    assert_string_equal(four[0], text[0]);
    assert_string_equal(four[1], text[1]);
    assert_string_equal(four[2], text[0]);
    assert_string_equal(four[3], text[0]);
    cols.n_columns = TUI_CHAT_MAX_COLUMNS + 1;
    assert_int_equal(tui_worker_start_chat(w, &cols, &err), -1);
    rd_edits_free(id);
    tui_worker_free(w);
    rd_model_free(copy);
}

/* A job's last event is queued only once the worker is idle: a UI that has just drained
 * it can post the next job at once (before, the worker still freed the job's contexts
 * after queueing it, and a chat typed right after training ended could be refused with
 * "the last job is still ending"). Spins without sleeping, to catch such a window. */
static void test_last_event_when_idle(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    tui_worker *w = tui_worker_new(QUEUE, &err);
    assert_non_null(w);
    int prompt[3] = {1, 100, 200};
    rd_edit_spec spec = {.sites = RD_SITE_FFN, .layers = "all", .scale = 1, .bias = 1};
    rd_edits *e = rd_edits_new(rd_model_config(f->m), &spec, &err);
    assert_non_null(e);
    for (int round = 0; round < 300; round++) {
        rd_gen_opts gen = {.sampling = rd_sampling_defaults(), .max_tokens = 4};
        const int sides = round % 2 ? 2 : 1;
        tui_chat_job job = {.model = f->m, .columns = {{NULL, NULL}, {NULL, e}},
                            .n_columns = sides, .prompt = prompt, .n_prompt = 3, .gen = gen,
                            .stop_text = ""};
        assert_int_equal(tui_worker_start_chat(w, &job, &err), 0);
        int done = 0;
        tui_event evs[16];
        for (long spin = 0; done < sides; spin++) {
            if (spin > 2000000000L) fail_msg("the chat never ended");
            for (size_t n = tui_worker_drain(w, evs, 16), k = 0; k < n; k++) {
                if (evs[k].kind == TUI_EV_ERROR) fail_msg("round %d: %s", round, evs[k].text);
                done += evs[k].kind == TUI_EV_CHAT_DONE;
            }
        }
        if (tui_worker_busy(w) != TUI_JOB_NONE)
            fail_msg("round %d: the last CHAT_DONE was handled while the worker was busy", round);
        assert_false(rd_model_in_use(f->m));
    }
    rd_edits_free(e);
    tui_worker_free(w);
}

/* Drains w until it is idle; *last gets the job's last event (MC_DONE or ERROR). Returns the
 * MC_STATUS events seen. */
static int drain_mc(tui_worker *w, tui_event *last) {
    tui_event evs[16];
    int n_status = 0;
    for (int i = 0; i < 600000; i++) {
        const int idle = tui_worker_busy(w) == TUI_JOB_NONE;
        for (size_t n = tui_worker_drain(w, evs, 16), k = 0; k < n; k++) {
            n_status += evs[k].kind == TUI_EV_MC_STATUS;
            if (evs[k].kind == TUI_EV_MC_DONE || evs[k].kind == TUI_EV_ERROR) *last = evs[k];
        }
        if (idle) return n_status;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    fail_msg("the worker never became idle");
    return n_status;
}

/* The workbench's multiple-choice evaluation: the job scores the file with the base model and
 * with the edits at the strength (what rd_mc_score gives for each), compares them (McNemar
 * as rd_mc_mcnemar), holds the model while it runs; a stop ends it with n = 0; a bad file
 * ends it with ERROR naming the file. */
static void test_mc_job(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    char path[400];
    snprintf(path, sizeof path, "%s/mc.jsonl", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 12; i++)
        fprintf(fp, "{\"context\": \"Human: Define the word %s.\\n\\nAssistant:\", \"choices\": "
                    "[\" A boy or man.\", \" Wetness caused by water.\", \" Taken unawares.\"], "
                    "\"gold\": %d}\n", i % 3 ? "fellow" : "surprised", i % 3);
    fclose(fp);
    rd_edit_spec spec = {.sites = RD_SITE_FFN, .layers = "all", .scale = 1, .bias = 1};
    rd_edits *e = rd_edits_new(rd_model_config(f->m), &spec, &err);
    assert_non_null(e);
    float *p = rd_edits_params(e);
    for (size_t i = 0; i < rd_edits_param_count(e); i++) p[i] += 0.3f * (float)((i * 7919) % 13) / 13.0f - 0.1f;
    tui_worker *w = tui_worker_new(QUEUE, &err);
    assert_non_null(w);
    tui_mc_job job = {.model = f->m, .edits = e, .strength = 0.8f, .path = path, .max_len = 64};
    assert_int_equal(tui_worker_start_mc(w, &job, &err), 0);
    assert_true(rd_model_in_use(f->m));
    tui_event done;
    int n_status = drain_mc(w, &done);
    if (done.kind == TUI_EV_ERROR) fail_msg("%s", done.text);
    assert_int_equal(done.kind, TUI_EV_MC_DONE);
    assert_int_equal(n_status, 2);
    assert_false(rd_model_in_use(f->m));
    assert_string_equal(done.text, path);
    rd_mc_set *s = rd_mc_load(path, &err);
    assert_non_null(s);
    rd_mc_scores r[2];
    const rd_edits_view view = rd_edits_view_at(e, 0.8f);
    assert_int_equal(rd_mc_score(f->m, NULL, s, 64, NULL, &r[0], &err), 0);
    assert_int_equal(rd_mc_score(f->m, &view, s, 64, NULL, &r[1], &err), 0);
    const tui_mc_result *m = &done.mc;
    assert_int_equal(m->n, 12);
    assert_int_equal(m->n_choices, 36);
    assert_int_equal(m->style, RD_MC_PLAIN);
    for (int k = 0; k < 2; k++) {
        assert_true(m->acc[k] == r[k].acc && m->acc_norm[k] == r[k].acc_norm);
        assert_true(m->acc_stderr[k] == r[k].acc_stderr);
        assert_true(m->acc_norm_stderr[k] == r[k].acc_norm_stderr);
    }
    long b, c;
    assert_true(m->p[0] == rd_mc_mcnemar(s, r[0].pred, r[1].pred, &b, &c));
    assert_int_equal(m->only_base[0], b);
    assert_int_equal(m->only_edited[0], c);
    assert_true(m->p[1] == rd_mc_mcnemar(s, r[0].pred_norm, r[1].pred_norm, &b, &c));
    assert_int_equal(m->only_base[1], b);
    assert_int_equal(m->only_edited[1], c);
    /* the edits moved some log-likelihood (else the comparison tests nothing) */
    int moved = 0;
    for (size_t i = 0; i < r[0].offset[12]; i++) moved += r[0].loglik[i] != r[1].loglik[i];
    assert_true(moved > 0);
    rd_mc_scores_release(&r[0]);
    rd_mc_scores_release(&r[1]);
    rd_mc_free(s);
    /* stopped at once: MC_DONE with no items */
    assert_int_equal(tui_worker_start_mc(w, &job, &err), 0);
    tui_worker_stop(w);
    drain_mc(w, &done);
    assert_int_equal(done.kind, TUI_EV_MC_DONE);
    assert_int_equal(done.mc.n, 0);
    /* a missing file: ERROR naming it */
    job.path = "no-such-mc.jsonl";
    assert_int_equal(tui_worker_start_mc(w, &job, &err), 0);
    drain_mc(w, &done);
    assert_int_equal(done.kind, TUI_EV_ERROR);
    assert_non_null(strstr(done.text, "no-such-mc.jsonl"));
    tui_worker_free(w);
    rd_edits_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_in_use_refuses_changes),
        cmocka_unit_test(test_worker_holds_model_and_quit_drains),
        cmocka_unit_test(test_chat_job_holds_model),
        cmocka_unit_test(test_full_job_and_tuned_chat),
        cmocka_unit_test(test_last_event_when_idle),
        cmocka_unit_test(test_mc_job),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
