/* redit — internals shared by the files of the Lua binding (src/lua; not a public header).
 *
 * Rules every binding function follows (STYLE.md, Lua):
 *  - a userdata is created before the C resource it will own, so an error leaves it empty
 *    (its __gc is safe on an empty object);
 *  - no malloc'ed memory is held across a call that can raise: temporary C buffers live in a
 *    scratch userdata (rdl_scratch) whose __gc frees them, or are released before raising;
 *  - every call from C into Lua goes through rdl_pcall (traceback message handler); callbacks
 *    called from inside a long C call (training, generation) run in protected mode and their
 *    error is kept in a stack slot and raised after the C call has returned and freed all;
 *  - long C calls check the state's stop flag (rdl_stop_flag). */
#ifndef REDIT_LUA_INTERNAL_H
#define REDIT_LUA_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include <lauxlib.h>
#include <lua.h>

#include "redit/dataset.h"
#include "redit/edits.h"
#include "redit/error.h"
#include "redit/model.h"

#define RDL_MODEL "red.model"
#define RDL_EDITS "red.edits"
#define RDL_DATASET "red.dataset"

/* Objects: a pointer to the engine object (NULL once closed) and a count of the long calls
 * using it (closing or restructuring a busy object is refused). */
typedef struct rdl_model {
    rd_model *m;
    int busy;
    int borrowed; /* the program owns m (rd_lua_push_model_borrowed): never freed here */
} rdl_model;

/* User value 1: the red.model it was made for (kept alive; used by e:save). */
typedef struct rdl_edits {
    rd_edits *e;
    int busy;
} rdl_edits;

typedef struct rdl_dataset {
    rd_dataset *d;
    int busy;
} rdl_dataset;

/* ---- pretty.c: values as the REPLs show them ----------------------------------------- */

/* lua_CFunction: its arguments as one string, tab-separated, ending in a newline: a plain
 * table shows its fields (one line when short, else a field a line; nested tables one level
 * deep, long ones cut with a count), anything else goes through tostring. */
int rdl_show(lua_State *L);

/* ---- red.c: module, state, helpers ------------------------------------------------ */

/* The state's stop flag (never NULL once the module is open). */
atomic_int *rdl_stop_flag(lua_State *L);

/* lua_pcall with the traceback message handler below the function. Same stack effect as
 * lua_pcall; on error the message (with traceback) is on the top. */
int rdl_pcall(lua_State *L, int nargs, int nresults);

/* Registers a userdata type: metatable `name` in the registry with __index = methods and
 * the given metamethods; __name is set by luaL_newmetatable. */
void rdl_new_type(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta);

/* luaL_checklstring without the number-to-string coercion: a path or a text must be a
 * string ("bad argument #1 to 'load' (string expected, got number)"). */
const char *rdl_check_string(lua_State *L, int idx, size_t *len);

/* Raises the engine's message as a Lua error (never returns: noreturn tells the analysers
 * that code after it runs only when it was not called). */
__attribute__((noreturn)) int rdl_raise(lua_State *L, const rd_error *err);

/* Checked accessors: raise "bad argument" for a wrong type and "attempt to use a closed
 * red.x" for a closed object. */
rdl_model *rdl_check_model(lua_State *L, int idx);
rdl_edits *rdl_check_edits(lua_State *L, int idx);
rdl_dataset *rdl_check_dataset(lua_State *L, int idx);

/* Options tables (argument `arg` of the running function, may be absent/nil = {}):
 * unknown keys raise "bad argument #arg to 'f' (unknown option 'k')"; wrong value types
 * raise "bad argument #arg to 'f' (option 'k': number expected, got string)". */
void rdl_opts_check(lua_State *L, int arg, const char *const *known);
double rdl_opt_number(lua_State *L, int arg, const char *key, double def);
long long rdl_opt_integer(lua_State *L, int arg, const char *key, long long lo, long long hi,
                          long long def);
