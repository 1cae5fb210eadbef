/* Data sets: format names, the example store and its accessors, and the seeded split
 * (loading is in load.c). */
#include "data_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"
#include "redit/rng.h"
#include "redit/util.h"

/* ---- names and defaults ----------------------------------------------------------- */

static const char *const FORMAT_NAMES[] = {"auto", "alpaca", "chat", "prompt-completion",
                                           "ultrafeedback", "text", "classification"};
#define N_FORMATS ((int)(sizeof FORMAT_NAMES / sizeof FORMAT_NAMES[0]))

int rd_data_format_from_name(const char *name, rd_data_format *out) {
    for (int i = 0; name && i < N_FORMATS; i++)
        if (strcmp(name, FORMAT_NAMES[i]) == 0) {
            *out = (rd_data_format)i;
            return 0;
        }
    return -1;
}

const char *rd_data_format_name(rd_data_format f) {
    return (int)f >= 0 && (int)f < N_FORMATS ? FORMAT_NAMES[f] : "unknown";
}

rd_data_opts rd_data_opts_defaults(void) {
    return (rd_data_opts){.format = RD_DATA_AUTO, .template_name = NULL, .max_len = 512,
                          .mask_prompt = 1, .skip_bad_lines = 0, .system = NULL};
}

/* ---- the example store ------------------------------------------------------------ */

static void item_free(rd_item *it) {
    free(it->ex.ids);
    free(it->ex.loss);
    free(it->prompt_text);
    free(it->answer_text);
}

void rd_dataset_free(rd_dataset *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) item_free(&d->items[i]);
    free(d->items);
    for (int k = 0; k < d->n_labels; k++) {
        free(d->labels[k]);
        free(d->label_ids[k]);
    }
    free(d->labels);
    free(d->label_ids);
    free(d->label_n);
    free(d);
}

char *rd_data_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Appends *it (taken over) to d; frees it on failure. */
static int push_item(rd_dataset *d, rd_item *it, rd_error *err) {
    if (rd_array_reserve(&d->items, &d->cap, d->n + 1, sizeof *d->items)) {
        item_free(it);
        return rd_error_set(err, "out of memory");
    }
    d->items[d->n++] = *it;
    for (int t = 0; t < it->ex.n; t++) d->loss_tokens += it->ex.loss[t];
    d->truncated += (size_t)it->truncated;
    return 0;
}

int rd_data_add_example(rd_dataset *d, const rd_seq *seq, int max_len, int mask_prompt,
                        int label, const char *prompt_text, const char *answer_text,
                        rd_error *err) {
    int n = seq->n, cut = n > max_len;
    if (cut) n = max_len;
    int n_loss = 0;
    for (int t = 1; t < n; t++) n_loss += mask_prompt ? seq->ans[t] : 1;
    if (n_loss == 0) { /* nothing to learn from: dropped (the answer was cut away) */
        d->dropped++;
        d->truncated += (size_t)cut;
        return 0;
    }
    rd_item it = {.truncated = cut};
    it.ex.n = n;
    it.ex.n_prompt = seq->n_prompt < n ? seq->n_prompt : n;
    it.ex.label = label;
    it.ex.ids = malloc((size_t)n * sizeof *it.ex.ids);
    it.ex.loss = malloc((size_t)n);
    it.prompt_text = rd_data_strdup(prompt_text);
    it.answer_text = rd_data_strdup(answer_text);
    if (!it.ex.ids || !it.ex.loss || !it.prompt_text || !it.answer_text) {
        item_free(&it);
        return rd_error_set(err, "out of memory");
    }
    memcpy(it.ex.ids, seq->ids, (size_t)n * sizeof *it.ex.ids);
    for (int t = 0; t < n; t++) it.ex.loss[t] = t >= 1 && (mask_prompt ? seq->ans[t] : 1);
    return push_item(d, &it, err);
}

/* ---- accessors -------------------------------------------------------------------- */

size_t rd_dataset_size(const rd_dataset *d) { return d ? d->n : 0; }

const rd_example *rd_dataset_get(const rd_dataset *d, size_t i) {
    return d && i < d->n ? &d->items[i].ex : NULL;
}

size_t rd_dataset_skipped(const rd_dataset *d) { return d ? d->skipped : 0; }
size_t rd_dataset_truncated(const rd_dataset *d) { return d ? d->truncated : 0; }
size_t rd_dataset_dropped(const rd_dataset *d) { return d ? d->dropped : 0; }
rd_data_format rd_dataset_format(const rd_dataset *d) { return d ? d->format : RD_DATA_AUTO; }
uint64_t rd_dataset_loss_tokens(const rd_dataset *d) { return d ? d->loss_tokens : 0; }

uint64_t rd_dataset_fingerprint(const rd_dataset *d) {
    if (!d) return 0;
    uint64_t h = RD_FNV1A_INIT;
    for (size_t i = 0; i < d->n; i++) {
        const rd_example *ex = &d->items[i].ex;
        h = rd_fnv1a(h, &ex->n, sizeof ex->n);
        h = rd_fnv1a(h, ex->ids, sizeof *ex->ids * (size_t)ex->n);
        h = rd_fnv1a(h, ex->loss, (size_t)ex->n);
        h = rd_fnv1a(h, &ex->label, sizeof ex->label);
    }
    return h;
}

uint64_t rd_dataset_loss_bytes(const rd_dataset *d, const rd_tokenizer *tok, int max_len) {
    if (!d || !tok) return 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < d->n; i++) {
        const rd_example *ex = &d->items[i].ex;
        const int end = ex->n < max_len ? ex->n : max_len;
        for (int t = 1; t < end; t++)
            if (ex->loss[t]) bytes += rd_tokenizer_decode_piece(tok, ex->ids[t - 1], ex->ids[t], NULL, 0);
    }
    return bytes;
}

