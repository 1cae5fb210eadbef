/* The RED trainer: batching, gradient accumulation, clipping, AdamW, schedules, periodic
 * evaluation keeping the best edits, progress events, stop requests, non-finite guards. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/pool.h"
#include "redit/atomic_file.h"
#include "redit/backward.h"
#include "redit/rng.h"
#include "redit/train.h"
#include "redit/util.h"
#include "train_state.h"

int rd_schedule_from_name(const char *name, rd_schedule *out) {
    static const char *names[] = {"linear", "cosine", "constant"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) {
            *out = (rd_schedule)i;
            return 0;
        }
    return -1;
}

const char *rd_schedule_name(rd_schedule s) {
    return s == RD_SCHEDULE_COSINE ? "cosine" : s == RD_SCHEDULE_CONSTANT ? "constant" : "linear";
}

rd_train_opts rd_train_opts_defaults(void) {
    rd_train_opts o = {.lr = 2e-3, .epochs = 1, .batch = 8, .micro_batch = 8, .max_len = 512,
                       .schedule = RD_SCHEDULE_LINEAR, .warmup_ratio = 0.06, .weight_decay = 0.0,
                       .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .clip = 1.0, .seed = 42};
    return o;
}

int rd_train_opts_validate(const rd_train_opts *o, rd_error *err) {
    if (!isfinite(o->lr) || o->lr <= 0)
        return rd_error_set(err, "learning rate %g must be a finite number above 0", o->lr);
    if (o->epochs < 1 || o->epochs > 100000)
        return rd_error_set(err, "epochs %d must be at least 1", o->epochs);
    if (o->batch < 1 || o->micro_batch < 1 || o->micro_batch > o->batch)
        return rd_error_set(err, "batch %d and micro-batch %d: need 1 ≤ micro-batch ≤ batch",
                            o->batch, o->micro_batch);
    if (o->max_len < 2) return rd_error_set(err, "max length %d must be at least 2", o->max_len);
    if (!isfinite(o->warmup_ratio) || o->warmup_ratio < 0 || o->warmup_ratio >= 1)
        return rd_error_set(err, "warm-up ratio %g must be in [0, 1)", o->warmup_ratio);
    if (!isfinite(o->weight_decay) || o->weight_decay < 0)
        return rd_error_set(err, "weight decay %g must be ≥ 0", o->weight_decay);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return rd_error_set(err, "Adam betas (%g, %g) must be in [0, 1)", o->beta1, o->beta2);
    if (!(o->eps > 0) || !isfinite(o->eps)) return rd_error_set(err, "Adam epsilon %g must be > 0", o->eps);
    if (!isfinite(o->clip) || o->clip < 0) return rd_error_set(err, "clip %g must be ≥ 0", o->clip);
    if (!(o->dropout >= 0 && o->dropout < 1))
        return rd_error_set(err, "dropout %g must be in [0, 1)", o->dropout);
    if (o->eval_every < 0 || o->max_steps < 0)
        return rd_error_set(err, "eval-every and max-steps must be ≥ 0");
    return 0;
}

void rd_train_result_release(rd_train_result *r) {
    if (!r) return;
    free(r->loss_history);
    free(r->eval_history);
    free(r->eval_steps);
    free(r->eval_accuracy);
    r->eval_accuracy = NULL;
    r->loss_history = r->eval_history = NULL;
    r->eval_steps = NULL;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Learning rate at step (0-based) of total. */
static double scheduled_lr(const rd_train_opts *o, int step, int total) {
    const int warm = (int)(o->warmup_ratio * total);
    if (step < warm) return o->lr * (double)(step + 1) / (double)warm;
    if (o->schedule == RD_SCHEDULE_CONSTANT || total <= warm) return o->lr;
    const double p = (double)(step - warm) / (double)(total - warm);
    if (o->schedule == RD_SCHEDULE_COSINE) return o->lr * 0.5 * (1.0 + cos(M_PI * p));
    return o->lr * (1.0 - p);
}

/* Weight decay of each parameter: towards 0, towards 1, or none. */
enum { DECAY_TO_ZERO = 0, DECAY_TO_ONE = 1, DECAY_NONE = 2 };

/* Towards the identity edit of each method: RED scales and IA3 vectors decay towards 1,
 * RED biases and LoRA's A and B towards 0. */
static unsigned char *edit_decay(rd_edits *e) {
    const size_t n = rd_edits_param_count(e);
    unsigned char *kind = calloc(n ? n : 1, 1);
    if (!kind) return NULL;
    const int method = rd_edits_method(e);
    for (int i = 0; i < rd_edits_tensor_count(e); i++) {
        const rd_edit_tensor *t = rd_edits_tensor_at(e, i);
        const int to_one = method == RD_METHOD_IA3 || (method == RD_METHOD_RED && t->kind == 0);
        if (to_one) memset(kind + t->offset, DECAY_TO_ONE, t->count);
    }
    return kind;
}

/* Full fine-tuning: matrices decay towards 0, norm weights do not decay. */
static unsigned char *weight_decay_kinds(const rd_model *m) {
    unsigned char *kind = calloc(m->n_params, 1);
    if (!kind) return NULL;
    const rd_weights *w = &m->file.w;
    const int d = m->file.cfg.dim;
    for (int l = 0; l < m->file.cfg.n_layers; l++) {
        memset(kind + (w->layers[l].attn_norm - m->params), DECAY_NONE, (size_t)d);
        memset(kind + (w->layers[l].ffn_norm - m->params), DECAY_NONE, (size_t)d);
    }
    memset(kind + (w->final_norm - m->params), DECAY_NONE, (size_t)d);
    return kind;
}

