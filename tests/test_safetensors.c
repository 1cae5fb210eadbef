/* safetensors reading and writing (src/io/safetensors.c): writer → reader round trips,
 * hand-built files (every safetensors dtype, holes, padding, no metadata) and one test per
 * kind of bad input, each expected to fail with a message naming the file and the problem,
 * leaving no mapping or descriptor behind. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/bytebuf.h"
#include "helpers/tiny_model.h"
#include "redit/safetensors.h"

typedef struct fixture {
    char dir[512];
    char path[600]; /* dir/t.safetensors */
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tiny_tempdir(fx->dir, sizeof fx->dir)) return -1;
    snprintf(fx->path, sizeof fx->path, "%s/t.safetensors", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tiny_rmdir(fx->dir);
    free(fx);
    return 0;
}


static int count_mappings_of(const char *path) {
    FILE *fp = fopen("/proc/self/maps", "r");
    if (!fp) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, fp))
        if (strstr(line, path)) n++;
    fclose(fp);
    return n;
}

/* A file: u64 header length (the JSON's length unless len_override), the JSON, data. */
static void write_raw(const char *path, const char *json, const void *data, size_t n_data) {
    bytebuf b;
    bb_init(&b);
    bb_u64(&b, strlen(json));
    bb_bytes(&b, json, strlen(json));
    if (n_data) bb_bytes(&b, data, n_data);
    assert_int_equal(bb_write_file(&b, path, b.len), 0);
    bb_free(&b);
}

/* Expects rd_st_open(path) to fail naming the file and containing every needle. */
static void expect_fail(const char *path, const char *needle, ...) {
    rd_error err = {{0}};
    int fds = tiny_count_entries("/proc/self/fd");
    rd_st_file *f = rd_st_open(path, &err);
    if (f) {
        rd_st_close(f);
        fail_msg("%s opened, expected an error mentioning '%s'", path, needle);
    }
    assert_int_equal(count_mappings_of(path), 0);
    assert_int_equal(tiny_count_entries("/proc/self/fd"), fds);
    if (!strstr(err.msg, path)) fail_msg("message does not name the file: %s", err.msg);
    va_list ap;
    va_start(ap, needle);
    for (const char *n = needle; n; n = va_arg(ap, const char *))
        if (!strstr(err.msg, n)) fail_msg("message '%s' lacks '%s'", err.msg, n);
    va_end(ap);
}

/* Writes json + n_data zero bytes and expects the open to fail with needle. */
static void expect_json_fails(const char *path, const char *json, size_t n_data,
                              const char *needle) {
    void *zeros = calloc(1, n_data ? n_data : 1);
    assert_non_null(zeros);
    write_raw(path, json, zeros, n_data);
    free(zeros);
    expect_fail(path, needle, NULL);
}

/* ---- round trips -------------------------------------------------------------------- */

