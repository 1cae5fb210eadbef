/* The workbench: start-up (model, session, edits, worker, console), the main loop that polls
 * {stdin, the worker's eventfd}, global keys, the worker's events, and the actions panes and
 * the Lua console share. Every path out restores the terminal. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime, sigaction under -std=c17 */
#endif
#include "app.h"

#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "redit/chat_format.h"
#include "redit/dataset.h"
#include "redit/dtype.h"
#include "redit/lua_red.h"
#include "redit/model_file.h"
#include "tui_config.h"

double app_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void app_notify(tui_app *a, int is_error, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->message, sizeof a->message, fmt, ap);
    va_end(ap);
    a->message_is_error = is_error;
    a->message_logged = 0;
    a->dirty = 1;
}

/* Lays the panes out for the terminal's size, the zoom and the notice's rows into a->layout;
 * a notice cut at this width is printed in full in the console (once). */
static void app_layout(tui_app *a) {
    int cut = 0;
    int rows = a->message[0] ? tui_message_rows(a->message, COLS, &cut) : 1;
    tui_layout_compute_message(COLS, LINES, a->zoom, rows, &a->layout);
    if (cut && !a->message_logged && a->console && !a->layout.too_small) {
        console_print(a->console, a->message);
        console_print(a->console, "\n");
        a->message_logged = 1;
    }
}

/* ---- signals and the terminal ----------------------------------------------------------
 * A signal handler has no user pointer: the app being run is reachable from the handlers
 * through this one pointer, set while rd_workbench_run runs (one workbench per process). */
static tui_app *volatile running_app;

static void restore_terminal(void) {
    if (!isendwin()) endwin();
}

static void on_interrupt(int sig) {
    (void)sig;
    tui_app *a = running_app;
    if (!a) return;
    a->interrupted = 1;
    if (a->console) rd_lua_request_stop(console_lua(a->console));
}

/* SIGTERM / SIGHUP: leave as F10 does (stop the job at its next step, save the session). */
static void on_terminate(int sig) {
    (void)sig;
    tui_app *a = running_app;
    if (a) a->quit = 1;
}

static void on_fatal(int sig) {
    restore_terminal(); /* not async-signal-safe, but the process is going down anyway */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_terminate;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    int fatal[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGQUIT};
    for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++) signal(fatal[i], on_fatal);
    atexit(restore_terminal);
}

static void start_screen(tui_app *a) {
    set_escdelay(25);
    initscr();
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    const char *ascii = getenv("REDIT_ASCII");
    a->utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8") && !(ascii && *ascii && *ascii != '0');
    a->colors = has_colors();
    if (a->colors) {
        start_color();
        use_default_colors();
        static const short series[SERIES_COLORS] = {COLOR_CYAN,  COLOR_YELLOW, COLOR_MAGENTA,
                                                    COLOR_GREEN, COLOR_BLUE,   COLOR_RED};
        for (int i = 0; i < SERIES_COLORS; i++) init_pair((short)(COLOR_SERIES_FIRST + i), series[i], -1);
        init_pair(PAIR_TITLE, COLOR_BLACK, COLOR_CYAN);
        init_pair(PAIR_FOCUS, COLOR_BLACK, COLOR_YELLOW);
        init_pair(PAIR_ERROR, COLOR_RED, -1);
        init_pair(PAIR_DIM, COLOR_BLUE, -1);
        init_pair(PAIR_OK, COLOR_GREEN, -1);
        init_pair(PAIR_BASE, COLOR_CYAN, -1);
        init_pair(PAIR_EDITED, COLOR_MAGENTA, -1);
    }
    app_layout(a);
}

/* ---- the model and the session ----------------------------------------------------------- */

static void describe_model(tui_app *a) {
    rd_model_info info;
    rd_model_describe(a->model, &info);
    const rd_dtype_info *t = rd_dtype_info_of(info.layer_type);
    a->model_params = (double)rd_model_param_count(a->model);
    double p = a->model_params;
    char count[32];
    if (p >= 1e9) snprintf(count, sizeof count, "%.2fB", p / 1e9);
    else if (p >= 1e6) snprintf(count, sizeof count, "%.1fM", p / 1e6);
    else snprintf(count, sizeof count, "%.1fK", p / 1e3);
    snprintf(a->model_name, sizeof a->model_name, "%s", info.name);
    snprintf(a->model_detail, sizeof a->model_detail, "%s %s · %s params",
             rd_file_format_name(info.format), t ? t->name : "?", count);
    snprintf(a->model_warning, sizeof a->model_warning, "%s", info.nonfinite ? info.nonfinite : "");
}

/* Fresh (identity) edits of the configured sites and layers; NULL with *err when the
 * configuration does not fit the model. */
static rd_edits *configured_edits(const tui_app *a, rd_error *err) {
    rd_edit_spec spec = tui_config_edit_spec(&a->session.config);
    return rd_edits_new(rd_model_config(a->model), &spec, err);
}

/* Counts the trainable numbers of the configured edits (after every settings change, not at
 * every redraw: it builds an edit set). 0 when the configuration does not fit the model. */
static void count_edit_params(tui_app *a) {
    if (!strcmp(a->session.config.method, "full")) { /* every weight */
        a->edit_params = (size_t)a->model_params;
        a->edit_ratio = 1;
        return;
    }
    rd_error err = {0};
    rd_edits *e = configured_edits(a, &err);
    a->edit_params = e ? rd_edits_param_count(e) : 0;
    a->edit_ratio = a->edit_params ? a->model_params / (double)a->edit_params : 0;
    rd_edits_free(e);
}

static void end_compare(tui_app *a);

/* Replaces the held fine-tuned model by m (owned; NULL: none), the model of run `run`. A
 * run whose model was the old one and is not on disk yet forgets it (it is lost: the save
 * that should have written it failed); a comparison answering with it ends. Only while the
 * worker is idle. */
static void set_tuned(tui_app *a, rd_model *m, int run) {
    if (a->tuned && a->tuned != m) {
        for (int k = 0; k < a->n_compare; k++) /* a compared column answers with it */
            if (a->compare_model[k] == a->tuned && !a->compare_model_owned[k]) end_compare(a);
        for (size_t i = 0; i < a->session.n_runs; i++)
            if (a->session.runs[i].model == a->tuned) a->session.runs[i].model = NULL;
        rd_model_free(a->tuned);
    }
    a->tuned = m;
    a->tuned_run = m ? run : 0;
}

/* Run r's saved model (runs/ID/model.gguf), loaded (owned by the caller), of the loaded
 * model's shape; NULL with *err. */
static rd_model *open_run_model(const tui_app *a, const tui_run *r, rd_error *err) {
    char path[1200];
    tui_session_run_model_path(&a->session, r, path, sizeof path);
    if (!path[0]) {
        rd_error_set(err, "run #%d has no saved model", r->id);
        return NULL;
    }
    rd_load_opts lo = {.tokenizer_path = a->args.tokenizer_path};
    rd_model *m = rd_model_load(path, &lo, err);
    if (!m) {
        rd_error_prefix(err, "run #%d's fine-tuned model", r->id);
        return NULL;
    }
    const rd_config *x = rd_model_config(m), *y = rd_model_config(a->model);
    if (x->dim != y->dim || x->n_layers != y->n_layers || x->vocab_size != y->vocab_size ||
        !rd_model_tokenizer(m) != !rd_model_tokenizer(a->model)) {
        rd_model_free(m);
        rd_error_set(err, "%s is not a fine-tuned copy of this model", path);
        return NULL;
    }
    return m;
}

/* Loads run r's saved model as the held fine-tuned model. 0, or -1 with *err. */
static int load_run_model(tui_app *a, const tui_run *r, rd_error *err) {
    rd_model *m = open_run_model(a, r, err);
    if (!m) return -1;
    set_tuned(a, m, r->id);
    return 0;
}

