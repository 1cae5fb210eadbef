/* redit — a tokenizer vocabulary as plain data (io layer).
 *
 * What a tokenizer file (SentencePiece tokenizer.model, llama2.c tokenizer.bin, Hugging Face
 * tokenizer.json, GGUF's tokenizer.ggml.* metadata) holds: the pieces by id with their scores and types, the
 * special ids and the dummy-prefix flag. The io loaders produce it and check it as the
 * tokenizer will use it (rd_vocab_check); the text layer builds an rd_tokenizer from it
 * (rd_tokenizer_from_vocab in redit/tokenizer.h) and the GGUF writer stores it. */
#ifndef REDIT_VOCAB_H
#define REDIT_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "redit/error.h"

/* UTF-8 of U+2581 "▁", SentencePiece's visible space. */
#define RD_SPACE_MARK "\xE2\x96\x81"
#define RD_SPACE_MARK_LEN 3

/* Piece types; the numbers are those of SentencePiece and GGUF's tokenizer.ggml.token_type. */
typedef enum rd_token_type {
    RD_TOKEN_NORMAL = 1,
    RD_TOKEN_UNKNOWN = 2,
    RD_TOKEN_CONTROL = 3,
    RD_TOKEN_USER_DEFINED = 4,
    RD_TOKEN_UNUSED = 5,
    RD_TOKEN_BYTE = 6
} rd_token_type;

/* A vocabulary as written by hand or found in a file's memory: everything is borrowed and
 * copied by rd_vocab_from_spec (or rd_tokenizer_new). */
typedef struct rd_vocab_spec {
    int n_pieces;
    const char *const *pieces; /* n_pieces UTF-8 strings */
    const size_t *lens;        /* n_pieces byte lengths, or NULL for NUL-terminated pieces */
    const float *scores;       /* n_pieces scores, or NULL for all 0 */
    const int *types;          /* n_pieces rd_token_type values, or NULL: inferred
                                  (<0xNN> byte, <unk> unknown, <s> </s> control, else normal) */
    int bos_id, eos_id, unk_id; /* -1 when absent */
    int add_dummy_prefix;       /* 1 for Llama-2: prepend "▁" to the text */
} rd_vocab_spec;

/* An owned vocabulary. Zero-initialise before filling; release with rd_vocab_release.
 * n == 0 means "no vocabulary" (a model file without a tokenizer). */
typedef struct rd_vocab {
    int n;             /* pieces */
    char *bytes;       /* (off[n]) every piece's bytes, back to back, not NUL-separated */
    size_t *off;       /* (n + 1) piece i is bytes[off[i] .. off[i + 1]) */
    float *scores;     /* (n) */
    uint8_t *types;    /* (n) rd_token_type */
    int bos_id, eos_id, unk_id; /* -1 when absent */
    int add_dummy_prefix;       /* 1: the tokenizer prepends "▁" to the text */
} rd_vocab;

/* Copies spec into *out (which is overwritten, not released) and checks it: the types are
 * inferred when spec->types is NULL — the pieces at unk_id / bos_id / eos_id are typed
 * UNKNOWN / CONTROL whatever their spelling, so "<|bos|>"-style specials are never produced
 * from text — and with unk_id -1 the first UNKNOWN piece, if any, becomes unk_id. Then
 * rd_vocab_check's rules apply. `what` names the source (file) in error messages. Returns
 * 0, or -1 with *err set and *out zeroed. */
int rd_vocab_from_spec(rd_vocab *out, const rd_vocab_spec *spec, const char *what,
                       rd_error *err);

/* Checks v as the tokenizer relies on it: at least one piece, special ids -1 or in range,
 * pieces valid UTF-8, no NaN score, types 1..6, BYTE pieces of the form <0xNN> and one
 * per byte, and no two pieces BPE may produce (NORMAL, USER_DEFINED, UNUSED, non-empty)
 * with the same text; repeated CONTROL/UNKNOWN spellings are allowed. Returns 0 or -1 with
 * *err naming `what` and the first problem. */
int rd_vocab_check(const rd_vocab *v, const char *what, rd_error *err);

/* Frees what v owns and zeroes it. Safe on a zeroed or half-built vocabulary and NULL. */
void rd_vocab_release(rd_vocab *v);

/* Piece bytes of id (not NUL-terminated in general; *len set when len is not NULL).
 * Borrowed, valid while v lives. NULL when id is out of range. */
