/* red.model: loading, info, tokenization, generation, and the constructors of edit sets and
 * data sets for a model (reference: the comment at the top of red.c). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "red_internal.h"
#include "redit/batch.h"
#include "redit/buf.h"
#include "redit/generate.h"
#include "redit/tokenizer.h"
#include "redit/train.h"

/* ---- lifecycle -------------------------------------------------------------------- */

static int red_load(lua_State *L) {
    const char *path = rdl_check_string(L, 1, NULL);
    static const char *const known[] = {"tokenizer", NULL};
    rdl_opts_check(L, 2, known);
    const char *tok = rdl_opt_string(L, 2, "tokenizer", NULL);
    rdl_model *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->m = NULL;
    u->busy = 0;
    u->borrowed = 0;
    luaL_setmetatable(L, RDL_MODEL);
    rd_error err = {0};
    rd_load_opts o = {.tokenizer_path = tok};
    if (!(u->m = rd_model_load(path, &o, &err))) return rdl_raise(L, &err);
    return 1;
}

void rd_lua_push_model_borrowed(lua_State *L, rd_model *m) {
    rdl_model *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->m = m;
    u->busy = 1; /* for good: it cannot be closed or have its compute mode changed */
    u->borrowed = 1;
    luaL_setmetatable(L, RDL_MODEL);
}

static int model_gc(lua_State *L) {
    rdl_model *u = luaL_checkudata(L, 1, RDL_MODEL);
    if (!u->borrowed) rd_model_free(u->m);
    u->m = NULL;
    return 0;
}

static int model_close(lua_State *L) {
    rdl_model *u = luaL_checkudata(L, 1, RDL_MODEL);
    if (u->busy) return luaL_error(L, "cannot close a red.model while it is in use");
    return model_gc(L);
}

/* "15.2M" */
static void fmt_count(char *buf, size_t cap, double n) {
    if (n < 1e4) snprintf(buf, cap, "%.0f", n);
    else if (n < 1e6) snprintf(buf, cap, "%.1fK", n / 1e3);
    else if (n < 1e9) snprintf(buf, cap, "%.1fM", n / 1e6);
    else snprintf(buf, cap, "%.2fB", n / 1e9);
}

static int model_tostring(lua_State *L) {
    rdl_model *u = luaL_checkudata(L, 1, RDL_MODEL);
    if (!u->m) {
        lua_pushliteral(L, "red.model(closed)");
        return 1;
    }
    char n[32];
    fmt_count(n, sizeof n, (double)rd_model_param_count(u->m));
    lua_pushfstring(L, "red.model(%s, %s params)", u->m->file.name, n);
    return 1;
}

/* ---- info, tokens ----------------------------------------------------------------- */

