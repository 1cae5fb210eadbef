/* red.dataset: data sets tokenized with a model's tokenizer — loading, splitting, samples
 * (reference: the comment at the top of red.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "red_internal.h"

static rdl_dataset *push_empty(lua_State *L) {
    rdl_dataset *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->d = NULL;
    u->busy = 0;
    luaL_setmetatable(L, RDL_DATASET);
    return u;
}

int rdl_dataset_longest(const rd_dataset *d) {
    int n = 0;
    for (size_t i = 0; d && i < rd_dataset_size(d); i++)
        if (rd_dataset_get(d, i)->n > n) n = rd_dataset_get(d, i)->n;
    return n;
}

int rdl_dataset_load(lua_State *L, int path_idx, int model_idx, int opts_idx) {
    static const char *const known[] = {"model", "format", "template", "max_len", "mask_prompt",
                                        "skip_bad_lines", "system", NULL};
    const char *path = rdl_check_string(L, path_idx, NULL);
    rdl_opts_check(L, opts_idx, known);
    const rd_model *m = rdl_check_model(L, model_idx)->m;
    if (!rd_model_tokenizer(m))
        return luaL_error(L, "%s has no tokenizer; data sets need one", m->file.name);
    rd_data_opts o = rd_data_opts_defaults();
    const char *fmt = rdl_opt_string(L, opts_idx, "format", NULL);
    if (fmt && rd_data_format_from_name(fmt, &o.format))
        rdl_opt_error(L, opts_idx, "format", "must be auto, alpaca, chat, prompt-completion, "
                                              "ultrafeedback, text or classification");
    o.template_name = rdl_opt_string(L, opts_idx, "template", NULL);
    o.system = rdl_opt_string(L, opts_idx, "system", NULL);
    const int ctx = rd_model_config(m)->seq_len;
    o.max_len = (int)rdl_opt_integer(L, opts_idx, "max_len", 2, ctx,
                                     o.max_len < ctx ? o.max_len : ctx);
    o.mask_prompt = rdl_opt_bool(L, opts_idx, "mask_prompt", o.mask_prompt);
    o.skip_bad_lines = rdl_opt_bool(L, opts_idx, "skip_bad_lines", o.skip_bad_lines);
    rdl_dataset *u = push_empty(L);
    rd_error err = {0};
    if (!(u->d = rd_dataset_load(path, rd_model_tokenizer(m), &o, &err)))
        return rdl_raise(L, &err);
    return 1;
}

/* red.dataset(path, {model = m, …}) */
static int red_dataset(lua_State *L) {
    rdl_check_string(L, 1, NULL);
    lua_settop(L, 2);
    rdl_opt_push(L, 2, "model"); /* 3 */
    if (lua_isnil(L, 3))
        return luaL_argerror(L, 2, "option 'model' (the red.model whose tokenizer encodes the "
                                   "data) is required");
    if (!luaL_testudata(L, 3, RDL_MODEL))
        return rdl_opt_error(L, 2, "model", lua_pushfstring(L, "red.model expected, got %s",
                                                            luaL_typename(L, 3)));
    return rdl_dataset_load(L, 1, 3, 2);
}

static int dataset_gc(lua_State *L) {
    rdl_dataset *u = luaL_checkudata(L, 1, RDL_DATASET);
    rd_dataset_free(u->d);
    u->d = NULL;
    return 0;
}

static int dataset_close(lua_State *L) {
    rdl_dataset *u = luaL_checkudata(L, 1, RDL_DATASET);
    if (u->busy) return luaL_error(L, "cannot close a red.dataset while it is in use");
    return dataset_gc(L);
}

static int dataset_tostring(lua_State *L) {
    rdl_dataset *u = luaL_checkudata(L, 1, RDL_DATASET);
    if (!u->d) lua_pushliteral(L, "red.dataset(closed)");
    else
        lua_pushfstring(L, "red.dataset(%I examples, %s)", (lua_Integer)rd_dataset_size(u->d),
                        rd_data_format_name(rd_dataset_format(u->d)));
    return 1;
}

