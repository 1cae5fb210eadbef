/* llama.cpp block quantisations: Q4_0, Q4_1, Q5_0, Q5_1, the K-quants Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K and the non-linear IQ4_NL, IQ4_XS. See quants.h. Blocks are read and written byte by byte (little-endian), so
 * nothing here depends on the alignment of src or dst. */
#include "quants.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "redit/dtype.h"

/* ---- helpers ------------------------------------------------------------------------ */

static float f16_at(const uint8_t *p) { return rd_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static void put_f16(uint8_t *p, float f) {
    uint16_t h = rd_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* (int)v truncated toward zero as C's cast does, but defined for every float: NaN gives 0
 * and values beyond ±2^30 saturate (llama.cpp's casts are undefined there). */
static int trunc_int(float v) {
    if (isnan(v)) return 0;
    if (v > 1073741824.0f) return 1 << 30;
    if (v < -1073741824.0f) return -(1 << 30);
    return (int)v;
}

/* Round to nearest, ties to even (llama.cpp's nearest_int), defined for every float. */
static int nearest_int(float v) {
    if (isnan(v)) return 0;
    if (v > 4194303.0f) return 4194303;
    if (v < -4194303.0f) return -4194303;
    return (int)rintf(v);
}

/* ---- 32-element blocks ---------------------------------------------------------------- */

/* Largest-magnitude value of x[0..n) with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    *mn = 3.402823466e+38f;
    *mx = -3.402823466e+38f;
    for (int j = 0; j < n; j++) {
        if (x[j] < *mn) *mn = x[j];
        if (x[j] > *mx) *mx = x[j];
    }
}

void rd_q4_0_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += RD_QK, b += RD_Q4_0_BYTES, dst += RD_QK) {
        const float d = f16_at(b);
        for (int j = 0; j < RD_QK / 2; j++) {
            const int x0 = (b[2 + j] & 0x0F) - 8, x1 = (b[2 + j] >> 4) - 8;
            dst[j] = (float)x0 * d;
            dst[j + RD_QK / 2] = (float)x1 * d;
        }
    }
}

void rd_q4_0_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    for (size_t i = 0; i < n; i += RD_QK, b += RD_Q4_0_BYTES, src += RD_QK) {
        const float d = signed_absmax(src, RD_QK) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(b, d);
        for (int j = 0; j < RD_QK / 2; j++) {
            const int x0 = clampi(trunc_int(src[j] * id + 8.5f), 0, 15);
            const int x1 = clampi(trunc_int(src[j + RD_QK / 2] * id + 8.5f), 0, 15);
            b[2 + j] = (uint8_t)(x0 | x1 << 4);
        }
    }
}

void rd_q4_1_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += RD_QK, b += RD_Q4_1_BYTES, dst += RD_QK) {
        const float d = f16_at(b), m = f16_at(b + 2);
        for (int j = 0; j < RD_QK / 2; j++) {
            const int x0 = b[4 + j] & 0x0F, x1 = b[4 + j] >> 4;
            dst[j] = (float)x0 * d + m;
            dst[j + RD_QK / 2] = (float)x1 * d + m;
        }
    }
}

void rd_q4_1_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    for (size_t i = 0; i < n; i += RD_QK, b += RD_Q4_1_BYTES, src += RD_QK) {
        float mn, mx;
        min_max(src, RD_QK, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(b, d);
        put_f16(b + 2, mn);
        for (int j = 0; j < RD_QK / 2; j++) {
            const int x0 = clampi(trunc_int((src[j] - mn) * id + 0.5f), 0, 15);
            const int x1 = clampi(trunc_int((src[j + RD_QK / 2] - mn) * id + 0.5f), 0, 15);
            b[4 + j] = (uint8_t)(x0 | x1 << 4);
        }
    }
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* The 5-bit quants of a Q5_0/Q5_1 block: qs nibbles plus bit j / j+16 of qh. */
static void q5_unpack(const uint8_t *qh_bytes, const uint8_t *qs, int q[RD_QK]) {
    const uint32_t qh = le32(qh_bytes);
    for (int j = 0; j < RD_QK / 2; j++) {
        q[j] = (qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
        q[j + RD_QK / 2] = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
    }
}

static void q5_pack(const int q[RD_QK], uint8_t *qh_bytes, uint8_t *qs) {
    uint32_t qh = 0;
    for (int j = 0; j < RD_QK / 2; j++) {
        const int x0 = q[j], x1 = q[j + RD_QK / 2];
        qs[j] = (uint8_t)((x0 & 0x0F) | (x1 & 0x0F) << 4);
        qh |= (uint32_t)((x0 & 0x10) >> 4) << j;
        qh |= (uint32_t)((x1 & 0x10) >> 4) << (j + RD_QK / 2);
    }
    put_le32(qh_bytes, qh);
}

void rd_q5_0_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    int q[RD_QK];
    for (size_t i = 0; i < n; i += RD_QK, b += RD_Q5_0_BYTES, dst += RD_QK) {
        const float d = f16_at(b);
        q5_unpack(b + 2, b + 6, q);
        for (int j = 0; j < RD_QK; j++) dst[j] = (float)(q[j] - 16) * d;
    }
}

void rd_q5_0_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    int q[RD_QK];
    for (size_t i = 0; i < n; i += RD_QK, b += RD_Q5_0_BYTES, src += RD_QK) {
        const float d = signed_absmax(src, RD_QK) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(b, d);
        for (int j = 0; j < RD_QK; j++) q[j] = clampi(trunc_int(src[j] * id + 16.5f), 0, 31);
        q5_pack(q, b + 2, b + 6);
    }
}

void rd_q5_1_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    int q[RD_QK];
    for (size_t i = 0; i < n; i += RD_QK, b += RD_Q5_1_BYTES, dst += RD_QK) {
        const float d = f16_at(b), m = f16_at(b + 2);
        q5_unpack(b + 4, b + 8, q);
        for (int j = 0; j < RD_QK; j++) dst[j] = (float)q[j] * d + m;
    }
}

/* quantize_row_q5_1_ref casts (x0 + 0.5f) to uint8_t without a clamp; the clamp to 31
 * only differs where that cast would be out of range. */
void rd_q5_1_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    int q[RD_QK];
    for (size_t i = 0; i < n; i += RD_QK, b += RD_Q5_1_BYTES, src += RD_QK) {
        float mn, mx;
        min_max(src, RD_QK, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(b, d);
        put_f16(b + 2, mn);
        for (int j = 0; j < RD_QK; j++)
            q[j] = clampi(trunc_int((src[j] - mn) * id + 0.5f), 0, 31);
        q5_pack(q, b + 4, b + 8);
    }
}

/* ---- K-quants: 256-element super-blocks ----------------------------------------------- */

/* Sub-block statistics of the asymmetric K-quants (Q2_K, Q4_K, Q5_K): x ≈ scale·q − min
 * with q in [0, nmax] and min = −min(0, min x) ≥ 0. */
static void asym_stats(const float *x, int n, int nmax, float *scale, float *min) {
    float mn, mx;
    min_max(x, n, &mn, &mx);
    if (mn > 0.0f) mn = 0.0f;
    *scale = mx > mn ? (mx - mn) / (float)nmax : 0.0f;
    *min = -mn;
}

/* Quantises scales v[0..n) (all ≥ 0) to integers in [0, qmax] against a shared step that
 * is returned (the f16 value stored); out[k] ≈ v[k] / step. */
static float quantize_steps(const float *v, int n, int qmax, int *out) {
    float vmax = 0.0f;
    for (int k = 0; k < n; k++)
        if (v[k] > vmax) vmax = v[k];
    const float inv = vmax > 0.0f ? (float)qmax / vmax : 0.0f;
    for (int k = 0; k < n; k++) out[k] = clampi(nearest_int(inv * v[k]), 0, qmax);
    return vmax / (float)qmax;
}

/* Quants of one asymmetric sub-block: L[i] = round((x[i] + m) / dl) in [0, nmax]. */
static void asym_quants(const float *x, int n, int nmax, float dl, float ml, uint8_t *L) {
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)(dl != 0.0f ? clampi(nearest_int((x[i] + ml) / dl), 0, nmax) : 0);
}

