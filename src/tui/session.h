/* redit — workbench sessions on disk (tui layer, no curses).
 *
 * A session is a folder ROOT/NAME/ holding (version 2)
 *   session.json        {"format": "redit-session", "version": 2, "name", "model_path",
 *                        "model_fingerprint", "generation": G, "next_run": id,
 *                        "current_run": id or 0, "files": {"loss", "chat", "edits" (or null)},
 *                        "config": {one key per tui_config field},
 *                        "runs": [{"id", "label", "edits" (file or null), "seconds",
 *                        "tokens_per_s", "best_eval_loss" (null when unknown),
 *                        "best_eval_accuracy" (null when unknown or not a classification
 *                        set), "stopped", "model" (file or null; absent before it existed)}]}
 *   loss-G.csv          "run,step,kind,loss": run = index into "runs" (from 0), kind train
 *                        (step = 1, 2, ... in order) or eval (steps non-decreasing), %.9g
 *   chat-G.jsonl        one {"prompt", "base", "edited", "strength"} object per line, with
 *                        "left" and "right" (the columns' titles) when they were not base and
 *                        edited, and "more": [{"title", "text"}...] for the columns after
 *                        the first two when three or more were compared
 *   edits-G.safetensors the current edit vectors (rd_edits_save), when saved with edits
 *   runs/ID/edits.safetensors  the edits each run trained, written once, at the first save
 *                        after the run (a run's edits are never replaced by a later run)
 *   runs/ID/model.gguf   the model a full fine-tuning run trained (GGUF, f32 weights, with
 *                        the vocabulary), written once like the run's edits
 * A save is one unit: every file is written under a new name (the generation G of this
 * save, or the run's own folder) and session.json, renamed over the old one last, is the
 * commit point naming them. A kill at any instant leaves the previous save or the new one;
 * the files no session.json names (older generations, deleted runs, the temporary files of
 * killed saves) are removed after a commit and when a session is opened (tui_session_tidy).
 * Version 1 sessions (loss.csv, chat.jsonl, edits.safetensors) still load: their edits
 * become the last run's. Loading treats every file as untrusted data: nothing in a session
 * is executed, and the file names session.json gives are checked against the patterns
 * above (a name cannot leave the folder). */
#ifndef REDIT_TUI_SESSION_H
#define REDIT_TUI_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "redit/edits.h"
#include "redit/error.h"
#include "redit/model.h"
#include "tui_config.h"

/* The history of one training run. The arrays are owned by the run and grown only by
 * tui_run_add_step / tui_run_add_eval (their capacity follows from the counts). */
typedef struct tui_run {
    int id;               /* the run's number in the session (from 1, never reused): "#id" */
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
    char edits_file[64];  /* its saved edits, relative to the session folder; "" none */
    rd_edits *edits;      /* owned: its edits not yet on disk (the next save writes them,
                             then frees them); NULL */
    char model_file[64];  /* full fine-tuning: its saved model, relative to the session
                             folder ("runs/ID/model.gguf"); "" none */
    const rd_model *model; /* borrowed: the model the run fine-tuned, not yet on disk (the
                              next save writes it, then forgets it); the owner keeps it alive
                              and unchanged until then (or clears this); NULL */
} tui_run;

/* Appends the loss of the next step (n_steps + 1). 0, or -1 when out of memory (r unchanged). */
int tui_run_add_step(tui_run *r, double loss);
/* Appends an evaluation. 0, or -1 when out of memory or when step is negative or below the
 * previous evaluation's step (r unchanged). */
int tui_run_add_eval(tui_run *r, int step, double loss);

/* Columns a chat turn holds, at most (as the worker's TUI_CHAT_MAX_COLUMNS). */
#define TUI_CHAT_TURN_MAX_COLUMNS 5