const char *rd_vocab_piece(const rd_vocab *v, int id, size_t *len);

/* The byte a "<0xNN>" piece stands for (two hex digits; upper case only when upper_only,
 * the way SentencePiece spells them), or -1 when s[0..len) is not one. */
int rd_vocab_byte_piece(const char *s, size_t len, int upper_only);

/* SentencePiece's DecodeUTF8 validity: byte length (1..4) of the well-formed character
 * at s[0..len) (no overlong forms, no surrogates, nothing above U+10FFFF), or 0 when the
 * bytes there are not one. len > 0. */
size_t rd_utf8_char_len(const unsigned char *s, size_t len);

/* llama2.c's tokenizer.bin (int32 max_token_length; then per token: float score, int32
 * length, bytes). vocab_size comes from the model header (the file does not store it);
 * the file must hold exactly that many tokens. vocab_size 0: as many as the file holds
 * (a bare tokenizer.bin). BOS=1, EOS=2, UNK=0 as in Llama-2; the types are inferred.
 * llama2.c's spaces and "\n<s>\n" / "\n</s>\n" spellings become SentencePiece's "▁",
 * <s> and </s> again. Fills *out (overwritten) or returns -1 with *err naming the file. */
int rd_vocab_load_llama2c(const char *path, int vocab_size, rd_vocab *out, rd_error *err);

/* A Hugging Face tokenizer.json of the SentencePiece-BPE kind (Llama-2, Mistral,
 * TinyLlama: model.type "BPE" with byte_fallback; spaces become "▁" through a Prepend/Replace
 * normalizer or a Metaspace pre-tokenizer; the Prepend gives the dummy prefix). Other kinds
 * (byte-level BPE, WordPiece, Unigram, ...) are refused with a message naming the kind.
 * Merge ranks become piece scores so that encoding follows SentencePiece, which differs
 * from Hugging Face's fast tokenizers on some runs of spaces (see README). Pieces from
 * model.vocab and added_tokens (special → CONTROL, others USER_DEFINED), <0xNN> → BYTE.
 * BOS/EOS/UNK come from tokenizer_config_json (bos_token/eos_token/unk_token, a string or
 * {"content": ...}) when it is not NULL and has them, else from the pieces <s>, </s> and
 * model.unk_token / <unk>. Fills *out (overwritten) or returns -1 with *err naming the file
 * and field; nothing of the files is kept. */
int rd_vocab_load_hf(const char *tokenizer_json, const char *tokenizer_config_json_or_NULL,
                     rd_vocab *out, rd_error *err);

/* SentencePiece's tokenizer.model (a protobuf ModelProto, as Llama-2's repositories ship it):
 * the pieces with their scores and types as stored, bos/eos/unk ids from trainer_spec (-1:
 * absent), add_dummy_prefix from normalizer_spec. Only what redit's tokenizer encodes exactly
 * as SentencePiece is accepted: a BPE model (unigram, word and char models are refused) with
 * the identity normalizer (no precompiled_charsmap), remove_extra_whitespaces off,
 * escape_whitespaces on, treat_whitespace_as_suffix off, and byte pieces only with
 * byte_fallback. vocab_size > 0: more pieces than that is an error (0: no limit). The file
 * (64 MB at most, 2^21 pieces) is walked before it is parsed; every error names it. Fills
 * *out (overwritten) or returns -1 with *err set; nothing of the file is kept. */
int rd_vocab_load_spm(const char *path, int vocab_size, rd_vocab *out, rd_error *err);

/* 1 when data[0..size) is a protobuf whose fields are all well-formed, ending at the end of
 * the data, with at least one piece (field 1) first: a SentencePiece model's shape (the
 * content test rd_vocab_load_file uses). */
int rd_vocab_probe_spm(const void *data, size_t size);

/* Any tokenizer file redit reads, told apart by content (never by name): a JSON object is a
 * Hugging Face tokenizer.json (with the tokenizer_config.json beside it when there is one;
 * more pieces than vocab_size > 0 is an error), a protobuf of pieces is a SentencePiece
 * tokenizer.model (rd_vocab_load_spm), anything else a llama2.c tokenizer.bin
 * (rd_vocab_load_llama2c: exactly vocab_size pieces, or any number with 0). Fills *out or
 * returns -1 with *err naming the file. */
int rd_vocab_load_file(const char *path, int vocab_size, rd_vocab *out, rd_error *err);

#endif