/* Quants of one symmetric sub-block: L[i] = round(x[i] / dl) + bias in [0, 2·bias). */
static void sym_quants(const float *x, int n, int bias, float dl, uint8_t *L) {
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)(dl != 0.0f ? clampi(nearest_int(x[i] / dl), -bias, bias - 1) + bias
                                    : bias);
}

/* The 2-bit planes shared by Q2_K and Q3_K: element 128·h + 32·s + l sits in bits 2s..2s+1
 * of qs[32·h + l]. */
static void pack_2bit(const uint8_t L[RD_QK_K], uint8_t qs[64]) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *e = L + 128 * h + l;
            qs[32 * h + l] =
                (uint8_t)((e[0] & 3) | (e[32] & 3) << 2 | (e[64] & 3) << 4 | (e[96] & 3) << 6);
        }
}

/* Q2_K: scales[k] holds sub-block k's 4-bit scale (low nibble) and min (high nibble). */
void rd_q2_k_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q2_K_BYTES) {
        const uint8_t *sc = b, *q = b + 16;
        const float d = f16_at(b + 80), dmin = f16_at(b + 82);
        int is = 0;
        for (int h = 0; h < 2; h++, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++, is++) {
                    const float dl = d * (float)(sc[is] & 0xF), ml = dmin * (float)(sc[is] >> 4);
                    for (int l = 0; l < 16; l++)
                        *dst++ = dl * (float)((q[16 * half + l] >> shift) & 3) - ml;
                }
    }
}

