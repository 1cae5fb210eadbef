/* The Lua console: GNU readline's callback interface driven by the keys curses reads
 * (STYLE.md), drawing into the pane instead of the terminal; the `red` module, the `wb`
 * workbench table and the global `model` (the loaded model, shared); print and io.write go
 * to the pane's scrollback; Tab completion lists its matches in the scrollback. A finished
 * chunk runs after the screen has been drawn (console_run_pending), so "running…" shows.
 *
 * readline keeps its state in globals and its callbacks take no user pointer: the console
 * being fed is reachable from them through `active` (one console per process). */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/readline.h>

#include "app.h"
#include "redit/buf.h"
#include "redit/lua_readline.h"
#include "redit/lua_red.h"
#include "redit/lua_repl.h"
#include "textwrap.h"

#define SCROLLBACK_MAX 2000

typedef struct console_line {
    char *text;
    int is_error;
} console_line;

struct tui_console {
    tui_app *app;
    lua_State *L;
    rd_lua_repl *repl;
    console_line *lines; /* (n_lines) oldest first */
    size_t n_lines, cap;
    rd_buf partial;      /* output after the last newline (len 0: none) */
    int partial_error;
    int scroll;          /* rows scrolled up from the bottom */
    unsigned char feed[32]; /* bytes waiting for readline */
    size_t feed_len, feed_pos;
    int ready;           /* a chunk is ready to run */
    char *hist_path;
    FILE *devnull;
};

static tui_console *active;

/* ---- scrollback ------------------------------------------------------------------------- */

/* GCC 12's analyser reports the text stored into c->lines as leaked (here and where
 * console_output calls add_line): it loses track of a store through an array that
 * rd_array_reserve (another file) returned. console_free frees it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
static void add_line(tui_console *c, const char *text, size_t len, int is_error) {
    if (c->n_lines == SCROLLBACK_MAX) { /* drop the oldest */
        free(c->lines[0].text);
        memmove(c->lines, c->lines + 1, (c->n_lines - 1) * sizeof *c->lines);
        c->n_lines--;
    }
    if (rd_array_reserve(&c->lines, &c->cap, c->n_lines + 1, sizeof *c->lines)) return;
    char *t = malloc(len + 1);
    if (!t) return;
    memcpy(t, text, len);
    t[len] = '\0';
    for (char *p = t; *p; p++)
        if (*p == '\t') *p = ' ';
    c->lines[c->n_lines++] = (console_line){t, is_error};
}

