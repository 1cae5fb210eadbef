/* Multiple-choice scoring with lm-evaluation-harness's rules (see redit/mc_eval.h): each
 * item's context is prefilled once (one row), its KV cache copied to every choice's slot
 * (rd_ctx_copy_slot), then the continuations run as one batch with their logits. */
#include "redit/mc_eval.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "redit/atomic_file.h"
#include "redit/dp.h"
#include "redit/forward.h"
#include "redit/tokenizer.h"
#include "redit/train.h"

void rd_mc_scores_release(rd_mc_scores *r) {
    free(r->pred);
    free(r->pred_norm);
    free(r->loglik);
    free(r->tokens);
    free(r->offset);
    memset(r, 0, sizeof *r);
}

double rd_mc_stderr(size_t correct, size_t n) {
    if (n < 2) return NAN;
    const double p = (double)correct / (double)n;
    return sqrt(p * (1.0 - p) / (double)(n - 1));
}

double rd_mcnemar_exact(long b, long c) {
    const long n = b + c, k = b < c ? b : c;
    if (n <= 0) return 1.0;
    double tail = 0.0; /* P(X ≤ k), X ~ Binomial(n, 1/2), terms in log space */
    for (long i = 0; i <= k; i++)
        tail += exp(lgamma((double)n + 1) - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) -
                    (double)n * M_LN2);
    const double p = 2.0 * tail;
    return p < 1.0 ? p : 1.0;
}

double rd_mc_mcnemar(const rd_mc_set *s, const int *base, const int *edited, long *b, long *c) {
    *b = *c = 0;
    for (size_t i = 0; i < rd_mc_size(s); i++) {
        const int g = rd_mc_get(s, i)->gold, x = base[i] == g, y = edited[i] == g;
        *b += x && !y;
        *c += !x && y;
    }
    return rd_mcnemar_exact(*b, *c);
}

/* log-softmax(z)[id] of one row of V logits. */
static double log_prob(const float *z, int V, int id) {
    float mx = z[0];
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp((double)(z[v] - mx));
    return (double)(z[id] - mx) - log(sum);
}

/* One item's token rows: ctx (nctx ids, BOS first) and each choice's continuation. */
typedef struct item_tokens {
    int *ctx;
    size_t nctx;
    int *cont[RD_MC_MAX_CHOICES];
    size_t ncont[RD_MC_MAX_CHOICES];
} item_tokens;

static void item_tokens_free(item_tokens *t, int nc) {
    free(t->ctx);
    for (int k = 0; k < nc; k++) free(t->cont[k]);
    memset(t, 0, sizeof *t);
}

/* Tokenizes item it as the harness's _encode_pair (BOS in front of both encodings). */
static int encode_item(const rd_tokenizer *tok, const rd_mc_set *s, const rd_mc_item *it,
                       item_tokens *t, rd_error *err) {
    size_t ce = strlen(it->context); /* the context without its trailing whitespace */
    while (ce && isspace((unsigned char)it->context[ce - 1])) ce--;
    if (rd_tokenizer_encode(tok, it->context, ce, 1, 0, &t->ctx, &t->nctx, err))
        return rd_error_prefix(err, "%s line %ld", rd_mc_path(s), it->line);
    if (t->nctx == 0)
        return rd_error_set(err, "%s line %ld: the context is empty and the tokenizer has no "
                                 "BOS to score the first token after", rd_mc_path(s), it->line);
    for (int k = 0; k < it->n_choices; k++) {
        int *whole;
        size_t nw;
        if (rd_tokenizer_encode2(tok, it->context, strlen(it->context), it->choices[k],
                                 strlen(it->choices[k]), 1, 0, &whole, &nw, err))
            return rd_error_prefix(err, "%s line %ld", rd_mc_path(s), it->line);
        if (nw <= t->nctx) {
            free(whole);
            return rd_error_set(err, "%s line %ld: choice %d has no tokens after the context",
                                rd_mc_path(s), it->line, k);
        }
        t->ncont[k] = nw - t->nctx;
        memmove(whole, whole + t->nctx, sizeof *whole * t->ncont[k]);
        t->cont[k] = whole;
    }
    return 0;
}

