/* Integer dot products of quantized weight rows against 8-bit activation blocks (see
 * quant_dot.h). Block layouts: quants.h. Every type reduces to the same shape: unsigned
 * weight quants u (or signed ones for Q8_0) times int8 activations, summed per sub-block
 * and scaled by an integer sub-block scale, minus an offset term that the activation
 * block sums give:
 *   Σ w·x ≈ d_y · (dA · Σ_k sc_k Σ_{e∈k} u_e q_e  −  dB · Σ_k c_k Σ_{e∈k} q_e)
 * with, per type (k over sub-blocks of 16 for the K-quants, the whole block of 32 else):
 *   Q4_0: dA = d, dB = d, c = 8          Q4_1: dA = d, dB = −m, c = 1
 *   Q5_0: dA = d, dB = d, c = 16         Q5_1: dA = d, dB = −m, c = 1
 *   Q8_0: signed quants, no offset       Q2_K: sc, c = 4-bit scale, min; dA = d, dB = dmin
 *   Q3_K: u = low 2 bits + 4·high bit, c = 4·sc; dA = dB = d
 *   Q4_K, Q5_K: sc, c = the 6-bit scale and min of the 32-element sub-block; d, dmin
 *   Q6_K: u = the 6-bit quant, c = 32·sc; dA = dB = d
 *   IQ4_NL: signed quants (the table level of each nibble), no offset; dA = d
 *   IQ4_XS: signed quants, sc = the 6-bit scale − 32 of the 32-element sub-block, no
 *           offset; dA = d.
 * Signed weight quants w (|w| ≤ 127) meet the u8 × s8 products as |w| times the activation
 * with w's sign. */
#include "quant_dot.h"

#include <math.h>
#include <string.h>

#include "quants.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

/* ---- activations --------------------------------------------------------------------- */

rd_q8_format rd_q8_format_of(rd_dtype t) {
    switch (t) {
    case RD_DTYPE_Q4_0:
    case RD_DTYPE_Q4_1:
    case RD_DTYPE_Q5_0:
    case RD_DTYPE_Q5_1:
    case RD_DTYPE_Q8_0:
    case RD_DTYPE_IQ4_NL: return RD_Q8_32;
    case RD_DTYPE_Q2_K:
    case RD_DTYPE_Q3_K:
    case RD_DTYPE_Q4_K:
    case RD_DTYPE_Q5_K:
    case RD_DTYPE_Q6_K:
    case RD_DTYPE_IQ4_XS: return RD_Q8_256;
    default: return RD_Q8_NONE;
    }
}

size_t rd_q8_row_bytes(rd_q8_format f, int64_t cols) {
    if (f == RD_Q8_32) return (size_t)(cols / 32) * sizeof(rd_q8_block32);
    if (f == RD_Q8_256) return (size_t)(cols / 256) * sizeof(rd_q8_block256);
    return 0;
}

/* Scale of one block: max |x| / 127, NaN when a value is not finite. */
static float block_scale(const float *x, int n) {
    float amax = 0.0f;
    int bad = 0;
    for (int j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
        bad |= !(a <= 3.402823466e+38f); /* NaN or Inf */
    }
    return bad ? NAN : amax / 127.0f;
}

/* q[j] = round(x[j] / d) (|q| ≤ 127 by the choice of d); 0 for d = 0 or NaN. */
static void block_quants(const float *x, int n, float d, int8_t *q) {
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < n; j++) {
        float v = nearbyintf(x[j] * id);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        q[j] = (int8_t)(id > 0.0f ? v : 0.0f);
    }
}

void rd_q8_quantize(rd_q8_format f, const float *x, void *dst, int64_t cols) {
    if (f == RD_Q8_32) {
        rd_q8_block32 *b = dst;
        for (int64_t c = 0; c < cols; c += 32, b++, x += 32) {
            b->d = block_scale(x, 32);
            block_quants(x, 32, b->d, b->q);
            int s = 0;
            for (int j = 0; j < 32; j++) s += b->q[j];
            b->sum = s;
        }
    } else if (f == RD_Q8_256) {
        rd_q8_block256 *b = dst;
        for (int64_t c = 0; c < cols; c += 256, b++, x += 256) {
            b->d = block_scale(x, 256);
            block_quants(x, 256, b->d, b->q);
            for (int k = 0; k < 16; k++) {
                int s = 0;
                for (int j = 0; j < 16; j++) s += b->q[16 * k + j];
                b->sums[k] = (int16_t)s;
            }
        }
    }
}

/* ---- block headers shared by both paths ---------------------------------------------- */

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    return rd_f16_to_f32(h);
#endif
}

/* The scalars of a 32-element block: dA, dB, offset c (see the top of the file). */
typedef struct hdr32 {
    float dA, dB;
    int c;
} hdr32;

static inline hdr32 header32(rd_dtype t, const uint8_t *b) {
    switch (t) {
    case RD_DTYPE_Q4_0: return (hdr32){f16_at(b), f16_at(b), 8};
    case RD_DTYPE_Q5_0: return (hdr32){f16_at(b), f16_at(b), 16};
    case RD_DTYPE_Q4_1:
    case RD_DTYPE_Q5_1: return (hdr32){f16_at(b), -f16_at(b + 2), 1};
    default: return (hdr32){f16_at(b), 0.0f, 0}; /* Q8_0, IQ4_NL */
    }
}

