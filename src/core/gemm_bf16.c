/* bf16 GEMM with f32 accumulation: weight packing, blocking, threading and three kernels
 * (AMX, AVX512-BF16 and portable C). See src/core/gemm_bf16.h for the contract.
 *
 * The inner dimension is cut into k blocks of at most KC_PAIRS pairs (even sizes, so
 * K = 288 is one block, not 256 + 32). One task = a range of rows of A × a range of
 * panels of B; pool threads claim tasks (TASKS_PER_THREAD each, so a slowed core does
 * less). A task runs:
 *   for each block of ≤ MC rows of A
 *     for each group of ≤ KC_BLOCKS k blocks
 *       round the rows × group of A to bf16 pairs into the task's scratch slot
 *       (layout (k block, row, KC_PAIRS words): fixed row stride for the microkernel)
 *       for each block of NC panels (C block (rows, NC·32), stays in L2)
 *         for each k block of the group
 *           for each panel (its (kc, 32) slice of B, ≤ 20 KiB, stays in L1)
 *             for each tile of MR rows: C tile (MR, 32) (+)= A tile · B slice
 * The microkernel keeps MR × 2 zmm accumulators; per pair of k it loads the two B vectors
 * and multiplies them with each row's broadcast (a[2p], a[2p+1]) word (vdpbf16ps). The
 * terms of one C element are added in the same order whatever the task split, so results
 * do not depend on the number of threads.
 *
 * The AMX kernel runs the same loops with k blocks of a multiple of 16 pairs and A blocks of
 * a multiple of 32 rows: a step keeps a 32 × 32 block of C in four tile registers while
 * 16-pair tiles of A (16 packed rows, stride KC_PAIRS words) and B (16 pairs × 16 columns:
 * half of a panel row, stride 128 bytes) stream through the other four. Panels are padded
 * with zero pairs to a multiple of 16 so that the last k block reads whole tiles.
 *
 * Products straight from a matrix (rd_gemm_bf16_matrix): A is rounded once into shared
 * scratch, then each task takes ≤ FLY_PANELS panels of B and, FLY_KBLOCKS k blocks at a
 * time, widens that slice of W into its slot, packs it, and runs the same block multiply
 * over all rows of A: the same k blocks and the same additions as with a packed copy. */
#include "gemm_bf16.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "redit/dtype.h"
#include "pool.h"

/* RD_GEMM_NO_AVX512 builds the portable kernel only (to test a build for other CPUs). */
#if defined(__x86_64__) && !defined(RD_GEMM_NO_AVX512) && \
    (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12))
#define HAVE_AVX512BF16 1
#include <immintrin.h>
#define TARGET_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#else
#define HAVE_AVX512BF16 0
#endif

#define PANEL RD_BF16_PANEL
#define MR 12        /* rows of C per microkernel tile */
#define KC_PAIRS 160 /* most pairs of the inner dimension per block (= A's packed row stride) */
#define KC_BLOCKS 8  /* k blocks of A packed at once */
#define MC 120       /* most rows of A per packed block (a multiple of MR) */
#define NC 16        /* panels per block of C kept in cache across k blocks */
#define MIN_TASK_ROWS 96 /* fewest rows a task gets before N is split instead */
#define TASKS_PER_THREAD 4
#define MAX_SLOTS 64 /* scratch slots at most; threads beyond wait for a free one */

/* Packed A: (KC_BLOCKS, MC, KC_PAIRS) words, bf16 pairs (low half = even k). */
#define SLOT_WORDS ((size_t)KC_BLOCKS * MC * KC_PAIRS)
#define SLOT_BYTES (SLOT_WORDS * sizeof(uint32_t))
#define ALIGN 64

/* ---- scalar bf16 helpers --------------------------------------------------------- */

static inline uint32_t bf16_pair(float lo, float hi) {
    return (uint32_t)rd_f32_to_bf16(lo) | (uint32_t)rd_f32_to_bf16(hi) << 16;
}

