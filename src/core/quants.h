/* redit — llama.cpp block quantisations (core layer, private to src/core and its tests).
 *
 * Widening (to_f32) is bit-exact to llama.cpp's dequantize_row_* (ggml-quants.c): the
 * same float operations in the same order. Narrowing (from_f32) follows
 * quantize_row_*_ref for the 32-element types; for the 256-element K-quants it is a
 * simpler quantiser (min/max per sub-block, no search for the best scale) that writes
 * well-formed blocks but not llama.cpp's bytes. IQ4_NL and IQ4_XS follow quantize_iq4_nl /
 * quantize_iq4_xs without an importance matrix (what llama-quantize runs: a search over 15
 * scales per 32 elements, weights x²). n is a multiple of the block size; every
 * function reads n/block_elems whole blocks and has no alignment requirement. */
#ifndef REDIT_CORE_QUANTS_H
#define REDIT_CORE_QUANTS_H

#include <stddef.h>
#include <stdint.h>

#define RD_QK 32     /* elements of a Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 block */
#define RD_QK_K 256  /* elements of a K-quant super-block */

/* Bytes per block, as ggml-common.h lays the blocks out (little-endian). */
#define RD_Q4_0_BYTES 18  /* f16 d, 16 × nibble pairs */
#define RD_Q4_1_BYTES 20  /* f16 d, f16 m, 16 × nibble pairs */
#define RD_Q5_0_BYTES 22  /* f16 d, u32 qh (5th bits), 16 × nibble pairs */
#define RD_Q5_1_BYTES 24  /* f16 d, f16 m, u32 qh, 16 × nibble pairs */
#define RD_Q2_K_BYTES 84  /* scales[16] (lo: scale, hi: min), qs[64], f16 d, f16 dmin */
#define RD_Q3_K_BYTES 110 /* hmask[32], qs[64], scales[12] (16 × 6 bits), f16 d */
#define RD_Q4_K_BYTES 144 /* f16 d, f16 dmin, scales[12] (8 × 6-bit scale+min), qs[128] */
#define RD_Q5_K_BYTES 176 /* f16 d, f16 dmin, scales[12], qh[32], qs[128] */
#define RD_Q6_K_BYTES 210 /* ql[128], qh[64], int8 scales[16], f16 d */
/* The non-linear 4-bit types: each nibble indexes rd_kvalues_iq4nl. */
#define RD_IQ4_NL_BYTES 18  /* f16 d, 16 × nibble pairs (low: elements 0..15, high: 16..31) */
#define RD_IQ4_XS_BYTES 136 /* f16 d, u16 scales_h, scales_l[4], qs[128]: 8 sub-blocks of 32,
                             * each with a 6-bit scale ls (low 4 bits: nibble k%2 of
                             * scales_l[k/2]; high 2: bits 2k..2k+1 of scales_h); x =
                             * d·(ls − 32)·value */

/* llama.cpp's kvalues_iq4nl: the 16 levels of IQ4_NL / IQ4_XS. */
extern const int8_t rd_kvalues_iq4nl[16];

void rd_q4_0_to_f32(const void *src, float *dst, size_t n);
void rd_q4_0_from_f32(const float *src, void *dst, size_t n);
void rd_q4_1_to_f32(const void *src, float *dst, size_t n);
void rd_q4_1_from_f32(const float *src, void *dst, size_t n);
void rd_q5_0_to_f32(const void *src, float *dst, size_t n);
void rd_q5_0_from_f32(const float *src, void *dst, size_t n);
void rd_q5_1_to_f32(const void *src, float *dst, size_t n);
void rd_q5_1_from_f32(const float *src, void *dst, size_t n);
void rd_q2_k_to_f32(const void *src, float *dst, size_t n);
void rd_q2_k_from_f32(const float *src, void *dst, size_t n);
void rd_q3_k_to_f32(const void *src, float *dst, size_t n);
void rd_q3_k_from_f32(const float *src, void *dst, size_t n);
void rd_q4_k_to_f32(const void *src, float *dst, size_t n);
void rd_q4_k_from_f32(const float *src, void *dst, size_t n);
void rd_q5_k_to_f32(const void *src, float *dst, size_t n);
void rd_q5_k_from_f32(const float *src, void *dst, size_t n);
void rd_q6_k_to_f32(const void *src, float *dst, size_t n);
void rd_q6_k_from_f32(const float *src, void *dst, size_t n);
void rd_iq4_nl_to_f32(const void *src, float *dst, size_t n);
void rd_iq4_nl_from_f32(const float *src, void *dst, size_t n);
void rd_iq4_xs_to_f32(const void *src, float *dst, size_t n);
void rd_iq4_xs_from_f32(const float *src, void *dst, size_t n);

#endif
