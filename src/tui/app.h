/* redit TUI — the workbench's state and the functions its panes share (UI thread only).
 *
 * One tui_app holds the loaded model, the session (configuration, runs, chat transcript),
 * the current edit set, the worker thread and the Lua console. The panes (pane_*.c) draw
 * from it and change it through the app_* functions below, which the Lua console's `wb`
 * table calls too: everything a key does can be scripted, and the panes show what a
 * console command changed on the next redraw. */
#ifndef REDIT_TUI_APP_H
#define REDIT_TUI_APP_H

#include <signal.h>
#include <stddef.h>

#include "layout.h"
#include "redit/buf.h"
#include "redit/edits.h"
#include "redit/error.h"
#include "redit/model.h"
#include "session.h"
#include "redit/workbench.h"
#include "worker.h"

struct lua_State;
typedef struct tui_console tui_console;

enum { PANE_CONFIG = 0, PANE_CHART, PANE_CHAT, PANE_CONSOLE, PANE_COUNT };

/* Colour pairs (1..): chart series use 1..SERIES_COLORS. */
enum { COLOR_SERIES_FIRST = 1, SERIES_COLORS = 6, PAIR_TITLE = 8, PAIR_FOCUS, PAIR_ERROR,
       PAIR_DIM, PAIR_OK, PAIR_BASE, PAIR_EDITED };

typedef struct tui_app {
    rd_workbench_args args;
    char model_arg[512];    /* the model path taken from the session when none was given */
    int restored;           /* the session was restored (not new): --init-set is not applied */
    /* the model */
    rd_model *model;
    char model_name[160];   /* "stories15M.bin" (the status line's fields) */
    char model_detail[96];  /* "llama2c F32 · 15.2M params" */
    char model_warning[300]; /* where the weights are not finite (rd_model_info.nonfinite), shown
                                on the status line; "" when every weight is finite */
    double model_params;
    size_t edit_params;     /* trainable numbers of the configured edits (0: they do not fit) */
    double edit_ratio;      /* model parameters / edit_params */
    /* the session and its edits (trained by the last run; identity before the first) */
    tui_session session;
    rd_edits *edits;
    /* full fine-tuning (method "full"): the copy of the model the latest full run trains or
     * trained, or the one a full run saved (owned; NULL: none), that run's id (0: none),
     * whether the run being trained is one, and whether the chat's edited side answers with
     * the copy (after such a run, or when the session opens with one current, until other
     * edits are made current: another run, wb.use_run, wb.set_edits). The session saves it as
     * the run's runs/ID/model.gguf. */
    rd_model *tuned;
    int tuned_run;
    int run_full, use_tuned;
    /* jobs */
    tui_worker *worker;
    int training;           /* a training job is running */
    int stopping;           /* training: 0, or the stop requested (RD_STOP_AT_STEP: Esc once,
                               RD_STOP_SKIP_EVAL: twice) */
    int chatting;           /* a chat job is running */
    int evaluating;         /* a multiple-choice evaluation is running (app_eval_mc) */
    char mc_status[RD_ERROR_MAX];    /* what it is doing ("evaluating base: 300 items, FILE") */
    /* the last multiple-choice evaluation that ended (has_mc), its file and its edited
     * side's title ("#3 ffn all s b lr 0.05", "current edits", "no edits") */
    tui_mc_result mc;
    int has_mc;
    char mc_path[512], mc_title[64];
    double mc_strength;     /* the α its edited side was scored at */
    tui_run *run;           /* the run being trained (in session.runs), or NULL */
    rd_progress last;       /* last progress event of the run */
    double last_eval;       /* last eval loss of the run (NAN: none yet) */
    double last_eval_accuracy; /* its accuracy on a classification set (else NAN) */
    char train_status[256]; /* "loading …", "step 12/40", "stopped: …" */
    size_t n_train, n_eval;
    rd_buf answer[TUI_CHAT_MAX_COLUMNS]; /* answers being streamed, one per column */
    int n_answers;          /* their columns (2: base and edited) */
    /* edit sets compared side by side with the base model in the chat (app_compare): column
     * k + 1 answers with item k — a run's edits, an edits file's or a Lua edit set (a copy,
     * owned), or a full fine-tuning run's model (owned when compare_model_owned, else it is
     * a->tuned); 0 of them when the chat compares the base model with the current edits */
    int n_compare;
    int compare_run[TUI_CHAT_MAX_COLUMNS - 1];      /* the run's id; 0 for a file or Lua set */
    rd_edits *compare_edits[TUI_CHAT_MAX_COLUMNS - 1];
    rd_model *compare_model[TUI_CHAT_MAX_COLUMNS - 1];
    int compare_model_owned[TUI_CHAT_MAX_COLUMNS - 1];
    char compare_title[TUI_CHAT_MAX_COLUMNS - 1][64]; /* run labels ("#id ..."), file names */
    char answer_title[TUI_CHAT_MAX_COLUMNS][64];  /* the titles of the answers being streamed
                                                     ("": base / edited) */
    char chat_prompt[1024]; /* the prompt they answer */
    /* screen */
    tui_layout layout;
    int utf8, colors;
    int focus, zoom, help;
    int quit_asked;         /* QUIT_ASK_*: a y/n question about quitting is showing */
    int quit_unsaved;       /* the user chose to quit without saving (the save failed) */
    int dirty;              /* redraw needed */
    char message[1024];     /* notice in the hints row (errors in red), word-wrapped on up to
                               TUI_MESSAGE_ROWS_MAX rows taken from the console */
    int message_is_error;
    int message_logged;     /* the notice, too long for its rows, was printed in the console */
    /* panes' own state */
    int cfg_sel, cfg_top, cfg_editing;
    char cfg_buf[512];
    size_t cfg_len;
    char cfg_error[RD_ERROR_MAX];
    int chart_log, chart_all_runs, chart_smooth;
    char chat_input[1024];
    size_t chat_len;
    int chat_scroll;        /* lines scrolled up from the bottom */
    tui_console *console;
    /* measurements (REDIT_TUI_STATS): key → screen updated, gaps between chart redraws */
    double key_latency_max, key_latency_sum;
    long key_count;
    double redraw_gap_max, last_train_draw;
    /* a run followed from its --log CSV (follow.c): its id (0: none), the log, the edits file
     * to load when it ends ("" none), and when to read it next */
    int follow_run;
    char follow_log[1024], follow_edits[1024];
    double follow_next;
    volatile sig_atomic_t interrupted;
    volatile sig_atomic_t quit; /* set by F10 / q, SIGTERM, SIGHUP, or a lost terminal */
} tui_app;