int rdl_opt_bool(lua_State *L, int arg, const char *key, int def);
/* Borrowed string valid while the table holds it; def when absent. */
const char *rdl_opt_string(lua_State *L, int arg, const char *key, const char *def);
/* Pushes the option's value (nil when absent or arg is not a table). */
void rdl_opt_push(lua_State *L, int arg, const char *key);
/* Raises the "option 'k': …" bad-argument error (never returns). */
__attribute__((noreturn)) int rdl_opt_error(lua_State *L, int arg, const char *key, const char *what);

/* A scratch userdata owning up to RDL_SCRATCH_SLOTS C pointers with their free functions;
 * its __gc (or rdl_scratch_release) frees them. Pushed on the stack. */
#define RDL_SCRATCH_SLOTS 6
typedef struct rdl_scratch {
    void *p[RDL_SCRATCH_SLOTS];
    void (*f[RDL_SCRATCH_SLOTS])(void *);
} rdl_scratch;
rdl_scratch *rdl_scratch_new(lua_State *L);
/* Puts p (freed with f) in slot i, replacing what the slot held without freeing it. */
void rdl_scratch_set(rdl_scratch *s, int i, void *p, void (*f)(void *));
void rdl_scratch_release(rdl_scratch *s); /* frees every slot now */

/* Reads a Lua array of integers (argument idx) into a new int userdata buffer pushed on the
 * stack; *n receives the count. Elements outside [lo, hi] raise a bad-argument error. */
int *rdl_check_int_array(lua_State *L, int idx, long long lo, long long hi, size_t *n);

/* Pushes a Lua array of n ints / n floats. */
void rdl_push_int_array(lua_State *L, const int *v, size_t n);
void rdl_push_float_array(lua_State *L, const float *v, size_t n);

/* Pushes x, or nil when x is NaN. */
void rdl_push_number_or_nil(lua_State *L, double x);

/* t[k] = v for the table on the top of the stack. */
void rdl_set_int(lua_State *L, const char *k, lua_Integer v);
void rdl_set_num(lua_State *L, const char *k, double v);
void rdl_set_str(lua_State *L, const char *k, const char *v);
void rdl_set_bool(lua_State *L, const char *k, int v);

/* ---- model.c, edits.c, dataset.c, train.c ----------------------------------------- */

void rdl_open_model(lua_State *L);   /* registers red.model; adds red.load to the table on top */
void rdl_open_edits(lua_State *L);   /* red.edits; red.load_edits */
void rdl_open_dataset(lua_State *L); /* red.dataset type; red.dataset */
void rdl_open_train(lua_State *L);   /* red.train, red.eval */

/* red.edits objects for a model: creates the userdata (user value = the model at model_idx)
 * with no edit set yet and pushes it. */
rdl_edits *rdl_edits_push_empty(lua_State *L, int model_idx);

/* Raises unless e fits m's width and layer count. */
void rdl_edits_check_fit(lua_State *L, const rd_edits *e, const rd_model *m);

/* The edit-set options of the table at arg for method (RD_METHOD_*): layers (every method);
 * RED's sites, scale, bias; LoRA's rank, lora_alpha, targets ("q,v" or {"q", "v"}) and
 * dropout_key (the LoRA dropout's option name); seed (LoRA's init, default seed). An option
 * of another method than `method` raises. spec->layers is borrowed from the table or a
 * value left on the stack (the caller keeps both until rd_edits_new has run). */
void rdl_edit_spec_opts(lua_State *L, int arg, int method, const char *dropout_key,
                        uint64_t seed, rd_edit_spec *spec);
/* The option `method` of the table at arg: RD_METHOD_* ("red" when absent), or with
 * allow_full RDL_METHOD_FULL for "full"; other names raise. */
#define RDL_METHOD_FULL (-1)
int rdl_method_opt(lua_State *L, int arg, int allow_full);

/* red.dataset(path, opts) with the model given explicitly (model:dataset). */
int rdl_dataset_load(lua_State *L, int path_idx, int model_idx, int opts_idx);

/* The longest example of d (0 for NULL). */
int rdl_dataset_longest(const rd_dataset *d);

#endif
