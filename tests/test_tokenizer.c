/* Tokenizer tests: Llama-2 reference ids, a cross-check against SentencePiece itself on
 * random texts, hand-built vocabularies for the BPE rules, decoding, bad tokenizer.bin
 * files. Expected ids of the hand-built vocabularies were produced by SentencePiece 0.1.97
 * from the same vocabularies serialized as ModelProto. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redit/tokenizer.h"
#include "helpers/tiny_model.h"
#include "text/tokenizer_internal.h"

#define LLAMA2_VOCAB 32000
#define PYTHON "/usr/bin/python3"
#define CROSSCHECK_SCRIPT "tests/tools/spm_crosscheck.py"

/* ---- helpers ---------------------------------------------------------------------- */

/* Whole file as a NUL-terminated malloc'ed buffer, or NULL. */
static char *read_text_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *p = realloc(buf, cap);
            if (!p) break;
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = n ? fwrite(data, 1, n, f) : 0;
    return fclose(f) == 0 && put == n ? 0 : -1;
}

static void print_ids(const char *label, const int *ids, size_t n) {
    print_message("  %s (%zu):", label, n);
    for (size_t i = 0; i < n; i++) print_message(" %d", ids[i]);
    print_message("\n");
}

/* Checks ids against want (printing both lists on a mismatch). */
static void expect_same(const char *text, size_t len, const char *how, const int *ids, size_t n,
                        const int *want, size_t n_want) {
    int same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        print_message("encoding of \"%.*s\"%s differs\n", (int)(len > 200 ? 200 : len), text,
                      how);
        print_ids("want", want, n_want);
        print_ids("got ", ids, n);
    }
    assert_true(same);
}

/* Encodes text and checks the ids: in one part, cut at every place the tokenizer allows
 * (rd_bpe_encode with chunk_bytes 0), as usual, and given as two spans split at a few places
 * (every place in short texts, through characters too). */
static void expect_ids(const rd_tokenizer *t, const char *text, size_t len, const int *want,
                       size_t n_want) {
    int *ids = NULL;
    size_t n = 0;
    rd_error err = {{0}};
    for (int cut = 0; cut < 2; cut++) {
        rd_text2 x = {.a = text, .na = len};
        assert_int_equal(rd_bpe_encode(t, &x, 0, 0, cut ? 0 : SIZE_MAX, &ids, &n, &err), 0);
        expect_same(text, len, cut ? " cut into parts" : " in one part", ids, n, want, n_want);
        free(ids);
    }
    assert_int_equal(rd_tokenizer_encode(t, text, len, 0, 0, &ids, &n, &err), 0);
    expect_same(text, len, "", ids, n, want, n_want);
    free(ids);
    for (size_t k = 0; k <= len; k = len <= 64 ? k + 1 : k + len / 3 + 1) {
        assert_int_equal(rd_tokenizer_encode2(t, text, k, text + k, len - k, 0, 0, &ids, &n,
                                              &err), 0);
        expect_same(text, len, " as two spans", ids, n, want, n_want);
        free(ids);
    }
}

static void expect_round_trip(const rd_tokenizer *t, const char *text, size_t len) {
    int *ids = NULL;
    size_t n = 0;
    rd_error err = {{0}};
    assert_int_equal(rd_tokenizer_encode(t, text, len, 1, 0, &ids, &n, &err), 0);
    char *back = rd_tokenizer_decode(t, ids, n, &err);
    free(ids);
    assert_non_null(back);
    char *want = malloc(len + 1);
    assert_non_null(want);
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (len - i >= 3 && memcmp(text + i, "\xE2\x96\x81", 3) == 0) {
            want[w++] = ' ';
            i += 2;
        } else {
            want[w++] = text[i];
        }
    }
    int same = strlen(back) == w && memcmp(back, want, w) == 0;
    if (!same) print_message("round trip of \"%.*s\" gave \"%s\"\n", (int)len, text, back);
    free(want);
    free(back);
    assert_true(same);
}

/* The ids of a JSON array into a malloc'ed array. */
static int *json_ids(const cJSON *arr, size_t *n) {
    assert_true(cJSON_IsArray(arr));
    *n = (size_t)cJSON_GetArraySize(arr);
    int *ids = malloc((*n ? *n : 1) * sizeof *ids);
    assert_non_null(ids);
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        assert_true(cJSON_IsNumber(v));
        ids[i++] = v->valueint;
    }
    return ids;
}

/* Raw bytes of a hex string into a malloc'ed buffer. */
static char *hex_bytes(const char *hex, size_t *n) {
    size_t len = strlen(hex);
    assert_int_equal(len % 2, 0);
    char *out = malloc(len / 2 + 1);
    assert_non_null(out);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (char)v;
    }
    *n = len / 2;
    return out;
}

