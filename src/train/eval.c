/* Evaluation: mean token loss and perplexity on a data set; for classification sets,
 * accuracy, Matthews correlation and F1 by scoring every label word after the prompt (the
 * label with the highest log-likelihood is the prediction), as in the RED paper's GLUE
 * tables. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "redit/backward.h"
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

static int classify(rd_train_ctx *tc, const rd_edits_view *view, const rd_dataset *d,
                    int max_len, rd_eval_metrics *out, rd_error *err) {
    const int K = rd_dataset_n_labels(d);
    const size_t n = rd_dataset_size(d);
    long *conf = calloc((size_t)K * K, sizeof *conf);
    int *tok = malloc(sizeof(int) * (size_t)max_len), *tgt = malloc(sizeof(int) * (size_t)max_len);
    if (!conf || !tok || !tgt) {
        free(conf), free(tok), free(tgt);
        return rd_error_set(err, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const rd_example *ex = rd_dataset_get(d, i);
        if (ex->label < 0) continue;
        int best = -1;
        double best_lp = -INFINITY;
        for (int k = 0; k < K; k++) {
            int nl;
            const int *lab = rd_dataset_label_ids(d, k, &nl);
            int T = ex->n_prompt + nl - 1; /* inputs: all but the last id */
            if (T + 1 > max_len || ex->n_prompt < 1) continue; /* the candidate does not fit */
            for (int t = 0; t < ex->n_prompt; t++) tok[t] = ex->ids[t];
            for (int t = 0; t < nl; t++) tok[ex->n_prompt + t] = lab[t];
            for (int t = 0; t < T; t++) tgt[t] = t + 1 >= ex->n_prompt ? tok[t + 1] : -1;
            double nll;
            int nt;
            if (rd_train_pass(tc, view, NULL, NULL, tok, tgt, 1, T, &nll, &nt, err)) {
                rc = -1;
                break;
            }
            if (-nll > best_lp) {
                best_lp = -nll;
                best = k;
            }
        }
        if (best >= 0) conf[ex->label * K + best]++;
    }
    if (rc == 0) rd_classification_metrics(conf, K, out);
    free(conf);
    free(tok);
    free(tgt);
    return rc;
}

int rd_evaluate(const rd_model *m, const rd_edits *e, float strength, const rd_dataset *d,
                int batch, int max_len, rd_eval_metrics *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    out->accuracy = out->mcc = out->f1 = NAN;
    if (batch < 1) return rd_error_set(err, "evaluation batch %d must be at least 1", batch);
    if (max_len > m->file.cfg.seq_len) max_len = m->file.cfg.seq_len;
    rd_train_ctx *tc = rd_train_ctx_new(m, batch, max_len, 0, err);
    if (!tc) return -1;
    rd_edits_view view = e ? rd_edits_view_at(e, strength) : (rd_edits_view){0};
    const rd_edits_view *v = e ? &view : NULL;
    const rd_tokenizer *tok = m->file.tokenizer;
    const int pad = tok && rd_tokenizer_eos(tok) >= 0 ? rd_tokenizer_eos(tok) : 0;
    rd_batch b = {0};
    size_t *idx = malloc(sizeof(size_t) * (size_t)batch);
    int rc = idx ? 0 : rd_error_set(err, "out of memory");
    double sum = 0.0;
    const size_t n = rd_dataset_size(d);
    for (size_t i0 = 0; i0 < n && rc == 0; i0 += (size_t)batch) {
        size_t k = 0;
        for (size_t i = i0; i < n && k < (size_t)batch; i++) idx[k++] = i;
        double ls;
        int nt;
        rc = rd_batch_fill(&b, d, idx, k, max_len, 0, pad, err) ||
             rd_train_pass(tc, v, NULL, NULL, b.tokens, b.targets, b.B, b.T, &ls, &nt, err);
        if (rc == 0) {
            sum += ls;
            out->tokens += (uint64_t)nt;
        }
    }
    if (rc == 0) {
        out->loss = out->tokens ? sum / (double)out->tokens : NAN;
        out->perplexity = exp(out->loss);
        if (rd_dataset_n_labels(d) > 0) {
            rd_train_ctx_free(tc); /* label scoring runs one candidate at a time */
            tc = rd_train_ctx_new(m, 1, max_len, 0, err);
            rc = tc ? classify(tc, v, d, max_len, out, err) : -1;
        }
    }
    rd_batch_release(&b);
    free(idx);
    rd_train_ctx_free(tc);
    return rc ? -1 : 0;
}