/* out's n and accuracies from its predictions (out->pred, out->pred_norm) of s's n items. */
static void set_accuracy(rd_mc_scores *out, const rd_mc_set *s, size_t n) {
    size_t correct = 0, correct_norm = 0;
    for (size_t i = 0; i < n; i++) {
        correct += out->pred[i] == rd_mc_get(s, i)->gold;
        correct_norm += out->pred_norm[i] == rd_mc_get(s, i)->gold;
    }
    out->n = n;
    out->acc = n ? (double)correct / (double)n : NAN;
    out->acc_norm = n ? (double)correct_norm / (double)n : NAN;
    out->acc_stderr = rd_mc_stderr(correct, n);
    out->acc_norm_stderr = rd_mc_stderr(correct_norm, n);
}

int rd_mc_score(const rd_model *m, const rd_edits_view *view, const rd_mc_set *s, int max_len,
                const atomic_int *stop, rd_mc_scores *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    const rd_tokenizer *tok = rd_model_tokenizer(m);
    if (!tok) return rd_error_set(err, "multiple-choice scoring needs the model's tokenizer");
    const int V = m->file.cfg.vocab_size;
    if (max_len > m->file.cfg.seq_len || max_len < 2) max_len = m->file.cfg.seq_len;
    const size_t n = rd_mc_size(s);
    const int B = rd_mc_max_choices(s);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += (size_t)rd_mc_get(s, i)->n_choices;
    out->pred = malloc(sizeof *out->pred * n);
    out->pred_norm = malloc(sizeof *out->pred_norm * n);
    out->loglik = malloc(sizeof *out->loglik * total);
    out->tokens = malloc(sizeof *out->tokens * total);
    out->offset = malloc(sizeof *out->offset * (n + 1));
    int *rows = malloc(sizeof *rows * (size_t)B * (size_t)max_len);
    float *logits = malloc(sizeof *logits * (size_t)B * (size_t)max_len * (size_t)V);
    rd_ctx *ctx = rd_ctx_new(m, B, max_len, err);
    int rc = 0;
    if (!out->pred || !out->pred_norm || !out->loglik || !out->tokens || !out->offset || !rows ||
        !logits || !ctx)
        rc = ctx ? rd_error_set(err, "out of memory for multiple-choice scoring") : -1;
    size_t off = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (stop && atomic_load(stop) >= RD_STOP_SKIP_EVAL) {
            rc = 1;
            break;
        }
        const rd_mc_item *it = rd_mc_get(s, i);
        const int nc = it->n_choices;
        item_tokens t = {0};
        if (encode_item(tok, s, it, &t, err)) {
            item_tokens_free(&t, nc);
            rc = -1;
            break;
        }
        /* rows: ctx[0 .. nctx−1) prefilled, then ctx[nctx−1] + cont[0 .. ncont−1) per choice
         * (right-padded: causal, so the padding changes nothing before it) */
        size_t longest = 0;
        for (int k = 0; k < nc; k++) longest = t.ncont[k] > longest ? t.ncont[k] : longest;
        if (longest + 1 > (size_t)max_len) {
            rc = rd_error_set(err, "%s line %ld: a choice of %zu tokens does not fit --max-len %d",
                              rd_mc_path(s), it->line, longest, max_len);
            item_tokens_free(&t, nc);
            break;
        }
        /* the context's oldest tokens after the BOS go when context + choice is too long */
        size_t drop = t.nctx + longest - 1 > (size_t)max_len ? t.nctx + longest - 1 - max_len : 0;
        if (drop) {
            memmove(t.ctx + 1, t.ctx + 1 + drop, sizeof *t.ctx * (t.nctx - 1 - drop));
            t.nctx -= drop;
            out->truncated++;
        }
        const int T1 = (int)t.nctx - 1, T2 = (int)longest;
        /* the context once, as slot 0, then its cache copied to the other choices' slots */
        rd_ctx_reset(ctx);
        if (T1 > 0) {
            rc = rd_forward(ctx, view, t.ctx, 1, T1, RD_LOGITS_NONE, NULL, err);
            for (int k = 1; k < nc && rc == 0; k++) rc = rd_ctx_copy_slot(ctx, 0, k, T1, err);
        }
        if (rc == 0) {
            for (int k = 0; k < nc; k++) {
                int *r = rows + (size_t)k * T2;
                r[0] = t.ctx[t.nctx - 1];
                for (int j = 1; j < T2; j++)
                    r[j] = (size_t)j <= t.ncont[k] - 1 ? t.cont[k][j - 1] : 0;
            }
            rc = rd_forward(ctx, view, rows, nc, T2, RD_LOGITS_ALL, logits, err);
        }
        if (rc == 0) {
            int best = 0, best_norm = 0;
            double bl = -INFINITY, bn = -INFINITY;
            out->offset[i] = off;
            for (int k = 0; k < nc; k++) {
                double ll = 0.0;
                for (size_t j = 0; j < t.ncont[k]; j++)
                    ll += log_prob(logits + ((size_t)k * T2 + j) * V, V, t.cont[k][j]);
                const double norm = ll / (double)(it->norm_len[k] ? it->norm_len[k] : 1);
                if (ll > bl) bl = ll, best = k;
                if (norm > bn) bn = norm, best_norm = k;
                out->loglik[off + (size_t)k] = ll;
                out->tokens[off + (size_t)k] = (int)t.ncont[k];
            }
            off += (size_t)nc;
            out->pred[i] = best;
            out->pred_norm[i] = best_norm;
        }
        item_tokens_free(&t, nc);
    }
    rd_ctx_free(ctx);
    free(rows);
    free(logits);
    if (rc) {
        rd_mc_scores_release(out);
        return rc;
    }
    out->offset[n] = off;
    set_accuracy(out, s, n);
    return 0;
}

