/* llama.cpp block quantisations (src/core/quants.c): Q4_0, Q4_1, Q5_0, Q5_1, the
 * K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the non-linear IQ4_NL, IQ4_XS.
 *
 * - Layouts: hand-built blocks (chosen f16 scales, chosen 4/6-bit sub-scales packed here
 *   bit by bit, random quant bytes) widened by to_f32 must equal, bit for bit, the value of
 *   each element computed here from the documented per-element formula, evaluated with
 *   the float operations of llama.cpp's dequantize_row_* in the same order; plus literal
 *   values worked out by hand (IQ4_NL / IQ4_XS: whole blocks written out, every sub-block
 *   scale of an IQ4_XS block with its bits placed by hand).
 * - Round trips: Gaussian data → from_f32 → to_f32 within a relative RMS error per type;
 *   zeros stay zeros; non-finite input gives well-formed blocks (no UB under UBSan).
 * - rd_matmul (n = 1: matvec; n = 9: widened panels + sgemm) against rd_matmul_naive.
 * - GGUF: a dim-256 / hidden-512 model written in each type, loaded, and run by rd_forward
 *   gives logits bit-identical to the F32 model holding the dequantised weights. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/tiny_model.h"
#include "redit/dtype.h"
#include "redit/forward.h"
#include "core/kernels.h"
#include "redit/model.h"
#include "redit/model_file.h"
#include "core/pool.h"
#include "redit/rng.h"

static const rd_dtype QTYPES[] = {RD_DTYPE_Q4_0, RD_DTYPE_Q4_1, RD_DTYPE_Q5_0,
                                  RD_DTYPE_Q5_1, RD_DTYPE_Q2_K, RD_DTYPE_Q3_K,
                                  RD_DTYPE_Q4_K, RD_DTYPE_Q5_K, RD_DTYPE_Q6_K,
                                  RD_DTYPE_IQ4_NL, RD_DTYPE_IQ4_XS};
#define N_QTYPES (sizeof QTYPES / sizeof QTYPES[0])

/* ---- deterministic random numbers -------------------------------------------------------- */

static float uniform(uint64_t *s) { return (float)((rd_splitmix64(s) >> 40) + 0.5) / 16777216.0f; }

static float gaussian(uint64_t *s) {
    return sqrtf(-2.0f * logf(uniform(s))) * cosf(6.2831853f * uniform(s));
}

static void random_bytes(uint8_t *p, size_t n, uint64_t *s) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rd_splitmix64(s);
}

/* f16 scales the tests put into blocks: normal, subnormal, negative, 1, 0. */
static const uint16_t F16S[] = {0x3C00, 0x3555, 0xB800, 0x2E66, 0x0201, 0x0000, 0x4A10};

static uint16_t pick_f16(uint64_t *s) { return F16S[rd_splitmix64(s) % (sizeof F16S / 2)]; }

