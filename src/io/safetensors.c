/* safetensors reader and writer (see include/redit/safetensors.h).
 *
 * File layout: u64 little-endian header length N, N bytes of UTF-8 JSON (an object; the
 * writer pads it with spaces so the data section starts at a multiple of 8), then the data
 * section. Each header entry other than "__metadata__" is a tensor
 * {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} with offsets relative to
 * the start of the data section; "__metadata__" maps strings to strings.
 *
 * The reader maps the file read-only and checks, before anything points into the data:
 * N ≤ file size − 8 and N ≤ 100,000,000 (the reference implementation's limit); the header
 * holds no NUL byte and is one JSON object followed only by whitespace; every tensor's dtype
 * is a safetensors dtype (all of them, including ones redit does not compute with, so a
 * Hugging Face shard with an I64 buffer or a U8 mask still opens); its shape has at most
 * RD_ST_MAX_DIMS non-negative integer dimensions whose product times the dtype's size is
 * exactly the span of its data_offsets; the offsets lie inside the data section; no two
 * tensors overlap and no name repeats; __metadata__ values are strings.
 * Holes between tensors are accepted (some writers align tensors).
 *
 * Tensor data pointers point into the mapping at the offsets the file gives: they are not
 * necessarily aligned for their element type, so callers check the alignment before using
 * them in place (rd_hf_load does), else copy or convert them (memcpy, rd_dtype_info.to_f32). The file is little-endian,
 * as is every host redit builds on. */
#include "redit/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redit/atomic_file.h"
#include "redit/buf.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian and is read and written as host bytes"
#endif

#define ST_MAX_HEADER 100000000ull    /* the reference implementation's limit */
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53: largest integer a double holds exactly */
#define ST_METADATA_KEY "__metadata__"

/* ---- dtypes ------------------------------------------------------------------------- */

typedef struct st_dtype {
    const char *name;
    unsigned bits; /* per element */
} st_dtype;

/* Every dtype of the safetensors format (safetensors/src/tensor.rs), sub-byte ones too. */
static const st_dtype ST_DTYPES[] = {
    {"BOOL", 8},     {"U8", 8},       {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8},
    {"F8_E8M0", 8},  {"I16", 16},     {"U16", 16}, {"F16", 16},    {"BF16", 16},
    {"I32", 32},     {"U32", 32},     {"F32", 32}, {"F64", 64},    {"I64", 64},
    {"U64", 64},     {"C64", 64},     {"F4", 4},   {"F6_E2M3", 6}, {"F6_E3M2", 6},
};
#define N_ST_DTYPES (sizeof ST_DTYPES / sizeof ST_DTYPES[0])

static const st_dtype *st_dtype_find(const char *name) {
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (strcmp(ST_DTYPES[i].name, name) == 0) return &ST_DTYPES[i];
    return NULL;
}

/* The safetensors dtype name of an rd_dtype, or NULL when the format has none (Q8_0). */
static const char *st_name_of(rd_dtype t) {
    switch (t) {
    case RD_DTYPE_F32: return "F32";
    case RD_DTYPE_F16: return "F16";
    case RD_DTYPE_BF16: return "BF16";
    default: return NULL;
    }
}

/* ---- the file object ---------------------------------------------------------------- */

struct rd_st_file {
    char *path;
    void *map;
    size_t map_size;
    cJSON *root;           /* the parsed header: names, dtypes and metadata point into it */
    const cJSON *metadata; /* the "__metadata__" object, or NULL */
    rd_st_tensor *tensors; /* (n_tensors) in header order */
    int n_tensors;
};

