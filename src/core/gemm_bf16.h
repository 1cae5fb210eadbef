/* redit — bf16 GEMM with f32 accumulation for frozen weights (core layer).
 *
 * A frozen weight W (N, K) — rows are output features, as in rd_matrix — is rounded to
 * bf16 once, at load, and packed into column panels for the multiply kernel. At each call
 * the f32 activations A are rounded to bf16 block by block (round-to-nearest-even, exactly
 * as rd_f32_to_bf16) and the products are summed in f32 — the arithmetic of PyTorch's bf16
 * autocast. Two products are served:
 *
 *   FORWARD   C (M, N) = A (M, K) · Wᵀ      y = x · Wᵀ, the forward pass
 *   BACKWARD  C (M, K) = A (M, N) · W       dX = dY · W, the activation gradient
 * and, with both operands f32 activations rounded at the call (rd_gemm_bf16_tn),
 *   C (M, N) = Aᵀ · B, A (K, M), B (K, N)   dW = dYᵀ · X, the weight gradient
 *
 * Kernels: AMX (tdpbf16ps on 16 × 16 tiles) where the CPU has AMX-BF16 and the OS grants
 * the tile permission, else AVX512-BF16 (vdpbf16ps) where the CPU has it, chosen at run
 * time, and a portable C kernel everywhere else. All multiply the same bf16 values and sum
 * in f32; they differ only in the order of the f32 additions (and AMX and vdpbf16ps flush
 * denormal inputs and results to zero).
 *
 * Weights without a packed copy (a model too large to keep one, rd_gemm_bf16_matrix) are
 * widened, rounded and packed into per-thread, cache-sized slices of the same panels at each
 * call: the same bf16 values and the same additions as with the packed copy. */
#ifndef REDIT_GEMM_BF16_H
#define REDIT_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "redit/error.h"
#include "redit/weights.h"

struct rd_pool;

/* Columns of C per packed panel (two zmm registers of f32). */
#define RD_BF16_PANEL 32

/* Which packings to build (flags, may be or-ed) and which product to run. */
typedef enum rd_bf16_mode {
    RD_BF16_FORWARD = 1,  /* C (M, W.rows) = A (M, W.cols) · Wᵀ */
    RD_BF16_BACKWARD = 2, /* C (M, W.cols) = A (M, W.rows) · W  */
} rd_bf16_mode;

/* One packed right-hand operand B (k, n) of C = A · B, in bf16.
 * data (n_panels, k_stride, RD_BF16_PANEL) 32-bit words: word [j][p][c] holds
 * B[2p][32j + c] in its low 16 bits and B[2p + 1][32j + c] in its high 16 bits — the
 * operand layout of vdpbf16ps, and (16 columns at a time) of an AMX B tile. Columns past n,
 * the odd row past k and the pairs from k_pairs to k_stride are zero, so edge tiles run the
 * same inner loop. 64-byte aligned. */
typedef struct rd_bf16_panels {
    int64_t n;        /* columns of B = columns of C */
    int64_t k;        /* rows of B = the inner (summed) dimension */
    int64_t k_pairs;  /* ceil(k / 2) */
    int64_t n_panels; /* ceil(n / RD_BF16_PANEL) */
    int64_t k_stride; /* pairs per panel in data: k_pairs rounded up to 16 (AMX tile rows) */
    uint32_t *data;   /* (n_panels, k_stride, RD_BF16_PANEL); NULL when not packed */
} rd_bf16_panels;

/* A frozen weight W (rows, cols) in bf16, packed for one or both products, or for none: a
 * weight with no panels marks W for bf16 products packed on the fly (rd_gemm_bf16_matrix).
 * Read-only after rd_bf16_weight_new; safe to use from several threads at once. */
typedef struct rd_bf16_weight {
    int64_t rows;       /* N: output features of the forward product */
    int64_t cols;       /* K: input features of the forward product */
    rd_bf16_panels fwd; /* B = Wᵀ (cols, rows); data NULL unless RD_BF16_FORWARD was packed */
    rd_bf16_panels bwd; /* B = W  (rows, cols); data NULL unless RD_BF16_BACKWARD was packed */
} rd_bf16_weight;

