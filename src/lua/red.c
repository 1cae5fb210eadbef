/* The `red` Lua module: the module table, the state and script runner, stop requests, and
 * the helpers the other binding files share (red_internal.h).
 *
 * ==== Reference ============================================================================
 * Objects are userdata: red.model, red.edits, red.dataset. Each has :close() (also __close,
 * so `local m <close> = red.load(p)` works, and __gc); using a closed object raises
 * "attempt to use a closed red.model". Engine errors are Lua errors carrying the engine's
 * message (which names the file); wrong arguments raise "bad argument #n to 'f' (…)";
 * unknown option names are refused. Layers count from 0 as in the CLI and edit files.
 *
 * red.version                         redit's release number, "0.20.0" (redit/version.h: the
 *                                     number `redit --version` shows)
 * red.threads([n])                    sets OpenBLAS's thread count (n <= 0: all cores);
 *                                     returns the previous count
 * red.load(path [, {tokenizer=file}]) → model (GGUF, Hugging Face folder or llama2.c .bin,
 *                                     detected from content)
 *   m:info()    → {format, name, path, type ("F32", or "Q8_0, F32" when mixed), types
 *                  ({F32 = 15, …} matrices per type), dim, hidden_dim, layers, heads,
 *                  kv_heads, head_dim, vocab, context, norm_eps, rope_theta, tied, params,
 *                  tokenizer (bool), bos, eos, compute, nonfinite (only when a weight is NaN
 *                  or Inf: which tensor and row, rd_model_nonfinite)}
 *   m:tokenize(text [, {bos=false, eos=false}]) → {ids…}
 *   m:detokenize(ids) → text
 *   m:generate(prompt, opts) → text, stats
 *       prompt: text (BOS added) or an array of ids. opts: max_tokens (256), temperature,
 *       top_k, top_p, repeat_penalty, no_repeat_ngram, seed (defaults as `redit generate`),
 *       stop_at_eos (true), template (a data template name or string: the prompt is rendered
 *       as its prompt part exactly as training saw it, e.g. "red" → "Human: {prompt}\n\n
 *       Assistant:"), system (for templates with a system slot), edits (a red.edits, or nil
 *       for the base model), strength (α, default 1: s' = 1 + α(s − 1), b' = α·b),
 *       on_token = function(text, id) called per generated token (return false to stop).
 *       stats = {prompt_tokens, tokens, ids = {…}, stopped = "length"|"eos"|"callback"|
 *       "context", prefill_seconds, decode_seconds}
 *   m:edits{method="red"|"lora"|"ia3", layers="all"|"0-3,5"|{0,1,…}, RED: sites="ffn"|
 *       "attn"|"both", scale=true, bias=true; LoRA: rank=8, lora_alpha=8, targets="q,v"|
 *       "all"|{"q","v"}, dropout=0, seed=42 (A's init)} → a fresh edit set (the identity:
 *       RED s = 1, b = 0; LoRA A drawn, B = 0; IA3 1); another method's option raises
 *   m:dataset(path [, opts]) → red.dataset(path, opts) with this model's tokenizer
 *   m:compute(["f32"|"bf16"|"auto"]) → the compute mode (sets it when given; see model.h;
 *       bf16 and auto also decode quantized weights with 8-bit activation products)
 * red.load_edits(path, model [, {force=true}]) → edits, training options (JSON text or nil)
 *   e:params()  → trainable numbers;  e:ratio() → model parameters / e:params()
 *   e:info()    → {method, layers, dim, n_layers, params, ratio; RED: sites, scale, bias;
 *                  LoRA: rank, lora_alpha, targets ("q,v"), dropout}
 *   e:save(path [, training_json])    edit file (safetensors) for the model e was made for
 *   e:clone()   → an independent copy
 *   e:vector(layer, "ffn"|"attn", "scale"|"bias") → Lua array copy, or nil when the set
 *                 does not store that vector (scale 1 / bias 0 then)
 *   e:set_vector(layer, site, kind, values)   writes a stored vector
 *   e:compare(other) → {max_abs_scale, max_abs_bias, l2, cosine}: the raw vectors compared
 *                 (absent vectors taken at identity): max |s1 − s2|, max |b1 − b2|, the l2
 *                 norm of the whole difference, and the cosine between the two offsets from
 *                 identity (s − 1, b) (nil when either is the identity)
 *   e:vector, e:set_vector, e:compare, e1 + e2, e1 - e2 and -e are RED's (other methods
 *   raise); e * k works for every method (LoRA: B·k; IA3: 1 + k(s − 1)).
 *   Arithmetic, per edited site, with h' = s ⊙ h + b (all ops make new edit sets):
 *     e * k, k * e   scaled towards identity: s' = 1 + k(s − 1), b' = k·b (= strength k;
 *                    e * 0 is the identity, e * 1 a copy; e * 2 is not e + e)
 *     e1 + e2        e1 then e2 on the same sub-layer output: h'' = s2 ⊙ (s1 ⊙ h + b1) + b2,
 *                    i.e. s = s2 ⊙ s1, b = s2 ⊙ b1 + b2 (not commutative)
 *     -e             the inverse edit: s' = 1/s, b' = −b/s, so e + (-e) is the identity
 *     e1 - e2        e1 + (-e2): e1 then undo e2: s = s1/s2, b = (b1 − b2)/s2; so
 *                    (e1 - e2) + e2 == e1 and e - e is the identity
 *   Operands must come from models of the same width and layer count; the result edits the
 *   union of both operands' sites and layers and stores scale/bias when either does. A zero
 *   scale entry cannot be inverted (error naming layer, site and index).
 * red.dataset(path, {model=m, format, template, max_len, mask_prompt, skip_bad_lines,
 *             system}) → dataset (model: whose tokenizer encodes the data; max_len defaults
 *             to min(512, context))
 *   d:size() (also #d), d:info() → {size, format, skipped, truncated, dropped, loss_tokens,
 *   labels = {…}}, d:split(frac [, seed=42]) → train, held_out (new datasets),
 *   d:sample(i) (1-based) → {ids, loss (0/1 per position), n_prompt, prompt, answer, label
 *   (the label word or nil), label_index (1-based or nil)}
 * red.train{model, edits, method, data, eval, full=false, sites, layers, scale, bias, rank,
 *           lora_alpha, targets, lora_dropout, lr, epochs, batch, micro_batch, max_len,
 *           schedule, warmup, weight_decay, clip, dropout, beta1, beta2, seed, checkpointing, pack,
 *           group_by_length, eval_every, max_steps, compute="f32"|"bf16"|"auto", state=path,
 *           on_step=fn(t), on_eval=fn(t)}
 *           → result (state: a training state file, kept and resumed as rd_train_opts.state_path;
 *           result.resumed_step then says where a resume began)
 *   edits is trained in place (with an eval set it ends holding the best edits); without
 *   edits a fresh set is made from method (red by default) and its shape options (as
 *   m:edits; LoRA's dropout is lora_dropout here, A's init follows seed) and returned as
 *   result.edits; method = "full" (or full = true, no edits) trains every weight of model in
 *   place. result.method, result.params (trained numbers) and result.ratio (model
 *   parameters / params; 1 for full) say what was trained. Defaults are redit's (train.h);
 *   micro_batch defaults to batch, max_len to the longest example. compute sets the model's
 *   mode for good. Callbacks get {kind = "step"|"eval", step, total_steps, epoch, epochs,
 *   loss, eval_loss, eval_accuracy (classification sets), best, lr, grad_norm, tokens_per_s,
 *   elapsed, eta}; returning false stops
 *   training cleanly (stopped = "requested"); an error in a callback stops training and is
 *   raised by red.train once everything is freed. result = {steps, stopped = "done"|
 *   "requested"|"nonfinite", message, final_loss, best_eval_loss, best_eval_accuracy
 *   (classification sets: it picks the best evaluation), best_step, seconds,
 *   tokens_per_s, tokens, loss = {per step…}, eval = {{step=, loss=, accuracy=}…}} (accuracy
 *   on classification sets only)
 * red.follow(log_path) → a snapshot of a training run's --log CSV, running (FILE.partial) or
 *   finished: {done, steps = {…}, loss = {…}, evals = {{step=, loss=, accuracy=}…},
 *   tokens_per_s, elapsed} (a run under mpirun or on another machine, docs/cluster.md)
 * red.eval(model, edits|nil, data [, {strength=1, batch=8, max_len}]) → {loss, perplexity,
 *   tokens, bytes, bits_per_byte, accuracy, mcc, f1, examples} (bytes: the text the scored
 *   tokens stand for, bits_per_byte nil when 0; the last four for classification sets, else
 *   nil)
 * red.eval(model, edits|nil, "items.jsonl" [, {strength=1, max_len, per_item=FILE}]) → a
 *   multiple-choice file (redit/mc.h) scored as lm-evaluation-harness does: {items, style,
 *   acc, acc_stderr, acc_norm, acc_norm_stderr, correct = {bool…}, correct_norm = {bool…}}
 * red.mcnemar(b, c) → McNemar's exact two-sided p-value for b and c discordant pairs
 * A stop request (Ctrl-C in `redit run`) raises "interrupted" in Lua code and ends training
 * or generation at the next step or token, which then raises "interrupted" as well.
 * ========================================================================================== */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "red_internal.h"