/* A name made printable and short enough for a message (control bytes → '?'). */
static const char *printable(char *dst, size_t cap, const char *s) {
    size_t i = 0, n = strlen(s);
    size_t keep = n < cap - 1 ? n : cap - 4;
    for (; i < keep; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (keep < n) {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    dst[i] = '\0';
    return dst;
}

static int map_file(rd_st_file *f, rd_error *err) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rd_error_set(err, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rd_error_set(err, "%s: cannot stat: %s", f->path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rd_error_set(err, "%s: not a regular file", f->path);
    }
    if (st.st_size < 8) {
        close(fd);
        return rd_error_set(err, "%s: truncated: %lld bytes, too short for the 8-byte header "
                                 "length of a safetensors file", f->path, (long long)st.st_size);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return rd_error_set(err, "%s: cannot map: %s", f->path, strerror(e));
    f->map = p;
    f->map_size = (size_t)st.st_size;
    return 0;
}

/* ---- header parsing ----------------------------------------------------------------- */

/* A JSON number that is a non-negative integer a double holds exactly. */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

typedef struct header_ctx {
    const char *path;
    uint64_t data_size; /* bytes after the header */
    const uint8_t *data;
    rd_error *err;
} header_ctx;

static int parse_shape(const header_ctx *h, const char *name, const cJSON *shape,
                       rd_st_tensor *t) {
    if (!cJSON_IsArray(shape))
        return rd_error_set(h->err, "%s: tensor '%s': \"shape\" is missing or not an array",
                            h->path, name);
    int n = cJSON_GetArraySize(shape);
    if (n > RD_ST_MAX_DIMS)
        return rd_error_set(h->err, "%s: tensor '%s' has %d dimensions (at most %d supported)",
                            h->path, name, n, RD_ST_MAX_DIMS);
    t->n_dims = n;
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        uint64_t v;
        if (json_u64(d, &v))
            return rd_error_set(h->err, "%s: tensor '%s': shape entry %d is not a "
                                        "non-negative integer", h->path, name, i);
        t->shape[i] = (int64_t)v;
    }
    return 0;
}

/* n_elems and the byte count shape × dtype; -1 when the product overflows or is not whole
 * bytes (sub-byte dtypes). */
static int shape_bytes(rd_st_tensor *t, unsigned bits, uint64_t *bytes) {
    uint64_t n = 1;
    for (int i = 0; i < t->n_dims; i++)
        if (t->shape[i] == 0) n = 0;
    for (int i = 0; n && i < t->n_dims; i++)
        if (__builtin_mul_overflow(n, (uint64_t)t->shape[i], &n)) return -1;
    t->n_elems = n;
    uint64_t b;
    if (__builtin_mul_overflow(n, (uint64_t)bits, &b) || b % 8) return -1;
    *bytes = b / 8;
    return 0;
}

static int parse_offsets(const header_ctx *h, const char *name, const cJSON *offs,
                         uint64_t *begin, uint64_t *end) {
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || json_u64(offs->child, begin) ||
        json_u64(offs->child->next, end))
        return rd_error_set(h->err, "%s: tensor '%s': \"data_offsets\" must be an array of two "
                                    "non-negative integers [begin, end]", h->path, name);
    if (*end < *begin)
        return rd_error_set(h->err, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                                    "] end before they begin", h->path, name, *begin, *end);
    if (*end > h->data_size)
        return rd_error_set(h->err, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                                    "] run past the end of the data section (%" PRIu64
                                    " bytes): truncated or corrupt file",
                            h->path, name, *begin, *end, h->data_size);
    return 0;
}

static int parse_tensor(const header_ctx *h, const cJSON *item, rd_st_tensor *t) {
    char name[96];
    printable(name, sizeof name, item->string);
    if (!cJSON_IsObject(item))
        return rd_error_set(h->err, "%s: tensor '%s': the entry is not a JSON object", h->path,
                            name);
    t->name = item->string;
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!cJSON_IsString(dtype))
        return rd_error_set(h->err, "%s: tensor '%s': \"dtype\" is missing or not a string",
                            h->path, name);
    const st_dtype *dt = st_dtype_find(dtype->valuestring);
    if (!dt) {
        char shown[40];
        return rd_error_set(h->err, "%s: tensor '%s': unknown dtype \"%s\" (safetensors "
                                    "dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL ...)",
                            h->path, name, printable(shown, sizeof shown, dtype->valuestring));
    }
    t->dtype = dtype->valuestring;
    rd_dtype rt;
    t->has_rd_dtype = rd_dtype_from_name(dt->name, &rt) == 0 && st_name_of(rt) != NULL;
    t->type = t->has_rd_dtype ? rt : RD_DTYPE_F32;
    if (parse_shape(h, name, cJSON_GetObjectItemCaseSensitive(item, "shape"), t)) return -1;
    uint64_t begin = 0, end = 0, need = 0;
    if (parse_offsets(h, name, cJSON_GetObjectItemCaseSensitive(item, "data_offsets"), &begin,
                      &end))
        return -1;
    if (shape_bytes(t, dt->bits, &need))
        return rd_error_set(h->err, "%s: tensor '%s': its %s shape does not make a whole "
                                    "number of bytes that fits in 64 bits",
                            h->path, name, dt->name);
    if (need != end - begin)
        return rd_error_set(h->err, "%s: tensor '%s': %" PRIu64 " %s elements need %" PRIu64
                                    " bytes but data_offsets [%" PRIu64 ", %" PRIu64
                                    "] span %" PRIu64 " (shape and offsets disagree)",
                            h->path, name, t->n_elems, dt->name, need, begin, end,
                            end - begin);
    t->data = h->data + begin;
    t->n_bytes = (size_t)(end - begin);
    return 0;
}

