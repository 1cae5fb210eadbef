/* Hugging Face tokenizer.json loader: the Llama-2 fixture reproduces SentencePiece's ids
 * exactly; the real Mistral tokenizer.json matches Hugging Face's ids wherever the two
 * tokenizers agree (no whitespace runs or special-token text); small hand-written files
 * check merge order, added tokens, the config's special tokens, the Metaspace form, and
 * that other kinds and bad files are refused with messages naming the file. */
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

#include "redit/tokenizer.h"
#include "helpers/tiny_model.h"

/* ---- helpers ---------------------------------------------------------------------- */

static char *read_text_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *p = realloc(buf, cap);
            if (!p) break;
            buf = p;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got);
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

/* Writes text to dir/name; the full path goes to path. */
static void write_text(const char *dir, const char *name, const char *text, char *path,
                       size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static rd_tokenizer *load_fixture(const char *json, const char *config) {
    const char *p = shared_fixture(json);
    if (!p) fail_msg("../shared/fixtures/%s is missing", json);
    char path[512], cpath[512];
    snprintf(path, sizeof path, "%s", p);
    if (config) {
        p = shared_fixture(config);
        if (!p) fail_msg("../shared/fixtures/%s is missing", config);
        snprintf(cpath, sizeof cpath, "%s", p);
    }
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_load_hf(path, config ? cpath : NULL, &err);
    if (!t) fail_msg("%s", err.msg);
    return t;
}

/* 1 when encoding text gives exactly want (n_want ids); prints both otherwise. */
/* note: printed before the ids of a mismatch. */
static int same_ids(const rd_tokenizer *t, const char *text, const cJSON *want, const char *note) {
    int *ids = NULL;
    size_t n = 0;
    rd_error err = {{0}};
    if (rd_tokenizer_encode(t, text, strlen(text), 0, 0, &ids, &n, &err))
        fail_msg("encode failed: %s", err.msg);
    int same = (size_t)cJSON_GetArraySize(want) == n;
    for (size_t i = 0; same && i < n; i++)
        same = cJSON_GetArrayItem(want, (int)i)->valueint == ids[i];
    if (!same) {
        char *w = cJSON_PrintUnformatted(want);
        print_message("  %stext \"%s\": expected %s, got", note, text, w);
        for (size_t i = 0; i < n; i++) print_message(" %d", ids[i]);
        print_message("\n");
        free(w);
    }
    free(ids);
    return same;
}

/* Encodes every line {"text", "ids"[, "whitespace_run_or_special"]} of a fixture JSONL.
 * Counts lines, mismatches among unflagged lines and among flagged ones. */
typedef struct jsonl_result {
    int lines, flagged, bad_unflagged, bad_flagged;
} jsonl_result;

static jsonl_result check_jsonl(const rd_tokenizer *t, const char *rel) {
    const char *path = shared_fixture(rel);
    if (!path) fail_msg("../shared/fixtures/%s is missing", rel);
    char *data = read_text_file(path);
    assert_non_null(data);
    jsonl_result r = {0};
    for (char *line = data, *end; *line; line = end + (*end != '\0')) {
        end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (end == line) continue;
        cJSON *obj = cJSON_ParseWithLength(line, (size_t)(end - line));
        assert_non_null(obj);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(obj, "ids");
        assert_true(cJSON_IsString(text) && cJSON_IsArray(ids));
        int flagged =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "whitespace_run_or_special"));
        int same = same_ids(t, text->valuestring, ids,
                            flagged ? "(whitespace run or special; redit follows SentencePiece) "
                                    : "");
        r.lines++;
        r.flagged += flagged;
        if (!same && flagged) r.bad_flagged++;
        if (!same && !flagged) r.bad_unflagged++;
        cJSON_Delete(obj);
    }
    free(data);
    return r;
}

/* ---- the fixtures ----------------------------------------------------------------- */