static size_t block_bytes(rd_dtype t) { return rd_dtype_info_of(t)->block_bytes; }

/* The sub-block scales of a K-quant super-block: sc[k] and offsets c[k] per 16 elements,
 * dA and dB. */
typedef struct hdrk {
    int8_t sc[16];
    int16_t c[16];
    float dA, dB;
} hdrk;

/* Q4_K / Q5_K: 8 × (6-bit scale, 6-bit min) packed in 12 bytes (quants.c k4_scale_min):
 * out[0..7] the scales, out[8..15] the mins. */
static inline void k4_unpack_scales(const uint8_t *q, uint8_t out[16]) {
    uint32_t u[4];
    memcpy(u, q, 12);
    const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4); /* mins 4..7 */
    const uint32_t mins_lo = u[1] & m6;                     /* mins 0..3 */
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);         /* scales 4..7 */
    u[2] = mins_lo;
    u[0] &= m6; /* scales 0..3 */
    memcpy(out, u, 16);
}

static inline void headerk(rd_dtype t, const uint8_t *b, hdrk *h) {
    switch (t) {
    case RD_DTYPE_Q2_K:
        for (int k = 0; k < 16; k++) {
            h->sc[k] = (int8_t)(b[k] & 0xF);
            h->c[k] = (int16_t)(b[k] >> 4);
        }
        h->dA = f16_at(b + 80);
        h->dB = f16_at(b + 82);
        break;
    case RD_DTYPE_Q3_K: {
        const uint8_t *s = b + 96;
        for (int k = 0; k < 16; k++) {
            const int lo = k < 8 ? s[k] & 0xF : s[k - 8] >> 4;
            const int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
            h->sc[k] = (int8_t)((lo | hi << 4) - 32);
            h->c[k] = (int16_t)(4 * h->sc[k]);
        }
        h->dA = h->dB = f16_at(b + 108);
        break;
    }
    case RD_DTYPE_Q4_K:
    case RD_DTYPE_Q5_K: {
        uint8_t sm[16];
        k4_unpack_scales(b + 4, sm);
        for (int k = 0; k < 16; k++) {
            h->sc[k] = (int8_t)sm[k / 2];
            h->c[k] = (int16_t)sm[8 + k / 2];
        }
        h->dA = f16_at(b);
        h->dB = f16_at(b + 2);
        break;
    }
    case RD_DTYPE_IQ4_XS: {
        const unsigned scales_h = (unsigned)(b[2] | b[3] << 8);
        for (int k = 0; k < 16; k++) {
            const int j = k / 2; /* the 32-element sub-block */
            const int ls = ((b[4 + j / 2] >> (4 * (j % 2))) & 0xF) | ((scales_h >> (2 * j)) & 3) << 4;
            h->sc[k] = (int8_t)(ls - 32);
            h->c[k] = 0;
        }
        h->dA = f16_at(b);
        h->dB = 0.0f;
        break;
    }
    default: /* Q6_K */
        for (int k = 0; k < 16; k++) {
            h->sc[k] = (int8_t)b[192 + k];
            h->c[k] = (int16_t)(32 * h->sc[k]);
        }
        h->dA = h->dB = f16_at(b + 208);
        break;
    }
}

/* ---- portable path ------------------------------------------------------------------- */