#include "redit/lua_red.h"
#include "redit/train.h"
#include "redit/version.h"

#define SHARED_KEY "red.shared"
#define SCRATCH_TYPE "red.scratch"
#define HOOK_COUNT 1000

/* Per-state data reachable from the state's extra space (the main thread's slot, which
 * coroutines copy): the stop flag and the last run's error. A userdata in the registry, so
 * lua_close frees it. */
typedef struct rdl_shared {
    atomic_int stop;
    char *last_error; /* malloc'ed, or NULL */
} rdl_shared;

static rdl_shared *shared_of(lua_State *L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *mainL = lua_tothread(L, -1);
    lua_pop(L, 1);
    return *(rdl_shared **)lua_getextraspace(mainL);
}

atomic_int *rdl_stop_flag(lua_State *L) { return &shared_of(L)->stop; }

static int shared_gc(lua_State *L) {
    rdl_shared *s = lua_touserdata(L, 1);
    free(s->last_error);
    s->last_error = NULL;
    return 0;
}

/* Raises "interrupted" in Lua code while the stop flag is set. From then on the hook runs
 * at every instruction until the flag is cleared (restore_hook), so a script whose pcall
 * caught the error is hit again in the instructions outside its pcall. */
static void stop_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    if (!atomic_load_explicit(rdl_stop_flag(L), memory_order_relaxed)) return;
    lua_sethook(L, stop_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "interrupted");
}

