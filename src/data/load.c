/* Loading: format detection, the JSONL path (records rendered and tokenized line by line;
 * classification records kept until every label word is known), the plain-text path, and
 * the bad-line policy. */
#include "data_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"
#include "redit/util.h"

typedef struct loader {
    const char *path;
    const rd_tokenizer *tok;
    rd_data_opts o;
    rd_dataset *d;
    rd_template tpl;
    int have_tpl;
    rd_record *stash; /* (cap) classification records, labelled once all are read */
    size_t n_stash, cap_stash;
    int label_kind;   /* classification: 0 none yet, 1 integers, 2 strings */
    size_t max_line;  /* longest JSONL line (RD_DATA_MAX_LINE or its override) */
    rd_error *err;
} loader;

/* A malformed line: skipped and counted, or the error "PATH:LINE: msg". */
static int bad_line(loader *L, long line, const char *msg) {
    if (L->o.skip_bad_lines) {
        L->d->skipped++;
        return 0;
    }
    return rd_error_set(L->err, "%s:%ld: %s", L->path, line, msg);
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

static char first_nonblank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return s[i];
    return '\0';
}

static int set_format(loader *L, rd_data_format f) {
    L->d->format = f;
    L->have_tpl = rd_data_template_init(&L->tpl, L->o.template_name, f, L->err) == 0;
    return L->have_tpl ? 0 : -1;
}

/* Renders and tokenizes an instruction/chat record into one example. Frees each turn's
 * strings once rendered (a long line's text is then held once, not twice). */
static int add_record(loader *L, rd_record *r) {
    const char *sys = r->system ? r->system : L->o.system;
    rd_seq s = {.limit = L->o.max_len}; /* rd_data_add_example keeps no more */
    rd_buf ptext = {0}; /* the prompt's text; a failure latches in ptext.oom */
    char *atext = NULL;
    int rc = rd_buf_reserve(&ptext, 0) ? rd_error_set(L->err, "out of memory") : 0;
    for (int i = 0; i < r->n_turns && rc == 0; i++) {
        rd_rendered rr;
        rc = rd_data_template_render(&L->tpl, i == 0 ? sys : NULL, r->turns[i].prompt,
                                     i == 0 ? r->input : NULL, r->turns[i].answer, &rr, L->err);
        if (rc < 0) break;
        free(r->turns[i].prompt);
        free(r->turns[i].answer);
        r->turns[i].prompt = r->turns[i].answer = NULL;
        if (i == 0) {
            free(r->system);
            free(r->input);
            r->system = r->input = NULL;
            sys = NULL;
        }
        size_t pl = 0;
        rc = rd_seq_add_turn(&s, L->tok, &rr, &pl, L->err);
        if (rc == 0 && i + 1 < r->n_turns) { /* earlier turns: the whole text, <s> </s> marks */
            rd_buf_puts(&ptext, rr.P);
            rd_buf_puts(&ptext, rr.A);
            if (rd_buf_puts(&ptext, "</s><s>") < 0) rc = rd_error_set(L->err, "out of memory");
        } else if (rc == 0) {
            if (rd_buf_append(&ptext, rr.P, pl) < 0) rc = rd_error_set(L->err, "out of memory");
            atext = rr.A;
            rr.A = NULL;
        }
        rd_data_rendered_free(&rr);
    }
    if (rc == 0)
        rc = rd_data_add_example(L->d, &s, L->o.max_len, L->o.mask_prompt, -1, ptext.data, atext,
                                 L->err);
    rd_buf_free(&ptext);
    free(atext);
    rd_seq_free(&s);
    if (rc < 0) rd_error_prefix(L->err, "%s:%ld", L->path, r->line);
    return rc;
}

/* Keeps a classification record until every label is known. Takes *r over. */
static int stash_record(loader *L, rd_record *r) {
    int kind = r->label_is_int ? 1 : 2;
    if (L->label_kind && kind != L->label_kind) {
        rd_data_record_clear(r);
        return bad_line(L, r->line, kind == 1 ? "\"label\" is an integer but earlier labels are strings"
                                              : "\"label\" is a string but earlier labels are integers");
    }
    L->label_kind = kind;
    if (rd_array_reserve(&L->stash, &L->cap_stash, L->n_stash + 1, sizeof *L->stash)) {
        rd_data_record_clear(r);
        return rd_error_set(L->err, "%s: out of memory", L->path);
    }
    L->stash[L->n_stash++] = *r;
    memset(r, 0, sizeof *r);
    return 0;
}

/* Parses one non-blank line (format already known) and adds what it holds. Takes obj over:
 * it is freed as soon as the record holds copies of its strings. */
