/* redit — the seeded random-number generators (core layer).
 *
 * Every random stream in redit comes from here, so that a seed means the same numbers on
 * every machine and in every layer: the sampler's draws (gen), the data-set split (data),
 * the trainer's shuffles and dropout seeds (train), random-weight models (model, cli).
 * Training runs are seeded and reproduced bit for bit, so none of these may change what
 * it returns for a given state (tests/test_rng.c pins the streams).
 *
 * Two generators, both stateless functions of a caller-owned uint64_t (no global state):
 *   xorshift64* (rd_rng_next): the sampler's, the data order's and the dropout seeds';
 *   splitmix64 (rd_splitmix64): a counter-based stream (random weights, test data). */
#ifndef REDIT_RNG_H
#define REDIT_RNG_H

#include <stdint.h>

/* 2⁶⁴/φ, odd: splitmix64's increment, also used to spread seeds and indices. */
#define RD_RNG_GOLDEN 0x9E3779B97F4A7C15ULL

/* splitmix64's finaliser: a bijection of 64-bit values that spreads nearby inputs
 * (0, 1, 2, ...) over the whole range. Pure; inline for per-element use (dropout masks). */
static inline uint64_t rd_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* xorshift64*: advances *state and returns the next 64-bit number. A state of 0 (which
 * xorshift would never leave) is treated as RD_RNG_GOLDEN, so any value is a valid state. */
uint64_t rd_rng_next(uint64_t *state);

/* The next number of the same stream as a float in [0, 1): its 24 high bits / 2²⁴ (every
 * such value is exact in a float, so the result is never 1). */
float rd_rng_uniform(uint64_t *state);

/* A non-zero xorshift64* state for a seed: rd_mix64(seed + RD_RNG_GOLDEN), so small seeds
 * (0, 1, 2, ...) give unrelated streams and different seeds different streams. */
uint64_t rd_rng_seed(uint64_t seed);

/* splitmix64: adds RD_RNG_GOLDEN to *state and returns rd_mix64 of it. Any state is valid. */
uint64_t rd_splitmix64(uint64_t *state);

#endif
