/* Tests of batched generation (redit/batch.h): a batch mixing edit sets (two RED sets, a
 * strength of 0.5 and of 0, the base model, a LoRA set and an IA3 set) whose sequences join
 * at different steps and leave by token limit, EOS, full context, cancel and callback stop,
 * with slots reused, gives every sequence exactly the tokens rd_generate gives it alone —
 * greedy and sampled, on an f32 model and on Q8_0 and Q4_K models with integer products; a
 * long prompt is prefilled in chunks while the others decode; and the errors (no free slot,
 * prompt too long, bad slots in rd_forward_seqs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "redit/batch.h"
#include "redit/edits.h"
#include "redit/forward.h"
#include "redit/generate.h"
#include "redit/model.h"
#include "test_rng.h"
#include "tiny_model.h"

enum { N_SETS = 4, MAX_GEN = 40, EOS = 2 };

typedef struct fixture {
    rd_model *model;
    rd_edits *sets[N_SETS]; /* RED A, RED B, LoRA, IA3 */
    int max_seq;
} fixture;

/* Moves every parameter of e away from its identity start (LoRA's B starts at 0). */
static void perturb(rd_edits *e, uint64_t seed, float amount) {
    float *p = rd_edits_params(e);
    uint64_t rng = seed;
    for (size_t i = 0; i < rd_edits_param_count(e); i++) p[i] += amount * test_nrand(&rng);
}

/* rd_generate's ids for one sequence alone (a fresh context of the batch's length). */
static int alone(const fixture *f, const rd_edits_view *view, const int *prompt, int n_prompt,
                 const rd_gen_opts *o, rd_token_fn cb, void *user, int *ids,
                 rd_gen_stats *stats) {
    rd_error err = {0};
    rd_ctx *ctx = rd_ctx_new(f->model, 1, f->max_seq, &err);
    assert_non_null(ctx);
    assert_int_equal(rd_generate(ctx, view, prompt, (size_t)n_prompt, o, cb, user, ids, stats,
                                 &err),
                     0);
    rd_ctx_free(ctx);
    return stats->n_generated;
}

/* Builds the fixture's model from file (with a tokenizer, so EOS is id 2) and its edit
 * sets, then makes EOS's classifier row equal to that of the token the base model picks
 * fifth for prompt 1: greedy ties go to the lowest id, so EOS is picked there instead. */
static int make_fixture(void **state, rd_model_file *file, int quant_products, int max_seq) {
    fixture *f = calloc(1, sizeof *f);
    rd_error err = {0};
    if (!f || tiny_vocab(&file->vocab, file->cfg.vocab_size, 1, 1, &err)) return -1;
    const rd_config cfg = file->cfg;
    f->model = rd_model_from_file(file, "tiny", &err);
    if (!f->model) return -1;
    if (quant_products && rd_model_set_quant_products(f->model, 1, &err)) return -1;
    f->max_seq = max_seq;
    const rd_edit_spec specs[N_SETS] = {
        {.sites = RD_SITE_BOTH, .layers = "all", .scale = 1, .bias = 1},
        {.sites = RD_SITE_FFN, .layers = "0,1", .scale = 1, .bias = 1},
        {.method = RD_METHOD_LORA, .rank = 4, .lora_alpha = 8.0f, .layers = "all", .seed = 3,
         .lora_targets = 0x7f},
        {.method = RD_METHOD_IA3, .layers = "all"}};
    for (int i = 0; i < N_SETS; i++) {
        f->sets[i] = rd_edits_new(&cfg, &specs[i], &err);
        if (!f->sets[i]) return -1;
        perturb(f->sets[i], 11 + (uint64_t)i, i == 2 ? 0.2f : 0.4f);
    }
    const int prompt[] = {1, 17, 42, 99, 5};
    rd_gen_opts o = {.sampling = rd_sampling_defaults(), .max_tokens = 8};
    o.sampling.temperature = 0;
    int ids[8];
    rd_gen_stats st;
    alone(f, NULL, prompt, 5, &o, NULL, NULL, ids, &st);
    rd_matrix *cls = &f->model->file.w.classifier;
    if (ids[4] != EOS)
        memcpy((char *)cls->data + (size_t)EOS * cls->row_bytes,
               (const char *)cls->data + (size_t)ids[4] * cls->row_bytes, cls->row_bytes);
    *state = f;
    return 0;
}