typedef struct trainer {
    const rd_model *m;
    rd_model *full_model;       /* full fine-tuning: the model whose weights params are */
    rd_edits *e;                /* RED: the edit set trained; NULL in full fine-tuning */
    int full;                   /* full fine-tuning: params are the model's weights */
    const rd_train_opts *o;
    rd_train_ctx *tc;
    rd_batch batch;
    size_t n_params;
    float *params, *grad, *adam_m, *adam_v, *last_good, *best;
    float *part;                /* (n_params) one micro-batch's gradient when a batch has
                                   several (summed from zero, then added to grad), or NULL */
    unsigned char *decay; /* DECAY_* per parameter */
    rd_edits_grad gv, gv_part;  /* views of grad and of part */
    rd_dp *dp;                  /* the ranks of a data-parallel run, or NULL */
    int rank, ranks;
    int skip_agreed;            /* several ranks: rank 0's RD_STOP_SKIP_EVAL, sent to all */
    int pad_id;
} trainer;

/* Mean answer loss and token count of a data set, grads off. Returns 0, 1 when a stop
 * request (RD_STOP_SKIP_EVAL) cut it short, or -1. */
static int eval_loss(trainer *t, const rd_dataset *d, double *mean, uint64_t *tokens,
                     rd_error *err) {
    rd_edits_view view = t->e ? rd_edits_view_at(t->e, 1.0f) : (rd_edits_view){0};
    double sum;
    const int rc = rd_eval_loss_dp(t->tc, t->e ? &view : NULL, d, t->o->micro_batch,
                                   t->o->max_len, t->pad_id, &t->batch, t->o->stop, t->dp, &sum,
                                   tokens, err);
    if (rc) return rc;
    *mean = *tokens ? sum / (double)*tokens : NAN;
    return 0;
}

/* Whether the stop request asks to skip evaluating. */
static int skip_requested(const trainer *t) {
    if (t->ranks > 1) return t->skip_agreed;
    return t->o->stop && atomic_load(t->o->stop) >= RD_STOP_SKIP_EVAL;
}

/* After the weights changed: bf16 compute packs them again (full fine-tuning only). */
static int weights_changed(trainer *t, rd_error *err) {
    if (!t->full_model) return 0;
    return rd_model_repack(t->full_model, err);
}

/* AdamW over params[i0, i1): elementwise, so any split over threads gives the same bits. */
typedef struct adamw_job {
    trainer *t;
    double lr, c1, c2;
} adamw_job;

#define ADAMW_TASK_PARAMS ((size_t)1 << 16) /* a few tens of µs per task */

static void adamw_task(void *arg, int task) {
    const adamw_job *j = arg;
    trainer *t = j->t;
    const rd_train_opts *o = t->o;
    const double b1 = o->beta1, b2 = o->beta2, lr = j->lr, c1 = j->c1, c2 = j->c2;
    const size_t i0 = (size_t)task * ADAMW_TASK_PARAMS;
    const size_t i1 = i0 + ADAMW_TASK_PARAMS < t->n_params ? i0 + ADAMW_TASK_PARAMS : t->n_params;
    for (size_t i = i0; i < i1; i++) {
        const double g = t->grad[i];
        t->adam_m[i] = (float)(b1 * t->adam_m[i] + (1.0 - b1) * g);
        t->adam_v[i] = (float)(b2 * t->adam_v[i] + (1.0 - b2) * g * g);
        const double mh = t->adam_m[i] / c1, vh = t->adam_v[i] / c2;
        double p = t->params[i];
        if (t->decay[i] != DECAY_NONE)
            p -= lr * o->weight_decay * (p - (t->decay[i] == DECAY_TO_ONE ? 1.0 : 0.0));
        p -= lr * mh / (sqrt(vh) + o->eps);
        t->params[i] = (float)p;
    }
}

/* One AdamW update on the process's thread pool (on the calling thread when it has none:
 * the same values either way). */
static void adamw_step(trainer *t, double lr, int step) {
    const rd_train_opts *o = t->o;
    adamw_job j = {t, lr, 1.0 - pow(o->beta1, step), 1.0 - pow(o->beta2, step)};
    rd_error ignored = {0};
    const size_t tasks = (t->n_params + ADAMW_TASK_PARAMS - 1) / ADAMW_TASK_PARAMS;
    rd_pool_run(rd_pool_shared(&ignored), adamw_task, &j, (int)tasks);
}

static int alloc_trainer(trainer *t, int parts, rd_error *err) {
    const size_t n = t->n_params ? t->n_params : 1;
    /* rank 0 (or the one process) sums several parts; another rank sends each of its parts
     * from grad */
    if (parts > 1 && t->rank == 0) {
        if (!(t->part = calloc(n, sizeof(float))) ||
            (!t->full && rd_edits_grad_new(t->e, t->part, &t->gv_part, NULL)))
            return rd_error_set(err, "out of memory for the optimizer state");
    }
    t->grad = calloc(n, sizeof(float));
    t->adam_m = calloc(n, sizeof(float));
    t->adam_v = calloc(n, sizeof(float));
    t->last_good = malloc(n * sizeof(float));
    t->best = malloc(n * sizeof(float));
    t->decay = t->full ? weight_decay_kinds(t->m) : edit_decay(t->e);
    if (!t->grad || !t->adam_m || !t->adam_v || !t->last_good || !t->best || !t->decay ||
        (!t->full && rd_edits_grad_new(t->e, t->grad, &t->gv, NULL)))
        return rd_error_set(err, "out of memory for the optimizer state");
    return 0;
}