/* Back to a check every HOOK_COUNT instructions (after the flag is cleared). */
static void restore_hook(lua_State *L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *mainL = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_sethook(mainL, stop_hook, LUA_MASKCOUNT, HOOK_COUNT);
    if (L != mainL) lua_sethook(L, stop_hook, LUA_MASKCOUNT, HOOK_COUNT);
}

/* Creates the shared block and the hook once per state (the registry says whether). */
static void ensure_shared(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, SHARED_KEY) == LUA_TUSERDATA) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    rdl_shared *s = lua_newuserdatauv(L, sizeof *s, 0);
    atomic_init(&s->stop, 0);
    s->last_error = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, shared_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, SHARED_KEY);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *mainL = lua_tothread(L, -1);
    lua_pop(L, 1);
    *(rdl_shared **)lua_getextraspace(mainL) = s;
    if (L != mainL) *(rdl_shared **)lua_getextraspace(L) = s;
    lua_sethook(mainL, stop_hook, LUA_MASKCOUNT, HOOK_COUNT);
    if (L != mainL) lua_sethook(L, stop_hook, LUA_MASKCOUNT, HOOK_COUNT);
}

/* ---- calling Lua from C ----------------------------------------------------------- */

/* Message handler: the error as text plus a traceback (once: a message that already carries
 * one, re-raised from a callback, is kept as it is). An error object that is not a string
 * and has no __tostring is passed through unchanged (a script's pcall gets its table). */
