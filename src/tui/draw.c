/* Drawing helpers over curses: UTF-8 text cut to a width in columns (never splitting a
 * character), blank runs and pane titles. */
#include <curses.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "app.h"
#include "textwrap.h"

/* In a terminal that is not UTF-8: the symbols the panes use in their ASCII form, any other
 * byte outside ASCII as '?'. */
static size_t ascii_copy(const char *text, char *out, size_t cap) {
    static const struct {
        const char *utf8, *ascii;
    } symbols[] = {{"│", "|"}, {"·", "-"}, {"α", "a"}, {"…", "~"}, {"━", "-"},
                   {"─", "-"}, {"┤", "|"}, {"└", "+"}, {"−", "-"}, {"×", "x"}};
    size_t o = 0;
    for (const char *p = text; *p && o + 2 < cap;) {
        size_t i = 0, n = sizeof symbols / sizeof *symbols;
        for (; i < n; i++) {
            size_t len = strlen(symbols[i].utf8);
            if (!strncmp(p, symbols[i].utf8, len)) {
                out[o++] = symbols[i].ascii[0];
                p += len;
                break;
            }
        }
        if (i < n) continue;
        unsigned char b = (unsigned char)*p++;
        if (b >= 0x80) /* skip the rest of a UTF-8 character */
            while (((unsigned char)*p & 0xC0) == 0x80) p++;
        out[o++] = b >= 0x80 || b < 0x20 ? '?' : (char)b;
    }
    out[o] = '\0';
    return o;
}

/* Copies text into out (cap bytes) with every byte that is not part of a valid, printable
 * UTF-8 character replaced by '?', so what curses draws is as wide as tui_text_width says
 * (model output can hold stray bytes). Returns the bytes written. */
static size_t printable_copy(const char *text, char *out, size_t cap) {
    if (MB_CUR_MAX == 1) return ascii_copy(text, out, cap);
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t len = strlen(text), o = 0;
    for (size_t i = 0; i < len && o + 5 < cap;) {
        wchar_t wc;
        size_t n = mbrtowc(&wc, text + i, len - i, &st);
        if (n == (size_t)-1 || n == (size_t)-2 || n == 0 || wcwidth(wc) < 0) {
            memset(&st, 0, sizeof st);
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, text + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return o;
}

int draw_text(int y, int x, int w, const char *text, int attr) {
    if (w <= 0 || !text) return 0;
    char clean[2048];
    size_t len = printable_copy(text, clean, sizeof clean);
    int cols = 0;
    size_t n = tui_text_fit(clean, len, w, &cols);
    if (attr) attron(attr);
    mvaddnstr(y, x, clean, (int)n);
    if (attr) attroff(attr);
    return cols;
}

void draw_blank(int y, int x, int w, int attr) {
    if (attr) attron(attr);
    for (int i = 0; i < w; i++) mvaddch(y, x + i, ' ');
    if (attr) attroff(attr);
}

void draw_title(tui_rect r, const char *title, const char *right, int focused) {
    int attr = focused ? (has_colors() ? COLOR_PAIR(PAIR_FOCUS) : A_REVERSE) | A_BOLD
                       : (has_colors() ? COLOR_PAIR(PAIR_TITLE) : A_REVERSE);
    draw_blank(r.y, r.x, r.w, attr);
    int used = draw_text(r.y, r.x + 1, r.w - 2, title, attr);
    if (right && *right) {
        int rw = tui_text_width(right, strlen(right));
        int room = r.w - used - 3;
        if (room > 0) {
            if (rw > room) rw = room;
            draw_text(r.y, r.x + r.w - rw - 1, rw, right, attr);
        }
    }
}
