/* Tab completion for Lua REPLs: walks the globals along the word's identifier chain and
 * lists the matching keys (raw reads and __index tables only, so no Lua code runs). The
 * candidates are gathered into a Lua table inside a protected call (a memory error there
 * cannot leak C memory), then copied out, sorted. */
#include "redit/lua_complete.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#define MAX_DEPTH 16 /* __index tables followed at most (a cycle ends here) */

static const char *const KEYWORDS[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"};

static int is_keyword(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof KEYWORDS / sizeof *KEYWORDS; i++)
        if (strlen(KEYWORDS[i]) == n && memcmp(KEYWORDS[i], s, n) == 0) return 1;
    return 0;
}

static int ident_char(char c, int first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/* s[0, n) is an identifier (n = 0 allowed when empty_ok: a name not yet typed). */
static int is_ident(const char *s, size_t n, int empty_ok) {
    if (n == 0) return empty_ok;
    for (size_t i = 0; i < n; i++)
        if (!ident_char(s[i], i == 0)) return 0;
    return 1;
}

/* Pushes the table the metatable of the value at idx holds as __index; 0 (nothing pushed)
 * when there is none. */
static int push_index_table(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return 0;
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (lua_istable(L, -1)) return 1;
    lua_pop(L, 1);
    return 0;
}

/* Replaces the value on top by value[key] (raw, then along __index tables), or nil. */
static void lookup(lua_State *L, const char *key, size_t len) {
    for (int depth = 0; depth < MAX_DEPTH; depth++) {
        if (lua_istable(L, -1)) {
            lua_pushlstring(L, key, len);
            lua_rawget(L, -2);
            if (!lua_isnil(L, -1)) {
                lua_remove(L, -2);
                return;
            }
            lua_pop(L, 1);
        }
        if (!push_index_table(L, -1)) break;
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    lua_pushnil(L);
}

/* Adds prefix .. key to the set at index `set` for every identifier key of the value on
 * top (and of its __index tables) starting with name[0, n); methods_only: function values
 * only. Pops the value. */
static void collect(lua_State *L, int set, const char *prefix, size_t prefix_len,
                    const char *name, size_t n, int methods_only) {
    for (int depth = 0; depth < MAX_DEPTH; depth++) {
        int v = lua_gettop(L);
        if (lua_istable(L, v)) {
            lua_pushnil(L);
            while (lua_next(L, v)) {
                size_t klen;
                const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
                if (k && klen >= n && memcmp(k, name, n) == 0 && is_ident(k, klen, 0) &&
                    !is_keyword(k, klen) && (!methods_only || lua_isfunction(L, -1))) {
                    lua_pushlstring(L, prefix, prefix_len);
                    lua_pushvalue(L, -3);
                    lua_concat(L, 2);
                    lua_pushboolean(L, 1);
                    lua_rawset(L, set);
                }
                lua_pop(L, 1);
            }
        }
        int more = push_index_table(L, v);
        lua_remove(L, v);
        if (!more) return;
    }
    lua_pop(L, 1);
}

/* lua_CFunction: (word) -> a table whose keys are the candidates. */
static int gather(lua_State *L) {
    size_t len;
    const char *word = luaL_checklstring(L, 1, &len);
    lua_newtable(L);
    int set = lua_gettop(L);
    size_t sep = len; /* the last '.' or ':' */
    for (size_t i = 0; i < len; i++)
        if (word[i] == '.' || word[i] == ':') sep = i;
    const char *name = sep < len ? word + sep + 1 : word;
    size_t n = sep < len ? len - sep - 1 : len;
    if (!is_ident(name, n, 1)) return 1;
    lua_pushglobaltable(L);
    if (sep == len) {
        for (size_t i = 0; i < sizeof KEYWORDS / sizeof *KEYWORDS; i++)
            if (strncmp(KEYWORDS[i], name, n) == 0) {
                lua_pushboolean(L, 1);
                lua_setfield(L, set, KEYWORDS[i]);
            }
        collect(L, set, "", 0, name, n, 0);
        return 1;
    }
    /* walk the chain word[0, sep): identifiers joined by '.' */
    for (size_t at = 0;; at++) {
        size_t end = at;
        while (end < sep && word[end] != '.') end++;
        if (!is_ident(word + at, end - at, 0)) { /* "a..b", "a:b.c" */
            lua_pop(L, 1);
            return 1;
        }
        lookup(L, word + at, end - at);
        if (end == sep) break;
        at = end;
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 1;
    }
    collect(L, set, word, sep + 1, name, n, word[sep] == ':');
    return 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void rd_lua_complete_free(char **list) {
    if (!list) return;
    for (char **p = list; *p; p++) free(*p);
    free(list);
}

char **rd_lua_complete(lua_State *L, const char *word, size_t *n) {
    *n = 0;
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 8)) return NULL;
    lua_pushcfunction(L, gather);
    lua_pushstring(L, word ? word : "");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_settop(L, top);
        return NULL;
    }
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        count++;
        lua_pop(L, 1);
    }
    char **list = calloc(count + 1, sizeof *list);
    if (!list) {
        lua_settop(L, top);
        return NULL;
    }
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        size_t len;
        const char *s = lua_tolstring(L, -2, &len); /* keys are strings: no conversion */
        if (k < count && (list[k] = malloc(len + 1))) {
            memcpy(list[k], s, len + 1);
            k++;
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    if (k < count) { /* out of memory */
        rd_lua_complete_free(list);
        return NULL;
    }
    qsort(list, count, sizeof *list, cmp_str);
    *n = count;
    return list;
}