static void test_llama2_json_expected(void **state) {
    (void)state;
    rd_tokenizer *t = load_fixture("llama2-tokenizer/tokenizer.json", NULL);
    assert_int_equal(rd_tokenizer_vocab_size(t), 32000);
    assert_int_equal(rd_tokenizer_bos(t), 1);
    assert_int_equal(rd_tokenizer_eos(t), 2);
    assert_int_equal(rd_tokenizer_unk(t), 0);
    assert_true(rd_tokenizer_adds_dummy_prefix(t));
    assert_int_equal(rd_tokenizer_type(t, 0), RD_TOKEN_UNKNOWN);
    assert_int_equal(rd_tokenizer_type(t, 1), RD_TOKEN_CONTROL);
    assert_int_equal(rd_tokenizer_type(t, 2), RD_TOKEN_CONTROL);
    assert_int_equal(rd_tokenizer_type(t, 3), RD_TOKEN_BYTE);
    assert_int_equal(rd_tokenizer_type(t, 258), RD_TOKEN_BYTE);
    assert_int_equal(rd_tokenizer_type(t, 260), RD_TOKEN_NORMAL);
    /* Merge order becomes score order; whitespace runs below every merge. */
    assert_true(rd_tokenizer_score(t, 260) > rd_tokenizer_score(t, 261));
    assert_true(rd_tokenizer_score(t, 259) < rd_tokenizer_score(t, 29870));
    jsonl_result r = check_jsonl(t, "llama2-tokenizer/expected.jsonl");
    assert_int_equal(r.lines, 40);
    assert_int_equal(r.bad_unflagged, 0);
    rd_tokenizer_free(t);
}

/* Same pieces as llama2.c's tokenizer.bin of the same vocabulary. */
static void test_llama2_json_pieces_match_bin(void **state) {
    (void)state;
    const char *bin = shared_fixture("llama2-tokenizer/tokenizer.bin");
    if (!bin) fail_msg("../shared/fixtures/llama2-tokenizer/tokenizer.bin is missing");
    rd_error err = {{0}};
    rd_tokenizer *b = rd_tokenizer_load_llama2c(bin, 32000, &err);
    if (!b) fail_msg("%s", err.msg);
    rd_tokenizer *t = load_fixture("llama2-tokenizer/tokenizer.json", NULL);
    for (int i = 0; i < 32000; i++) {
        size_t la, lb;
        const char *pa = rd_tokenizer_piece(t, i, &la), *pb = rd_tokenizer_piece(b, i, &lb);
        if (la != lb || memcmp(pa, pb, la) != 0) fail_msg("piece %d differs", i);
        assert_int_equal(rd_tokenizer_type(t, i), rd_tokenizer_type(b, i));
    }
    rd_tokenizer_free(t);
    rd_tokenizer_free(b);
}

static void test_mistral_json_matches_hf(void **state) {
    (void)state;
    rd_tokenizer *t = load_fixture("mistral-tokenizer/tokenizer.json",
                                   "mistral-tokenizer/tokenizer_config.json");
    assert_int_equal(rd_tokenizer_vocab_size(t), 32000);
    assert_int_equal(rd_tokenizer_bos(t), 1);
    assert_int_equal(rd_tokenizer_eos(t), 2);
    assert_int_equal(rd_tokenizer_unk(t), 0);
    jsonl_result r = check_jsonl(t, "mistral-tokenizer/expected_hf_js.jsonl");
    print_message("mistral: %d lines, %d flagged whitespace_run_or_special, of which %d differ "
                  "from Hugging Face's ids (redit follows SentencePiece there)\n",
                  r.lines, r.flagged, r.bad_flagged);
    assert_int_equal(r.lines, 40);
    assert_true(r.lines - r.flagged >= 20);
    assert_int_equal(r.bad_unflagged, 0);
    rd_tokenizer_free(t);
}

/* ---- small hand-written files ----------------------------------------------------- */

/* A tokenizer.json with the Llama normalizer, byte pieces for 'a'..'c' only, and the given
 * vocab entries, merges and added tokens spliced in. */
static char *small_json(const char *extra_vocab, const char *merges, const char *added,
                        const char *normalizer, const char *pre) {
    static const char fmt[] =
        "{\"version\": \"1.0\", \"added_tokens\": [%s],\n"
        " \"normalizer\": %s, \"pre_tokenizer\": %s,\n"
        " \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"unk_token\": \"<unk>\",\n"
        "  \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0x61>\": 3, \"<0x62>\": 4,\n"
        "   \"<0x63>\": 5, \"\xE2\x96\x81\": 6, \"a\": 7, \"b\": 8, \"c\": 9%s},\n"
        "  \"merges\": [%s]}}\n";
    size_t cap = sizeof fmt + strlen(extra_vocab) + strlen(merges) + strlen(added) +
                 strlen(normalizer) + strlen(pre);
    char *s = malloc(cap);
    assert_non_null(s);
    snprintf(s, cap, fmt, added, normalizer, pre, extra_vocab, merges);
    return s;
}