static void free_trainer(trainer *t) {
    rd_train_ctx_free(t->tc);
    rd_batch_release(&t->batch);
    free(t->grad);
    free(t->adam_m);
    free(t->adam_v);
    free(t->last_good);
    free(t->best);
    free(t->decay);
    free(t->part);
    rd_edits_grad_free(&t->gv);
    rd_edits_grad_free(&t->gv_part);
}

/* Length grouping (as Hugging Face's group_by_length): the shuffled order is cut into runs
 * of GROUP_BATCHES batches; each run is sorted by example length, longest first, and its
 * batches are then put in a random order. A batch then holds examples of similar length, so
 * little of it is padding, while which examples meet and when they come stay random. */
#define GROUP_BATCHES 50

typedef struct length_index {
    int length;
    size_t index;
} length_index;

static int by_length_desc(const void *a, const void *b) {
    const length_index *x = a, *y = b;
    if (x->length != y->length) return x->length < y->length ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index; /* a total order: qsort is not stable */
}

/* order (n) is permuted in place; scratch holds n length_index and n size_t. */
static void group_by_length(size_t *order, size_t n, size_t per_step, const rd_dataset *d,
                            uint64_t *rng, length_index *scratch, size_t *batch_order) {
    const size_t run = per_step * GROUP_BATCHES;
    for (size_t r0 = 0; r0 < n; r0 += run) {
        const size_t len = n - r0 < run ? n - r0 : run;
        for (size_t i = 0; i < len; i++)
            scratch[i] = (length_index){rd_dataset_get(d, order[r0 + i])->n, order[r0 + i]};
        qsort(scratch, len, sizeof *scratch, by_length_desc);
        const size_t n_batches = (len + per_step - 1) / per_step;
        for (size_t b = 0; b < n_batches; b++) batch_order[b] = b;
        /* the last batch of the whole order may be short: it stays last, so every other
         * batch stays whole */
        const size_t shuffled = r0 + len == n && len % per_step ? n_batches - 1 : n_batches;
        for (size_t i = shuffled; i > 1; i--) {
            size_t j = (size_t)(rd_rng_next(rng) % (uint64_t)i);
            size_t t = batch_order[i - 1];
            batch_order[i - 1] = batch_order[j];
            batch_order[j] = t;
        }
        size_t out = r0;
        for (size_t b = 0; b < n_batches; b++)
            for (size_t i = batch_order[b] * per_step; i < len && i < (batch_order[b] + 1) * per_step; i++)
                order[out++] = scratch[i].index;
    }
}

static int push_eval(rd_train_result *r, double loss, double accuracy, int step) {
    double *h = realloc(r->eval_history, sizeof(double) * (size_t)(r->n_evals + 1));
    if (!h) return -1;
    r->eval_history = h;
    double *a = realloc(r->eval_accuracy, sizeof(double) * (size_t)(r->n_evals + 1));
    if (!a) return -1;
    r->eval_accuracy = a;
    r->eval_accuracy[r->n_evals] = accuracy;
    int *s = realloc(r->eval_steps, sizeof(int) * (size_t)(r->n_evals + 1));
    if (!s) return -1;
    r->eval_steps = s;
    r->eval_history[r->n_evals] = loss;
    r->eval_steps[r->n_evals++] = step;
    return 0;
}

/* Whether an evaluation beats the best so far: the higher accuracy on a classification set
 * (the paper's validation score), the lower loss on a tie or without labels. The first
 * finite evaluation always does. */
static int is_better(double loss, double accuracy, const rd_train_result *r) {
    if (!isfinite(loss)) return 0;
    if (isnan(r->best_eval_loss)) return 1;
    if (isfinite(accuracy) && accuracy != r->best_eval_accuracy)
        return accuracy > r->best_eval_accuracy;
    return loss < r->best_eval_loss;
}

/* What the run's trajectory depends on, as "key=value;…" (train_state.h): what is trained,
 * the model, the compute mode, the data and every option but checkpointing (which changes
 * no number) and the stop flag. */
