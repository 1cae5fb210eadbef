/* Generic GGUF v2/v3 reader: header, key/values (every value type, nested arrays),
 * tensor infos, alignment and data offset. Every count and length is checked against the
 * bytes left before anything is allocated or read. See gguf.h. */
#include "gguf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- GGML tensor types ------------------------------------------------------------ */

/* Block sizes are ggml's (ggml-common.h). A type redit can read names its rd_dtype; the
 * others (Q8_1, Q8_K, IQ1_S, IQ1_M, IQ2_*, IQ3_*, TQ1_0, TQ2_0, MXFP4, the integer types and
 * F64) are known so that a file using them parses and the model loader can name the type
 * it does not read. */
static const rd_gguf_type GGML_TYPES[] = {
    {0, "F32", 1, 4, RD_DTYPE_F32},
    {1, "F16", 1, 2, RD_DTYPE_F16},
    {2, "Q4_0", 32, 18, RD_DTYPE_Q4_0},
    {3, "Q4_1", 32, 20, RD_DTYPE_Q4_1},
    {6, "Q5_0", 32, 22, RD_DTYPE_Q5_0},
    {7, "Q5_1", 32, 24, RD_DTYPE_Q5_1},
    {8, "Q8_0", 32, 34, RD_DTYPE_Q8_0},
    {9, "Q8_1", 32, 36, -1},
    {10, "Q2_K", 256, 84, RD_DTYPE_Q2_K},
    {11, "Q3_K", 256, 110, RD_DTYPE_Q3_K},
    {12, "Q4_K", 256, 144, RD_DTYPE_Q4_K},
    {13, "Q5_K", 256, 176, RD_DTYPE_Q5_K},
    {14, "Q6_K", 256, 210, RD_DTYPE_Q6_K},
    {15, "Q8_K", 256, 292, -1},
    {16, "IQ2_XXS", 256, 66, -1},
    {17, "IQ2_XS", 256, 74, -1},
    {18, "IQ3_XXS", 256, 98, -1},
    {19, "IQ1_S", 256, 50, -1},
    {20, "IQ4_NL", 32, 18, RD_DTYPE_IQ4_NL},
    {21, "IQ3_S", 256, 110, -1},
    {22, "IQ2_S", 256, 82, -1},
    {23, "IQ4_XS", 256, 136, RD_DTYPE_IQ4_XS},
    {24, "I8", 1, 1, -1},
    {25, "I16", 1, 2, -1},
    {26, "I32", 1, 4, -1},
    {27, "I64", 1, 8, -1},
    {28, "F64", 1, 8, -1},
    {29, "IQ1_M", 256, 56, -1},
    {30, "BF16", 1, 2, RD_DTYPE_BF16},
    {34, "TQ1_0", 256, 54, -1},
    {35, "TQ2_0", 256, 66, -1},
    {39, "MXFP4", 32, 17, -1},
};
#define N_GGML_TYPES (sizeof GGML_TYPES / sizeof GGML_TYPES[0])

const rd_gguf_type *rd_gguf_type_of(uint32_t id) {
    for (size_t i = 0; i < N_GGML_TYPES; i++)
        if (GGML_TYPES[i].id == id) return &GGML_TYPES[i];
    return NULL;
}

const rd_gguf_type *rd_gguf_type_for_dtype(rd_dtype dtype) {
    for (size_t i = 0; i < N_GGML_TYPES; i++)
        if (GGML_TYPES[i].dtype == (int)dtype) return &GGML_TYPES[i];
    return NULL;
}

char *rd_gguf_readable_types(char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_GGML_TYPES && k < cap; i++) {
        if (GGML_TYPES[i].dtype < 0) continue;
        int n = snprintf(buf + k, cap - k, "%s%s", k ? ", " : "", GGML_TYPES[i].name);
        if (n < 0) break;
        k += (size_t)n;
    }
    return buf;
}

/* ---- value types ------------------------------------------------------------------- */

