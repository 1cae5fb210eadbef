/* Evaluation: mean token loss and perplexity on a data set; for classification sets,
 * accuracy, Matthews correlation and F1 by scoring every label word after the prompt (the
 * label with the highest log-likelihood is the prediction), as in the RED paper's GLUE
 * tables. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/backward.h"
#include "redit/dp.h"
#include "redit/forward.h"
#include "redit/train.h"

/* Matthews correlation for K classes (Gorodkin's R_K; the usual MCC for K = 2) from a
 * confusion matrix conf[true][pred]. */
static double matthews(const long *conf, int K, long n) {
    double t_sum = 0, correct = 0, tt = 0, pp = 0;
    for (int k = 0; k < K; k++) {
        long tk = 0, pk = 0;
        for (int j = 0; j < K; j++) {
            tk += conf[k * K + j];
            pk += conf[j * K + k];
        }
        correct += (double)conf[k * K + k];
        t_sum += (double)tk * pk;
        tt += (double)tk * tk;
        pp += (double)pk * pk;
    }
    const double num = correct * (double)n - t_sum;
    const double den = sqrt(((double)n * n - pp) * ((double)n * n - tt));
    return den > 0 ? num / den : 0.0;
}

/* F1 of class k from the confusion matrix. */
static double f1_of(const long *conf, int K, int k) {
    long tp = conf[k * K + k], fp = 0, fn = 0;
    for (int j = 0; j < K; j++) {
        if (j == k) continue;
        fp += conf[j * K + k];
        fn += conf[k * K + j];
    }
    return tp ? 2.0 * tp / (2.0 * tp + fp + fn) : 0.0;
}

void rd_classification_metrics(const long *confusion, int K, rd_eval_metrics *out) {
    long n = 0, correct = 0;
    for (int i = 0; i < K * K; i++) n += confusion[i];
    for (int k = 0; k < K; k++) correct += confusion[k * K + k];
    out->n_examples = (int)n;
    out->accuracy = n ? (double)correct / (double)n : NAN;
    out->mcc = matthews(confusion, K, n);
    if (K == 2) {
        out->f1 = f1_of(confusion, K, 1);
    } else {
        double s = 0;
        for (int k = 0; k < K; k++) s += f1_of(confusion, K, k);
        out->f1 = K ? s / K : NAN;
    }
}

/* One row to run: example i, followed by label word k when scoring labels (else k = -1);
 * len is the row's length. Rows run longest first, so a batch holds rows of similar length
 * and little of it is padding. */
typedef struct candidate {
    size_t example;
    int label;
    int len;
} candidate;

static int by_length_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    if (x->example != y->example) return x->example < y->example ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label); /* a total order: qsort is not stable */
}

/* Log-likelihood of the candidate's label ids (positions n_prompt .. n_prompt + nl − 1 of
 * row tok) under logits (T, V) of that row. */
static double label_loglik(const float *logits, int V, const int *tok, int n_prompt, int nl) {
    double lp = 0.0;
    for (int t = n_prompt - 1; t < n_prompt + nl - 1; t++) {
        const float *z = logits + (size_t)t * V;
        float mx = z[0];
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += exp((double)(z[v] - mx));
        lp += (double)(z[tok[t + 1]] - mx) - log(sum);
    }
    return lp;
}

/* Scores every label word after every example's prompt, rows of candidates at a time through
 * one batched forward pass; the label with the highest log-likelihood is the prediction. */
/* Whether a stop request asks to cut an evaluation short. */
static int eval_cut(const atomic_int *stop) {
    return stop && atomic_load(stop) >= RD_STOP_SKIP_EVAL;
}

int rd_classify(const rd_model *m, const rd_edits_view *view, const rd_dataset *d, int batch,
                int max_len, const atomic_int *stop, rd_eval_metrics *out, rd_error *err) {
    return rd_classify_dp(m, view, d, batch, max_len, stop, NULL, out, err);
}