/* Checks every JSONL line {"text" | "hex", "ids"} of path; returns the number of lines. */
static size_t check_jsonl(const rd_tokenizer *t, const char *path, int round_trip) {
    size_t len = 0;
    char *data = read_text_file(path, &len);
    assert_non_null(data);
    size_t lines = 0;
    for (char *line = data, *end; *line; line = end + (*end != '\0')) {
        end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (end == line) continue;
        cJSON *obj = cJSON_ParseWithLength(line, (size_t)(end - line));
        assert_non_null(obj);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
        const cJSON *hex = cJSON_GetObjectItemCaseSensitive(obj, "hex");
        size_t n_want = 0, n_text = 0;
        int *want = json_ids(cJSON_GetObjectItemCaseSensitive(obj, "ids"), &n_want);
        char *bytes = NULL;
        if (cJSON_IsString(hex)) {
            bytes = hex_bytes(hex->valuestring, &n_text);
        } else {
            assert_true(cJSON_IsString(text));
            n_text = strlen(text->valuestring);
            bytes = malloc(n_text + 1);
            assert_non_null(bytes);
            memcpy(bytes, text->valuestring, n_text + 1);
        }
        expect_ids(t, bytes, n_text, want, n_want);
        if (round_trip && !cJSON_IsString(hex)) expect_round_trip(t, bytes, n_text);
        free(bytes);
        free(want);
        cJSON_Delete(obj);
        lines++;
    }
    free(data);
    return lines;
}

static rd_tokenizer *load_llama2(void) {
    const char *path = shared_fixture("llama2-tokenizer/tokenizer.bin");
    if (!path) fail_msg("../shared/fixtures/llama2-tokenizer/tokenizer.bin is missing");
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_load_llama2c(path, LLAMA2_VOCAB, &err);
    if (!t) fail_msg("%s", err.msg);
    return t;
}

static int setup_llama2(void **state) {
    *state = load_llama2();
    return *state ? 0 : -1;
}

static int teardown_llama2(void **state) {
    rd_tokenizer_free(*state);
    return 0;
}

/* ---- Llama-2 ---------------------------------------------------------------------- */

static void test_llama2_vocab(void **state) {
    const rd_tokenizer *t = *state;
    assert_int_equal(rd_tokenizer_vocab_size(t), LLAMA2_VOCAB);
    assert_int_equal(rd_tokenizer_bos(t), 1);
    assert_int_equal(rd_tokenizer_eos(t), 2);
    assert_int_equal(rd_tokenizer_unk(t), 0);
    assert_true(rd_tokenizer_adds_dummy_prefix(t));
    assert_int_equal(rd_tokenizer_type(t, 0), RD_TOKEN_UNKNOWN);
    assert_int_equal(rd_tokenizer_type(t, 1), RD_TOKEN_CONTROL);
    assert_int_equal(rd_tokenizer_type(t, 2), RD_TOKEN_CONTROL);
    assert_int_equal(rd_tokenizer_type(t, 3), RD_TOKEN_BYTE);
    assert_int_equal(rd_tokenizer_type(t, 258), RD_TOKEN_BYTE);
    assert_int_equal(rd_tokenizer_type(t, 259), RD_TOKEN_NORMAL);
    assert_int_equal(rd_tokenizer_type(t, LLAMA2_VOCAB), RD_TOKEN_UNUSED);
    size_t len = 0;
    const char *p = rd_tokenizer_piece(t, 1, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "<s>", 3);
    p = rd_tokenizer_piece(t, 259, &len); /* "  " in the file, "▁▁" in SentencePiece */
    assert_int_equal(len, 6);
    assert_memory_equal(p, "\xE2\x96\x81\xE2\x96\x81", 6);
    assert_null(rd_tokenizer_piece(t, -1, &len));
    assert_float_equal(rd_tokenizer_score(t, 259), -1e9f, 1.0f);
    assert_float_equal(rd_tokenizer_score(t, 300), -41.0f, 0.0f);
    assert_float_equal(rd_tokenizer_score(t, -5), 0.0f, 0.0f);
    /* No piece holds "a▁" (a ≠ ▁): long texts are cut before words (bpe_encode.c). */
    assert_non_null(t->cut.keys);
    assert_false(rd_pair_set_has(&t->cut, rd_char_pair_key("d", 1, "\xE2\x96\x81", 3)));
    assert_true(rd_pair_set_has(&t->cut, rd_char_pair_key("\xE2\x96\x81", 3, "t", 1)));
}

static void test_llama2_expected(void **state) {
    const char *path = shared_fixture("llama2-tokenizer/expected.jsonl");
    if (!path) fail_msg("../shared/fixtures/llama2-tokenizer/expected.jsonl is missing");
    assert_int_equal(check_jsonl(*state, path, 1), 40);
}