static void test_roundtrip(void **state) {
    fixture *fx = *state;
    float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    uint16_t h[4] = {0x3c00, 0xbc00, 0x7c00, 0x0001}; /* F16: 1, -1, inf, smallest subnormal */
    uint16_t bf[4] = {0x3f80, 0xc000, 0x7f80, 0x0001};
    float scalar = 42.0f;
    const int64_t sa[2] = {2, 3}, sh[1] = {4}, sbf[3] = {1, 2, 2}, sz[2] = {0, 5};
    rd_error err = {{0}};
    rd_st_writer *w = rd_st_writer_new(&err);
    assert_non_null(w);
    assert_int_equal(rd_st_writer_add(w, "a.weight", RD_DTYPE_F32, sa, 2, a, &err), 0);
    assert_int_equal(rd_st_writer_add(w, "h", RD_DTYPE_F16, sh, 1, h, &err), 0);
    assert_int_equal(rd_st_writer_add(w, "odd \"name\" \xc3\xa9", RD_DTYPE_BF16, sbf, 3, bf,
                                      &err), 0);
    assert_int_equal(rd_st_writer_add(w, "scalar", RD_DTYPE_F32, NULL, 0, &scalar, &err), 0);
    assert_int_equal(rd_st_writer_add(w, "empty", RD_DTYPE_F32, sz, 2, NULL, &err), 0);
    assert_int_equal(rd_st_writer_meta(w, "format", "pt", &err), 0);
    assert_int_equal(rd_st_writer_meta(w, "note", "first", &err), 0);
    assert_int_equal(rd_st_writer_meta(w, "note", "{\"json\": [1, 2]}\n", &err), 0);
    if (rd_st_writer_commit(w, fx->path, &err)) fail_msg("commit: %s", err.msg);
    rd_st_writer_free(w);
    assert_int_equal(tiny_count_entries(fx->dir), 1); /* no temporary file left */

    bytebuf b;
    bb_init(&b);
    assert_int_equal(bb_read_file(&b, fx->path), 0);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b.data[i];
    assert_int_equal(n % 8, 0);
    assert_int_equal(b.data[8], '{');
    assert_int_equal(b.len, 8 + n + sizeof a + sizeof h + sizeof bf + sizeof scalar);
    size_t last = 8 + (size_t)n - 1;
    while (b.data[last] == ' ') last--;
    assert_int_equal(b.data[last], '}'); /* padding is spaces after the object */
    bb_free(&b);

    rd_st_file *f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    assert_int_equal(rd_st_count(f), 5);
    const rd_st_tensor *t = rd_st_at(f, 0);
    assert_string_equal(t->name, "a.weight");
    assert_string_equal(t->dtype, "F32");
    assert_true(t->has_rd_dtype);
    assert_int_equal(t->type, RD_DTYPE_F32);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->n_elems, 6);
    assert_int_equal(t->n_bytes, sizeof a);
    assert_memory_equal(t->data, a, sizeof a);
    t = rd_st_at(f, 1);
    assert_string_equal(t->name, "h");
    assert_int_equal(t->type, RD_DTYPE_F16);
    assert_memory_equal(t->data, h, sizeof h);
    t = rd_st_at(f, 2);
    assert_string_equal(t->name, "odd \"name\" \xc3\xa9");
    assert_string_equal(t->dtype, "BF16");
    assert_int_equal(t->type, RD_DTYPE_BF16);
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->n_elems, 4);
    assert_memory_equal(t->data, bf, sizeof bf);
    t = rd_st_find(f, "scalar");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 0);
    assert_int_equal(t->n_elems, 1);
    assert_memory_equal(t->data, &scalar, sizeof scalar);
    t = rd_st_find(f, "empty");
    assert_non_null(t);
    assert_int_equal(t->n_elems, 0);
    assert_int_equal(t->n_bytes, 0);
    assert_null(rd_st_find(f, "missing"));
    assert_null(rd_st_find(f, "__metadata__"));
    assert_null(rd_st_at(f, 5));
    assert_null(rd_st_at(f, -1));
    assert_string_equal(rd_st_metadata(f, "format"), "pt");
    assert_string_equal(rd_st_metadata(f, "note"), "{\"json\": [1, 2]}\n");
    assert_null(rd_st_metadata(f, "other"));
    assert_int_equal(count_mappings_of(fx->path), 1);
    rd_st_close(f);
    assert_int_equal(count_mappings_of(fx->path), 0);
    rd_st_close(NULL);
}

static void test_empty_writer(void **state) {
    fixture *fx = *state;
    rd_error err = {{0}};
    rd_st_writer *w = rd_st_writer_new(&err);
    assert_non_null(w);
    if (rd_st_writer_commit(w, fx->path, &err)) fail_msg("commit: %s", err.msg);
    rd_st_writer_free(w);
    rd_st_file *f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    assert_int_equal(rd_st_count(f), 0);
    assert_null(rd_st_metadata(f, "format"));
    rd_st_close(f);
}

/* Files other writers make: every dtype, holes between tensors, pretty-printed JSON with
 * trailing newline and spaces, sub-byte types, no metadata, tensors out of offset order. */
