/* redit — token sampling (gen layer).
 *
 * Order of operations on one logits row (the Hugging Face / llama.cpp convention):
 *   1. repetition penalty over the last repeat_last_n tokens of the history
 *      (logit > 0: divided by r, else multiplied by r);
 *   2. no-repeat-n-gram: tokens that would complete an n-gram already present in the
 *      history get -inf;
 *   3. temperature == 0: argmax (greedy; ties → lowest id);
 *   4. else logits / temperature, top-k, softmax, top-p (nucleus: the smallest set of
 *      most-probable tokens whose mass reaches p), then a draw from the seeded RNG (redit/rng.h). */
#ifndef REDIT_SAMPLER_H
#define REDIT_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "redit/error.h"

typedef struct rd_sampling {
    float temperature;    /* 0 = greedy */
    int top_k;            /* 0 = off */
    float top_p;          /* 1 = off */
    float repeat_penalty; /* 1 = off; the RED paper's Llama runs used 1.1 */
    int repeat_last_n;    /* window for the penalty; 0 = whole history */
    int no_repeat_ngram;  /* 0 = off; the RED paper's Llama runs used 5 */
    uint64_t seed;
} rd_sampling;

/* Defaults: temperature 0.8, top_k 40, top_p 0.95, repeat_penalty 1.0 (last 64), no
 * n-gram blocking, seed 42. */
rd_sampling rd_sampling_defaults(void);

/* Checks ranges (temperature ≥ 0 and finite, top_p in (0,1], penalty > 0, ...). */
int rd_sampling_validate(const rd_sampling *s, rd_error *err);

typedef struct rd_sampler rd_sampler;

/* Creates a sampler for a vocabulary of n_vocab; copies *s. NULL with *err on bad
 * settings or no memory. */
rd_sampler *rd_sampler_new(const rd_sampling *s, int n_vocab, rd_error *err);
void rd_sampler_free(rd_sampler *s); /* NULL-safe */

/* Picks the next token from logits (n_vocab floats; modified in place) given the tokens
 * so far (prompt + generated). Deterministic for a given seed and call sequence. */
int rd_sampler_sample(rd_sampler *s, float *logits, const int *history, size_t n_history);

#endif
