/* Integer dot products of quantized rows against 8-bit activation blocks
 * (src/core/quant_dot.c) and decode with them (rd_matrix.q8_products).
 *
 * - Activation quantisation: |x − d·q| ≤ d/2 per value, the block sums, zeros, NaN.
 * - Every type, random blocks (random quant bytes; f16 scales from a set with huge, tiny,
 *   subnormal, zero and negative values, so negative minimums too; all-zero blocks) against
 *   activations with outliers and all-zero blocks:
 *     (a) the dot equals Σ w·x̂ (w widened exactly, x̂ = d·q the rounded activations, summed
 *         in double) up to f32 rounding: 3e-5 · Σ|w·x̂| — the integer arithmetic is exact;
 *     (b) it is within the rounding bound of the exact Σ w·x: Σ_blocks (d/2)·Σ|w| (each
 *         activation moved by at most d/2), plus the same f32 slack;
 *     (c) the SIMD path (the build's) equals the portable path up to summation order:
 *         1e-5 · Σ|w·x̂|;
 *   and, for Gaussian activations, |dot − Σ w·x| ≤ 1 % of Σ|w·x|.
 * - n = 1..RD_QUANT_DOT_MAX_ROWS rows in one dot call: each result bit for bit the row's
 *   dot alone (and, for the K-quants, the portable path's).
 * - rd_matmul / rd_matmul_many with the flag: equal to the dots, the quantised inputs shared
 *   between matrices of one format; rd_matmul_many_rows (batched decode, up to 19 rows):
 *   equal to each row's dot alone; flag off: unchanged.
 * - A small model of each type decoding with the flag on vs off: logits within 3 % of the
 *   f32 logits' range (llama.cpp's move 1–3 %); the figure per type is printed. */
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
#include "core/kernels.h"
#include "core/pool.h"
#include "core/quant_dot.h"
#include "redit/dtype.h"
#include "redit/forward.h"
#include "redit/model.h"
#include "redit/rng.h"

static const rd_dtype QTYPES[] = {RD_DTYPE_Q4_0, RD_DTYPE_Q4_1, RD_DTYPE_Q5_0, RD_DTYPE_Q5_1,
                                  RD_DTYPE_Q8_0, RD_DTYPE_Q2_K, RD_DTYPE_Q3_K, RD_DTYPE_Q4_K,
                                  RD_DTYPE_Q5_K, RD_DTYPE_Q6_K, RD_DTYPE_IQ4_NL, RD_DTYPE_IQ4_XS};
#define N_QTYPES (sizeof QTYPES / sizeof QTYPES[0])

static float uniform(uint64_t *s) { return (float)((rd_splitmix64(s) >> 40) + 0.5) / 16777216.0f; }

static float gaussian(uint64_t *s) {
    return sqrtf(-2.0f * logf(uniform(s))) * cosf(6.2831853f * uniform(s));
}

/* f16 scales put into blocks: 1, 1/3, −0.5, 0.1, subnormal, 0, 12.1, 2048, −3e-5 */
static const uint16_t F16S[] = {0x3C00, 0x3555, 0xB800, 0x2E66, 0x0201,
                                0x0000, 0x4A10, 0x6800, 0x81F7};

/* One row of `cols` values of type t: random bytes, f16 scale fields from F16S, every 5th
 * block all zero. */
static void random_row(rd_dtype t, uint8_t *row, int64_t cols, uint64_t *s) {
    const rd_dtype_info *info = rd_dtype_info_of(t);
    const size_t nb = (size_t)cols / info->block_elems;
    for (size_t b = 0; b < nb; b++) {
        uint8_t *p = row + b * info->block_bytes;
        if (rd_splitmix64(s) % 5 == 0) {
            memset(p, 0, info->block_bytes);
            continue;
        }
        for (size_t i = 0; i < info->block_bytes; i++) p[i] = (uint8_t)rd_splitmix64(s);
        for (int k = 0; k < 2; k++)
            if (info->scale_at[k] >= 0) {
                const uint16_t h = F16S[rd_splitmix64(s) % (sizeof F16S / 2)];
                memcpy(p + info->scale_at[k], &h, 2);
            }
    }
}