/* Appends printf output to buf (cap bytes, `*used` of them filled), cutting it short. */
__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t cap, size_t *used, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *used, cap - *used, fmt, ap);
    va_end(ap);
    if (w > 0) *used += (size_t)w < cap - *used ? (size_t)w : cap - *used - 1;
}

const char *rd_dataset_cuts_text(const rd_dataset *d, int max_len, char *buf, size_t cap) {
    if (!cap) return buf;
    buf[0] = '\0';
    if (!d) return buf;
    size_t used = 0;
    const size_t cut_only = d->truncated - d->dropped;
    if (d->dropped)
        append(buf, cap, &used, "%zu example%s dropped (no answer left within max length %d)",
               d->dropped, d->dropped == 1 ? "" : "s", max_len);
    if (cut_only)
        append(buf, cap, &used, "%s%zu %struncated to max length %d", used ? ", " : "", cut_only,
               d->dropped ? "more " : "", max_len);
    if (d->skipped)
        append(buf, cap, &used, "%s%zu bad line%s skipped", used ? ", " : "", d->skipped,
               d->skipped == 1 ? "" : "s");
    return buf;
}

const char *rd_dataset_prompt_text(const rd_dataset *d, size_t i) {
    return d && i < d->n ? d->items[i].prompt_text : NULL;
}

const char *rd_dataset_answer_text(const rd_dataset *d, size_t i) {
    return d && i < d->n ? d->items[i].answer_text : NULL;
}

int rd_dataset_n_labels(const rd_dataset *d) { return d ? d->n_labels : 0; }

const char *rd_dataset_label(const rd_dataset *d, int k) {
    return d && k >= 0 && k < d->n_labels ? d->labels[k] : NULL;
}

const int *rd_dataset_label_ids(const rd_dataset *d, int k, int *n) {
    if (!d || k < 0 || k >= d->n_labels) {
        if (n) *n = 0;
        return NULL;
    }
    if (n) *n = d->label_n[k];
    return d->label_ids[k];
}

/* ---- split ------------------------------------------------------------------------ */

static rd_dataset *copy_shell(const rd_dataset *d, rd_error *err) {
    rd_dataset *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->format = d->format;
    if (d->n_labels > 0) {
        size_t n = (size_t)d->n_labels;
        c->labels = calloc(n, sizeof *c->labels);
        c->label_ids = calloc(n, sizeof *c->label_ids);
        c->label_n = calloc(n, sizeof *c->label_n);
        if (!c->labels || !c->label_ids || !c->label_n) goto oom;
        c->n_labels = d->n_labels;
        for (size_t k = 0; k < n; k++) {
            c->labels[k] = rd_data_strdup(d->labels[k]);
            c->label_n[k] = d->label_n[k];
            c->label_ids[k] = malloc((size_t)(d->label_n[k] ? d->label_n[k] : 1) * sizeof(int));
            if (!c->labels[k] || !c->label_ids[k]) goto oom;
            memcpy(c->label_ids[k], d->label_ids[k], (size_t)d->label_n[k] * sizeof(int));
        }
    }
    return c;
oom:
    rd_dataset_free(c);
    rd_error_set(err, "split: out of memory");
    return NULL;
}

static int copy_item(rd_dataset *c, const rd_item *src, rd_error *err) {
    const rd_example *e = &src->ex;
    rd_item it = {.ex = *e, .truncated = src->truncated};
    it.ex.ids = malloc((size_t)e->n * sizeof *e->ids);
    it.ex.loss = malloc((size_t)e->n);
    it.prompt_text = rd_data_strdup(src->prompt_text);
    it.answer_text = rd_data_strdup(src->answer_text);
    if (!it.ex.ids || !it.ex.loss || !it.prompt_text || !it.answer_text) {
        item_free(&it);
        return rd_error_set(err, "split: out of memory");
    }
    memcpy(it.ex.ids, e->ids, (size_t)e->n * sizeof *e->ids);
    memcpy(it.ex.loss, e->loss, (size_t)e->n);
    return push_item(c, &it, err);
}

int rd_dataset_split(const rd_dataset *d, double frac, uint64_t seed, rd_dataset **train,
                     rd_dataset **held_out, rd_error *err) {
    *train = *held_out = NULL;
    if (!d || d->n < 2) return rd_error_set(err, "split: need at least 2 examples");
    if (!(frac > 0.0 && frac < 1.0)) return rd_error_set(err, "split: fraction %g not in (0, 1)", frac);
    size_t n = d->n;
    size_t n_held = (size_t)llround(frac * (double)n);
    if (n_held < 1) n_held = 1;
    if (n_held > n - 1) n_held = n - 1;
    size_t *perm = malloc(n * sizeof *perm);
    unsigned char *held = calloc(n, 1);
    rd_dataset *tr = copy_shell(d, err), *ho = tr ? copy_shell(d, err) : NULL;
    int rc = perm && held && tr && ho ? 0 : rd_error_set(err, "split: out of memory");
    if (rc == 0) {
        uint64_t state = rd_rng_seed(seed);
        for (size_t i = 0; i < n; i++) perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = (size_t)(rd_rng_next(&state) % (uint64_t)(i + 1));
            size_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (size_t i = 0; i < n_held; i++) held[perm[i]] = 1;
        for (size_t i = 0; i < n && rc == 0; i++) /* both parts keep the original order */
            rc = copy_item(held[i] ? ho : tr, &d->items[i], err);
    }
    free(perm);
    free(held);
    if (rc < 0) {
        rd_dataset_free(tr);
        rd_dataset_free(ho);
        return -1;
    }
    *train = tr;
    *held_out = ho;
    return 0;
}