static int process_object(loader *L, cJSON *obj, long line) {
    rd_record r = {.line = line};
    rd_error lerr = {{0}};
    int parsed = rd_data_record_parse(obj, L->d->format, &r, &lerr);
    cJSON_Delete(obj);
    if (parsed < 0) return bad_line(L, line, lerr.msg);
    int rc;
    if (L->d->format == RD_DATA_CLASSIFICATION) {
        rc = stash_record(L, &r);
    } else if (L->d->format == RD_DATA_TEXT) {
        const char *text = r.turns[0].answer;
        rc = rd_data_add_document(L->d, L->tok, text, strlen(text), 1, L->o.max_len, L->err);
        if (rc < 0) rd_error_prefix(L->err, "%s:%ld", L->path, line);
    } else {
        rc = add_record(L, &r);
    }
    rd_data_record_clear(&r);
    return rc;
}

/* Parses a line as one JSON object: the object, or NULL with msg filled. */
static cJSON *parse_line(const char *s, size_t len, char *msg, size_t cap) {
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!v) {
        size_t at = end && end >= s ? (size_t)(end - s) : 0;
        snprintf(msg, cap, "not valid JSON (at byte %zu)", at + 1);
        return NULL;
    }
    size_t at = (size_t)(end - s);
    if (!is_blank(end, len - at)) {
        snprintf(msg, cap, "not valid JSON: text after the value at byte %zu", at + 1);
        cJSON_Delete(v);
        return NULL;
    }
    if (!cJSON_IsObject(v)) {
        snprintf(msg, cap, "expected a JSON object, found %s",
                 cJSON_IsArray(v) ? "an array" : "a scalar value");
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

enum { LINE_DONE = 0, LINE_FAIL = -1, LINE_PLAIN = 1 };

/* One line of a JSONL file. While the format is undecided, the first non-blank line
 * decides it (LINE_PLAIN: the file is plain text). */
static int process_line(loader *L, rd_line_reader *rd) {
    if (is_blank(rd->buf, rd->len) && !rd->too_long) return LINE_DONE;
    int undecided = !L->have_tpl;
    rd_data_format want = L->o.format;
    if (undecided && (want == RD_DATA_AUTO || want == RD_DATA_TEXT) && !rd->too_long &&
        first_nonblank(rd->buf, rd->len) != '{')
        return LINE_PLAIN;
    if (rd->too_long) {
        char msg[160], lim[32];
        rd_format_bytes(L->max_line, lim, sizeof lim);
        snprintf(msg, sizeof msg, "line longer than %s (the limit; the environment variable "
                                  RD_DATA_MAX_LINE_ENV " raises it, e.g. %s=1G)",
                 lim, RD_DATA_MAX_LINE_ENV);
        return bad_line(L, rd->line_no, msg);
    }
    if (memchr(rd->buf, '\0', rd->len)) return bad_line(L, rd->line_no, "NUL byte in the line");
    char msg[RD_ERROR_MAX];
    cJSON *obj = parse_line(rd->buf, rd->len, msg, sizeof msg);
    if (!obj) return bad_line(L, rd->line_no, msg);
    rd_line_reader_release(rd); /* the tree holds what is needed of the line */
    int rc = 0;
    if (undecided) {
        rd_data_format f = rd_data_detect_keys(obj);
        if (want == RD_DATA_TEXT && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(obj, "text"))) {
            rc = LINE_PLAIN; /* a text file that happens to start with '{' */
        } else if (want == RD_DATA_AUTO && f == RD_DATA_AUTO) {
            rc = bad_line(L, rd->line_no,
                          "cannot tell the data format from the keys (expected instruction+output, "
                          "messages, prompt+completion, prompt+chosen, text+label or text)");
            undecided = 2; /* still undecided: skip the object */
        } else {
            rc = set_format(L, want == RD_DATA_AUTO ? f : want);
            if (rc < 0) rd_error_prefix(L->err, "%s", L->path);
        }
    }
    if (rc == 0 && undecided != 2) return process_object(L, obj, rd->line_no);
    cJSON_Delete(obj);
    return rc;
}

/* Whole file into a NUL-terminated buffer. */
static char *read_all(FILE *f, size_t *len, rd_error *err) {
    rd_buf b = {0};
    if (rd_buf_read(&b, f) < 0) {
        rd_error_set(err, b.oom ? "out of memory reading the file" : "read error");
        rd_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return rd_buf_take(&b);
}

/* A plain-text file: one document, its lines checked for UTF-8 (bad ones skipped when
 * allowed). */
static int load_plain(loader *L, FILE *f) {
    if (set_format(L, RD_DATA_TEXT) < 0) return rd_error_prefix(L->err, "%s", L->path);
    rewind(f);
    size_t len = 0;
    char *text = read_all(f, &len, L->err);
    if (!text) return rd_error_prefix(L->err, "%s", L->path);
    size_t out = 0;
    long line = 1;
    for (size_t at = 0; at < len; line++) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;
        size_t bad = rd_data_utf8_check(text + at, end - at);
        if (bad < end - at) {
            char msg[96];
            snprintf(msg, sizeof msg, "invalid UTF-8 at byte %zu of the line", bad + 1);
            if (bad_line(L, line, msg) < 0) {
                free(text);
                return -1;
            }
        } else {
            memmove(text + out, text + at, end - at);
            out += end - at;
        }
        at = end;
    }
    int rc = rd_data_add_document(L->d, L->tok, text, out, 0, L->o.max_len, L->err);
    if (rc < 0) rd_error_prefix(L->err, "%s", L->path);
    free(text);
    return rc;
}

