/* SentencePiece's tokenizer.model (rd_vocab_load_spm / rd_vocab_load_file): the Llama-2
 * fixture's ids against SentencePiece's (expected.jsonl), the bundled model's vocabulary
 * against the one in redit-base.gguf, content detection, and hand-made protobufs that must
 * be refused with a message naming the file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redit/model.h"
#include "redit/model_file.h"
#include "redit/tokenizer.h"
#include "redit/vocab.h"
#include "helpers/tiny_model.h"

#define BUNDLED_SPM "models/redit-base.tokenizer.model"
#define BUNDLED_GGUF "models/redit-base.gguf"

static const char *fixture(const char *rel) {
    const char *p = shared_fixture(rel);
    if (!p) fail_msg("../shared/fixtures/%s is missing", rel);
    return p;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    s[len] = 0;
    if (n) *n = (size_t)len;
    return s;
}

/* ---- the Llama-2 fixture ------------------------------------------------------------ */

static void test_llama2_model_expected_ids(void **state) {
    (void)state;
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_load_file(fixture("llama2-tokenizer/tokenizer.model"), 0, &err);
    if (!t) fail_msg("%s", err.msg);
    assert_int_equal(rd_tokenizer_vocab_size(t), 32000);
    assert_int_equal(rd_tokenizer_bos(t), 1);
    assert_int_equal(rd_tokenizer_eos(t), 2);
    assert_int_equal(rd_tokenizer_unk(t), 0);
    assert_true(rd_tokenizer_adds_dummy_prefix(t));
    assert_int_equal(rd_tokenizer_type(t, 0), RD_TOKEN_UNKNOWN);
    assert_int_equal(rd_tokenizer_type(t, 1), RD_TOKEN_CONTROL);
    assert_int_equal(rd_tokenizer_type(t, 3), RD_TOKEN_BYTE);
    assert_int_equal(rd_tokenizer_type(t, 259), RD_TOKEN_NORMAL);
    char *data = slurp(fixture("llama2-tokenizer/expected.jsonl"), NULL);
    int lines = 0;
    for (char *line = data, *end; *line; line = end + (*end != '\0')) {
        end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (end == line) continue;
        cJSON *obj = cJSON_ParseWithLength(line, (size_t)(end - line));
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(obj, "ids");
        assert_true(cJSON_IsString(text) && cJSON_IsArray(ids));
        int *got;
        size_t n;
        assert_int_equal(rd_tokenizer_encode(t, text->valuestring, strlen(text->valuestring), 0,
                                             0, &got, &n, &err), 0);
        int same = (int)n == cJSON_GetArraySize(ids);
        for (size_t i = 0; same && i < n; i++)
            same = got[i] == cJSON_GetArrayItem(ids, (int)i)->valueint;
        if (!same) fail_msg("text %d (%.40s): ids differ from SentencePiece's", lines,
                            text->valuestring);
        free(got);
        cJSON_Delete(obj);
        lines++;
    }
    free(data);
    assert_int_equal(lines, 40);
    rd_tokenizer_free(t);
}

/* The same pieces and scores as llama2.c's tokenizer.bin of that vocabulary. */
static void test_llama2_model_matches_bin(void **state) {
    (void)state;
    rd_error err = {{0}};
    rd_vocab a, b;
    if (rd_vocab_load_spm(fixture("llama2-tokenizer/tokenizer.model"), 32000, &a, &err) ||
        rd_vocab_load_llama2c(fixture("llama2-tokenizer/tokenizer.bin"), 32000, &b, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        size_t la, lb;
        const char *pa = rd_vocab_piece(&a, i, &la), *pb = rd_vocab_piece(&b, i, &lb);
        if (la != lb || memcmp(pa, pb, la) != 0) fail_msg("piece %d differs", i);
        assert_true(a.scores[i] == b.scores[i]);
        assert_int_equal(a.types[i], b.types[i]);
    }
    rd_vocab_release(&a);
    rd_vocab_release(&b);
}

/* ---- the bundled model -------------------------------------------------------------- */

static void test_bundled_model_matches_gguf(void **state) {
    (void)state;
    rd_error err = {{0}};
    rd_vocab s;
    rd_model_file g = {0};
    if (rd_vocab_load_file(BUNDLED_SPM, 0, &s, &err) || rd_gguf_load(BUNDLED_GGUF, &g, &err))
        fail_msg("%s", err.msg);
    const rd_vocab *v = &g.vocab;
    assert_int_equal(s.n, v->n);
    assert_int_equal(s.n, 4096);
    assert_int_equal(s.bos_id, v->bos_id);
    assert_int_equal(s.eos_id, v->eos_id);
    assert_int_equal(s.unk_id, v->unk_id);
    assert_int_equal(s.add_dummy_prefix, v->add_dummy_prefix);
    assert_memory_equal(s.off, v->off, ((size_t)s.n + 1) * sizeof *s.off);
    assert_memory_equal(s.bytes, v->bytes, s.off[s.n]);
    assert_memory_equal(s.scores, v->scores, (size_t)s.n * sizeof *s.scores);
    assert_memory_equal(s.types, v->types, (size_t)s.n);
    /* and the two tokenizers give the same ids */
    rd_tokenizer *a = rd_tokenizer_from_vocab(&s, BUNDLED_SPM, &err);
    rd_tokenizer *b = rd_tokenizer_from_vocab(v, BUNDLED_GGUF, &err);
    assert_non_null(a);
    assert_non_null(b);
    static const char *const texts[] = {"Define the word \"ocean\".", "  two  spaces\tand a tab\n",
                                        "Ünïcödé 日本語 \xF0\x9F\x98\x80", ""};
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        int *ia, *ib;
        size_t na, nb;
        assert_int_equal(rd_tokenizer_encode(a, texts[k], strlen(texts[k]), 1, 0, &ia, &na, &err), 0);
        assert_int_equal(rd_tokenizer_encode(b, texts[k], strlen(texts[k]), 1, 0, &ib, &nb, &err), 0);
        assert_int_equal(na, nb);
        assert_memory_equal(ia, ib, na * sizeof *ia);
        free(ia);
        free(ib);
    }
    rd_tokenizer_free(a);
    rd_tokenizer_free(b);
    rd_vocab_release(&s);
    rd_model_file_release(&g);
}

