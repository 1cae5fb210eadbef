/* JSONL input: a bounded line reader, UTF-8 checking, format detection from an object's
 * keys, and the parsing of one object into an rd_record for each format. */
#include "data_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"

#define RD_LINE_CHUNK ((size_t)1 << 16)

/* ---- UTF-8 ------------------------------------------------------------------------ */

/* Byte length (1..4) of the well-formed UTF-8 character at s[0..len), or 0. */
static size_t utf8_char_len(const unsigned char *s, size_t len) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned min;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

size_t rd_data_utf8_check(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t k = utf8_char_len(u + i, len - i);
        if (k == 0) return i;
        i += k;
    }
    return len;
}

/* ---- line reader ------------------------------------------------------------------ */

int rd_line_reader_init(rd_line_reader *r, FILE *f, size_t max_line) {
    memset(r, 0, sizeof *r);
    r->f = f;
    r->max_line = max_line;
    r->in = malloc(RD_LINE_CHUNK);
    r->cap = 4096;
    r->buf = malloc(r->cap);
    if (!r->in || !r->buf) {
        rd_line_reader_free(r);
        return -1;
    }
    return 0;
}

void rd_line_reader_free(rd_line_reader *r) {
    free(r->in);
    free(r->buf);
    r->in = r->buf = NULL;
}

void rd_line_reader_release(rd_line_reader *r) {
    if (r->cap <= RD_LINE_CHUNK) return; /* short lines: the buffer is kept for the next */
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    r->len = 0;
}

/* Appends n bytes to the current line unless it is already too long. */
static int line_append(rd_line_reader *r, const char *p, size_t n, rd_error *err) {
    if (r->too_long) return 0;
    if (r->len + n > r->max_line) {
        r->too_long = 1;
        return 0;
    }
    if (rd_array_reserve(&r->buf, &r->cap, r->len + n + 1, 1))
        return rd_error_set(err, "out of memory reading a line of %zu bytes", r->len + n);
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return 0;
}

int rd_line_reader_next(rd_line_reader *r, rd_error *err) {
    r->len = 0;
    r->too_long = 0;
    int got_any = 0;
    for (;;) {
        if (r->in_pos == r->in_len) {
            r->in_len = fread(r->in, 1, RD_LINE_CHUNK, r->f);
            r->in_pos = 0;
            if (r->in_len == 0) {
                if (ferror(r->f)) return rd_error_set(err, "read error");
                if (!got_any) return 0;
                break; /* last line without '\n' */
            }
        }
        got_any = 1;
        const char *start = r->in + r->in_pos;
        size_t avail = r->in_len - r->in_pos;
        const char *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;
        if (line_append(r, start, take, err) < 0) return -1;
        r->in_pos += take + (nl ? 1 : 0);
        if (nl) break;
    }
    r->line_no++;
    if (rd_array_reserve(&r->buf, &r->cap, r->len + 1, 1)) /* (after a release) */
        return rd_error_set(err, "out of memory reading a line");
    if (!r->too_long && r->len > 0 && r->buf[r->len - 1] == '\r') r->len--;
    r->buf[r->len] = '\0';
    return 1;
}

/* ---- records ---------------------------------------------------------------------- */

void rd_data_record_clear(rd_record *r) {
    free(r->system);
    free(r->input);
    for (int i = 0; i < r->n_turns; i++) {
        free(r->turns[i].prompt);
        free(r->turns[i].answer);
    }
    free(r->turns);
    long line = r->line;
    memset(r, 0, sizeof *r);
    r->line = line;
}

rd_data_format rd_data_detect_keys(const cJSON *obj) {
#define HAS(k) (cJSON_GetObjectItemCaseSensitive(obj, k) != NULL)
    if (HAS("messages")) return RD_DATA_CHAT;
    if (HAS("instruction") && HAS("output")) return RD_DATA_ALPACA;
    if (HAS("prompt") && HAS("chosen")) return RD_DATA_ULTRAFEEDBACK;
    if (HAS("prompt") && HAS("completion")) return RD_DATA_PROMPT_COMPLETION;
    if (HAS("text") && HAS("label")) return RD_DATA_CLASSIFICATION;
    if (HAS("text")) return RD_DATA_TEXT;
#undef HAS
    return RD_DATA_AUTO;
}

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

/* String v named `what`, checked for UTF-8, taken out of the tree (no copy: a long line's
 * text is held once; v is left a string with no value, which cJSON_Delete skips). */