/* Packs W (any rd_dtype: rows are widened with rd_matrix_row_f32, then rounded with
 * rd_f32_to_bf16) for the products in `modes` (RD_BF16_FORWARD | RD_BF16_BACKWARD, or 0:
 * no panels, only the shape — the mark of a weight multiplied by rd_gemm_bf16_matrix). W is
 * only read during the call: the result owns its own copy and does not borrow W's storage.
 * pool (may be NULL) spreads the packing over its threads.
 * Returns a new weight, freed by rd_bf16_weight_free, or NULL with *err set (empty or
 * oversized matrix, no mode, out of memory). */
rd_bf16_weight *rd_bf16_weight_new(const rd_matrix *W, unsigned modes, struct rd_pool *pool,
                                   rd_error *err);

/* 1 when w is the mark of a weight multiplied from its matrix (no panels). */
static inline int rd_bf16_weight_on_the_fly(const rd_bf16_weight *w) {
    return w && !w->fwd.data && !w->bwd.data;
}

/* Frees w and its panels. NULL-safe. */
void rd_bf16_weight_free(rd_bf16_weight *w);

/* Bytes held by w's packed panels (for memory reports). */
size_t rd_bf16_weight_bytes(const rd_bf16_weight *w);

/* Bytes rd_bf16_weight_new(W, modes, ..) would hold for a matrix of this shape (0 for an
 * empty or oversized one), to decide before packing whether the copies fit in memory. */
size_t rd_bf16_weight_bytes_for(int64_t rows, int64_t cols, unsigned modes);

/* Multiply kernels. AUTO picks AMX where it runs, else AVX512BF16 when the CPU supports
 * it, else PORTABLE. */
typedef enum rd_gemm_kernel {
    RD_GEMM_KERNEL_AUTO = 0,
    RD_GEMM_KERNEL_PORTABLE,   /* plain C: widen bf16 to f32 and multiply-add */
    RD_GEMM_KERNEL_AVX512BF16, /* vdpbf16ps; x86-64 with AVX512F/BW/BF16 only */
    RD_GEMM_KERNEL_AMX,        /* tdpbf16ps; AMX-TILE/BF16 and AVX512-BF16, Linux granting
                                * the tile state (arch_prctl ARCH_REQ_XCOMP_PERM) */
} rd_gemm_kernel;

/* 1 when kernel k can run on this CPU and build (AUTO and PORTABLE always can). The first
 * call asking about AMX requests the tile permission for the process. */
int rd_gemm_kernel_available(rd_gemm_kernel k);

/* Name of kernel k ("amx", "avx512bf16" or "portable"), AUTO resolved for this CPU; static
 * storage. */
const char *rd_gemm_kernel_name(rd_gemm_kernel k);

/* Optional settings of one call; NULL means all defaults. */
typedef struct rd_gemm_bf16_opts {
    rd_gemm_kernel kernel; /* AUTO by default; tests force PORTABLE to cover the fallback */
} rd_gemm_bf16_opts;

/* Scratch needed by rd_gemm_bf16 with this pool (NULL = one thread): per-thread blocks of
 * A rounded to bf16, independent of the matrix shapes (about 600 KiB per thread). */
size_t rd_gemm_bf16_scratch_bytes(const struct rd_pool *pool);

/* The product selected by mode (one of RD_BF16_FORWARD, RD_BF16_BACKWARD; W must have
 * been packed for it):
 *   FORWARD   C (M, W.rows) = A (M, W.cols) · Wᵀ
 *   BACKWARD  C (M, W.cols) = A (M, W.rows) · W
 * Write K for the inner width (W.cols forward, W.rows backward) and N for C's width.
 * A: row i at A + i·lda, K floats read; lda ≥ K. Not modified.
 * C: row i at C + i·ldc, N floats written; ldc ≥ N. accumulate = 0 overwrites C (its old
 *    contents are never read), accumulate ≠ 0 adds the product to it. C must not overlap A.
 * A is rounded to bf16 (as rd_f32_to_bf16), products summed in f32.
 * pool: threads to split the work over (NULL = the caller alone); the call returns when
 *    all is done. Must not be called from inside a task of the same pool.
 * scratch: at least rd_gemm_bf16_scratch_bytes(pool) bytes, any alignment, not shared
 *    with a concurrent call; NULL makes the call allocate and free its own.
 * The result does not depend on the pool: each element's terms are added in the same
 * order however the work is split.
 * M = 0 does nothing. Returns 0, or -1 with *err set when W lacks the packing for mode,
 * the strides or sizes are invalid, the requested kernel is unavailable, or (scratch
 * NULL) memory runs out; C is then untouched. */
