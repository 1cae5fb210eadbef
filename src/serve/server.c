/* redit serve — the HTTP side on libmicrohttpd: one thread per connection (a handler may wait
 * for its job), request bodies within --max-body, the API key, routing, streaming responses
 * fed by the engine, client disconnects noticed while waiting (the job is cancelled), and the
 * server's lifecycle. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "serve_internal.h"

/* One request on a connection (MHD's per-request closure). */
typedef struct conn {
    rd_server *s;
    struct MHD_Connection *mc;
    rd_buf body;
    int too_big;
    http_reply r;
    /* streaming */
    rd_buf out;
    size_t out_pos, sent;
    int first, finished;
    double t0;
    char what[160]; /* "POST /v1/completions", for the log line of a stream */
} conn;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 1 when the client has closed its end (or the socket failed). */
static int peer_gone(struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Waits (under mu) for the job to change, at most 50 ms. */
static void wait_a_little(rd_server *s, job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->cv, &s->mu, &ts);
}

/* Asks the engine to end the connection's jobs (under mu). */
static void cancel_jobs(rd_server *s, conn *c) {
    for (int i = 0; i < c->r.n_jobs; i++)
        if (c->r.jobs[i]->state != JOB_DONE) c->r.jobs[i]->cancel = 1;
    pthread_cond_signal(&s->work);
}

static void log_line(conn *c, const char *method, const char *url, int status) {
    rd_server *s = c->s;
    if (!s->o.log) return;
    char line[512];
    long p = 0, g = 0;
    for (int i = 0; i < c->r.n_jobs; i++) {
        p += (long)c->r.jobs[i]->n_prompt;
        g += c->r.jobs[i]->n_generated;
    }
    if (c->r.n_jobs)
        snprintf(line, sizeof line, "%s %s %d model=%s prompt=%ld completion=%ld %.2fs", method,
                 url, status, c->r.model, p, g, now_s() - c->t0);
    else
        snprintf(line, sizeof line, "%s %s %d", method, url, status);
    s->o.log(s->o.log_user, line);
}