static int take_string(cJSON *v, const char *what, char **out, rd_error *err) {
    if (!cJSON_IsString(v) || !v->valuestring)
        return rd_error_set(err, "%s must be a string, not %s", what, json_type_name(v));
    size_t len = strlen(v->valuestring);
    size_t bad = rd_data_utf8_check(v->valuestring, len);
    if (bad < len) return rd_error_set(err, "%s: invalid UTF-8 at byte %zu", what, bad);
    if (v->type & cJSON_IsReference) { /* (not made by cJSON_Parse: copied) */
        *out = malloc(len + 1);
        if (!*out) return rd_error_set(err, "out of memory");
        memcpy(*out, v->valuestring, len + 1);
        return 0;
    }
    *out = v->valuestring;
    v->valuestring = NULL;
    return 0;
}

/* Required string field key of obj. */
static int get_string(cJSON *obj, const char *key, char **out, rd_error *err) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char what[64];
    snprintf(what, sizeof what, "\"%s\"", key);
    if (!v) return rd_error_set(err, "missing %s", what);
    return take_string(v, what, out, err);
}

static int add_turn(rd_record *r, char *prompt, char *answer, rd_error *err) {
    rd_turn *t = realloc(r->turns, (size_t)(r->n_turns + 1) * sizeof *t);
    if (!t) {
        free(prompt);
        free(answer);
        return rd_error_set(err, "out of memory");
    }
    r->turns = t;
    t[r->n_turns].prompt = prompt;
    t[r->n_turns].answer = answer;
    r->n_turns++;
    return 0;
}

/* Two required strings → one turn. */
static int parse_pair(cJSON *obj, const char *pkey, const char *akey, rd_record *r,
                      rd_error *err) {
    char *p = NULL, *a = NULL;
    if (get_string(obj, pkey, &p, err) < 0) return -1;
    if (get_string(obj, akey, &a, err) < 0) {
        free(p);
        return -1;
    }
    return add_turn(r, p, a, err);
}

static int parse_alpaca(cJSON *obj, rd_record *r, rd_error *err) {
    cJSON *in = cJSON_GetObjectItemCaseSensitive(obj, "input");
    if (in && !cJSON_IsNull(in)) {
        if (take_string(in, "\"input\"", &r->input, err) < 0) return -1;
        if (r->input[0] == '\0') {
            free(r->input);
            r->input = NULL;
        }
    }
    return parse_pair(obj, "instruction", "output", r, err);
}

/* messages[i]: role and content strings (role borrowed, content copied). */
static int parse_message(cJSON *m, const char *list, int i, const char **role,
                         char **content, rd_error *err) {
    char what[64];
    if (!cJSON_IsObject(m))
        return rd_error_set(err, "\"%s\"[%d] must be an object, not %s", list, i,
                            json_type_name(m));
    cJSON *ro = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!ro) return rd_error_set(err, "\"%s\"[%d]: missing \"role\"", list, i);
    if (!cJSON_IsString(ro))
        return rd_error_set(err, "\"%s\"[%d]: \"role\" must be a string, not %s", list, i,
                            json_type_name(ro));
    *role = ro->valuestring;
    cJSON *co = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!co) return rd_error_set(err, "\"%s\"[%d]: missing \"content\"", list, i);
    snprintf(what, sizeof what, "\"%s\"[%d].content", list, i);
    return take_string(co, what, content, err);
}

static int parse_chat(cJSON *obj, rd_record *r, rd_error *err) {
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    if (!msgs) return rd_error_set(err, "missing \"messages\"");
    if (!cJSON_IsArray(msgs))
        return rd_error_set(err, "\"messages\" must be an array, not %s", json_type_name(msgs));
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return rd_error_set(err, "\"messages\" is empty");
    char *pending = NULL; /* user text waiting for its answer */
    int i = 0;
    for (cJSON *m = msgs->child; m; m = m->next, i++) {
        const char *role;
        char *content = NULL;
        if (parse_message(m, "messages", i, &role, &content, err) < 0) goto fail;
        const char *want = pending ? "assistant" : "user";
        if (i == 0 && strcmp(role, "system") == 0) {
            r->system = content;
            continue;
        }
        if (strcmp(role, "system") == 0) {
            free(content);
            rd_error_set(err, "\"messages\"[%d]: a system message must come first", i);
            goto fail;
        }
        if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0) {
            free(content);
            rd_error_set(err, "\"messages\"[%d]: unknown role \"%.40s\" (system, user, assistant)",
                         i, role);
            goto fail;
        }
        if (strcmp(role, want) != 0) {
            free(content);
            rd_error_set(err, "\"messages\"[%d]: expected role \"%s\", found \"%s\"", i, want, role);
            goto fail;
        }
        if (!pending) {
            pending = content;
        } else {
            int rc = add_turn(r, pending, content, err);
            pending = NULL;
            if (rc < 0) goto fail;
        }
    }
    free(pending); /* a trailing user message has no answer to learn */
    if (r->n_turns == 0) return rd_error_set(err, "\"messages\" has no assistant answer");
    return 0;
