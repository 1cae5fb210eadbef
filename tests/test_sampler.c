/* Sampler: settings, greedy, temperature, top-k, top-p, the seeded draw, the repetition
 * penalty and no-repeat-n-gram blocking, each against a hand-worked case or a naive
 * reference written here independently of src/gen/sampler.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "redit/rng.h"
#include "redit/sampler.h"

/* Draws in the distribution tests and the largest |empirical - expected| allowed: the
 * standard error of one frequency is at most sqrt(0.25 / 20000) ≈ 0.0035, so 0.01 is
 * about 2.8 standard errors. */
#define N_DRAWS 20000
#define FREQ_TOL 0.01

static rd_sampling plain(float temperature) {
    rd_sampling s = rd_sampling_defaults();
    s.temperature = temperature;
    s.top_k = 0;
    s.top_p = 1.0f;
    s.repeat_penalty = 1.0f;
    s.no_repeat_ngram = 0;
    return s;
}

static rd_sampler *make(const rd_sampling *s, int n_vocab) {
    rd_error err = {{0}};
    rd_sampler *sp = rd_sampler_new(s, n_vocab, &err);
    if (!sp) fail_msg("rd_sampler_new: %s", err.msg);
    return sp;
}

/* Samples once from a copy of logits (the sampler modifies its input). */
static int sample_copy(rd_sampler *sp, const float *logits, int n, const int *hist,
                       size_t n_hist) {
    float *tmp = malloc((size_t)n * sizeof *tmp);
    assert_non_null(tmp);
    memcpy(tmp, logits, (size_t)n * sizeof *tmp);
    int id = rd_sampler_sample(sp, tmp, hist, n_hist);
    free(tmp);
    return id;
}

/* Random logits ~ scale * U(-1, 1) from the library's generator (seeded here). */
static void random_logits(float *out, int n, float scale, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < n; i++) out[i] = scale * (2.0f * rd_rng_uniform(&st) - 1.0f);
}

/* Naive greedy: first index of the maximum. */
static int ref_argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* ---- settings ---------------------------------------------------------------------- */

static void test_defaults(void **state) {
    (void)state;
    rd_sampling s = rd_sampling_defaults();
    assert_float_equal(s.temperature, 0.8f, 0.0f);
    assert_int_equal(s.top_k, 40);
    assert_float_equal(s.top_p, 0.95f, 0.0f);
    assert_float_equal(s.repeat_penalty, 1.0f, 0.0f);
    assert_int_equal(s.repeat_last_n, 64);
    assert_int_equal(s.no_repeat_ngram, 0);
    assert_true(s.seed == 42);
    rd_error err = {{0}};
    assert_int_equal(rd_sampling_validate(&s, &err), 0);
}

/* Expects validation and rd_sampler_new to fail with a message naming `field`. */
static void expect_invalid(const rd_sampling *s, const char *field) {
    rd_error err = {{0}};
    assert_int_equal(rd_sampling_validate(s, &err), -1);
    if (!strstr(err.msg, field)) fail_msg("message \"%s\" does not name %s", err.msg, field);
    rd_error err2 = {{0}};
    assert_null(rd_sampler_new(s, 100, &err2));
    assert_string_equal(err.msg, err2.msg);
}

static void test_validation(void **state) {
    (void)state;
    rd_sampling s = rd_sampling_defaults();
    s.temperature = NAN;
    expect_invalid(&s, "temperature");
    s.temperature = INFINITY;
    expect_invalid(&s, "temperature");
    s.temperature = -0.5f;
    expect_invalid(&s, "temperature");

    s = rd_sampling_defaults();
    s.top_p = 0.0f;
    expect_invalid(&s, "top_p");
    s.top_p = NAN;
    expect_invalid(&s, "top_p");
    s.top_p = 1.01f;
    expect_invalid(&s, "top_p");

    s = rd_sampling_defaults();
    s.repeat_penalty = 0.0f;
    expect_invalid(&s, "repeat_penalty");
    s.repeat_penalty = -1.1f;
    expect_invalid(&s, "repeat_penalty");
    s.repeat_penalty = NAN;
    expect_invalid(&s, "repeat_penalty");

    s = rd_sampling_defaults();
    s.top_k = -1;
    expect_invalid(&s, "top_k");
    s = rd_sampling_defaults();
    s.repeat_last_n = -1;
    expect_invalid(&s, "repeat_last_n");
    s = rd_sampling_defaults();
    s.no_repeat_ngram = -2;
    expect_invalid(&s, "no_repeat_ngram");

    rd_error err = {{0}};
    assert_int_equal(rd_sampling_validate(NULL, &err), -1);
    s = rd_sampling_defaults();
    assert_null(rd_sampler_new(&s, 0, &err));
    assert_non_null(strstr(err.msg, "vocabulary"));

    /* edge values that are valid */
    s = rd_sampling_defaults();
    s.temperature = 0.0f;
    s.top_p = 1.0f;
    s.top_k = 0;
    s.repeat_last_n = 0;
    assert_int_equal(rd_sampling_validate(&s, &err), 0);
    rd_sampler_free(NULL);
}