static enum MHD_Result send_json(struct MHD_Connection *mc, int status, char *body) {
    const char *b = body ? body : "{}";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(b), (void *)b, MHD_RESPMEM_MUST_COPY);
    free(body);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    const enum MHD_Result rc = MHD_queue_response(mc, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_error(conn *c, int status, const char *msg, const char *type,
                                  const char *param, const char *code, const char *method,
                                  const char *url) {
    log_line(c, method, url, status);
    return send_json(c->mc, status, api_error_json(msg, type, param, code));
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    conn *c = cls;
    rd_server *s = c->s;
    (void)pos;
    while (c->out_pos == c->out.len) {
        rd_buf_clear(&c->out);
        c->out_pos = 0;
        if (c->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        job *j = c->r.jobs[0];
        pthread_mutex_lock(&s->mu);
        while (!api_stream_ready(&c->r, c->sent, c->first)) {
            wait_a_little(s, j);
            if (!api_stream_ready(&c->r, c->sent, c->first) && peer_gone(c->mc)) {
                cancel_jobs(s, c);
                pthread_mutex_unlock(&s->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
        api_stream_chunks(s, &c->r, &c->sent, &c->first, &c->out, &c->finished);
        pthread_mutex_unlock(&s->mu);
        if (c->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = c->out.len - c->out_pos;
    if (n > max) n = max;
    memcpy(buf, c->out.data + c->out_pos, n);
    c->out_pos += n;
    return (ssize_t)n;
}

/* Waits for every job of a non-streaming request; 0, or -1 when the client went away. */
static int wait_jobs(conn *c) {
    rd_server *s = c->s;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < c->r.n_jobs; i++) {
        job *j = c->r.jobs[i];
        while (j->state != JOB_DONE) {
            wait_a_little(s, j);
            if (j->state != JOB_DONE && peer_gone(c->mc)) {
                cancel_jobs(s, c);
                pthread_mutex_unlock(&s->mu);
                return -1;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int authorized(rd_server *s, struct MHD_Connection *mc) {
    if (!s->o.api_key) return 1;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    return h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, s->o.api_key);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *mc, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls) {
    rd_server *s = cls;
    (void)version;
    conn *c = *req_cls;
    if (!c) { /* the headers: the body (if any) comes in the next calls */
        if (!(c = calloc(1, sizeof *c))) return MHD_NO;
        c->s = s;
        c->mc = mc;
        c->t0 = now_s();
        *req_cls = c;
        pthread_mutex_lock(&s->mu);
        s->n_inflight++;
        pthread_mutex_unlock(&s->mu);
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            char msg[160];
            snprintf(msg, sizeof msg, "the request body of %s bytes is larger than this server's "
                     "limit of %zu (redit serve --max-body)", cl, s->o.max_body);
            return send_error(c, 413, msg, "invalid_request_error", NULL, "request_too_large",
                              method, url);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (c->body.len + *upload_size > s->o.max_body) c->too_big = 1;
        else rd_buf_append(&c->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->too_big) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is larger than this server's limit of %zu "
                 "bytes (redit serve --max-body)", s->o.max_body);
        return send_error(c, 413, msg, "invalid_request_error", NULL, "request_too_large", method,
                          url);
    }
    if (c->body.oom)
        return send_error(c, 500, "out of memory", "server_error", NULL, NULL, method, url);
    if (!strcmp(url, "/health") || !strcmp(url, "/v1/health")) {
        log_line(c, method, url, 200);
        return send_json(mc, 200, strdup("{\"status\":\"ok\"}"));
    }
    if (!authorized(s, mc))
        return send_error(c, 401, "Incorrect API key provided: give it as 'Authorization: "
                          "Bearer KEY' (redit serve --api-key)", "invalid_request_error", NULL,
                          "invalid_api_key", method, url);
    pthread_mutex_lock(&s->mu);
    const int draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    if (draining)
        return send_error(c, 503, "the server is shutting down", "server_error", NULL,
                          "service_unavailable", method, url);
    const int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    const char *body = c->body.data ? c->body.data : "";
    if (get && (!strcmp(url, "/v1/models") || !strcmp(url, "/models"))) {
        log_line(c, method, url, 200);
        return send_json(mc, 200, api_models_json(s));
    }
    if (post && !strcmp(url, "/v1/edits")) {
        api_edits_post(s, body, c->body.len, &c->r);
        log_line(c, method, url, c->r.status);
        const int st = c->r.status;
        char *b = c->r.body;
        c->r.body = NULL;
        return send_json(mc, st, b);
    }
    if (!strcmp(method, "DELETE") && !strncmp(url, "/v1/edits/", 10)) {
        api_edits_delete(s, url + 10, &c->r);
        log_line(c, method, url, c->r.status);
        const int st = c->r.status;
        char *b = c->r.body;
        c->r.body = NULL;
        return send_json(mc, st, b);
    }
    const int chat = !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions");
    if (post && (chat || !strcmp(url, "/v1/completions") || !strcmp(url, "/completions"))) {
        api_completion(s, body, c->body.len, chat, &c->r);
        if (c->r.status != 200) {
            log_line(c, method, url, c->r.status);
            const int st = c->r.status;
            char *b = c->r.body;
            c->r.body = NULL;
            return send_json(mc, st, b);
        }
        if (c->r.stream) {
            c->first = 1;
            struct MHD_Response *resp =
                MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, c, NULL);
            if (!resp) return MHD_NO;
            MHD_add_response_header(resp, "Content-Type", "text/event-stream");
            MHD_add_response_header(resp, "Cache-Control", "no-cache");
            const enum MHD_Result rc = MHD_queue_response(mc, 200, resp);
            MHD_destroy_response(resp);
            snprintf(c->what, sizeof c->what, "%s %.100s", method, url);
            return rc; /* logged when the stream ends */
        }
        if (wait_jobs(c)) return MHD_NO; /* the client has gone: close */
        pthread_mutex_lock(&s->mu);
        api_final_json(s, &c->r);
        pthread_mutex_unlock(&s->mu);
        log_line(c, method, url, c->r.status);
        const int st = c->r.status;
        char *b = c->r.body;
        c->r.body = NULL;
        return send_json(mc, st, b);
    }
    char msg[300];
    snprintf(msg, sizeof msg, "Unknown request URL: %s %.200s", method, url);
    return send_error(c, 404, msg, "invalid_request_error", NULL, "unknown_url", method, url);
}

static void completed(void *cls, struct MHD_Connection *mc, void **req_cls,
                      enum MHD_RequestTerminationCode toe) {
    rd_server *s = cls;
    conn *c = *req_cls;
    (void)mc;
    (void)toe;
    if (!c) return;
    if (c->what[0]) {
        char *sp = strchr(c->what, ' ');
        if (sp) *sp = '\0';
        pthread_mutex_lock(&s->mu);
        const int gone = !c->finished;
        pthread_mutex_unlock(&s->mu);
        log_line(c, c->what, sp ? sp + 1 : "", gone ? 499 : 200);
    }
    pthread_mutex_lock(&s->mu);
    cancel_jobs(s, c); /* a finished job ignores it */
    for (int i = 0; i < c->r.n_jobs; i++) job_unref(s, c->r.jobs[i]);
    if (--s->n_inflight == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    free(c->r.jobs);
    free(c->r.body);
    rd_buf_free(&c->body);
    rd_buf_free(&c->out);
    free(c);
    *req_cls = NULL;
}

/* ---- the server object --------------------------------------------------------------- */

rd_server *rd_server_new(const rd_model *m, const rd_server_opts *opts, rd_error *err) {
    if (!m || !opts) {
        rd_error_set(err, "serve: no model or options");
        return NULL;
    }
    if (opts->parallel < 1 || opts->parallel > 1024 || opts->queue < 0 || opts->ctx < 0 ||
        opts->max_tokens < 0 || opts->port < 0 || opts->port > 65535 || opts->max_body < 64 ||
        opts->max_connections < 0) {
        rd_error_set(err, "serve: an option is out of range (parallel 1-1024, port 0-65535, "
                          "max body at least 64 bytes)");
        return NULL;
    }
    rd_server *s = calloc(1, sizeof *s);
    if (!s) {
        rd_error_set(err, "serve: out of memory");
        return NULL;
    }
    s->m = m;
    s->o = *opts;
    snprintf(s->model_id, sizeof s->model_id, "%s", opts->model_id ? opts->model_id : "base");
    snprintf(s->host, sizeof s->host, "%s", opts->host ? opts->host : "127.0.0.1");
    s->o.host = s->host;
    s->o.model_id = s->model_id;
    if (!s->o.chat_template) s->o.chat_template = "llama2-chat";
    if (!s->o.max_connections) s->o.max_connections = 512;
    s->created = (long)time(NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->load_mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
    const int seq_len = rd_model_config(m)->seq_len;
    rd_batch_opts bo = {.slots = opts->parallel,
                        .max_seq = opts->ctx && opts->ctx < seq_len ? opts->ctx : seq_len};
    if (!(s->active = calloc((size_t)opts->parallel, sizeof *s->active)) ||
        !(s->batch = rd_batch_new(m, &bo, err))) {
        if (!s->active) rd_error_set(err, "serve: out of memory");
        else rd_error_prefix(err, "serve");
        rd_server_free(s);
        return NULL;
    }
    s->ctx = rd_batch_max_seq(s->batch);
    if (!s->o.max_tokens || s->o.max_tokens > s->ctx) s->o.max_tokens = s->ctx;
    return s;
}

static int valid_name(const char *n) {
    const size_t len = strlen(n);
    if (!len || len > 64) return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("._-:", *p)))
            return 0;
    return 1;
}

int rd_server_add_edits(rd_server *s, const char *name, const char *path, int force,
                        rd_error *err) {
    if (!valid_name(name))
        return rd_error_set(err, "name \"%.80s\": an edit set's name is 1 to 64 letters, digits "
                            "or ._-:", name);
    if (!strcmp(name, s->model_id))
        return rd_error_set(err, "name \"%s\" is the base model's id", name);
    pthread_mutex_lock(&s->mu);
    const int taken = sets_find(s, name) != NULL;
    pthread_mutex_unlock(&s->mu);
    if (taken) return rd_error_set(err, "name \"%s\" is in use (DELETE /v1/edits/%s first)", name, name);
    edit_set *e = calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(path))) {
        free(e);
        return rd_error_set(err, "serve: out of memory");
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->refs = 1;
    char *json = NULL;
    pthread_mutex_lock(&s->load_mu);
    e->edits = rd_edits_load(path, s->m, force, &json, err);
    pthread_mutex_unlock(&s->load_mu);
    if (!e->edits) {
        free(e->path);
        free(e);
        return -1;
    }
    e->tmpl = rd_edits_training_template(json);
    free(json);
    pthread_mutex_lock(&s->mu);
    if (sets_find(s, name)) { /* added meanwhile */
        pthread_mutex_unlock(&s->mu);
        set_unref(e);
        return rd_error_set(err, "name \"%s\" is in use", name);
    }
    e->next = s->sets;
    s->sets = e;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int rd_server_remove_edits(rd_server *s, const char *name, rd_error *err) {
    pthread_mutex_lock(&s->mu);
    for (edit_set **p = &s->sets; *p; p = &(*p)->next)
        if (!strcmp((*p)->name, name)) {
            edit_set *e = *p;
            *p = e->next;
            set_unref(e); /* freed now, or by the last request using it */
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
    pthread_mutex_unlock(&s->mu);
    return rd_error_set(err, "The model '%.80s' does not exist: no edit set of that name", name);
}

int rd_server_start(rd_server *s, rd_error *err) {
    if (s->started) return rd_error_set(err, "serve: already started");
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(s->host, NULL, &hints, &ai) || !ai)
        return rd_error_set(err, "serve: --host %s: not an IPv4 address or name of this machine",
                            s->host);
    struct sockaddr_in addr;
    memcpy(&addr, ai->ai_addr, sizeof addr);
    freeaddrinfo(ai);
    addr.sin_port = htons((uint16_t)s->o.port);
    if (pthread_create(&s->engine, NULL, engine_main, s))
        return rd_error_set(err, "serve: cannot start the engine thread");
    s->started = 1;
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
            MHD_USE_AUTO,
        (uint16_t)s->o.port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)s->o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024), MHD_OPTION_END);
    if (!s->daemon) {
        rd_server_stop(s, 0);
        return rd_error_set(err, "serve: cannot listen on %s:%d (%s)", s->host, s->o.port,
                            errno ? strerror(errno) : "address in use or not available");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->o.port;
    return 0;
}

int rd_server_port(const rd_server *s) { return s->port; }

/* The CLOCK_REALTIME time `seconds` from now (for pthread_cond_timedwait). */
static struct timespec deadline(double seconds) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += (time_t)seconds;
    t.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

int rd_server_stop(rd_server *s, double grace_seconds) {
    if (!s->started || s->stopped) return 0;
    if (s->daemon) { /* no new connections: the listening socket is ours to close */
        const MHD_socket fd = MHD_quiesce_daemon(s->daemon);
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    /* running requests get the grace period (their answers sent, streams to the end) */
    const struct timespec until = deadline(grace_seconds);
    while ((s->n_running || s->n_queued || s->n_inflight) &&
           pthread_cond_timedwait(&s->idle, &s->mu, &until) != ETIMEDOUT) {
    }
    const int cancelled = s->n_running + s->n_queued;
    for (job *q = s->queue_head; q; q = q->next_queued) q->cancel = 1;
    for (int i = 0; i < s->n_running; i++) s->active[i]->cancel = 1;
    s->quit = 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->engine, NULL);
    /* what the cancelled requests have left to send (their error event, [DONE]): 2 s more */
    pthread_mutex_lock(&s->mu);
    const struct timespec flush = deadline(2.0);
    while (s->n_inflight && pthread_cond_timedwait(&s->idle, &s->mu, &flush) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&s->mu);
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    s->stopped = 1;
    return cancelled;
}

void rd_server_free(rd_server *s) {
    if (!s) return;
    rd_server_stop(s, 0);
    rd_batch_free(s->batch);
    while (s->sets) {
        edit_set *e = s->sets;
        s->sets = e->next;
        set_unref(e);
    }
    free(s->active);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->load_mu);
    free(s);
}
