/* Following a training run that runs elsewhere (under mpirun, on another machine writing to a
 * shared folder): its --log CSV becomes a run of the session whose curve is re-read about once
 * a second; when the log is finished, the run's edits file (when given and there) is loaded
 * as the run's edits (app.h: app_follow). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "redit/edits.h"
#include "redit/train.h"
#include "redit/train_log.h"

/* Appends what the log has beyond what the run shows (a log only grows); ends the following
 * when the log is finished. */
static int follow_read(tui_app *a, rd_error *err) {
    tui_run *r = tui_session_find_run(&a->session, a->follow_run);
    if (!r) { /* deleted meanwhile */
        a->follow_run = 0;
        return 0;
    }
    rd_train_log log;
    if (rd_train_log_read(a->follow_log, &log, err)) return -1;
    for (size_t i = r->n_steps; i < log.n_steps; i++)
        if (tui_run_add_step(r, log.loss[i])) break;
    for (size_t i = r->n_evals; i < log.n_evals; i++) {
        if (tui_run_add_eval(r, log.eval_step[i], log.eval_loss[i])) break;
        const int better = isnan(r->best_eval_loss) ||
                           (!isnan(log.eval_accuracy[i]) && log.eval_accuracy[i] != r->best_eval_accuracy
                                ? !(log.eval_accuracy[i] < r->best_eval_accuracy)
                                : log.eval_loss[i] < r->best_eval_loss);
        if (better) {
            r->best_eval_loss = log.eval_loss[i];
            r->best_eval_accuracy = log.eval_accuracy[i];
        }
    }
    r->tokens_per_s = log.tokens_per_s;
    r->seconds = log.elapsed;
    const int done = log.done;
    rd_train_log_release(&log);
    a->dirty = 1;
    if (!done) return 0;
    r->stopped = RD_STOP_DONE;
    a->follow_run = 0;
    if (!a->follow_edits[0]) {
        app_notify(a, 0, "run #%d (%s) ended", r->id, a->follow_log);
        return 0;
    }
    rd_edits *e = rd_edits_load(a->follow_edits, a->model, 0, NULL, err);
    if (!e) return -1;
    const int rc = tui_run_keep_edits(r, e, err);
    rd_edits_free(e);
    if (rc == 0)
        app_notify(a, 0, "run #%d ended: its edits from %s are run #%d's (wb.use_run(%d) uses them)",
                   r->id, a->follow_edits, r->id, r->id);
    return rc;
}

int app_follow(tui_app *a, const char *log_path, const char *edits_path, rd_error *err) {
    if (strlen(log_path) >= sizeof a->follow_log ||
        (edits_path && strlen(edits_path) >= sizeof a->follow_edits))
        return rd_error_set(err, "the path is too long");
    rd_train_log probe;
    if (rd_train_log_read(log_path, &probe, err)) return -1;
    rd_train_log_release(&probe);
    char label[64];
    const char *base = strrchr(log_path, '/');
    snprintf(label, sizeof label, "followed %s", base ? base + 1 : log_path);
    tui_run *r = tui_session_new_run(&a->session, label);
    if (!r) return rd_error_set(err, "out of memory");
    snprintf(a->follow_log, sizeof a->follow_log, "%s", log_path);
    snprintf(a->follow_edits, sizeof a->follow_edits, "%s", edits_path ? edits_path : "");
    a->follow_run = r->id;
    a->follow_next = 0;
    return follow_read(a, err);
}

void app_follow_poll(tui_app *a) {
    if (!a->follow_run || app_now() < a->follow_next) return;
    a->follow_next = app_now() + 1.0;
    rd_error err = {0};
    if (follow_read(a, &err)) {
        app_notify(a, 1, "following %s: %s", a->follow_log, err.msg);
        a->follow_run = 0;
    }
}