static int dataset_size(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)rd_dataset_size(rdl_check_dataset(L, 1)->d));
    return 1;
}

static int dataset_info(lua_State *L) {
    const rd_dataset *d = rdl_check_dataset(L, 1)->d;
    lua_createtable(L, 0, 7);
    rdl_set_int(L, "size", (lua_Integer)rd_dataset_size(d));
    rdl_set_str(L, "format", rd_data_format_name(rd_dataset_format(d)));
    rdl_set_int(L, "skipped", (lua_Integer)rd_dataset_skipped(d));
    rdl_set_int(L, "truncated", (lua_Integer)rd_dataset_truncated(d));
    rdl_set_int(L, "dropped", (lua_Integer)rd_dataset_dropped(d));
    rdl_set_int(L, "loss_tokens", (lua_Integer)rd_dataset_loss_tokens(d));
    lua_createtable(L, rd_dataset_n_labels(d), 0);
    for (int k = 0; k < rd_dataset_n_labels(d); k++) {
        lua_pushstring(L, rd_dataset_label(d, k));
        lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "labels");
    return 1;
}

static int dataset_split(lua_State *L) {
    const rd_dataset *d = rdl_check_dataset(L, 1)->d;
    lua_Number frac = luaL_checknumber(L, 2);
    luaL_argcheck(L, frac > 0 && frac < 1, 2, "the held-out fraction must be in (0, 1)");
    lua_Integer seed = luaL_optinteger(L, 3, 42);
    luaL_argcheck(L, seed >= 0, 3, "the seed must not be negative");
    lua_settop(L, 3);
    rdl_dataset *a = push_empty(L), *b = push_empty(L);
    rd_dataset *ta = NULL, *tb = NULL;
    rd_error err = {0};
    if (rd_dataset_split(d, frac, (uint64_t)seed, &ta, &tb, &err)) return rdl_raise(L, &err);
    a->d = ta;
    b->d = tb;
    return 2;
}

static int dataset_sample(lua_State *L) {
    const rd_dataset *d = rdl_check_dataset(L, 1)->d;
    lua_Integer i = luaL_checkinteger(L, 2);
    const size_t n = rd_dataset_size(d);
    luaL_argcheck(L, i >= 1 && (size_t)i <= n, 2,
                  lua_pushfstring(L, "index %I is outside [1, %I]", i, (lua_Integer)n));
    const rd_example *ex = rd_dataset_get(d, (size_t)i - 1);
    lua_createtable(L, 0, 8);
    rdl_push_int_array(L, ex->ids, (size_t)ex->n);
    lua_setfield(L, -2, "ids");
    lua_createtable(L, ex->n, 0);
    for (int t = 0; t < ex->n; t++) {
        lua_pushinteger(L, ex->loss[t]);
        lua_rawseti(L, -2, t + 1);
    }
    lua_setfield(L, -2, "loss");
    rdl_set_int(L, "n_prompt", ex->n_prompt);
    rdl_set_str(L, "prompt", rd_dataset_prompt_text(d, (size_t)i - 1));
    rdl_set_str(L, "answer", rd_dataset_answer_text(d, (size_t)i - 1));
    if (ex->label >= 0) {
        rdl_set_str(L, "label", rd_dataset_label(d, ex->label));
        rdl_set_int(L, "label_index", ex->label + 1);
    }
    return 1;
}

void rdl_open_dataset(lua_State *L) {
    static const luaL_Reg methods[] = {{"size", dataset_size},     {"info", dataset_info},
                                       {"split", dataset_split},   {"sample", dataset_sample},
                                       {"close", dataset_close},   {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", dataset_gc},         {"__close", dataset_close},
                                    {"__tostring", dataset_tostring}, {"__len", dataset_size},
                                    {NULL, NULL}};
    rdl_new_type(L, RDL_DATASET, methods, meta);
    lua_pushcfunction(L, red_dataset);
    lua_setfield(L, -2, "dataset");
}
