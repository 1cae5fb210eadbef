/* redit run SCRIPT.lua [args…]: runs a Lua script headless with the `red` module, as the
 * `lua` program runs a script (`arg` table, `...`). Exit status 0, or 1 with the error and
 * its traceback on stderr. Ctrl-C asks the script to stop (training and generation end at
 * the next step or token, Lua code raises "interrupted"); a second Ctrl-C exits at once. */
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "redit/version.h"
#include "redit/lua_red.h"

/* The running state, for the SIGINT handler: the one piece of global state (a handler has
 * no user pointer). */
static lua_State *_Atomic g_state;
static atomic_int g_interrupts;

static void on_sigint(int sig) {
    (void)sig;
    if (atomic_fetch_add(&g_interrupts, 1) > 0) _exit(130); /* the second Ctrl-C */
    lua_State *L = atomic_load(&g_state);
    if (L) rd_lua_request_stop(L);
}

static void usage(FILE *out) {
    fprintf(out, "usage: redit run SCRIPT.lua [args…]\n\n"
                 "Runs a Lua script with the `red` module (see the README's Lua section). The\n"
                 "script sees its arguments as arg[1], arg[2], … (arg[0] is its path) and as\n"
                 "`...`; require finds modules in ./lua and in the lua/ folder of redit's\n"
                 "source tree (lua/red/*.lua). On an error the message and traceback go to\n"
                 "stderr and the exit status is 1. Ctrl-C stops the script (training and\n"
                 "generation at the next step or token); a second Ctrl-C exits at once.\n"
                 "`redit run --version` prints redit's version (red.version in scripts).\n");
}

/* Adds the lua/ folder of redit's source tree to package.path: the first of ../lua,
 * ../../lua, ../../../lua from the binary's folder that exists (build/redit and
 * build/asan/redit → lua/), so scripts find lua/red/NAME.lua from any directory. */
static void add_source_lua_path(lua_State *L) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = '\0';
    for (int up = 1; up <= 3; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) return;
        *slash = '\0';
        char dir[PATH_MAX + 8], real[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/lua", exe);
        struct stat st;
        if (stat(dir, &st) || !S_ISDIR(st.st_mode) || !realpath(dir, real)) continue;
        rd_error err = {0};
        if (rd_lua_add_path(L, real, &err)) fprintf(stderr, "redit run: %s\n", err.msg);
        return;
    }
}

int cmd_run(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "redit run: SCRIPT.lua is required; see 'redit run --help'\n");
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("redit %s\n", rd_version_full());
        return 0;
    }
    rd_error err = {0};
    lua_State *L = rd_lua_new(&err);
    if (!L) {
        fprintf(stderr, "redit run: %s\n", err.msg);
        return 1;
    }
    add_source_lua_path(L);
    struct sigaction sa = {0}, old_sa;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    atomic_store(&g_interrupts, 0);
    atomic_store(&g_state, L);
    sigaction(SIGINT, &sa, &old_sa);
    int rc = rd_lua_run_file(L, argv[1], argc - 2, argv + 2, &err);
    sigaction(SIGINT, &old_sa, NULL);
    atomic_store(&g_state, NULL);
    fflush(stdout); /* the script's output before the error */
    if (rc) fprintf(stderr, "redit run: %s\n", rd_lua_last_error(L));
    rd_lua_close(L);
    return rc ? 1 : 0;
}