void rd_q2_k_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    float scale[16], min[16];
    int ls[16], lm[16];
    uint8_t L[RD_QK_K];
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q2_K_BYTES, src += RD_QK_K) {
        for (int k = 0; k < 16; k++) asym_stats(src + 16 * k, 16, 3, &scale[k], &min[k]);
        put_f16(b + 80, quantize_steps(scale, 16, 15, ls));
        put_f16(b + 82, quantize_steps(min, 16, 15, lm));
        const float d = f16_at(b + 80), dmin = f16_at(b + 82);
        for (int k = 0; k < 16; k++) {
            b[k] = (uint8_t)(ls[k] | lm[k] << 4);
            asym_quants(src + 16 * k, 16, 3, d * (float)ls[k], dmin * (float)lm[k], L + 16 * k);
        }
        pack_2bit(L, b + 16);
    }
}

/* Q3_K: 16 signed 6-bit scales (stored + 32): the low 4 bits of scale k in the low (k < 8)
 * or high (k ≥ 8) nibble of scales[k mod 8], the high 2 bits in bits 2·(k/4) of
 * scales[8 + k mod 4]. */
static int q3_k_scale(const uint8_t sc[12], int k) {
    const int lo = k < 8 ? sc[k] & 0xF : sc[k - 8] >> 4;
    const int hi = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
    return (lo | hi << 4) - 32;
}

void rd_q3_k_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q3_K_BYTES) {
        const uint8_t *hm = b, *q = b + 32, *sc = b + 96;
        const float d_all = f16_at(b + 108);
        int is = 0, m = 1;
        for (int h = 0; h < 2; h++, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int half = 0; half < 2; half++, is++) {
                    const float dl = d_all * (float)q3_k_scale(sc, is);
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *dst++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
    }
}

void rd_q3_k_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    float scale[16];
    uint8_t L[RD_QK_K];
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q3_K_BYTES, src += RD_QK_K) {
        memset(b, 0, RD_Q3_K_BYTES);
        for (int k = 0; k < 16; k++) scale[k] = signed_absmax(src + 16 * k, 16) / -4.0f;
        const float max_scale = signed_absmax(scale, 16);
        if (max_scale == 0.0f) continue; /* all zero: d = 0 */
        const float iscale = -32.0f / max_scale;
        put_f16(b + 108, 1.0f / iscale);
        const float d = f16_at(b + 108);
        uint8_t *sc = b + 96;
        for (int k = 0; k < 16; k++) {
            const int l = clampi(nearest_int(iscale * scale[k]), -32, 31);
            const int u = l + 32;
            sc[k % 8] |= (uint8_t)((u & 0xF) << (k < 8 ? 0 : 4));
            sc[8 + k % 4] |= (uint8_t)((u >> 4) << (2 * (k / 4)));
            sym_quants(src + 16 * k, 16, 4, d * (float)l, L + 16 * k);
        }
        for (int e = 0; e < RD_QK_K; e++) /* the third bit of each quant */
            if (L[e] > 3) b[e % 32] |= (uint8_t)(1u << (e / 32));
        pack_2bit(L, b + 32);
    }
}

