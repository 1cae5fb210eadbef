/* The TUI's pure text functions (no curses): column widths and word wrap
 * (src/tui/textwrap.c), the braille / ASCII pixel canvas (canvas.c), the text line chart,
 * EMA smoothing and axis labels (chart.c), and the pane layout (layout.c). Every expected
 * string and rectangle below is worked out by hand from the documented rules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../src/tui/canvas.h"
#include "../src/tui/chart.h"
#include "../src/tui/layout.h"
#include "../src/tui/textwrap.h"

static int width_of(const char *s) { return tui_text_width(s, strlen(s)); }

/* ---- widths ------------------------------------------------------------------------- */

static void test_width_ascii_and_utf8(void **state) {
    (void)state;
    assert_int_equal(width_of(""), 0);
    assert_int_equal(width_of("hello"), 5);
    assert_int_equal(width_of("\xc3\xa9"), 1);                 /* é */
    assert_int_equal(width_of("caf\xc3\xa9"), 4);              /* café */
    assert_int_equal(width_of("\xe6\x97\xa5\xe6\x9c\xac"), 4); /* 日本 */
    assert_int_equal(width_of("\xf0\x9f\x98\x80"), 2);         /* 😀 U+1F600 */
    assert_int_equal(width_of("e\xcc\x81"), 1);                /* e + combining acute */
    assert_int_equal(width_of("\xe2\xa3\xbf"), 1);             /* ⣿ braille */
    assert_int_equal(width_of("\xe2\x94\x80"), 1);             /* ─ box drawing */
}

static void test_width_invalid_and_control(void **state) {
    (void)state;
    assert_int_equal(width_of("\xff"), 1);
    assert_int_equal(width_of("a\xff" "b"), 3);
    assert_int_equal(width_of("\xe6\x97"), 2);     /* 日 cut short: two invalid bytes */
    assert_int_equal(width_of("\xe6\x97" "a"), 3); /* the 'a' is not swallowed */
    assert_int_equal(width_of("\xed\xa0\x80"), 3); /* an encoded surrogate: 3 bad bytes */
    assert_int_equal(width_of("a\tb\n"), 4);
    assert_int_equal(tui_text_width("a\0b", 3), 3); /* NUL counts as one column */

    int w = -1, printable = -1;
    assert_int_equal(tui_char_next("\xff" "a", 2, &w, &printable), 1);
    assert_int_equal(w, 1);
    assert_int_equal(printable, 0);
    assert_int_equal(tui_char_next("\t", 1, &w, &printable), 1);
    assert_int_equal(w, 1);
    assert_int_equal(printable, 0);
    assert_int_equal(tui_char_next("\xe6\x97\xa5x", 4, &w, &printable), 3);
    assert_int_equal(w, 2);
    assert_int_equal(printable, 1);
    assert_int_equal(tui_char_next("", 0, &w, &printable), 0);
    assert_int_equal(w, 0);
}

static void test_fit(void **state) {
    (void)state;
    int w = -1;
    assert_int_equal(tui_text_fit("abcdef", 6, 4, &w), 4);
    assert_int_equal(w, 4);
    assert_int_equal(tui_text_fit("abc", 3, 10, &w), 3);
    assert_int_equal(w, 3);
    /* 日本: 3 columns hold only 日; 4 hold both; 1 holds nothing. */
    const char *nihon = "\xe6\x97\xa5\xe6\x9c\xac";
    assert_int_equal(tui_text_fit(nihon, 6, 3, &w), 3);
    assert_int_equal(w, 2);
    assert_int_equal(tui_text_fit(nihon, 6, 4, &w), 6);
    assert_int_equal(w, 4);
    assert_int_equal(tui_text_fit(nihon, 6, 1, &w), 0);
    assert_int_equal(w, 0);
    /* A combining mark stays with its base; "é" is 2 bytes, then "x". */
    assert_int_equal(tui_text_fit("e\xcc\x81x", 4, 1, &w), 3);
    assert_int_equal(w, 1);
    assert_int_equal(tui_text_fit("\xc3\xa9x", 3, 1, NULL), 2);
    assert_int_equal(tui_text_fit("abc", 3, 0, &w), 0);
    assert_int_equal(tui_text_fit("abc", 3, -5, &w), 0);
    assert_int_equal(w, 0);
}

/* ---- wrap --------------------------------------------------------------------------- */

/* Wraps text at cols and checks the lines against expected[n_expected]. */
static void check_wrap(const char *text, int cols, const char *const *expected,
                       size_t n_expected) {
    const size_t len = strlen(text);
    const size_t n = tui_wrap(text, len, cols, NULL, 0); /* count first */
    assert_int_equal(n, n_expected);
    tui_span spans[32];
    assert_true(n <= 32);
    assert_int_equal(tui_wrap(text, len, cols, spans, 32), n);
    for (size_t i = 0; i < n; i++) {
        char line[128];
        assert_true(spans[i].start + spans[i].len <= len);
        snprintf(line, sizeof line, "%.*s", (int)spans[i].len, text + spans[i].start);
        assert_string_equal(line, expected[i]);
    }
}

static void test_wrap_english(void **state) {
    (void)state;
    static const char *const want[] = {"The quick", "brown fox", "jumps over", "the lazy",
                                       "dog"};
    check_wrap("The quick brown fox jumps over the lazy dog", 10, want, 5);
    static const char *const want_wide[] = {"The quick brown fox jumps over the lazy dog"};
    check_wrap("The quick brown fox jumps over the lazy dog", 80, want_wide, 1);
    /* A run of spaces at a break is dropped; inside a line it is kept. */
    static const char *const spaces[] = {"ab  cd", "ef"};
    check_wrap("ab  cd     ef", 7, spaces, 2);
    /* Leading spaces of a paragraph stay (indentation). */
    static const char *const indent[] = {"  one", "two"};
    check_wrap("  one two", 6, indent, 2);
    /* Trailing spaces that overflow disappear without an extra empty line. */
    static const char *const trailing[] = {"abc"};
    check_wrap("abc        ", 4, trailing, 1);
}