/* The first item of rank r's share when n items go to N ranks: [lo(r), lo(r + 1)). */
static size_t share_lo(size_t n, int r, int N) { return n * (size_t)r / (size_t)N; }

int rd_mc_score_dp(const rd_model *m, const rd_edits_view *view, const rd_mc_set *s, int max_len,
                   const atomic_int *stop, rd_dp *dp, rd_mc_scores *out, rd_error *err) {
    const int me = rd_dp_rank(dp), N = rd_dp_size(dp);
    if (N == 1) return rd_mc_score(m, view, s, max_len, stop, out, err);
    memset(out, 0, sizeof *out);
    const size_t n = rd_mc_size(s), lo = share_lo(n, me, N), hi = share_lo(n, me + 1, N);
    rd_mc_scores mine = {0};
    /* rank 0's whole-set arrays (n items; offset[n] choices), out's once complete */
    int *pred = NULL, *pred_norm = NULL, *tokens = NULL;
    double *loglik = NULL;
    int rc = 0;
    if (hi > lo) { /* the items [lo, hi) as a set of their own: rd_mc_score unchanged */
        rd_mc_set *part = rd_mc_slice(s, lo, hi, err);
        rc = part ? rd_mc_score(m, view, part, max_len, NULL, &mine, err) : -1;
        rd_mc_free(part);
    }
    /* every item's place in the whole set's arrays, as one process lays them out */
    size_t *offset = calloc(n + 1, sizeof *offset);
    if (!offset && rc == 0) rc = rd_error_set(err, "out of memory for multiple-choice scoring");
    if (offset) {
        offset[0] = 0;
        for (size_t i = 0; i < n; i++) offset[i + 1] = offset[i] + (size_t)rd_mc_get(s, i)->n_choices;
    }
    /* 1: every rank's outcome to rank 0, which takes the first failure in rank order (the
     * earliest failing item's error, as one process reports) and tells every rank */
    struct { int64_t rc, truncated; char msg[RD_ERROR_MAX]; } head = {rc, (int64_t)mine.truncated, ""};
    if (rc) snprintf(head.msg, sizeof head.msg, "%s", err->msg);
    int64_t truncated = head.truncated, status = rc ? -1 : 0;
    if (me > 0) {
        if (rd_dp_to_root(dp, 0, &head, sizeof head, err)) goto fail;
    } else {
        for (int r = 1; r < N; r++) {
            if (rd_dp_to_root(dp, r, &head, sizeof head, err)) goto fail;
            truncated += head.truncated;
            if (head.rc && status == 0) {
                status = -1;
                snprintf(err->msg, sizeof err->msg, "%s", head.msg);
            }
        }
        if (status == 0) {
            pred = calloc(n + 1, sizeof *pred);
            pred_norm = calloc(n + 1, sizeof *pred_norm);
            loglik = calloc(offset[n] + 1, sizeof *loglik);
            tokens = calloc(offset[n] + 1, sizeof *tokens);
            if (!pred || !pred_norm || !loglik || !tokens)
                status = rd_error_set(err, "out of memory for multiple-choice scoring");
        }
    }
    if (rd_dp_bcast(dp, &status, sizeof status, err)) goto fail;
    if (status) {
        if (me > 0 && rc == 0) rd_error_set(err, "the multiple-choice scoring failed on another rank");
        goto fail;
    }
    /* not taken: a rank that lacks these reported a failure, so status is -1 everywhere (the
     * analysers cannot follow that through the exchange) */
    if (!offset || (me == 0 && (!pred || !pred_norm || !loglik || !tokens)) ||
        (hi > lo && (!mine.pred || !mine.pred_norm || !mine.loglik || !mine.tokens)))
        goto fail;
    /* 2: the shares' scores to rank 0, into their places */
    for (int r = me > 0 ? me : 1; r < (me > 0 ? me + 1 : N); r++) {
        const size_t a = share_lo(n, r, N), b = share_lo(n, r + 1, N);
        const size_t k = b - a, c = offset[b] - offset[a];
        const int from = me > 0 ? 0 : r;
        if (k && (rd_dp_to_root(dp, from, me ? mine.pred : pred + a, sizeof(int) * k, err) ||
                  rd_dp_to_root(dp, from, me ? mine.pred_norm : pred_norm + a,
                                sizeof(int) * k, err) ||
                  rd_dp_to_root(dp, from, me ? mine.loglik : loglik + offset[a],
                                sizeof(double) * c, err) ||
                  rd_dp_to_root(dp, from, me ? mine.tokens : tokens + offset[a],
                                sizeof(int) * c, err)))
            goto fail;
    }
    if (me != 0) { /* rank 0 holds the scores (the arrays below are rank 0's: NULL here) */
        rd_mc_scores_release(&mine);
        free(pred);
        free(pred_norm);
        free(loglik);
        free(tokens);
        free(offset);
        return 0;
    }
    if (hi > lo) {
        memcpy(pred, mine.pred, sizeof(int) * (hi - lo));
        memcpy(pred_norm, mine.pred_norm, sizeof(int) * (hi - lo));
        memcpy(loglik, mine.loglik, sizeof(double) * offset[hi]);
        memcpy(tokens, mine.tokens, sizeof(int) * offset[hi]);
    }
    rd_mc_scores_release(&mine);
    out->pred = pred;
    out->pred_norm = pred_norm;
    out->loglik = loglik;
    out->tokens = tokens;
    out->offset = offset;
    out->truncated = (size_t)truncated;
    set_accuracy(out, s, n);
    return 0;
fail:
    rd_mc_scores_release(&mine);
    rd_mc_scores_release(out);
    free(pred);
    free(pred_norm);
    free(loglik);
    free(tokens);
    free(offset);
    return -1;
}

