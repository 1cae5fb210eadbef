/* red.train and red.eval (reference: the comment at the top of red.c).
 *
 * Training runs inside one C call (rd_train / rd_train_full). The on_step / on_eval
 * callbacks run in protected mode from the progress callback; an error there is kept in a
 * stack slot, training is told to stop, and the error is raised once rd_train has returned
 * and everything it held is freed. The result's history arrays live in a userdata whose
 * __gc releases them, so building the result table may raise without leaking. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "red_internal.h"
#include "redit/mc.h"
#include "redit/mc_eval.h"
#include "redit/train.h"
#include "redit/train_log.h"

#define RESULT_TYPE "red.train_result"

/* Stack slots of red.train (argument 1 is the options table). */
enum { S_OPTS = 1, S_MODEL, S_EDITS, S_DATA, S_EVAL, S_ON_STEP, S_ON_EVAL, S_ERROR, S_RESULT };

typedef struct train_state {
    int on_step, on_eval; /* stack slots, 0 = no callback */
    int failed;           /* a callback raised: its error is in S_ERROR */
    int requested;        /* a callback returned false */
    const rd_progress *p; /* the event being reported */
} train_state;

static int result_gc(lua_State *L) {
    rd_train_result_release(luaL_checkudata(L, 1, RESULT_TYPE));
    return 0;
}

static void push_progress(lua_State *L, const rd_progress *p) {
    lua_createtable(L, 0, 13);
    rdl_set_str(L, "kind", p->kind == RD_PROGRESS_EVAL ? "eval" : "step");
    rdl_set_int(L, "step", p->step);
    rdl_set_int(L, "total_steps", p->total_steps);
    rdl_set_int(L, "epoch", p->epoch);
    rdl_set_int(L, "epochs", p->epochs);
    rdl_set_num(L, "loss", p->loss);
    if (p->kind == RD_PROGRESS_EVAL) {
        rdl_set_num(L, "eval_loss", p->eval_loss);
        if (isfinite(p->eval_accuracy)) rdl_set_num(L, "eval_accuracy", p->eval_accuracy);
        rdl_set_bool(L, "best", p->best);
    }
    rdl_set_num(L, "lr", p->lr);
    rdl_set_num(L, "grad_norm", p->grad_norm);
    rdl_set_num(L, "tokens_per_s", p->tokens_per_s);
    rdl_set_num(L, "elapsed", p->elapsed);
    rdl_set_num(L, "eta", p->eta);
}

/* Protected: fn(progress table) → its first result. Arguments: the function, the state. */
static int progress_trampoline(lua_State *L) {
    const train_state *s = lua_touserdata(L, 2);
    lua_pushvalue(L, 1);
    push_progress(L, s->p);
    lua_call(L, 1, 1);
    return 1;
}

typedef struct progress_user {
    lua_State *L;
    train_state *s;
} progress_user;

static int on_progress(void *user, const rd_progress *p) {
    progress_user *u = user;
    lua_State *L = u->L;
    train_state *s = u->s;
    if (s->failed) return 1;
    int fn = p->kind == RD_PROGRESS_EVAL ? s->on_eval : s->on_step;
    if (!fn) return 0;
    s->p = p;
    lua_pushcfunction(L, progress_trampoline);
    lua_pushvalue(L, fn);
    lua_pushlightuserdata(L, s);
    if (rdl_pcall(L, 2, 1) != LUA_OK) {
        lua_replace(L, S_ERROR);
        s->failed = 1;
        return 1;
    }
    int stop = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (stop) s->requested = 1;
    return stop;
}

