/* The seeded random-number generators (see redit/rng.h). */
#include "redit/rng.h"

uint64_t rd_rng_next(uint64_t *state) {
    uint64_t x = *state ? *state : RD_RNG_GOLDEN;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

float rd_rng_uniform(uint64_t *state) {
    return (float)(rd_rng_next(state) >> 40) * (1.0f / 16777216.0f);
}

uint64_t rd_rng_seed(uint64_t seed) {
    const uint64_t z = rd_mix64(seed + RD_RNG_GOLDEN);
    return z ? z : RD_RNG_GOLDEN;
}

uint64_t rd_splitmix64(uint64_t *state) {
    return rd_mix64(*state += RD_RNG_GOLDEN);
}
