/* redit serve — the OpenAI API's JSON: requests to jobs, finished jobs to responses and
 * server-sent-event chunks, errors as {"error": {"message", "type", "param", "code"}}. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "serve_internal.h"
#include "redit/tokenizer.h"

char *api_error_json(const char *message, const char *type, const char *param, const char *code) {
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static void fail(http_reply *r, int status, const char *param, const char *code, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));
static void fail(http_reply *r, int status, const char *param, const char *code, const char *fmt,
                 ...) {
    char msg[RD_ERROR_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "invalid_request_error"
                       : status == 429 ? "rate_limit_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    free(r->body);
    r->status = status;
    r->body = api_error_json(msg, type, param, code);
}

/* Text as valid UTF-8 for JSON (malloc'ed; NULL when out of memory): each ill-formed part
 * becomes U+FFFD, one per maximal subpart as Unicode recommends (and Python's
 * bytes.decode(errors="replace") does), so a model emitting raw bytes still gives valid JSON. */
static char *utf8_clean(const char *t, size_t n) {
    rd_buf b = {0};
    size_t i = 0;
    while (i < n) {
        const unsigned char c = (unsigned char)t[i];
        size_t need = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) need = 1;
        else if (c >= 0xC2 && c <= 0xDF) need = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        }
        size_t k = 1;
        if (need > 1)
            for (; k < need && i + k < n; k++) {
                const unsigned char d = (unsigned char)t[i + k];
                if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) break;
            }
        if (need && k == need) rd_buf_append(&b, t + i, need);
        else rd_buf_append(&b, "\xEF\xBF\xBD", 3);
        i += need ? k : 1;
    }
    rd_buf_append(&b, "", 0);
    if (b.oom) {
        rd_buf_free(&b);
        return NULL;
    }
    return rd_buf_take(&b);
}

/* Adds the string t[0..n) as valid UTF-8 to a JSON object (o) or array (name NULL). */
static void add_text(cJSON *o, const char *name, const char *t, size_t n) {
    char *c = utf8_clean(t ? t : "", t ? n : 0);
    cJSON *v = cJSON_CreateString(c ? c : "");
    free(c);
    if (name) cJSON_AddItemToObject(o, name, v);
    else cJSON_AddItemToArray(o, v);
}

/* ---- reading the request ------------------------------------------------------------- */

typedef struct req_opts {
    rd_gen_opts gen;
    int max_tokens_given;
    float strength;
    char *stop[SERVE_MAX_STOP];
    int n_stop;
    int logprobs, echo;
} req_opts;

static void req_opts_free(req_opts *q) {
    for (int i = 0; i < q->n_stop; i++) free(q->stop[i]);
    q->n_stop = 0;
}

static int get_number(const cJSON *req, const char *name, double lo, double hi, double *out,
                      http_reply *r) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        fail(r, 400, name, "invalid_value", "'%s' must be a number in [%g, %g]", name, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 1;
}

static int get_int(const cJSON *req, const char *name, double lo, double hi, long long *out,
                   http_reply *r) {
    double d;
    const int got = get_number(req, name, lo, hi, &d, r);
    if (got == 1 && d != floor(d)) {
        fail(r, 400, name, "invalid_value", "'%s' must be a whole number", name);
        return -1;
    }
    if (got == 1) *out = (long long)d;
    return got;
}

static int get_bool(const cJSON *req, const char *name, int *out, http_reply *r) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        fail(r, 400, name, "invalid_type", "'%s' must be true or false", name);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 1;
}

