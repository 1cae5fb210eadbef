/* Pane rectangles for the workbench (see layout.h for the rules). */
#include "layout.h"

#include <string.h>

#include "textwrap.h"

static tui_rect rect(int y, int x, int h, int w) { return (tui_rect){y, x, h, w}; }

static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void tui_layout_compute(int cols, int rows, int zoom, tui_layout *out) {
    tui_layout_compute_message(cols, rows, zoom, 1, out);
}

int tui_message_rows(const char *text, int cols, int *cut) {
    size_t n = text && text[0] ? tui_wrap(text, strlen(text), cols, NULL, 0) : 1;
    if (cut) *cut = n > TUI_MESSAGE_ROWS_MAX;
    return n > TUI_MESSAGE_ROWS_MAX ? TUI_MESSAGE_ROWS_MAX : (int)n;
}

void tui_layout_compute_message(int cols, int rows, int zoom, int message_rows, tui_layout *out) {
    memset(out, 0, sizeof *out);
    if (cols < TUI_MIN_COLS || rows < TUI_MIN_ROWS) {
        out->too_small = 1;
        return;
    }
    const int body = rows - 2, extra = clamp_int(message_rows, 1, TUI_MESSAGE_ROWS_MAX) - 1;
    out->status = rect(0, 0, 1, cols);
    out->hints = rect(rows - 1 - extra, 0, 1 + extra, cols);

    const tui_rect whole_body = rect(1, 0, body - extra, cols);
    switch (zoom) {
    case TUI_ZOOM_CHART: out->chart = whole_body; return;
    case TUI_ZOOM_CHAT: out->chat = whole_body; return;
    case TUI_ZOOM_CONSOLE: out->console = whole_body; return;
    default: break;
    }

    const int console_h = body / 4 > 6 ? body / 4 : 6;
    const int top = body - console_h;
    const int config_w = clamp_int(cols * 3 / 10, 30, 40);
    const int chart_h = top / 2;
    out->console = rect(1 + top, 0, console_h - extra, cols);
    out->config = rect(1, 0, top, config_w);
    out->chart = rect(1, config_w, chart_h, cols - config_w);
    out->chat = rect(1 + chart_h, config_w, top - chart_h, cols - config_w);
}

static int width_of(const char *s) { return s ? tui_text_width(s, strlen(s)) : 0; }

/* Columns of the fields marked shown, separators included. */
static int shown_width(const tui_line_field *f, size_t n) {
    int w = 0, any = 0;
    for (size_t i = 0; i < n; i++) {
        if (!f[i].shown) continue;
        if (any) w += width_of(f[i].sep);
        w += width_of(f[i].text);
        any = 1;
    }
    return w;
}

int tui_line_fit(tui_line_field *f, size_t n, int cols) {
    for (size_t i = 0; i < n; i++) f[i].shown = i < TUI_LINE_FIELDS_MAX && f[i].text && f[i].text[0];
    if (n > TUI_LINE_FIELDS_MAX) n = TUI_LINE_FIELDS_MAX;
    int w = shown_width(f, n);
    while (w > cols) {
        size_t drop = n;
        for (size_t i = 0; i < n; i++) /* the largest number; of equal ones the last */
            if (f[i].shown && f[i].priority > 0 && (drop == n || f[i].priority >= f[drop].priority))
                drop = i;
        if (drop == n) break; /* only priority 0 is left */
        f[drop].shown = 0;
        w = shown_width(f, n);
    }
    return w;
}

/* Appends s to out[*o, cap) without cutting a character; returns 0 when all of it fit. */
static int append(char *out, size_t cap, size_t *o, const char *s) {
    if (!s) return 0;
    size_t len = strlen(s), room = cap - 1 - *o, take = len;
    if (take > room) { /* cut at a character boundary */
        take = room;
        while (take > 0 && ((unsigned char)s[take] & 0xC0) == 0x80) take--;
    }
    memcpy(out + *o, s, take);
    *o += take;
    out[*o] = '\0';
    return take < len;
}

int tui_line_join(tui_line_field *f, size_t n, int cols, char *out, size_t cap) {
    tui_line_fit(f, n, cols);
    return tui_line_text(f, n, out, cap);
}

int tui_line_text(const tui_line_field *f, size_t n, char *out, size_t cap) {
    if (cap == 0) return 0;
    if (n > TUI_LINE_FIELDS_MAX) n = TUI_LINE_FIELDS_MAX;
    size_t o = 0;
    out[0] = '\0';
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (!f[i].shown) continue;
        if ((any && append(out, cap, &o, f[i].sep)) || append(out, cap, &o, f[i].text)) break;
        any = 1;
    }
    return width_of(out);
}