static int traceback_handler(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        lua_settop(L, 1);
        return 1;
    }
    const char *msg = lua_tostring(L, 1);
    if (strstr(msg, "\nstack traceback:")) {
        lua_pushstring(L, msg);
        return 1;
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int rdl_pcall(lua_State *L, int nargs, int nresults) {
    int base = lua_gettop(L) - nargs; /* the function */
    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return rc;
}

/* ---- types, errors, options ------------------------------------------------------- */

void rdl_new_type(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta) {
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int rdl_raise(lua_State *L, const rd_error *err) {
    luaL_error(L, "%s", err->msg[0] ? err->msg : "unknown error");
    __builtin_unreachable(); /* luaL_error longjmps */
}

const char *rdl_check_string(lua_State *L, int idx, size_t *len) {
    if (lua_type(L, idx) != LUA_TSTRING) luaL_typeerror(L, idx, "string");
    return lua_tolstring(L, idx, len);
}

static int closed_error(lua_State *L, const char *type) {
    return luaL_error(L, "attempt to use a closed %s", type);
}

rdl_model *rdl_check_model(lua_State *L, int idx) {
    rdl_model *u = luaL_checkudata(L, idx, RDL_MODEL);
    if (!u->m) closed_error(L, RDL_MODEL);
    return u;
}

rdl_edits *rdl_check_edits(lua_State *L, int idx) {
    rdl_edits *u = luaL_checkudata(L, idx, RDL_EDITS);
    if (!u->e) closed_error(L, RDL_EDITS);
    return u;
}

rdl_dataset *rdl_check_dataset(lua_State *L, int idx) {
    rdl_dataset *u = luaL_checkudata(L, idx, RDL_DATASET);
    if (!u->d) closed_error(L, RDL_DATASET);
    return u;
}

int rdl_opt_error(lua_State *L, int arg, const char *key, const char *what) {
    luaL_argerror(L, arg, lua_pushfstring(L, "option '%s': %s", key, what));
    __builtin_unreachable(); /* luaL_argerror longjmps */
}

void rdl_opts_check(lua_State *L, int arg, const char *const *known) {
    if (lua_isnoneornil(L, arg)) return;
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        lua_pop(L, 1); /* the value */
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "options are named (key = value); got a %s key",
                                                  luaL_typename(L, -1)));
        const char *k = lua_tostring(L, -1);
        int ok = 0;
        for (const char *const *p = known; *p && !ok; p++) ok = strcmp(*p, k) == 0;
        if (!ok) luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", k));
    }
}

void rdl_opt_push(lua_State *L, int arg, const char *key) {
    if (lua_type(L, arg) == LUA_TTABLE) lua_getfield(L, arg, key);
    else lua_pushnil(L);
}

static int opt_type_error(lua_State *L, int arg, const char *key, const char *want) {
    return rdl_opt_error(L, arg, key, lua_pushfstring(L, "%s expected, got %s", want,
                                                      luaL_typename(L, -1)));
}

double rdl_opt_number(lua_State *L, int arg, const char *key, double def) {
    arg = lua_absindex(L, arg);
    rdl_opt_push(L, arg, key);
    double v = def;
    if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tonumber(L, -1);
    else if (!lua_isnil(L, -1)) opt_type_error(L, arg, key, "number");
    lua_pop(L, 1);
    if (!isfinite(v)) rdl_opt_error(L, arg, key, "must be a finite number");
    return v;
}

long long rdl_opt_integer(lua_State *L, int arg, const char *key, long long lo, long long hi,
                          long long def) {
    arg = lua_absindex(L, arg);
    rdl_opt_push(L, arg, key);
    long long v = def;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        int ok;
        v = (long long)lua_tointegerx(L, -1, &ok);
        if (!ok) opt_type_error(L, arg, key, "integer");
        if (v < lo || v > hi)
            rdl_opt_error(L, arg, key, lua_pushfstring(L, "%I is out of range [%I, %I]",
                                                       (lua_Integer)v, (lua_Integer)lo,
                                                       (lua_Integer)hi));
    } else if (!lua_isnil(L, -1)) {
        opt_type_error(L, arg, key, "integer");
    }
    lua_pop(L, 1);
    return v;
}

int rdl_opt_bool(lua_State *L, int arg, const char *key, int def) {
    arg = lua_absindex(L, arg);
    rdl_opt_push(L, arg, key);
    int v = def;
    if (lua_type(L, -1) == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1)) opt_type_error(L, arg, key, "boolean");
    lua_pop(L, 1);
    return v;
}

const char *rdl_opt_string(lua_State *L, int arg, const char *key, const char *def) {
    arg = lua_absindex(L, arg);
    rdl_opt_push(L, arg, key);
    const char *v = def;
    if (lua_type(L, -1) == LUA_TSTRING) v = lua_tostring(L, -1); /* anchored in the table */
    else if (!lua_isnil(L, -1)) opt_type_error(L, arg, key, "string");
    lua_pop(L, 1);
    return v;
}