/* The sampling and limits every completion request shares. */
static int read_opts(rd_server *s, const cJSON *req, int chat, req_opts *q, http_reply *r) {
    /* the default seeds of all requests, distinct per request (an atomic counter: the one
     * mutable global here, shared by the handler threads on purpose) */
    static unsigned long long seed_counter;
    memset(q, 0, sizeof *q);
    q->gen.sampling = rd_sampling_defaults();
    q->gen.sampling.temperature = 1.0f; /* OpenAI's defaults */
    q->gen.sampling.top_p = 1.0f;
    q->gen.sampling.top_k = 0;
    q->gen.stop_at_eos = 1;
    q->strength = 1.0f;
    q->logprobs = -1;
    double d;
    long long ll;
    int rc, b;
    if (get_int(req, "n", 1, 1, &ll, r) < 0) {
        fail(r, 400, "n", "unsupported_value", "'n' must be 1: redit serve returns one choice per prompt");
        return -1;
    }
    if (get_int(req, "best_of", 1, 1, &ll, r) < 0) {
        fail(r, 400, "best_of", "unsupported_value", "'best_of' must be 1");
        return -1;
    }
    static const char *const zero_only[] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++)
        if (get_number(req, zero_only[i], 0, 0, &d, r) < 0) {
            fail(r, 400, zero_only[i], "unsupported_value",
                 "'%s' is not supported by redit serve (only 0)", zero_only[i]);
            return -1;
        }
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(req, "logit_bias");
    if (lb && !cJSON_IsNull(lb) && !(cJSON_IsObject(lb) && !lb->child)) {
        fail(r, 400, "logit_bias", "unsupported_value", "'logit_bias' is not supported by redit serve");
        return -1;
    }
    const cJSON *suffix = cJSON_GetObjectItemCaseSensitive(req, "suffix");
    if (suffix && !cJSON_IsNull(suffix)) {
        fail(r, 400, "suffix", "unsupported_value", "'suffix' is not supported by redit serve");
        return -1;
    }
    if ((rc = get_number(req, "temperature", 0, 2, &d, r)) < 0) return -1;
    if (rc) q->gen.sampling.temperature = (float)d;
    if ((rc = get_number(req, "top_p", 0, 1, &d, r)) < 0) return -1;
    if (rc && d <= 0) {
        fail(r, 400, "top_p", "invalid_value", "'top_p' must be in (0, 1]");
        return -1;
    }
    if (rc) q->gen.sampling.top_p = (float)d;
    if ((rc = get_int(req, "top_k", 0, 1 << 30, &ll, r)) < 0) return -1;
    if (rc) q->gen.sampling.top_k = (int)ll;
    if ((rc = get_int(req, "seed", -9.2e18, 9.2e18, &ll, r)) < 0) return -1;
    q->gen.sampling.seed = rc ? (uint64_t)ll
                              : (uint64_t)time(NULL) * 1000003u +
                                    __atomic_add_fetch(&seed_counter, 1, __ATOMIC_RELAXED);
    b = 0;
    if (get_bool(req, "ignore_eos", &b, r) < 0) return -1; /* llama.cpp's extension */
    q->gen.stop_at_eos = !b;
    if ((rc = get_number(req, "edit_strength", -1000, 1000, &d, r)) < 0) return -1;
    if (rc) q->strength = (float)d;
    const char *mt = chat && cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens")
                         ? "max_completion_tokens" : "max_tokens";
    if ((rc = get_int(req, mt, 0, 1 << 30, &ll, r)) < 0) return -1;
    if (rc && ll > s->o.max_tokens) {
        fail(r, 400, mt, "invalid_value",
             "'%s' is %lld, above this server's limit of %d (redit serve --max-tokens)", mt, ll,
             s->o.max_tokens);
        return -1;
    }
    q->max_tokens_given = rc;
    q->gen.max_tokens = rc ? (int)ll : chat ? s->o.max_tokens : 16;
    if (chat && rc && ll == 0) {
        fail(r, 400, mt, "invalid_value", "'%s' must be at least 1", mt);
        return -1;
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(req, "stop");
    if (stop && !cJSON_IsNull(stop)) {
        const int arr = cJSON_IsArray(stop);
        const int n = arr ? cJSON_GetArraySize(stop) : 1;
        if ((!arr && !cJSON_IsString(stop)) || n > SERVE_MAX_STOP) {
            fail(r, 400, "stop", "invalid_value", "'stop' must be a string or a list of at most %d strings",
                 SERVE_MAX_STOP);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            const cJSON *v = arr ? cJSON_GetArrayItem(stop, i) : stop;
            if (!cJSON_IsString(v)) {
                fail(r, 400, "stop", "invalid_value", "'stop' must hold strings");
                return -1;
            }
            if (!v->valuestring[0]) continue;
            if (!(q->stop[q->n_stop] = strdup(v->valuestring))) {
                fail(r, 500, NULL, NULL, "out of memory");
                return -1;
            }
            q->n_stop++;
        }
    }
    if (!chat) {
        b = 0;
        if (get_bool(req, "echo", &b, r) < 0) return -1;
        q->echo = b;
        if ((rc = get_int(req, "logprobs", 0, SERVE_MAX_TOP, &ll, r)) < 0) return -1;
        if (rc) q->logprobs = (int)ll;
    } else { /* chat: logprobs true, top_logprobs N alternatives */
        b = 0;
        if (get_bool(req, "logprobs", &b, r) < 0) return -1;
        if ((rc = get_int(req, "top_logprobs", 0, SERVE_MAX_TOP, &ll, r)) < 0) return -1;
        if (rc && !b) {
            fail(r, 400, "top_logprobs", "invalid_value",
                 "'top_logprobs' needs 'logprobs' set to true");
            return -1;
        }
        if (b) q->logprobs = rc ? (int)ll : 0;
    }
    return 0;
}