static inline float pair_lo(uint32_t w) {
    uint32_t bits = w << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float pair_hi(uint32_t w) {
    uint32_t bits = w & 0xffff0000u;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- scratch slots ---------------------------------------------------------------- */

/* A task borrows one slot of per-thread memory for its whole run. At most as many tasks
 * run at once as the pool has threads, and there are that many slots, so a free one always
 * exists when a task starts. */
typedef struct slots {
    unsigned char *base; /* (n, slot_bytes), ALIGN-aligned */
    size_t slot_bytes;
    int n;
    atomic_int busy[MAX_SLOTS];
} slots;

static void slots_init(slots *s, void *mem, size_t slot_bytes, int n) {
    uintptr_t p = ((uintptr_t)mem + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
    s->base = (unsigned char *)p;
    s->slot_bytes = slot_bytes;
    s->n = n;
    for (int i = 0; i < MAX_SLOTS; i++) atomic_init(&s->busy[i], 0);
}

static int slot_claim(slots *s) {
    for (;;) {
        for (int i = 0; i < s->n; i++) {
            int expected = 0;
            if (atomic_compare_exchange_strong(&s->busy[i], &expected, 1)) return i;
        }
    }
}

static void slot_release(slots *s, int i) { atomic_store(&s->busy[i], 0); }

static void *slot_mem(const slots *s, int i) { return s->base + (size_t)i * s->slot_bytes; }

static int pool_slots(const struct rd_pool *pool) {
    int t = rd_pool_threads(pool);
    return t < 1 ? 1 : t > MAX_SLOTS ? MAX_SLOTS : t;
}

/* ---- weight packing ---------------------------------------------------------------- */

static inline int64_t pad16(int64_t x) { return (x + 15) & ~(int64_t)15; }

static void panels_free(rd_bf16_panels *p) {
    free(p->data);
    p->data = NULL;
}

static int panels_alloc(rd_bf16_panels *p, int64_t k, int64_t n, rd_error *err) {
    p->k = k;
    p->n = n;
    p->k_pairs = (k + 1) / 2;
    p->n_panels = (n + PANEL - 1) / PANEL;
    p->k_stride = pad16(p->k_pairs);
    const size_t words_per_panel = (size_t)p->k_stride * PANEL;
    if ((size_t)p->n_panels > SIZE_MAX / sizeof(uint32_t) / words_per_panel)
        return rd_error_set(err, "bf16 weight: %lld × %lld matrix is too large to pack",
                            (long long)n, (long long)k);
    size_t bytes = (size_t)p->n_panels * words_per_panel * sizeof(uint32_t);
    p->data = aligned_alloc(ALIGN, bytes); /* bytes is a multiple of 128 */
    if (!p->data)
        return rd_error_set(err, "bf16 weight: out of memory packing %zu bytes", bytes);
    memset(p->data, 0, bytes);
    return 0;
}

typedef struct pack_job {
    const rd_matrix *W;
    rd_bf16_weight *w;
    int64_t fwd_chunk, bwd_chunk; /* panels (forward) / pairs (backward) per task */
    int fwd_tasks;                /* tasks [0, fwd_tasks) pack forward, the rest backward */
    slots s;                      /* each slot: 2 rows of W in f32 */
} pack_job;

/* Forward: B = Wᵀ; panel j holds W rows 32j..32j+31 (B's columns), pairs along W's cols. */
static void pack_forward_panels(const pack_job *job, int64_t j0, int64_t j1, float *row) {
    const rd_bf16_panels *p = &job->w->fwd;
    const int64_t K = job->W->cols, kp = p->k_pairs;
    for (int64_t j = j0; j < j1; j++) {
        uint32_t *panel = p->data + (size_t)j * (size_t)p->k_stride * PANEL;
        for (int c = 0; c < PANEL && j * PANEL + c < p->n; c++) {
            rd_matrix_row_f32(job->W, j * PANEL + c, row);
            row[K] = 0.0f; /* the odd element's partner */
            for (int64_t q = 0; q < kp; q++)
                panel[(size_t)q * PANEL + c] = bf16_pair(row[2 * q], row[2 * q + 1]);
        }
    }
}

/* Writes pair q of panels p from two f32 rows of B (the rows 2q and 2q + 1; r1 NULL when
 * 2q + 1 is past the last row): word [j][q][c] = (r0[32j + c], r1[32j + c]), and zero in
 * the columns past p->n of the last panel. */
static void put_pair_rows(const rd_bf16_panels *p, int64_t q, const float *r0, const float *r1) {
    const int64_t N = p->n;
    for (int64_t j = 0; j < p->n_panels; j++) {
        uint32_t *d = p->data + ((size_t)j * (size_t)p->k_stride + (size_t)q) * PANEL;
        for (int c = 0; c < PANEL; c++) {
            const int64_t n = j * PANEL + c;
            d[c] = n >= N ? 0u : bf16_pair(r0[n], r1 ? r1[n] : 0.0f);
        }
    }
}

/* Backward: B = W; pair q holds W rows 2q, 2q+1, panel j W's cols 32j..32j+31. */
static void pack_backward_pairs(const pack_job *job, int64_t q0, int64_t q1, float *rows) {
    const rd_bf16_panels *p = &job->w->bwd;
    const int64_t N = job->W->cols, R = job->W->rows;
    float *r0 = rows, *r1 = rows + N + 1;
    for (int64_t q = q0; q < q1; q++) {
        rd_matrix_row_f32(job->W, 2 * q, r0);
        if (2 * q + 1 < R) rd_matrix_row_f32(job->W, 2 * q + 1, r1);
        put_pair_rows(p, q, r0, 2 * q + 1 < R ? r1 : NULL);
    }
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* k blocks of a product with k_pairs pairs: *n blocks of *kc pairs (the last may be
 * shorter), at most KC_PAIRS each and as even as possible (K = 288 is one block, not
 * 256 + 32); with align > 1 (AMX: 16 pairs a tile) kc is a multiple of align, so only the
 * last block ends inside a tile. */
static void k_blocks(int64_t k_pairs, int align, int64_t *n, int64_t *kc) {
    *n = (k_pairs + KC_PAIRS - 1) / KC_PAIRS;
    *kc = *n ? (k_pairs + *n - 1) / *n : 0;
    if (align > 1 && *n) {
        *kc = (*kc + align - 1) / align * align; /* ≤ KC_PAIRS, a multiple of 16 */
        *n = (k_pairs + *kc - 1) / *kc;
    }
}

/* ---- operands rounded once a call (C = Aᵀ · B, the weight gradient) ---------------- */

/* Aᵀ rounded and laid out for the microkernel: word [kb][i][q] is pair q of k block kb of
 * row i of Aᵀ (column i of the stored A); rows KC_PAIRS words apart, k blocks a_rows rows
 * apart (M, or M rounded up to 16 for AMX, whose tiles read 16 rows: the rows past M zero). */
typedef struct at_pack {
    uint32_t *data; /* (n_kblocks, a_rows, KC_PAIRS) words */
    const float *A; /* stored (K, M), row e at A + e·lda */
    size_t lda;
    int64_t M, K, k_pairs, n_kblocks, kc, a_rows;
    int64_t chunk; /* rows of Aᵀ per task, a multiple of 16 */
} at_pack;

/* B (K, N) rounded into panels of pairs of its rows (the layout of rd_bf16_panels). */
typedef struct b_pack {
    const rd_bf16_panels *p;
    const float *B; /* row e at B + e·ldb */
    size_t ldb;
    int64_t chunk; /* pairs per task */
} b_pack;

static void pack_at_portable(const at_pack *p, int64_t i0, int64_t i1) {
    for (int64_t kb = 0; kb < p->n_kblocks; kb++) {
        const int64_t kp0 = kb * p->kc, kcp = min64(p->kc, p->k_pairs - kp0);
        uint32_t *dst = p->data + (size_t)kb * (size_t)p->a_rows * KC_PAIRS;
        for (int64_t q = 0; q < kcp; q++) {
            const int64_t e = 2 * (kp0 + q);
            /* the second row, or none past the last: a flag, not a NULL row pointer (clang's
             * analyser took r0 + lda == NULL to mean r0 == NULL) */
            const int has_r1 = e + 1 < p->K;
            const float *r0 = p->A + (size_t)e * p->lda, *r1 = has_r1 ? r0 + p->lda : r0;
            for (int64_t i = i0; i < i1; i++)
                dst[(size_t)i * KC_PAIRS + (size_t)q] = bf16_pair(r0[i], has_r1 ? r1[i] : 0.0f);
        }
    }
}

static void pack_b_portable(const b_pack *b, int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; q++) {
        const float *r0 = b->B + (size_t)(2 * q) * b->ldb;
        put_pair_rows(b->p, q, r0, 2 * q + 1 < b->p->k ? r0 + b->ldb : NULL);
    }
}

static void pack_task(void *arg, int task) {
    pack_job *job = arg;
    const int slot = slot_claim(&job->s);
    float *buf = slot_mem(&job->s, slot);
    if (task < job->fwd_tasks) {
        int64_t j0 = (int64_t)task * job->fwd_chunk;
        pack_forward_panels(job, j0, min64(j0 + job->fwd_chunk, job->w->fwd.n_panels), buf);
    } else {
        int64_t q0 = (int64_t)(task - job->fwd_tasks) * job->bwd_chunk;
        pack_backward_pairs(job, q0, min64(q0 + job->bwd_chunk, job->w->bwd.k_pairs), buf);
    }
    slot_release(&job->s, slot);
}

/* Splits `units` into at most `want` chunks; returns the chunk size, *n_chunks the count. */
static int64_t split(int64_t units, int64_t want, int *n_chunks) {
    if (want < 1) want = 1;
    int64_t chunk = (units + want - 1) / want;
    if (chunk < 1) chunk = 1;
    *n_chunks = (int)((units + chunk - 1) / chunk);
    return chunk;
}

rd_bf16_weight *rd_bf16_weight_new(const rd_matrix *W, unsigned modes, struct rd_pool *pool,
                                   rd_error *err) {
    if (!W || !W->data || !rd_dtype_info_of(W->type)) {
        rd_error_set(err, "bf16 weight: no matrix given");
        return NULL;
    }
    if (W->rows < 1 || W->cols < 1 || W->rows > INT32_MAX || W->cols > INT32_MAX) {
        rd_error_set(err, "bf16 weight: matrix shape %lld × %lld is empty or too large",
                     (long long)W->rows, (long long)W->cols);
        return NULL;
    }
    if (modes & ~(unsigned)(RD_BF16_FORWARD | RD_BF16_BACKWARD)) {
        rd_error_set(err, "bf16 weight: invalid packing modes 0x%x", modes);
        return NULL;
    }
    rd_bf16_weight *w = calloc(1, sizeof *w);
    if (!w) {
        rd_error_set(err, "bf16 weight: out of memory");
        return NULL;
    }
    w->rows = W->rows;
    w->cols = W->cols;
    if (((modes & RD_BF16_FORWARD) && panels_alloc(&w->fwd, W->cols, W->rows, err) != 0) ||
        ((modes & RD_BF16_BACKWARD) && panels_alloc(&w->bwd, W->rows, W->cols, err) != 0)) {
        rd_bf16_weight_free(w);
        return NULL;
    }
    if (!modes) return w; /* the mark of a weight packed on the fly */
    pack_job job = {.W = W, .w = w};
    const int n_slots = pool_slots(pool);
    const size_t slot_bytes =
        ((size_t)(2 * W->cols + 2) * sizeof(float) + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    void *mem = malloc((size_t)n_slots * slot_bytes + ALIGN);
    if (!mem) {
        rd_bf16_weight_free(w);
        rd_error_set(err, "bf16 weight: out of memory");
        return NULL;
    }
    slots_init(&job.s, mem, slot_bytes, n_slots);
    const int64_t want = n_slots == 1 ? 1 : (int64_t)n_slots * TASKS_PER_THREAD;
    int n_fwd = 0, n_bwd = 0;
    if (w->fwd.data) job.fwd_chunk = split(w->fwd.n_panels, want, &n_fwd);
    if (w->bwd.data) job.bwd_chunk = split(w->bwd.k_pairs, want, &n_bwd);
    job.fwd_tasks = n_fwd;
    rd_pool_run(pool, pack_task, &job, n_fwd + n_bwd);
    free(mem);
    return w;
}

void rd_bf16_weight_free(rd_bf16_weight *w) {
    if (!w) return;
    panels_free(&w->fwd);
    panels_free(&w->bwd);
    free(w);
}

static size_t panels_bytes(const rd_bf16_panels *p) {
    return p->data ? (size_t)p->n_panels * (size_t)p->k_stride * PANEL * sizeof(uint32_t) : 0;
}

size_t rd_bf16_weight_bytes(const rd_bf16_weight *w) {
    return w ? panels_bytes(&w->fwd) + panels_bytes(&w->bwd) : 0;
}

/* Bytes of the panels of B (k, n). */
static size_t panels_bytes_for(int64_t k, int64_t n) {
    return (size_t)((n + PANEL - 1) / PANEL) * (size_t)pad16((k + 1) / 2) * PANEL *
           sizeof(uint32_t);
}

size_t rd_bf16_weight_bytes_for(int64_t rows, int64_t cols, unsigned modes) {
    if (rows < 1 || cols < 1 || rows > INT32_MAX || cols > INT32_MAX) return 0;
    return ((modes & RD_BF16_FORWARD) ? panels_bytes_for(cols, rows) : 0) +
           ((modes & RD_BF16_BACKWARD) ? panels_bytes_for(rows, cols) : 0);
}

/* ---- one packed block of A against the task's panels -------------------------------- */

/* Everything one block multiply needs. a: (rows, KC_PAIRS) packed words, kcp of each row
 * used; the block's C rows start at c. */
typedef struct block {
    const uint32_t *a;
    int rows;             /* rows of A in the block */
    int kcp;              /* pairs in the block (≤ KC_PAIRS) */
    const rd_bf16_panels *B;
    int64_t kp0;          /* first pair of the block */
    int64_t j0, j1;       /* panels [j0, j1) */
    float *c;             /* C row of the block's first row, column 0 */
    size_t ldc;
    int load_c;           /* 1: C += product; 0: C = product */
} block;

/* Columns of panel j that exist in C. */
static inline int panel_cols(const rd_bf16_panels *B, int64_t j) {
    int64_t left = B->n - j * PANEL;
    return left < PANEL ? (int)left : PANEL;
}

/* Rounds rows [0, rows) × pairs [kp0, kp0 + kcp) of A (row stride lda; k elements per row)
 * into dst (rows, KC_PAIRS); the missing partner of an odd k is zero. */
static void pack_a_portable(uint32_t *dst, const float *A, size_t lda, int rows, int64_t k,
                            int64_t kp0, int kcp) {
    for (int r = 0; r < rows; r++) {
        const float *src = A + (size_t)r * lda;
        uint32_t *d = dst + (size_t)r * KC_PAIRS;
        for (int q = 0; q < kcp; q++) {
            int64_t e = 2 * (kp0 + q);
            d[q] = bf16_pair(src[e], e + 1 < k ? src[e + 1] : 0.0f);
        }
    }
}

/* C tile (mr, ncols) (+)= a tile (mr, kcp pairs; row stride KC_PAIRS) · b (kcp, PANEL). */
static void tile_portable(int mr, int kcp, const uint32_t *a, const uint32_t *b, float *c,
                          size_t ldc, int ncols, int load_c) {
    for (int i = 0; i < mr; i++) {
        float acc[PANEL] = {0};
        const uint32_t *ai = a + (size_t)i * KC_PAIRS;
        for (int q = 0; q < kcp; q++) {
            const float a0 = pair_lo(ai[q]), a1 = pair_hi(ai[q]);
            const uint32_t *bq = b + (size_t)q * PANEL;
            for (int j = 0; j < PANEL; j++) acc[j] += a0 * pair_lo(bq[j]) + a1 * pair_hi(bq[j]);
        }
        float *ci = c + (size_t)i * ldc;
        for (int j = 0; j < ncols; j++) ci[j] = load_c ? ci[j] + acc[j] : acc[j];
    }
}

static void block_portable(const block *bk) {
    const rd_bf16_panels *B = bk->B;
    for (int64_t j = bk->j0; j < bk->j1; j++) {
        const uint32_t *b = B->data + ((size_t)j * (size_t)B->k_stride + (size_t)bk->kp0) * PANEL;
        const int nc = panel_cols(B, j);
        for (int i = 0; i < bk->rows; i += MR) {
            const int mr = bk->rows - i < MR ? bk->rows - i : MR;
            tile_portable(mr, bk->kcp, bk->a + (size_t)i * KC_PAIRS, b,
                          bk->c + (size_t)i * bk->ldc + (size_t)j * PANEL, bk->ldc, nc,
                          bk->load_c);
        }
    }
}

#if HAVE_AVX512BF16

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* Same contract as pack_a_portable, with vcvtne2ps2bf16 (round to nearest even, like
 * rd_f32_to_bf16), bit for bit except that denormal inputs become zero — which vdpbf16ps
 * does to them anyway, so the products are the same. */
TARGET_AVX512BF16 static void pack_a_avx512(uint32_t *dst, const float *A, size_t lda,
                                            int rows, int64_t k, int64_t kp0, int kcp) {
    const int64_t e0 = 2 * kp0, e1 = min64(k, 2 * (kp0 + kcp));
    for (int r = 0; r < rows; r++) {
        const float *src = A + (size_t)r * lda;
        uint32_t *d = dst + (size_t)r * KC_PAIRS;
        /* 32 floats → 16 words per step; dst rows hold KC_PAIRS (a multiple of 16) words */
        for (int64_t e = e0; e < e1; e += 32) {
            const __m512 x0 = _mm512_maskz_loadu_ps(tail_mask(e1 - e), src + e);
            const __m512 x1 = _mm512_maskz_loadu_ps(tail_mask(e1 - e - 16), src + e + 16);
            _mm512_store_si512((void *)(d + (e - e0) / 2), (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
        }
    }
}

/* Interleaves the 16 + 16 bf16 of v (low half: row 2q, high half: row 2q + 1) into 16
 * pair words. */
TARGET_AVX512BF16 static inline __m512i interleave_pairs(__m512 row0, __m512 row1) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(row1, row0));
}

/* Transposes the 16 × 16 words of r (r[k] = row k) in place: r[c] becomes column c. */
TARGET_AVX512BF16 static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; i++) { /* (r0[4g], r1[4g], r0[4g+1], r1[4g+1]) per 128-bit lane g */
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* r[4i + c] lane g: column 4g + c of rows 4i..4i+3 */
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) { /* lanes regrouped so that the last step joins rows */
            t[8 * i + j] = _mm512_shuffle_i32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_i32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0xdd);
    }
}

/* Same result as pack_at_portable (denormals become zero, as vdpbf16ps makes them anyway):
 * blocks of 16 columns of the stored A × 16 pairs, rounded and interleaved as 16 vectors
 * (one per pair) then transposed into 16 rows of Aᵀ. The pairs past kcp up to the next
 * multiple of 16 are written as zeros (inside the row's KC_PAIRS words, never read). */
TARGET_AVX512BF16 static void pack_at_avx512(const at_pack *p, int64_t i0, int64_t i1) {
    for (int64_t kb = 0; kb < p->n_kblocks; kb++) {
        const int64_t kp0 = kb * p->kc, kcp = min64(p->kc, p->k_pairs - kp0);
        uint32_t *dst = p->data + (size_t)kb * (size_t)p->a_rows * KC_PAIRS;
        for (int64_t i = i0; i < i1; i += 16) {
            const __mmask16 m = tail_mask(i1 - i);
            const int n_rows = (int)min64(16, i1 - i);
            for (int64_t q0 = 0; q0 < kcp; q0 += 16) {
                __m512i r[16];
                for (int k = 0; k < 16; k++) {
                    const int64_t e = 2 * (kp0 + q0 + k);
                    if (q0 + k >= kcp) {
                        r[k] = _mm512_setzero_si512();
                        continue;
                    }
                    const float *r0 = p->A + (size_t)e * p->lda + i;
                    const __m512 x0 = _mm512_maskz_loadu_ps(m, r0);
                    const __m512 x1 = e + 1 < p->K ? _mm512_maskz_loadu_ps(m, r0 + p->lda)
                                                   : _mm512_setzero_ps();
                    r[k] = interleave_pairs(x0, x1);
                }
                transpose16(r);
                for (int c = 0; c < n_rows; c++)
                    _mm512_store_si512((void *)(dst + (size_t)(i + c) * KC_PAIRS + (size_t)q0), r[c]);
            }
        }
    }
}

/* Same result as pack_b_portable (denormals become zero): 16 columns at a time, the
 * columns past n of the last panel zero. */
TARGET_AVX512BF16 static void pack_b_avx512(const b_pack *b, int64_t q0, int64_t q1) {
    const rd_bf16_panels *p = b->p;
    for (int64_t q = q0; q < q1; q++) {
        const float *r0 = b->B + (size_t)(2 * q) * b->ldb;
        const int has_r1 = 2 * q + 1 < p->k;
        for (int64_t j = 0; j < p->n_panels; j++) {
            uint32_t *d = p->data + ((size_t)j * (size_t)p->k_stride + (size_t)q) * PANEL;
            for (int h = 0; h < PANEL; h += 16) {
                const int64_t n = j * PANEL + h;
                const __mmask16 m = tail_mask(p->n - n);
                const __m512 x0 = _mm512_maskz_loadu_ps(m, r0 + n);
                const __m512 x1 =
                    has_r1 ? _mm512_maskz_loadu_ps(m, r0 + b->ldb + n) : _mm512_setzero_ps();
                _mm512_store_si512((void *)(d + h), interleave_pairs(x0, x1));
            }
        }
    }
}

/* C tile (mr, ncols) (+)= a (mr, kcp pairs; row stride KC_PAIRS) · b (kcp, PANEL).
 * mr is a constant in each instantiation, so the accumulators stay in registers. */
TARGET_AVX512BF16 __attribute__((always_inline)) static inline void
tile_avx512(const int mr, int kcp, const uint32_t *a, const uint32_t *b, float *c, size_t ldc,
            int ncols, int load_c) {
    __m512 acc0[MR], acc1[MR];
    for (int i = 0; i < mr; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    for (int q = 0; q < kcp; q++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(b + (size_t)q * PANEL));
        const __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(b + (size_t)q * PANEL + 16));
        for (int i = 0; i < mr; i++) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[(size_t)i * KC_PAIRS + q]);
            acc0[i] = _mm512_dpbf16_ps(acc0[i], ai, b0);
            acc1[i] = _mm512_dpbf16_ps(acc1[i], ai, b1);
        }
    }
    const __mmask16 m0 = tail_mask(ncols), m1 = tail_mask(ncols - 16);
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 r0 = acc0[i], r1 = acc1[i];
        if (load_c) {
            r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, ci));
            r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, ci + 16));
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