/* One scoring of item i as JSON fields of o. */
static void add_scoring(cJSON *o, const rd_mc_item *it, const rd_mc_scores *r, size_t i) {
    cJSON *ll = cJSON_AddArrayToObject(o, "loglik"), *tk = cJSON_AddArrayToObject(o, "tokens");
    for (size_t k = r->offset[i]; k < r->offset[i + 1]; k++) {
        cJSON_AddItemToArray(ll, cJSON_CreateNumber(r->loglik[k]));
        cJSON_AddItemToArray(tk, cJSON_CreateNumber(r->tokens[k]));
    }
    cJSON_AddNumberToObject(o, "pred", r->pred[i]);
    cJSON_AddNumberToObject(o, "pred_norm", r->pred_norm[i]);
    cJSON_AddNumberToObject(o, "acc", r->pred[i] == it->gold);
    cJSON_AddNumberToObject(o, "acc_norm", r->pred_norm[i] == it->gold);
}

int rd_mc_write_per_item(const char *path, const rd_mc_set *s, const rd_mc_scores *base,
                         const rd_mc_scores *edited, rd_error *err) {
    const size_t n = rd_mc_size(s);
    if (base->n != n || (edited && edited->n != n))
        return rd_error_set(err, "%s: the scores are not of %s", path, rd_mc_path(s));
    rd_atomic_file f;
    if (rd_atomic_file_open(&f, path, err)) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const rd_mc_item *it = rd_mc_get(s, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "item", (double)i);
        cJSON_AddNumberToObject(o, "line", (double)it->line);
        cJSON_AddNumberToObject(o, "gold", it->gold);
        cJSON_AddNumberToObject(o, "n_choices", it->n_choices);
        if (edited) {
            add_scoring(cJSON_AddObjectToObject(o, "base"), it, base, i);
            add_scoring(cJSON_AddObjectToObject(o, "edited"), it, edited, i);
        } else {
            add_scoring(o, it, base, i);
        }
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!text || rd_atomic_file_write(&f, text, strlen(text)) ||
            rd_atomic_file_write(&f, "\n", 1))
            rc = rd_error_set(err, "%s: %s", path, text ? "write failed" : "out of memory");
        free(text);
    }
    if (rc) {
        rd_atomic_file_abort(&f);
        return -1;
    }
    return rd_atomic_file_commit(&f, err);
}
