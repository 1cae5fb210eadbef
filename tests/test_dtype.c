/* Element-type conversions (src/core/dtype.c): f16, bf16 and Q8_0 against known values
 * and against independent nearest-value references; rd_dtype_find_nonfinite agrees with
 * widening for every type (random bytes, block by block) and finds planted NaN/Inf. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "redit/dtype.h"
#include "redit/rng.h"

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- f16 ---------------------------------------------------------------------------- */

static void test_f16_known_values(void **state) {
    (void)state;
    assert_int_equal(rd_f32_to_f16(1.0f), 0x3C00);
    assert_int_equal(rd_f32_to_f16(-2.0f), 0xC000);
    assert_int_equal(rd_f32_to_f16(0.5f), 0x3800);
    assert_int_equal(rd_f32_to_f16(65504.0f), 0x7BFF);  /* largest finite */
    assert_int_equal(rd_f32_to_f16(0.0f), 0x0000);
    assert_int_equal(rd_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(rd_f32_to_f16(ldexpf(1.0f, -14)), 0x0400);          /* smallest normal */
    assert_int_equal(rd_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);          /* smallest subnormal */
    assert_int_equal(rd_f32_to_f16(ldexpf(1023.0f, -24)), 0x03FF);       /* largest subnormal */
    assert_int_equal(rd_f32_to_f16(-ldexpf(5.0f, -24)), 0x8005);
    assert_int_equal(rd_f32_to_f16(INFINITY), 0x7C00);
    assert_int_equal(rd_f32_to_f16(-INFINITY), 0xFC00);
    uint16_t nan = rd_f32_to_f16(NAN);
    assert_int_equal(nan & 0x7C00, 0x7C00);
    assert_true((nan & 0x03FF) != 0);
    /* A NaN whose payload lives only in the low bits must stay a NaN, not become inf. */
    uint16_t low_nan = rd_f32_to_f16(bits_f32(0x7F800001u));
    assert_int_equal(low_nan & 0x7C00, 0x7C00);
    assert_true((low_nan & 0x03FF) != 0);

    assert_true(rd_f16_to_f32(0x3C00) == 1.0f);
    assert_true(rd_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(rd_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(rd_f16_to_f32(0x03FF) == ldexpf(1023.0f, -24));
    assert_true(rd_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    assert_true(rd_f16_to_f32(0xC000) == -2.0f);
    assert_true(isinf(rd_f16_to_f32(0x7C00)) && rd_f16_to_f32(0x7C00) > 0);
    assert_true(isinf(rd_f16_to_f32(0xFC00)) && rd_f16_to_f32(0xFC00) < 0);
    assert_true(isnan(rd_f16_to_f32(0x7E00)));
    assert_true(isnan(rd_f16_to_f32(0x7C01)));
    assert_true(rd_f16_to_f32(0x8000) == 0.0f && signbit(rd_f16_to_f32(0x8000)));
}

static void test_f16_round_to_nearest_even(void **state) {
    (void)state;
    /* Halfway between 1 (even mantissa) and 1 + 2^-10: down to 1. */
    assert_int_equal(rd_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3C00);
    /* Halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): up. */
    assert_int_equal(rd_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3C02);
    /* Just above halfway: up. */
    assert_int_equal(rd_f32_to_f16(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3C01);
    /* Just below halfway: down. */
    assert_int_equal(rd_f32_to_f16(1.0f + ldexpf(1.0f, -11) - ldexpf(1.0f, -20)), 0x3C00);
    /* Overflow: 65519.99 stays finite, 65520 (halfway to 2^16) rounds to inf. */
    assert_int_equal(rd_f32_to_f16(65519.0f), 0x7BFF);
    assert_int_equal(rd_f32_to_f16(65520.0f), 0x7C00);
    assert_int_equal(rd_f32_to_f16(-65520.0f), 0xFC00);
    assert_int_equal(rd_f32_to_f16(1e10f), 0x7C00);
    /* Subnormals: 2^-25 is halfway between 0 and 2^-24 → 0 (even); 3·2^-25 → 2·2^-24. */
    assert_int_equal(rd_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);
    assert_int_equal(rd_f32_to_f16(ldexpf(1.0f, -25) * 1.0000001f), 0x0001);
    assert_int_equal(rd_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);
    assert_int_equal(rd_f32_to_f16(ldexpf(5.0f, -25)), 0x0002);
    assert_int_equal(rd_f32_to_f16(1e-8f), 0x0000);
    assert_int_equal(rd_f32_to_f16(bits_f32(0x00000001u)), 0x0000); /* f32 subnormal */
    /* The largest subnormal rounds up into the smallest normal. */
    assert_int_equal(rd_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);
}

/* Every f16 value survives f16 → f32 → f16. */
static void test_f16_roundtrip_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rd_f16_to_f32((uint16_t)h);
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) {
            assert_true(isnan(f));
            uint16_t back = rd_f32_to_f16(f);
            assert_true((back & 0x7C00) == 0x7C00 && (back & 0x3FF));
            continue;
        }
        assert_int_equal(rd_f32_to_f16(f), h);
    }
}

/* Independent reference: the f16 nearest to x by exhaustive search over the positive
 * finite values (ties to the even code), inf at and beyond 65520. */
static uint16_t ref_f32_to_f16(float x) {
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs((double)x);
    if (a >= 65520.0) return sign | 0x7C00;
    uint16_t lo = 0, hi = 0x7BFF; /* largest code with value ≤ a */
    while (lo < hi) {
        uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
        if ((double)rd_f16_to_f32(mid) <= a) lo = mid;
        else hi = mid - 1;
    }
    if (lo == 0x7BFF) return sign | lo;
    double below = a - rd_f16_to_f32(lo), above = rd_f16_to_f32((uint16_t)(lo + 1)) - a;
    if (below < above || (below == above && (lo & 1) == 0)) return sign | lo;
    return sign | (uint16_t)(lo + 1);
}

static void test_f16_matches_reference(void **state) {
    (void)state;
    uint64_t s = 1;
    for (int i = 0; i < 300000; i++) {
        uint32_t u = (uint32_t)rd_splitmix64(&s);
        /* Bias towards the f16 range: exponents 100..150 half of the time. */
        if (i % 2) u = (u & 0x807FFFFFu) | ((uint32_t)(100 + rd_splitmix64(&s) % 51) << 23);
        float x = bits_f32(u);
        if (isnan(x)) continue;
        uint16_t got = rd_f32_to_f16(x), want = ref_f32_to_f16(x);
        if (got != want) fail_msg("f32 0x%08x: f16 0x%04x, reference 0x%04x", u, got, want);
    }
#ifdef __FLT16_MAX__
    /* The compiler's own conversion, where it has one. */
    s = 2;
    for (int i = 0; i < 300000; i++) {
        uint32_t u = (uint32_t)rd_splitmix64(&s);
        if (i % 2) u = (u & 0x807FFFFFu) | ((uint32_t)(100 + rd_splitmix64(&s) % 51) << 23);
        float x = bits_f32(u);
        if (isnan(x)) continue;
        _Float16 h = (_Float16)x;
        uint16_t want;
        memcpy(&want, &h, 2);
        assert_int_equal(rd_f32_to_f16(x), want);
    }
#endif
}

/* ---- bf16 --------------------------------------------------------------------------- */

static uint16_t ref_f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t lo = (uint16_t)(u >> 16);
    if ((u & 0xFFFF) == 0) return lo;
    double a = (double)x, vlo = rd_bf16_to_f32(lo), vhi = rd_bf16_to_f32((uint16_t)(lo + 1));
    if ((lo & 0x7FFF) == 0x7F7F) vhi = copysign(ldexp(1.0, 128), a); /* next is inf */
    double dlo = fabs(a - vlo), dhi = fabs(vhi - a);
    if (dlo < dhi || (dlo == dhi && (lo & 1) == 0)) return lo;
    return (uint16_t)(lo + 1);
}

static void test_bf16(void **state) {
    (void)state;
    assert_int_equal(rd_f32_to_bf16(1.0f), 0x3F80);
    assert_int_equal(rd_f32_to_bf16(-2.0f), 0xC000);
    assert_int_equal(rd_f32_to_bf16(bits_f32(0x3F808000u)), 0x3F80); /* tie, even below */
    assert_int_equal(rd_f32_to_bf16(bits_f32(0x3F818000u)), 0x3F82); /* tie, odd below */
    assert_int_equal(rd_f32_to_bf16(bits_f32(0x3F808001u)), 0x3F81); /* above the tie */
    assert_int_equal(rd_f32_to_bf16(bits_f32(0x3F807FFFu)), 0x3F80); /* below the tie */
    assert_int_equal(rd_f32_to_bf16(bits_f32(0x7F7FFFFFu)), 0x7F80); /* max float → inf */
    assert_int_equal(rd_f32_to_bf16(INFINITY), 0x7F80);
    assert_int_equal(rd_f32_to_bf16(-INFINITY), 0xFF80);
    assert_int_equal(rd_f32_to_bf16(-0.0f), 0x8000);
    uint16_t n = rd_f32_to_bf16(bits_f32(0x7F800001u)); /* low-payload NaN stays NaN */
    assert_true((n & 0x7F80) == 0x7F80 && (n & 0x7F));
    assert_true(isnan(rd_bf16_to_f32(rd_f32_to_bf16(NAN))));
    assert_true(rd_bf16_to_f32(0x3F80) == 1.0f);
    assert_true(rd_bf16_to_f32(0x0001) == bits_f32(0x00010000u)); /* subnormal */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rd_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        assert_int_equal(rd_f32_to_bf16(f), h);
    }
    uint64_t s = 3;
    for (int i = 0; i < 300000; i++) {
        uint32_t u = (uint32_t)rd_splitmix64(&s);
        float x = bits_f32(u);
        if (isnan(x)) continue;
        uint16_t got = rd_f32_to_bf16(x), want = ref_f32_to_bf16(x);
        if (got != want) fail_msg("f32 0x%08x: bf16 0x%04x, reference 0x%04x", u, got, want);
    }
}

