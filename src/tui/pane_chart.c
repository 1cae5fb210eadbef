/* The loss chart: for every run of the session (or only the latest), the smoothed training
 * loss as a line and the evaluations as marks, the latest run's raw loss too, drawn with
 * braille cells (ASCII when the terminal is not UTF-8); below it the run's numbers and a
 * legend. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "chart.h"
#include "layout.h"
#include "redit/train.h"

#define SMOOTH_WEIGHT 0.9
#define RAW_COLOR (COLOR_SERIES_FIRST + SERIES_COLORS - 1) /* the latest run's raw loss */

static int run_color(size_t i) { return COLOR_SERIES_FIRST + (int)(i % (SERIES_COLORS - 1)); }

/* Series data owned while drawing. */
typedef struct chart_data {
    tui_series series[3 * 16];
    size_t n;
    double *owned[3 * 16];
    size_t n_owned;
} chart_data;

static double *own(chart_data *d, size_t n) {
    if (d->n_owned == sizeof d->owned / sizeof *d->owned) return NULL;
    double *p = malloc((n ? n : 1) * sizeof *p);
    if (p) d->owned[d->n_owned++] = p;
    return p;
}

static void add_run(chart_data *d, const tui_run *run, int color, int raw, int smooth) {
    if (run->n_steps == 0 && run->n_evals == 0) return;
    double *x = own(d, run->n_steps);
    if (!x) return;
    for (size_t i = 0; i < run->n_steps; i++) x[i] = (double)(i + 1);
    if (raw) d->series[d->n++] = (tui_series){x, run->loss, run->n_steps, RAW_COLOR, 0};
    if (smooth) {
        double *y = own(d, run->n_steps);
        if (y) {
            tui_smooth_ema(run->loss, run->n_steps, SMOOTH_WEIGHT, y);
            d->series[d->n++] = (tui_series){x, y, run->n_steps, color, 0};
        }
    }
    if (run->n_evals) {
        double *ex = own(d, run->n_evals);
        if (ex) {
            for (size_t i = 0; i < run->n_evals; i++) ex[i] = run->eval_step[i];
            d->series[d->n++] = (tui_series){ex, run->eval_loss, run->n_evals, color, 1};
        }
    }
}

/* Draws chart lines cell by cell with each cell's colour. */
static void draw_chart_cells(const tui_chart *c, int y, int x) {
    for (int row = 0; row < c->rows; row++) {
        const char *p = c->lines[row];
        for (int col = 0; col < c->cols && *p; col++) {
            int len = 1;
            unsigned char b = (unsigned char)*p;
            if (b >= 0xF0) len = 4;
            else if (b >= 0xE0) len = 3;
            else if (b >= 0xC0) len = 2;
            int color = c->colors[row * c->cols + col];
            int attr = color && has_colors() ? COLOR_PAIR(color) : 0;
            if (attr) attron(attr);
            mvaddnstr(y + row, x + col, p, len);
            if (attr) attroff(attr);
            p += len;
        }
    }
}

/* The training line's fields in the order they are drawn, and which go first when the
 * pane is narrow (the largest priority number first): the step, loss and eval stay. (The
 * ETA is on the status line, with the state, where the whole width keeps it in view.) */
enum { TR_STEP, TR_EPOCH, TR_LOSS, TR_EVAL, TR_LR, TR_SPEED, TR_ELAPSED, TR_COUNT };
static const int TRAINING_PRIORITY[TR_COUNT] = {
    [TR_STEP] = 0, [TR_EPOCH] = 3, [TR_LOSS] = 1,  [TR_EVAL] = 2,
    [TR_LR] = 6,   [TR_SPEED] = 5, [TR_ELAPSED] = 4,
};

/* The line of numbers under the chart while training, fitted to cols columns. */
static void training_line(const tui_app *a, int cols, char *line, size_t cap) {
    char text[TR_COUNT][64], t[16];
    const rd_progress *p = &a->last;
    snprintf(text[TR_STEP], sizeof text[0], "step %d/%d", p->step, p->total_steps);
    snprintf(text[TR_EPOCH], sizeof text[0], "epoch %d/%d", p->epoch, p->epochs);
    snprintf(text[TR_LOSS], sizeof text[0], "loss %.4f", p->loss);
    if (isfinite(a->last_eval) && isfinite(a->last_eval_accuracy))
        snprintf(text[TR_EVAL], sizeof text[0], "eval %.4f (acc %.1f%%)", a->last_eval,
                 100 * a->last_eval_accuracy);
    else if (isfinite(a->last_eval))
        snprintf(text[TR_EVAL], sizeof text[0], "eval %.4f", a->last_eval);
    else
        snprintf(text[TR_EVAL], sizeof text[0], "eval -");
    snprintf(text[TR_LR], sizeof text[0], "lr %.2e", p->lr);
    snprintf(text[TR_SPEED], sizeof text[0], "%.0f tok/s", p->tokens_per_s);
    tui_format_duration(p->elapsed, t, sizeof t);
    snprintf(text[TR_ELAPSED], sizeof text[0], "elapsed %s", t);
    tui_line_field f[TR_COUNT];
    for (int i = 0; i < TR_COUNT; i++) f[i] = (tui_line_field){text[i], "  ", TRAINING_PRIORITY[i], 0};
    tui_line_join(f, TR_COUNT, cols, line, cap);
}

