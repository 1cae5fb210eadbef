/* The TUI's worker thread: one job at a time (training, a chat answer in columns, or a
 * multiple-choice evaluation of base vs edited), events
 * into a bounded queue guarded by a mutex, an eventfd to wake the UI thread's poll. When the
 * queue is full the worker waits for the UI to drain it (never drops progress). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* eventfd, pthread_sigmask under -std=c17 */
#endif
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "redit/chat_format.h"
#include "redit/forward.h"
#include "redit/mc_eval.h"

/* A job as the worker keeps it: copies of the caller's strings and ids. */
typedef struct job {
    int kind; /* TUI_JOB_* */
    tui_train_job train;
    char *train_path, *eval_path, *template_name, *system;
    tui_chat_job chat;
    int *prompt;
    char *stop_text;
    tui_mc_job mc;
    char *mc_path;
} job;

struct tui_worker {
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t job_posted; /* a job or quit */
    pthread_cond_t space;      /* room in the queue, or quit */
    int efd;
    int quit;
    int busy;        /* TUI_JOB_* of the posted or running job */
    int job_waiting; /* posted, not yet taken by the thread */
    job job;
    /* the job's last event (TRAIN_DONE, the last CHAT_DONE or ERROR): queued by the thread
     * after the job has let go of everything, in the same locked section that marks the
     * worker idle, so the UI never sees a job's end while the worker is still busy */
    tui_event final;
    int has_final;
    atomic_int stop;
    tui_event *queue; /* (cap) ring */
    size_t cap, head, count;
};

/* ---- the event queue --------------------------------------------------------------------- */

static void wake(tui_worker *w) {
    uint64_t one = 1;
    ssize_t n = write(w->efd, &one, sizeof one);
    (void)n; /* the counter only saturates; the UI drains everything at once */
}

/* Queues ev with w->mu held (waiting for room); dropped when the worker is being shut
 * down. The caller wakes the UI after unlocking. */
static void push_locked(tui_worker *w, const tui_event *ev) {
    while (w->count == w->cap && !w->quit) pthread_cond_wait(&w->space, &w->mu);
    if (!w->quit) {
        w->queue[(w->head + w->count) % w->cap] = *ev;
        w->count++;
    }
}

/* Queues ev (waiting for room); dropped when the worker is being shut down. */
static void push(tui_worker *w, const tui_event *ev) {
    pthread_mutex_lock(&w->mu);
    push_locked(w, ev);
    pthread_mutex_unlock(&w->mu);
    wake(w);
}

/* Keeps ev as the job's last event (queued by thread_main once the job has ended). */
static void set_final(tui_worker *w, const tui_event *ev) {
    w->final = *ev;
    w->has_final = 1;
}

/* Copies text into an event's text field, cut to fit. */
static void set_text(tui_event *ev, const char *text) {
    size_t n = text ? strlen(text) : 0;
    if (n > sizeof ev->text - 1) n = sizeof ev->text - 1;
    if (n) memcpy(ev->text, text, n);
    ev->text[n] = '\0';
}

static void push_text(tui_worker *w, tui_event_kind kind, int side, const char *text) {
    tui_event ev = {.kind = kind, .side = side};
    set_text(&ev, text);
    push(w, &ev);
}

/* The job's last event: ERROR with text. */
static void final_error(tui_worker *w, const char *text) {
    tui_event ev = {.kind = TUI_EV_ERROR};
    set_text(&ev, text);
    set_final(w, &ev);
}