/* ---- Q8_0 --------------------------------------------------------------------------- */

static void test_q8_0_known_block(void **state) {
    (void)state;
    const rd_dtype_info *q = rd_dtype_info_of(RD_DTYPE_Q8_0);
    assert_non_null(q);
    assert_int_equal(q->block_elems, 32);
    assert_int_equal(q->block_bytes, 34);
    /* amax = 127 → d = 1 exactly (f16 0x3C00) and q = roundf(x): halves away from zero. */
    float x[32] = {-127.0f, 2.5f, -2.5f, 0.49f, 126.6f, 0.5f, -0.5f, 100.0f, 3.0f};
    for (int j = 9; j < 32; j++) x[j] = (float)(j - 20);
    uint8_t blk[34];
    q->from_f32(x, blk, 32);
    const uint8_t want_head[11] = {0x00, 0x3C, 0x81 /* -127 */, 3, 0xFD /* -3 */, 0, 127,
                                   1, 0xFF /* -1 */, 100, 3};
    assert_memory_equal(blk, want_head, sizeof want_head);
    for (int j = 9; j < 32; j++) assert_int_equal((int8_t)blk[2 + j], j - 20);

    /* Decoding a hand-made block: d = 0.5 (0x3800), q = j - 16. */
    uint8_t hand[34] = {0x00, 0x38};
    for (int j = 0; j < 32; j++) hand[2 + j] = (uint8_t)(int8_t)(j - 16);
    float out[32];
    q->to_f32(hand, out, 32);
    for (int j = 0; j < 32; j++) assert_true(out[j] == 0.5f * (float)(j - 16));

    /* An all-zero block: d = 0, q = 0, decodes to zeros. */
    float zero[32] = {0};
    q->from_f32(zero, blk, 32);
    for (int j = 0; j < 34; j++) assert_int_equal(blk[j], 0);
}