/* The line under the chart after a run: its label and how it went, fitted the same way. */
enum { RL_LABEL, RL_STEPS, RL_BEST, RL_LAST, RL_SPEED, RL_TIME, RL_COUNT };
static const int RUN_PRIORITY[RL_COUNT] = {
    [RL_LABEL] = 3, [RL_STEPS] = 2, [RL_BEST] = 0, [RL_LAST] = 1, [RL_SPEED] = 5, [RL_TIME] = 4,
};

static void run_line(const tui_run *run, int cols, char *line, size_t cap) {
    char text[RL_COUNT][96], best[48], t[16];
    rd_eval_best_text(run->best_eval_loss, run->best_eval_accuracy, best, sizeof best);
    snprintf(text[RL_LABEL], sizeof text[0], "%s:", run->label);
    snprintf(text[RL_STEPS], sizeof text[0], "%zu steps", run->n_steps);
    snprintf(text[RL_BEST], sizeof text[0], "best eval %s", best);
    snprintf(text[RL_LAST], sizeof text[0], "last loss %.4f", run->loss[run->n_steps - 1]);
    snprintf(text[RL_SPEED], sizeof text[0], "%.0f tok/s", run->tokens_per_s);
    tui_format_duration(run->seconds, t, sizeof t);
    snprintf(text[RL_TIME], sizeof text[0], "%s", t);
    tui_line_field f[RL_COUNT];
    for (int i = 0; i < RL_COUNT; i++)
        f[i] = (tui_line_field){text[i], i == RL_STEPS ? " " : "  ", RUN_PRIORITY[i], 0};
    tui_line_join(f, RL_COUNT, cols, line, cap);
}

static void draw_numbers(tui_app *a, tui_rect r, int y) {
    const tui_run *run = a->run ? a->run : (a->session.n_runs ? &a->session.runs[a->session.n_runs - 1] : NULL);
    char line[320];
    if (a->training && a->last.step > 0 && !a->stopping) {
        training_line(a, r.w - 2, line, sizeof line);
    } else if (a->training) {
        snprintf(line, sizeof line, "%s", a->train_status);
    } else if (run && run->n_steps) {
        run_line(run, r.w - 2, line, sizeof line);
    } else {
        snprintf(line, sizeof line, "no run yet: F6 (or t) starts training");
    }
    draw_text(y, r.x + 1, r.w - 2, line, A_BOLD);
    /* legend: the runs shown, in their colours */
    int x = r.x + 1, end = r.x + r.w - 1;
    size_t first = a->chart_all_runs || a->session.n_runs == 0 ? 0 : a->session.n_runs - 1;
    for (size_t i = first; i < a->session.n_runs && x < end; i++) {
        int attr = has_colors() ? COLOR_PAIR(run_color(i)) : 0;
        const tui_run *ri = &a->session.runs[i];
        char name[96], num[16];
        /* "#id label" as wb.runs() numbers them ("*" marks the current edits' run) */
        snprintf(num, sizeof num, "#%d", ri->id);
        const int numbered = !strncmp(ri->label, num, strlen(num)) &&
                             (ri->label[strlen(num)] == ' ' || !ri->label[strlen(num)]);
        /* the runs the chat compares say which column they answer in (the base is 1) */
        char side[16] = "";
        for (int k = 0; k < a->n_compare; k++)
            if (a->compare_run[k] == ri->id) snprintf(side, sizeof side, "%d:", k + 2);
        snprintf(name, sizeof name, "%s%s%s%s%s", side,
                 ri->id == a->session.current_run ? "*" : "", numbered ? "" : num,
                 numbered ? "" : " ", ri->label);
        x += draw_text(y + 1, x, end - x, a->utf8 ? "━ " : "- ", attr);
        x += draw_text(y + 1, x, end - x, name, attr);
        x += draw_text(y + 1, x, end - x, "  ", 0);
    }
}

void pane_chart_draw(tui_app *a, tui_rect r) {
    int focused = a->focus == PANE_CHART;
    char right[80];
    snprintf(right, sizeof right, "%s%s%s", a->chart_log ? "log " : "",
             a->chart_smooth ? "smoothed " : "", a->chart_all_runs ? "all runs" : "latest run");
    draw_title(r, "Loss (train line, eval marks)", right, focused);
    int chart_h = r.h - 3;
    if (chart_h < 3) return;
    chart_data d = {0};
    size_t first = a->chart_all_runs || a->session.n_runs == 0 ? 0 : a->session.n_runs - 1;
    for (size_t i = first; i < a->session.n_runs && d.n + 3 <= sizeof d.series / sizeof *d.series; i++) {
        int latest = i + 1 == a->session.n_runs;
        add_run(&d, &a->session.runs[i], run_color(i), latest, a->chart_smooth || !latest);
    }
    tui_chart chart = {0};
    tui_chart_opts o = {.log_y = a->chart_log, .braille = a->utf8};
    if (tui_chart_render(d.series, d.n, &o, r.w - 1, chart_h, &chart) == 0)
        draw_chart_cells(&chart, r.y + 1, r.x);
    tui_chart_release(&chart);
    for (size_t i = 0; i < d.n_owned; i++) free(d.owned[i]);
    draw_numbers(a, r, r.y + 1 + chart_h);
}

int pane_chart_key(tui_app *a, tui_key k) {
    if (k.is_key) return 0;
    switch (k.code) {
    case 'l': a->chart_log = !a->chart_log; return 1;
    case 's': a->chart_smooth = !a->chart_smooth; return 1;
    case 'a': a->chart_all_runs = !a->chart_all_runs; return 1;
    }
    return 0;
}
