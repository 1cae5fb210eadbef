/* Token sampling: repetition penalty, no-repeat-n-gram blocking, greedy argmax, and
 * temperature / top-k / top-p sampling from a seeded xorshift64* generator.
 *
 * Cost per call on a vocabulary of V: the penalty and n-gram passes touch only the
 * history; greedy is one pass over V. With top-k, sampling is a bounded-heap selection
 * (about one comparison per token) and a softmax over the k survivors; without it, a
 * softmax over V and, with top-p, a heap over only the tokens above llama2.c's cutoff
 * (1 - p) / (V - 1) probability, popped until the nucleus is complete (the order of
 * the rest is never worked out). */
#include "redit/sampler.h"
#include "redit/rng.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A candidate token: its id and a value (logit during selection, probability after). */
typedef struct cand {
    float v;
    int id;
} cand;

struct rd_sampler {
    rd_sampling cfg;
    int n_vocab;
    uint64_t rng;         /* xorshift64* state, never 0 */
    float *probs;         /* (n_vocab) softmax by token id */
    cand *cands;          /* (n_vocab) candidate scratch */
    unsigned char *mark;  /* (n_vocab) all 0 between calls: tokens already penalised */
};

/* ---- settings ---------------------------------------------------------------------- */

rd_sampling rd_sampling_defaults(void) {
    return (rd_sampling){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .no_repeat_ngram = 0,
        .seed = 42,
    };
}

int rd_sampling_validate(const rd_sampling *s, rd_error *err) {
    if (!s) return rd_error_set(err, "sampling: no settings given");
    if (!isfinite(s->temperature) || s->temperature < 0.0f)
        return rd_error_set(err, "sampling: temperature %g must be a finite number >= 0",
                            (double)s->temperature);
    if (s->top_k < 0)
        return rd_error_set(err, "sampling: top_k %d must be >= 0 (0 turns it off)", s->top_k);
    if (!(s->top_p > 0.0f && s->top_p <= 1.0f)) /* also rejects NaN */
        return rd_error_set(err, "sampling: top_p %g must be in (0, 1] (1 turns it off)",
                            (double)s->top_p);
    if (!isfinite(s->repeat_penalty) || s->repeat_penalty <= 0.0f)
        return rd_error_set(err,
                            "sampling: repeat_penalty %g must be a finite number > 0 "
                            "(1 turns it off)",
                            (double)s->repeat_penalty);
    if (s->repeat_last_n < 0)
        return rd_error_set(err, "sampling: repeat_last_n %d must be >= 0 (0 = whole history)",
                            s->repeat_last_n);
    if (s->no_repeat_ngram < 0)
        return rd_error_set(err, "sampling: no_repeat_ngram %d must be >= 0 (0 turns it off)",
                            s->no_repeat_ngram);
    return 0;
}

/* ---- lifecycle --------------------------------------------------------------------- */

rd_sampler *rd_sampler_new(const rd_sampling *s, int n_vocab, rd_error *err) {
    if (rd_sampling_validate(s, err)) return NULL;
    if (n_vocab < 1) {
        rd_error_set(err, "sampling: vocabulary size %d must be >= 1", n_vocab);
        return NULL;
    }
    rd_sampler *sp = calloc(1, sizeof *sp);
    if (!sp) goto oom;
    sp->cfg = *s;
    sp->n_vocab = n_vocab;
    sp->rng = rd_rng_seed(s->seed);
    sp->probs = malloc((size_t)n_vocab * sizeof *sp->probs);
    sp->cands = malloc((size_t)n_vocab * sizeof *sp->cands);
    sp->mark = calloc((size_t)n_vocab, 1);
    if (!sp->probs || !sp->cands || !sp->mark) goto oom;
    return sp;
oom:
    rd_sampler_free(sp);
    rd_error_set(err, "sampling: out of memory for a vocabulary of %d", n_vocab);
    return NULL;
}

void rd_sampler_free(rd_sampler *s) {
    if (!s) return;
    free(s->probs);
    free(s->cands);
    free(s->mark);
    free(s);
}

/* ---- logit processors -------------------------------------------------------------- */

/* Penalises each distinct in-vocabulary token of the last repeat_last_n history tokens
 * once: logit > 0 is divided by r, otherwise multiplied by r. */
