/* Line input on GNU readline's callback interface (so that Ctrl-C at the prompt can drop
 * the line and return, as Python's REPL does), or plain getline when stdin is no terminal.
 *
 * Global state: a signal handler has no user pointer, and readline's line handler none
 * either, so the flags they set and the interrupt hook live in this file's statics. Only the
 * main thread reads lines; the handlers only store into sig_atomic_t flags and call the
 * hook, which its setter promises is async-signal-safe. */
#include "line_input.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/readline.h>

static volatile sig_atomic_t g_sigint;   /* Ctrl-C seen */
static volatile sig_atomic_t g_sigwinch; /* terminal resized while reading */
static volatile sig_atomic_t g_reading;  /* a line is being read: the hook is not called */
static void (*volatile g_hook)(void *);
static void *volatile g_hook_arg;

static struct sigaction g_old_int, g_old_winch;
static int g_tty;

static char *g_cb_line; /* the line readline's callback delivered (NULL: EOF) */
static int g_cb_done;

static void on_sigint(int sig) {
    (void)sig;
    g_sigint = 1;
    void (*fn)(void *) = g_hook;
    if (fn && !g_reading) fn(g_hook_arg);
}

static void on_sigwinch(int sig) {
    (void)sig;
    g_sigwinch = 1;
}

void cli_input_begin(const char *app_name) {
    g_tty = isatty(STDIN_FILENO);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read or select returns EINTR */
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &g_old_int);
    if (g_tty) {
        sa.sa_handler = on_sigwinch;
        sigaction(SIGWINCH, &sa, &g_old_winch);
        rl_readline_name = app_name;
        /* The handlers above are the application's; readline must not install its own. */
        rl_catch_signals = 0;
        rl_catch_sigwinch = 0;
    }
}

void cli_input_end(void) {
    sigaction(SIGINT, &g_old_int, NULL);
    if (g_tty) {
        sigaction(SIGWINCH, &g_old_winch, NULL);
        rl_callback_handler_remove();
    }
    g_hook = NULL;
}

int cli_input_is_tty(void) { return g_tty; }

int cli_input_interrupted(void) { return g_sigint != 0; }

void cli_input_clear_interrupt(void) { g_sigint = 0; }

void cli_input_on_interrupt(void (*fn)(void *arg), void *arg) {
    g_hook = NULL; /* never a new function with the old argument */
    g_hook_arg = arg;
    g_hook = fn;
}

static void on_line(char *line) {
    g_cb_line = line;
    g_cb_done = 1;
    rl_callback_handler_remove(); /* no prompt redrawn after the line */
}

static cli_in_status read_tty(const char *prompt, char **line) {
    g_cb_line = NULL;
    g_cb_done = 0;
    rl_callback_handler_install(prompt, on_line);
    while (!g_cb_done) {
        fd_set in;
        FD_ZERO(&in);
        FD_SET(fileno(rl_instream), &in);
        int r = select(fileno(rl_instream) + 1, &in, NULL, NULL, NULL);
        if (r < 0 && errno == EINTR) {
            if (g_sigwinch) {
                g_sigwinch = 0;
                rl_resize_terminal();
            }
            if (g_sigint) { /* drop the line, as after a signal in readline() */
                g_sigint = 0;
                rl_point = rl_end; /* "^C" after the whole line */
                rl_redisplay();
                fputs("^C", rl_outstream);
                rl_free_line_state();
                rl_callback_sigcleanup();
                rl_cleanup_after_signal();
                rl_callback_handler_remove();
                /* the terminal reset may have put the cursor at the line's start ("\r") */
                fputc('\n', rl_outstream);
                fflush(rl_outstream);
                return CLI_IN_INTERRUPTED;
            }
            continue;
        }
        if (r < 0) {
            rl_callback_handler_remove();
            return CLI_IN_EOF;
        }
        rl_callback_read_char();
    }
    if (!g_cb_line) {
        fputc('\n', rl_outstream); /* Ctrl-D leaves the cursor after the prompt */
        return CLI_IN_EOF;
    }
    *line = g_cb_line;
    return CLI_IN_LINE;
}

static cli_in_status read_plain(char **line) {
    char *buf = NULL;
    size_t cap = 0;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&buf, &cap, stdin);
        if (n >= 0) {
            if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
            *line = buf;
            return CLI_IN_LINE;
        }
        if (errno == EINTR) {
            clearerr(stdin);
            if (g_sigint) {
                g_sigint = 0;
                free(buf);
                return CLI_IN_INTERRUPTED;
            }
            continue;
        }
        free(buf);
        return CLI_IN_EOF;
    }
}

cli_in_status cli_input_read(const char *prompt, char **line) {
    *line = NULL;
    g_sigint = 0;
    g_reading = 1;
    cli_in_status st = g_tty ? read_tty(prompt ? prompt : "", line) : read_plain(line);
    g_reading = 0;
    return st;
}