static int setup_f32(void **state) {
    rd_config cfg = tiny_config();
    cfg.seq_len = 400; /* room for a prompt longer than one prefill chunk (256) */
    rd_model_file file;
    if (tiny_model_init(&file, &cfg, 0, 7)) return -1;
    return make_fixture(state, &file, 0, 400);
}

/* A model whose matrices are stored in `type` (rows of whole 256-blocks), taking the
 * integer products of decode. */
static int setup_quant(void **state, rd_dtype type) {
    rd_config cfg = tiny_config();
    cfg.dim = 256;
    cfg.hidden_dim = 512;
    cfg.n_layers = 2;
    cfg.n_heads = 4;
    cfg.n_kv_heads = 2;
    rd_model_file file;
    rd_error err = {0};
    if (rd_model_file_random(&file, &cfg, 0, 5, type, &err)) return -1;
    return make_fixture(state, &file, 1, 64);
}
static int setup_q8(void **state) { return setup_quant(state, RD_DTYPE_Q8_0); }
static int setup_q4k(void **state) { return setup_quant(state, RD_DTYPE_Q4_K); }

static int teardown(void **state) {
    fixture *f = *state;
    for (int i = 0; i < N_SETS; i++) rd_edits_free(f->sets[i]);
    rd_model_free(f->model);
    free(f);
    return 0;
}

/* One sequence of the mixed batch and what happened to it. */
typedef struct job {
    int set;          /* edit set index, -1: none (base) */
    float strength;
    int n_prompt, prompt_seed, max_tokens, join_step;
    float temperature; /* 0: greedy */
    int cancel_after;  /* cancel once it has this many tokens (0: never) */
    int stop_after;    /* its callback stops it at this many tokens (0: never) */
    /* filled by the run */
    int prompt[400];
    rd_edits_view view;
    rd_gen_opts opts;
    int id, added, cancelled, done, n;
    int ids[MAX_GEN + 8];
    float logprob[MAX_GEN + 8];
    rd_gen_stats stats;
    int steps_with_token[64]; /* at which steps (capped) it got a token */
    int cur_step;
} job;

static int *g_step; /* the step number the callbacks record (the test's loop counter) */

static int on_token(void *user, int id, int token, const char *text, size_t len, float lp) {
    job *j = user;
    assert_int_equal(id, j->id);
    assert_true(j->n < MAX_GEN + 8);
    j->ids[j->n] = token;
    j->logprob[j->n++] = lp;
    if (*g_step < 64) j->steps_with_token[*g_step] = 1;
    (void)text;
    (void)len;
    return j->stop_after && j->n == j->stop_after;
}

static void on_done(void *user, int id, const rd_gen_stats *stats) {
    job *j = user;
    assert_int_equal(id, j->id);
    assert_false(j->done);
    j->done = 1;
    j->stats = *stats;
}

static int stop_cb(void *user, int token, const char *text, size_t len) {
    int *left = user;
    (void)token, (void)text, (void)len;
    return --*left == 0;
}

static void prepare(const fixture *f, job *j) {
    uint64_t rng = (uint64_t)j->prompt_seed;
    const int V = rd_model_config(f->model)->vocab_size;
    j->prompt[0] = 1;
    for (int i = 1; i < j->n_prompt; i++) j->prompt[i] = 3 + (int)(test_urand(&rng) * (V - 3));
    if (j->set >= 0) j->view = rd_edits_view_at(f->sets[j->set], j->strength);
    j->opts = (rd_gen_opts){.sampling = rd_sampling_defaults(), .max_tokens = j->max_tokens,
                            .stop_at_eos = 1};
    j->opts.sampling.temperature = j->temperature;
    j->opts.sampling.seed = 1000 + (uint64_t)j->prompt_seed;
}

/* Runs jobs through one batch of `slots` slots; each joins at its step or, when every slot
 * is taken, at the first step after one frees. Returns the number of steps. */