static int model_info(lua_State *L) {
    const rd_model *m = rdl_check_model(L, 1)->m;
    const rd_config *c = rd_model_config(m);
    lua_createtable(L, 0, 24);
    rd_model_info info;
    rd_model_describe(m, &info);
    const int *count = info.count;
    rdl_set_str(L, "format", rd_file_format_name(info.format));
    rdl_set_str(L, "name", info.name);
    if (info.nonfinite) rdl_set_str(L, "nonfinite", info.nonfinite);
    if (m->path) rdl_set_str(L, "path", m->path);
    luaL_Buffer b;
    lua_createtable(L, 0, RD_DTYPE_COUNT); /* types */
    luaL_buffinit(L, &b);
    int n = 0;
    for (int t = 0; t < RD_DTYPE_COUNT; t++) {
        if (!count[t]) continue;
        const char *name = rd_dtype_info_of((rd_dtype)t)->name;
        if (n++) luaL_addstring(&b, ", ");
        luaL_addstring(&b, name);
    }
    luaL_pushresult(&b);        /* types, "F32" */
    lua_setfield(L, -3, "type"); /* info.type */
    for (int t = 0; t < RD_DTYPE_COUNT; t++)
        if (count[t]) rdl_set_int(L, rd_dtype_info_of((rd_dtype)t)->name, count[t]);
    lua_setfield(L, -2, "types");
    rdl_set_int(L, "dim", c->dim);
    rdl_set_int(L, "hidden_dim", c->hidden_dim);
    rdl_set_int(L, "layers", c->n_layers);
    rdl_set_int(L, "heads", c->n_heads);
    rdl_set_int(L, "kv_heads", c->n_kv_heads);
    rdl_set_int(L, "head_dim", rd_config_head_dim(c));
    rdl_set_int(L, "vocab", c->vocab_size);
    rdl_set_int(L, "context", c->seq_len);
    char eps[32]; /* the float's shortest decimal: 1e-05, not 9.9999997e-06 */
    snprintf(eps, sizeof eps, "%g", (double)c->norm_eps);
    rdl_set_num(L, "norm_eps", strtod(eps, NULL));
    rdl_set_num(L, "rope_theta", (double)c->rope_theta);
    rdl_set_bool(L, "tied", info.tied_classifier);
    rdl_set_int(L, "params", (lua_Integer)rd_model_param_count(m));
    const rd_tokenizer *tok = rd_model_tokenizer(m);
    rdl_set_bool(L, "tokenizer", tok != NULL);
    if (tok) {
        rdl_set_int(L, "bos", rd_tokenizer_bos(tok));
        rdl_set_int(L, "eos", rd_tokenizer_eos(tok));
    }
    rdl_set_str(L, "compute", rd_model_compute(m) == RD_COMPUTE_BF16 ? "bf16" : "f32");
    return 1;
}

static const rd_tokenizer *need_tokenizer(lua_State *L, const rd_model *m) {
    if (!rd_model_tokenizer(m))
        luaL_error(L, "%s has no tokenizer (load it with {tokenizer = \"tokenizer.bin\"})",
                   m->file.name);
    return rd_model_tokenizer(m);
}

static int model_tokenize(lua_State *L) {
    const rd_model *m = rdl_check_model(L, 1)->m;
    size_t len;
    const char *s = rdl_check_string(L, 2, &len);
    static const char *const known[] = {"bos", "eos", NULL};
    rdl_opts_check(L, 3, known);
    int bos = rdl_opt_bool(L, 3, "bos", 0), eos = rdl_opt_bool(L, 3, "eos", 0);
    const rd_tokenizer *t = need_tokenizer(L, m);
    rdl_scratch *sc = rdl_scratch_new(L);
    int *ids = NULL;
    size_t n = 0;
    rd_error err = {0};
    if (rd_tokenizer_encode(t, s, len, bos, eos, &ids, &n, &err)) return rdl_raise(L, &err);
    rdl_scratch_set(sc, 0, ids, free);
    rdl_push_int_array(L, ids, n);
    rdl_scratch_release(sc);
    return 1;
}

static int model_detokenize(lua_State *L) {
    const rd_model *m = rdl_check_model(L, 1)->m;
    const rd_tokenizer *t = need_tokenizer(L, m);
    size_t n;
    const int *ids = rdl_check_int_array(L, 2, 0, rd_tokenizer_vocab_size(t) - 1, &n);
    rdl_scratch *sc = rdl_scratch_new(L);
    rd_error err = {0};
    char *text = rd_tokenizer_decode(t, ids, n, &err);
    if (!text) return rdl_raise(L, &err);
    rdl_scratch_set(sc, 0, text, free);
    lua_pushstring(L, text);
    rdl_scratch_release(sc);
    return 1;
}

/* ---- generation ------------------------------------------------------------------- */

enum { SC_IDS, SC_RENDERED, SC_CTX, SC_OUT, SC_TEXT };

static void free_ctx(void *c) { rd_ctx_free(c); }

typedef struct gen_state {
    lua_State *L;
    int fn;        /* stack index of on_token, or 0 */
    int err_slot;  /* stack index that receives a callback's error */
    atomic_int *stop;
    int failed, interrupted, by_callback, oom;
    rdl_scratch *sc;
    rd_buf text; /* the text so far; its data is owned by sc slot SC_TEXT */
    int token; /* the token being reported (for the trampoline) */
    const char *piece;
    size_t piece_len;
} gen_state;

