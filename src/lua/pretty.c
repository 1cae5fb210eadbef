/* Values as the REPLs show them (rdl_show in red_internal.h): a table's fields rather than
 * "table: 0x…". One form for `redit lua` and the workbench's console (both print a chunk's
 * results through rd_lua_repl).
 *
 *   {dim = 64, layers = 2, name = "tiny"}                     short: one line
 *   {                                                         longer: a field a line
 *     format = "GGUF",
 *     tensors = {F16 = 12, F32 = 9},                          nested tables: one level
 *     vocab = {… 512 entries},                                deeper: their size only
 *     … (40 more)                                             long tables: the first ones
 *   }
 *
 * Order: the array part 1..n first, then number keys ascending, string keys in byte order,
 * other keys last (in traversal order). Strings inside a table are quoted and long ones cut
 * with their length. A table with a __tostring metamethod, userdata and the rest go through
 * tostring. The text is built from Lua strings (a table of pieces), so an error (out of
 * memory) leaks nothing. */
#include <stdlib.h>
#include <string.h>

#include "red_internal.h"

enum {
    ONE_LINE_MAX = 78,   /* a top-level table's one-line form at most this many characters */
    TOP_ENTRIES = 40,    /* fields shown of a top-level table */
    INLINE_ENTRIES = 12, /* fields shown of a nested table */
    STRING_MAX = 60,     /* bytes of a string shown inside a table */
};

/* The pieces of the text being built: a sequence table at index `parts`. */
typedef struct pieces {
    lua_State *L;
    int parts;
    lua_Integer n;
} pieces;

static void put(pieces *p, const char *s, size_t len) {
    lua_pushlstring(p->L, s, len);
    lua_rawseti(p->L, p->parts, ++p->n);
}

static void put_str(pieces *p, const char *s) { put(p, s, strlen(s)); }

/* Moves the string on the top of the stack into the pieces. */
static void put_top(pieces *p) { lua_rawseti(p->L, p->parts, ++p->n); }

static int is_identifier(const char *s, size_t len) {
    static const char *const keywords[] = {
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
        "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"};
    if (len == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 0;
    }
    if (strlen(s) != len) return 0;
    for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++)
        if (!strcmp(s, keywords[i])) return 0;
    return 1;
}

/* A quoted string: escapes for '"', '\\' and control bytes; beyond STRING_MAX bytes it is cut
 * (at a UTF-8 boundary) and its length follows: "abc…" (1234 bytes). */
static void put_quoted(pieces *p, const char *s, size_t len) {
    size_t shown = len;
    if (len > STRING_MAX) {
        shown = STRING_MAX;
        while (shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80) shown--;
    }
    luaL_Buffer b;
    luaL_buffinit(p->L, &b);
    luaL_addchar(&b, '"');
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            luaL_addchar(&b, '\\');
            luaL_addchar(&b, (char)c);
        } else if (c == '\n') {
            luaL_addstring(&b, "\\n");
        } else if (c == '\t') {
            luaL_addstring(&b, "\\t");
        } else if (c < 0x20 || c == 0x7F) {
            char esc[8];
            esc[0] = '\\';
            esc[1] = (char)('0' + c / 100);
            esc[2] = (char)('0' + c / 10 % 10);
            esc[3] = (char)('0' + c % 10);
            luaL_addlstring(&b, esc, 4);
        } else {
            luaL_addchar(&b, (char)c);
        }
    }
    if (shown < len) luaL_addstring(&b, "…");
    luaL_addchar(&b, '"');
    luaL_pushresult(&b);
    put_top(p);
    if (shown < len) {
        lua_pushfstring(p->L, " (%I bytes)", (LUA_INTEGER)len);
        put_top(p);
    }
}

/* Whether the value at idx is shown through tostring (anything but a plain table). */
static int plain_table(lua_State *L, int idx) {
    if (!lua_istable(L, idx)) return 0;
    if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* A key's place in the order (see the top). */
typedef struct key_ref {
    int rank;           /* 0 array part, 1 number, 2 string, 3 other */
    lua_Number num;     /* rank 0 and 1 */
    const char *str;    /* rank 2: the key itself (kept alive by the keys table) */
    size_t len;
    lua_Integer index;  /* its place in the keys table */
} key_ref;

static int key_cmp(const void *pa, const void *pb) {
    const key_ref *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    if (a->rank <= 1 && a->num != b->num) return a->num < b->num ? -1 : 1;
    if (a->rank == 2) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->str, b->str, n);
        if (c) return c;
        if (a->len != b->len) return a->len < b->len ? -1 : 1;
    }
    return a->index < b->index ? -1 : a->index > b->index; /* traversal order */
}

/* The keys of the table at t in display order: pushes a sequence table of them and returns a
 * userdata-held array (pushed too, above it) of key_ref; *n receives their number and *array_n
 * the length of the array part (keys 1..array_n). */