int rd_classify_dp(const rd_model *m, const rd_edits_view *view, const rd_dataset *d, int batch,
                   int max_len, const atomic_int *stop, rd_dp *dp, rd_eval_metrics *out,
                   rd_error *err) {
    const int me = rd_dp_rank(dp), N = rd_dp_size(dp);
    if (N > 1) stop = NULL; /* every rank must run its passes */
    const int K = rd_dataset_n_labels(d), V = m->file.cfg.vocab_size;
    const size_t n = rd_dataset_size(d);
    if (K < 1) return rd_error_set(err, "the data set has no labels to classify");
    if (max_len > m->file.cfg.seq_len) max_len = m->file.cfg.seq_len;
    /* rows per pass: the batch, at most 32 M floats of logits */
    int B = batch;
    while (B > 1 && (size_t)B * (size_t)max_len * (size_t)V > ((size_t)32 << 20)) B /= 2;
    long *conf = calloc((size_t)K * K, sizeof *conf);
    candidate *cand = malloc(sizeof *cand * (n * (size_t)K + 1));
    double *best_lp = malloc(sizeof *best_lp * (n + 1));
    int *best = malloc(sizeof *best * (n + 1));
    int *tok = malloc(sizeof *tok * (size_t)B * (size_t)max_len);
    int *scored = malloc(sizeof *scored * ((size_t)max_len + 1)); /* prompt + label ids */
    float *logits = malloc(sizeof *logits * (size_t)B * (size_t)max_len * (size_t)V);
    double *cand_lp = calloc(n * (size_t)K + 1, sizeof *cand_lp), *other = NULL;
    rd_ctx *ctx = rd_ctx_new(m, B, max_len, err);
    int rc = 0;
    if (N > 1 && me == 0) other = malloc(sizeof *other * (n * (size_t)K + 1));
    if (!conf || !cand || !best_lp || !best || !tok || !scored || !logits || !ctx || !cand_lp ||
        (N > 1 && me == 0 && !other)) {
        rc = ctx ? rd_error_set(err, "out of memory for label scoring") : -1;
        goto done;
    }
    size_t nc = 0;
    for (size_t i = 0; i < n; i++) {
        const rd_example *ex = rd_dataset_get(d, i);
        best[i] = -1;
        best_lp[i] = -INFINITY;
        if (ex->label < 0 || ex->n_prompt < 1) continue;
        for (int k = 0; k < K; k++) {
            int nl;
            rd_dataset_label_ids(d, k, &nl);
            if (ex->n_prompt + nl <= max_len) /* it fits */
                cand[nc++] = (candidate){i, k, ex->n_prompt + nl - 1};
        }
    }
    qsort(cand, nc, sizeof *cand, by_length_desc);
    /* pass p (candidates p·B …) runs on rank p mod N; rank 0 gathers the scores and picks
     * each example's best label in the candidates' order, as one process does */
    for (size_t c0 = 0; c0 < nc && rc == 0; c0 += (size_t)B) {
        if ((int)(c0 / (size_t)B % (size_t)N) != me) continue;
        if (eval_cut(stop)) {
            rc = 1;
            break;
        }
        const int rows = nc - c0 < (size_t)B ? (int)(nc - c0) : B;
        int T = 1; /* inputs: all but the last id of the longest candidate */
        for (int r = 0; r < rows; r++) T = cand[c0 + r].len > T ? cand[c0 + r].len : T;
        for (int r = 0; r < rows; r++) { /* padded on the right: causal, so it changes nothing */
            const candidate *c = &cand[c0 + r];
            const rd_example *ex = rd_dataset_get(d, c->example);
            int nl;
            const int *lab = rd_dataset_label_ids(d, c->label, &nl);
            int *row = tok + (size_t)r * T;
            for (int t = 0; t < T; t++) row[t] = 0;
            for (int t = 0; t < ex->n_prompt && t < T; t++) row[t] = ex->ids[t];
            for (int t = 0; t < nl && ex->n_prompt + t < T; t++) row[ex->n_prompt + t] = lab[t];
        }
        rd_ctx_reset(ctx);
        if (rd_forward(ctx, view, tok, rows, T, RD_LOGITS_ALL, logits, err)) {
            rc = -1;
            break;
        }
        for (int r = 0; r < rows; r++) {
            const candidate *c = &cand[c0 + r];
            const rd_example *ex = rd_dataset_get(d, c->example);
            int nl;
            const int *lab = rd_dataset_label_ids(d, c->label, &nl);
            /* the row as scored: prompt then every label id (the last one is only a target) */
            for (int t = 0; t < ex->n_prompt; t++) scored[t] = ex->ids[t];
            for (int t = 0; t < nl; t++) scored[ex->n_prompt + t] = lab[t];
            cand_lp[c0 + r] = label_loglik(logits + (size_t)r * T * V, V, scored, ex->n_prompt, nl);
        }
    }
    if (N > 1 && rc == 0) {
        const size_t bytes = sizeof(double) * nc;
        if (me > 0) {
            if (rd_dp_to_root(dp, 0, cand_lp, bytes, err)) rc = -1;
        } else if (other) { /* always, on rank 0 of several (allocated above) */
            for (int r = 1; r < N && rc == 0; r++) {
                if (rd_dp_to_root(dp, r, other, bytes, err)) {
                    rc = -1;
                    break;
                }
                for (size_t c0 = (size_t)r * (size_t)B; c0 < nc; c0 += (size_t)B * (size_t)N)
                    for (size_t c = c0; c < c0 + (size_t)B && c < nc; c++) cand_lp[c] = other[c];
            }
        }
    }
    for (size_t c = 0; rc == 0 && me == 0 && c < nc; c++) {
        if (cand_lp[c] > best_lp[cand[c].example]) {
            best_lp[cand[c].example] = cand_lp[c];
            best[cand[c].example] = cand[c].label;
        }
    }
    if (rc == 0 && me == 0) {
        for (size_t i = 0; i < n; i++) {
            const rd_example *ex = rd_dataset_get(d, i);
            if (ex->label >= 0 && best[i] >= 0) conf[ex->label * K + best[i]]++;
        }
        rd_classification_metrics(conf, K, out);
    }
    if (N > 1 && rc == 0) { /* every rank reports rank 0's figures */
        rd_eval_metrics mine = *out;
        if (rd_dp_bcast(dp, &mine, sizeof mine, err)) rc = -1;
        else *out = mine;
    }
done:
    free(cand_lp);
    free(other);
    rd_ctx_free(ctx);
    free(conf);
    free(cand);
    free(best_lp);
    free(best);
    free(tok);
    free(scored);
    free(logits);
    return rc;
}

