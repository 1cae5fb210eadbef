/* Test helpers: tiny random-weight models built in memory, to be written in each format. */
#ifndef TINY_MODEL_H
#define TINY_MODEL_H

#include <stdint.h>

#include "redit/model_file.h"
#include "redit/vocab.h"

/* A small GQA config: dim 64, hidden 172, 3 layers, 8 heads, 4 kv heads, vocab 300,
 * seq_len 64, eps 1e-5, theta 10000, adjacent RoPE. */
rd_config tiny_config(void);

/* rd_model_file_random with a test seed: fills out with cfg and random f32 weights, no
 * tokenizer. Same seed → same weights. Matrices ~ N(0, 1/fan_in), norms ~ 1 + 0.1 N(0,1),
 * embeddings ~ N(0, 0.3²). Returns 0 or -1. */
int tiny_model_init(rd_model_file *out, const rd_config *cfg, int tied, uint64_t seed);

/* A vocabulary of n (> 259) pieces into *out: <unk> <s> </s>, the 256 byte pieces <0xNN>,
 * then words "▁waa", "▁wba", ... (score -i/4) of which the last is USER_DEFINED; BOS 1,
 * EOS 2, UNK given as -1 (rd_vocab_from_spec resolves it to piece 0). with_types 0 leaves
 * the types to be inferred from the spelling (the last word then reads NORMAL). Returns 0,
 * or -1 with *err. Release with rd_vocab_release. */
int tiny_vocab(rd_vocab *out, int n, int add_prefix, int with_types, rd_error *err);

/* Makes a temporary directory (mkdtemp under $TMPDIR or /tmp) and returns it in buf. */
int tiny_tempdir(char *buf, size_t cap);

/* Entries of a directory other than . and .. (e.g. to see that no temporary file was left
 * behind, or /proc/self/fd to count open descriptors); -1 when it cannot be read. */
int tiny_count_entries(const char *dir);

/* Removes a directory made by tiny_tempdir and every file in it. */
void tiny_rmdir(const char *dir);

/* Path of a file in ../shared/fixtures, relative to the repository root (tests run from
 * there); NULL when the shared folder is missing. Static buffer. */
const char *shared_fixture(const char *rel);

#endif