static void test_wrap_long_words(void **state) {
    (void)state;
    static const char *const want[] = {"a", "veryl", "ongwo", "rdher", "e b"};
    check_wrap("a verylongwordhere b", 5, want, 5);
    static const char *const exact[] = {"abcd", "efgh"};
    check_wrap("abcdefgh", 4, exact, 2);
    static const char *const narrow[] = {"a", "b", "c"};
    check_wrap("abc", 0, narrow, 3); /* cols < 1 counts as 1 */
}

static void test_wrap_newlines(void **state) {
    (void)state;
    static const char *const three_empty[] = {"", "", ""};
    check_wrap("\n\n", 10, three_empty, 3);
    static const char *const one_empty[] = {""};
    check_wrap("", 10, one_empty, 1);
    static const char *const paragraphs[] = {"first", "line", "", "second"};
    check_wrap("first line\n\nsecond", 6, paragraphs, 4);
    static const char *const trailing_nl[] = {"abc", ""};
    check_wrap("abc\n", 10, trailing_nl, 2);

    /* Spans are offsets into the text; '\n' is in none of them. */
    tui_span sp[3];
    assert_int_equal(tui_wrap("ab\n\ncd", 6, 10, sp, 3), 3);
    assert_int_equal(sp[0].start, 0);
    assert_int_equal(sp[0].len, 2);
    assert_int_equal(sp[1].start, 3);
    assert_int_equal(sp[1].len, 0);
    assert_int_equal(sp[2].start, 4);
    assert_int_equal(sp[2].len, 2);
    /* max smaller than the count: only max spans written, the total still returned. */
    tui_span one[1] = {{99, 99}};
    assert_int_equal(tui_wrap("ab\n\ncd", 6, 10, one, 1), 3);
    assert_int_equal(one[0].start, 0);
    assert_int_equal(one[0].len, 2);
}

static void test_wrap_cjk(void **state) {
    (void)state;
    /* 日本語テキスト: 7 double-width characters. At 5 columns two fit per line; the third
     * would straddle the edge, so it moves down. */
    const char *text = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\x86\xe3\x82\xad\xe3"
                       "\x82\xb9\xe3\x83\x88";
    static const char *const at5[] = {"\xe6\x97\xa5\xe6\x9c\xac", "\xe8\xaa\x9e\xe3\x83\x86",
                                      "\xe3\x82\xad\xe3\x82\xb9", "\xe3\x83\x88"};
    check_wrap(text, 5, at5, 4);
    static const char *const at7[] = {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                                      "\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9", "\xe3\x83\x88"};
    check_wrap(text, 7, at7, 3);
    /* "a日本" at 2 columns: 日 does not fit beside the 'a'. */
    static const char *const mixed[] = {"a", "\xe6\x97\xa5", "\xe6\x9c\xac"};
    check_wrap("a\xe6\x97\xa5\xe6\x9c\xac", 2, mixed, 3);
    /* A double-width character wider than the whole line still gets a line. */
    static const char *const too_wide[] = {"\xe6\x97\xa5", "\xe6\x9c\xac"};
    check_wrap("\xe6\x97\xa5\xe6\x9c\xac", 1, too_wide, 2);
    /* Every wrapped line of mixed text at odd widths fits its columns. */
    const char *mix = "RED \xe7\xb7\xa8\xe9\x9b\x86 edits \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa"
                      "\x9e hidden states \xf0\x9f\x98\x80 ok";
    for (int cols = 3; cols <= 15; cols += 2) {
        tui_span sp[64];
        const size_t n = tui_wrap(mix, strlen(mix), cols, sp, 64);
        assert_true(n > 0 && n <= 64);
        for (size_t i = 0; i < n; i++)
            assert_true(tui_text_width(mix + sp[i].start, sp[i].len) <= cols);
    }
}

/* ---- canvas ------------------------------------------------------------------------- */

/* Row `row` of the canvas as text (cap 3 * cols + 1). */
static const char *canvas_row(const tui_canvas *c, int row, char *buf, size_t cap) {
    tui_canvas_row(c, row, buf, cap);
    return buf;
}

static void test_canvas_braille_cells(void **state) {
    (void)state;
    char buf[64];
    tui_canvas *c = tui_canvas_new(3, 1, 1);
    assert_non_null(c);
    assert_int_equal(tui_canvas_width_px(c), 6);
    assert_int_equal(tui_canvas_height_px(c), 4);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "   "); /* empty: spaces */

    tui_canvas_set(c, 0, 0, 1);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "\xe2\xa0\x81  "); /* ⠁ */
    tui_canvas_clear(c);
    tui_canvas_set(c, 1, 3, 1);
    assert_int_equal(tui_canvas_row(c, 0, buf, sizeof buf), 5);
    assert_string_equal(buf, "\xe2\xa2\x80  "); /* ⢀ U+2880 */

    tui_canvas_clear(c);
    for (int y = 0; y < 4; y++)
        for (int x = 2; x < 4; x++) tui_canvas_set(c, x, y, 2);
    tui_canvas_set(c, 4, 2, 0); /* third cell, left column, third dot: 0x04 */
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), " \xe2\xa3\xbf\xe2\xa0\x84"); /* ⣿⠄ */
    assert_int_equal(tui_canvas_cell_color(c, 0, 0), 0);
    assert_int_equal(tui_canvas_cell_color(c, 1, 0), 2);
    assert_int_equal(tui_canvas_cell_color(c, 2, 0), 0); /* colour 0 keeps none */
    assert_int_equal(tui_canvas_cell_color(c, 3, 0), 0); /* out of range */

    /* Out-of-range pixels are ignored. */
    tui_canvas_clear(c);
    tui_canvas_set(c, -1, 0, 1);
    tui_canvas_set(c, 6, 0, 1);
    tui_canvas_set(c, 0, 4, 1);
    tui_canvas_set(c, 0, -1, 1);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "   ");
    tui_canvas_free(c);
}

