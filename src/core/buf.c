/* The growable byte buffer and the growth of typed arrays (see redit/buf.h). */
#include "redit/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BYTES 64 /* a buffer's first allocation */
#define MIN_ELEMS 16 /* an array's first allocation */

/* The smallest capacity ≥ need reached by doubling from `from` (or from `min` when from is
 * 0), capped at `limit`; 0 when need > limit. */
static size_t grown_capacity(size_t from, size_t need, size_t min, size_t limit) {
    if (need > limit) return 0;
    size_t cap = from ? from : min;
    while (cap < need) cap = cap > limit / 2 ? limit : cap * 2;
    return cap < limit ? cap : limit;
}

static int fail(rd_buf *b) {
    b->oom = 1;
    return -1;
}

int rd_buf_reserve(rd_buf *b, size_t extra) {
    if (b->oom) return -1;
    if (extra > SIZE_MAX - 1 - b->len) return fail(b);
    const size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    const size_t cap = grown_capacity(b->cap, need, MIN_BYTES, SIZE_MAX);
    char *p = realloc(b->data, cap);
    if (!p) return fail(b);
    if (!b->data) p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int rd_buf_append(rd_buf *b, const void *src, size_t n) {
    if (rd_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int rd_buf_puts(rd_buf *b, const char *s) {
    return rd_buf_append(b, s, strlen(s));
}

int rd_buf_putc(rd_buf *b, char c) {
    return rd_buf_append(b, &c, 1);
}

int rd_buf_vprintf(rd_buf *b, const char *fmt, va_list ap) {
    if (b->oom) return -1;
    va_list again;
    va_copy(again, ap);
    /* first into the room there is; a second pass when the text turned out longer */
    const size_t room = b->data ? b->cap - b->len : 0;
    const int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    int rc = 0;
    if (n < 0) {
        rc = fail(b);
    } else if ((size_t)n >= room) {
        rc = rd_buf_reserve(b, (size_t)n);
        if (rc == 0) vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    if (rc) {
        if (b->data) b->data[b->len] = '\0'; /* a cut first pass leaves nothing behind */
        return -1;
    }
    b->len += (size_t)n;
    return 0;
}

int rd_buf_printf(rd_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int rc = rd_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int rd_buf_read(rd_buf *b, FILE *f) {
    for (;;) {
        /* at least 64 KiB, and as much as is held (doubling): amortised O(1) per byte */
        if (rd_buf_reserve(b, b->len > 65536 ? b->len : 65536)) return -1;
        const size_t room = b->cap - 1 - b->len;
        const size_t got = fread(b->data + b->len, 1, room, f);
        b->len += got;
        b->data[b->len] = '\0';
        if (got < room) return ferror(f) ? -1 : 0;
    }
}

void rd_buf_clear(rd_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

char *rd_buf_take(rd_buf *b) {
    if (!b->oom && !b->data) rd_buf_reserve(b, 0);
    char *s = b->oom ? NULL : b->data;
    if (!s) free(b->data);
    *b = (rd_buf){0};
    return s;
}

void rd_buf_free(rd_buf *b) {
    if (!b) return;
    free(b->data);
    *b = (rd_buf){0};
}

int rd_array_reserve(void *arrp, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    if (elem == 0) return -1;
    const size_t n = grown_capacity(*cap, need, MIN_ELEMS, SIZE_MAX / elem);
    if (n == 0) return -1;
    void *arr;
    memcpy(&arr, arrp, sizeof arr); /* *(T **)arrp, read as a void * */
    void *p = realloc(arr, n * elem);
    if (!p) return -1;
    memcpy(arrp, &p, sizeof p);
    *cap = n;
    return 0;
}