static void describe_setup(const trainer *t, const rd_dataset *train, const rd_dataset *eval,
                           uint64_t model_fp, char *buf, size_t cap) {
    const rd_train_opts *o = t->o;
    char what[256], r[8][32];
    if (t->full) {
        snprintf(what, sizeof what, "kind=full;params=%zu", t->n_params);
    } else if (rd_edits_method(t->e) == RD_METHOD_LORA) {
        char targets[64], a[32], p[32];
        snprintf(what, sizeof what, "kind=lora;params=%zu;layers=%s;rank=%d;lora_alpha=%s;"
                 "lora_targets=%s;lora_dropout=%s", t->n_params, rd_edits_layers_text(t->e),
                 rd_edits_rank(t->e), rd_format_double(rd_edits_lora_alpha(t->e), a, sizeof a),
                 rd_lora_targets_text(rd_edits_lora_targets(t->e), targets, sizeof targets),
                 rd_format_double(rd_edits_lora_dropout(t->e), p, sizeof p));
    } else if (rd_edits_method(t->e) == RD_METHOD_IA3) {
        snprintf(what, sizeof what, "kind=ia3;params=%zu;layers=%s", t->n_params,
                 rd_edits_layers_text(t->e));
    } else {
        snprintf(what, sizeof what, "kind=red;params=%zu;sites=%s;layers=%s;scale=%d;bias=%d",
                 t->n_params, rd_sites_name(rd_edits_sites(t->e)), rd_edits_layers_text(t->e),
                 rd_edits_has_scale(t->e), rd_edits_has_bias(t->e));
    }
    snprintf(buf, cap,
             "%s;model=%016" PRIx64 ";compute=%s;train_data=%016" PRIx64 ";eval_data=%016" PRIx64
             ";lr=%s;schedule=%s;warmup=%s;epochs=%d;batch=%d;micro_batch=%d;max_len=%d"
             ";weight_decay=%s;beta1=%s;beta2=%s;eps=%s;clip=%s;dropout=%s;seed=%" PRIu64
             ";pack=%d;group_by_length=%d;eval_every=%d;max_steps=%d",
             what, model_fp,
             rd_model_compute(t->m) == RD_COMPUTE_BF16 ? "bf16" : "f32",
             rd_dataset_fingerprint(train), rd_dataset_fingerprint(eval),
             rd_format_double(o->lr, r[0], 32), rd_schedule_name(o->schedule),
             rd_format_double(o->warmup_ratio, r[1], 32), o->epochs, o->batch, o->micro_batch,
             o->max_len, rd_format_double(o->weight_decay, r[2], 32), rd_format_double(o->beta1, r[3], 32),
             rd_format_double(o->beta2, r[4], 32), rd_format_double(o->eps, r[5], 32),
             rd_format_double(o->clip, r[6], 32), rd_format_double(o->dropout, r[7], 32), o->seed, o->pack,
             o->group_by_length, o->eval_every, o->max_steps);
}

static train_arrays arrays_of(const trainer *t) {
    return (train_arrays){t->n_params, t->params, t->adam_m, t->adam_v, t->best};
}

static int save_state(const trainer *t, const char *setup, const train_position *pos,
                      const rd_train_result *res, rd_error *err) {
    if (t->rank > 0) return 0; /* rank 0 writes it for all */
    const train_arrays a = arrays_of(t);
    return train_state_save(t->o->state_path, setup, &a, pos, res, err);
}

/* The loop's plan and position: what the steps cover, where the run stands, its random
 * streams and clocks. */
typedef struct loop {
    const rd_dataset *train, *eval;
    size_t n_train;
    size_t *order;             /* (n_train) this epoch's example order */
    length_index *by_length;   /* (n_train) group_by_length's scratch, or NULL */
    size_t *batch_order;       /* (n_train) group_by_length's scratch, or NULL */
    int per_step, steps_per_epoch, total;
    int step, epoch, stop;
    int eval_skipped;          /* a stop request cut an evaluation short or skipped it */
    uint64_t rng;              /* the data order's stream */
    uint64_t drop_rng;         /* the dropout masks' seeds: a stream of their own, so dropout
                                  leaves the data order as it is */
    double t_start, train_seconds;
    rd_edits_view view;        /* the trained edits at strength 1 (RED) */
    char setup[1024];          /* describe_setup, when a state file is kept */
    rd_progress_fn progress;
    void *user;
} loop;

/* What a part (micro-batch) adds besides its gradient: its summed token loss, its loss tokens
 * and the tokens it ran. */
typedef struct part_sums {
    double loss;
    int64_t n_tok;
    uint64_t tokens;
} part_sums;

/* The part order[0..mb): its rows micro_batch at a time (packed rows can outnumber the
 * examples), each pass drawing its dropout seed from lp->drop_rng. When run is 0 only the
 * seeds are drawn (another rank runs the part); else its gradient is added into g (a view of
 * dst; dst is zeroed first unless keep) and *ps receives its sums. */
static int run_part(trainer *t, loop *lp, const size_t *order, size_t mb, int run, float *dst,
                    const rd_edits_grad *g, part_sums *ps, rd_error *err) {
    const rd_train_opts *o = t->o;
    *ps = (part_sums){0};
    if (!run && !o->pack) { /* one pass, one seed */
        rd_rng_next(&lp->drop_rng);
        return 0;
    }
    if (rd_batch_fill(&t->batch, lp->train, order, mb, o->max_len, o->pack, t->pad_id, err))
        return -1;
    if (run && dst) memset(dst, 0, t->n_params * sizeof(float));
    for (int r0 = 0; r0 < t->batch.B; r0 += o->micro_batch) {
        const int rows = t->batch.B - r0 < o->micro_batch ? t->batch.B - r0 : o->micro_batch;
        const size_t off = (size_t)r0 * (size_t)t->batch.T;
        double ls;
        int nt;
        const uint64_t drop_seed = rd_rng_next(&lp->drop_rng);
        if (!run) continue;
        rd_train_ctx_set_dropout(t->tc, (float)o->dropout, drop_seed);
        /* LoRA's input masks: their own seed from the same draw (RED's stream unchanged) */
        rd_train_ctx_set_lora_dropout(t->tc, t->e ? rd_edits_lora_dropout(t->e) : 0.0f,
                                      rd_mix64(drop_seed ^ 0x4c6f5241ULL));
        if (rd_train_pass(t->tc, t->e ? &lp->view : NULL, t->e ? g : NULL,
                          t->full ? dst : NULL, t->batch.tokens + off,
                          t->batch.targets + off, rows, t->batch.T, &ls, &nt, err))
            return -1;
        ps->loss += ls;
        ps->n_tok += nt;
        ps->tokens += (uint64_t)rows * (uint64_t)t->batch.T;
    }
    return 0;
}

