/* redit — a Lua read-eval-print step for interactive consoles (lua layer): `redit lua` on a
 * terminal and the TUI's Lua console feed it lines; it compiles them (an expression first,
 * whose values are printed, else statements), asks for more lines while the chunk is
 * incomplete (as the `lua` program does), runs the chunk with a traceback handler and sends
 * every result or error as text to the caller's output function. No terminal I/O here.
 *
 * Only the Lua binding files include <lua.h>; this header needs just the type's name. */
#ifndef REDIT_LUA_REPL_H
#define REDIT_LUA_REPL_H

#include <stddef.h>

struct lua_State;
typedef struct lua_State lua_State;

/* Text for the console: `is_error` is 1 for error messages (with traceback), 0 for printed
 * values and the output of print/io.write. text is borrowed for the call and ends with a
 * newline where the output does. */
typedef void (*rd_lua_output_fn)(void *user, const char *text, size_t len, int is_error);

/* Replaces the globals print and io.write of L with functions that send their text to out
 * (for consoles drawn in a screen the program owns: nothing reaches stdout). out and user
 * must stay valid while L is used. Returns 0, or -1 when out of memory. */
int rd_lua_redirect_output(lua_State *L, rd_lua_output_fn out, void *user);

typedef struct rd_lua_repl rd_lua_repl;

/* A REPL on L (borrowed; outlives the REPL). Results and errors go to out(user, ...).
 * NULL when out of memory. */
rd_lua_repl *rd_lua_repl_new(lua_State *L, rd_lua_output_fn out, void *user);
void rd_lua_repl_free(rd_lua_repl *r); /* NULL-safe */

enum { RD_LUA_REPL_READY = 0, RD_LUA_REPL_MORE = 1, RD_LUA_REPL_NOMEM = -1 };

/* Adds one line to the pending chunk. When the chunk could still be completed by more lines
 * returns RD_LUA_REPL_MORE (show a continuation prompt). Otherwise the chunk is ready:
 * returns RD_LUA_REPL_READY and *chunk (if not NULL) receives its whole text, malloc'ed, for
 * the history (the caller frees it); run it with rd_lua_repl_run. */
int rd_lua_repl_feed(rd_lua_repl *r, const char *line, char **chunk);

/* Compiles and runs the ready chunk (nothing when none is ready) and sends its results
 * (tab-separated; a plain table shows its fields, sorted, nested tables one level deep:
 * {dim = 64, tensors = {F16 = 12, F32 = 9}}, one field a line when long; the rest via
 * tostring) or its error to out. The Lua stack is left as it was. A
 * stop request (rd_lua_request_stop) interrupts the running chunk; the stop flag is cleared
 * afterwards. */
void rd_lua_repl_run(rd_lua_repl *r);

/* 1 while lines are pending (the chunk is incomplete). */
int rd_lua_repl_pending(const rd_lua_repl *r);

/* The end of the input: a pending (incomplete) chunk's syntax error goes to out and the
 * pending lines are dropped. Nothing happens when no lines are pending. */
void rd_lua_repl_finish(rd_lua_repl *r);

/* Drops the pending lines (e.g. Ctrl-C at a continuation prompt). */
void rd_lua_repl_reset(rd_lua_repl *r);

#endif