/* Activations: Gaussian, with kind 1: an outlier of 40 in every 64; kind 2: every third
 * 32-block zero; kind 3: tiny values (1e-30). */
static void random_x(float *x, int64_t cols, int kind, uint64_t *s) {
    for (int64_t c = 0; c < cols; c++) {
        float v = gaussian(s);
        if (kind == 1 && c % 64 == 17) v = 40.0f;
        if (kind == 2 && (c / 32) % 3 == 0) v = 0.0f;
        if (kind == 3) v *= 1e-30f;
        x[c] = v;
    }
}

/* x̂ = d·q of a quantised row (the values the integer dot sees) and the per-value d. */
static void dequant_x(rd_q8_format f, const void *q, int64_t cols, float *xh, float *d) {
    if (f == RD_Q8_32) {
        const rd_q8_block32 *b = q;
        for (int64_t c = 0; c < cols; c++) {
            d[c] = b[c / 32].d;
            xh[c] = d[c] * (float)b[c / 32].q[c % 32];
        }
    } else {
        const rd_q8_block256 *b = q;
        for (int64_t c = 0; c < cols; c++) {
            d[c] = b[c / 256].d;
            xh[c] = d[c] * (float)b[c / 256].q[c % 256];
        }
    }
}

static void test_quantize(void **state) {
    (void)state;
    uint64_t s = 5;
    float x[512], xh[512], d[512];
    static unsigned char q[2048];
    for (int f = RD_Q8_32; f <= RD_Q8_256; f++)
        for (int kind = 0; kind < 4; kind++) {
            random_x(x, 512, kind, &s);
            rd_q8_quantize((rd_q8_format)f, x, q, 512);
            dequant_x((rd_q8_format)f, q, 512, xh, d);
            for (int c = 0; c < 512; c++) {
                assert_true(fabsf(x[c] - xh[c]) <= d[c] * 0.5f * 1.0001f + 1e-38f);
                if (x[c] == 0.0f) assert_true(xh[c] == 0.0f);
            }
            if (f == RD_Q8_32) {
                const rd_q8_block32 *b = (const rd_q8_block32 *)q;
                for (int k = 0; k < 16; k++) {
                    int sum = 0;
                    for (int j = 0; j < 32; j++) sum += b[k].q[j];
                    assert_int_equal(sum, b[k].sum);
                }
            } else {
                const rd_q8_block256 *b = (const rd_q8_block256 *)q;
                for (int k = 0; k < 32; k++) {
                    int sum = 0;
                    for (int j = 0; j < 16; j++) sum += b[k / 16].q[16 * (k % 16) + j];
                    assert_int_equal(sum, b[k / 16].sums[k % 16]);
                }
            }
        }
    /* a value that is not finite makes its block's scale NaN */
    random_x(x, 512, 0, &s);
    x[40] = NAN;
    x[300] = INFINITY;
    rd_q8_quantize(RD_Q8_32, x, q, 512);
    assert_true(isnan(((rd_q8_block32 *)q)[1].d) && isnan(((rd_q8_block32 *)q)[9].d));
    assert_false(isnan(((rd_q8_block32 *)q)[0].d));
    rd_q8_quantize(RD_Q8_256, x, q, 512);
    assert_true(isnan(((rd_q8_block256 *)q)[0].d) && isnan(((rd_q8_block256 *)q)[1].d));
}

#define COLS 1024
#define NROWS 3 /* activation rows per dot call */

typedef struct dot_stats {
    double worst_gauss; /* the largest |dot − exact| / Σ|w·x| over Gaussian activations */
} dot_stats;