static key_ref *sorted_keys(lua_State *L, int t, lua_Integer *n, lua_Integer *array_n) {
    t = lua_absindex(L, t);
    lua_Integer count = 0;
    lua_newtable(L); /* keys */
    int keys = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++count);
    }
    lua_Integer an = 0;
    while (an < count) {
        if (lua_rawgeti(L, t, an + 1) == LUA_TNIL) {
            lua_pop(L, 1);
            break;
        }
        lua_pop(L, 1);
        an++;
    }
    /* (a userdata, collected with the rest when an error unwinds) */
    key_ref *refs = lua_newuserdatauv(L, (size_t)(count ? count : 1) * sizeof *refs, 0);
    for (lua_Integer i = 0; i < count; i++) {
        key_ref *r = &refs[i];
        memset(r, 0, sizeof *r);
        r->index = i + 1;
        lua_rawgeti(L, keys, i + 1);
        if (lua_type(L, -1) == LUA_TNUMBER) {
            r->num = lua_tonumber(L, -1);
            int isint = lua_isinteger(L, -1);
            lua_Integer k = lua_tointeger(L, -1);
            r->rank = isint && k >= 1 && k <= an ? 0 : 1;
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            r->rank = 2;
            r->str = lua_tolstring(L, -1, &r->len);
        } else {
            r->rank = 3;
        }
        lua_pop(L, 1);
    }
    qsort(refs, (size_t)count, sizeof *refs, key_cmp);
    *n = count;
    *array_n = an;
    return refs;
}

static void put_value(pieces *p, int idx, int depth);

/* The table at t as "{a = 1, b = {...}}" (one line) or, when `lines`, a field a line. At
 * depth 2 and below only its size is shown. */
static void put_table(pieces *p, int t, int depth, int lines) {
    lua_State *L = p->L;
    luaL_checkstack(L, 8, "table too deep to show");
    t = lua_absindex(L, t);
    lua_Integer n, an;
    if (depth >= 2) {
        lua_pushnil(L);
        n = 0;
        while (lua_next(L, t)) {
            lua_pop(L, 1);
            n++;
        }
        if (n == 0) put_str(p, "{}");
        else {
            lua_pushfstring(L, "{… %I %s}", (LUA_INTEGER)n, n == 1 ? "entry" : "entries");
            put_top(p);
        }
        return;
    }
    key_ref *refs = sorted_keys(L, t, &n, &an);
    int keys = lua_gettop(L) - 1;
    if (n == 0) {
        put_str(p, "{}");
        lua_pop(L, 2);
        return;
    }
    const lua_Integer limit = lines ? TOP_ENTRIES : INLINE_ENTRIES;
    put_str(p, lines ? "{\n" : "{");
    for (lua_Integer i = 0; i < n && i < limit; i++) {
        const key_ref *r = &refs[i];
        if (lines) put_str(p, "  ");
        else if (i > 0) put_str(p, ", ");
        lua_rawgeti(L, keys, r->index); /* the key */
        if (r->rank == 2 && is_identifier(r->str, r->len)) {
            put(p, r->str, r->len);
            put_str(p, " = ");
        } else if (r->rank != 0) {
            put_str(p, "[");
            put_value(p, -1, 2);
            put_str(p, "] = ");
        }
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        put_value(p, -1, depth + 1);
        lua_pop(L, 2);
        if (lines) put_str(p, i + 1 < n ? ",\n" : "\n");
    }
    if (n > limit) {
        lua_pushfstring(L, "%s… (%I more)%s", lines ? "  " : ", ", (LUA_INTEGER)(n - limit),
                        lines ? "\n" : "");
        put_top(p);
    }
    put_str(p, "}");
    lua_pop(L, 2);
}

/* Any value inside a table (depth ≥ 1): strings quoted, tables by put_table. */
static void put_value(pieces *p, int idx, int depth) {
    lua_State *L = p->L;
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        put_quoted(p, s, len);
    } else if (plain_table(L, idx)) {
        put_table(p, idx, depth, 0);
    } else {
        luaL_tolstring(L, idx, NULL);
        put_top(p);
    }
}

/* Concatenates the pieces into one string, pushed; the parts table is left below it. */
static void join(pieces *p) {
    luaL_Buffer b;
    luaL_buffinit(p->L, &b);
    for (lua_Integer i = 1; i <= p->n; i++) {
        lua_rawgeti(p->L, p->parts, i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
}

/* Pushes the text of the value at idx as the top level shows it. */
static void show_one(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (!plain_table(L, idx)) {
        luaL_tolstring(L, idx, NULL);
        return;
    }
    lua_newtable(L);
    pieces p = {L, lua_gettop(L), 0};
    put_table(&p, idx, 0, 0); /* its fields (and theirs) on one line */
    join(&p);
    size_t len, chars = 0;
    const char *s = lua_tolstring(L, -1, &len);
    for (size_t i = 0; i < len; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80; /* UTF-8 */
    if (chars > ONE_LINE_MAX || memchr(s, '\n', len)) { /* too long: a field a line */
        lua_pop(L, 1);
        lua_newtable(L);
        lua_replace(L, p.parts);
        p.n = 0;
        put_table(&p, idx, 0, 1);
        join(&p);
    }
    lua_remove(L, p.parts);
}

int rdl_show(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        show_one(L, i);
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    return 1;
}