static void test_foreign_file(void **state) {
    fixture *fx = *state;
    const char *json =
        "{\n  \"ids\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [16, 32]},\n"
        "  \"mask\": {\"dtype\": \"BOOL\", \"shape\": [3], \"data_offsets\": [0, 3]},\n"
        "  \"u8\": {\"dtype\": \"U8\", \"shape\": [1, 2], \"data_offsets\": [3, 5]},\n"
        "  \"d\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [32, 40]},\n"
        "  \"f4\": {\"dtype\": \"F4\", \"shape\": [4], \"data_offsets\": [40, 42]},\n"
        "  \"f8\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], \"data_offsets\": [42, 44]},\n"
        "  \"w\": {\"dtype\": \"F16\", \"shape\": [2, 2], \"data_offsets\": [44, 52], "
        "\"extra\": 1}\n}\n   ";
    uint8_t data[52];
    for (int i = 0; i < 52; i++) data[i] = (uint8_t)i;
    write_raw(fx->path, json, data, sizeof data);
    rd_error err = {{0}};
    rd_st_file *f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    assert_int_equal(rd_st_count(f), 7);
    const rd_st_tensor *t = rd_st_at(f, 0);
    assert_string_equal(t->name, "ids");
    assert_string_equal(t->dtype, "I64");
    assert_false(t->has_rd_dtype);
    assert_int_equal(t->n_bytes, 16);
    assert_memory_equal(t->data, data + 16, 16);
    t = rd_st_find(f, "mask");
    assert_false(t->has_rd_dtype);
    assert_memory_equal(t->data, data, 3);
    t = rd_st_find(f, "f4");
    assert_int_equal(t->n_elems, 4);
    assert_int_equal(t->n_bytes, 2);
    t = rd_st_find(f, "w");
    assert_true(t->has_rd_dtype);
    assert_int_equal(t->type, RD_DTYPE_F16);
    assert_memory_equal(t->data, data + 44, 8);
    assert_null(rd_st_metadata(f, "format"));
    rd_st_close(f);

    write_raw(fx->path, "{}", NULL, 0); /* no tensors at all */
    f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    assert_int_equal(rd_st_count(f), 0);
    rd_st_close(f);
}

/* ---- bad files ---------------------------------------------------------------------- */

static void test_bad_sizes(void **state) {
    fixture *fx = *state;
    bytebuf b;
    bb_init(&b);
    bb_u32(&b, 2);
    assert_int_equal(bb_write_file(&b, fx->path, b.len), 0);
    expect_fail(fx->path, "truncated", NULL);

    bb_reset(&b);
    bb_u64(&b, 100); /* claims 100 header bytes, has 2 */
    bb_bytes(&b, "{}", 2);
    assert_int_equal(bb_write_file(&b, fx->path, b.len), 0);
    expect_fail(fx->path, "header length 100", "past the end", NULL);

    bb_reset(&b);
    bb_u64(&b, 0);
    bb_bytes(&b, "{}", 2);
    assert_int_equal(bb_write_file(&b, fx->path, b.len), 0);
    expect_fail(fx->path, "too short", NULL);

    bb_reset(&b);
    bb_u64(&b, UINT64_MAX);
    bb_bytes(&b, "{}", 2);
    assert_int_equal(bb_write_file(&b, fx->path, b.len), 0);
    expect_fail(fx->path, "past the end", NULL);
    bb_free(&b);

    /* A header over the 100 MB limit in a (sparse) file large enough to hold it. */
    int fd = open(fx->path, O_WRONLY | O_TRUNC | O_CREAT, 0644);
    assert_true(fd >= 0);
    uint64_t n = 100000001;
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(n >> (8 * i));
    assert_int_equal(write(fd, len, 8), 8);
    assert_int_equal(ftruncate(fd, 8 + 100000064), 0);
    close(fd);
    expect_fail(fx->path, "limit", NULL);

    assert_int_equal(bb_write_file(&(bytebuf){0}, fx->path, 0), 0); /* empty file */
    expect_fail(fx->path, "truncated", NULL);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/none.safetensors", fx->dir);
    expect_fail(missing, "cannot open", NULL);
    expect_fail(fx->dir, "not a regular file", NULL);
}

static void test_bad_json(void **state) {
    fixture *fx = *state;
    expect_json_fails(fx->path, "{\"a\": ", 0, "not valid JSON");
    expect_json_fails(fx->path, "[1, 2]", 0, "not an object");
    expect_json_fails(fx->path, "\"text\"", 0, "not an object");
    expect_json_fails(fx->path, "{} x", 0, "unexpected bytes after the JSON");
    expect_json_fails(fx->path, "{}{}", 0, "unexpected bytes after the JSON");
    bytebuf b;
    bb_init(&b);
    bb_u64(&b, 4);
    bb_bytes(&b, "{}\0 ", 4);
    assert_int_equal(bb_write_file(&b, fx->path, b.len), 0);
    bb_free(&b);
    expect_fail(fx->path, "NUL", NULL);
}

