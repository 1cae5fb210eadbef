/* redit — small helpers shared across layers (core layer): FNV-1a hashing, the exact
 * decimal text of a double, size limits from the environment, the memory read bandwidth. */
#ifndef REDIT_UTIL_H
#define REDIT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "redit/error.h"

/* 64-bit FNV-1a: start from RD_FNV1A_INIT and fold in byte runs in order. */
#define RD_FNV1A_INIT 0xcbf29ce484222325ull

static inline uint64_t rd_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The shortest "%g" text of v that reads back (strtod) as exactly v: "0.05", not
 * "0.050000000000000003". Writes at most cap bytes (NUL included) into buf, which must hold
 * 32; returns buf. */
const char *rd_format_double(double v, char *buf, size_t cap);

/* The size limit named by environment variable `name` (a user's override of a cap such as
 * REDIT_MAX_LINE_BYTES): digits with an optional K, M or G suffix (binary: 256M is 256 MiB).
 * *out = def when the variable is unset or empty. 0, or -1 with *err naming the variable and
 * its value when it is not a positive size. */
int rd_env_bytes(const char *name, size_t def, size_t *out, rd_error *err);

/* n as "64 MiB" / "1 GiB" / "512 KiB" when it is a whole number of them, else "N bytes", into
 * buf (cap bytes; 32 suffice); returns buf. */
const char *rd_format_bytes(size_t n, char *buf, size_t cap);

/* Streaming read bandwidth in GB/s over a buffer of `bytes` (make it larger than the caches),
 * read by the process's thread pool (the decode path's threads): the roofline of a
 * bandwidth-bound decode step. The best of `rounds` reads after one warm-up. 0 with *err when
 * the buffer or the pool cannot be had. */
double rd_read_bandwidth(size_t bytes, int rounds, rd_error *err);

#endif