/* The unsigned quants of a 32-element block (Q8_0, IQ4_NL: the signed ones, as int). */
static void unpack32(rd_dtype t, const uint8_t *b, int u[32]) {
    const uint8_t *qs;
    uint32_t qh = 0;
    switch (t) {
    case RD_DTYPE_IQ4_NL:
        for (int j = 0; j < 16; j++) {
            u[j] = rd_kvalues_iq4nl[b[2 + j] & 0xF];
            u[j + 16] = rd_kvalues_iq4nl[b[2 + j] >> 4];
        }
        return;
    case RD_DTYPE_Q4_0: qs = b + 2; break;
    case RD_DTYPE_Q4_1: qs = b + 4; break;
    case RD_DTYPE_Q5_0: qs = b + 6; memcpy(&qh, b + 2, 4); break;
    case RD_DTYPE_Q5_1: qs = b + 8; memcpy(&qh, b + 4, 4); break;
    default:
        for (int j = 0; j < 32; j++) u[j] = (int8_t)b[2 + j];
        return;
    }
    for (int j = 0; j < 16; j++) {
        u[j] = (qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
        u[j + 16] = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
    }
}

/* The unsigned quants of a K-quant super-block, element order (IQ4_XS: the signed ones). */
static void unpackk(rd_dtype t, const uint8_t *b, int16_t u[256]) {
    switch (t) {
    case RD_DTYPE_IQ4_XS:
        for (int e = 0; e < 256; e++) {
            const uint8_t q = b[8 + 16 * (e / 32) + e % 16];
            u[e] = rd_kvalues_iq4nl[e % 32 < 16 ? q & 0xF : q >> 4];
        }
        break;
    case RD_DTYPE_Q2_K:
    case RD_DTYPE_Q3_K: {
        const uint8_t *qs = t == RD_DTYPE_Q2_K ? b + 16 : b + 32;
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 4; s++)
                for (int l = 0; l < 32; l++) {
                    int v = (qs[32 * h + l] >> (2 * s)) & 3;
                    if (t == RD_DTYPE_Q3_K) v |= ((b[l] >> (4 * h + s)) & 1) << 2;
                    u[128 * h + 32 * s + l] = (int16_t)v;
                }
        break;
    }
    case RD_DTYPE_Q4_K:
    case RD_DTYPE_Q5_K: {
        const uint8_t *qs = t == RD_DTYPE_Q4_K ? b + 16 : b + 48, *qh = b + 16;
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                u[64 * j + l] = qs[32 * j + l] & 0xF;
                u[64 * j + 32 + l] = qs[32 * j + l] >> 4;
            }
        if (t == RD_DTYPE_Q5_K)
            for (int e = 0; e < 256; e++) u[e] |= (int16_t)(((qh[e % 32] >> (e / 32)) & 1) << 4);
        break;
    }
    default: /* Q6_K */
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            int16_t *o = u + 128 * h;
            for (int l = 0; l < 32; l++) {
                o[l] = (int16_t)((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4);
                o[l + 32] = (int16_t)((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4);
                o[l + 64] = (int16_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
                o[l + 96] = (int16_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
            }
        }
        break;
    }
}

static void portable32(rd_dtype t, const void *w, const void *y, size_t y_stride, int n,
                       int64_t cols, float *out) {
    const size_t bb = block_bytes(t);
    float sum[RD_QUANT_DOT_MAX_ROWS] = {0}, off[RD_QUANT_DOT_MAX_ROWS] = {0};
    int u[32];
    for (int64_t blk = 0; blk < cols / 32; blk++) {
        const uint8_t *b = (const uint8_t *)w + (size_t)blk * bb;
        const hdr32 h = header32(t, b);
        unpack32(t, b, u);
        for (int i = 0; i < n; i++) {
            const rd_q8_block32 *yb =
                (const rd_q8_block32 *)((const char *)y + (size_t)i * y_stride) + blk;
            int s = 0;
            for (int j = 0; j < 32; j++) s += u[j] * yb->q[j];
            sum[i] += h.dA * yb->d * (float)s;
            off[i] += h.dB * yb->d * (float)(h.c * yb->sum);
        }
    }
    for (int i = 0; i < n; i++) out[i] = sum[i] - off[i];
}

static void portablek(rd_dtype t, const void *w, const void *y, size_t y_stride, int n,
                      int64_t cols, float *out) {
    const size_t bb = block_bytes(t);
    float sum[RD_QUANT_DOT_MAX_ROWS] = {0}, off[RD_QUANT_DOT_MAX_ROWS] = {0};
    int16_t u[256];
    hdrk h;
    for (int64_t blk = 0; blk < cols / 256; blk++) {
        const uint8_t *b = (const uint8_t *)w + (size_t)blk * bb;
        headerk(t, b, &h);
        unpackk(t, b, u);
        for (int i = 0; i < n; i++) {
            const rd_q8_block256 *yb =
                (const rd_q8_block256 *)((const char *)y + (size_t)i * y_stride) + blk;
            int s = 0, o = 0;
            for (int k = 0; k < 16; k++) {
                int sk = 0;
                for (int j = 16 * k; j < 16 * k + 16; j++) sk += u[j] * yb->q[j];
                s += h.sc[k] * sk;
                o += h.c[k] * yb->sums[k];
            }
            sum[i] += h.dA * yb->d * (float)s;
            off[i] += h.dB * yb->d * (float)o;
        }
    }
    for (int i = 0; i < n; i++) out[i] = sum[i] - off[i];
}

#define PORTABLE(NAME, T, KIND)                                                            \
    static void NAME(const void *w, const void *y, size_t y_stride, int n, int64_t cols,   \
                     float *out) {                                                         \
        KIND(T, w, y, y_stride, n, cols, out);                                             \
    }
PORTABLE(p_q4_0, RD_DTYPE_Q4_0, portable32)
PORTABLE(p_q4_1, RD_DTYPE_Q4_1, portable32)
PORTABLE(p_q5_0, RD_DTYPE_Q5_0, portable32)
PORTABLE(p_q5_1, RD_DTYPE_Q5_1, portable32)
PORTABLE(p_q8_0, RD_DTYPE_Q8_0, portable32)
PORTABLE(p_q2_k, RD_DTYPE_Q2_K, portablek)
PORTABLE(p_q3_k, RD_DTYPE_Q3_K, portablek)
PORTABLE(p_q4_k, RD_DTYPE_Q4_K, portablek)
PORTABLE(p_q5_k, RD_DTYPE_Q5_K, portablek)
PORTABLE(p_q6_k, RD_DTYPE_Q6_K, portablek)
PORTABLE(p_iq4_nl, RD_DTYPE_IQ4_NL, portable32)
PORTABLE(p_iq4_xs, RD_DTYPE_IQ4_XS, portablek)

rd_quant_dot_fn rd_quant_dot_portable(rd_dtype t) {
    switch (t) {
    case RD_DTYPE_Q4_0: return p_q4_0;
    case RD_DTYPE_Q4_1: return p_q4_1;
    case RD_DTYPE_Q5_0: return p_q5_0;
    case RD_DTYPE_Q5_1: return p_q5_1;
    case RD_DTYPE_Q8_0: return p_q8_0;
    case RD_DTYPE_Q2_K: return p_q2_k;
    case RD_DTYPE_Q3_K: return p_q3_k;
    case RD_DTYPE_Q4_K: return p_q4_k;
    case RD_DTYPE_Q5_K: return p_q5_k;
    case RD_DTYPE_Q6_K: return p_q6_k;
    case RD_DTYPE_IQ4_NL: return p_iq4_nl;
    case RD_DTYPE_IQ4_XS: return p_iq4_xs;
    default: return NULL;
    }
}

/* ---- AVX2 path (256-bit; VNNI forms where the target has them) ------------------------ */
#if defined(__AVX2__)

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define QD_PATH "avx512-vnni"
/* acc + Σ of 4 adjacent u8·s8 products per int32 lane */
static inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(acc, u, s);
}
/* acc + Σ of 2 adjacent s16·s16 products per int32 lane */
static inline __m256i madd_acc(__m256i acc, __m256i a, __m256i b) {
    return _mm256_dpwssd_epi32(acc, a, b);
}
#elif defined(__AVXVNNI__)
#define QD_PATH "avx-vnni"
static inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
    return _mm256_dpbusd_avx_epi32(acc, u, s);
}
static inline __m256i madd_acc(__m256i acc, __m256i a, __m256i b) {
    return _mm256_dpwssd_avx_epi32(acc, a, b);
}
#else
#define QD_PATH "avx2"
/* maddubs saturates its int16 pair sums: every caller keeps u ≤ 128 and |s| ≤ 127, so a
 * pair stays within 2·128·127 = 32,512 and the sums equal the VNNI forms'. */
static inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s),
                                                   _mm256_set1_epi16(1)));
}
static inline __m256i madd_acc(__m256i acc, __m256i a, __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}
#endif

static inline __m256 fmadd8(__m256 a, __m256 b, __m256 c) {
#if defined(__FMA__)
    return _mm256_fmadd_ps(a, b, c);
#else
    return _mm256_add_ps(_mm256_mul_ps(a, b), c);
#endif
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256i loadu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* bit j of the 32-bit word at p → byte j = 0xFF, else 0 */
static inline __m256i bits_to_bytes(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
                                          2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i x = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(x, bit), bit);
}

#define QD_INLINE static inline __attribute__((always_inline))

/* rd_kvalues_iq4nl in both 128-bit lanes: a byte shuffle by nibbles gives the levels. */
static inline __m256i iq4_table(void) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)rd_kvalues_iq4nl));
}

/* Decode streams each weight row once from memory: asking for the bytes about 3 KB ahead of
 * the block being multiplied keeps more lines in flight than the hardware prefetcher does
 * on its own (Q4_K matvec from DRAM, 2 threads on the Intel host: 10.5 → 19 GB/s of a 25 GB/s
 * read probe). A prefetch past the end of the matrix is harmless (it never faults). */
#define QD_PREFETCH_AHEAD 3072
QD_INLINE void prefetch_block(const uint8_t *b, size_t bb) {
    for (size_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)b + QD_PREFETCH_AHEAD + o, _MM_HINT_T0);
}

QD_INLINE void avx32(rd_dtype t, const void *w, const void *y, size_t y_stride, int n,
                     int64_t cols, float *out) {
    const size_t bb = block_bytes(t);
    __m256 sum[RD_QUANT_DOT_MAX_ROWS];
    float off[RD_QUANT_DOT_MAX_ROWS] = {0};
    for (int i = 0; i < n; i++) sum[i] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0xF);
    for (int64_t blk = 0; blk < cols / 32; blk++) {
        const uint8_t *b = (const uint8_t *)w + (size_t)blk * bb;
        prefetch_block(b, bb);
        const hdr32 h = header32(t, b);
        __m256i u;
        const uint8_t *qs = b + (t == RD_DTYPE_Q4_0 || t == RD_DTYPE_IQ4_NL ? 2
                                 : t == RD_DTYPE_Q4_1 ? 4 : t == RD_DTYPE_Q5_0 ? 6 : 8);
        if (t != RD_DTYPE_Q8_0) {
            const __m128i x = _mm_loadu_si128((const __m128i *)qs);
            u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), m4);
            if (t == RD_DTYPE_Q5_0 || t == RD_DTYPE_Q5_1)
                u = _mm256_or_si256(u, _mm256_and_si256(bits_to_bytes(qs - 4),
                                                        _mm256_set1_epi8(0x10)));
            if (t == RD_DTYPE_IQ4_NL) u = _mm256_shuffle_epi8(iq4_table(), u);
        }
        const __m256i wq = t == RD_DTYPE_Q8_0 ? loadu256(b + 2) : u;
        for (int i = 0; i < n; i++) {
            const rd_q8_block32 *yb =
                (const rd_q8_block32 *)((const char *)y + (size_t)i * y_stride) + blk;
            const __m256i yq = loadu256(yb->q);
            __m256i s;
            if (t == RD_DTYPE_Q8_0 || t == RD_DTYPE_IQ4_NL) /* |w| times y with w's sign */
                s = dot_u8s8(_mm256_setzero_si256(), _mm256_sign_epi8(wq, wq),
                             _mm256_sign_epi8(yq, wq));
            else
                s = dot_u8s8(_mm256_setzero_si256(), wq, yq);
            sum[i] = fmadd8(_mm256_set1_ps(h.dA * yb->d), _mm256_cvtepi32_ps(s), sum[i]);
            off[i] += h.dB * yb->d * (float)(h.c * yb->sum);
        }
    }
    for (int i = 0; i < n; i++) out[i] = hsum8(sum[i]) - off[i];
}

