/* Test helper: a growable little-endian byte buffer for crafting binary files (GGUF,
 * safetensors, llama2.c .bin, ...) byte by byte, including deliberately broken ones.
 * Out of memory aborts: this is test code. */
#ifndef BYTEBUF_H
#define BYTEBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct bytebuf {
    uint8_t *data;
    size_t len, cap;
} bytebuf;

void bb_init(bytebuf *b);
void bb_free(bytebuf *b); /* frees and zeroes; NULL-safe on a zeroed buffer */
void bb_reset(bytebuf *b); /* len = 0, keeps the memory */

void bb_bytes(bytebuf *b, const void *p, size_t n);
void bb_zeros(bytebuf *b, size_t n);
void bb_u8(bytebuf *b, uint8_t v);
void bb_u16(bytebuf *b, uint16_t v);
void bb_u32(bytebuf *b, uint32_t v);
void bb_u64(bytebuf *b, uint64_t v);
void bb_i32(bytebuf *b, int32_t v);
void bb_i64(bytebuf *b, int64_t v);
void bb_f32(bytebuf *b, float v);
void bb_f64(bytebuf *b, double v);

/* u64 byte length, then the bytes (GGUF's string); n = (size_t)-1 → strlen(s). */
void bb_str64(bytebuf *b, const char *s, size_t n);

/* Zero bytes up to the next multiple of align (a power of two or any positive number). */
void bb_pad(bytebuf *b, size_t align);

/* Overwrites bytes at off (off + n ≤ len). */
void bb_patch_u32(bytebuf *b, size_t off, uint32_t v);
void bb_patch_u64(bytebuf *b, size_t off, uint64_t v);

/* Writes the first n bytes (n > len: all of them) to path. Returns 0 or -1. */
int bb_write_file(const bytebuf *b, const char *path, size_t n);

/* Reads a whole file into b (replacing its content). Returns 0 or -1. */
int bb_read_file(bytebuf *b, const char *path);

#endif
