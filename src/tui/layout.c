/* Pane rectangles for the workbench (see layout.h for the rules). */
#include "layout.h"

#include <string.h>

static tui_rect rect(int y, int x, int h, int w) { return (tui_rect){y, x, h, w}; }

static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void tui_layout_compute(int cols, int rows, int zoom, tui_layout *out) {
    memset(out, 0, sizeof *out);
    if (cols < TUI_MIN_COLS || rows < TUI_MIN_ROWS) {
        out->too_small = 1;
        return;
    }
    const int body = rows - 2;
    out->status = rect(0, 0, 1, cols);
    out->hints = rect(rows - 1, 0, 1, cols);

    const tui_rect whole_body = rect(1, 0, body, cols);
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
    out->console = rect(1 + top, 0, console_h, cols);
    out->config = rect(1, 0, top, config_w);
    out->chart = rect(1, config_w, chart_h, cols - config_w);
    out->chat = rect(1 + chart_h, config_w, top - chart_h, cols - config_w);
}