/* ---- greedy and its limits ----------------------------------------------------------- */

static void test_greedy(void **state) {
    (void)state;
    rd_sampling s = plain(0.0f);
    rd_sampler *sp = make(&s, 6);
    float a[6] = {0.1f, -3.0f, 2.5f, 2.4f, -INFINITY, 1.0f};
    assert_int_equal(sample_copy(sp, a, 6, NULL, 0), 2);
    float ties[6] = {-1.0f, 4.0f, 0.0f, 4.0f, 4.0f, 3.9f};
    assert_int_equal(sample_copy(sp, ties, 6, NULL, 0), 1);
    float all_equal[6] = {0};
    assert_int_equal(sample_copy(sp, all_equal, 6, NULL, 0), 0);
    float with_nan[6] = {NAN, 1.0f, 5.0f, NAN, 2.0f, 0.0f};
    assert_int_equal(sample_copy(sp, with_nan, 6, NULL, 0), 2);
    rd_sampler_free(sp);

    /* a real vocabulary size, random logits, against the naive argmax */
    enum { V = 32000 };
    float *x = malloc(V * sizeof *x);
    assert_non_null(x);
    sp = make(&s, V);
    for (uint64_t seed = 1; seed <= 5; seed++) {
        random_logits(x, V, 8.0f, seed);
        assert_int_equal(sample_copy(sp, x, V, NULL, 0), ref_argmax(x, V));
    }
    rd_sampler_free(sp);
    free(x);
}

/* As temperature → 0 the draw concentrates on the argmax; tied maxima share it evenly. */
static void test_temperature_limit(void **state) {
    (void)state;
    float x[8] = {1.0f, 2.0f, 2.95f, -1.0f, 3.0f, 0.5f, 2.99f, 0.0f};
    const float temps[] = {1e-4f, 1e-6f, 1e-10f, 1e-30f};
    for (size_t t = 0; t < sizeof temps / sizeof temps[0]; t++) {
        rd_sampling s = plain(temps[t]);
        s.seed = 7 + t;
        rd_sampler *sp = make(&s, 8);
        for (int i = 0; i < 2000; i++) assert_int_equal(sample_copy(sp, x, 8, NULL, 0), 4);
        rd_sampler_free(sp);
    }

    /* fraction of the argmax grows as the temperature falls */
    double prev = 0.0;
    const float warm[] = {2.0f, 0.5f, 0.1f};
    for (size_t t = 0; t < 3; t++) {
        rd_sampling s = plain(warm[t]);
        rd_sampler *sp = make(&s, 8);
        int hits = 0;
        for (int i = 0; i < 4000; i++) hits += sample_copy(sp, x, 8, NULL, 0) == 4;
        double frac = hits / 4000.0;
        if (!(frac > prev))
            fail_msg("T=%g: argmax fraction %g not above %g", warm[t], frac, prev);
        prev = frac;
        rd_sampler_free(sp);
    }

    float tie[4] = {5.0f, 1.0f, 5.0f, 4.9f};
    rd_sampling s = plain(1e-6f);
    rd_sampler *sp = make(&s, 4);
    int count[4] = {0};
    for (int i = 0; i < N_DRAWS; i++) count[sample_copy(sp, tie, 4, NULL, 0)]++;
    assert_int_equal(count[1] + count[3], 0);
    assert_true(fabs(count[0] / (double)N_DRAWS - 0.5) <= FREQ_TOL);
    rd_sampler_free(sp);
}

