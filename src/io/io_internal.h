/* Declarations shared between the io layer's files only. */
#ifndef REDIT_IO_INTERNAL_H
#define REDIT_IO_INTERNAL_H

#include <stddef.h>

/* 1 when the first `size` bytes of a file look like a llama2.c v0 header (every field in
 * range and consistent), else 0. */
int rd_llama2c_probe(const void *data, size_t size);

#endif
