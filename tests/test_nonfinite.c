/* Non-finite weights are found when a model is made (rd_model_nonfinite): a tiny model file
 * with an Inf/NaN in one matrix, written as GGUF in plain and quantised types and loaded back,
 * names the tensor and its row; a norm vector names the element; several tensors are
 * counted; an intact model reports nothing; rd_model_describe and a model built in memory
 * carry the same note. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redit/model.h"
#include "redit/model_file.h"
#include "tiny_model.h"

/* dim 256 so that every type, the K-quants included, fits the rows */
static const rd_config CFG = {.dim = 256, .hidden_dim = 256, .n_layers = 2, .n_heads = 4,
                              .n_kv_heads = 4, .vocab_size = 64, .seq_len = 32,
                              .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                              .rope_layout = RD_ROPE_ADJACENT};

static void random_file(rd_model_file *mf) {
    rd_error err = {0};
    assert_int_equal(rd_model_file_random(mf, &CFG, 1, 5, RD_DTYPE_F32, &err), 0);
}

/* Element (row, col) of an F32 matrix of a random model, for planting a value. */
static float *at(const rd_matrix *m, int64_t row, int64_t col) {
    assert_int_equal(m->type, RD_DTYPE_F32);
    return (float *)((char *)m->data + row * m->row_bytes) + col;
}

static void expect_note(const rd_model *m, const char *part) {
    const char *note = rd_model_nonfinite(m);
    if (!note) fail_msg("no non-finite weight reported (expected \"%s\")", part);
    if (!strstr(note, part)) fail_msg("\"%s\" lacks \"%s\"", note, part);
    rd_model_info info;
    rd_model_describe(m, &info);
    assert_ptr_equal(info.nonfinite, note);
}

static void test_intact_model(void **state) {
    (void)state;
    rd_model_file mf;
    rd_error err = {0};
    random_file(&mf);
    rd_model *m = rd_model_from_file(&mf, NULL, &err);
    assert_non_null(m);
    assert_null(rd_model_nonfinite(m));
    rd_model_info info;
    rd_model_describe(m, &info);
    assert_null(info.nonfinite);
    rd_model_free(m);
}

/* An Inf in blk.1.ffn_down.weight row 5, written in each type and loaded from the file. */
static void test_file_in_every_type(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/broken.gguf", dir);
    const rd_dtype types[] = {RD_DTYPE_F32, RD_DTYPE_F16, RD_DTYPE_BF16, RD_DTYPE_Q8_0,
                              RD_DTYPE_Q4_0, RD_DTYPE_Q4_1, RD_DTYPE_Q5_0, RD_DTYPE_Q5_1,
                              RD_DTYPE_Q2_K, RD_DTYPE_Q3_K, RD_DTYPE_Q4_K, RD_DTYPE_Q5_K,
                              RD_DTYPE_Q6_K, RD_DTYPE_IQ4_NL, RD_DTYPE_IQ4_XS};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        rd_error err = {0};
        rd_model_file mf;
        random_file(&mf);
        *at(&mf.w.layers[1].w2, 5, 77) = INFINITY;
        assert_int_equal(rd_gguf_write(path, &mf, types[k], &err), 0);
        rd_model_file_release(&mf);
        rd_model *m = rd_model_load(path, NULL, &err);
        if (!m) fail_msg("%s: %s", rd_dtype_info_of(types[k])->name, err.msg);
        printf("%-5s %s\n", rd_dtype_info_of(types[k])->name, rd_model_nonfinite(m));
        expect_note(m, "blk.1.ffn_down.weight row 5 has a weight that is not finite");
        rd_model_free(m);
        /* the same file without the Inf: nothing to report */
        random_file(&mf);
        assert_int_equal(rd_gguf_write(path, &mf, types[k], &err), 0);
        rd_model_file_release(&mf);
        assert_non_null(m = rd_model_load(path, NULL, &err));
        assert_null(rd_model_nonfinite(m));
        rd_model_free(m);
    }
    unlink(path);
    tiny_rmdir(dir);
}

/* A NaN in a norm vector names the element; more broken tensors are counted; the first one
 * (in file order: embeddings, then layer by layer) is named. */
static void test_vectors_and_counts(void **state) {
    (void)state;
    rd_error err = {0};
    rd_model_file mf;
    random_file(&mf);
    ((float *)mf.w.layers[0].ffn_norm)[3] = NAN;
    rd_model *m = rd_model_from_file(&mf, NULL, &err);
    assert_non_null(m);
    expect_note(m, "blk.0.ffn_norm.weight element 3 is not finite");
    assert_null(strstr(rd_model_nonfinite(m), "more"));
    rd_model_free(m);

    random_file(&mf);
    *at(&mf.w.layers[1].wq, 0, 0) = -INFINITY;
    *at(&mf.w.layers[0].w3, 200, 1) = NAN;
    *at(&mf.w.tok_embeddings, 63, 255) = NAN;
    ((float *)mf.w.final_norm)[0] = INFINITY;
    assert_non_null(m = rd_model_from_file(&mf, NULL, &err));
    expect_note(m, "token_embd.weight row 63 has a weight that is not finite");
    expect_note(m, "3 more tensors too");
    printf("%s\n", rd_model_nonfinite(m));
    rd_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact_model),
        cmocka_unit_test(test_file_in_every_type),
        cmocka_unit_test(test_vectors_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
