/* redit — the Lua binding (lua layer): the `red` module and a script runner.
 *
 * A Lua 5.4 state with the standard libraries and the `red` module (preloaded and set as the
 * global `red`). The module's reference is the comment at the top of src/lua/red.c and the
 * README's "Lua" section. Everything here runs on the thread that owns the state, except
 * rd_lua_request_stop, which any thread or a signal handler may call.
 *
 * Stop requests. Each state has one atomic stop flag. While it is set, Lua code raises the
 * error "interrupted" (a count hook checks the flag every 1000 instructions; once it has
 * fired it checks at every instruction until the flag is cleared, so a pcall in the script
 * cannot swallow the stop), and running training or generation stops at the next step or
 * token, frees what it holds and raises "interrupted" too (training evaluates the step it
 * stopped at; a second request skips that evaluation: rd_train_opts.stop). rd_lua_run_file /
 * rd_lua_run_string clear the flag when the chunk ends, so a request made before a run
 * interrupts that run, and the next run starts clean. (A script that replaces the hook with
 * debug.sethook can only be stopped in training and generation.)
 *
 * Only the Lua binding files include <lua.h>; this header needs just the type's name. */
#ifndef REDIT_LUA_RED_H
#define REDIT_LUA_RED_H

#include "redit/error.h"

struct lua_State;
typedef struct lua_State lua_State;

/* The `red` module's opener (lua_CFunction): pushes the module table. Installs the stop
 * hook and the stop flag in the state (its lua_getextraspace slot) when the state has none.
 * Use rd_lua_new rather than calling it on a state of your own. */
int luaopen_red(lua_State *L);

/* A new state: standard libraries, `red` in package.preload and as the global `red`,
 * "./lua/?.lua;./lua/?/init.lua" at the front of package.path. NULL with *err on failure.
 * Free with rd_lua_close. */
lua_State *rd_lua_new(rd_error *err);

/* Closes L (NULL-safe): every object still alive is freed. */
void rd_lua_close(lua_State *L);

/* Puts DIR/?.lua;DIR/?/init.lua at the front of package.path (e.g. the repository's lua/
 * folder, where `require "red.grid"` finds lua/red/grid.lua). Returns 0 or -1 with *err. */
int rd_lua_add_path(lua_State *L, const char *dir, rd_error *err);

/* Runs a script file as the `lua` program does: `arg` is set to {[0] = path, argv[0], …,
 * argv[argc-1]} and the chunk receives argv as `...`. The file is loaded as text only
 * (precompiled chunks are refused). Returns 0, or -1 with *err holding the error message
 * and, for runtime errors, the Lua traceback (cut to RD_ERROR_MAX; rd_lua_last_error has it
 * whole). */
int rd_lua_run_file(lua_State *L, const char *path, int argc, char **argv, rd_error *err);

/* Runs a chunk of Lua source (text only) named `name` in messages (e.g. "=stdin"; NULL:
 * the chunk itself). Same errors as rd_lua_run_file. */
int rd_lua_run_string(lua_State *L, const char *code, const char *name, rd_error *err);

/* The whole message (with traceback) of the last failed rd_lua_run_file/rd_lua_run_string,
 * or "" — borrowed, valid until the next run or rd_lua_close. */
const char *rd_lua_last_error(lua_State *L);

/* Sets L's stop flag (see above; a second call raises it to RD_STOP_SKIP_EVAL). Async-signal-
 * safe and callable from any thread (a lock-free atomic load and add, nothing else). L: a
 * state from rd_lua_new (or one where luaopen_red ran), not yet closed. */
void rd_lua_request_stop(lua_State *L);

/* Clears the stop flag (e.g. a REPL after Ctrl-C at its prompt) and puts the hook back to
 * its every-1000-instructions check. On the state's own thread only. */
void rd_lua_clear_stop(lua_State *L);

/* ---- sharing the program's objects with a state (the TUI's console) ---------------- */

struct rd_model;
struct rd_edits;

/* Pushes m as a red.model that the state does not own: Lua never frees it, and it can be
 * neither closed nor switched to another compute mode (it is shared). m must outlive L. */
void rd_lua_push_model_borrowed(lua_State *L, struct rd_model *m);

/* Pushes e as a red.edits that Lua owns from now on (freed by its __gc), made for the
 * red.model at stack index model_idx. */
void rd_lua_push_edits(lua_State *L, struct rd_edits *e, int model_idx);

/* The edit set of the red.edits at stack index idx (borrowed: valid while that object
 * lives and is not closed), or NULL when the value is not an open red.edits. */
struct rd_edits *rd_lua_to_edits(lua_State *L, int idx);

#endif