/* ---- hand-made protobufs ------------------------------------------------------------ */

typedef struct pb {
    unsigned char b[4096];
    size_t n;
} pb;

static void put(pb *p, const void *src, size_t n) {
    assert_true(p->n + n <= sizeof p->b);
    memcpy(p->b + p->n, src, n);
    p->n += n;
}

static void put_varint(pb *p, uint64_t v) {
    do {
        unsigned char c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        put(p, &c, 1);
    } while (v);
}

static void put_len(pb *p, int field, const pb *inner) {
    put_varint(p, (uint64_t)field << 3 | 2);
    put_varint(p, inner->n);
    put(p, inner->b, inner->n);
}

static void put_int(pb *p, int field, int64_t v) {
    put_varint(p, (uint64_t)field << 3);
    put_varint(p, (uint64_t)v);
}

static void put_piece(pb *p, const char *text, float score, int type) {
    pb sp = {.n = 0};
    pb s = {.n = 0};
    put(&s, text, strlen(text));
    put_len(&sp, 1, &s);
    put_varint(&sp, 2 << 3 | 5);
    put(&sp, &score, 4);
    put_int(&sp, 3, type);
    put_len(p, 1, &sp);
}

typedef struct variant {
    int model_type, remove_extra_ws, add_dummy, charsmap, byte_fallback, no_trainer;
} variant;

/* <unk> <s> </s> ▁ a b ▁a ab, a BPE model like Llama-2's unless v says otherwise. */
static void make_model(pb *p, const variant *v) {
    p->n = 0;
    put_piece(p, "<unk>", 0, RD_TOKEN_UNKNOWN);
    put_piece(p, "<s>", 0, RD_TOKEN_CONTROL);
    put_piece(p, "</s>", 0, RD_TOKEN_CONTROL);
    put_piece(p, RD_SPACE_MARK, -1, RD_TOKEN_NORMAL);
    put_piece(p, "a", -2, RD_TOKEN_NORMAL);
    put_piece(p, "b", -3, RD_TOKEN_NORMAL);
    put_piece(p, RD_SPACE_MARK "a", -4, RD_TOKEN_NORMAL);
    put_piece(p, "ab", -5, RD_TOKEN_NORMAL);
    if (v->byte_fallback < 0) put_piece(p, "<0x41>", 0, RD_TOKEN_BYTE);
    pb t = {.n = 0}, ns = {.n = 0}, name = {.n = 0};
    put_int(&t, 3, v->model_type ? v->model_type : 2);
    put_int(&t, 4, 8);
    put_int(&t, 35, v->byte_fallback > 0);
    put_int(&t, 43, -1); /* pad_id -1: a ten-byte varint */
    put(&name, "identity", 8);
    put_len(&ns, 1, &name);
    if (v->charsmap) put_len(&ns, 2, &name);
    put_int(&ns, 3, !v->add_dummy);
    put_int(&ns, 4, v->remove_extra_ws);
    if (!v->no_trainer) put_len(p, 2, &t);
    put_len(p, 3, &ns);
}

static void write_file(const char *path, const pb *p) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p->b, 1, p->n, f), p->n);
    assert_int_equal(fclose(f), 0);
}

static void expect_refused(const variant *v, size_t cut, const char *needle) {
    char dir[] = "/tmp/redit-spm-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tok.model", dir);
    pb p;
    make_model(&p, v);
    if (cut) p.n = cut;
    write_file(path, &p);
    rd_vocab out;
    rd_error err = {{0}};
    assert_int_equal(rd_vocab_load_file(path, 0, &out, &err), -1);
    if (!strstr(err.msg, path) || !strstr(err.msg, needle))
        fail_msg("message '%s' lacks the file or '%s'", err.msg, needle);
    assert_int_equal(out.n, 0);
    unlink(path);
    rmdir(dir);
}