/* Protected: on_token(text, id) → its first result. Arguments: the function, the state. */
static int token_trampoline(lua_State *L) {
    const gen_state *g = lua_touserdata(L, 2);
    lua_pushvalue(L, 1);
    lua_pushlstring(L, g->piece, g->piece_len);
    lua_pushinteger(L, g->token);
    lua_call(L, 2, 1);
    return 1;
}

static int append_text(gen_state *g, const char *s, size_t n) {
    const size_t cap = g->text.cap;
    if (rd_buf_append(&g->text, s, n)) return -1;
    if (g->text.cap != cap) rdl_scratch_set(g->sc, SC_TEXT, g->text.data, free); /* moved */
    return 0;
}

static int gen_on_token(void *user, int token, const char *text, size_t len) {
    gen_state *g = user;
    if (append_text(g, text, len)) {
        g->oom = 1;
        return 1;
    }
    if (atomic_load(g->stop)) {
        g->interrupted = 1;
        return 1;
    }
    if (!g->fn) return 0;
    lua_State *L = g->L;
    g->token = token;
    g->piece = text;
    g->piece_len = len;
    lua_pushcfunction(L, token_trampoline);
    lua_pushvalue(L, g->fn);
    lua_pushlightuserdata(L, g);
    if (rdl_pcall(L, 2, 1) != LUA_OK) {
        lua_replace(L, g->err_slot);
        g->failed = 1;
        return 1;
    }
    int stop = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (stop) g->by_callback = 1;
    return stop;
}

static rd_sampling read_sampling(lua_State *L, int arg) {
    rd_sampling s = rd_sampling_defaults();
    s.temperature = (float)rdl_opt_number(L, arg, "temperature", s.temperature);
    s.top_k = (int)rdl_opt_integer(L, arg, "top_k", 0, 1 << 24, s.top_k);
    s.top_p = (float)rdl_opt_number(L, arg, "top_p", s.top_p);
    s.repeat_penalty = (float)rdl_opt_number(L, arg, "repeat_penalty", s.repeat_penalty);
    s.repeat_last_n = (int)rdl_opt_integer(L, arg, "repeat_last_n", 0, 1 << 24, s.repeat_last_n);
    s.no_repeat_ngram = (int)rdl_opt_integer(L, arg, "no_repeat_ngram", 0, 1 << 16,
                                             s.no_repeat_ngram);
    s.seed = (uint64_t)rdl_opt_integer(L, arg, "seed", 0, LUA_MAXINTEGER, (long long)s.seed);
    rd_error err = {0};
    if (rd_sampling_validate(&s, &err)) luaL_argerror(L, arg, err.msg);
    return s;
}

/* The edit set of option `edits`, or NULL; the value (or nil) is left on the stack, which
 * keeps it alive even if a callback changes the options table. */
static rdl_edits *opt_edits(lua_State *L, int arg, const rd_model *m) {
    rdl_opt_push(L, arg, "edits");
    if (lua_isnil(L, -1)) return NULL;
    rdl_edits *e = luaL_testudata(L, -1, RDL_EDITS);
    if (!e) rdl_opt_error(L, arg, "edits", lua_pushfstring(L, "red.edits expected, got %s",
                                                           luaL_typename(L, -1)));
    if (!e->e) luaL_error(L, "attempt to use a closed red.edits");
    rdl_edits_check_fit(L, e->e, m);
    return e;
}

/* Prompt ids into scratch slot SC_IDS: text (rendered by the template of options table opts,
 * BOS added) or ids. */