static void test_canvas_each_dot(void **state) {
    (void)state;
    /* Every dot of one cell: left column 0x01 0x02 0x04 0x40, right 0x08 0x10 0x20 0x80. */
    static const char *const dot[2][4] = {
        {"\xe2\xa0\x81", "\xe2\xa0\x82", "\xe2\xa0\x84", "\xe2\xa1\x80"},  /* ⠁ ⠂ ⠄ ⡀ */
        {"\xe2\xa0\x88", "\xe2\xa0\x90", "\xe2\xa0\xa0", "\xe2\xa2\x80"}}; /* ⠈ ⠐ ⠠ ⢀ */
    char buf[8];
    tui_canvas *c = tui_canvas_new(1, 1, 1);
    assert_non_null(c);
    for (int x = 0; x < 2; x++)
        for (int y = 0; y < 4; y++) {
            tui_canvas_clear(c);
            tui_canvas_set(c, x, y, 1);
            assert_string_equal(canvas_row(c, 0, buf, sizeof buf), dot[x][y]);
        }
    tui_canvas_free(c);
}

static void test_canvas_colors_and_rows(void **state) {
    (void)state;
    char buf[64];
    tui_canvas *c = tui_canvas_new(2, 2, 1);
    assert_non_null(c);
    tui_canvas_set(c, 0, 0, 3);
    tui_canvas_set(c, 1, 1, 0); /* colour 0: the pixel, not the colour */
    assert_int_equal(tui_canvas_cell_color(c, 0, 0), 3);
    tui_canvas_set(c, 1, 2, 5); /* last colour drawn wins */
    assert_int_equal(tui_canvas_cell_color(c, 0, 0), 5);
    tui_canvas_set(c, 3, 7, 4); /* second row, second cell, bottom right: ⢀ */
    assert_int_equal(tui_canvas_cell_color(c, 1, 1), 4);
    assert_int_equal(tui_canvas_cell_color(c, 0, 1), 0);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "\xe2\xa0\xb1 "); /* ⠱ = 0x31 */
    assert_string_equal(canvas_row(c, 1, buf, sizeof buf), " \xe2\xa2\x80");

    /* Too small a buffer or a row out of range: "" and 0. */
    memset(buf, 'x', sizeof buf);
    assert_int_equal(tui_canvas_row(c, 0, buf, 6), 0); /* needs 3 * 2 + 1 = 7 */
    assert_string_equal(buf, "");
    assert_int_equal(tui_canvas_row(c, 0, buf, 7), 4);
    assert_int_equal(tui_canvas_row(c, 2, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(tui_canvas_row(c, -1, buf, sizeof buf), 0);

    tui_canvas_clear(c);
    assert_int_equal(tui_canvas_cell_color(c, 0, 0), 0);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "  ");
    tui_canvas_free(c);

    assert_null(tui_canvas_new(0, 1, 1));
    assert_null(tui_canvas_new(1, 0, 0));
    assert_null(tui_canvas_new(-3, 5, 1));
    tui_canvas_free(NULL);
}

static void test_canvas_lines(void **state) {
    (void)state;
    char buf[64];
    tui_canvas *c = tui_canvas_new(2, 1, 1);
    assert_non_null(c);
    /* A diagonal across 2×1 cells: (0,0) (1,1) | (2,2) (3,3) -> 0x01|0x10, 0x04|0x80. */
    tui_canvas_line(c, 0, 0, 3, 3, 1);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "\xe2\xa0\x91\xe2\xa2\x84"); /* ⠑⢄ */
    tui_canvas_clear(c);
    tui_canvas_line(c, 3, 3, 0, 0, 1); /* the same line drawn backwards */
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "\xe2\xa0\x91\xe2\xa2\x84");
    tui_canvas_clear(c);
    tui_canvas_line(c, -10, -10, 10, 10, 1); /* clipped */
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "\xe2\xa0\x91\xe2\xa2\x84");
    tui_canvas_clear(c);
    tui_canvas_line(c, INT_MIN, INT_MIN, INT_MAX, INT_MAX, 1); /* clipped first: fast */
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "\xe2\xa0\x91\xe2\xa2\x84");

    /* Horizontal (top dots 0x01|0x08 = ⠉) and vertical (left column = ⡇) lines. */
    tui_canvas_clear(c);
    tui_canvas_line(c, -1000000, 0, 1000000, 0, 1);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "\xe2\xa0\x89\xe2\xa0\x89");
    tui_canvas_clear(c);
    tui_canvas_line(c, 2, 0, 2, 3, 2);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), " \xe2\xa1\x87");
    assert_int_equal(tui_canvas_cell_color(c, 1, 0), 2);
    /* A single point. */
    tui_canvas_clear(c);
    tui_canvas_line(c, 1, 3, 1, 3, 1);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "\xe2\xa2\x80 ");
    /* Completely outside: nothing. */
    tui_canvas_clear(c);
    tui_canvas_line(c, 5, 0, 90, 40, 1);
    tui_canvas_line(c, -50, 100000, 50, 100000, 1);
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "  ");
    tui_canvas_free(c);

    /* A shallow line: (0,0)-(5,2) walks (0,0) (1,0) (2,1) (3,1) (4,2) (5,2). */
    c = tui_canvas_new(3, 1, 1);
    assert_non_null(c);
    tui_canvas_line(c, 0, 0, 5, 2, 1);
    /* cells: 0x01|0x08 = ⠉, 0x02|0x10 = ⠒, 0x04|0x20 = ⠤ */
    assert_string_equal(canvas_row(c, 0, buf, sizeof buf), "\xe2\xa0\x89\xe2\xa0\x92\xe2\xa0\xa4");
    tui_canvas_free(c);
}