/* Q4_K / Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed into 12
 * bytes (llama.cpp's get_scale_min_k4). */
static void k4_scale_min(const uint8_t q[12], int j, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void k4_put_scale_min(uint8_t q[12], const int ls[8], const int lm[8]) {
    memset(q, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] |= (uint8_t)ls[j];
            q[j + 4] |= (uint8_t)lm[j];
        } else {
            q[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            q[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Shared by the Q4_K and Q5_K widening: qh == NULL for Q4_K. */
static void q45_k_block(const uint8_t *b, const uint8_t *qh, const uint8_t *ql, float *y) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    int u1 = 1, u2 = 2;
    for (int j = 0; j < 4; j++, ql += 32, u1 <<= 2, u2 <<= 2) {
        int sc, m;
        k4_scale_min(b + 4, 2 * j, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        k4_scale_min(b + 4, 2 * j + 1, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((ql[l] & 0xF) + (qh && (qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((ql[l] >> 4) + (qh && (qh[l] & u2) ? 16 : 0)) - m2;
    }
}

void rd_q4_k_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q4_K_BYTES, dst += RD_QK_K)
        q45_k_block(b, NULL, b + 16, dst);
}

void rd_q5_k_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q5_K_BYTES, dst += RD_QK_K)
        q45_k_block(b, b + 16, b + 48, dst);
}

/* Header (d, dmin, scales) and quants L (256, each in [0, nmax]) of a Q4_K/Q5_K block. */
static void q45_k_quantize(const float *x, int nmax, uint8_t *b, uint8_t L[RD_QK_K]) {
    float scale[8], min[8];
    int ls[8], lm[8];
    for (int j = 0; j < 8; j++) asym_stats(x + 32 * j, 32, nmax, &scale[j], &min[j]);
    put_f16(b, quantize_steps(scale, 8, 63, ls));
    put_f16(b + 2, quantize_steps(min, 8, 63, lm));
    k4_put_scale_min(b + 4, ls, lm);
    const float d = f16_at(b), dmin = f16_at(b + 2);
    for (int j = 0; j < 8; j++)
        asym_quants(x + 32 * j, 32, nmax, d * (float)ls[j], dmin * (float)lm[j], L + 32 * j);
}

/* Low nibbles of Q4_K/Q5_K quants: element 64·j + l in the low, 64·j + 32 + l in the high
 * nibble of ql[32·j + l]. */
static void pack_nibbles_k(const uint8_t L[RD_QK_K], uint8_t ql[128]) {
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++)
            ql[32 * j + l] = (uint8_t)((L[64 * j + l] & 0xF) | (L[64 * j + 32 + l] & 0xF) << 4);
}

void rd_q4_k_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    uint8_t L[RD_QK_K];
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q4_K_BYTES, src += RD_QK_K) {
        q45_k_quantize(src, 15, b, L);
        pack_nibbles_k(L, b + 16);
    }
}

void rd_q5_k_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    uint8_t L[RD_QK_K];
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q5_K_BYTES, src += RD_QK_K) {
        q45_k_quantize(src, 31, b, L);
        uint8_t *qh = b + 16;
        memset(qh, 0, 32);
        for (int e = 0; e < RD_QK_K; e++) /* the fifth bit: bit e/32 of qh[e % 32] */
            if (L[e] & 0x10) qh[e % 32] |= (uint8_t)(1u << (e / 32));
        pack_nibbles_k(L, b + 48);
    }
}