static int run_batch(const fixture *f, job *jobs, int n_jobs, int slots, int prefill_chunk) {
    rd_error err = {0};
    rd_batch_opts bo = {.slots = slots, .max_seq = f->max_seq, .prefill_chunk = prefill_chunk};
    rd_batch *b = rd_batch_new(f->model, &bo, &err);
    assert_non_null(b);
    assert_int_equal(rd_batch_max_seq(b), f->max_seq);
    int step = 0, left = n_jobs;
    g_step = &step;
    for (; left > 0; step++) {
        assert_true(step < 2000);
        for (int i = 0; i < n_jobs; i++) {
            job *j = &jobs[i];
            if (j->added || j->join_step > step || rd_batch_free_slots(b) == 0) continue;
            j->id = rd_batch_add(b, j->set >= 0 ? &j->view : NULL, j->prompt,
                                 (size_t)j->n_prompt, &j->opts, j, &err);
            assert_true(j->id >= 0);
            if (i % 2 == 0) assert_int_equal(rd_batch_set_top(b, j->id, 0, &err), 0);
            j->added = 1;
        }
        for (int i = 0; i < n_jobs; i++) {
            job *j = &jobs[i];
            if (j->added && !j->done && j->cancel_after && j->n >= j->cancel_after &&
                !j->cancelled) {
                rd_batch_cancel(b, j->id);
                j->cancelled = 1;
            }
        }
        const int running = rd_batch_step(b, on_token, on_done, &err);
        assert_true(running >= 0);
        assert_int_equal(running, rd_batch_running(b));
        left = 0;
        for (int i = 0; i < n_jobs; i++) left += !jobs[i].done;
    }
    assert_int_equal(rd_batch_running(b), 0);
    assert_int_equal(rd_batch_free_slots(b), slots);
    assert_int_equal(rd_batch_step(b, on_token, on_done, &err), 0); /* idle */
    rd_batch_free(b);
    return step;
}

/* Every job's tokens, stop reason and counts equal its run alone. */
static void check_alone(const fixture *f, job *jobs, int n_jobs) {
    int eos_seen = 0, limit_seen = 0;
    for (int i = 0; i < n_jobs; i++) {
        job *j = &jobs[i];
        int want[MAX_GEN + 8];
        rd_gen_stats st;
        int left = j->stop_after;
        const int n = alone(f, j->set >= 0 ? &j->view : NULL, j->prompt, j->n_prompt, &j->opts,
                            j->stop_after ? stop_cb : NULL, &left, want, &st);
        assert_true(j->done);
        if (j->cancel_after) { /* cancelled between steps: a prefix of the run alone */
            assert_int_equal(j->stats.stopped_by, 2);
            assert_true(j->n >= j->cancel_after && j->n <= n);
        } else {
            assert_int_equal(j->n, n);
            assert_int_equal(j->stats.stopped_by, st.stopped_by);
        }
        assert_int_equal(j->stats.n_generated, j->n);
        assert_int_equal(j->stats.n_prompt, j->n_prompt);
        assert_memory_equal(j->ids, want, (size_t)j->n * sizeof *want);
        for (int k = 0; k < j->n; k++) /* a logprob for those that asked, else NAN */
            assert_true(i % 2 == 0 ? j->logprob[k] <= 0.0f && isfinite(j->logprob[k])
                                   : isnan(j->logprob[k]));
        eos_seen += j->stats.stopped_by == 1;
        limit_seen += j->stats.stopped_by == 0;
    }
    assert_true(eos_seen > 0); /* the fixture's EOS row makes the base sequence stop */
    assert_true(limit_seen > 0);
}