static const char *const VTYPE_NAMES[RD_GGUF_VTYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool",  "string", "array", "uint64", "int64", "float64"};

/* Bytes of a fixed-size scalar; 0 for STRING and ARRAY. */
static const size_t VTYPE_SIZE[RD_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *rd_gguf_vtype_name(uint32_t t) {
    return t < RD_GGUF_VTYPE_COUNT ? VTYPE_NAMES[t] : "?";
}

/* Fewest file bytes one value of type t takes (a string: its u64 length; an array: its
 * element type and count). */
static size_t min_value_bytes(uint32_t t) {
    if (t == RD_GGUF_STRING) return 8;
    if (t == RD_GGUF_ARRAY) return 12;
    return VTYPE_SIZE[t];
}

char *rd_gguf_printable(char *dst, size_t cap, const char *s, uint64_t n) {
    size_t keep = n < cap - 1 ? (size_t)n : cap - 4; /* room for "..." when cut */
    size_t i = 0;
    for (; i < keep; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (keep < n) {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    dst[i] = '\0';
    return dst;
}

/* ---- cursor over the buffer --------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *buf;
    size_t size, pos;
    const char *what; /* file name for messages */
    rd_error *err;
    char where[192]; /* what is being read, for messages */
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

static const uint8_t *take(cursor *c, uint64_t n) {
    if (n > left(c)) {
        rd_error_set(c->err,
                     "%s: truncated file: %s needs %" PRIu64 " bytes at offset %zu but the "
                     "file ends at %zu",
                     c->what, c->where, n, c->pos, c->size);
        return NULL;
    }
    const uint8_t *p = c->buf + c->pos;
    c->pos += (size_t)n;
    return p;
}

static int read_u32(cursor *c, uint32_t *v) {
    const uint8_t *p = take(c, 4);
    if (!p) return -1;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return 0;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int read_u64(cursor *c, uint64_t *v) {
    const uint8_t *p = take(c, 8);
    if (!p) return -1;
    *v = le64(p);
    return 0;
}

/* A GGUF string: u64 length, then the bytes. */
static int read_string(cursor *c, const char **s, uint64_t *len) {
    if (read_u64(c, len)) return -1;
    if (*len > left(c))
        return rd_error_set(c->err,
                            "%s: string length %" PRIu64 " of %s runs past the end of the "
                            "file (%zu bytes left): truncated or corrupt",
                            c->what, *len, c->where, left(c));
    *s = (const char *)take(c, *len); /* (not NULL after the check above) */
    return *s ? 0 : -1;
}

/* ---- values ------------------------------------------------------------------------ */

static void value_free(rd_gguf_value *v) {
    if (v->type != RD_GGUF_ARRAY) return;
    if (v->elem_type == RD_GGUF_ARRAY && v->as.items)
        for (uint64_t i = 0; i < v->n; i++) value_free(&v->as.items[i]);
    if (v->elem_type == RD_GGUF_STRING || v->elem_type == RD_GGUF_ARRAY) free(v->as.items);
    v->as.items = NULL;
}

static void decode_scalar(uint32_t type, const uint8_t *p, rd_gguf_value *v) {
    uint64_t u = 0;
    for (size_t i = VTYPE_SIZE[type]; i-- > 0;) u = u << 8 | p[i];
    v->type = type;
    v->elem_type = 0;
    v->n = 0;
    switch (type) {
    case RD_GGUF_INT8: v->as.i = (int8_t)u; break;
    case RD_GGUF_INT16: v->as.i = (int16_t)u; break;
    case RD_GGUF_INT32: v->as.i = (int32_t)u; break;
    case RD_GGUF_INT64: memcpy(&v->as.i, &u, 8); break;
    case RD_GGUF_FLOAT32: {
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, 4);
        v->as.f = f;
        break;
    }
    case RD_GGUF_FLOAT64: memcpy(&v->as.f, &u, 8); break;
    default: v->as.u = u; break; /* unsigned and bool */
    }
}

static int parse_value(cursor *c, uint32_t type, rd_gguf_value *v, int depth);

/* GCC 12's analyser reports v->as.items as leaked when a nested value fails: it loses the
 * ownership through the recursion (parse_value's caller releases *v with value_free). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
static int parse_array(cursor *c, rd_gguf_value *v, int depth) {
    uint32_t et;
    uint64_t n;
    if (read_u32(c, &et) || read_u64(c, &n)) return -1;
    if (et >= RD_GGUF_VTYPE_COUNT)
        return rd_error_set(c->err, "%s: %s is an array of unknown value type %u", c->what,
                            c->where, et);
    if (et == RD_GGUF_ARRAY && depth + 1 >= RD_GGUF_MAX_ARRAY_DEPTH)
        return rd_error_set(c->err, "%s: %s nests arrays more than %d deep", c->what, c->where,
                            RD_GGUF_MAX_ARRAY_DEPTH);
    size_t min = min_value_bytes(et);
    if (n > left(c) / min)
        return rd_error_set(c->err,
                            "%s: %s claims %" PRIu64 " %s elements, more than the %zu bytes "
                            "left in the file can hold (truncated or corrupt)",
                            c->what, c->where, n, rd_gguf_vtype_name(et), left(c));
    v->elem_type = et;
    v->n = n;
    if (VTYPE_SIZE[et]) { /* packed scalars: point into the buffer */
        v->as.raw = take(c, n * VTYPE_SIZE[et]); /* (not NULL after the check above) */
        if (!v->as.raw) return -1;
        if (et == RD_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (v->as.raw[i] > 1)
                    return rd_error_set(c->err, "%s: %s: element %" PRIu64 " is bool %u, not 0 "
                                                "or 1", c->what, c->where, i, v->as.raw[i]);
        return 0;
    }
    if (n == 0) return 0;
    v->as.items = calloc((size_t)n, sizeof *v->as.items);
    if (!v->as.items)
        return rd_error_set(c->err, "%s: out of memory reading %s", c->what, c->where);
    for (uint64_t i = 0; i < n; i++)
        if (parse_value(c, et, &v->as.items[i], depth + 1)) return -1;
    return 0;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* Parses one value of `type` into *v (zeroed by the caller). On failure *v may hold
 * allocations that value_free releases. */
static int parse_value(cursor *c, uint32_t type, rd_gguf_value *v, int depth) {
    v->type = type;
    if (type == RD_GGUF_STRING) {
        const char *s = NULL;
        if (read_string(c, &s, &v->n)) return -1;
        v->as.s = s;
        return 0;
    }
    if (type == RD_GGUF_ARRAY) return parse_array(c, v, depth);
    const uint8_t *p = take(c, VTYPE_SIZE[type]);
    if (!p) return -1;
    decode_scalar(type, p, v);
    if (type == RD_GGUF_BOOL && v->as.u > 1)
        return rd_error_set(c->err, "%s: %s is bool %u, not 0 or 1", c->what, c->where,
                            (unsigned)v->as.u);
    return 0;
}

/* ---- sorted indexes ----------------------------------------------------------------- */

static int cmp_bytes(const char *a, uint64_t na, const char *b, uint64_t nb) {
    int r = memcmp(a, b, (size_t)(na < nb ? na : nb));
    if (r) return r;
    return na < nb ? -1 : na > nb;
}

static int cmp_kv(const void *a, const void *b) {
    const rd_gguf_kv *x = *(const rd_gguf_kv *const *)a, *y = *(const rd_gguf_kv *const *)b;
    return cmp_bytes(x->key, x->key_len, y->key, y->key_len);
}

static int cmp_tensor_name(const void *a, const void *b) {
    const rd_gguf_tensor *x = *(const rd_gguf_tensor *const *)a;
    const rd_gguf_tensor *y = *(const rd_gguf_tensor *const *)b;
    return cmp_bytes(x->name, x->name_len, y->name, y->name_len);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const rd_gguf_tensor *x = *(const rd_gguf_tensor *const *)a;
    const rd_gguf_tensor *y = *(const rd_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* ---- sections ----------------------------------------------------------------------- */

#define HEADER_BYTES 24u
#define MIN_KV_BYTES (8u + 1u + 4u + 1u)              /* key length, key, type, u8 */
#define MIN_TENSOR_BYTES (8u + 1u + 4u + 8u + 4u + 8u) /* name, n_dims, ne[0], type, offset */

static int parse_header(cursor *c, rd_gguf *g) {
    snprintf(c->where, sizeof c->where, "the header");
    if (c->size < 4)
        return rd_error_set(c->err, "%s: truncated file: %zu bytes is too short for a GGUF "
                                    "header", c->what, c->size);
    if (memcmp(c->buf, "GGUF", 4) != 0)
        return rd_error_set(c->err,
                            "%s: not a GGUF file (magic bytes %02x %02x %02x %02x, expected "
                            "\"GGUF\")",
                            c->what, c->buf[0], c->buf[1], c->buf[2], c->buf[3]);
    c->pos = 4;
    if (read_u32(c, &g->version)) return -1;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return rd_error_set(c->err, "%s: big-endian GGUF files are not supported (version "
                                    "field 0x%08x)", c->what, g->version);
    if (g->version != 2 && g->version != 3)
        return rd_error_set(c->err, "%s: GGUF version %u is not supported (only versions 2 "
                                    "and 3)", c->what, g->version);
    if (read_u64(c, &g->n_tensors) || read_u64(c, &g->n_kv)) return -1;
    size_t body = c->size - HEADER_BYTES;
    if (g->n_kv > body / MIN_KV_BYTES)
        return rd_error_set(c->err, "%s: the header claims %" PRIu64 " key/value pairs, more "
                                    "than a %zu-byte file can hold (truncated or corrupt file)",
                            c->what, g->n_kv, c->size);
    if (g->n_tensors > body / MIN_TENSOR_BYTES)
        return rd_error_set(c->err, "%s: the header claims %" PRIu64 " tensors, more than a "
                                    "%zu-byte file can hold (truncated or corrupt file)",
                            c->what, g->n_tensors, c->size);
    return 0;
}

static int parse_kvs(cursor *c, rd_gguf *g) {
    if (g->n_kv && !(g->kv = calloc((size_t)g->n_kv, sizeof *g->kv)))
        return rd_error_set(c->err, "%s: out of memory", c->what);
    char name[80];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        rd_gguf_kv *kv = &g->kv[i];
        snprintf(c->where, sizeof c->where, "the key of key/value pair %" PRIu64, i);
        if (read_string(c, &kv->key, &kv->key_len)) return -1;
        if (kv->key_len == 0 || kv->key_len > RD_GGUF_MAX_KEY)
            return rd_error_set(c->err, "%s: key/value pair %" PRIu64 " has a key of %" PRIu64
                                        " bytes (1 to %d allowed)",
                                c->what, i, kv->key_len, RD_GGUF_MAX_KEY);
        snprintf(c->where, sizeof c->where, "key '%s'",
                 rd_gguf_printable(name, sizeof name, kv->key, kv->key_len));
        uint32_t type;
        if (read_u32(c, &type)) return -1;
        if (type >= RD_GGUF_VTYPE_COUNT)
            return rd_error_set(c->err, "%s: %s has unknown value type %u", c->what, c->where,
                                type);
        if (parse_value(c, type, &kv->value, 0)) return -1;
    }
    return 0;
}

static int read_alignment(cursor *c, rd_gguf *g) {
    g->alignment = RD_GGUF_DEFAULT_ALIGNMENT;
    const rd_gguf_value *v = rd_gguf_get(g, "general.alignment");
    if (!v) return 0;
    int64_t a;
    if (rd_gguf_value_int(v, &a))
        return rd_error_set(c->err, "%s: general.alignment is of type %s, not an integer", c->what,
                            rd_gguf_vtype_name(v->type));
    if (a <= 0 || a > (1 << 30) || (a & (a - 1)))
        return rd_error_set(c->err, "%s: general.alignment = %" PRId64 " is not a power of two "
                                    "between 1 and 2^30", c->what, a);
    g->alignment = (uint32_t)a;
    return 0;
}

static int parse_tensor_info(cursor *c, rd_gguf_tensor *t, uint64_t i) {
    char name[80];
    snprintf(c->where, sizeof c->where, "the name of tensor info %" PRIu64, i);
    if (read_string(c, &t->name, &t->name_len)) return -1;
    if (t->name_len == 0 || t->name_len > RD_GGUF_MAX_NAME)
        return rd_error_set(c->err, "%s: tensor info %" PRIu64 " has a name of %" PRIu64
                                    " bytes (1 to %d allowed)",
                            c->what, i, t->name_len, RD_GGUF_MAX_NAME);
    rd_gguf_printable(name, sizeof name, t->name, t->name_len);
    snprintf(c->where, sizeof c->where, "tensor '%s'", name);
    if (read_u32(c, &t->n_dims)) return -1;
    if (t->n_dims == 0 || t->n_dims > RD_GGUF_MAX_DIMS)
        return rd_error_set(c->err, "%s: tensor '%s' has n_dims = %u (1 to %d supported)",
                            c->what, name, t->n_dims, RD_GGUF_MAX_DIMS);
    t->n_elems = 1;
    for (uint32_t d = 0; d < RD_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims) continue;
        if (read_u64(c, &t->ne[d])) return -1;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
            return rd_error_set(c->err, "%s: tensor '%s' has dimension %u = %" PRIu64
                                        " (must be between 1 and 2^63-1)",
                                c->what, name, d, t->ne[d]);
        if (t->n_elems > (uint64_t)INT64_MAX / t->ne[d])
            return rd_error_set(c->err, "%s: tensor '%s' has an element count that overflows "
                                        "64 bits", c->what, name);
        t->n_elems *= t->ne[d];
    }
    uint32_t type;
    if (read_u32(c, &type)) return -1;
    if (!(t->type = rd_gguf_type_of(type))) {
        char readable[256];
        return rd_error_set(c->err, "%s: tensor '%s' has unknown GGML type id %u, which redit "
                                    "does not read (it reads %s)",
                            c->what, name, type, rd_gguf_readable_types(readable, sizeof readable));
    }
    if (t->ne[0] % t->type->block_elems)
        return rd_error_set(c->err, "%s: tensor '%s' of type %s has %" PRIu64 " columns, not a "
                                    "multiple of its block size %u",
                            c->what, name, t->type->name, t->ne[0], t->type->block_elems);
    uint64_t blocks = t->n_elems / t->type->block_elems;
    if (blocks > UINT64_MAX / t->type->block_bytes)
        return rd_error_set(c->err, "%s: tensor '%s' has a byte size that overflows 64 bits",
                            c->what, name);
    t->bytes = blocks * t->type->block_bytes;
    return read_u64(c, &t->offset);
}

/* Places the tensors: data offset, alignment, bounds, overlaps. */
static int place_tensors(cursor *c, rd_gguf *g) {
    uint64_t a = g->alignment;
    g->data_offset = (c->pos + a - 1) / a * a;
    if (g->n_tensors == 0) return 0;
    if (g->data_offset > c->size)
        return rd_error_set(c->err, "%s: truncated file: the tensor data should start at "
                                    "offset %" PRIu64 " but the file ends at %zu",
                            c->what, g->data_offset, c->size);
    uint64_t room = c->size - g->data_offset;
    char name[80];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        rd_gguf_tensor *t = &g->tensors[i];
        rd_gguf_printable(name, sizeof name, t->name, t->name_len);
        if (t->offset % a)
            return rd_error_set(c->err, "%s: tensor '%s' has data offset %" PRIu64 ", not a "
                                        "multiple of the alignment %" PRIu64,
                                c->what, name, t->offset, a);
        if (t->offset > room || t->bytes > room - t->offset)
            return rd_error_set(c->err, "%s: tensor '%s' (%" PRIu64 " bytes at data offset %"
                                        PRIu64 ") extends beyond the end of the file (%" PRIu64
                                        " bytes of tensor data): truncated or corrupt",
                                c->what, name, t->bytes, t->offset, room);
        t->offset += g->data_offset;
        t->data = c->buf + t->offset;
    }
    const rd_gguf_tensor **by_off = malloc((size_t)g->n_tensors * sizeof *by_off);
    if (!by_off) return rd_error_set(c->err, "%s: out of memory", c->what);
    for (uint64_t i = 0; i < g->n_tensors; i++) by_off[i] = &g->tensors[i];
    qsort(by_off, (size_t)g->n_tensors, sizeof *by_off, cmp_tensor_offset);
    int rc = 0;
    for (uint64_t i = 1; i < g->n_tensors && !rc; i++) {
        const rd_gguf_tensor *p = by_off[i - 1], *q = by_off[i];
        if (p->offset + p->bytes > q->offset) {
            char other[80];
            rc = rd_error_set(c->err, "%s: tensors '%s' and '%s' overlap in the file", c->what,
                              rd_gguf_printable(name, sizeof name, p->name, p->name_len),
                              rd_gguf_printable(other, sizeof other, q->name, q->name_len));
        }
    }
    free(by_off);
    return rc;
}

static int index_kvs(cursor *c, rd_gguf *g) {
    if (!g->n_kv) return 0;
    if (!(g->kv_sorted = malloc((size_t)g->n_kv * sizeof *g->kv_sorted)))
        return rd_error_set(c->err, "%s: out of memory", c->what);
    for (uint64_t i = 0; i < g->n_kv; i++) g->kv_sorted[i] = &g->kv[i];
    qsort(g->kv_sorted, (size_t)g->n_kv, sizeof *g->kv_sorted, cmp_kv);
    char name[80];
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (cmp_kv(&g->kv_sorted[i - 1], &g->kv_sorted[i]) == 0)
            return rd_error_set(c->err, "%s: key '%s' appears more than once", c->what,
                                rd_gguf_printable(name, sizeof name, g->kv_sorted[i]->key,
                                                  g->kv_sorted[i]->key_len));
    return 0;
}

static int parse_tensors(cursor *c, rd_gguf *g) {
    if (!g->n_tensors) return 0;
    if (!(g->tensors = calloc((size_t)g->n_tensors, sizeof *g->tensors)) ||
        !(g->tensor_sorted = malloc((size_t)g->n_tensors * sizeof *g->tensor_sorted)))
        return rd_error_set(c->err, "%s: out of memory", c->what);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (parse_tensor_info(c, &g->tensors[i], i)) return -1;
        g->tensor_sorted[i] = &g->tensors[i];
    }
    qsort(g->tensor_sorted, (size_t)g->n_tensors, sizeof *g->tensor_sorted, cmp_tensor_name);
    char name[80];
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (cmp_tensor_name(&g->tensor_sorted[i - 1], &g->tensor_sorted[i]) == 0)
            return rd_error_set(c->err, "%s: tensor '%s' appears more than once", c->what,
                                rd_gguf_printable(name, sizeof name, g->tensor_sorted[i]->name,
                                                  g->tensor_sorted[i]->name_len));
    return 0;
}

int rd_gguf_parse(const void *data, size_t size, const char *what, rd_gguf **out,
                  rd_error *err) {
    *out = NULL;
    cursor c = {.buf = data, .size = size, .what = what, .err = err};
    rd_gguf *g = calloc(1, sizeof *g);
    if (!g) return rd_error_set(err, "%s: out of memory", what);
    if (parse_header(&c, g) || parse_kvs(&c, g) || index_kvs(&c, g) || read_alignment(&c, g) ||
        parse_tensors(&c, g) || place_tensors(&c, g)) {
        rd_gguf_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

void rd_gguf_free(rd_gguf *g) {
    if (!g) return;
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) value_free(&g->kv[i].value);
    free(g->kv);
    free(g->kv_sorted);
    free(g->tensors);
    free(g->tensor_sorted);
    free(g);
}

/* ---- lookups and accessors --------------------------------------------------------- */

const rd_gguf_value *rd_gguf_get(const rd_gguf *g, const char *key) {
    if (!g->kv_sorted) return NULL;
    uint64_t n = strlen(key);
    size_t lo = 0, hi = (size_t)g->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const rd_gguf_kv *kv = g->kv_sorted[mid];
        int r = cmp_bytes(kv->key, kv->key_len, key, n);
        if (r == 0) return &kv->value;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const rd_gguf_tensor *rd_gguf_tensor_get(const rd_gguf *g, const char *name) {
    if (!g->tensor_sorted) return NULL;
    uint64_t n = strlen(name);
    size_t lo = 0, hi = (size_t)g->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const rd_gguf_tensor *t = g->tensor_sorted[mid];
        int r = cmp_bytes(t->name, t->name_len, name, n);
        if (r == 0) return t;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int rd_gguf_value_int(const rd_gguf_value *v, int64_t *out) {
    switch (v->type) {
    case RD_GGUF_INT8:
    case RD_GGUF_INT16:
    case RD_GGUF_INT32:
    case RD_GGUF_INT64: *out = v->as.i; return 0;
    case RD_GGUF_UINT8:
    case RD_GGUF_UINT16:
    case RD_GGUF_UINT32:
    case RD_GGUF_UINT64:
        if (v->as.u > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)v->as.u;
        return 0;
    default: return -1;
    }
}

int rd_gguf_value_float(const rd_gguf_value *v, double *out) {
    if (v->type != RD_GGUF_FLOAT32 && v->type != RD_GGUF_FLOAT64) return -1;
    *out = v->as.f;
    return 0;
}

int rd_gguf_array_elem(const rd_gguf_value *arr, uint64_t i, rd_gguf_value *out) {
    if (arr->type != RD_GGUF_ARRAY || i >= arr->n) return -1;
    size_t sz = VTYPE_SIZE[arr->elem_type];
    if (sz) decode_scalar(arr->elem_type, arr->as.raw + i * sz, out);
    else *out = arr->as.items[i];
    return 0;
}
