/* redit lua: an interactive Lua REPL with the `red` module, on GNU readline — history saved
 * between runs, Tab completion of names and methods (lua_complete.h), expressions printed,
 * multi-line chunks continued while incomplete (as the `lua` program does), Ctrl-C stopping
 * a running chunk (and training or generation inside it) without leaving the REPL.
 *
 * The one file of the command line that includes lua.h: the REPL needs to load chunks and
 * print their results itself. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli.h"
#include "options.h"
#include "line_input.h"
#include "redit/lua_readline.h"
#include "redit/lua_red.h"
#include "redit/lua_repl.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit lua [-m MODEL [--edits FILE]] [options]\n\n"
            "An interactive Lua 5.4 prompt with the `red` module (the README's Lua section).\n"
            "Expressions print their value; a chunk that is not complete continues on the\n"
            "next line (prompt \">> \"); Tab completes names and methods (red.<Tab>,\n"
            "model:<Tab>); Ctrl-C stops a running chunk, training or generation; Ctrl-D\n"
            "leaves. History is kept in $REDIT_HISTORY, else ~/.redit_history.\n\n"
            "  -m, --model FILE      load a model (GGUF, Hugging Face folder or llama2.c .bin)\n"
            "                        as the global `model`\n"
            "      --edits FILE      load an edit file for it as the global `edits`\n"
            "      --tokenizer FILE  tokenizer.model, .bin or .json for the model\n"
            "  -h, --help            this text\n"
            "      --version         redit's version\n");
}

/* ---- calling Lua ------------------------------------------------------------------- */

/* Message handler: the error message with a traceback (as the `lua` program's). */
static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void request_stop(void *L) { rd_lua_request_stop(L); }

/* Calls the function below its narg arguments in protected mode with the traceback handler;
 * a Ctrl-C meanwhile asks the state to stop. Same stack effect as lua_pcall. The stop flag
 * is clear afterwards, so a late Ctrl-C does not hit the next chunk. */
static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    cli_input_clear_interrupt();
    cli_input_on_interrupt(request_stop, L);
    int status = lua_pcall(L, narg, nres, base);
    cli_input_on_interrupt(NULL, NULL);
    rd_lua_clear_stop(L);
    lua_remove(L, base);
    return status;
}

/* Prints a failed call's message (on the top) to stderr and pops it. */
static void report(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
}

/* ---- the loop ------------------------------------------------------------------- */

/* Results go to stdout, errors to stderr. */
static void output(void *user, const char *text, size_t len, int is_error) {
    FILE *f = is_error ? stderr : stdout;
    fwrite(text, 1, len, f);
    fflush(f);
}

/* Reads lines ("> ", then ">> " while the chunk is incomplete) and runs each chunk; a
 * Ctrl-C while a chunk runs asks the state to stop, at a prompt it drops the pending lines. */
static void repl(lua_State *L, const char *hist) {
    rd_lua_repl *r = rd_lua_repl_new(L, output, NULL);
    if (!r) {
        fprintf(stderr, "redit lua: out of memory\n");
        return;
    }
    for (;;) {
        char *line = NULL;
        cli_in_status st = cli_input_read(rd_lua_repl_pending(r) ? ">> " : "> ", &line);
        if (st == CLI_IN_EOF) {
            rd_lua_repl_finish(r);
            break;
        }
        if (st == CLI_IN_INTERRUPTED) {
            rd_lua_repl_reset(r);
            continue;
        }
        char *chunk = NULL;
        int rc = rd_lua_repl_feed(r, line, &chunk);
        free(line);
        if (rc == RD_LUA_REPL_NOMEM) fprintf(stderr, "redit lua: out of memory\n");
        if (rc != RD_LUA_REPL_READY) continue;
        /* before running: os.exit() must not lose it */
        if (rd_lua_readline_history_add(chunk, hist))
            fprintf(stderr, "redit lua: cannot write the history file %s\n", hist);
        free(chunk);
        cli_input_clear_interrupt();
        cli_input_on_interrupt(request_stop, L);
        rd_lua_repl_run(r);
        cli_input_on_interrupt(NULL, NULL);
    }
    rd_lua_repl_free(r);
}

/* ---- setup ------------------------------------------------------------------------- */

/* global = red.<fn>(arg, second) where second is the global `model` or a {tokenizer = t}
 * table (or absent). Prints the error and returns -1 on failure. */
static int preload(lua_State *L, const char *global, const char *fn, const char *arg,
                   const char *tokenizer, int with_model) {
    lua_getglobal(L, "red");
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_pushstring(L, arg);
    int narg = 1;
    if (with_model) {
        lua_getglobal(L, "model");
        narg++;
    } else if (tokenizer) {
        lua_createtable(L, 0, 1);
        lua_pushstring(L, tokenizer);
        lua_setfield(L, -2, "tokenizer");
        narg++;
    }
    if (docall(L, narg, 1) != LUA_OK) {
        fprintf(stderr, "redit lua: ");
        report(L);
        return -1;
    }
    lua_setglobal(L, global);
    return 0;
}

static void banner(lua_State *L, const char *model, const char *edits) {
    lua_getglobal(L, "red");
    lua_getfield(L, -1, "version");
    fprintf(stderr, "redit lua — %s with the red module %s; Tab completes, Ctrl-D leaves\n",
            LUA_RELEASE, lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 2);
    if (model) fprintf(stderr, "model = red.load(\"%s\")\n", model);
    if (edits) fprintf(stderr, "edits = red.load_edits(\"%s\", model)\n", edits);
}

int cmd_lua(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"edits", required_argument, 0, 'e'},
                                         {"tokenizer", required_argument, 0, 'k'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *model = NULL, *edits = NULL, *tok = NULL;
    int c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'e': edits = optarg; break;
        case 'k': tok = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("lua", c, argv, opts);
        }
    }
    if (optind < argc)
        return cli_usage_error("lua", "unexpected argument '%s' (redit run SCRIPT.lua runs a "
                                      "script)", argv[optind]);
    if ((edits || tok) && !model)
        return cli_usage_error("lua", "--edits and --tokenizer need -m MODEL");
    rd_error err = {0};
    lua_State *L = rd_lua_new(&err);
    if (!L) {
        fprintf(stderr, "redit lua: %s\n", err.msg);
        return 1;
    }
    cli_input_begin("redit-lua");
    int rc = 1;
    if ((!model || preload(L, "model", "load", model, tok, 0) == 0) &&
        (!edits || preload(L, "edits", "load_edits", edits, NULL, 1) == 0)) {
        char *hist = rd_lua_readline_history_path();
        rd_lua_readline_history_open(hist);
        if (cli_input_is_tty()) banner(L, model, edits);
        rd_lua_readline_completion_begin(L);
        repl(L, hist);
        rd_lua_readline_completion_end();
        free(hist);
        rc = 0;
    }
    cli_input_end();
    rd_lua_close(L);
    return rc;
}