static void test_top_k_1_is_greedy(void **state) {
    (void)state;
    enum { V = 1000 };
    float x[V];
    rd_sampling g = plain(0.0f);
    rd_sampling s = plain(1.5f);
    s.top_k = 1;
    s.top_p = 0.9f;
    rd_sampler *gs = make(&g, V), *ks = make(&s, V);
    for (uint64_t seed = 1; seed <= 50; seed++) {
        random_logits(x, V, 3.0f, seed);
        if (seed % 5 == 0) { /* a tie for the maximum */
            int m = ref_argmax(x, V);
            x[V - 1 - m / 2] = x[m];
        }
        if (seed % 7 == 0) memset(x, 0, sizeof x); /* all equal: id 0 */
        assert_int_equal(sample_copy(ks, x, V, NULL, 0), sample_copy(gs, x, V, NULL, 0));
    }
    rd_sampler_free(gs);
    rd_sampler_free(ks);
}

static void test_top_p_tiny_is_greedy(void **state) {
    (void)state;
    enum { V = 32000 };
    float *x = malloc(V * sizeof *x);
    assert_non_null(x);
    rd_sampling g = plain(0.0f);
    rd_sampler *gs = make(&g, V);
    for (int top_k = 0; top_k <= 40; top_k += 40) { /* full-vocabulary path and top-k path */
        rd_sampling s = plain(1.0f);
        s.top_p = 1e-6f;
        s.top_k = top_k;
        rd_sampler *ps = make(&s, V);
        for (uint64_t seed = 1; seed <= 20; seed++) {
            random_logits(x, V, seed % 2 ? 1.0f : 10.0f, seed);
            if (seed % 4 == 0) x[V - 1] = x[ref_argmax(x, V)]; /* tie: lowest id wins */
            assert_int_equal(sample_copy(ps, x, V, NULL, 0), sample_copy(gs, x, V, NULL, 0));
        }
        rd_sampler_free(ps);
    }
    rd_sampler_free(gs);
    free(x);
}

/* ---- distributions ----------------------------------------------------------------- */

typedef struct ref_item {
    double v;
    int id;
} ref_item;

static int ref_cmp(const void *pa, const void *pb) {
    const ref_item *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->id - b->id;
}

/* Naive reference: logits / T, keep the top k (0 = all), softmax, keep the smallest
 * most-probable prefix with mass ≥ p, renormalise. Writes n probabilities by id. */
static void ref_dist(const float *x, int n, double T, int k, double p, double *out) {
    ref_item *it = malloc((size_t)n * sizeof *it);
    assert_non_null(it);
    for (int i = 0; i < n; i++) it[i] = (ref_item){x[i] / T, i};
    qsort(it, (size_t)n, sizeof *it, ref_cmp);
    int m = (k > 0 && k < n) ? k : n;
    double sum = 0.0;
    for (int i = 0; i < m; i++) sum += (it[i].v = exp(it[i].v - x[it[0].id] / T));
    int keep = m;
    double cum = 0.0;
    for (int i = 0; i < m; i++) {
        cum += it[i].v / sum;
        if (cum >= p) {
            keep = i + 1;
            break;
        }
    }
    double mass = 0.0;
    for (int i = 0; i < keep; i++) mass += it[i].v;
    for (int i = 0; i < n; i++) out[i] = 0.0;
    for (int i = 0; i < keep; i++) out[it[i].id] = it[i].v / mass;
    free(it);
}

