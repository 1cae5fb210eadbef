/* The configuration pane: every field of tui_config grouped (edits, training, data, chat),
 * chosen with Up/Down and edited in place. Typing is validated at every key through
 * tui_config_set on a copy, so the pane shows the error before Enter is pressed. */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "textwrap.h"
#include "tui_config.h"

#define LABEL_W 15

static int field_count(void) { return (int)tui_config_field_count(); }

/* Field i applies to the configured method (the others are hidden: sites for LoRA, ...). */
static int shown(const tui_app *a, int i) {
    return tui_config_field_applies(&a->session.config, tui_config_field((size_t)i));
}

/* Display rows: a group header before the first shown field of each group. Row r of the
 * list maps to field index (or -1 for a header, with *group set). */
static int row_field(const tui_app *a, int row, const char **group) {
    const char *prev = NULL;
    int r = 0;
    for (int i = 0; i < field_count(); i++) {
        if (!shown(a, i)) continue;
        const tui_field *f = tui_config_field((size_t)i);
        if (!prev || strcmp(prev, f->group)) {
            if (r == row) {
                *group = f->group;
                return -1;
            }
            r++;
            prev = f->group;
        }
        if (r == row) return i;
        r++;
    }
    return -2; /* past the end */
}

static int field_row(const tui_app *a, int field) {
    const char *prev = NULL;
    int r = 0;
    for (int i = 0; i < field_count(); i++) {
        if (!shown(a, i)) continue;
        const tui_field *f = tui_config_field((size_t)i);
        if (!prev || strcmp(prev, f->group)) {
            r++;
            prev = f->group;
        }
        if (i == field) return r;
        r++;
    }
    return r;
}

/* The field `steps` shown fields after (steps > 0) or before (< 0) field `from`, wrapping
 * around when wrap is set, else stopping at the first or last shown field. */
static int step_field(const tui_app *a, int from, int steps, int wrap) {
    const int n = field_count(), dir = steps < 0 ? -1 : 1;
    int at = from;
    for (int left = steps < 0 ? -steps : steps; left > 0; left--) {
        int next = at;
        do {
            next += dir;
            if (next < 0 || next >= n) {
                if (!wrap) return at;
                next = (next + n) % n;
            }
        } while (!shown(a, next) && next != at);
        at = next;
    }
    return at;
}

/* Moves the selection off a field the method hides (a method changed from the console). */
static void fix_selection(tui_app *a) {
    if (!shown(a, a->cfg_sel)) a->cfg_sel = step_field(a, a->cfg_sel, 1, 1);
}

/* Validates the edit buffer against a copy of the configuration. */
static void check_edit(tui_app *a) {
    tui_config copy = a->session.config;
    rd_error err = {0};
    const tui_field *f = tui_config_field((size_t)a->cfg_sel);
    a->cfg_buf[a->cfg_len] = '\0';
    if (tui_config_set(&copy, f, a->cfg_buf, &err)) snprintf(a->cfg_error, sizeof a->cfg_error, "%s", err.msg);
    else a->cfg_error[0] = '\0';
}

/* Draws text cut to w columns, keeping its end when it does not fit ("…/datasets/x.jsonl"). */
static void draw_value(int y, int x, int w, const char *v, int attr, int utf8) {
    size_t len = strlen(v);
    int width = tui_text_width(v, len);
    if (width <= w) {
        draw_text(y, x, w, v, attr);
        return;
    }
    const char *p = v;
    while (*p && tui_text_width(p, strlen(p)) > w - 1) {
        p++;
        while (((unsigned char)*p & 0xC0) == 0x80) p++;
    }
    draw_text(y, x, 1, utf8 ? "…" : "<", attr);
    draw_text(y, x + 1, w - 1, p, attr);
}

/* The text under the list: the error of the value being typed, else the selected field's
 * help; *is_error says which. NULL when there is none. */
static const char *note_text(const tui_app *a, int *is_error) {
    *is_error = a->cfg_editing && a->cfg_error[0];
    if (*is_error) return a->cfg_error;
    const tui_field *sel = tui_config_field((size_t)a->cfg_sel);
    return sel ? sel->help : NULL;
}

enum { NOTE_LINES_MAX = 12 };

/* Draws text word-wrapped into rows y.. of the pane (w columns from x), at most max rows;
 * when it needs more, the last row shown ends with "…" (never happens for the error: the
 * caller gives it the rows it needs). */