/* The text of a message's content: a string, or a list of {"type": "text", "text"} parts. */
static int content_text(const cJSON *c, rd_buf *out) {
    if (cJSON_IsString(c)) return rd_buf_puts(out, c->valuestring);
    if (!cJSON_IsArray(c)) return -1;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsString(t) || (ty && !(cJSON_IsString(ty) && !strcmp(ty->valuestring, "text"))))
            return -1;
        if (rd_buf_puts(out, t->valuestring)) return -1;
    }
    return out->data ? 0 : rd_buf_puts(out, "");
}

/* The prompt ids of a chat: system text, user/assistant exchanges, the last user message. */
static int chat_prompt(const rd_tokenizer *tok, const char *tmpl, const cJSON *msgs, int **ids,
                       size_t *n, http_reply *r) {
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
        fail(r, 400, "messages", "invalid_value", "'messages' must be a non-empty list");
        return -1;
    }
    const int count = cJSON_GetArraySize(msgs);
    rd_buf system = {0};
    rd_buf *texts = calloc((size_t)count, sizeof *texts);
    rd_chat_exchange *past = calloc((size_t)count, sizeof *past);
    size_t n_past = 0, n_turn = 0;
    int rc = -1;
    if (!texts || !past) {
        fail(r, 500, NULL, NULL, "out of memory");
        goto done;
    }
    for (int i = 0; i < count; i++) {
        const cJSON *m = cJSON_GetArrayItem(msgs, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role) || content_text(cJSON_GetObjectItemCaseSensitive(m, "content"),
                                                  &texts[i])) {
            fail(r, 400, "messages", "invalid_value",
                 "messages[%d] needs a 'role' and a text 'content'", i);
            goto done;
        }
        const char *ro = role->valuestring;
        if (!strcmp(ro, "system") || !strcmp(ro, "developer")) {
            if (system.len) rd_buf_putc(&system, '\n');
            rd_buf_puts(&system, texts[i].data);
            continue;
        }
        const int want_user = n_turn % 2 == 0;
        if (strcmp(ro, want_user ? "user" : "assistant")) {
            fail(r, 400, "messages", "invalid_value",
                 "messages[%d]: expected a '%s' message (after the system messages, user and "
                 "assistant messages alternate and the last is the user's)", i,
                 want_user ? "user" : "assistant");
            goto done;
        }
        if (want_user) past[n_past].user = texts[i].data;
        else past[n_past++].assistant = texts[i].data;
        n_turn++;
    }
    if (n_turn % 2 == 0) {
        fail(r, 400, "messages", "invalid_value", "the last message must be the user's");
        goto done;
    }
    rd_error err = {0};
    if (rd_chat_prompt_ids(tok, tmpl, system.data, n_past ? past : NULL, n_past,
                           past[n_past].user, ids, n, &err)) {
        fail(r, 400, "messages", NULL, "%s", err.msg);
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; texts && i < count; i++) rd_buf_free(&texts[i]);
    free(texts);
    free(past);
    rd_buf_free(&system);
    return rc;
}

