/* The braille / ASCII pixel canvas: a bit mask and a colour per cell. */
#include "canvas.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct tui_canvas {
    int cols, rows;    /* size in terminal cells */
    int px_w, px_h;    /* pixels per cell: 2×4 (braille) or 1×2 (ASCII) */
    int braille;
    uint8_t *mask;     /* (rows, cols) pixel bits of each cell */
    int *color;        /* (rows, cols) last colour ≥ 1 drawn into each cell, 0 = none */
};

/* Braille dot bits by [x within the cell][y within the cell]. */
static const uint8_t braille_bit[2][4] = {{0x01, 0x02, 0x04, 0x40}, {0x08, 0x10, 0x20, 0x80}};

/* ASCII cells by mask: bit 1 = top pixel, bit 2 = bottom pixel. */
static const char ascii_cell[4] = {' ', '\'', '.', ':'};

tui_canvas *tui_canvas_new(int cols, int rows, int braille) {
    if (cols < 1 || rows < 1) return NULL;
    const int px_w = braille ? 2 : 1, px_h = braille ? 4 : 2;
    if (cols > INT_MAX / px_w || rows > INT_MAX / px_h) return NULL;
    const size_t n = (size_t)cols * (size_t)rows;
    if (n > SIZE_MAX / sizeof(int)) return NULL;
    tui_canvas *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->mask = calloc(n, sizeof *c->mask);
    c->color = calloc(n, sizeof *c->color);
    if (!c->mask || !c->color) {
        tui_canvas_free(c);
        return NULL;
    }
    c->cols = cols;
    c->rows = rows;
    c->px_w = px_w;
    c->px_h = px_h;
    c->braille = braille != 0;
    return c;
}

void tui_canvas_free(tui_canvas *c) {
    if (!c) return;
    free(c->mask);
    free(c->color);
    free(c);
}

void tui_canvas_clear(tui_canvas *c) {
    const size_t n = (size_t)c->cols * (size_t)c->rows;
    memset(c->mask, 0, n * sizeof *c->mask);
    memset(c->color, 0, n * sizeof *c->color);
}

int tui_canvas_width_px(const tui_canvas *c) { return c->cols * c->px_w; }

int tui_canvas_height_px(const tui_canvas *c) { return c->rows * c->px_h; }

void tui_canvas_set(tui_canvas *c, int x, int y, int color) {
    if (x < 0 || y < 0 || x >= c->cols * c->px_w || y >= c->rows * c->px_h) return;
    const size_t cell = (size_t)(y / c->px_h) * (size_t)c->cols + (size_t)(x / c->px_w);
    const int dx = x % c->px_w, dy = y % c->px_h;
    c->mask[cell] |= c->braille ? braille_bit[dx][dy] : (uint8_t)(1u << dy);
    if (color >= 1) c->color[cell] = color;
}

/* The plain Bresenham walk (all octants) in 64-bit arithmetic, so any two int ends work
 * without overflow; every point walked lies between the ends, so it fits an int. */
static void bresenham(tui_canvas *c, long long x0, long long y0, long long x1, long long y1,
                      int color) {
    const long long dx = llabs(x1 - x0), dy = -llabs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    long long err = dx + dy;
    for (;;) {
        tui_canvas_set(c, (int)x0, (int)y0, color);
        if (x0 == x1 && y0 == y1) break;
        const long long e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

/* Liang–Barsky: clips the segment to [lo_x, hi_x] × [lo_y, hi_y] in place; 0 when
 * nothing of it is inside. */
static int clip_segment(double *x0, double *y0, double *x1, double *y1, double lo_x,
                        double hi_x, double lo_y, double hi_y) {
    const double dx = *x1 - *x0, dy = *y1 - *y0;
    const double p[4] = {-dx, dx, -dy, dy};
    const double q[4] = {*x0 - lo_x, hi_x - *x0, *y0 - lo_y, hi_y - *y0};
    double t0 = 0.0, t1 = 1.0;
    for (int k = 0; k < 4; k++) {
        if (p[k] == 0.0) {
            if (q[k] < 0.0) return 0; /* parallel to this edge and outside it */
            continue;
        }
        const double t = q[k] / p[k];
        if (p[k] < 0.0) {
            if (t > t1) return 0;
            if (t > t0) t0 = t;
        } else {
            if (t < t0) return 0;
            if (t < t1) t1 = t;
        }
    }
    const double ox = *x0, oy = *y0;
    *x0 = ox + t0 * dx;
    *y0 = oy + t0 * dy;
    *x1 = ox + t1 * dx;
    *y1 = oy + t1 * dy;
    return 1;
}

void tui_canvas_line(tui_canvas *c, int x0, int y0, int x1, int y1, int color) {
    const long long w = tui_canvas_width_px(c), h = tui_canvas_height_px(c);
    const long long steps = llabs((long long)x1 - x0) > llabs((long long)y1 - y0)
                                ? llabs((long long)x1 - x0)
                                : llabs((long long)y1 - y0);
    /* Short lines are walked exactly, pixels outside being ignored. */
    if (steps <= 4 * (w + h)) {
        bresenham(c, x0, y0, x1, y1, color);
        return;
    }
    double fx0 = x0, fy0 = y0, fx1 = x1, fy1 = y1;
    if (!clip_segment(&fx0, &fy0, &fx1, &fy1, -1.0, (double)w, -1.0, (double)h)) return;
    bresenham(c, llround(fx0), llround(fy0), llround(fx1), llround(fy1), color);
}

/* Appends the UTF-8 encoding of braille cell `mask` (U+2800 + mask) at p; returns bytes. */
static size_t put_braille(char *p, uint8_t mask) {
    const unsigned cp = 0x2800u + mask;
    p[0] = (char)(0xE0u | (cp >> 12));
    p[1] = (char)(0x80u | ((cp >> 6) & 0x3Fu));
    p[2] = (char)(0x80u | (cp & 0x3Fu));
    return 3;
}

size_t tui_canvas_row(const tui_canvas *c, int row, char *buf, size_t cap) {
    if (cap < 3 * (size_t)c->cols + 1 || row < 0 || row >= c->rows) {
        if (cap >= 1) buf[0] = '\0';
        return 0;
    }
    const uint8_t *m = c->mask + (size_t)row * (size_t)c->cols;
    size_t n = 0;
    for (int col = 0; col < c->cols; col++) {
        if (!c->braille)
            buf[n++] = ascii_cell[m[col] & 3];
        else if (m[col] == 0)
            buf[n++] = ' ';
        else
            n += put_braille(buf + n, m[col]);
    }
    buf[n] = '\0';
    return n;
}

int tui_canvas_cell_color(const tui_canvas *c, int col, int row) {
    if (col < 0 || row < 0 || col >= c->cols || row >= c->rows) return 0;
    return c->color[(size_t)row * (size_t)c->cols + (size_t)col];
}