/* Forward and backward over one step's examples (order[0..count)) in parts of micro_batch
 * examples: t->grad receives the sum of the parts' gradients, each summed from zero, added in
 * the parts' order (the first one summed in place). With several ranks, rank r runs the parts
 * r, r + N, …; rank 0 receives the others' and adds all in order, then sends the sum to every
 * rank. *loss_sum and *n_tok: summed token loss and number of loss tokens (of all ranks). */
static int accumulate_step(trainer *t, loop *lp, const size_t *order, size_t count,
                           double *loss_sum, int *n_tok, rd_train_result *res, rd_error *err) {
    const size_t micro = (size_t)t->o->micro_batch;
    const size_t parts = (count + micro - 1) / micro;
    const int N = t->ranks, me = t->rank;
    const size_t n_bytes = t->n_params * sizeof(float);
    memset(t->grad, 0, n_bytes);
    part_sums total = {0};
    for (size_t k0 = 0; k0 < parts; k0 += (size_t)N) {
        const size_t k1 = k0 + (size_t)N < parts ? k0 + (size_t)N : parts;
        part_sums mine = {0};
        for (size_t k = k0; k < k1; k++) { /* every rank draws every part's seeds */
            const size_t first = k * micro, mb = count - first < micro ? count - first : micro;
            const int run = (int)(k - k0) == me;
            /* rank 0's first part sums in grad itself; its others in part; another rank's
             * parts in grad, sent from there */
            float *dst = me > 0 || k == 0 ? t->grad : t->part;
            const rd_edits_grad *g = me > 0 || k == 0 ? &t->gv : &t->gv_part;
            part_sums ps;
            if (run_part(t, lp, order + first, mb, run, dst, g, &ps, err)) return -1;
            if (run) mine = ps;
        }
        /* the ranks meet first: waiting for the slowest is counted apart from the exchange */
        if (N > 1 && rd_dp_barrier(t->dp, err)) return -1;
        if (me > 0) { /* send this round's part, if it had one */
            if ((size_t)me < k1 - k0 &&
                (rd_dp_to_root(t->dp, 0, &mine, sizeof mine, err) ||
                 rd_dp_to_root(t->dp, 0, t->grad, n_bytes, err)))
                return -1;
            continue;
        }
        for (size_t k = k0; k < k1; k++) { /* rank 0: the round's parts, in order */
            part_sums ps = mine;
            const int from = (int)(k - k0);
            if (from > 0 && (rd_dp_to_root(t->dp, from, &ps, sizeof ps, err) ||
                             rd_dp_to_root(t->dp, from, t->part, n_bytes, err)))
                return -1;
            if (k > 0)
                for (size_t i = 0; i < t->n_params; i++) t->grad[i] += t->part[i];
            total.loss += ps.loss;
            total.n_tok += ps.n_tok;
            total.tokens += ps.tokens;
        }
    }
    if (N > 1 && (rd_dp_bcast(t->dp, &total, sizeof total, err) ||
                  rd_dp_bcast(t->dp, t->grad, n_bytes, err)))
        return -1;
    *loss_sum = total.loss;
    *n_tok = (int)total.n_tok;
    res->tokens += total.tokens;
    return 0;
}

/* Divides the summed gradient by the loss tokens; returns its norm. */
static double mean_gradient(trainer *t, int n_tok) {
    double norm2 = 0.0;
    const float inv = n_tok ? 1.0f / (float)n_tok : 0.0f;
    for (size_t i = 0; i < t->n_params; i++) {
        t->grad[i] *= inv;
        norm2 += (double)t->grad[i] * t->grad[i];
    }
    return sqrt(norm2);
}

/* The non-finite guard: puts back the numbers of the previous step and records why training
 * stops (cause: what was not finite). */
static int keep_last_good(trainer *t, int step, const char *cause, rd_train_result *res,
                          rd_error *err) {
    memcpy(t->params, t->last_good, t->n_params * sizeof(float));
    if (weights_changed(t, err)) return -1;
    res->stopped = RD_STOP_NONFINITE;
    if (rd_model_nonfinite(t->m)) /* no learning rate helps: the model itself is broken */
        snprintf(res->message, sizeof res->message,
                 "step %d: %s because the model's weights are not finite: %s. Use an intact "
                 "copy of the model (training stopped; the edits of step %d were kept)", step,
                 cause, rd_model_nonfinite(t->m), step - 1);
    else
        snprintf(res->message, sizeof res->message,
                 "step %d: %s; training stopped and the edits of step %d were kept (try a lower "
                 "learning rate)", step, cause, step - 1);
    return 0;
}

/* One optimizer step over order[0..count): gradients, the non-finite guards, clipping, AdamW.
 * Returns 0 when the step was taken (lp->step advanced; *loss, *gnorm, *lr set), 1 when a
 * non-finite loss, gradient or update stopped training (the previous numbers kept), -1 on
 * error. */