fail:
    free(pending);
    return -1;
}

static int parse_ultrafeedback(cJSON *obj, rd_record *r, rd_error *err) {
    cJSON *ch = cJSON_GetObjectItemCaseSensitive(obj, "chosen");
    if (!ch) return rd_error_set(err, "missing \"chosen\"");
    if (!cJSON_IsArray(ch)) return parse_pair(obj, "prompt", "chosen", r, err);
    char *prompt = NULL, *answer = NULL;
    if (get_string(obj, "prompt", &prompt, err) < 0) return -1;
    int i = 0;
    for (cJSON *m = ch->child; m; m = m->next, i++) {
        const char *role;
        char *content = NULL;
        if (parse_message(m, "chosen", i, &role, &content, err) < 0) goto fail;
        if (strcmp(role, "assistant") == 0) {
            free(answer);
            answer = content;
        } else {
            free(content);
        }
    }
    if (!answer) {
        rd_error_set(err, "\"chosen\" has no assistant message");
        goto fail;
    }
    return add_turn(r, prompt, answer, err);
fail:
    free(prompt);
    free(answer);
    return -1;
}

static int parse_classification(cJSON *obj, rd_record *r, rd_error *err) {
    cJSON *lab = cJSON_GetObjectItemCaseSensitive(obj, "label");
    if (!lab) return rd_error_set(err, "missing \"label\"");
    char *text = NULL, *word = NULL;
    if (get_string(obj, "text", &text, err) < 0) return -1;
    if (cJSON_IsNumber(lab)) {
        double v = lab->valuedouble;
        if (!isfinite(v) || v != floor(v) || fabs(v) > 9007199254740992.0) {
            free(text);
            return rd_error_set(err, "\"label\" must be a string or an integer, not %g", v);
        }
        r->label_is_int = 1;
        r->label_int = (long long)v;
        word = malloc(24);
        if (word) snprintf(word, 24, "%lld", r->label_int);
    } else if (cJSON_IsString(lab)) {
        if (take_string(lab, "\"label\"", &word, err) < 0) {
            free(text);
            return -1;
        }
        if (word[0] == '\0') {
            free(text);
            free(word);
            return rd_error_set(err, "\"label\" is empty");
        }
    } else {
        free(text);
        return rd_error_set(err, "\"label\" must be a string or an integer, not %s",
                            json_type_name(lab));
    }
    if (!word) {
        free(text);
        return rd_error_set(err, "out of memory");
    }
    return add_turn(r, text, word, err);
}

static int parse_document(cJSON *obj, rd_record *r, rd_error *err) {
    char *text = NULL, *empty = malloc(1);
    if (!empty) return rd_error_set(err, "out of memory");
    empty[0] = '\0';
    if (get_string(obj, "text", &text, err) < 0) {
        free(empty);
        return -1;
    }
    return add_turn(r, empty, text, err);
}

int rd_data_record_parse(cJSON *obj, rd_data_format f, rd_record *r, rd_error *err) {
    int rc;
    switch (f) {
    case RD_DATA_ALPACA: rc = parse_alpaca(obj, r, err); break;
    case RD_DATA_CHAT: rc = parse_chat(obj, r, err); break;
    case RD_DATA_PROMPT_COMPLETION: rc = parse_pair(obj, "prompt", "completion", r, err); break;
    case RD_DATA_ULTRAFEEDBACK: rc = parse_ultrafeedback(obj, r, err); break;
    case RD_DATA_CLASSIFICATION: rc = parse_classification(obj, r, err); break;
    case RD_DATA_TEXT: rc = parse_document(obj, r, err); break;
    default: rc = rd_error_set(err, "no format to parse the line with"); break;
    }
    if (rc < 0) rd_data_record_clear(r);
    return rc;
}
