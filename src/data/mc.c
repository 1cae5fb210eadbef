/* Multiple-choice item sets: JSONL in three styles (plain, ARC, HellaSwag), rendered into
 * context + choices as lm-evaluation-harness's tasks do (see redit/mc.h). */
#include "redit/mc.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"
#include "redit/buf.h"

struct rd_mc_set {
    char *path;
    rd_mc_style style;
    rd_mc_item *items; /* (cap) n used */
    size_t n, cap;
    int max_choices;
    int borrowed; /* a slice (rd_mc_slice): the items' text belongs to the parent set */
};

const char *rd_mc_style_name(rd_mc_style s) {
    switch (s) {
    case RD_MC_PLAIN: return "context/choices/gold";
    case RD_MC_ARC: return "ARC";
    case RD_MC_HELLASWAG: return "HellaSwag";
    }
    return "?";
}

static void item_clear(rd_mc_item *it) {
    free(it->context);
    for (int k = 0; k < it->n_choices; k++) free(it->choices[k]);
    free(it->choices);
    free(it->norm_len);
    memset(it, 0, sizeof *it);
}

void rd_mc_free(rd_mc_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n && !s->borrowed; i++) item_clear(&s->items[i]);
    free(s->items);
    free(s->path);
    free(s);
}

size_t rd_mc_size(const rd_mc_set *s) { return s->n; }
const rd_mc_item *rd_mc_get(const rd_mc_set *s, size_t i) { return i < s->n ? &s->items[i] : NULL; }
rd_mc_style rd_mc_style_of(const rd_mc_set *s) { return s->style; }
const char *rd_mc_path(const rd_mc_set *s) { return s->path; }
int rd_mc_max_choices(const rd_mc_set *s) { return s->max_choices; }

rd_mc_set *rd_mc_slice(const rd_mc_set *s, size_t i0, size_t i1, rd_error *err) {
    if (i0 > i1 || i1 > s->n)
        return rd_error_set(err, "%s: items %zu .. %zu of %zu", s->path, i0, i1, s->n), NULL;
    rd_mc_set *t = calloc(1, sizeof *t);
    if (t) {
        t->path = strdup(s->path);
        t->items = malloc(sizeof *t->items * (i1 - i0 + 1));
    }
    if (!t || !t->path || !t->items) {
        if (t) t->borrowed = 1;
        rd_mc_free(t);
        return rd_error_set(err, "%s: out of memory", s->path), NULL;
    }
    t->borrowed = 1;
    t->style = s->style;
    t->n = t->cap = i1 - i0;
    memcpy(t->items, s->items + i0, sizeof *t->items * t->n);
    for (size_t i = 0; i < t->n; i++)
        t->max_choices = t->items[i].n_choices > t->max_choices ? t->items[i].n_choices
                                                                : t->max_choices;
    return t;
}

/* Characters (UTF-8 code points) of s: the bytes that do not continue a character. */
static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
    return n;
}

/* The style the keys of obj say, or 0. */
static rd_mc_style style_of(const cJSON *obj) {
    if (cJSON_HasObjectItem(obj, "endings")) return RD_MC_HELLASWAG;
    if (cJSON_HasObjectItem(obj, "answerKey") || cJSON_HasObjectItem(obj, "question"))
        return RD_MC_ARC;
    if (cJSON_HasObjectItem(obj, "context")) return RD_MC_PLAIN;
    return 0;
}

/* A string field of obj, checked for UTF-8; NULL with *err naming it. */
static const char *get_str(const cJSON *obj, const char *key, rd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return rd_error_set(err, "\"%s\" is missing", key), NULL;
    if (!cJSON_IsString(v) || !v->valuestring)
        return rd_error_set(err, "\"%s\" must be a string", key), NULL;
    const size_t len = strlen(v->valuestring);
    if (rd_data_utf8_check(v->valuestring, len) < len)
        return rd_error_set(err, "\"%s\" is not valid UTF-8", key), NULL;
    return v->valuestring;
}

