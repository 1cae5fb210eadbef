/* A saved session's runs for `redit session` (redit/workbench.h): read with tui_session_load,
 * no model needed, nothing written. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/workbench.h"
#include "session.h"

int rd_session_summarize(const char *root, const char *name, rd_session_summary *out,
                         rd_error *err) {
    memset(out, 0, sizeof *out);
    if (!root) root = "sessions";
    if (!tui_session_name_ok(name, err)) return -1;
    if (!tui_session_exists(root, name))
        return rd_error_set(err, "there is no session %s in %s (no %s/%s/session.json)", name,
                            root, root, name);
    tui_session s;
    if (tui_session_load(root, name, &s, err)) return -1;
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