static int optimizer_step(trainer *t, loop *lp, const size_t *order, size_t count, double *loss,
                          double *gnorm, double *lr, rd_train_result *res, rd_error *err) {
    const rd_train_opts *o = t->o;
    double loss_sum;
    int n_tok;
    if (accumulate_step(t, lp, order, count, &loss_sum, &n_tok, res, err)) return -1;
    const int step = lp->step + 1;
    *loss = n_tok ? loss_sum / n_tok : 0.0;
    *gnorm = mean_gradient(t, n_tok);
    char cause[96];
    if (!isfinite(*loss) || !isfinite(*gnorm)) {
        snprintf(cause, sizeof cause, "the %s is not finite (%g)",
                 isfinite(*loss) ? "gradient norm" : "loss", isfinite(*loss) ? *gnorm : *loss);
        return keep_last_good(t, step, cause, res, err) ? -1 : 1;
    }
    if (o->clip > 0 && *gnorm > o->clip) {
        const float c = (float)(o->clip / *gnorm);
        for (size_t i = 0; i < t->n_params; i++) t->grad[i] *= c;
    }
    *lr = scheduled_lr(o, step - 1, lp->total);
    memcpy(t->last_good, t->params, t->n_params * sizeof(float));
    adamw_step(t, *lr, step);
    for (size_t i = 0; i < t->n_params; i++)
        if (!isfinite(t->params[i])) { /* the update itself overflowed */
            snprintf(cause, sizeof cause, "the update made parameter %zu not finite", i);
            return keep_last_good(t, step, cause, res, err) ? -1 : 1;
        }
    if (weights_changed(t, err)) return -1;
    lp->step = step;
    res->loss_history[step - 1] = *loss;
    res->final_loss = *loss;
    return 0;
}

/* Evaluates the held-out set after lp->step, records it in res and keeps the numbers when
 * they are the best so far; fills p's evaluation fields. Returns 0, 1 when a stop request
 * (RD_STOP_SKIP_EVAL) cut it short (nothing recorded; lp->eval_skipped set), or -1. */
static int evaluate_point(trainer *t, loop *lp, rd_progress *p, rd_train_result *res,
                          rd_error *err) {
    double el = NAN;
    uint64_t et = 0;
    int rc = eval_loss(t, lp->eval, &el, &et, err);
    rd_eval_metrics cls = {.accuracy = NAN};
    if (rc == 0 && rd_dataset_n_labels(lp->eval) > 0)
        rc = rd_classify_dp(t->m, t->e ? &lp->view : NULL, lp->eval, t->o->micro_batch,
                            t->o->max_len, t->o->stop, t->dp, &cls, err);
    if (rc) {
        lp->eval_skipped = rc > 0;
        return rc;
    }
    if (push_eval(res, el, cls.accuracy, lp->step)) return rd_error_set(err, "out of memory");
    const int best = is_better(el, cls.accuracy, res);
    if (best) {
        res->best_eval_loss = el;
        res->best_eval_accuracy = cls.accuracy;
        res->best_step = lp->step;
        memcpy(t->best, t->params, t->n_params * sizeof(float));
    }
    p->kind = RD_PROGRESS_EVAL;
    p->eval_loss = el;
    p->eval_accuracy = cls.accuracy;
    p->best = best;
    return 0;
}

/* Whether the held-out set is evaluated after step (s_done steps of its epoch done) in an
 * uninterrupted run: every eval_every steps, else at every epoch's end; always after the last
 * step. */
static int regular_eval_point(const trainer *t, const loop *lp, int step, int s_done) {
    const rd_train_opts *o = t->o;
    const int end_of_epoch = s_done == lp->steps_per_epoch || step == lp->total;
    return (o->eval_every && step % o->eval_every == 0) || (!o->eval_every && end_of_epoch) ||
           step == lp->total;
}

/* The evaluation after a step (regular or a stop's), unless a stop request skips it; a stop
 * requested while it ran ends training after it. */
static int evaluate_after_step(trainer *t, loop *lp, rd_progress *p, rd_train_result *res,
                               rd_error *err) {
    if (skip_requested(t)) {
        lp->eval_skipped = 1;
        return 0;
    }
    const int rc = evaluate_point(t, lp, p, res, err);
    if (rc < 0) return -1;
    if (rc == 0 && lp->progress && lp->progress(lp->user, p)) lp->stop = 1;
    if (t->o->stop && atomic_load(t->o->stop)) lp->stop = 1;
    return 0;
}

/* Several ranks: every rank takes rank 0's stop decision (and whether to skip evaluating), so
 * that all leave the loop, evaluate and stop together. */
static int agree_stop(trainer *t, loop *lp, rd_error *err) {
    if (t->ranks == 1) return 0;
    int v[2] = {lp->stop, t->o->stop && atomic_load(t->o->stop) >= RD_STOP_SKIP_EVAL};
    if (rd_dp_bcast(t->dp, v, sizeof v, err)) return -1;
    lp->stop = v[0];
    t->skip_agreed = v[1];
    return 0;
}

/* After a step: the progress event, the stop request, the evaluation and the state file. s is
 * the step's index in its epoch. */
static int after_step(trainer *t, loop *lp, int s, double loss, double gnorm, double lr,
                      rd_train_result *res, rd_error *err) {
    const rd_train_opts *o = t->o;
    const int step = lp->step;
    const double elapsed = now_seconds() - lp->t_start;
    rd_progress p = {.kind = RD_PROGRESS_STEP, .step = step, .total_steps = lp->total,
                     .epoch = lp->epoch, .epochs = o->epochs, .loss = loss, .eval_loss = NAN,
                     .eval_accuracy = NAN, .lr = lr, .grad_norm = gnorm,
                     .tokens_per_s = lp->train_seconds > 0 ? (double)res->tokens / lp->train_seconds : 0,
                     .elapsed = elapsed,
                     .eta = elapsed / (step - res->resumed_step) * (lp->total - step)};
    if (lp->progress && lp->progress(lp->user, &p)) lp->stop = 1;
    if (o->stop && atomic_load(o->stop)) lp->stop = 1;
    if (agree_stop(t, lp, err)) return -1;
    /* the last step (or a stop) is always evaluated: its edits may be the best */
    const int regular = regular_eval_point(t, lp, step, s + 1);
    const train_position pos = {step, lp->epoch, s + 1, lp->rng, lp->drop_rng, lp->train_seconds};
    /* a stop between evaluation points: the state is saved before the stop's own evaluation,
     * which the uninterrupted run would not have made */
    if (o->state_path && lp->stop && !regular && save_state(t, lp->setup, &pos, res, err))
        return -1;
    /* a regular evaluation skipped by a stop request is missing from the state saved here:
     * a resumed run makes it first (train_loop) */
    if (lp->eval && (regular || lp->stop) && evaluate_after_step(t, lp, &p, res, err)) return -1;
    if (o->state_path && regular && save_state(t, lp->setup, &pos, res, err)) return -1;
    return agree_stop(t, lp, err);
}

