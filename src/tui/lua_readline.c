#include "redit/lua_readline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "redit/lua_complete.h"

#define HISTORY_MAX 1000

char *rd_lua_readline_history_path(void) {
    const char *env = getenv("REDIT_HISTORY");
    if (env) return *env ? strdup(env) : NULL;
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    size_t n = strlen(home) + sizeof "/.redit_history";
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/.redit_history", home);
    return p;
}

void rd_lua_readline_history_open(const char *path) {
    using_history();
    stifle_history(HISTORY_MAX);
    history_comment_char = '#';
    history_write_timestamps = 1;
    history_multiline_entries = 1;
    if (path) read_history(path); /* a missing file is an empty history */
}

int rd_lua_readline_history_add(const char *entry, const char *path) {
    if (!*entry) return 0;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && !strcmp(last->line, entry)) return 0;
    add_history(entry);
    return path && write_history(path) != 0 ? -1 : 0;
}

/* The state being completed and the candidates of the word being completed (readline's
 * generator protocol: state 0 starts a word, later calls return the next candidate). */
static struct lua_State *complete_L;
static char **candidates;
static size_t next_index;

static char *next_candidate(const char *text, int state) {
    if (!complete_L) return NULL;
    if (state == 0) {
        size_t n;
        rd_lua_complete_free(candidates);
        candidates = rd_lua_complete(complete_L, text, &n);
        next_index = 0;
    }
    if (!candidates || !candidates[next_index]) return NULL;
    return strdup(candidates[next_index++]);
}

static char **complete(const char *text, int start, int end) {
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* never file names */
    rl_completion_append_character = '\0';
    return rl_completion_matches(text, next_candidate);
}

void rd_lua_readline_completion_begin(struct lua_State *L) {
    complete_L = L;
    rl_attempted_completion_function = complete;
    rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[])}";
}

void rd_lua_readline_completion_end(void) {
    rd_lua_complete_free(candidates);
    candidates = NULL;
    complete_L = NULL;
    rl_attempted_completion_function = NULL;
}
