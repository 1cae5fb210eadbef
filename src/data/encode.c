/* Tokenization of rendered turns with the answer positions marked, and the cutting of
 * plain-text documents into chunks. The prompt/answer boundary rule is in dataset.h. */
#include "data_internal.h"

#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"

void rd_seq_free(rd_seq *s) {
    free(s->ids);
    free(s->ans);
    memset(s, 0, sizeof *s);
}

/* Tokens of s actually held: n, or limit when n passed it. */
static size_t seq_held(const rd_seq *s) {
    return s->limit > 0 && s->n > s->limit ? (size_t)s->limit : (size_t)s->n;
}

/* Room for `extra` more held tokens (none past the limit). */
static int seq_reserve(rd_seq *s, size_t extra, rd_error *err) {
    if ((size_t)s->n + extra > (size_t)INT32_MAX / 2)
        return rd_error_set(err, "example of %zu tokens is too long", (size_t)s->n + extra);
    size_t need = seq_held(s) + extra;
    if (s->limit > 0 && need > (size_t)s->limit) need = (size_t)s->limit;
    /* (the arrays exist whenever cap > 0; said for clang's analyser, which cannot know it) */
    if (s->ids && s->ans && need <= (size_t)s->cap) return 0;
    /* both arrays grow alike from cap; a failure between them leaves cap a lower bound */
    size_t cap_ids = (size_t)s->cap, cap_ans = (size_t)s->cap;
    if (rd_array_reserve(&s->ids, &cap_ids, need, sizeof *s->ids) ||
        rd_array_reserve(&s->ans, &cap_ans, need, 1))
        return rd_error_set(err, "out of memory");
    s->cap = (int)(cap_ids < cap_ans ? cap_ids : cap_ans);
    return 0;
}

static int seq_push(rd_seq *s, const int *ids, size_t n, int ans, rd_error *err) {
    if (n == 0) return 0; /* (s->ids may still be NULL: no memcpy from or to NULL) */
    if (seq_reserve(s, n, err) < 0) return -1;
    size_t held = seq_held(s), keep = n;
    if (s->limit > 0) {
        size_t room = held < (size_t)s->limit ? (size_t)s->limit - held : 0;
        if (keep > room) keep = room;
    }
    if (keep > 0) {
        memcpy(s->ids + held, ids, keep * sizeof *ids);
        memset(s->ans + held, ans, keep);
    }
    s->n += (int)n;
    return 0;
}

int rd_seq_add_answer_ids(rd_seq *s, const int *ids, int n, rd_error *err) {
    return seq_push(s, ids, (size_t)n, 1, err);
}

static int push_special(rd_seq *s, int id, int ans, rd_error *err) {
    return id >= 0 ? seq_push(s, &id, 1, ans, err) : 0;
}

/* The template puts exactly one space before {answer}, which the answer's dummy-prefix
 * "▁" can stand for. */
static int space_rule(const rd_tokenizer *tok, const char *ctx) {
    size_t n = strlen(ctx);
    return rd_tokenizer_adds_dummy_prefix(tok) && n >= 1 && ctx[n - 1] == ' ' &&
           (n < 2 || ctx[n - 2] != ' ');
}

