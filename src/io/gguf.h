/* redit — generic GGUF v2/v3 reader (io layer, private to the engine: src/io, the adapter
 * import of src/model/edits_adapters.c, and the tests).
 *
 * rd_gguf_parse walks a GGUF file held in memory (normally a read-only mapping) and checks
 * every count, length, type and offset against the buffer before allocating or reading.
 * It knows nothing of model architectures: src/io/gguf_model.c builds a model from it.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv, the key/values,
 * the tensor infos, padding to general.alignment (default 32), then the tensor data; each
 * tensor's offset is relative to the start of the data and a multiple of the alignment.
 * GGUF stores dimensions fastest-first: ne = [cols, rows] is a row-major (rows, cols)
 * matrix. */
#ifndef REDIT_IO_GGUF_H
#define REDIT_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "redit/buf.h"
#include "redit/dtype.h"
#include "redit/error.h"

#define RD_GGUF_DEFAULT_ALIGNMENT 32u
#define RD_GGUF_MAX_DIMS 4
#define RD_GGUF_MAX_NAME 64       /* bytes of a tensor name (the spec's limit) */
#define RD_GGUF_MAX_KEY 65535     /* bytes of a key (the spec's limit) */
#define RD_GGUF_MAX_ARRAY_DEPTH 8 /* arrays of arrays nested deeper are refused */

/* Value types of the key/value section (numbers as in the file). */
typedef enum rd_gguf_vtype {
    RD_GGUF_UINT8 = 0,
    RD_GGUF_INT8 = 1,
    RD_GGUF_UINT16 = 2,
    RD_GGUF_INT16 = 3,
    RD_GGUF_UINT32 = 4,
    RD_GGUF_INT32 = 5,
    RD_GGUF_FLOAT32 = 6,
    RD_GGUF_BOOL = 7,
    RD_GGUF_STRING = 8,
    RD_GGUF_ARRAY = 9,
    RD_GGUF_UINT64 = 10,
    RD_GGUF_INT64 = 11,
    RD_GGUF_FLOAT64 = 12,
    RD_GGUF_VTYPE_COUNT
} rd_gguf_vtype;

/* "uint32", "string", ...; "?" for an invalid type. Static storage. */
const char *rd_gguf_vtype_name(uint32_t t);

/* One value. Strings and arrays of scalars point into the parsed buffer (borrowed: valid
 * while the buffer lives); arrays of strings or arrays own an items table. */
typedef struct rd_gguf_value {
    uint32_t type;      /* rd_gguf_vtype */
    uint32_t elem_type; /* ARRAY: the element type */
    uint64_t n;         /* STRING: byte length; ARRAY: element count */
    union {
        uint64_t u;                  /* UINT*, BOOL (0 or 1) */
        int64_t i;                   /* INT* */
        double f;                    /* FLOAT32 / FLOAT64 */
        const char *s;               /* STRING: n bytes, not NUL-terminated */
        const uint8_t *raw;          /* ARRAY of fixed-size scalars: n packed elements */
        struct rd_gguf_value *items; /* ARRAY of STRING or ARRAY: n values (owned) */
    } as;
} rd_gguf_value;

typedef struct rd_gguf_kv {
    const char *key; /* key_len bytes, not NUL-terminated (borrowed) */
    uint64_t key_len;
    rd_gguf_value value;
} rd_gguf_kv;

/* One row of the GGML tensor type table. dtype is the rd_dtype redit reads the type as,
 * or -1 when it is a known GGML type redit does not read (adding a quantisation to redit =
 * setting dtype in its row). */
typedef struct rd_gguf_type {
    uint32_t id;        /* GGML type id as stored in the file */
    const char *name;   /* "Q4_K" */
    uint32_t block_elems;
    uint32_t block_bytes;
    int dtype;          /* rd_dtype or -1 */
} rd_gguf_type;

/* Row for GGML type id, NULL when the id is unknown. Static storage. */
const rd_gguf_type *rd_gguf_type_of(uint32_t id);
/* Row redit writes dtype as, NULL when there is none. Static storage. */
const rd_gguf_type *rd_gguf_type_for_dtype(rd_dtype dtype);
/* Writes the names of the types redit reads ("F32, F16, ...") into buf (capacity cap,
 * NUL-terminated, cut when too small). Returns buf. */
char *rd_gguf_readable_types(char *buf, size_t cap);