/* The prompts of a legacy completion: a string, a list of ids, or a list of either. */
static int completion_prompts(rd_server *s, const cJSON *p, int ***ids, size_t **ns, int *count,
                              http_reply *r) {
    const rd_tokenizer *tok = rd_model_tokenizer(s->m);
    const int V = rd_model_config(s->m)->vocab_size;
    const int list_of_lists = cJSON_IsArray(p) && cJSON_GetArraySize(p) > 0 &&
                              !cJSON_IsNumber(cJSON_GetArrayItem(p, 0));
    const int n = list_of_lists ? cJSON_GetArraySize(p) : 1;
    if (!p || (!cJSON_IsString(p) && !cJSON_IsArray(p)) || (cJSON_IsArray(p) && !cJSON_GetArraySize(p))) {
        fail(r, 400, "prompt", "invalid_value",
             "'prompt' must be a string, a list of token ids, or a list of either");
        return -1;
    }
    *ids = calloc((size_t)n, sizeof **ids);
    *ns = calloc((size_t)n, sizeof **ns);
    *count = 0;
    if (!*ids || !*ns) {
        fail(r, 500, NULL, NULL, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++, (*count)++) {
        const cJSON *one = list_of_lists ? cJSON_GetArrayItem(p, i) : p;
        if (cJSON_IsString(one)) {
            rd_error err = {0};
            if (!tok) {
                fail(r, 400, "prompt", NULL, "the model has no tokenizer: give the prompt as token ids");
                return -1;
            }
            if (rd_tokenizer_encode(tok, one->valuestring, strlen(one->valuestring), 1, 0,
                                    &(*ids)[i], &(*ns)[i], &err)) {
                fail(r, 400, "prompt", NULL, "%s", err.msg);
                return -1;
            }
            continue;
        }
        const int k = cJSON_IsArray(one) ? cJSON_GetArraySize(one) : -1;
        if (k <= 0 || !((*ids)[i] = malloc(sizeof(int) * (size_t)k))) {
            fail(r, 400, "prompt", "invalid_value", "prompt %d must be a string or a non-empty list of token ids", i);
            return -1;
        }
        for (int t = 0; t < k; t++) {
            const cJSON *v = cJSON_GetArrayItem(one, t);
            if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
                v->valuedouble < 0 || v->valuedouble >= V) {
                fail(r, 400, "prompt", "invalid_value",
                     "prompt %d: token %d is not an id of the vocabulary [0, %d)", i, t, V);
                return -1;
            }
            (*ids)[i][t] = (int)v->valuedouble;
        }
        (*ns)[i] = (size_t)k;
    }
    return 0;
}

/* The echoed prompt's tokens (texts and offsets) and text. */
static int echo_tokens(rd_server *s, job *j) {
    const rd_tokenizer *tok = rd_model_tokenizer(s->m);
    rd_buf text = {0};
    if (j->logprobs >= 0 && !(j->lp = calloc(j->n_prompt, sizeof *j->lp))) return -1;
    if (j->logprobs >= 0) j->cap_lp = j->n_prompt;
    char buf[256];
    for (size_t i = 0; i < j->n_prompt; i++) {
        const int prev = i ? j->prompt[i - 1] : -1;
        size_t n = tok ? rd_tokenizer_decode_piece(tok, prev, j->prompt[i], buf, sizeof buf) : 0;
        if (n > sizeof buf) n = sizeof buf;
        if (j->logprobs >= 0) {
            lp_token *t = &j->lp[i];
            t->id = j->prompt[i];
            t->prev = prev;
            t->text_off = text.len;
            size_t pl = n;
            const char *pt = buf;
            if (!n && tok) pt = rd_tokenizer_piece(tok, j->prompt[i], &pl); /* "<s>" */
            if (!pt) pl = 0;
            if (!(t->text = malloc(pl + 1))) return -1;
            if (pl) memcpy(t->text, pt, pl);
            t->text[pl] = '\0';
            j->n_lp = j->n_echo = i + 1;
        }
        if (rd_buf_append(&text, buf, n)) return -1;
    }
    if (rd_buf_append(&text, "", 0)) return -1;
    j->echo_len = text.len;
    j->echo_text = rd_buf_take(&text);
    return 0;
}

static void make_id(rd_server *s, http_reply *r) {
    pthread_mutex_lock(&s->mu);
    const unsigned long n = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    snprintf(r->id, sizeof r->id, "%s-%lx%06lx", r->chat ? "chatcmpl" : "cmpl",
             (unsigned long)s->created, n);
    r->created = (long)time(NULL);
}

