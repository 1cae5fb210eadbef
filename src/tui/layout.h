/* redit TUI — where each pane goes on a cols × rows terminal (no curses).
 *
 *   row 0            status line (full width)
 *   rows 1..         config (left) | chart (right, top half)
 *                                  | chat  (right, bottom half)
 *                    console (full width, bottom of the body)
 *   last row         key hints (full width)
 */
#ifndef REDIT_TUI_LAYOUT_H
#define REDIT_TUI_LAYOUT_H

/* A rectangle of terminal cells: top-left (y, x), h rows, w columns. All zero = hidden. */
typedef struct tui_rect {
    int y, x, h, w;
} tui_rect;

enum { TUI_MIN_COLS = 80, TUI_MIN_ROWS = 24 };

/* Which pane, if any, takes the whole body. */
enum { TUI_ZOOM_NONE = 0, TUI_ZOOM_CHART, TUI_ZOOM_CHAT, TUI_ZOOM_CONSOLE };

typedef struct tui_layout {
    int too_small; /* the terminal is under TUI_MIN_COLS × TUI_MIN_ROWS: every rect is zero */
    tui_rect status, config, chart, chat, console, hints;
} tui_layout;

/* Computes the panes of a cols × rows terminal into *out (every field written).
 * too_small when cols < 80 or rows < 24 (then all rects are zero). Otherwise: status is
 * row 0 and hints the last row, both full width and 1 high; the body is the rows − 2 rows
 * from y 1. console: full width at the bottom of the body, h = max(6, body / 4). Above it
 * (top = body − console.h rows): config at x 0, w = clamp(cols * 3 / 10, 30, 40); chart right
 * of it, h = top / 2, w = cols − config.w; chat below the chart with the rest of top.
 * zoom (TUI_ZOOM_*): that pane takes the whole body (y 1, x 0, h body, w cols) and config
 * and the other panes are zero; status and hints stay. An unknown zoom counts as none. */
void tui_layout_compute(int cols, int rows, int zoom, tui_layout *out);

#endif
