/* redit TUI — where each pane goes on a cols × rows terminal (no curses).
 *
 *   row 0            status line (full width)
 *   rows 1..         config (left) | chart (right, top half)
 *                                  | chat  (right, bottom half)
 *                    console (full width, bottom of the body)
 *   last row         key hints (full width), or a notice: a long one takes up to
 *                    TUI_MESSAGE_ROWS_MAX rows, taken from the console
 */
#ifndef REDIT_TUI_LAYOUT_H
#define REDIT_TUI_LAYOUT_H

#include <stddef.h>

/* A rectangle of terminal cells: top-left (y, x), h rows, w columns. All zero = hidden. */
typedef struct tui_rect {
    int y, x, h, w;
} tui_rect;

enum { TUI_MIN_COLS = 80, TUI_MIN_ROWS = 24 };

/* The most rows a notice in the hints row may take (word-wrapped). */
enum { TUI_MESSAGE_ROWS_MAX = 4 };

/* Which pane, if any, takes the whole body. */
enum { TUI_ZOOM_NONE = 0, TUI_ZOOM_CHART, TUI_ZOOM_CHAT, TUI_ZOOM_CONSOLE };

typedef struct tui_layout {
    int too_small; /* the terminal is under TUI_MIN_COLS × TUI_MIN_ROWS: every rect is zero */
    tui_rect status, config, chart, chat, console;
    tui_rect hints; /* the key hints' row, or the rows of the notice shown instead */
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

/* Rows a notice takes on a terminal of cols columns: its lines word-wrapped by tui_wrap,
 * at most TUI_MESSAGE_ROWS_MAX (1 for NULL or ""). *cut (may be NULL) is set to 1 when the
 * notice needs more rows than that (its last row then ends in "…"), else 0. */
int tui_message_rows(const char *text, int cols, int *cut);

/* tui_layout_compute with a notice of message_rows rows (clamped to 1..TUI_MESSAGE_ROWS_MAX)
 * in place of the hints: hints is the bottom message_rows rows, and the rows above the last
 * one come from the bottom of the console (from the zoomed pane's when one is zoomed); every
 * other pane is as tui_layout_compute has it. The console keeps at least 3 rows (its 6 less
 * the 3 a notice may take). */
void tui_layout_compute_message(int cols, int rows, int zoom, int message_rows, tui_layout *out);

/* ---- one line of fields laid out by priority (the status line, the training line) ---- */

/* A field of such a line. The caller's table lists the fields in the order they are drawn;
 * priority says which go first when the line is short. */
typedef struct tui_line_field {
    const char *text;     /* NULL or "": absent (never shown) */
    const char *sep;      /* drawn before the field when another shown field precedes it
                             (NULL: none) */
    int priority;         /* 0 is the most important; a larger number is dropped sooner */
    int shown;            /* out: 1 when the field is on the line */
} tui_line_field;

enum { TUI_LINE_FIELDS_MAX = 24 };

/* Chooses the fields of f[0, n) that fit a line of cols columns (widths from
 * tui_text_width, a field's separator counted when a shown field precedes it) and sets
 * f[i].shown. While the shown fields are too wide, the field with the largest priority
 * number is dropped (of equal ones the last in the table); fields of priority 0 are never
 * dropped (the caller cuts what does not fit at the edge). Returns the columns the shown
 * fields take. n above TUI_LINE_FIELDS_MAX counts as TUI_LINE_FIELDS_MAX (the rest are not
 * shown). */
int tui_line_fit(tui_line_field *f, size_t n, int cols);

/* Writes the fields of f[0, n) marked shown, each after its separator when a shown field
 * precedes it, into out (cap bytes, NUL-terminated when cap > 0; a longer text is cut at a
 * character boundary). Returns the columns of the text written. */
int tui_line_text(const tui_line_field *f, size_t n, char *out, size_t cap);

/* tui_line_fit for cols columns, then tui_line_text: the line as it fits. */
int tui_line_join(tui_line_field *f, size_t n, int cols, char *out, size_t cap);

#endif
