/* Vocabularies as plain data (src/io/vocab*.c, redit/vocab.h): each format's vocabulary
 * loaded without a tokenizer (llama2.c tokenizer.bin, Hugging Face tokenizer.json, GGUF's
 * tokenizer.ggml.*) with a few pieces, scores, types and special ids checked against the
 * files; a tokenizer built from it (and exported back); the GGUF round trip of a
 * vocabulary; the checks (the first duplicate reported, bytes, NaN, types), releasing
 * zeroed and half-built values; and the generic GGUF writer (redit/gguf_writer.h) read back
 * with the GGUF parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/io/gguf.h"
#include "helpers/bytebuf.h"
#include "helpers/tiny_model.h"
#include "redit/gguf_writer.h"
#include "redit/model_file.h"
#include "redit/tokenizer.h"
#include "redit/vocab.h"

#define SP "\xe2\x96\x81" /* "▁" */

static const char *fixture_or_fail(const char *rel) {
    const char *p = shared_fixture(rel);
    if (!p) fail_msg("../shared/fixtures/%s is missing", rel);
    return p;
}

static void assert_piece_is(const rd_vocab *v, int id, const char *want, rd_token_type type) {
    size_t len = 0;
    const char *p = rd_vocab_piece(v, id, &len);
    assert_non_null(p);
    if (len != strlen(want) || memcmp(p, want, len) != 0)
        fail_msg("piece %d is \"%.*s\", expected \"%s\"", id, (int)len, p, want);
    assert_int_equal(v->types[id], type);
}

static void assert_vocabs_equal(const rd_vocab *a, const rd_vocab *b) {
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->bos_id, b->bos_id);
    assert_int_equal(a->eos_id, b->eos_id);
    assert_int_equal(a->unk_id, b->unk_id);
    assert_int_equal(a->add_dummy_prefix, b->add_dummy_prefix);
    assert_memory_equal(a->off, b->off, ((size_t)a->n + 1) * sizeof *a->off);
    assert_memory_equal(a->bytes, b->bytes, a->off[a->n]);
    assert_memory_equal(a->scores, b->scores, (size_t)a->n * sizeof *a->scores);
    assert_memory_equal(a->types, b->types, (size_t)a->n);
}