/* The mixed batch: 11 sequences through 6 slots. */
static void mixed_batch(void **state, int long_prompt) {
    fixture *f = *state;
    job jobs[] = {
        {.set = 0, .strength = 1.0f, .n_prompt = 7, .prompt_seed = 1, .max_tokens = 30},
        {.set = 1, .strength = 1.0f, .n_prompt = 4, .prompt_seed = 2, .max_tokens = 25},
        {.set = 0, .strength = 0.5f, .n_prompt = 9, .prompt_seed = 3, .max_tokens = 20, .join_step = 1},
        {.set = 1, .strength = 0.0f, .n_prompt = 5, .prompt_seed = 4, .max_tokens = 18, .join_step = 2},
        {.set = -1, .n_prompt = 5, .prompt_seed = 0, .max_tokens = 30}, /* prompt 1 17 42 99 5 below */
        {.set = 2, .strength = 1.0f, .n_prompt = 6, .prompt_seed = 6, .max_tokens = 22, .join_step = 3},
        {.set = 3, .strength = 1.0f, .n_prompt = 8, .prompt_seed = 7, .max_tokens = 22, .join_step = 3},
        {.set = 0, .strength = 1.0f, .n_prompt = 6, .prompt_seed = 8, .max_tokens = 30,
         .temperature = 0.9f, .join_step = 4},
        {.set = 3, .strength = 0.5f, .n_prompt = 3, .prompt_seed = 9, .max_tokens = 30,
         .cancel_after = 4, .join_step = 5},
        {.set = 2, .strength = 0.5f, .n_prompt = 5, .prompt_seed = 10, .max_tokens = 30,
         .stop_after = 6, .join_step = 6},
        /* near the end of the context: stops when it is full (3) */
        {.set = 1, .strength = 1.0f, .n_prompt = 0, .prompt_seed = 11, .max_tokens = 30,
         .join_step = 7},
        {.set = 0, .strength = 1.0f, .n_prompt = 0, .prompt_seed = 12, .max_tokens = 12,
         .join_step = 8},
    };
    const int n_jobs = (int)(sizeof jobs / sizeof *jobs);
    jobs[10].n_prompt = f->max_seq - 4;
    jobs[11].n_prompt = long_prompt ? 300 : 10; /* 300: two prefill chunks */
    for (int i = 0; i < n_jobs; i++) prepare(f, &jobs[i]);
    const int base_prompt[] = {1, 17, 42, 99, 5};
    memcpy(jobs[4].prompt, base_prompt, sizeof base_prompt);
    run_batch(f, jobs, n_jobs, 6, 0);
    check_alone(f, jobs, n_jobs);
    /* the sampled sequence differs from its greedy run (else sampling went untested) */
    job greedy = jobs[7];
    greedy.opts.sampling.temperature = 0;
    int want[MAX_GEN];
    rd_gen_stats st;
    const int n = alone(f, &greedy.view, greedy.prompt, greedy.n_prompt, &greedy.opts, NULL, NULL,
                        want, &st);
    assert_false(n == jobs[7].n && memcmp(want, jobs[7].ids, (size_t)n * sizeof *want) == 0);
    if (long_prompt) {
        /* the long prompt took two prefill steps; others got tokens in both */
        job *lj = &jobs[11];
        int first = -1;
        for (int s = 0; s < 64 && first < 0; s++)
            if (lj->steps_with_token[s]) first = s;
        assert_true(first > 0);
        int others = 0;
        for (int i = 0; i < n_jobs; i++)
            if (i != 11) others += jobs[i].steps_with_token[first - 1];
        assert_true(others > 0);
    }
}

static void test_mixed_batch(void **state) { mixed_batch(state, 1); }
static void test_mixed_batch_quant(void **state) { mixed_batch(state, 0); }

/* Sixteen sequences decoding together (four groups of four rows in the matvec), all with
 * different strengths, each equal to its run alone. */
static void test_many_rows(void **state) {
    fixture *f = *state;
    job jobs[18];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 18; i++) {
        jobs[i] = (job){.set = i % 5 == 4 ? -1 : i % 4, .strength = 0.25f * (float)(1 + i % 4),
                        .n_prompt = 3 + i % 5, .prompt_seed = 100 + i, .max_tokens = 24 + i % 3};
        prepare(f, &jobs[i]);
    }
    run_batch(f, jobs, 18, 17, 0);
    int eos = 0;
    for (int i = 0; i < 18; i++) {
        job *j = &jobs[i];
        int want[MAX_GEN];
        rd_gen_stats st;
        const int n = alone(f, j->set >= 0 ? &j->view : NULL, j->prompt, j->n_prompt, &j->opts,
                            NULL, NULL, want, &st);
        assert_int_equal(j->n, n);
        assert_memory_equal(j->ids, want, (size_t)n * sizeof *want);
        eos += st.stopped_by == 1;
    }
    (void)eos;
}

/* The rows of one decode pass of 16 sequences (different slots, positions and edit views)
 * are bit for bit the logits of each sequence's pass alone. */