static void test_canvas_ascii(void **state) {
    (void)state;
    char buf[32];
    tui_canvas *c = tui_canvas_new(4, 2, 0);
    assert_non_null(c);
    assert_int_equal(tui_canvas_width_px(c), 4);
    assert_int_equal(tui_canvas_height_px(c), 4);
    tui_canvas_set(c, 0, 0, 1);
    tui_canvas_set(c, 1, 1, 1);
    tui_canvas_set(c, 2, 0, 1);
    tui_canvas_set(c, 2, 1, 1);
    assert_int_equal(tui_canvas_row(c, 0, buf, sizeof buf), 4);
    assert_string_equal(buf, "'.: ");
    assert_string_equal(canvas_row(c, 1, buf, sizeof buf), "    ");
    /* A diagonal down the second row of cells: (0,2) (1,3) (2,4)... clipped at y 3. */
    tui_canvas_line(c, 0, 2, 3, 5, 1);
    assert_string_equal(canvas_row(c, 1, buf, sizeof buf), "'.  ");
    tui_canvas_free(c);
}

/* ---- chart -------------------------------------------------------------------------- */

/* Checks every line of the chart against want[rows] and that each is cols columns. */
static void check_chart(const tui_chart *ch, const char *const *want, int rows) {
    assert_int_equal(ch->rows, rows);
    for (int r = 0; r < rows; r++) {
        assert_string_equal(ch->lines[r], want[r]);
        assert_int_equal(width_of(ch->lines[r]), ch->cols);
    }
}

static void test_chart_braille(void **state) {
    (void)state;
    /* A line (0,10) (21,0) (37,0) and two marks (10,4) (37,10). y spans 0..10, padded to
     * -0.5..10.5: labels "10.5", "5", "-0.5" (4 wide), so the plot is 19 cells = 38 × 24
     * pixels and x = 0..37 lands on pixel x. y maps to round((10.5 - y) / 11 * 23):
     * 10 -> 1, 4 -> 14, 0 -> 22. The first segment is the 45° diagonal (i, 1 + i) for
     * i = 0..21, the second runs along pixel row 22 (dots 0x04|0x20 = ⠤). */
    const double x1[] = {0, 21, 37}, y1[] = {10, 0, 0};
    const double x2[] = {10, 37}, y2[] = {4, 10};
    const tui_series s[2] = {{x1, y1, 3, 1, 0}, {x2, y2, 2, 2, 1}};
    const tui_chart_opts o = {.log_y = 0, .braille = 1};
    tui_chart ch;
    assert_int_equal(tui_chart_render(s, 2, &o, 24, 8, &ch), 0);
    static const char *const want[] = {
        "10.5┤⠢⡀                ⠐",
        "    │ ⠈⠢⡀               ",
        "    │   ⠈⠢⡀             ",
        "   5┤     ⠌⠢⡀           ",
        "    │       ⠈⠢⡀         ",
        "-0.5┤         ⠈⠢⠤⠤⠤⠤⠤⠤⠤⠤",
        "    └───────────────────",
        "     0       18.5     37",
    };
    check_chart(&ch, want, 8);
    assert_int_equal(ch.cols, 24);
    /* Colours: the line's cells 1, the marks' 2 (the mark at (10,14) shares a cell with
     * the line and was drawn last), axes and labels 0. */
    assert_int_equal(ch.colors[0 * 24 + 5], 1);
    assert_int_equal(ch.colors[0 * 24 + 6], 1);
    assert_int_equal(ch.colors[0 * 24 + 23], 2);
    assert_int_equal(ch.colors[3 * 24 + 10], 2);
    assert_int_equal(ch.colors[3 * 24 + 11], 1);
    assert_int_equal(ch.colors[5 * 24 + 23], 1);
    assert_int_equal(ch.colors[0 * 24 + 4], 0);  /* axis */
    assert_int_equal(ch.colors[0 * 24 + 0], 0);  /* label */
    assert_int_equal(ch.colors[0 * 24 + 10], 0); /* empty */
    assert_int_equal(ch.colors[6 * 24 + 10], 0);
    tui_chart_release(&ch);
    assert_null(ch.lines);
    assert_null(ch.colors);
}

static void test_chart_ascii(void **state) {
    (void)state;
    /* (0,0)-(1,1) on a 12×4 chart: labels "1.05" / "-0.05" (5 wide), a 6×2-cell plot of
     * 6×4 pixels; the ends are pixels (0,3) and (5,0) and Bresenham walks (1,2) (2,2)
     * (3,1) (4,1) between them. No middle y label: its row is the bottom one. */
    const double x[] = {0, 1}, y[] = {0, 1};
    const tui_series s = {x, y, 2, 1, 0};
    const tui_chart_opts o = {.log_y = 0, .braille = 0};
    tui_chart ch;
    assert_int_equal(tui_chart_render(&s, 1, &o, 12, 4, &ch), 0);
    static const char *const want[] = {
        " 1.05+   ..'",
        "-0.05+.''   ",
        "     +------",
        "      0    1",
    };
    check_chart(&ch, want, 4);
    tui_chart_release(&ch);
}

static void test_chart_nan_breaks_line(void **state) {
    (void)state;
    /* y = 1, NaN, 3, 4 at x = 0..3 (x NULL: the index). Range 1..4 padded to 0.85..4.15;
     * the point at x 0 stands alone at pixel (0, 22); the line runs from (25, 8) to
     * (37, 1) and is not joined to it. */
    const double y[] = {1, NAN, 3, 4};
    const tui_series s = {NULL, y, 4, 1, 0};
    tui_chart ch;
    assert_int_equal(tui_chart_render(&s, 1, NULL, 24, 8, &ch), 0);
    static const char *const want[] = {
        "4.15┤                ⢀⡠⠔",
        "    │             ⣀⠤⠊⠁  ",
        "    │            ⠈      ",
        " 2.5┤                   ",
        "    │                   ",
        "0.85┤⠄                  ",
        "    └───────────────────",
        "     0       1.5       3",
    };
    check_chart(&ch, want, 8);
    tui_chart_release(&ch);
}

