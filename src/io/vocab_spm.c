/* SentencePiece's tokenizer.model: a protobuf ModelProto, parsed with libprotobuf-c through
 * the reader protoc-c generates from spm_model.proto (the few fields redit needs; the others
 * are skipped). Also the one entry point that reads any tokenizer file, telling the formats
 * apart by content.
 *
 * The file is untrusted: its size is bounded before it is read, the top level of the message
 * is walked (every tag, varint and length checked against the end of the file, the pieces
 * counted) before protobuf-c allocates anything, and only BPE models with the normalisation
 * redit's tokenizer reproduces are accepted (see rd_vocab_load_spm in redit/vocab.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spm_model.pb-c.h"

#include "redit/vocab.h"

#define SPM_MAX_BYTES (64u << 20) /* Llama-2's is 0.5 MB, Gemma's 256k pieces 4 MB */
#define SPM_MAX_PIECES (1 << 21)

/* ---- the top-level walk ---------------------------------------------------------------- */

/* One varint at p[*i..n): 0 and *i advanced, or -1 when it runs past n or 10 bytes. */
static int get_varint(const unsigned char *p, size_t n, size_t *i, uint64_t *v) {
    uint64_t r = 0;
    for (int k = 0; k < 10; k++) {
        if (*i >= n) return -1;
        unsigned char c = p[(*i)++];
        r |= (uint64_t)(c & 0x7f) << (7 * k);
        if (c < 0x80) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* Walks the fields of the top-level message: 0 with *n_pieces set (field 1, length-delimited)
 * when every field is well-formed and the last ends at the end of the data; -2 when there are
 * more than SPM_MAX_PIECES pieces; else -1 with *bad_at set to the offset of the first bad
 * field. */
static int walk_top(const unsigned char *p, size_t n, long *n_pieces, size_t *bad_at) {
    size_t i = 0;
    long pieces = 0;
    while (i < n) {
        size_t at = i;
        uint64_t key, v;
        *bad_at = at;
        if (get_varint(p, n, &i, &key) || key >> 3 == 0 || key >> 3 > 536870911u) return -1;
        switch (key & 7) {
        case 0:
            if (get_varint(p, n, &i, &v)) return -1;
            break;
        case 1:
            if (n - i < 8) return -1;
            i += 8;
            break;
        case 5:
            if (n - i < 4) return -1;
            i += 4;
            break;
        case 2:
            if (get_varint(p, n, &i, &v) || v > n - i) return -1;
            i += (size_t)v;
            if (key >> 3 == 1 && ++pieces > SPM_MAX_PIECES) return -2;
            break;
        default: return -1; /* groups (3, 4) and 6, 7 are not in a ModelProto */
        }
    }
    *n_pieces = pieces;
    return 0;
}

int rd_vocab_probe_spm(const void *data, size_t size) {
    long n;
    size_t at;
    const unsigned char *p = data;
    return size >= 2 && p[0] == 0x0a && walk_top(p, size, &n, &at) == 0 && n > 0;
}

/* ---- reading -------------------------------------------------------------------------- */

/* The whole file (at most SPM_MAX_BYTES) into a malloc'ed buffer; NULL with *err naming it. */
static unsigned char *read_file(const char *path, size_t *size, rd_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rd_error_set(err, "%s: not a regular file", path);
    } else if (st.st_size == 0) {
        rd_error_set(err, "%s: the file is empty", path);
    } else if ((unsigned long long)st.st_size > SPM_MAX_BYTES) {
        rd_error_set(err, "%s: %lld bytes, more than the %u MB a tokenizer file may have", path,
                     (long long)st.st_size, SPM_MAX_BYTES >> 20);
    } else if (!(buf = malloc((size_t)st.st_size))) {
        rd_error_set(err, "%s: out of memory", path);
    } else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rd_error_set(err, "%s: read error: %s", path, ferror(f) ? strerror(errno) : "short read");
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *size = (size_t)st.st_size;
    return buf;
}

static const char *model_type_name(int t) {
    switch (t) {
    case RD_SPM__TRAINER_SPEC__MODEL_TYPE__UNIGRAM: return "unigram";
    case RD_SPM__TRAINER_SPEC__MODEL_TYPE__BPE: return "BPE";
    case RD_SPM__TRAINER_SPEC__MODEL_TYPE__WORD: return "word";
    case RD_SPM__TRAINER_SPEC__MODEL_TYPE__CHAR: return "char";
    default: return "unknown";
    }
}

/* Refuses what redit's tokenizer would not encode exactly as SentencePiece does. */
static int check_kind(const RdSpm__ModelProto *m, int has_byte_pieces, const char *path,
                      rd_error *err) {
    const RdSpm__TrainerSpec *t = m->trainer_spec;
    const RdSpm__NormalizerSpec *ns = m->normalizer_spec;
    if (!t)
        return rd_error_set(err, "%s: no trainer_spec after the %zu pieces (a truncated "
                                 "tokenizer.model?)", path, m->n_pieces);
    int type = t->has_model_type ? (int)t->model_type : RD_SPM__TRAINER_SPEC__MODEL_TYPE__UNIGRAM;
    if (type != RD_SPM__TRAINER_SPEC__MODEL_TYPE__BPE)
        return rd_error_set(err, "%s: a SentencePiece %s model (trainer_spec.model_type %d); "
                                 "redit tokenizes BPE models only (Llama-2's kind)",
                            path, model_type_name(type), type);
    if (t->treat_whitespace_as_suffix)
        return rd_error_set(err, "%s: trainer_spec.treat_whitespace_as_suffix is set; redit's "
                                 "tokenizer puts the space mark in front", path);
    if (!t->byte_fallback && has_byte_pieces)
        return rd_error_set(err, "%s: byte pieces without trainer_spec.byte_fallback; redit "
                                 "would use them for unknown characters where SentencePiece "
                                 "gives <unk>", path);
    if (ns) {
        if (ns->has_precompiled_charsmap && ns->precompiled_charsmap.len > 0)
            return rd_error_set(err, "%s: normalizer \"%s\" rewrites text (a %zu-byte "
                                     "precompiled_charsmap, e.g. NFKC); redit tokenizes "
                                     "unnormalized text only (normalizer \"identity\")",
                                path, ns->name ? ns->name : "?", ns->precompiled_charsmap.len);
        if (ns->remove_extra_whitespaces)
            return rd_error_set(err, "%s: normalizer_spec.remove_extra_whitespaces is set; "
                                     "redit keeps every space as SentencePiece does without it",
                                path);
        if (!ns->escape_whitespaces)
            return rd_error_set(err, "%s: normalizer_spec.escape_whitespaces is off; redit "
                                     "always writes spaces as \"" RD_SPACE_MARK "\"", path);
    } else {
        /* SentencePiece's defaults without a normalizer_spec: remove_extra_whitespaces on */
        return rd_error_set(err, "%s: no normalizer_spec (SentencePiece would remove extra "
                                 "whitespace, which redit does not)", path);
    }
    return 0;
}

static int build(const RdSpm__ModelProto *m, const char *path, rd_vocab *out, rd_error *err) {
    const size_t n = m->n_pieces;
    const char **pieces = malloc(n * sizeof *pieces);
    size_t *lens = malloc(n * sizeof *lens);
    float *scores = malloc(n * sizeof *scores);
    int *types = malloc(n * sizeof *types);
    int rc = -1, has_byte = 0;
    if (!pieces || !lens || !scores || !types) {
        rd_error_set(err, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const RdSpm__ModelProto__SentencePiece *p = m->pieces[i];
        if (!p->has_piece) {
            rd_error_set(err, "%s: piece %zu has no text", path, i);
            goto done;
        }
        pieces[i] = p->piece.len ? (const char *)p->piece.data : "";
        lens[i] = p->piece.len;
        scores[i] = p->has_score ? p->score : 0.0f;
        types[i] = p->has_type ? (int)p->type : RD_TOKEN_NORMAL;
        has_byte |= types[i] == RD_TOKEN_BYTE;
    }
    if (check_kind(m, has_byte, path, err)) goto done;
    const RdSpm__TrainerSpec *t = m->trainer_spec;
    rd_vocab_spec spec = {.n_pieces = (int)n, .pieces = pieces, .lens = lens, .scores = scores,
                          .types = types, .bos_id = t->bos_id, .eos_id = t->eos_id,
                          .unk_id = t->unk_id,
                          .add_dummy_prefix = m->normalizer_spec->add_dummy_prefix ? 1 : 0};
    /* SentencePiece's -1 disables an id; rd_vocab_from_spec checks the others' range */
    if (spec.bos_id < -1 || spec.eos_id < -1 || spec.unk_id < -1) {
        rd_error_set(err, "%s: a negative special id (bos %d, eos %d, unk %d)", path, spec.bos_id,
                     spec.eos_id, spec.unk_id);
        goto done;
    }
    rc = rd_vocab_from_spec(out, &spec, path, err);
done:
    free(pieces);
    free(lens);
    free(scores);
    free(types);
    return rc;
}

int rd_vocab_load_spm(const char *path, int vocab_size, rd_vocab *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    size_t size;
    unsigned char *data = read_file(path, &size, err);
    if (!data) return -1;
    long n_pieces = 0;
    size_t bad_at = 0;
    RdSpm__ModelProto *m = NULL;
    int rc = -1;
    int walked = walk_top(data, size, &n_pieces, &bad_at);
    if (walked == -2)
        rd_error_set(err, "%s: more than %d pieces", path, SPM_MAX_PIECES);
    else if (walked)
        rd_error_set(err, "%s: not a valid SentencePiece model: the protobuf breaks off at "
                          "byte %zu of %zu (a truncated or damaged tokenizer.model?)",
                     path, bad_at, size);
    else if (n_pieces == 0)
        rd_error_set(err, "%s: a protobuf without pieces: not a SentencePiece model", path);
    else if (!(m = rd_spm__model_proto__unpack(NULL, size, data)))
        rd_error_set(err, "%s: not a SentencePiece model: a piece or spec is malformed (or out "
                          "of memory)", path);
    else if (vocab_size > 0 && m->n_pieces > (size_t)vocab_size)
        rd_error_set(err, "%s: %zu pieces, more than the model's vocabulary of %d", path,
                     m->n_pieces, vocab_size);
    else
        rc = build(m, path, out, err);
    if (m) rd_spm__model_proto__free_unpacked(m, NULL);
    free(data);
    return rc;
}

/* ---- any tokenizer file --------------------------------------------------------------- */

int rd_vocab_load_file(const char *path, int vocab_size, rd_vocab *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return rd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[4096];
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    size_t i = 0;
    while (i < got && (head[i] == ' ' || head[i] == '\t' || head[i] == '\n' || head[i] == '\r'))
        i++;
    if (i < got && head[i] == '{') { /* tokenizer.json, with tokenizer_config.json beside */
        const char *slash = strrchr(path, '/');
        int dir_len = slash ? (int)(slash - path) + 1 : 0;
        size_t cap = (size_t)dir_len + sizeof "tokenizer_config.json";
        char *config = malloc(cap);
        if (!config) return rd_error_set(err, "%s: out of memory", path);
        snprintf(config, cap, "%.*stokenizer_config.json", dir_len, path);
        int rc = rd_vocab_load_hf(path, access(config, R_OK) == 0 ? config : NULL, out, err);
        free(config);
        if (rc == 0 && vocab_size > 0 && out->n > vocab_size) {
            rd_error_set(err, "%s: %d pieces, more than the model's vocabulary of %d", path,
                         out->n, vocab_size);
            rd_vocab_release(out);
            return -1;
        }
        return rc;
    }
    /* a protobuf whose first field is a piece starting with its text (0x0a LEN 0x0a, the
     * way SentencePiece writes it), even when damaged further on; else one that walks whole.
     * A tokenizer.bin starts with its int32 max_token_length, whose bytes 1 and 2 are 0. */
    if (got >= 3 && head[0] == 0x0a && head[1] != 0 && head[2] == 0x0a)
        return rd_vocab_load_spm(path, vocab_size, out, err);
    if (got >= 2 && head[0] == 0x0a) {
        size_t size;
        rd_error quiet = {0};
        unsigned char *data = read_file(path, &size, &quiet);
        int is_spm = data && rd_vocab_probe_spm(data, size);
        free(data);
        if (is_spm) return rd_vocab_load_spm(path, vocab_size, out, err);
    }
    return rd_vocab_load_llama2c(path, vocab_size, out, err);
}
