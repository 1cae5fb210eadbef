/* redit TUI — UTF-8 text measured in terminal columns (no curses).
 *
 * Widths come from mbrtowc + wcwidth, so the caller must have set an UTF-8 LC_CTYPE
 * (setlocale(LC_ALL, "") in a UTF-8 terminal, or "C.UTF-8"). A byte that does not start a
 * valid character (invalid or truncated sequence) and a control character (wcwidth < 0,
 * including '\n', '\t' and NUL) count as one column each: the drawing code shows them as
 * one replacement character. Combining marks count as zero columns. Nothing here keeps
 * state between calls or allocates. */
#ifndef REDIT_TUI_TEXTWRAP_H
#define REDIT_TUI_TEXTWRAP_H

#include <stddef.h>

/* Decodes the character at the start of s[0, len): returns its length in bytes (1 for an
 * invalid or truncated byte, 0 only when len is 0), stores its columns in *width (0, 1 or
 * 2) and in *printable whether it is drawable as it is (0 for an invalid byte or a control
 * character, which are drawn as a single replacement character). width and printable may
 * be NULL. */
size_t tui_char_next(const char *s, size_t len, int *width, int *printable);

/* Columns that s[0, len) takes on the terminal (see the rules above). s may be NULL when
 * len is 0. */
int tui_text_width(const char *s, size_t len);

/* The longest prefix of s[0, len) that fits in cols columns without cutting a character:
 * returns its length in bytes and stores its columns in *width (width may be NULL).
 * Zero-width characters right after the prefix (combining marks) are included. cols < 0
 * counts as 0. */
size_t tui_text_fit(const char *s, size_t len, int cols, int *width);

/* One wrapped line: bytes [start, start + len) of the wrapped text. */
typedef struct tui_span {
    size_t start, len;
} tui_span;

/* Wraps s[0, len) into lines of at most cols columns and writes the first max of them to
 * lines[] (lines may be NULL when max is 0); returns the total number of lines, so a caller
 * can count first, allocate, and call again.
 * - '\n' ends a line: the text splits into paragraphs at every '\n' ("a\nb" is 2 lines,
 *   "a\n" is "a" and an empty line, "\n\n" is 3 empty lines); an empty paragraph stays one
 *   empty line, so empty text gives 1 empty line. The '\n' is in no span.
 * - A paragraph breaks at spaces (' ' only) greedily; the run of spaces at a break is
 *   dropped (in no span). Spaces inside a line and a paragraph's leading spaces are kept.
 * - A word longer than a line is cut at a character boundary; a double-width character
 *   never straddles the edge: it moves to the next line.
 * - cols < 1 counts as 1; a character wider than cols still gets a line of its own (the
 *   only case where a line is wider than cols). */
size_t tui_wrap(const char *s, size_t len, int cols, tui_span *lines, size_t max);

#endif