static int *prompt_ids(lua_State *L, const rd_model *m, int arg, int opts, rdl_scratch *sc,
                       size_t *n) {
    const int V = rd_model_config(m)->vocab_size;
    const char *tmpl = rdl_opt_string(L, opts, "template", NULL);
    const char *sys = rdl_opt_string(L, opts, "system", NULL);
    if (lua_type(L, arg) == LUA_TTABLE) {
        if (tmpl) luaL_argerror(L, opts, "option 'template' needs a text prompt, not ids");
        int *ids = rdl_check_int_array(L, arg, 0, V - 1, n); /* stays on the stack */
        luaL_argcheck(L, *n > 0, arg, "the prompt needs at least one id");
        return ids;
    }
    size_t len;
    const char *text = rdl_check_string(L, arg, &len);
    const rd_tokenizer *t = need_tokenizer(L, m);
    rd_error err = {0};
    if (tmpl) {
        char *r = rd_data_render_prompt(tmpl, sys, text, t, &err);
        if (!r) return rdl_raise(L, &err), NULL;
        rdl_scratch_set(sc, SC_RENDERED, r, free);
        text = r;
        len = strlen(r);
    }
    int *ids = NULL;
    if (rd_tokenizer_encode(t, text, len, 1, 0, &ids, n, &err)) return rdl_raise(L, &err), NULL;
    rdl_scratch_set(sc, SC_IDS, ids, free);
    if (*n == 0) luaL_argerror(L, arg, "the prompt gives no tokens");
    return ids;
}

static void push_gen_stats(lua_State *L, const rd_gen_stats *st, const int *out_ids, int by_cb) {
    static const char *const why[] = {"length", "eos", "callback", "context"};
    lua_createtable(L, 0, 8);
    rdl_set_int(L, "prompt_tokens", st->n_prompt);
    rdl_set_int(L, "tokens", st->n_generated);
    if (out_ids) { /* generate_batch gives none */
        rdl_push_int_array(L, out_ids, (size_t)st->n_generated);
        lua_setfield(L, -2, "ids");
    }
    int k = st->stopped_by >= 0 && st->stopped_by < 4 ? st->stopped_by : 0;
    rdl_set_str(L, "stopped", by_cb ? "callback" : why[k]);
    rdl_set_num(L, "prefill_seconds", st->prefill_seconds);
    rdl_set_num(L, "decode_seconds", st->decode_seconds);
}

static int model_generate(lua_State *L) {
    rdl_model *um = rdl_check_model(L, 1);
    const rd_model *m = um->m;
    static const char *const known[] = {
        "max_tokens", "temperature", "top_k", "top_p", "repeat_penalty", "repeat_last_n",
        "no_repeat_ngram", "seed", "stop_at_eos", "template", "system", "edits", "strength",
        "on_token", NULL};
    if (lua_type(L, 2) != LUA_TTABLE && lua_type(L, 2) != LUA_TSTRING)
        luaL_typeerror(L, 2, "string or array of ids");
    rdl_opts_check(L, 3, known);
    lua_settop(L, 3);
    const int seq = rd_model_config(m)->seq_len;
    rd_gen_opts go = {.sampling = read_sampling(L, 3), .stop_at_eos = rdl_opt_bool(L, 3, "stop_at_eos", 1)};
    go.max_tokens = (int)rdl_opt_integer(L, 3, "max_tokens", 1, 1 << 24, 256);
    if (go.max_tokens > seq) go.max_tokens = seq;
    float strength = (float)rdl_opt_number(L, 3, "strength", 1.0);
    rdl_edits *ue = opt_edits(L, 3, m); /* slot 4 */
    rdl_opt_push(L, 3, "on_token");       /* slot 5 */
    if (!lua_isnil(L, 5) && !lua_isfunction(L, 5))
        rdl_opt_error(L, 3, "on_token", lua_pushfstring(L, "function expected, got %s",
                                                        luaL_typename(L, 5)));
    lua_pushnil(L); /* slot 6: a callback's error */
    gen_state g = {.L = L, .fn = lua_isnil(L, 5) ? 0 : 5, .err_slot = 6, .stop = rdl_stop_flag(L)};
    g.sc = rdl_scratch_new(L); /* slot 7 */
    size_t n = 0;
    const int *ids = prompt_ids(L, m, 2, 3, g.sc, &n);
    if ((int)n >= seq) return luaL_error(L, "the prompt's %d tokens fill the context of %d", (int)n, seq);
    rd_error err = {0};
    int max_seq = (int)n + go.max_tokens < seq ? (int)n + go.max_tokens : seq;
    rd_ctx *ctx = rd_ctx_new(m, 1, max_seq, &err);
    if (!ctx) return rdl_raise(L, &err);
    rdl_scratch_set(g.sc, SC_CTX, ctx, free_ctx);
    int *out = malloc(sizeof(int) * (size_t)go.max_tokens);
    if (!out) return luaL_error(L, "out of memory");
    rdl_scratch_set(g.sc, SC_OUT, out, free);
    if (append_text(&g, "", 0)) return luaL_error(L, "out of memory");
    rd_edits_view view = ue ? rd_edits_view_at(ue->e, strength) : (rd_edits_view){0};
    rd_gen_stats st = {0};
    luaL_checkstack(L, 8, "generate");
    um->busy++;
    if (ue) ue->busy++;
    int rc = rd_generate(ctx, ue ? &view : NULL, ids, n, &go, gen_on_token, &g, out, &st, &err);
    um->busy--;
    if (ue) ue->busy--;
    if (g.failed || g.interrupted || g.oom || rc) {
        rdl_scratch_release(g.sc);
        if (g.failed) {
            lua_pushvalue(L, g.err_slot);
            return lua_error(L);
        }
        if (g.interrupted) return luaL_error(L, "interrupted");
        if (g.oom) return luaL_error(L, "out of memory");
        return rdl_raise(L, &err);
    }
    lua_pushlstring(L, g.text.data, g.text.len);
    push_gen_stats(L, &st, out, g.by_callback);
    rdl_scratch_release(g.sc);
    return 2;
}