/* Pushes option key as a userdata of type `type` (nil allowed unless required). */
static void *opt_object(lua_State *L, const char *key, const char *type, int required) {
    rdl_opt_push(L, S_OPTS, key);
    if (lua_isnil(L, -1)) {
        if (required) rdl_opt_error(L, S_OPTS, key, lua_pushfstring(L, "a %s is required", type));
        return NULL;
    }
    void *u = luaL_testudata(L, -1, type);
    if (!u) rdl_opt_error(L, S_OPTS, key, lua_pushfstring(L, "%s expected, got %s", type,
                                                          luaL_typename(L, -1)));
    return u;
}

static void opt_function(lua_State *L, const char *key) {
    rdl_opt_push(L, S_OPTS, key);
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        rdl_opt_error(L, S_OPTS, key, lua_pushfstring(L, "function expected, got %s",
                                                      luaL_typename(L, -1)));
}

static rd_train_opts read_train_opts(lua_State *L, const rd_model *m, const rd_dataset *train,
                                     const rd_dataset *eval) {
    rd_train_opts o = rd_train_opts_defaults();
    o.lr = rdl_opt_number(L, S_OPTS, "lr", o.lr);
    o.epochs = (int)rdl_opt_integer(L, S_OPTS, "epochs", 1, 1 << 20, o.epochs);
    o.batch = (int)rdl_opt_integer(L, S_OPTS, "batch", 1, 1 << 20, o.batch);
    o.micro_batch = (int)rdl_opt_integer(L, S_OPTS, "micro_batch", 1, 1 << 20, o.batch);
    int longest = rdl_dataset_longest(train), le = rdl_dataset_longest(eval);
    if (le > longest) longest = le;
    if (longest < 2) longest = 2;
    const int ctx = rd_model_config(m)->seq_len;
    o.max_len = (int)rdl_opt_integer(L, S_OPTS, "max_len", 2, ctx, longest < ctx ? longest : ctx);
    const char *sched = rdl_opt_string(L, S_OPTS, "schedule", NULL);
    if (sched && rd_schedule_from_name(sched, &o.schedule))
        rdl_opt_error(L, S_OPTS, "schedule", "must be linear, cosine or constant");
    o.warmup_ratio = rdl_opt_number(L, S_OPTS, "warmup", o.warmup_ratio);
    o.weight_decay = rdl_opt_number(L, S_OPTS, "weight_decay", o.weight_decay);
    o.clip = rdl_opt_number(L, S_OPTS, "clip", o.clip);
    o.dropout = rdl_opt_number(L, S_OPTS, "dropout", o.dropout);
    o.beta1 = rdl_opt_number(L, S_OPTS, "beta1", o.beta1);
    o.beta2 = rdl_opt_number(L, S_OPTS, "beta2", o.beta2);
    o.seed = (uint64_t)rdl_opt_integer(L, S_OPTS, "seed", 0, LUA_MAXINTEGER, (long long)o.seed);
    o.checkpointing = rdl_opt_bool(L, S_OPTS, "checkpointing", o.checkpointing);
    o.pack = rdl_opt_bool(L, S_OPTS, "pack", o.pack);
    o.group_by_length = rdl_opt_bool(L, S_OPTS, "group_by_length", o.group_by_length);
    o.eval_every = (int)rdl_opt_integer(L, S_OPTS, "eval_every", 0, 1 << 30, o.eval_every);
    o.max_steps = (int)rdl_opt_integer(L, S_OPTS, "max_steps", 0, 1 << 30, o.max_steps);
    /* borrowed from the options table, which stays on the stack while training runs */
    o.state_path = rdl_opt_string(L, S_OPTS, "state", NULL);
    rd_error err = {0};
    if (rd_train_opts_validate(&o, &err)) luaL_argerror(L, S_OPTS, err.msg);
    return o;
}

