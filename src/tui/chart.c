/* Line chart rendered to text on a tui_canvas, EMA smoothing and axis labels. */
#include "chart.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"
#include "textwrap.h"

#define LABEL_MAX 7    /* longest axis label, in characters (all ASCII) */
#define NO_DATA "no data yet"

/* ---- axis labels -------------------------------------------------------------------- */

/* Formats v (a number already scaled) with `suffix` at 3 significant digits, fewer when
 * that is too long; 1 when a form of at most LABEL_MAX characters was found. With
 * no_exponent a form in e-notation is refused (the caller then tries a larger unit). */
static int format_significant(double v, const char *suffix, int no_exponent, char *out,
                              size_t cap) {
    for (int prec = 3; prec >= 1; prec--) {
        const int n = snprintf(out, cap, "%.*g%s", prec, v, suffix);
        if (n < 0 || n > LABEL_MAX) continue;
        if (no_exponent && strchr(out, 'e')) return 0;
        return 1;
    }
    return 0;
}

/* The label of v in out (cap ≥ 16), at most LABEL_MAX characters. */
static void axis_label(double v, char *out, size_t cap) {
    if (isnan(v)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == 0.0) { /* -0 too */
        snprintf(out, cap, "0");
        return;
    }
    /* Below 1000: plain %g (e-notation for tiny values), unless rounding reached 1000. */
    if (fabs(v) < 1000.0 && format_significant(v, "", 0, out, cap) && !strstr(out, "e+"))
        return;
    static const char *const units[] = {"k", "M", "G", "T"};
    double scaled = v;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        scaled /= 1000.0;
        if (format_significant(scaled, units[u], 1, out, cap)) return;
    }
    for (int prec = 2; prec >= 1; prec--) { /* %.1g is at most "-2e+308", 7 characters */
        const int n = snprintf(out, cap, "%.*g", prec, v);
        if (n >= 0 && n <= LABEL_MAX) return;
    }
}

void tui_format_duration(double s, char *buf, size_t cap) {
    if (cap == 0) return;
    if (!isfinite(s) || s < 0) snprintf(buf, cap, "-");
    else if (s < 60) snprintf(buf, cap, "%.1fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(fmod(s, 3600) / 60));
}

int tui_format_axis(double v, char *buf, size_t cap) {
    if (cap == 0) return 0;
    char label[32];
    axis_label(v, label, sizeof label);
    size_t n = strlen(label);
    if (n > cap - 1) n = cap - 1;
    memcpy(buf, label, n);
    buf[n] = '\0';
    return (int)n;
}

/* ---- smoothing ---------------------------------------------------------------------- */

void tui_smooth_ema(const double *y, size_t n, double weight, double *out) {
    if (!(weight >= 0.0)) weight = 0.0; /* NaN too */
    double last = 0.0, weight_pow = 1.0; /* weight^k after k finite inputs */
    double smoothed = NAN, sum = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const double v = y[i];
        if (isfinite(v)) {
            k++;
            if (weight >= 1.0) { /* the limit weight -> 1: the running mean */
                sum += v;
                smoothed = sum / (double)k;
            } else {
                last = weight * last + (1.0 - weight) * v;
                weight_pow *= weight;
                smoothed = last / (1.0 - weight_pow);
            }
        }
        out[i] = smoothed;
    }
}

/* ---- scales ------------------------------------------------------------------------- */

/* A value range of the plot, in plotted units (log10 y with log_y). */
typedef struct range {
    double lo, hi;
} range;

/* Point i of series s in plotted units; 0 when it is not plottable (non-finite, or
 * y ≤ 0 with log_y). */
static int plotted_point(const tui_series *s, size_t i, int log_y, double *x, double *y) {
    const double px = s->x ? s->x[i] : (double)i;
    double py = s->y[i];
    if (!isfinite(px) || !isfinite(py)) return 0;
    if (log_y) {
        if (py <= 0.0) return 0;
        py = log10(py);
    }
    *x = px;
    *y = py;
    return 1;
}