/* ---- batched generation ------------------------------------------------------------- */

/* One request of generate_batch and its result. */
typedef struct lb_job {
    int *ids;
    size_t n;
    rd_edits_view view;
    rdl_edits *edits; /* NULL: the base model */
    rd_gen_opts opts;
    rd_buf text;
    rd_gen_stats stats;
    int done, oom;
} lb_job;

typedef struct lb_state {
    rd_batch *b;
    lb_job *jobs;
    int n;
} lb_state;

static void lb_free(void *p) {
    lb_state *s = p;
    rd_batch_free(s->b);
    for (int i = 0; i < s->n; i++) {
        free(s->jobs[i].ids);
        rd_buf_free(&s->jobs[i].text);
    }
    free(s->jobs);
    free(s);
}

static int lb_on_token(void *user, int id, int token, const char *text, size_t len, float lp) {
    lb_job *j = user;
    (void)id, (void)token, (void)lp;
    if (rd_buf_append(&j->text, text, len)) j->oom = 1;
    return j->oom;
}

static void lb_on_done(void *user, int id, const rd_gen_stats *st) {
    lb_job *j = user;
    (void)id;
    j->stats = *st;
    j->done = 1;
}

/* GCC 12's analyser reports each request's ids (malloc'd into s->jobs) as leaked when a later
 * luaL_error unwinds: it does not see that s is owned by the scratch userdata at stack slot 4,
 * whose __gc runs lb_free, which frees them. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
/* m:generate_batch({req, ...} [, {parallel = N}]): each req {prompt = text or ids, edits,
 * strength, max_tokens, temperature, top_k, top_p, repeat_penalty, seed, stop_at_eos,
 * template, system}; all decoded together, `parallel` at a time (default 8). Returns the
 * texts in request order, and a list of stats tables as generate's. */
