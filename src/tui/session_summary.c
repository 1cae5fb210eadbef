/* A saved session's runs for `redit session` (redit/workbench.h): read with tui_session_load,
 * no model needed; --use and --delete change it through tui_session_save (one unit). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/workbench.h"
#include "session.h"

/* Loads an existing session root/name (root NULL: "sessions"); a damaged one is refused
 * untouched. */
static int load_existing(const char *root, const char *name, tui_session *s, rd_error *err) {
    if (!tui_session_name_ok(name, err)) return -1;
    if (!tui_session_exists(root, name))
        return rd_error_set(err, "there is no session %s in %s (no %s/%s/session.json)", name,
                            root, root, name);
    if (tui_session_load(root, name, s, err))
        return rd_error_prefix(err, "session %s is damaged (left as it is; redit tui --session "
                                    "%s moves it aside)", name, name);
    return 0;
}

int rd_session_summarize(const char *root, const char *name, rd_session_summary *out,
                         rd_error *err) {
    memset(out, 0, sizeof *out);
    if (!root) root = "sessions";
    tui_session s;
    if (load_existing(root, name, &s, err)) return -1;
    snprintf(out->model_path, sizeof out->model_path, "%s", s.model_path);
    snprintf(out->model_fingerprint, sizeof out->model_fingerprint, "%s", s.model_fingerprint);
    out->n_chat = s.n_chat;
    if (s.n_runs && !(out->runs = calloc(s.n_runs, sizeof *out->runs))) {
        tui_session_release(&s);
        return rd_error_set(err, "session %s: out of memory", name);
    }
    for (size_t i = 0; i < s.n_runs; i++) {
        const tui_run *r = &s.runs[i];
        rd_session_run *o = &out->runs[i];
        o->id = r->id;
        snprintf(o->label, sizeof o->label, "%s", r->label);
        o->steps = r->n_steps;
        o->best_eval_loss = r->best_eval_loss;
        o->best_eval_accuracy = r->best_eval_accuracy;
        o->stopped = r->stopped;
        o->current = r->id == s.current_run;
        tui_session_run_edits_path(&s, r, o->edits_path, sizeof o->edits_path);
        tui_session_run_model_path(&s, r, o->model_path, sizeof o->model_path);
    }
    out->n_runs = s.n_runs;
    tui_session_release(&s);
    return 0;
}

void rd_session_summary_release(rd_session_summary *s) {
    if (!s) return;
    free(s->runs);
    s->runs = NULL;
    s->n_runs = 0;
}

int rd_session_run_edits(const char *root, const char *name, int id, char *path, size_t cap,
                         rd_error *err) {
    if (cap) path[0] = '\0';
    if (!root) root = "sessions";
    tui_session s;
    if (load_existing(root, name, &s, err)) return -1;
    const tui_run *r = tui_session_find_run(&s, id);
    int rc = -1;
    if (!r)
        rd_error_set(err, "session %s has no run #%d (redit session %s lists them)", name, id,
                     name);
    else if (!r->edits_file[0])
        rd_error_set(err, "session %s: run #%d has no saved edits", name, id);
    else {
        tui_session_run_edits_path(&s, r, path, cap);
        rc = 0;
    }
    tui_session_release(&s);
    return rc;
}

int rd_session_use_run(const char *root, const char *name, int id, rd_error *err) {
    if (!root) root = "sessions";
    tui_session s;
    if (load_existing(root, name, &s, err)) return -1;
    int rc = -1;
    if (!tui_session_find_run(&s, id))
        rd_error_set(err, "session %s has no run #%d (redit session %s lists them)", name, id,
                     name);
    else
        rc = tui_session_save_using_run(&s, id, err);
    tui_session_release(&s);
    return rc;
}

int rd_session_delete_run(const char *root, const char *name, int id, rd_error *err) {
    if (!root) root = "sessions";
    tui_session s;
    if (load_existing(root, name, &s, err)) return -1;
    int rc = -1;
    if (tui_session_delete_run(&s, id))
        rd_error_set(err, "session %s has no run #%d (redit session %s lists them)", name, id,
                     name);
    else
        rc = tui_session_save(&s, NULL, NULL, err);
    tui_session_release(&s);
    return rc;
}