void api_completion(rd_server *s, const char *body, size_t len, int chat, http_reply *r) {
    r->chat = chat;
    cJSON *req = cJSON_ParseWithLength(body, len);
    req_opts q;
    memset(&q, 0, sizeof q);
    int **ids = NULL;
    size_t *ns = NULL;
    int count = 0;
    edit_set *es = NULL;
    job **jobs = NULL;
    if (!cJSON_IsObject(req)) {
        fail(r, 400, NULL, NULL,
             "We could not parse the JSON body of your request: it is not a JSON object");
        goto done;
    }
    /* the edit set `model` names (a reference held from here) */
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model)) {
        fail(r, 400, "model", "invalid_type", "'model' must be a string");
        goto done;
    }
    const char *name = model && cJSON_IsString(model) ? model->valuestring : s->model_id;
    pthread_mutex_lock(&s->mu);
    if (strcmp(name, s->model_id) && (es = sets_find(s, name))) es->refs++;
    pthread_mutex_unlock(&s->mu);
    if (strcmp(name, s->model_id) && !es) {
        fail(r, 404, "model", "model_not_found",
             "The model '%s' does not exist: GET /v1/models lists the base model and the edit sets",
             name);
        goto done;
    }
    snprintf(r->model, sizeof r->model, "%s", name);
    if (read_opts(s, req, chat, &q, r)) goto done;
    int stream = 0, usage = 0;
    if (get_bool(req, "stream", &stream, r) < 0) goto done;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    if (so && !cJSON_IsNull(so) && get_bool(so, "include_usage", &usage, r) < 0) goto done;
    r->stream = stream;
    r->include_usage = usage;
    const char *tmpl = NULL;
    if (chat) {
        tmpl = es && es->tmpl ? es->tmpl : s->o.chat_template;
        if (!rd_model_tokenizer(s->m)) {
            fail(r, 400, NULL, NULL, "the model has no tokenizer, which chat needs");
            goto done;
        }
        if (!(ids = calloc(1, sizeof *ids)) || !(ns = calloc(1, sizeof *ns))) {
            fail(r, 500, NULL, NULL, "out of memory");
            goto done;
        }
        count = 1;
        if (chat_prompt(rd_model_tokenizer(s->m), tmpl,
                        cJSON_GetObjectItemCaseSensitive(req, "messages"), &ids[0], &ns[0], r))
            goto done;
    } else if (completion_prompts(s, cJSON_GetObjectItemCaseSensitive(req, "prompt"), &ids, &ns,
                                  &count, r)) {
        goto done;
    }
    if (stream && count != 1) {
        fail(r, 400, "stream", "unsupported_value", "streaming takes one prompt");
        goto done;
    }
    for (int i = 0; i < count; i++) {
        if (ns[i] > (size_t)s->ctx) {
            fail(r, 400, chat ? "messages" : "prompt", "context_length_exceeded",
                 "This model's maximum context length is %d tokens. However, your %s has %zu "
                 "tokens. Please shorten it.", s->ctx, chat ? "messages" : "prompt", ns[i]);
            goto done;
        }
        if (q.max_tokens_given && ns[i] + (size_t)q.gen.max_tokens > (size_t)s->ctx) {
            fail(r, 400, chat ? "messages" : "prompt", "context_length_exceeded",
                 "This model's maximum context length is %d tokens. However, you requested %zu "
                 "tokens (%zu in the %s, %d for the completion). Please reduce the length of "
                 "the %s or the completion.", s->ctx, ns[i] + (size_t)q.gen.max_tokens, ns[i],
                 chat ? "messages" : "prompt", q.gen.max_tokens, chat ? "messages" : "prompt");
            goto done;
        }
    }
    if (!(jobs = calloc((size_t)count, sizeof *jobs))) {
        fail(r, 500, NULL, NULL, "out of memory");
        goto done;
    }
    char *turn = NULL;
    if (chat && tmpl && strcmp(tmpl, "none")) {
        rd_error err = {0};
        if (!(turn = rd_chat_turn_start(tmpl, &err))) {
            fail(r, 400, NULL, NULL, "%s", err.msg);
            goto done;
        }
    }
    for (int i = 0; i < count; i++) {
        job *j = jobs[i] = job_new();
        if (!j) break;
        j->srv = s;
        j->prompt = ids[i];
        ids[i] = NULL;
        j->n_prompt = ns[i];
        j->gen = q.gen;
        const size_t room = (size_t)s->ctx - j->n_prompt;
        if (!q.max_tokens_given && (size_t)j->gen.max_tokens > room) j->gen.max_tokens = (int)room;
        j->strength = q.strength;
        j->echo = q.echo;
        j->logprobs = q.logprobs;
        j->last_id = j->prompt[j->n_prompt - 1];
        for (int k = 0; k < q.n_stop; k++)
            if ((j->stop[k] = strdup(q.stop[k]))) j->n_stop++;
        if (turn && !(j->turn_stop = strdup(turn))) break;
        if (j->echo && echo_tokens(s, j)) break;
    }
    free(turn);
    for (int i = 0; i < count; i++)
        if (!jobs[i] || (q.echo && !jobs[i]->echo_text)) {
            fail(r, 500, NULL, NULL, "out of memory");
            goto done;
        }
    /* queue them all, or none */
    pthread_mutex_lock(&s->mu);
    const char *why = NULL;
    int status = 0, queued = 0;
    for (; queued < count && !status; queued++) {
        if (es) {
            es->refs++;
            jobs[queued]->es = es;
        }
        status = engine_submit(s, jobs[queued], &why);
    }
    if (status)
        for (int i = 0; i < queued - 1; i++) jobs[i]->cancel = 1;
    pthread_mutex_unlock(&s->mu);
    if (status) {
        fail(r, status, NULL, status == 429 ? "rate_limit_exceeded" : "service_unavailable", "%s",
             why);
        goto done;
    }
    r->status = 200;
    r->jobs = jobs;
    r->n_jobs = count;
    jobs = NULL;
    make_id(s, r);
