/* redit — an OpenAI-compatible HTTP server over batched generation (serve layer).
 *
 * One engine thread owns an rd_batch (include/redit/batch.h) and runs its steps while
 * sequences run; libmicrohttpd's connection threads parse requests, hand them to the engine
 * through a queue and stream back the tokens it pushes. Endpoints: POST /v1/completions,
 * POST /v1/chat/completions, GET /v1/models, POST /v1/edits, DELETE /v1/edits/NAME (and
 * GET /health). Edit sets are reference-counted: one removed while a request uses it is freed
 * when that request ends. Every error is OpenAI's JSON {"error": {"message", "type", "param",
 * "code"}} with the matching status. */
#ifndef REDIT_SERVE_H
#define REDIT_SERVE_H

#include <stddef.h>

#include "redit/error.h"
#include "redit/model.h"

typedef struct rd_server rd_server;

/* One line about a finished request ("POST /v1/completions 200 ..."), or a note; called from
 * any thread (the callee serialises its own output). */
typedef void (*rd_server_log_fn)(void *user, const char *line);

typedef struct rd_server_opts {
    const char *host;      /* address to listen on (IPv4 dotted or "localhost"); NULL: 127.0.0.1 */
    int port;              /* 0: any free port (rd_server_port tells which) */
    const char *model_id;  /* the base model's id in /v1/models and `model`; NULL: "base" */
    int parallel;          /* sequences decoded at once (batch slots), >= 1 */
    int queue;             /* requests waiting for a slot at most; beyond: 429 */
    int ctx;               /* context of each sequence; 0: the model's */
    int max_tokens;        /* the most a request may ask for (and chat's default); 0: ctx */
    size_t max_body;       /* request body bytes at most (413 beyond) */
    int max_connections;   /* open connections at most; 0: 512 */
    const char *api_key;   /* NULL: none; else requests need "Authorization: Bearer KEY" */
    const char *chat_template; /* chat template of the base model; NULL: "llama2-chat" */
    int step_delay_ms;     /* a pause after every engine step: 0 in use; tests of shutdown and
                            * disconnects set it (REDIT_SERVE_STEP_DELAY_MS) so a stream is still
                            * running when they act, however fast the machine */
    rd_server_log_fn log;  /* may be NULL */
    void *log_user;
} rd_server_opts;

/* Creates a server for m (borrowed: must outlive the server; its compute mode is set by the
 * caller). Nothing listens yet. NULL with *err on bad options or when the batch's KV cache
 * does not fit. */
rd_server *rd_server_new(const rd_model *m, const rd_server_opts *opts, rd_error *err);

/* Loads the edit file at path (rd_edits_load: refused with the reason when it does not fit
 * the model; force = 1 skips only the fingerprint check) as the edit set NAME (letters,
 * digits, "._-:", at most 64 bytes, not the base model's id nor a name in use). Callable
 * before rd_server_start and from any thread while it runs. */
int rd_server_add_edits(rd_server *s, const char *name, const char *path, int force,
                        rd_error *err);

/* Removes edit set NAME (requests using it finish with it). -1 with *err when unknown. */
int rd_server_remove_edits(rd_server *s, const char *name, rd_error *err);

/* Binds host:port and starts the engine and the HTTP threads. 0, or -1 with *err. */
int rd_server_start(rd_server *s, rd_error *err);

/* The port listened on (after rd_server_start). */
int rd_server_port(const rd_server *s);

/* Stops accepting connections, answers new requests on open ones with 503, lets running and
 * queued requests finish for at most grace_seconds, cancels what is left, and stops every
 * thread. Returns the number of requests that had to be cancelled. */
int rd_server_stop(rd_server *s, double grace_seconds);

/* Frees the server (stopping it first, with no grace, when still running). NULL-safe. */
void rd_server_free(rd_server *s);

#endif
