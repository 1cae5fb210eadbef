/* Hugging Face tokenizer.json of the SentencePiece-BPE kind (Llama-2, Mistral, TinyLlama):
 * model.type "BPE" with byte_fallback, spaces turned into "▁" by a Prepend/Replace
 * normalizer or a Metaspace pre-tokenizer. The result encodes with SentencePiece's rules
 * (src/text/bpe_encode.c), so the merge list becomes per-piece scores:
 *
 *   score(piece) = -(rank of the first merge producing it)
 *
 * which orders pieces as SentencePiece's scores do, because converted merge lists are
 * sorted by the merged piece's score (or id). One exception: pieces made only of "▁"
 * (two or more) all get RD_HF_SPACE_RUN_SCORE, below every merge — the score Llama-2's
 * and Mistral's SentencePiece models give their whitespace-run pieces, which some merge
 * lists (those ordered by piece id) rank first. Pieces no merge produces (single
 * characters, specials) score RD_HF_NO_MERGE_SCORE; a longer one among them still merges,
 * last, as SentencePiece would merge a piece of its vocabulary (Hugging Face never would;
 * converted Llama-2/Mistral files have none).
 *
 * The files are untrusted: the file size (RD_HF_MAX_FILE_BYTES, or its override), every
 * count and every id is checked before it is used; each error names the file and the JSON
 * field. Memory stays within a few times the file: the merges are read from the text, not
 * built into a cJSON tree (find_merges). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"
#include "redit/buf.h"
#include "redit/util.h"
#include "redit/vocab.h"

/* Largest tokenizer file read by default (Llama-2's is 1.8 MB, the largest common ones tens
 * of MB); the environment variable RD_HF_MAX_FILE_ENV (a size such as 1G) overrides it. */
#define RD_HF_MAX_FILE_BYTES ((size_t)256 << 20)
#define RD_HF_MAX_FILE_ENV "REDIT_MAX_TOKENIZER_BYTES"
#define RD_HF_MAX_PIECES (1 << 22)
#define RD_HF_MAX_MERGES (1 << 24) /* ranks stay exact in a float */
#define RD_HF_SPACE_RUN_SCORE (-1e9f)
#define RD_HF_NO_MERGE_SCORE (-2e9f)

/* Pieces by id as gathered from model.vocab and added_tokens; strings borrowed from the
 * cJSON tree. */
typedef struct hf_vocab {
    int n;               /* pieces */
    int n_vocab;         /* entries of model.vocab */
    const char **pieces; /* (n) NULL for an id not (yet) given */
    int *types;          /* (n) rd_token_type */
    int bos, eos, unk;   /* -1 when absent */
    int add_dummy_prefix;
} hf_vocab;

static void hf_vocab_free(hf_vocab *v) {
    free(v->pieces);
    free(v->types);
}

/* ---- reading JSON ---------------------------------------------------------------- */

static char *read_whole_file(const char *path, size_t *len, rd_error *err) {
    size_t cap;
    if (rd_env_bytes(RD_HF_MAX_FILE_ENV, RD_HF_MAX_FILE_BYTES, &cap, err) < 0) {
        rd_error_prefix(err, "%s", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        rd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    char *buf = NULL;
    char lim[32];
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rd_error_set(err, "%s: cannot determine the file size: %s", path, strerror(errno));
    } else if ((unsigned long)size > cap) {
        rd_error_set(err, "%s: %ld bytes, more than the %s a tokenizer file may have (the "
                          "limit; the environment variable " RD_HF_MAX_FILE_ENV " raises it, "
                          "e.g. " RD_HF_MAX_FILE_ENV "=1G)",
                     path, size, rd_format_bytes(cap, lim, sizeof lim));
    } else if (!(buf = malloc((size_t)size + 1))) {
        rd_error_set(err, "%s: out of memory for %ld bytes", path, size);
    } else if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        rd_error_set(err, "%s: read error: %s", path,
                     ferror(f) ? strerror(errno) : "the file shrank while being read");
        free(buf);
        buf = NULL;
    } else {
        buf[size] = '\0';
        *len = (size_t)size;
    }
    fclose(f);
    return buf;
}

