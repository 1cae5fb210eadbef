/* redit — workbench sessions on disk (tui layer, no curses).
 *
 * A session is a folder ROOT/NAME/ holding
 *   session.json        {"format": "redit-session", "version": 1, "name", "model_path",
 *                        "model_fingerprint", "config": {one key per tui_config field},
 *                        "runs": [{"label", "seconds", "tokens_per_s", "best_eval_loss"
 *                        (null when unknown), "best_eval_accuracy" (null or absent when
 *                        unknown or not a classification set), "stopped"}]}
 *   loss.csv            "run,step,kind,loss": run = index into "runs" (from 0), kind train
 *                        (step = 1, 2, ... in order) or eval (steps non-decreasing), %.9g
 *   chat.jsonl          one {"prompt", "base", "edited", "strength"} object per line
 *   edits.safetensors   the edit vectors (rd_edits_save), when saved with edits
 * Every file is written atomically (temporary file + rename), session.json last, so a
 * session that exists (session.json present) is complete. Loading treats every file as
 * untrusted data: nothing in a session is executed. */
#ifndef REDIT_TUI_SESSION_H
#define REDIT_TUI_SESSION_H

#include <stddef.h>

#include "redit/edits.h"
#include "redit/error.h"
#include "redit/model.h"
#include "tui_config.h"

/* The history of one training run. The arrays are owned by the run and grown only by
 * tui_run_add_step / tui_run_add_eval (their capacity follows from the counts). */
typedef struct tui_run {
    char label[64];
    size_t n_steps;
    double *loss;         /* (n_steps) train loss of step i+1 */
    size_t n_evals;
    int *eval_step;       /* (n_evals) step of each evaluation, non-decreasing */
    double *eval_loss;    /* (n_evals) */
    double seconds, tokens_per_s;
    double best_eval_loss; /* NAN while unknown */
    double best_eval_accuracy; /* the best evaluation's accuracy on a classification set;
                                  NAN while unknown or without labels */
    int stopped;          /* RD_STOP_* from train.h, or -1 while running */
} tui_run;

/* Appends the loss of the next step (n_steps + 1). 0, or -1 when out of memory (r unchanged). */
int tui_run_add_step(tui_run *r, double loss);
/* Appends an evaluation. 0, or -1 when out of memory or when step is negative or below the
 * previous evaluation's step (r unchanged). */
int tui_run_add_eval(tui_run *r, int step, double loss);

typedef struct tui_chat_turn {
    char *prompt, *base, *edited; /* owned, NUL-terminated */
    double strength;
} tui_chat_turn;

typedef struct tui_session {
    char name[65];
    char root[512];              /* folder of sessions, e.g. "sessions" */
    char model_path[512];
    char model_fingerprint[17];  /* 16 hex digits of rd_model_fingerprint; "" unknown */
    tui_config config;
    tui_run *runs;               /* (n_runs) owned */
    size_t n_runs;
    tui_chat_turn *chat;         /* (n_chat) owned */
    size_t n_chat;
} tui_session;

/* 1 when name is 1–64 characters of [A-Za-z0-9._-] not starting with '.', so it cannot
 * leave ROOT; else 0 with *err saying why. */
int tui_session_name_ok(const char *name, rd_error *err);

/* An empty session (no runs, no chat, no model) with tui_config_defaults(). root and name are
 * copied, cut to fit (check the name with tui_session_name_ok first: save and load refuse
 * a bad one). */
void tui_session_init(tui_session *s, const char *root, const char *name);

/* Frees the runs and the chat and zeroes those fields (name, root, model and config stay).
 * Safe on an initialised or zeroed session, and twice. */
void tui_session_release(tui_session *s);

/* Appends an empty run (label copied, cut to 63 bytes; stopped -1, best_eval_loss and
 * best_eval_accuracy NAN).
 * Returns a borrowed pointer valid until the next tui_session_new_run or release; NULL when
 * out of memory (s unchanged). */
tui_run *tui_session_new_run(tui_session *s, const char *label);

/* Removes the last run (e.g. one that failed before its first step). No-op without runs. */
void tui_session_drop_last_run(tui_session *s);

/* Appends a chat turn with copies of the three texts (NULL is taken as ""). 0, or -1 when
 * out of memory (s unchanged). */
int tui_session_add_chat(tui_session *s, const char *prompt, const char *base, const char *edited,
                         double strength);

/* Writes the session to s->root/s->name/, creating both folders as needed: edits.safetensors
 * (only when e is non-NULL: rd_edits_save(e, m, <config JSON>, path); m is then required),
 * loss.csv, chat.jsonl, then session.json — each atomically. With m non-NULL the fingerprint
 * written is rd_model_fingerprint(m), else s->model_fingerprint. An edits file from an
 * earlier save stays when e is NULL. The config must pass tui_config_check_fields (so the
 * saved session loads again). 0, or -1 with *err naming the file. */
int tui_session_save(const tui_session *s, const rd_edits *e, const rd_model *m, rd_error *err);

/* Reads root/name/: session.json (required), loss.csv and chat.jsonl (missing = empty).
 * Anything damaged — bad JSON, another format or version, a bad config value, a bad run,
 * a CSV row with a bad number, an unknown run or a step out of order, a bad JSONL line, a
 * file over 64 MiB — gives -1 with *err naming the file (and line) and *out zeroed.
 * On success *out is a session the caller releases with tui_session_release; its name and
 * root are the arguments (not the name stored in the file). The edits file is not read:
 * load it with rd_edits_load(tui_session_edits_path(...)) once the model is loaded. */
int tui_session_load(const char *root, const char *name, tui_session *out, rd_error *err);

/* ROOT/NAME/edits.safetensors into buf (cap bytes, cut to fit). */
void tui_session_edits_path(const tui_session *s, char *buf, size_t cap);

/* 1 when root/name/session.json exists as a regular file (and name is valid), else 0. */
int tui_session_exists(const char *root, const char *name);

#endif