static void push_result(lua_State *L, const rd_train_result *r) {
    static const char *const why[] = {"done", "requested", "nonfinite"};
    lua_createtable(L, 0, 13);
    rdl_set_int(L, "steps", r->steps);
    if (r->resumed_step) rdl_set_int(L, "resumed_step", r->resumed_step);
    rdl_set_str(L, "stopped", why[r->stopped >= 0 && r->stopped < 3 ? r->stopped : 0]);
    rdl_set_str(L, "message", r->message);
    rdl_push_number_or_nil(L, r->steps ? r->final_loss : NAN);
    lua_setfield(L, -2, "final_loss");
    rdl_push_number_or_nil(L, r->best_eval_loss);
    lua_setfield(L, -2, "best_eval_loss");
    rdl_push_number_or_nil(L, r->best_eval_accuracy);
    lua_setfield(L, -2, "best_eval_accuracy");
    if (r->n_evals) rdl_set_int(L, "best_step", r->best_step);
    rdl_set_num(L, "seconds", r->seconds);
    rdl_set_num(L, "tokens_per_s", r->tokens_per_s);
    rdl_set_int(L, "tokens", (lua_Integer)r->tokens);
    lua_createtable(L, r->steps, 0);
    for (int i = 0; i < r->steps && r->loss_history; i++) {
        lua_pushnumber(L, r->loss_history[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "loss");
    lua_createtable(L, r->n_evals, 0);
    for (int i = 0; i < r->n_evals; i++) {
        lua_createtable(L, 0, 3);
        rdl_set_int(L, "step", r->eval_steps[i]);
        rdl_set_num(L, "loss", r->eval_history[i]);
        if (isfinite(r->eval_accuracy[i])) rdl_set_num(L, "accuracy", r->eval_accuracy[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "eval");
}

static int red_train(lua_State *L) {
    static const char *const known[] = {
        "model", "edits", "data", "eval", "full", "method", "sites", "layers", "scale", "bias",
        "rank", "lora_alpha", "targets", "lora_dropout", "lr", "epochs", "batch", "micro_batch",
        "max_len", "schedule", "warmup", "weight_decay", "clip", "dropout", "beta1", "beta2", "seed",
        "checkpointing", "pack",
        "group_by_length", "eval_every", "max_steps", "compute", "state", "on_step", "on_eval",
        NULL};
    luaL_checktype(L, S_OPTS, LUA_TTABLE);
    rdl_opts_check(L, S_OPTS, known);
    lua_settop(L, S_OPTS);
    rdl_model *um = opt_object(L, "model", RDL_MODEL, 1);
    const int method = rdl_method_opt(L, S_OPTS, 1);
    int full = rdl_opt_bool(L, S_OPTS, "full", 0);
    rdl_opt_push(L, S_OPTS, "method");
    const int method_given = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (full && method_given && method != RDL_METHOD_FULL)
        return rdl_opt_error(L, S_OPTS, "full", lua_pushfstring(L, "full = true is method = "
                                                                   "\"full\", not \"%s\"",
                                                                rd_method_name(method)));
    full |= method == RDL_METHOD_FULL;
    rdl_edits *ue = opt_object(L, "edits", RDL_EDITS, 0);
    rdl_dataset *ud = opt_object(L, "data", RDL_DATASET, 1);
    rdl_dataset *uv = opt_object(L, "eval", RDL_DATASET, 0);
    opt_function(L, "on_step");
    opt_function(L, "on_eval");
    lua_pushnil(L); /* S_ERROR */
    if (!um->m || (ue && !ue->e) || !ud->d || (uv && !uv->d))
        return luaL_error(L, "attempt to use a closed %s",
                          !um->m ? RDL_MODEL : ue && !ue->e ? RDL_EDITS : RDL_DATASET);
    if (ue && full)
        return rdl_opt_error(L, S_OPTS, full && method_given ? "method" : "full",
                             "full fine-tuning trains the model's weights; give no edits");
    static const char *const shape_keys[] = {"sites", "layers", "scale", "bias", "rank",
                                             "lora_alpha", "targets", "lora_dropout"};
    for (size_t i = 0; i < sizeof shape_keys / sizeof *shape_keys; i++) {
        rdl_opt_push(L, S_OPTS, shape_keys[i]);
        const int given = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (given && (ue || full))
            return rdl_opt_error(L, S_OPTS, shape_keys[i],
                                 ue ? "the edits given have their shape already"
                                    : "full fine-tuning trains every weight");
    }
    if (ue && method_given && method != rd_edits_method(ue->e))
        return rdl_opt_error(L, S_OPTS, "method",
                             lua_pushfstring(L, "the edits given are %s's, not %s's",
                                             rd_method_name(rd_edits_method(ue->e)),
                                             rd_method_name(method)));
    rd_model *m = um->m;
    if (ue) rdl_edits_check_fit(L, ue->e, m);
    rd_train_opts o = read_train_opts(L, m, ud->d, uv ? uv->d : NULL);
    rd_error err = {0};
    if (!ue && !full) { /* the edit set of the options, in the edits' slot */
        const int top = lua_gettop(L);
        rd_edit_spec spec;
        rdl_edit_spec_opts(L, S_OPTS, method, "lora_dropout", o.seed, &spec);
        ue = rdl_edits_push_empty(L, S_MODEL);
        if (!(ue->e = rd_edits_new(rd_model_config(m), &spec, &err))) return rdl_raise(L, &err);
        lua_replace(L, S_EDITS);
        lua_settop(L, top);
    }
    const char *compute = rdl_opt_string(L, S_OPTS, "compute", NULL);
    rd_compute mode = RD_COMPUTE_F32;
    if (compute && rd_compute_from_name(compute, &mode))
        rdl_opt_error(L, S_OPTS, "compute", "must be \"f32\", \"bf16\" or \"auto\"");
    if ((compute || full) && um->busy)
        return luaL_error(L, "the red.model is in use (generation or training); it cannot be "
                             "%s now", full ? "fully fine-tuned" : "switched to another compute mode");
    if (compute && rd_model_set_compute(m, mode, 1, &err))
        return rdl_raise(L, &err);
    rd_train_result *res = lua_newuserdatauv(L, sizeof *res, 0); /* S_RESULT */
    memset(res, 0, sizeof *res);
    luaL_setmetatable(L, RESULT_TYPE);
    train_state s = {.on_step = lua_isnil(L, S_ON_STEP) ? 0 : S_ON_STEP,
                     .on_eval = lua_isnil(L, S_ON_EVAL) ? 0 : S_ON_EVAL};
    progress_user pu = {.L = L, .s = &s};
    atomic_int *stop = rdl_stop_flag(L);
    o.stop = stop;
    luaL_checkstack(L, 8, "train");
    um->busy++;
    if (ue) ue->busy++;
    ud->busy++;
    if (uv) uv->busy++;
    int rc = full ? rd_train_full(m, ud->d, uv ? uv->d : NULL, &o, on_progress, &pu, res, &err)
                  : rd_train(m, ue->e, ud->d, uv ? uv->d : NULL, &o, on_progress, &pu, res, &err);
    um->busy--;
    if (ue) ue->busy--;
    ud->busy--;
    if (uv) uv->busy--;
    if (s.failed || rc ||
        (res->stopped == RD_STOP_REQUESTED && !s.requested && atomic_load(stop))) {
        rd_train_result_release(res);
        if (s.failed) {
            lua_pushvalue(L, S_ERROR);
            return lua_error(L);
        }
        if (rc) return rdl_raise(L, &err);
        return luaL_error(L, "interrupted");
    }
    push_result(L, res);
    rd_train_result_release(res);
    rdl_set_str(L, "method", full ? "full" : rd_method_name(rd_edits_method(ue->e)));
    const double n = full ? (double)rd_model_param_count(m) : (double)rd_edits_param_count(ue->e);
    rdl_set_int(L, "params", (lua_Integer)n);
    rdl_set_num(L, "ratio", full ? 1.0 : rd_edits_ratio(ue->e, m));
    if (!full) {
        lua_pushvalue(L, S_EDITS);
        lua_setfield(L, -2, "edits");
    }
    return 1;
}

/* red.eval on a multiple-choice file (a path): {items, style, acc, acc_stderr, acc_norm,
 * acc_norm_stderr, correct = {bool...}, correct_norm = {bool...}}; per_item = FILE writes
 * the per-item JSON lines. */
static int red_eval_mc(lua_State *L, const rd_model *m, const rd_edits *e) {
    static const char *const known[] = {"strength", "max_len", "per_item", NULL};
    rdl_opts_check(L, 4, known);
    const float strength = (float)rdl_opt_number(L, 4, "strength", 1.0);
    const int ctx = rd_model_config(m)->seq_len;
    const int max_len = (int)rdl_opt_integer(L, 4, "max_len", 2, ctx, ctx);
    const char *per_item = NULL;
    if (lua_istable(L, 4)) {
        lua_getfield(L, 4, "per_item");
        if (!lua_isnil(L, -1)) per_item = luaL_checkstring(L, -1); /* stays on the stack */
    }
    rd_error err = {0};
    rd_mc_set *s = rd_mc_load(lua_tostring(L, 3), &err);
    if (!s) return rdl_raise(L, &err);
    const rd_edits_view view = e ? rd_edits_view_at(e, strength) : (rd_edits_view){0};
    rd_mc_scores r;
    if (rd_mc_score(m, e ? &view : NULL, s, max_len, NULL, &r, &err) ||
        (per_item && rd_mc_write_per_item(per_item, s, &r, NULL, &err))) {
        rd_mc_scores_release(&r);
        rd_mc_free(s);
        return rdl_raise(L, &err);
    }
    lua_createtable(L, 0, 8);
    rdl_set_int(L, "items", (lua_Integer)r.n);
    rdl_set_str(L, "style", rd_mc_style_name(rd_mc_style_of(s)));
    rdl_set_num(L, "acc", r.acc);
    rdl_push_number_or_nil(L, r.acc_stderr);
    lua_setfield(L, -2, "acc_stderr");
    rdl_set_num(L, "acc_norm", r.acc_norm);
    rdl_push_number_or_nil(L, r.acc_norm_stderr);
    lua_setfield(L, -2, "acc_norm_stderr");
    for (int k = 0; k < 2; k++) {
        const int *pred = k ? r.pred_norm : r.pred;
        lua_createtable(L, (int)r.n, 0);
        for (size_t i = 0; i < r.n; i++) {
            lua_pushboolean(L, pred[i] == rd_mc_get(s, i)->gold);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, k ? "correct_norm" : "correct");
    }
    rd_mc_scores_release(&r);
    rd_mc_free(s);
    return 1;
}

/* red.mcnemar(b, c): McNemar's exact two-sided p-value for b and c discordant pairs. */
static int red_mcnemar(lua_State *L) {
    const lua_Integer b = luaL_checkinteger(L, 1), c = luaL_checkinteger(L, 2);
    luaL_argcheck(L, b >= 0, 1, "a count (0 or more) expected");
    luaL_argcheck(L, c >= 0, 2, "a count (0 or more) expected");
    lua_pushnumber(L, rd_mcnemar_exact((long)b, (long)c));
    return 1;
}

static int red_eval(lua_State *L) {
    const rd_model *m = rdl_check_model(L, 1)->m;
    const rd_edits *e = NULL;
    if (!lua_isnoneornil(L, 2)) {
        if (!luaL_testudata(L, 2, RDL_EDITS))
            return luaL_argerror(L, 2, lua_pushfstring(L, "red.edits or nil expected, got %s",
                                                       luaL_typename(L, 2)));
        e = rdl_check_edits(L, 2)->e;
        rdl_edits_check_fit(L, e, m);
    }
    if (lua_type(L, 3) == LUA_TSTRING) return red_eval_mc(L, m, e);
    const rd_dataset *d = rdl_check_dataset(L, 3)->d;
    static const char *const known[] = {"strength", "batch", "max_len", NULL};
    rdl_opts_check(L, 4, known);
    float strength = (float)rdl_opt_number(L, 4, "strength", 1.0);
    int batch = (int)rdl_opt_integer(L, 4, "batch", 1, 4096, 8);
    const int ctx = rd_model_config(m)->seq_len;
    int longest = rdl_dataset_longest(d);
    if (longest < 2) longest = 2;
    int max_len = (int)rdl_opt_integer(L, 4, "max_len", 2, ctx, longest < ctx ? longest : ctx);
    rd_eval_metrics r;
    rd_error err = {0};
    if (rd_evaluate(m, e, strength, d, batch, max_len, &r, &err)) return rdl_raise(L, &err);
    lua_createtable(L, 0, 9);
    rdl_push_number_or_nil(L, r.loss);
    lua_setfield(L, -2, "loss");
    rdl_push_number_or_nil(L, r.perplexity);
    lua_setfield(L, -2, "perplexity");
    rdl_set_int(L, "tokens", (lua_Integer)r.tokens);
    rdl_set_int(L, "bytes", (lua_Integer)r.bytes);
    rdl_push_number_or_nil(L, rd_eval_bits_per_byte(&r));
    lua_setfield(L, -2, "bits_per_byte");
    if (r.n_examples > 0) {
        rdl_push_number_or_nil(L, r.accuracy);
        lua_setfield(L, -2, "accuracy");
        rdl_push_number_or_nil(L, r.mcc);
        lua_setfield(L, -2, "mcc");
        rdl_push_number_or_nil(L, r.f1);
        lua_setfield(L, -2, "f1");
        rdl_set_int(L, "examples", r.n_examples);
    }
    return 1;
}

/* red.follow(log_path): a snapshot of a training run's --log CSV, running or finished
 * (rd_train_log_read): {done, steps = {step…}, loss = {…}, evals = {{step=, loss=,
 * accuracy=}…}, tokens_per_s, elapsed}. */
static int red_follow(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    rd_train_log log;
    rd_error err = {0};
    if (rd_train_log_read(path, &log, &err)) return luaL_error(L, "%s", err.msg);
    lua_createtable(L, 0, 6);
    lua_pushboolean(L, log.done);
    lua_setfield(L, -2, "done");
    lua_createtable(L, (int)log.n_steps, 0);
    for (size_t i = 0; i < log.n_steps; i++) {
        lua_pushinteger(L, log.step[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "steps");
    lua_createtable(L, (int)log.n_steps, 0);
    for (size_t i = 0; i < log.n_steps; i++) {
        lua_pushnumber(L, log.loss[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "loss");
    lua_createtable(L, (int)log.n_evals, 0);
    for (size_t i = 0; i < log.n_evals; i++) {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, log.eval_step[i]);
        lua_setfield(L, -2, "step");
        rdl_set_num(L, "loss", log.eval_loss[i]);
        if (!isnan(log.eval_accuracy[i])) rdl_set_num(L, "accuracy", log.eval_accuracy[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "evals");
    rdl_set_num(L, "tokens_per_s", log.tokens_per_s);
    rdl_set_num(L, "elapsed", log.elapsed);
    rd_train_log_release(&log);
    return 1;
}

void rdl_open_train(lua_State *L) {
    luaL_newmetatable(L, RESULT_TYPE);
    lua_pushcfunction(L, result_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_pushcfunction(L, red_train);
    lua_setfield(L, -2, "train");
    lua_pushcfunction(L, red_eval);
    lua_setfield(L, -2, "eval");
    lua_pushcfunction(L, red_follow);
    lua_setfield(L, -2, "follow");
    lua_pushcfunction(L, red_mcnemar);
    lua_setfield(L, -2, "mcnemar");
}