TARGET_AVX512BF16 static void tile_avx512_any(int mr, int kcp, const uint32_t *a,
                                              const uint32_t *b, float *c, size_t ldc,
                                              int ncols, int load_c) {
    switch (mr) {
#define CASE(n)                                                                              \
    case n: tile_avx512(n, kcp, a, b, c, ldc, ncols, load_c); break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)
#if MR > 8
        CASE(8)
#endif
#if MR > 9
        CASE(9)
#endif
#if MR > 10
        CASE(10)
#endif
#if MR > 11
        CASE(11)
#endif
#if MR > 12
        CASE(12)
#endif
#if MR > 13
        CASE(13)
#endif
#undef CASE
    default: break;
    }
}

TARGET_AVX512BF16 static void block_avx512(const block *bk) {
    const rd_bf16_panels *B = bk->B;
    const int full = bk->rows - bk->rows % MR;
    /* Prefetch: the next panel's B slice spread over this panel's tiles (into L2: a new
     * slice comes from L3 or DRAM, with a jump the hardware prefetcher does not follow),
     * and the next tile's C rows (a wide C, e.g. logits, is not in cache). */
    const int n_tiles = (bk->rows + MR - 1) / MR;
    const int lines = bk->kcp * 2, per_tile = (lines + n_tiles - 1) / n_tiles;
    for (int64_t j = bk->j0; j < bk->j1; j++) {
        const uint32_t *b = B->data + ((size_t)j * (size_t)B->k_stride + (size_t)bk->kp0) * PANEL;
        const int nc = panel_cols(B, j);
        float *cj = bk->c + (size_t)j * PANEL;
        for (int i = 0; i < full; i += MR) {
            if (j + 1 < bk->j1) {
                const char *nb = (const char *)(b + (size_t)B->k_stride * PANEL);
                const int l0 = i / MR * per_tile;
                for (int l = l0; l < l0 + per_tile && l < lines; l++)
                    _mm_prefetch(nb + (size_t)l * 64, _MM_HINT_T1);
            }
            if (i + MR < bk->rows) {
                const float *nx = cj + (size_t)(i + MR) * bk->ldc;
                const int nr = bk->rows - (i + MR) < MR ? bk->rows - (i + MR) : MR;
                for (int r = 0; r < nr; r++) {
                    _mm_prefetch((const char *)(nx + (size_t)r * bk->ldc), _MM_HINT_T0);
                    _mm_prefetch((const char *)(nx + (size_t)r * bk->ldc + 16), _MM_HINT_T0);
                }
            }
            tile_avx512(MR, bk->kcp, bk->a + (size_t)i * KC_PAIRS, b, cj + (size_t)i * bk->ldc,
                        bk->ldc, nc, bk->load_c);
        }
        if (full < bk->rows)
            tile_avx512_any(bk->rows - full, bk->kcp, bk->a + (size_t)full * KC_PAIRS, b,
                            cj + (size_t)full * bk->ldc, bk->ldc, nc, bk->load_c);
    }
}

