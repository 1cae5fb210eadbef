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
#include "redit/vocab.h"

typedef struct rd_tokenizer rd_tokenizer;

/* Builds a tokenizer from a vocabulary (copied: v may be released afterwards). v is checked
 * with rd_vocab_check first (`what` names its source in messages); its unk_id is used as it
 * is (rd_vocab_from_spec has already resolved -1 to the first UNKNOWN piece). Returns NULL
 * with *err set. Free with rd_tokenizer_free. */
rd_tokenizer *rd_tokenizer_from_vocab(const rd_vocab *v, const char *what, rd_error *err);

/* rd_vocab_from_spec, then rd_tokenizer_from_vocab: builds a tokenizer from a vocabulary
 * written by hand. `what` names the source (file) in error messages. Fails on an empty
 * vocabulary, out-of-range special ids, invalid UTF-8 pieces or duplicate pieces that
 * would make encoding ambiguous. Returns NULL with *err set. Free with rd_tokenizer_free. */
rd_tokenizer *rd_tokenizer_new(const rd_vocab_spec *spec, const char *what, rd_error *err);

/* Exports t's vocabulary as plain data into *out (overwritten; release with
 * rd_vocab_release): the pieces, scores, types, special ids and dummy-prefix flag, so that
 * rd_tokenizer_from_vocab(out) gives back the same tokenizer. Returns 0 or -1 with *err
 * (out of memory). */
int rd_tokenizer_export_vocab(const rd_tokenizer *t, rd_vocab *out, rd_error *err);

/* Loaders: parse the file with the io layer's rd_vocab_load_llama2c / rd_vocab_load_hf /
 * rd_vocab_load_file (redit/vocab.h, which documents the formats and the errors), then build
 * the tokenizer. */
/* Any tokenizer file, detected by content: SentencePiece tokenizer.model, llama2.c
 * tokenizer.bin or Hugging Face tokenizer.json; vocab_size 0: no limit on the pieces. */
rd_tokenizer *rd_tokenizer_load_file(const char *path, int vocab_size, rd_error *err);

/* llama2.c's tokenizer.bin; vocab_size 0: as many pieces as the file holds. */
rd_tokenizer *rd_tokenizer_load_llama2c(const char *path, int vocab_size, rd_error *err);

/* A Hugging Face tokenizer.json of the SentencePiece-BPE kind, with its
 * tokenizer_config.json (for BOS/EOS/UNK) when not NULL. */
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

/* As rd_tokenizer_encode of the text a[0..na) followed by b[0..nb), without building it (a
 * long prompt + answer is held once). b may be NULL when nb is 0. */
int rd_tokenizer_encode2(const rd_tokenizer *t, const char *a, size_t na, const char *b,
                         size_t nb, int add_bos, int add_eos, int **ids, size_t *n,
                         rd_error *err);

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