/* cJSON's parse of text[0..len) that must be a JSON object, or NULL with *err. shift: the
 * bytes cut out of the text before `cut_at` (error offsets are reported in the file's). */
static cJSON *parse_object_text(const char *path, const char *text, size_t len, size_t cut_at,
                                size_t shift, rd_error *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        rd_error_set(err, "%s: not valid JSON (parse error near byte %zu)", path,
                     at > cut_at ? at + shift : at);
    } else if (!cJSON_IsObject(root)) {
        rd_error_set(err, "%s: the top level is not a JSON object", path);
        cJSON_Delete(root);
        root = NULL;
    }
    return root;
}

/* Parses a file whose top level must be a JSON object. Free with cJSON_Delete. */
static cJSON *parse_json_object(const char *path, rd_error *err) {
    size_t len = 0;
    char *text = read_whole_file(path, &len, err);
    if (!text) return NULL;
    cJSON *root = parse_object_text(path, text, len, 0, 0, err);
    free(text);
    return root;
}

/* ---- model.merges without a cJSON tree --------------------------------------------

 * A merge list holds most of a large tokenizer.json, and a cJSON node per string costs ten
 * times the string. So the merges array is found in the text by a walk over its tokens
 * (strings, brackets, scalars: no allocation), read straight from the text into scores, and
 * cJSON parses the rest with "[]" in its place: memory stays near the file's size plus the
 * tree of the vocabulary. */