/* Opens the session: restored when it exists (files of killed saves are tidied away), else
 * new with the command line's data sets. A damaged one is never written over: its folder
 * is moved aside (the user is told where) and a fresh session takes the name; when it
 * cannot be moved, the fresh session gets another name. A restored session recognises its
 * model by fingerprint, whatever the path given: another model is refused (-1 with *err,
 * before the screen opens). Then its edits; the session records the model's path as given. */
static int open_session(tui_app *a, rd_error *err) {
    const char *root = a->args.sessions_root ? a->args.sessions_root : "sessions";
    const char *name = a->args.session ? a->args.session : "default";
    rd_error lerr = {0};
    int restored = 0;
    char note[700] = "";
    if (tui_session_exists(root, name)) {
        if (tui_session_load(root, name, &a->session, &lerr) == 0) {
            restored = 1;
        } else {
            char moved[1300];
            rd_error e2 = {0};
            if (tui_session_move_aside(root, name, moved, sizeof moved, &e2) == 0) {
                app_notify(a, 1, "session %s is damaged: moved aside to %s, untouched; this is a "
                                 "fresh one (%s)", name, moved, lerr.msg);
                tui_session_init(&a->session, root, name);
            } else {
                char fresh[65];
                snprintf(fresh, sizeof fresh, "%.40s-new-%ld", name, (long)time(NULL));
                app_notify(a, 1, "session %s is damaged and stays as it is: new work is saved "
                                 "as session %s (%s; %s)", name, fresh, lerr.msg, e2.msg);
                tui_session_init(&a->session, root, fresh);
            }
        }
    } else {
        tui_session_init(&a->session, root, name);
    }
    if (restored) {
        switch (tui_session_check_model(&a->session, a->model, err)) {
        case TUI_MODEL_OTHER: return -1; /* untouched: nothing was tidied or saved */
        case TUI_MODEL_SAME_SAMPLED:
            snprintf(note, sizeof note, "; its model was recognised by the sampled fingerprint "
                                        "of an earlier redit (the next save records the full one)");
            break;
        case TUI_MODEL_SAME: {
            struct stat st;
            if (strcmp(a->session.model_path, a->args.model_path) &&
                stat(a->session.model_path, &st) != 0)
                snprintf(note, sizeof note, "; its model found again at %.300s (it was %.300s)",
                         a->args.model_path, a->session.model_path);
            break;
        }
        case TUI_MODEL_NEW: break;
        }
        tui_session_tidy(&a->session);
    }
    a->restored = restored;
    tui_config *c = &a->session.config;
    if (!restored) { /* the command line's data sets seed a new session only */
        if (a->args.train_path)
            snprintf(c->train_path, sizeof c->train_path, "%s", a->args.train_path);
        if (a->args.eval_path) snprintf(c->eval_path, sizeof c->eval_path, "%s", a->args.eval_path);
    } else if ((a->args.train_path && strcmp(a->args.train_path, c->train_path)) ||
               (a->args.eval_path && strcmp(a->args.eval_path, c->eval_path))) {
        const size_t used = strlen(note);
        snprintf(note + used, sizeof note - used, "; it keeps its data sets (--set train_path=... "
                                                  "changes them)");
    }
    snprintf(a->session.model_path, sizeof a->session.model_path, "%s", a->args.model_path);
    snprintf(a->session.model_fingerprint, sizeof a->session.model_fingerprint, "%016llx",
             (unsigned long long)rd_model_fingerprint(a->model));

    char path[1100];
    tui_session_edits_path(&a->session, path, sizeof path);
    if (restored && path[0]) {
        rd_error e2 = {0};
        a->edits = rd_edits_load(path, a->model, 0, NULL, &e2);
        if (!a->edits) app_notify(a, 1, "the session's edits were not loaded: %s", e2.msg);
    }
    const tui_run *cur = tui_session_find_run(&a->session, a->session.current_run);
    if (restored && cur && cur->model_file[0]) { /* a full run's model answers the chat */
        rd_error e2 = {0};
        if (load_run_model(a, cur, &e2))
            app_notify(a, 1, "the session's fine-tuned model was not loaded: %s", e2.msg);
        else
            a->use_tuned = 1;
    }
    if (!a->edits) {
        rd_error e3 = {0};
        a->edits = configured_edits(a, &e3);
        if (!a->edits) { /* e.g. a layer list for a deeper model: fall back to all layers */
            snprintf(c->layers, sizeof c->layers, "all");
            a->edits = configured_edits(a, &e3);
        }
    }
    if (restored && !a->message[0])
        app_notify(a, 0, "session %s restored: %zu run(s), %zu chat turn(s)%s", name,
                   a->session.n_runs, a->session.n_chat, note);
    if (a->model_warning[0] && !a->message[0])
        app_notify(a, 1, "the model is broken: %s (its outputs are NaN, training stops at once)",
                   a->model_warning);
    return 0;
}

/* "key=value" from the command line. */
static int apply_setting(tui_app *a, const char *kv, rd_error *err) {
    const char *eq = strchr(kv, '=');
    if (!eq) return rd_error_set(err, "expected key=value");
    char key[64];
    size_t n = (size_t)(eq - kv);
    if (n >= sizeof key) return rd_error_set(err, "unknown setting");
    memcpy(key, kv, n);
    key[n] = '\0';
    return app_set_field(a, key, eq + 1, err);
}

int app_save(tui_app *a, rd_error *err) {
    if (a->training) return rd_error_set(err, "the session is saved when training ends");
    return tui_session_save(&a->session, a->edits, a->model, err);
}

/* ---- actions ----------------------------------------------------------------------------- */

/* Fields that training reads cannot change while it runs. */
static int training_field(const char *key) {
    return strcmp(key, "temperature") && strcmp(key, "top_p") && strcmp(key, "max_tokens") &&
           strcmp(key, "strength") && strcmp(key, "system") && strcmp(key, "mc_path");
}

int app_set_field(tui_app *a, const char *key, const char *text, rd_error *err) {
    const tui_field *f = tui_config_find(key);
    if (!f) return rd_error_set(err, "unknown setting \"%s\"", key);
    if (a->training && training_field(key))
        return rd_error_set(err, "%s cannot change while training runs (Esc stops it)", key);
    if (tui_config_set(&a->session.config, f, text, err)) return -1;
    count_edit_params(a);
    a->dirty = 1;
    return 0;
}

/* Refuses while a job runs: the UI's flags first (they give the message), then the
 * worker's own state (its events not handled yet; once the UI has handled a job's last
 * event the worker is idle: tui_worker_busy). */
static int busy_error(const tui_app *a, rd_error *err) {
    if (a->training) return rd_error_set(err, "training is running (Esc stops it)");
    if (a->chatting) return rd_error_set(err, "an answer is being written (Esc stops it)");
    if (a->evaluating)
        return rd_error_set(err, "a multiple-choice evaluation is running (Esc stops it)");
    if (tui_worker_busy(a->worker))
        return rd_error_set(err, "the last job is still ending; try again in a moment");
    return 0;
}

/* Decode's 8-bit activation products on quantized weights, as the configured compute mode
 * says: on for every mode but the f32 reference. Only while the worker is idle. */
static int apply_products(tui_app *a, rd_error *err) {
    return rd_model_set_quant_products(a->model, strcmp(a->session.config.compute, "f32") != 0,
                                       err);
}

/* Puts the model in the configured compute mode (with the backward layout training needs).
 * Only while the worker is idle (busy_error checked it): the UI thread is then the model's
 * only user, and stays so until it posts the next job. */
static int apply_compute(tui_app *a, const char *name, rd_error *err) {
    rd_compute mode;
    if (rd_compute_from_name(name, &mode))
        return rd_error_set(err, "compute: '%s' is not one of auto, f32, bf16", name);
    if (apply_products(a, err)) return -1;
    if (mode == rd_model_compute(a->model)) return 0;
    return rd_model_set_compute(a->model, mode, 1, err);
}

