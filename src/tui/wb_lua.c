/* The console's `wb` table: the workbench's actions for Lua (the same app_* functions the
 * keys call), so everything a pane does can be typed or scripted, and the panes show the
 * result on the next redraw. Also sets the global `model` to the loaded model (shared: it
 * cannot be closed from Lua).
 *
 *   wb.help()                 this list
 *   wb.get([key])             a setting as text, or a table of all settings
 *   wb.set(key, value)        one setting (validated as in the pane); wb.set{key = value, ...}
 *   wb.train()                start a training run with the settings (in the background)
 *   wb.stop()                 stop training after this step (twice: skip its eval) / answers
 *   wb.status()               {training, chatting, evaluating, step, total_steps, loss, eval_loss,
 *                             eval_accuracy (classification sets), runs, state}
 *   wb.chat(prompt)           answer with base and edited model in the chat pane
 *   wb.strength([alpha])      get / set the edit strength α
 *   wb.save()                 save the session now
 *   wb.edits()                a copy of the session's edits (a red.edits)
 *   wb.set_edits(e)           use a copy of e as the session's edits
 *   wb.runs()                 the runs: {id, label, current, edits (file or nil), model (a
 *                             full fine-tuning run's saved model, or nil), loss = {...},
 *                             evals = {{step, loss}...}, ...}; run n is "#n" on the chart
 *   wb.use_run(n)             make run n's edits the current ones (chat answers with them)
 *   wb.run_edits(n)           a copy of run n's edits (a red.edits): compare, export, ...
 *   wb.delete_run(n)          delete run n (its curve and edits; the current edits stay)
 *   wb.compare(a, b, ...)     the chat answers in columns side by side: the base model, then
 *                             each of 1 to 4 edit sets — a run by number (its edits, or a full
 *                             fine-tuning run's model), an edits file by path, a red.edits —
 *                             each column titled; wb.compare() goes back to base vs current
 *                             edits. Returns the columns' titles (or nothing)
 *   wb.eval_mc([file])        score a multiple-choice file (default: the mc_path setting) with
 *                             the base model and the current edits, in the background (Esc
 *                             or wb.stop() stops it); the console then prints acc and acc_norm
 *                             (± stderr) side by side with McNemar's p-value
 *   wb.mc()                   the last such result: {file, items, edited, base = {acc,
 *                             acc_stderr, acc_norm, acc_norm_stderr}, edited_scores = {...},
 *                             mcnemar = {acc = {p, base_only, edited_only}, acc_norm = ...}},
 *                             or nil
 *   wb.focus(pane)            "config", "chart", "chat" or "console"
 *   wb.model                  the loaded model (also the global `model`) */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "app.h"
#include "redit/lua_red.h"
#include "tui_config.h"

static tui_app *app_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* Raises err's message as a Lua error (no C memory is held by the callers). */
static int raise_error(lua_State *L, const rd_error *err) { return luaL_error(L, "%s", err->msg); }

static int wb_help(lua_State *L) {
    static const char text[] =
        "wb.get([key])  wb.set(key, value) / wb.set{...}  wb.train()  wb.stop()  wb.status()\n"
        "wb.chat(prompt)  wb.strength([a])  wb.save()  wb.edits()  wb.set_edits(e)  wb.runs()\n"
        "wb.use_run(n)  wb.run_edits(n)  wb.delete_run(n)  wb.compare(a, b, ...) / wb.compare()\n"
        "wb.eval_mc([file]) (multiple choice: base vs edits, acc/acc_norm, McNemar)  wb.mc()\n"
        "wb.focus(\"config\"|\"chart\"|\"chat\"|\"console\")  wb.model (= model)\n"
        "wb.follow(log.csv [, edits]) (a run training elsewhere: its live curve, then its edits)\n"
        "settings: ";
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, text);
    for (size_t i = 0; i < tui_config_field_count(); i++) {
        if (i) luaL_addstring(&b, " ");
        luaL_addstring(&b, tui_config_field(i)->key);
    }
    luaL_pushresult(&b);
    lua_getglobal(L, "print");
    lua_insert(L, -2);
    lua_call(L, 1, 0);
    return 0;
}

static void push_setting(lua_State *L, const tui_app *a, const tui_field *f) {
    char buf[600];
    tui_config_get(&a->session.config, f, buf, sizeof buf);
    if (f->kind == TUI_FIELD_BOOL) lua_pushboolean(L, !strcmp(buf, "on"));
    else if (f->kind == TUI_FIELD_INT || f->kind == TUI_FIELD_REAL) {
        if (!lua_stringtonumber(L, buf)) lua_pushstring(L, buf);
    } else lua_pushstring(L, buf);
}