/* Output with newlines: complete lines go to the scrollback, the rest waits. */
static void console_output(void *user, const char *text, size_t len, int is_error) {
    tui_console *c = user;
    while (len > 0) {
        const char *nl = memchr(text, '\n', len);
        size_t n = nl ? (size_t)(nl - text) : len;
        if (rd_buf_append(&c->partial, text, n)) { /* out of memory: the line is dropped */
            rd_buf_free(&c->partial);
            c->partial_error = 0;
            return;
        }
        c->partial_error |= is_error;
        if (!nl) break;
        add_line(c, c->partial.data, c->partial.len, c->partial_error);
        rd_buf_clear(&c->partial);
        c->partial_error = 0;
        text += n + 1;
        len -= n + 1;
    }
    c->scroll = 0;
    c->app->dirty = 1;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void console_print(tui_console *c, const char *text) { console_output(c, text, strlen(text), 0); }

lua_State *console_lua(tui_console *c) { return c->L; }

/* ---- readline callbacks ------------------------------------------------------------------ */

static int feed_getc(FILE *f) {
    (void)f;
    if (!active || active->feed_pos >= active->feed_len) return EOF;
    return active->feed[active->feed_pos++];
}

static int feed_available(void) { return active && active->feed_pos < active->feed_len; }

static void redisplay(void) {
    if (active) active->app->dirty = 1;
}

static void prep_term(int meta) { (void)meta; }
static void deprep_term(void) {}

static void on_line(char *line);

static void set_prompt(tui_console *c) {
    rl_callback_handler_install(rd_lua_repl_pending(c->repl) ? ">> " : "> ", on_line);
}

static void on_line(char *line) {
    tui_console *c = active;
    if (!c) {
        free(line);
        return;
    }
    if (!line) { /* Ctrl-D on an empty line */
        console_print(c, "(F10 quits the workbench)\n");
        set_prompt(c);
        return;
    }
    char echo[2048];
    snprintf(echo, sizeof echo, "%s%s\n", rd_lua_repl_pending(c->repl) ? ">> " : "> ", line);
    console_print(c, echo);
    char *chunk = NULL;
    int rc = rd_lua_repl_feed(c->repl, line, &chunk);
    free(line);
    if (rc == RD_LUA_REPL_NOMEM) console_output(c, "out of memory\n", 14, 1);
    if (rc == RD_LUA_REPL_READY) {
        if (*chunk) {
            if (rd_lua_readline_history_add(chunk, c->hist_path))
                console_print(c, "cannot write the history file\n");
        }
        c->ready = 1;
    }
    free(chunk);
    set_prompt(c);
}

/* Matches are listed in the scrollback, not printed over the screen. */
static void show_matches(char **matches, int n, int max_len) {
    (void)max_len;
    if (!active) return;
    char line[4096];
    size_t used = 0;
    line[0] = '\0';
    for (int i = 1; i <= n; i++) {
        int w = snprintf(line + used, sizeof line - used, "%s  ", matches[i]);
        if (w < 0 || (size_t)w >= sizeof line - used) break;
        used += (size_t)w;
    }
    console_print(active, line);
    console_print(active, "\n");
}

/* ---- the console ------------------------------------------------------------------------ */

tui_console *console_new(tui_app *a, rd_error *err) {
    tui_console *c = calloc(1, sizeof *c);
    if (!c) {
        rd_error_set(err, "out of memory for the console");
        return NULL;
    }
    c->app = a;
    if (!(c->L = rd_lua_new(err))) goto fail;
    if (rd_lua_redirect_output(c->L, console_output, c) || !(c->repl = rd_lua_repl_new(c->L, console_output, c))) {
        rd_error_set(err, "out of memory for the console");
        goto fail;
    }
    if (wb_lua_open(c->L, a, err)) goto fail;
    c->devnull = fopen("/dev/null", "w");
    c->hist_path = rd_lua_readline_history_path();
    active = c;

    rl_readline_name = "redit";
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_prep_term_function = prep_term;
    rl_deprep_term_function = deprep_term;
    rl_getc_function = feed_getc;
    rl_input_available_hook = feed_available;
    rl_redisplay_function = redisplay;
    rl_outstream = c->devnull;
    rl_completion_display_matches_hook = show_matches;
    rd_lua_readline_completion_begin(c->L);
    rd_lua_readline_history_open(c->hist_path);
    set_prompt(c);
    console_print(c, "Lua 5.4 with the red module; `model` is the loaded model, `wb` the "
                     "workbench (wb.help()).\n");
    return c;
fail:
    console_free(c);
    return NULL;
}

void console_free(tui_console *c) {
    if (!c) return;
    if (active == c) {
        rl_callback_handler_remove();
        rd_lua_readline_completion_end();
        active = NULL;
    }
    rd_lua_repl_free(c->repl);
    rd_lua_close(c->L);
    for (size_t i = 0; i < c->n_lines; i++) free(c->lines[i].text);
    free(c->lines);
    rd_buf_free(&c->partial);
    free(c->hist_path);
    if (c->devnull) fclose(c->devnull);
    free(c);
}

int console_has_ready(const tui_console *c) { return c->ready; }

void console_run_ready(tui_console *c) {
    if (!c->ready) return;
    c->ready = 0;
    rd_lua_repl_run(c->repl);
    if (c->partial.len) console_output(c, "\n", 1, c->partial_error); /* io.write without newline */
    c->app->dirty = 1;
}

void console_interrupt(tui_console *c) {
    rd_lua_clear_stop(c->L);
    rl_replace_line("", 0);
    rl_point = 0;
    rd_lua_repl_reset(c->repl);
    console_print(c, "^C\n");
    set_prompt(c);
}

/* Bytes readline understands for a key; 0 when the key is not for readline. */
static size_t key_bytes(tui_key k, unsigned char *out) {
    static const struct {
        int key;
        const char *seq;
    } keys[] = {{KEY_LEFT, "\033[D"}, {KEY_RIGHT, "\033[C"}, {KEY_UP, "\033[A"},
                {KEY_DOWN, "\033[B"}, {KEY_HOME, "\033[H"},  {KEY_END, "\033[F"},
                {KEY_DC, "\033[3~"},  {KEY_BACKSPACE, "\177"}, {KEY_ENTER, "\r"}};
    if (k.is_key) {
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            if (keys[i].key == k.code) {
                size_t n = strlen(keys[i].seq);
                memcpy(out, keys[i].seq, n);
                return n;
            }
        return 0;
    }
    if (k.code == 27) return 0; /* Esc is the workbench's stop key */
    if (k.code < 128) {
        out[0] = (unsigned char)k.code;
        return 1;
    }
    char mb[8];
    int n = (int)wctomb(mb, (wchar_t)k.code);
    if (n <= 0) return 0;
    memcpy(out, mb, (size_t)n);
    return (size_t)n;
}

int console_key(tui_console *c, tui_key k) {
    if (k.is_key && k.code == KEY_PPAGE) {
        c->scroll += 5;
        return 1;
    }
    if (k.is_key && k.code == KEY_NPAGE) {
        c->scroll = c->scroll > 5 ? c->scroll - 5 : 0;
        return 1;
    }
    if (c->ready) console_run_ready(c); /* typed ahead: run the chunk first */
    unsigned char bytes[16];
    size_t n = key_bytes(k, bytes);
    if (!n) return 0;
    active = c;
    memcpy(c->feed, bytes, n);
    c->feed_len = n;
    c->feed_pos = 0;
    while (c->feed_pos < c->feed_len) rl_callback_read_char();
    c->app->dirty = 1;
    return 1;
}

/* One screen row of the scrollback: part of a line, wrapped to the pane. */
typedef struct console_row {
    const console_line *line;
    tui_span span;
} console_row;

/* Draws the scrollback's last rows (c->scroll rows up from the bottom) with every line
 * word-wrapped to the pane's width: only the lines that reach the screen are wrapped. */
static void draw_scrollback(tui_console *c, tui_rect r) {
    const int rows = r.h - 2, w = r.w - 2;
    if (rows <= 0 || w <= 0) return;
    /* the lines from the bottom up until they fill the screen and the scroll above it */
    size_t first = c->n_lines, total = 0, need = (size_t)rows + (size_t)c->scroll;
    while (first > 0 && total < need) {
        first--;
        const char *t = c->lines[first].text;
        total += tui_wrap(t, strlen(t), w, NULL, 0);
    }
    if (total < need) c->scroll = total > (size_t)rows ? (int)(total - (size_t)rows) : 0;
    console_row *v = NULL;
    size_t n = 0, cap = 0;
    if (rd_array_reserve(&v, &cap, total ? total : 1, sizeof *v)) return;
    for (size_t i = first; i < c->n_lines; i++) {
        const char *t = c->lines[i].text;
        const size_t len = strlen(t), k = tui_wrap(t, len, w, NULL, 0);
        tui_span *spans = malloc(k * sizeof *spans);
        if (!spans) break;
        tui_wrap(t, len, w, spans, k);
        for (size_t j = 0; j < k && n < total; j++) v[n++] = (console_row){&c->lines[i], spans[j]};
        free(spans);
    }
    size_t top = n > (size_t)rows + (size_t)c->scroll ? n - (size_t)rows - (size_t)c->scroll : 0;
    for (int i = 0; i < rows && top + (size_t)i < n; i++) {
        const console_row *row = &v[top + (size_t)i];
        char buf[2048];
        size_t l = row->span.len < sizeof buf ? row->span.len : sizeof buf - 1;
        memcpy(buf, row->line->text + row->span.start, l);
        buf[l] = '\0';
        int attr = row->line->is_error && has_colors() ? COLOR_PAIR(PAIR_ERROR) : 0;
        draw_text(r.y + 1 + i, r.x + 1, w, buf, attr);
    }
    free(v);
}

void console_draw(tui_console *c, tui_rect r, int focused) {
    draw_title(r, "Lua console", c->ready ? "running… (Ctrl-C stops)" : "F5  wb.help()", focused);
    rl_set_screen_size(r.h, r.w);
    draw_scrollback(c, r);
    /* the input line: prompt + readline's buffer, scrolled to keep the cursor in view */
    int y = r.y + r.h - 1;
    const char *prompt = rl_display_prompt ? rl_display_prompt : "> ";
    int pw = draw_text(y, r.x + 1, r.w - 2, prompt, A_BOLD);
    const char *buf = rl_line_buffer ? rl_line_buffer : "";
    int room = r.w - 3 - pw;
    int cursor = tui_text_width(buf, (size_t)(rl_point > 0 ? rl_point : 0));
    const char *shown = buf;
    while (cursor > room && *shown) {
        int w = tui_text_width(shown, 1);
        shown++;
        while (((unsigned char)*shown & 0xC0) == 0x80) shown++;
        cursor -= w;
    }
    draw_text(y, r.x + 1 + pw, room + 1, shown, 0);
    if (focused) move(y, r.x + 1 + pw + cursor);
}
