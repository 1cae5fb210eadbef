/* Declarations shared between the io layer's files only. */
#ifndef REDIT_IO_INTERNAL_H
#define REDIT_IO_INTERNAL_H

#include <stddef.h>

#include "redit/error.h"

/* Checks the first `size` bytes of the file `path` as a llama2.c header: 1 when they are a
 * valid v0 header (every field in range and consistent); -1 when they are recognisably a
 * llama2.c header that is broken (a field out of range, an 'ak42' v1/v2 export), with *err
 * naming path and the problem; 0 when they do not look like llama2.c at all (err untouched). */
int rd_llama2c_probe(const void *data, size_t size, const char *path, rd_error *err);

#endif