static int parse_metadata(const header_ctx *h, const cJSON *meta) {
    if (!cJSON_IsObject(meta))
        return rd_error_set(h->err, "%s: \"__metadata__\" is not a JSON object", h->path);
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        char key[96];
        if (!cJSON_IsString(kv))
            return rd_error_set(h->err, "%s: metadata value of \"%s\" is not a string (the "
                                        "format allows only strings)",
                                h->path, printable(key, sizeof key, kv->string));
    }
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses two entries with one name in `obj` (cJSON keeps both). */
static int check_unique_names(const header_ctx *h, const cJSON *obj, const char *what) {
    int n = cJSON_GetArraySize(obj);
    if (n < 2) return 0;
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names) return rd_error_set(h->err, "%s: out of memory", h->path);
    int i = 0;
    for (const cJSON *c = obj->child; c; c = c->next) names[i++] = c->string;
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    int rc = 0;
    for (i = 1; i < n && !rc; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            char shown[96];
            rc = rd_error_set(h->err, "%s: the %s name '%s' appears twice in the header",
                              h->path, what, printable(shown, sizeof shown, names[i]));
        }
    free(names);
    return rc;
}

static int cmp_begin(const void *a, const void *b) {
    const rd_st_tensor *x = *(const rd_st_tensor *const *)a, *y = *(const rd_st_tensor *const *)b;
    const char *px = x->data, *py = y->data;
    return px < py ? -1 : px > py;
}

/* Refuses tensors whose byte ranges overlap (empty tensors never overlap). */
static int check_overlaps(const header_ctx *h, rd_st_tensor *t, int n) {
    if (n < 2) return 0;
    rd_st_tensor **by_begin = malloc((size_t)n * sizeof *by_begin);
    if (!by_begin) return rd_error_set(h->err, "%s: out of memory", h->path);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (t[i].n_bytes) by_begin[m++] = &t[i];
    qsort(by_begin, (size_t)m, sizeof *by_begin, cmp_begin);
    int rc = 0;
    for (int i = 1; i < m && !rc; i++) {
        const rd_st_tensor *a = by_begin[i - 1], *b = by_begin[i];
        if ((const char *)a->data + a->n_bytes > (const char *)b->data) {
            char na[96], nb[96];
            rc = rd_error_set(h->err, "%s: tensors '%s' and '%s' overlap in the data section "
                                      "(corrupt file)", h->path, printable(na, sizeof na, a->name),
                              printable(nb, sizeof nb, b->name));
        }
    }
    free(by_begin);
    return rc;
}

