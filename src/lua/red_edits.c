/* red.edits: edit sets (RED, LoRA, IA3) from Lua — inspection, files, and arithmetic (the semantics are
 * in the reference at the top of red.c: * scales towards identity, + composes, - undoes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "red_internal.h"

static const int SITES[2] = {RD_SITE_ATTN, RD_SITE_FFN};

/* ---- lifecycle -------------------------------------------------------------------- */

rdl_edits *rdl_edits_push_empty(lua_State *L, int model_idx) {
    model_idx = lua_absindex(L, model_idx);
    rdl_edits *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->e = NULL;
    u->busy = 0;
    luaL_setmetatable(L, RDL_EDITS);
    lua_pushvalue(L, model_idx);
    lua_setiuservalue(L, -2, 1);
    return u;
}

void rd_lua_push_edits(lua_State *L, rd_edits *e, int model_idx) {
    rdl_edits_push_empty(L, model_idx)->e = e;
}

rd_edits *rd_lua_to_edits(lua_State *L, int idx) {
    rdl_edits *u = luaL_testudata(L, idx, RDL_EDITS);
    return u ? u->e : NULL;
}

void rdl_edits_check_fit(lua_State *L, const rd_edits *e, const rd_model *m) {
    const rd_config *c = rd_model_config(m);
    if (rd_edits_dim(e) != c->dim || rd_edits_n_layers(e) != c->n_layers)
        luaL_error(L, "the edits are for a model of width %d with %d layers; %s has width %d and "
                      "%d layers", rd_edits_dim(e), rd_edits_n_layers(e), m->file.name, c->dim,
                   c->n_layers);
    const rd_config *ec = rd_edits_config(e); /* LoRA and IA3 also read the projections' shapes */
    if (rd_edits_method(e) != RD_METHOD_RED &&
        (ec->hidden_dim != c->hidden_dim || ec->n_kv_heads != c->n_kv_heads ||
         ec->n_heads != c->n_heads))
        luaL_error(L, "the %s edits are for a model of FFN width %d with %d/%d (kv) heads; %s has "
                      "%d with %d/%d", rd_method_name(rd_edits_method(e)), ec->hidden_dim,
                   ec->n_heads, ec->n_kv_heads, m->file.name, c->hidden_dim, c->n_heads,
                   c->n_kv_heads);
}

static int edits_gc(lua_State *L) {
    rdl_edits *u = luaL_checkudata(L, 1, RDL_EDITS);
    rd_edits_free(u->e);
    u->e = NULL;
    return 0;
}

static int edits_close(lua_State *L) {
    rdl_edits *u = luaL_checkudata(L, 1, RDL_EDITS);
    if (u->busy) return luaL_error(L, "cannot close a red.edits while it is in use");
    return edits_gc(L);
}

static const char *kinds_name(const rd_edits *e) {
    return rd_edits_has_scale(e) && rd_edits_has_bias(e) ? "scale+bias"
           : rd_edits_has_scale(e)                      ? "scale"
                                                        : "bias";
}

static int edits_tostring(lua_State *L) {
    rdl_edits *u = luaL_checkudata(L, 1, RDL_EDITS);
    if (!u->e) {
        lua_pushliteral(L, "red.edits(closed)");
        return 1;
    }
    const rd_edits *e = u->e;
    char targets[64];
    switch (rd_edits_method(e)) {
    case RD_METHOD_LORA: {
        char alpha[32];
        snprintf(alpha, sizeof alpha, "%g", (double)rd_edits_lora_alpha(e));
        lua_pushfstring(L, "red.edits(lora r%d alpha %s %s, layers %s, %I params)",
                        rd_edits_rank(e), alpha,
                        rd_lora_targets_text(rd_edits_lora_targets(e), targets, sizeof targets),
                        rd_edits_layers_text(e), (lua_Integer)rd_edits_param_count(e));
        break;
    }
    case RD_METHOD_IA3:
        lua_pushfstring(L, "red.edits(ia3, layers %s, %I params)", rd_edits_layers_text(e),
                        (lua_Integer)rd_edits_param_count(e));
        break;
    default:
        lua_pushfstring(L, "red.edits(%s, layers %s, %s, %I params)",
                        rd_sites_name(rd_edits_sites(e)), rd_edits_layers_text(e), kinds_name(e),
                        (lua_Integer)rd_edits_param_count(e));
    }
    return 1;
}