static void test_hand_made_model(void **state) {
    (void)state;
    char dir[] = "/tmp/redit-spm-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tok.model", dir);
    pb p;
    variant v = {0};
    make_model(&p, &v);
    assert_true(rd_vocab_probe_spm(p.b, p.n));
    assert_false(rd_vocab_probe_spm(p.b, p.n - 1));
    write_file(path, &p);
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_load_file(path, 0, &err);
    if (!t) fail_msg("%s", err.msg);
    assert_int_equal(rd_tokenizer_vocab_size(t), 8);
    assert_true(rd_tokenizer_score(t, 7) == -5.0f);
    int *ids;
    size_t n;
    assert_int_equal(rd_tokenizer_encode(t, "ab a", 4, 1, 0, &ids, &n, &err), 0);
    /* ▁ a b ▁ a: ▁a (-4) beats ab (-5): ▁a b ▁a */
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 6);
    assert_int_equal(ids[2], 5);
    assert_int_equal(ids[3], 6);
    free(ids);
    rd_tokenizer_free(t);
    /* add_dummy_prefix off is read */
    v.add_dummy = 1;
    make_model(&p, &v);
    write_file(path, &p);
    rd_vocab voc;
    assert_int_equal(rd_vocab_load_spm(path, 0, &voc, &err), 0);
    assert_int_equal(voc.add_dummy_prefix, 0);
    assert_int_equal(voc.bos_id, 1);
    assert_int_equal(voc.unk_id, 0);
    rd_vocab_release(&voc);
    /* more pieces than the model's vocabulary */
    assert_int_equal(rd_vocab_load_spm(path, 7, &voc, &err), -1);
    assert_non_null(strstr(err.msg, "8 pieces, more than the model's vocabulary of 7"));
    unlink(path);
    rmdir(dir);
}

static void test_refusals(void **state) {
    (void)state;
    expect_refused(&(variant){.model_type = 1}, 0, "a SentencePiece unigram model");
    expect_refused(&(variant){.model_type = 3}, 0, "a SentencePiece word model");
    expect_refused(&(variant){.remove_extra_ws = 1}, 0, "remove_extra_whitespaces");
    expect_refused(&(variant){.charsmap = 1}, 0, "precompiled_charsmap");
    expect_refused(&(variant){.byte_fallback = -1}, 0, "byte pieces without");
    expect_refused(&(variant){.no_trainer = 1}, 0, "no trainer_spec");
    /* truncated inside the third piece, and after its first byte */
    expect_refused(&(variant){0}, 40, "breaks off at byte");
    expect_refused(&(variant){0}, 1, "");
}

/* A llama2.c tokenizer.bin is still read as one (max_token_length 10 starts with 0x0a). */
static void test_bin_still_detected(void **state) {
    (void)state;
    char dir[] = "/tmp/redit-spm-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    pb p = {.n = 0};
    const int32_t max_len = 10;
    put(&p, &max_len, 4);
    static const char *const pieces[] = {"<unk>", "\n<s>\n", "\n</s>\n", "a"};
    for (int i = 0; i < 4; i++) {
        float score = (float)-i;
        int32_t len = (int32_t)strlen(pieces[i]);
        put(&p, &score, 4);
        put(&p, &len, 4);
        put(&p, pieces[i], (size_t)len);
    }
    write_file(path, &p);
    rd_vocab v;
    rd_error err = {{0}};
    if (rd_vocab_load_file(path, 4, &v, &err)) fail_msg("%s", err.msg);
    assert_int_equal(v.n, 4);
    rd_vocab_release(&v);
    unlink(path);
    rmdir(dir);
}

/* A llama2.c model takes a tokenizer.model: given, or beside it under that name. */
static void test_llama2c_model_with_tokenizer_model(void **state) {
    (void)state;
    const char *tm = fixture("llama2-tokenizer/tokenizer.model");
    char dir[512], path[700], cmd[2048];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_config c = tiny_config();
    c.vocab_size = 32000;
    rd_model_file f, g;
    rd_error err = {{0}};
    assert_int_equal(rd_model_file_random(&f, &c, 1, 3, RD_DTYPE_F32, &err), 0);
    snprintf(path, sizeof path, "%s/model.bin", dir);
    assert_int_equal(rd_llama2c_write(path, &f.cfg, &f.w, &err), 0);
    rd_model_file_release(&f);
    if (rd_llama2c_load(path, tm, &g, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g.vocab.n, 32000);
    rd_model_file_release(&g);
    assert_int_equal(rd_llama2c_load(path, NULL, &g, &err), 0);
    assert_int_equal(g.vocab.n, 0); /* nothing beside it yet */
    rd_model_file_release(&g);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/tokenizer.model'", tm, dir);
    assert_int_equal(system(cmd), 0);
    if (rd_llama2c_load(path, NULL, &g, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g.vocab.n, 32000);
    assert_int_equal(g.vocab.bos_id, 1);
    rd_model_file_release(&g);
    tiny_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2_model_expected_ids),
        cmocka_unit_test(test_llama2_model_matches_bin),
        cmocka_unit_test(test_bundled_model_matches_gguf),
        cmocka_unit_test(test_hand_made_model),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bin_still_detected),
        cmocka_unit_test(test_llama2c_model_with_tokenizer_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