typedef struct tui_chat_turn {
    char *prompt, *base, *edited; /* owned, NUL-terminated */
    double strength;
    /* the columns' titles when they were not the base model and the current edits (runs
     * compared, e.g. "#1 ffn all s b lr 0.05"); "" for base / edited */
    char left[64], right[64];
    /* the columns after the first two (three or more compared): n_more answers and titles,
     * owned; 0 and NULL otherwise */
    size_t n_more;
    char **more;
    char (*more_titles)[64];
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
    int next_run_id;             /* id of the next run (ids are never reused) */
    int current_run;             /* id of the run whose edits are the current ones; 0 none */
    unsigned long generation;    /* of the save loaded or last written; 0: none (or version 1) */
    char edits_file[64];         /* the current edits' file, relative to the folder; "" none */
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

/* Appends an empty run numbered s->next_run_id (then incremented; label copied, cut to 63
 * bytes; stopped -1, best_eval_loss and best_eval_accuracy NAN, no edits).
 * Returns a borrowed pointer valid until the next tui_session_new_run or release; NULL when
 * out of memory (s unchanged). */
tui_run *tui_session_new_run(tui_session *s, const char *label);

/* Removes the last run (e.g. one that failed before its first step). No-op without runs. */
void tui_session_drop_last_run(tui_session *s);

/* The run numbered id, or NULL. Borrowed like tui_session_new_run's. */
tui_run *tui_session_find_run(tui_session *s, int id);

/* Removes the run numbered id (its curve and its edits; the file goes at the next save's
 * tidying). current_run becomes 0 when it was this run. -1 when there is no such run. */
int tui_session_delete_run(tui_session *s, int id);

/* Keeps a copy of e as the run's edits until the next save writes them. 0, or -1 with *err
 * (out of memory; the run is unchanged). */
int tui_run_keep_edits(tui_run *r, const rd_edits *e, rd_error *err);

/* ROOT/NAME/<the run's edits file> into buf (cap bytes, cut to fit); "" when the run has
 * no saved file. */
void tui_session_run_edits_path(const tui_session *s, const tui_run *r, char *buf, size_t cap);
/* ROOT/NAME/<the run's model file> into buf (cap bytes, cut to fit); "" when the run has
 * no saved model. */
void tui_session_run_model_path(const tui_session *s, const tui_run *r, char *buf, size_t cap);

/* Bytes the save of m as a run's model (runs/ID/model.gguf: f32 weights, the vocabulary)
 * takes, rounded up: what tui_session_check_space is asked for before a full run. */
uint64_t tui_session_model_bytes(const rd_model *m);

/* Checks that the file system holding root/name (or, while it does not exist yet, the
 * nearest existing folder above it) has at least `bytes` free for an unprivileged user
 * (statvfs). 0, or -1 with *err giving both sizes and the folder. Touches nothing. */
int tui_session_check_space(const char *root, const char *name, uint64_t bytes, rd_error *err);

/* Appends a chat turn with copies of the three texts (NULL is taken as ""). 0, or -1 when
 * out of memory (s unchanged). */
int tui_session_add_chat(tui_session *s, const char *prompt, const char *base, const char *edited,
                         double strength);
/* The same with the columns' titles (NULL or "": base / edited; cut to 63 bytes). */
int tui_session_add_chat_titled(tui_session *s, const char *prompt, const char *base,
                                const char *edited, double strength, const char *left,
                                const char *right);
/* The same for n columns (1 to TUI_CHAT_TURN_MAX_COLUMNS): answers[k] and titles[k] (titles
 * may be NULL: all ""); a missing second column is "". -1 also when n is out of range. */
int tui_session_add_chat_columns(tui_session *s, const char *prompt, int n,
                                 const char *const *answers, const char *const *titles,
                                 double strength);

/* Saves the session to s->root/s->name/ as one unit (see the top of this file), creating
 * the folders as needed: the runs' edits kept in memory (runs/ID/edits.safetensors) and
 * their models not yet written (runs/ID/model.gguf, rd_gguf_write in f32), the
 * current edits e as edits-G.safetensors (only when e is non-NULL; m is then required; an
 * edits file from an earlier save stays current when e is NULL), loss-G.csv, chat-G.jsonl,
 * then session.json; then removes the files it no longer names. With m non-NULL the
 * fingerprint written is rd_model_fingerprint(m), else s->model_fingerprint. The config
 * must pass tui_config_check_fields (so the saved session loads again). On success s's
 * generation and file names are updated and the runs' kept edits freed (their models
 * forgotten); on failure s is unchanged (the kept edits and models stay for the next try)
 * and the session on disk is the previous save. 0, or -1 with *err naming the file. */
int tui_session_save(tui_session *s, const rd_edits *e, const rd_model *m, rd_error *err);

/* Makes run id's saved edits (runs/ID/edits.safetensors) the session's current edits and
 * saves the session as one unit (tui_session_save without a model: the stored fingerprint
 * is kept): the run's file is copied, byte for byte, as the next generation's current edits
 * file, and current_run becomes id. Needs a run with saved edits (not ones only in memory).
 * 0, or -1 with *err (no such run, no saved edits, a failed write: s and the session on disk
 * are then unchanged). */
int tui_session_save_using_run(tui_session *s, int id, rd_error *err);

/* Removes from s->root/s->name/ what s (as loaded or last saved) does not name: files of
 * other generations, runs/ID folders of other runs, "*.tmp-*" files of killed saves, and
 * the version 1 files once a version 2 save exists. Files of other names are left alone.
 * Best effort: returns how many entries were removed. */
int tui_session_tidy(const tui_session *s);

/* Moves a damaged session's folder root/name aside to root/name.damaged-YYYYMMDD-HHMMSS
 * (-2, -3, ... when taken), untouched, so a fresh session can take the name. The new
 * folder's path goes into moved (cap bytes). 0, or -1 with *err. */
int tui_session_move_aside(const char *root, const char *name, char *moved, size_t cap,
                           rd_error *err);

/* Reads root/name/: session.json (required) and the loss and chat files it names (version
 * 1: loss.csv and chat.jsonl, missing = empty). Anything damaged — bad JSON, another format
 * or version, a bad config value, a bad run or file name, a named file missing, a CSV row
 * with a bad number, an unknown run or a step out of order, a bad JSONL line, a file over
 * 64 MiB — gives -1 with *err naming the file (and line) and *out zeroed.
 * On success *out is a session the caller releases with tui_session_release; its name and
 * root are the arguments (not the name stored in the file). The edits file is not read:
 * load it with rd_edits_load(tui_session_edits_path(...)) once the model is loaded. */
int tui_session_load(const char *root, const char *name, tui_session *out, rd_error *err);

/* ROOT/NAME/<the current edits file> into buf (cap bytes, cut to fit); "" when the session
 * has no saved edits. */
void tui_session_edits_path(const tui_session *s, char *buf, size_t cap);

/* Checks, before any work, that a save of session root/name could be written: the name is
 * valid (tui_session_name_ok) and a file can be created in the session's folder, or, while it
 * does not exist yet, in the nearest existing folder above it (the save creates the rest):
 * rd_atomic_file_check, so a read-only folder or file system, a path through a regular file
 * or a missing permission is found. 0, or -1 with *err saying why. Touches nothing. */
int tui_session_check_writable(const char *root, const char *name, rd_error *err);

/* How the model a session was made with relates to a loaded model: the session recognises
 * its model by fingerprint, never by the spelling of its path (a relative or absolute path,
 * a symlink, a copy elsewhere are the same model). */
typedef enum tui_model_check {
    TUI_MODEL_NEW = 0,      /* the session records no fingerprint (new, or made without one) */
    TUI_MODEL_SAME,         /* s->model_fingerprint is rd_model_fingerprint(m) */
    TUI_MODEL_SAME_SAMPLED, /* it is the sampled fingerprint of earlier versions
                               (rd_model_fingerprint_match with accept_sampled): the same
                               model, recorded with the weaker check; the next save writes the
                               full one */
    TUI_MODEL_OTHER         /* another model: *err names both fingerprints and says what to do
                               (the session's model path, and whether it is still there) */
} tui_model_check;
tui_model_check tui_session_check_model(const tui_session *s, const rd_model *m, rd_error *err);

/* 1 when root/name/session.json exists as a regular file (and name is valid), else 0. */
int tui_session_exists(const char *root, const char *name);

#endif