static void test_llama2_bos_eos(void **state) {
    const rd_tokenizer *t = *state;
    int *ids = NULL;
    size_t n = 0;
    rd_error err = {{0}};
    assert_int_equal(rd_tokenizer_encode(t, "Hello world", 11, 1, 1, &ids, &n, &err), 0);
    const int want[] = {1, 15043, 3186, 2};
    assert_int_equal(n, 4);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    assert_int_equal(rd_tokenizer_encode(t, "", 0, 1, 1, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    free(ids);
    assert_int_equal(rd_tokenizer_encode(t, "", 0, 0, 0, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
}

/* Runs "python3 spm_crosscheck.py ARGS DIR/NAME" into a new temporary directory (dir,
 * removed by the caller). Skips the test loudly when python3 or sentencepiece is missing. */
static void run_crosscheck(const char *args, const char *name, char *dir, size_t dir_cap,
                           char *out, size_t out_cap) {
    if (access(PYTHON, X_OK) != 0) {
        print_message("SKIPPED: %s is missing, so the cross-check against SentencePiece "
                      "cannot run\n", PYTHON);
        skip();
    }
    assert_int_equal(tiny_tempdir(dir, dir_cap), 0);
    snprintf(out, out_cap, "%s/%s", dir, name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s %s '%s'", PYTHON, CROSSCHECK_SCRIPT, args, out);
    int rc = system(cmd);
    if (rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
        tiny_rmdir(dir);
        print_message("SKIPPED: the python module sentencepiece is missing for %s, so the "
                      "cross-check against SentencePiece cannot run\n", PYTHON);
        skip();
    }
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        tiny_rmdir(dir);
        fail_msg("'%s' failed (status %d)", cmd, rc);
    }
}

/* The same random texts through SentencePiece (tests/tools/spm_crosscheck.py) and us. */
static void test_llama2_crosscheck_sentencepiece(void **state) {
    char dir[512], out[600];
    run_crosscheck("", "spm.jsonl", dir, sizeof dir, out, sizeof out);
    size_t lines = check_jsonl(*state, out, 1);
    tiny_rmdir(dir);
    assert_true(lines >= 400);
}

/* 100 KB+ texts must encode in well under a second (no quadratic rescans). */
static void test_llama2_long_text_fast(void **state) {
    const rd_tokenizer *t = *state;
    const char *chunk = "Once upon a time, there was a little llama 🦙 named Lily. 日本語 "
                        "café   \t\n";
    size_t chunk_len = strlen(chunk), len = 0, cap = 256 * 1024;
    char *text = malloc(cap + 1);
    assert_non_null(text);
    while (len + chunk_len <= cap / 2) {
        memcpy(text + len, chunk, chunk_len);
        len += chunk_len;
    }
    memset(text + len, 'x', cap / 4); /* one long run: many equal-score merges */
    len += cap / 4;
    memset(text + len, ' ', cap / 4 - 1);
    len += cap / 4 - 1;
    text[len] = '\0';
    clock_t t0 = clock();
    int *ids = NULL;
    size_t n = 0;
    rd_error err = {{0}};
    assert_int_equal(rd_tokenizer_encode(t, text, len, 0, 0, &ids, &n, &err), 0);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    print_message("encoded %zu bytes into %zu ids in %.3f s\n", len, n, secs);
    assert_true(secs < 2.0);
    assert_true(n > len / 20 && n < len);
    char *back = rd_tokenizer_decode(t, ids, n, &err);
    assert_non_null(back);
    assert_int_equal(strlen(back), len);
    assert_memory_equal(back, text, len);
    free(back);
    free(ids);
    free(text);
}

/* Peak memory of encoding an 8 MB text, measured in a child process (ru_maxrss): within 4×
 * the text, output ids included (one pass over the whole text took ~75 bytes per byte). */
static void test_llama2_long_text_memory(void **state) {
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer's redzones and quarantine are not the program's memory */
    fprintf(stderr, "SKIPPED: %s measures peak memory, which the AddressSanitizer build "
                    "inflates; it runs in the normal build\n", __func__);
    skip();
#endif
    const rd_tokenizer *t = *state;
    const char *chunk = "Once upon a time, there was a little llama 🦙 named Lily. 日本語 "
                        "café   \t\n";
    size_t chunk_len = strlen(chunk), len = 0, cap = (size_t)8 << 20;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *text = malloc(cap);
        if (!text) _exit(3);
        for (; len + chunk_len <= cap; len += chunk_len) memcpy(text + len, chunk, chunk_len);
        struct rusage before, after;
        getrusage(RUSAGE_SELF, &before);
        int *ids = NULL;
        size_t n = 0;
        rd_error err = {{0}};
        if (rd_tokenizer_encode(t, text, len, 1, 1, &ids, &n, &err) < 0) _exit(2);
        getrusage(RUSAGE_SELF, &after);
        long grew_kb = after.ru_maxrss - before.ru_maxrss;
        fprintf(stderr, "encoding %zu bytes into %zu ids: peak memory grew by %ld KB\n", len, n,
                grew_kb);
        _exit(grew_kb * 1024 <= (long)(4 * len) && n > len / 8 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_llama2_decode_piece(void **state) {
    const rd_tokenizer *t = *state;
    char buf[16];
    /* 15043 "▁Hello": the dummy-prefix space goes at the start and after BOS only. */
    assert_int_equal(rd_tokenizer_decode_piece(t, -1, 15043, buf, sizeof buf), 5);
    assert_memory_equal(buf, "Hello", 5);
    assert_int_equal(rd_tokenizer_decode_piece(t, 1, 15043, buf, sizeof buf), 5);
    assert_int_equal(rd_tokenizer_decode_piece(t, 3186, 15043, buf, sizeof buf), 6);
    assert_memory_equal(buf, " Hello", 6);
    /* Truncation like snprintf: full length returned, at most cap bytes written. */
    memset(buf, '#', sizeof buf);
    assert_int_equal(rd_tokenizer_decode_piece(t, 3186, 15043, buf, 3), 6);
    assert_memory_equal(buf, " He#", 4);
    assert_int_equal(rd_tokenizer_decode_piece(t, 3186, 15043, NULL, 0), 6);
    /* Byte pieces give their byte; control and unknown pieces nothing. */
    assert_int_equal(rd_tokenizer_decode_piece(t, 3186, 3 + 0xF0, buf, sizeof buf), 1);
    assert_int_equal((unsigned char)buf[0], 0xF0);
    assert_int_equal(rd_tokenizer_decode_piece(t, 3186, 1, buf, sizeof buf), 0);
    assert_int_equal(rd_tokenizer_decode_piece(t, 3186, 2, buf, sizeof buf), 0);
    assert_int_equal(rd_tokenizer_decode_piece(t, 3186, 0, buf, sizeof buf), 0);
    assert_int_equal(rd_tokenizer_decode_piece(t, 3186, LLAMA2_VOCAB, buf, sizeof buf), 0);
    /* decode: BOS/EOS vanish, the first space after BOS goes, ids are checked. */
    const int ids[] = {1, 15043, 3186, 2};
    rd_error err = {{0}};
    char *s = rd_tokenizer_decode(t, ids, 4, &err);
    assert_non_null(s);
    assert_string_equal(s, "Hello world");
    free(s);
    const int bad[] = {15043, -3};
    assert_null(rd_tokenizer_decode(t, bad, 2, &err));
    assert_non_null(strstr(err.msg, "-3"));
    s = rd_tokenizer_decode(t, NULL, 0, &err);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

/* ---- hand-built vocabularies ------------------------------------------------------ */

#define MARK "\xE2\x96\x81" /* ▁ */

/* Vocabulary A: <unk> <s> </s>, the 256 byte pieces (ids 3..258), then these. */
static const char *const A_PIECES[] = {"a",  "b",  "c",  MARK,     "ab",
                                       "ba", "bc", "aa", MARK "a", "abc"};
static const float A_SCORES[] = {-20, -20, -20, -20, -3, -3, -2, -5, -4, -1};
enum { A_a = 259, A_b, A_c, A_MARK, A_ab, A_ba, A_bc, A_aa, A_Ma, A_abc, A_N };
#define A_BYTE(b) (3 + (b))

static rd_tokenizer *vocab_a(void) {
    char byte_names[256][8]; /* copied by rd_tokenizer_new */
    const char *pieces[A_N];
    float scores[A_N] = {0};
    pieces[0] = "<unk>";
    pieces[1] = "<s>";
    pieces[2] = "</s>";
    for (int b = 0; b < 256; b++) {
        snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", b);
        pieces[A_BYTE(b)] = byte_names[b];
    }
    for (int i = A_a; i < A_N; i++) {
        pieces[i] = A_PIECES[i - A_a];
        scores[i] = A_SCORES[i - A_a];
    }
    rd_vocab_spec spec = {.n_pieces = A_N, .pieces = pieces, .scores = scores,
                          .bos_id = 1, .eos_id = 2, .unk_id = 0, .add_dummy_prefix = 1};
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_new(&spec, "vocab A", &err);
    if (!t) fail_msg("%s", err.msg);
    return t;
}

#define EXPECT(t, text, ...)                                                                 \
    do {                                                                                     \
        const int want_[] = {__VA_ARGS__};                                                   \
        expect_ids(t, text, sizeof text - 1, want_, sizeof want_ / sizeof want_[0]);         \
    } while (0)

static void test_tiny_merge_order(void **state) {
    rd_tokenizer *t = vocab_a();
    assert_int_equal(rd_tokenizer_type(t, A_BYTE(0x41)), RD_TOKEN_BYTE);
    assert_int_equal(rd_tokenizer_type(t, A_ab), RD_TOKEN_NORMAL);
    /* bc (-2) before ab (-3), then a+bc = abc (-1). */
    EXPECT(t, "abc", A_MARK, A_abc);
    EXPECT(t, "abcabc", A_MARK, A_abc, A_abc);
    /* ▁a (-4) before aa (-5); then the remaining a+a. */
    EXPECT(t, "aaa", A_Ma, A_aa);
    /* c+a is no piece: ab. */
    EXPECT(t, "cab", A_MARK, A_c, A_ab);
    /* Spaces: each is a ▁; ▁ + a merges. */
    EXPECT(t, " a", A_MARK, A_Ma);
    EXPECT(t, "a  b", A_Ma, A_MARK, A_MARK, A_b);
    rd_tokenizer_free(t);
}

static void test_tiny_tie_leftmost(void **state) {
    rd_tokenizer *t = vocab_a();
    /* ab and ba both score -3: the leftmost pair merges first. */
    EXPECT(t, "aba", A_MARK, A_ab, A_a);
    EXPECT(t, "bab", A_MARK, A_ba, A_b);
    rd_tokenizer_free(t);
}

static void test_tiny_byte_fallback(void **state) {
    rd_tokenizer *t = vocab_a();
    EXPECT(t, "\xC3\xA9", A_MARK, A_BYTE(0xC3), A_BYTE(0xA9)); /* é has no piece */
    EXPECT(t, "a\xC3\xA9" "b", A_Ma, A_BYTE(0xC3), A_BYTE(0xA9), A_b);
    EXPECT(t, "xy", A_MARK, A_BYTE('x'), A_BYTE('y'));
    EXPECT(t, "\xF0\x9F\xA6\x99", A_MARK, A_BYTE(0xF0), A_BYTE(0x9F), A_BYTE(0xA6), A_BYTE(0x99));
    /* Decoding puts the bytes back together. */
    const int ids[] = {A_Ma, A_BYTE(0xC3), A_BYTE(0xA9), A_b};
    rd_error err = {{0}};
    char *s = rd_tokenizer_decode(t, ids, 4, &err);
    assert_non_null(s);
    assert_string_equal(s, "a\xC3\xA9" "b");
    free(s);
    rd_tokenizer_free(t);
}

static void test_tiny_invalid_utf8(void **state) {
    rd_tokenizer *t = vocab_a();
    /* As in SentencePiece, each malformed byte becomes U+FFFD (EF BF BD), here as bytes. */
    EXPECT(t, "\xFF", A_MARK, A_BYTE(0xEF), A_BYTE(0xBF), A_BYTE(0xBD));
    EXPECT(t, "a\xE2\x96", A_Ma, A_BYTE(0xEF), A_BYTE(0xBF), A_BYTE(0xBD), A_BYTE(0xEF),
           A_BYTE(0xBF), A_BYTE(0xBD));
    EXPECT(t, "\xC0\x80" "b", A_MARK, A_BYTE(0xEF), A_BYTE(0xBF), A_BYTE(0xBD), A_BYTE(0xEF),
           A_BYTE(0xBF), A_BYTE(0xBD), A_b); /* overlong NUL */
    EXPECT(t, "\xED\xA0\x80", A_MARK, A_BYTE(0xEF), A_BYTE(0xBF), A_BYTE(0xBD), A_BYTE(0xEF),
           A_BYTE(0xBF), A_BYTE(0xBD), A_BYTE(0xEF), A_BYTE(0xBF), A_BYTE(0xBD)); /* surrogate */
    rd_tokenizer_free(t);
}

/* Vocabulary B: no byte pieces, an UNUSED piece, two USER_DEFINED pieces. */
static rd_tokenizer *vocab_b(void) {
    const char *pieces[] = {"<unk>", "<s>", "</s>", "a", "b", "c", MARK, "ab",
                            "abc", "bc", "<x>", "<xy>", MARK "a"};
    const float scores[] = {0, 0, 0, -1, -2, -2, -3, -1.5f, -4, -5, 0, 0, -0.5f};
    const int types[] = {RD_TOKEN_UNKNOWN, RD_TOKEN_CONTROL, RD_TOKEN_CONTROL,
                         RD_TOKEN_NORMAL, RD_TOKEN_NORMAL, RD_TOKEN_NORMAL, RD_TOKEN_NORMAL,
                         RD_TOKEN_UNUSED, RD_TOKEN_NORMAL, RD_TOKEN_NORMAL,
                         RD_TOKEN_USER_DEFINED, RD_TOKEN_USER_DEFINED, RD_TOKEN_NORMAL};
    rd_vocab_spec spec = {.n_pieces = 13, .pieces = pieces, .scores = scores, .types = types,
                          .bos_id = 1, .eos_id = 2, .unk_id = 0, .add_dummy_prefix = 1};
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_new(&spec, "vocab B", &err);
    if (!t) fail_msg("%s", err.msg);
    return t;
}

static void test_tiny_unknown_unused_user(void **state) {
    rd_tokenizer *t = vocab_b();
    /* A run of unknown characters is one <unk> when there are no byte pieces. */
    EXPECT(t, "xyz ab", 6, 0, 12, 4);
    EXPECT(t, "q\xC3\xA9q a", 6, 0, 12);
    EXPECT(t, "\xFF", 6, 0);
    /* User-defined pieces: greedy longest match, never merged; "<x" alone is unknown. */
    EXPECT(t, "a<xy>b<x", 12, 11, 4, 0);
    /* The UNUSED "ab" takes part in merging, then is split back into a + b. */
    EXPECT(t, "<x>ab", 6, 10, 3, 4);
    EXPECT(t, "ab", 12, 4);
    EXPECT(t, "abc", 12, 9);
    rd_tokenizer_free(t);
}

static void test_tiny_no_dummy_prefix(void **state) {
    const char *pieces[] = {"<unk>", "a", MARK, MARK "a"};
    rd_vocab_spec spec = {.n_pieces = 4, .pieces = pieces, .bos_id = -1, .eos_id = -1,
                          .unk_id = 0, .add_dummy_prefix = 0};
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_new(&spec, "no prefix", &err);
    assert_non_null(t);
    assert_int_equal(rd_tokenizer_bos(t), -1);
    EXPECT(t, "a", 1);
    EXPECT(t, " a", 3);
    int *ids = NULL;
    size_t n = 0;
    assert_int_equal(rd_tokenizer_encode(t, "a", 1, 1, 1, &ids, &n, &err), 0);
    assert_int_equal(n, 1); /* no BOS/EOS to add */
    free(ids);
    rd_tokenizer_free(t);
}

static void test_new_rejects_bad_vocabularies(void **state) {
    rd_error err = {{0}};
    const char *dup[] = {"<unk>", "a", "b", "a"};
    rd_vocab_spec spec = {.n_pieces = 4, .pieces = dup, .bos_id = -1, .eos_id = -1,
                          .unk_id = 0, .add_dummy_prefix = 1};
    assert_null(rd_tokenizer_new(&spec, "dup.vocab", &err));
    assert_non_null(strstr(err.msg, "dup.vocab"));
    assert_non_null(strstr(err.msg, "same text"));

    const char *bad_utf8[] = {"<unk>", "a\xC3"};
    spec = (rd_vocab_spec){.n_pieces = 2, .pieces = bad_utf8, .bos_id = -1, .eos_id = -1,
                           .unk_id = 0};
    assert_null(rd_tokenizer_new(&spec, "utf8.vocab", &err));
    assert_non_null(strstr(err.msg, "UTF-8"));

    const char *ok[] = {"<unk>", "a"};
    spec = (rd_vocab_spec){.n_pieces = 2, .pieces = ok, .bos_id = 2, .eos_id = -1, .unk_id = 0};
    assert_null(rd_tokenizer_new(&spec, "ids.vocab", &err));
    assert_non_null(strstr(err.msg, "BOS"));

    spec = (rd_vocab_spec){.n_pieces = 0, .pieces = ok, .bos_id = -1, .eos_id = -1, .unk_id = -1};
    assert_null(rd_tokenizer_new(&spec, "empty.vocab", &err));
    assert_non_null(strstr(err.msg, "empty.vocab"));

    const int types[] = {RD_TOKEN_UNKNOWN, 9};
    spec = (rd_vocab_spec){.n_pieces = 2, .pieces = ok, .types = types, .bos_id = -1,
                           .eos_id = -1, .unk_id = 0};
    assert_null(rd_tokenizer_new(&spec, "types.vocab", &err));
    assert_non_null(strstr(err.msg, "type"));

    const char *bytes[] = {"<unk>", "<0x41>", "<0x41>"};
    spec = (rd_vocab_spec){.n_pieces = 3, .pieces = bytes, .bos_id = -1, .eos_id = -1,
                           .unk_id = 0};
    assert_null(rd_tokenizer_new(&spec, "bytes.vocab", &err));
    assert_non_null(strstr(err.msg, "0x41"));
}

/* A tokenizer from one line of "spm_crosscheck.py --vocabs". */
static rd_tokenizer *json_vocab(const cJSON *obj) {
    const cJSON *P = cJSON_GetObjectItemCaseSensitive(obj, "pieces");
    const cJSON *S = cJSON_GetObjectItemCaseSensitive(obj, "scores");
    const cJSON *T = cJSON_GetObjectItemCaseSensitive(obj, "types");
    const cJSON *D = cJSON_GetObjectItemCaseSensitive(obj, "add_dummy_prefix");
    assert_true(cJSON_IsArray(P) && cJSON_IsArray(S) && cJSON_IsArray(T) && cJSON_IsNumber(D));
    int n = cJSON_GetArraySize(P);
    assert_true(n > 0 && cJSON_GetArraySize(S) == n && cJSON_GetArraySize(T) == n);
    const size_t un = n > 0 ? (size_t)n : 1; /* n > 0 (asserted): for gcc's size analysis */
    const char **pieces = calloc(un, sizeof *pieces);
    float *scores = calloc(un, sizeof *scores);
    int *types = calloc(un, sizeof *types);
    assert_true(pieces && scores && types);
    const cJSON *p = P->child, *s = S->child, *k = T->child;
    for (int i = 0; i < n; i++, p = p->next, s = s->next, k = k->next) {
        pieces[i] = p->valuestring;
        scores[i] = (float)s->valuedouble;
        types[i] = k->valueint;
    }
    rd_vocab_spec spec = {.n_pieces = n, .pieces = pieces, .scores = scores, .types = types,
                          .bos_id = 1, .eos_id = 2, .unk_id = 0,
                          .add_dummy_prefix = D->valueint};
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_new(&spec, "random vocabulary", &err);
    free(pieces);
    free(scores);
    free(types);
    if (!t) fail_msg("%s", err.msg);
    return t;
}

/* Random tiny vocabularies full of equal scores, UNUSED and USER_DEFINED pieces: every
 * text must encode as SentencePiece encodes it. */
static void test_tiny_crosscheck_sentencepiece(void **state) {
    char dir[512], out[600];
    run_crosscheck("--vocabs", "vocabs.jsonl", dir, sizeof dir, out, sizeof out);
    size_t len = 0, n_vocabs = 0, n_texts = 0, n_cut = 0;
    char *data = read_text_file(out, &len);
    tiny_rmdir(dir);
    assert_non_null(data);
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *obj = cJSON_Parse(line);
        assert_non_null(obj);
        rd_tokenizer *t = json_vocab(obj);
        n_cut += t->cut.keys != NULL;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(obj, "cases")) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");
            assert_true(cJSON_IsString(text));
            size_t n_want = 0;
            int *want = json_ids(cJSON_GetObjectItemCaseSensitive(c, "ids"), &n_want);
            expect_ids(t, text->valuestring, strlen(text->valuestring), want, n_want);
            free(want);
            n_texts++;
        }
        rd_tokenizer_free(t);
        cJSON_Delete(obj);
        n_vocabs++;
    }
    free(data);
    print_message("%zu random vocabularies (%zu of them cut texts), %zu texts: all as SentencePiece\n",
                  n_vocabs, n_cut, n_texts);
    assert_true(n_vocabs >= 100 && n_texts >= 3000 && n_cut >= 15);
}

/* ---- tokenizer.bin files ---------------------------------------------------------- */

typedef struct bin_buf {
    unsigned char data[4096];
    size_t n;
} bin_buf;

static void bin_i32(bin_buf *b, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int i = 0; i < 4; i++) b->data[b->n++] = (unsigned char)(u >> (8 * i));
}

static void bin_token(bin_buf *b, float score, const char *s) {
    uint32_t u;
    memcpy(&u, &score, sizeof u);
    bin_i32(b, (int32_t)u);
    bin_i32(b, (int32_t)strlen(s));
    memcpy(b->data + b->n, s, strlen(s));
    b->n += strlen(s);
}

/* A valid 7-token file in llama2.c's spelling (spaces, "\n<s>\n"). */
static bin_buf small_bin(void) {
    bin_buf b = {.n = 0};
    bin_i32(&b, 6);
    bin_token(&b, 0, "<unk>");
    bin_token(&b, 0, "\n<s>\n");
    bin_token(&b, 0, "\n</s>\n");
    bin_token(&b, 0, "<0x41>");
    bin_token(&b, -1, "a");
    bin_token(&b, -2, " ");
    bin_token(&b, -0.5f, " a");
    return b;
}

static void test_llama2c_small_file(void **state) {
    char dir[512], path[600];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    bin_buf b = small_bin();
    assert_int_equal(write_file(path, b.data, b.n), 0);
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_load_llama2c(path, 7, &err);
    tiny_rmdir(dir);
    if (!t) fail_msg("%s", err.msg);
    size_t len = 0;
    assert_memory_equal(rd_tokenizer_piece(t, 1, &len), "<s>", 3);
    assert_memory_equal(rd_tokenizer_piece(t, 6, &len), MARK "a", 4);
    assert_int_equal(len, 4);
    assert_int_equal(rd_tokenizer_type(t, 1), RD_TOKEN_CONTROL);
    assert_int_equal(rd_tokenizer_type(t, 3), RD_TOKEN_BYTE);
    assert_int_equal(rd_tokenizer_type(t, 6), RD_TOKEN_NORMAL);
    EXPECT(t, "a a", 6, 6);
    EXPECT(t, "aA", 6, 3);
    EXPECT(t, "Ab", 5, 3, 0); /* no byte piece for 'b': <unk> */
    rd_tokenizer_free(t);
}

/* Writes data to dir/name, loads it with vocab_size, expects an error naming the file
 * and containing `what`. */
static void expect_bad_file(const char *dir, const char *name, const void *data, size_t n,
                            int vocab_size, const char *what) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(write_file(path, data, n), 0);
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_load_llama2c(path, vocab_size, &err);
    if (t) {
        rd_tokenizer_free(t);
        fail_msg("%s loaded although it is bad", name);
    }
    if (!strstr(err.msg, path) || !strstr(err.msg, what))
        fail_msg("%s: message \"%s\" should name the file and say \"%s\"", name, err.msg, what);
}

static void test_llama2c_bad_files(void **state) {
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    bin_buf good = small_bin();

    expect_bad_file(dir, "empty.bin", "", 0, 7, "too short");
    expect_bad_file(dir, "header.bin", good.data, 4, 7, "too short for 7 tokens");
    expect_bad_file(dir, "truncated.bin", good.data, good.n - 1, 7, "only 1 bytes are left");
    expect_bad_file(dir, "cut_in_header.bin", good.data, good.n - 4, 7, "ends inside token 6");
    expect_bad_file(dir, "too_few.bin", good.data, good.n, 8, "ends inside token 7");
    expect_bad_file(dir, "too_many.bin", good.data, good.n, 6, "follow the last");

    bin_buf b = {.n = 0};
    bin_i32(&b, 6);
    bin_token(&b, 0, "<unk>");
    bin_i32(&b, 0);
    bin_i32(&b, -5); /* negative length */
    bin_i32(&b, 0);
    bin_i32(&b, 0);
    expect_bad_file(dir, "negative.bin", b.data, b.n, 2, "negative length");

    b.n = 0;
    bin_i32(&b, 6);
    bin_token(&b, 0, "<unk>");
    bin_i32(&b, 0);
    bin_i32(&b, 0x7fffffff); /* huge length */
    bin_i32(&b, 0);
    bin_i32(&b, 0);
    expect_bad_file(dir, "huge.bin", b.data, b.n, 2, "length 2147483647");

    b.n = 0;
    bin_i32(&b, -1);
    bin_token(&b, 0, "<unk>");
    expect_bad_file(dir, "max_len.bin", b.data, b.n, 1, "max_token_length");

    b.n = 0;
    bin_i32(&b, 6);
    bin_token(&b, 0, "<unk>");
    bin_token(&b, 0, "a\xFF");
    expect_bad_file(dir, "utf8.bin", b.data, b.n, 2, "not valid UTF-8");

    b.n = 0;
    bin_i32(&b, 6);
    bin_token(&b, 0, "<unk>");
    bin_token(&b, 0, "\n<s>\n");
    bin_token(&b, 0, "\n</s>\n");
    bin_token(&b, 0, " x");
    bin_token(&b, 0, " x");
    expect_bad_file(dir, "dup.bin", b.data, b.n, 5, "same text");

    expect_bad_file(dir, "negative_vocab.bin", good.data, good.n, -1, "vocab_size");
    /* vocab_size 0 counts the tokens of a bare tokenizer.bin; a bad one still fails */
    expect_bad_file(dir, "counted_truncated.bin", good.data, good.n - 1, 0, "token 6");
    {
        char counted[700];
        snprintf(counted, sizeof counted, "%s/counted.bin", dir);
        assert_int_equal(write_file(counted, good.data, good.n), 0);
        rd_error cerr = {{0}};
        rd_tokenizer *ct = rd_tokenizer_load_llama2c(counted, 0, &cerr);
        assert_non_null(ct);
        assert_int_equal(rd_tokenizer_vocab_size(ct), 7);
        rd_tokenizer_free(ct);
    }

    char missing[700];
    snprintf(missing, sizeof missing, "%s/missing.bin", dir);
    rd_error err = {{0}};
    assert_null(rd_tokenizer_load_llama2c(missing, 7, &err));
    assert_non_null(strstr(err.msg, missing));
    assert_null(rd_tokenizer_load_llama2c(dir, 7, &err)); /* a directory */
    assert_non_null(strstr(err.msg, dir));
    tiny_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest llama2[] = {
        cmocka_unit_test(test_llama2_vocab),
        cmocka_unit_test(test_llama2_expected),
        cmocka_unit_test(test_llama2_bos_eos),
        cmocka_unit_test(test_llama2_crosscheck_sentencepiece),
        cmocka_unit_test(test_llama2_long_text_fast),
        cmocka_unit_test(test_llama2_long_text_memory),
        cmocka_unit_test(test_llama2_decode_piece),
    };
    const struct CMUnitTest tiny[] = {
        cmocka_unit_test(test_tiny_merge_order),
        cmocka_unit_test(test_tiny_tie_leftmost),
        cmocka_unit_test(test_tiny_byte_fallback),
        cmocka_unit_test(test_tiny_invalid_utf8),
        cmocka_unit_test(test_tiny_unknown_unused_user),
        cmocka_unit_test(test_tiny_no_dummy_prefix),
        cmocka_unit_test(test_tiny_crosscheck_sentencepiece),
        cmocka_unit_test(test_new_rejects_bad_vocabularies),
        cmocka_unit_test(test_llama2c_small_file),
        cmocka_unit_test(test_llama2c_bad_files),
    };
    int failed = cmocka_run_group_tests_name("tokenizer: llama2", llama2, setup_llama2,
                                             teardown_llama2);
    failed += cmocka_run_group_tests_name("tokenizer: small vocabularies and files", tiny,
                                          NULL, NULL);
    return failed ? 1 : 0;
}