/* A chat piece, cut into events at UTF-8 character boundaries. */
static void push_chat_text(tui_worker *w, int side, const char *text, size_t len) {
    while (len > 0) {
        tui_event ev = {.kind = TUI_EV_CHAT_TEXT, .side = side};
        size_t n = len < sizeof ev.text - 1 ? len : sizeof ev.text - 1;
        while (n < len && n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--; /* no cut */
        if (n == 0) n = len < sizeof ev.text - 1 ? len : sizeof ev.text - 1;
        memcpy(ev.text, text, n);
        ev.text[n] = '\0';
        push(w, &ev);
        text += n;
        len -= n;
    }
}

size_t tui_worker_drain(tui_worker *w, tui_event *out, size_t max) {
    uint64_t counter;
    ssize_t r = read(w->efd, &counter, sizeof counter); /* reset; re-armed below if needed */
    (void)r;
    pthread_mutex_lock(&w->mu);
    size_t n = w->count < max ? w->count : max;
    for (size_t i = 0; i < n; i++) out[i] = w->queue[(w->head + i) % w->cap];
    w->head = (w->head + n) % w->cap;
    w->count -= n;
    int more = w->count > 0;
    pthread_cond_signal(&w->space);
    pthread_mutex_unlock(&w->mu);
    if (more) wake(w);
    return n;
}

/* ---- training ---------------------------------------------------------------------------- */

static int on_progress(void *user, const rd_progress *p) {
    tui_worker *w = user;
    tui_event ev = {.kind = p->kind == RD_PROGRESS_EVAL ? TUI_EV_TRAIN_EVAL : TUI_EV_TRAIN_STEP,
                    .progress = *p};
    push(w, &ev);
    return atomic_load(&w->stop) != 0;
}

/* Loads the train set and the eval set (a file, a split of the train set, or none). */
static int load_data(tui_worker *w, const job *j, rd_dataset **train, rd_dataset **eval,
                     rd_error *err) {
    const rd_tokenizer *tok = rd_model_tokenizer(j->train.model);
    if (!tok) return rd_error_set(err, "the model has no tokenizer: data sets cannot be read");
    char msg[600];
    snprintf(msg, sizeof msg, "loading %s", j->train_path);
    push_text(w, TUI_EV_TRAIN_STATUS, 0, msg);
    rd_dataset *all = rd_dataset_load(j->train_path, tok, &j->train.data, err);
    if (!all) return -1;
    if (j->eval_path[0]) {
        *train = all;
        *eval = rd_dataset_load(j->eval_path, tok, &j->train.data, err);
        return *eval ? 0 : -1;
    }
    if (j->train.eval_split > 0) {
        int rc = rd_dataset_split(all, j->train.eval_split, j->train.train.seed, train, eval, err);
        rd_dataset_free(all);
        return rc;
    }
    *train = all;
    return 0;
}

static void run_train(tui_worker *w, job *j) {
    rd_error err = {0};
    rd_dataset *train = NULL, *eval = NULL;
    if (load_data(w, j, &train, &eval, &err)) {
        final_error(w, err.msg);
        rd_dataset_free(train);
        rd_dataset_free(eval);
        return;
    }
    tui_event status = {.kind = TUI_EV_TRAIN_STATUS,
                        .n_train = rd_dataset_size(train),
                        .n_eval = eval ? rd_dataset_size(eval) : 0};
    char cuts_train[200], cuts_eval[200];
    const int max_len = j->train.data.max_len;
    rd_dataset_cuts_text(train, max_len, cuts_train, sizeof cuts_train);
    rd_dataset_cuts_text(eval, max_len, cuts_eval, sizeof cuts_eval);
    snprintf(status.text, sizeof status.text, "training on %zu examples (%zu held out)%s%s%s%s",
             status.n_train, status.n_eval, *cuts_train ? "; training set: " : "", cuts_train,
             *cuts_eval ? "; held-out set: " : "", cuts_eval);
    push(w, &status);

    rd_train_opts o = j->train.train;
    o.stop = &w->stop;
    rd_train_result res = {0};
    const int rc = j->train.full_model
                       ? rd_train_full(j->train.full_model, train, eval, &o, on_progress, w, &res,
                                       &err)
                       : rd_train(j->train.model, j->train.edits, train, eval, &o, on_progress, w,
                                  &res, &err);
    if (rc) {
        final_error(w, err.msg);
    } else {
        tui_event ev = {.kind = TUI_EV_TRAIN_DONE,
                        .steps = res.steps,
                        .stopped = res.stopped,
                        .seconds = res.seconds,
                        .tokens_per_s = res.tokens_per_s,
                        .best_eval_loss = res.best_eval_loss,
                        .best_eval_accuracy = res.best_eval_accuracy,
                        .final_loss = res.final_loss,
                        .n_train = status.n_train,
                        .n_eval = status.n_eval};
        set_text(&ev, res.message);
        set_final(w, &ev);
    }
    rd_train_result_release(&res);
    rd_dataset_free(train);
    rd_dataset_free(eval);
}

/* ---- chat ---------------------------------------------------------------------------- */

/* One side of a chat answer. */
typedef struct side {
    rd_ctx *ctx;
    rd_generator *gen;
    rd_chat_filter *filter;
    int done;
} side;

static void side_release(side *s) {
    rd_generator_free(s->gen);
    rd_ctx_free(s->ctx);
    rd_chat_filter_free(s->filter);
}

static int side_start(side *s, const job *j, const rd_model *model, const rd_edits_view *view,
                      rd_error *err) {
    const tui_chat_job *c = &j->chat;
    int seq = rd_model_config(model)->seq_len;
    size_t want = c->n_prompt + (size_t)c->gen.max_tokens;
    if (want > (size_t)seq) want = (size_t)seq;
    if (!(s->filter = rd_chat_filter_new(j->stop_text)))
        return rd_error_set(err, "out of memory");
    if (!(s->ctx = rd_ctx_new(model, 1, (int)want, err))) return -1;
    s->gen = rd_generator_start(s->ctx, view, j->prompt, c->n_prompt, &c->gen, err);
    return s->gen ? 0 : -1;
}

/* Produces one token of side i and queues the text it adds; marks the side done at its end
 * and queues CHAT_DONE, or keeps it as the job's last event when `last` (no other side is
 * still answering). */
static void side_step(tui_worker *w, side *s, int i, int last) {
    rd_error err = {0};
    int token;
    const char *text, *show;
    size_t len, show_len;
    int rc = rd_generator_next(s->gen, &token, &text, &len, &err);
    if (rc == 1) {
        int over = rd_chat_filter_push(s->filter, text, len, &show, &show_len);
        if (over < 0) {
            rc = -1;
            rd_error_set(&err, "out of memory");
        } else {
            push_chat_text(w, i, show, show_len);
            if (over == 0) return;
        }
    }
    if (rc >= 0) {
        rd_chat_filter_finish(s->filter, &show, &show_len);
        push_chat_text(w, i, show, show_len);
    }
    tui_event ev = {.kind = TUI_EV_CHAT_DONE, .side = i, .stopped = atomic_load(&w->stop) != 0};
    set_text(&ev, rc < 0 ? err.msg : "");
    if (last) set_final(w, &ev);
    else push(w, &ev);
    s->done = 1;
}

static void run_chat(tui_worker *w, job *j) {
    rd_error err = {0};
    const tui_chat_job *c = &j->chat;
    side sides[TUI_CHAT_MAX_COLUMNS] = {{0}};
    rd_edits_view views[TUI_CHAT_MAX_COLUMNS];
    const int n_sides = c->n_columns > 0 ? c->n_columns : 1;
    for (int i = 0; i < n_sides; i++) {
        const tui_chat_column *col = c->n_columns > 0 ? &c->columns[i] : NULL;
        const rd_model *model = col && col->model ? col->model : c->model;
        const rd_edits_view *view = NULL;
        if (col && col->edits) {
            views[i] = rd_edits_view_at(col->edits, c->strength);
            view = &views[i];
        }
        if (side_start(&sides[i], j, model, view, &err)) {
            final_error(w, err.msg);
            for (int k = 0; k <= i; k++) side_release(&sides[k]);
            return;
        }
    }
    for (int active = n_sides; active > 0;) {
        for (int i = 0; i < n_sides; i++) {
            if (sides[i].done) continue;
            if (atomic_load(&w->stop)) rd_generator_stop(sides[i].gen, 2);
            side_step(w, &sides[i], i, active == 1);
            active -= sides[i].done;
        }
    }
    for (int i = 0; i < n_sides; i++) side_release(&sides[i]);
}

/* ---- multiple-choice evaluation ------------------------------------------------------- */

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void run_mc(tui_worker *w, job *j) {
    const tui_mc_job *c = &j->mc;
    const double t0 = now_seconds();
    rd_error err = {0};
    char msg[700];
    rd_mc_set *s = rd_mc_load(c->path, &err);
    if (!s) {
        final_error(w, err.msg);
        return;
    }
    tui_event ev = {.kind = TUI_EV_MC_DONE};
    tui_mc_result *r = &ev.mc;
    for (size_t i = 0; i < rd_mc_size(s); i++) r->n_choices += rd_mc_get(s, i)->n_choices;
    r->style = rd_mc_style_of(s);
    rd_mc_scores sc[2] = {{0}, {0}};
    const rd_edits_view view = c->edits ? rd_edits_view_at(c->edits, c->strength) : (rd_edits_view){0};
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        snprintf(msg, sizeof msg, "evaluating %s: %zu items, %s", k ? "edited" : "base",
                 rd_mc_size(s), c->path);
        push_text(w, TUI_EV_MC_STATUS, k, msg);
        const rd_model *m = k && c->edited_model ? c->edited_model : c->model;
        rc = rd_mc_score(m, k && c->edits && !c->edited_model ? &view : NULL, s, c->max_len,
                         &w->stop, &sc[k], &err);
    }
    if (rc < 0) {
        final_error(w, err.msg);
    } else {
        if (rc == 0) {
            r->n = sc[0].n;
            r->truncated = sc[0].truncated;
            for (int k = 0; k < 2; k++) {
                r->acc[k] = sc[k].acc;
                r->acc_stderr[k] = sc[k].acc_stderr;
                r->acc_norm[k] = sc[k].acc_norm;
                r->acc_norm_stderr[k] = sc[k].acc_norm_stderr;
            }
            r->p[0] = rd_mc_mcnemar(s, sc[0].pred, sc[1].pred, &r->only_base[0], &r->only_edited[0]);
            r->p[1] = rd_mc_mcnemar(s, sc[0].pred_norm, sc[1].pred_norm, &r->only_base[1],
                                    &r->only_edited[1]);
        }
        r->seconds = now_seconds() - t0;
        set_text(&ev, c->path);
        set_final(w, &ev);
    }
    rd_mc_scores_release(&sc[0]);
    rd_mc_scores_release(&sc[1]);
    rd_mc_free(s);
}