/* Rank 0 collects every rank's pass sums (pass p from rank p mod N) and adds them in the
 * passes' order; every rank receives the totals. */
static int gather_passes(rd_dp *dp, double *pass_loss, uint64_t *pass_tok, size_t n_passes,
                         double *sum, uint64_t *count, rd_error *err) {
    const int me = rd_dp_rank(dp), N = rd_dp_size(dp);
    if (me > 0) {
        if (rd_dp_to_root(dp, 0, pass_loss, sizeof(double) * n_passes, err) ||
            rd_dp_to_root(dp, 0, pass_tok, sizeof(uint64_t) * n_passes, err))
            return -1;
    } else {
        double *l = malloc(sizeof(double) * (n_passes + 1));
        uint64_t *t = malloc(sizeof(uint64_t) * (n_passes + 1));
        int rc = l && t ? 0 : rd_error_set(err, "out of memory");
        for (int r = 1; r < N && rc == 0; r++) {
            if (rd_dp_to_root(dp, r, l, sizeof(double) * n_passes, err) ||
                rd_dp_to_root(dp, r, t, sizeof(uint64_t) * n_passes, err)) {
                rc = -1;
                break;
            }
            for (size_t p = (size_t)r; p < n_passes; p += (size_t)N) {
                pass_loss[p] = l[p];
                pass_tok[p] = t[p];
            }
        }
        free(l);
        free(t);
        if (rc) return -1;
        for (size_t p = 0; p < n_passes; p++) {
            *sum += pass_loss[p];
            *count += pass_tok[p];
        }
    }
    struct { double sum; uint64_t count; } tot = {*sum, *count};
    if (rd_dp_bcast(dp, &tot, sizeof tot, err)) return -1;
    *sum = tot.sum;
    *count = tot.count;
    return 0;
}