done:
    if (jobs) {
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < count; i++) job_unref(s, jobs[i]);
        pthread_mutex_unlock(&s->mu);
        free(jobs);
    }
    if (es) {
        pthread_mutex_lock(&s->mu);
        set_unref(es);
        pthread_mutex_unlock(&s->mu);
    }
    for (int i = 0; ids && i < count; i++) free(ids[i]);
    free(ids);
    free(ns);
    req_opts_free(&q);
    cJSON_Delete(req);
}

/* ---- answering ----------------------------------------------------------------------- */

static const char *finish_name(int f) { return f == FINISH_STOP ? "stop" : "length"; }

static cJSON *usage_json(http_reply *r) {
    long p = 0, c = 0;
    for (int i = 0; i < r->n_jobs; i++) {
        p += (long)r->jobs[i]->n_prompt;
        c += r->jobs[i]->n_generated;
    }
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)p);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)c);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(p + c));
    return u;
}

/* The text of token id after prev as a completion shows it (a control piece: its piece,
 * e.g. "<s>"), at most cap - 1 bytes into buf; its length. */
static size_t token_text(const rd_tokenizer *tok, int prev, int id, char *buf, size_t cap) {
    size_t n = tok ? rd_tokenizer_decode_piece(tok, prev, id, buf, cap - 1) : 0;
    if (n > cap - 1) n = cap - 1;
    if (!n && tok) {
        size_t pl;
        const char *p = rd_tokenizer_piece(tok, id, &pl);
        n = p ? (pl < cap - 1 ? pl : cap - 1) : 0;
        if (p) memcpy(buf, p, n);
    }
    buf[n] = '\0';
    return n;
}

/* The legacy completion's logprobs of entries [from, to) of j's list: tokens,
 * token_logprobs (null for the first prompt token), top_logprobs ({text: logprob}),
 * text_offset. */
static cJSON *logprobs_json(rd_server *s, const job *j, size_t from, size_t to) {
    const rd_tokenizer *tok = rd_model_tokenizer(s->m);
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    char buf[256];
    for (size_t i = from; i < to; i++) {
        const lp_token *t = &j->lp[i];
        add_text(tokens, NULL, t->text, t->text ? strlen(t->text) : 0);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->text_off));
        if (!t->has_lp) {
            cJSON_AddItemToArray(lps, cJSON_CreateNull());
            cJSON_AddItemToArray(tops, cJSON_CreateNull());
            continue;
        }
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(t->lp));
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < t->n_top; k++) {
            const size_t n = token_text(tok, t->prev, t->top_id[k], buf, sizeof buf);
            char *key = utf8_clean(buf, n);
            if (key && !cJSON_GetObjectItemCaseSensitive(top, key))
                cJSON_AddNumberToObject(top, key, t->top_lp[k]);
            free(key);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return o;
}

/* {token, logprob, bytes} of one chat logprobs entry into o. */
static void chat_token(cJSON *o, const char *text, size_t n, float lp) {
    add_text(o, "token", text, n);
    cJSON_AddNumberToObject(o, "logprob", lp);
    cJSON *bytes = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)text[i]));
}

/* The chat completion's logprobs of generated entries [from, to): {"content": [{token,
 * logprob, bytes, top_logprobs: [{token, logprob, bytes}, ...]}, ...], "refusal": null}. */
