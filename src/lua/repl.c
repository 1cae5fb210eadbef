/* A Lua read-eval-print step (lua_repl.h): compiles a chunk as an expression first, then as
 * statements; an error ending in "<eof>" means more lines may complete it. */
#include "redit/lua_repl.h"

#include <stdlib.h>
#include <string.h>

#include "red_internal.h"
#include "redit/lua_red.h"

#define CHUNK_NAME "=stdin"

struct rd_lua_repl {
    lua_State *L;
    rd_lua_output_fn out;
    void *user;
    char *pending; /* the lines of the incomplete chunk so far, or NULL */
    char *ready;   /* a complete chunk waiting for rd_lua_repl_run, or NULL */
};

/* ---- output --------------------------------------------------------------------------- */

typedef struct output_target {
    rd_lua_output_fn out;
    void *user;
} output_target;

/* lua_CFunction: the arguments through tostring, tab-separated, and a newline, as one string (what
 * print writes and how results are shown). */
static int join_values(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        luaL_tolstring(L, i, NULL);
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    return 1;
}

/* print(...): its line goes to the console in one call. */
static int console_print(lua_State *L) {
    output_target *t = lua_touserdata(L, lua_upvalueindex(1));
    join_values(L);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    t->out(t->user, s, len, 0);
    return 0;
}

/* io.write(...): strings and numbers as they are, no separator; returns io.stdout as the
 * real io.write returns its file. */
static int console_write(lua_State *L) {
    output_target *t = lua_touserdata(L, lua_upvalueindex(1));
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);
        t->out(t->user, s, len, 0);
    }
    lua_getglobal(L, "io");
    if (lua_istable(L, -1)) lua_getfield(L, -1, "stdout");
    return 1;
}

int rd_lua_redirect_output(lua_State *L, rd_lua_output_fn out, void *user) {
    /* The target lives in a full userdata kept alive as the upvalue of both functions. */
    output_target *t = lua_newuserdatauv(L, sizeof *t, 0);
    if (!t) return -1;
    t->out = out;
    t->user = user;
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, console_print, 1);
    lua_setglobal(L, "print");
    lua_getglobal(L, "io");
    if (lua_istable(L, -1)) {
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, console_write, 1);
        lua_setfield(L, -2, "write");
    }
    lua_pop(L, 2);
    return 0;
}

/* ---- compiling ------------------------------------------------------------------------ */

/* A syntax error that only says the chunk ended too early: more lines may complete it. */
static int incomplete(lua_State *L, int status) {
    if (status != LUA_ERRSYNTAX) return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    static const char EOF_MARK[] = "<eof>";
    return msg && len >= sizeof EOF_MARK - 1 &&
           strcmp(msg + len - (sizeof EOF_MARK - 1), EOF_MARK) == 0;
}

/* Loads buf as a chunk — as "return " + buf when as_expr (an expression whose values are
 * printed). Pushes the function or the error message; returns the status. */
static int load_chunk(lua_State *L, const char *buf, int as_expr) {
    if (!as_expr) return luaL_loadbufferx(L, buf, strlen(buf), CHUNK_NAME, "t");
    size_t n = strlen(buf);
    char *code = malloc(n + 8);
    if (!code) {
        lua_pushliteral(L, "not enough memory");
        return LUA_ERRMEM;
    }
    memcpy(code, "return ", 7);
    memcpy(code + 7, buf, n + 1);
    int status = luaL_loadbufferx(L, code, n + 7, CHUNK_NAME, "t");
    free(code);
    return status;
}

/* Compiles buf, an expression first, else statements. Pushes the function (LUA_OK) or the
 * statements' error message; *more says whether more lines could complete it (the error says
 * "<eof>" for the statements, or for the expression: "1 +" goes on to the next line). */
static int compile(lua_State *L, const char *buf, int *more) {
    *more = 0;
    int status = load_chunk(L, buf, 1);
    if (status == LUA_OK) return status;
    int expr_more = incomplete(L, status);
    lua_pop(L, 1);
    status = load_chunk(L, buf, 0);
    *more = status != LUA_OK && (incomplete(L, status) || expr_more);
    return status;
}