/* The next run's label: its number, the method and its shape, the learning rate — "#1 ffn
 * all s b lr 0.05" (RED), "#3 lora r8 q,v lr 0.0005", "#4 ia3 0-3 lr 0.01" — so runs of
 * different methods in one chart have distinct legends. */
static void run_label(const tui_app *a, char *label, size_t cap) {
    const tui_config *c = &a->session.config;
    char shape[256], dropout[32] = "", layers[80] = "";
    if (c->dropout > 0) snprintf(dropout, sizeof dropout, " drop %g", c->dropout);
    if (strcmp(c->layers, "all")) snprintf(layers, sizeof layers, " %s", c->layers);
    if (!strcmp(c->method, "lora")) {
        char alpha[48] = "", ldrop[48] = "";
        if (c->lora_alpha != RD_LORA_DEFAULT_ALPHA) snprintf(alpha, sizeof alpha, " a%g", c->lora_alpha);
        if (c->lora_dropout > 0) snprintf(ldrop, sizeof ldrop, " ld %g", c->lora_dropout);
        snprintf(shape, sizeof shape, "lora r%d %s%s%s%s", c->rank, c->lora_targets, alpha, ldrop,
                 layers);
    } else if (!strcmp(c->method, "ia3")) {
        snprintf(shape, sizeof shape, "ia3%s", layers);
    } else if (!strcmp(c->method, "full")) {
        snprintf(shape, sizeof shape, "full");
    } else {
        snprintf(shape, sizeof shape, "%s %s%s%s", c->sites, c->layers, c->scale ? " s" : "",
                 c->bias ? " b" : "");
    }
    snprintf(label, cap, "#%d %s lr %g%s%s", a->session.next_run_id, shape, c->lr, dropout,
             rd_model_compute(a->model) == RD_COMPUTE_BF16 ? " bf16" : "");
}

int app_train(tui_app *a, rd_error *err) {
    if (busy_error(a, err)) return -1;
    const tui_config *c = &a->session.config;
    if (tui_config_validate(c, rd_model_config(a->model)->n_layers, err)) return -1;
    if (apply_compute(a, c->compute, err)) return -1;
    const int full = !strcmp(c->method, "full");
    rd_edits *e = NULL;
    rd_model *copy = NULL;
    if (full) { /* a second copy of the model, trainable, in the same compute mode */
        /* the session keeps the trained copy (runs/ID/model.gguf): refuse before training
         * when it could not be saved */
        if (tui_session_check_space(a->session.root, a->session.name,
                                    tui_session_model_bytes(a->model), err))
            return rd_error_prefix(err, "full fine-tuning: the trained model could not be "
                                        "saved with the session");
        rd_load_opts lo = {.tokenizer_path = a->args.tokenizer_path};
        copy = rd_model_load(a->args.model_path, &lo, err);
        if (!copy) return rd_error_prefix(err, "full fine-tuning trains a copy of the model");
        const rd_compute mode = rd_model_compute(a->model);
        if ((mode != RD_COMPUTE_F32 && rd_model_set_compute(copy, mode, 1, err)) ||
            rd_model_make_trainable(copy, err)) {
            rd_model_free(copy);
            return rd_error_prefix(err, "full fine-tuning");
        }
    } else if (!(e = configured_edits(a, err))) {
        return -1;
    }
    char label[320]; /* the run keeps its first 63 bytes */
    run_label(a, label, sizeof label);
    rd_train_opts topts = tui_config_train_opts(c);
    rd_data_opts dopts = tui_config_data_opts(c);
    int seq = rd_model_config(a->model)->seq_len;
    if (topts.max_len > seq) { /* the model's context is the limit */
        topts.max_len = seq;
        dopts.max_len = seq;
    }
    tui_train_job job = {.model = full ? copy : a->model,
                         .edits = e,
                         .full_model = copy,
                         .train_path = c->train_path,
                         .eval_path = c->eval_path,
                         .eval_split = c->eval_split,
                         .data = dopts,
                         .train = topts};
    if (tui_worker_start_train(a->worker, &job, err)) {
        rd_edits_free(e);
        rd_model_free(copy);
        return -1;
    }
    tui_run *run = tui_session_new_run(&a->session, label);
    if (!run) { /* the job runs anyway; its curve is not recorded */
        app_notify(a, 1, "out of memory for the loss history");
    }
    if (full) { /* the earlier copy goes (the worker is idle: nothing uses it) */
        set_tuned(a, copy, run ? run->id : 0);
        a->use_tuned = 0; /* until the run is over */
    } else {
        rd_edits_free(a->edits);
        a->edits = e;
        a->use_tuned = 0;
    }
    a->run_full = full;
    a->run = run;
    a->training = 1;
    a->stopping = 0;
    a->last = (rd_progress){0};
    a->last_eval = a->last_eval_accuracy = NAN;
    a->n_train = a->n_eval = 0;
    snprintf(a->train_status, sizeof a->train_status, "starting");
    a->last_train_draw = app_now();
    app_notify(a, 0, "training %s", label);
    return 0;
}

int app_stop(tui_app *a) {
    if (!a->training && !a->chatting && !a->evaluating) return 0;
    if (a->evaluating) {
        tui_worker_stop(a->worker);
        snprintf(a->mc_status, sizeof a->mc_status, "stopping the evaluation");
        app_notify(a, 0, "stopping the multiple-choice evaluation");
        return 1;
    }
    if (!a->training) {
        tui_worker_stop(a->worker);
        app_notify(a, 0, "stopping the answers");
        return 1;
    }
    /* Esc once: stop after this step and evaluate it; twice: skip that evaluation. Without
     * a held-out set (known once the data are loaded) there is nothing to skip. */
    const int no_eval = a->n_train > 0 && a->n_eval == 0;
    if (a->stopping == 0) {
        a->stopping = no_eval ? RD_STOP_SKIP_EVAL : RD_STOP_AT_STEP;
        if (no_eval) tui_worker_skip_eval(a->worker);
        else tui_worker_stop(a->worker);
        if (a->n_eval > 0)
            snprintf(a->train_status, sizeof a->train_status,
                     "stopping: evaluating%s (Esc again to skip)", a->utf8 ? "…" : "...");
        else
            snprintf(a->train_status, sizeof a->train_status,
                     "stopping at the next step (best edits kept)");
    } else if (a->stopping == RD_STOP_AT_STEP) {
        a->stopping = RD_STOP_SKIP_EVAL;
        tui_worker_skip_eval(a->worker);
        snprintf(a->train_status, sizeof a->train_status,
                 "stopping: evaluation skipped (the best edits evaluated so far are kept, else "
                 "the last step's)");
    }
    app_notify(a, 0, "%s", a->train_status);
    return 1;
}

/* The chat template: the configured one, else the data format's default. */
static const char *chat_template(const tui_config *c) {
    if (c->template_name[0]) return c->template_name;
    rd_data_format f = RD_DATA_AUTO;
    rd_data_format_from_name(c->format, &f);
    return rd_data_default_template(f);
}