static void test_rows_bit_exact(void **state) {
    fixture *f = *state;
    enum { B = 16 };
    rd_error err = {0};
    rd_ctx *c = rd_ctx_new_slots(f->model, B, f->max_seq, &err);
    assert_non_null(c);
    const int V = rd_model_config(f->model)->vocab_size;
    float *all = malloc((size_t)B * V * sizeof(float)), *one = malloc((size_t)V * sizeof(float));
    assert_non_null(all);
    assert_non_null(one);
    rd_edits_view views[B];
    rd_seq seqs[B];
    int tokens[B];
    for (int i = 0; i < B; i++) {
        job j = {.set = i % 5 == 4 ? -1 : i % 4, .strength = 0.3f * (float)(1 + i % 3),
                 .n_prompt = 2 + i, .prompt_seed = 300 + i};
        prepare(f, &j);
        views[i] = j.view;
        seqs[i] = (rd_seq){.slot = B - 1 - i, .pos = j.n_prompt, .edits = j.set >= 0 ? &views[i] : NULL};
        assert_int_equal(rd_forward_seqs(c, &seqs[i], 1, j.prompt, j.n_prompt, RD_LOGITS_NONE,
                                         NULL, &err), 0);
        seqs[i].pos = j.n_prompt;
        tokens[i] = 3 + i;
    }
    assert_int_equal(rd_forward_seqs(c, seqs, B, tokens, 1, RD_LOGITS_LAST, all, &err), 0);
    for (int i = 0; i < B; i++) { /* the same position again, alone (rewrites the same k, v) */
        assert_int_equal(rd_forward_seqs(c, &seqs[i], 1, &tokens[i], 1, RD_LOGITS_LAST, one,
                                         &err), 0);
        assert_memory_equal(one, all + (size_t)i * V, (size_t)V * sizeof(float));
    }
    free(all);
    free(one);
    rd_ctx_free(c);
}

/* rd_batch_set_top: each sampled token's top list, against the logits of teacher forcing
 * (rd_forward over the prompt and the tokens before it): sorted, the greedy token first with
 * exactly on_token's logprob, every entry within 1e-5 of the log-softmax; none when not
 * asked for; and the errors. */
typedef struct top_rec {
    const rd_batch *b;
    int n, ids[16], n_top[16], top_id[16][RD_BATCH_MAX_TOP];
    float lp[16], top_lp[16][RD_BATCH_MAX_TOP];
} top_rec;

static int top_token(void *user, int id, int token, const char *text, size_t len, float lp) {
    top_rec *r = user;
    (void)id, (void)text, (void)len;
    const int *ids;
    const float *lps;
    const int n = rd_batch_token_top(r->b, &ids, &lps);
    r->ids[r->n] = token;
    r->lp[r->n] = lp;
    r->n_top[r->n] = n;
    for (int k = 0; k < n; k++) r->top_id[r->n][k] = ids[k], r->top_lp[r->n][k] = lps[k];
    r->n++;
    return 0;
}

static void test_top_logprobs(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    const rd_batch_opts bo = {.slots = 2, .max_seq = f->max_seq};
    rd_batch *b = rd_batch_new(f->model, &bo, &err);
    assert_non_null(b);
    const int prompt[] = {1, 17, 42, 99};
    enum { NP = 4, NG = 6, K = 5 };
    rd_gen_opts o = {.sampling = rd_sampling_defaults(), .max_tokens = NG};
    o.sampling.temperature = 0;
    rd_edits_view view = rd_edits_view_at(f->sets[0], 1.0f);
    top_rec with = {.b = b}, without = {.b = b};
    const int a = rd_batch_add(b, &view, prompt, NP, &o, &with, &err);
    const int c = rd_batch_add(b, &view, prompt, NP, &o, &without, &err);
    assert_true(a >= 0 && c >= 0);
    assert_int_equal(rd_batch_set_top(b, a, K, &err), 0);
    assert_int_equal(rd_batch_set_top(b, c, 0, &err), 0);
    assert_int_equal(rd_batch_set_top(b, a, RD_BATCH_MAX_TOP + 1, &err), -1);
    assert_int_equal(rd_batch_set_top(b, a, -2, &err), -1);
    assert_int_equal(rd_batch_set_top(b, 99, 1, &err), -1);
    assert_int_equal(rd_batch_token_top(b, NULL, NULL), 0);
    while (rd_batch_step(b, top_token, NULL, &err) > 0) {
    }
    assert_int_equal(with.n, NG);
    assert_int_equal(without.n, NG);
    /* teacher forcing: every position's logits of prompt + generated tokens */
    int ids[NP + NG];
    memcpy(ids, prompt, sizeof prompt);
    memcpy(ids + NP, with.ids, sizeof with.ids[0] * NG);
    const int V = rd_model_config(f->model)->vocab_size;
    float *logits = malloc(sizeof *logits * (size_t)V * (NP + NG));
    rd_ctx *ctx = rd_ctx_new(f->model, 1, f->max_seq, &err);
    assert_non_null(ctx);
    assert_int_equal(rd_forward(ctx, &view, ids, 1, NP + NG, RD_LOGITS_ALL, logits, &err), 0);
    for (int t = 0; t < NG; t++) {
        assert_int_equal(without.n_top[t], 0);
        assert_int_equal(without.ids[t], with.ids[t]);
        assert_int_equal(with.n_top[t], K);
        assert_int_equal(with.top_id[t][0], with.ids[t]);   /* the greedy token first */
        assert_true(with.top_lp[t][0] == with.lp[t]);       /* the same number */
        const float *row = logits + (size_t)(NP - 1 + t) * V;
        double mx = row[0], sum = 0;
        for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
        for (int v = 0; v < V; v++) sum += exp(row[v] - mx);
        for (int k = 0; k < K; k++) {
            const int id = with.top_id[t][k];
            if (k) assert_true(row[id] <= row[with.top_id[t][k - 1]]);
            assert_true(fabs(with.top_lp[t][k] - (row[id] - mx - log(sum))) < 1e-5);
            int above = 0; /* exactly k entries of the row are larger */
            for (int v = 0; v < V; v++) above += row[v] > row[id];
            assert_true(above <= k);
        }
    }
    rd_ctx_free(ctx);
    free(logits);
    rd_batch_free(b);
}