static int cpu_has_avx512bf16(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512bf16");
}

#else

static int cpu_has_avx512bf16(void) { return 0; }

#endif

/* ---- AMX: 16 × 16 f32 tiles of C from 16-pair tiles of A and B ----------------------- */

#if HAVE_AVX512BF16 && defined(__linux__)
#define HAVE_AMX 1
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define TARGET_AMX __attribute__((target("avx512f,avx512bw,avx512bf16,amx-tile,amx-bf16")))
#define ARCH_REQ_XCOMP_PERM 0x1023 /* arch_prctl: ask for an extended state component */
#define XFEATURE_XTILEDATA 18      /* the AMX tile data */
#else
#define HAVE_AMX 0
#endif

#if HAVE_AMX

/* The tile configuration (palette 1) of the AMX kernel: tiles 0–3 hold C (16 rows × 16 f32),
 * 4–5 A (16 rows × 16 pairs), 6–7 B (16 pairs × 16 columns): every tile 16 rows of 64 bytes. */
typedef struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Configures the calling thread's tiles; amx_end releases them (tile state is per thread, so
 * each task does both on the pool thread that runs it). The configuration is a constant in
 * memory: gcc 12's _tile_loadconfig declares only 8 bytes of its operand as read, so a
 * configuration built on the stack could be stored only in part. */
static const tile_config AMX_CONFIG __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

TARGET_AMX static void amx_begin(void) { _tile_loadconfig(&AMX_CONFIG); }

TARGET_AMX static void amx_end(void) { _tile_release(); }

/* pack_a_avx512, and the rows up to the next multiple of 16 zero (an A tile reads 16 rows;
 * the pairs up to the next multiple of 16 are zero already). */
TARGET_AMX static void pack_a_amx(uint32_t *dst, const float *A, size_t lda, int rows, int64_t k,
                                  int64_t kp0, int kcp) {
    pack_a_avx512(dst, A, lda, rows, k, kp0, kcp);
    for (int r = rows; r < (int)pad16(rows); r++)
        memset(dst + (size_t)r * KC_PAIRS, 0, (size_t)pad16(kcp) * sizeof(uint32_t));
}

/* The (vr, vc) corner of a 16 × 16 C tile at c (row stride ldc) into t (16 × 16, zeros
 * outside the corner), and back; vr and vc count what is left of C and may exceed 16 (or
 * be ≤ 0). */
TARGET_AMX static void c_in(float *t, const float *c, size_t ldc, int vr, int vc) {
    const __mmask16 m = tail_mask(vc);
    for (int r = 0; r < 16; r++)
        _mm512_store_ps(t + 16 * r, r < vr ? _mm512_maskz_loadu_ps(m, c + (size_t)r * ldc)
                                           : _mm512_setzero_ps());
}

TARGET_AMX static void c_out(float *c, size_t ldc, const float *t, int vr, int vc) {
    const __mmask16 m = tail_mask(vc);
    for (int r = 0; r < vr && r < 16; r++)
        _mm512_mask_storeu_ps(c + (size_t)r * ldc, m, _mm512_load_ps(t + 16 * r));
}

/* gcc 12's _tile_loadd does not declare that it reads memory: stores before it (tmp filled
 * by c_in, A and B packed by the caller) must be made to happen first. */
#define MEMORY_BARRIER() __asm__ volatile("" ::: "memory")

/* C tile t = rows i + r0.., columns h.. of the panel: loaded from C (or zeroed) before the
 * k steps, stored after; edge tiles go through tmp[t]. Tile numbers must be constants. */
#define C_TILE_LOAD(t, r0, h)                                                                \
    do {                                                                                     \
        const int vr_ = rows - i - (r0), vc_ = nc - (h);                                     \
        float *cp_ = cj + (size_t)(i + (r0)) * ldc + (h);                                    \
        if (!bk->load_c) _tile_zero(t);                                                      \
        else if (vr_ >= 16 && vc_ >= 16) _tile_loadd(t, cp_, stride_c);                      \
        else {                                                                               \
            c_in(tmp[t], cp_, ldc, vr_, vc_);                                                \
            MEMORY_BARRIER();                                                                \
            _tile_loadd(t, tmp[t], 64);                                                      \
        }                                                                                    \
    } while (0)
#define C_TILE_STORE(t, r0, h)                                                               \
    do {                                                                                     \
        const int vr_ = rows - i - (r0), vc_ = nc - (h);                                     \
        float *cp_ = cj + (size_t)(i + (r0)) * ldc + (h);                                    \
        if (vr_ >= 16 && vc_ >= 16) _tile_stored(t, cp_, stride_c);                          \
        else {                                                                               \
            _tile_stored(t, tmp[t], 64);                                                     \
            c_out(cp_, ldc, tmp[t], vr_, vc_);                                               \
        }                                                                                    \
    } while (0)

/* C block (+)= a (rows, kcp pairs; rows up to a multiple of 16 and pairs up to a multiple of
 * 16 readable, zero past rows/kcp) · the block's panels (k_stride ≥ kp0 + pad16(kcp)).
 * 32 rows × one panel (32 columns) a step: four C tiles stay in tile registers over the k
 * steps of 16 pairs, each step loading 2 A and 2 B tiles. Each C element adds its terms in
 * k order starting from C's old value (or zero): the same order however the work is split. */
TARGET_AMX static void block_amx(const block *bk) {
    const rd_bf16_panels *B = bk->B;
    const int steps = (bk->kcp + 15) / 16, rows = bk->rows;
    const size_t ldc = bk->ldc, stride_c = ldc * sizeof(float);
    const size_t stride_a = KC_PAIRS * sizeof(uint32_t), stride_b = PANEL * sizeof(uint32_t);
    float tmp[4][256] __attribute__((aligned(64)));
    MEMORY_BARRIER();
    for (int64_t j = bk->j0; j < bk->j1; j++) {
        const uint32_t *b = B->data + ((size_t)j * (size_t)B->k_stride + (size_t)bk->kp0) * PANEL;
        const int nc = panel_cols(B, j);
        float *cj = bk->c + (size_t)j * PANEL;
        for (int i = 0; i < rows; i += 32) {
            const uint32_t *a = bk->a + (size_t)i * KC_PAIRS;
            if (rows - i > 16) {
                C_TILE_LOAD(0, 0, 0);
                C_TILE_LOAD(1, 0, 16);
                C_TILE_LOAD(2, 16, 0);
                C_TILE_LOAD(3, 16, 16);
                for (int s = 0; s < steps; s++) {
                    const uint32_t *bs = b + (size_t)s * 16 * PANEL;
                    _tile_loadd(6, bs, stride_b);
                    _tile_loadd(7, bs + 16, stride_b);
                    _tile_loadd(4, a + s * 16, stride_a);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_dpbf16ps(1, 4, 7);
                    _tile_loadd(5, a + (size_t)16 * KC_PAIRS + s * 16, stride_a);
                    _tile_dpbf16ps(2, 5, 6);
                    _tile_dpbf16ps(3, 5, 7);
                }
                C_TILE_STORE(0, 0, 0);
                C_TILE_STORE(1, 0, 16);
                C_TILE_STORE(2, 16, 0);
                C_TILE_STORE(3, 16, 16);
            } else {
                C_TILE_LOAD(0, 0, 0);
                C_TILE_LOAD(1, 0, 16);
                for (int s = 0; s < steps; s++) {
                    const uint32_t *bs = b + (size_t)s * 16 * PANEL;
                    _tile_loadd(6, bs, stride_b);
                    _tile_loadd(7, bs + 16, stride_b);
                    _tile_loadd(4, a + s * 16, stride_a);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_dpbf16ps(1, 4, 7);
                }
                C_TILE_STORE(0, 0, 0);
                C_TILE_STORE(1, 0, 16);
            }
        }
    }
}
#undef C_TILE_LOAD
#undef C_TILE_STORE