int app_chat(tui_app *a, const char *prompt, rd_error *err) {
    if (a->training)
        return rd_error_set(err, "training is running: chat is available when it stops (Esc "
                                 "stops it)");
    if (busy_error(a, err) || apply_products(a, err)) return -1;
    if (!rd_model_tokenizer(a->model)) return rd_error_set(err, "the model has no tokenizer");
    const tui_config *c = &a->session.config;
    int *ids = NULL;
    size_t n = 0;
    const char *tmpl = chat_template(c);
    if (rd_chat_prompt_ids(rd_model_tokenizer(a->model), tmpl, c->system, NULL, 0, prompt, &ids,
                           &n, err))
        return -1;
    char *stop = rd_chat_turn_start(tmpl, err);
    if (!stop) {
        free(ids);
        return -1;
    }
    rd_gen_opts gen = {.sampling = tui_config_sampling(c),
                       .max_tokens = c->max_tokens,
                       .stop_at_eos = 1};
    tui_chat_job job = {.model = a->model,
                        .strength = (float)c->strength,
                        .prompt = ids,
                        .n_prompt = n,
                        .gen = gen,
                        .stop_text = stop};
    job.n_columns = 1; /* column 0: the base model */
    if (a->n_compare > 0) {
        for (int k = 0; k < a->n_compare; k++)
            job.columns[job.n_columns++] = (tui_chat_column){a->compare_model[k], a->compare_edits[k]};
    } else if (a->use_tuned && a->tuned) {
        job.columns[job.n_columns++] = (tui_chat_column){a->tuned, NULL};
    } else if (a->edits) {
        job.columns[job.n_columns++] = (tui_chat_column){NULL, a->edits};
    }
    int rc = tui_worker_start_chat(a->worker, &job, err);
    free(ids);
    free(stop);
    if (rc) return -1;
    for (int i = 0; i < TUI_CHAT_MAX_COLUMNS; i++) rd_buf_free(&a->answer[i]);
    snprintf(a->chat_prompt, sizeof a->chat_prompt, "%s", prompt);
    for (int i = 0; i < TUI_CHAT_MAX_COLUMNS; i++)
        snprintf(a->answer_title[i], sizeof a->answer_title[i], "%s",
                 i > 0 && i <= a->n_compare ? a->compare_title[i - 1] : "");
    a->n_answers = job.n_columns < 2 ? 2 : job.n_columns;
    a->chatting = job.n_columns;
    a->chat_scroll = 0;
    a->dirty = 1;
    return 0;
}

int app_eval_mc(tui_app *a, const char *path, rd_error *err) {
    const tui_config *c = &a->session.config;
    if (!path || !*path) path = c->mc_path;
    if (!*path)
        return rd_error_set(err, "no multiple-choice file: set \"mc file\" in the data group "
                                 "(wb.set(\"mc_path\", FILE)) or give one (wb.eval_mc(FILE))");
    if (busy_error(a, err) || apply_compute(a, c->compute, err)) return -1;
    const int seq = rd_model_config(a->model)->seq_len;
    tui_mc_job job = {.model = a->model,
                      .strength = (float)c->strength,
                      .path = path,
                      .max_len = c->max_len < seq ? c->max_len : seq};
    const tui_run *cur = tui_session_find_run(&a->session, a->session.current_run);
    if (a->use_tuned && a->tuned) job.edited_model = a->tuned;
    else job.edits = a->edits;
    if (tui_worker_start_mc(a->worker, &job, err)) return -1;
    snprintf(a->mc_path, sizeof a->mc_path, "%s", path);
    a->mc_strength = c->strength;
    if (cur) snprintf(a->mc_title, sizeof a->mc_title, "%s", cur->label);
    else
        snprintf(a->mc_title, sizeof a->mc_title, "%s",
                 a->edits || job.edited_model ? "current edits" : "no edits");
    a->evaluating = 1;
    snprintf(a->mc_status, sizeof a->mc_status, "evaluating %.400s", path);
    app_notify(a, 0, "multiple-choice evaluation of %s: base vs %s (Esc stops it)", path,
               a->mc_title);
    return 0;
}

/* The console's table of a finished multiple-choice evaluation (a->mc), as `redit eval
 * --compare` prints it. */
static void mc_print(tui_app *a) {
    const tui_mc_result *r = &a->mc;
    char line[900];
    snprintf(line, sizeof line, "MC eval %s: %zu items (%s style, %.2f choices an item), %.1f s\n",
             a->mc_path, r->n, rd_mc_style_name(r->style),
             r->n ? (double)r->n_choices / (double)r->n : 0.0, r->seconds);
    console_print(a->console, line);
    if (r->truncated) {
        snprintf(line, sizeof line, "%zu contexts lost their oldest tokens to max_len\n",
                 r->truncated);
        console_print(a->console, line);
    }
    console_print(a->console,
                  "          base             edited           difference  McNemar p\n");
    const char *name[2] = {"acc", "acc_norm"};
    for (int k = 0; k < 2; k++) {
        const double vb = k ? r->acc_norm[0] : r->acc[0], ve = k ? r->acc_norm[1] : r->acc[1];
        const double sb = k ? r->acc_norm_stderr[0] : r->acc_stderr[0];
        const double se = k ? r->acc_norm_stderr[1] : r->acc_stderr[1];
        snprintf(line, sizeof line,
                 "%-8s  %.4f ± %.4f  %.4f ± %.4f  %+.4f     %.3g (%ld base only, %ld edited "
                 "only)\n",
                 name[k], vb, sb, ve, se, ve - vb, r->p[k], r->only_base[k], r->only_edited[k]);
        console_print(a->console, line);
    }
    snprintf(line, sizeof line, "edited: %s at α %g\n", a->mc_title, a->mc_strength);
    console_print(a->console, line);
}

static void mc_done(tui_app *a, const tui_event *ev) {
    a->evaluating = 0;
    a->mc_status[0] = '\0';
    if (ev->mc.n == 0) {
        app_notify(a, 0, "multiple-choice evaluation stopped");
        return;
    }
    a->mc = ev->mc;
    a->has_mc = 1;
    mc_print(a);
    app_notify(a, 0, "MC eval of %s: acc %.4f → %.4f (p %.3g), acc_norm %.4f → %.4f (p %.3g)",
               a->mc_path, a->mc.acc[0], a->mc.acc[1], a->mc.p[0], a->mc.acc_norm[0],
               a->mc.acc_norm[1], a->mc.p[1]);
}

int app_set_edits(tui_app *a, const rd_edits *e, rd_error *err) {
    if (busy_error(a, err)) return -1;
    const rd_config *cfg = rd_model_config(a->model);
    if (rd_edits_dim(e) != cfg->dim || rd_edits_n_layers(e) != cfg->n_layers)
        return rd_error_set(err, "these edits are for a model of width %d with %d layers",
                            rd_edits_dim(e), rd_edits_n_layers(e));
    rd_edits *copy = rd_edits_clone(e, err);
    if (!copy) return -1;
    rd_edits_free(a->edits);
    a->edits = copy;
    a->use_tuned = 0;
    a->session.current_run = 0; /* edits of no run: saved as the session's current edits */
    a->dirty = 1;
    return 0;
}

rd_edits *app_run_edits(tui_app *a, int id, rd_error *err) {
    tui_run *r = tui_session_find_run(&a->session, id);
    if (!r) {
        rd_error_set(err, "there is no run #%d (wb.runs() lists them)", id);
        return NULL;
    }
    if (r->edits) return rd_edits_clone(r->edits, err);
    char path[1200];
    tui_session_run_edits_path(&a->session, r, path, sizeof path);
    if (!path[0]) {
        rd_error_set(err, "run #%d has no saved edits", id);
        return NULL;
    }
    return rd_edits_load(path, a->model, 0, NULL, err);
}

int app_use_run(tui_app *a, int id, rd_error *err) {
    if (busy_error(a, err)) return -1;
    const tui_run *r = tui_session_find_run(&a->session, id);
    if (r && (r->model || r->model_file[0])) { /* full fine-tuning: its model */
        if (a->tuned_run != id && load_run_model(a, r, err)) return -1;
        a->use_tuned = 1;
        a->session.current_run = id;
        a->dirty = 1;
        return 0;
    }
    rd_edits *e = app_run_edits(a, id, err);
    if (!e) return -1;
    rd_edits_free(a->edits);
    a->edits = e;
    a->use_tuned = 0;
    a->session.current_run = id;
    a->dirty = 1;
    return 0;
}

/* Back to base vs current edits in the chat. */
static void end_compare(tui_app *a) {
    for (int i = 0; i < TUI_CHAT_MAX_COLUMNS - 1; i++) {
        rd_edits_free(a->compare_edits[i]);
        if (a->compare_model_owned[i]) rd_model_free(a->compare_model[i]);
        a->compare_edits[i] = NULL;
        a->compare_model[i] = NULL;
        a->compare_model_owned[i] = 0;
        a->compare_run[i] = 0;
        a->compare_title[i][0] = '\0';
    }
    a->n_compare = 0;
}