/* One weight row against NROWS activation rows of the given kinds: checks (a)–(c). */
static void check_dot(rd_dtype t, uint64_t *s, dot_stats *st) {
    const rd_q8_format f = rd_q8_format_of(t);
    const rd_dtype_info *info = rd_dtype_info_of(t);
    static uint8_t row[COLS * 2];
    static float w[COLS], x[NROWS][COLS], xh[COLS], d[COLS];
    static unsigned char q[NROWS][COLS * 2];
    const size_t qb = rd_q8_row_bytes(f, COLS);
    assert_true(qb <= sizeof q[0]);
    random_row(t, row, COLS, s);
    info->to_f32(row, w, COLS);
    int kinds[NROWS];
    for (int i = 0; i < NROWS; i++) {
        kinds[i] = (int)(rd_splitmix64(s) % 4);
        random_x(x[i], COLS, kinds[i], s);
        rd_q8_quantize(f, x[i], q[i], COLS);
    }
    float fast[NROWS], port[NROWS];
    rd_quant_dot_for(t)(row, q, sizeof q[0], NROWS, COLS, fast);
    rd_quant_dot_portable(t)(row, q, sizeof q[0], NROWS, COLS, port);
    for (int i = 0; i < NROWS; i++) {
        dequant_x(f, q[i], COLS, xh, d);
        double exact = 0, quant = 0, mag = 0, magq = 0, bound = 0;
        for (int c = 0; c < COLS; c++) {
            exact += (double)w[c] * x[i][c];
            quant += (double)w[c] * xh[c];
            mag += fabs((double)w[c] * x[i][c]);
            magq += fabs((double)w[c] * xh[c]);
            bound += 0.5 * (double)d[c] * fabs((double)w[c]);
        }
        const double slack = 3e-5 * magq + 1e-35;
        if (fabs(port[i] - quant) > slack || fabs(fast[i] - quant) > slack ||
            fabs(fast[i] - port[i]) > 1e-5 * magq + 1e-35 ||
            fabs(port[i] - exact) > bound + slack + 3e-5 * mag)
            fail_msg("%s (x kind %d): portable %.9g, %s %.9g, Σ w·x̂ %.9g, Σ w·x %.9g, "
                     "Σ|w·x̂| %.3g, rounding bound %.3g",
                     info->name, kinds[i], (double)port[i], rd_quant_dot_path(), (double)fast[i],
                     quant, exact, magq, bound);
        if (kinds[i] == 0 && mag > 0) {
            const double rel = fabs(fast[i] - exact) / mag;
            if (rel > st->worst_gauss) st->worst_gauss = rel;
        }
    }
}

static void test_dot_all_types(void **state) {
    (void)state;
    print_message("quant_dot path: %s\n", rd_quant_dot_path());
    for (size_t k = 0; k < N_QTYPES; k++) {
        uint64_t s = 1000 + k;
        dot_stats st = {0};
        for (int rep = 0; rep < 60; rep++) check_dot(QTYPES[k], &s, &st);
        print_message("%-5s worst |int − f32| / Σ|w·x| (Gaussian x): %.2e\n",
                      rd_dtype_info_of(QTYPES[k])->name, st.worst_gauss);
        assert_true(st.worst_gauss <= 0.01);
    }
    assert_null(rd_quant_dot_for(RD_DTYPE_F16));
    assert_int_equal(rd_q8_format_of(RD_DTYPE_BF16), RD_Q8_NONE);
}

/* Equal bits, NaN equal to NaN. */
static int same_float(float a, float b) {
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Every type, n = 1 .. RD_QUANT_DOT_MAX_ROWS rows in one call (batched decode): each result
 * has the bits of the same row dotted alone (n = 1), whatever n and the other rows are; the
 * K-quants' SIMD path (512-bit products for n > 1 where the build has AVX512-VNNI) also has
 * the portable path's bits, as quant_dot.c states. 1024 and 2816 columns (4 and 11 blocks of
 * 256), activations of every kind. */