static void test_chart_log_scale(void **state) {
    (void)state;
    /* log10 y = 0..3, padded to -0.15..3.15: labels 10^3.15 = 1412.5 -> "1.41k",
     * 10^1.5 = 31.6, 10^-0.15 = 0.708. Zero and negative values are not plotted and do
     * not widen the range (they break the line). */
    const double x[] = {0, 1, 1.5, 2, 3}, y[] = {1, 10, -4, 100, 1000};
    const tui_series s = {x, y, 5, 1, 0};
    const tui_chart_opts o = {.log_y = 1, .braille = 1};
    tui_chart ch;
    assert_int_equal(tui_chart_render(&s, 1, &o, 24, 8, &ch), 0);
    assert_memory_equal(ch.lines[0], "1.41k┤", strlen("1.41k┤"));
    assert_memory_equal(ch.lines[3], " 31.6┤", strlen(" 31.6┤"));
    assert_memory_equal(ch.lines[5], "0.708┤", strlen("0.708┤"));
    assert_memory_equal(ch.lines[1], "     │", strlen("     │"));
    assert_string_equal(ch.lines[7], "      0       1.5      3");
    for (int r = 0; r < 8; r++) assert_int_equal(width_of(ch.lines[r]), 24);
    tui_chart_release(&ch);

    /* Only one positive value (at index 2): a flat range widened by ±1% of 10 and a flat x
     * range widened by ±1% of 2. */
    const double y2[] = {-1, 0, 10};
    const tui_series s2 = {NULL, y2, 3, 1, 0};
    assert_int_equal(tui_chart_render(&s2, 1, &o, 24, 8, &ch), 0);
    assert_memory_equal(ch.lines[0], "10.1┤", strlen("10.1┤"));
    assert_memory_equal(ch.lines[3], "  10┤", strlen("  10┤"));
    assert_memory_equal(ch.lines[5], " 9.9┤", strlen(" 9.9┤"));
    assert_string_equal(ch.lines[7], "     1.98     2     2.02");
    tui_chart_release(&ch);
}

static void test_chart_flat_and_no_data(void **state) {
    (void)state;
    tui_chart ch;
    /* No series at all. */
    assert_int_equal(tui_chart_render(NULL, 0, NULL, 24, 8, &ch), 0);
    static const char *const empty[] = {
        "│                       ",
        "│                       ",
        "│      no data yet      ",
        "│                       ",
        "│                       ",
        "│                       ",
        "└───────────────────────",
        "                        ",
    };
    check_chart(&ch, empty, 8);
    for (int i = 0; i < 8 * 24; i++) assert_int_equal(ch.colors[i], 0);
    tui_chart_release(&ch);

    /* Series with nothing finite look the same. */
    const double nan2[] = {NAN, INFINITY};
    const tui_series s = {NULL, nan2, 2, 1, 0};
    assert_int_equal(tui_chart_render(&s, 1, NULL, 24, 8, &ch), 0);
    check_chart(&ch, empty, 8);
    tui_chart_release(&ch);

    /* A flat series at 0 gets ±1: labels 1, 0, -1; its line is the middle pixel row 12
     * (round(11.5)), i.e. row 3 of cells, dots 0x01|0x08 (⠉) all along. */
    const double zeros[] = {0, 0, 0};
    const tui_series z = {NULL, zeros, 3, 1, 0};
    assert_int_equal(tui_chart_render(&z, 1, NULL, 20, 8, &ch), 0);
    static const char *const flat[] = {
        " 1┤                 ",
        "  │                 ",
        "  │                 ",
        " 0┤⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉",
        "  │                 ",
        "-1┤                 ",
        "  └─────────────────",
        "   0       1       2",
    };
    check_chart(&ch, flat, 8);
    tui_chart_release(&ch);
}

static void test_chart_sizes(void **state) {
    (void)state;
    tui_chart ch;
    const double y[] = {3, 1, 4, 1, 5, 9, 2, 6};
    const tui_series s = {NULL, y, 8, 1, 0};
    memset(&ch, 0xab, sizeof ch);
    assert_int_equal(tui_chart_render(&s, 1, NULL, 11, 8, &ch), -1);
    assert_null(ch.lines); /* left zeroed */
    assert_int_equal(tui_chart_render(&s, 1, NULL, 24, 2, &ch), -1);
    assert_null(ch.lines);
    tui_chart_release(&ch); /* safe on a zeroed chart */
    tui_chart_release(&ch);

    /* Every line is exactly cols columns, in both modes, including large labels. */
    const double big[] = {-123456789.0, 0.5, 98765.4321, NAN, 1e-7};
    const double ix[] = {1e6, 2e6, 3e6, 4e6, 5e6};
    const tui_series many[2] = {{NULL, y, 8, 1, 0}, {ix, big, 5, 2, 1}};
    for (int braille = 0; braille <= 1; braille++)
        for (int cols = 12; cols <= 41; cols += 7)
            for (int rows = 3; rows <= 12; rows += 3)
                for (int log_y = 0; log_y <= 1; log_y++) {
                    const tui_chart_opts o = {.log_y = log_y, .braille = braille};
                    assert_int_equal(tui_chart_render(many, 2, &o, cols, rows, &ch), 0);
                    assert_int_equal(ch.cols, cols);
                    for (int r = 0; r < rows; r++)
                        assert_int_equal(width_of(ch.lines[r]), cols);
                    tui_chart_release(&ch);
                }
    /* Values at the ends of the double range (flat x and y at DBL_MAX; ±DBL_MAX). */
    const double huge[] = {DBL_MAX, DBL_MAX}, spread[] = {-DBL_MAX, DBL_MAX};
    const tui_series extreme[2] = {{huge, huge, 2, 1, 0}, {NULL, spread, 2, 2, 0}};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tui_chart_render(&extreme[k], 1, NULL, 30, 6, &ch), 0);
        for (int r = 0; r < 6; r++) assert_int_equal(width_of(ch.lines[r]), 30);
        tui_chart_release(&ch);
    }
}