static void test_q8_0_error_bound_and_nonfinite(void **state) {
    (void)state;
    const rd_dtype_info *q = rd_dtype_info_of(RD_DTYPE_Q8_0);
    uint64_t s = 9;
    float x[64], y[64];
    uint8_t blk[68];
    for (int j = 0; j < 64; j++) x[j] = (float)((int64_t)(rd_splitmix64(&s) % 20001) - 10000) / 997.0f;
    q->from_f32(x, blk, 64);
    q->to_f32(blk, y, 64);
    for (int b = 0; b < 2; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        for (int j = 0; j < 32; j++)
            assert_true(fabsf(x[32 * b + j] - y[32 * b + j]) <=
                        amax / 127.0f * 0.5f + amax * 1e-3f);
    }
    /* Non-finite inputs must not be undefined behaviour: the result is merely defined. */
    x[3] = INFINITY;
    x[40] = NAN;
    q->from_f32(x, blk, 64);
    q->to_f32(blk, y, 64);
    for (int j = 0; j < 34; j++) (void)blk[j];
}

/* ---- the table ---------------------------------------------------------------------- */

static void test_dtype_table(void **state) {
    (void)state;
    const char *names[RD_DTYPE_COUNT] = {"F32",  "F16",  "BF16", "Q8_0", "Q4_0",
                                         "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K",
                                         "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"};
    for (int t = 0; t < RD_DTYPE_COUNT; t++) {
        const rd_dtype_info *info = rd_dtype_info_of((rd_dtype)t);
        assert_non_null(info);
        assert_string_equal(info->name, names[t]);
        rd_dtype back;
        assert_int_equal(rd_dtype_from_name(names[t], &back), 0);
        assert_int_equal(back, t);
    }
    rd_dtype d;
    assert_int_equal(rd_dtype_from_name("f16", &d), -1);
    assert_int_equal(rd_dtype_from_name("Q8_K", &d), -1);
    assert_null(rd_dtype_info_of(RD_DTYPE_COUNT));
    assert_null(rd_dtype_info_of((rd_dtype)-1));
    uint64_t bytes;
    assert_int_equal(rd_dtype_bytes(RD_DTYPE_F32, 10, &bytes), 0);
    assert_int_equal(bytes, 40);
    assert_int_equal(rd_dtype_bytes(RD_DTYPE_BF16, 10, &bytes), 0);
    assert_int_equal(bytes, 20);
    assert_int_equal(rd_dtype_bytes(RD_DTYPE_Q8_0, 64, &bytes), 0);
    assert_int_equal(bytes, 68);
    assert_int_equal(rd_dtype_bytes(RD_DTYPE_Q8_0, 33, &bytes), -1);
    assert_int_equal(rd_dtype_bytes(RD_DTYPE_F32, UINT64_MAX / 2, &bytes), -1);
    assert_int_equal(rd_dtype_bytes(RD_DTYPE_COUNT, 1, &bytes), -1);

    /* Bulk conversions agree with the scalar ones. */
    float src[32], back32[32];
    uint16_t h[32];
    for (int i = 0; i < 32; i++) src[i] = (float)i * 0.3f - 4.0f;
    rd_dtype_info_of(RD_DTYPE_F16)->from_f32(src, h, 32);
    rd_dtype_info_of(RD_DTYPE_F16)->to_f32(h, back32, 32);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(h[i], rd_f32_to_f16(src[i]));
        assert_true(back32[i] == rd_f16_to_f32(h[i]));
    }
    rd_dtype_info_of(RD_DTYPE_BF16)->from_f32(src, h, 32);
    rd_dtype_info_of(RD_DTYPE_BF16)->to_f32(h, back32, 32);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(h[i], rd_f32_to_bf16(src[i]));
        assert_true(back32[i] == rd_bf16_to_f32(h[i]));
    }
    float f32buf[32];
    rd_dtype_info_of(RD_DTYPE_F32)->from_f32(src, f32buf, 32);
    rd_dtype_info_of(RD_DTYPE_F32)->to_f32(f32buf, back32, 32);
    assert_memory_equal(back32, src, sizeof src);
}

