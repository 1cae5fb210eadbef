/* redit — GNU readline for Lua REPLs (tui layer), shared by `redit lua` and the workbench's
 * console: the history file (one format for both, so either reads what the other wrote)
 * and Tab completion of the names a Lua state holds (redit/lua_complete.h).
 *
 * readline keeps its state in process globals and its completion callbacks take no user
 * pointer, so the state being completed is process-wide too: one REPL at a time. */
#ifndef REDIT_LUA_READLINE_H
#define REDIT_LUA_READLINE_H

struct lua_State;

/* The history file: $REDIT_HISTORY, else ~/.redit_history; NULL (no file) when neither can
 * be named or $REDIT_HISTORY is empty. Malloc'ed; the caller frees it. */
char *rd_lua_readline_history_path(void);

/* Starts readline's history for a REPL: at most 1,000 entries, a timestamp line before each
 * (so multi-line chunks stay whole in the file), then the entries of `path` (NULL or a
 * missing file: none). */
void rd_lua_readline_history_open(const char *path);

/* Adds `entry` (unless empty or the same as the last one) and writes the file at once, so
 * os.exit() or a closed terminal loses nothing. Returns 0, or -1 when `path` could not be
 * written (the entry is in the history anyway). path NULL: memory only. */
int rd_lua_readline_history_add(const char *entry, const char *path);

/* From now on Tab completes the names of L: readline's attempted-completion function, never
 * file names, and '.' and ':' inside the word ("red.lo", "model:gen"). L must stay open until
 * rd_lua_readline_completion_end, which also frees the last candidates. */
void rd_lua_readline_completion_begin(struct lua_State *L);
void rd_lua_readline_completion_end(void);

#endif
