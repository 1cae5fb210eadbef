/* Small helpers shared across layers: the exact decimal text of a double, size limits from
 * the environment. */
#include "redit/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

const char *rd_format_double(double v, char *buf, size_t cap) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

int rd_env_bytes(const char *name, size_t def, size_t *out, rd_error *err) {
    *out = def;
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = 0;
    if (end && (*end == 'K' || *end == 'k')) shift = 10, end++;
    else if (end && (*end == 'M' || *end == 'm')) shift = 20, end++;
    else if (end && (*end == 'G' || *end == 'g')) shift = 30, end++;
    if (end == s || !end || *end != '\0' || errno || s[0] == '-' || v == 0 ||
        v > (unsigned long long)(SIZE_MAX >> shift))
        return rd_error_set(err, "%s=\"%s\": expected a positive number of bytes, such as "
                                 "268435456, 256M or 1G", name, s);
    *out = (size_t)v << shift;
    return 0;
}

const char *rd_format_bytes(size_t n, char *buf, size_t cap) {
    if (n >= ((size_t)1 << 30) && n % ((size_t)1 << 30) == 0)
        snprintf(buf, cap, "%zu GiB", n >> 30);
    else if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0)
        snprintf(buf, cap, "%zu MiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(buf, cap, "%zu KiB", n >> 10);
    else
        snprintf(buf, cap, "%zu bytes", n);
    return buf;
}