/* An array of strings of 2 .. RD_MC_MAX_CHOICES items; its size, or -1 with *err. */
static int str_array(const cJSON *v, const char *key, rd_error *err) {
    if (!v) return rd_error_set(err, "\"%s\" is missing", key);
    if (!cJSON_IsArray(v)) return rd_error_set(err, "\"%s\" must be a list of strings", key);
    const int n = cJSON_GetArraySize(v);
    if (n < 2 || n > RD_MC_MAX_CHOICES)
        return rd_error_set(err, "\"%s\" has %d items (2 to %d allowed)", key, n,
                            RD_MC_MAX_CHOICES);
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c) || !c->valuestring)
            return rd_error_set(err, "\"%s\"[%d] must be a string", key, i);
        const size_t len = strlen(c->valuestring);
        if (rd_data_utf8_check(c->valuestring, len) < len)
            return rd_error_set(err, "\"%s\"[%d] is not valid UTF-8", key, i);
    }
    return n;
}

/* lm-evaluation-harness's hellaswag preprocess: strip, " [title]" -> ". ", "[...]"
 * removed, "  " -> " " (one left-to-right pass, as Python's str.replace). Appends to b. */
static void hs_preprocess(rd_buf *b, const char *s) {
    size_t len = strlen(s);
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    rd_buf t = {0}, u = {0};
    for (size_t i = 0; i < len;) { /* " [title]" -> ". " */
        if (len - i >= 8 && !memcmp(s + i, " [title]", 8)) {
            rd_buf_puts(&t, ". ");
            i += 8;
        } else {
            rd_buf_putc(&t, s[i++]);
        }
    }
    for (size_t i = 0; i < t.len;) { /* re.sub(r"\[.*?\]", "", text): "." stops at '\n' */
        if (t.data[i] == '[') {
            size_t j = i + 1;
            while (j < t.len && t.data[j] != ']' && t.data[j] != '\n') j++;
            if (j < t.len && t.data[j] == ']') {
                i = j + 1;
                continue;
            }
        }
        rd_buf_putc(&u, t.data[i++]);
    }
    for (size_t i = 0; i < u.len;) { /* "  " -> " " */
        if (i + 1 < u.len && u.data[i] == ' ' && u.data[i + 1] == ' ') {
            rd_buf_putc(b, ' ');
            i += 2;
        } else {
            rd_buf_putc(b, u.data[i++]);
        }
    }
    if (t.oom || u.oom) b->oom = 1;
    rd_buf_free(&t);
    rd_buf_free(&u);
}

/* Fills choice k of it: delim + text (text's characters for acc_norm). */
static int set_choice(rd_mc_item *it, int k, const char *delim, const char *text) {
    rd_buf b = {0};
    rd_buf_puts(&b, delim);
    rd_buf_puts(&b, text);
    if (b.oom) return -1;
    it->choices[k] = rd_buf_take(&b);
    it->norm_len[k] = utf8_chars(text);
    return it->choices[k] ? 0 : -1;
}

static int alloc_choices(rd_mc_item *it, int n) {
    it->choices = calloc((size_t)n, sizeof *it->choices);
    it->norm_len = calloc((size_t)n, sizeof *it->norm_len);
    it->n_choices = it->choices && it->norm_len ? n : 0;
    return it->n_choices ? 0 : -1;
}

#define OOM() rd_error_set(err, "out of memory")

static int parse_plain(const cJSON *obj, rd_mc_item *it, rd_error *err) {
    const char *ctx = get_str(obj, "context", err);
    if (!ctx) return -1;
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(obj, "choices");
    const int n = str_array(ch, "choices", err);
    if (n < 0) return -1;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(obj, "gold");
    if (!cJSON_IsNumber(g) || g->valuedouble != (double)(int)g->valuedouble)
        return rd_error_set(err, "\"gold\" must be a whole number (the index of the right choice)");
    if (g->valuedouble < 0 || g->valuedouble >= n)
        return rd_error_set(err, "\"gold\" %g is out of range (%d choices, counted from 0)",
                            g->valuedouble, n);
    it->gold = (int)g->valuedouble;
    if (!(it->context = strdup(ctx)) || alloc_choices(it, n)) return OOM();
    int k = 0;
    for (const cJSON *c = ch->child; c; c = c->next, k++)
        if (set_choice(it, k, "", c->valuestring)) return OOM();
    return 0;
}

