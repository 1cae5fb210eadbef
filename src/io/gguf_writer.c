/* The generic GGUF writer (see redit/gguf_writer.h): key/values accumulate in one header
 * buffer (gguf.h's little-endian puts), tensors in a list; the commit writes header, tensor
 * infos and data. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "redit/atomic_file.h"
#include "redit/gguf_writer.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor data is written as host bytes: a little-endian host is required"
#endif

#define ALIGN RD_GGUF_WRITER_ALIGNMENT

typedef struct tensor {
    char name[RD_GGUF_MAX_NAME + 1];
    const rd_gguf_type *type;
    uint32_t n_dims;
    uint64_t ne[RD_GGUF_MAX_DIMS]; /* fastest first */
    uint64_t bytes;
    const void *data; /* borrowed */
} tensor;

struct rd_gguf_writer {
    rd_gguf_buf kv; /* the key/values, as they go into the file */
    uint64_t n_kv;
    tensor *t;      /* (n, cap) */
    size_t n, cap;
    int oom;        /* a tensor could not be added: reported by the commit */
};

rd_gguf_writer *rd_gguf_writer_new(rd_error *err) {
    rd_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) rd_error_set(err, "GGUF writer: out of memory");
    return w;
}

void rd_gguf_writer_free(rd_gguf_writer *w) {
    if (!w) return;
    rd_buf_free(&w->kv);
    free(w->t);
    free(w);
}

void rd_gguf_writer_kv_str(rd_gguf_writer *w, const char *key, const char *value) {
    rd_gguf_kv_str(&w->kv, key, value);
    w->n_kv++;
}

void rd_gguf_writer_kv_i32(rd_gguf_writer *w, const char *key, int32_t value) {
    rd_gguf_kv_i32(&w->kv, key, value);
    w->n_kv++;
}

void rd_gguf_writer_kv_u32(rd_gguf_writer *w, const char *key, uint32_t value) {
    rd_gguf_kv_u32(&w->kv, key, value);
    w->n_kv++;
}

void rd_gguf_writer_kv_f32(rd_gguf_writer *w, const char *key, float value) {
    rd_gguf_kv_f32(&w->kv, key, value);
    w->n_kv++;
}

int rd_gguf_writer_add(rd_gguf_writer *w, const char *name, rd_dtype type,
                       const int64_t *shape, int n_dims, const void *data, rd_error *err) {
    const rd_gguf_type *gt = rd_gguf_type_for_dtype(type);
    if (strlen(name) > RD_GGUF_MAX_NAME)
        return rd_error_set(err, "GGUF writer: tensor name %.40s... is longer than %d bytes",
                            name, RD_GGUF_MAX_NAME);
    if (!gt) return rd_error_set(err, "GGUF writer: tensor %s: its type has no GGUF type", name);
    if (n_dims < 1 || n_dims > RD_GGUF_MAX_DIMS)
        return rd_error_set(err, "GGUF writer: tensor %s has %d dimensions (1 to %d)", name,
                            n_dims, RD_GGUF_MAX_DIMS);
    tensor t = {.type = gt, .n_dims = (uint32_t)n_dims, .data = data};
    snprintf(t.name, sizeof t.name, "%s", name);
    uint64_t elems = 1;
    for (int d = 0; d < RD_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? (uint64_t)shape[n_dims - 1 - d] : 1;
        if (d < n_dims && shape[n_dims - 1 - d] <= 0)
            return rd_error_set(err, "GGUF writer: tensor %s has an empty dimension", name);
        elems *= t.ne[d];
    }
    if (t.ne[0] % gt->block_elems)
        return rd_error_set(err, "GGUF writer: tensor %s: %llu columns are not a whole number "
                                 "of %s blocks", name, (unsigned long long)t.ne[0], gt->name);
    t.bytes = elems / gt->block_elems * gt->block_bytes;
    if (rd_array_reserve(&w->t, &w->cap, w->n + 1, sizeof *w->t)) {
        w->oom = 1;
        return 0;
    }
    w->t[w->n++] = t;
    return 0;
}

static uint64_t padded(uint64_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* Magic, version, counts, key/values, tensor infos (offsets in writing order), padding. */
static void build_header(const rd_gguf_writer *w, rd_gguf_buf *b) {
    rd_gguf_put(b, "GGUF", 4);
    rd_gguf_put_le(b, 3, 4);
    rd_gguf_put_le(b, (uint64_t)w->n, 8);
    rd_gguf_put_le(b, w->n_kv, 8);
    rd_gguf_put(b, w->kv.data, w->kv.len);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const tensor *t = &w->t[i];
        rd_gguf_put_str(b, t->name, strlen(t->name));
        rd_gguf_put_le(b, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) rd_gguf_put_le(b, t->ne[d], 8);
        rd_gguf_put_le(b, t->type->id, 4);
        rd_gguf_put_le(b, off, 8);
        off += padded(t->bytes);
    }
    rd_gguf_pad(b, ALIGN);
}

static int write_data(const rd_gguf_writer *w, rd_atomic_file *af) {
    static const uint8_t zeros[ALIGN];
    for (size_t i = 0; i < w->n; i++) {
        const tensor *t = &w->t[i];
        size_t pad = (size_t)(padded(t->bytes) - t->bytes);
        if (rd_atomic_file_write(af, t->data, (size_t)t->bytes) ||
            (pad && rd_atomic_file_write(af, zeros, pad)))
            return -1;
    }
    return 0;
}

int rd_gguf_writer_commit(rd_gguf_writer *w, const char *path, rd_error *err) {
    rd_gguf_buf h = {0};
    build_header(w, &h);
    if (h.oom || w->kv.oom || w->oom) {
        rd_buf_free(&h);
        return rd_error_set(err, "%s: out of memory building the GGUF header", path);
    }
    rd_atomic_file af;
    if (rd_atomic_file_open(&af, path, err)) {
        rd_buf_free(&h);
        return -1;
    }
    int bad = rd_atomic_file_write(&af, h.data, h.len) || write_data(w, &af);
    rd_buf_free(&h);
    if (bad) {
        int saved = errno;
        rd_atomic_file_abort(&af);
        return rd_error_set(err, "%s: write failed: %s", path, strerror(saved));
    }
    return rd_atomic_file_commit(&af, err);
}