static void test_errors(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    rd_batch_opts bo = {.slots = 2, .max_seq = 16};
    assert_null(rd_batch_new(f->model, &(rd_batch_opts){.slots = 0, .max_seq = 16}, &err));
    assert_non_null(strstr(err.msg, "slots"));
    rd_batch *b = rd_batch_new(f->model, &bo, &err);
    assert_non_null(b);
    rd_gen_opts o = {.sampling = rd_sampling_defaults(), .max_tokens = 3};
    const int p[17] = {1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    assert_int_equal(rd_batch_add(b, NULL, p, 17, &o, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "more than the context"));
    assert_int_equal(rd_batch_add(b, NULL, p, 0, &o, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "empty"));
    const int bad[2] = {1, 100000};
    assert_int_equal(rd_batch_add(b, NULL, bad, 2, &o, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "vocabulary"));
    assert_int_equal(rd_batch_add(b, NULL, p, 3, &o, NULL, &err), 0);
    assert_int_equal(rd_batch_add(b, NULL, p, 3, &o, NULL, &err), 1);
    assert_int_equal(rd_batch_free_slots(b), 0);
    assert_int_equal(rd_batch_add(b, NULL, p, 3, &o, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no free slot"));
    /* cancel before any step: ended by the next step, slot free again */
    rd_batch_cancel(b, 0);
    rd_batch_cancel(b, 77); /* unknown: ignored */
    assert_int_equal(rd_batch_step(b, NULL, NULL, &err), 1);
    assert_int_equal(rd_batch_free_slots(b), 1);
    assert_int_equal(rd_batch_add(b, NULL, p, 3, &o, NULL, &err), 2); /* ids stay unique */
    rd_batch_free(b); /* with sequences still running */

    /* rd_forward_seqs refuses a slot given twice and positions past the context */
    rd_ctx *c = rd_ctx_new_slots(f->model, 2, 16, &err);
    assert_non_null(c);
    float logits[2 * 300];
    const int tok[2] = {1, 5};
    rd_seq two[2] = {{.slot = 1, .pos = 0}, {.slot = 1, .pos = 0}};
    assert_int_equal(rd_forward_seqs(c, two, 2, tok, 1, RD_LOGITS_LAST, logits, &err), -1);
    assert_non_null(strstr(err.msg, "both use slot"));
    rd_seq late = {.slot = 0, .pos = 16};
    assert_int_equal(rd_forward_seqs(c, &late, 1, tok, 1, RD_LOGITS_LAST, logits, &err), -1);
    assert_non_null(strstr(err.msg, "do not fit"));
    rd_ctx_free(c);
}

int main(void) {
    const struct CMUnitTest f32[] = {
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_many_rows),
        cmocka_unit_test(test_rows_bit_exact),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_top_logprobs),
    };
    const struct CMUnitTest quant[] = {
        cmocka_unit_test(test_mixed_batch_quant),
        cmocka_unit_test(test_many_rows),
        cmocka_unit_test(test_rows_bit_exact),
    };
    int failed = cmocka_run_group_tests_name("f32", f32, setup_f32, teardown);
    failed += cmocka_run_group_tests_name("q8_0", quant, setup_q8, teardown);
    failed += cmocka_run_group_tests_name("q4_k", quant, setup_q4k, teardown);
    return failed;
}
