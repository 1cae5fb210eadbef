/* redit — llama.cpp block quantisations (core layer, private to src/core and its tests).
 *
 * Widening (to_f32) is bit-exact to llama.cpp's dequantize_row_* (ggml-quants.c): the
 * same float operations in the same order. Narrowing (from_f32) follows
 * quantize_row_*_ref for the 32-element types; for the 256-element K-quants it is a
 * simpler quantiser (min/max per sub-block, no search for the best scale) that writes
 * well-formed blocks but not llama.cpp's bytes. n is a multiple of the block size; every
 * function reads n/block_elems whole blocks and has no alignment requirement. */
#ifndef REDIT_CORE_QUANTS_H
#define REDIT_CORE_QUANTS_H

#include <stddef.h>

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

#endif
