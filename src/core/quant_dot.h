/* redit — integer dot products of quantized weight rows against activations rounded to 8
 * bits per block, as llama.cpp's decode does (core layer, private to src/core and its tests).
 *
 * An f32 activation row is quantised once (rd_q8_quantize) into one of two formats:
 *   RD_Q8_32  — blocks of 32: f32 scale d, the int sum of the quants, 32 × int8 (for Q4_0,
 *               Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL: llama.cpp's q8_0 / q8_1);
 *   RD_Q8_256 — blocks of 256: f32 scale d, 256 × int8, 16 int16 sums of 16 quants (for the
 *               K-quants and IQ4_XS: llama.cpp's q8_K).
 * Each value is x ≈ d·q with q = round(x / d) in [−127, 127], d = max |x| / 127 over the
 * block, so |x − d·q| ≤ d/2 (d = NaN when the block holds a value that is not finite, so
 * NaN and Inf reach the products as they do in f32). A weight row is then dotted against
 * n ≤ RD_QUANT_DOT_MAX_ROWS such rows with integer sums per block, scaled in f32 once per
 * (sub-)block. Each row's result depends only on that row (not on n or the other rows): the
 * same row dotted alone gives the same bits.
 *
 * Three implementations, picked at compile time: 256-bit AVX2 (maddubs/madd), with
 * vpdpbusd/vpdpwssd where the compiler targets AVX512-VNNI+VL or AVX-VNNI, and portable C.
 * With AVX512-BW and VNNI, the K-quants' dots of more than 6 rows take 512-bit products
 * that unpack each weight block once for all rows (batched decode). All compute the same
 * integer sums. For the K-quants every path then scales each super-block's exact integer
 * total in f32 the same way (the portable path's order), so all of them give the same bits;
 * for the 32-element types the SIMD and portable f32 results differ by summation order. */
#ifndef REDIT_CORE_QUANT_DOT_H
#define REDIT_CORE_QUANT_DOT_H

#include <stddef.h>
#include <stdint.h>

#include "redit/dtype.h"

typedef enum rd_q8_format { RD_Q8_NONE = 0, RD_Q8_32 = 1, RD_Q8_256 = 2 } rd_q8_format;

typedef struct rd_q8_block32 {
    float d;      /* scale */
    int32_t sum;  /* Σ q */
    int8_t q[32];
} rd_q8_block32;

typedef struct rd_q8_block256 {
    float d;
    int8_t q[256];
    int16_t sums[16]; /* sums[k] = Σ q[16k .. 16k+15] */
} rd_q8_block256;

/* The activation format weights of type t are dotted against; RD_Q8_NONE when t has no
 * integer dot (F32, F16, BF16). */
rd_q8_format rd_q8_format_of(rd_dtype t);

/* Bytes of one quantised row of `cols` values (a multiple of the format's block; 4-byte
 * aligned sizes, so rows may follow each other in a float scratch). */
size_t rd_q8_row_bytes(rd_q8_format f, int64_t cols);

/* Quantises x (cols floats) into dst (rd_q8_row_bytes(f, cols) bytes, 4-byte aligned). */
void rd_q8_quantize(rd_q8_format f, const float *x, void *dst, int64_t cols);

/* Rows one rd_quant_dot_fn call takes at most (batched decode: one weight block unpacked
 * for all of them). */
#define RD_QUANT_DOT_MAX_ROWS 8

/* out[i] = Σ_c w[c] · y_i[c] for i < n (1 ≤ n ≤ RD_QUANT_DOT_MAX_ROWS): w one weight row of
 * cols values in its storage type, y_i the quantised rows at (const char *)y + i·y_stride
 * (bytes), in the format rd_q8_format_of gives. */
typedef void (*rd_quant_dot_fn)(const void *w, const void *y, size_t y_stride, int n,
                                int64_t cols, float *out);

/* The fastest dot this build has for type t, or NULL when rd_q8_format_of(t) is NONE. */
rd_quant_dot_fn rd_quant_dot_for(rd_dtype t);

/* The portable C dot for t (tests compare the SIMD paths with it), or NULL. */
rd_quant_dot_fn rd_quant_dot_portable(rd_dtype t);

/* Which path rd_quant_dot_for takes in this build: "avx512-vnni", "avx-vnni", "avx2" or
 * "portable" (for test output and reports). */
const char *rd_quant_dot_path(void);

#endif