#define LLAMA_NORMALIZER                                                                  \
    "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": "     \
    "\"\xE2\x96\x81\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, "        \
    "\"content\": \"\xE2\x96\x81\"}]}"
#define LLAMA_ADDED                                                                       \
    "{\"id\": 0, \"content\": \"<unk>\", \"special\": true}, "                             \
    "{\"id\": 1, \"content\": \"<s>\", \"special\": true}, "                               \
    "{\"id\": 2, \"content\": \"</s>\", \"special\": true}"

static rd_tokenizer *load_text(const char *dir, const char *json, const char *config,
                               rd_error *err) {
    char path[600], cpath[600];
    write_text(dir, "tokenizer.json", json, path, sizeof path);
    if (config) write_text(dir, "tokenizer_config.json", config, cpath, sizeof cpath);
    return rd_tokenizer_load_hf(path, config ? cpath : NULL, err);
}

static void expect_encode(const rd_tokenizer *t, const char *text, const int *want, size_t n_want) {
    int *ids = NULL;
    size_t n = 0;
    rd_error err = {{0}};
    assert_int_equal(rd_tokenizer_encode(t, text, strlen(text), 0, 0, &ids, &n, &err), 0);
    int same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        print_message("  \"%s\":", text);
        for (size_t i = 0; i < n; i++) print_message(" %d", ids[i]);
        print_message("\n");
    }
    free(ids);
    assert_true(same);
}

/* The merge list decides: "b c" ranked before "a b" makes "abc" → a + bc, and the other
 * way round ab + c. */
