/* The seeded generators (redit/rng.h): their streams pinned to the numbers the generators
 * gave when they lived in the sampler and the data set (seeded training runs are reproduced
 * bit for bit, so none may change), plus the contracts (state 0, range of the uniform). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "core/kernels.h"
#include "redit/rng.h"

static void test_xorshift_stream(void **state) {
    (void)state;
    static const uint64_t from42[] = {0x56ce4ab7719ba3a0ULL, 0xc841eb53ebbb2ddaULL,
                                      0xca466be0c9980276ULL, 0xf1acc7334a7b70dfULL};
    uint64_t s = 42;
    for (int i = 0; i < 4; i++) assert_int_equal(rd_rng_next(&s), from42[i]);
    /* state 0 is a valid state (read as RD_RNG_GOLDEN), and the stream moves on from it */
    s = 0;
    assert_int_equal(rd_rng_next(&s), 0x0d83b3e29a21487aULL);
    assert_int_not_equal(s, 0);
    assert_int_equal(rd_rng_next(&s), 0x54c44c79f1fe9d67ULL);
    uint64_t g = RD_RNG_GOLDEN, z = 0;
    assert_int_equal(rd_rng_next(&g), rd_rng_next(&z));
}

static void test_uniform(void **state) {
    (void)state;
    static const float from7[] = {0x1.a3f75ep-1f, 0x1.db48d8p-1f, 0x1.6df9dp-4f};
    uint64_t s = 7;
    for (int i = 0; i < 3; i++) assert_true(rd_rng_uniform(&s) == from7[i]);
    /* [0, 1) with mean ~ 1/2; the largest 24-bit value still lands below 1 */
    s = 1;
    double sum = 0.0;
    for (int i = 0; i < 100000; i++) {
        const float u = rd_rng_uniform(&s);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    assert_true(fabs(sum / 100000 - 0.5) < 0.01);
    assert_true((float)(0xFFFFFFull) * (1.0f / 16777216.0f) < 1.0f);
}

static void test_seed(void **state) {
    (void)state;
    assert_int_equal(rd_rng_seed(0), 0xe220a8397b1dcdafULL);
    assert_int_equal(rd_rng_seed(1), 0x910a2dec89025cc1ULL);
    assert_int_equal(rd_rng_seed(42), 0xbdd732262feb6e95ULL);
    /* never 0, whatever the seed: the seed whose mix is 0 gets RD_RNG_GOLDEN */
    for (uint64_t k = 0; k < 1000; k++) assert_int_not_equal(rd_rng_seed(k), 0);
    assert_int_equal(rd_mix64(0), 0);
    assert_int_equal(rd_rng_seed(0 - RD_RNG_GOLDEN), RD_RNG_GOLDEN);
}

static void test_splitmix(void **state) {
    (void)state;
    static const uint64_t from0[] = {0xe220a8397b1dcdafULL, 0x6e789e6aa1b965f4ULL,
                                     0x06c45d188009454fULL};
    uint64_t s = 0;
    for (int i = 0; i < 3; i++) assert_int_equal(rd_splitmix64(&s), from0[i]);
    assert_int_equal(s, 3 * RD_RNG_GOLDEN);
}

/* The dropout masks hash (seed + index·φ) with the same finaliser: a mask is the same
 * whether it is computed from the start or from an offset view. */
static void test_dropout_uses_mix(void **state) {
    (void)state;
    const rd_dropout d = rd_dropout_make(0.5f, 1234);
    int dropped = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        const uint64_t h = rd_mix64(1234 + i * RD_RNG_GOLDEN);
        const float want = (uint32_t)(h >> 32) < d.threshold ? 0.0f : d.scale;
        assert_true(rd_dropout_factor(&d, i) == want);
        dropped += want == 0.0f;
    }
    assert_in_range(dropped, 400, 600);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xorshift_stream),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_splitmix),
        cmocka_unit_test(test_dropout_uses_mix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