static void test_dot_rows_bit_exact(void **state) {
    (void)state;
    enum { R = RD_QUANT_DOT_MAX_ROWS, MAXC = 2816 };
    static uint8_t row[MAXC * 2];
    static float x[MAXC];
    static unsigned char q[R][MAXC * 2];
    const int64_t COLSET[] = {1024, 2816};
    for (size_t k = 0; k < N_QTYPES; k++) {
        const rd_dtype t = QTYPES[k];
        const rd_q8_format f = rd_q8_format_of(t);
        const int kquant = f == RD_Q8_256;
        uint64_t s = 3000 + k;
        for (int rep = 0; rep < 8; rep++) {
            const int64_t cols = COLSET[rep % 2];
            random_row(t, row, cols, &s);
            for (int i = 0; i < R; i++) {
                random_x(x, cols, (int)(rd_splitmix64(&s) % 4), &s);
                rd_q8_quantize(f, x, q[i], cols);
            }
            float alone[R], port[R];
            for (int i = 0; i < R; i++) {
                rd_quant_dot_for(t)(row, q[i], sizeof q[0], 1, cols, &alone[i]);
                rd_quant_dot_portable(t)(row, q[i], sizeof q[0], 1, cols, &port[i]);
            }
            for (int n = 1; n <= R; n++)
                for (int i0 = 0; i0 + n <= R; i0 += n) { /* the rows i0 .. i0+n−1 together */
                    float fast[R], pn[R];
                    rd_quant_dot_for(t)(row, q[i0], sizeof q[0], n, cols, fast);
                    rd_quant_dot_portable(t)(row, q[i0], sizeof q[0], n, cols, pn);
                    for (int i = 0; i < n; i++) {
                        if (!same_float(fast[i], alone[i0 + i]) || !same_float(pn[i], port[i0 + i]))
                            fail_msg("%s, %lld cols, row %d of %d: %s %.9g (alone %.9g), "
                                     "portable %.9g (alone %.9g)",
                                     rd_dtype_info_of(t)->name, (long long)cols, i, n,
                                     rd_quant_dot_path(), (double)fast[i],
                                     (double)alone[i0 + i], (double)pn[i],
                                     (double)port[i0 + i]);
                        if (kquant && !same_float(fast[i], pn[i]))
                            fail_msg("%s, %lld cols, row %d of %d: %s %.9g, portable %.9g",
                                     rd_dtype_info_of(t)->name, (long long)cols, i, n,
                                     rd_quant_dot_path(), (double)fast[i], (double)pn[i]);
                    }
                }
        }
    }
}

/* rd_matmul / rd_matmul_many with q8_products: row r of the output equals the dot of row r;
 * n = 1..4 rows, on a pool and without. */