typedef struct rd_gguf_tensor {
    const char *name; /* name_len bytes, not NUL-terminated (borrowed) */
    uint64_t name_len;
    uint32_t n_dims;                 /* 1..RD_GGUF_MAX_DIMS */
    uint64_t ne[RD_GGUF_MAX_DIMS];   /* fastest-first; unused dims are 1 */
    const rd_gguf_type *type;        /* never NULL after a successful parse */
    uint64_t n_elems;
    uint64_t offset; /* from the start of the file (already includes the data offset) */
    uint64_t bytes;
    const void *data; /* buffer + offset (borrowed) */
} rd_gguf_tensor;

typedef struct rd_gguf {
    uint32_t version; /* 2 or 3 */
    uint32_t alignment;
    uint64_t data_offset; /* start of the tensor data in the file */
    uint64_t n_kv;
    rd_gguf_kv *kv;   /* (n_kv) in file order */
    uint64_t n_tensors;
    rd_gguf_tensor *tensors; /* (n_tensors) in file order */
    /* Lookup indexes sorted by name (private). */
    const rd_gguf_kv **kv_sorted;
    const rd_gguf_tensor **tensor_sorted;
} rd_gguf;

/* Parses size bytes at data. `what` names the file in messages. On success *out is a new
 * rd_gguf that borrows `data` (keep the buffer alive while using it) and that the caller
 * frees with rd_gguf_free. On failure returns -1 with one message in *err and allocates
 * nothing. */
int rd_gguf_parse(const void *data, size_t size, const char *what, rd_gguf **out,
                  rd_error *err);
void rd_gguf_free(rd_gguf *g); /* NULL-safe */

/* The value of key (NUL-terminated), NULL when absent. Borrowed from g. */
const rd_gguf_value *rd_gguf_get(const rd_gguf *g, const char *key);
/* The tensor called name, NULL when absent. Borrowed from g. */
const rd_gguf_tensor *rd_gguf_tensor_get(const rd_gguf *g, const char *name);

/* Reads an integer of any integer type (not BOOL) into *out; -1 when v is not an integer
 * or does not fit int64. */
int rd_gguf_value_int(const rd_gguf_value *v, int64_t *out);
/* Reads FLOAT32/FLOAT64 into *out; -1 otherwise. */
int rd_gguf_value_float(const rd_gguf_value *v, double *out);
/* Element i (< arr->n) of an ARRAY as a value; scalars are decoded into *out, strings and
 * arrays are copied shallowly (still borrowed from arr). -1 when arr is not an array or i
 * is out of range. */
int rd_gguf_array_elem(const rd_gguf_value *arr, uint64_t i, rd_gguf_value *out);

/* Copies n bytes of s into dst (capacity cap ≥ 4, NUL-terminated) for an error message:
 * bytes outside printable ASCII become '?', and a long string is cut with "...".
 * Returns dst. */
char *rd_gguf_printable(char *dst, size_t cap, const char *s, uint64_t n);

/* ---- writing: little-endian GGUF header fields into a growable buffer -----------------
 * Shared by rd_gguf_write and the exporters. The buffer is core's rd_buf: a failed
 * allocation latches `oom`, later puts do nothing, and the writer checks oom once at the
 * end. rd_buf_free (or free(data)) when done. */
typedef rd_buf rd_gguf_buf;

void rd_gguf_put(rd_gguf_buf *b, const void *src, size_t n);
void rd_gguf_put_le(rd_gguf_buf *b, uint64_t v, int bytes); /* the low `bytes` bytes of v */
void rd_gguf_put_str(rd_gguf_buf *b, const char *s, size_t n); /* u64 length + bytes */
void rd_gguf_put_f32(rd_gguf_buf *b, float f);
void rd_gguf_put_key(rd_gguf_buf *b, const char *key, rd_gguf_vtype type);
void rd_gguf_kv_u32(rd_gguf_buf *b, const char *key, uint32_t v);
void rd_gguf_kv_i32(rd_gguf_buf *b, const char *key, int32_t v);
void rd_gguf_kv_f32(rd_gguf_buf *b, const char *key, float v);
void rd_gguf_kv_str(rd_gguf_buf *b, const char *key, const char *s);
void rd_gguf_kv_bool(rd_gguf_buf *b, const char *key, int v);
/* An array KV's key, element type and count; the elements follow. */
void rd_gguf_put_array_head(rd_gguf_buf *b, const char *key, rd_gguf_vtype elem, uint64_t n);
/* Zero bytes up to the next multiple of align. */
void rd_gguf_pad(rd_gguf_buf *b, size_t align);

#endif