/* ---- smoothing and labels ----------------------------------------------------------- */

/* |got - want| <= tol (cmocka's float assertion works in single precision). */
#define assert_near(got, want, tol) assert_near_at((got), (want), (tol), __LINE__)
static void assert_near_at(double got, double want, double tol, int line) {
    if (!(fabs(got - want) <= tol)) fail_msg("line %d: got %.17g, want %.17g", line, got, want);
}

static void test_smooth_ema(void **state) {
    (void)state;
    const double y[] = {1, 2, 3};
    double out[4];
    /* weight 0.5: last = 0.5, 1.25, 2.125; debiased by 0.5, 0.75, 0.875. */
    tui_smooth_ema(y, 3, 0.5, out);
    assert_near(out[0], 1.0, 1e-12);
    assert_near(out[1], 5.0 / 3.0, 1e-12);
    assert_near(out[2], 17.0 / 7.0, 1e-12);
    tui_smooth_ema(y, 3, 0.0, out); /* no smoothing */
    assert_near(out[2], 3.0, 1e-12);
    tui_smooth_ema(y, 3, 1.0, out); /* the limit: running mean */
    assert_near(out[1], 1.5, 1e-12);
    assert_near(out[2], 2.0, 1e-12);

    const double gaps[] = {NAN, 1, INFINITY, 2};
    tui_smooth_ema(gaps, 4, 0.5, out);
    assert_true(isnan(out[0]));
    assert_near(out[1], 1.0, 1e-12);
    assert_near(out[2], 1.0, 1e-12); /* repeats the previous smoothed value */
    assert_near(out[3], 5.0 / 3.0, 1e-12);

    double in_place[] = {4, 4, 4};
    tui_smooth_ema(in_place, 3, 0.9, in_place); /* a constant stays itself */
    for (int i = 0; i < 3; i++) assert_near(in_place[i], 4.0, 1e-12);
}

static void test_format_axis(void **state) {
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0"},          {-0.0, "0"},         {12.345, "12.3"},    {0.012345, "0.0123"},
        {1.2e-5, "1.2e-05"}, {1500, "1.5k"},      {2, "2"},            {-250, "-250"},
        {999.7, "1k"},       {123456, "123k"},    {999999, "1M"},      {2.5e9, "2.5G"},
        {1e20, "1e+20"},     {-1.5e300, "-2e+300"}, {0.000123, "0.00012"}, {-0.00123, "-0.0012"},
        {-1.234e-5, "-1e-05"}, {NAN, "nan"},      {-INFINITY, "-inf"},
    };
    char buf[16];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int n = tui_format_axis(cases[i].v, buf, sizeof buf);
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(n, (int)strlen(cases[i].want));
        assert_true(n <= 7);
    }
    /* A short buffer cuts the label. */
    assert_int_equal(tui_format_axis(12.345, buf, 3), 2);
    assert_string_equal(buf, "12");
    assert_int_equal(tui_format_axis(12.345, buf, 0), 0);
}

/* ---- layout ------------------------------------------------------------------------- */

static void assert_rect(tui_rect r, int y, int x, int h, int w) {
    assert_int_equal(r.y, y);
    assert_int_equal(r.x, x);
    assert_int_equal(r.h, h);
    assert_int_equal(r.w, w);
}

static void test_layout_panes(void **state) {
    (void)state;
    tui_layout l;
    /* 80×24: body 22, console max(6, 5) = 6 from y 17; top 16; config w clamp(24) = 30. */
    tui_layout_compute(80, 24, TUI_ZOOM_NONE, &l);
    assert_int_equal(l.too_small, 0);
    assert_rect(l.status, 0, 0, 1, 80);
    assert_rect(l.config, 1, 0, 16, 30);
    assert_rect(l.chart, 1, 30, 8, 50);
    assert_rect(l.chat, 9, 30, 8, 50);
    assert_rect(l.console, 17, 0, 6, 80);
    assert_rect(l.hints, 23, 0, 1, 80);

    /* 100×30: body 28, console 7 from y 22; top 21 = chart 10 + chat 11; config 30. */
    tui_layout_compute(100, 30, TUI_ZOOM_NONE, &l);
    assert_rect(l.status, 0, 0, 1, 100);
    assert_rect(l.config, 1, 0, 21, 30);
    assert_rect(l.chart, 1, 30, 10, 70);
    assert_rect(l.chat, 11, 30, 11, 70);
    assert_rect(l.console, 22, 0, 7, 100);
    assert_rect(l.hints, 29, 0, 1, 100);

    /* 200×60: body 58, console 14 from y 45; top 44; config clamp(60) = 40. */
    tui_layout_compute(200, 60, TUI_ZOOM_NONE, &l);
    assert_rect(l.config, 1, 0, 44, 40);
    assert_rect(l.chart, 1, 40, 22, 160);
    assert_rect(l.chat, 23, 40, 22, 160);
    assert_rect(l.console, 45, 0, 14, 200);
    assert_rect(l.hints, 59, 0, 1, 200);
}