static cJSON *chat_logprobs_json(rd_server *s, const job *j, size_t from, size_t to) {
    const rd_tokenizer *tok = rd_model_tokenizer(s->m);
    cJSON *o = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(o, "content");
    char buf[256];
    for (size_t i = from; i < to; i++) {
        const lp_token *t = &j->lp[i];
        cJSON *e = cJSON_CreateObject();
        chat_token(e, t->text, t->text ? strlen(t->text) : 0, t->lp);
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int k = 0; k < t->n_top; k++) {
            cJSON *a = cJSON_CreateObject();
            const size_t n = token_text(tok, t->prev, t->top_id[k], buf, sizeof buf);
            chat_token(a, buf, n, t->top_lp[k]);
            cJSON_AddItemToArray(top, a);
        }
        cJSON_AddItemToArray(content, e);
    }
    cJSON_AddNullToObject(o, "refusal");
    return o;
}

/* The logprobs of entries [from, to) in the request's format. */
static cJSON *any_logprobs_json(rd_server *s, const http_reply *r, const job *j, size_t from,
                                size_t to) {
    return r->chat ? chat_logprobs_json(s, j, from, to) : logprobs_json(s, j, from, to);
}

static cJSON *response_head(http_reply *r, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", r->model);
    return o;
}

void api_final_json(rd_server *s, http_reply *r) {
    for (int i = 0; i < r->n_jobs; i++) {
        const job *j = r->jobs[i];
        if (j->finish == FINISH_ERROR) {
            fail(r, 500, NULL, NULL, "generation failed: %s", j->errmsg);
            return;
        }
        if (j->finish == FINISH_CANCELLED) {
            fail(r, 503, NULL, "service_unavailable", "the request was cancelled (the server is shutting down)");
            return;
        }
    }
    cJSON *o = response_head(r, r->chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    for (int i = 0; i < r->n_jobs; i++) {
        const job *j = r->jobs[i];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", i);
        const char *text = j->text.data ? j->text.data : "";
        if (r->chat) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            add_text(m, "content", text, j->text.len);
        } else if (j->echo) {
            rd_buf t = {0};
            rd_buf_puts(&t, j->echo_text);
            rd_buf_append(&t, text, j->text.len);
            add_text(c, "text", t.data, t.len);
            rd_buf_free(&t);
        } else {
            add_text(c, "text", text, j->text.len);
        }
        if (j->logprobs >= 0)
            cJSON_AddItemToObject(c, "logprobs", any_logprobs_json(s, r, j, 0, j->n_lp));
        else cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", finish_name(j->finish));
        cJSON_AddItemToArray(choices, c);
    }
    cJSON_AddItemToObject(o, "usage", usage_json(r));
    r->status = 200;
    r->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
}

static void sse(rd_buf *out, cJSON *o) {
    char *t = cJSON_PrintUnformatted(o);
    rd_buf_puts(out, "data: ");
    rd_buf_puts(out, t ? t : "{}");
    rd_buf_puts(out, "\n\n");
    free(t);
    cJSON_Delete(o);
}

/* One chunk: delta text (may be NULL: none), finish reason (NULL: null), role (chat), and
 * the logprobs of job 0's entries r->lp_sent.. up to `lp_to` (those not yet sent; a request
 * without logprobs: null). */
static void chunk(rd_server *s, http_reply *r, rd_buf *out, const char *text, size_t len,
                  const char *finish, int role, size_t lp_to) {
    const job *j = r->jobs[0];
    cJSON *o = response_head(r, r->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (r->chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (text) add_text(d, "content", text, len);
    } else {
        add_text(c, "text", text, len);
    }
    if (j->logprobs >= 0 && !role) {
        cJSON_AddItemToObject(c, "logprobs", any_logprobs_json(s, r, j, r->lp_sent, lp_to));
        r->lp_sent = lp_to;
    } else {
        cJSON_AddNullToObject(c, "logprobs");
    }
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), c);
    if (r->include_usage) cJSON_AddNullToObject(o, "usage");
    sse(out, o);
}

/* Streams with logprobs: each text chunk carries the entries of the tokens generated since
 * the previous chunk (a token whose text is held back — a possible stop text, an unfinished
 * UTF-8 character — goes with the chunk before its text), the final chunk the rest; an echo
 * chunk those of the prompt, once the engine has scored it. */