static int parse_arc(const cJSON *obj, rd_mc_item *it, rd_error *err) {
    const char *q = get_str(obj, "question", err);
    if (!q) return -1;
    const char *key = get_str(obj, "answerKey", err);
    if (!key) return -1;
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(obj, "choices");
    if (!cJSON_IsObject(ch))
        return rd_error_set(err, "\"choices\" must be an object {\"text\": [...], \"label\": [...]}");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(ch, "text");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(ch, "label");
    const int n = str_array(text, "choices.text", err);
    if (n < 0) return -1;
    const int nl = str_array(label, "choices.label", err);
    if (nl < 0) return -1;
    if (nl != n)
        return rd_error_set(err, "\"choices\" has %d texts but %d labels", n, nl);
    it->gold = -1;
    int k = 0;
    for (const cJSON *c = label->child; c; c = c->next, k++)
        if (!strcmp(c->valuestring, key) && it->gold < 0) it->gold = k;
    if (it->gold < 0)
        return rd_error_set(err, "\"answerKey\" \"%s\" is none of the choices' labels", key);
    rd_buf b = {0};
    rd_buf_printf(&b, "Question: %s\nAnswer:", q);
    if (b.oom || !(it->context = rd_buf_take(&b)) || alloc_choices(it, n)) return OOM();
    k = 0;
    for (const cJSON *c = text->child; c; c = c->next, k++)
        if (set_choice(it, k, " ", c->valuestring)) return OOM();
    return 0;
}

static int parse_hellaswag(const cJSON *obj, rd_mc_item *it, rd_error *err) {
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(obj, "endings");
    const int n = str_array(en, "endings", err);
    if (n < 0) return -1;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(obj, "label");
    double g = -1;
    if (cJSON_IsNumber(l)) {
        g = l->valuedouble;
    } else if (cJSON_IsString(l) && l->valuestring) {
        char *end;
        g = strtod(l->valuestring, &end);
        if (end == l->valuestring || *end) g = -0.5;
    } else {
        return rd_error_set(err, "\"label\" must be the index of the right ending (a number "
                                 "or a string such as \"2\")");
    }
    if (g != (double)(int)g || g < 0 || g >= n)
        return rd_error_set(err, "\"label\" is not an index of the %d endings (from 0)", n);
    it->gold = (int)g;
    rd_buf raw = {0}, ctx = {0};
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(obj, "activity_label");
    const int has_ab = cJSON_HasObjectItem(obj, "ctx_a") && cJSON_HasObjectItem(obj, "ctx_b");
    const char *a = NULL, *bb = NULL, *c = NULL, *al = NULL;
    if (act && !(al = get_str(obj, "activity_label", err))) return -1;
    if (has_ab) {
        if (!(a = get_str(obj, "ctx_a", err)) || !(bb = get_str(obj, "ctx_b", err))) return -1;
    } else if (!(c = get_str(obj, "ctx", err))) {
        return -1;
    }
    if (al) rd_buf_printf(&raw, "%s: ", al);
    if (has_ab) { /* ctx_a + " " + ctx_b.capitalize() (ASCII) */
        rd_buf_printf(&raw, "%s ", a);
        for (size_t i = 0; bb[i]; i++)
            rd_buf_putc(&raw, (char)(i ? tolower((unsigned char)bb[i]) : toupper((unsigned char)bb[i])));
    } else {
        rd_buf_puts(&raw, c);
    }
    hs_preprocess(&ctx, raw.data ? raw.data : "");
    rd_buf_free(&raw);
    if (ctx.oom || !(it->context = ctx.data ? rd_buf_take(&ctx) : strdup("")) ||
        alloc_choices(it, n)) {
        rd_buf_free(&ctx);
        return OOM();
    }
    int k = 0;
    for (const cJSON *e = en->child; e; e = e->next, k++) {
        rd_buf p = {0};
        hs_preprocess(&p, e->valuestring);
        const int rc = p.oom ? -1 : set_choice(it, k, " ", p.data ? p.data : "");
        rd_buf_free(&p);
        if (rc) return OOM();
    }
    return 0;
}

