/* The GGUF writers' header buffer (see gguf.h). */
#include <string.h>

#include "gguf.h"

void rd_gguf_put(rd_gguf_buf *b, const void *src, size_t n) {
    rd_buf_append(b, src, n); /* a failure is latched in b->oom */
}

void rd_gguf_put_le(rd_gguf_buf *b, uint64_t v, int bytes) {
    uint8_t tmp[8];
    for (int i = 0; i < bytes; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    rd_gguf_put(b, tmp, (size_t)bytes);
}

void rd_gguf_put_str(rd_gguf_buf *b, const char *s, size_t n) {
    rd_gguf_put_le(b, n, 8);
    rd_gguf_put(b, s, n);
}

void rd_gguf_put_f32(rd_gguf_buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    rd_gguf_put_le(b, u, 4);
}

void rd_gguf_put_key(rd_gguf_buf *b, const char *key, rd_gguf_vtype type) {
    rd_gguf_put_str(b, key, strlen(key));
    rd_gguf_put_le(b, (uint32_t)type, 4);
}

void rd_gguf_kv_u32(rd_gguf_buf *b, const char *key, uint32_t v) {
    rd_gguf_put_key(b, key, RD_GGUF_UINT32);
    rd_gguf_put_le(b, v, 4);
}

void rd_gguf_kv_i32(rd_gguf_buf *b, const char *key, int32_t v) {
    rd_gguf_put_key(b, key, RD_GGUF_INT32);
    rd_gguf_put_le(b, (uint32_t)v, 4);
}

void rd_gguf_kv_f32(rd_gguf_buf *b, const char *key, float v) {
    rd_gguf_put_key(b, key, RD_GGUF_FLOAT32);
    rd_gguf_put_f32(b, v);
}

void rd_gguf_kv_str(rd_gguf_buf *b, const char *key, const char *s) {
    rd_gguf_put_key(b, key, RD_GGUF_STRING);
    rd_gguf_put_str(b, s, strlen(s));
}

void rd_gguf_kv_bool(rd_gguf_buf *b, const char *key, int v) {
    rd_gguf_put_key(b, key, RD_GGUF_BOOL);
    const uint8_t x = v ? 1 : 0;
    rd_gguf_put(b, &x, 1);
}

void rd_gguf_put_array_head(rd_gguf_buf *b, const char *key, rd_gguf_vtype elem, uint64_t n) {
    rd_gguf_put_key(b, key, RD_GGUF_ARRAY);
    rd_gguf_put_le(b, (uint32_t)elem, 4);
    rd_gguf_put_le(b, n, 8);
}

void rd_gguf_pad(rd_gguf_buf *b, size_t align) {
    static const uint8_t zeros[64];
    size_t n = (align - b->len % align) % align;
    while (n && !b->oom) {
        const size_t k = n < sizeof zeros ? n : sizeof zeros;
        rd_gguf_put(b, zeros, k);
        n -= k;
    }
}
