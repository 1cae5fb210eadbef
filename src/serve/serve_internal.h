/* redit serve — what the HTTP side (server.c, api.c) and the engine thread (engine.c) share.
 *
 * Locking: one mutex (rd_server.mu) guards the queue, the edit-set registry and every job's
 * output fields; the engine thread alone touches the rd_batch and the scoring context, and
 * runs rd_batch_step and scoring passes without holding the mutex. */
#ifndef REDIT_SERVE_INTERNAL_H
#define REDIT_SERVE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include "redit/batch.h"
#include "redit/buf.h"
#include "redit/chat_format.h"
#include "redit/edits.h"
#include "redit/serve.h"

#define SERVE_MAX_STOP 4
#define SERVE_MAX_TOP RD_BATCH_MAX_TOP /* the engine's limit of alternatives per token */

/* A loaded edit set; refs counts the registry's reference (until removed) and each job's. */
typedef struct edit_set {
    char name[72];
    char *path;
    rd_edits *edits;
    char *tmpl; /* the chat template it was trained with, or NULL */
    int refs;
    struct edit_set *next;
} edit_set;

/* One token of a completion's logprobs (echoed prompt tokens, then generated ones). */
typedef struct lp_token {
    int id, prev;    /* the token, and the one before it (its text depends on it; -1: none) */
    size_t text_off; /* byte offset of its text in the choice's text */
    char *text;      /* its text (malloc'ed) */
    float lp;        /* its log-probability; has_lp 0: null (the first prompt token) */
    int has_lp, n_top;
    int top_id[SERVE_MAX_TOP];
    float top_lp[SERVE_MAX_TOP];
} lp_token;

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };
enum { FINISH_LENGTH, FINISH_STOP, FINISH_CANCELLED, FINISH_ERROR };

typedef struct job {
    int refs; /* the handler's and the engine's (under mu) */
    struct rd_server *srv;
    /* the request (set by the handler before it is queued; read-only afterwards) */
    int *prompt;
    size_t n_prompt;
    rd_gen_opts gen;
    edit_set *es; /* NULL: the base model (a reference, released when the job ends) */
    float strength;
    char *stop[SERVE_MAX_STOP];
    int n_stop;
    char *turn_stop; /* chat: the template's next-turn text (NULL or "": none) */
    int logprobs;    /* top logprobs wanted per token (0..SERVE_MAX_TOP); -1: no logprobs */
    int echo;
    char *echo_text; /* echo: the prompt's text (the decoded prompt tokens) */
    /* engine-side */
    int seq_id;
    rd_chat_filter *filter; /* chat: ends the reply at the template's next turn */
    struct job *next_queued;
    /* output, under mu */
    int state, cancel, cancel_sent;
    rd_buf text;     /* the completion's visible text */
    size_t safe;     /* bytes of text that can be sent now */
    int stopped;     /* a stop text ended it */
    int n_generated;
    int finish;      /* FINISH_* */
    char errmsg[RD_ERROR_MAX];
    lp_token *lp;    /* echoed prompt tokens (n_echo) then generated tokens */
    size_t n_lp, cap_lp, n_echo, echo_len;
    size_t raw_len;  /* bytes of generated token text so far (before stop texts and the chat
                      * filter): the next token's text_off is echo_len + raw_len */
    int last_id;     /* the last token of the prompt, then of the generation */
    pthread_cond_t cv;
} job;

struct rd_server {
    const rd_model *m;
    rd_server_opts o;
    char model_id[128];
    char host[256];
    int ctx; /* each sequence's context */
    long created;
    pthread_mutex_t mu;
    pthread_mutex_t load_mu; /* edit files load one at a time */
    pthread_cond_t work;     /* wakes the engine */
    pthread_cond_t idle;     /* the engine has no sequence and no queued job, or a request
                              * has ended (rd_server_stop waits on it) */
    edit_set *sets;
    job *queue_head, *queue_tail;
    int n_queued, n_running; /* jobs waiting, jobs in the batch */
    int n_inflight;          /* requests being read or answered (streams included) */
    job **active;            /* (parallel) the jobs in the batch: active[0..n_running) */
    int draining, quit, started, stopped;
    unsigned long next_id;
    rd_batch *batch;
    pthread_t engine;
    struct MHD_Daemon *daemon;
    int port;
};

/* ---- engine.c ---- */
job *job_new(void);
void job_unref(rd_server *s, job *j); /* under mu */
/* Queues j (takes a reference for the engine). 0, or an HTTP status with *why (429 queue full,
 * 503 shutting down). Under mu. */
int engine_submit(rd_server *s, job *j, const char **why);
void *engine_main(void *arg);
edit_set *sets_find(rd_server *s, const char *name); /* under mu; borrowed */
void set_unref(edit_set *e);                         /* under mu */

/* ---- api.c: one request's JSON body to a reply ---- */
typedef struct http_reply {
    int status;
    char *body;      /* malloc'ed JSON (non-streaming) */
    job **jobs;      /* streaming or waiting: the jobs to wait for (refs held) */
    int n_jobs;
    int stream, chat, include_usage;
    size_t lp_sent;  /* streaming: logprobs entries of job 0 sent so far */
    char id[48];
    char model[136];
    long created;
} http_reply;

/* OpenAI's error JSON (malloc'ed). code and param may be NULL (null). */
char *api_error_json(const char *message, const char *type, const char *param, const char *code);

/* Starts a completion (chat = 0) or chat completion from the body: on success r->jobs are
 * queued (status 200); else r->status and r->body hold the error. */
void api_completion(rd_server *s, const char *body, size_t len, int chat, http_reply *r);
/* The non-streaming answer of finished jobs into r->body. Under mu. */
void api_final_json(rd_server *s, http_reply *r);
/* Streaming: appends to out the chunks of what job 0 has produced since *sent (and the final
 * chunks and "data: [DONE]" when it is done: *finished = 1). Under mu. */
int api_stream_chunks(rd_server *s, http_reply *r, size_t *sent, int *first, rd_buf *out,
                      int *finished);
/* Streaming: 1 when api_stream_chunks has something to send for job 0 (under mu). */
int api_stream_ready(const http_reply *r, size_t sent, int first);
char *api_models_json(rd_server *s);
void api_edits_post(rd_server *s, const char *body, size_t len, http_reply *r);
void api_edits_delete(rd_server *s, const char *name, http_reply *r);

#endif