/* The model the edit set at idx was made for (its user value); raises when closed. */
static rdl_model *edits_model(lua_State *L, int idx) {
    lua_getiuservalue(L, idx, 1);
    rdl_model *m = luaL_testudata(L, -1, RDL_MODEL);
    lua_pop(L, 1); /* still referenced by the user value */
    if (!m || !m->m) luaL_error(L, "attempt to use a closed red.model (the edits' model)");
    return m;
}

/* ---- inspection ------------------------------------------------------------------- */

static int edits_params(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)rd_edits_param_count(rdl_check_edits(L, 1)->e));
    return 1;
}

static int edits_ratio(lua_State *L) {
    const rd_edits *e = rdl_check_edits(L, 1)->e;
    lua_pushnumber(L, rd_edits_ratio(e, edits_model(L, 1)->m));
    return 1;
}

/* A stored f32 setting as the shortest decimal that reads back to it (0.05, not
 * 0.050000000745). */
static double short_number(float v) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    return strtod(buf, NULL);
}

static int edits_info(lua_State *L) {
    const rd_edits *e = rdl_check_edits(L, 1)->e;
    lua_createtable(L, 0, 12);
    const int method = rd_edits_method(e);
    rdl_set_str(L, "method", rd_method_name(method));
    rdl_set_str(L, "layers", rd_edits_layers_text(e));
    if (method == RD_METHOD_RED) {
        rdl_set_str(L, "sites", rd_sites_name(rd_edits_sites(e)));
        rdl_set_bool(L, "scale", rd_edits_has_scale(e));
        rdl_set_bool(L, "bias", rd_edits_has_bias(e));
    } else if (method == RD_METHOD_LORA) {
        char targets[64];
        rdl_set_int(L, "rank", rd_edits_rank(e));
        rdl_set_num(L, "lora_alpha", short_number(rd_edits_lora_alpha(e)));
        rdl_set_str(L, "targets", rd_lora_targets_text(rd_edits_lora_targets(e), targets,
                                                       sizeof targets));
        rdl_set_num(L, "dropout", short_number(rd_edits_lora_dropout(e)));
    }
    rdl_set_int(L, "dim", rd_edits_dim(e));
    rdl_set_int(L, "n_layers", rd_edits_n_layers(e));
    rdl_set_int(L, "params", (lua_Integer)rd_edits_param_count(e));
    rdl_set_num(L, "ratio", rd_edits_ratio(e, edits_model(L, 1)->m));
    return 1;
}

/* Raises unless e is a RED edit set: what is RED's alone (vectors, + - and compare). */
static void check_red(lua_State *L, const rd_edits *e, const char *what) {
    if (rd_edits_method(e) != RD_METHOD_RED)
        luaL_error(L, "%s is defined for RED edit sets; this one is %s's", what,
                   rd_method_name(rd_edits_method(e)));
}

/* Arguments layer, site, kind at idx..idx+2 → the stored vector or NULL. */
static float *check_vector(lua_State *L, rd_edits *e, int idx, int *layer, int *site, int *bias) {
    static const char *const site_names[] = {"attn", "ffn", NULL};
    static const char *const kind_names[] = {"scale", "bias", NULL};
    lua_Integer l = luaL_checkinteger(L, idx);
    luaL_argcheck(L, l >= 0 && l < rd_edits_n_layers(e), idx,
                  lua_pushfstring(L, "layer %I is outside [0, %d)", l, rd_edits_n_layers(e)));
    *layer = (int)l;
    *site = SITES[luaL_checkoption(L, idx + 1, NULL, site_names)];
    *bias = luaL_checkoption(L, idx + 2, NULL, kind_names);
    return rd_edits_vector(e, *layer, *site, *bias);
}

static int edits_vector(lua_State *L) {
    rd_edits *e = rdl_check_edits(L, 1)->e;
    check_red(L, e, "e:vector");
    int layer, site, bias;
    const float *v = check_vector(L, e, 2, &layer, &site, &bias);
    if (!v) lua_pushnil(L);
    else rdl_push_float_array(L, v, (size_t)rd_edits_dim(e));
    return 1;
}