/* The title of run r's column: its label, numbered as the chart and wb.runs() number it. */
static void run_title(const tui_run *r, char title[64]) {
    char num[16];
    snprintf(num, sizeof num, "#%d", r->id);
    const size_t n = strlen(num);
    char full[96];
    if (!strncmp(r->label, num, n) && (r->label[n] == ' ' || !r->label[n]))
        snprintf(full, sizeof full, "%s", r->label);
    else
        snprintf(full, sizeof full, "%s %s", num, r->label);
    size_t len = strlen(full);
    if (len > 63) { /* cut at a character boundary */
        len = 63;
        while (len > 0 && ((unsigned char)full[len] & 0xC0) == 0x80) len--;
    }
    memcpy(title, full, len);
    title[len] = '\0';
}

/* What column k of a comparison answers with, for item it: edits (*e, owned) or a full run's
 * model (*m; *owned when loaded here), and its title. 0, or -1 with *err. */
static int compare_column(tui_app *a, const app_compare_item *it, int k, rd_edits **e,
                          rd_model **m, int *owned, char title[64], rd_error *err) {
    *e = NULL;
    *m = NULL;
    *owned = 0;
    const rd_config *cfg = rd_model_config(a->model);
    if (it->run) {
        tui_run *r = tui_session_find_run(&a->session, it->run);
        if (!r) return rd_error_set(err, "there is no run #%d (wb.runs() lists them)", it->run);
        run_title(r, title);
        if (r->model || r->model_file[0]) { /* full fine-tuning: its model */
            if (a->tuned && a->tuned_run == r->id) {
                *m = a->tuned;
                return 0;
            }
            if (!(*m = open_run_model(a, r, err))) return -1;
            *owned = 1;
            return 0;
        }
        return (*e = app_run_edits(a, it->run, err)) ? 0 : -1;
    }
    if (it->path) {
        const char *base = strrchr(it->path, '/');
        snprintf(title, 64, "%.63s", it->title ? it->title : base ? base + 1 : it->path);
        if (!(*e = rd_edits_load(it->path, a->model, 0, NULL, err))) return -1;
    } else {
        if (!it->edits) return rd_error_set(err, "column %d: no run, file or edit set", k + 2);
        if (it->title) snprintf(title, 64, "%.63s", it->title);
        else snprintf(title, 64, "edits %d", k + 1);
        if (!(*e = rd_edits_clone(it->edits, err))) return -1;
    }
    if (rd_edits_dim(*e) != cfg->dim || rd_edits_n_layers(*e) != cfg->n_layers) {
        rd_error_set(err, "%s: these edits are for a model of width %d with %d layers", title,
                     rd_edits_dim(*e), rd_edits_n_layers(*e));
        rd_edits_free(*e);
        *e = NULL;
        return -1;
    }
    return 0;
}

int app_compare(tui_app *a, const app_compare_item *items, int n, rd_error *err) {
    if (busy_error(a, err) || apply_products(a, err)) return -1;
    if (n == 0) {
        end_compare(a);
        a->dirty = 1;
        return 0;
    }
    if (n < 0 || n > TUI_CHAT_MAX_COLUMNS - 1)
        return rd_error_set(err, "the chat compares the base model with 1 to %d edit sets, not %d",
                            TUI_CHAT_MAX_COLUMNS - 1, n);
    rd_edits *e[TUI_CHAT_MAX_COLUMNS - 1] = {NULL};
    rd_model *m[TUI_CHAT_MAX_COLUMNS - 1] = {NULL};
    int owned[TUI_CHAT_MAX_COLUMNS - 1] = {0};
    char titles[TUI_CHAT_MAX_COLUMNS - 1][64];
    for (int k = 0; k < n; k++) {
        if (compare_column(a, &items[k], k, &e[k], &m[k], &owned[k], titles[k], err)) {
            for (int j = 0; j < k; j++) {
                rd_edits_free(e[j]);
                if (owned[j]) rd_model_free(m[j]);
            }
            return -1;
        }
    }
    end_compare(a);
    for (int k = 0; k < n; k++) {
        a->compare_edits[k] = e[k];
        a->compare_model[k] = m[k];
        a->compare_model_owned[k] = owned[k];
        a->compare_run[k] = items[k].run;
        memcpy(a->compare_title[k], titles[k], 64);
    }
    a->n_compare = n;
    a->dirty = 1;
    return 0;
}

int app_compare_command(tui_app *a, const char *args, rd_error *err) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", args);
    app_compare_item items[TUI_CHAT_MAX_COLUMNS - 1];
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save)) {
        if (n == TUI_CHAT_MAX_COLUMNS - 1)
            return rd_error_set(err, ":compare takes at most %d runs or edits files",
                                TUI_CHAT_MAX_COLUMNS - 1);
        const char *digits = tok[0] == '#' ? tok + 1 : tok;
        const size_t nd = strspn(digits, "0123456789");
        if (nd > 0 && nd < 10 && !digits[nd])
            items[n++] = (app_compare_item){.run = atoi(digits)};
        else
            items[n++] = (app_compare_item){.path = tok};
        if (items[n - 1].run == 0 && !items[n - 1].path)
            return rd_error_set(err, ":compare: run #0 does not exist");
    }
    return app_compare(a, items, n, err);
}

int app_delete_run(tui_app *a, int id, rd_error *err) {
    if (busy_error(a, err)) return -1;
    if (tui_session_delete_run(&a->session, id))
        return rd_error_set(err, "there is no run #%d (wb.runs() lists them)", id);
    for (int k = 0; k < a->n_compare; k++)
        if (a->compare_run[k] == id) {
            end_compare(a);
            break;
        }
    a->dirty = 1;
    return 0;
}

/* ---- the worker's events ------------------------------------------------------------------ */

_Static_assert(TUI_CHAT_MAX_COLUMNS == TUI_CHAT_TURN_MAX_COLUMNS,
               "a chat turn holds every column a chat job answers in");

const char *app_answer(const tui_app *a, int side) {
    return a->answer[side].data ? a->answer[side].data : "";
}

static void append_answer(tui_app *a, int side, const char *text) {
    if (side < 0 || side >= TUI_CHAT_MAX_COLUMNS) return;
    rd_buf_puts(&a->answer[side], text); /* out of memory: the rest of the answer is lost */
}

/* The run just trained keeps its edits (saved as runs/ID/ at the next save) and they become
 * the current run's. */
static void keep_run_edits(tui_app *a) {
    rd_error err = {0};
    if (a->run && a->run_full) { /* no edits: the chat answers with the tuned copy, which the
                                    next save writes as the run's model */
        a->use_tuned = a->tuned != NULL;
        if (a->tuned) {
            a->run->model = a->tuned;
            a->session.current_run = a->run->id;
        }
        return;
    }
    if (!a->run || !a->edits) return;
    if (tui_run_keep_edits(a->run, a->edits, &err))
        app_notify(a, 1, "the run's edits are only the current ones: %s", err.msg);
    else
        a->session.current_run = a->run->id;
}

