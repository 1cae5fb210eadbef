/* llama2.c's tokenizer.bin: int32 max_token_length, then per token float32 score, int32
 * byte length and the bytes (little-endian). llama2.c's export wrote spaces where
 * SentencePiece has "▁" and spelled BOS/EOS "\n<s>\n" / "\n</s>\n"; both are undone here
 * so the pieces are SentencePiece's again. The file is untrusted: every length is checked
 * against what is left of the file before anything is allocated or read. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"
#include "redit/vocab.h"

typedef struct bin_reader {
    const char *path;
    FILE *f;
    long size; /* file bytes */
    long pos;  /* bytes read so far */
} bin_reader;

/* Pieces as read: arena[off[i] .. off[i + 1]) for i < n. */
typedef struct bin_vocab {
    char *arena;   /* (cap) */
    size_t cap;
    size_t *off;   /* (vocab_size + 1) */
    float *scores; /* (vocab_size) */
    char *scratch; /* (scratch_cap) raw bytes of the current token */
    size_t scratch_cap;
} bin_vocab;

static uint32_t le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int32_t as_i32(uint32_t u) {
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static int read_exact(bin_reader *r, void *dst, size_t n, rd_error *err) {
    if (n && fread(dst, 1, n, r->f) != n)
        return rd_error_set(err, "%s: read error at offset %ld: %s", r->path, r->pos,
                            ferror(r->f) ? strerror(errno) : "unexpected end of file");
    r->pos += (long)n;
    return 0;
}

static int open_reader(bin_reader *r, const char *path, rd_error *err) {
    r->path = path;
    r->f = fopen(path, "rb");
    if (!r->f) return rd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(r->f, 0, SEEK_END) != 0 || (r->size = ftell(r->f)) < 0 ||
        fseek(r->f, 0, SEEK_SET) != 0)
        return rd_error_set(err, "%s: cannot determine the file size: %s", path, strerror(errno));
    r->pos = 0;
    return 0;
}

/* Appends token i's bytes (len of them) with each ' ' turned back into "▁". */
static void store_piece(bin_vocab *v, int i, size_t len) {
    static const char *const special[][2] = {{"\n<s>\n", "<s>"}, {"\n</s>\n", "</s>"}};
    char *dst = v->arena + v->off[i];
    for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) {
        if (len == strlen(special[k][0]) && memcmp(v->scratch, special[k][0], len) == 0) {
            size_t n = strlen(special[k][1]);
            memcpy(dst, special[k][1], n);
            v->off[i + 1] = v->off[i] + n;
            return;
        }
    }
    size_t o = 0;
    for (size_t k = 0; k < len; k++) {
        if (v->scratch[k] == ' ') {
            memcpy(dst + o, RD_SPACE_MARK, RD_SPACE_MARK_LEN);
            o += RD_SPACE_MARK_LEN;
        } else {
            dst[o++] = v->scratch[k];
        }
    }
    v->off[i + 1] = v->off[i] + o;
}

static int read_token(bin_reader *r, bin_vocab *v, int i, int vocab_size, rd_error *err) {
    unsigned char head[8];
    if (r->size - r->pos < 8)
        return rd_error_set(err, "%s: the file ends inside token %d of %d (%ld bytes; a "
                            "vocab_size mismatch?)", r->path, i, vocab_size, r->size);
    if (read_exact(r, head, 8, err) < 0) return -1;
    uint32_t score_bits = le32(head);
    memcpy(&v->scores[i], &score_bits, sizeof score_bits);
    int32_t len = as_i32(le32(head + 4));
    if (len < 0)
        return rd_error_set(err, "%s: token %d has a negative length %d", r->path, i, (int)len);
    if (len > r->size - r->pos)
        return rd_error_set(err, "%s: token %d has length %d but only %ld bytes are left in "
                            "the file", r->path, i, (int)len, r->size - r->pos);
    if (rd_array_reserve(&v->scratch, &v->scratch_cap, (size_t)len + 1, 1) < 0 ||
        rd_array_reserve(&v->arena, &v->cap, v->off[i] + 3 * (size_t)len + 1, 1) < 0)
        return rd_error_set(err, "%s: out of memory reading token %d", r->path, i);
    if (read_exact(r, v->scratch, (size_t)len, err) < 0) return -1;
    store_piece(v, i, (size_t)len);
    return 0;
}