/* Draws N_DRAWS tokens with settings s and compares the frequencies with ref_dist. */
static void check_distribution(const rd_sampling *s, const float *x, int n) {
    double *want = malloc((size_t)n * sizeof *want);
    int *count = calloc((size_t)n, sizeof *count);
    assert_non_null(want);
    assert_non_null(count);
    ref_dist(x, n, s->temperature, s->top_k, s->top_p, want);
    rd_sampler *sp = make(s, n);
    for (int i = 0; i < N_DRAWS; i++) {
        int id = sample_copy(sp, x, n, NULL, 0);
        assert_in_range(id, 0, n - 1);
        count[id]++;
    }
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        double got = count[i] / (double)N_DRAWS;
        if (want[i] == 0.0 && count[i] != 0)
            fail_msg("T=%g k=%d p=%g: token %d drawn %d times but is outside the kept set",
                     (double)s->temperature, s->top_k, (double)s->top_p, i, count[i]);
        worst = fmax(worst, fabs(got - want[i]));
    }
    if (worst > FREQ_TOL)
        fail_msg("T=%g k=%d p=%g: max |freq - prob| = %g > %g", (double)s->temperature,
                 s->top_k, (double)s->top_p, worst, FREQ_TOL);
    rd_sampler_free(sp);
    free(want);
    free(count);
}

static void test_softmax_distribution(void **state) {
    (void)state;
    float small[6] = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f, 1.2f};
    rd_sampling s = plain(1.0f);
    check_distribution(&s, small, 6);
    s.temperature = 2.0f; /* flatter */
    check_distribution(&s, small, 6);
    s.temperature = 0.5f; /* sharper */
    s.seed = 0;           /* seed 0 works like any other */
    check_distribution(&s, small, 6);
}

static void test_top_k_top_p_distribution(void **state) {
    (void)state;
    enum { V = 300 };
    float x[V];
    random_logits(x, V, 4.0f, 99);
    rd_sampling s = plain(1.0f);
    s.top_k = 5; /* renormalised over the five largest */
    check_distribution(&s, x, V);
    s.top_p = 0.7f; /* then the nucleus inside them */
    check_distribution(&s, x, V);
    s.top_k = 0; /* nucleus over the whole vocabulary (cutoff + sort path) */
    s.top_p = 0.5f;
    check_distribution(&s, x, V);
    s.top_p = 0.95f;
    s.temperature = 0.7f;
    check_distribution(&s, x, V);
    s.top_k = 40; /* the defaults' shape */
    s.top_p = 0.95f;
    s.temperature = 0.8f;
    check_distribution(&s, x, V);

    /* ties at the top-k boundary: lowest ids are kept */
    float flat[10] = {0};
    s = plain(1.0f);
    s.top_k = 3;
    rd_sampler *sp = make(&s, 10);
    int seen[10] = {0};
    for (int i = 0; i < 3000; i++) seen[sample_copy(sp, flat, 10, NULL, 0)]++;
    for (int i = 0; i < 10; i++) {
        if (i < 3) assert_true(seen[i] > 800);
        else assert_int_equal(seen[i], 0);
    }
    rd_sampler_free(sp);
}

/* ---- seeds ------------------------------------------------------------------------- */

static void draw_sequence(uint64_t seed, int *out, int n) {
    enum { V = 50 };
    float x[V];
    random_logits(x, V, 1.0f, 3);
    rd_sampling s = plain(1.0f);
    s.seed = seed;
    rd_sampler *sp = make(&s, V);
    for (int i = 0; i < n; i++) out[i] = sample_copy(sp, x, V, NULL, 0);
    rd_sampler_free(sp);
}

