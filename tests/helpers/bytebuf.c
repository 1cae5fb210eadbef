#include "bytebuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"

void bb_init(bytebuf *b) { memset(b, 0, sizeof *b); }

void bb_free(bytebuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void bb_reset(bytebuf *b) { b->len = 0; }

static void reserve(bytebuf *b, size_t n) {
    if (n > SIZE_MAX - b->len || rd_array_reserve(&b->data, &b->cap, b->len + n, 1)) {
        fprintf(stderr, "bytebuf: out of memory\n");
        abort();
    }
}

void bb_bytes(bytebuf *b, const void *p, size_t n) {
    if (!n) return;
    reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void bb_zeros(bytebuf *b, size_t n) {
    if (!n) return;
    reserve(b, n);
    memset(b->data + b->len, 0, n);
    b->len += n;
}

static void le(bytebuf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    bb_bytes(b, t, (size_t)n);
}

void bb_u8(bytebuf *b, uint8_t v) { le(b, v, 1); }
void bb_u16(bytebuf *b, uint16_t v) { le(b, v, 2); }
void bb_u32(bytebuf *b, uint32_t v) { le(b, v, 4); }
void bb_u64(bytebuf *b, uint64_t v) { le(b, v, 8); }
void bb_i32(bytebuf *b, int32_t v) { le(b, (uint32_t)v, 4); }
void bb_i64(bytebuf *b, int64_t v) { le(b, (uint64_t)v, 8); }

void bb_f32(bytebuf *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    le(b, u, 4);
}

void bb_f64(bytebuf *b, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    le(b, u, 8);
}

void bb_str64(bytebuf *b, const char *s, size_t n) {
    if (n == (size_t)-1) n = strlen(s);
    bb_u64(b, n);
    bb_bytes(b, s, n);
}

void bb_pad(bytebuf *b, size_t align) { bb_zeros(b, (align - b->len % align) % align); }

static void patch(bytebuf *b, size_t off, uint64_t v, int n) {
    if (off + (size_t)n > b->len) {
        fprintf(stderr, "bytebuf: patch at %zu beyond %zu bytes\n", off, b->len);
        abort();
    }
    for (int i = 0; i < n; i++) b->data[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

void bb_patch_u32(bytebuf *b, size_t off, uint32_t v) { patch(b, off, v, 4); }
void bb_patch_u64(bytebuf *b, size_t off, uint64_t v) { patch(b, off, v, 8); }

int bb_write_file(const bytebuf *b, const char *path, size_t n) {
    if (n > b->len) n = b->len;
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    int ok = (n == 0 || fwrite(b->data, 1, n, fp) == n);
    ok &= fclose(fp) == 0;
    return ok ? 0 : -1;
}

int bb_read_file(bytebuf *b, const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    b->len = 0;
    uint8_t tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, fp)) > 0) bb_bytes(b, tmp, n);
    int bad = ferror(fp);
    fclose(fp);
    return bad ? -1 : 0;
}