/* ---- the thread ---------------------------------------------------------------------- */

/* The model a job uses (held in use from post() until the job has ended); NULL for full
 * fine-tuning, whose model the job changes (rd_train_full refuses a model in use): the app
 * leaves that copy alone until the job's last event. */
static const rd_model *job_model(const job *j) {
    if (j->kind == TUI_JOB_TRAIN) return j->train.full_model ? NULL : j->train.model;
    if (j->kind == TUI_JOB_MC) return j->mc.model;
    return j->chat.model;
}

static void use_begin(const rd_model *m) {
    if (m) rd_model_use_begin(m);
}
static void use_end(const rd_model *m) {
    if (m) rd_model_use_end(m);
}

static void job_release(job *j) {
    free(j->train_path);
    free(j->eval_path);
    free(j->template_name);
    free(j->system);
    free(j->prompt);
    free(j->stop_text);
    free(j->mc_path);
    memset(j, 0, sizeof *j);
}

static void *thread_main(void *arg) {
    tui_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->job_waiting && !w->quit) pthread_cond_wait(&w->job_posted, &w->mu);
        if (w->quit) break;
        w->job_waiting = 0;
        job *j = &w->job;
        pthread_mutex_unlock(&w->mu);
        if (j->kind == TUI_JOB_TRAIN)
            run_train(w, j);
        else if (j->kind == TUI_JOB_MC)
            run_mc(w, j);
        else
            run_chat(w, j);
        pthread_mutex_lock(&w->mu);
        use_end(job_model(j)); /* its last pass is over */
        job_release(j);
        /* its last event and idleness together: once the UI has the last event, a new job
         * can be posted */
        if (w->has_final) push_locked(w, &w->final);
        w->has_final = 0;
        w->busy = TUI_JOB_NONE;
        pthread_mutex_unlock(&w->mu);
        wake(w);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The stop request for the running job: a multiple-choice evaluation reads the evaluation's
 * level (rd_mc_score stops between items at RD_STOP_SKIP_EVAL), the others RD_STOP_AT_STEP. */