static void test_seeds(void **state) {
    (void)state;
    int a[200], b[200], c[200], z[200], z2[200];
    draw_sequence(1234, a, 200);
    draw_sequence(1234, b, 200);
    draw_sequence(1235, c, 200);
    draw_sequence(0, z, 200);
    draw_sequence(0, z2, 200);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    assert_memory_equal(z, z2, sizeof z);
    assert_memory_not_equal(z, a, sizeof z);
    int distinct = 0, mark[50] = {0};
    for (int i = 0; i < 200; i++) distinct += !mark[z[i]]++;
    assert_true(distinct > 20); /* seed 0 is not stuck */

    /* the raw generator: state 0 is usable, uniform lands in [0, 1) with mean ~ 1/2 */
    uint64_t st = 0;
    uint64_t r1 = rd_rng_next(&st);
    assert_true(st != 0);
    assert_true(rd_rng_next(&st) != r1);
    st = 0;
    double sum = 0.0;
    for (int i = 0; i < 100000; i++) {
        float u = rd_rng_uniform(&st);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    assert_true(fabs(sum / 100000 - 0.5) < 0.01);
}

/* ---- repetition penalty ------------------------------------------------------------ */

static void test_repeat_penalty(void **state) {
    (void)state;
    enum { V = 8 };
    const float x[V] = {2.0f, -1.0f, 0.0f, 3.0f, -2.5f, 1.5f, 0.5f, -0.5f};
    const float r = 1.25f;
    rd_sampling s = plain(0.0f); /* greedy: logits are left as the processors made them */
    s.repeat_penalty = r;
    s.repeat_last_n = 4;
    rd_sampler *sp = make(&s, V);
    /* window = last 4 = {5, 1, 1, 2}; 0 and 3 are older and stay; 1 appears twice */
    const int hist[] = {0, 3, 6, 5, 1, 1, 2};
    float y[V];
    memcpy(y, x, sizeof y);
    rd_sampler_sample(sp, y, hist, 7);
    for (int t = 0; t < V; t++) {
        float want = x[t];
        if (t == 5 || t == 1 || t == 2) want = x[t] > 0.0f ? x[t] / r : x[t] * r;
        if (y[t] != want) fail_msg("token %d: logit %g, expected %g", t, y[t], want);
    }
    assert_float_equal(y[1], -1.25f, 0.0f); /* negative: multiplied, once */
    assert_float_equal(y[5], 1.2f, 1e-7f);  /* positive: divided */
    assert_float_equal(y[2], 0.0f, 0.0f);   /* zero stays zero */
    rd_sampler_free(sp);

    /* repeat_last_n = 0: the whole history */
    s.repeat_last_n = 0;
    s.repeat_penalty = 2.0f;
    sp = make(&s, V);
    memcpy(y, x, sizeof y);
    assert_int_equal(rd_sampler_sample(sp, y, hist, 7), 3); /* 3.0 / 2 = 1.5 leads */
    for (int t = 0; t < V; t++) {
        int in_hist = 0;
        for (int i = 0; i < 7; i++) in_hist |= hist[i] == t;
        float want = in_hist ? (x[t] > 0.0f ? x[t] / 2.0f : x[t] * 2.0f) : x[t];
        assert_float_equal(y[t], want, 0.0f);
    }
    /* a window longer than the history, out-of-vocabulary ids ignored, repeated calls */
    rd_sampler_free(sp);
    s.repeat_last_n = 100;
    sp = make(&s, V);
    const int odd[] = {-1, 3, 99, 3};
    for (int rep = 0; rep < 2; rep++) {
        memcpy(y, x, sizeof y);
        assert_int_equal(rd_sampler_sample(sp, y, odd, 4), 0);
        for (int t = 0; t < V; t++) assert_float_equal(y[t], t == 3 ? 1.5f : x[t], 0.0f);
    }
    /* penalty below 1 rewards instead */
    rd_sampler_free(sp);
    s.repeat_penalty = 0.5f;
    sp = make(&s, V);
    memcpy(y, x, sizeof y);
    const int one[] = {5};
    assert_int_equal(rd_sampler_sample(sp, y, one, 1), 3); /* 1.5 / 0.5 = 3.0 ties 3.0 */
    assert_float_equal(y[5], 3.0f, 0.0f);
    rd_sampler_free(sp);
}

/* ---- no-repeat n-gram -------------------------------------------------------------- */

/* Naive reference written as Hugging Face writes it: a map from every (n-1)-prefix of the
 * history's n-grams to the tokens that followed; the key is the last n-1 tokens. */
static void ref_banned(int n, const int *h, int L, int V, int *banned) {
    for (int t = 0; t < V; t++) banned[t] = 0;
    if (L + 1 < n) return;
    for (int i = 0; i + n <= L; i++) {
        int match = 1;
        for (int j = 0; j < n - 1; j++) match &= h[i + j] == h[L - (n - 1) + j];
        if (match) banned[h[i + n - 1]] = 1;
    }
}

/* Runs the sampler greedily with all-zero logits and returns which tokens came back -inf. */
static void got_banned(int n, const int *h, int L, int V, int *banned) {
    rd_sampling s = plain(0.0f);
    s.no_repeat_ngram = n;
    rd_sampler *sp = make(&s, V);
    float *y = calloc((size_t)V, sizeof *y);
    assert_non_null(y);
    rd_sampler_sample(sp, y, h, (size_t)L);
    for (int t = 0; t < V; t++) {
        assert_true(y[t] == 0.0f || y[t] == -INFINITY);
        banned[t] = y[t] == -INFINITY;
    }
    free(y);
    rd_sampler_free(sp);
}

static void expect_banned(int n, const int *h, int L, const int *want, int n_want) {
    enum { V = 12 };
    int got[V], exp_[V] = {0};
    for (int i = 0; i < n_want; i++) exp_[want[i]] = 1;
    got_banned(n, h, L, V, got);
    for (int t = 0; t < V; t++)
        if (got[t] != exp_[t])
            fail_msg("n=%d L=%d: token %d banned=%d, expected %d", n, L, t, got[t], exp_[t]);
}

static void test_no_repeat_ngram(void **state) {
    (void)state;
    /* n = 2: the last token is 2; earlier "2 3" and "2 4" ban 3 and 4 */
    const int h2[] = {1, 2, 3, 1, 2, 4, 2};
    expect_banned(2, h2, 7, (const int[]){3, 4}, 2);
    /* n = 3: key "5 6"; earlier "5 6 7" and "5 6 8" ban 7 and 8; "6 8 9" etc. do not */
    const int h3[] = {5, 6, 7, 5, 6, 8, 9, 5, 6};
    expect_banned(3, h3, 9, (const int[]){7, 8}, 2);
    /* the key must match in full: "6 6" never occurred before */
    const int h3b[] = {5, 6, 7, 1, 6, 6};
    expect_banned(3, h3b, 6, NULL, 0);
    /* overlapping occurrences: "4 4 4" with n = 3 bans 4; "4 4" alone bans nothing */
    const int h4[] = {4, 4, 4};
    expect_banned(3, h4, 3, (const int[]){4}, 1);
    expect_banned(3, h4, 2, NULL, 0);
    expect_banned(3, h4, 1, NULL, 0); /* shorter than n - 1 */
    expect_banned(3, h4, 0, NULL, 0);
    /* n = 1 bans every token seen */
    expect_banned(1, h2, 7, (const int[]){1, 2, 3, 4}, 4);
    /* off: nothing */
    expect_banned(0, h2, 7, NULL, 0);

    /* random histories over a small vocabulary against the reference */
    enum { V = 4 };
    uint64_t st = 77;
    int h[40], want[V], got[V];
    for (int trial = 0; trial < 400; trial++) {
        int L = (int)(rd_rng_next(&st) % 41), n = 1 + (int)(rd_rng_next(&st) % 5);
        for (int i = 0; i < L; i++) h[i] = (int)(rd_rng_next(&st) % V);
        ref_banned(n, h, L, V, want);
        got_banned(n, h, L, V, got);
        assert_memory_equal(want, got, sizeof want);
    }

    /* the greedy pick skips a banned argmax */
    rd_sampling s = plain(0.0f);
    s.no_repeat_ngram = 2;
    rd_sampler *sp = make(&s, 12);
    float x[12] = {0};
    x[3] = 5.0f;
    x[4] = 4.0f;
    x[9] = 3.0f;
    assert_int_equal(sample_copy(sp, x, 12, h2, 7), 9);
    rd_sampler_free(sp);
}

/* Every token banned: the sampler still answers with a valid id instead of NaN garbage. */
static void test_all_banned(void **state) {
    (void)state;
    const int hist[] = {0, 1, 2};
    float x[3] = {1.0f, 2.0f, 3.0f};
    for (int greedy = 0; greedy < 2; greedy++) {
        rd_sampling s = plain(greedy ? 0.0f : 1.0f);
        s.no_repeat_ngram = 1;
        rd_sampler *sp = make(&s, 3);
        int id = sample_copy(sp, x, 3, hist, 3);
        assert_in_range(id, 0, 2);
        rd_sampler_free(sp);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_temperature_limit),
        cmocka_unit_test(test_top_k_1_is_greedy),
        cmocka_unit_test(test_top_p_tiny_is_greedy),
        cmocka_unit_test(test_softmax_distribution),
        cmocka_unit_test(test_top_k_top_p_distribution),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_no_repeat_ngram),
        cmocka_unit_test(test_all_banned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