static void test_layout_zoom(void **state) {
    (void)state;
    tui_layout l;
    tui_layout_compute(80, 24, TUI_ZOOM_CHART, &l);
    assert_rect(l.status, 0, 0, 1, 80);
    assert_rect(l.chart, 1, 0, 22, 80);
    assert_rect(l.config, 0, 0, 0, 0);
    assert_rect(l.chat, 0, 0, 0, 0);
    assert_rect(l.console, 0, 0, 0, 0);
    assert_rect(l.hints, 23, 0, 1, 80);

    tui_layout_compute(100, 30, TUI_ZOOM_CHAT, &l);
    assert_rect(l.chat, 1, 0, 28, 100);
    assert_rect(l.chart, 0, 0, 0, 0);
    assert_rect(l.config, 0, 0, 0, 0);
    assert_rect(l.console, 0, 0, 0, 0);
    assert_rect(l.hints, 29, 0, 1, 100);

    tui_layout_compute(200, 60, TUI_ZOOM_CONSOLE, &l);
    assert_rect(l.console, 1, 0, 58, 200);
    assert_rect(l.chart, 0, 0, 0, 0);
    assert_rect(l.chat, 0, 0, 0, 0);
    assert_rect(l.config, 0, 0, 0, 0);
    assert_rect(l.status, 0, 0, 1, 200);
    assert_rect(l.hints, 59, 0, 1, 200);

    tui_layout_compute(200, 60, TUI_ZOOM_CHART, &l);
    assert_rect(l.chart, 1, 0, 58, 200);
}

static void test_layout_too_small(void **state) {
    (void)state;
    tui_layout l;
    memset(&l, 0x5a, sizeof l);
    tui_layout_compute(79, 24, TUI_ZOOM_NONE, &l);
    assert_int_equal(l.too_small, 1);
    assert_rect(l.status, 0, 0, 0, 0);
    assert_rect(l.config, 0, 0, 0, 0);
    assert_rect(l.chart, 0, 0, 0, 0);
    assert_rect(l.chat, 0, 0, 0, 0);
    assert_rect(l.console, 0, 0, 0, 0);
    assert_rect(l.hints, 0, 0, 0, 0);
    tui_layout_compute(80, 23, TUI_ZOOM_CHART, &l);
    assert_int_equal(l.too_small, 1);
    assert_rect(l.chart, 0, 0, 0, 0);
    assert_rect(l.hints, 0, 0, 0, 0);
}

/* A long notice takes rows from the console while it shows (at most TUI_MESSAGE_ROWS_MAX). */
static void test_layout_message(void **state) {
    (void)state;
    /* the notice after a stop that skipped its evaluation (173 columns) */
    const char *stop = "stopped: 12 steps in 40.2 s, 812 tok/s, best eval 2.3456: stopped on "
                       "request after step 12; evaluation skipped: kept the best edits evaluated "
                       "so far (step 8) — session saved";
    int cut = -1;
    assert_int_equal(tui_message_rows(stop, 80, &cut), 3); /* 76 + 80 + 15 columns */
    assert_int_equal(cut, 0);
    assert_int_equal(tui_message_rows(stop, 100, &cut), 2); /* 91 + 81 */
    assert_int_equal(tui_message_rows(stop, 200, NULL), 1);
    assert_int_equal(tui_message_rows("", 80, &cut), 1);
    assert_int_equal(tui_message_rows(NULL, 80, NULL), 1);
    assert_int_equal(tui_message_rows("a\nb", 80, NULL), 2);
    char long_text[700];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    for (size_t i = 9; i < sizeof long_text - 1; i += 10) long_text[i] = ' ';
    assert_int_equal(tui_message_rows(long_text, 80, &cut), TUI_MESSAGE_ROWS_MAX); /* 9 rows */
    assert_int_equal(cut, 1);
    assert_int_equal(tui_message_rows(long_text, 200, &cut), 4); /* 4 rows: not cut */
    assert_int_equal(cut, 0);

    tui_layout l, plain;
    /* 80×24, 3 rows: the console's 6 rows (y 17) become 4, the notice is on rows 21..23 */
    tui_layout_compute_message(80, 24, TUI_ZOOM_NONE, tui_message_rows(stop, 80, NULL), &l);
    assert_rect(l.status, 0, 0, 1, 80);
    assert_rect(l.config, 1, 0, 16, 30);
    assert_rect(l.chart, 1, 30, 8, 50);
    assert_rect(l.chat, 9, 30, 8, 50);
    assert_rect(l.console, 17, 0, 4, 80);
    assert_rect(l.hints, 21, 0, 3, 80);
    /* more than the most: 4 rows, the console keeps 3 */
    tui_layout_compute_message(80, 24, TUI_ZOOM_NONE, 9, &l);
    assert_rect(l.console, 17, 0, 3, 80);
    assert_rect(l.hints, 20, 0, 4, 80);
    /* 100×30, 2 rows: the console's 7 rows (y 22) become 6 */
    tui_layout_compute_message(100, 30, TUI_ZOOM_NONE, tui_message_rows(stop, 100, NULL), &l);
    assert_rect(l.config, 1, 0, 21, 30);
    assert_rect(l.chart, 1, 30, 10, 70);
    assert_rect(l.chat, 11, 30, 11, 70);
    assert_rect(l.console, 22, 0, 6, 100);
    assert_rect(l.hints, 28, 0, 2, 100);
    /* a zoomed pane gives the rows */
    tui_layout_compute_message(100, 30, TUI_ZOOM_CHAT, 3, &l);
    assert_rect(l.chat, 1, 0, 26, 100);
    assert_rect(l.hints, 27, 0, 3, 100);
    assert_rect(l.console, 0, 0, 0, 0);
    /* one row (or fewer): the usual layout, back when the notice clears */
    tui_layout_compute(100, 30, TUI_ZOOM_NONE, &plain);
    tui_layout_compute_message(100, 30, TUI_ZOOM_NONE, 1, &l);
    assert_memory_equal(&l, &plain, sizeof l);
    tui_layout_compute_message(100, 30, TUI_ZOOM_NONE, 0, &l);
    assert_memory_equal(&l, &plain, sizeof l);
    /* too small stays too small */
    tui_layout_compute_message(79, 24, TUI_ZOOM_NONE, 3, &l);
    assert_int_equal(l.too_small, 1);
    assert_rect(l.hints, 0, 0, 0, 0);
}