/* For every type, block by block over random bytes (f16 scales and plain values are
 * non-finite often enough: 1 in 32 or 1 in 256): rd_dtype_find_nonfinite reports a block
 * exactly when widening it gives a value that is not finite. */
static void test_find_nonfinite_agrees_with_widening(void **state) {
    (void)state;
    uint64_t rng = rd_rng_seed(7);
    for (int t = 0; t < RD_DTYPE_COUNT; t++) {
        const rd_dtype_info *info = rd_dtype_info_of((rd_dtype)t);
        unsigned char block[256];
        float out[256];
        int found = 0, clean = 0;
        for (int trial = 0; trial < 4000; trial++) {
            for (size_t i = 0; i < info->block_bytes; i++) block[i] = (unsigned char)rd_rng_next(&rng);
            info->to_f32(block, out, info->block_elems);
            int finite = 1;
            for (size_t i = 0; i < info->block_elems; i++) finite &= isfinite(out[i]) != 0;
            const int64_t at = rd_dtype_find_nonfinite((rd_dtype)t, block, info->block_elems);
            if (finite != (at < 0))
                fail_msg("%s trial %d: widening is %sfinite but find_nonfinite says %lld", info->name,
                         trial, finite ? "" : "not ", (long long)at);
            if (at >= 0) assert_int_equal(at, 0);
            found += at >= 0;
            clean += at < 0;
        }
        assert_true(found > 0 && clean > 0); /* both cases were met */
    }
}