static size_t skip_ws(const char *s, size_t len, size_t i) {
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* Index past the JSON string that starts at s[i] ('"'), or 0 when it does not end. */
static size_t skip_string(const char *s, size_t len, size_t i) {
    for (i++; i < len; i++) {
        if (s[i] == '\\') i++;
        else if (s[i] == '"') return i + 1;
    }
    return 0;
}

static int hex4(const char *s, unsigned *v) {
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d > 15) return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

static void put_utf8(rd_buf *out, unsigned cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) b[0] = (char)cp, n = 1;
    else if (cp < 0x800) b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3F)),
        b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    else
        b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3F)),
        b[2] = (char)(0x80 | (cp >> 6 & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    rd_buf_append(out, b, n);
}

/* Appends the value of the JSON string at s[i] ('"') to out, as cJSON would read it (escapes
 * decoded, surrogate pairs joined; a lone surrogate is invalid). Index past it, or 0 when it
 * is not a valid string. */
static size_t decode_string(const char *s, size_t len, size_t i, rd_buf *out) {
    for (i++; i < len; i++) {
        const char *run = s + i;
        while (i < len && s[i] != '"' && s[i] != '\\') i++;
        rd_buf_append(out, run, (size_t)(s + i - run));
        if (i >= len) return 0;
        if (s[i] == '"') return i + 1;
        if (++i >= len) return 0;
        unsigned cp;
        switch (s[i]) {
        case '"': case '\\': case '/': rd_buf_putc(out, s[i]); break;
        case 'b': rd_buf_putc(out, '\b'); break;
        case 'f': rd_buf_putc(out, '\f'); break;
        case 'n': rd_buf_putc(out, '\n'); break;
        case 'r': rd_buf_putc(out, '\r'); break;
        case 't': rd_buf_putc(out, '\t'); break;
        case 'u':
            if (i + 4 >= len || hex4(s + i + 1, &cp) < 0) return 0;
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return 0;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (i + 6 >= len || s[i + 1] != '\\' || s[i + 2] != 'u' ||
                    hex4(s + i + 3, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return 0;
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(out, cp);
            break;
        default: return 0;
        }
    }
    return 0;
}

/* 1 when the key string at s[i] reads as `name`. */
static int key_is(const char *s, size_t len, size_t i, const char *name, rd_buf *tmp) {
    rd_buf_clear(tmp);
    return decode_string(s, len, i, tmp) && !tmp->oom && tmp->len == strlen(name) &&
           memcmp(tmp->data, name, tmp->len) == 0;
}

#define RD_HF_MAX_DEPTH 1000 /* cJSON's nesting limit */

/* Finds the value of the first "merges" key of the first "model" key of the top-level
 * object (the ones cJSON's lookups return) when it is an array: [*start, *end) of text.
 * 1 found; 0 absent or not an array (the cJSON path reports it); -1 when the brackets or
 * strings of the text do not match (*start: where), -1 with tmp->oom when out of memory. */
static int find_merges(const char *s, size_t len, size_t *start, size_t *end, rd_buf *tmp) {
    char stack[RD_HF_MAX_DEPTH]; /* '{' or '[' per open container */
    int depth = 0, want_key = 0, in_model = 0, model_done = 0, is_merges = 0, merges_seen = 0;
    int found = 0;
    size_t i = skip_ws(s, len, 0);
    for (; i < len; i = skip_ws(s, len, i)) {
        char c = s[i];
        if (c == '"') {
            int key = want_key && depth > 0 && stack[depth - 1] == '{';
            if (key && depth == 1) {
                in_model = !model_done && key_is(s, len, i, "model", tmp);
                model_done = model_done || in_model;
            } else if (key && depth == 2 && in_model) {
                is_merges = !merges_seen && key_is(s, len, i, "merges", tmp);
                merges_seen = merges_seen || is_merges;
            }
            if (tmp->oom) return -1;
            size_t next = skip_string(s, len, i);
            if (!next) break;
            i = next;
            want_key = 0;
        } else if (c == '{' || c == '[') {
            if (depth == RD_HF_MAX_DEPTH) break;
            if (depth == 2 && is_merges && c == '[') *start = i;
            stack[depth++] = c;
            want_key = c == '{';
            i++;
        } else if (c == '}' || c == ']') {
            if (depth == 0 || stack[depth - 1] != (c == '}' ? '{' : '[')) break;
            depth--;
            i++;
            if (depth == 2 && is_merges && c == ']') {
                *end = i;
                found = 1;
                is_merges = 0;
            }
            if (depth == 0) {
                i = skip_ws(s, len, i);
                if (i < len) break;
                return found;
            }
        } else if (c == ',') {
            want_key = depth > 0 && stack[depth - 1] == '{';
            if (depth == 2) is_merges = 0;
            if (depth == 1) in_model = 0;
            i++;
        } else if (c == ':') {
            i++;
        } else { /* a number or a literal */
            const size_t from = i;
            while (i < len && s[i] != '\0' && !strchr(" \t\r\n,:]}[{\"", s[i])) i++;
            if (i == from) break; /* a byte no value starts with (a NUL): not JSON */
            if (depth == 2) is_merges = 0;
        }
    }
    *start = i;
    return -1;
}

/* A parsed tokenizer.json: the tree without the merges, and the merges' text. */
typedef struct hf_file {
    cJSON *root;
    char *text;         /* the whole file (model.merges is read from it) */
    size_t start, end;  /* model.merges in text, end 0 when the tree holds it */
} hf_file;

static void hf_file_free(hf_file *h) {
    cJSON_Delete(h->root);
    free(h->text);
}

static int parse_tokenizer_json(const char *path, hf_file *h, rd_error *err) {
    size_t len = 0;
    memset(h, 0, sizeof *h);
    if (!(h->text = read_whole_file(path, &len, err))) return -1;
    rd_buf tmp = {0};
    int found = find_merges(h->text, len, &h->start, &h->end, &tmp);
    int oom = tmp.oom;
    rd_buf_free(&tmp);
    if (found < 0)
        return oom ? rd_error_set(err, "%s: out of memory", path)
                   : rd_error_set(err, "%s: not valid JSON (parse error near byte %zu)", path,
                                  h->start);
    if (!found) {
        h->end = 0;
        h->root = parse_object_text(path, h->text, len, 0, 0, err);
        return h->root ? 0 : -1;
    }
    size_t cut = h->end - h->start - 2; /* the array becomes "[]" */
    char *rest = malloc(len - cut + 1);
    if (!rest) return rd_error_set(err, "%s: out of memory", path);
    memcpy(rest, h->text, h->start);
    memcpy(rest + h->start, "[]", 2);
    memcpy(rest + h->start + 2, h->text + h->end, len - h->end);
    rest[len - cut] = '\0';
    h->root = parse_object_text(path, rest, len - cut, h->start + 1, cut, err);
    free(rest);
    return h->root ? 0 : -1;
}

static const cJSON *field(const cJSON *obj, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* obj.name as a string, or NULL when absent or not a string. */
static const char *field_str(const cJSON *obj, const char *name) {
    const cJSON *f = field(obj, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

static int str_is(const char *s, const char *lit) { return s && strcmp(s, lit) == 0; }

/* A JSON number that is an integer in [0, limit). */
static int json_id(const cJSON *item, int limit, int *id) {
    if (!cJSON_IsNumber(item)) return -1;
    double d = item->valuedouble;
    if (!(d >= 0 && d < (double)limit) || floor(d) != d) return -1;
    *id = (int)d;
    return 0;
}

/* ---- the kind of tokenizer -------------------------------------------------------- */

/* 1 when c (a pre-tokenizer, decoder or normalizer) is or contains type ByteLevel. */
static int has_byte_level(const cJSON *c, int depth) {
    if (!cJSON_IsObject(c) || depth > 8) return 0;
    if (str_is(field_str(c, "type"), "ByteLevel")) return 1;
    static const char *const lists[] = {"pretokenizers", "decoders", "normalizers"};
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
        const cJSON *e;
        cJSON_ArrayForEach(e, field(c, lists[k])) if (has_byte_level(e, depth + 1)) return 1;
    }
    return 0;
}

static int check_kind(const cJSON *root, const char *path, rd_error *err) {
    const cJSON *model = field(root, "model");
    if (!cJSON_IsObject(model))
        return rd_error_set(err, "%s: no \"model\" object (not a Hugging Face tokenizer.json?)",
                            path);
    const char *type = field_str(model, "type");
    if (!type) return rd_error_set(err, "%s: model.type is missing or not a string", path);
    if (!str_is(type, "BPE"))
        return rd_error_set(err, "%s: a %s tokenizer (model.type \"%.40s\") is not supported; "
                            "only the SentencePiece-style BPE of Llama-2/Mistral is", path, type,
                            type);
    if (has_byte_level(field(root, "pre_tokenizer"), 0) ||
        has_byte_level(field(root, "decoder"), 0))
        return rd_error_set(err, "%s: a byte-level BPE tokenizer (ByteLevel pre-tokenizer, GPT-2 "
                            "style) is not supported; only the SentencePiece-style BPE of "
                            "Llama-2/Mistral is", path);
    if (!cJSON_IsTrue(field(model, "byte_fallback")))
        return rd_error_set(err, "%s: model.byte_fallback is not true: a BPE tokenizer without "
                            "byte fallback is not the SentencePiece kind redit supports", path);
    return 0;
}

/* One normalizer of the accepted kinds: Prepend "▁" (sets *prepend) or Replace " " → "▁"
 * (sets *replace). */
static int read_normalizer_step(const cJSON *n, const char *path, int *prepend, int *replace,
                                rd_error *err) {
    const char *type = field_str(n, "type");
    if (str_is(type, "Prepend")) {
        if (!str_is(field_str(n, "prepend"), RD_SPACE_MARK))
            return rd_error_set(err, "%s: normalizer Prepend must prepend \"\xE2\x96\x81\"", path);
        *prepend = 1;
        return 0;
    }
    if (str_is(type, "Replace")) {
        const cJSON *pat = field(n, "pattern");
        if (!str_is(field_str(pat, "String"), " ") ||
            !str_is(field_str(n, "content"), RD_SPACE_MARK))
            return rd_error_set(err, "%s: normalizer Replace must replace the string \" \" with "
                                "\"\xE2\x96\x81\"", path);
        *replace = 1;
        return 0;
    }
    return rd_error_set(err, "%s: normalizer type \"%.40s\" is not supported (expected "
                        "Llama's Prepend \"\xE2\x96\x81\" + Replace \" \" \xE2\x86\x92 "
                        "\"\xE2\x96\x81\")", path, type ? type : "(none)");
}

static int read_normalizer(const cJSON *norm, const char *path, int *prepend, int *replace,
                           rd_error *err) {
    if (!norm || cJSON_IsNull(norm)) return 0;
    if (!cJSON_IsObject(norm)) return rd_error_set(err, "%s: normalizer is not an object", path);
    if (!str_is(field_str(norm, "type"), "Sequence"))
        return read_normalizer_step(norm, path, prepend, replace, err);
    const cJSON *list = field(norm, "normalizers");
    if (!cJSON_IsArray(list))
        return rd_error_set(err, "%s: normalizer.normalizers is not an array", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, list) if (read_normalizer_step(e, path, prepend, replace, err)) return -1;
    return 0;
}

/* Metaspace pre-tokenizer ("▁" replacement; prepend_scheme or the older add_prefix_space). */
static int read_pre_tokenizer(const cJSON *pre, const char *path, int *prepend, int *replace,
                              rd_error *err) {
    if (!pre || cJSON_IsNull(pre)) return 0;
    const char *type = field_str(pre, "type");
    if (!str_is(type, "Metaspace"))
        return rd_error_set(err, "%s: pre_tokenizer type \"%.40s\" is not supported (expected "
                            "none or Metaspace)", path, type ? type : "(none)");
    if (!str_is(field_str(pre, "replacement"), RD_SPACE_MARK))
        return rd_error_set(err, "%s: pre_tokenizer Metaspace must use the replacement "
                            "\"\xE2\x96\x81\"", path);
    *replace = 1;
    const char *scheme = field_str(pre, "prepend_scheme");
    const cJSON *aps = field(pre, "add_prefix_space");
    if (scheme) {
        if (!str_is(scheme, "never")) *prepend = 1;
    } else if (!cJSON_IsFalse(aps)) {
        *prepend = 1;
    }
    return 0;
}

static int read_normalization(const cJSON *root, const char *path, hf_vocab *v, rd_error *err) {
    int prepend = 0, replace = 0;
    if (read_normalizer(field(root, "normalizer"), path, &prepend, &replace, err) ||
        read_pre_tokenizer(field(root, "pre_tokenizer"), path, &prepend, &replace, err))
        return -1;
    if (!replace)
        return rd_error_set(err, "%s: neither the normalizer (Replace \" \" \xE2\x86\x92 "
                            "\"\xE2\x96\x81\") nor a Metaspace pre_tokenizer turns spaces into "
                            "\"\xE2\x96\x81\": not the SentencePiece kind", path);
    v->add_dummy_prefix = prepend;
    return 0;
}

/* ---- pieces ----------------------------------------------------------------------- */

/* model.vocab: piece → id, ids a permutation of 0 .. n_vocab - 1. */
static int read_vocab(const cJSON *model, const char *path, hf_vocab *v, int n_added,
                      rd_error *err) {
    const cJSON *vocab = field(model, "vocab");
    if (!vocab || !cJSON_IsObject(vocab))
        return rd_error_set(err, "%s: model.vocab is %s, not an object (piece \xE2\x86\x92 id)",
                            path, vocab ? "of another JSON type" : "missing");
    int n_vocab = cJSON_GetArraySize(vocab);
    if (n_vocab <= 0 || n_vocab > RD_HF_MAX_PIECES)
        return rd_error_set(err, "%s: model.vocab has %d entries (1 to %d allowed)", path, n_vocab,
                            RD_HF_MAX_PIECES);
    v->n_vocab = n_vocab;
    v->n = n_vocab + n_added; /* upper bound until the added tokens are read */
    v->pieces = calloc((size_t)v->n, sizeof *v->pieces);
    v->types = calloc((size_t)v->n, sizeof *v->types); /* (zeroed: see find_piece) */
    if (!v->pieces || !v->types) return rd_error_set(err, "%s: out of memory", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int id;
        if (json_id(e, n_vocab, &id))
            return rd_error_set(err, "%s: model.vocab[\"%.40s\"] is not an id in 0..%d", path,
                                e->string, n_vocab - 1);
        if (v->pieces[id])
            return rd_error_set(err, "%s: model.vocab: pieces \"%.40s\" and \"%.40s\" have the "
                                "same id %d", path, v->pieces[id], e->string, id);
        v->pieces[id] = e->string;
        v->types[id] = RD_TOKEN_NORMAL;
    }
    return 0;
}

/* added_tokens: [{id, content, special}]; ids inside the vocabulary must repeat its piece,
 * ids beyond it extend it. special → CONTROL, otherwise USER_DEFINED (matched in text
 * before BPE, as Hugging Face does with added tokens). */
static int read_added(const cJSON *added, const char *path, hf_vocab *v, rd_error *err) {
    int n_max = v->n_vocab;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, added) {
        int id;
        const char *content = field_str(e, "content");
        if (!cJSON_IsObject(e) || !content)
            return rd_error_set(err, "%s: added_tokens[%d] has no string \"content\"", path, i);
        if (json_id(field(e, "id"), v->n, &id))
            return rd_error_set(err, "%s: added_tokens[%d].id is not an id in 0..%d", path, i,
                                v->n - 1);
        if (v->pieces[id] && (id >= v->n_vocab || strcmp(v->pieces[id], content) != 0))
            return rd_error_set(err, "%s: added_tokens[%d] \"%.40s\" has id %d, already \"%.40s\"",
                                path, i, content, id, v->pieces[id]);
        v->pieces[id] = content;
        v->types[id] = cJSON_IsTrue(field(e, "special")) ? RD_TOKEN_CONTROL : RD_TOKEN_USER_DEFINED;
        if (id + 1 > n_max) n_max = id + 1;
        i++;
    }
    v->n = n_max;
    for (int k = v->n_vocab; k < v->n; k++)
        if (!v->pieces[k])
            return rd_error_set(err, "%s: no piece has id %d (model.vocab has %d, added_tokens "
                                "go up to %d)", path, k, v->n_vocab, v->n - 1);
    return 0;
}

/* Every id below v->n has a piece once read_vocab and read_added succeeded (model.vocab's
 * n distinct ids in 0..n-1, then the check of the added ids); the NULL test and the zeroed
 * types are for clang's analyser, which cannot count cJSON's entries. */
static int find_piece(const hf_vocab *v, const char *s) {
    for (int i = 0; i < v->n; i++)
        if (v->pieces[i] && strcmp(v->pieces[i], s) == 0) return i;
    return -1;
}

static int is_byte_piece(const char *s) { return rd_vocab_byte_piece(s, strlen(s), 1) >= 0; }

/* A special token from tokenizer_config.json (a string, {"content": string} or null), else
 * from the fallback piece. *id = -1 when neither names one. */
static int read_special(const cJSON *config, const char *config_path, const char *name,
                        const char *fallback, const hf_vocab *v, int *id, rd_error *err) {
    const cJSON *f = config ? field(config, name) : NULL;
    if (!f) {
        *id = fallback ? find_piece(v, fallback) : -1;
        return 0;
    }
    if (cJSON_IsNull(f)) {
        *id = -1;
        return 0;
    }
    const char *s = cJSON_IsString(f) ? f->valuestring : field_str(f, "content");
    if (!s)
        return rd_error_set(err, "%s: %s is neither a string nor an object with a string "
                            "\"content\"", config_path, name);
    if ((*id = find_piece(v, s)) < 0)
        return rd_error_set(err, "%s: %s \"%.40s\" is not a piece of the tokenizer", config_path,
                            name, s);
    return 0;
}

/* BOS/EOS/UNK ids and the final piece types (specials CONTROL/UNKNOWN, <0xNN> BYTE). */
static int read_specials(const cJSON *model, const cJSON *config, const char *config_path,
                         hf_vocab *v, rd_error *err) {
    const char *unk = field_str(model, "unk_token");
    if (read_special(config, config_path, "bos_token", "<s>", v, &v->bos, err) ||
        read_special(config, config_path, "eos_token", "</s>", v, &v->eos, err) ||
        read_special(config, config_path, "unk_token", unk ? unk : "<unk>", v, &v->unk, err))
        return -1;
    for (int i = 0; i < v->n; i++)
        if (v->types[i] == RD_TOKEN_NORMAL && is_byte_piece(v->pieces[i]))
            v->types[i] = RD_TOKEN_BYTE;
    if (v->bos >= 0) v->types[v->bos] = RD_TOKEN_CONTROL;
    if (v->eos >= 0) v->types[v->eos] = RD_TOKEN_CONTROL;
    if (v->unk >= 0) v->types[v->unk] = RD_TOKEN_UNKNOWN;
    return 0;
}

static int build(const hf_vocab *v, const char *path, rd_vocab *out, rd_error *err) {
    rd_vocab_spec spec = {.n_pieces = v->n, .pieces = v->pieces, .lens = NULL,
                          .scores = NULL, .types = v->types, .bos_id = v->bos,
                          .eos_id = v->eos, .unk_id = v->unk,
                          .add_dummy_prefix = v->add_dummy_prefix};
    return rd_vocab_from_spec(out, &spec, path, err);
}

/* ---- merges → scores ------------------------------------------------------------- */

/* The halves of the merge at text[*i]: "a b" (split at its one space) or ["a", "b"], read
 * into buf as a then b (*la bytes of a); *i moves past it. 0, or -1 when it is neither. */
static int merge_halves(const char *s, size_t len, size_t *i, rd_buf *buf, size_t *la) {
    rd_buf_clear(buf);
    size_t at = *i;
    if (s[at] == '"') {
        if (!(at = decode_string(s, len, at, buf)) || buf->oom) return -1;
        const char *sp = memchr(buf->data, ' ', buf->len);
        if (!sp || memchr(sp + 1, ' ', buf->len - (size_t)(sp + 1 - buf->data))) return -1;
        *la = (size_t)(sp - buf->data);
        memmove(buf->data + *la, sp + 1, buf->len - *la - 1);
        buf->len--;
        *i = at;
        return 0;
    }
    if (s[at] != '[') return -1;
    at = skip_ws(s, len, at + 1);
    if (at >= len || s[at] != '"' || !(at = decode_string(s, len, at, buf))) return -1;
    *la = buf->len;
    at = skip_ws(s, len, at);
    if (at >= len || s[at] != ',') return -1;
    at = skip_ws(s, len, at + 1);
    if (at >= len || s[at] != '"' || !(at = decode_string(s, len, at, buf))) return -1;
    at = skip_ws(s, len, at);
    if (at >= len || s[at] != ']' || buf->oom) return -1;
    *i = at + 1;
    return 0;
}

static int is_space_run(const char *s, size_t len) {
    if (len < 2 * RD_SPACE_MARK_LEN || len % RD_SPACE_MARK_LEN) return 0;
    for (size_t i = 0; i < len; i += RD_SPACE_MARK_LEN)
        if (memcmp(s + i, RD_SPACE_MARK, RD_SPACE_MARK_LEN) != 0) return 0;
    return 1;
}

/* Sets v->scores from model.merges (see the top of the file), read from h's text (h->end
 * > 0), looking pieces up in ix (the index of v). */
static int merge_scores(rd_vocab *v, const rd_vocab_index *ix, const hf_file *h,
                        const char *path, rd_error *err) {
    for (int i = 0; i < v->n; i++) v->scores[i] = RD_HF_NO_MERGE_SCORE;
    const char *s = h->text;
    size_t i = skip_ws(s, h->end, h->start + 1);
    rd_buf buf = {0};
    int rank = 0, rc = 0;
    while (rc == 0 && s[i] != ']') {
        size_t la;
        if (rank == RD_HF_MAX_MERGES) {
            rc = rd_error_set(err, "%s: model.merges has more than %d entries", path,
                              RD_HF_MAX_MERGES);
        } else if (merge_halves(s, h->end, &i, &buf, &la)) {
            rc = buf.oom ? rd_error_set(err, "%s: out of memory", path)
                         : rd_error_set(err, "%s: model.merges[%d] is neither \"a b\" nor "
                                             "[\"a\", \"b\"]", path, rank);
        } else {
            const char *a = buf.data, *b = buf.data + la;
            size_t lb = buf.len - la;
            int id = la && lb ? rd_vocab_index_find(ix, a, la + lb) : -1;
            if (id < 0 || rd_vocab_index_find(ix, a, la) < 0 || rd_vocab_index_find(ix, b, lb) < 0)
                rc = rd_error_set(err, "%s: model.merges[%d] (\"%.*s\" + \"%.*s\") names a "
                                  "piece that is not in model.vocab", path, rank,
                                  (int)(la > 40 ? 40 : la), a, (int)(lb > 40 ? 40 : lb), b);
            else if (v->scores[id] == RD_HF_NO_MERGE_SCORE)
                v->scores[id] = is_space_run(a, la + lb) ? RD_HF_SPACE_RUN_SCORE : -(float)rank;
            rank++;
            i = skip_ws(s, h->end, i);
            int comma = rc == 0 && s[i] == ',';
            if (comma) i = skip_ws(s, h->end, i + 1);
            if (rc == 0 && comma == (s[i] == ']')) /* "a b" "c d" or "a b", ] */
                rc = rd_error_set(err, "%s: not valid JSON (parse error near byte %zu)", path, i);
        }
    }
    rd_buf_free(&buf);
    return rc;
}

/* ---- entry point ------------------------------------------------------------------ */

/* Reads h into out. Frees h's tree once the pieces are copied out of it (before the
 * merges, which come from h's text). */
static int load(hf_file *h, const cJSON *config, const char *path, const char *config_path,
                rd_vocab *out, rd_error *err) {
    const cJSON *root = h->root;
    hf_vocab v = {.bos = -1, .eos = -1, .unk = -1};
    const cJSON *model = field(root, "model");
    const cJSON *added = field(root, "added_tokens");
    const int merges_absent = field(model, "merges") == NULL;
    rd_vocab_index ix = {0};
    int rc = -1;
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) {
        rd_error_set(err, "%s: added_tokens is not an array", path);
    } else if (cJSON_GetArraySize(added) > RD_HF_MAX_PIECES) {
        rd_error_set(err, "%s: added_tokens has more than %d entries", path, RD_HF_MAX_PIECES);
    } else if (read_normalization(root, path, &v, err) == 0 &&
               read_vocab(model, path, &v, cJSON_GetArraySize(added), err) == 0 &&
               read_added(added, path, &v, err) == 0 &&
               read_specials(model, config, config_path, &v, err) == 0 &&
               build(&v, path, out, err) == 0) {
        hf_vocab_free(&v); /* (its pieces point into the tree) */
        memset(&v, 0, sizeof v);
        cJSON_Delete(h->root);
        h->root = NULL;
        if (!h->end)
            rd_error_set(err, "%s: model.merges is %s, not an array", path,
                         merges_absent ? "missing" : "of another JSON type");
        else if (rd_vocab_index_init(&ix, out))
            rd_error_set(err, "%s: out of memory", path);
        else
            rc = merge_scores(out, &ix, h, path, err);
        if (rc) rd_vocab_release(out);
    }
    rd_vocab_index_free(&ix);
    hf_vocab_free(&v);
    return rc;
}

int rd_vocab_load_hf(const char *tokenizer_json, const char *config_json, rd_vocab *out,
                     rd_error *err) {
    memset(out, 0, sizeof *out);
    hf_file h;
    if (parse_tokenizer_json(tokenizer_json, &h, err) < 0) {
        hf_file_free(&h);
        return -1;
    }
    cJSON *config = NULL;
    int rc = -1;
    if (check_kind(h.root, tokenizer_json, err) == 0 &&
        (!config_json || (config = parse_json_object(config_json, err)) != NULL))
        rc = load(&h, config, tokenizer_json, config_json, out, err);
    cJSON_Delete(config);
    hf_file_free(&h);
    return rc;
}