/* AMX-TILE and AMX-BF16 (cpuid leaf 7: edx bits 24 and 22), the AVX512-BF16 packers, and the
 * kernel's permission to use the tile state (Linux ≥ 5.16 grants it per process). */
static int amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 24)) || !(d & (1u << 22)) || !cpu_has_avx512bf16()) return 0;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

/* The once-flag of the AMX probe, the one piece of global state here: 0 not asked yet,
 * 1 granted, -1 unavailable. The request is process-wide and idempotent, so threads probing
 * at once get the same answer and store the same value. */
static atomic_int amx_state;

static int cpu_has_amx(void) {
    int s = atomic_load_explicit(&amx_state, memory_order_acquire);
    if (!s) {
        s = amx_probe() ? 1 : -1;
        atomic_store_explicit(&amx_state, s, memory_order_release);
    }
    return s > 0;
}

#else

static int cpu_has_amx(void) { return 0; }

#endif

/* ---- kernels, dispatch --------------------------------------------------------------- */

typedef struct fly_job fly_job;

/* Packs one slice of B for a product straight from a matrix (see rd_gemm_bf16_matrix):
 * panels [j0, j0 + S->n_panels) × pairs [q0, q0 + S->k_pairs) of the whole B into S->data,
 * the pairs up to S->k_stride and the columns past S->n zero. wbuf, tmp: the slot's. */
typedef void (*fly_pack_fn)(const fly_job *f, const rd_bf16_panels *S, int64_t j0, int64_t q0,
                            uint32_t *wbuf, float *tmp);

typedef struct kernel_ops {
    void (*pack_a)(uint32_t *dst, const float *A, size_t lda, int rows, int64_t k, int64_t kp0,
                   int kcp);
    void (*block)(const block *bk);
    void (*pack_at)(const at_pack *p, int64_t i0, int64_t i1); /* rows [i0, i1) of Aᵀ */
    void (*pack_b)(const b_pack *b, int64_t q0, int64_t q1);   /* pairs [q0, q1) of B */
    fly_pack_fn fly_fwd, fly_bwd; /* slices of Wᵀ / W straight from the matrix */
    int mr;                       /* rows of a microkernel step: tasks and A blocks multiples */
    int k_align;                  /* k blocks a multiple of this many pairs (AMX: 16) */
    void (*begin)(void);          /* run by each task on its thread first (or NULL) */
    void (*end)(void);            /* and last */
} kernel_ops;

static void fly_fwd_portable(const fly_job *f, const rd_bf16_panels *S, int64_t j0, int64_t q0,
                             uint32_t *wbuf, float *tmp);
static void fly_bwd_portable(const fly_job *f, const rd_bf16_panels *S, int64_t j0, int64_t q0,
                             uint32_t *wbuf, float *tmp);

static const kernel_ops PORTABLE_OPS = {pack_a_portable, block_portable, pack_at_portable,
                                        pack_b_portable, fly_fwd_portable, fly_bwd_portable,
                                        MR, 1, NULL, NULL};
#if HAVE_AVX512BF16
static void fly_fwd_avx512(const fly_job *f, const rd_bf16_panels *S, int64_t j0, int64_t q0,
                           uint32_t *wbuf, float *tmp);
static void fly_bwd_avx512(const fly_job *f, const rd_bf16_panels *S, int64_t j0, int64_t q0,
                           uint32_t *wbuf, float *tmp);
static const kernel_ops AVX512_OPS = {pack_a_avx512, block_avx512, pack_at_avx512,
                                      pack_b_avx512, fly_fwd_avx512, fly_bwd_avx512,
                                      MR, 1, NULL, NULL};
#endif
#if HAVE_AMX
static const kernel_ops AMX_OPS = {pack_a_amx, block_amx, pack_at_avx512, pack_b_avx512,
                                   fly_fwd_avx512, fly_bwd_avx512, 32, 16, amx_begin, amx_end};
#endif

static rd_gemm_kernel resolve(rd_gemm_kernel k) {
    if (k == RD_GEMM_KERNEL_AUTO)
        return cpu_has_amx()          ? RD_GEMM_KERNEL_AMX
               : cpu_has_avx512bf16() ? RD_GEMM_KERNEL_AVX512BF16
                                      : RD_GEMM_KERNEL_PORTABLE;
    return k;
}

int rd_gemm_kernel_available(rd_gemm_kernel k) {
    switch (k) {
    case RD_GEMM_KERNEL_AUTO:
    case RD_GEMM_KERNEL_PORTABLE: return 1;
    case RD_GEMM_KERNEL_AVX512BF16: return cpu_has_avx512bf16();
    case RD_GEMM_KERNEL_AMX: return cpu_has_amx();
    }
    return 0;
}

const char *rd_gemm_kernel_name(rd_gemm_kernel k) {
    switch (resolve(k)) {
    case RD_GEMM_KERNEL_PORTABLE: return "portable";
    case RD_GEMM_KERNEL_AVX512BF16: return "avx512bf16";
    case RD_GEMM_KERNEL_AMX: return "amx";
    default: return "unknown";
    }
}

static const kernel_ops *ops_for(rd_gemm_kernel k) {
    switch (resolve(k)) {
    case RD_GEMM_KERNEL_PORTABLE: return &PORTABLE_OPS;
#if HAVE_AVX512BF16
    case RD_GEMM_KERNEL_AVX512BF16: return cpu_has_avx512bf16() ? &AVX512_OPS : NULL;
#endif
#if HAVE_AMX
    case RD_GEMM_KERNEL_AMX: return cpu_has_amx() ? &AMX_OPS : NULL;
#endif
    default: return NULL;
    }
}

/* Rows of packed A per k block for M rows: AMX tiles read 16 rows at a time. */
static int64_t a_rows_for(const kernel_ops *ops, int64_t M) {
    return ops->k_align > 1 ? pad16(M) : M;
}

/* ---- the multiply -------------------------------------------------------------------- */

typedef struct gemm_job {
    float *C;
    size_t ldc;
    const float *A;
    size_t lda;
    int64_t M;
    const rd_bf16_panels *B;
    int accumulate;
    const kernel_ops *ops;
    const uint32_t *a_packed; /* A rounded before the call ((n_kblocks, a_rows, KC_PAIRS)
                               * words, as at_pack), or NULL: each task rounds its rows of A */
    int64_t a_rows;  /* rows per k block of a_packed */
    int64_t m_chunk; /* rows per task (a multiple of ops->mr) */
    int64_t n_chunk; /* panels per task */
    int tn;          /* tasks along N; task t covers row chunk t / tn, panel chunk t % tn */
    slots s;         /* each slot: one packed A block */
} gemm_job;

/* Rows per A block for m rows: even blocks of at most MC rows, each a multiple of mr. */
static int64_t m_block(const kernel_ops *ops, int64_t m) {
    const int64_t mc_max = MC / ops->mr * ops->mr;
    const int64_t n_mblocks = (m + mc_max - 1) / mc_max;
    const int64_t mc = n_mblocks ? (m + n_mblocks - 1) / n_mblocks : 1;
    return (mc + ops->mr - 1) / ops->mr * ops->mr;
}

static void gemm_task(void *arg, int task) {
    gemm_job *job = arg;
    const rd_bf16_panels *B = job->B;
    const kernel_ops *ops = job->ops;
    const int64_t m0 = (int64_t)(task / job->tn) * job->m_chunk;
    const int64_t m1 = min64(m0 + job->m_chunk, job->M);
    const int64_t j0 = (int64_t)(task % job->tn) * job->n_chunk;
    const int64_t j1 = min64(j0 + job->n_chunk, B->n_panels);
    if (m0 >= m1 || j0 >= j1) return;
    const int64_t mc = m_block(ops, m1 - m0);
    int64_t n_kblocks, kc;
    k_blocks(B->k_pairs, ops->k_align, &n_kblocks, &kc);
    const int slot = job->a_packed ? -1 : slot_claim(&job->s);
    uint32_t *a = job->a_packed ? NULL : slot_mem(&job->s, slot);
    if (ops->begin) ops->begin();
    for (int64_t mb = m0; mb < m1; mb += mc) {
        const int rows = (int)min64(mc, m1 - mb);
        float *C = job->C + (size_t)mb * job->ldc;
        for (int64_t kb0 = 0; kb0 < n_kblocks; kb0 += KC_BLOCKS) {
            const int64_t nkb = min64(KC_BLOCKS, n_kblocks - kb0);
            for (int64_t kb = 0; a && kb < nkb; kb++) {
                const int64_t kp0 = (kb0 + kb) * kc;
                ops->pack_a(a + (size_t)kb * MC * KC_PAIRS, job->A + (size_t)mb * job->lda,
                            job->lda, rows, B->k, kp0, (int)min64(kc, B->k_pairs - kp0));
            }
            /* C block (rows, NC panels) stays in cache while the k blocks add into it. */
            for (int64_t jb = j0; jb < j1; jb += NC) {
                for (int64_t kb = 0; kb < nkb; kb++) {
                    const int64_t kp0 = (kb0 + kb) * kc;
                    const block bk = {
                        .a = a ? a + (size_t)kb * MC * KC_PAIRS
                               : job->a_packed +
                                     ((size_t)(kb0 + kb) * (size_t)job->a_rows + (size_t)mb) *
                                         KC_PAIRS,
                        .rows = rows, .kcp = (int)min64(kc, B->k_pairs - kp0), .B = B,
                        .kp0 = kp0, .j0 = jb, .j1 = min64(jb + NC, j1), .c = C, .ldc = job->ldc,
                        .load_c = job->accumulate || kb0 + kb > 0,
                    };
                    ops->block(&bk);
                }
            }
        }
    }
    if (ops->end) ops->end();
    if (a) slot_release(&job->s, slot);
}