/* Plain types: the exact first element, past the fast path's chunks; quantised types: the
 * first element of the block; finite data gives -1. */
static void test_find_nonfinite_places(void **state) {
    (void)state;
    enum { N = 3 * 4096 + 100 };
    float *src = malloc(N * sizeof(float));
    void *buf = malloc(N * 4);
    assert_non_null(src);
    assert_non_null(buf);
    for (int i = 0; i < N; i++) src[i] = sinf((float)i) * 3.0f;
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int t = 0; t < RD_DTYPE_COUNT; t++) {
        const rd_dtype_info *info = rd_dtype_info_of((rd_dtype)t);
        const uint64_t n = N / info->block_elems * info->block_elems;
        info->from_f32(src, buf, n);
        assert_int_equal(rd_dtype_find_nonfinite((rd_dtype)t, buf, n), -1);
        const uint64_t places[] = {0, 5000, n - 1, 4095, 4096};
        for (size_t k = 0; k < sizeof places / sizeof *places; k++) {
            const uint64_t at = places[k];
            float keep = src[at];
            src[at] = bad[k % 3];
            info->from_f32(src, buf, n);
            src[at] = keep;
            float *wide = malloc(n * sizeof(float));
            assert_non_null(wide);
            info->to_f32(buf, wide, n);
            uint64_t first = n;
            for (uint64_t i = 0; i < n && first == n; i++)
                if (!isfinite(wide[i])) first = i;
            free(wide);
            const int64_t got = rd_dtype_find_nonfinite((rd_dtype)t, buf, n);
            if (first == n) { /* the quantiser kept the block finite (it clamps) */
                assert_int_equal(got, -1);
                continue;
            }
            const uint64_t want = info->block_elems == 1 ? at : at / info->block_elems * info->block_elems;
            if (got != (int64_t)want || first < want)
                fail_msg("%s: planted at %llu, found %lld, widened first at %llu", info->name,
                         (unsigned long long)at, (long long)got, (unsigned long long)first);
        }
    }
    assert_int_equal(rd_dtype_find_nonfinite(RD_DTYPE_F32, buf, 0), -1);
    assert_int_equal(rd_dtype_find_nonfinite(RD_DTYPE_COUNT, buf, 1), -1);
    free(src);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_known_values),
        cmocka_unit_test(test_f16_round_to_nearest_even),
        cmocka_unit_test(test_f16_roundtrip_exhaustive),
        cmocka_unit_test(test_f16_matches_reference),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_q8_0_known_block),
        cmocka_unit_test(test_q8_0_error_bound_and_nonfinite),
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_find_nonfinite_agrees_with_widening),
        cmocka_unit_test(test_find_nonfinite_places),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