/* ---- running -------------------------------------------------------------------------- */

/* Sends the message on the top (an error) to out and pops it. */
static void report(rd_lua_repl *r) {
    size_t len;
    const char *msg = lua_tolstring(r->L, -1, &len);
    if (!msg) {
        msg = "(error object is not a string)";
        len = strlen(msg);
    }
    r->out(r->user, msg, len, 1);
    r->out(r->user, "\n", 1, 1);
    lua_pop(r->L, 1);
}

/* Prints the n values on the top of the stack (a chunk's results) and pops them. */
static void print_results(rd_lua_repl *r, int base) {
    lua_State *L = r->L;
    int n = lua_gettop(L) - base;
    if (n <= 0) return;
    if (!lua_checkstack(L, LUA_MINSTACK)) { /* (luaL_checkstack would raise unprotected) */
        static const char msg[] = "too many results to print\n";
        r->out(r->user, msg, sizeof msg - 1, 1);
        lua_settop(L, base);
        return;
    }
    lua_pushcfunction(L, rdl_show); /* tables show their fields */
    lua_insert(L, base + 1);
    if (rdl_pcall(L, n, 1) != LUA_OK) {
        report(r);
    } else {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        r->out(r->user, s, len, 0);
        lua_pop(L, 1);
    }
    lua_settop(L, base);
}

rd_lua_repl *rd_lua_repl_new(lua_State *L, rd_lua_output_fn out, void *user) {
    rd_lua_repl *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->L = L;
    r->out = out;
    r->user = user;
    return r;
}

void rd_lua_repl_free(rd_lua_repl *r) {
    if (!r) return;
    free(r->pending);
    free(r->ready);
    free(r);
}

int rd_lua_repl_pending(const rd_lua_repl *r) { return r->pending != NULL; }

void rd_lua_repl_reset(rd_lua_repl *r) {
    free(r->pending);
    r->pending = NULL;
}

/* Appends line to the pending chunk ("\n"-joined). */
static int append_line(rd_lua_repl *r, const char *line) {
    size_t a = r->pending ? strlen(r->pending) : 0, b = strlen(line);
    char *p = realloc(r->pending, a + b + 2);
    if (!p) return -1;
    if (a) p[a++] = '\n';
    memcpy(p + a, line, b + 1);
    r->pending = p;
    return 0;
}

int rd_lua_repl_feed(rd_lua_repl *r, const char *line, char **chunk) {
    if (chunk) *chunk = NULL;
    free(r->ready);
    r->ready = NULL;
    if (append_line(r, line)) {
        rd_lua_repl_reset(r);
        return RD_LUA_REPL_NOMEM;
    }
    lua_State *L = r->L;
    int base = lua_gettop(L);
    int more;
    int status = compile(L, r->pending, &more);
    lua_settop(L, base);
    if (status != LUA_OK && more) return RD_LUA_REPL_MORE;
    if (chunk && !(*chunk = strdup(r->pending))) {
        rd_lua_repl_reset(r);
        return RD_LUA_REPL_NOMEM;
    }
    r->ready = r->pending;
    r->pending = NULL;
    return RD_LUA_REPL_READY;
}

void rd_lua_repl_run(rd_lua_repl *r) {
    if (!r->ready) return;
    lua_State *L = r->L;
    int base = lua_gettop(L);
    int more;
    int status = compile(L, r->ready, &more);
    free(r->ready);
    r->ready = NULL;
    if (status == LUA_OK) status = rdl_pcall(L, 0, LUA_MULTRET);
    rd_lua_clear_stop(L);
    if (status == LUA_OK)
        print_results(r, base);
    else
        report(r);
    lua_settop(L, base);
}

void rd_lua_repl_finish(rd_lua_repl *r) {
    if (!r->pending) return;
    int base = lua_gettop(r->L);
    if (load_chunk(r->L, r->pending, 0) != LUA_OK) report(r);
    lua_settop(r->L, base);
    rd_lua_repl_reset(r);
}