static void assert_encodes(const rd_tokenizer *t, const char *text, const int *want, size_t n) {
    rd_error err = {{0}};
    int *ids = NULL;
    size_t got = 0;
    if (rd_tokenizer_encode(t, text, strlen(text), 1, 0, &ids, &got, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(got, n);
    assert_memory_equal(ids, want, n * sizeof *ids);
    free(ids);
}

/* ---- each format's vocabulary ------------------------------------------------------- */

static void test_llama2c_vocab(void **state) {
    (void)state;
    const char *path = fixture_or_fail("llama2-tokenizer/tokenizer.bin");
    rd_vocab v;
    rd_error err = {{0}};
    if (rd_vocab_load_llama2c(path, 32000, &v, &err)) fail_msg("%s", err.msg);
    assert_int_equal(v.n, 32000);
    assert_int_equal(v.bos_id, 1);
    assert_int_equal(v.eos_id, 2);
    assert_int_equal(v.unk_id, 0);
    assert_int_equal(v.add_dummy_prefix, 1);
    /* llama2.c's "\n<s>\n" and spaces are SentencePiece's <s> and "▁" again; the types are
     * inferred from the special ids and the spelling. */
    assert_piece_is(&v, 0, "<unk>", RD_TOKEN_UNKNOWN);
    assert_piece_is(&v, 1, "<s>", RD_TOKEN_CONTROL);
    assert_piece_is(&v, 2, "</s>", RD_TOKEN_CONTROL);
    assert_piece_is(&v, 3, "<0x00>", RD_TOKEN_BYTE);
    assert_piece_is(&v, 259, SP SP, RD_TOKEN_NORMAL);
    assert_piece_is(&v, 15043, SP "Hello", RD_TOKEN_NORMAL);
    assert_piece_is(&v, 31999, "\xe7\xbb\x99", RD_TOKEN_NORMAL);
    /* the scores as stored in the file */
    assert_true(v.scores[15043] == -14784.0f);
    assert_true(v.scores[3186] == -2927.0f);
    assert_true(v.scores[259] == -1e9f);
    assert_true(v.scores[0] == 0.0f);
    /* a bare file: as many pieces as it holds */
    rd_vocab all;
    if (rd_vocab_load_llama2c(path, 0, &all, &err)) fail_msg("%s", err.msg);
    assert_vocabs_equal(&all, &v);
    rd_vocab_release(&all);
    /* a size the file does not hold */
    assert_int_equal(rd_vocab_load_llama2c(path, 32001, &all, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(all.n, 0);
    /* The tokenizer built from it encodes as SentencePiece does. */
    rd_tokenizer *t = rd_tokenizer_from_vocab(&v, path, &err);
    if (!t) fail_msg("%s", err.msg);
    const int want[] = {1, 15043, 3186};
    assert_encodes(t, "Hello world", want, 3);
    /* and exports the same vocabulary back */
    rd_vocab back;
    if (rd_tokenizer_export_vocab(t, &back, &err)) fail_msg("%s", err.msg);
    assert_vocabs_equal(&back, &v);
    rd_vocab_release(&back);
    rd_tokenizer_free(t);
    rd_vocab_release(&v);
    rd_vocab_release(&v); /* twice: zeroed by the first */
}

static void test_hf_vocab(void **state) {
    (void)state;
    const char *json = fixture_or_fail("llama2-tokenizer/tokenizer.json");
    rd_vocab v, bin;
    rd_error err = {{0}};
    if (rd_vocab_load_hf(json, NULL, &v, &err)) fail_msg("%s", err.msg);
    assert_int_equal(v.n, 32000);
    assert_int_equal(v.bos_id, 1);
    assert_int_equal(v.eos_id, 2);
    assert_int_equal(v.unk_id, 0);
    assert_int_equal(v.add_dummy_prefix, 1); /* the Prepend normalizer */
    assert_piece_is(&v, 0, "<unk>", RD_TOKEN_UNKNOWN);
    assert_piece_is(&v, 1, "<s>", RD_TOKEN_CONTROL);
    assert_piece_is(&v, 3, "<0x00>", RD_TOKEN_BYTE);
    assert_piece_is(&v, 15043, SP "Hello", RD_TOKEN_NORMAL);
    /* Scores: minus the rank of the first merge producing the piece; whitespace runs and
     * pieces no merge produces below every merge. */
    assert_true(v.scores[260] == -1.0f);      /* "▁t": merges[1] is "▁ t" */
    assert_true(v.scores[15043] == -32602.0f); /* "▁Hello" */
    assert_true(v.scores[259] == -1e9f);       /* "▁▁" */
    assert_true(v.scores[29871] == -2e9f);     /* "▁", a single character */
    assert_true(v.scores[3] == -2e9f);
    /* The same pieces and types as llama2.c's file of this vocabulary. */
    if (rd_vocab_load_llama2c(fixture_or_fail("llama2-tokenizer/tokenizer.bin"), 32000, &bin,
                              &err))
        fail_msg("%s", err.msg);
    assert_memory_equal(v.off, bin.off, sizeof *v.off * 32001);
    assert_memory_equal(v.bytes, bin.bytes, v.off[32000]);
    assert_memory_equal(v.types, bin.types, 32000);
    rd_tokenizer *t = rd_tokenizer_from_vocab(&v, json, &err);
    if (!t) fail_msg("%s", err.msg);
    const int want[] = {1, 15043, 3186};
    assert_encodes(t, "Hello world", want, 3);
    rd_tokenizer_free(t);
    rd_vocab_release(&bin);
    rd_vocab_release(&v);

    /* Mistral's, with tokenizer_config.json: the specials are added tokens. */
    if (rd_vocab_load_hf(fixture_or_fail("mistral-tokenizer/tokenizer.json"),
                         fixture_or_fail("mistral-tokenizer/tokenizer_config.json"), &v, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(v.n, 32000);
    assert_int_equal(v.bos_id, 1);
    assert_int_equal(v.eos_id, 2);
    assert_int_equal(v.unk_id, 0);
    assert_piece_is(&v, 0, "<unk>", RD_TOKEN_UNKNOWN);
    assert_piece_is(&v, 2, "</s>", RD_TOKEN_CONTROL);
    assert_piece_is(&v, 22557, SP "Hello", RD_TOKEN_NORMAL);
    rd_vocab_release(&v);

    /* A refused file names itself; nothing is left allocated. */
    const char *cfg = fixture_or_fail("mistral-tokenizer/tokenizer_config.json");
    assert_int_equal(rd_vocab_load_hf(cfg, NULL, &v, &err), -1);
    assert_non_null(strstr(err.msg, cfg));
    assert_int_equal(v.n, 0);
    assert_null(v.bytes);
}

static void make_vocab(rd_vocab *out, int n, int prefix, int with_types) {
    rd_error err = {{0}};
    if (tiny_vocab(out, n, prefix, with_types, &err)) fail_msg("%s", err.msg);
}

static void test_gguf_roundtrip(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    rd_config c = tiny_config(); /* vocab 300 */
    for (int prefix = 0; prefix <= 1; prefix++) {
        rd_model_file f = {0}, got = {0};
        rd_error err = {{0}};
        assert_int_equal(tiny_model_init(&f, &c, 1, 3), 0);
        make_vocab(&f.vocab, c.vocab_size, prefix, 1);
        assert_int_equal(f.vocab.unk_id, 0); /* -1 resolved to the first UNKNOWN piece */
        if (rd_gguf_write(path, &f, RD_DTYPE_F32, &err)) fail_msg("%s", err.msg);
        if (rd_gguf_load(path, &got, &err)) fail_msg("%s", err.msg);
        assert_vocabs_equal(&got.vocab, &f.vocab);
        assert_int_equal(got.vocab.types[c.vocab_size - 1], RD_TOKEN_USER_DEFINED);

        /* the tokenizer.ggml.* keys as llama.cpp reads them */
        bytebuf b;
        bb_init(&b);
        assert_int_equal(bb_read_file(&b, path), 0);
        rd_gguf *g = NULL;
        if (rd_gguf_parse(b.data, b.len, path, &g, &err)) fail_msg("%s", err.msg);
        const rd_gguf_value *tokens = rd_gguf_get(g, "tokenizer.ggml.tokens");
        assert_non_null(tokens);
        assert_int_equal(tokens->n, (uint64_t)c.vocab_size);
        rd_gguf_value e;
        assert_int_equal(rd_gguf_array_elem(tokens, 259, &e), 0);
        assert_int_equal(e.n, 6);
        assert_memory_equal(e.as.s, SP "waa", 6);
        const rd_gguf_value *types = rd_gguf_get(g, "tokenizer.ggml.token_type");
        assert_int_equal(rd_gguf_array_elem(types, 3, &e), 0);
        int64_t ty;
        assert_int_equal(rd_gguf_value_int(&e, &ty), 0);
        assert_int_equal(ty, RD_TOKEN_BYTE);
        const rd_gguf_value *unk = rd_gguf_get(g, "tokenizer.ggml.unknown_token_id");
        assert_non_null(unk);
        assert_int_equal(unk->as.u, 0);
        const rd_gguf_value *pre = rd_gguf_get(g, "tokenizer.ggml.add_space_prefix");
        assert_non_null(pre);
        assert_int_equal(pre->as.u, (uint64_t)prefix);
        rd_gguf_free(g);
        bb_free(&b);
        rd_model_file_release(&got);
        rd_model_file_release(&f);
    }
    /* Types inferred from the spelling equal the ones given (for this vocabulary, except
     * the user-defined piece, which no spelling gives). */
    rd_vocab given, inferred;
    make_vocab(&given, 300, 1, 1);
    make_vocab(&inferred, 300, 1, 0);
    assert_memory_equal(given.types, inferred.types, 299);
    assert_int_equal(inferred.types[299], RD_TOKEN_NORMAL);
    rd_vocab_release(&given);
    rd_vocab_release(&inferred);
    /* A vocabulary broken by hand is refused before anything is written. */
    rd_model_file bad = {0};
    rd_error err = {{0}};
    assert_int_equal(tiny_model_init(&bad, &c, 1, 3), 0);
    make_vocab(&bad.vocab, c.vocab_size, 1, 1);
    bad.vocab.types[5] = 0;
    snprintf(path, sizeof path, "%s/bad.gguf", dir);
    assert_int_equal(rd_gguf_write(path, &bad, RD_DTYPE_F32, &err), -1);
    assert_non_null(strstr(err.msg, "bad.gguf: cannot write the vocabulary: piece 5 has unknown "
                                    "type 0"));
    assert_int_equal(tiny_count_entries(dir), 1); /* m.gguf only */
    rd_model_file_release(&bad);
    tiny_rmdir(dir);
}

/* ---- checks and lifecycle ----------------------------------------------------------- */

static int from_pieces(rd_vocab *v, const char *const *pieces, int n, const int *types,
                       const float *scores, rd_error *err) {
    rd_vocab_spec spec = {.n_pieces = n, .pieces = pieces, .types = types, .scores = scores,
                          .bos_id = -1, .eos_id = -1, .unk_id = 0};
    return rd_vocab_from_spec(v, &spec, "t.vocab", err);
}

static void test_checks(void **state) {
    (void)state;
    rd_vocab v;
    rd_error err = {{0}};
    /* two duplicated texts: the lowest id repeating an earlier piece is reported, with the
     * first piece of its text */
    const char *dup[] = {"<unk>", "a", "b", "b", "a"};
    assert_int_equal(from_pieces(&v, dup, 5, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "t.vocab: pieces 2 and 3 are the same text \"b\""));
    assert_int_equal(v.n, 0);
    /* a repeated CONTROL spelling is allowed */
    const int ctl[] = {RD_TOKEN_UNKNOWN, RD_TOKEN_CONTROL, RD_TOKEN_CONTROL, RD_TOKEN_NORMAL};
    const char *ctl_pieces[] = {"<unk>", "<x>", "<x>", "a"};
    assert_int_equal(from_pieces(&v, ctl_pieces, 4, ctl, NULL, &err), 0);
    assert_int_equal(rd_vocab_check(&v, "again", &err), 0);
    /* rd_vocab_check sees what a hand-edited value breaks */
    v.types[3] = 9;
    assert_int_equal(rd_vocab_check(&v, "edited", &err), -1);
    assert_non_null(strstr(err.msg, "edited: piece 3 has unknown type 9"));
    v.types[3] = RD_TOKEN_CONTROL;
    v.scores[1] = NAN;
    assert_int_equal(rd_vocab_check(&v, "edited", &err), -1);
    assert_non_null(strstr(err.msg, "piece 1 has a NaN score"));
    v.scores[1] = 0;
    v.bos_id = 4;
    assert_int_equal(rd_vocab_check(&v, "edited", &err), -1);
    assert_non_null(strstr(err.msg, "BOS id 4 is out of range"));
    /* and the tokenizer refuses it too */
    assert_null(rd_tokenizer_from_vocab(&v, "edited", &err));
    assert_non_null(strstr(err.msg, "BOS id 4"));
    rd_vocab_release(&v);
    assert_int_equal(rd_vocab_check(&v, "released", &err), -1);
    assert_non_null(strstr(err.msg, "released: the vocabulary is empty"));
    /* bytes */
    const char *bytes[] = {"<unk>", "<0x41>", "<0x41>"};
    assert_int_equal(from_pieces(&v, bytes, 3, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "pieces 1 and 2 both stand for byte 0x41"));
    const int byte_types[] = {RD_TOKEN_UNKNOWN, RD_TOKEN_BYTE};
    const char *not_byte[] = {"<unk>", "<0x4G>"};
    assert_int_equal(from_pieces(&v, not_byte, 2, byte_types, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "byte piece 1 is not of the form <0xNN>"));
    /* a type out of range in a spec, before it is narrowed */
    const int big[] = {RD_TOKEN_UNKNOWN, 257};
    const char *ok[] = {"<unk>", "a"};
    assert_int_equal(from_pieces(&v, ok, 2, big, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "piece 1 has unknown type 257"));
    const float nan_scores[] = {0.0f, NAN};
    assert_int_equal(from_pieces(&v, ok, 2, NULL, nan_scores, &err), -1);
    assert_non_null(strstr(err.msg, "piece 1 has a NaN score"));
    /* the byte-piece and UTF-8 helpers */
    assert_int_equal(rd_vocab_byte_piece("<0x0A>", 6, 1), 10);
    assert_int_equal(rd_vocab_byte_piece("<0x0a>", 6, 1), -1);
    assert_int_equal(rd_vocab_byte_piece("<0x0a>", 6, 0), 10);
    assert_int_equal(rd_utf8_char_len((const unsigned char *)SP, 3), 3);
    assert_int_equal(rd_utf8_char_len((const unsigned char *)"\xC0\x80", 2), 0); /* overlong */
}

static void test_release_half_built(void **state) {
    (void)state;
    rd_vocab_release(NULL);
    rd_vocab zero = {0};
    rd_vocab_release(&zero);
    rd_vocab half = {.n = 10};
    half.off = calloc(11, sizeof *half.off);
    half.scores = malloc(10 * sizeof *half.scores);
    assert_true(half.off && half.scores);
    rd_vocab_release(&half);
    assert_int_equal(half.n, 0);
    assert_null(half.off);
    assert_null(rd_vocab_piece(&half, 0, NULL));
}

/* ---- the generic GGUF writer -------------------------------------------------------- */

static void test_gguf_writer(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    rd_error err = {{0}};
    rd_gguf_writer *w = rd_gguf_writer_new(&err);
    assert_non_null(w);
    float vec[5] = {1, 2, 3, 4, 5}, mat[3 * 4];
    for (int i = 0; i < 12; i++) mat[i] = (float)i * 0.5f;
    const int64_t vshape[1] = {5}, mshape[2] = {3, 4}; /* rows, cols */
    rd_gguf_writer_kv_str(w, "general.architecture", "test");
    rd_gguf_writer_kv_i32(w, "test.count", -7);
    assert_int_equal(rd_gguf_writer_add(w, "vec", RD_DTYPE_F32, vshape, 1, vec, &err), 0);
    assert_int_equal(rd_gguf_writer_add(w, "mat", RD_DTYPE_F32, mshape, 2, mat, &err), 0);
    char long_name[80];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(rd_gguf_writer_add(w, long_name, RD_DTYPE_F32, vshape, 1, vec, &err), -1);
    assert_non_null(strstr(err.msg, "longer than 64 bytes"));
    const int64_t odd[1] = {5}; /* Q8_0 blocks hold 32 */
    assert_int_equal(rd_gguf_writer_add(w, "q", RD_DTYPE_Q8_0, odd, 1, vec, &err), -1);
    assert_non_null(strstr(err.msg, "q"));
    assert_int_equal(rd_gguf_writer_commit(w, path, &err), 0);
    rd_gguf_writer_free(w);
    assert_int_equal(tiny_count_entries(dir), 1); /* no temporary file left behind */

    bytebuf b;
    bb_init(&b);
    assert_int_equal(bb_read_file(&b, path), 0);
    rd_gguf *g = NULL;
    if (rd_gguf_parse(b.data, b.len, path, &g, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->n_kv, 2);
    assert_int_equal(g->n_tensors, 2);
    const rd_gguf_value *v = rd_gguf_get(g, "test.count");
    assert_non_null(v);
    assert_int_equal(v->type, RD_GGUF_INT32);
    assert_int_equal(v->as.i, -7);
    const rd_gguf_tensor *tv = rd_gguf_tensor_get(g, "vec"), *tm = rd_gguf_tensor_get(g, "mat");
    assert_true(tv && tm);
    assert_int_equal(tv->n_dims, 1);
    assert_int_equal(tv->ne[0], 5);
    assert_memory_equal(tv->data, vec, sizeof vec);
    assert_int_equal(tm->n_dims, 2);
    assert_int_equal(tm->ne[0], 4); /* fastest first: cols */
    assert_int_equal(tm->ne[1], 3);
    assert_int_equal((tm->offset - g->data_offset) % RD_GGUF_WRITER_ALIGNMENT, 0);
    assert_int_equal(tm->offset - tv->offset, 32); /* 20 bytes padded to 32 */
    assert_memory_equal(tm->data, mat, sizeof mat);
    assert_int_equal(b.len, tm->offset + 64); /* 48 bytes padded to 64 */
    rd_gguf_free(g);
    bb_free(&b);

    /* an unwritable path: the message names it */
    w = rd_gguf_writer_new(&err);
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/t.gguf", dir);
    assert_int_equal(rd_gguf_writer_commit(w, bad, &err), -1);
    assert_non_null(strstr(err.msg, bad));
    rd_gguf_writer_free(w);
    rd_gguf_writer_free(NULL);
    tiny_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2c_vocab),     cmocka_unit_test(test_hf_vocab),
        cmocka_unit_test(test_gguf_roundtrip),    cmocka_unit_test(test_checks),
        cmocka_unit_test(test_release_half_built), cmocka_unit_test(test_gguf_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