/* Label words: distinct integers sorted, or distinct strings in first-seen order. Keys
 * are sorted by value (ties: first seen first) for the lookups. */
typedef struct label_key {
    const rd_record *r;
    size_t order; /* index of the record in the stash */
} label_key;

static int cmp_value(const rd_record *x, const rd_record *y) {
    if (x->label_is_int) return (x->label_int > y->label_int) - (x->label_int < y->label_int);
    return strcmp(x->turns[0].answer, y->turns[0].answer);
}

static int cmp_key(const void *a, const void *b) {
    const label_key *x = a, *y = b;
    int c = cmp_value(x->r, y->r);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int cmp_order(const void *a, const void *b) {
    size_t i = ((const label_key *)a)->order, j = ((const label_key *)b)->order;
    return (i > j) - (i < j);
}

/* Slot of record r's label among the n sorted distinct keys, or -1. */
static int find_key(const label_key *keys, int n, const rd_record *r) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = cmp_value(r, keys[mid].r);
        if (c == 0) return mid;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

/* Fills d->labels; *keys_out = the distinct labels sorted by value, *rank_out[slot] = the
 * label index of each (both malloc'ed). */
static int build_labels(loader *L, label_key **keys_out, int **rank_out) {
    rd_dataset *d = L->d;
    size_t n = L->n_stash, u = 0;
    label_key *keys = malloc(n * sizeof *keys);
    label_key *seen = malloc(n * sizeof *seen);
    int *rank = malloc(n * sizeof *rank);
    if (!keys || !seen || !rank || n > (size_t)INT32_MAX / 2) goto fail;
    for (size_t i = 0; i < n; i++) keys[i] = (label_key){&L->stash[i], i};
    qsort(keys, n, sizeof *keys, cmp_key);
    for (size_t i = 0; i < n; i++) /* keep the first of each run of equal values */
        if (u == 0 || cmp_value(keys[i].r, keys[u - 1].r) != 0) keys[u++] = keys[i];
    int nl = (int)u;
    for (int k = 0; k < nl; k++) rank[k] = k;
    if (L->label_kind == 2) { /* strings: numbered in first-seen order */
        memcpy(seen, keys, u * sizeof *keys);
        qsort(seen, u, sizeof *seen, cmp_order);
        for (int j = 0; j < nl; j++) rank[find_key(keys, nl, seen[j].r)] = j;
    }
    d->labels = calloc(u, sizeof *d->labels);
    d->label_ids = calloc(u, sizeof *d->label_ids);
    d->label_n = calloc(u, sizeof *d->label_n);
    if (!d->labels || !d->label_ids || !d->label_n) goto fail;
    d->n_labels = nl;
    for (int k = 0; k < nl; k++)
        if (!(d->labels[rank[k]] = rd_data_strdup(keys[k].r->turns[0].answer))) goto fail;
    free(seen);
    *keys_out = keys;
    *rank_out = rank;
    return 0;
fail:
    free(keys);
    free(seen);
    free(rank);
    return rd_error_set(L->err, "%s: out of memory", L->path);
}

/* Tokenizes the stashed classification records once the label words are known. */
static int finish_classification(loader *L) {
    if (L->n_stash == 0) return 0;
    label_key *keys = NULL;
    int *rank = NULL;
    if (build_labels(L, &keys, &rank) < 0) return -1;
    rd_dataset *d = L->d;
    int rc = 0;
    rd_rendered rr = {0};
    rd_seq s = {0};
    for (int k = 0; k < d->n_labels && rc == 0; k++) {
        rc = rd_data_template_render(&L->tpl, L->o.system, "", NULL, d->labels[k], &rr, L->err);
        if (rc == 0)
            rc = rd_data_answer_ids(L->tok, rr.ctx, rr.A, &d->label_ids[k], &d->label_n[k],
                                    L->err);
        rd_data_rendered_free(&rr);
    }
    if (rc < 0) rd_error_prefix(L->err, "%s", L->path);
    for (size_t i = 0; i < L->n_stash && rc == 0; i++) {
        const rd_record *r = &L->stash[i];
        const int slot = find_key(keys, d->n_labels, r); /* found: the keys come from the stash */
        if (slot < 0) {
            rc = rd_error_set(L->err, "%s:%ld: the label is not among the labels read", L->path,
                              r->line);
            break;
        }
        int k = rank[slot];
        size_t pl = 0;
        s.n = 0;
        rc = rd_data_template_render(&L->tpl, L->o.system, r->turns[0].prompt, NULL,
                                     d->labels[k], &rr, L->err);
        if (rc == 0) rc = rd_seq_add_prompt(&s, L->tok, &rr, &pl, L->err);
        if (rc == 0) rc = rd_seq_add_answer_ids(&s, d->label_ids[k], d->label_n[k], L->err);
        if (rc == 0) {
            rr.P[pl] = '\0';
            rc = rd_data_add_example(d, &s, L->o.max_len, L->o.mask_prompt, k, rr.P, rr.A,
                                     L->err);
        }
        rd_data_rendered_free(&rr);
        if (rc < 0) rd_error_prefix(L->err, "%s:%ld", L->path, r->line);
    }
    rd_seq_free(&s);
    free(keys);
    free(rank);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Reads the file line by line (or as plain text) into L->d. */
static int load_file(loader *L, FILE *f) {
    if (L->o.format == RD_DATA_AUTO && ends_with(L->path, ".txt")) {
        if (fgetc(f) == EOF) return rd_error_set(L->err, "%s: empty file", L->path);
        return load_plain(L, f);
    }
    if (L->o.format != RD_DATA_AUTO && L->o.format != RD_DATA_TEXT &&
        set_format(L, L->o.format) < 0)
        return rd_error_prefix(L->err, "%s", L->path);
    if (rd_env_bytes(RD_DATA_MAX_LINE_ENV, RD_DATA_MAX_LINE, &L->max_line, L->err) < 0)
        return rd_error_prefix(L->err, "%s", L->path);
    rd_line_reader rd;
    if (rd_line_reader_init(&rd, f, L->max_line) < 0)
        return rd_error_set(L->err, "%s: out of memory", L->path);
    int rc = 0, any = 0;
    for (;;) {
        int got = rd_line_reader_next(&rd, L->err);
        if (got < 0) {
            rc = rd_error_prefix(L->err, "%s:%ld", L->path, rd.line_no + 1);
            break;
        }
        if (got == 0) break;
        any = any || rd.too_long || !is_blank(rd.buf, rd.len);
        rc = process_line(L, &rd);
        if (rc == LINE_PLAIN) break;
        if (rc < 0) break;
    }
    rd_line_reader_free(&rd);
    if (rc == LINE_PLAIN) return load_plain(L, f);
    if (rc < 0) return -1;
    if (!any) return rd_error_set(L->err, "%s: empty file", L->path);
    if (!L->have_tpl) /* every line was bad and skipped */
        L->d->format = L->o.format;
    return finish_classification(L);
}

rd_dataset *rd_dataset_load(const char *path, const rd_tokenizer *tok, const rd_data_opts *opts,
                            rd_error *err) {
    rd_data_opts o = opts ? *opts : rd_data_opts_defaults();
    if (!path || !tok) {
        rd_error_set(err, "dataset: no file or no tokenizer");
        return NULL;
    }
    if (o.max_len < 2) {
        rd_error_set(err, "%s: max_len must be at least 2 (got %d)", path, o.max_len);
        return NULL;
    }
    if ((int)o.format < (int)RD_DATA_AUTO || (int)o.format > (int)RD_DATA_CLASSIFICATION) {
        rd_error_set(err, "%s: unknown data format %d", path, (int)o.format);
        return NULL;
    }
    if (o.system) {
        size_t n = strlen(o.system);
        if (rd_data_utf8_check(o.system, n) < n) {
            rd_error_set(err, "%s: the system text is not valid UTF-8", path);
            return NULL;
        }
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        rd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    loader L = {.path = path, .tok = tok, .o = o, .err = err};
    L.d = calloc(1, sizeof *L.d);
    int rc = L.d ? load_file(&L, f) : rd_error_set(err, "%s: out of memory", path);
    fclose(f);
    if (L.have_tpl) rd_data_template_free(&L.tpl);
    for (size_t i = 0; i < L.n_stash; i++) rd_data_record_clear(&L.stash[i]);
    free(L.stash);
    if (rc == 0 && L.d->n == 0) {
        rc = rd_error_set(err, "%s: no examples (%zu bad lines skipped, %zu dropped: nothing "
                               "left to learn after truncation to %d tokens)",
                          path, L.d->skipped, L.d->dropped, o.max_len);
    }
    if (rc < 0) {
        rd_dataset_free(L.d);
        return NULL;
    }
    return L.d;
}