/* Parses the JSON text (len bytes at text, NUL-terminated) into f->root. */
static int parse_json(rd_st_file *f, const char *text, size_t len, rd_error *err) {
    if (memchr(text, '\0', len))
        return rd_error_set(err, "%s: the JSON header contains a NUL byte (corrupt file)",
                            f->path);
    const char *end = NULL;
    f->root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!f->root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return rd_error_set(err, "%s: the header is not valid JSON (error near byte %zu of "
                                 "%zu): corrupt file or not a safetensors file",
                            f->path, at, len);
    }
    for (size_t i = (size_t)(end - text); i < len; i++)
        if (!strchr(" \t\r\n", text[i]))
            return rd_error_set(err, "%s: unexpected bytes after the JSON header (at byte %zu "
                                     "of %zu)", f->path, i, len);
    if (!cJSON_IsObject(f->root))
        return rd_error_set(err, "%s: the header is JSON but not an object", f->path);
    return 0;
}

static int parse_header(rd_st_file *f, rd_error *err) {
    const uint8_t *p = f->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | p[i];
    if (n > f->map_size - 8)
        return rd_error_set(err, "%s: header length %" PRIu64 " runs past the end of the file "
                                 "(%zu bytes follow the length field): truncated or not a "
                                 "safetensors file", f->path, n, f->map_size - 8);
    if (n > ST_MAX_HEADER)
        return rd_error_set(err, "%s: header length %" PRIu64 " exceeds the %llu-byte limit",
                            f->path, n, ST_MAX_HEADER);
    if (n < 2)
        return rd_error_set(err, "%s: header length %" PRIu64 " is too short for a JSON object",
                            f->path, n);
    char *text = malloc((size_t)n + 1);
    if (!text) return rd_error_set(err, "%s: out of memory for a %" PRIu64 "-byte header",
                                   f->path, n);
    memcpy(text, p + 8, (size_t)n);
    text[n] = '\0';
    int rc = parse_json(f, text, (size_t)n, err);
    free(text);
    if (rc) return -1;

    header_ctx h = {f->path, f->map_size - 8 - n, p + 8 + n, err};
    int count = 0;
    for (const cJSON *c = f->root->child; c; c = c->next)
        if (strcmp(c->string, ST_METADATA_KEY) == 0) {
            if (parse_metadata(&h, c)) return -1;
            f->metadata = c;
        } else {
            count++;
        }
    if (check_unique_names(&h, f->root, "tensor")) return -1;
    if (f->metadata && check_unique_names(&h, f->metadata, "metadata")) return -1;
    f->tensors = calloc(count ? (size_t)count : 1, sizeof *f->tensors);
    if (!f->tensors) return rd_error_set(err, "%s: out of memory", f->path);
    for (const cJSON *c = f->root->child; c; c = c->next)
        if (c != f->metadata && parse_tensor(&h, c, &f->tensors[f->n_tensors++])) return -1;
    return check_overlaps(&h, f->tensors, f->n_tensors);
}

rd_st_file *rd_st_open(const char *path, rd_error *err) {
    rd_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        rd_error_set(err, "%s: out of memory", path);
        return NULL;
    }
    if (map_file(f, err) || parse_header(f, err)) {
        rd_st_close(f);
        return NULL;
    }
    return f;
}

void rd_st_close(rd_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_size);
    cJSON_Delete(f->root);
    free(f->tensors);
    free(f->path);
    free(f);
}

void *rd_st_take_map(rd_st_file *f, size_t *size) {
    void *p = f->map;
    *size = p ? f->map_size : 0;
    f->map = NULL;
    return p;
}

int rd_st_count(const rd_st_file *f) { return f->n_tensors; }

