/* REPL completion candidates (lua_complete.h) on a plain Lua state with stand-ins for the
 * `red` module and its objects: global names and keywords, fields of tables, methods
 * through the __index table of a table's and a userdata's metatable (strings too), ':'
 * listing functions only, non-identifier keys skipped, __index functions never called,
 * cycles of __index tables, malformed words, and the stack left as it was. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "redit/lua_complete.h"

static const char SETUP[] =
    "red = {version = '0.0', load = function() end, load_edits = function() end,\n"
    "       threads = print, _private = 1, [1] = 'numeric key', ['not ident'] = 2,\n"
    "       ['end'] = 3}\n"
    "methods = {generate = function() end, info = function() end,\n"
    "           tokenize = function() end, name = 'a field'}\n"
    "model = setmetatable({own = 1}, {__index = methods})\n"
    "deep = setmetatable({}, {__index = setmetatable({mid = 1}, {__index = {low = 2}})})\n"
    "proxy = setmetatable({}, {__index = function() error('an __index function ran') end})\n"
    "cyc = {x = 1}; setmetatable(cyc, {__index = cyc})\n"
    "s = 'text'\n";

/* Creates a userdata `ud` with the metatable {__index = methods}. */
static void make_userdata(lua_State *L) {
    lua_newuserdatauv(L, 8, 0);
    lua_newtable(L);
    lua_getglobal(L, "methods");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setglobal(L, "ud");
}

static int setup(void **state) {
    lua_State *L = luaL_newstate();
    if (!L) return -1;
    luaL_openlibs(L);
    if (luaL_dostring(L, SETUP) != LUA_OK) {
        print_error("setup chunk: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return -1;
    }
    make_userdata(L);
    *state = L;
    return 0;
}

static int teardown(void **state) {
    lua_close(*state);
    return 0;
}

/* The candidates for word must be exactly want[] (NULL-terminated), in that order. */
static void expect(lua_State *L, const char *word, const char *const *want) {
    int top = lua_gettop(L);
    size_t n = 99;
    char **got = rd_lua_complete(L, word, &n);
    assert_non_null(got);
    assert_int_equal(lua_gettop(L), top);
    size_t n_want = 0;
    while (want[n_want]) n_want++;
    int same = n == n_want;
    for (size_t i = 0; same && i < n; i++) same = strcmp(got[i], want[i]) == 0;
    if (!same) {
        print_message("  \"%s\": got", word);
        for (size_t i = 0; i < n; i++) print_message(" %s", got[i]);
        print_message("\n  want");
        for (size_t i = 0; i < n_want; i++) print_message(" %s", want[i]);
        print_message("\n");
    }
    assert_null(got[n]);
    rd_lua_complete_free(got);
    assert_true(same);
}

#define EXPECT(L, word, ...)                                                               \
    do {                                                                                    \
        static const char *const w_[] = {__VA_ARGS__, NULL};                              \
        expect(L, word, w_);                                                                \
    } while (0)

static void expect_none(lua_State *L, const char *word) {
    static const char *const none[] = {NULL};
    expect(L, word, none);
}

static void test_fields(void **state) {
    lua_State *L = *state;
    EXPECT(L, "red.lo", "red.load", "red.load_edits");
    EXPECT(L, "red.", "red._private", "red.load", "red.load_edits", "red.threads", "red.version");
    EXPECT(L, "red.v", "red.version");
    EXPECT(L, "string.up", "string.upper");
    EXPECT(L, "deep.", "deep.low", "deep.mid"); /* a chain of __index tables */
    EXPECT(L, "cyc.", "cyc.x");                  /* __index pointing back at itself */
    expect_none(L, "red.zz");
}

static void test_methods(void **state) {
    lua_State *L = *state;
    EXPECT(L, "red:", "red:load", "red:load_edits", "red:threads");
    EXPECT(L, "model:", "model:generate", "model:info", "model:tokenize");
    EXPECT(L, "model.", "model.generate", "model.info", "model.name", "model.own",
           "model.tokenize");
    EXPECT(L, "ud:t", "ud:tokenize");
    EXPECT(L, "ud.na", "ud.name");
    EXPECT(L, "s:upp", "s:upper"); /* strings: the string library through their metatable */
    EXPECT(L, "red.version:le", "red.version:len");
}

static void test_globals(void **state) {
    lua_State *L = *state;
    EXPECT(L, "pri", "print");
    EXPECT(L, "re", "red", "repeat", "require", "return");
    EXPECT(L, "fu", "function");
    EXPECT(L, "mo", "model");
    size_t n = 0;
    char **all = rd_lua_complete(L, "", &n);
    assert_non_null(all);
    assert_true(n > 30); /* every global and keyword */
    for (size_t i = 1; i < n; i++) assert_true(strcmp(all[i - 1], all[i]) < 0);
    rd_lua_complete_free(all);
    rd_lua_complete_free(NULL);
}

static void test_nothing_runs_or_breaks(void **state) {
    lua_State *L = *state;
    expect_none(L, "proxy.a"); /* the __index function is not called */
    expect_none(L, "proxy.");
    expect_none(L, "nosuch.x");
    expect_none(L, "red..lo");
    expect_none(L, "red:load.x");
    expect_none(L, "1red.x");
    expect_none(L, "red.lo-");
    expect_none(L, "model:own:x");
    /* a value on the stack stays there */
    lua_pushinteger(L, 42);
    EXPECT(L, "red.th", "red.threads");
    assert_int_equal(lua_tointeger(L, -1), 42);
    lua_pop(L, 1);
    size_t n = 5;
    char **none = rd_lua_complete(L, NULL, &n);
    assert_non_null(none);
    assert_true(n > 0); /* NULL word: like "" */
    rd_lua_complete_free(none);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_globals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_runs_or_breaks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