int rd_gemm_bf16(float *C, size_t ldc, const float *A, size_t lda, int64_t M,
                 const rd_bf16_weight *W, rd_bf16_mode mode, int accumulate,
                 struct rd_pool *pool, void *scratch, const rd_gemm_bf16_opts *opts,
                 rd_error *err);

/* Scratch needed by rd_gemm_bf16_tn for C (m, n) and k rows of A and B: both operands
 * rounded and packed once a call (about 2·(m + n)·k bytes). 0 for negative or oversized
 * shapes. */
size_t rd_gemm_bf16_tn_scratch_bytes(int64_t m, int64_t n, int64_t k);

/* C (M, N) (=|+=) Aᵀ · B: A (K, M) with row e at A + e·lda (lda ≥ M), B (K, N) with row e at
 * B + e·ldb (ldb ≥ N) — the weight gradient dW = dYᵀ · X of y = x · Wᵀ, with the K tokens
 * as rows of both. Both A and B are rounded to bf16 (as rd_f32_to_bf16) and the products
 * summed in f32, like rd_gemm_bf16; A and B are only read and must not overlap C.
 * C: row i at C + i·ldc (ldc ≥ N), N floats written; accumulate = 0 overwrites (K = 0 then
 * writes zeros), accumulate ≠ 0 adds. pool: as for rd_gemm_bf16. scratch: at least
 * rd_gemm_bf16_tn_scratch_bytes(M, N, K) bytes, any alignment, not shared with a
 * concurrent call; NULL makes the call allocate its own. The result does not depend on the
 * pool: A and B are rounded before the multiply, and each element's terms are summed in the
 * same order however the work is split. M or N = 0 does nothing. Returns 0, or -1 with *err set (invalid shape or stride,
 * kernel unavailable, out of memory with scratch NULL); C is then untouched. */
int rd_gemm_bf16_tn(float *C, size_t ldc, const float *A, size_t lda, const float *B,
                    size_t ldb, int64_t M, int64_t N, int64_t K, int accumulate,
                    struct rd_pool *pool, void *scratch, const rd_gemm_bf16_opts *opts,
                    rd_error *err);

/* Scratch needed by rd_gemm_bf16_matrix for M rows of A against W in `mode` with this pool:
 * A rounded once (about 2·M·K bytes) and one cache-sized slice of panels per thread (about
 * 1 MiB each). 0 for an invalid shape. */
size_t rd_gemm_bf16_matrix_scratch_bytes(int64_t M, const rd_matrix *W, rd_bf16_mode mode,
                                         const struct rd_pool *pool);

/* rd_gemm_bf16's products straight from W in its storage type (any rd_dtype; no packed copy
 * needed): each pool thread widens a slice of W (rd_dtype_info to_f32, whole blocks), rounds
 * it to bf16 and packs it into its scratch panels, then multiplies all M rows of A by it.
 *   FORWARD   C (M, W.rows) = A (M, W.cols) · Wᵀ
 *   BACKWARD  C (M, W.cols) = A (M, W.rows) · W
 * A, C, lda, ldc, accumulate, pool and opts as for rd_gemm_bf16; W is only read. The result
 * is the one rd_gemm_bf16 gives with W packed by rd_bf16_weight_new, bit for bit, for the
 * same kernel (and does not depend on the pool). scratch: at least
 * rd_gemm_bf16_matrix_scratch_bytes(M, W, mode, pool) bytes, any alignment, not shared with a
 * concurrent call; NULL makes the call allocate its own. M = 0 does nothing. Returns 0, or
 * -1 with *err set (invalid mode, shape or stride, kernel unavailable, out of memory with
 * scratch NULL); C is then untouched. */
int rd_gemm_bf16_matrix(float *C, size_t ldc, const float *A, size_t lda, int64_t M,
                        const rd_matrix *W, rd_bf16_mode mode, int accumulate,
                        struct rd_pool *pool, void *scratch, const rd_gemm_bf16_opts *opts,
                        rd_error *err);

#endif