/* ---- actions (panes, keys and the Lua console) --------------------------------------- */

/* Shows a notice in the hints row (word-wrapped; one too long for TUI_MESSAGE_ROWS_MAX rows
 * is also printed in full in the console). It lasts until the next key. */
void app_notify(tui_app *a, int is_error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sets one configuration field from text (validated as typing is); refused while training
 * for the fields training reads. */
int app_set_field(tui_app *a, const char *key, const char *text, rd_error *err);

/* Starts a training run with the session's configuration: fresh edits of the configured
 * sites/layers, a new run in the session (earlier runs stay for the chart). */
int app_train(tui_app *a, rd_error *err);

/* Asks the running job (training, chat or a multiple-choice evaluation) to stop: training
 * after this step, whose evaluation a second call skips (the training line says which).
 * Returns 1 when one was running. */
int app_stop(tui_app *a);

/* Answers prompt with the base and the edited model side by side (refused while training). */
int app_chat(tui_app *a, const char *prompt, rd_error *err);

/* Scores the multiple-choice file path (NULL or "": the configuration's mc_path) with the
 * base model and with the current edits at strength α (or a full run's model) as a
 * background job (Esc stops it; refused while another job runs): when it ends, the console
 * prints acc and acc_norm with their standard errors side by side, the difference and
 * McNemar's p-value, and a->mc keeps them (wb.mc()). */
int app_eval_mc(tui_app *a, const char *path, rd_error *err);

/* Writes the session (config, edits, loss history, chat) atomically. */
int app_save(tui_app *a, rd_error *err);

/* The text streamed so far in chat column `side` (0 left, 1 the next, ...) while answers
 * run; "" before the first piece. Borrowed: valid until the next event is handled. */
const char *app_answer(const tui_app *a, int side);

/* Replaces the session's edits by a copy of e (refused while a job runs or when e does not
 * fit the model). */
int app_set_edits(tui_app *a, const rd_edits *e, rd_error *err);

/* A copy of run id's edits (from memory, or loaded from its file), owned by the caller;
 * NULL with *err when there is no such run or it has no edits. */
rd_edits *app_run_edits(tui_app *a, int id, rd_error *err);

/* Makes run id's edits the current ones (chat then answers with them; refused while a job
 * runs). For a full fine-tuning run, its model (loaded from runs/ID/model.gguf unless it is
 * the one held) answers the chat's edited side instead. */
int app_use_run(tui_app *a, int id, rd_error *err);

/* One edit set app_compare puts beside the base model: a run (its edits, or a full
 * fine-tuning run's model), else an edits file, else an edit set (copied). */
typedef struct app_compare_item {
    int run;              /* a run's id, or 0 */
    const char *path;     /* with run 0: an edits file (rd_edits_load for the model), or NULL */
    const rd_edits *edits; /* with run 0 and no path: an edit set */
    const char *title;    /* its column's title (NULL: the run's label, the file's name, or
                             "edits N") */
} app_compare_item;

/* Makes the chat answer in n + 1 columns: the base model, then each item (1 to
 * TUI_CHAT_MAX_COLUMNS − 1 of them) at the strength α, each column titled; n = 0 goes back
 * to base vs current edits. Refused while a job runs, when an item has no edits or they do
 * not fit the model (nothing changes then). */
int app_compare(tui_app *a, const app_compare_item *items, int n, rd_error *err);

/* The chat line's ":compare A B ..." (args: what follows ":compare"): runs by number ("3" or
 * "#3") or edits files by path, separated by spaces; none ends the comparison. */
int app_compare_command(tui_app *a, const char *args, rd_error *err);

/* Deletes run id: its curve and its edits (the file goes at the next save; refused while a
 * job runs). The current edits stay. */
int app_delete_run(tui_app *a, int id, rd_error *err);

/* Follows a training run running elsewhere (mpirun, another machine) from its --log CSV
 * (FILE.partial while it runs): a new run of the session whose curve is re-read about once a
 * second (app_follow_poll); when the log is finished and edits_path (may be NULL) names a
 * file, its edits become the run's. One followed run at a time (a new call replaces it). */
int app_follow(tui_app *a, const char *log_path, const char *edits_path, rd_error *err);
void app_follow_poll(tui_app *a); /* from the main loop: the next read when it is due */

/* Handles the worker's events (called when its fd is readable). */
void app_handle_events(tui_app *a);

/* Stops a running job and waits until the worker is idle, handling its events meanwhile
 * (the worker waits while its queue is full, so waiting without draining could hang);
 * the job's results are kept as when it ends by itself. For quitting. */
void app_finish_jobs(tui_app *a);

/* Seconds on a monotonic clock. */
double app_now(void);

/* ---- panes (pane_*.c): draw into their rectangle, handle a key when focused --------- */

typedef struct tui_key {
    int code;      /* a curses KEY_* code when is_key, else a character */
    int is_key;
} tui_key;

void pane_status_draw(tui_app *a);
void pane_hints_draw(tui_app *a);
void pane_help_draw(tui_app *a);
void pane_config_draw(tui_app *a, tui_rect r);
int pane_config_key(tui_app *a, tui_key k); /* 1 when the key was used */
void pane_chart_draw(tui_app *a, tui_rect r);
int pane_chart_key(tui_app *a, tui_key k);
void pane_chat_draw(tui_app *a, tui_rect r);
int pane_chat_key(tui_app *a, tui_key k);

/* The console (pane_console.c): readline in the pane, the Lua state with `red` and `wb`. */
tui_console *console_new(tui_app *a, rd_error *err);
void console_free(tui_console *c);
void console_draw(tui_console *c, tui_rect r, int focused);
int console_key(tui_console *c, tui_key k);
void console_interrupt(tui_console *c); /* Ctrl-C: stop the running chunk / drop the line */
void console_print(tui_console *c, const char *text); /* appends text to the scrollback */
/* A finished chunk waits until the screen shows "running…"; then the loop runs it. */
int console_has_ready(const tui_console *c);
void console_run_ready(tui_console *c);
struct lua_State *console_lua(tui_console *c);

/* The `wb` table of the console (wb_lua.c). */
int wb_lua_open(struct lua_State *L, tui_app *a, rd_error *err);

/* ---- drawing helpers (draw.c) ------------------------------------------------------ */

/* Writes UTF-8 text at (y, x), cut to at most w columns; returns the columns used. */
int draw_text(int y, int x, int w, const char *text, int attr);
/* Fills w columns at (y, x) with spaces. */
void draw_blank(int y, int x, int w, int attr);
/* A pane's title row: " name " with keys, highlighted when focused. */
void draw_title(tui_rect r, const char *title, const char *right, int focused);

#endif