const rd_st_tensor *rd_st_at(const rd_st_file *f, int i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const rd_st_tensor *rd_st_find(const rd_st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *rd_st_metadata(const rd_st_file *f, const char *key) {
    if (!f->metadata) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->metadata, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- writer ------------------------------------------------------------------------- */

typedef struct st_entry {
    char *name;
    rd_dtype type;
    int n_dims;
    int64_t shape[RD_ST_MAX_DIMS];
    const void *data; /* borrowed */
    uint64_t n_bytes;
} st_entry;

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct rd_st_writer {
    st_entry *t; /* (cap) n used */
    int n;
    size_t cap;
    st_meta *meta; /* (cap_meta) n_meta used */
    int n_meta;
    size_t cap_meta;
    uint64_t data_bytes; /* sum of n_bytes */
};

rd_st_writer *rd_st_writer_new(rd_error *err) {
    rd_st_writer *w = calloc(1, sizeof *w);
    if (!w) rd_error_set(err, "out of memory");
    return w;
}

void rd_st_writer_free(rd_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->t);
    free(w->meta);
    free(w);
}

static int check_entry(const rd_st_writer *w, const char *name, rd_dtype type,
                       const int64_t *shape, int n_dims, const void *data, uint64_t *bytes,
                       rd_error *err) {
    if (!name || !*name || strcmp(name, ST_METADATA_KEY) == 0)
        return rd_error_set(err, "safetensors writer: invalid tensor name '%s'",
                            name ? name : "(null)");
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return rd_error_set(err, "safetensors writer: tensor '%s' added twice", name);
    if (!st_name_of(type))
        return rd_error_set(err, "safetensors writer: tensor '%s': type %s has no safetensors "
                                 "dtype (F32, F16 or BF16)", name,
                            rd_dtype_info_of(type) ? rd_dtype_info_of(type)->name : "?");
    if (n_dims < 0 || n_dims > RD_ST_MAX_DIMS || (n_dims && !shape))
        return rd_error_set(err, "safetensors writer: tensor '%s': %d dimensions (0 to %d)",
                            name, n_dims, RD_ST_MAX_DIMS);
    uint64_t n = 1;
    for (int i = 0; i < n_dims; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, (uint64_t)shape[i], &n))
            return rd_error_set(err, "safetensors writer: tensor '%s': bad shape", name);
    if (rd_dtype_bytes(type, n, bytes) || *bytes > UINT64_MAX - w->data_bytes)
        return rd_error_set(err, "safetensors writer: tensor '%s' is too large", name);
    if (*bytes && !data)
        return rd_error_set(err, "safetensors writer: tensor '%s' has no data", name);
    return 0;
}

int rd_st_writer_add(rd_st_writer *w, const char *name, rd_dtype type, const int64_t *shape,
                     int n_dims, const void *data, rd_error *err) {
    uint64_t bytes;
    if (check_entry(w, name, type, shape, n_dims, data, &bytes, err)) return -1;
    if (rd_array_reserve(&w->t, &w->cap, (size_t)w->n + 1, sizeof *w->t))
        return rd_error_set(err, "safetensors writer: out of memory");
    st_entry *e = &w->t[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return rd_error_set(err, "safetensors writer: out of memory");
    e->type = type;
    e->n_dims = n_dims;
    for (int i = 0; i < n_dims; i++) e->shape[i] = shape[i];
    e->data = data;
    e->n_bytes = bytes;
    w->data_bytes += bytes;
    w->n++;
    return 0;
}

/* GCC 12's analyser reports the copies stored into w->meta as leaked: it loses track of a
 * store through an array that rd_array_reserve (another file) returned. The writer owns them. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
int rd_st_writer_meta(rd_st_writer *w, const char *key, const char *value, rd_error *err) {
    if (!key || !*key || !value)
        return rd_error_set(err, "safetensors writer: metadata needs a key and a value");
    char *v = strdup(value);
    if (!v) return rd_error_set(err, "safetensors writer: out of memory");
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) { /* a key set twice keeps the last value */
            free(w->meta[i].value);
            w->meta[i].value = v;
            return 0;
        }
    char *k = strdup(key);
    if (!k || rd_array_reserve(&w->meta, &w->cap_meta, (size_t)w->n_meta + 1, sizeof *w->meta)) {
        free(k);
        free(v);
        return rd_error_set(err, "safetensors writer: out of memory");
    }
    w->meta[w->n_meta++] = (st_meta){k, v};
    return 0;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* Moves item into obj under key (or into an array when key is NULL); deletes it on failure. */
static int attach(cJSON *obj, const char *key, cJSON *item) {
    int ok = item && (key ? cJSON_AddItemToObject(obj, key, item)
                          : cJSON_AddItemToArray(obj, item));
    if (!ok) cJSON_Delete(item);
    return ok ? 0 : -1;
}

/* Adds an exact integer (cJSON's own number printing may switch to exponents). */
static int add_int(cJSON *arr, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return attach(arr, NULL, cJSON_CreateRaw(buf));
}

static cJSON *int_array(const int64_t *v, int n) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n; i++)
        if (add_int(arr, v[i])) {
            cJSON_Delete(arr);
            return NULL;
        }
    return arr;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [begin, end]} */