static int echo_scored(const job *j) {
    return !(j->echo && j->logprobs >= 0 && j->state == JOB_QUEUED);
}

int api_stream_ready(const http_reply *r, size_t sent, int first) {
    const job *j = r->jobs[0];
    return j->state == JOB_DONE || j->safe > sent || (first && echo_scored(j));
}

int api_stream_chunks(rd_server *s, http_reply *r, size_t *sent, int *first, rd_buf *out,
                      int *finished) {
    job *j = r->jobs[0];
    if (*first && echo_scored(j)) {
        if (r->chat) chunk(s, r, out, "", 0, NULL, 1, 0);
        else if (j->echo) chunk(s, r, out, j->echo_text, strlen(j->echo_text), NULL, 0, j->n_echo);
        *first = 0;
    }
    if (*first) return 0;
    if (j->safe > *sent) {
        chunk(s, r, out, j->text.data + *sent, j->safe - *sent, NULL, 0, j->n_lp);
        *sent = j->safe;
    }
    if (j->state != JOB_DONE) return 0;
    if (j->finish == FINISH_ERROR || j->finish == FINISH_CANCELLED) {
        char *e = api_error_json(j->finish == FINISH_ERROR ? j->errmsg
                                                           : "the request was cancelled (the server is shutting down)",
                                 "server_error", NULL, NULL);
        rd_buf_printf(out, "data: %s\n\n", e ? e : "{}");
        free(e);
    } else {
        chunk(s, r, out, r->chat ? NULL : "", 0, finish_name(j->finish), 0, j->n_lp);
    }
    if (r->include_usage) {
        cJSON *o = response_head(r, r->chat ? "chat.completion.chunk" : "text_completion");
        cJSON_AddArrayToObject(o, "choices");
        cJSON_AddItemToObject(o, "usage", usage_json(r));
        sse(out, o);
    }
    rd_buf_puts(out, "data: [DONE]\n\n");
    *finished = 1;
    return 0;
}

char *api_models_json(rd_server *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "redit");
    cJSON_AddItemToArray(data, m);
    pthread_mutex_lock(&s->mu);
    for (const edit_set *e = s->sets; e; e = e->next) {
        m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", e->name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)s->created);
        cJSON_AddStringToObject(m, "owned_by", "redit");
        cJSON_AddStringToObject(m, "parent", s->model_id);
        cJSON_AddStringToObject(m, "edits", e->path);
        cJSON_AddStringToObject(m, "method", rd_method_name(rd_edits_method(e->edits)));
        if (e->tmpl) cJSON_AddStringToObject(m, "template", e->tmpl);
        cJSON_AddItemToArray(data, m);
    }
    pthread_mutex_unlock(&s->mu);
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

void api_edits_post(rd_server *s, const char *body, size_t len, http_reply *r) {
    cJSON *req = cJSON_ParseWithLength(body, len);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(req, "path");
    int force = 0;
    rd_error err = {0};
    if (!cJSON_IsObject(req)) {
        fail(r, 400, NULL, NULL, "We could not parse the JSON body of your request: it is not a JSON object");
    } else if (!cJSON_IsString(name) || !cJSON_IsString(path)) {
        fail(r, 400, cJSON_IsString(name) ? "path" : "name", "invalid_value",
             "POST /v1/edits takes {\"name\": NAME, \"path\": EDIT_FILE}");
    } else if (get_bool(req, "force", &force, r) >= 0) {
        if (rd_server_add_edits(s, name->valuestring, path->valuestring, force, &err)) {
            fail(r, 400, strstr(err.msg, "name") == err.msg ? "name" : "path", "invalid_edits",
                 "%s", err.msg);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", name->valuestring);
            cJSON_AddStringToObject(o, "object", "model");
            cJSON_AddNumberToObject(o, "created", (double)time(NULL));
            cJSON_AddStringToObject(o, "owned_by", "redit");
            cJSON_AddStringToObject(o, "parent", s->model_id);
            r->status = 200;
            r->body = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
        }
    }
    cJSON_Delete(req);
}

void api_edits_delete(rd_server *s, const char *name, http_reply *r) {
    rd_error err = {0};
    if (rd_server_remove_edits(s, name, &err)) {
        fail(r, 404, "model", "model_not_found", "%s", err.msg);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", name);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddBoolToObject(o, "deleted", 1);
    r->status = 200;
    r->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
}
