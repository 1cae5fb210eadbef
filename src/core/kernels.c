/* Numeric kernels on OpenBLAS: matmul over weights of any storage type, RMSNorm, RoPE,
 * softmax, SwiGLU and grouped-query causal attention. */
#include "redit/kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Rows of a non-f32 weight widened at once: about 1 MiB of f32 per panel. */
static int64_t panel_rows(const rd_matrix *W) {
    int64_t rows = (int64_t)((1u << 18) / (size_t)W->cols);
    if (rows < 16) rows = 16;
    return rows < W->rows ? rows : W->rows;
}

size_t rd_matmul_scratch_floats(const rd_matrix *W, int n) {
    (void)n;
    if (W->type == RD_DTYPE_F32) return 0;
    return (size_t)panel_rows(W) * (size_t)W->cols;
}

void rd_matmul(float *out, const float *x, const rd_matrix *W, int n, float *scratch) {
    const int rows = (int)W->rows, cols = (int)W->cols;
    if (W->type == RD_DTYPE_F32) {
        const float *w = W->data;
        if (n == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, cols, 1.0f, w, cols, x, 1, 0.0f, out, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, cols, 1.0f, x, cols, w,
                        cols, 0.0f, out, rows);
        return;
    }
    const rd_dtype_info *info = rd_dtype_info_of(W->type);
    const int64_t P = panel_rows(W);
    for (int64_t r0 = 0; r0 < W->rows; r0 += P) {
        const int64_t pr = W->rows - r0 < P ? W->rows - r0 : P;
        info->to_f32((const char *)W->data + (size_t)r0 * W->row_bytes, scratch,
                     (size_t)(pr * W->cols));
        if (n == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)pr, cols, 1.0f, scratch, cols, x, 1,
                        0.0f, out + r0, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)pr, cols, 1.0f, x, cols,
                        scratch, cols, 0.0f, out + r0, rows);
    }
}

void rd_matmul_naive(float *out, const float *x, const rd_matrix *W, int n) {
    const rd_dtype_info *info = rd_dtype_info_of(W->type);
    const size_t be = info->block_elems; /* widen one block at a time: no allocation */
    float block[256];
    for (int64_t r = 0; r < W->rows; r++) {
        const char *src = (const char *)W->data + (size_t)r * W->row_bytes;
        for (int i = 0; i < n; i++) {
            double acc = 0.0;
            for (int64_t c0 = 0; c0 < W->cols; c0 += (int64_t)be) {
                info->to_f32(src + (size_t)(c0 / (int64_t)be) * info->block_bytes, block, be);
                for (size_t j = 0; j < be; j++)
                    acc += (double)block[j] * x[(size_t)i * W->cols + (size_t)c0 + j];
            }
            out[(size_t)i * W->rows + r] = (float)acc;
        }
    }
}

void rd_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps) {
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *oi = out + (size_t)i * d;
        float ss = 0.0f;
        for (int j = 0; j < d; j++) ss += xi[j] * xi[j];
        const float inv = 1.0f / sqrtf(ss / (float)d + eps);
        for (int j = 0; j < d; j++) oi[j] = xi[j] * inv * w[j];
    }
}

void rd_rope(float *x, int n_heads, int head_dim, int pos, float theta, rd_rope_layout layout) {
    const int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        const float freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        const float angle = (float)pos * freq;
        const float c = cosf(angle), s = sinf(angle);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_dim;
            float *a, *b;
            if (layout == RD_ROPE_ADJACENT) {
                a = &v[2 * i];
                b = &v[2 * i + 1];
            } else {
                a = &v[i];
                b = &v[i + half];
            }
            const float x0 = *a, x1 = *b;
            *a = x0 * c - x1 * s;
            *b = x0 * s + x1 * c;
        }
    }
}

void rd_softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void rd_swiglu(float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) gate[i] = rd_silu(gate[i]) * up[i];
}

void rd_attention(float *out, const float *q, const float *k, const float *v, int T, int pos0,
                  int n_heads, int n_kv_heads, int hs, size_t kv_stride, float *att) {
    const int L = pos0 + T; /* keys visible to the last new position */
    const int group = n_heads / n_kv_heads;
    const int qd = n_heads * hs;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < n_heads; h++) {
        const float *qh = q + (size_t)h * hs;
        const float *kh = k + (size_t)(h / group) * hs;
        const float *vh = v + (size_t)(h / group) * hs;
        float *oh = out + (size_t)h * hs;
        /* att (T, L) = scale · q_h (T, hs) · k_hᵀ (hs, L) */
        if (T == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, L, hs, scale, kh, (int)kv_stride, qh, 1,
                        0.0f, att, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L, hs, scale, qh, qd, kh,
                        (int)kv_stride, 0.0f, att, L);
        for (int t = 0; t < T; t++) {
            float *row = att + (size_t)t * L;
            const int visible = pos0 + t + 1;
            rd_softmax(row, visible);
            if (visible < L) memset(row + visible, 0, (size_t)(L - visible) * sizeof(float));
        }
        /* out_h (T, hs) = att (T, L) · v_h (L, hs) */
        if (T == 1)
            cblas_sgemv(CblasRowMajor, CblasTrans, L, hs, 1.0f, vh, (int)kv_stride, att, 1, 0.0f,
                        oh, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, L, 1.0f, att, L, vh,
                        (int)kv_stride, 0.0f, oh, qd);
    }
}