static void draw_wrapped(int y, int x, int w, int max, const char *text, int attr, int utf8) {
    tui_span lines[NOTE_LINES_MAX];
    size_t len = strlen(text);
    size_t n = tui_wrap(text, len, w, lines, NOTE_LINES_MAX);
    size_t shown = n < (size_t)max ? n : (size_t)max;
    if (shown > NOTE_LINES_MAX) shown = NOTE_LINES_MAX;
    for (size_t i = 0; i < shown; i++) {
        char row[512];
        size_t l = lines[i].len < sizeof row - 4 ? lines[i].len : sizeof row - 4;
        memcpy(row, text + lines[i].start, l);
        row[l] = '\0';
        if (i + 1 == shown && shown < n) { /* more than fits: say so */
            size_t keep = tui_text_fit(row, l, w - 1, NULL);
            snprintf(row + keep, sizeof row - keep, "%s", utf8 ? "…" : "~");
        }
        draw_text(y + (int)i, x, w, row, attr);
    }
}

/* Rows the note under the list needs at width w: all of an error's lines (it is never cut,
 * up to NOTE_LINES_MAX), at most 3 of a help text; at least 1. */
static int note_rows(const char *text, int is_error, int w) {
    if (!text) return 1;
    size_t n = tui_wrap(text, strlen(text), w, NULL, 0);
    size_t cap = is_error ? NOTE_LINES_MAX : 3;
    return (int)(n < 1 ? 1 : n > cap ? cap : n);
}

void pane_config_draw(tui_app *a, tui_rect r) {
    int focused = a->focus == PANE_CONFIG;
    draw_title(r, "Configuration", focused ? "F6 train" : "F2", focused);
    int is_error;
    const char *note = note_text(a, &is_error);
    int note_h = note_rows(note, is_error, r.w - 2);
    /* title, list, the note (wrapped), the line saying what Enter does: the list keeps one
     * row at least and the note takes the rest */
    if (note_h > r.h - 3) note_h = r.h - 3;
    int list_h = r.h - 2 - note_h;
    if (list_h < 1 || note_h < 1) return;
    fix_selection(a);
    int sel_row = field_row(a, a->cfg_sel);
    if (sel_row < a->cfg_top + 1) a->cfg_top = sel_row - 1 < 0 ? 0 : sel_row - 1;
    if (sel_row >= a->cfg_top + list_h) a->cfg_top = sel_row - list_h + 1;
    int value_x = r.x + 1 + LABEL_W, value_w = r.w - LABEL_W - 2;
    for (int i = 0; i < list_h; i++) {
        const char *group = NULL;
        int f = row_field(a, a->cfg_top + i, &group);
        int y = r.y + 1 + i;
        if (f == -2) break;
        if (f == -1) {
            draw_text(y, r.x + 1, r.w - 2, group, A_BOLD | A_UNDERLINE);
            continue;
        }
        const tui_field *fd = tui_config_field((size_t)f);
        int sel = f == a->cfg_sel;
        int attr = sel && focused ? A_REVERSE : 0;
        draw_blank(y, r.x, r.w, attr);
        draw_text(y, r.x + 2, LABEL_W - 1, fd->label, attr);
        if (sel && a->cfg_editing) {
            a->cfg_buf[a->cfg_len] = '\0';
            int err_attr = a->cfg_error[0] && has_colors() ? COLOR_PAIR(PAIR_ERROR) : 0;
            draw_blank(y, value_x, value_w, 0);
            draw_value(y, value_x, value_w - 1, a->cfg_buf, err_attr | A_UNDERLINE, a->utf8);
            int used = tui_text_width(a->cfg_buf, a->cfg_len);
            move(y, value_x + (used < value_w - 1 ? used : value_w - 1));
        } else {
            char v[600];
            tui_config_get(&a->session.config, fd, v, sizeof v);
            if (fd->kind == TUI_FIELD_TEXT && !v[0]) snprintf(v, sizeof v, "-");
            draw_value(y, value_x, value_w, v, attr, a->utf8);
        }
    }
    /* help or error of the selected field, wrapped */
    int y = r.y + 1 + list_h;
    if (is_error) {
        int attr = has_colors() ? COLOR_PAIR(PAIR_ERROR) : A_BOLD;
        draw_wrapped(y, r.x + 1, r.w - 2, note_h, note, attr, a->utf8);
        draw_text(y + note_h, r.x + 1, r.w - 2, "Esc cancels the edit", 0);
    } else if (note) {
        draw_wrapped(y, r.x + 1, r.w - 2, note_h, note, has_colors() ? COLOR_PAIR(PAIR_DIM) : 0, a->utf8);
        if (a->cfg_editing)
            draw_text(y + note_h, r.x + 1, r.w - 2, "Enter keeps it, Esc cancels",
                      has_colors() ? COLOR_PAIR(PAIR_OK) : 0);
    }
    if (a->cfg_editing && a->focus == PANE_CONFIG) {
        /* put the cursor back in the edited field (drawing the help moved it) */
        int row = field_row(a, a->cfg_sel) - a->cfg_top;
        int used = tui_text_width(a->cfg_buf, a->cfg_len);
        move(r.y + 1 + row, value_x + (used < value_w - 1 ? used : value_w - 1));
    }
}