static int add_entry_json(cJSON *root, const st_entry *e, uint64_t begin) {
    const int64_t offs[2] = {(int64_t)begin, (int64_t)(begin + e->n_bytes)};
    cJSON *t = cJSON_CreateObject();
    if (!t) return -1;
    if (!cJSON_AddStringToObject(t, "dtype", st_name_of(e->type)) ||
        attach(t, "shape", int_array(e->shape, e->n_dims)) ||
        attach(t, "data_offsets", int_array(offs, 2))) {
        cJSON_Delete(t);
        return -1;
    }
    return attach(root, e->name, t);
}

/* The header JSON: "__metadata__" first (when any), then the tensors in order. */
static char *header_json(const rd_st_writer *w) {
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && w->n_meta) {
        cJSON *meta = cJSON_AddObjectToObject(root, ST_METADATA_KEY);
        ok = meta != NULL;
        for (int i = 0; ok && i < w->n_meta; i++)
            ok = cJSON_AddStringToObject(meta, w->meta[i].key, w->meta[i].value) != NULL;
    }
    uint64_t off = 0;
    for (int i = 0; ok && i < w->n; i++) {
        ok = add_entry_json(root, &w->t[i], off) == 0;
        off += w->t[i].n_bytes;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

int rd_st_writer_commit(rd_st_writer *w, const char *path, rd_error *err) {
    char *json = header_json(w);
    if (!json) return rd_error_set(err, "%s: out of memory building the header", path);
    size_t len = strlen(json), padded = (len + 7) / 8 * 8; /* data starts 8-byte aligned */
    if (padded > ST_MAX_HEADER) {
        free(json);
        return rd_error_set(err, "%s: the header would be %zu bytes, over the format's %llu-byte "
                                 "limit", path, padded, ST_MAX_HEADER);
    }
    rd_atomic_file af;
    if (rd_atomic_file_open(&af, path, err)) {
        free(json);
        return -1;
    }
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    char spaces[8];
    memset(spaces, ' ', sizeof spaces);
    int bad = rd_atomic_file_write(&af, lenbuf, 8) || rd_atomic_file_write(&af, json, len) ||
              rd_atomic_file_write(&af, spaces, padded - len);
    free(json);
    for (int i = 0; !bad && i < w->n; i++)
        bad = rd_atomic_file_write(&af, w->t[i].data, (size_t)w->t[i].n_bytes);
    if (bad) {
        int e = errno;
        rd_atomic_file_abort(&af);
        return rd_error_set(err, "%s: cannot write: %s", path, strerror(e));
    }
    return rd_atomic_file_commit(&af, err);
}
