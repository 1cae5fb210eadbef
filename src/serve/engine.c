/* redit serve — the engine thread: the queue of requests, the rd_batch it steps, the scoring
 * pass of echoed prompts (logprobs), stop texts, and the reference-counted edit sets. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "serve_internal.h"

_Static_assert(SERVE_MAX_TOP <= RD_BATCH_MAX_TOP, "the batch gives at most RD_BATCH_MAX_TOP");
#include "redit/forward.h"
#include "redit/tokenizer.h"

job *job_new(void) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->refs = 1;
    j->seq_id = -1;
    j->logprobs = -1;
    j->strength = 1.0f;
    pthread_cond_init(&j->cv, NULL);
    return j;
}

void job_unref(rd_server *s, job *j) {
    if (!j || --j->refs > 0) return;
    if (j->es) set_unref(j->es);
    free(j->prompt);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->turn_stop);
    free(j->echo_text);
    rd_chat_filter_free(j->filter);
    rd_buf_free(&j->text);
    for (size_t i = 0; i < j->n_lp; i++) free(j->lp[i].text);
    free(j->lp);
    pthread_cond_destroy(&j->cv);
    free(j);
    (void)s;
}

edit_set *sets_find(rd_server *s, const char *name) {
    for (edit_set *e = s->sets; e; e = e->next)
        if (!strcmp(e->name, name)) return e;
    return NULL;
}

void set_unref(edit_set *e) {
    if (--e->refs > 0) return;
    rd_edits_free(e->edits);
    free(e->path);
    free(e->tmpl);
    free(e);
}

int engine_submit(rd_server *s, job *j, const char **why) {
    if (s->draining || s->quit) {
        *why = "the server is shutting down";
        return 503;
    }
    if (s->n_queued >= s->o.queue + (s->o.parallel - s->n_running)) {
        *why = "the server is busy: every sequence slot is in use and the queue is full "
               "(redit serve --parallel, --queue); try again later";
        return 429;
    }
    j->refs++;
    j->state = JOB_QUEUED;
    j->next_queued = NULL;
    if (s->queue_tail) s->queue_tail->next_queued = j;
    else s->queue_head = j;
    s->queue_tail = j;
    s->n_queued++;
    pthread_cond_signal(&s->work);
    return 0;
}

/* ---- output of a job (under mu) -------------------------------------------------------- */