int rd_eval_loss(rd_train_ctx *tc, const rd_edits_view *view, const rd_dataset *d, int batch,
                 int max_len, int pad_id, rd_batch *b, const atomic_int *stop, double *loss_sum,
                 uint64_t *tokens, rd_error *err) {
    return rd_eval_loss_dp(tc, view, d, batch, max_len, pad_id, b, stop, NULL, loss_sum, tokens,
                           err);
}

int rd_eval_loss_dp(rd_train_ctx *tc, const rd_edits_view *view, const rd_dataset *d, int batch,
                    int max_len, int pad_id, rd_batch *b, const atomic_int *stop, rd_dp *dp,
                    double *loss_sum, uint64_t *tokens, rd_error *err) {
    const size_t n = rd_dataset_size(d);
    const int me = rd_dp_rank(dp), N = rd_dp_size(dp);
    if (N > 1) stop = NULL; /* every rank must run its passes */
    /* pass p runs on rank p mod N; rank 0 adds the passes' sums in their order */
    const size_t n_passes = (n + (size_t)batch - 1) / (size_t)batch;
    double *pass_loss = N > 1 ? calloc(n_passes + 1, sizeof(double)) : NULL;
    uint64_t *pass_tok = N > 1 ? calloc(n_passes + 1, sizeof(uint64_t)) : NULL;
    size_t *idx = malloc(sizeof(size_t) * (size_t)batch);
    candidate *rows = malloc(sizeof *rows * (n + 1)); /* examples, longest first */
    int rc = idx && rows && (N == 1 || (pass_loss && pass_tok)) ? 0 : rd_error_set(err, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rows[i] = (candidate){i, -1, rd_dataset_get(d, i)->n};
    if (rc == 0) qsort(rows, n, sizeof *rows, by_length_desc);
    double sum = 0.0;
    uint64_t count = 0;
    rd_train_ctx_set_dropout(tc, 0.0f, 0);
    rd_train_ctx_set_lora_dropout(tc, 0.0f, 0);
    for (size_t i0 = 0; i0 < n && rc == 0; i0 += (size_t)batch) {
        const size_t pass = i0 / (size_t)batch;
        if ((int)(pass % (size_t)N) != me) continue;
        if (eval_cut(stop)) {
            rc = 1;
            break;
        }
        size_t k = 0;
        for (size_t i = i0; i < n && k < (size_t)batch; i++) idx[k++] = rows[i].example;
        double ls;
        int nt;
        rc = rd_batch_fill(b, d, idx, k, max_len, 0, pad_id, err) ||
                     rd_train_pass(tc, view, NULL, NULL, b->tokens, b->targets, b->B, b->T, &ls,
                                   &nt, err)
                 ? -1
                 : 0;
        if (rc == 0 && N > 1) {
            pass_loss[pass] = ls;
            pass_tok[pass] = (uint64_t)nt;
        } else if (rc == 0) {
            sum += ls;
            count += (uint64_t)nt;
        }
    }
    if (N > 1 && rc == 0) rc = gather_passes(dp, pass_loss, pass_tok, n_passes, &sum, &count, err);
    free(pass_loss);
    free(pass_tok);
    free(idx);
    free(rows);
    *loss_sum = sum;
    *tokens = count;
    return rc == 1 ? 1 : rc ? -1 : 0;
}

int rd_eval_example_losses(const rd_model *m, const rd_edits_view *view, const rd_dataset *d,
                           int batch, int max_len, double *sums, int *counts, rd_error *err) {
    return rd_eval_example_losses_dp(m, view, d, batch, max_len, NULL, sums, counts, err);
}

/* Rank 0 collects every rank's per-example losses (the examples of pass p from rank p mod N,
 * B examples a pass) and sends the whole arrays to every rank. */
static int gather_examples(rd_dp *dp, double *sums, int *counts, size_t n, size_t B,
                           rd_error *err) {
    const int me = rd_dp_rank(dp), N = rd_dp_size(dp);
    if (me > 0) {
        if (rd_dp_to_root(dp, 0, sums, sizeof *sums * n, err) ||
            rd_dp_to_root(dp, 0, counts, sizeof *counts * n, err))
            return -1;
    } else {
        double *s = malloc(sizeof *s * (n + 1));
        int *c = malloc(sizeof *c * (n + 1));
        int rc = s && c ? 0 : rd_error_set(err, "out of memory");
        for (int r = 1; r < N && rc == 0; r++) {
            if (rd_dp_to_root(dp, r, s, sizeof *s * n, err) ||
                rd_dp_to_root(dp, r, c, sizeof *c * n, err)) {
                rc = -1;
                break;
            }
            for (size_t i0 = (size_t)r * B; i0 < n; i0 += B * (size_t)N)
                for (size_t i = i0; i < i0 + B && i < n; i++) sums[i] = s[i], counts[i] = c[i];
        }
        free(s);
        free(c);
        if (rc) return -1;
    }
    return rd_dp_bcast(dp, sums, sizeof *sums * n, err) ||
                   rd_dp_bcast(dp, counts, sizeof *counts * n, err)
               ? -1
               : 0;
}

int rd_eval_example_losses_dp(const rd_model *m, const rd_edits_view *view, const rd_dataset *d,
                              int batch, int max_len, rd_dp *dp, double *sums, int *counts,
                              rd_error *err) {
    const int me = rd_dp_rank(dp), N = rd_dp_size(dp);
    const int V = m->file.cfg.vocab_size;
    const size_t n = rd_dataset_size(d);
    if (max_len > m->file.cfg.seq_len) max_len = m->file.cfg.seq_len;
    int B = batch < 1 ? 1 : batch; /* rows per pass: at most 32 M floats of logits */
    while (B > 1 && (size_t)B * (size_t)max_len * (size_t)V > ((size_t)32 << 20)) B /= 2;
    int *tok = malloc(sizeof *tok * (size_t)B * (size_t)max_len);
    float *logits = malloc(sizeof *logits * (size_t)B * (size_t)max_len * (size_t)V);
    rd_ctx *ctx = rd_ctx_new(m, B, max_len, err);
    int rc = 0;
    if (!tok || !logits || !ctx) rc = ctx ? rd_error_set(err, "out of memory for per-example losses") : -1;
    if (N > 1) { /* the other ranks' entries come from them */
        memset(sums, 0, sizeof *sums * n);
        memset(counts, 0, sizeof *counts * n);
    }
    /* pass p (examples p·B …) runs on rank p mod N */
    for (size_t i0 = 0; i0 < n && rc == 0; i0 += (size_t)B) {
        if ((int)(i0 / (size_t)B % (size_t)N) != me) continue;
        const int rows = n - i0 < (size_t)B ? (int)(n - i0) : B;
        int T = 1; /* inputs: all but the last id of the longest example */
        for (int r = 0; r < rows; r++) {
            const rd_example *ex = rd_dataset_get(d, i0 + (size_t)r);
            const int len = (ex->n < max_len ? ex->n : max_len) - 1;
            T = len > T ? len : T;
        }
        for (int r = 0; r < rows; r++) { /* right-padded: causal, so it changes nothing */
            const rd_example *ex = rd_dataset_get(d, i0 + (size_t)r);
            for (int t = 0; t < T; t++) tok[(size_t)r * T + t] = t < ex->n ? ex->ids[t] : 0;
        }
        rd_ctx_reset(ctx);
        if (rd_forward(ctx, view, tok, rows, T, RD_LOGITS_ALL, logits, err)) {
            rc = -1;
            break;
        }
        for (int r = 0; r < rows; r++) {
            const rd_example *ex = rd_dataset_get(d, i0 + (size_t)r);
            const int len = ex->n < max_len ? ex->n : max_len;
            double sum = 0.0;
            int count = 0;
            for (int t = 1; t < len; t++) {
                if (!ex->loss[t]) continue;
                sum -= label_loglik(logits + ((size_t)r * T + (size_t)(t - 1)) * V, V,
                                    ex->ids + t - 1, 1, 1);
                count++;
            }
            sums[i0 + (size_t)r] = sum;
            counts[i0 + (size_t)r] = count;
        }
    }
    rd_ctx_free(ctx);
    free(tok);
    free(logits);
    if (N > 1 && rc == 0) rc = gather_examples(dp, sums, counts, n, (size_t)B, err);
    return rc;
}

double rd_paired_loss_stderr(const double *a, const double *b, const int *counts, size_t n,
                             double *diff) {
    double x = 0.0, t = 0.0;
    for (size_t i = 0; i < n; i++) x += b[i] - a[i], t += counts[i];
    const double D = t > 0 ? x / t : NAN;
    if (diff) *diff = D;
    if (n < 2 || !(t > 0)) return NAN;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double r = (b[i] - a[i]) - D * counts[i];
        ss += r * r;
    }
    return sqrt(ss * (double)n / (double)(n - 1)) / t;
}