/* The unsigned quants of a K-quant super-block: q[k] = elements 32k .. 32k+31 (IQ4_XS: the
 * signed levels). */
static inline void unpackk_avx(rd_dtype t, const uint8_t *b, __m256i q[8]) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
    switch (t) {
    case RD_DTYPE_IQ4_XS: {
        const __m256i table = iq4_table();
        for (int k = 0; k < 8; k++) {
            const __m128i x = _mm_loadu_si128((const __m128i *)(b + 8 + 16 * k));
            q[k] = _mm256_shuffle_epi8(
                table, _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), m4));
        }
        break;
    }
    case RD_DTYPE_Q2_K:
    case RD_DTYPE_Q3_K: {
        const uint8_t *qs = t == RD_DTYPE_Q2_K ? b + 16 : b + 32;
        const __m256i hm = loadu256(b);
        for (int h = 0; h < 2; h++) {
            const __m256i x = loadu256(qs + 32 * h);
            for (int s = 0; s < 4; s++) {
                __m256i v = _mm256_and_si256(_mm256_srli_epi16(x, 2 * s), m2);
                if (t == RD_DTYPE_Q3_K) {
                    const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + s)));
                    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit);
                    v = _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi8(4)));
                }
                q[4 * h + s] = v;
            }
        }
        break;
    }
    case RD_DTYPE_Q4_K:
    case RD_DTYPE_Q5_K: {
        const uint8_t *qs = t == RD_DTYPE_Q4_K ? b + 16 : b + 48;
        for (int j = 0; j < 4; j++) {
            const __m256i x = loadu256(qs + 32 * j);
            q[2 * j] = _mm256_and_si256(x, m4);
            q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
        }
        if (t == RD_DTYPE_Q5_K) {
            const __m256i qh = loadu256(b + 16), five = _mm256_set1_epi8(0x10);
            for (int k = 0; k < 8; k++) {
                const __m256i bit = _mm256_set1_epi8((char)(1 << k));
                const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
                q[k] = _mm256_or_si256(q[k], _mm256_and_si256(set, five));
            }
        }
        break;
    }
    default: /* Q6_K */
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = loadu256(b + 64 * h), l1 = loadu256(b + 64 * h + 32);
            const __m256i hi = loadu256(b + 128 + 32 * h);
#define HI2(s) _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hi, s), m2), 4)
            q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4), HI2(0));
            q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), HI2(2));
            q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), HI2(4));
            q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), HI2(6));
#undef HI2
        }
        break;
    }
}

/* Byte shuffles putting sub-block scale 2k in int16 lanes 0..7 and 2k+1 in lanes 8..15
 * (after sign extension), matching maddubs' pair sums of chunk k. */
static const uint8_t scale_shuffle[8][16] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9},
    {10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13},
    {14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

/* The sub-block scales of a K-quant super-block as maddubs' int16 lanes see them: sc[k]
 * for chunk k (elements 32k .. 32k+31), c the 16 offsets against the activation sums, and
 * dA, dB (headerk's values, here with vector code for the common types). */
/* A Q4_K / Q5_K super-block's eight 6-bit scales (bytes 0..7) and eight 6-bit mins (bytes
 * 8..15), unpacked from the 12 bytes after d and dmin: k4_unpack_scales in registers (a
 * 16-byte load of its four 4-byte stores would stall on store forwarding). */
static inline __m128i k4_scales_mins(const uint8_t *b) {
    uint32_t u[3];
    memcpy(u, b + 4, 12);
    const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    return _mm_setr_epi32((int)(u[0] & m6), (int)((u[2] & m4) | (((u[0] >> 6) & m2) << 4)),
                          (int)(u[1] & m6),
                          (int)(((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4)));
}

static inline void scales_avx(rd_dtype t, const uint8_t *b, __m256i sc[8], __m256i *c,
                              float *dA, float *dB) {
    if (t == RD_DTYPE_Q4_K || t == RD_DTYPE_Q5_K) {
        const __m128i v = k4_scales_mins(b);
        for (int k = 0; k < 8; k++)
            sc[k] = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(v, _mm_set1_epi8((char)k)));
        *c = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(
            v, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
        *dA = f16_at(b);
        *dB = f16_at(b + 2);
        return;
    }
    if (t == RD_DTYPE_IQ4_XS) { /* one scale per 32 elements, no offsets */
        const unsigned scales_h = (unsigned)(b[2] | b[3] << 8);
        for (int k = 0; k < 8; k++) {
            const int ls = ((b[4 + k / 2] >> (4 * (k % 2))) & 0xF) | ((scales_h >> (2 * k)) & 3) << 4;
            sc[k] = _mm256_set1_epi16((short)(ls - 32));
        }
        *c = _mm256_setzero_si256();
        *dA = f16_at(b);
        *dB = 0.0f;
        return;
    }
    hdrk h;
    __m128i sc8;
    if (t == RD_DTYPE_Q6_K) {
        sc8 = _mm_loadu_si128((const __m128i *)(b + 192));
        *c = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc8), 5);
        *dA = *dB = f16_at(b + 208);
    } else {
        headerk(t, b, &h);
        sc8 = _mm_loadu_si128((const __m128i *)h.sc);
        *c = loadu256(h.c);
        *dA = h.dA;
        *dB = h.dB;
    }
    for (int k = 0; k < 8; k++)
        sc[k] = _mm256_cvtepi8_epi16(
            _mm_shuffle_epi8(sc8, _mm_loadu_si128((const __m128i *)scale_shuffle[k])));
}