static void request_stop(tui_worker *w) {
    pthread_mutex_lock(&w->mu);
    const int mc = w->busy == TUI_JOB_MC;
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->stop, mc ? RD_STOP_SKIP_EVAL : RD_STOP_AT_STEP);
}

tui_worker *tui_worker_new(size_t queue_cap, rd_error *err) {
    if (!queue_cap) queue_cap = TUI_QUEUE_DEFAULT;
    tui_worker *w = calloc(1, sizeof *w);
    if (!w || !(w->queue = calloc(queue_cap, sizeof *w->queue))) {
        free(w);
        rd_error_set(err, "out of memory for the worker");
        return NULL;
    }
    w->cap = queue_cap;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->job_posted, NULL);
    pthread_cond_init(&w->space, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        rd_error_set(err, "eventfd: %s", strerror(errno));
        tui_worker_free(w);
        return NULL;
    }
    /* The thread starts with every signal blocked (it inherits this mask). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, thread_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        rd_error_set(err, "cannot start the worker thread: %s", strerror(rc));
        tui_worker_free(w);
        return NULL;
    }
    w->thread_started = 1;
    return w;
}

void tui_worker_free(tui_worker *w) {
    if (!w) return;
    if (w->thread_started) {
        request_stop(w);
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        pthread_cond_broadcast(&w->job_posted);
        pthread_cond_broadcast(&w->space);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    if (w->job_waiting) use_end(job_model(&w->job)); /* posted, never started */
    job_release(&w->job);
    if (w->efd >= 0) close(w->efd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->job_posted);
    pthread_cond_destroy(&w->space);
    free(w->queue);
    free(w);
}