/* ---- scratch buffers and arrays --------------------------------------------------- */

void rdl_scratch_release(rdl_scratch *s) {
    for (int i = 0; i < RDL_SCRATCH_SLOTS; i++) {
        if (s->p[i] && s->f[i]) s->f[i](s->p[i]);
        s->p[i] = NULL;
        s->f[i] = NULL;
    }
}

static int scratch_gc(lua_State *L) {
    rdl_scratch_release(lua_touserdata(L, 1));
    return 0;
}

rdl_scratch *rdl_scratch_new(lua_State *L) {
    rdl_scratch *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, SCRATCH_TYPE);
    return s;
}

void rdl_scratch_set(rdl_scratch *s, int i, void *p, void (*f)(void *)) {
    s->p[i] = p;
    s->f[i] = f;
}

int *rdl_check_int_array(lua_State *L, int idx, long long lo, long long hi, size_t *n) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer len = luaL_len(L, idx);
    if (len < 0 || len > (1 << 26)) luaL_argerror(L, idx, "array length out of range");
    int *v = lua_newuserdatauv(L, sizeof(int) * (size_t)(len ? len : 1), 0);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_geti(L, idx, i);
        int ok;
        lua_Integer x = lua_tointegerx(L, -1, &ok);
        if (!ok)
            luaL_argerror(L, idx, lua_pushfstring(L, "element %I is not an integer (%s)", i,
                                                  luaL_typename(L, -1)));
        if (x < lo || x > hi)
            luaL_argerror(L, idx, lua_pushfstring(L, "element %I (%I) is out of range [%I, %I]",
                                                  i, x, (lua_Integer)lo, (lua_Integer)hi));
        v[i - 1] = (int)x;
        lua_pop(L, 1);
    }
    *n = (size_t)len;
    return v;
}

