/* Frozen-model configuration checks and weight storage (mapping + owned buffers). */
#include "redit/weights.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redit/buf.h"

/* Upper bounds well above any Llama-2-family model, low enough that products of them
 * cannot overflow 64-bit sizes. */
#define MAX_DIM (1 << 16)
#define MAX_HIDDEN (1 << 18)
#define MAX_LAYERS 1024
#define MAX_HEADS 1024
#define MAX_VOCAB (1 << 22)
#define MAX_SEQ (1 << 22)

int rd_config_validate(const rd_config *c, const char *what, rd_error *err) {
#define CHECK_RANGE(field, lo, hi)                                                           \
    if (c->field < (lo) || c->field > (hi))                                                  \
        return rd_error_set(err, "%s: %s = %d is out of range [%d, %d]", what, #field,       \
                            c->field, (int)(lo), (int)(hi));
    CHECK_RANGE(dim, 1, MAX_DIM)
    CHECK_RANGE(hidden_dim, 1, MAX_HIDDEN)
    CHECK_RANGE(n_layers, 1, MAX_LAYERS)
    CHECK_RANGE(n_heads, 1, MAX_HEADS)
    CHECK_RANGE(n_kv_heads, 1, MAX_HEADS)
    CHECK_RANGE(vocab_size, 1, MAX_VOCAB)
    CHECK_RANGE(seq_len, 1, MAX_SEQ)
#undef CHECK_RANGE
    if (c->dim % c->n_heads)
        return rd_error_set(err, "%s: n_heads = %d does not divide dim = %d", what, c->n_heads,
                            c->dim);
    if (c->n_heads % c->n_kv_heads)
        return rd_error_set(err, "%s: n_kv_heads = %d does not divide n_heads = %d", what,
                            c->n_kv_heads, c->n_heads);
    if ((c->dim / c->n_heads) % 2)
        return rd_error_set(err, "%s: head dimension %d is odd (RoPE needs pairs)", what,
                            c->dim / c->n_heads);
    if (!isfinite(c->norm_eps) || c->norm_eps <= 0.0f || c->norm_eps > 1.0f)
        return rd_error_set(err, "%s: norm epsilon %g is not a finite value in (0, 1]", what,
                            (double)c->norm_eps);
    if (!isfinite(c->rope_theta) || c->rope_theta <= 1.0f)
        return rd_error_set(err, "%s: rope theta %g is not a finite value above 1", what,
                            (double)c->rope_theta);
    if (c->rope_layout != RD_ROPE_ADJACENT && c->rope_layout != RD_ROPE_HALF)
        return rd_error_set(err, "%s: unknown rope layout %d", what, (int)c->rope_layout);
    return 0;
}

uint64_t rd_config_param_count(const rd_config *c, int tied_classifier) {
    uint64_t d = (uint64_t)c->dim, h = (uint64_t)c->hidden_dim, V = (uint64_t)c->vocab_size;
    uint64_t kv = (uint64_t)rd_config_kv_dim(c);
    uint64_t per_layer = 2 * d          /* norms */
                         + d * d * 2    /* wq, wo */
                         + 2 * d * kv   /* wk, wv */
                         + 3 * d * h;   /* w1, w2, w3 */
    return V * d + (uint64_t)c->n_layers * per_layer + d + (tied_classifier ? 0 : V * d);
}

size_t rd_memory_available(void) {
    FILE *fp = fopen("/proc/meminfo", "r");
    if (!fp) return SIZE_MAX;
    char line[256];
    size_t kb = 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, fp)) found = sscanf(line, "MemAvailable: %zu kB", &kb) == 1;
    fclose(fp);
    return found ? kb * 1024 : SIZE_MAX;
}

int rd_memory_check(size_t bytes, const char *what, rd_error *err) {
    const size_t avail = rd_memory_available();
    if (bytes <= avail) return 0;
    return rd_error_set(err, "%s needs %.2f GB of memory but %.2f GB are available", what,
                        (double)bytes / 1e9, (double)avail / 1e9);
}

void *rd_weights_alloc(rd_weights *w, size_t bytes, rd_error *err) {
    if (w->n_owned == INT_MAX ||
        rd_array_reserve(&w->owned, &w->cap_owned, (size_t)w->n_owned + 1, sizeof *w->owned)) {
        rd_error_set(err, "out of memory");
        return NULL;
    }
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) {
        rd_error_set(err, "allocation of %zu bytes overflows", bytes);
        return NULL;
    }
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        rd_error_set(err, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, rounded ? rounded : 64);
    w->owned[w->n_owned++] = p;
    w->owned_bytes += bytes;
    return p;
}

int rd_weights_adopt_map(rd_weights *w, void *p, size_t size, rd_error *err) {
    if (w->n_maps == INT_MAX ||
        rd_array_reserve(&w->maps, &w->cap_maps, (size_t)w->n_maps + 1, sizeof *w->maps)) {
        munmap(p, size);
        return rd_error_set(err, "out of memory");
    }
    w->maps[w->n_maps++] = (rd_weights_map){.p = p, .size = size};
    return 0;
}

size_t rd_weights_mapped_bytes(const rd_weights *w) {
    size_t n = w->map ? w->map_size : 0;
    for (int i = 0; i < w->n_maps; i++) n += w->maps[i].size;
    return n;
}

int rd_weights_map_file(rd_weights *w, const char *path, rd_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rd_error_set(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rd_error_set(err, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return rd_error_set(err, "%s: the file is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return rd_error_set(err, "%s: cannot map: %s", path, strerror(e));
    w->map = p;
    w->map_size = (size_t)st.st_size;
    return 0;
}

void rd_weights_release(rd_weights *w) {
    if (!w) return;
    if (w->map) munmap(w->map, w->map_size);
    for (int i = 0; i < w->n_maps; i++) munmap(w->maps[i].p, w->maps[i].size);
    free(w->maps);
    for (int i = 0; i < w->n_owned; i++) free(w->owned[i]);
    free(w->owned);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

int rd_matrix_init(rd_matrix *m, rd_dtype type, const void *data, int64_t rows, int64_t cols,
                   rd_error *err) {
    uint64_t row_bytes;
    if (rows < 0 || cols <= 0 || rd_dtype_bytes(type, (uint64_t)cols, &row_bytes) != 0)
        return rd_error_set(err, "a %lld-column row is not a whole number of %s blocks",
                            (long long)cols,
                            rd_dtype_info_of(type) ? rd_dtype_info_of(type)->name : "?");
    m->type = type;
    m->data = data;
    m->rows = rows;
    m->cols = cols;
    m->row_bytes = (size_t)row_bytes;
    m->bf16 = NULL;
    m->q8_products = 0;
    return 0;
}

void rd_matrix_row_f32(const rd_matrix *m, int64_t r, float *dst) {
    rd_dtype_info_of(m->type)->to_f32((const char *)m->data + (size_t)r * m->row_bytes, dst,
                                      (size_t)m->cols);
}