/* The x and y ranges of every plottable point; 0 when there is none. */
static int data_ranges(const tui_series *s, size_t n_series, int log_y, range *xr,
                       range *yr) {
    int any = 0;
    for (size_t k = 0; k < n_series; k++) {
        if (!s[k].y) continue;
        for (size_t i = 0; i < s[k].n; i++) {
            double x, y;
            if (!plotted_point(&s[k], i, log_y, &x, &y)) continue;
            if (!any) {
                *xr = (range){x, x};
                *yr = (range){y, y};
                any = 1;
            }
            xr->lo = fmin(xr->lo, x);
            xr->hi = fmax(xr->hi, x);
            yr->lo = fmin(yr->lo, y);
            yr->hi = fmax(yr->hi, y);
        }
    }
    return any;
}

/* Widens a flat linear range by ±1% of its value, or ±1 when the value is 0 (a side that
 * would overflow stays where it is). */
static void widen_flat(range *r) {
    const double d = r->lo != 0.0 ? fabs(r->lo) * 0.01 : 1.0;
    if (isfinite(r->lo - d)) r->lo -= d;
    if (isfinite(r->hi + d)) r->hi += d;
}

/* The plotted y range: data padded by 5% each side; a flat range widened by ±1% of the
 * real value (in log units with log_y). A padding that would overflow is left out. */
static range y_scale(range r, int log_y) {
    if (r.lo == r.hi) {
        if (!log_y) {
            widen_flat(&r);
        } else {
            r.lo += log10(0.99);
            r.hi += log10(1.01);
        }
        return r;
    }
    const double pad = 0.05 * (r.hi * 0.5 - r.lo * 0.5) * 2.0;
    if (isfinite(r.lo - pad) && isfinite(r.hi + pad)) {
        r.lo -= pad;
        r.hi += pad;
    }
    return r;
}

/* Where v lies in r, from 0 (lo) to 1 (hi); halves avoid overflow on huge ranges. */
static double fraction(double v, range r) {
    return (v * 0.5 - r.lo * 0.5) / (r.hi * 0.5 - r.lo * 0.5);
}

/* The value at fraction t of r (inverse of fraction). */
static double value_at(double t, range r) { return r.lo + t * (r.hi * 0.5 - r.lo * 0.5) * 2.0; }

/* Rounds t * (n_px - 1) to a pixel in [0, n_px) (NaN gives 0). */
static int to_pixel(double t, int n_px) {
    double p = round(t * (double)(n_px - 1));
    if (!(p >= 0.0)) p = 0.0;
    if (p > (double)(n_px - 1)) p = (double)(n_px - 1);
    return (int)p;
}

/* ---- plotting ----------------------------------------------------------------------- */

/* Draws every series onto the canvas with the given scales. */
static void plot_series(tui_canvas *cv, const tui_series *s, size_t n_series, int log_y,
                        range xr, range yr) {
    const int w = tui_canvas_width_px(cv), h = tui_canvas_height_px(cv);
    for (size_t k = 0; k < n_series; k++) {
        if (!s[k].y) continue;
        int have_prev = 0, px_prev = 0, py_prev = 0;
        for (size_t i = 0; i < s[k].n; i++) {
            double x, y;
            if (!plotted_point(&s[k], i, log_y, &x, &y)) {
                have_prev = 0; /* a gap breaks the line */
                continue;
            }
            const int px = to_pixel(fraction(x, xr), w);
            const int py = to_pixel(1.0 - fraction(y, yr), h);
            if (s[k].points || !have_prev)
                tui_canvas_set(cv, px, py, s[k].color);
            else
                tui_canvas_line(cv, px_prev, py_prev, px, py, s[k].color);
            have_prev = 1;
            px_prev = px;
            py_prev = py;
        }
    }
}

/* ---- text assembly ------------------------------------------------------------------ */

/* A line being built into a buffer of cap bytes (3 per column + 1: never overflows). */
typedef struct line_buf {
    char *p;
    size_t n, cap;
} line_buf;