/* Σ of the 8 int32 lanes */
static inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* The K-quants per row: the exact integer totals of each super-block, s = Σ_k sc_k Σ u·q and
 * o = Σ_k c_k · sums_k, then in f32, block after block, sum += (dA·d)·s and off += (dB·d)·o,
 * out = sum − off: the portable path's arithmetic, so both give the same bits (and so does
 * avxk_wide, whatever the number of rows). */
QD_INLINE void avxk(rd_dtype t, const void *w, const void *y, size_t y_stride, int n,
                    int64_t cols, float *out) {
    const size_t bb = block_bytes(t);
    __m128 acc[RD_QUANT_DOT_MAX_ROWS]; /* [sum, ·, off, ·] per row */
    for (int i = 0; i < n; i++) acc[i] = _mm_setzero_ps();
    __m256i q[8], sc[8], c;
    float dA, dB;
    for (int64_t blk = 0; blk < cols / 256; blk++) {
        const uint8_t *b = (const uint8_t *)w + (size_t)blk * bb;
        prefetch_block(b, bb);
        scales_avx(t, b, sc, &c, &dA, &dB);
        unpackk_avx(t, b, q);
        const __m128 coef = _mm_setr_ps(dA, dA, dB, dB);
        for (int i = 0; i < n; i++) {
            const rd_q8_block256 *yb =
                (const rd_q8_block256 *)((const char *)y + (size_t)i * y_stride) + blk;
            __m256i s = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++) {
                const __m256i yk = loadu256(yb->q + 32 * k);
                /* signed levels: |w| · (y with w's sign); a pair stays within 2·127·127 */
                const __m256i p = t == RD_DTYPE_IQ4_XS
                                      ? _mm256_maddubs_epi16(_mm256_sign_epi8(q[k], q[k]),
                                                             _mm256_sign_epi8(yk, q[k]))
                                      : _mm256_maddubs_epi16(q[k], yk);
                s = madd_acc(s, p, sc[k]);
            }
            /* [Σ s, ·, Σ o, ·] in one reduction, then the scalar steps in lanes 0 and 2 */
            const __m256i h = _mm256_hadd_epi32(s, _mm256_madd_epi16(c, loadu256(yb->sums)));
            __m128i r = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xB1));
            const __m128 p = _mm_mul_ps(_mm_mul_ps(coef, _mm_set1_ps(yb->d)), _mm_cvtepi32_ps(r));
            acc[i] = _mm_add_ps(acc[i], p);
        }
    }
    for (int i = 0; i < n; i++) {
        float a[4];
        _mm_storeu_ps(a, acc[i]);
        out[i] = a[0] - a[2];
    }
}

#if defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define QD_WIDE 1

/* The 16 sub-block scales of a K-quant super-block (one per 16 elements, int16: for Q4_K
 * and Q5_K each 32-element scale twice), the offsets c and dA, dB (headerk's values). */
static inline void scales16(rd_dtype t, const uint8_t *b, __m256i *sc16, __m256i *c, float *dA,
                            float *dB) {
    if (t == RD_DTYPE_Q4_K || t == RD_DTYPE_Q5_K) {
        const __m128i v = k4_scales_mins(b);
        *sc16 = _mm256_cvtepu8_epi16(
            _mm_shuffle_epi8(v, _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)));
        *c = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(
            v, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
        *dA = f16_at(b);
        *dB = f16_at(b + 2);
    } else if (t == RD_DTYPE_Q6_K) {
        *sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));
        *c = _mm256_slli_epi16(*sc16, 5);
        *dA = *dB = f16_at(b + 208);
    } else { /* Q2_K, Q3_K */
        hdrk h;
        headerk(t, b, &h);
        *sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)h.sc));
        *c = loadu256(h.c);
        *dA = h.dA;
        *dB = h.dB;
    }
}

/* The totals of 8 rows, each held as 8 int32 lanes, rows 2p and 2p+1 in the lower and upper
 * half of z[p]: row r's total in lane 0 2 4 6 1 3 5 7 (r = 0..7) of one 256-bit vector (a
 * transposing reduction). */