static void test_matmul_flag(void **state) {
    (void)state;
    rd_error err = {{0}};
    rd_pool *pool = rd_pool_new(2, &err);
    assert_non_null(pool);
    const int64_t rows = 70, cols = 512;
    enum { NT = 5 };
    const rd_dtype types[NT] = {RD_DTYPE_Q4_K, RD_DTYPE_Q8_0, RD_DTYPE_Q6_K, RD_DTYPE_IQ4_NL,
                                RD_DTYPE_IQ4_XS};
    uint8_t *data[NT];
    rd_matrix W[NT];
    uint64_t s = 77;
    for (int k = 0; k < NT; k++) {
        const size_t rb = (size_t)cols / rd_dtype_info_of(types[k])->block_elems *
                          rd_dtype_info_of(types[k])->block_bytes;
        data[k] = malloc(rb * (size_t)rows);
        assert_non_null(data[k]);
        for (int64_t r = 0; r < rows; r++) random_row(types[k], data[k] + (size_t)r * rb, cols, &s);
        assert_int_equal(rd_matrix_init(&W[k], types[k], data[k], rows, cols, &err), 0);
        W[k].bf16 = NULL;
        W[k].q8_products = 1;
    }
    enum { MAXN = 19 }; /* rd_matmul_many_rows: groups of 8 and a remainder */
    size_t sc = 0;
    for (int k = 0; k < NT; k++) sc += rd_matmul_scratch_floats(&W[k], MAXN);
    float *scratch = malloc(sc * sizeof *scratch);
    float *x = malloc(sizeof(float) * MAXN * (size_t)cols);
    float *out[NT], *ref = malloc(sizeof(float) * 4 * (size_t)rows);
    unsigned char *q = malloc(MAXN * (size_t)cols * 2);
    assert_true(scratch && x && ref && q);
    for (int k = 0; k < NT; k++)
        assert_non_null(out[k] = malloc(sizeof(float) * MAXN * (size_t)rows));
    for (int n = 1; n <= 4; n++) {
        for (int i = 0; i < n; i++) random_x(x + (size_t)i * cols, cols, i % 3, &s);
        for (int p = 0; p < 2; p++) {
            /* at most RD_MATMUL_MANY_MAX at once: IQ4_NL shares Q8_0's quantised input */
            const rd_matrix *Ws[NT] = {&W[0], &W[1], &W[2], &W[3], &W[4]};
            rd_matmul_many(out, x, Ws, 4, n, scratch, p ? pool : NULL);
            rd_matmul_many(out + 4, x, Ws + 4, NT - 4, n, scratch, p ? pool : NULL);
            for (int k = 0; k < NT; k++) {
                const rd_q8_format f = rd_q8_format_of(types[k]);
                const size_t qs = rd_q8_row_bytes(f, cols);
                for (int i = 0; i < n; i++) rd_q8_quantize(f, x + (size_t)i * cols, q + i * qs, cols);
                for (int64_t r = 0; r < rows; r++) {
                    float o[4];
                    rd_quant_dot_for(types[k])(data[k] + (size_t)r * W[k].row_bytes, q, qs, n,
                                               cols, o);
                    for (int i = 0; i < n; i++)
                        assert_true(out[k][(size_t)i * rows + r] == o[i]);
                }
            }
            /* flag off: the widened f32 path, as before (within f32 sums of the naive one) */
            W[0].q8_products = 0;
            rd_matmul(out[0], x, &W[0], n, scratch, p ? pool : NULL);
            rd_matmul_naive(ref, x, &W[0], n);
            for (int64_t e = 0; e < n * rows; e++)
                assert_true(fabsf(out[0][e] - ref[e]) <= 1e-4f * (1.0f + fabsf(ref[e])));
            W[0].q8_products = 1;
        }
    }
    /* batched decode: n rows through rd_matmul_many_rows, each output row the dot of that
     * input row alone */
    const int NS[] = {5, 8, 13, MAXN};
    for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++) {
        const int n = NS[ni];
        for (int i = 0; i < n; i++) random_x(x + (size_t)i * cols, cols, i % 4, &s);
        for (int p = 0; p < 2; p++) {
            const rd_matrix *Ws[NT] = {&W[0], &W[1], &W[2], &W[3], &W[4]};
            rd_matmul_many_rows(out, x, Ws, 4, n, scratch, p ? pool : NULL);
            rd_matmul_many_rows(out + 4, x, Ws + 4, NT - 4, n, scratch, p ? pool : NULL);
            for (int k = 0; k < NT; k++) {
                const rd_q8_format f = rd_q8_format_of(types[k]);
                const size_t qs = rd_q8_row_bytes(f, cols);
                for (int i = 0; i < n; i++) rd_q8_quantize(f, x + (size_t)i * cols, q + i * qs, cols);
                for (int64_t r = 0; r < rows; r++)
                    for (int i = 0; i < n; i++) {
                        float o;
                        rd_quant_dot_for(types[k])(data[k] + (size_t)r * W[k].row_bytes,
                                                   q + i * qs, qs, 1, cols, &o);
                        if (!same_float(out[k][(size_t)i * rows + r], o))
                            fail_msg("%s, %d rows: output (%d, %lld) %.9g, the row alone %.9g",
                                     rd_dtype_info_of(types[k])->name, n, i, (long long)r,
                                     (double)out[k][(size_t)i * rows + r], (double)o);
                    }
            }
        }
    }
    for (int k = 0; k < NT; k++) {
        free(data[k]);
        free(out[k]);
    }
    free(scratch);
    free(x);
    free(ref);
    free(q);
    rd_pool_free(pool);
}