static int wb_get(lua_State *L) {
    tui_app *a = app_of(L);
    if (lua_isnoneornil(L, 1)) {
        lua_newtable(L);
        for (size_t i = 0; i < tui_config_field_count(); i++) {
            const tui_field *f = tui_config_field(i);
            push_setting(L, a, f);
            lua_setfield(L, -2, f->key);
        }
        return 1;
    }
    const char *key = luaL_checkstring(L, 1);
    const tui_field *f = tui_config_find(key);
    if (!f) return luaL_error(L, "unknown setting \"%s\" (wb.help() lists them)", key);
    push_setting(L, a, f);
    return 1;
}

/* Sets key from the value at idx (booleans as on/off, numbers and strings as text). */
static void set_one(lua_State *L, tui_app *a, const char *key, int idx) {
    char text[64];
    const char *value;
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
        value = lua_toboolean(L, idx) ? "on" : "off";
    } else if (lua_type(L, idx) == LUA_TNUMBER) {
        if (lua_isinteger(L, idx)) snprintf(text, sizeof text, "%lld", (long long)lua_tointeger(L, idx));
        else snprintf(text, sizeof text, "%.17g", lua_tonumber(L, idx));
        value = text;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        value = lua_tostring(L, idx);
    } else {
        luaL_error(L, "%s: a boolean, number or string is needed, not a %s", key, luaL_typename(L, idx));
        return;
    }
    rd_error err = {0};
    if (app_set_field(a, key, value, &err)) raise_error(L, &err);
}

static int wb_set(lua_State *L) {
    tui_app *a = app_of(L);
    if (lua_istable(L, 1)) {
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "setting names are strings");
            set_one(L, a, lua_tostring(L, -2), lua_gettop(L));
            lua_pop(L, 1);
        }
        return 0;
    }
    const char *key = luaL_checkstring(L, 1);
    luaL_checkany(L, 2);
    set_one(L, a, key, 2);
    return 0;
}