static void apply_repeat_penalty(rd_sampler *s, float *logits, const int *history,
                                 size_t n_history) {
    float r = s->cfg.repeat_penalty;
    if (r == 1.0f || n_history == 0) return;
    size_t window = n_history;
    if (s->cfg.repeat_last_n > 0 && (size_t)s->cfg.repeat_last_n < window)
        window = (size_t)s->cfg.repeat_last_n;
    const int *w = history + (n_history - window);
    for (size_t i = 0; i < window; i++) {
        int t = w[i];
        if (t < 0 || t >= s->n_vocab || s->mark[t]) continue;
        s->mark[t] = 1;
        logits[t] = logits[t] > 0.0f ? logits[t] / r : logits[t] * r;
    }
    for (size_t i = 0; i < window; i++) /* leave mark all-zero for the next call */
        if (w[i] >= 0 && w[i] < s->n_vocab) s->mark[w[i]] = 0;
}

/* Hugging Face's NoRepeatNGramLogitsProcessor: with L history tokens, the key is the last
 * n - 1 of them; every earlier place where the key occurs followed by a token t bans t
 * (logit -inf). Nothing happens while L + 1 < n. */
static void apply_no_repeat_ngram(int n, float *logits, int n_vocab, const int *history,
                                  size_t n_history) {
    if (n <= 0 || n_history + 1 < (size_t)n) return;
    size_t key_len = (size_t)n - 1;
    const int *key = history + (n_history - key_len);
    for (size_t i = 0; i + key_len < n_history; i++) { /* n-gram history[i .. i+n-1] */
        if (key_len && memcmp(history + i, key, key_len * sizeof *key) != 0) continue;
        int t = history[i + key_len];
        if (t >= 0 && t < n_vocab) logits[t] = -INFINITY;
    }
}

/* Index of the largest logit, lowest id on ties; NaN never wins unless all are NaN. */
static int argmax(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best] || (isnan(logits[best]) && !isnan(logits[i]))) best = i;
    return best;
}

/* ---- candidate selection ----------------------------------------------------------- */

/* Strict total order: larger value first, then lower id. */
static int cand_before(cand a, cand b) { return a.v > b.v || (a.v == b.v && a.id < b.id); }

static int cand_cmp(const void *pa, const void *pb) {
    cand a = *(const cand *)pa, b = *(const cand *)pb;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

/* Binary heap on cand_before: with first_on_top the root is the candidate that comes
 * first, else the one that comes last. Restores the heap below position i of h[0..n). */
static int heap_above(cand a, cand b, int first_on_top) {
    return first_on_top ? cand_before(a, b) : cand_before(b, a);
}

static void heap_sift_down(cand *h, int n, int i, int first_on_top) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && heap_above(h[l], h[top], first_on_top)) top = l;
        if (r < n && heap_above(h[r], h[top], first_on_top)) top = r;
        if (top == i) return;
        cand t = h[i];
        h[i] = h[top];
        h[top] = t;
        i = top;
    }
}

static void heapify(cand *h, int n, int first_on_top) {
    for (int i = n / 2 - 1; i >= 0; i--) heap_sift_down(h, n, i, first_on_top);
}

/* Writes the k first tokens of logits[0..n) in cand_before order to c[0..k), sorted.
 * A bounded heap: one comparison per token once it is full, O(n log k) at worst. */
static void select_top(const float *logits, int n, int k, cand *c) {
    for (int i = 0; i < k; i++) c[i] = (cand){logits[i], i};
    heapify(c, k, 0);
    for (int i = k; i < n; i++) {
        cand x = {logits[i], i};
        if (!cand_before(x, c[0])) continue;
        c[0] = x;
        heap_sift_down(c, k, 0, 0);
    }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
}

/* Turns sorted candidates' logits (c[0].v the largest, finite) into probabilities
 * exp((v - max) / T); returns their sum. */
static double cands_softmax(cand *c, int n, float temperature) {
    float max = c[0].v;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        c[i].v = expf((c[i].v - max) / temperature);
        sum += c[i].v;
    }
    return sum;
}

/* The smallest prefix of sorted candidates whose mass reaches top_p * total; *mass
 * receives the prefix's mass. */
static int nucleus(const cand *c, int n, double total, float top_p, double *mass) {
    double target = (double)top_p * total, cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += c[i].v;
        if (cum >= target) {
            *mass = cum;
            return i + 1;
        }
    }
    *mass = cum; /* rounding kept us short: keep everything */
    return n;
}