/* Q6_K: 16 sub-blocks of 16 with int8 scales; 6-bit quants stored + 32. */
void rd_q6_k_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q6_K_BYTES) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = f16_at(b + 208);
        /* (d·scale)·q as llama.cpp rounds it; the 16 elements of one scale form one loop
         * without branches or divisions, which the compiler vectorises */
        for (int h = 0; h < 2; h++, dst += 128, ql += 64, qh += 32, sc += 8)
            for (int is = 0; is < 2; is++) {
                const float s1 = d * (float)sc[is], s2 = d * (float)sc[is + 2];
                const float s3 = d * (float)sc[is + 4], s4 = d * (float)sc[is + 6];
                for (int l = 16 * is; l < 16 * is + 16; l++) {
                    const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                    const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                    const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                    dst[l] = s1 * (float)q1;
                    dst[l + 32] = s2 * (float)q2;
                    dst[l + 64] = s3 * (float)q3;
                    dst[l + 96] = s4 * (float)q4;
                }
            }
    }
}

void rd_q6_k_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    float scale[16];
    uint8_t L[RD_QK_K];
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_Q6_K_BYTES, src += RD_QK_K) {
        memset(b, 0, RD_Q6_K_BYTES);
        for (int k = 0; k < 16; k++) scale[k] = signed_absmax(src + 16 * k, 16) / -32.0f;
        const float max_scale = signed_absmax(scale, 16);
        if (max_scale == 0.0f) continue; /* all zero: d = 0 */
        const float iscale = -128.0f / max_scale;
        put_f16(b + 208, 1.0f / iscale);
        const float d = f16_at(b + 208);
        for (int k = 0; k < 16; k++) {
            const int s = clampi(nearest_int(iscale * scale[k]), -128, 127);
            b[192 + k] = (uint8_t)(int8_t)s;
            sym_quants(src + 16 * k, 16, 32, d * (float)s, L + 16 * k);
        }
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            const uint8_t *e = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((e[l] & 0xF) | (e[l + 64] & 0xF) << 4);
                ql[l + 32] = (uint8_t)((e[l + 32] & 0xF) | (e[l + 96] & 0xF) << 4);
                qh[l] = (uint8_t)(e[l] >> 4 | (e[l + 32] >> 4) << 2 | (e[l + 64] >> 4) << 4 |
                                  (e[l + 96] >> 4) << 6);
            }
        }
    }
}

/* ---- IQ4_NL, IQ4_XS: 4-bit indices into a fixed non-linear table ----------------------- */

const int8_t rd_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

/* 16 nibble pairs → 32 values d·table[q]: low nibbles are elements 0..15, high ones 16..31
 * (llama.cpp: y[j] = d * kvalues_iq4nl[qs[j] & 0xf], the int8 level converted to float). */
static void iq4_nibbles(const uint8_t *qs, float d, float *y) {
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)rd_kvalues_iq4nl[qs[j] & 0xF];
        y[j + 16] = d * (float)rd_kvalues_iq4nl[qs[j] >> 4];
    }
}

void rd_iq4_nl_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += RD_QK, b += RD_IQ4_NL_BYTES, dst += RD_QK)
        iq4_nibbles(b + 2, f16_at(b), dst);
}

/* The 6-bit scale of sub-block k (0..7) of an IQ4_XS block, stored + 32. */
static int iq4_xs_scale(const uint8_t *b, int k) {
    const unsigned scales_h = (unsigned)(b[2] | b[3] << 8);
    return (int)(((b[4 + k / 2] >> (4 * (k % 2))) & 0xF) | ((scales_h >> (2 * k)) & 3) << 4);
}

void rd_iq4_xs_to_f32(const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_IQ4_XS_BYTES) {
        const float d = f16_at(b);
        for (int k = 0; k < 8; k++, dst += 32) /* dl = d · (ls − 32) as llama.cpp rounds it */
            iq4_nibbles(b + 8 + 16 * k, d * (float)(iq4_xs_scale(b, k) - 32), dst);
    }
}

/* llama.cpp's best_index_int8 for 32 values at once: the index of the level nearest
 * al = id·x[j] (the upper one on ties, the first or last beyond the ends; NaN gives 15).
 * Counted rather than searched: the index is the number of k < 15 where al is not nearer
 * v[k] than v[k+1], with the comparison its search makes, (al − v[k] < v[k+1] − al); that
 * holds for every k below the search's answer and for none above, so the counts equal its
 * results bit for bit, and the loop has no branches (the compiler vectorises it). */