static void training_done(tui_app *a, const tui_event *ev) {
    a->training = 0;
    a->stopping = 0;
    keep_run_edits(a);
    if (a->run) {
        a->run->best_eval_accuracy = ev->best_eval_accuracy;
        a->run->seconds = ev->seconds;
        a->run->tokens_per_s = ev->tokens_per_s;
        a->run->stopped = ev->stopped;
        a->run->best_eval_loss = ev->best_eval_loss;
    }
    const char *how = ev->stopped == RD_STOP_REQUESTED   ? "stopped"
                      : ev->stopped == RD_STOP_NONFINITE ? "stopped (non-finite loss)"
                                                         : "done";
    if (isfinite(ev->best_eval_accuracy))
        snprintf(a->train_status, sizeof a->train_status,
                 "%s: %d steps in %.1f s, %.0f tok/s, best eval accuracy %.1f%% (loss %.4f)", how,
                 ev->steps, ev->seconds, ev->tokens_per_s, 100 * ev->best_eval_accuracy,
                 ev->best_eval_loss);
    else if (isfinite(ev->best_eval_loss))
        snprintf(a->train_status, sizeof a->train_status,
                 "%s: %d steps in %.1f s, %.0f tok/s, best eval %.4f", how, ev->steps,
                 ev->seconds, ev->tokens_per_s, ev->best_eval_loss);
    else
        snprintf(a->train_status, sizeof a->train_status, "%s: %d steps in %.1f s, %.0f tok/s",
                 how, ev->steps, ev->seconds, ev->tokens_per_s);
    rd_error err = {0};
    if (tui_session_save(&a->session, a->edits, a->model, &err))
        app_notify(a, 1, "%s; the session was not saved: %s", a->train_status, err.msg);
    else
        app_notify(a, ev->stopped == RD_STOP_NONFINITE, "%s%s%s — session saved",
                   a->train_status, ev->text[0] ? ": " : "", ev->text);
    a->run = NULL;
}

static void chat_done(tui_app *a, const tui_event *ev) {
    if (ev->text[0]) app_notify(a, 1, "answer failed: %s", ev->text);
    if (--a->chatting > 0) return;
    a->chatting = 0;
    const char *answers[TUI_CHAT_MAX_COLUMNS], *titles[TUI_CHAT_MAX_COLUMNS];
    for (int i = 0; i < a->n_answers; i++) {
        answers[i] = app_answer(a, i);
        titles[i] = a->answer_title[i];
    }
    tui_session_add_chat_columns(&a->session, a->chat_prompt, a->n_answers, answers, titles,
                                 a->session.config.strength);
    for (int i = 0; i < TUI_CHAT_MAX_COLUMNS; i++) rd_buf_free(&a->answer[i]);
    if (ev->stopped) app_notify(a, 0, "answers stopped");
}

static void handle_event(tui_app *a, const tui_event *ev) {
    switch (ev->kind) {
    case TUI_EV_TRAIN_STEP:
        a->last = ev->progress;
        if (a->run) tui_run_add_step(a->run, ev->progress.loss);
        if (!a->stopping) snprintf(a->train_status, sizeof a->train_status, "training");
        break;
    case TUI_EV_TRAIN_EVAL:
        a->last_eval = ev->progress.eval_loss;
        a->last_eval_accuracy = ev->progress.eval_accuracy;
        if (a->run) tui_run_add_eval(a->run, ev->progress.step, ev->progress.eval_loss);
        break;
    case TUI_EV_TRAIN_STATUS:
        snprintf(a->train_status, sizeof a->train_status, "%s", ev->text);
        if (ev->n_train) { /* the data are loaded: also in the message row, which stays */
            a->n_train = ev->n_train;
            a->n_eval = ev->n_eval;
            app_notify(a, 0, "%s", ev->text);
        }
        break;
    case TUI_EV_TRAIN_DONE: training_done(a, ev); break;
    case TUI_EV_CHAT_TEXT: append_answer(a, ev->side, ev->text); break;
    case TUI_EV_CHAT_DONE: chat_done(a, ev); break;
    case TUI_EV_MC_STATUS: snprintf(a->mc_status, sizeof a->mc_status, "%s", ev->text); break;
    case TUI_EV_MC_DONE: mc_done(a, ev); break;
    case TUI_EV_ERROR:
        if (a->training) {
            a->training = 0;
            a->stopping = 0;
            /* a run that never made a step leaves no curve */
            if (a->run && a->run->n_steps == 0 && a->run == &a->session.runs[a->session.n_runs - 1]) {
                tui_session_drop_last_run(&a->session);
            } else if (a->run) {
                a->run->stopped = RD_STOP_REQUESTED;
                keep_run_edits(a);
            }
            a->run = NULL;
            snprintf(a->train_status, sizeof a->train_status, "failed");
        }
        a->chatting = 0;
        a->evaluating = 0;
        a->mc_status[0] = '\0';
        app_notify(a, 1, "%s", ev->text);
        break;
    }
    a->dirty = 1;
}

void app_handle_events(tui_app *a) {
    tui_event evs[64];
    size_t n;
    while ((n = tui_worker_drain(a->worker, evs, sizeof evs / sizeof *evs)) > 0)
        for (size_t i = 0; i < n; i++) handle_event(a, &evs[i]);
}

void app_finish_jobs(tui_app *a) {
    if (!tui_worker_busy(a->worker)) {
        app_handle_events(a);
        return;
    }
    tui_worker_stop(a->worker);
    /* The worker waits when the queue is full: keep draining until it is idle. */
    struct pollfd fd = {.fd = tui_worker_fd(a->worker), .events = POLLIN};
    while (tui_worker_busy(a->worker)) {
        poll(&fd, 1, 10);
        app_handle_events(a);
    }
    app_handle_events(a);
}

/* ---- drawing ------------------------------------------------------------------------------ */

static void draw_screen(tui_app *a) {
    app_layout(a); /* the notice's rows */
    erase();
    if (a->layout.too_small) {
        const char *msg = "terminal too small";
        char need[64];
        snprintf(need, sizeof need, "%dx%d, redit needs %dx%d", COLS, LINES, TUI_MIN_COLS,
                 TUI_MIN_ROWS);
        int y = LINES / 2 - 1 < 0 ? 0 : LINES / 2 - 1;
        draw_text(y, (COLS - (int)strlen(msg)) / 2 > 0 ? (COLS - (int)strlen(msg)) / 2 : 0, COLS,
                  msg, A_BOLD);
        if (LINES > 1)
            draw_text(y + 1, (COLS - (int)strlen(need)) / 2 > 0 ? (COLS - (int)strlen(need)) / 2 : 0,
                      COLS, need, 0);
        refresh();
        return;
    }
    const tui_layout *l = &a->layout;
    pane_status_draw(a);
    if (l->config.h) pane_config_draw(a, l->config);
    if (l->chart.h) pane_chart_draw(a, l->chart);
    if (l->chat.h) pane_chat_draw(a, l->chat);
    if (l->console.h) console_draw(a->console, l->console, a->focus == PANE_CONSOLE);
    pane_hints_draw(a);
    if (a->help) pane_help_draw(a);
    /* The console and the chat input show a cursor; the other panes do not. */
    int cursor = !a->help && ((a->focus == PANE_CONSOLE && l->console.h) ||
                              (a->focus == PANE_CHAT && l->chat.h) ||
                              (a->focus == PANE_CONFIG && a->cfg_editing));
    curs_set(cursor);
    refresh();
}

/* ---- keys ---------------------------------------------------------------------------------- */

static const int ZOOM_OF[PANE_COUNT] = {TUI_ZOOM_NONE, TUI_ZOOM_CHART, TUI_ZOOM_CHAT,
                                        TUI_ZOOM_CONSOLE};

static void set_focus(tui_app *a, int pane) {
    a->focus = (pane + PANE_COUNT) % PANE_COUNT;
    if (a->zoom && ZOOM_OF[a->focus] != a->zoom) a->zoom = ZOOM_OF[a->focus];
    if (a->zoom == TUI_ZOOM_NONE && a->focus == PANE_CONFIG) a->zoom = TUI_ZOOM_NONE;
    app_layout(a);
}

enum { QUIT_ASK_NONE = 0, QUIT_ASK_TRAINING, QUIT_ASK_UNSAVED };

/* The folder offered when the session's own cannot be written: ~/redit-sessions (or
 * /tmp/redit-sessions without a home). */
static void fallback_root(char *buf, size_t cap) {
    const char *home = getenv("HOME");
    snprintf(buf, cap, "%s/redit-sessions", home && *home ? home : "/tmp");
}

/* Saves before quitting; when that fails the user is asked (quit anyway, save in another
 * folder, or stay) instead of losing the work. */
