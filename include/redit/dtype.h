/* redit — element types of frozen weights (core layer).
 *
 * A type is one row of a table (rd_dtype_info) plus its conversion functions, so a new
 * quantisation is one enum value, one table row and a dequantize function. Edit vectors,
 * activations and gradients are always f32. */
#ifndef REDIT_DTYPE_H
#define REDIT_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum rd_dtype {
    RD_DTYPE_F32 = 0,
    RD_DTYPE_F16,
    RD_DTYPE_BF16,
    RD_DTYPE_Q8_0, /* blocks of 32: f16 scale d, 32 × int8 q; x = d·q (llama.cpp layout) */
    /* llama.cpp's block quantisations, widened bit-exactly as its dequantize_row_*
     * (layouts in src/core/quants.h): blocks of 32 ... */
    RD_DTYPE_Q4_0,
    RD_DTYPE_Q4_1,
    RD_DTYPE_Q5_0,
    RD_DTYPE_Q5_1,
    /* ... and the K-quants, super-blocks of 256 */
    RD_DTYPE_Q2_K,
    RD_DTYPE_Q3_K,
    RD_DTYPE_Q4_K,
    RD_DTYPE_Q5_K,
    RD_DTYPE_Q6_K,
    /* ... and the non-linear 4-bit types: IQ4_NL (blocks of 32), IQ4_XS (256) */
    RD_DTYPE_IQ4_NL,
    RD_DTYPE_IQ4_XS,
    RD_DTYPE_COUNT
} rd_dtype;

typedef struct rd_dtype_info {
    const char *name;   /* "F32", "F16", "BF16", "Q8_0", "Q4_K", ... (the GGML names) */
    size_t block_elems; /* elements per block: 1 for plain types, 32 or 256 for quants */
    size_t block_bytes; /* bytes per block */
    /* Widens n elements (n a multiple of block_elems) at src into dst (n floats). */
    void (*to_f32)(const void *src, float *dst, size_t n);
    /* Narrows n floats (n a multiple of block_elems) into this type at dst, rounding as
     * the reference implementation does (round-to-nearest-even for f16/bf16, llama.cpp's
     * quantize_row_*_ref for Q4_0..Q8_0, quantize_iq4_nl/xs without an importance matrix
     * for IQ4_NL/IQ4_XS); the K-quants use a simpler min/max quantiser that writes valid
     * blocks but not llama.cpp's (see src/core/quants.h). */
    void (*from_f32)(const float *src, void *dst, size_t n);
    /* Quantised types: the byte offsets in a block of its f16 scales (d, and the minimum's
     * scale where the type has one; -1 = none). A block widens to finite values exactly when
     * its scales are finite (the quants are small integers), which rd_dtype_find_nonfinite
     * uses. Plain types: both -1. */
    int16_t scale_at[2];
} rd_dtype_info;

/* Table row for t, or NULL when t is not a valid rd_dtype. Static storage. */
const rd_dtype_info *rd_dtype_info_of(rd_dtype t);

/* Looks a type up by its name ("F16", case-sensitive). Returns -1 if unknown. */
int rd_dtype_from_name(const char *name, rd_dtype *out);

/* Bytes taken by n elements of type t. Returns -1 when n is not a whole number of
 * blocks or the size overflows 64 bits, else 0 with *bytes set. */
int rd_dtype_bytes(rd_dtype t, uint64_t n, uint64_t *bytes);

/* The first element of the n elements of type t at src (n a whole number of blocks) that
 * is not finite (NaN or ±Inf), or -1 when all are finite. For a quantised type the first
 * element of the first block whose scale is not finite. Reads every byte of a plain type and
 * the scales of every block of a quantised one; vectorised, so it runs at memory speed. */
int64_t rd_dtype_find_nonfinite(rd_dtype t, const void *src, uint64_t n);

/* Scalar conversions (exact for every finite value, inf and NaN preserved). */
float rd_f16_to_f32(uint16_t h);
uint16_t rd_f32_to_f16(float f);
float rd_bf16_to_f32(uint16_t h);

/* f32 → bf16, round to nearest even (NaN stays a quiet NaN). Inline: the packing loops of
 * the bf16 GEMM call it for every element. */
static inline uint16_t rd_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

#endif