static int edits_set_vector(lua_State *L) {
    rd_edits *e = rdl_check_edits(L, 1)->e;
    check_red(L, e, "e:set_vector");
    int layer, site, bias;
    float *v = check_vector(L, e, 2, &layer, &site, &bias);
    if (!v)
        return luaL_error(L, "layer %d %s %s is not stored in this edit set (%s, layers %s, %s)",
                          layer, rd_sites_name(site), bias ? "bias" : "scale",
                          rd_sites_name(rd_edits_sites(e)), rd_edits_layers_text(e), kinds_name(e));
    luaL_checktype(L, 5, LUA_TTABLE);
    const int dim = rd_edits_dim(e);
    luaL_argcheck(L, luaL_len(L, 5) == dim, 5, lua_pushfstring(L, "%d numbers expected", dim));
    for (int i = 0; i < dim; i++) { /* checked first: a bad element leaves v untouched */
        lua_geti(L, 5, i + 1);
        if (lua_type(L, -1) != LUA_TNUMBER || !isfinite(lua_tonumber(L, -1)))
            luaL_argerror(L, 5, lua_pushfstring(L, "element %d is not a finite number", i + 1));
        lua_pop(L, 1);
    }
    for (int i = 0; i < dim; i++) {
        lua_geti(L, 5, i + 1);
        v[i] = (float)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    return 0;
}

/* ---- files ------------------------------------------------------------------------ */

static int edits_save(lua_State *L) {
    const rd_edits *e = rdl_check_edits(L, 1)->e;
    const char *path = rdl_check_string(L, 2, NULL);
    const char *json = luaL_optstring(L, 3, NULL);
    const rd_model *m = edits_model(L, 1)->m;
    rdl_edits_check_fit(L, e, m);
    rd_error err = {0};
    if (rd_edits_save(e, m, json, path, &err)) return rdl_raise(L, &err);
    return 0;
}

static int red_load_edits(lua_State *L) {
    const char *path = rdl_check_string(L, 1, NULL);
    const rd_model *m = rdl_check_model(L, 2)->m;
    static const char *const known[] = {"force", NULL};
    rdl_opts_check(L, 3, known);
    int force = rdl_opt_bool(L, 3, "force", 0);
    lua_settop(L, 3);
    rdl_edits *u = rdl_edits_push_empty(L, 2); /* 4 */
    rdl_scratch *sc = rdl_scratch_new(L);       /* 5 */
    char *json = NULL;
    rd_error err = {0};
    u->e = rd_edits_load(path, m, force, &json, &err);
    if (!u->e) return rdl_raise(L, &err);
    rdl_scratch_set(sc, 0, json, free);
    lua_pushvalue(L, 4);
    if (json) lua_pushstring(L, json);
    else lua_pushnil(L);
    rdl_scratch_release(sc);
    return 2;
}

static int edits_clone(lua_State *L) {
    const rd_edits *e = rdl_check_edits(L, 1)->e;
    lua_getiuservalue(L, 1, 1);
    rdl_edits *u = rdl_edits_push_empty(L, -1);
    rd_error err = {0};
    if (!(u->e = rd_edits_clone(e, &err))) return rdl_raise(L, &err);
    return 1;
}

/* ---- arithmetic ------------------------------------------------------------------- */

/* The applied value of a vector at element i: the stored number, else the identity. */
static float scale_at(const float *s, int i) { return s ? s[i] : 1.0f; }
static float bias_at(const float *b, int i) { return b ? b[i] : 0.0f; }

static float *vec(const rd_edits *e, int l, int site, int bias) {
    return rd_edits_vector((rd_edits *)e, l, site, bias);
}

static void check_same_shape(lua_State *L, const rd_edits *a, const rd_edits *b) {
    if (rd_edits_dim(a) != rd_edits_dim(b) || rd_edits_n_layers(a) != rd_edits_n_layers(b))
        luaL_error(L, "edit sets for different models: width %d with %d layers vs width %d with "
                      "%d layers", rd_edits_dim(a), rd_edits_n_layers(a), rd_edits_dim(b),
                   rd_edits_n_layers(b));
}

/* Pushes a new edit set (model: that of the edit set at model_of) covering the union of a
 * and b (b may be NULL: a's layout). */
static rd_edits *push_union(lua_State *L, int model_of, const rd_edits *a, const rd_edits *b) {
    const int n = rd_edits_n_layers(a);
    int all = 1;
    for (int l = 0; l < n; l++) all &= rd_edits_layer_on(a, l) || (b && rd_edits_layer_on(b, l));
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    if (all) luaL_addstring(&buf, "all");
    for (int l = 0, first = 1; !all && l < n; l++) {
        if (!rd_edits_layer_on(a, l) && !(b && rd_edits_layer_on(b, l))) continue;
        if (!first) luaL_addchar(&buf, ',');
        first = 0;
        lua_pushfstring(L, "%d", l);
        luaL_addvalue(&buf);
    }
    luaL_pushresult(&buf);
    const int text = lua_gettop(L);
    rd_edit_spec spec = {.sites = rd_edits_sites(a) | (b ? rd_edits_sites(b) : 0),
                         .layers = lua_tostring(L, text),
                         .scale = rd_edits_has_scale(a) || (b && rd_edits_has_scale(b)),
                         .bias = rd_edits_has_bias(a) || (b && rd_edits_has_bias(b))};
    lua_getiuservalue(L, model_of, 1);
    rdl_edits *u = rdl_edits_push_empty(L, -1);
    rd_config cfg = {.dim = rd_edits_dim(a), .n_layers = n};
    rd_error err = {0};
    if (!(u->e = rd_edits_new(&cfg, &spec, &err))) rdl_raise(L, &err);
    lua_replace(L, text); /* the result where the text was; then drop the model copy */
    lua_settop(L, text);
    return u->e;
}

typedef enum { OP_COMPOSE, OP_UNDO, OP_INVERSE } edit_op;

/* out = op(a, b) on every vector of out (b NULL for OP_INVERSE). */
static void combine(lua_State *L, rd_edits *out, const rd_edits *a, const rd_edits *b, edit_op op) {
    const int dim = rd_edits_dim(out);
    for (int l = 0; l < rd_edits_n_layers(out); l++) {
        if (!rd_edits_layer_on(out, l)) continue;
        for (int k = 0; k < 2; k++) {
            const int site = SITES[k];
            if (!(rd_edits_sites(out) & site)) continue;
            const float *s1 = vec(a, l, site, 0), *b1 = vec(a, l, site, 1);
            const float *s2 = b ? vec(b, l, site, 0) : NULL, *b2 = b ? vec(b, l, site, 1) : NULL;
            float *so = vec(out, l, site, 0), *bo = vec(out, l, site, 1);
            const float *sd = op == OP_INVERSE ? s1 : s2; /* the divisor */
            for (int i = 0; i < dim; i++) {
                float S1 = scale_at(s1, i), B1 = bias_at(b1, i);
                float S2 = scale_at(s2, i), B2 = bias_at(b2, i);
                float s, bb;
                if (op != OP_COMPOSE && scale_at(sd, i) == 0.0f)
                    luaL_error(L, "the scale of layer %d %s is 0 at index %d: that edit cannot be "
                                  "undone", l, rd_sites_name(site), i + 1);
                if (op == OP_COMPOSE) {
                    s = S2 * S1;
                    bb = S2 * B1 + B2;
                } else if (op == OP_UNDO) {
                    s = S1 / S2;
                    bb = (B1 - B2) / S2;
                } else {
                    s = 1.0f / S1;
                    bb = -B1 / S1;
                }
                if (so) so[i] = s;
                if (bo) bo[i] = bb;
            }
        }
    }
}

static int edits_binary(lua_State *L, edit_op op) {
    const rd_edits *a = rdl_check_edits(L, 1)->e;
    const rd_edits *b = rdl_check_edits(L, 2)->e;
    check_red(L, a, op == OP_COMPOSE ? "e1 + e2" : "e1 - e2");
    check_red(L, b, op == OP_COMPOSE ? "e1 + e2" : "e1 - e2");
    check_same_shape(L, a, b);
    lua_settop(L, 2);
    rd_edits *out = push_union(L, 1, a, b);
    combine(L, out, a, b, op);
    return 1;
}

static int edits_add(lua_State *L) { return edits_binary(L, OP_COMPOSE); }
static int edits_sub(lua_State *L) { return edits_binary(L, OP_UNDO); }

static int edits_unm(lua_State *L) {
    const rd_edits *a = rdl_check_edits(L, 1)->e;
    check_red(L, a, "-e (the inverse edit)");
    lua_settop(L, 1);
    rd_edits *out = push_union(L, 1, a, NULL);
    combine(L, out, a, NULL, OP_INVERSE);
    return 1;
}

/* e * k or k * e: s' = 1 + k(s − 1), b' = k·b. */
static int edits_mul(lua_State *L) {
    int ei = luaL_testudata(L, 1, RDL_EDITS) ? 1 : 2, ki = 3 - ei;
    const rd_edits *a = rdl_check_edits(L, ei)->e;
    if (lua_type(L, ki) != LUA_TNUMBER)
        return luaL_error(L, "red.edits can be multiplied by a number only (got %s)",
                          luaL_typename(L, ki));
    const double k = lua_tonumber(L, ki);
    lua_settop(L, 2);
    if (rd_edits_method(a) != RD_METHOD_RED) { /* a copy with its offset from identity × k */
        lua_getiuservalue(L, ei, 1);
        rdl_edits *u = rdl_edits_push_empty(L, -1);
        rd_error err = {0};
        if (!(u->e = rd_edits_clone(a, &err))) return rdl_raise(L, &err);
        for (int i = 0; i < rd_edits_tensor_count(u->e); i++) {
            const rd_edit_tensor *t = rd_edits_tensor_at(u->e, i);
            float *p = rd_edits_params(u->e) + t->offset;
            const int lora = rd_edits_method(u->e) == RD_METHOD_LORA;
            if (lora && t->kind == 0) continue; /* LoRA: B·A scales with B alone */
            for (size_t j = 0; j < t->count; j++)
                p[j] = lora ? (float)(k * p[j]) : (float)(1.0 + k * (p[j] - 1.0));
        }
        return 1;
    }
    rd_edits *out = push_union(L, ei, a, NULL);
    const int dim = rd_edits_dim(a);
    for (int l = 0; l < rd_edits_n_layers(a); l++)
        for (int j = 0; j < 2; j++)
            for (int bias = 0; bias < 2; bias++) {
                const float *s = vec(a, l, SITES[j], bias);
                float *d = vec(out, l, SITES[j], bias);
                if (!s || !d) continue;
                for (int i = 0; i < dim; i++)
                    d[i] = bias ? (float)(k * s[i]) : (float)(1.0 + k * (s[i] - 1.0));
            }
    return 1;
}

/* Raw comparison: max |Δs|, max |Δb|, the l2 norm of the difference, the cosine of the two
 * offsets from identity. */
static int edits_compare(lua_State *L) {
    const rd_edits *a = rdl_check_edits(L, 1)->e;
    const rd_edits *b = rdl_check_edits(L, 2)->e;
    check_red(L, a, "compare");
    check_red(L, b, "compare");
    check_same_shape(L, a, b);
    const int dim = rd_edits_dim(a);
    double max_s = 0, max_b = 0, sq = 0, dot = 0, na = 0, nb = 0;
    for (int l = 0; l < rd_edits_n_layers(a); l++)
        for (int k = 0; k < 2; k++) {
            const int site = SITES[k];
            const float *s1 = vec(a, l, site, 0), *b1 = vec(a, l, site, 1);
            const float *s2 = vec(b, l, site, 0), *b2 = vec(b, l, site, 1);
            if (!s1 && !b1 && !s2 && !b2) continue;
            for (int i = 0; i < dim; i++) {
                double o1s = scale_at(s1, i) - 1.0, o2s = scale_at(s2, i) - 1.0;
                double o1b = bias_at(b1, i), o2b = bias_at(b2, i);
                double ds = fabs(o1s - o2s), db = fabs(o1b - o2b);
                if (ds > max_s) max_s = ds;
                if (db > max_b) max_b = db;
                sq += ds * ds + db * db;
                dot += o1s * o2s + o1b * o2b;
                na += o1s * o1s + o1b * o1b;
                nb += o2s * o2s + o2b * o2b;
            }
        }
    lua_createtable(L, 0, 4);
    rdl_set_num(L, "max_abs_scale", max_s);
    rdl_set_num(L, "max_abs_bias", max_b);
    lua_pushnumber(L, sqrt(sq));
    lua_setfield(L, -2, "l2");
    if (na > 0 && nb > 0) {
        rdl_set_num(L, "cosine", dot / sqrt(na * nb));
    }
    return 1;
}

void rdl_open_edits(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"params", edits_params}, {"ratio", edits_ratio},     {"info", edits_info},
        {"save", edits_save},     {"clone", edits_clone},     {"vector", edits_vector},
        {"set_vector", edits_set_vector}, {"compare", edits_compare}, {"close", edits_close},
        {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", edits_gc},   {"__close", edits_close}, {"__tostring", edits_tostring},
        {"__add", edits_add}, {"__sub", edits_sub},     {"__mul", edits_mul},
        {"__unm", edits_unm}, {NULL, NULL}};
    rdl_new_type(L, RDL_EDITS, methods, meta);
    lua_pushcfunction(L, red_load_edits);
    lua_setfield(L, -2, "load_edits");
}