static inline __m256i reduce8_pairs(const __m512i z[4]) {
    const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(z[0], z[1]),
                                       _mm512_unpackhi_epi32(z[0], z[1]));
    const __m512i bq = _mm512_add_epi32(_mm512_unpacklo_epi32(z[2], z[3]),
                                        _mm512_unpackhi_epi32(z[2], z[3]));
    /* 128-bit lane j of e: rows 0 2 4 6 (j = 0, 1) or 1 3 5 7 (j = 2, 3), partial sums */
    const __m512i e = _mm512_add_epi32(_mm512_unpacklo_epi64(a, bq), _mm512_unpackhi_epi64(a, bq));
    const __m512i f = _mm512_add_epi32(e, _mm512_shuffle_i64x2(e, e, 0xB1));
    return _mm512_castsi512_si256(_mm512_shuffle_i64x2(f, f, 0x08));
}

/* reduce8_pairs for 8 rows of 16 int32 lanes, v[r] row r. */
static inline __m256i reduce8(const __m512i v[8]) {
    __m512i z[4];
    for (int p = 0; p < 4; p++) /* rows 2p, 2p+1: their two halves added, side by side */
        z[p] = _mm512_add_epi32(_mm512_shuffle_i64x2(v[2 * p], v[2 * p + 1], 0x44),
                                _mm512_shuffle_i64x2(v[2 * p], v[2 * p + 1], 0xEE));
    return reduce8_pairs(z);
}

/* avxk for n ≤ 8 rows (batched decode) in 512-bit registers: each super-block's weights
 * and scales are unpacked once for all rows; per row, vpdpbusd gives the sums of 4 products
 * (within int16: 4·63·127 for Q6_K's largest quants), two of those vectors packed to int16
 * meet their sub-block scales in one vpdpwssd — 6 multiplies per 256 elements instead of 16
 * 256-bit ones; IQ4_XS (signed levels up to 127: the sums of 4 overflow int16) takes
 * maddubs and vpdpwssd. The 8 rows' block totals are reduced together and scaled by f32 in
 * one vector, with avxk's operations per row, so every result is avxk's (and the portable
 * path's) bit for bit. It computes 8 rows whatever n is: rows past n repeat row n − 1
 * (computed, not stored). */
QD_INLINE void avxk_wide(rd_dtype t, const void *w, const void *y, size_t y_stride, int n,
                         int64_t cols, float *out) {
    const size_t bb = block_bytes(t);
    const rd_q8_block256 *yr[8];
    for (int i = 0; i < 8; i++)
        yr[i] = (const rd_q8_block256 *)((const char *)y + (size_t)(i < n ? i : n - 1) * y_stride);
    /* permutexvar indices: word w of packs(T_2h, T_2h+1) holds the sums of 16-element group
     * (w / 8) + 4·((w % 8) / 4) + 8h */
    __m512i pidx[2];
    {
        int16_t ix[32];
        for (int h = 0; h < 2; h++) {
            for (int x = 0; x < 32; x++) ix[x] = (int16_t)(x / 8 + 4 * ((x % 8) / 4) + 8 * h);
            pidx[h] = _mm512_loadu_si512((const void *)ix);
        }
    }
    __m256 sum = _mm256_setzero_ps(), off = _mm256_setzero_ps();
    __m256i q[8], sc[8], c, sc16;
    __m512i wq[4], ws[4];
    float dA, dB;
    for (int64_t blk = 0; blk < cols / 256; blk++) {
        const uint8_t *b = (const uint8_t *)w + (size_t)blk * bb;
        prefetch_block(b, bb);
        unpackk_avx(t, b, q);
        if (t == RD_DTYPE_IQ4_XS) {
            scales_avx(t, b, sc, &c, &dA, &dB);
            for (int m = 0; m < 4; m++)
                ws[m] = _mm512_inserti64x4(_mm512_castsi256_si512(sc[2 * m]), sc[2 * m + 1], 1);
        } else {
            scales16(t, b, &sc16, &c, &dA, &dB);
            const __m512i s16 = _mm512_zextsi256_si512(sc16);
            ws[0] = _mm512_permutexvar_epi16(pidx[0], s16);
            ws[1] = _mm512_permutexvar_epi16(pidx[1], s16);
        }
        for (int m = 0; m < 4; m++)
            wq[m] = _mm512_inserti64x4(_mm512_castsi256_si512(q[2 * m]), q[2 * m + 1], 1);
        const __m512i cc = _mm512_broadcast_i64x4(c);
        __m512i S[8], O[4];
        float d[8];
        for (int i = 0; i < 8; i++) {
            const rd_q8_block256 *yb = yr[i] + blk;
            d[i] = yb->d;
            __m512i ym[4];
            for (int m = 0; m < 4; m++) ym[m] = _mm512_loadu_si512((const void *)(yb->q + 64 * m));
            if (t == RD_DTYPE_IQ4_XS) {
                __m512i s = _mm512_setzero_si512();
                for (int m = 0; m < 4; m++) { /* |w| · (y with w's sign) */
                    const __m512i yy = _mm512_maskz_mov_epi8(
                        _mm512_test_epi8_mask(wq[m], wq[m]),
                        _mm512_mask_sub_epi8(ym[m], _mm512_movepi8_mask(wq[m]),
                                             _mm512_setzero_si512(), ym[m]));
                    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(_mm512_abs_epi8(wq[m]), yy),
                                            ws[m]);
                }
                S[i] = s;
            } else {
                __m512i T[4];
                for (int m = 0; m < 4; m++)
                    T[m] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[m], ym[m]);
                S[i] = _mm512_dpwssd_epi32(
                    _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_packs_epi32(T[0], T[1]),
                                        ws[0]),
                    _mm512_packs_epi32(T[2], T[3]), ws[1]);
            }
            if (i % 2) { /* the offsets of rows i − 1 and i in one multiply-add */
                const __m512i sums = _mm512_inserti64x4(
                    _mm512_castsi256_si512(loadu256(yr[i - 1][blk].sums)), loadu256(yb->sums), 1);
                O[i / 2] = _mm512_madd_epi16(cc, sums);
            }
        }
        /* lanes in reduce8's order: rows 0 2 4 6 1 3 5 7 */
        const __m256 dv = _mm256_setr_ps(d[0], d[2], d[4], d[6], d[1], d[3], d[5], d[7]);
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(dA), dv),
                                               _mm256_cvtepi32_ps(reduce8(S))));
        off = _mm256_add_ps(off, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(dB), dv),
                                               _mm256_cvtepi32_ps(reduce8_pairs(O))));
    }
    float r[8];
    _mm256_storeu_ps(r, _mm256_sub_ps(sum, off));
    for (int i = 0; i < n; i++) out[i] = r[i % 2 ? 4 + i / 2 : i / 2];
}
#endif

