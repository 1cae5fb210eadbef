/* Tokenizers straight from their files: the io layer parses the file into plain data
 * (redit/vocab.h), then the tokenizer is built from it. */
#include "redit/tokenizer.h"

static rd_tokenizer *build(int rc, rd_vocab *v, const char *path, rd_error *err) {
    rd_tokenizer *t = rc ? NULL : rd_tokenizer_from_vocab(v, path, err);
    rd_vocab_release(v);
    return t;
}

rd_tokenizer *rd_tokenizer_load_llama2c(const char *path, int vocab_size, rd_error *err) {
    rd_vocab v;
    return build(rd_vocab_load_llama2c(path, vocab_size, &v, err), &v, path, err);
}

rd_tokenizer *rd_tokenizer_load_hf(const char *tokenizer_json, const char *config_json,
                                   rd_error *err) {
    rd_vocab v;
    return build(rd_vocab_load_hf(tokenizer_json, config_json, &v, err), &v, tokenizer_json,
                 err);
}

rd_tokenizer *rd_tokenizer_load_file(const char *path, int vocab_size, rd_error *err) {
    rd_vocab v;
    return build(rd_vocab_load_file(path, vocab_size, &v, err), &v, path, err);
}
