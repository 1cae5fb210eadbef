/* redit — SentencePiece-style BPE tokenizer with byte fallback (text layer).
 *
 * Reproduces SentencePiece's BPE encoding exactly (Llama-2's tokenizer.model): spaces
 * become U+2581 "▁", a dummy-prefix "▁" is prepended, the text is split into Unicode
 * characters, and the adjacent pair whose concatenation is the highest-scoring piece is
 * merged (leftmost first on ties) until no pair merges; characters with no piece become
 * byte pieces <0xNN> (one per UTF-8 byte) or <unk> when the vocabulary has no byte pieces. */
#ifndef REDIT_TOKENIZER_H
#define REDIT_TOKENIZER_H

#include <stddef.h>

#include "redit/error.h"

typedef struct rd_tokenizer rd_tokenizer;

/* Piece types; the numbers are those of SentencePiece and GGUF's tokenizer.ggml.token_type. */
typedef enum rd_token_type {
    RD_TOKEN_NORMAL = 1,
    RD_TOKEN_UNKNOWN = 2,
    RD_TOKEN_CONTROL = 3,
    RD_TOKEN_USER_DEFINED = 4,
    RD_TOKEN_UNUSED = 5,
    RD_TOKEN_BYTE = 6
} rd_token_type;

/* A vocabulary as loaders find it. Everything is copied by rd_tokenizer_new. */
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

/* Builds a tokenizer. `what` names the source (file) in error messages. Fails on an empty
 * vocabulary, out-of-range special ids, invalid UTF-8 pieces or duplicate pieces that
 * would make encoding ambiguous. Returns NULL with *err set. Free with rd_tokenizer_free. */
rd_tokenizer *rd_tokenizer_new(const rd_vocab_spec *spec, const char *what, rd_error *err);

/* Loads llama2.c's tokenizer.bin (int32 max_token_length; then per token: float score,
 * int32 length, bytes). vocab_size comes from the model header (the file does not store
 * it); the file must hold exactly that many tokens. vocab_size 0: as many as the file
 * holds (a bare tokenizer.bin). BOS=1, EOS=2, UNK=0 as in Llama-2. */
rd_tokenizer *rd_tokenizer_load_llama2c(const char *path, int vocab_size, rd_error *err);

/* Loads a Hugging Face tokenizer.json of the SentencePiece-BPE kind (Llama-2, Mistral,
 * TinyLlama: model.type "BPE" with byte_fallback; spaces become "▁" through a Prepend/Replace
 * normalizer or a Metaspace pre-tokenizer; the Prepend gives the dummy prefix). Other kinds
 * (byte-level BPE, WordPiece, Unigram, ...) are refused with a message naming the kind.
 * Merge ranks become piece scores so that encoding follows SentencePiece, which differs
 * from Hugging Face's fast tokenizers on some runs of spaces (see README). Pieces from
 * model.vocab and added_tokens (special → CONTROL, others USER_DEFINED), <0xNN> → BYTE.
 * BOS/EOS/UNK come from tokenizer_config_json (bos_token/eos_token/unk_token, a string or
 * {"content": ...}) when it is not NULL and has them, else from the pieces <s>, </s> and
 * model.unk_token / <unk>. Returns NULL with *err naming the file and field. Free with
 * rd_tokenizer_free; nothing of the files is kept. */
rd_tokenizer *rd_tokenizer_load_hf(const char *tokenizer_json,
                                   const char *tokenizer_config_json_or_NULL, rd_error *err);

void rd_tokenizer_free(rd_tokenizer *t); /* NULL-safe */

int rd_tokenizer_vocab_size(const rd_tokenizer *t);
int rd_tokenizer_bos(const rd_tokenizer *t); /* -1 when absent */
int rd_tokenizer_eos(const rd_tokenizer *t); /* -1 when absent */

float rd_tokenizer_score(const rd_tokenizer *t, int id);        /* 0 when out of range */
rd_token_type rd_tokenizer_type(const rd_tokenizer *t, int id); /* RD_TOKEN_UNUSED when out of range */
int rd_tokenizer_unk(const rd_tokenizer *t);                   /* -1 when absent */
int rd_tokenizer_adds_dummy_prefix(const rd_tokenizer *t);

/* Piece bytes of id (not NUL-terminated in general; *len set). Borrowed, valid while t
 * lives. NULL when id is out of range. */
const char *rd_tokenizer_piece(const rd_tokenizer *t, int id, size_t *len);

/* Encodes len bytes of text. add_bos/add_eos prepend/append those ids when they exist.
 * On success *ids is a malloc'ed array of *n ids that the caller frees. As in SentencePiece,
 * each byte that does not start a well-formed UTF-8 character is read as U+FFFD (then
 * encoded like any other character: its piece, else its byte pieces). */
int rd_tokenizer_encode(const rd_tokenizer *t, const char *text, size_t len, int add_bos,
                        int add_eos, int **ids, size_t *n, rd_error *err);

/* The text one token adds when streamed after prev_id (-1 at the start): "▁" becomes a
 * space, the dummy-prefix space of the first piece (after BOS or at the start) is
 * dropped, byte pieces become their raw byte, control/unknown pieces add nothing.
 * Writes at most cap bytes to buf and returns the number of bytes of the full text
 * (like snprintf, without a NUL). */
size_t rd_tokenizer_decode_piece(const rd_tokenizer *t, int prev_id, int id, char *buf,
                                 size_t cap);

/* Decodes n ids into a malloc'ed NUL-terminated string the caller frees (NULL on out of
 * memory or an out-of-range id, with *err set). */
char *rd_tokenizer_decode(const rd_tokenizer *t, const int *ids, size_t n, rd_error *err);

#endif
