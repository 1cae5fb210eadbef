/* redit — Tab completion for Lua REPLs (lua layer): the names that can follow the word
 * before the cursor, found by walking the state's values. Used by `redit lua` (and the
 * TUI's Lua console); no readline here.
 *
 * Only the Lua binding files include <lua.h>; this header needs just the type's name. */
#ifndef REDIT_LUA_COMPLETE_H
#define REDIT_LUA_COMPLETE_H

#include <stddef.h>

struct lua_State;
typedef struct lua_State lua_State;

/* Candidates for `word`, the identifier chain before the cursor:
 *   "pri"        global names (and Lua keywords) starting with "pri";
 *   "red.lo"     keys of the value red (a table: its keys; then, for tables and any other
 *                value, the keys of the table its metatable's __index holds, followed
 *                along a chain of such tables) starting with "lo" -> "red.load", ...;
 *   "model:gen"  the same with only function values -> "model:generate".
 * Names are identifiers (string keys that are not Lua keywords); an empty last part
 * matches every name. The chain is walked the same way (raw lookups, then __index tables),
 * so no Lua code runs (no metamethod is called) and the state is left as it was.
 * Returns a malloc'ed, NULL-terminated, sorted array of *n distinct malloc'ed full words
 * (the part before the name included), possibly empty; free it with rd_lua_complete_free.
 * NULL when out of memory. */
char **rd_lua_complete(lua_State *L, const char *word, size_t *n);

void rd_lua_complete_free(char **list); /* NULL-safe */

#endif