size_t rd_gemm_bf16_scratch_bytes(const struct rd_pool *pool) {
    return (size_t)pool_slots(pool) * SLOT_BYTES + ALIGN;
}

/* Splits M rows × n_panels panels into tasks for n_slots threads: rows first (tasks then
 * share B and round A only once), panels when there are too few rows. */
static int plan_tasks(gemm_job *job, int n_slots) {
    const int64_t np = job->B->n_panels, mr = job->ops->mr;
    const int64_t tiles = (job->M + mr - 1) / mr;
    if (n_slots == 1) {
        job->m_chunk = tiles * mr;
        job->n_chunk = np;
        job->tn = 1;
        return 1;
    }
    const int64_t want = (int64_t)n_slots * TASKS_PER_THREAD;
    int64_t tm = min64((job->M + MIN_TASK_ROWS - 1) / MIN_TASK_ROWS, want);
    int n_m, n_n;
    job->m_chunk = split(tiles, tm, &n_m) * mr;
    job->n_chunk = split(np, (want + n_m - 1) / n_m, &n_n);
    job->tn = n_n;
    return n_m * n_n;
}

/* The kernel of a call, or NULL with *err set. */
static const kernel_ops *call_ops(const rd_gemm_bf16_opts *opts, rd_error *err) {
    const rd_gemm_kernel kernel = opts ? opts->kernel : RD_GEMM_KERNEL_AUTO;
    const kernel_ops *ops = ops_for(kernel);
    if (!ops) rd_error_set(err, "bf16 gemm: kernel %d is not available on this CPU", (int)kernel);
    return ops;
}

int rd_gemm_bf16(float *C, size_t ldc, const float *A, size_t lda, int64_t M,
                 const rd_bf16_weight *W, rd_bf16_mode mode, int accumulate,
                 struct rd_pool *pool, void *scratch, const rd_gemm_bf16_opts *opts,
                 rd_error *err) {
    if (!W) return rd_error_set(err, "bf16 gemm: no weight given");
    const rd_bf16_panels *B = mode == RD_BF16_FORWARD    ? &W->fwd
                              : mode == RD_BF16_BACKWARD ? &W->bwd
                                                         : NULL;
    if (!B) return rd_error_set(err, "bf16 gemm: invalid mode %d", (int)mode);
    if (!B->data)
        return rd_error_set(err, "bf16 gemm: the weight was not packed for the %s product",
                            mode == RD_BF16_FORWARD ? "forward" : "backward");
    if (M < 0 || M > INT32_MAX)
        return rd_error_set(err, "bf16 gemm: invalid row count %lld", (long long)M);
    if (lda < (size_t)B->k || ldc < (size_t)B->n)
        return rd_error_set(err, "bf16 gemm: strides lda = %zu, ldc = %zu below widths %lld, %lld",
                            lda, ldc, (long long)B->k, (long long)B->n);
    const kernel_ops *ops = call_ops(opts, err);
    if (!ops) return -1;
    if (M == 0) return 0;
    if (!A || !C) return rd_error_set(err, "bf16 gemm: missing A or C");

    gemm_job job = {.C = C, .ldc = ldc, .A = A, .lda = lda, .M = M, .B = B,
                    .accumulate = accumulate != 0, .ops = ops};
    const int n_slots = pool_slots(pool);
    void *own = NULL;
    if (!scratch && !(scratch = own = malloc(rd_gemm_bf16_scratch_bytes(pool))))
        return rd_error_set(err, "bf16 gemm: out of memory for scratch");
    slots_init(&job.s, scratch, SLOT_BYTES, n_slots);
    const int n_tasks = plan_tasks(&job, n_slots);
    rd_pool_run(n_tasks > 1 ? pool : NULL, gemm_task, &job, n_tasks);
    free(own);
    return 0;
}

/* ---- the weight gradient: C = Aᵀ · B ------------------------------------------------ */

/* One packing loop's arguments: the operand and the kernel whose packer runs. */
typedef struct pack_call {
    const void *operand; /* at_pack or b_pack */
    const kernel_ops *ops;
} pack_call;

static void at_pack_task(void *arg, int task) {
    const pack_call *call = arg;
    const at_pack *p = call->operand;
    const kernel_ops *ops = call->ops;
    const int64_t i0 = (int64_t)task * p->chunk;
    ops->pack_at(p, i0, min64(i0 + p->chunk, p->M));
}

static void b_pack_task(void *arg, int task) {
    const pack_call *call = arg;
    const b_pack *b = call->operand;
    const kernel_ops *ops = call->ops;
    const int64_t q0 = (int64_t)task * b->chunk;
    ops->pack_b(b, q0, min64(q0 + b->chunk, b->p->k_pairs));
}

/* Bytes of A rounded for M rows and k_pairs pairs, for any kernel: the k blocks of kernels
 * with k_align > 1 are no more than the others', and rows are padded to 16 (a multiple of
 * ALIGN). */
static size_t a_bytes(int64_t M, int64_t k_pairs) {
    int64_t n_kblocks, kc;
    k_blocks(k_pairs, 1, &n_kblocks, &kc);
    return (size_t)n_kblocks * (size_t)pad16(M) * KC_PAIRS * sizeof(uint32_t);
}

static int tn_shape_ok(int64_t M, int64_t N, int64_t K) {
    return M >= 0 && N >= 0 && K >= 0 && M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX;
}

size_t rd_gemm_bf16_tn_scratch_bytes(int64_t M, int64_t N, int64_t K) {
    if (!tn_shape_ok(M, N, K)) return 0;
    return panels_bytes_for(K, N) + a_bytes(M, (K + 1) / 2) + ALIGN;
}

/* Zeroes rows [M, a_rows) of each k block of a rounded A. */
static void zero_pad_rows(uint32_t *a, int64_t n_kblocks, int64_t M, int64_t a_rows) {
    for (int64_t kb = 0; kb < n_kblocks && a_rows > M; kb++)
        memset(a + ((size_t)kb * (size_t)a_rows + (size_t)M) * KC_PAIRS, 0,
               (size_t)(a_rows - M) * KC_PAIRS * sizeof(uint32_t));
}

