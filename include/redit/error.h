/* redit — error reporting shared by every layer (core layer).
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

/* Formats a message into *err (err may be NULL: the message is dropped). */
void rd_error_set_fn(rd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an already recorded message (e.g. the file name); leaves the message
 * as it is when the prefix does not fit. */
void rd_error_prefix_fn(rd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* rd_error_set(err, fmt, ...) and rd_error_prefix(err, fmt, ...): the functions above as an
 * expression whose value is -1, so callers can write `return rd_error_set(err, ...);`.
 * Macros, not functions returning -1, so that static analysers (make analyze) see the -1 at
 * the call site: through a function defined in another file every error path looked like it
 * could return anything, and the analysers followed impossible paths past the failures.
 * A statement expression rather than `(f(...), -1)`, which GCC's -Wunused-value flags
 * wherever the call stands as a statement. err is evaluated once. */
#define rd_error_set(err, ...) __extension__({ rd_error_set_fn((err), __VA_ARGS__); -1; })
#define rd_error_prefix(err, ...) __extension__({ rd_error_prefix_fn((err), __VA_ARGS__); -1; })

#endif