static void iq4_indices(const float *x, float id, int idx[32]) {
    const int8_t *v = rd_kvalues_iq4nl;
    for (int j = 0; j < 32; j++) {
        const float al = id * x[j];
        int n = 0;
        for (int k = 0; k < 15; k++) n += !(al - (float)v[k] < (float)v[k + 1] - al);
        idx[j] = n;
    }
}

/* Σ w·q·x and Σ w·q² over 32 values x with weights x² for the levels picked at scale 1/id
 * (summed in element order, as llama.cpp does). */
static void iq4_sums(const float *x, float id, float *sumqx, float *sumq2) {
    int idx[32] = {0}; /* all written by iq4_indices (the analyser cannot see it) */
    iq4_indices(x, id, idx);
    float sx = 0.0f, s2 = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float q = (float)rd_kvalues_iq4nl[idx[j]];
        const float w = x[j] * x[j];
        sx += w * q * x[j];
        s2 += w * q * q;
    }
    *sumqx = sx;
    *sumq2 = s2;
}

/* The best scale for 32 values (quantize_row_iq4_nl_impl's search with ntry = 7, no
 * importance matrix): the least-squares scale for the levels at max/127, then at each of
 * max/(127 ± t), t ≤ 7, keeping the one with the smallest weighted error. 0 when the
 * values are all (nearly) zero. */
static float iq4_block_scale(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    if (amax < 1e-15f) return 0.0f;
    float sumqx, sumq2;
    iq4_sums(x, 1.0f / (-max / (float)rd_kvalues_iq4nl[0]), &sumqx, &sumq2);
    float d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f, best = d * sumqx;
    for (int t = -7; t <= 7; t++) {
        iq4_sums(x, (float)(t + rd_kvalues_iq4nl[0]) / max, &sumqx, &sumq2);
        if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* Nibble pairs of 32 values at inverse scale id (low: 0..15, high: 16..31). */
static void iq4_pack(const float *x, float id, uint8_t *qs) {
    int idx[32] = {0}; /* all written by iq4_indices (the analyser cannot see it) */
    iq4_indices(x, id, idx);
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(idx[j] | idx[j + 16] << 4);
}

void rd_iq4_nl_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    for (size_t i = 0; i < n; i += RD_QK, b += RD_IQ4_NL_BYTES, src += RD_QK) {
        const float d = iq4_block_scale(src);
        put_f16(b, d);
        iq4_pack(src, d != 0.0f ? 1.0f / d : 0.0f, b + 2);
    }
}

/* Per sub-block scales as IQ4_NL's, then one f16 d = −(the largest in magnitude)/32 and
 * 6-bit integers ls − 32 = round(scale / d); the levels are picked again at d·(ls − 32)
 * (llama.cpp uses the f32 d there, not the stored f16). A sub-block holding a value that is
 * not finite makes d NaN (llama.cpp would skip its NaN scale and store the block as zeros),
 * so the widened block is not finite either, as with every other type. */
void rd_iq4_xs_from_f32(const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    float scale[8];
    for (size_t i = 0; i < n; i += RD_QK_K, b += RD_IQ4_XS_BYTES, src += RD_QK_K) {
        float amax = 0.0f, max_scale = 0.0f;
        int bad = 0;
        for (int k = 0; k < 8; k++) {
            scale[k] = iq4_block_scale(src + 32 * k);
            bad |= !(fabsf(scale[k]) <= 3.402823466e+38f);
            if (fabsf(scale[k]) > amax) {
                amax = fabsf(scale[k]);
                max_scale = scale[k];
            }
        }
        const float d = bad ? NAN : -max_scale / 32.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(b, d);
        unsigned scales_h = 0;
        memset(b + 4, 0, 4);
        for (int k = 0; k < 8; k++) {
            const int l = clampi(nearest_int(id * scale[k]), -32, 31);
            const float dl = d * (float)l;
            iq4_pack(src + 32 * k, dl != 0.0f ? 1.0f / dl : 0.0f, b + 8 + 16 * k);
            b[4 + k / 2] |= (uint8_t)(((l + 32) & 0xF) << (4 * (k % 2)));
            scales_h |= (unsigned)((l + 32) >> 4) << (2 * k);
        }
        b[2] = (uint8_t)scales_h;
        b[3] = (uint8_t)(scales_h >> 8);
    }
}