static int wb_train(lua_State *L) {
    rd_error err = {0};
    if (app_train(app_of(L), &err)) return raise_error(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int wb_stop(lua_State *L) {
    lua_pushboolean(L, app_stop(app_of(L)));
    return 1;
}

static void set_num(lua_State *L, const char *k, double v) {
    if (isfinite(v)) lua_pushnumber(L, v);
    else lua_pushnil(L);
    lua_setfield(L, -2, k);
}

static int wb_status(lua_State *L) {
    tui_app *a = app_of(L);
    lua_newtable(L);
    lua_pushboolean(L, a->training);
    lua_setfield(L, -2, "training");
    lua_pushboolean(L, a->chatting != 0);
    lua_setfield(L, -2, "chatting");
    lua_pushboolean(L, a->evaluating);
    lua_setfield(L, -2, "evaluating");
    lua_pushinteger(L, a->last.step);
    lua_setfield(L, -2, "step");
    lua_pushinteger(L, a->last.total_steps);
    lua_setfield(L, -2, "total_steps");
    set_num(L, "loss", a->last.step ? a->last.loss : NAN);
    set_num(L, "eval_loss", a->last_eval);
    set_num(L, "eval_accuracy", a->last_eval_accuracy);
    lua_pushinteger(L, (lua_Integer)a->session.n_runs);
    lua_setfield(L, -2, "runs");
    lua_pushstring(L, a->train_status);
    lua_setfield(L, -2, "state");
    return 1;
}

static int wb_chat(lua_State *L) {
    const char *prompt = luaL_checkstring(L, 1);
    rd_error err = {0};
    if (app_chat(app_of(L), prompt, &err)) return raise_error(L, &err);
    return 0;
}

static int wb_strength(lua_State *L) {
    tui_app *a = app_of(L);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checknumber(L, 1);
        set_one(L, a, "strength", 1);
    }
    lua_pushnumber(L, a->session.config.strength);
    return 1;
}

static int wb_save(lua_State *L) {
    rd_error err = {0};
    if (app_save(app_of(L), &err)) return raise_error(L, &err);
    return 0;
}

static int wb_edits(lua_State *L) {
    tui_app *a = app_of(L);
    if (a->training) return luaL_error(L, "training is running: the edits are being written");
    lua_getfield(L, lua_upvalueindex(2), "model");
    rd_error err = {0};
    rd_edits *copy = rd_edits_clone(a->edits, &err);
    if (!copy) return raise_error(L, &err);
    rd_lua_push_edits(L, copy, -1);
    return 1;
}

static int wb_set_edits(lua_State *L) {
    rd_edits *e = rd_lua_to_edits(L, 1);
    if (!e) return luaL_typeerror(L, 1, "red.edits");
    rd_error err = {0};
    if (app_set_edits(app_of(L), e, &err)) return raise_error(L, &err);
    return 0;
}

static int wb_runs(lua_State *L) {
    tui_app *a = app_of(L);
    lua_createtable(L, (int)a->session.n_runs, 0);
    for (size_t i = 0; i < a->session.n_runs; i++) {
        const tui_run *r = &a->session.runs[i];
        lua_newtable(L);
        lua_pushinteger(L, r->id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, r->label);
        lua_setfield(L, -2, "label");
        lua_pushboolean(L, r->id == a->session.current_run);
        lua_setfield(L, -2, "current");
        char path[1200];
        tui_session_run_edits_path(&a->session, r, path, sizeof path);
        if (path[0]) lua_pushstring(L, path);
        else lua_pushnil(L);
        lua_setfield(L, -2, "edits");
        tui_session_run_model_path(&a->session, r, path, sizeof path);
        if (path[0]) lua_pushstring(L, path); /* a full fine-tuning run's saved model */
        else lua_pushnil(L);
        lua_setfield(L, -2, "model");
        lua_createtable(L, (int)r->n_steps, 0);
        for (size_t s = 0; s < r->n_steps; s++) {
            lua_pushnumber(L, r->loss[s]);
            lua_rawseti(L, -2, (lua_Integer)s + 1);
        }
        lua_setfield(L, -2, "loss");
        lua_createtable(L, (int)r->n_evals, 0);
        for (size_t s = 0; s < r->n_evals; s++) {
            lua_createtable(L, 2, 0);
            lua_pushinteger(L, r->eval_step[s]);
            lua_rawseti(L, -2, 1);
            lua_pushnumber(L, r->eval_loss[s]);
            lua_rawseti(L, -2, 2);
            lua_rawseti(L, -2, (lua_Integer)s + 1);
        }
        lua_setfield(L, -2, "evals");
        set_num(L, "best_eval_loss", r->best_eval_loss);
        set_num(L, "seconds", r->seconds);
        set_num(L, "tokens_per_s", r->tokens_per_s);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* The run number at idx (a whole number). */
static int check_run_id(lua_State *L, int idx) {
    const lua_Integer n = luaL_checkinteger(L, idx);
    if (n < 1 || n > INT32_MAX) luaL_argerror(L, idx, "a run number (wb.runs() lists them)");
    return (int)n;
}

static int wb_use_run(lua_State *L) {
    rd_error err = {0};
    if (app_use_run(app_of(L), check_run_id(L, 1), &err)) return raise_error(L, &err);
    return 0;
}

static int wb_run_edits(lua_State *L) {
    const int id = check_run_id(L, 1);
    lua_getfield(L, lua_upvalueindex(2), "model");
    rd_error err = {0};
    rd_edits *e = app_run_edits(app_of(L), id, &err);
    if (!e) return raise_error(L, &err);
    rd_lua_push_edits(L, e, -1);
    return 1;
}

static int wb_delete_run(lua_State *L) {
    rd_error err = {0};
    if (app_delete_run(app_of(L), check_run_id(L, 1), &err)) return raise_error(L, &err);
    return 0;
}

static int wb_compare(lua_State *L) {
    tui_app *a = app_of(L);
    rd_error err = {0};
    int n = lua_gettop(L);
    while (n > 0 && lua_isnil(L, n)) n--; /* wb.compare(nil): as wb.compare() */
    if (n > TUI_CHAT_MAX_COLUMNS - 1)
        return luaL_error(L, "wb.compare: at most %d edit sets beside the base model",
                          TUI_CHAT_MAX_COLUMNS - 1);
    app_compare_item items[TUI_CHAT_MAX_COLUMNS - 1];
    for (int i = 1; i <= n; i++) {
        app_compare_item *it = &items[i - 1];
        *it = (app_compare_item){0};
        if (lua_type(L, i) == LUA_TNUMBER) it->run = check_run_id(L, i);
        else if (lua_type(L, i) == LUA_TSTRING) it->path = lua_tostring(L, i);
        else if (!(it->edits = rd_lua_to_edits(L, i)))
            return luaL_typeerror(L, i, "run number, edits file or red.edits");
    }
    /* the strings and edit sets stay on the stack while app_compare copies them */
    if (app_compare(a, items, n, &err)) return raise_error(L, &err);
    for (int k = 0; k < a->n_compare; k++) lua_pushstring(L, a->compare_title[k]);
    return a->n_compare;
}

static int wb_eval_mc(lua_State *L) {
    rd_error err = {0};
    if (app_eval_mc(app_of(L), luaL_optstring(L, 1, NULL), &err)) return raise_error(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* Pushes one side's scores of r as a table. */
static void push_mc_side(lua_State *L, const tui_mc_result *r, int k) {
    lua_createtable(L, 0, 4);
    set_num(L, "acc", r->acc[k]);
    set_num(L, "acc_stderr", r->acc_stderr[k]);
    set_num(L, "acc_norm", r->acc_norm[k]);
    set_num(L, "acc_norm_stderr", r->acc_norm_stderr[k]);
}

static int wb_mc(lua_State *L) {
    const tui_app *a = app_of(L);
    if (!a->has_mc) return 0;
    const tui_mc_result *r = &a->mc;
    lua_createtable(L, 0, 6);
    lua_pushstring(L, a->mc_path);
    lua_setfield(L, -2, "file");
    lua_pushinteger(L, (lua_Integer)r->n);
    lua_setfield(L, -2, "items");
    lua_pushstring(L, a->mc_title);
    lua_setfield(L, -2, "edited");
    push_mc_side(L, r, 0);
    lua_setfield(L, -2, "base");
    push_mc_side(L, r, 1);
    lua_setfield(L, -2, "edited_scores");
    lua_createtable(L, 0, 2);
    const char *name[2] = {"acc", "acc_norm"};
    for (int k = 0; k < 2; k++) {
        lua_createtable(L, 0, 3);
        set_num(L, "p", r->p[k]);
        lua_pushinteger(L, r->only_base[k]);
        lua_setfield(L, -2, "base_only");
        lua_pushinteger(L, r->only_edited[k]);
        lua_setfield(L, -2, "edited_only");
        lua_setfield(L, -2, name[k]);
    }
    lua_setfield(L, -2, "mcnemar");
    return 1;
}

/* wb.follow(log_path [, edits_path]): follows a run training elsewhere (app_follow). */
static int wb_follow(lua_State *L) {
    rd_error err = {0};
    if (app_follow(app_of(L), luaL_checkstring(L, 1), luaL_optstring(L, 2, NULL), &err))
        return raise_error(L, &err);
    const tui_session *se = &app_of(L)->session;
    lua_pushinteger(L, se->runs[se->n_runs - 1].id); /* the run app_follow added */
    return 1;
}

static int wb_focus(lua_State *L) {
    static const char *const panes[] = {"config", "chart", "chat", "console", NULL};
    tui_app *a = app_of(L);
    a->focus = luaL_checkoption(L, 1, NULL, panes);
    a->zoom = TUI_ZOOM_NONE;
    a->dirty = 1;
    return 0;
}

int wb_lua_open(lua_State *L, tui_app *a, rd_error *err) {
    static const luaL_Reg fns[] = {
        {"help", wb_help},     {"get", wb_get},           {"set", wb_set},
        {"train", wb_train},   {"stop", wb_stop},         {"status", wb_status},
        {"chat", wb_chat},     {"strength", wb_strength}, {"save", wb_save},
        {"edits", wb_edits},   {"set_edits", wb_set_edits}, {"runs", wb_runs},
        {"focus", wb_focus},   {"use_run", wb_use_run},   {"run_edits", wb_run_edits},
        {"delete_run", wb_delete_run}, {"compare", wb_compare},
        {"follow", wb_follow}, {"eval_mc", wb_eval_mc}, {"mc", wb_mc}, {NULL, NULL}};
    lua_newtable(L);                 /* wb */
    rd_lua_push_model_borrowed(L, a->model);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "model");
    lua_setfield(L, -2, "model");
    lua_pushlightuserdata(L, a);      /* upvalue 1: the app */
    lua_pushvalue(L, -2);             /* upvalue 2: wb itself (for wb.model) */
    luaL_setfuncs(L, fns, 2);
    lua_setglobal(L, "wb");
    (void)err;
    return 0;
}