/* A header with one tensor "a". */
#define ONE(dtype, shape, offsets)                                                           \
    "{\"a\": {\"dtype\": \"" dtype "\", \"shape\": " shape ", \"data_offsets\": " offsets "}}"

static void test_bad_tensor_entries(void **state) {
    fixture *fx = *state;
    const char *p = fx->path;
    expect_json_fails(p, "{\"a\": 5}", 0, "'a': the entry is not a JSON object");
    expect_json_fails(p, "{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                      "\"dtype\" is missing");
    expect_json_fails(p, "{\"a\": {\"dtype\": 1, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                      "\"dtype\" is missing or not a string");
    expect_json_fails(p, ONE("F33", "[1]", "[0, 4]"), 4, "unknown dtype \"F33\"");
    expect_json_fails(p, ONE("f32", "[1]", "[0, 4]"), 4, "unknown dtype");
    expect_json_fails(p, ONE("Q8_0", "[32]", "[0, 34]"), 34, "unknown dtype");
    expect_json_fails(p, "{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
                      "\"shape\" is missing");
    expect_json_fails(p, ONE("F32", "[-1]", "[0, 4]"), 4, "shape entry 0");
    expect_json_fails(p, ONE("F32", "[1, 1.5]", "[0, 4]"), 4, "shape entry 1");
    expect_json_fails(p, ONE("F32", "[\"1\"]", "[0, 4]"), 4, "shape entry 0");
    expect_json_fails(p, ONE("F32", "[1, 1, 1, 1, 1, 1, 1, 1, 1]", "[0, 4]"), 4, "9 dimensions");
    expect_json_fails(p, ONE("F32", "[1]", "[0]"), 4, "data_offsets");
    expect_json_fails(p, ONE("F32", "[1]", "[0, 4, 8]"), 8, "data_offsets");
    expect_json_fails(p, ONE("F32", "[1]", "[0, 1e300]"), 4, "data_offsets");
    expect_json_fails(p, ONE("F32", "[1]", "[8, 4]"), 8, "end before they begin");
    expect_json_fails(p, ONE("F32", "[1]", "[0, 4]"), 3, "run past the end of the data section");
    expect_json_fails(p, ONE("F32", "[3]", "[0, 8]"), 8, "disagree");
    expect_json_fails(p, ONE("F16", "[2, 2]", "[0, 16]"), 16, "need 8 bytes");
    expect_json_fails(p, ONE("F32", "[4294967296, 4294967296]", "[0, 4]"), 4, "64 bits");
    expect_json_fails(p, ONE("F4", "[3]", "[0, 2]"), 2, "whole number of bytes");
}

static void test_bad_layout(void **state) {
    fixture *fx = *state;
    const char *p = fx->path;
    expect_json_fails(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                         " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                      12, "overlap");
    expect_json_fails(p, "{\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]},"
                         " \"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 12]}}",
                      12, "'a' and 'b' overlap");
    expect_json_fails(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                         " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                      8, "'a' appears twice");
    expect_json_fails(p, "{\"__metadata__\": [\"x\"]}", 0, "\"__metadata__\" is not a JSON object");
    expect_json_fails(p, "{\"__metadata__\": {\"k\": \"v\", \"n\": 3}}", 0,
                      "metadata value of \"n\" is not a string");
    expect_json_fails(p, "{\"__metadata__\": {\"k\": \"v\", \"k\": \"w\"}}", 0,
                      "'k' appears twice");
    /* an empty tensor inside another one's bytes is no overlap */
    void *zeros = calloc(1, 8);
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]}}",
              zeros, 8);
    free(zeros);
    rd_error err = {{0}};
    rd_st_file *f = rd_st_open(p, &err);
    if (!f) fail_msg("open: %s", err.msg);
    rd_st_close(f);
}