/* The same nucleus from an unsorted set c[0..m): a heap pops the most probable candidates
 * one by one until their mass reaches top_p * total, so only the nucleus is ever put in
 * order. Returns the start of the nucleus (inside c, sorted) and its size in *keep. */
static cand *nucleus_unsorted(cand *c, int m, double total, float top_p, int *keep,
                              double *mass) {
    double target = (double)top_p * total, cum = 0.0;
    heapify(c, m, 1);
    int size = m;
    while (size > 0 && cum < target) {
        cand top = c[0]; /* popped candidates collect at the end, last popped lowest */
        c[0] = c[--size];
        c[size] = top;
        heap_sift_down(c, size, 0, 1);
        cum += top.v;
    }
    *keep = m - size;
    *mass = cum;
    for (int i = size, j = m - 1; i < j; i++, j--) { /* most probable first */
        cand t = c[i];
        c[i] = c[j];
        c[j] = t;
    }
    return c + size;
}

/* Draws an id from candidates with (unnormalised) probabilities summing to mass. */
static int draw_cands(const cand *c, int n, double mass, float u) {
    double r = (double)u * mass, cum = 0.0;
    int last = c[0].id;
    for (int i = 0; i < n; i++) {
        if (c[i].v <= 0.0f) continue;
        cum += c[i].v;
        last = c[i].id;
        if (r < cum) return c[i].id;
    }
    return last;
}

/* Replaces NaN by -inf and +inf by FLT_MAX so that every comparison and difference below
 * is defined; returns the largest logit. */
static float sanitise(float *logits, int n) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) {
        float x = logits[i];
        if (isnan(x)) x = -INFINITY;
        else if (x == INFINITY) x = FLT_MAX;
        logits[i] = x;
        if (x > max) max = x;
    }
    return max;
}

/* Top-k (k < n_vocab): select and sort the k, softmax over them, nucleus, draw. */
static int sample_top_k(rd_sampler *s, const float *logits) {
    int n = s->n_vocab, k = s->cfg.top_k;
    cand *c = s->cands;
    select_top(logits, n, k, c);
    double total = cands_softmax(c, k, s->cfg.temperature), mass = total;
    int m = k;
    if (s->cfg.top_p < 1.0f) m = nucleus(c, k, total, s->cfg.top_p, &mass);
    return draw_cands(c, m, mass, rd_rng_uniform(&s->rng));
}

/* No top-k: softmax over the whole vocabulary; with top-p, the nucleus is sought only
 * among the tokens whose probability is at least (1 - p) / (n - 1). The excluded ones
 * (at most n - 1 of them, since the cutoff never exceeds the largest probability) hold
 * less than 1 - p of the mass, so the nucleus lies inside the candidate set. */
static int sample_full(rd_sampler *s, const float *logits, float max) {
    int n = s->n_vocab;
    float t = s->cfg.temperature;
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - max) / t);
        total += s->probs[i];
    }
    float u = rd_rng_uniform(&s->rng);
    if (s->cfg.top_p >= 1.0f || n == 1) {
        double r = (double)u * total, cum = 0.0;
        int last = 0;
        for (int i = 0; i < n; i++) {
            if (s->probs[i] <= 0.0f) continue;
            cum += s->probs[i];
            last = i;
            if (r < cum) return i;
        }
        return last;
    }
    /* the largest logit has probability exp(0) = 1 before normalising */
    double cutoff = fmin((1.0 - (double)s->cfg.top_p) / (double)(n - 1) * total, 1.0);
    int m = 0;
    for (int i = 0; i < n; i++)
        if ((double)s->probs[i] >= cutoff) s->cands[m++] = (cand){s->probs[i], i};
    int keep;
    double mass;
    cand *kept = nucleus_unsorted(s->cands, m, total, s->cfg.top_p, &keep, &mass);
    return draw_cands(kept, keep, mass, u);
}

int rd_sampler_sample(rd_sampler *s, float *logits, const int *history, size_t n_history) {
    int n = s->n_vocab;
    if (!history) n_history = 0;
    apply_repeat_penalty(s, logits, history, n_history);
    apply_no_repeat_ngram(s->cfg.no_repeat_ngram, logits, n, history, n_history);
    if (s->cfg.temperature == 0.0f) return argmax(logits, n);
    float max = sanitise(logits, n);
    if (max == -INFINITY) return 0; /* every token banned: nothing to weigh */
    if (s->cfg.top_k > 0 && s->cfg.top_k < n) return sample_top_k(s, logits);
    return sample_full(s, logits, max);
}
