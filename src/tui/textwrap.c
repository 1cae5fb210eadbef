/* UTF-8 text measured in terminal columns: width, fitting a prefix, word wrap.
 * wcwidth needs the _XOPEN_SOURCE that `pkg-config --cflags ncursesw` passes. */
#include "textwrap.h"

#include <string.h>
#include <wchar.h>

size_t tui_char_next(const char *s, size_t len, int *width, int *printable) {
    int w = 1, ok = 0;
    size_t bytes = 1;
    if (len == 0) {
        w = 0;
        bytes = 0;
    } else {
        mbstate_t st;
        memset(&st, 0, sizeof st);
        wchar_t wc;
        const size_t r = mbrtowc(&wc, s, len, &st);
        /* (size_t)-1: invalid, (size_t)-2: truncated, 0: a NUL byte — one column each. */
        if (r != (size_t)-1 && r != (size_t)-2 && r != 0) {
            bytes = r;
            const int cw = wcwidth(wc);
            if (cw >= 0) {
                w = cw;
                ok = 1;
            }
        }
    }
    if (width) *width = w;
    if (printable) *printable = ok;
    return bytes;
}

int tui_text_width(const char *s, size_t len) {
    int total = 0;
    for (size_t i = 0; i < len;) {
        int w;
        i += tui_char_next(s + i, len - i, &w, NULL);
        total += w;
    }
    return total;
}

size_t tui_text_fit(const char *s, size_t len, int cols, int *width) {
    if (cols < 0) cols = 0;
    int total = 0;
    size_t i = 0;
    while (i < len) {
        int w;
        const size_t n = tui_char_next(s + i, len - i, &w, NULL);
        if (total + w > cols) break;
        total += w;
        i += n;
    }
    if (width) *width = total;
    return i;
}

/* Records line *n as bytes [start, end) when there is room for it, and counts it. */
static void emit_line(tui_span *lines, size_t max, size_t *n, size_t start, size_t end) {
    if (*n < max) {
        lines[*n].start = start;
        lines[*n].len = end - start;
    }
    (*n)++;
}

/* Where one wrapped line ends: its text is [start, end) and the next line starts at next
 * (after the spaces dropped at the break). */
typedef struct line_break {
    size_t end, next;
} line_break;

/* Skips the spaces from i to the first non-space byte or e. */
static size_t skip_spaces(const char *s, size_t i, size_t e) {
    while (i < e && s[i] == ' ') i++;
    return i;
}

/* Finds the end of the line that starts at pos in the paragraph s[pos, e) (no '\n' in it)
 * for lines of cols columns. A break opportunity is a run of spaces that follows a word on
 * this line and is followed by another character. */
static line_break next_line_break(const char *s, size_t pos, size_t e, int cols) {
    int w = 0;
    int seen_word = 0;                /* a non-space character is on this line */
    int in_run = 0;                   /* i is inside a run of spaces after a word */
    size_t run_start = 0;             /* where the current run of spaces began */
    int have_break = 0;               /* a complete break opportunity was seen */
    size_t break_end = 0, break_next = 0;
    size_t i = pos;
    while (i < e) {
        int cw;
        const size_t nb = tui_char_next(s + i, e - i, &cw, NULL);
        const int is_space = s[i] == ' ';
        /* The first character of a line is always taken, so every line makes progress. */
        if (w + cw > cols && i > pos) {
            if (is_space) /* break here, dropping the whole run of spaces */
                return (line_break){in_run ? run_start : i, skip_spaces(s, i, e)};
            if (in_run) return (line_break){run_start, i}; /* the spaces just before */
            if (have_break) return (line_break){break_end, break_next};
            return (line_break){i, i}; /* a word longer than the line: cut it */
        }
        if (is_space) {
            if (seen_word && !in_run) {
                in_run = 1;
                run_start = i;
            }
        } else {
            if (in_run) { /* the run of spaces before this word is a break opportunity */
                have_break = 1;
                break_end = run_start;
                break_next = i;
                in_run = 0;
            }
            seen_word = 1;
        }
        w += cw;
        i += nb;
    }
    return (line_break){e, e}; /* the rest of the paragraph fits */
}

/* Wraps the paragraph s[start, e) and records its lines (an empty one gives one line). */
static void wrap_paragraph(const char *s, size_t start, size_t e, int cols, tui_span *lines,
                           size_t max, size_t *n) {
    if (start == e) {
        emit_line(lines, max, n, start, start);
        return;
    }
    size_t pos = start;
    while (pos < e) {
        const line_break b = next_line_break(s, pos, e, cols);
        emit_line(lines, max, n, pos, b.end);
        pos = b.next;
    }
}

size_t tui_wrap(const char *s, size_t len, int cols, tui_span *lines, size_t max) {
    if (cols < 1) cols = 1;
    if (!lines) max = 0;
    size_t n = 0;
    if (len == 0) {
        emit_line(lines, max, &n, 0, 0);
        return n;
    }
    size_t start = 0;
    for (;;) {
        const char *nl = memchr(s + start, '\n', len - start);
        const size_t e = nl ? (size_t)(nl - s) : len;
        wrap_paragraph(s, start, e, cols, lines, max, &n);
        if (!nl) break;
        start = e + 1;
        if (start == len) { /* a final '\n' is followed by one empty line */
            emit_line(lines, max, &n, start, start);
            break;
        }
    }
    return n;
}