const char *rd_eval_best_text(double loss, double accuracy, char *buf, size_t cap) {
    if (isfinite(loss) && isfinite(accuracy))
        snprintf(buf, cap, "%.4f (acc %.1f%%)", loss, 100 * accuracy);
    else if (isfinite(loss))
        snprintf(buf, cap, "%.4f", loss);
    else
        snprintf(buf, cap, "-");
    return buf;
}

double rd_eval_bits_per_byte(const rd_eval_metrics *r) {
    return r->bytes ? r->loss * (double)r->tokens / (double)r->bytes / M_LN2 : NAN;
}

int rd_evaluate(const rd_model *m, const rd_edits *e, float strength, const rd_dataset *d,
                int batch, int max_len, rd_eval_metrics *out, rd_error *err) {
    return rd_evaluate_dp(m, e, strength, d, batch, max_len, NULL, out, err);
}

int rd_evaluate_dp(const rd_model *m, const rd_edits *e, float strength, const rd_dataset *d,
                   int batch, int max_len, rd_dp *dp, rd_eval_metrics *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    out->accuracy = out->mcc = out->f1 = NAN;
    if (batch < 1) return rd_error_set(err, "evaluation batch %d must be at least 1", batch);
    if (max_len > m->file.cfg.seq_len) max_len = m->file.cfg.seq_len;
    rd_train_ctx *tc = rd_train_ctx_new(m, batch, max_len, 0, err);
    if (!tc) return -1;
    rd_edits_view view = e ? rd_edits_view_at(e, strength) : (rd_edits_view){0};
    const rd_edits_view *v = e ? &view : NULL;
    const rd_tokenizer *tok = rd_model_tokenizer(m);
    const int pad = tok && rd_tokenizer_eos(tok) >= 0 ? rd_tokenizer_eos(tok) : 0;
    rd_batch b = {0};
    double sum;
    int rc = rd_eval_loss_dp(tc, v, d, batch, max_len, pad, &b, NULL, dp, &sum, &out->tokens, err);
    if (rc == 0) {
        out->loss = out->tokens ? sum / (double)out->tokens : NAN;
        out->perplexity = exp(out->loss);
        out->bytes = rd_dataset_loss_bytes(d, tok, max_len);
        if (rd_dataset_n_labels(d) > 0)
            rc = rd_classify_dp(m, v, d, batch, max_len, NULL, dp, out, err);
    }
    rd_batch_release(&b);
    rd_train_ctx_free(tc);
    return rc ? -1 : 0;
}
