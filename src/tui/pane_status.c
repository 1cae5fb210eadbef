/* The status line (model, edits, trainable parameters, session, training state), the key
 * hints row and the help overlay. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
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

void pane_status_draw(tui_app *a) {
    const tui_config *c = &a->session.config;
    double ratio = a->edit_ratio;
    size_t n = a->edit_params;
    char params[32], state[96];
    with_commas(params, sizeof params, n);
    if (a->training)
        snprintf(state, sizeof state, "TRAINING %d/%d", a->last.step, a->last.total_steps);
    else if (a->chatting)
        snprintf(state, sizeof state, "ANSWERING");
    else
        snprintf(state, sizeof state, "idle");
    char ratio_text[32] = "-";
    if (ratio > 0) with_commas(ratio_text, sizeof ratio_text, (size_t)llround(ratio));
    char line[1400], warning[400] = "";
    /* a model with non-finite weights says so next to its name, where it is not cut off */
    if (a->model_warning[0])
        snprintf(warning, sizeof warning, " │ %s NON-FINITE WEIGHTS: %s", a->utf8 ? "⚠" : "!",
                 a->model_warning);
    snprintf(line, sizeof line, " %s%s │ %s, layers %s%s │ %s params · 1/%s of the model │ session %s",
             a->model_desc, warning, c->sites, c->layers,
             c->scale && c->bias ? ", scale+bias" : c->scale ? ", scale" : ", bias", params, ratio_text,
             a->session.name);
    int attr = has_colors() ? COLOR_PAIR(PAIR_TITLE) : A_REVERSE;
    /* the state stays visible at the right end; the rest is cut before it */
    int sw = (int)strlen(state) + 2;
    draw_blank(0, 0, COLS, attr);
    draw_text(0, 0, COLS - sw - 1, line, attr | A_BOLD);
    int state_attr = attr;
    if (a->training) state_attr = (int)((has_colors() ? COLOR_PAIR(PAIR_FOCUS) : A_REVERSE) | A_BOLD);
    draw_text(0, COLS - sw + 1, sw - 1, state, state_attr);
}

void pane_hints_draw(tui_app *a) {
    int y = LINES - 1;
    draw_blank(y, 0, COLS, 0);
    if (a->message[0]) {
        int attr = a->message_is_error ? (has_colors() ? COLOR_PAIR(PAIR_ERROR) : 0) | A_BOLD : 0;
        draw_text(y, 0, COLS, a->message, attr);
        return;
    }
    static const char hints[] = "F1 help  F2-F5 panes  F6 train  Esc stop  F7/F8 α  F9 save  "
                                "F10 quit  Tab next pane";
    draw_text(y, 0, COLS, hints, has_colors() ? COLOR_PAIR(PAIR_DIM) : 0);
}

static const char *const HELP[] = {
    "redit workbench — keys",
    "",
    "Everywhere",
    "  F1 or ?        this help (any key closes it)",
    "  F2 F3 F4 F5    focus: configuration, loss chart, chat, Lua console",
    "  Tab / S-Tab    next / previous pane (Tab completes in the console)",
    "  F6 or t        train with the configuration (a new run; earlier curves stay)",
    "  Esc            stop training after this step (best edits kept; Esc again skips",
    "                 its evaluation) / stop answers",
    "  F7 / F8        edit strength α − / + 0.1 (chat)",
    "  F9             save the session now (also after each run and on quit)",
    "  F10 or q       quit (asks while training); Ctrl-C stops a job or Lua chunk",
    "  z              zoom the focused pane / back",
    "Configuration    Up/Down choose, Enter edit (validated as you type; Enter",
    "                 keeps, Esc cancels), Space/Left/Right toggle or cycle choices",
    "Chart            l log scale, s smoothing, a all runs / this run only",
    "Chat             type a prompt, Enter: base and edited answers side by side;",
    "                 PgUp/PgDn scroll the history",
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