int rd_gemm_bf16_tn(float *C, size_t ldc, const float *A, size_t lda, const float *B,
                    size_t ldb, int64_t M, int64_t N, int64_t K, int accumulate,
                    struct rd_pool *pool, void *scratch, const rd_gemm_bf16_opts *opts,
                    rd_error *err) {
    if (!tn_shape_ok(M, N, K))
        return rd_error_set(err, "bf16 weight-gradient gemm: invalid shape %lld × %lld × %lld",
                            (long long)M, (long long)N, (long long)K);
    if (lda < (size_t)M || ldb < (size_t)N || ldc < (size_t)N)
        return rd_error_set(err, "bf16 weight-gradient gemm: strides lda = %zu, ldb = %zu, "
                                 "ldc = %zu below widths %lld, %lld",
                            lda, ldb, ldc, (long long)M, (long long)N);
    const kernel_ops *ops = ops_for(opts ? opts->kernel : RD_GEMM_KERNEL_AUTO);
    if (!ops) return rd_error_set(err, "bf16 gemm: the kernel is not available on this CPU");
    if (M == 0 || N == 0) return 0;
    if (!C || (K > 0 && (!A || !B)))
        return rd_error_set(err, "bf16 weight-gradient gemm: missing A, B or C");
    if (K == 0) { /* an empty sum */
        if (!accumulate)
            for (int64_t i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof *C);
        return 0;
    }
    void *own = NULL;
    if (!scratch && !(scratch = own = malloc(rd_gemm_bf16_tn_scratch_bytes(M, N, K))))
        return rd_error_set(err, "bf16 weight-gradient gemm: out of memory for scratch");
    /* scratch: B's panels, then Aᵀ rounded (both ALIGN-aligned) */
    rd_bf16_panels panels = {.n = N, .k = K, .k_pairs = (K + 1) / 2,
                             .n_panels = (N + PANEL - 1) / PANEL};
    panels.k_stride = pad16(panels.k_pairs);
    panels.data = (uint32_t *)(((uintptr_t)scratch + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
    at_pack at = {.data = panels.data + panels_bytes_for(K, N) / sizeof(uint32_t), .A = A,
                  .lda = lda, .M = M, .K = K, .k_pairs = panels.k_pairs,
                  .a_rows = a_rows_for(ops, M)};
    k_blocks(at.k_pairs, ops->k_align, &at.n_kblocks, &at.kc);
    const int n_slots = pool_slots(pool);
    const int64_t want = n_slots == 1 ? 1 : (int64_t)n_slots * TASKS_PER_THREAD;
    b_pack bp = {.p = &panels, .B = B, .ldb = ldb};
    int n_b = 0, n_a = 0;
    bp.chunk = split(panels.k_pairs, want, &n_b);
    pack_call bcall = {&bp, ops};
    rd_pool_run(n_b > 1 ? pool : NULL, b_pack_task, &bcall, n_b);
    for (int64_t j = 0; j < panels.n_panels && panels.k_stride > panels.k_pairs; j++)
        memset(panels.data + ((size_t)j * (size_t)panels.k_stride + (size_t)panels.k_pairs) * PANEL,
               0, (size_t)(panels.k_stride - panels.k_pairs) * PANEL * sizeof(uint32_t));
    at.chunk = split((M + 15) / 16, want, &n_a) * 16; /* n_a chunks of 16-row groups */
    pack_call acall = {&at, ops};
    rd_pool_run(n_a > 1 ? pool : NULL, at_pack_task, &acall, n_a);
    zero_pad_rows(at.data, at.n_kblocks, M, at.a_rows);

    gemm_job job = {.C = C, .ldc = ldc, .M = M, .B = &panels, .accumulate = accumulate != 0,
                    .ops = ops, .a_packed = at.data, .a_rows = at.a_rows};
    const int n_tasks = plan_tasks(&job, n_slots);
    rd_pool_run(n_tasks > 1 ? pool : NULL, gemm_task, &job, n_tasks);
    free(own);
    return 0;
}

/* ---- products straight from a matrix in its storage type ------------------------------ */

/* One task multiplies all rows of A by a slice of ≤ FLY_PANELS panels of B, packed
 * FLY_KBLOCKS k blocks at a time into its slot (≤ 8 × 640 pairs × 128 bytes = 640 KiB, in L2
 * with the C block (≤ MC rows × 256 columns) it adds into). A is rounded once, before. */
#define FLY_PANELS 8  /* 256 columns: one K-quant block of a row (the backward slices' width) */
#define FLY_KBLOCKS 4 /* ≤ 4 × KC_PAIRS pairs */
#define FLY_PAIRS ((size_t)FLY_KBLOCKS * KC_PAIRS) /* a multiple of 16 */
#define FLY_MAX_BLOCK 256 /* rd_dtype block_elems at most */

struct fly_job {
    const rd_matrix *W;
    const rd_dtype_info *info;
    rd_bf16_mode mode;
    rd_bf16_panels B;  /* the whole B (k, n): its shape; data NULL */
    float *C;
    size_t ldc;
    int64_t M;
    int accumulate;
    const kernel_ops *ops;
    const uint32_t *a; /* A rounded: (n_kblocks, a_rows, KC_PAIRS) words */
    int64_t a_rows, n_kblocks, kc;
    int64_t np;        /* panels per task */
    slots s;           /* each slot: FLY_SLOT_BYTES */
};

/* A slot: the slice's panels, 16 rows of rounded pairs (forward), widened floats. */
#define FLY_SLICE_WORDS ((size_t)FLY_PANELS * FLY_PAIRS * PANEL)
#define FLY_WBUF_WORDS ((size_t)16 * FLY_PAIRS)
#define FLY_TMP_FLOATS ((size_t)2 * (2 * FLY_PAIRS + 2 * FLY_MAX_BLOCK))
#define FLY_SLOT_BYTES                                                                       \
    (((FLY_SLICE_WORDS + FLY_WBUF_WORDS) * sizeof(uint32_t) + FLY_TMP_FLOATS * sizeof(float) + \
      ALIGN - 1) & ~(size_t)(ALIGN - 1))

/* Widens elements [c0, c1) of row r of W (whole storage blocks) into tmp; returns where
 * element c0 landed. tmp: c1 − c0 + 2·block_elems floats. */
static const float *widen_part(const fly_job *f, int64_t r, int64_t c0, int64_t c1, float *tmp) {
    const int64_t be = (int64_t)f->info->block_elems, b0 = c0 / be, b1 = (c1 + be - 1) / be;
    f->info->to_f32((const char *)f->W->data + (size_t)r * f->W->row_bytes +
                        (size_t)b0 * f->info->block_bytes,
                    tmp, (size_t)((b1 - b0) * be));
    return tmp + (c0 - b0 * be);
}

/* Zeroes what a slice's packers leave: the pairs [k_pairs, k_stride) of every panel. */
static void slice_zero_pad(const rd_bf16_panels *S) {
    for (int64_t j = 0; j < S->n_panels && S->k_stride > S->k_pairs; j++)
        memset(S->data + ((size_t)j * (size_t)S->k_stride + (size_t)S->k_pairs) * PANEL, 0,
               (size_t)(S->k_stride - S->k_pairs) * PANEL * sizeof(uint32_t));
}

/* Forward: B = Wᵀ, column n of B = row n of W; pairs along W's columns. */
static void fly_fwd_portable(const fly_job *f, const rd_bf16_panels *S, int64_t j0, int64_t q0,
                             uint32_t *wbuf, float *tmp) {
    (void)wbuf;
    const int64_t K = f->W->cols, e0 = 2 * q0, e1 = min64(K, 2 * (q0 + S->k_pairs));
    for (int64_t c = 0; c < S->n_panels * PANEL; c++) {
        uint32_t *d = S->data + (size_t)(c / PANEL) * (size_t)S->k_stride * PANEL + c % PANEL;
        if (c >= S->n) {
            for (int64_t q = 0; q < S->k_pairs; q++) d[(size_t)q * PANEL] = 0;
            continue;
        }
        const float *x = widen_part(f, j0 * PANEL + c, e0, e1, tmp);
        for (int64_t q = 0; q < S->k_pairs; q++) {
            const int64_t e = 2 * q;
            d[(size_t)q * PANEL] = bf16_pair(x[e], e0 + e + 1 < e1 ? x[e + 1] : 0.0f);
        }
    }
    slice_zero_pad(S);
}

/* Backward: B = W, pair q = rows 2q, 2q + 1 of W; columns are W's columns. */
static void fly_bwd_portable(const fly_job *f, const rd_bf16_panels *S, int64_t j0, int64_t q0,
                             uint32_t *wbuf, float *tmp) {
    (void)wbuf;
    const int64_t R = f->W->rows, c0 = j0 * PANEL, c1 = c0 + S->n;
    float *t1 = tmp + FLY_TMP_FLOATS / 2;
    for (int64_t q = 0; q < S->k_pairs; q++) {
        const int64_t r = 2 * (q0 + q);
        const float *x0 = widen_part(f, r, c0, c1, tmp);
        const float *x1 = r + 1 < R ? widen_part(f, r + 1, c0, c1, t1) : NULL;
        for (int64_t j = 0; j < S->n_panels; j++) {
            uint32_t *d = S->data + ((size_t)j * (size_t)S->k_stride + (size_t)q) * PANEL;
            for (int c = 0; c < PANEL; c++) {
                const int64_t n = j * PANEL + c;
                d[c] = n >= S->n ? 0u : bf16_pair(x0[n], x1 ? x1[n] : 0.0f);
            }
        }
    }
    slice_zero_pad(S);
}

#if HAVE_AVX512BF16

/* d[q] = the pair (x[2q], x[2q + 1]) rounded, for q < words (a multiple of 16); elements at
 * or past n are zero. */
TARGET_AVX512BF16 static void round_pairs(uint32_t *d, const float *x, int64_t n, int64_t words) {
    for (int64_t q = 0; q < words; q += 16) {
        const int64_t e = 2 * q;
        const __m512 x0 = _mm512_maskz_loadu_ps(tail_mask(n - e), x + e);
        const __m512 x1 = _mm512_maskz_loadu_ps(tail_mask(n - e - 16), x + e + 16);
        _mm512_storeu_si512((void *)(d + q), (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
    }
}

/* As fly_fwd_portable (denormals become zero, as the kernels make them anyway): 16 rows of W
 * rounded into wbuf, then transposed 16 pairs at a time into 16 columns of the panel. */
TARGET_AVX512BF16 static void fly_fwd_avx512(const fly_job *f, const rd_bf16_panels *S,
                                             int64_t j0, int64_t q0, uint32_t *wbuf,
                                             float *tmp) {
    const int64_t K = f->W->cols, e0 = 2 * q0, e1 = min64(K, 2 * (q0 + S->k_pairs));
    const int64_t ks = S->k_stride;
    for (int64_t g = 0; g < 2 * S->n_panels; g++) { /* 16 columns of B: half of a panel */
        for (int c = 0; c < 16; c++) {
            const int64_t n = g * 16 + c;
            if (n < S->n) round_pairs(wbuf + (size_t)c * ks, widen_part(f, j0 * PANEL + n, e0, e1, tmp),
                                      e1 - e0, ks);
            else memset(wbuf + (size_t)c * ks, 0, (size_t)ks * sizeof(uint32_t));
        }
        uint32_t *d = S->data + (size_t)(g / 2) * (size_t)ks * PANEL + (size_t)(g % 2) * 16;
        for (int64_t q = 0; q < ks; q += 16) {
            __m512i r[16];
            for (int c = 0; c < 16; c++) r[c] = _mm512_loadu_si512((const void *)(wbuf + (size_t)c * ks + q));
            transpose16(r);
            for (int i = 0; i < 16; i++)
                _mm512_store_si512((void *)(d + (size_t)(q + i) * PANEL), r[i]);
        }
    }
}

/* As fly_bwd_portable (denormals become zero), 16 columns at a time. */
TARGET_AVX512BF16 static void fly_bwd_avx512(const fly_job *f, const rd_bf16_panels *S,
                                             int64_t j0, int64_t q0, uint32_t *wbuf,
                                             float *tmp) {
    (void)wbuf;
    const int64_t R = f->W->rows, c0 = j0 * PANEL, c1 = c0 + S->n;
    float *t1 = tmp + FLY_TMP_FLOATS / 2;
    for (int64_t q = 0; q < S->k_pairs; q++) {
        const int64_t r = 2 * (q0 + q);
        const float *x0 = widen_part(f, r, c0, c1, tmp);
        const float *x1 = r + 1 < R ? widen_part(f, r + 1, c0, c1, t1) : NULL;
        for (int64_t j = 0; j < S->n_panels; j++) {
            uint32_t *d = S->data + ((size_t)j * (size_t)S->k_stride + (size_t)q) * PANEL;
            for (int h = 0; h < PANEL; h += 16) {
                const int64_t n = j * PANEL + h;
                const __mmask16 m = tail_mask(S->n - n);
                const __m512 v0 = _mm512_maskz_loadu_ps(m, x0 + n);
                const __m512 v1 = x1 ? _mm512_maskz_loadu_ps(m, x1 + n) : _mm512_setzero_ps();
                _mm512_store_si512((void *)(d + h), interleave_pairs(v0, v1));
            }
        }
    }
    slice_zero_pad(S);
}

#endif

/* Rounds rows [i0, i1) of A (all k blocks) into f->a; the AMX packer zeroes the pad rows
 * (past M). */
typedef struct fly_a_call {
    const fly_job *f;
    const float *A;
    size_t lda;
    int64_t K, chunk; /* rows per task, a multiple of 16 */
} fly_a_call;

static void fly_a_task(void *arg, int task) {
    const fly_a_call *c = arg;
    const fly_job *f = c->f;
    const int64_t i0 = (int64_t)task * c->chunk, i1 = min64(i0 + c->chunk, f->M);
    const int64_t kp = f->B.k_pairs;
    /* steps of a multiple of 16 rows: the AMX packer's zero rows past a step's end then
     * fall past M, never into another task's rows */
    for (int64_t i = i0; i < i1; i += MC / 16 * 16) {
        const int rows = (int)min64(MC / 16 * 16, i1 - i);
        for (int64_t kb = 0; kb < f->n_kblocks; kb++) {
            const int64_t kp0 = kb * f->kc;
            f->ops->pack_a((uint32_t *)f->a + ((size_t)kb * (size_t)f->a_rows + (size_t)i) * KC_PAIRS,
                           c->A + (size_t)i * c->lda, c->lda, rows, c->K, kp0,
                           (int)min64(f->kc, kp - kp0));
        }
    }
}

static void fly_task(void *arg, int task) {
    fly_job *f = arg;
    const kernel_ops *ops = f->ops;
    const int64_t j0 = (int64_t)task * f->np;
    if (j0 >= f->B.n_panels) return;
    const int slot = slot_claim(&f->s);
    uint32_t *mem = slot_mem(&f->s, slot);
    uint32_t *wbuf = mem + FLY_SLICE_WORDS;
    float *tmp = (float *)(wbuf + FLY_WBUF_WORDS);
    const int64_t mc = m_block(ops, f->M);
    const fly_pack_fn pack = f->mode == RD_BF16_FORWARD ? ops->fly_fwd : ops->fly_bwd;
    if (ops->begin) ops->begin();
    for (int64_t kb0 = 0; kb0 < f->n_kblocks; kb0 += FLY_KBLOCKS) {
        const int64_t nkb = min64(FLY_KBLOCKS, f->n_kblocks - kb0);
        const int64_t q0 = kb0 * f->kc, q1 = min64(f->B.k_pairs, (kb0 + nkb) * f->kc);
        rd_bf16_panels S = {.n = min64(f->np * PANEL, f->B.n - j0 * PANEL),
                            .k = min64(f->B.k, 2 * q1) - 2 * q0, .k_pairs = q1 - q0,
                            .k_stride = pad16(q1 - q0), .data = mem};
        S.n_panels = (S.n + PANEL - 1) / PANEL;
        pack(f, &S, j0, q0, wbuf, tmp);
        for (int64_t mb = 0; mb < f->M; mb += mc) {
            const int rows = (int)min64(mc, f->M - mb);
            for (int64_t kb = kb0; kb < kb0 + nkb; kb++) {
                const block bk = {
                    .a = f->a + ((size_t)kb * (size_t)f->a_rows + (size_t)mb) * KC_PAIRS,
                    .rows = rows, .kcp = (int)min64(f->kc, f->B.k_pairs - kb * f->kc), .B = &S,
                    .kp0 = kb * f->kc - q0, .j0 = 0, .j1 = S.n_panels,
                    .c = f->C + (size_t)mb * f->ldc + (size_t)j0 * PANEL, .ldc = f->ldc,
                    .load_c = f->accumulate || kb > 0,
                };
                ops->block(&bk);
            }
        }
    }
    if (ops->end) ops->end();
    slot_release(&f->s, slot);
}

/* The shape of B for W in mode: *k its rows (the inner width), *n its columns. */
static int fly_shape(const rd_matrix *W, rd_bf16_mode mode, int64_t *k, int64_t *n) {
    if (!W || !W->data || !rd_dtype_info_of(W->type) || W->rows < 1 || W->cols < 1 ||
        W->rows > INT32_MAX || W->cols > INT32_MAX ||
        (mode != RD_BF16_FORWARD && mode != RD_BF16_BACKWARD))
        return -1;
    *k = mode == RD_BF16_FORWARD ? W->cols : W->rows;
    *n = mode == RD_BF16_FORWARD ? W->rows : W->cols;
    return 0;
}

size_t rd_gemm_bf16_matrix_scratch_bytes(int64_t M, const rd_matrix *W, rd_bf16_mode mode,
                                         const struct rd_pool *pool) {
    int64_t k, n;
    if (M < 0 || M > INT32_MAX || fly_shape(W, mode, &k, &n)) return 0;
    return a_bytes(M, (k + 1) / 2) + (size_t)pool_slots(pool) * FLY_SLOT_BYTES + 2 * ALIGN;
}

int rd_gemm_bf16_matrix(float *C, size_t ldc, const float *A, size_t lda, int64_t M,
                        const rd_matrix *W, rd_bf16_mode mode, int accumulate,
                        struct rd_pool *pool, void *scratch, const rd_gemm_bf16_opts *opts,
                        rd_error *err) {
    int64_t K, N;
    if (fly_shape(W, mode, &K, &N))
        return rd_error_set(err, "bf16 gemm: invalid matrix or mode %d", (int)mode);
    if (M < 0 || M > INT32_MAX)
        return rd_error_set(err, "bf16 gemm: invalid row count %lld", (long long)M);
    if (lda < (size_t)K || ldc < (size_t)N)
        return rd_error_set(err, "bf16 gemm: strides lda = %zu, ldc = %zu below widths %lld, %lld",
                            lda, ldc, (long long)K, (long long)N);
    const kernel_ops *ops = call_ops(opts, err);
    if (!ops) return -1;
    if (M == 0) return 0;
    if (!A || !C) return rd_error_set(err, "bf16 gemm: missing A or C");
    if (rd_dtype_info_of(W->type)->block_elems > FLY_MAX_BLOCK)
        return rd_error_set(err, "bf16 gemm: storage blocks of %zu elements are not supported",
                            rd_dtype_info_of(W->type)->block_elems);
    void *own = NULL;
    const size_t bytes = rd_gemm_bf16_matrix_scratch_bytes(M, W, mode, pool);
    if (!scratch && !(scratch = own = malloc(bytes)))
        return rd_error_set(err, "bf16 gemm: out of memory for %zu bytes of scratch", bytes);
    fly_job f = {.W = W, .info = rd_dtype_info_of(W->type), .mode = mode, .C = C, .ldc = ldc,
                 .M = M, .accumulate = accumulate != 0, .ops = ops};
    f.B = (rd_bf16_panels){.n = N, .k = K, .k_pairs = (K + 1) / 2,
                           .n_panels = (N + PANEL - 1) / PANEL};
    f.B.k_stride = pad16(f.B.k_pairs);
    k_blocks(f.B.k_pairs, ops->k_align, &f.n_kblocks, &f.kc);
    f.a_rows = a_rows_for(ops, M);
    uint32_t *a = (uint32_t *)(((uintptr_t)scratch + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
    f.a = a;
    const int n_slots = pool_slots(pool);
    slots_init(&f.s, (unsigned char *)a + a_bytes(M, f.B.k_pairs), FLY_SLOT_BYTES, n_slots);
    const int64_t want = n_slots == 1 ? 1 : (int64_t)n_slots * TASKS_PER_THREAD;
    /* A rounded once, in chunks of 16-row groups */
    int n_a = 0;
    fly_a_call ac = {.f = &f, .A = A, .lda = lda, .K = K};
    ac.chunk = split((M + 15) / 16, want, &n_a) * 16;
    rd_pool_run(n_a > 1 ? pool : NULL, fly_a_task, &ac, n_a);
    /* slices of at most FLY_PANELS panels, enough of them to keep every thread busy */
    f.np = (f.B.n_panels + want - 1) / want;
    f.np = f.np < 1 ? 1 : f.np > FLY_PANELS ? FLY_PANELS : f.np;
    const int n_tasks = (int)((f.B.n_panels + f.np - 1) / f.np);
    rd_pool_run(n_tasks > 1 ? pool : NULL, fly_task, &f, n_tasks);
    free(own);
    return 0;
}
