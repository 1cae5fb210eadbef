/* The status line (model, edits, trainable parameters, session, training state), the key
 * hints row and the help overlay. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "chart.h"
#include "layout.h"
#include "textwrap.h"

/* "3,072" */
static void with_commas(char *buf, size_t cap, size_t n) {
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%zu", n);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

/* The job's state, highlighted at the right end of the status line: "TRAINING 12/40 · ETA
 * 2m05s", with the worker's word when it is not simply training ("… · stopping at the next
 * step", "… · evaluating… (Esc again to skip)"); "TRAINING" before the first step. */
static void state_text(const tui_app *a, char *buf, size_t cap) {
    char eta[16];
    tui_format_duration(a->last.eta, eta, sizeof eta);
    if (a->training && a->last.step > 0 && a->train_status[0] && strcmp(a->train_status, "training"))
        snprintf(buf, cap, "TRAINING %d/%d · ETA %s · %s", a->last.step, a->last.total_steps, eta,
                 a->train_status);
    else if (a->training && a->last.step > 0)
        snprintf(buf, cap, "TRAINING %d/%d · ETA %s", a->last.step, a->last.total_steps, eta);
    else if (a->training)
        snprintf(buf, cap, "TRAINING");
    else if (a->chatting)
        snprintf(buf, cap, "ANSWERING");
    else if (a->evaluating)
        snprintf(buf, cap, "MC EVAL · %.400s", a->mc_status);
    else
        snprintf(buf, cap, "idle");
}

/* The status line's fields in the order they are drawn, and which go first when the
 * terminal is narrow (the largest priority number first): the job's state and a broken
 * model's warning always stay (cut at the edge when they alone are too wide), then the
 * session and the edits' sites stay longest; the ratio to the model's size and the model's
 * format go first. The state is drawn at the right end. */
enum { ST_MODEL, ST_MODEL_DETAIL, ST_WARNING, ST_SITES, ST_KIND, ST_PARAMS, ST_RATIO, ST_SESSION,
       ST_STATE, ST_COUNT };
static const struct {
    const char *sep;
    int priority;
} STATUS_FIELDS[ST_COUNT] = {
    [ST_MODEL] = {"", 4},     [ST_MODEL_DETAIL] = {" · ", 7}, [ST_WARNING] = {"", 0},
    [ST_SITES] = {" │ ", 3},  [ST_KIND] = {", ", 6},          [ST_PARAMS] = {" │ ", 5},
    [ST_RATIO] = {" · ", 8},  [ST_SESSION] = {" │ ", 2},      [ST_STATE] = {"  ", 0},
};

void pane_status_draw(tui_app *a) {
    const tui_config *c = &a->session.config;
    char text[ST_COUNT][512];
    char num[32], ratio[32];
    snprintf(text[ST_MODEL], sizeof text[0], "%s", a->model_name);
    snprintf(text[ST_MODEL_DETAIL], sizeof text[0], "%s", a->model_detail);
    /* a model with non-finite weights says so with its name (which then stays as long) */
    text[ST_WARNING][0] = '\0';
    if (a->model_warning[0]) {
        snprintf(text[ST_WARNING], sizeof text[0], "%s %s NON-FINITE WEIGHTS: %s", a->model_name,
                 a->utf8 ? "⚠" : "!", a->model_warning);
        text[ST_MODEL][0] = text[ST_MODEL_DETAIL][0] = '\0';
    }
    /* the method and its shape: "ffn, layers all" + "scale+bias" (RED), "lora r8 q,v, layers
     * all" + "alpha 8", "ia3, layers all" */
    if (!strcmp(c->method, "lora")) {
        snprintf(text[ST_SITES], sizeof text[0], "lora r%d %s, layers %s", c->rank,
                 c->lora_targets, c->layers);
        char alpha[32];
        tui_format_real(c->lora_alpha, alpha, sizeof alpha);
        snprintf(text[ST_KIND], sizeof text[0], "alpha %s", alpha);
    } else if (!strcmp(c->method, "ia3")) {
        snprintf(text[ST_SITES], sizeof text[0], "ia3, layers %s", c->layers);
        text[ST_KIND][0] = '\0';
    } else if (!strcmp(c->method, "full")) {
        snprintf(text[ST_SITES], sizeof text[0], "full fine-tuning");
        text[ST_KIND][0] = '\0';
    } else {
        snprintf(text[ST_SITES], sizeof text[0], "%s, layers %s", c->sites, c->layers);
        snprintf(text[ST_KIND], sizeof text[0], "%s", c->scale && c->bias ? "scale+bias" : c->scale ? "scale" : "bias");
    }
    with_commas(num, sizeof num, a->edit_params);
    snprintf(text[ST_PARAMS], sizeof text[0], "%s params", num);
    text[ST_RATIO][0] = '\0';
    if (!strcmp(c->method, "full")) {
        snprintf(text[ST_RATIO], sizeof text[0], "every weight");
    } else if (a->edit_ratio > 0) {
        with_commas(ratio, sizeof ratio, (size_t)llround(a->edit_ratio));
        snprintf(text[ST_RATIO], sizeof text[0], "1/%s of the model", ratio);
    }
    snprintf(text[ST_SESSION], sizeof text[0], "session %s", a->session.name);
    state_text(a, text[ST_STATE], sizeof text[0]);

    tui_line_field f[ST_COUNT];
    for (int i = 0; i < ST_COUNT; i++)
        f[i] = (tui_line_field){text[i], STATUS_FIELDS[i].sep, STATUS_FIELDS[i].priority, 0};
    tui_line_fit(f, ST_COUNT, COLS - 2); /* a blank column at each end */
    f[ST_STATE].shown = 0;              /* (drawn on its own at the right end) */
    char line[1400];
    tui_line_text(f, ST_COUNT, line, sizeof line);

    int attr = has_colors() ? COLOR_PAIR(PAIR_TITLE) : A_REVERSE;
    int sw = tui_text_width(text[ST_STATE], strlen(text[ST_STATE]));
    if (sw > COLS - 2) sw = COLS - 2;
    draw_blank(0, 0, COLS, attr);
    draw_text(0, 1, COLS - sw - 4, line, attr | A_BOLD);
    int state_attr = attr;
    if (a->training) state_attr = (int)((has_colors() ? COLOR_PAIR(PAIR_FOCUS) : A_REVERSE) | A_BOLD);
    draw_text(0, COLS - sw - 1, sw, text[ST_STATE], state_attr);
}

/* The key hints, the most needed kept longest when the terminal is narrow. */
static const struct {
    const char *text;
    int priority;
} HINTS[] = {
    {"F1 help", 0}, {"F2-F5 panes", 4}, {"F6 train", 1}, {"Esc stop", 2}, {"F7/F8 α", 6},
    {"F9 save", 5}, {"F10 quit", 3},    {"Tab next pane", 7},
};

/* The notice word-wrapped on the rows of r; when it needs more, the last row ends in "…". */
static void message_draw(const tui_app *a, tui_rect r) {
    int attr = a->message_is_error ? (has_colors() ? COLOR_PAIR(PAIR_ERROR) : 0) | A_BOLD : 0;
    tui_span lines[TUI_MESSAGE_ROWS_MAX];
    size_t len = strlen(a->message);
    size_t n = tui_wrap(a->message, len, r.w, lines, TUI_MESSAGE_ROWS_MAX);
    for (int i = 0; i < r.h && (size_t)i < n; i++) {
        char line[sizeof a->message + 8];
        size_t take = lines[i].len;
        int last_cut = i == r.h - 1 && n > (size_t)r.h;
        if (last_cut) take = tui_text_fit(a->message + lines[i].start, take, r.w - 1, NULL);
        snprintf(line, sizeof line, "%.*s%s", (int)take, a->message + lines[i].start,
                 last_cut ? "…" : "");
        draw_text(r.y + i, r.x, r.w, line, attr);
    }
}

void pane_hints_draw(tui_app *a) {
    const tui_rect r = a->layout.hints;
    for (int i = 0; i < r.h; i++) draw_blank(r.y + i, r.x, r.w, 0);
    if (a->message[0]) {
        message_draw(a, r);
        return;
    }
    int y = r.y + r.h - 1;
    enum { N = sizeof HINTS / sizeof *HINTS };
    tui_line_field f[N];
    for (size_t i = 0; i < N; i++) f[i] = (tui_line_field){HINTS[i].text, "  ", HINTS[i].priority, 0};
    char line[256];
    tui_line_join(f, N, COLS, line, sizeof line);
    draw_text(y, 0, COLS, line, has_colors() ? COLOR_PAIR(PAIR_DIM) : 0);
}

/* Each line fits the box of an 80-column terminal: 74 columns (tests/cli/tui.sh looks for
 * the ends of the longest at 80×24), and the lines fit its 24 rows: 20 at most. */
static const char *const HELP[] = {
    "redit workbench — keys",
    "",
    "Everywhere",
    "  F1 or ?        this help (any key closes it)",
    "  F2 F3 F4 F5    focus: configuration, loss chart, chat, Lua console",
    "  Tab / S-Tab    next / previous pane (Tab completes in the console)",
    "  F6 or t        train with the configuration (a new run; old curves stay)",
    "  Esc            stop training after this step (best edits kept; Esc again",
    "                 skips its evaluation) / stop answers / stop the MC eval",
    "  F7 F8 / F9     edit strength α − / + 0.1 (chat) / save the session now",
    "  e              multiple-choice eval: base vs edits on the mc file (data)",
    "  F10 or q       quit (asks while training); Ctrl-C stops a job or chunk",
    "  z              zoom the focused pane / back",
    "Configuration    Up/Down choose, Enter edits (checked as you type; Enter",
    "                 keeps, Esc cancels), Space/Left/Right toggle or cycle",
    "Chart            l log scale, s smoothing, a all runs / this run only",
    "Chat             type a prompt, Enter: the base and edited answers side by",
    "                 side; PgUp/PgDn scroll; :compare 1 3 puts runs beside it",
    "Lua console      red.* and wb.* (wb.help() lists them); Up/Down history,",
    "                 Tab completes, PgUp/PgDn scroll",
};

void pane_help_draw(tui_app *a) {
    int n = (int)(sizeof HELP / sizeof *HELP);
    int w = 84 < COLS - 2 ? 84 : COLS - 2, h = n + 2 < LINES - 2 ? n + 2 : LINES - 2;
    int y0 = (LINES - h) / 2, x0 = (COLS - w) / 2;
    int attr = has_colors() ? COLOR_PAIR(PAIR_TITLE) : A_REVERSE;
    for (int i = 0; i < h; i++) draw_blank(y0 + i, x0, w, attr);
    for (int i = 0; i < n && i < h - 2; i++)
        draw_text(y0 + 1 + i, x0 + 2, w - 4, HELP[i], attr | (i == 0 ? A_BOLD : 0));
    (void)a;
}
