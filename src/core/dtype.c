/* Element types of frozen weights: the type table and the conversions. */
#include "redit/dtype.h"

#include "quants.h"

#include <math.h>
#include <string.h>

float rd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t rd_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) /* inf / nan (keep a quiet nan) */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u); /* overflow → inf */
    if (e <= 0) {                                    /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++; /* may carry into exp: ok */
    return (uint16_t)half;
}

float rd_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void f32_to_f32(const void *src, float *dst, size_t n) { memcpy(dst, src, n * sizeof(float)); }

static void f16_to_f32(const void *src, float *dst, size_t n) {
    const uint16_t *s = src;
    for (size_t i = 0; i < n; i++) dst[i] = rd_f16_to_f32(s[i]);
}

static void bf16_to_f32(const void *src, float *dst, size_t n) {
    const uint16_t *s = src;
    for (size_t i = 0; i < n; i++) dst[i] = rd_bf16_to_f32(s[i]);
}

static void f32_from_f32(const float *src, void *dst, size_t n) { memcpy(dst, src, n * sizeof(float)); }

static void f16_from_f32(const float *src, void *dst, size_t n) {
    uint16_t *d = dst;
    for (size_t i = 0; i < n; i++) d[i] = rd_f32_to_f16(src[i]);
}

static void bf16_from_f32(const float *src, void *dst, size_t n) {
    uint16_t *d = dst;
    for (size_t i = 0; i < n; i++) d[i] = rd_f32_to_bf16(src[i]);
}

/* Q8_0: per block of 32, uint16 f16 scale d then 32 int8 q; x = d·q. */
#define Q8_0_BLOCK 32
#define Q8_0_BYTES (2 + Q8_0_BLOCK)

static void q8_0_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += Q8_0_BLOCK, b += Q8_0_BYTES) {
        uint16_t dh;
        memcpy(&dh, b, 2);
        float d = rd_f16_to_f32(dh);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < Q8_0_BLOCK; j++) dst[i + j] = d * (float)q[j];
    }
}

/* roundf(v) as int8, as quantize_row_q8_0_ref does for finite v (|v| ≤ 127 there); NaN
 * (from an inf or NaN weight) gives 0 and out-of-range values clamp, instead of the
 * undefined float → int8 conversion. */
static int8_t q8_round(float v) {
    if (isnan(v)) return 0;
    float r = roundf(v);
    if (r > 127.0f) return 127;
    if (r < -128.0f) return -128;
    return (int8_t)r;
}