static void put_str(line_buf *b, const char *s) {
    const size_t len = strlen(s);
    if (b->n + len >= b->cap) return; /* cannot happen with cap = 3 * cols + 1 */
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void put_repeat(line_buf *b, const char *s, int times) {
    for (int i = 0; i < times; i++) put_str(b, s);
}

/* The characters of the frame, in braille (UTF-8 box drawing) or ASCII mode. */
typedef struct frame_chars {
    const char *axis, *tick, *corner, *rule;
} frame_chars;

static const frame_chars frame_utf8 = {"│", "┤", "└", "─"};
static const frame_chars frame_ascii = {"|", "+", "+", "-"};

/* The geometry shared by the rendering steps. */
typedef struct chart_geom {
    int cols;
    int plot_rows;   /* rows of the plot area: rows - 2 */
    int label_w;     /* width of the y label column */
    int plot_x;      /* first plot column: label_w + 1 */
    int plot_w;      /* plot columns: cols - plot_x */
    char y_label[3][LABEL_MAX + 1]; /* top, middle, bottom ("" when not shown) */
    int y_label_row[3];             /* their rows, -1 when not shown */
} chart_geom;

/* Chooses the three y labels and their rows: top (row 0) and bottom (last plot row) show
 * the range ends, the middle one the midpoint of the range, on the row its pixel falls in
 * (left out when that is the top or bottom row). */
static void choose_y_labels(chart_geom *g, range yr, int log_y, int px_h) {
    const int last = g->plot_rows - 1;
    const int mid = to_pixel(0.5, g->plot_rows * px_h) / px_h;
    const double values[3] = {yr.hi, value_at(0.5, yr), yr.lo};
    const int label_rows[3] = {0, (mid > 0 && mid < last) ? mid : -1, last > 0 ? last : -1};
    g->label_w = 0;
    for (int k = 0; k < 3; k++) {
        g->y_label_row[k] = label_rows[k];
        g->y_label[k][0] = '\0';
        if (label_rows[k] < 0) continue;
        const double v = log_y ? pow(10.0, values[k]) : values[k];
        const int n = tui_format_axis(v, g->y_label[k], sizeof g->y_label[k]);
        if (n > g->label_w) g->label_w = n;
    }
}

/* The y label shown on plot row r, or NULL. */
static const char *y_label_of_row(const chart_geom *g, int r) {
    for (int k = 0; k < 3; k++)
        if (g->y_label_row[k] == r) return g->y_label[k];
    return NULL;
}

/* Plot row r: label, axis, and the canvas row (or blanks with the "no data yet" note). */
static void build_plot_row(line_buf *b, const chart_geom *g, const frame_chars *f,
                           const tui_canvas *cv, int r, char *cells, size_t cells_cap) {
    const char *label = y_label_of_row(g, r);
    const int label_len = label ? (int)strlen(label) : 0;
    put_repeat(b, " ", g->label_w - label_len);
    if (label) put_str(b, label);
    put_str(b, label ? f->tick : f->axis);
    if (cv) {
        tui_canvas_row(cv, r, cells, cells_cap);
        put_str(b, cells);
        return;
    }
    /* No data: blanks, with the note centred on the middle row. */
    const int note_w = (int)strlen(NO_DATA) < g->plot_w ? (int)strlen(NO_DATA) : g->plot_w;
    if (r != (g->plot_rows - 1) / 2) {
        put_repeat(b, " ", g->plot_w);
        return;
    }
    const int left = (g->plot_w - note_w) / 2;
    put_repeat(b, " ", left);
    memcpy(cells, NO_DATA, (size_t)note_w);
    cells[note_w] = '\0';
    put_str(b, cells);
    put_repeat(b, " ", g->plot_w - left - note_w);
}

/* Copies an ASCII label into the line at column (= byte) `at`. */
static void place_text(line_buf *b, int at, const char *text) {
    memcpy(b->p + at, text, strlen(text));
}

/* The x label row: first x under the first plot column, last x ending at the right edge,
 * and the midpoint of the range centred on the column its pixel falls in when that leaves
 * a 2-column gap on both sides. The last label is left out when it would not leave a
 * 1-column gap after the first (the first one shifts left if it would overrun the row). */
static void build_x_labels(line_buf *b, const chart_geom *g, range xr, int px_w) {
    put_repeat(b, " ", g->cols); /* all ASCII from here on: a column is a byte */
    char first[16], last[16], middle[16];
    const int n_first = tui_format_axis(xr.lo, first, sizeof first);
    const int n_last = tui_format_axis(xr.hi, last, sizeof last);
    int first_at = g->plot_x;
    if (first_at + n_first > g->cols) first_at = g->cols - n_first;
    place_text(b, first_at, first);
    const int first_end = first_at + n_first;
    const int last_at = g->cols - n_last;
    if (last_at < first_end + 1) return;
    place_text(b, last_at, last);
    const int mid_col = g->plot_x + to_pixel(0.5, g->plot_w * px_w) / px_w;
    const int n_mid = tui_format_axis(value_at(0.5, xr), middle, sizeof middle);
    const int mid_at = mid_col - (n_mid - 1) / 2;
    if (mid_at >= first_end + 2 && mid_at + n_mid + 2 <= last_at) place_text(b, mid_at, middle);
}

/* ---- render ------------------------------------------------------------------------- */

void tui_chart_release(tui_chart *c) {
    if (!c) return;
    if (c->lines)
        for (int r = 0; r < c->rows; r++) free(c->lines[r]);
    free(c->lines);
    free(c->colors);
    memset(c, 0, sizeof *c);
}

/* Allocates out's rows lines of 3 * cols + 1 bytes each and the colours (zeroed). */
static int chart_alloc(tui_chart *out, int cols, int rows) {
    out->cols = cols;
    out->rows = rows;
    out->lines = calloc((size_t)rows, sizeof *out->lines);
    out->colors = calloc((size_t)rows * (size_t)cols, sizeof *out->colors);
    if (!out->lines || !out->colors) return -1;
    for (int r = 0; r < rows; r++) {
        out->lines[r] = malloc(3 * (size_t)cols + 1);
        if (!out->lines[r]) return -1;
        out->lines[r][0] = '\0';
    }
    return 0;
}

/* Writes every line of out (allocated by chart_alloc) and the plot cells' colours: the plot
 * rows from the canvas (NULL: no data), the x axis, and the x labels (xr NULL: none).
 * cells is scratch space of 3 * cols + 1 bytes. */
static void write_lines(tui_chart *out, const chart_geom *g, const frame_chars *f,
                        const tui_canvas *cv, const range *xr, int px_w, char *cells) {
    const size_t line_cap = 3 * (size_t)out->cols + 1;
    for (int r = 0; r < g->plot_rows; r++) {
        line_buf b = {out->lines[r], 0, line_cap};
        build_plot_row(&b, g, f, cv, r, cells, line_cap);
        if (!cv) continue;
        int *colors = out->colors + (size_t)r * (size_t)out->cols + (size_t)g->plot_x;
        for (int c = 0; c < g->plot_w; c++) colors[c] = tui_canvas_cell_color(cv, c, r);
    }
    line_buf axis = {out->lines[out->rows - 2], 0, line_cap};
    put_repeat(&axis, " ", g->label_w);
    put_str(&axis, f->corner);
    put_repeat(&axis, f->rule, g->plot_w);
    line_buf labels = {out->lines[out->rows - 1], 0, line_cap};
    if (xr)
        build_x_labels(&labels, g, *xr, px_w);
    else
        put_repeat(&labels, " ", g->cols);
}

int tui_chart_render(const tui_series *s, size_t n_series, const tui_chart_opts *o, int cols,
                     int rows, tui_chart *out) {
    memset(out, 0, sizeof *out);
    if (rows < 3 || cols < 12 || (n_series > 0 && !s)) return -1;
    const int log_y = o ? o->log_y : 0, braille = o ? o->braille != 0 : 1;
    const int px_w = braille ? 2 : 1, px_h = braille ? 4 : 2;
    const frame_chars *f = braille ? &frame_utf8 : &frame_ascii;

    chart_geom g = {.cols = cols, .plot_rows = rows - 2};
    range xr = {0, 0}, yr = {0, 0};
    const int have_data = data_ranges(s, n_series, log_y, &xr, &yr);
    if (have_data) {
        if (xr.lo == xr.hi) widen_flat(&xr);
        yr = y_scale(yr, log_y);
        choose_y_labels(&g, yr, log_y, px_h);
    } else {
        g.label_w = 0;
        for (int k = 0; k < 3; k++) g.y_label_row[k] = -1;
    }
    g.plot_x = g.label_w + 1;
    g.plot_w = cols - g.plot_x;

    tui_canvas *cv = NULL;
    char *cells = malloc(3 * (size_t)cols + 1);
    if (!cells || chart_alloc(out, cols, rows) != 0) goto oom;
    if (have_data) {
        cv = tui_canvas_new(g.plot_w, g.plot_rows, braille);
        if (!cv) goto oom;
        plot_series(cv, s, n_series, log_y, xr, yr);
    }

    write_lines(out, &g, f, cv, have_data ? &xr : NULL, px_w, cells);

    tui_canvas_free(cv);
    free(cells);
    return 0;
oom:
    tui_canvas_free(cv);
    free(cells);
    tui_chart_release(out);
    return -1;
}