/* A valid file cut short anywhere must fail cleanly. */
static void test_truncated_everywhere(void **state) {
    fixture *fx = *state;
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int64_t s[1] = {4};
    rd_error err = {{0}};
    rd_st_writer *w = rd_st_writer_new(&err);
    assert_int_equal(rd_st_writer_add(w, "x", RD_DTYPE_F32, s, 1, v, &err), 0);
    assert_int_equal(rd_st_writer_add(w, "y", RD_DTYPE_F32, s, 1, v + 4, &err), 0);
    assert_int_equal(rd_st_writer_meta(w, "k", "v", &err), 0);
    assert_int_equal(rd_st_writer_commit(w, fx->path, &err), 0);
    rd_st_writer_free(w);
    bytebuf b;
    bb_init(&b);
    assert_int_equal(bb_read_file(&b, fx->path), 0);
    char cut[700];
    snprintf(cut, sizeof cut, "%s/cut.safetensors", fx->dir);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(bb_write_file(&b, cut, n), 0);
        rd_st_file *f = rd_st_open(cut, &err);
        if (f) fail_msg("a %zu-byte prefix of a %zu-byte file opened", n, b.len);
        if (!strstr(err.msg, cut)) fail_msg("message does not name the file: %s", err.msg);
    }
    /* and any single corrupted header byte either fails or still describes valid data */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b.data[i];
    for (size_t i = 8; i < 8 + hl; i++) {
        uint8_t keep = b.data[i];
        b.data[i] = (uint8_t)(keep ^ 0x5a);
        assert_int_equal(bb_write_file(&b, cut, b.len), 0);
        rd_st_file *f = rd_st_open(cut, &err);
        unsigned sum = 0; /* reading every byte a tensor claims must not fault */
        for (int k = 0; f && k < rd_st_count(f); k++) {
            const rd_st_tensor *t = rd_st_at(f, k);
            assert_true(t->n_bytes <= 32);
            for (size_t j = 0; j < t->n_bytes; j++) sum += ((const uint8_t *)t->data)[j];
        }
        assert_true(sum < 32u * 256u);
        rd_st_close(f);
        b.data[i] = keep;
    }
    bb_free(&b);
}

/* ---- writer errors ------------------------------------------------------------------ */

static void expect_add_fails(rd_st_writer *w, const char *name, rd_dtype type,
                             const int64_t *shape, int n_dims, const void *data,
                             const char *needle) {
    rd_error err = {{0}};
    assert_int_equal(rd_st_writer_add(w, name, type, shape, n_dims, data, &err), -1);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_writer_errors(void **state) {
    fixture *fx = *state;
    float v[4] = {0};
    const int64_t s[1] = {4}, neg[1] = {-1}, many[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    rd_error err = {{0}};
    rd_st_writer *w = rd_st_writer_new(&err);
    assert_int_equal(rd_st_writer_add(w, "x", RD_DTYPE_F32, s, 1, v, &err), 0);
    expect_add_fails(w, "x", RD_DTYPE_F32, s, 1, v, "added twice");
    expect_add_fails(w, "q", RD_DTYPE_Q8_0, s, 1, v, "no safetensors dtype");
    expect_add_fails(w, "n", RD_DTYPE_F32, neg, 1, v, "bad shape");
    expect_add_fails(w, "m", RD_DTYPE_F32, many, 9, v, "9 dimensions");
    expect_add_fails(w, "__metadata__", RD_DTYPE_F32, s, 1, v, "invalid tensor name");
    expect_add_fails(w, "", RD_DTYPE_F32, s, 1, v, "invalid tensor name");
    expect_add_fails(w, "nodata", RD_DTYPE_F32, s, 1, NULL, "no data");
    assert_int_equal(rd_st_writer_meta(w, "", "v", &err), -1);
    assert_int_equal(rd_st_writer_meta(w, "k", NULL, &err), -1);

    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", fx->dir);
    assert_int_equal(rd_st_writer_commit(w, bad, &err), -1);
    if (!strstr(err.msg, bad)) fail_msg("message does not name the file: %s", err.msg);
    /* the failed calls left the writer usable */
    assert_int_equal(rd_st_writer_commit(w, fx->path, &err), 0);
    rd_st_writer_free(w);
    assert_int_equal(tiny_count_entries(fx->dir), 1);
    rd_st_file *f = rd_st_open(fx->path, &err);
    if (!f) fail_msg("open: %s", err.msg);
    assert_int_equal(rd_st_count(f), 1);
    rd_st_close(f);
    rd_st_writer_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_tensor_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
