/* Test helpers: the suites' own small random streams (xorshift64 with a state the suite
 * keeps), so a suite's data do not change when the engine's generators (redit/rng.h) do. */
#ifndef TEST_RNG_H
#define TEST_RNG_H

#include <math.h>
#include <stdint.h>

/* Uniform in [0, 1) from *state (advanced). */
static inline double test_urand(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (double)(*state >> 11) / 9007199254740992.0;
}

/* Standard normal (Box–Muller) from *state; two uniforms drawn, first the radius's. */
static inline float test_nrand(uint64_t *state) {
    const double u = test_urand(state);
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.2831853 * test_urand(state)));
}

#endif