/* Shuffles lp->order for the next epoch (seeded Fisher–Yates, then length grouping). */
static void shuffle_epoch(const trainer *t, loop *lp) {
    size_t *order = lp->order;
    for (size_t i = lp->n_train - 1; i > 0; i--) {
        size_t j = (size_t)(rd_rng_next(&lp->rng) % (uint64_t)(i + 1));
        size_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    if (t->o->group_by_length)
        group_by_length(order, lp->n_train, (size_t)lp->per_step, lp->train, &lp->rng,
                        lp->by_length, lp->batch_order);
}

/* Resuming from the state file: it replaces the numbers, the histories and the position. */
static int resume_state(trainer *t, loop *lp, train_position *resume, rd_train_result *res,
                        rd_error *err) {
    train_arrays a = arrays_of(t);
    /* a state of an earlier redit names the model by its sampled fingerprint */
    char old_setup[sizeof lp->setup];
    describe_setup(t, lp->train, lp->eval, rd_model_fingerprint_sampled(t->m), old_setup,
                   sizeof old_setup);
    if (train_state_load(t->o->state_path, lp->setup, old_setup, lp->total, &a, resume, res,
                         err) ||
        weights_changed(t, err))
        return -1;
    res->resumed_step = resume->step;
    lp->drop_rng = resume->drop_rng;
    lp->step = resume->step;
    lp->train_seconds = resume->train_seconds;
    return 0;
}

/* The epochs and steps; the epochs before a resumed position are replayed only for their
 * shuffles. */
static int run_epochs(trainer *t, loop *lp, const train_position *resume, int resumed,
                      rd_train_result *res, rd_error *err) {
    const rd_train_opts *o = t->o;
    for (lp->epoch = 1; lp->epoch <= o->epochs && !lp->stop && lp->step < lp->total; lp->epoch++) {
        shuffle_epoch(t, lp);
        int first_s = 0;
        if (resumed && lp->epoch < resume->epoch) continue;
        if (resumed && lp->epoch == resume->epoch) {
            if (lp->rng != resume->data_rng)
                return rd_error_set(err, "%s: the data order replayed for epoch %d differs from "
                                         "the one the state was written in", o->state_path,
                                    lp->epoch);
            first_s = resume->step_in_epoch;
        }
        for (int s = first_s; s < lp->steps_per_epoch && !lp->stop && lp->step < lp->total; s++) {
            const double t0 = now_seconds();
            const size_t first = (size_t)s * (size_t)lp->per_step;
            const size_t count = lp->n_train - first < (size_t)lp->per_step ? lp->n_train - first
                                                                            : (size_t)lp->per_step;
            double loss, gnorm, lr;
            const int rc = optimizer_step(t, lp, lp->order + first, count, &loss, &gnorm, &lr,
                                          res, err);
            if (rc < 0) return -1;
            if (rc > 0) {
                lp->stop = 1;
                break;
            }
            lp->train_seconds += now_seconds() - t0;
            if (after_step(t, lp, s, loss, gnorm, lr, res, err)) return -1;
        }
    }
    return 0;
}

static int train_loop(trainer t, const rd_dataset *train, const rd_dataset *eval,
                      rd_progress_fn progress, void *user, rd_train_result *res, rd_error *err) {
    const rd_train_opts *o = t.o;
    memset(res, 0, sizeof *res);
    res->best_eval_loss = res->best_eval_accuracy = NAN;
    if (rd_train_opts_validate(o, err)) return -1;
    /* the state file is first written after the first evaluation point: an unwritable one
     * is refused now, before any step runs */
    t.dp = o->dp;
    t.rank = rd_dp_rank(o->dp);
    t.ranks = rd_dp_size(o->dp);
    if (t.rank > 0) progress = NULL; /* rank 0 reports for all */
    if (o->state_path && t.rank == 0 && rd_atomic_file_check(o->state_path, err))
        return rd_error_prefix(err, "the training state");
    loop lp = {.train = train, .eval = eval, .n_train = rd_dataset_size(train),
               .progress = progress, .user = user,
               .rng = o->seed * RD_RNG_GOLDEN + 1,
               .drop_rng = o->seed * 0xbf58476d1ce4e5b9ull + 0x632be59bd9b4e019ull,
               .view = t.e ? rd_edits_view_at(t.e, 1.0f) : (rd_edits_view){0}};
    if (lp.n_train == 0) return rd_error_set(err, "the training set is empty");
    const rd_tokenizer *tok = rd_model_tokenizer(t.m);
    t.pad_id = tok && rd_tokenizer_eos(tok) >= 0 ? rd_tokenizer_eos(tok) : 0;
    int rc = -1;
    lp.order = malloc(sizeof(size_t) * lp.n_train);
    if (o->group_by_length) {
        lp.by_length = malloc(sizeof *lp.by_length * lp.n_train);
        lp.batch_order = malloc(sizeof(size_t) * lp.n_train);
    }
    lp.per_step = o->batch < (int)lp.n_train ? o->batch : (int)lp.n_train;
    lp.steps_per_epoch = (int)((lp.n_train + (size_t)lp.per_step - 1) / (size_t)lp.per_step);
    lp.total = lp.steps_per_epoch * o->epochs;
    if (o->max_steps && o->max_steps < lp.total) lp.total = o->max_steps;
    res->loss_history = malloc(sizeof(double) * (size_t)lp.total);
    if (!lp.order || !res->loss_history || (o->group_by_length && (!lp.by_length || !lp.batch_order))) {
        rd_error_set(err, "out of memory");
        goto done;
    }
    if (alloc_trainer(&t, (lp.per_step + o->micro_batch - 1) / o->micro_batch, err) ||
        !(t.tc = rd_train_ctx_new(t.m, o->micro_batch, o->max_len, o->checkpointing, err)))
        goto done;
    memcpy(t.best, t.params, t.n_params * sizeof(float));
    train_position resume = {0};
    struct stat st;
    const int resumed = o->state_path && stat(o->state_path, &st) == 0;
    if (o->state_path)
        describe_setup(&t, train, eval, rd_model_fingerprint(t.m), lp.setup, sizeof lp.setup);
    if (resumed && resume_state(&t, &lp, &resume, res, err)) goto done;
    /* the state of a run whose regular evaluation was skipped by a stop request: that
     * evaluation comes first, as the uninterrupted run made it */
    if (resumed && eval && resume.step > 0 &&
        regular_eval_point(&t, &lp, resume.step, resume.step_in_epoch) &&
        (res->n_evals == 0 || res->eval_steps[res->n_evals - 1] != resume.step)) {
        rd_progress p = {.step = resume.step, .total_steps = lp.total, .epoch = resume.epoch,
                         .epochs = o->epochs, .loss = NAN, .lr = NAN, .grad_norm = NAN};
        if (evaluate_after_step(&t, &lp, &p, res, err) || agree_stop(&t, &lp, err)) goto done;
    }
    memcpy(t.last_good, t.params, t.n_params * sizeof(float));
    for (size_t i = 0; i < lp.n_train; i++) lp.order[i] = i;
    lp.t_start = now_seconds();
    if (run_epochs(&t, &lp, &resume, resumed, res, err)) goto done;
    if (lp.eval_skipped) lp.stop = 1; /* a skip is a stop request too */
    if (lp.stop && res->stopped == RD_STOP_DONE) {
        res->stopped = RD_STOP_REQUESTED;
        if (!lp.eval_skipped)
            snprintf(res->message, sizeof res->message, "stopped on request after step %d",
                     lp.step);
        else if (res->n_evals > 0)
            snprintf(res->message, sizeof res->message,
                     "stopped on request after step %d; evaluation skipped: kept the best edits "
                     "evaluated so far (step %d)", lp.step, res->best_step);
        else
            snprintf(res->message, sizeof res->message,
                     "stopped on request after step %d; evaluation skipped: no evaluation "
                     "finished, kept the last step's edits", lp.step);
    }
    res->eval_skipped = lp.eval_skipped;
    res->steps = lp.step;
    if (eval && res->n_evals > 0) {
        memcpy(t.params, t.best, t.n_params * sizeof(float));
        if (weights_changed(&t, err)) goto done;
    } else {
        res->best_step = lp.step;
    }
    res->seconds = now_seconds() - lp.t_start;
    res->tokens_per_s = lp.train_seconds > 0 ? (double)res->tokens / lp.train_seconds : 0.0;
    rc = 0;
done:
    free(lp.order);
    free(lp.by_length);
    free(lp.batch_order);
    free_trainer(&t);
    if (rc) rd_train_result_release(res);
    return rc;
}

int rd_train(const rd_model *m, rd_edits *e, const rd_dataset *train, const rd_dataset *eval,
             const rd_train_opts *o, rd_progress_fn progress, void *user, rd_train_result *res,
             rd_error *err) {
    const rd_config *ec = rd_edits_config(e);
    if (rd_edits_dim(e) != m->file.cfg.dim || rd_edits_n_layers(e) != m->file.cfg.n_layers ||
        (rd_edits_method(e) != RD_METHOD_RED &&
         (ec->hidden_dim != m->file.cfg.hidden_dim ||
          rd_config_kv_dim(ec) != rd_config_kv_dim(&m->file.cfg)))) {
        memset(res, 0, sizeof *res);
        return rd_error_set(err, "the edit set does not fit the model (width, layers or projection shapes differ)");
    }
    trainer t = {.m = m, .e = e, .o = o, .n_params = rd_edits_param_count(e),
                 .params = rd_edits_params(e)};
    return train_loop(t, train, eval, progress, user, res, err);
}

int rd_train_full(rd_model *m, const rd_dataset *train, const rd_dataset *eval,
                  const rd_train_opts *o, rd_progress_fn progress, void *user,
                  rd_train_result *res, rd_error *err) {
    if (rd_model_make_trainable(m, err)) {
        memset(res, 0, sizeof *res);
        return -1;
    }
    trainer t = {.m = m, .full_model = m, .full = 1, .o = o, .n_params = m->n_params,
                 .params = m->params};
    return train_loop(t, train, eval, progress, user, res, err);
}
