/* Line input of the interactive commands (redit chat, redit lua): GNU readline when stdin is
 * a terminal (editing, history, completion; Ctrl-C clears the line being typed), plain
 * '\n'-terminated lines without prompts otherwise (pipes, tests). Also the Ctrl-C handling
 * while a command works between two lines: a flag the work polls, and an optional
 * async-signal-safe hook the signal handler calls. One session per process. */
#ifndef REDIT_CLI_LINE_INPUT_H
#define REDIT_CLI_LINE_INPUT_H

typedef enum cli_in_status {
    CLI_IN_EOF = 0,        /* end of input (Ctrl-D on an empty line, end of the pipe) */
    CLI_IN_LINE = 1,       /* *line holds a line */
    CLI_IN_INTERRUPTED = 2 /* Ctrl-C while reading: the line was dropped */
} cli_in_status;

/* Starts a session: installs the SIGINT handler (and SIGWINCH for readline) and names the
 * application for ~/.inputrc ($if NAME). */
void cli_input_begin(const char *app_name);

/* Ends it: restores the previous signal handlers and the terminal. */
void cli_input_end(void);

/* 1 when stdin is a terminal (readline is used), else 0. */
int cli_input_is_tty(void);

/* Reads one line (the '\n' removed) into *line, malloc'ed; the caller frees it. prompt is
 * shown only on a terminal. Lines are not added to the history (the caller decides). */
cli_in_status cli_input_read(const char *prompt, char **line);

/* Ctrl-C while no line is read: 1 when one came since the last cli_input_clear_interrupt. */
int cli_input_interrupted(void);
void cli_input_clear_interrupt(void);

/* fn(arg) is called from the SIGINT handler (so fn must be async-signal-safe) whenever a
 * Ctrl-C comes while no line is being read; fn NULL removes it. */
void cli_input_on_interrupt(void (*fn)(void *arg), void *arg);

#endif