/* Bytes at the end of t[0..n) that start a UTF-8 character not yet complete. */
static size_t utf8_tail(const char *t, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const unsigned char c = (unsigned char)t[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte */
        const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

/* Adds text to the job's output and applies the stop texts: returns 1 when one ended it. */
static int push_text(job *j, const char *text, size_t len) {
    const size_t before = j->text.len;
    if (len && rd_buf_append(&j->text, text, len)) return 0;
    if (!j->text.data) rd_buf_append(&j->text, "", 0);
    size_t hold = 0;
    for (int i = 0; i < j->n_stop; i++) {
        const size_t sl = strlen(j->stop[i]);
        const size_t from = before >= sl ? before - sl + 1 : 0;
        const char *hit = NULL;
        for (const char *p = j->text.data + from; p + sl <= j->text.data + j->text.len; p++)
            if (!memcmp(p, j->stop[i], sl)) {
                hit = p;
                break;
            }
        if (hit && (!j->stopped || (size_t)(hit - j->text.data) < j->text.len)) {
            j->text.len = (size_t)(hit - j->text.data);
            j->text.data[j->text.len] = '\0';
            j->stopped = 1;
        }
    }
    if (j->stopped) {
        j->safe = j->text.len;
        return 1;
    }
    for (int i = 0; i < j->n_stop; i++) { /* the longest tail that may begin a stop text */
        const size_t sl = strlen(j->stop[i]);
        for (size_t k = sl - 1; k > hold; k--)
            if (k <= j->text.len && !memcmp(j->text.data + j->text.len - k, j->stop[i], k)) {
                hold = k;
                break;
            }
    }
    size_t safe = j->text.len - hold;
    safe -= utf8_tail(j->text.data, safe);
    if (safe > j->safe) j->safe = safe;
    return 0;
}

static int lp_reserve(job *j) {
    return rd_array_reserve(&j->lp, &j->cap_lp, j->n_lp + 1, sizeof *j->lp);
}

/* The echoed prompt's log-probabilities: one forward pass over the whole prompt (every
 * position's logits) on the engine's scoring context. Engine thread, without mu. */
static int score_prompt(rd_server *s, rd_ctx **score, job *j, rd_error *err) {
    const int V = rd_model_config(s->m)->vocab_size;
    if (!*score && !(*score = rd_ctx_new(s->m, 1, s->ctx, err))) return -1;
    float *logits = malloc(j->n_prompt * (size_t)V * sizeof *logits);
    if (!logits) return rd_error_set(err, "serve: out of memory for %zu × %d logits", j->n_prompt, V);
    rd_ctx_reset(*score);
    rd_edits_view view = j->es ? rd_edits_view_at(j->es->edits, j->strength) : (rd_edits_view){0};
    if (rd_forward(*score, j->es ? &view : NULL, j->prompt, 1, (int)j->n_prompt, RD_LOGITS_ALL,
                   logits, err)) {
        free(logits);
        return -1;
    }
    for (size_t i = 1; i < j->n_prompt && i < j->n_echo; i++) {
        const float *row = logits + (i - 1) * (size_t)V;
        lp_token *t = &j->lp[i];
        t->lp = rd_logits_logprob(row, V, j->prompt[i], j->logprobs, t->top_id, t->top_lp,
                                  &t->n_top);
        t->has_lp = 1;
    }
    free(logits);
    return 0;
}

/* A generated token's logprobs entry with the batch's top list for it (under mu; inside
 * the batch's on_token). */
static void record_token(job *j, rd_server *s, int token, const char *text, size_t len,
                         float logprob) {
    const int prev = j->last_id;
    const size_t off = j->echo_len + j->raw_len;
    j->last_id = token;
    j->raw_len += len;
    if (j->logprobs < 0 || lp_reserve(j)) return;
    lp_token *t = &j->lp[j->n_lp];
    memset(t, 0, sizeof *t);
    t->id = token;
    t->prev = prev;
    t->text = malloc(len + 1);
    if (!t->text) return;
    memcpy(t->text, text, len);
    t->text[len] = '\0';
    t->text_off = off;
    t->lp = logprob;
    t->has_lp = 1;
    const int *ids;
    const float *lps;
    const int n = rd_batch_token_top(s->batch, &ids, &lps);
    t->n_top = n < j->logprobs ? n : j->logprobs;
    for (int k = 0; k < t->n_top; k++) {
        t->top_id[k] = ids[k];
        t->top_lp[k] = lps[k];
    }
    j->n_lp++;
}

static int on_token(void *user, int id, int token, const char *text, size_t len, float logprob) {
    job *j = user;
    rd_server *s = j->srv;
    (void)id;
    const char *show = text;
    size_t show_len = len;
    int end = 0;
    if (j->filter) end = rd_chat_filter_push(j->filter, text, len, &show, &show_len) != 0;
    pthread_mutex_lock(&s->mu);
    j->n_generated++;
    record_token(j, s, token, text, len, logprob);
    if (push_text(j, show, show_len)) end = 1;
    if (end) j->stopped = 1;
    if (j->cancel) end = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&s->mu);
    return end;
}

/* The job is over (under mu): wakes its handler and drops the engine's reference. */
static void finish_job(rd_server *s, job *j, int finish) {
    j->finish = finish;
    j->safe = j->text.len;
    j->state = JOB_DONE;
    pthread_cond_broadcast(&j->cv);
    job_unref(s, j);
}

static void on_done(void *user, int id, const rd_gen_stats *st) {
    job *j = user;
    rd_server *s = j->srv;
    (void)id;
    const char *show = "";
    size_t show_len = 0;
    if (j->filter && !rd_chat_filter_stopped(j->filter))
        rd_chat_filter_finish(j->filter, &show, &show_len);
    pthread_mutex_lock(&s->mu);
    if (show_len) push_text(j, show, show_len);
    for (int i = 0; i < s->n_running; i++)
        if (s->active[i] == j) s->active[i] = s->active[--s->n_running];
    /* stopped_by 2 comes from a stop text (stopped), a cancellation (cancel), or else a
     * failed step of the batch (the server log has its reason) */
    const int finish = j->stopped || st->stopped_by == 1 ? FINISH_STOP
                       : st->stopped_by != 2             ? FINISH_LENGTH
                       : j->cancel                       ? FINISH_CANCELLED
                                                         : FINISH_ERROR;
    if (finish == FINISH_ERROR)
        snprintf(j->errmsg, sizeof j->errmsg, "the engine failed (the server log has the reason)");
    finish_job(s, j, finish);
    if (!s->n_running && !s->n_queued) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* Takes a queued job into the batch (engine thread; mu held on entry and exit, released
 * around the scoring pass). */
static void admit(rd_server *s, rd_ctx **score, job *j) {
    rd_error err = {0};
    if (j->cancel) {
        finish_job(s, j, FINISH_CANCELLED);
        return;
    }
    pthread_mutex_unlock(&s->mu);
    int rc = 0;
    if (j->echo && j->logprobs >= 0) rc = score_prompt(s, score, j, &err);
    if (!rc && j->turn_stop && j->turn_stop[0] && !(j->filter = rd_chat_filter_new(j->turn_stop)))
        rc = rd_error_set(&err, "serve: out of memory");
    int id = -1;
    rd_edits_view view = j->es ? rd_edits_view_at(j->es->edits, j->strength) : (rd_edits_view){0};
    if (!rc && j->gen.max_tokens > 0)
        rc = (id = rd_batch_add(s->batch, j->es ? &view : NULL, j->prompt, j->n_prompt, &j->gen,
                                j, &err)) < 0;
    if (!rc && id >= 0 && j->logprobs >= 0) /* (cannot fail: a running id, k ≤ SERVE_MAX_TOP) */
        (void)rd_batch_set_top(s->batch, id, j->logprobs, &err);
    pthread_mutex_lock(&s->mu);
    if (rc) {
        snprintf(j->errmsg, sizeof j->errmsg, "%s", err.msg);
        finish_job(s, j, FINISH_ERROR);
    } else if (j->gen.max_tokens == 0) {
        push_text(j, "", 0);
        finish_job(s, j, FINISH_LENGTH);
    } else {
        j->seq_id = id;
        j->state = JOB_RUNNING;
        s->active[s->n_running++] = j;
    }
    pthread_cond_broadcast(&j->cv); /* a stream echoing scored prompt tokens may start */
}

void *engine_main(void *arg) {
    rd_server *s = arg;
    rd_ctx *score = NULL;
    rd_error err = {0};
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* cancellations asked for by the handlers (client gone, shutdown) */
        while (s->queue_head && rd_batch_free_slots(s->batch) > 0) {
            job *j = s->queue_head;
            s->queue_head = j->next_queued;
            if (!s->queue_head) s->queue_tail = NULL;
            s->n_queued--;
            admit(s, &score, j);
        }
        if (!s->n_running) {
            if (!s->n_queued) pthread_cond_broadcast(&s->idle);
            if (s->quit && !s->n_queued) break;
            if (!s->queue_head) pthread_cond_wait(&s->work, &s->mu);
            continue;
        }
        for (int i = 0; i < s->n_running; i++) {
            job *j = s->active[i];
            if (j->cancel && !j->cancel_sent && j->seq_id >= 0) {
                rd_batch_cancel(s->batch, j->seq_id);
                j->cancel_sent = 1;
            }
        }
        pthread_mutex_unlock(&s->mu);
        const int rc = rd_batch_step(s->batch, on_token, on_done, &err);
        if (s->o.step_delay_ms > 0)
            nanosleep(&(struct timespec){s->o.step_delay_ms / 1000,
                                         (long)(s->o.step_delay_ms % 1000) * 1000000L},
                      NULL);
        pthread_mutex_lock(&s->mu);
        if (rc < 0 && s->o.log) s->o.log(s->o.log_user, err.msg);
    }
    pthread_mutex_unlock(&s->mu);
    rd_ctx_free(score);
    return NULL;
}
