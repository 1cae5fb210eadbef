/* Storage type mixtures: which type each matrix of a model gets, as llama.cpp's quantizer
 * (src/llama-quant.cpp, llama_tensor_get_type, at de3ff81) picks it for the llama
 * architecture without an importance matrix. Used by `redit make-model --type Q4_K_M` to
 * write files shaped like the ones users download. */
#include <string.h>

#include "redit/model.h"

static const char *const MIX_NAMES[RD_MIX_COUNT] = {"Q4_K_M"};

int rd_type_mix_from_name(const char *name, rd_type_mix *out) {
    for (int i = 0; i < RD_MIX_COUNT; i++)
        if (!strcmp(name, MIX_NAMES[i])) {
            *out = (rd_type_mix)i;
            return 0;
        }
    return -1;
}

const char *rd_type_mix_name(rd_type_mix mix) {
    return (unsigned)mix < RD_MIX_COUNT ? MIX_NAMES[mix] : "?";
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third one
 * between. (i - n/8) is never negative where the last test is reached. */
static int use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* llama.cpp's tensor_type_fallback for a `cols`-wide matrix, for the types a mixture uses. */
static rd_dtype fallback(rd_dtype t, int cols) {
    if (cols % (int)rd_dtype_info_of(t)->block_elems == 0) return t;
    rd_dtype f = t == RD_DTYPE_Q4_K ? RD_DTYPE_Q5_0 : t == RD_DTYPE_Q6_K ? RD_DTYPE_Q8_0 : t;
    return cols % (int)rd_dtype_info_of(f)->block_elems == 0 ? f : RD_DTYPE_F16;
}

rd_dtype rd_type_mix_pick(rd_type_mix mix, const rd_config *cfg, int tied, rd_tensor_role role,
                          int layer) {
    (void)mix; /* RD_MIX_Q4_K_M is the only mixture */
    const int n = cfg->n_layers;
    if (role == RD_TENSOR_CLASSIFIER || (tied && role == RD_TENSOR_EMBEDDINGS))
        /* llama.cpp: Q6_K when the row is whole 256-blocks, else Q8_0 (then the fallback) */
        return fallback(cfg->dim % 256 == 0 ? RD_DTYPE_Q6_K : RD_DTYPE_Q8_0, cfg->dim);
    rd_dtype t = RD_DTYPE_Q4_K;
    if ((role == RD_TENSOR_WV || role == RD_TENSOR_W2) && use_more_bits(layer, n))
        t = RD_DTYPE_Q6_K;
    return fallback(t, role == RD_TENSOR_W2 ? cfg->hidden_dim : cfg->dim);
}