void rdl_push_int_array(lua_State *L, const int *v, size_t n) {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

void rdl_push_float_array(lua_State *L, const float *v, size_t n) {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushnumber(L, (lua_Number)v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

void rdl_push_number_or_nil(lua_State *L, double x) {
    if (isnan(x)) lua_pushnil(L);
    else lua_pushnumber(L, x);
}

void rdl_set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

void rdl_set_num(lua_State *L, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

void rdl_set_str(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

void rdl_set_bool(lua_State *L, const char *k, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* ---- the module ------------------------------------------------------------------- */

static int red_threads(lua_State *L) {
    int prev = openblas_get_num_threads();
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer n = luaL_checkinteger(L, 1);
        luaL_argcheck(L, n <= 4096, 1, "too many threads");
        if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n < 1) n = 1;
        openblas_set_num_threads((int)n);
    }
    lua_pushinteger(L, prev);
    return 1;
}

int luaopen_red(lua_State *L) {
    ensure_shared(L);
    luaL_newmetatable(L, SCRATCH_TYPE);
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushliteral(L, RD_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushcfunction(L, red_threads);
    lua_setfield(L, -2, "threads");
    rdl_open_model(L);
    rdl_open_edits(L);
    rdl_open_dataset(L);
    rdl_open_train(L);
    return 1;
}

/* ---- states and runs -------------------------------------------------------------- */

static int add_path(lua_State *L) {
    const char *dir = lua_touserdata(L, 1);
    lua_getglobal(L, "package");
    if (!lua_istable(L, -1)) return luaL_error(L, "the package library is not open");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir,
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_setfield(L, -3, "path");
    return 0;
}

static int open_state(lua_State *L) {
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_red);
    lua_setfield(L, -2, "red");
    lua_pop(L, 1);
    luaL_requiref(L, "red", luaopen_red, 1);
    lua_pop(L, 1);
    lua_pushcfunction(L, add_path);
    lua_pushlightuserdata(L, (void *)"./lua");
    lua_call(L, 1, 0);
    return 0;
}

/* Copies the message on the top of the stack into *err and the shared last error. */
static void keep_error(lua_State *L, rd_error *err) {
    char other[64]; /* no Lua allocation here: this runs outside protected mode */
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!msg) {
        snprintf(other, sizeof other, "(error object is a %s value)", luaL_typename(L, -1));
        msg = other;
    }
    rd_error_set(err, "%s", msg);
    rdl_shared *s = shared_of(L);
    free(s->last_error);
    s->last_error = strdup(msg);
}

lua_State *rd_lua_new(rd_error *err) {
    lua_State *L = luaL_newstate();
    if (!L) {
        rd_error_set(err, "lua: cannot create a state (out of memory)");
        return NULL;
    }
    *(rdl_shared **)lua_getextraspace(L) = NULL;
    lua_pushcfunction(L, open_state);
    if (rdl_pcall(L, 0, 0) != LUA_OK) {
        rd_error_set(err, "lua: %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "cannot open");
        lua_close(L);
        return NULL;
    }
    return L;
}

void rd_lua_close(lua_State *L) {
    if (L) lua_close(L);
}

int rd_lua_add_path(lua_State *L, const char *dir, rd_error *err) {
    if (!lua_checkstack(L, 4)) return rd_error_set(err, "lua: out of memory");
    lua_pushcfunction(L, add_path);
    lua_pushlightuserdata(L, (void *)dir);
    if (rdl_pcall(L, 1, 0) != LUA_OK) {
        const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error";
        rd_error_set(err, "lua: %s", msg);
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

typedef struct run_args {
    const char *path;        /* a file, or NULL */
    const char *code, *name; /* a string chunk */
    int argc;
    char **argv;
} run_args;

/* Protected: loads the chunk and sets `arg`; returns chunk, args… or nil, message. */
static int prepare_run(lua_State *L) {
    const run_args *a = lua_touserdata(L, 1);
    int st = a->path ? luaL_loadfilex(L, a->path, "t")
                     : luaL_loadbufferx(L, a->code, strlen(a->code), a->name ? a->name : a->code,
                                        "t");
    if (st != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (a->path) {
        lua_createtable(L, a->argc, 1);
        lua_pushstring(L, a->path);
        lua_rawseti(L, -2, 0);
        for (int i = 0; i < a->argc; i++) {
            lua_pushstring(L, a->argv[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setglobal(L, "arg");
    }
    luaL_checkstack(L, a->argc, "too many arguments to the script");
    for (int i = 0; i < a->argc; i++) lua_pushstring(L, a->argv[i]);
    return 1 + a->argc;
}

static int run(lua_State *L, const run_args *a, rd_error *err) {
    rdl_shared *s = shared_of(L);
    free(s->last_error);
    s->last_error = NULL;
    if (!lua_checkstack(L, 4)) return rd_error_set(err, "lua: out of memory");
    int top = lua_gettop(L);
    lua_pushcfunction(L, prepare_run);
    lua_pushlightuserdata(L, (void *)a);
    int rc = rdl_pcall(L, 1, LUA_MULTRET);
    if (rc == LUA_OK && lua_isnil(L, top + 1)) rc = LUA_ERRSYNTAX; /* message on the top */
    else if (rc == LUA_OK) rc = rdl_pcall(L, lua_gettop(L) - top - 1, 0);
    if (rc != LUA_OK) keep_error(L, err);
    lua_settop(L, top);
    rd_lua_clear_stop(L);
    return rc == LUA_OK ? 0 : -1;
}

int rd_lua_run_file(lua_State *L, const char *path, int argc, char **argv, rd_error *err) {
    run_args a = {.path = path, .argc = argc > 0 ? argc : 0, .argv = argv};
    return run(L, &a, err);
}

int rd_lua_run_string(lua_State *L, const char *code, const char *name, rd_error *err) {
    run_args a = {.code = code, .name = name};
    return run(L, &a, err);
}

const char *rd_lua_last_error(lua_State *L) {
    const char *e = shared_of(L)->last_error;
    return e ? e : "";
}

void rd_lua_request_stop(lua_State *L) {
    rdl_shared *s = *(rdl_shared **)lua_getextraspace(L);
    /* a second request also skips a training run's evaluation (RD_STOP_SKIP_EVAL) */
    if (s && atomic_load(&s->stop) < RD_STOP_SKIP_EVAL) atomic_fetch_add(&s->stop, 1);
}

void rd_lua_clear_stop(lua_State *L) {
    atomic_store(rdl_stop_flag(L), 0);
    restore_hook(L);
}