int tui_worker_fd(const tui_worker *w) { return w->efd; }

int tui_worker_busy(const tui_worker *w) {
    pthread_mutex_t *mu = (pthread_mutex_t *)&w->mu;
    pthread_mutex_lock(mu);
    int b = w->busy;
    pthread_mutex_unlock(mu);
    return b;
}

size_t tui_worker_queued(const tui_worker *w) {
    pthread_mutex_t *mu = (pthread_mutex_t *)&w->mu;
    pthread_mutex_lock(mu);
    size_t n = w->count;
    pthread_mutex_unlock(mu);
    return n;
}

void tui_worker_stop(tui_worker *w) { request_stop(w); }

void tui_worker_skip_eval(tui_worker *w) { atomic_store(&w->stop, RD_STOP_SKIP_EVAL); }

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

/* Hands j to the thread (the worker takes its memory) unless a job is running. */
static int post(tui_worker *w, job *j, rd_error *err) {
    pthread_mutex_lock(&w->mu);
    if (w->busy) {
        pthread_mutex_unlock(&w->mu);
        job_release(j);
        return rd_error_set(err, "%s is running",
                            w->busy == TUI_JOB_TRAIN ? "training"
                            : w->busy == TUI_JOB_MC  ? "a multiple-choice evaluation"
                                                     : "a chat answer");
    }
    use_begin(job_model(j)); /* until the thread has ended the job */
    w->job = *j;
    w->busy = j->kind;
    w->job_waiting = 1;
    atomic_store(&w->stop, 0);
    pthread_cond_signal(&w->job_posted);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int tui_worker_start_train(tui_worker *w, const tui_train_job *t, rd_error *err) {
    if (!t->model || (!t->edits == !t->full_model) || (t->full_model && t->full_model != t->model) ||
        !t->train_path || !*t->train_path)
        return rd_error_set(err, "no model, edits (or a model to fine-tune) or training set");
    job j = {.kind = TUI_JOB_TRAIN, .train = *t};
    j.train_path = dup_or_empty(t->train_path);
    j.eval_path = dup_or_empty(t->eval_path);
    j.template_name = t->data.template_name ? strdup(t->data.template_name) : NULL;
    j.system = t->data.system ? strdup(t->data.system) : NULL;
    if (!j.train_path || !j.eval_path || (t->data.template_name && !j.template_name) ||
        (t->data.system && !j.system)) {
        job_release(&j);
        return rd_error_set(err, "out of memory");
    }
    j.train.train_path = j.train_path;
    j.train.eval_path = j.eval_path;
    j.train.data.template_name = j.template_name;
    j.train.data.system = j.system;
    return post(w, &j, err);
}

int tui_worker_start_chat(tui_worker *w, const tui_chat_job *c, rd_error *err) {
    if (!c->model || !c->prompt || c->n_prompt == 0) return rd_error_set(err, "empty prompt");
    if (c->n_columns < 0 || c->n_columns > TUI_CHAT_MAX_COLUMNS)
        return rd_error_set(err, "a chat answers in 1 to %d columns, not %d",
                            TUI_CHAT_MAX_COLUMNS, c->n_columns);
    for (int i = 0; i < c->n_columns; i++)
        if (c->columns[i].model && c->columns[i].model != c->model && c->columns[i].edits)
            return rd_error_set(err, "a chat column with a fine-tuned model takes no edits");
    job j = {.kind = TUI_JOB_CHAT, .chat = *c};
    j.prompt = malloc(c->n_prompt * sizeof *j.prompt);
    j.stop_text = dup_or_empty(c->stop_text);
    if (!j.prompt || !j.stop_text) {
        job_release(&j);
        return rd_error_set(err, "out of memory");
    }
    memcpy(j.prompt, c->prompt, c->n_prompt * sizeof *j.prompt);
    j.chat.prompt = j.prompt;
    j.chat.stop_text = j.stop_text;
    return post(w, &j, err);
}

int tui_worker_start_mc(tui_worker *w, const tui_mc_job *c, rd_error *err) {
    if (!c->model || !c->path || !*c->path)
        return rd_error_set(err, "no model or multiple-choice file");
    if (c->edited_model && c->edits)
        return rd_error_set(err, "a fine-tuned model is evaluated without edits");
    job j = {.kind = TUI_JOB_MC, .mc = *c};
    if (!(j.mc_path = strdup(c->path))) return rd_error_set(err, "out of memory");
    j.mc.path = j.mc_path;
    return post(w, &j, err);
}
