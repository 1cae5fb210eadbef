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
#include <readline/history.h>
#include <readline/readline.h>

#include "cli.h"
#include "line_input.h"
#include "redit/lua_complete.h"
#include "redit/lua_red.h"

#define HISTORY_MAX 1000
#define CHUNK_NAME "=stdin"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit lua [-m MODEL [--edits FILE]] [options]\n\n"
            "An interactive Lua 5.4 prompt with the `red` module (the README's Lua section).\n"
            "Expressions print their value; a chunk that is not complete continues on the\n"
            "next line (prompt \">> \"); Tab completes names and methods (red.<Tab>,\n"
            "model:<Tab>); Ctrl-C stops a running chunk, training or generation; Ctrl-D\n"
            "leaves. History is kept in $REDIT_HISTORY, else ~/.redit_history.\n\n"
            "  -m, --model FILE      load a model as the global `model`\n"
            "      --edits FILE      load an edit file for it as the global `edits`\n"
            "      --tokenizer FILE  llama2.c tokenizer.bin for the model\n"
            "  -h, --help            this text\n");
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

/* lua_CFunction: prints its arguments with tostring, tab-separated, as print does. */
static int print_values(lua_State *L) {
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1) fputc('\t', stdout);
        fwrite(s, 1, len, stdout);
        lua_pop(L, 1);
    }
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

/* Prints the values on the stack (a chunk's results), if any, and clears the stack. */
static void print_results(lua_State *L) {
    int n = lua_gettop(L);
    if (n == 0) return;
    if (!lua_checkstack(L, LUA_MINSTACK)) { /* (luaL_checkstack would raise unprotected) */
        fprintf(stderr, "too many results to print (%d)\n", n);
        lua_settop(L, 0);
        return;
    }
    lua_pushcfunction(L, print_values);
    lua_insert(L, 1);
    if (docall(L, n, 0) != LUA_OK) report(L);
}

/* ---- history and completion ---------------------------------------------------------- */

/* The history file: $REDIT_HISTORY, else ~/.redit_history; NULL (no file) when neither
 * can be named or $REDIT_HISTORY is empty. Malloc'ed. */
static char *history_path(void) {
    const char *env = getenv("REDIT_HISTORY");
    if (env) return *env ? strdup(env) : NULL;
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    size_t n = strlen(home) + sizeof "/.redit_history";
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/.redit_history", home);
    return p;
}

/* Adds an entry (unless empty or the same as the last one) and saves the file at once, so
 * that os.exit() or a closed terminal loses nothing. */
static void remember(const char *entry, const char *path) {
    if (!*entry) return;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && !strcmp(last->line, entry)) return;
    add_history(entry);
    if (path && write_history(path) != 0)
        fprintf(stderr, "redit lua: cannot write the history file %s\n", path);
}

/* readline's completion has no user pointer: the state being completed (set while the REPL
 * runs) and the candidates of the word being completed live here. */
static lua_State *g_complete_L;
static char **g_candidates;

static char *next_candidate(const char *text, int state) {
    static size_t next;
    if (state == 0) {
        size_t n;
        rd_lua_complete_free(g_candidates);
        g_candidates = rd_lua_complete(g_complete_L, text, &n);
        next = 0;
    }
    if (!g_candidates || !g_candidates[next]) return NULL;
    return strdup(g_candidates[next++]);
}

static char **complete(const char *text, int start, int end) {
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1;  /* never file names */
    rl_completion_append_character = '\0';
    return rl_completion_matches(text, next_candidate);
}

static void completion_begin(lua_State *L) {
    g_complete_L = L;
    rl_attempted_completion_function = complete;
    /* '.' and ':' belong to the word: "red.lo" and "model:gen" complete as a whole */
    rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[])}";
}

static void completion_end(void) {
    rd_lua_complete_free(g_candidates);
    g_candidates = NULL;
    g_complete_L = NULL;
    rl_attempted_completion_function = NULL;
}

/* ---- reading chunks ---------------------------------------------------------------- */

enum { READ_EOF = -1, READ_INTERRUPTED = -2 };

/* A syntax error that only says the chunk ended too early: more lines may complete it. */
static int incomplete(lua_State *L, int status) {
    if (status != LUA_ERRSYNTAX) return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    static const char EOF_MARK[] = "<eof>";
    return msg && len >= sizeof EOF_MARK - 1 &&
           strcmp(msg + len - (sizeof EOF_MARK - 1), EOF_MARK) == 0;
}

/* Appends "\n" + line to *buf (malloc'ed). */
static int append_line(char **buf, const char *line) {
    size_t a = strlen(*buf), b = strlen(line);
    char *p = realloc(*buf, a + b + 2);
    if (!p) return -1;
    p[a] = '\n';
    memcpy(p + a + 1, line, b + 1);
    *buf = p;
    return 0;
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

/* Reads a chunk: one line, then more ("> " / ">> ") while it is incomplete. Pushes the
 * compiled function (LUA_OK) or an error message (the status), or returns READ_EOF /
 * READ_INTERRUPTED with nothing pushed. */
static int read_chunk(lua_State *L, const char *hist) {
    char *buf = NULL;
    cli_in_status st = cli_input_read("> ", &buf);
    if (st == CLI_IN_EOF) return READ_EOF;
    if (st == CLI_IN_INTERRUPTED) return READ_INTERRUPTED;
    int more, status;
    while ((status = compile(L, buf, &more)) != LUA_OK && more) {
        char *line = NULL;
        st = cli_input_read(">> ", &line);
        if (st == CLI_IN_EOF) break; /* the error stands */
        lua_pop(L, 1);
        if (st == CLI_IN_INTERRUPTED || append_line(&buf, line)) { /* the chunk is dropped */
            free(line);
            free(buf);
            return READ_INTERRUPTED;
        }
        free(line);
    }
    remember(buf, hist);
    free(buf);
    return status;
}

static void repl(lua_State *L, const char *hist) {
    for (;;) {
        lua_settop(L, 0);
        int status = read_chunk(L, hist);
        if (status == READ_EOF) break;
        if (status == READ_INTERRUPTED) continue;
        if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK) print_results(L);
        else report(L);
    }
    lua_settop(L, 0);
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
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *edits = NULL, *tok = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'e': edits = optarg; break;
        case 'k': tok = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || ((edits || tok) && !model)) {
        fprintf(stderr, "redit lua: %s\n", optind != argc ? "no arguments besides the options"
                                                          : "--edits and --tokenizer need -m MODEL");
        usage(stderr);
        return 2;
    }
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
        char *hist = history_path();
        using_history();
        stifle_history(HISTORY_MAX);
        /* a timestamp line before each entry keeps multi-line chunks whole in the file */
        history_comment_char = '#';
        history_write_timestamps = 1;
        history_multiline_entries = 1;
        if (hist) read_history(hist); /* a missing file is an empty history */
        if (cli_input_is_tty()) banner(L, model, edits);
        completion_begin(L);
        repl(L, hist);
        completion_end();
        free(hist);
        rc = 0;
    }
    cli_input_end();
    rd_lua_close(L);
    return rc;
}