static void q8_0_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    for (size_t i = 0; i < n; i += Q8_0_BLOCK, b += Q8_0_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < Q8_0_BLOCK; j++) amax = fmaxf(amax, fabsf(src[i + j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = rd_f32_to_f16(d);
        memcpy(b, &dh, 2);
        int8_t *q = (int8_t *)(b + 2);
        for (int j = 0; j < Q8_0_BLOCK; j++) q[j] = q8_round(src[i + j] * id);
    }
}

static const rd_dtype_info TYPES[RD_DTYPE_COUNT] = {
    [RD_DTYPE_F32] = {"F32", 1, 4, f32_to_f32, f32_from_f32, {-1, -1}},
    [RD_DTYPE_F16] = {"F16", 1, 2, f16_to_f32, f16_from_f32, {-1, -1}},
    [RD_DTYPE_BF16] = {"BF16", 1, 2, bf16_to_f32, bf16_from_f32, {-1, -1}},
    [RD_DTYPE_Q8_0] = {"Q8_0", Q8_0_BLOCK, Q8_0_BYTES, q8_0_to_f32, q8_0_from_f32, {0, -1}},
    [RD_DTYPE_Q4_0] = {"Q4_0", RD_QK, RD_Q4_0_BYTES, rd_q4_0_to_f32, rd_q4_0_from_f32, {0, -1}},
    [RD_DTYPE_Q4_1] = {"Q4_1", RD_QK, RD_Q4_1_BYTES, rd_q4_1_to_f32, rd_q4_1_from_f32, {0, 2}},
    [RD_DTYPE_Q5_0] = {"Q5_0", RD_QK, RD_Q5_0_BYTES, rd_q5_0_to_f32, rd_q5_0_from_f32, {0, -1}},
    [RD_DTYPE_Q5_1] = {"Q5_1", RD_QK, RD_Q5_1_BYTES, rd_q5_1_to_f32, rd_q5_1_from_f32, {0, 2}},
    [RD_DTYPE_Q2_K] = {"Q2_K", RD_QK_K, RD_Q2_K_BYTES, rd_q2_k_to_f32, rd_q2_k_from_f32, {80, 82}},
    [RD_DTYPE_Q3_K] = {"Q3_K", RD_QK_K, RD_Q3_K_BYTES, rd_q3_k_to_f32, rd_q3_k_from_f32, {108, -1}},
    [RD_DTYPE_Q4_K] = {"Q4_K", RD_QK_K, RD_Q4_K_BYTES, rd_q4_k_to_f32, rd_q4_k_from_f32, {0, 2}},
    [RD_DTYPE_Q5_K] = {"Q5_K", RD_QK_K, RD_Q5_K_BYTES, rd_q5_k_to_f32, rd_q5_k_from_f32, {0, 2}},
    [RD_DTYPE_Q6_K] = {"Q6_K", RD_QK_K, RD_Q6_K_BYTES, rd_q6_k_to_f32, rd_q6_k_from_f32, {208, -1}},
    [RD_DTYPE_IQ4_NL] = {"IQ4_NL", RD_QK, RD_IQ4_NL_BYTES, rd_iq4_nl_to_f32, rd_iq4_nl_from_f32, {0, -1}},
    [RD_DTYPE_IQ4_XS] = {"IQ4_XS", RD_QK_K, RD_IQ4_XS_BYTES, rd_iq4_xs_to_f32, rd_iq4_xs_from_f32, {0, -1}},
};

const rd_dtype_info *rd_dtype_info_of(rd_dtype t) {
    if ((unsigned)t >= RD_DTYPE_COUNT) return NULL;
    return &TYPES[t];
}

int rd_dtype_from_name(const char *name, rd_dtype *out) {
    for (int t = 0; t < RD_DTYPE_COUNT; t++) {
        if (strcmp(TYPES[t].name, name) == 0) {
            *out = (rd_dtype)t;
            return 0;
        }
    }
    return -1;
}

int rd_dtype_bytes(rd_dtype t, uint64_t n, uint64_t *bytes) {
    const rd_dtype_info *info = rd_dtype_info_of(t);
    if (!info || n % info->block_elems) return -1;
    uint64_t blocks = n / info->block_elems;
    if (blocks > UINT64_MAX / info->block_bytes) return -1;
    *bytes = blocks * info->block_bytes;
    return 0;
}

/* Whether any of the n 16- or 32-bit words at p (unaligned) has all bits of mask set: the
 * exponent of an f16 (0x7c00), bf16 (0x7f80) or f32 (0x7f800000) that is NaN or Inf. A
 * branch-free reduction per chunk, which the compiler vectorises. */
static int any_all_ones16(const uint8_t *p, size_t n, uint16_t mask) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        bad |= (h & mask) == mask;
    }
    return bad;
}

static int any_all_ones32(const uint8_t *p, size_t n, uint32_t mask) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, p + 4 * i, 4);
        bad |= (x & mask) == mask;
    }
    return bad;
}

static int f16_bits_nonfinite(const uint8_t *p) { return (p[1] & 0x7c) == 0x7c; }

int64_t rd_dtype_find_nonfinite(rd_dtype t, const void *src, uint64_t n) {
    const rd_dtype_info *info = rd_dtype_info_of(t);
    if (!info || n == 0) return -1;
    const uint8_t *p = src;
    if (info->block_elems == 1) { /* chunks of 4096: a fast test, then the exact place */
        const int wide = t == RD_DTYPE_F32;
        const uint32_t mask = t == RD_DTYPE_F32 ? 0x7f800000u : t == RD_DTYPE_F16 ? 0x7c00u : 0x7f80u;
        for (uint64_t i = 0; i < n; i += 4096) {
            const size_t len = (size_t)(n - i < 4096 ? n - i : 4096);
            const uint8_t *c = p + i * info->block_bytes;
            if (!(wide ? any_all_ones32(c, len, mask) : any_all_ones16(c, len, (uint16_t)mask)))
                continue;
            for (size_t j = 0; j < len; j++)
                if (wide ? any_all_ones32(c + 4 * j, 1, mask) : any_all_ones16(c + 2 * j, 1, (uint16_t)mask))
                    return (int64_t)(i + j);
        }
        return -1;
    }
    const uint64_t blocks = n / info->block_elems;
    for (uint64_t b = 0; b < blocks; b++, p += info->block_bytes)
        for (int k = 0; k < 2; k++)
            if (info->scale_at[k] >= 0 && f16_bits_nonfinite(p + info->scale_at[k]))
                return (int64_t)(b * info->block_elems);
    return -1;
}
