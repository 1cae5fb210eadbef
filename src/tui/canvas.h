/* redit TUI — a pixel canvas drawn with braille cells or ASCII (no curses).
 *
 * Braille mode: a cell is U+2800 plus an 8-bit mask, 2×4 pixels per cell; the left column
 * top→bottom is bits 0x01 0x02 0x04 0x40, the right column 0x08 0x10 0x20 0x80.
 * ASCII mode (terminals without UTF-8): 1×2 pixels per cell, drawn ' ' (none), '\'' (top),
 * '.' (bottom), ':' (both).
 * Pixel (0, 0) is the top-left; x grows right, y grows down. Each cell also remembers a
 * colour number (the last colour ≥ 1 drawn into it), for the caller to map to a curses
 * colour pair. */
#ifndef REDIT_TUI_CANVAS_H
#define REDIT_TUI_CANVAS_H

#include <stddef.h>

typedef struct tui_canvas tui_canvas;

/* A blank canvas of cols × rows terminal cells (braille != 0: braille mode, else ASCII).
 * NULL when cols or rows < 1, when the pixel size would overflow an int, or on OOM. The
 * caller owns it and frees it with tui_canvas_free. */
tui_canvas *tui_canvas_new(int cols, int rows, int braille);
void tui_canvas_free(tui_canvas *c); /* NULL-safe */

/* Blanks every pixel and colour. */
void tui_canvas_clear(tui_canvas *c);

/* Size in pixels: cols × 2 and rows × 4 (braille), cols × 1 and rows × 2 (ASCII). */
int tui_canvas_width_px(const tui_canvas *c);
int tui_canvas_height_px(const tui_canvas *c);

/* Sets pixel (x, y); out-of-range pixels are ignored. color ≥ 1 becomes the cell's colour
 * (the last one drawn wins); color ≤ 0 sets the pixel and leaves the colour alone. */
void tui_canvas_set(tui_canvas *c, int x, int y, int color);

/* Draws the Bresenham line from (x0, y0) to (x1, y1), both ends included, with
 * tui_canvas_set (so the part outside the canvas is clipped). A line much longer than the
 * canvas is first clipped to it geometrically, so far-away ends cost nothing. */
void tui_canvas_line(tui_canvas *c, int x0, int y0, int x1, int y1, int color);

/* Writes row `row` of cells as UTF-8 into buf, NUL-terminated, and returns its length in
 * bytes (without the NUL). Every cell is one terminal column: an empty cell is a space
 * (in braille mode too, not U+2800), a braille cell is 3 bytes. buf needs cap ≥
 * 3 * cols + 1; with less, or a row out of range, it returns 0 and writes "" (when
 * cap ≥ 1). */
size_t tui_canvas_row(const tui_canvas *c, int row, char *buf, size_t cap);

/* The colour of cell (col, row): the last colour ≥ 1 drawn into it, 0 when none was (or
 * the cell is out of range). */
int tui_canvas_cell_color(const tui_canvas *c, int col, int row);

#endif
