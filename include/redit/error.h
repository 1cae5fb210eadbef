/* redit — error reporting shared by every layer.
 *
 * Library functions never print or exit. A function that can fail returns an int
 * (0 = success, -1 = failure) or a pointer (NULL = failure) and, on failure, fills the
 * caller's rd_error with one human-readable message naming the file and the problem. */
#ifndef REDIT_ERROR_H
#define REDIT_ERROR_H

#define RD_ERROR_MAX 512

typedef struct rd_error {
    char msg[RD_ERROR_MAX]; /* NUL-terminated; "" when no error was recorded */
} rd_error;

/* Formats a message into *err (err may be NULL: the message is dropped).
 * Always returns -1 so callers can write `return rd_error_set(err, ...);`. */
int rd_error_set(rd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an already recorded message (e.g. the file name). Returns -1. */
int rd_error_prefix(rd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