/* ---- lines of fields laid out by priority (layout.c) --------------------------------- */

static void test_line_fit_priority(void **state) {
    (void)state;
    /* drawn in this order; "state" 0 stays, then "session" 1, "eta" 2, "model" 3, "lr" 4 */
    tui_line_field f[] = {
        {"model x", "", 3, 0}, {"lr 1e-3", " | ", 4, 0}, {"session s", " | ", 1, 0},
        {"ETA 1m", " | ", 2, 0}, {"TRAINING 1/2", "  ", 0, 0},
    };
    enum { N = sizeof f / sizeof *f };
    char line[128];
    /* everything fits: 7 + 3+7 + 3+9 + 3+6 + 2+12 = 52 columns */
    assert_int_equal(tui_line_join(f, N, 52, line, sizeof line), 52);
    assert_string_equal(line, "model x | lr 1e-3 | session s | ETA 1m  TRAINING 1/2");
    for (int i = 0; i < N; i++) assert_int_equal(f[i].shown, 1);
    /* one column short: lr goes first */
    assert_int_equal(tui_line_join(f, N, 51, line, sizeof line), 42);
    assert_string_equal(line, "model x | session s | ETA 1m  TRAINING 1/2");
    assert_int_equal(f[1].shown, 0);
    /* then the model; the first shown field has no separator before it */
    assert_int_equal(tui_line_join(f, N, 41, line, sizeof line), 32);
    assert_string_equal(line, "session s | ETA 1m  TRAINING 1/2");
    /* then the ETA, then the session */
    tui_line_join(f, N, 31, line, sizeof line);
    assert_string_equal(line, "session s  TRAINING 1/2");
    tui_line_join(f, N, 22, line, sizeof line);
    assert_string_equal(line, "TRAINING 1/2");
    /* priority 0 is never dropped, even when it does not fit (the caller cuts it) */
    assert_int_equal(tui_line_fit(f, N, 5), 12);
    assert_int_equal(f[4].shown, 1);
    /* a smaller field of lower priority is not brought back when a larger one went */
    tui_line_join(f, N, 40, line, sizeof line);
    assert_string_equal(line, "session s | ETA 1m  TRAINING 1/2");
}

static void test_line_fit_ties_absent_utf8(void **state) {
    (void)state;
    /* equal priorities: the last in the table goes first; absent fields take no room */
    tui_line_field f[] = {
        {"aa", "", 1, 0}, {NULL, " · ", 0, 0}, {"", " · ", 0, 0}, {"bb", " · ", 1, 0},
        {"c\xc3\xa9", " \xe2\x94\x82 ", 0, 0}, /* "cé" after " │ " (3 columns, 5 bytes) */
    };
    enum { N = sizeof f / sizeof *f };
    char line[64];
    assert_int_equal(tui_line_join(f, N, 12, line, sizeof line), 12);
    assert_string_equal(line, "aa · bb \xe2\x94\x82 c\xc3\xa9");
    assert_int_equal(f[1].shown, 0);
    assert_int_equal(f[2].shown, 0);
    assert_int_equal(tui_line_join(f, N, 11, line, sizeof line), 7);
    assert_string_equal(line, "aa \xe2\x94\x82 c\xc3\xa9");
    assert_int_equal(f[3].shown, 0);
    /* a small buffer cuts at a character boundary, never inside "é" or "│" */
    char small[9];
    tui_line_join(f, N, 11, small, sizeof small);
    assert_string_equal(small, "aa \xe2\x94\x82 c");
    assert_int_equal(tui_line_join(f, N, 11, small, 5), 3); /* "aa " */
    /* durations on the status line */
    char d[16];
    tui_format_duration(4.12, d, sizeof d);
    assert_string_equal(d, "4.1s");
    tui_format_duration(125, d, sizeof d);
    assert_string_equal(d, "2m05s");
    tui_format_duration(3725, d, sizeof d);
    assert_string_equal(d, "1h02m");
    tui_format_duration(NAN, d, sizeof d);
    assert_string_equal(d, "-");
    tui_format_duration(-1, d, sizeof d);
    assert_string_equal(d, "-");
}

int main(void) {
    if (!setlocale(LC_ALL, "C.UTF-8")) {
        fprintf(stderr, "test_tui_text: the C.UTF-8 locale is not available\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_width_ascii_and_utf8),
        cmocka_unit_test(test_width_invalid_and_control),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_wrap_english),
        cmocka_unit_test(test_wrap_long_words),
        cmocka_unit_test(test_wrap_newlines),
        cmocka_unit_test(test_wrap_cjk),
        cmocka_unit_test(test_canvas_braille_cells),
        cmocka_unit_test(test_canvas_each_dot),
        cmocka_unit_test(test_canvas_colors_and_rows),
        cmocka_unit_test(test_canvas_lines),
        cmocka_unit_test(test_canvas_ascii),
        cmocka_unit_test(test_chart_braille),
        cmocka_unit_test(test_chart_ascii),
        cmocka_unit_test(test_chart_nan_breaks_line),
        cmocka_unit_test(test_chart_log_scale),
        cmocka_unit_test(test_chart_flat_and_no_data),
        cmocka_unit_test(test_chart_sizes),
        cmocka_unit_test(test_smooth_ema),
        cmocka_unit_test(test_format_axis),
        cmocka_unit_test(test_layout_panes),
        cmocka_unit_test(test_layout_zoom),
        cmocka_unit_test(test_layout_too_small),
        cmocka_unit_test(test_layout_message),
        cmocka_unit_test(test_line_fit_priority),
        cmocka_unit_test(test_line_fit_ties_absent_utf8),
    };
    return cmocka_run_group_tests_name("tui_text", tests, NULL, NULL);
}