static int model_generate_batch(lua_State *L) {
    rdl_model *um = rdl_check_model(L, 1);
    const rd_model *m = um->m;
    static const char *const known[] = {
        "prompt", "max_tokens", "temperature", "top_k", "top_p", "repeat_penalty",
        "repeat_last_n", "no_repeat_ngram", "seed", "stop_at_eos", "template", "system",
        "edits", "strength", NULL};
    static const char *const batch_known[] = {"parallel", NULL};
    luaL_checktype(L, 2, LUA_TTABLE);
    rdl_opts_check(L, 3, batch_known);
    lua_settop(L, 3);
    const int parallel = (int)rdl_opt_integer(L, 3, "parallel", 1, 4096, 8);
    const int count = (int)luaL_len(L, 2);
    luaL_argcheck(L, count > 0, 2, "no request given");
    const int seq = rd_model_config(m)->seq_len;
    rdl_scratch *sc = rdl_scratch_new(L); /* slot 4 */
    lb_state *s = calloc(1, sizeof *s);
    if (!s) return luaL_error(L, "out of memory");
    rdl_scratch_set(sc, 0, s, lb_free);
    if (!(s->jobs = calloc((size_t)count, sizeof *s->jobs))) return luaL_error(L, "out of memory");
    s->n = count;
    for (int i = 0; i < count; i++) {
        lb_job *j = &s->jobs[i];
        const int top = lua_gettop(L);
        lua_geti(L, 2, i + 1); /* top + 1: the request */
        const int req = top + 1;
        if (!lua_istable(L, req))
            return luaL_error(L, "generate_batch: request %d is a %s, not a table", i + 1,
                              luaL_typename(L, req));
        rdl_opts_check(L, req, known);
        lua_getfield(L, req, "prompt"); /* top + 2 */
        if (lua_type(L, top + 2) != LUA_TTABLE && lua_type(L, top + 2) != LUA_TSTRING)
            return luaL_error(L, "generate_batch: request %d needs a prompt (text or ids)", i + 1);
        rdl_scratch *rs = rdl_scratch_new(L); /* top + 3 */
        const int *ids = prompt_ids(L, m, top + 2, req, rs, &j->n);
        if (!(j->ids = malloc(j->n * sizeof *j->ids))) return luaL_error(L, "out of memory");
        memcpy(j->ids, ids, j->n * sizeof *ids);
        rdl_scratch_release(rs);
        if ((int)j->n >= seq)
            return luaL_error(L, "generate_batch: request %d: the prompt's %d tokens fill the "
                                 "context of %d", i + 1, (int)j->n, seq);
        j->opts = (rd_gen_opts){.sampling = read_sampling(L, req),
                                .stop_at_eos = rdl_opt_bool(L, req, "stop_at_eos", 1)};
        j->opts.max_tokens = (int)rdl_opt_integer(L, req, "max_tokens", 1, 1 << 24, 256);
        j->edits = opt_edits(L, req, m); /* anchored in the request, which arg 2 holds */
        if (j->edits)
            j->view = rd_edits_view_at(j->edits->e, (float)rdl_opt_number(L, req, "strength", 1.0));
        lua_settop(L, top);
    }
    rd_error err = {0};
    const rd_batch_opts bo = {.slots = parallel < count ? parallel : count, .max_seq = seq};
    if (!(s->b = rd_batch_new(m, &bo, &err))) return rdl_raise(L, &err);
    atomic_int *stop = rdl_stop_flag(L);
    for (int i = 0; i < count; i++)
        if (s->jobs[i].edits) s->jobs[i].edits->busy++;
    um->busy++;
    int next = 0, left = count, rc = 0, interrupted = 0, oom = 0;
    while (left > 0 && !rc) {
        while (next < count && rd_batch_free_slots(s->b) > 0) {
            lb_job *j = &s->jobs[next++];
            if (rd_batch_add(s->b, j->edits ? &j->view : NULL, j->ids, j->n, &j->opts, j, &err) < 0) {
                rc = -1;
                break;
            }
        }
        if (rc || rd_batch_step(s->b, lb_on_token, lb_on_done, &err) < 0) rc = -1;
        if (atomic_load(stop)) interrupted = 1, rc = -1;
        left = 0;
        for (int i = 0; i < count; i++) {
            left += !s->jobs[i].done;
            oom |= s->jobs[i].oom;
        }
        if (oom) rc = -1;
    }
    um->busy--;
    for (int i = 0; i < count; i++)
        if (s->jobs[i].edits) s->jobs[i].edits->busy--;
    if (rc) {
        rdl_scratch_release(sc);
        if (interrupted) return luaL_error(L, "interrupted");
        if (oom) return luaL_error(L, "out of memory");
        return rdl_raise(L, &err);
    }
    lua_createtable(L, count, 0);
    lua_createtable(L, count, 0);
    for (int i = 0; i < count; i++) {
        const lb_job *j = &s->jobs[i];
        lua_pushlstring(L, j->text.data ? j->text.data : "", j->text.len);
        lua_seti(L, -3, i + 1);
        push_gen_stats(L, &j->stats, NULL, j->stats.stopped_by == 2);
        lua_seti(L, -2, i + 1);
    }
    rdl_scratch_release(sc);
    return 2;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* ---- constructors ----------------------------------------------------------------- */

/* The layers option as text: a string as it is, an array of numbers as "0,3,5". */
static const char *layers_text(lua_State *L, int arg) {
    rdl_opt_push(L, arg, "layers");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return "all";
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1); /* anchored in the options table */
        return s;
    }
    if (lua_type(L, -1) != LUA_TTABLE)
        rdl_opt_error(L, arg, "layers", lua_pushfstring(L, "\"all\", a list text or an array "
                                                           "expected, got %s", luaL_typename(L, -1)));
    int tbl = lua_gettop(L);
    lua_Integer len = luaL_len(L, tbl);
    if (len < 1) rdl_opt_error(L, arg, "layers", "the array is empty");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_geti(L, tbl, i);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok || v < 0 || v > 1 << 20)
            rdl_opt_error(L, arg, "layers", lua_pushfstring(L, "element %I is not a layer number", i));
        if (i > 1) luaL_addchar(&b, ',');
        lua_pushfstring(L, "%I", v);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_replace(L, tbl); /* keep the text anchored on the stack */
    return lua_tostring(L, tbl);
}