static int read_vocab(bin_reader *r, bin_vocab *v, int vocab_size, rd_error *err) {
    unsigned char head[4];
    if (r->size < 4)
        return rd_error_set(err, "%s: the file is %ld bytes, too short for the int32 "
                            "max_token_length header", r->path, r->size);
    if (read_exact(r, head, 4, err) < 0) return -1;
    int32_t max_len = as_i32(le32(head));
    if (max_len < 0)
        return rd_error_set(err, "%s: max_token_length is negative (%d)", r->path, (int)max_len);
    if ((r->size - 4) / 8 < vocab_size)
        return rd_error_set(err, "%s: the file is %ld bytes, too short for %d tokens (8 bytes "
                            "each at least; a vocab_size mismatch?)", r->path, r->size, vocab_size);
    v->off = calloc((size_t)vocab_size + 1, sizeof *v->off);
    v->scores = malloc((size_t)vocab_size * sizeof *v->scores);
    if (!v->off || !v->scores) return rd_error_set(err, "%s: out of memory", r->path);
    for (int i = 0; i < vocab_size; i++)
        if (read_token(r, v, i, vocab_size, err) < 0) return -1;
    if (r->pos != r->size)
        return rd_error_set(err, "%s: %ld bytes follow the last of the %d tokens (a vocab_size "
                            "mismatch?)", r->path, r->size - r->pos, vocab_size);
    return 0;
}

static int build(const bin_vocab *v, int vocab_size, const char *path, rd_vocab *out,
                 rd_error *err) {
    const char **pieces = malloc((size_t)vocab_size * sizeof *pieces);
    size_t *lens = malloc((size_t)vocab_size * sizeof *lens);
    int rc = -1;
    if (!pieces || !lens) {
        rd_error_set(err, "%s: out of memory", path);
    } else {
        for (int i = 0; i < vocab_size; i++) {
            pieces[i] = v->arena + v->off[i];
            lens[i] = v->off[i + 1] - v->off[i];
        }
        rd_vocab_spec spec = {.n_pieces = vocab_size, .pieces = pieces, .lens = lens,
                              .scores = v->scores, .types = NULL,
                              .bos_id = vocab_size > 1 ? 1 : -1,
                              .eos_id = vocab_size > 2 ? 2 : -1, .unk_id = 0,
                              .add_dummy_prefix = 1};
        rc = rd_vocab_from_spec(out, &spec, path, err);
    }
    free(pieces);
    free(lens);
    return rc;
}

/* Counts the tokens of the file by walking their lengths (for a bare tokenizer.bin, whose
 * vocabulary size is otherwise the model header's), then rewinds. */
#define RD_LLAMA2C_MAX_PIECES (1 << 22)

static int count_tokens(bin_reader *r, int *count, rd_error *err) {
    unsigned char head[8];
    long pos = 4;
    int n = 0;
    while (pos < r->size) {
        if (r->size - pos < 8 || fseek(r->f, pos, SEEK_SET) != 0 || fread(head, 1, 8, r->f) != 8)
            return rd_error_set(err, "%s: the file ends inside token %d", r->path, n);
        int32_t len = as_i32(le32(head + 4));
        if (len < 0 || len > r->size - pos - 8)
            return rd_error_set(err, "%s: token %d has length %d, beyond the end of the file",
                                r->path, n, (int)len);
        pos += 8 + len;
        if (++n > RD_LLAMA2C_MAX_PIECES)
            return rd_error_set(err, "%s: more than %d tokens", r->path, RD_LLAMA2C_MAX_PIECES);
    }
    if (fseek(r->f, 0, SEEK_SET) != 0) return rd_error_set(err, "%s: cannot rewind", r->path);
    *count = n;
    return 0;
}

int rd_vocab_load_llama2c(const char *path, int vocab_size, rd_vocab *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    if (vocab_size < 0)
        return rd_error_set(err, "%s: vocab_size %d must be positive", path, vocab_size);
    bin_reader r = {0};
    bin_vocab v = {0};
    int rc = -1;
    if (open_reader(&r, path, err) == 0 &&
        (vocab_size > 0 || count_tokens(&r, &vocab_size, err) == 0)) {
        if (vocab_size == 0) /* a bare file with no token */
            rd_error_set(err, "%s: the vocabulary is empty", path);
        else if (read_vocab(&r, &v, vocab_size, err) == 0)
            rc = build(&v, vocab_size, path, out, err);
    }
    if (r.f) fclose(r.f);
    free(v.arena);
    free(v.off);
    free(v.scores);
    free(v.scratch);
    return rc;
}