/* Applies text to the selected field, with the message in the hints row. */
static int apply(tui_app *a, const char *text) {
    const tui_field *f = tui_config_field((size_t)a->cfg_sel);
    rd_error err = {0};
    if (app_set_field(a, f->key, text, &err)) {
        app_notify(a, 1, "%s", err.msg);
        return -1;
    }
    char v[600];
    tui_config_get(&a->session.config, f, v, sizeof v);
    app_notify(a, 0, "%s = %s", f->key, v);
    return 0;
}

/* Bools toggle; choices move by dir. */
static int cycle(tui_app *a, int dir) {
    const tui_field *f = tui_config_field((size_t)a->cfg_sel);
    char v[600];
    tui_config_get(&a->session.config, f, v, sizeof v);
    if (f->kind == TUI_FIELD_BOOL) return apply(a, strcmp(v, "on") ? "on" : "off"), 1;
    if (f->kind != TUI_FIELD_CHOICE) return 0;
    int n = 0, cur = 0;
    while (f->choices[n]) {
        if (!strcmp(f->choices[n], v)) cur = n;
        n++;
    }
    if (n == 0) return 0; /* (a choice field always has choices) */
    apply(a, f->choices[((cur + dir) % n + n) % n]);
    return 1;
}

static void begin_edit(tui_app *a) {
    const tui_field *f = tui_config_field((size_t)a->cfg_sel);
    tui_config_get(&a->session.config, f, a->cfg_buf, sizeof a->cfg_buf);
    a->cfg_len = strlen(a->cfg_buf);
    a->cfg_editing = 1;
    check_edit(a);
}

static int edit_key(tui_app *a, tui_key k) {
    if (!k.is_key && k.code == 27) { /* Esc: cancel */
        a->cfg_editing = 0;
        return 1;
    }
    if ((!k.is_key && (k.code == '\r' || k.code == '\n')) || (k.is_key && k.code == KEY_ENTER)) {
        a->cfg_buf[a->cfg_len] = '\0';
        if (a->cfg_error[0]) {
            app_notify(a, 1, "%s", a->cfg_error);
            return 1;
        }
        if (apply(a, a->cfg_buf) == 0) a->cfg_editing = 0;
        return 1;
    }
    if ((k.is_key && k.code == KEY_BACKSPACE) || (!k.is_key && (k.code == 127 || k.code == 8))) {
        while (a->cfg_len > 0) { /* one UTF-8 character */
            a->cfg_len--;
            if (((unsigned char)a->cfg_buf[a->cfg_len] & 0xC0) != 0x80) break;
        }
    } else if (!k.is_key && k.code == 21) { /* Ctrl-U */
        a->cfg_len = 0;
    } else if (!k.is_key && k.code >= 32) {
        char mb[8];
        int n = (int)wctomb(mb, (wchar_t)k.code);
        if (n > 0 && a->cfg_len + (size_t)n < sizeof a->cfg_buf - 1) {
            memcpy(a->cfg_buf + a->cfg_len, mb, (size_t)n);
            a->cfg_len += (size_t)n;
        }
    } else {
        return 1; /* other keys do nothing while editing */
    }
    check_edit(a);
    return 1;
}

int pane_config_key(tui_app *a, tui_key k) {
    if (a->cfg_editing) return edit_key(a, k);
    fix_selection(a);
    if (k.is_key) {
        switch (k.code) {
        case KEY_UP: a->cfg_sel = step_field(a, a->cfg_sel, -1, 1); return 1;
        case KEY_DOWN: a->cfg_sel = step_field(a, a->cfg_sel, 1, 1); return 1;
        case KEY_PPAGE: a->cfg_sel = step_field(a, a->cfg_sel, -8, 0); return 1;
        case KEY_NPAGE: a->cfg_sel = step_field(a, a->cfg_sel, 8, 0); return 1;
        case KEY_HOME: a->cfg_sel = step_field(a, field_count() - 1, 1, 1); return 1;
        case KEY_END: a->cfg_sel = step_field(a, 0, -1, 1); return 1;
        case KEY_LEFT: return cycle(a, -1);
        case KEY_RIGHT: return cycle(a, +1);
        case KEY_ENTER: break;
        default: return 0;
        }
    }
    if (!k.is_key && k.code == 'k') return a->cfg_sel = step_field(a, a->cfg_sel, -1, 1), 1;
    if (!k.is_key && k.code == 'j') return a->cfg_sel = step_field(a, a->cfg_sel, 1, 1), 1;
    if (!k.is_key && k.code == ' ') return cycle(a, +1);
    if ((k.is_key && k.code == KEY_ENTER) || (!k.is_key && (k.code == '\r' || k.code == '\n'))) {
        const tui_field *f = tui_config_field((size_t)a->cfg_sel);
        if (f->kind == TUI_FIELD_BOOL || f->kind == TUI_FIELD_CHOICE) return cycle(a, +1);
        begin_edit(a);
        return 1;
    }
    return 0;
}
