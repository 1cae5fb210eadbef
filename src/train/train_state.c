/* The trainer's resumable state: a safetensors file with the trained numbers, AdamW's
 * moments and the best evaluation's numbers, and a JSON metadata entry with the rest. */
#include "train_state.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/safetensors.h"

#define STATE_KEY "redit.train_state"
#define STATE_VERSION 1

static const char *const TENSOR_NAMES[4] = {"params", "adam_m", "adam_v", "best"};

/* The array named TENSOR_NAMES[i]. */
static float *array_at(const train_arrays *a, int i) {
    return i == 0 ? a->params : i == 1 ? a->adam_m : i == 2 ? a->adam_v : a->best;
}

/* JSON null for NAN (JSON has no NaN), else the number in 17 digits, which reads back as
 * the same double (cJSON's own printing keeps 15 digits when they compare equal within
 * DBL_EPSILON, which would move the resumed history by an ulp). */
static cJSON *number_or_null(double x) {
    char buf[32];
    if (!isfinite(x)) return cJSON_CreateNull();
    snprintf(buf, sizeof buf, "%.17g", x);
    return cJSON_CreateRaw(buf);
}

static cJSON *state_json(const char *setup, const train_position *pos,
                         const rd_train_result *res) {
    cJSON *o = cJSON_CreateObject();
    cJSON *loss = cJSON_CreateArray(), *evals = cJSON_CreateArray();
    char rng[2][24], tokens[24];
    snprintf(rng[0], sizeof rng[0], "%016" PRIx64, pos->data_rng);
    snprintf(rng[1], sizeof rng[1], "%016" PRIx64, pos->drop_rng);
    snprintf(tokens, sizeof tokens, "%" PRIu64, res->tokens);
    if (!o || !loss || !evals || !cJSON_AddNumberToObject(o, "version", STATE_VERSION) ||
        !cJSON_AddStringToObject(o, "setup", setup) ||
        !cJSON_AddNumberToObject(o, "step", pos->step) ||
        !cJSON_AddNumberToObject(o, "epoch", pos->epoch) ||
        !cJSON_AddNumberToObject(o, "step_in_epoch", pos->step_in_epoch) ||
        !cJSON_AddStringToObject(o, "data_rng", rng[0]) ||
        !cJSON_AddStringToObject(o, "drop_rng", rng[1]) ||
        !cJSON_AddNumberToObject(o, "train_seconds", pos->train_seconds) ||
        !cJSON_AddStringToObject(o, "tokens", tokens) ||
        !cJSON_AddItemToObject(o, "best_loss", number_or_null(res->best_eval_loss)) ||
        !cJSON_AddItemToObject(o, "best_accuracy", number_or_null(res->best_eval_accuracy)) ||
        !cJSON_AddNumberToObject(o, "best_step", res->best_step)) {
        cJSON_Delete(loss);
        cJSON_Delete(evals);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(o, "loss", loss);
    cJSON_AddItemToObject(o, "evals", evals);
    for (int i = 0; i < pos->step; i++)
        if (!cJSON_AddItemToArray(loss, number_or_null(res->loss_history[i]))) goto fail;
    for (int i = 0; i < res->n_evals; i++) {
        cJSON *ev = cJSON_CreateArray();
        if (!ev || !cJSON_AddItemToArray(evals, ev) ||
            !cJSON_AddItemToArray(ev, cJSON_CreateNumber(res->eval_steps[i])) ||
            !cJSON_AddItemToArray(ev, number_or_null(res->eval_history[i])) ||
            !cJSON_AddItemToArray(ev, number_or_null(res->eval_accuracy[i])))
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

int train_state_save(const char *path, const char *setup, const train_arrays *a,
                     const train_position *pos, const rd_train_result *res, rd_error *err) {
    cJSON *o = state_json(setup, pos, res);
    char *json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    rd_st_writer *w = json ? rd_st_writer_new(err) : NULL;
    int rc = -1;
    if (!json) {
        rd_error_set(err, "%s: out of memory for the training state", path);
        goto done;
    }
    if (!w) goto done;
    const int64_t shape[1] = {(int64_t)a->n};
    for (int i = 0; i < 4; i++)
        if (rd_st_writer_add(w, TENSOR_NAMES[i], RD_DTYPE_F32, shape, 1, array_at(a, i), err))
            goto done;
    if (rd_st_writer_meta(w, STATE_KEY, json, err) || rd_st_writer_commit(w, path, err)) goto done;
    rc = 0;
done:
    rd_st_writer_free(w);
    free(json);
    return rc;
}

/* ---- reading -------------------------------------------------------------------------- */

/* The setup texts are "key=value;key=value;…". The item of `setup` that equals s[0, n)
 * (whole = 1) or starts with it (whole = 0, s a "key="), with its length in *len; NULL when
 * there is none. */
static const char *find_item(const char *setup, const char *s, size_t n, int whole,
                             size_t *len) {
    for (const char *q = setup; *q;) {
        const char *end = strchr(q, ';');
        const size_t ql = end ? (size_t)(end - q) : strlen(q);
        if ((whole ? ql == n : ql >= n) && !memcmp(q, s, n)) {
            *len = ql;
            return q;
        }
        q += ql + (end ? 1 : 0);
    }
    return NULL;
}

/* For the refusal: the first item of `want` that `have` lacks ("lr=0.02") and what `have`
 * says for its key ("lr=0.05", or "no lr"). */
static void first_difference(const char *have, const char *want, char *want_item,
                             char *have_item, size_t cap) {
    snprintf(want_item, cap, "(the items' order)");
    snprintf(have_item, cap, "(the same items)");
    size_t len, hl;
    for (const char *p = want; *p; p += len + (p[len] ? 1 : 0)) {
        const char *end = strchr(p, ';');
        len = end ? (size_t)(end - p) : strlen(p);
        if (find_item(have, p, len, 1, &hl)) continue;
        snprintf(want_item, cap, "%.*s", (int)len, p);
        const char *eq = memchr(p, '=', len);
        const size_t klen = eq ? (size_t)(eq - p) + 1 : len;
        const char *h = find_item(have, p, klen, 0, &hl);
        if (h) snprintf(have_item, cap, "%.*s", (int)hl, h);
        else snprintf(have_item, cap, "no %.*s", (int)(eq ? klen - 1 : klen), p);
        return;
    }
}

static int get_int(const cJSON *o, const char *key, int lo, int hi, int *out, const char *path,
                   rd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return rd_error_set(err, "%s: training state field \"%s\" is missing or not a whole "
                                 "number in [%d, %d]", path, key, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

/* A number, or NAN for null. */
static int get_real(const cJSON *v, double *out) {
    if (cJSON_IsNull(v)) *out = NAN;
    else if (cJSON_IsNumber(v)) *out = v->valuedouble;
    else return -1;
    return 0;
}

static int get_u64(const cJSON *o, const char *key, int base, uint64_t *out, const char *path,
                   rd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char *end = NULL;
    if (cJSON_IsString(v) && v->valuestring && *v->valuestring) {
        *out = strtoull(v->valuestring, &end, base);
        if (*end == '\0') return 0;
    }
    return rd_error_set(err, "%s: training state field \"%s\" is missing or not a %s number",
                        path, key, base == 16 ? "hexadecimal" : "decimal");
}

static int read_history(const cJSON *o, int step, rd_train_result *res, const char *path,
                        rd_error *err) {
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(o, "loss");
    if (!cJSON_IsArray(loss) || cJSON_GetArraySize(loss) != step)
        return rd_error_set(err, "%s: training state field \"loss\" is not a list of %d losses",
                            path, step);
    int i = 0;
    for (const cJSON *v = loss->child; v; v = v->next, i++)
        if (get_real(v, &res->loss_history[i]))
            return rd_error_set(err, "%s: training state loss %d is not a number", path, i + 1);
    const cJSON *evals = cJSON_GetObjectItemCaseSensitive(o, "evals");
    const int n = cJSON_IsArray(evals) ? cJSON_GetArraySize(evals) : -1;
    if (n < 0 || n > step)
        return rd_error_set(err, "%s: training state field \"evals\" is not a list of at most "
                                 "%d evaluations", path, step);
    res->eval_history = malloc(sizeof(double) * (size_t)(n ? n : 1));
    res->eval_accuracy = malloc(sizeof(double) * (size_t)(n ? n : 1));
    res->eval_steps = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!res->eval_history || !res->eval_accuracy || !res->eval_steps)
        return rd_error_set(err, "%s: out of memory for %d evaluations", path, n);
    for (const cJSON *ev = evals->child; ev; ev = ev->next) {
        const int k = res->n_evals;
        const cJSON *s = cJSON_GetArrayItem(ev, 0);
        if (!cJSON_IsArray(ev) || cJSON_GetArraySize(ev) != 3 || !cJSON_IsNumber(s) ||
            s->valuedouble != floor(s->valuedouble) || s->valuedouble < 1 ||
            s->valuedouble > step || get_real(cJSON_GetArrayItem(ev, 1), &res->eval_history[k]) ||
            get_real(cJSON_GetArrayItem(ev, 2), &res->eval_accuracy[k]))
            return rd_error_set(err, "%s: training state evaluation %d is not [step ≤ %d, loss, "
                                     "accuracy]", path, k + 1, step);
        res->eval_steps[k] = (int)s->valuedouble;
        res->n_evals++;
    }
    double best_loss, best_acc;
    if (get_real(cJSON_GetObjectItemCaseSensitive(o, "best_loss"), &best_loss) ||
        get_real(cJSON_GetObjectItemCaseSensitive(o, "best_accuracy"), &best_acc) ||
        get_int(o, "best_step", 0, step, &res->best_step, path, err))
        return rd_error_set(err, "%s: training state's best evaluation (best_loss, "
                                 "best_accuracy, best_step) is malformed", path);
    res->best_eval_loss = best_loss;
    res->best_eval_accuracy = best_acc;
    res->final_loss = step > 0 ? res->loss_history[step - 1] : 0.0;
    return get_u64(o, "tokens", 10, &res->tokens, path, err);
}

int train_state_load(const char *path, const char *setup, const char *old_setup, int total,
                     train_arrays *a, train_position *pos, rd_train_result *res,
                     rd_error *err) {
    rd_st_file *f = rd_st_open(path, err);
    if (!f) return -1;
    int rc = -1;
    cJSON *o = NULL;
    const char *json = rd_st_metadata(f, STATE_KEY);
    if (!json) {
        rd_error_set(err, "%s: not a training state (no \"%s\" metadata)", path, STATE_KEY);
        goto done;
    }
    if (!(o = cJSON_Parse(json)) || !cJSON_IsObject(o)) {
        rd_error_set(err, "%s: the training state's metadata is not a JSON object", path);
        goto done;
    }
    int version = 0;
    if (get_int(o, "version", 0, 1 << 30, &version, path, err)) goto done;
    if (version != STATE_VERSION) {
        rd_error_set(err, "%s: training state version %d; this redit reads version %d", path,
                     version, STATE_VERSION);
        goto done;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "setup");
    if (!cJSON_IsString(s) || !s->valuestring) {
        rd_error_set(err, "%s: training state field \"setup\" is missing", path);
        goto done;
    }
    res->resumed_sampled = strcmp(s->valuestring, setup) != 0 && old_setup &&
                           strcmp(s->valuestring, old_setup) == 0;
    if (strcmp(s->valuestring, setup) && !res->resumed_sampled) {
        char want[160], have[160];
        first_difference(s->valuestring, setup, want, have, sizeof want);
        rd_error_set(err, "%s: the training state was written for %s, this run has %s: resume "
                          "with the same data, options and model, or remove the file to start "
                          "afresh", path, have, want);
        goto done;
    }
    if (get_int(o, "step", 0, total, &pos->step, path, err) ||
        get_int(o, "epoch", 0, 1 << 30, &pos->epoch, path, err) ||
        get_int(o, "step_in_epoch", 0, pos->step, &pos->step_in_epoch, path, err) ||
        get_u64(o, "data_rng", 16, &pos->data_rng, path, err) ||
        get_u64(o, "drop_rng", 16, &pos->drop_rng, path, err))
        goto done;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "train_seconds");
    pos->train_seconds = cJSON_IsNumber(ts) && ts->valuedouble >= 0 ? ts->valuedouble : 0.0;
    if ((pos->step > 0) != (pos->epoch > 0) || (pos->step > 0 && pos->step_in_epoch < 1)) {
        rd_error_set(err, "%s: training state position (step %d, epoch %d, step %d of it) is "
                          "inconsistent", path, pos->step, pos->epoch, pos->step_in_epoch);
        goto done;
    }
    for (int i = 0; i < 4; i++) {
        const rd_st_tensor *t = rd_st_find(f, TENSOR_NAMES[i]);
        if (!t || !t->has_rd_dtype || t->type != RD_DTYPE_F32 || t->n_dims != 1 ||
            t->n_elems != a->n) {
            rd_error_set(err, "%s: training state tensor \"%s\" is missing or not F32 [%zu] "
                              "(the trained numbers of this run)", path, TENSOR_NAMES[i], a->n);
            goto done;
        }
        memcpy(array_at(a, i), t->data, a->n * sizeof(float));
    }
    if (read_history(o, pos->step, res, path, err)) goto done;
    rc = 0;
done:
    cJSON_Delete(o);
    rd_st_close(f);
    return rc;
}