static void save_and_quit(tui_app *a) {
    rd_error err = {0};
    if (app_save(a, &err) == 0) {
        a->quit = 1;
        return;
    }
    char other[600];
    fallback_root(other, sizeof other);
    a->quit_asked = QUIT_ASK_UNSAVED;
    app_notify(a, 1, "not saved — o: save in %s, y: quit without saving, n: stay (%s)", other,
               err.msg);
}

/* Moves the session to the fallback folder (a name refused at save time becomes
 * "rescued-TIME"). The runs' edits saved in the old folder are read back into memory first,
 * so the next save writes them into the new one; a run whose file cannot be read any more
 * keeps its curve, without edits (the new session must name only files it has). */
static void move_to_fallback(tui_app *a) {
    for (size_t i = 0; i < a->session.n_runs; i++) {
        tui_run *r = &a->session.runs[i];
        if (r->edits || !r->edits_file[0]) continue;
        rd_error err = {0};
        r->edits = app_run_edits(a, r->id, &err);
        if (!r->edits) r->edits_file[0] = '\0';
    }
    fallback_root(a->session.root, sizeof a->session.root);
    if (!tui_session_name_ok(a->session.name, NULL))
        snprintf(a->session.name, sizeof a->session.name, "rescued-%ld", (long)time(NULL));
}

/* 'o' at the unsaved question: the session moves to the fallback folder and is saved there. */
static void save_elsewhere(tui_app *a) {
    move_to_fallback(a);
    save_and_quit(a);
}

static void request_quit(tui_app *a) {
    if (a->training) {
        a->quit_asked = QUIT_ASK_TRAINING;
        app_notify(a, 1, "training is running: quit anyway? (y/n)");
    } else {
        save_and_quit(a);
    }
}

static void adjust_strength(tui_app *a, double delta) {
    tui_config *c = &a->session.config;
    double s = round((c->strength + delta) * 100) / 100;
    char text[32];
    snprintf(text, sizeof text, "%g", s < 0 ? 0 : s);
    rd_error err = {0};
    if (app_set_field(a, "strength", text, &err)) app_notify(a, 1, "%s", err.msg);
    else app_notify(a, 0, "edit strength α = %g", c->strength);
}

static void start_training_key(tui_app *a) {
    rd_error err = {0};
    if (app_train(a, &err)) app_notify(a, 1, "%s", err.msg);
}

static void eval_mc_key(tui_app *a) {
    rd_error err = {0};
    if (app_eval_mc(a, NULL, &err)) app_notify(a, 1, "%s", err.msg);
}

/* Keys that work in every pane (F-keys, Esc, Shift-Tab). Returns 1 when used. */
static int global_key(tui_app *a, tui_key k) {
    if (!k.is_key && k.code == 27) { /* Esc */
        if (app_stop(a)) return 1;
        if (a->zoom) {
            a->zoom = TUI_ZOOM_NONE;
            app_layout(a);
            return 1;
        }
        return 0; /* the pane may use it (cancel an edit) */
    }
    if (!k.is_key) return 0;
    switch (k.code) {
    case KEY_F(1): a->help = 1; return 1;
    case KEY_F(2): set_focus(a, PANE_CONFIG); return 1;
    case KEY_F(3): set_focus(a, PANE_CHART); return 1;
    case KEY_F(4): set_focus(a, PANE_CHAT); return 1;
    case KEY_F(5): set_focus(a, PANE_CONSOLE); return 1;
    case KEY_F(6): start_training_key(a); return 1;
    case KEY_F(7): adjust_strength(a, -0.1); return 1;
    case KEY_F(8): adjust_strength(a, +0.1); return 1;
    case KEY_F(9): {
        rd_error err = {0};
        if (app_save(a, &err)) app_notify(a, 1, "not saved: %s", err.msg);
        else app_notify(a, 0, "session %s saved", a->session.name);
        return 1;
    }
    case KEY_F(10): request_quit(a); return 1;
    case KEY_BTAB: set_focus(a, a->focus - 1); return 1;
    }
    return 0;
}

/* Letter keys of the panes without text input (config when not editing, chart). */
static int command_key(tui_app *a, tui_key k) {
    if (k.is_key) return 0;
    switch (k.code) {
    case '\t': set_focus(a, a->focus + 1); return 1;
    case '?': a->help = 1; return 1;
    case 'q': request_quit(a); return 1;
    case 't': start_training_key(a); return 1;
    case 'e': eval_mc_key(a); return 1;
    case 'z':
        a->zoom = a->zoom || a->focus == PANE_CONFIG ? TUI_ZOOM_NONE : ZOOM_OF[a->focus];
        app_layout(a);
        return 1;
    }
    return 0;
}

static void handle_key(tui_app *a, tui_key k) {
    a->dirty = 1;
    if (!(k.is_key && k.code == KEY_RESIZE)) a->message[0] = '\0'; /* a notice lasts until a key */
    /* a console chunk typed before this key runs first (keys keep their order) */
    if (console_has_ready(a->console)) console_run_ready(a->console);
    if (k.is_key && k.code == KEY_RESIZE) {
        app_layout(a);
        return;
    }
    if (a->help) { /* any key closes the help */
        a->help = 0;
        return;
    }
    if (a->quit_asked) {
        const int asked = a->quit_asked;
        a->quit_asked = QUIT_ASK_NONE;
        if (!k.is_key && (k.code == 'y' || k.code == 'Y')) {
            a->quit = 1;
            a->quit_unsaved = asked == QUIT_ASK_UNSAVED;
        } else if (asked == QUIT_ASK_UNSAVED && !k.is_key && (k.code == 'o' || k.code == 'O')) {
            save_elsewhere(a);
        } else {
            app_notify(a, 0, "quit cancelled");
        }
        return;
    }
    if (a->layout.too_small) {
        if ((k.is_key && k.code == KEY_F(10)) || (!k.is_key && k.code == 'q')) request_quit(a);
        return;
    }
    if (global_key(a, k)) return;
    int used = 0;
    switch (a->focus) {
    case PANE_CONFIG: used = pane_config_key(a, k); break;
    case PANE_CHART: used = pane_chart_key(a, k); break;
    case PANE_CHAT:
        used = pane_chat_key(a, k);
        if (!used && !k.is_key && k.code == '\t') {
            set_focus(a, a->focus + 1);
            used = 1;
        }
        break;
    case PANE_CONSOLE: used = console_key(a->console, k); break;
    }
    if (!used && (a->focus == PANE_CHART || (a->focus == PANE_CONFIG && !a->cfg_editing)))
        command_key(a, k);
}

/* Reads every waiting key. Returns how many were read. */
static int read_keys(tui_app *a) {
    int n = 0;
    wint_t wc;
    int rc;
    while ((rc = get_wch(&wc)) != ERR) {
        tui_key k = {.code = (int)wc, .is_key = rc == KEY_CODE_YES};
        handle_key(a, k);
        n++;
        if (a->quit) break;
    }
    return n;
}

/* Ctrl-C: stops a running Lua chunk (done by the handler) or drops the console line; in the
 * other panes it stops a job or asks to quit. */
static void handle_interrupt(tui_app *a) {
    a->interrupted = 0;
    a->dirty = 1;
    if (a->focus == PANE_CONSOLE) {
        console_interrupt(a->console);
        return;
    }
    if (!app_stop(a)) request_quit(a);
}

/* ---- measurements ----------------------------------------------------------------------- */