/* Pushes nil when option key is absent, else raises unless method is the option's. */
static void only_for(lua_State *L, int arg, const char *key, int method, int want) {
    rdl_opt_push(L, arg, key);
    const int given = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (given && method != want)
        rdl_opt_error(L, arg, key, lua_pushfstring(L, "is %s's (method = \"%s\"), not %s's",
                                                   rd_method_name(want), rd_method_name(want),
                                                   rd_method_name(method)));
}

/* The LoRA targets option: a text "q,v" / "all", or an array {"q", "v"}. */
static int targets_mask(lua_State *L, int arg, const char *key) {
    const int top = lua_gettop(L);
    rdl_opt_push(L, arg, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    luaL_Buffer b;
    const char *text;
    if (lua_type(L, -1) == LUA_TSTRING) {
        text = lua_tostring(L, -1);
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        const int tbl = lua_gettop(L);
        luaL_buffinit(L, &b);
        for (lua_Integer i = 1; i <= luaL_len(L, tbl); i++) {
            if (lua_geti(L, tbl, i) != LUA_TSTRING)
                rdl_opt_error(L, arg, key, lua_pushfstring(L, "element %I is not a projection "
                                                              "name", i));
            if (i > 1) luaL_addchar(&b, ',');
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        text = lua_tostring(L, -1);
    } else {
        rdl_opt_error(L, arg, key, lua_pushfstring(L, "a text like \"q,v\" or an array of "
                                                      "projection names expected, got %s",
                                                   luaL_typename(L, -1)));
    }
    int mask = 0;
    rd_error err = {0};
    if (rd_lora_targets_parse(text, &mask, &err)) rdl_opt_error(L, arg, key, err.msg);
    lua_settop(L, top);
    return mask;
}

void rdl_edit_spec_opts(lua_State *L, int arg, int method, const char *dropout_key,
                        uint64_t seed, rd_edit_spec *spec) {
    arg = lua_absindex(L, arg);
    memset(spec, 0, sizeof *spec);
    spec->method = method;
    static const char *const red_keys[] = {"sites", "scale", "bias"};
    for (int i = 0; i < 3; i++) only_for(L, arg, red_keys[i], method, RD_METHOD_RED);
    const char *lora_keys[] = {"rank", "lora_alpha", "targets", dropout_key};
    for (int i = 0; i < 4; i++) only_for(L, arg, lora_keys[i], method, RD_METHOD_LORA);
    spec->layers = layers_text(L, arg); /* anchored on the stack (or in the table) */
    if (method == RD_METHOD_RED) {
        const char *sites_name = rdl_opt_string(L, arg, "sites", "ffn");
        if (rd_sites_from_name(sites_name, &spec->sites))
            rdl_opt_error(L, arg, "sites", "must be \"ffn\", \"attn\" or \"both\"");
        spec->scale = rdl_opt_bool(L, arg, "scale", 1);
        spec->bias = rdl_opt_bool(L, arg, "bias", 1);
    } else if (method == RD_METHOD_LORA) {
        spec->rank = (int)rdl_opt_integer(L, arg, "rank", 1, RD_LORA_MAX_RANK,
                                          RD_LORA_DEFAULT_RANK);
        const double alpha = rdl_opt_number(L, arg, "lora_alpha", RD_LORA_DEFAULT_ALPHA);
        if (!(alpha > 0) || alpha > 1e6) rdl_opt_error(L, arg, "lora_alpha", "must be in (0, 1e6]");
        spec->lora_alpha = (float)alpha;
        spec->lora_targets = targets_mask(L, arg, "targets");
        const double p = rdl_opt_number(L, arg, dropout_key, 0);
        if (p < 0 || p >= 1) rdl_opt_error(L, arg, dropout_key, "must be in [0, 1)");
        spec->lora_dropout = (float)p;
    }
    spec->seed = (uint64_t)rdl_opt_integer(L, arg, "seed", 0, LUA_MAXINTEGER, (long long)seed);
}

int rdl_method_opt(lua_State *L, int arg, int allow_full) {
    const char *name = rdl_opt_string(L, arg, "method", "red");
    if (allow_full && !strcmp(name, "full")) return RDL_METHOD_FULL;
    int method;
    if (rd_method_from_name(name, &method))
        rdl_opt_error(L, arg, "method", allow_full ? "must be \"red\", \"lora\", \"ia3\" or "
                                                     "\"full\""
                                                   : "must be \"red\", \"lora\" or \"ia3\"");
    return method;
}

static int model_edits(lua_State *L) {
    const rd_model *m = rdl_check_model(L, 1)->m;
    static const char *const known[] = {"method", "sites", "layers", "scale", "bias", "rank",
                                        "lora_alpha", "targets", "dropout", "seed", NULL};
    rdl_opts_check(L, 2, known);
    lua_settop(L, 2);
    rd_edit_spec spec;
    rdl_edit_spec_opts(L, 2, rdl_method_opt(L, 2, 0), "dropout", rd_train_opts_defaults().seed,
                       &spec);
    rdl_edits *u = rdl_edits_push_empty(L, 1);
    rd_error err = {0};
    if (!(u->e = rd_edits_new(rd_model_config(m), &spec, &err))) return rdl_raise(L, &err);
    return 1;
}

static int model_dataset(lua_State *L) {
    rdl_check_model(L, 1);
    return rdl_dataset_load(L, 2, 1, 3);
}

static int model_compute(lua_State *L) {
    rdl_model *u = rdl_check_model(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        rd_compute mode;
        if (rd_compute_from_name(luaL_checkstring(L, 2), &mode))
            return luaL_argerror(L, 2, "must be \"f32\", \"bf16\" or \"auto\"");
        if (u->busy) return luaL_error(L, "cannot change the compute mode of a red.model in use");
        rd_error err = {0};
        /* decode's 8-bit activation products: every mode but the f32 reference */
        if (rd_model_set_quant_products(u->m, strcmp(luaL_checkstring(L, 2), "f32") != 0,
                                        &err) ||
            rd_model_set_compute(u->m, mode, 0, &err))
            return rdl_raise(L, &err);
    }
    lua_pushstring(L, rd_model_compute(u->m) == RD_COMPUTE_BF16 ? "bf16" : "f32");
    return 1;
}

void rdl_open_model(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"info", model_info},           {"tokenize", model_tokenize},
        {"detokenize", model_detokenize}, {"generate", model_generate},
        {"generate_batch", model_generate_batch},
        {"edits", model_edits},         {"dataset", model_dataset},
        {"compute", model_compute},     {"close", model_close},
        {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", model_gc}, {"__close", model_close}, {"__tostring", model_tostring}, {NULL, NULL}};
    rdl_new_type(L, RDL_MODEL, methods, meta);
    lua_pushcfunction(L, red_load);
    lua_setfield(L, -2, "load");
}