static void put16(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static float h2f(uint16_t h) { return rd_f16_to_f32(h); }

static void widen(rd_dtype t, const uint8_t *blk, float *y, size_t n) {
    rd_dtype_info_of(t)->to_f32(blk, y, n);
}

static void assert_bits_equal(const float *got, const float *want, int n, const char *what) {
    for (int e = 0; e < n; e++)
        if (memcmp(&got[e], &want[e], sizeof(float)) != 0)
            fail_msg("%s: element %d is %.9g, expected %.9g", what, e, (double)got[e],
                     (double)want[e]);
}

/* ---- layouts: 32-element blocks ------------------------------------------------------------ */

/* nibble of element e (0..31) of a 32-block: low nibbles hold 0..15, high ones 16..31 */
static int nib32(const uint8_t *qs, int e) { return e < 16 ? qs[e] & 0xF : qs[e - 16] >> 4; }

/* bit e of the little-endian 32-bit qh */
static int qh_bit(const uint8_t *qh, int e) { return (qh[e / 8] >> (e % 8)) & 1; }

static void test_layout_q4_q5(void **state) {
    (void)state;
    uint64_t s = 11;
    uint8_t blk[24];
    float got[32], want[32];
    for (int trial = 0; trial < 200; trial++) {
        const uint16_t d = pick_f16(&s), m = pick_f16(&s);
        /* Q4_0: d, qs[16]; x = (nibble - 8)·d */
        random_bytes(blk, sizeof blk, &s);
        put16(blk, d);
        widen(RD_DTYPE_Q4_0, blk, got, 32);
        for (int e = 0; e < 32; e++) want[e] = (float)(nib32(blk + 2, e) - 8) * h2f(d);
        assert_bits_equal(got, want, 32, "Q4_0");
        /* Q4_1: d, m, qs[16]; x = nibble·d + m */
        put16(blk + 2, m);
        widen(RD_DTYPE_Q4_1, blk, got, 32);
        for (int e = 0; e < 32; e++) want[e] = (float)nib32(blk + 4, e) * h2f(d) + h2f(m);
        assert_bits_equal(got, want, 32, "Q4_1");
        /* Q5_0: d, qh[4], qs[16]; x = (nibble + 16·bit e of qh - 16)·d */
        random_bytes(blk + 2, 22, &s);
        widen(RD_DTYPE_Q5_0, blk, got, 32);
        for (int e = 0; e < 32; e++)
            want[e] = (float)((nib32(blk + 6, e) | qh_bit(blk + 2, e) << 4) - 16) * h2f(d);
        assert_bits_equal(got, want, 32, "Q5_0");
        /* Q5_1: d, m, qh[4], qs[16]; x = (nibble + 16·bit e of qh)·d + m */
        put16(blk + 2, m);
        widen(RD_DTYPE_Q5_1, blk, got, 32);
        for (int e = 0; e < 32; e++)
            want[e] = (float)(nib32(blk + 8, e) | qh_bit(blk + 4, e) << 4) * h2f(d) + h2f(m);
        assert_bits_equal(got, want, 32, "Q5_1");
    }
}

/* Literal values worked out by hand. */
static void test_layout_literals_32(void **state) {
    (void)state;
    uint8_t blk[24] = {0};
    float y[32];
    put16(blk, 0x3800); /* d = 0.5 */
    blk[2] = 0x3A;      /* Q4_0: element 0 = (10-8)·0.5, element 16 = (3-8)·0.5 */
    widen(RD_DTYPE_Q4_0, blk, y, 32);
    assert_true(y[0] == 1.0f && y[16] == -2.5f && y[1] == -4.0f);
    memset(blk, 0, sizeof blk);
    put16(blk, 0x4000);  /* Q4_1: d = 2 */
    put16(blk + 2, 0xBC00); /* m = -1 */
    blk[4 + 5] = 0xF7;   /* element 5 = 7·2 - 1, element 21 = 15·2 - 1 */
    widen(RD_DTYPE_Q4_1, blk, y, 32);
    assert_true(y[5] == 13.0f && y[21] == 29.0f && y[0] == -1.0f);
    memset(blk, 0, sizeof blk);
    put16(blk, 0x3C00);              /* Q5_0: d = 1 */
    blk[2] = 0x01;                   /* qh bit 0: element 0 gets +16 */
    blk[5] = 0x80;                   /* qh bit 31: element 31 gets +16 */
    blk[6] = 0x21;                   /* element 0: 1 + 16 - 16 = 1; element 16: 2 - 16 */
    blk[6 + 15] = 0xF0;              /* element 31: 15 + 16 - 16 = 15 */
    widen(RD_DTYPE_Q5_0, blk, y, 32);
    assert_true(y[0] == 1.0f && y[16] == -14.0f && y[31] == 15.0f && y[1] == -16.0f);
}

/* ---- layouts: K-quants ------------------------------------------------------------------- */

/* Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin. Element e is in
 * sub-block e/16; its 2 bits are bits 2·((e%128)/32) of qs[32·(e/128) + e%32]. */
static void check_q2_k(uint64_t *s) {
    uint8_t b[84];
    float got[256], want[256];
    random_bytes(b, sizeof b, s);
    const uint16_t d = pick_f16(s), dmin = pick_f16(s);
    put16(b + 80, d);
    put16(b + 82, dmin);
    widen(RD_DTYPE_Q2_K, b, got, 256);
    for (int e = 0; e < 256; e++) {
        const int sc = b[e / 16], q = (b[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        const float dl = h2f(d) * (float)(sc & 0xF), ml = h2f(dmin) * (float)(sc >> 4);
        want[e] = dl * (float)q - ml;
    }
    assert_bits_equal(got, want, 256, "Q2_K");
}

/* Q3_K: hmask[32], qs[64], scales[12], d. The 6-bit scales are packed here from chosen
 * values: low 4 bits of scale k in nibble k/8 of scales[k%8], high 2 bits at bit 2·(k/4)
 * of scales[8 + k%4]; a quant is its 2 bits (as Q2_K) minus 4 unless bit e/32 of
 * hmask[e%32] is set. */
static void check_q3_k(uint64_t *s) {
    uint8_t b[110];
    int scale[16];
    float got[256], want[256];
    random_bytes(b, sizeof b, s);
    memset(b + 96, 0, 12);
    for (int k = 0; k < 16; k++) {
        scale[k] = (int)(rd_splitmix64(s) % 64);
        b[96 + k % 8] |= (uint8_t)((scale[k] & 0xF) << (4 * (k / 8)));
        b[96 + 8 + k % 4] |= (uint8_t)((scale[k] >> 4) << (2 * (k / 4)));
    }
    const uint16_t d = pick_f16(s);
    put16(b + 108, d);
    widen(RD_DTYPE_Q3_K, b, got, 256);
    for (int e = 0; e < 256; e++) {
        const int lo = (b[32 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        const int hi = (b[e % 32] >> (e / 32)) & 1;
        const float dl = h2f(d) * (float)(scale[e / 16] - 32);
        want[e] = dl * (float)(lo - (hi ? 0 : 4));
    }
    assert_bits_equal(got, want, 256, "Q3_K");
}

/* Q4_K / Q5_K: d, dmin, scales[12] (8 × 6-bit scale and min: for j < 4 the low 6 bits of
 * bytes j and j+4; for j ≥ 4 the nibbles of byte j+4 plus the top 2 bits of bytes j-4 and
 * j), [Q5_K: qh[32]], qs[128]. Element e is in sub-block e/32; its nibble is the low
 * (e%64 < 32) or high nibble of qs[32·(e/64) + e%32]; Q5_K's fifth bit is bit e/32 of
 * qh[e%32]. */
static void check_q45_k(rd_dtype t, uint64_t *s) {
    const int five = t == RD_DTYPE_Q5_K;
    uint8_t b[176];
    int ls[8], lm[8];
    float got[256], want[256];
    random_bytes(b, sizeof b, s);
    const uint16_t d = pick_f16(s), dmin = pick_f16(s);
    put16(b, d);
    put16(b + 2, dmin);
    uint8_t *sc = b + 4;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        ls[j] = (int)(rd_splitmix64(s) % 64);
        lm[j] = (int)(rd_splitmix64(s) % 64);
        if (j < 4) {
            sc[j] |= (uint8_t)ls[j];
            sc[j + 4] |= (uint8_t)lm[j];
        } else {
            sc[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            sc[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            sc[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    const uint8_t *qh = b + 16, *qs = five ? b + 48 : b + 16;
    widen(t, b, got, 256);
    for (int e = 0; e < 256; e++) {
        const int byte = qs[32 * (e / 64) + e % 32];
        int q = e % 64 < 32 ? byte & 0xF : byte >> 4;
        if (five) q += ((qh[e % 32] >> (e / 32)) & 1) * 16;
        const float d1 = h2f(d) * (float)ls[e / 32], m1 = h2f(dmin) * (float)lm[e / 32];
        want[e] = d1 * (float)q - m1;
    }
    assert_bits_equal(got, want, 256, five ? "Q5_K" : "Q4_K");
}

/* Q6_K: ql[128], qh[64], int8 scales[16], d. Element e = 128·h + 32·g + l (g = 0..3): low
 * nibble bits in the low (g < 2) or high nibble of ql[64·h + 32·(g%2) + l], high 2 bits at
 * bit 2·g of qh[32·h + l]; quant − 32, scale of sub-block e/16. */
static void check_q6_k(uint64_t *s) {
    uint8_t b[210];
    float got[256], want[256];
    random_bytes(b, sizeof b, s);
    const uint16_t d = pick_f16(s);
    put16(b + 208, d);
    widen(RD_DTYPE_Q6_K, b, got, 256);
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, g = (e % 128) / 32, l = e % 32;
        const int lo = (b[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 0xF;
        const int hi = (b[128 + 32 * h + l] >> (2 * g)) & 3;
        const int8_t sc = (int8_t)b[192 + e / 16];
        want[e] = h2f(d) * (float)sc * (float)((lo | hi << 4) - 32);
    }
    assert_bits_equal(got, want, 256, "Q6_K");
}

static void test_layout_k_quants(void **state) {
    (void)state;
    uint64_t s = 23;
    for (int trial = 0; trial < 100; trial++) {
        check_q2_k(&s);
        check_q3_k(&s);
        check_q45_k(RD_DTYPE_Q4_K, &s);
        check_q45_k(RD_DTYPE_Q5_K, &s);
        check_q6_k(&s);
    }
}

/* Literal K-quant values worked out by hand. */
static void test_layout_literals_k(void **state) {
    (void)state;
    uint8_t b[210];
    float y[256];
    /* Q2_K: d = 1, dmin = 0.5; sub-block 0: scale 3, min 2; qs[0] = 0b11100100 puts
     * 0, 1, 2, 3 in elements 0, 32, 64, 96 (sub-blocks 0, 2, 4, 6). */
    memset(b, 0, sizeof b);
    b[0] = 0x23;
    b[2] = 0x01; /* sub-block 2: scale 1, min 0 */
    b[16] = 0xE4;
    put16(b + 80, 0x3C00);
    put16(b + 82, 0x3800);
    widen(RD_DTYPE_Q2_K, b, y, 256);
    assert_true(y[0] == -1.0f && y[1] == -1.0f && y[32] == 1.0f && y[64] == 0.0f);
    /* Q3_K: d = 0.25; scale 0 = 40 (→ 8), element 0 has bits 3 and no hmask bit: 3 - 4 */
    memset(b, 0, sizeof b);
    b[96] = 40 & 0xF;
    b[104] = 40 >> 4;
    b[32] = 0x03;
    b[0] = 0x02; /* hmask bit 0 of byte 0 → element 0 none; bit 1 → element 32 */
    put16(b + 108, 0x3400);
    widen(RD_DTYPE_Q3_K, b, y, 256);
    assert_true(y[0] == 2.0f * -1.0f);
    assert_true(y[1] == 2.0f * -4.0f);
    /* Q4_K: d = 1, dmin = 0.5, sub-block 0 scale 2 min 3, sub-block 1 scale 5 min 0:
     * qs[0] = 0x21 → element 0 = 2·1 - 1.5, element 32 = 5·2 */
    memset(b, 0, sizeof b);
    put16(b, 0x3C00);
    put16(b + 2, 0x3800);
    b[4] = 2;
    b[8] = 3;
    b[5] = 5;
    b[16] = 0x21;
    widen(RD_DTYPE_Q4_K, b, y, 256);
    assert_true(y[0] == 0.5f && y[32] == 10.0f && y[1] == -1.5f);
    /* Q6_K: d = 0.5, scale 0 = -3: element 0 with ql nibble 1 and qh bits 2 → 33 - 32 = 1 */
    memset(b, 0, sizeof b);
    b[0] = 0x01;
    b[128] = 0x02;
    b[192] = (uint8_t)(int8_t)-3;
    put16(b + 208, 0x3800);
    widen(RD_DTYPE_Q6_K, b, y, 256);
    assert_true(y[0] == -1.5f && y[1] == 0.5f * -3.0f * -32.0f);
}

/* ---- layouts: IQ4_NL, IQ4_XS --------------------------------------------------------------- */

/* llama.cpp's kvalues_iq4nl (ggml-common.h), written out here rather than taken from the
 * code under test. */
static const int KV[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                           1,    13,   25,  38,  53,  69,  89,  113};

/* IQ4_NL: d, qs[16]; element j (< 16) = d·KV[low nibble of qs[j]], element 16 + j =
 * d·KV[high nibble of qs[j]]. IQ4_XS: d, scales_h (u16), scales_l[4], qs[128]; sub-block k
 * (elements 32k .. 32k+31, its nibbles in qs[16k .. 16k+15] as IQ4_NL's) has the 6-bit scale
 * ls = (nibble k%2 of scales_l[k/2]) | (bits 2k, 2k+1 of scales_h) << 4 and
 * x = (d·(ls − 32))·KV[nibble]. Random blocks against that formula. */
static void test_layout_iq4(void **state) {
    (void)state;
    uint64_t s = 31;
    uint8_t b[136];
    float got[256], want[256];
    for (int trial = 0; trial < 200; trial++) {
        random_bytes(b, sizeof b, &s);
        const uint16_t d = pick_f16(&s);
        put16(b, d);
        widen(RD_DTYPE_IQ4_NL, b, got, 32);
        for (int e = 0; e < 32; e++) want[e] = h2f(d) * (float)KV[nib32(b + 2, e)];
        assert_bits_equal(got, want, 32, "IQ4_NL");
        int ls[8];
        uint16_t scales_h = 0;
        for (int k = 0; k < 8; k++) {
            ls[k] = (int)(rd_splitmix64(&s) % 64);
            b[4 + k / 2] = (uint8_t)((b[4 + k / 2] & (0xF0 >> (4 * (k % 2)))) |
                                     (ls[k] & 0xF) << (4 * (k % 2)));
            scales_h = (uint16_t)(scales_h | (ls[k] >> 4) << (2 * k));
        }
        put16(b + 2, scales_h);
        widen(RD_DTYPE_IQ4_XS, b, got, 256);
        for (int e = 0; e < 256; e++) {
            const float dl = h2f(d) * (float)(ls[e / 32] - 32);
            want[e] = dl * (float)KV[nib32(b + 8 + 16 * (e / 32), e % 32)];
        }
        assert_bits_equal(got, want, 256, "IQ4_XS");
    }
}

/* Whole blocks whose values were worked out by hand. */
static void test_layout_literals_iq4(void **state) {
    (void)state;
    uint8_t b[136];
    float y[256];
    /* IQ4_NL, d = 0.5: qs[j] = j | (15 − j) << 4, so the first 16 values climb the table
     * (its negative half first) and the next 16 descend it */
    put16(b, 0x3800);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    static const float nl[32] = {
        -63.5f, -52.0f, -41.5f, -32.5f, -24.5f, -17.5f, -11.0f, -5.0f,
        0.5f,   6.5f,   12.5f,  19.0f,  26.5f,  34.5f,  44.5f,  56.5f,
        56.5f,  44.5f,  34.5f,  26.5f,  19.0f,  12.5f,  6.5f,   0.5f,
        -5.0f,  -11.0f, -17.5f, -24.5f, -32.5f, -41.5f, -52.0f, -63.5f};
    widen(RD_DTYPE_IQ4_NL, b, y, 32);
    assert_memory_equal(y, nl, sizeof nl);
    /* a negative d = -2 flips the signs: qs[0] = 0x70 → element 0 = -2·-127, 16 = -2·-10;
     * qs[1] = 0xE1 (from above) → element 1 = -2·-104, 17 = -2·89 */
    put16(b, 0xC000);
    b[2] = 0x70;
    widen(RD_DTYPE_IQ4_NL, b, y, 32);
    assert_true(y[0] == 254.0f && y[16] == 20.0f && y[1] == 208.0f && y[17] == -178.0f);

    /* IQ4_XS, d = 0.25, sub-block scales ls = 0, 63, 32, 33, 17, 46, 1, 48 (ls − 32 = -32,
     * 31, 0, 1, -15, 14, -31, 16; dl = -8, 7.75, 0, 0.25, -3.75, 3.5, -7.75, 4).
     * scales_l: low nibbles 0, F, 0, 1, 1, E, 1, 0 → F0 10 E1 01; scales_h: high 2 bits
     * 0, 3, 2, 2, 1, 2, 0, 3 at bits 0, 2, .., 14 → 0b11 00 10 01 10 10 11 00 = 0xC9AC. */
    memset(b, 0, sizeof b);
    put16(b, 0x3400);
    put16(b + 2, 0xC9AC);
    b[4] = 0xF0;
    b[5] = 0x10;
    b[6] = 0xE1;
    b[7] = 0x01;
    memset(b + 8, 0x88, 128); /* level 8 = 1: every other element is its sub-block's dl */
    for (int k = 0; k < 8; k++) b[8 + 16 * k] = 0xF0; /* element 32k: -127, 32k + 16: 113 */
    b[8 + 16 + 3] = 0x5A; /* sub-block 1: element 35 → level 10 = 25, element 51 → 5 = -35 */
    static const float first[8] = {1016.0f, -984.25f, 0.0f, -31.75f,
                                   476.25f, -444.5f, 984.25f, -508.0f};
    static const float mid[8] = {-904.0f, 875.75f, 0.0f, 28.25f,
                                 -423.75f, 395.5f, -875.75f, 452.0f};
    static const float rest[8] = {-8.0f, 7.75f, 0.0f, 0.25f, -3.75f, 3.5f, -7.75f, 4.0f};
    widen(RD_DTYPE_IQ4_XS, b, y, 256);
    for (int e = 0; e < 256; e++) {
        const int k = e / 32, j = e % 32;
        float want = j == 0 ? first[k] : j == 16 ? mid[k] : rest[k];
        if (e == 35) want = 193.75f;
        if (e == 51) want = -271.25f;
        if (y[e] != want) fail_msg("IQ4_XS element %d: %g, expected %g", e, (double)y[e], (double)want);
    }
}

/* ---- round trips ------------------------------------------------------------------------- */

/* Relative RMS error bound per type on N(0,1) data; measured (seed 5): Q4_0 0.086, Q4_1
 * 0.079, Q5_0 0.043, Q5_1 0.037, Q2_K 0.32, Q3_K 0.15, Q4_K 0.079, Q5_K 0.038, Q6_K 0.019,
 * IQ4_NL 0.076, IQ4_XS 0.076. */
static double rms_bound(rd_dtype t) {
    switch (t) {
    case RD_DTYPE_Q4_0: return 0.14;
    case RD_DTYPE_Q4_1: return 0.12;
    case RD_DTYPE_Q5_0: return 0.07;
    case RD_DTYPE_Q5_1: return 0.06;
    case RD_DTYPE_Q2_K: return 0.45;
    case RD_DTYPE_Q3_K: return 0.25;
    case RD_DTYPE_Q4_K: return 0.12;
    case RD_DTYPE_Q5_K: return 0.06;
    case RD_DTYPE_Q6_K: return 0.04;
    case RD_DTYPE_IQ4_NL: return 0.12;
    case RD_DTYPE_IQ4_XS: return 0.12;
    default: return 0.0;
    }
}

static void test_roundtrip(void **state) {
    (void)state;
    enum { N = 8192 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *q = malloc(N * 2);
    assert_true(x && y && q);
    uint64_t s = 5;
    for (int i = 0; i < N; i++) x[i] = gaussian(&s) * (i % 512 < 256 ? 1.0f : 0.01f);
    for (size_t k = 0; k < N_QTYPES; k++) {
        const rd_dtype_info *info = rd_dtype_info_of(QTYPES[k]);
        info->from_f32(x, q, N);
        info->to_f32(q, y, N);
        double err = 0.0, ref = 0.0;
        for (int i = 0; i < N; i++) {
            err += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            ref += (double)x[i] * x[i];
        }
        const double rel = sqrt(err / ref);
        print_message("%s: relative RMS error %.4f (bound %.2f)\n", info->name, rel,
                      rms_bound(QTYPES[k]));
        if (!(rel < rms_bound(QTYPES[k]))) fail_msg("%s: relative RMS error %g", info->name, rel);
        /* zeros stay exactly zero */
        float z[256] = {0}, zy[256];
        info->from_f32(z, q, 256);
        info->to_f32(q, zy, 256);
        for (int i = 0; i < 256; i++) assert_true(zy[i] == 0.0f);
        /* non-finite input: no undefined behaviour, finite elsewhere is not required */
        float bad[256];
        memcpy(bad, x, sizeof bad);
        bad[3] = INFINITY;
        bad[40] = NAN;
        bad[100] = -INFINITY;
        info->from_f32(bad, q, 256);
        info->to_f32(q, zy, 256);
    }
    free(x);
    free(y);
    free(q);
}

/* The 32-element quantisers follow quantize_row_*_ref: on a block whose values lie on the
 * grid they reproduce it exactly. */
static void test_quantize_exact_grid(void **state) {
    (void)state;
    float x[32], y[32];
    uint8_t q[24];
    for (int j = 0; j < 32; j++) x[j] = (float)(j % 16 - 8) * 0.25f; /* -8..7 × 0.25 */
    rd_dtype_info_of(RD_DTYPE_Q4_0)->from_f32(x, q, 32);
    rd_dtype_info_of(RD_DTYPE_Q4_0)->to_f32(q, y, 32);
    assert_memory_equal(x, y, sizeof x);
    assert_int_equal(q[0] | q[1] << 8, 0x3400); /* d = max / -8 = 0.25 */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) * 0.5f; /* -16..15 × 0.5 */
    rd_dtype_info_of(RD_DTYPE_Q5_0)->from_f32(x, q, 32);
    rd_dtype_info_of(RD_DTYPE_Q5_0)->to_f32(q, y, 32);
    assert_memory_equal(x, y, sizeof x);
    for (int j = 0; j < 32; j++) x[j] = 1.0f + (float)(j % 16); /* 1..16: d = 1, m = 1 */
    rd_dtype_info_of(RD_DTYPE_Q4_1)->from_f32(x, q, 32);
    rd_dtype_info_of(RD_DTYPE_Q4_1)->to_f32(q, y, 32);
    assert_memory_equal(x, y, sizeof x);
    for (int j = 0; j < 32; j++) x[j] = (float)j - 3.0f; /* d = 1, m = -3 */
    rd_dtype_info_of(RD_DTYPE_Q5_1)->from_f32(x, q, 32);
    rd_dtype_info_of(RD_DTYPE_Q5_1)->to_f32(q, y, 32);
    assert_memory_equal(x, y, sizeof x);
}

/* IQ4_NL / IQ4_XS (quantize_iq4_nl/xs's search): values on the grid come back exactly.
 * IQ4_XS: the sub-block scales of test_layout_literals_iq4 (d = 0.25, ls − 32 = -32, 31, 0,
 * 1, -15, 14, -31, 16), so the packed scale bytes are the ones worked out there. */
static void test_quantize_exact_grid_iq4(void **state) {
    (void)state;
    float x[256], y[256];
    uint8_t q[136];
    for (int j = 0; j < 32; j++) x[j] = 0.5f * (float)KV[(7 * j + 3 + j / 16) % 16];
    rd_dtype_info_of(RD_DTYPE_IQ4_NL)->from_f32(x, q, 32);
    rd_dtype_info_of(RD_DTYPE_IQ4_NL)->to_f32(q, y, 32);
    assert_memory_equal(x, y, 32 * sizeof *x);
    assert_int_equal(q[0] | q[1] << 8, 0x3800); /* d = 0.5 */
    assert_int_equal(q[2], 0x43); /* element 0: level 3; element 16: (7·16 + 3 + 1) mod 16 = 4 */
    static const int l[8] = {-32, 31, 0, 1, -15, 14, -31, 16};
    for (int e = 0; e < 256; e++) x[e] = 0.25f * (float)(l[e / 32] * KV[(7 * e + e / 32) % 16]);
    rd_dtype_info_of(RD_DTYPE_IQ4_XS)->from_f32(x, q, 256);
    rd_dtype_info_of(RD_DTYPE_IQ4_XS)->to_f32(q, y, 256);
    assert_memory_equal(x, y, sizeof x);
    static const uint8_t head[8] = {0x00, 0x34, 0xAC, 0xC9, 0xF0, 0x10, 0xE1, 0x01};
    assert_memory_equal(q, head, sizeof head);
}

/* ---- matmul ------------------------------------------------------------------------------ */

static void check_matmul(rd_dtype t, int n, rd_pool *pool, uint64_t seed) {
    const rd_dtype_info *info = rd_dtype_info_of(t);
    const int64_t rows = 40, cols = 512;
    const size_t row_bytes = (size_t)cols / info->block_elems * info->block_bytes;
    float *w = malloc((size_t)(rows * cols) * sizeof *w), *x = malloc((size_t)n * cols * 4);
    uint8_t *data = malloc((size_t)rows * row_bytes);
    float *out = malloc((size_t)n * rows * 4), *naive = malloc((size_t)n * rows * 4);
    float *wide = malloc((size_t)(rows * cols) * sizeof *wide);
    assert_true(w && x && data && out && naive && wide);
    for (int64_t i = 0; i < rows * cols; i++) w[i] = gaussian(&seed) * 0.05f;
    for (int64_t i = 0; i < n * cols; i++) x[i] = gaussian(&seed);
    info->from_f32(w, data, (size_t)(rows * cols));
    info->to_f32(data, wide, (size_t)(rows * cols));
    rd_matrix m;
    rd_error err = {{0}};
    assert_int_equal(rd_matrix_init(&m, t, data, rows, cols, &err), 0);
    float *scratch = malloc(rd_matmul_scratch_floats(&m, n) * sizeof *scratch + 4);
    assert_non_null(scratch);
    rd_matmul(out, x, &m, n, scratch, pool);
    rd_matmul_naive(naive, x, &m, n);
    for (int i = 0; i < n; i++)
        for (int64_t r = 0; r < rows; r++) {
            double mag = 0.0;
            for (int64_t c = 0; c < cols; c++) mag += fabs((double)wide[r * cols + c] * x[i * cols + c]);
            const double diff = fabs((double)out[i * rows + r] - naive[i * rows + r]);
            if (!(diff <= 1e-5 * mag + 1e-30))
                fail_msg("%s n=%d row %lld: %g vs naive %g", info->name, n, (long long)r,
                         (double)out[i * rows + r], (double)naive[i * rows + r]);
        }
    free(w);
    free(x);
    free(data);
    free(out);
    free(naive);
    free(wide);
    free(scratch);
}

static void test_matmul(void **state) {
    (void)state;
    rd_error err = {{0}};
    rd_pool *pool = rd_pool_new(2, &err);
    assert_non_null(pool);
    for (size_t k = 0; k < N_QTYPES; k++) {
        check_matmul(QTYPES[k], 1, pool, 100 + k);
        check_matmul(QTYPES[k], 9, pool, 200 + k);
        check_matmul(QTYPES[k], 1, NULL, 300 + k);
    }
    rd_pool_free(pool);
}

/* ---- GGUF round trip and forward ------------------------------------------------------------ */

static rd_config k_config(void) {
    rd_config c = tiny_config();
    c.dim = 256;
    c.hidden_dim = 512;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 64;
    c.seq_len = 32;
    return c;
}

/* Logits (T, vocab) of `tokens` run by the model in path: all at once (prefill) when
 * step == 0, one token at a time (decode) otherwise. */
static float *run_logits(const char *path, const int *tokens, int T, int step) {
    rd_error err = {{0}};
    rd_model *m = rd_model_load(path, NULL, &err);
    if (!m) fail_msg("%s", err.msg);
    const int V = rd_model_config(m)->vocab_size;
    rd_ctx *c = rd_ctx_new(m, 1, T, &err);
    if (!c) fail_msg("%s", err.msg);
    float *logits = malloc((size_t)T * V * sizeof *logits);
    assert_non_null(logits);
    if (!step) {
        if (rd_forward(c, NULL, tokens, 1, T, RD_LOGITS_ALL, logits, &err)) fail_msg("%s", err.msg);
    } else {
        for (int t = 0; t < T; t++)
            if (rd_forward(c, NULL, tokens + t, 1, 1, RD_LOGITS_LAST, logits + (size_t)t * V, &err))
                fail_msg("%s", err.msg);
    }
    rd_ctx_free(c);
    rd_model_free(m);
    return logits;
}

static void test_gguf_forward(void **state) {
    (void)state;
    char dir[512], qpath[600], fpath[600];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    snprintf(qpath, sizeof qpath, "%s/q.gguf", dir);
    snprintf(fpath, sizeof fpath, "%s/f32.gguf", dir);
    const rd_config cfg = k_config();
    rd_model_file orig = {0};
    assert_int_equal(tiny_model_init(&orig, &cfg, 0, 99), 0);
    enum { T = 12 };
    int tokens[T];
    for (int t = 0; t < T; t++) tokens[t] = (t * 37 + 5) % cfg.vocab_size;
    for (size_t k = 0; k < N_QTYPES; k++) {
        rd_error err = {{0}};
        const rd_dtype t = QTYPES[k];
        if (rd_gguf_write(qpath, &orig, t, &err)) fail_msg("write %d: %s", (int)t, err.msg);
        rd_model_file q = {0};
        if (rd_gguf_load(qpath, &q, &err)) fail_msg("load: %s", err.msg);
        assert_int_equal(q.w.layers[1].w2.type, t);
        assert_int_equal(q.w.classifier.type, t);
        /* the stored blocks are the quantiser's output for the original rows */
        const rd_matrix *w1 = &q.w.layers[0].w1;
        uint8_t *blk = malloc(w1->row_bytes);
        float *row = malloc((size_t)w1->cols * sizeof *row);
        assert_true(blk && row);
        rd_matrix_row_f32(&orig.w.layers[0].w1, 3, row);
        rd_dtype_info_of(t)->from_f32(row, blk, (size_t)w1->cols);
        assert_memory_equal(blk, (const char *)w1->data + 3 * w1->row_bytes, w1->row_bytes);
        free(blk);
        free(row);
        /* the same model in F32: every matrix widened by to_f32 */
        if (rd_gguf_write(fpath, &q, RD_DTYPE_F32, &err)) fail_msg("write f32: %s", err.msg);
        rd_model_file_release(&q);
        for (int step = 0; step <= 1; step++) {
            float *lq = run_logits(qpath, tokens, T, step), *lf = run_logits(fpath, tokens, T, step);
            if (memcmp(lq, lf, (size_t)T * cfg.vocab_size * sizeof *lq) != 0)
                fail_msg("%s (%s): logits differ from the dequantised F32 model",
                         rd_dtype_info_of(t)->name, step ? "decode" : "prefill");
            for (int i = 0; i < T * cfg.vocab_size; i++) assert_true(isfinite(lq[i]));
            free(lq);
            free(lf);
        }
    }
    rd_model_file_release(&orig);
    tiny_rmdir(dir);
}

/* A K-quant needs whole 256-element blocks: the writer refuses a dim-64 model. */
static void test_gguf_refuses_partial_blocks(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/q.gguf", dir);
    const rd_config cfg = tiny_config();
    rd_model_file orig = {0};
    assert_int_equal(tiny_model_init(&orig, &cfg, 0, 1), 0);
    rd_error err = {{0}};
    assert_int_equal(rd_gguf_write(path, &orig, RD_DTYPE_Q4_K, &err), -1);
    assert_non_null(strstr(err.msg, "Q4_K"));
    rd_model_file_release(&orig);
    tiny_rmdir(dir);
}

/* rd_model_file_random in a quantised type draws the same numbers as in F32 (then stores them
 * quantised): every matrix has the type, its rows dequantise to the F32 model's within Q8_0's
 * step, and the norms are the same F32 numbers. A row whose width is not whole blocks is
 * refused. */
static void test_random_model_types(void **state) {
    (void)state;
    rd_config cfg = {.dim = 64, .hidden_dim = 128, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                     .vocab_size = 96, .seq_len = 32, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    rd_model_file f32, q8;
    rd_error err = {0};
    assert_int_equal(rd_model_file_random(&f32, &cfg, 0, 5, RD_DTYPE_F32, &err), 0);
    assert_int_equal(rd_model_file_random(&q8, &cfg, 0, 5, RD_DTYPE_Q8_0, &err), 0);
    float a[128], b[128];
    const rd_matrix *pairs[][2] = {{&f32.w.tok_embeddings, &q8.w.tok_embeddings},
                                   {&f32.w.layers[1].wk, &q8.w.layers[1].wk},
                                   {&f32.w.layers[1].w2, &q8.w.layers[1].w2},
                                   {&f32.w.classifier, &q8.w.classifier}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        assert_int_equal(pairs[i][0]->type, RD_DTYPE_F32);
        assert_int_equal(pairs[i][1]->type, RD_DTYPE_Q8_0);
        for (int64_t r = 0; r < pairs[i][0]->rows; r += 7) {
            rd_matrix_row_f32(pairs[i][0], (int)r, a);
            rd_matrix_row_f32(pairs[i][1], (int)r, b);
            float amax = 0;
            for (int64_t c = 0; c < pairs[i][0]->cols; c++) amax = fmaxf(amax, fabsf(a[c]));
            for (int64_t c = 0; c < pairs[i][0]->cols; c++)
                assert_true(fabsf(a[c] - b[c]) <= amax / 127.0f * 0.6f); /* half a step, f16 scale */
        }
    }
    assert_memory_equal(f32.w.layers[1].ffn_norm, q8.w.layers[1].ffn_norm, 64 * sizeof(float));
    assert_memory_equal(f32.w.final_norm, q8.w.final_norm, 64 * sizeof(float));
    rd_model_file_release(&f32);
    rd_model_file_release(&q8);
    cfg.dim = 48; /* 48 is not a whole number of Q4_K's 256-wide blocks */
    cfg.n_heads = 4;
    assert_int_equal(rd_model_file_random(&q8, &cfg, 1, 5, RD_DTYPE_Q4_K, &err), -1);
    assert_non_null(strstr(err.msg, "not a whole number of Q4_K blocks"));
}

/* The layers whose attn_v and ffn_down llama.cpp's Q4_K_M stores in Q6_K (use_more_bits),
 * written out: for 8 layers 0, 3, 6, 7; for Llama-2-7B's 32, those of its published
 * Q4_K_M files. */
static int more_bits_8(int l) { return l == 0 || l == 3 || l == 6 || l == 7; }
static int more_bits_32(int l) {
    static const int L[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    for (size_t i = 0; i < sizeof L / sizeof *L; i++)
        if (L[i] == l) return 1;
    return 0;
}

static void check_mix_types(const rd_model_file *f, int tied) {
    const rd_weights *w = &f->w;
    assert_int_equal(w->classifier.type, RD_DTYPE_Q6_K);
    assert_int_equal(w->tok_embeddings.type, tied ? RD_DTYPE_Q6_K : RD_DTYPE_Q4_K);
    for (int l = 0; l < f->cfg.n_layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        const rd_dtype more = more_bits_8(l) ? RD_DTYPE_Q6_K : RD_DTYPE_Q4_K;
        assert_int_equal(L->wv.type, more);
        assert_int_equal(L->w2.type, more);
        assert_int_equal(L->wq.type, RD_DTYPE_Q4_K);
        assert_int_equal(L->wk.type, RD_DTYPE_Q4_K);
        assert_int_equal(L->wo.type, RD_DTYPE_Q4_K);
        assert_int_equal(L->w1.type, RD_DTYPE_Q4_K);
        assert_int_equal(L->w3.type, RD_DTYPE_Q4_K);
    }
}

/* `make-model --type Q4_K_M`: llama.cpp's per-matrix types, the same draws as one type,
 * a file that keeps the types and runs. */
static void test_random_model_q4_k_m(void **state) {
    (void)state;
    rd_config cfg = {.dim = 256, .hidden_dim = 512, .n_layers = 8, .n_heads = 4, .n_kv_heads = 2,
                     .vocab_size = 64, .seq_len = 32, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    rd_error err = {{0}};
    rd_type_mix mix;
    assert_int_equal(rd_type_mix_from_name("Q4_K_M", &mix), 0);
    assert_int_equal(mix, RD_MIX_Q4_K_M);
    assert_string_equal(rd_type_mix_name(mix), "Q4_K_M");
    assert_int_equal(rd_type_mix_from_name("Q4_K", &mix), -1);
    rd_model_file m, one, tied;
    assert_int_equal(rd_model_file_random_mix(&m, &cfg, 0, 7, RD_MIX_Q4_K_M, &err), 0);
    check_mix_types(&m, 0);
    assert_int_equal(rd_model_file_random_mix(&tied, &cfg, 1, 7, RD_MIX_Q4_K_M, &err), 0);
    check_mix_types(&tied, 1);
    rd_model_file_release(&tied);
    /* the Q4_K matrices are those of the one-type model of the same seed */
    assert_int_equal(rd_model_file_random(&one, &cfg, 0, 7, RD_DTYPE_Q4_K, &err), 0);
    const rd_matrix *a = &m.w.layers[5].wq, *b = &one.w.layers[5].wq;
    assert_memory_equal(a->data, b->data, (size_t)a->rows * a->row_bytes);
    a = &m.w.layers[1].w2, b = &one.w.layers[1].w2;
    assert_memory_equal(a->data, b->data, (size_t)a->rows * a->row_bytes);
    rd_model_file_release(&one);
    /* Llama-2-7B's 32 layers */
    rd_config c7 = cfg;
    c7.dim = 4096, c7.hidden_dim = 11008, c7.n_layers = 32;
    for (int l = 0; l < 32; l++) {
        const rd_dtype more = more_bits_32(l) ? RD_DTYPE_Q6_K : RD_DTYPE_Q4_K;
        assert_int_equal(rd_type_mix_pick(RD_MIX_Q4_K_M, &c7, 0, RD_TENSOR_WV, l), more);
        assert_int_equal(rd_type_mix_pick(RD_MIX_Q4_K_M, &c7, 0, RD_TENSOR_W2, l), more);
        assert_int_equal(rd_type_mix_pick(RD_MIX_Q4_K_M, &c7, 0, RD_TENSOR_W3, l), RD_DTYPE_Q4_K);
    }
    /* rows that are not whole 256-blocks fall back as llama.cpp's do */
    rd_config c64 = cfg;
    c64.dim = 64, c64.hidden_dim = 96, c64.n_heads = 4;
    assert_int_equal(rd_type_mix_pick(RD_MIX_Q4_K_M, &c64, 0, RD_TENSOR_CLASSIFIER, 0), RD_DTYPE_Q8_0);
    assert_int_equal(rd_type_mix_pick(RD_MIX_Q4_K_M, &c64, 0, RD_TENSOR_WQ, 1), RD_DTYPE_Q5_0);
    assert_int_equal(rd_type_mix_pick(RD_MIX_Q4_K_M, &c64, 0, RD_TENSOR_W2, 0), RD_DTYPE_Q8_0);
    assert_int_equal(rd_type_mix_pick(RD_MIX_Q4_K_M, &c64, 0, RD_TENSOR_W2, 1), RD_DTYPE_Q5_0);
    c64.dim = 48, c64.n_heads = 3; /* not whole 32-blocks either */
    assert_int_equal(rd_type_mix_pick(RD_MIX_Q4_K_M, &c64, 0, RD_TENSOR_WK, 1), RD_DTYPE_F16);
    /* the GGUF file keeps every type, loads and runs */
    char dir[512], path[600];
    assert_int_equal(tiny_tempdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/q4km.gguf", dir);
    if (rd_gguf_write(path, &m, RD_DTYPE_COUNT, &err)) fail_msg("write: %s", err.msg);
    rd_model_file_release(&m);
    rd_model_file back = {0};
    if (rd_gguf_load(path, &back, &err)) fail_msg("load: %s", err.msg);
    check_mix_types(&back, 0);
    rd_model_file_release(&back);
    enum { T = 6 };
    const int tokens[T] = {1, 9, 33, 2, 60, 17};
    float *l = run_logits(path, tokens, T, 1);
    for (int i = 0; i < T * cfg.vocab_size; i++) assert_true(isfinite(l[i]));
    free(l);
    tiny_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_q4_q5),
        cmocka_unit_test(test_layout_literals_32),
        cmocka_unit_test(test_layout_k_quants),
        cmocka_unit_test(test_layout_literals_k),
        cmocka_unit_test(test_layout_iq4),
        cmocka_unit_test(test_layout_literals_iq4),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_quantize_exact_grid),
        cmocka_unit_test(test_quantize_exact_grid_iq4),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_gguf_forward),
        cmocka_unit_test(test_gguf_refuses_partial_blocks),
        cmocka_unit_test(test_random_model_types),
        cmocka_unit_test(test_random_model_q4_k_m),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