/* ---- a small model decoding with the flag on and off ------------------------------------ */

static rd_config k_config(void) {
    rd_config c = tiny_config();
    c.dim = 256;
    c.hidden_dim = 512;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 256;
    c.seq_len = 32;
    return c;
}

/* Logits (T, vocab), one token at a time. */
static void decode(rd_model *m, const int *tokens, int T, float *logits) {
    rd_error err = {{0}};
    const int V = rd_model_config(m)->vocab_size;
    rd_ctx *c = rd_ctx_new(m, 1, T, &err);
    if (!c) fail_msg("%s", err.msg);
    for (int t = 0; t < T; t++)
        if (rd_forward(c, NULL, tokens + t, 1, 1, RD_LOGITS_LAST, logits + (size_t)t * V, &err))
            fail_msg("%s", err.msg);
    rd_ctx_free(c);
}

static void test_model_decode(void **state) {
    (void)state;
    const rd_config cfg = k_config();
    enum { T = 12 };
    int tokens[T];
    for (int t = 0; t < T; t++) tokens[t] = (t * 37 + 5) % cfg.vocab_size;
    const size_t n = (size_t)T * cfg.vocab_size;
    float *off = malloc(n * sizeof *off), *on = malloc(n * sizeof *on);
    assert_true(off && on);
    for (size_t k = 0; k < N_QTYPES; k++) {
        rd_model_file f;
        rd_error err = {{0}};
        if (rd_model_file_random(&f, &cfg, 0, 40 + k, QTYPES[k], &err)) fail_msg("%s", err.msg);
        rd_model *m = rd_model_from_file(&f, NULL, &err);
        if (!m) fail_msg("%s", err.msg);
        assert_int_equal(rd_model_quant_products(m), 0);
        decode(m, tokens, T, off);
        assert_int_equal(rd_model_set_quant_products(m, 1, &err), 0);
        assert_int_equal(rd_model_quant_products(m), 1);
        decode(m, tokens, T, on);
        double worst = 0;
        for (int t = 0; t < T; t++) {
            const float *a = off + (size_t)t * cfg.vocab_size, *b = on + (size_t)t * cfg.vocab_size;
            float lo = a[0], hi = a[0], dmax = 0;
            for (int v = 0; v < cfg.vocab_size; v++) {
                lo = fminf(lo, a[v]);
                hi = fmaxf(hi, a[v]);
                dmax = fmaxf(dmax, fabsf(a[v] - b[v]));
            }
            assert_true(hi > lo);
            if (dmax / (hi - lo) > worst) worst = dmax / (hi - lo);
        }
        print_message("%-5s decode logits, q8 products vs f32: max |Δ| / range %.4f\n",
                      rd_dtype_info_of(QTYPES[k])->name, worst);
        assert_true(worst > 0);      /* the flag changes the path */
        assert_true(worst <= 0.03);  /* llama.cpp's move: 1–3 % */
        /* off again: the f32 reference, bit for bit */
        assert_int_equal(rd_model_set_quant_products(m, 0, &err), 0);
        decode(m, tokens, T, on);
        assert_memory_equal(on, off, n * sizeof *on);
        /* refused while in use */
        rd_model_use_begin(m);
        assert_int_equal(rd_model_set_quant_products(m, 1, &err), -1);
        assert_non_null(strstr(err.msg, "while a job"));
        rd_model_use_end(m);
        assert_int_equal(rd_model_quant_products(m), 0);
        rd_model_free(m);
    }
    free(off);
    free(on);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize),
        cmocka_unit_test(test_dot_all_types),
        cmocka_unit_test(test_dot_rows_bit_exact),
        cmocka_unit_test(test_matmul_flag),
        cmocka_unit_test(test_model_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