static void write_stats(const tui_app *a) {
    if (!a->args.stats_path) return;
    FILE *f = fopen(a->args.stats_path, "w");
    if (!f) return;
    fprintf(f, "keys %ld\nkey_latency_mean_ms %.3f\nkey_latency_max_ms %.3f\n"
               "train_redraw_gap_max_ms %.1f\n",
            a->key_count, a->key_count ? 1e3 * a->key_latency_sum / (double)a->key_count : 0,
            1e3 * a->key_latency_max, 1e3 * a->redraw_gap_max);
    fclose(f);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void main_loop(tui_app *a) {
    double last_draw = 0;
    while (!a->quit) {
        double now = app_now();
        /* While training the numbers (elapsed, ETA) move even between events: redraw at
         * least every 250 ms, and at most every 100 ms (events come at every step). */
        if (a->training && now - last_draw >= 0.25) a->dirty = 1;
        if (a->dirty && (!a->training || now - last_draw >= 0.1)) {
            draw_screen(a);
            a->dirty = 0;
            last_draw = app_now();
            if (a->training) { /* the longest time the screen went unchanged while training */
                double gap = last_draw - a->last_train_draw;
                if (gap > a->redraw_gap_max) a->redraw_gap_max = gap;
                a->last_train_draw = last_draw;
            }
        }
        app_follow_poll(a);
        if (console_has_ready(a->console)) { /* drawn with "running…": run it now */
            console_run_ready(a->console);
            continue;
        }
        struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                {.fd = tui_worker_fd(a->worker), .events = POLLIN}};
        int timeout = a->dirty ? 20 : (a->training || a->chatting ? 100 : 1000);
        int rc = poll(fds, 2, timeout);
        if (rc < 0 && errno != EINTR) break;
        if (rc > 0 && (fds[1].revents & POLLIN)) app_handle_events(a);
        if (rc > 0 && (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL))) {
            a->quit = 1; /* the terminal is gone: stop, keep the results, save */
            break;
        }
        double t_key = app_now();
        int keys = read_keys(a); /* also after EINTR: a resize arrives as KEY_RESIZE */
        if (a->interrupted) handle_interrupt(a);
        if (keys && !a->quit) {
            draw_screen(a);
            a->dirty = 0;
            last_draw = app_now();
            if (a->training) a->last_train_draw = last_draw;
            double lat = last_draw - t_key;
            a->key_latency_sum += lat;
            a->key_count += keys;
            if (lat > a->key_latency_max) a->key_latency_max = lat;
        }
    }
}

static void app_release(tui_app *a) {
    tui_worker_free(a->worker); /* stops and joins a running job first */
    console_free(a->console);
    for (int i = 0; i < TUI_CHAT_MAX_COLUMNS; i++) rd_buf_free(&a->answer[i]);
    end_compare(a);
    rd_edits_free(a->edits);
    tui_session_release(&a->session);
    set_tuned(a, NULL, 0);
    rd_model_free(a->model);
}

/* The session's root and name as rd_workbench_run uses them. */
static const char *args_root(const rd_workbench_args *args) {
    return args->sessions_root ? args->sessions_root : "sessions";
}
static const char *args_name(const rd_workbench_args *args) {
    return args->session ? args->session : "default";
}

/* Without -m: the model path session root/name records, into buf. 0, or -1 with *err. */
static int session_model_path(const rd_workbench_args *args, char *buf, size_t cap,
                              rd_error *err) {
    const char *root = args_root(args), *name = args_name(args);
    if (!tui_session_exists(root, name))
        return rd_error_set(err, "give a model with -m FILE (there is no session %s in %s "
                                 "to take it from)", name, root);
    tui_session peek;
    rd_error e = {0};
    if (tui_session_load(root, name, &peek, &e))
        return rd_error_set(err, "give the model with -m FILE (session %s cannot be read: %s)",
                            name, e.msg);
    snprintf(buf, cap, "%s", peek.model_path);
    tui_session_release(&peek);
    if (!buf[0])
        return rd_error_set(err, "session %s records no model: give it with -m FILE", name);
    struct stat st;
    if (stat(buf, &st) != 0)
        return rd_error_set(err, "session %s's model %s is not found (moved or deleted?): give "
                                 "its new path with -m FILE", name, buf);
    return 0;
}

int rd_workbench_check(const rd_workbench_args *args, rd_error *err) {
    if (tui_session_check_writable(args_root(args), args_name(args), err)) return -1;
    if (!args->model_path) {
        char path[512];
        return session_model_path(args, path, sizeof path, err);
    }
    return 0;
}

/* Applies "key=value" settings; 2 (the exit code) after printing the first bad one. */
static int apply_settings(tui_app *a, const char *option, const char *const *sets, int n) {
    rd_error err = {0};
    for (int i = 0; i < n; i++) {
        if (apply_setting(a, sets[i], &err)) {
            fprintf(stderr, "redit tui: %s %s: %s\n", option, sets[i], err.msg);
            return 2;
        }
    }
    return 0;
}

int rd_workbench_run(const rd_workbench_args *args) {
    setlocale(LC_ALL, "");
    rd_error err = {0};
    /* Before anything is loaded: a session that could not be saved is refused now, not
     * after the user's work (the model may take long to load). */
    if (rd_workbench_check(args, &err)) {
        fprintf(stderr, "redit tui: %s\n", err.msg);
        return 2;
    }
    tui_app *a = calloc(1, sizeof *a);
    if (!a) {
        fprintf(stderr, "redit: out of memory\n");
        return 1;
    }
    a->args = *args;
    if (!args->model_path) { /* the session's own model (rd_workbench_check found it) */
        session_model_path(args, a->model_arg, sizeof a->model_arg, &err);
        a->args.model_path = a->model_arg;
    }
    a->last_eval = a->last_eval_accuracy = NAN;
    a->chart_smooth = 1;
    a->chart_all_runs = 1;
    a->focus = PANE_CONFIG;
    rd_load_opts lo = {.tokenizer_path = args->tokenizer_path};
    if (!(a->model = rd_model_load(a->args.model_path, &lo, &err))) {
        fprintf(stderr, "redit: %s\n", err.msg);
        free(a);
        return 1;
    }
    describe_model(a);
    if (open_session(a, &err)) {
        fprintf(stderr, "redit tui: %s\n", err.msg);
        app_release(a);
        free(a);
        return 2;
    }
    count_edit_params(a);
    int bad = a->restored ? 0 : apply_settings(a, "--init-set", args->init_sets, args->n_init_sets);
    if (!bad) bad = apply_settings(a, "--set", args->sets, args->n_sets);
    if (bad) {
        app_release(a);
        free(a);
        return bad;
    }
    /* REDIT_TUI_QUEUE: events the worker may queue before it waits for the UI (tests make
     * it small to fill it fast). */
    const char *queue = getenv("REDIT_TUI_QUEUE");
    long queue_cap = queue ? strtol(queue, NULL, 10) : 0;
    if (!(a->worker = tui_worker_new(queue_cap > 0 ? (size_t)queue_cap : 0, &err))) {
        fprintf(stderr, "redit: %s\n", err.msg);
        app_release(a);
        free(a);
        return 1;
    }
    if (!(a->console = console_new(a, &err))) {
        fprintf(stderr, "redit: %s\n", err.msg);
        app_release(a);
        free(a);
        return 1;
    }
    running_app = a;
    install_signals();
    start_screen(a);
    a->dirty = 1;
    main_loop(a);
    /* Leaving: stop a job, keep its results, save the session. */
    app_finish_jobs(a);
    int rc = 0;
    char first_error[RD_ERROR_MAX] = "";
    if (!a->quit_unsaved) {
        rc = tui_session_save(&a->session, a->edits, a->model, &err);
        if (rc) { /* no one to ask (SIGTERM, a lost terminal): the fallback folder */
            snprintf(first_error, sizeof first_error, "%s", err.msg);
            move_to_fallback(a);
            rc = tui_session_save(&a->session, a->edits, a->model, &err);
        }
    }
    endwin();
    running_app = NULL;
    if (first_error[0]) fprintf(stderr, "redit: the session was not saved: %s\n", first_error);
    if (a->quit_unsaved) fprintf(stderr, "redit: quit without saving, as asked\n");
    else if (rc) fprintf(stderr, "redit: the session was not saved: %s\n", err.msg);
    else printf("session saved in %s/%s\n", a->session.root, a->session.name);
    write_stats(a);
    app_release(a);
    free(a);
    return rc ? 1 : 0;
}
