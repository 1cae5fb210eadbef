/* redit TUI — a line chart rendered to text, plus the helpers a loss chart needs
 * (TensorBoard-style smoothing, short axis labels). No curses: the drawing code copies
 * the lines and colours into a window.
 *
 * Layout of a cols × rows chart (24 × 8 here):
 *
 *   10.5┤⠢⡀                ⠐   rows 0 .. rows-3: the plot area. y labels (top, middle,
 *       │ ⠈⠢⡀                  bottom) right-aligned in a column as wide as the widest
 *       │   ⠈⠢⡀                label, then the axis column: "┤" beside a label, "│"
 *      5┤     ⠌⠢⡀              elsewhere
 *       │       ⠈⠢⡀
 *   -0.5┤         ⠈⠢⠤⠤⠤⠤⠤⠤⠤⠤
 *       └───────────────────   rows-2: the x axis
 *        0       18.5     37   rows-1: first x under the first plot column, last x at
 *                              the right edge, the middle x when there is room
 *
 * ASCII mode (braille = 0) uses '|' for the axis, '+' for a tick and the corner, '-' for
 * the x axis, and the canvas's ASCII cells. */
#ifndef REDIT_TUI_CHART_H
#define REDIT_TUI_CHART_H

#include <stddef.h>

/* One data series, borrowed for the duration of tui_chart_render. */
typedef struct tui_series {
    const double *x, *y; /* (n) each; x may be NULL: the x of point i is i */
    size_t n;
    int color;  /* colour number given to the cells it draws (≥ 1; 0 leaves cells uncoloured) */
    int points; /* 0: consecutive points joined by lines; 1: marks only (e.g. eval points) */
} tui_series;

typedef struct tui_chart_opts {
    int log_y;   /* plot log10(y): only y > 0 is drawn, labels show the real values */
    int braille; /* braille cells (2×4 pixels); 0: ASCII cells (1×2 pixels) */
} tui_chart_opts;

/* A rendered chart, owned by the caller and released with tui_chart_release. */
typedef struct tui_chart {
    int cols, rows;
    char **lines; /* (rows) UTF-8, NUL-terminated, each exactly cols terminal columns */
    int *colors;  /* (rows, cols) colour of each cell; 0 for axes, labels and empty cells */
} tui_chart;

/* Renders the series into *out (overwritten without being released first: release a
 * previous chart yourself). Returns 0, or -1 on OOM or when rows < 3 or cols < 12 — then
 * *out is left zeroed. o may be NULL (linear y, braille).
 * Scale: over every plottable point of every series, i.e. finite x and y (and y > 0 with
 * log_y): x spans min..max x, y spans min..max y (of log10 y with log_y) padded by 5% on
 * each side; a flat range is widened by ±1% of its value (±1 when it is 0) instead. Points
 * map to pixels by rounding; a line series joins consecutive plottable points with
 * tui_canvas_line, and a point that is not plottable (NaN, or y ≤ 0 with log_y) breaks
 * the line. With no plottable point at all the plot area shows a centred "no data yet"
 * and there are no labels. */
int tui_chart_render(const tui_series *s, size_t n_series, const tui_chart_opts *o, int cols,
                     int rows, tui_chart *out);

/* Frees what tui_chart_render allocated and zeroes *c; safe on a zeroed chart. */
void tui_chart_release(tui_chart *c);

/* Debiased exponential moving average, as TensorBoard smooths scalars:
 * last = weight * last + (1 - weight) * y[i], out[i] = last / (1 - weight^k) after k finite
 * inputs. A non-finite y[i] is skipped: out[i] repeats the previous smoothed value, or is
 * NaN before the first finite one. weight should be in [0, 1): below 0 (or NaN) counts as 0
 * (no smoothing), 1 or more gives the limit, the running mean. out (n) may be y itself. */
void tui_smooth_ema(const double *y, size_t n, double weight, double *out);

/* Writes a short axis label for v into buf (cap ≥ 8 holds any label) and returns its
 * length: at most 7 characters, 3 significant digits when they fit: "0", "12.3", "0.0123",
 * "1.2e-05", "1.5k" (k, M, G, T suffixes from 1000 up), "-250", "nan", "inf". With a
 * smaller cap the label is cut to cap - 1 characters (nothing written when cap is 0). */
int tui_format_axis(double v, char *buf, size_t cap);

/* Writes a duration of s seconds into buf (cap bytes, NUL-terminated when cap > 0): "4.1s"
 * under a minute, "2m05s" under an hour, "1h02m" above; "-" when s is negative or not
 * finite. */
void tui_format_duration(double s, char *buf, size_t cap);

#endif
