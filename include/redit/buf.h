/* redit — one growable byte buffer, and the growth of typed arrays (core layer).
 *
 * rd_buf holds bytes (text or binary) and keeps them NUL-terminated, so text built in it is
 * a C string at every point. Growth doubles the capacity (amortised O(1) appends) and every
 * size computation is checked for overflow. A failed growth (no memory, or a size past
 * SIZE_MAX) latches `oom`: later appends do nothing and return -1, so a writer can append
 * many pieces and check once at the end; what was appended before stays as it was.
 *
 * Ownership: the buffer owns `data`. rd_buf_free releases it; rd_buf_take hands it to the
 * caller. A zeroed rd_buf (`rd_buf b = {0};`) is empty and ready to use. Pointers into
 * `data` stay valid only until the next call that can grow the buffer. Not thread-safe:
 * one buffer, one thread at a time. */
#ifndef REDIT_BUF_H
#define REDIT_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

typedef struct rd_buf {
    char *data; /* (cap) NULL before the first growth; after it, data[len] == '\0' */
    size_t len; /* bytes held, the NUL not counted */
    size_t cap; /* bytes allocated (len + 1 at least once data is set) */
    int oom;    /* a growth failed: appends do nothing until rd_buf_free or rd_buf_take */
} rd_buf;

/* Makes room for `extra` more bytes (and the NUL after them) without changing the content:
 * data[len .. len + extra] may then be written, and len moved forward by the writer. 0, or
 * -1 (oom latched) when out of memory or len + extra + 1 overflows. */
int rd_buf_reserve(rd_buf *b, size_t extra);

/* Appends n bytes of src (which may hold NULs; src may be NULL when n is 0, and must not
 * point into b's own data, which growing may move). 0 or -1. */
int rd_buf_append(rd_buf *b, const void *src, size_t n);

/* Appends the C string s (without its NUL). 0 or -1. */
int rd_buf_puts(rd_buf *b, const char *s);

/* Appends one byte. 0 or -1. */
int rd_buf_putc(rd_buf *b, char c);

/* Appends printf-formatted text, of any length. 0, or -1 when out of memory (oom latched) or
 * the format fails (an encoding error; oom latched too, so the text is known incomplete). */
int rd_buf_printf(rd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rd_buf_vprintf(rd_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Appends everything f has left to read, up to its end. 0; -1 on a read error (ferror(f)
 * is set; the bytes read before it stay appended) or when out of memory (oom latched). */
int rd_buf_read(rd_buf *b, FILE *f);

/* Empties the buffer (len 0, data[0] == '\0' when data is set); keeps its memory and oom. */
void rd_buf_clear(rd_buf *b);

/* Hands the content over as a malloc'ed, NUL-terminated string the caller frees ("" when
 * nothing was appended), or NULL when a growth failed (the content is then freed). Either
 * way the buffer is left empty and zeroed, ready for reuse. */
char *rd_buf_take(rd_buf *b);

/* Frees the content and zeroes the buffer. NULL-safe. */
void rd_buf_free(rd_buf *b);

/* Typed arrays: makes the array *arrp (elements of elem bytes, *cap of them allocated) hold
 * at least `need` elements, doubling the capacity from 16 (or from *cap) until it does.
 * arrp is the address of the array pointer (T **, passed as void *); *arrp may be NULL
 * with *cap 0. 0, or -1 when out of memory or need * elem overflows: *arrp and *cap are then
 * unchanged (the array stays valid and owned by the caller). The new elements are not
 * initialised. */
int rd_array_reserve(void *arrp, size_t *cap, size_t need, size_t elem);

#endif