static void test_small_merge_order(void **state) {
    (void)state;
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_error err = {{0}};
    const char *vocab = ", \"ab\": 10, \"bc\": 11, \"\xE2\x96\x81" "a\": 12";
    char *j = small_json(vocab, "\"b c\", \"a b\"", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    rd_tokenizer *t = load_text(dir, j, NULL, &err);
    if (!t) fail_msg("%s", err.msg);
    /* bc first; "▁a" has no merge but is a piece: SentencePiece merges it last. */
    expect_encode(t, "abc", (int[]){12, 11}, 2);
    expect_encode(t, "cd", (int[]){6, 9, 0}, 3);  /* 'd' has no byte piece: <unk> */
    rd_tokenizer_free(t);
    free(j);
    j = small_json(vocab, "[\"a\", \"b\"], [\"b\", \"c\"], [\"\xE2\x96\x81\", \"a\"]", LLAMA_ADDED,
                   LLAMA_NORMALIZER, "null");
    t = load_text(dir, j, NULL, &err);
    if (!t) fail_msg("%s", err.msg);
    expect_encode(t, "abc", (int[]){6, 10, 9}, 3);
    expect_encode(t, "ac", (int[]){12, 9}, 2);
    rd_tokenizer_free(t);
    free(j);
    tiny_rmdir(dir);
}

/* Metaspace without a prefix, a non-special added token matched in the text, an added
 * token extending the vocabulary, and the config's special tokens in both spellings. */
static void test_small_added_config_metaspace(void **state) {
    (void)state;
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_error err = {{0}};
    char *j = small_json(", \"ab\": 10", "\"a b\"",
                         LLAMA_ADDED ", {\"id\": 11, \"content\": \"cab\", \"special\": false},"
                                     " {\"id\": 12, \"content\": \"<|end|>\", \"special\": true}",
                         "null",
                         "{\"type\": \"Metaspace\", \"replacement\": \"\xE2\x96\x81\", "
                         "\"prepend_scheme\": \"never\", \"split\": false}");
    rd_tokenizer *t = load_text(dir, j,
                                "{\"bos_token\": {\"content\": \"<s>\", \"special\": true}, "
                                "\"eos_token\": \"<|end|>\", \"unk_token\": \"<unk>\"}",
                                &err);
    if (!t) fail_msg("%s", err.msg);
    assert_int_equal(rd_tokenizer_vocab_size(t), 13);
    assert_false(rd_tokenizer_adds_dummy_prefix(t));
    assert_int_equal(rd_tokenizer_bos(t), 1);
    assert_int_equal(rd_tokenizer_eos(t), 12);
    assert_int_equal(rd_tokenizer_type(t, 11), RD_TOKEN_USER_DEFINED);
    assert_int_equal(rd_tokenizer_type(t, 12), RD_TOKEN_CONTROL);
    expect_encode(t, "abcab", (int[]){10, 11}, 2);
    /* Special text is not matched; its bytes have no byte pieces here: <unk> each. */
    expect_encode(t, "<|end|>", (int[]){0, 0, 0, 0, 0, 0, 0}, 7);
    rd_tokenizer_free(t);
    /* Without a config: <s> and </s> from the pieces. */
    t = load_text(dir, j, NULL, &err);
    if (!t) fail_msg("%s", err.msg);
    assert_int_equal(rd_tokenizer_eos(t), 2);
    rd_tokenizer_free(t);
    free(j);
    tiny_rmdir(dir);
}

/* Loading `json` (and `config` when not NULL) fails with a message naming `names` (the
 * file the problem is in: "json" or "config") and containing `what`. */
static void expect_refused(const char *dir, const char *json, const char *config,
                           const char *names, const char *what) {
    char path[600], cpath[600];
    write_text(dir, "tokenizer.json", json, path, sizeof path);
    if (config) write_text(dir, "tokenizer_config.json", config, cpath, sizeof cpath);
    rd_error err = {{0}};
    rd_tokenizer *t = rd_tokenizer_load_hf(path, config ? cpath : NULL, &err);
    if (t) {
        rd_tokenizer_free(t);
        fail_msg("loaded although it should fail with \"%s\"", what);
    }
    const char *file = strcmp(names, "config") == 0 ? cpath : path;
    if (!strstr(err.msg, file) || !strstr(err.msg, what))
        fail_msg("message \"%s\" should name %s and say \"%s\"", err.msg, file, what);
}

static void test_refuses_other_kinds(void **state) {
    (void)state;
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    expect_refused(dir,
                   "{\"added_tokens\": [], \"normalizer\": null,"
                   " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false,"
                   " \"trim_offsets\": true, \"use_regex\": true},"
                   " \"decoder\": {\"type\": \"ByteLevel\"},"
                   " \"model\": {\"type\": \"BPE\", \"byte_fallback\": false,"
                   " \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}}",
                   NULL, "json", "byte-level BPE");
    expect_refused(dir,
                   "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
                   "{\"type\": \"Split\"}, {\"type\": \"ByteLevel\"}]},"
                   " \"model\": {\"type\": \"BPE\", \"byte_fallback\": false,"
                   " \"vocab\": {\"a\": 0}, \"merges\": []}}",
                   NULL, "json", "byte-level BPE");
    expect_refused(dir,
                   "{\"normalizer\": {\"type\": \"BertNormalizer\"},"
                   " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
                   " \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\","
                   " \"continuing_subword_prefix\": \"##\", \"max_input_chars_per_word\": 100,"
                   " \"vocab\": {\"[UNK]\": 0, \"a\": 1, \"##b\": 2}}}",
                   NULL, "json", "WordPiece tokenizer");
    expect_refused(dir,
                   "{\"pre_tokenizer\": {\"type\": \"Metaspace\","
                   " \"replacement\": \"\xE2\x96\x81\"},"
                   " \"model\": {\"type\": \"Unigram\", \"unk_id\": 0,"
                   " \"vocab\": [[\"<unk>\", 0.0], [\"a\", -1.5]]}}",
                   NULL, "json", "Unigram tokenizer");
    char *j = small_json("", "", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    char *p = strstr(j, "\"byte_fallback\": true");
    assert_non_null(p);
    memcpy(p, "\"byte_fallback\": 0   ", strlen("\"byte_fallback\": true"));
    expect_refused(dir, j, NULL, "json", "byte_fallback is not true");
    free(j);
    j = small_json("", "", LLAMA_ADDED, "{\"type\": \"NFKC\"}", "null");
    expect_refused(dir, j, NULL, "json", "normalizer type \"NFKC\" is not supported");
    free(j);
    j = small_json("", "", LLAMA_ADDED, "null", "null");
    expect_refused(dir, j, NULL, "json", "turns spaces into");
    free(j);
    tiny_rmdir(dir);
}

static void test_refuses_bad_files(void **state) {
    (void)state;
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    expect_refused(dir, "this is not JSON", NULL, "json", "not valid JSON");
    expect_refused(dir, "", NULL, "json", "not valid JSON");
    expect_refused(dir, "[1, 2]", NULL, "json", "not a JSON object");
    expect_refused(dir, "{\"version\": \"1.0\"}", NULL, "json", "no \"model\" object");
    expect_refused(dir, "{\"model\": {\"vocab\": {}}}", NULL, "json", "model.type is missing");
    expect_refused(dir,
                   "{\"normalizer\": " LLAMA_NORMALIZER ", \"model\": {\"type\": \"BPE\","
                   " \"byte_fallback\": true, \"vocab\": [\"a\"], \"merges\": []}}",
                   NULL, "json", "model.vocab is of another JSON type, not an object");
    expect_refused(dir,
                   "{\"normalizer\": " LLAMA_NORMALIZER ", \"model\": {\"type\": \"BPE\","
                   " \"byte_fallback\": true, \"merges\": []}}",
                   NULL, "json", "model.vocab is missing");
    char *j = small_json(", \"ab\": 10", "\"a b\"", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    /* vocab id out of range, duplicate id, negative, fractional */
    char *k = strstr(j, "\"ab\": 10");
    assert_non_null(k);
    memcpy(k, "\"ab\": 99", 8);
    expect_refused(dir, j, NULL, "json", "model.vocab[\"ab\"] is not an id in 0..10");
    memcpy(k, "\"ab\": -1", 8);
    expect_refused(dir, j, NULL, "json", "model.vocab[\"ab\"] is not an id");
    memcpy(k, "\"ab\":  9", 8);
    expect_refused(dir, j, NULL, "json", "have the same id 9");
    memcpy(k, "\"ab\": 10", 8);
    free(j);
    j = small_json(", \"ab\": 10.5", "", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "is not an id");
    free(j);
    j = small_json(", \"ab\": 10", "\"a x\"", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "model.merges[0] (\"a\" + \"x\") names a piece");
    free(j);
    j = small_json(", \"ab\": 10", "\"a b c\"", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "model.merges[0] is neither");
    free(j);
    j = small_json(", \"ab\": 10", "{}", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "model.merges[0] is neither");
    free(j);
    j = small_json("", "", LLAMA_ADDED ", {\"id\": 12, \"content\": \"<x>\", \"special\": true}",
                   LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "no piece has id 10");
    free(j);
    j = small_json("", "", LLAMA_ADDED ", {\"id\": 7, \"content\": \"<x>\", \"special\": true}",
                   LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "added_tokens[3] \"<x>\" has id 7, already \"a\"");
    free(j);
    j = small_json("", "", "{\"id\": 0}", LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "added_tokens[0] has no string \"content\"");
    free(j);
    j = small_json("", "", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, "{\"bos_token\": \"<start>\"}", "config",
                   "bos_token \"<start>\" is not a piece");
    expect_refused(dir, j, "{\"eos_token\": 5}", "config", "eos_token is neither");
    expect_refused(dir, j, "not json", "config", "not valid JSON");
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.json", dir);
    rd_error err = {{0}};
    assert_null(rd_tokenizer_load_hf(missing, NULL, &err));
    assert_non_null(strstr(err.msg, missing));
    assert_non_null(strstr(err.msg, "cannot open"));
    free(j);
    tiny_rmdir(dir);
}

/* model.merges is read from the text, not from a cJSON tree: escapes, both spellings,
 * nested and duplicate keys read as cJSON reads them; broken merges refused by position. */
static void test_merges_from_text(void **state) {
    (void)state;
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    rd_error err = {{0}};
    const char *vocab = ", \"ab\": 10, \"bc\": 11, \"\xE2\x96\x81" "a\": 12";
    /* "b c" first, spelled with escapes (\u0062 is b, \u2581 is ▁, \/ is /) */
    char *j = small_json(vocab, "\"\\u0062 c\" ,\n [\"a\", \"\\u0062\"], [\"\\u2581\", \"a\"]",
                         LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    rd_tokenizer *t = load_text(dir, j, NULL, &err);
    if (!t) fail_msg("%s", err.msg);
    expect_encode(t, "abc", (int[]){12, 11}, 2);
    rd_tokenizer_free(t);
    free(j);
    /* a "merges" key elsewhere (in added_tokens' objects, at the top) is not model.merges;
     * a second model.merges is ignored, as cJSON ignores it */
    j = small_json(vocab, "\"a b\", \"b c\"], \"x\": {\"merges\": [\"q q\"]}, \"merges\": [\"zz\"",
                   LLAMA_ADDED ", {\"id\": 13, \"content\": \"<m>\", \"special\": true, "
                   "\"merges\": [\"b c\"]}", LLAMA_NORMALIZER, "null");
    t = load_text(dir, j, NULL, &err);
    if (!t) fail_msg("%s", err.msg);
    expect_encode(t, "abc", (int[]){6, 10, 9}, 3);
    rd_tokenizer_free(t);
    free(j);
    j = small_json(vocab, "\"a b\",", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "not valid JSON");
    free(j);
    j = small_json(vocab, "\"a b\" \"b c\"", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "not valid JSON");
    free(j);
    j = small_json(vocab, "\"a b\", \"b\\ud800 c\"", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "model.merges[1] is neither");
    free(j);
    j = small_json(vocab, "[\"a\", \"b\", \"c\"]", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    expect_refused(dir, j, NULL, "json", "model.merges[0] is neither");
    free(j);
    /* an unterminated merges array: refused before any tree is built */
    j = small_json(vocab, "\"a b\"", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    j[strlen(j) - 4] = '\0'; /* cuts "]}}\n" */
    expect_refused(dir, j, NULL, "json", "not valid JSON (parse error near byte");
    free(j);
    j = small_json(vocab, "\"a b\"", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    char *m = strstr(j, "\"merges\": [\"a b\"]");
    assert_non_null(m);
    memcpy(m, "\"merges\": {\"a\":1}", 17);
    expect_refused(dir, j, NULL, "json", "model.merges is of another JSON type, not an array");
    free(j);
    /* a NUL byte where a value should start (found by make fuzz: the scan for model.merges
     * stood still on it forever) is refused at once */
    j = small_json(vocab, "\"a b\", 7", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    char *seven = strstr(j, ", 7]");
    assert_non_null(seven);
    seven[2] = '\0';
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    const size_t jlen = (size_t)(seven - j) + 3 + strlen(seven + 3);
    assert_int_equal(fwrite(j, 1, jlen, f), jlen);
    assert_int_equal(fclose(f), 0);
    alarm(20); /* a hang fails the suite instead of stalling it */
    assert_null(rd_tokenizer_load_hf(path, NULL, &err));
    alarm(0);
    assert_non_null(strstr(err.msg, "not valid JSON"));
    free(j);
    tiny_rmdir(dir);
}

/* A tokenizer file over the size cap is refused naming the cap and its override,
 * REDIT_MAX_TOKENIZER_BYTES, which raises it. */
static void test_file_cap_override(void **state) {
    (void)state;
    char dir[512];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    char *j = small_json(", \"ab\": 10", "\"a b\"", LLAMA_ADDED, LLAMA_NORMALIZER, "null");
    setenv("REDIT_MAX_TOKENIZER_BYTES", "100", 1);
    expect_refused(dir, j, NULL, "json", "more than the 100 bytes a tokenizer file may have (the "
                   "limit; the environment variable REDIT_MAX_TOKENIZER_BYTES raises it");
    setenv("REDIT_MAX_TOKENIZER_BYTES", "64k", 1);
    rd_error err = {{0}};
    rd_tokenizer *t = load_text(dir, j, NULL, &err);
    unsetenv("REDIT_MAX_TOKENIZER_BYTES");
    if (!t) fail_msg("%s", err.msg);
    rd_tokenizer_free(t);
    setenv("REDIT_MAX_TOKENIZER_BYTES", "-5", 1);
    char path[600];
    write_text(dir, "tokenizer.json", j, path, sizeof path);
    t = rd_tokenizer_load_hf(path, NULL, &err);
    unsetenv("REDIT_MAX_TOKENIZER_BYTES");
    assert_null(t);
    assert_non_null(strstr(err.msg, "REDIT_MAX_TOKENIZER_BYTES=\"-5\": expected a positive"));
    free(j);
    tiny_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2_json_expected),
        cmocka_unit_test(test_llama2_json_pieces_match_bin),
        cmocka_unit_test(test_mistral_json_matches_hf),
        cmocka_unit_test(test_merges_from_text),
        cmocka_unit_test(test_file_cap_override),
        cmocka_unit_test(test_small_merge_order),
        cmocka_unit_test(test_small_added_config_metaspace),
        cmocka_unit_test(test_refuses_other_kinds),
        cmocka_unit_test(test_refuses_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