/* One copy per type, with n = 1 (decode of one sequence) compiled on its own so that its
 * accumulators stay in registers. */
#define AVX(NAME, T, KIND)                                                                 \
    static void NAME(const void *w, const void *y, size_t y_stride, int n, int64_t cols,   \
                     float *out) {                                                         \
        if (n == 1)                                                                        \
            KIND(T, w, y, y_stride, 1, cols, out);                                         \
        else                                                                               \
            KIND(T, w, y, y_stride, n, cols, out);                                         \
    }
/* The K-quants with the 512-bit products for n > QD_WIDE_MIN_ROWS (which compute 8 rows
 * whatever n is: fewer rows take avxk). */
#if defined(QD_WIDE)
#define QD_WIDE_MIN_ROWS 6
#define AVXK(NAME, T)                                                                      \
    static void NAME(const void *w, const void *y, size_t y_stride, int n, int64_t cols,   \
                     float *out) {                                                         \
        if (n == 1)                                                                        \
            avxk(T, w, y, y_stride, 1, cols, out);                                         \
        else if (n <= QD_WIDE_MIN_ROWS)                                                    \
            avxk(T, w, y, y_stride, n, cols, out);                                         \
        else                                                                               \
            avxk_wide(T, w, y, y_stride, n, cols, out);                                    \
    }
#else
#define AVXK(NAME, T) AVX(NAME, T, avxk)
#endif
AVX(a_q4_0, RD_DTYPE_Q4_0, avx32)
AVX(a_q4_1, RD_DTYPE_Q4_1, avx32)
AVX(a_q5_0, RD_DTYPE_Q5_0, avx32)
AVX(a_q5_1, RD_DTYPE_Q5_1, avx32)
AVX(a_q8_0, RD_DTYPE_Q8_0, avx32)
AVXK(a_q2_k, RD_DTYPE_Q2_K)
AVXK(a_q3_k, RD_DTYPE_Q3_K)
AVXK(a_q4_k, RD_DTYPE_Q4_K)
AVXK(a_q5_k, RD_DTYPE_Q5_K)
AVXK(a_q6_k, RD_DTYPE_Q6_K)
AVX(a_iq4_nl, RD_DTYPE_IQ4_NL, avx32)
AVXK(a_iq4_xs, RD_DTYPE_IQ4_XS)

rd_quant_dot_fn rd_quant_dot_for(rd_dtype t) {
    switch (t) {
    case RD_DTYPE_Q4_0: return a_q4_0;
    case RD_DTYPE_Q4_1: return a_q4_1;
    case RD_DTYPE_Q5_0: return a_q5_0;
    case RD_DTYPE_Q5_1: return a_q5_1;
    case RD_DTYPE_Q8_0: return a_q8_0;
    case RD_DTYPE_Q2_K: return a_q2_k;
    case RD_DTYPE_Q3_K: return a_q3_k;
    case RD_DTYPE_Q4_K: return a_q4_k;
    case RD_DTYPE_Q5_K: return a_q5_k;
    case RD_DTYPE_Q6_K: return a_q6_k;
    case RD_DTYPE_IQ4_NL: return a_iq4_nl;
    case RD_DTYPE_IQ4_XS: return a_iq4_xs;
    default: return NULL;
    }
}

const char *rd_quant_dot_path(void) { return QD_PATH; }

#else /* no AVX2: the portable path */

rd_quant_dot_fn rd_quant_dot_for(rd_dtype t) { return rd_quant_dot_portable(t); }

const char *rd_quant_dot_path(void) { return "portable"; }

#endif