/* Length of the common prefix of a[0..na) and b[0..nb). */
static size_t common_prefix(const int *a, size_t na, const int *b, size_t nb) {
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

/* enc(P) and enc(P + A) as one text, and where the answer starts in the latter. */
static int encode_joined(const rd_tokenizer *tok, const char *P, const char *A, int **full,
                         size_t *n_full, size_t *k, rd_error *err) {
    size_t pl = strlen(P), al = strlen(A);
    int *pids = NULL;
    size_t np = 0;
    *full = NULL;
    int rc = rd_tokenizer_encode(tok, P, pl, 0, 0, &pids, &np, err);
    if (rc == 0) rc = rd_tokenizer_encode2(tok, P, pl, A, al, 0, 0, full, n_full, err);
    if (rc == 0) *k = common_prefix(pids, np, *full, *n_full);
    free(pids);
    return rc;
}

int rd_seq_add_turn(rd_seq *s, const rd_tokenizer *tok, const rd_rendered *r,
                    size_t *prompt_len, rd_error *err) {
    size_t pl = strlen(r->P);
    int drop = space_rule(tok, r->ctx);
    if (prompt_len) *prompt_len = pl - (size_t)drop;
    if (push_special(s, rd_tokenizer_bos(tok), 0, err) < 0) return -1;
    int *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, k = 0;
    int rc;
    if (drop) {
        rc = rd_tokenizer_encode(tok, r->P, pl - 1, 0, 0, &a, &na, err);
        if (rc == 0) rc = rd_tokenizer_encode(tok, r->A, strlen(r->A), 0, 0, &b, &nb, err);
        if (rc == 0) rc = seq_push(s, a, na, 0, err);
        s->n_prompt = s->n;
        if (rc == 0) rc = seq_push(s, b, nb, 1, err);
    } else {
        rc = encode_joined(tok, r->P, r->A, &a, &na, &k, err);
        if (rc == 0) rc = seq_push(s, a, k, 0, err);
        s->n_prompt = s->n;
        if (rc == 0) rc = seq_push(s, a + k, na - k, 1, err);
    }
    free(a);
    free(b);
    if (rc == 0) rc = push_special(s, rd_tokenizer_eos(tok), 1, err);
    return rc;
}

int rd_seq_add_prompt(rd_seq *s, const rd_tokenizer *tok, const rd_rendered *r,
                      size_t *prompt_len, rd_error *err) {
    size_t pl = strlen(r->P) - (size_t)space_rule(tok, r->ctx);
    if (prompt_len) *prompt_len = pl;
    if (push_special(s, rd_tokenizer_bos(tok), 0, err) < 0) return -1;
    int *a = NULL;
    size_t na = 0;
    int rc = rd_tokenizer_encode(tok, r->P, pl, 0, 0, &a, &na, err);
    if (rc == 0) rc = seq_push(s, a, na, 0, err);
    free(a);
    s->n_prompt = s->n;
    return rc;
}

int rd_data_answer_ids(const rd_tokenizer *tok, const char *ctx, const char *A, int **ids,
                       int *n, rd_error *err) {
    rd_rendered r = {.P = (char *)ctx, .A = (char *)A, .ctx = (char *)ctx};
    rd_seq s = {0};
    /* A turn after the bare context; the answer is what follows s.n_prompt. */
    if (rd_seq_add_turn(&s, tok, &r, NULL, err) < 0) {
        rd_seq_free(&s);
        return -1;
    }
    *n = s.n - s.n_prompt;
    *ids = malloc((size_t)(*n ? *n : 1) * sizeof **ids);
    if (!*ids) {
        rd_seq_free(&s);
        return rd_error_set(err, "out of memory");
    }
    if (*n) memcpy(*ids, s.ids + s.n_prompt, (size_t)*n * sizeof **ids);
    rd_seq_free(&s);
    return 0;
}

int rd_data_add_document(rd_dataset *d, const rd_tokenizer *tok, const char *text, size_t len,
                         int add_eos, int max_len, rd_error *err) {
    int *ids = NULL;
    size_t n = 0;
    if (rd_tokenizer_encode(tok, text, len, 0, add_eos, &ids, &n, err) < 0) return -1;
    int bos = rd_tokenizer_bos(tok);
    size_t per = (size_t)max_len - (bos >= 0 ? 1 : 0); /* text tokens per chunk */
    rd_seq s = {0};
    int rc = 0;
    for (size_t at = 0; at < n && rc == 0; at += per) {
        size_t take = n - at < per ? n - at : per;
        s.n = 0;
        rc = push_special(&s, bos, 0, err);
        if (rc == 0) rc = seq_push(&s, ids + at, take, 1, err);
        s.n_prompt = bos >= 0 ? 1 : 0;
        char *chunk = NULL;
        if (rc == 0) {
            chunk = rd_tokenizer_decode(tok, s.ids, (size_t)s.n, err);
            if (!chunk) rc = -1;
        }
        if (rc == 0) rc = rd_data_add_example(d, &s, max_len, 0, -1, "", chunk, err);
        free(chunk);
    }
    free(ids);
    rd_seq_free(&s);
    return rc;
}
