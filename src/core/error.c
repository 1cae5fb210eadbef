/* Error messages (see redit/error.h). */
#include "redit/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rd_error_set_fn(rd_error *err, const char *fmt, ...) {
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void rd_error_prefix_fn(rd_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[RD_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t plen = strlen(prefix);
    if (plen + 2 >= sizeof err->msg) return;
    size_t keep = strnlen(err->msg, sizeof err->msg - 1);
    if (plen + 2 + keep >= sizeof err->msg) keep = sizeof err->msg - plen - 3;
    memmove(err->msg + plen + 2, err->msg, keep);
    memcpy(err->msg, prefix, plen);
    err->msg[plen] = ':';
    err->msg[plen + 1] = ' ';
    err->msg[plen + 2 + keep] = '\0';
}
