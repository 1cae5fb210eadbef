/* Conversations for chat front ends: prompt ids of a multi-turn conversation through the
 * data layer's templates and turn tokenization (so chat sees the ids training saw), the
 * text a template starts a turn with, and the streaming filter that ends a reply there. */
#include "redit/chat_format.h"

#include <stdlib.h>
#include <string.h>

#include "data_internal.h"
#include "redit/buf.h"

#define DEFAULT_TEMPLATE "llama2-chat"

/* Renders one turn (answer NULL: the prompt only) and appends its ids to s. */
static int add_turn(rd_seq *s, const rd_tokenizer *tok, const rd_template *t,
                    const char *system, const char *user, const char *answer, rd_error *err) {
    rd_rendered r;
    if (rd_data_template_render(t, system, user, NULL, answer ? answer : "", &r, err) < 0)
        return -1;
    int rc = answer ? rd_seq_add_turn(s, tok, &r, NULL, err)
                    : rd_seq_add_prompt(s, tok, &r, NULL, err);
    rd_data_rendered_free(&r);
    return rc;
}

int rd_chat_prompt_ids(const rd_tokenizer *tok, const char *template_name, const char *system,
                       const rd_chat_exchange *past, size_t n_past, const char *user, int **ids,
                       size_t *n, rd_error *err) {
    *ids = NULL;
    *n = 0;
    if (!tok || !user || (n_past && !past))
        return rd_error_set(err, "chat: no tokenizer, user text or earlier exchanges given");
    for (size_t i = 0; i < n_past; i++)
        if (!past[i].user || !past[i].assistant)
            return rd_error_set(err, "chat: exchange %zu lacks its user or assistant text", i + 1);
    rd_template t;
    if (rd_data_template_init(&t, template_name ? template_name : DEFAULT_TEMPLATE,
                              RD_DATA_CHAT, err) < 0)
        return rd_error_prefix(err, "chat");
    rd_seq s = {0};
    int rc = 0;
    for (size_t i = 0; i < n_past && rc == 0; i++)
        rc = add_turn(&s, tok, &t, i == 0 ? system : NULL, past[i].user, past[i].assistant, err);
    if (rc == 0) rc = add_turn(&s, tok, &t, n_past == 0 ? system : NULL, user, NULL, err);
    rd_data_template_free(&t);
    if (rc < 0) {
        rd_seq_free(&s);
        return rd_error_prefix(err, "chat");
    }
    *ids = s.ids; /* the answer marks are not needed */
    *n = (size_t)s.n;
    free(s.ans);
    return 0;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

char *rd_chat_turn_start(const char *template_name, rd_error *err) {
    rd_template t;
    if (rd_data_template_init(&t, template_name ? template_name : DEFAULT_TEMPLATE, RD_DATA_CHAT,
                              err) < 0) {
        rd_error_prefix(err, "chat");
        return NULL;
    }
    /* A prompt of one byte that no template text contains marks where {prompt} goes. */
    rd_rendered r;
    int rc = rd_data_template_render(&t, NULL, "\x01", NULL, "", &r, err);
    rd_data_template_free(&t);
    if (rc < 0) return NULL;
    const char *mark = strchr(r.P, '\x01');
    size_t end = mark ? (size_t)(mark - r.P) : 0, start = 0;
    while (start < end && is_space(r.P[start])) start++;
    while (end > start && is_space(r.P[end - 1])) end--;
    char *out = malloc(end - start + 1);
    if (out) {
        memcpy(out, r.P + start, end - start);
        out[end - start] = '\0';
    } else {
        rd_error_set(err, "out of memory");
    }
    rd_data_rendered_free(&r);
    return out;
}

/* ---- the reply filter -------------------------------------------------------------- */

struct rd_chat_filter {
    char *stop;       /* the text that ends a reply ("" none) */
    size_t stop_len;
    char *raw;        /* (cap_raw) the reply from its first non-space byte */
    size_t n_raw, cap_raw;
    size_t shown;     /* raw[0, shown) has been handed out */
    char *reply;      /* (cap_reply) raw[0, shown), NUL-terminated */
    size_t cap_reply;
    int stopped;
};

rd_chat_filter *rd_chat_filter_new(const char *stop) {
    rd_chat_filter *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    if (!stop) stop = "";
    f->stop_len = strlen(stop);
    f->stop = malloc(f->stop_len + 1);
    f->cap_reply = 64;
    f->reply = malloc(f->cap_reply);
    if (!f->stop || !f->reply) {
        rd_chat_filter_free(f);
        return NULL;
    }
    memcpy(f->stop, stop, f->stop_len + 1);
    f->reply[0] = '\0';
    return f;
}

void rd_chat_filter_free(rd_chat_filter *f) {
    if (!f) return;
    free(f->stop);
    free(f->raw);
    free(f->reply);
    free(f);
}

void rd_chat_filter_reset(rd_chat_filter *f) {
    f->n_raw = f->shown = 0;
    f->reply[0] = '\0';
    f->stopped = 0;
}

/* Hands out raw[shown, end): appended to the reply text. */
static int show_upto(rd_chat_filter *f, size_t end, const char **show, size_t *show_len) {
    *show = f->raw ? f->raw + f->shown : "";
    *show_len = end - f->shown;
    if (rd_array_reserve(&f->reply, &f->cap_reply, end + 1, 1) < 0) {
        *show_len = 0;
        return -1;
    }
    if (end > f->shown) memcpy(f->reply + f->shown, f->raw + f->shown, end - f->shown);
    f->reply[end] = '\0';
    f->shown = end;
    return 0;
}

/* Where the stop text starts in raw[from, n_raw), or n_raw. */
static size_t find_stop(const rd_chat_filter *f, size_t from) {
    if (!f->stop_len) return f->n_raw;
    for (size_t i = from; i + f->stop_len <= f->n_raw; i++)
        if (memcmp(f->raw + i, f->stop, f->stop_len) == 0) return i;
    return f->n_raw;
}

/* The longest k < stop_len such that raw's last k bytes (within [from, n_raw)) begin the
 * stop text. */
static size_t held_prefix(const rd_chat_filter *f, size_t from) {
    size_t avail = f->n_raw - from;
    size_t k = f->stop_len ? f->stop_len - 1 : 0;
    if (k > avail) k = avail;
    for (; k > 0; k--)
        if (memcmp(f->raw + f->n_raw - k, f->stop, k) == 0) return k;
    return 0;
}

/* end moved back over whitespace, not below the shown part. */
static size_t trim_end(const rd_chat_filter *f, size_t end) {
    while (end > f->shown && is_space(f->raw[end - 1])) end--;
    return end;
}

int rd_chat_filter_push(rd_chat_filter *f, const char *text, size_t len, const char **show,
                        size_t *show_len) {
    *show = "";
    *show_len = 0;
    if (f->stopped) return 1;
    if (f->n_raw == 0)
        while (len > 0 && is_space(*text)) text++, len--;
    if (len == 0) return 0;
    if (rd_array_reserve(&f->raw, &f->cap_raw, f->n_raw + len, 1) < 0) return -1;
    memcpy(f->raw + f->n_raw, text, len);
    f->n_raw += len;
    /* The shown part never holds the start of a stop text: any match starts after it. */
    size_t at = find_stop(f, f->shown);
    if (at < f->n_raw) {
        f->stopped = 1;
        return show_upto(f, trim_end(f, at), show, show_len) < 0 ? -1 : 1;
    }
    size_t safe = trim_end(f, f->n_raw - held_prefix(f, f->shown));
    return show_upto(f, safe, show, show_len);
}

void rd_chat_filter_finish(rd_chat_filter *f, const char **show, size_t *show_len) {
    *show = "";
    *show_len = 0;
    if (f->stopped) return;
    if (show_upto(f, trim_end(f, f->n_raw), show, show_len) < 0) *show_len = 0;
}

const char *rd_chat_filter_reply(const rd_chat_filter *f) { return f->reply; }

int rd_chat_filter_stopped(const rd_chat_filter *f) { return f->stopped; }