/* Parses one line into it (zeroed); -1 with *err (no file/line: the caller adds them). */
static int parse_line(rd_mc_set *s, const char *line, size_t len, rd_mc_item *it, rd_error *err) {
    if (rd_data_utf8_check(line, len) < len) return rd_error_set(err, "not valid UTF-8");
    cJSON *obj = cJSON_ParseWithLength(line, len);
    if (!obj) return rd_error_set(err, "not valid JSON");
    int rc;
    if (!cJSON_IsObject(obj)) {
        rc = rd_error_set(err, "not a JSON object");
    } else {
        const rd_mc_style st = style_of(obj);
        if (!s->style && st) s->style = st;
        if (!st || st != s->style) {
            rc = s->n == 0
                     ? rd_error_set(err, "not a multiple-choice item: expected "
                                         "{\"context\", \"choices\", \"gold\"}, ARC-style "
                                         "{\"question\", \"choices\": {\"text\", \"label\"}, "
                                         "\"answerKey\"} or HellaSwag-style {\"ctx\", "
                                         "\"endings\", \"label\"}")
                     : rd_error_set(err, "not a %s item like the lines before it",
                                    rd_mc_style_name(s->style));
        } else {
            rc = st == RD_MC_PLAIN ? parse_plain(obj, it, err)
                 : st == RD_MC_ARC ? parse_arc(obj, it, err)
                                   : parse_hellaswag(obj, it, err);
        }
    }
    cJSON_Delete(obj);
    if (rc) item_clear(it);
    return rc;
}

rd_mc_set *rd_mc_load(const char *path, rd_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rd_error_set(err, "%s: cannot open: %s", path, strerror(errno)), NULL;
    rd_mc_set *s = calloc(1, sizeof *s);
    rd_line_reader rd;
    int rc = 0;
    if (!s || !(s->path = strdup(path)) || rd_line_reader_init(&rd, f, RD_DATA_MAX_LINE) < 0) {
        fclose(f);
        rd_mc_free(s);
        return rd_error_set(err, "%s: out of memory", path), NULL;
    }
    for (;;) {
        const int got = rd_line_reader_next(&rd, err);
        if (got < 0) {
            rc = rd_error_prefix(err, "%s", path);
            break;
        }
        if (got == 0) break;
        size_t i = 0;
        while (i < rd.len && isspace((unsigned char)rd.buf[i])) i++;
        if (i == rd.len && !rd.too_long) continue; /* blank */
        if (rd.too_long) {
            rc = rd_error_set(err, "%s line %ld: longer than %zu bytes", path, rd.line_no,
                              rd.max_line);
            break;
        }
        rd_mc_item it = {0};
        if (parse_line(s, rd.buf, rd.len, &it, err)) {
            rc = rd_error_prefix(err, "%s line %ld", path, rd.line_no);
            break;
        }
        if (rd_array_reserve(&s->items, &s->cap, s->n + 1, sizeof *s->items)) {
            item_clear(&it);
            rc = rd_error_set(err, "%s: out of memory", path);
            break;
        }
        it.line = rd.line_no;
        if (it.n_choices > s->max_choices) s->max_choices = it.n_choices;
        s->items[s->n++] = it;
        rd_line_reader_release(&rd);
    }
    rd_line_reader_free(&rd);
    fclose(f);
    if (rc == 0 && s->n == 0) rc = rd_error_set(err, "%s: no items", path);
    if (rc) {
        rd_mc_free(s);
        return NULL;
    }
    return s;
}

int rd_mc_sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    rd_line_reader rd;
    int mc = 0;
    if (rd_line_reader_init(&rd, f, RD_DATA_MAX_LINE) == 0) {
        while (rd_line_reader_next(&rd, NULL) == 1 && !rd.too_long) {
            size_t i = 0;
            while (i < rd.len && isspace((unsigned char)rd.buf[i])) i++;
            if (i == rd.len) continue;
            cJSON *obj = rd.buf[i] == '{' ? cJSON_ParseWithLength(rd.buf, rd.len) : NULL;
            mc = cJSON_IsObject(obj) &&
                 (cJSON_HasObjectItem(obj, "choices") || cJSON_HasObjectItem(obj, "endings"));
            cJSON_Delete(obj);
            break;
        }
        rd_line_reader_free(&rd);
    }
    fclose(f);
    return mc;
}
