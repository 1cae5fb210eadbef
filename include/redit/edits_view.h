/* redit — the view of RED edit vectors the forward pass reads (model layer).
 *
 * RED edits a sub-layer's output h before its residual add: h' = s ⊙ h + b. At strength
 * α the applied vectors are s' = 1 + α(s − 1) and b' = α·b (α = 1: the trained edit,
 * α = 0: the base model). The same view carries the other methods of an edit set: LoRA's
 * low-rank factors per layer and projection, applied as α·(lora_alpha/r)·B·A·x, and IA3's
 * scale vectors, applied as s' = 1 + α(s − 1) like RED's scales. The owning edit-set object (training issue) hands out this view;
 * the forward pass only borrows it. */
#ifndef REDIT_EDITS_VIEW_H
#define REDIT_EDITS_VIEW_H

typedef struct rd_site_edit {
    const float *scale; /* (dim) or NULL: s = 1 */
    const float *bias;  /* (dim) or NULL: b = 0 */
} rd_site_edit;

/* The projections of a Llama layer, the ids LoRA targets are keyed by (q k v o gate up
 * down = wq wk wv wo w1 w3 w2); a target set is a mask of RD_PROJ_BIT(id). */
typedef enum rd_layer_proj {
    RD_PROJ_Q, RD_PROJ_K, RD_PROJ_V, RD_PROJ_O, RD_PROJ_GATE, RD_PROJ_UP, RD_PROJ_DOWN
} rd_layer_proj;
#define RD_N_PROJ 7
#define RD_PROJ_BIT(id) (1 << (id))

/* LoRA on one layer: for each projection id, A (r, in) and B (out, r) row-major, or both
 * NULL when the projection is not a target. The applied product is
 *   out += α·(lora_alpha/r)·B·(A·x)     (α the view's strength; α = 0 adds nothing). */
typedef struct rd_lora_edit {
    const float *a[RD_N_PROJ];
    const float *b[RD_N_PROJ];
} rd_lora_edit;

/* IA3 on one layer: learned scales of k_proj's and v_proj's outputs (kv_dim each, before
 * RoPE and the cache) and of down_proj's input act = silu(g)·u (hidden_dim), each applied at
 * strength α as s' = rd_edit_scale_at(s, α); NULL where not edited. */
typedef struct rd_ia3_edit {
    const float *k, *v, *ffn;
} rd_ia3_edit;

typedef struct rd_edits_view {
    const rd_site_edit *attn; /* (n_layers): o_proj output; NULL = site not edited */
    const rd_site_edit *ffn;  /* (n_layers): down_proj output; NULL = site not edited */
    float strength;           /* α */
    const rd_lora_edit *lora; /* (n_layers) LoRA factors, or NULL (not a LoRA set) */
    int lora_rank;            /* r of every A (r, in) and B (out, r) */
    float lora_scale;         /* lora_alpha / r (the strength is applied on top) */
    const rd_ia3_edit *ia3;   /* (n_layers) IA3 vectors, or NULL (not an IA3 set) */
} rd_edits_view;

/* The applied vectors at strength α, the one formula every path uses (forward, backward,
 * exports of gradients): s' = 1 + α(s − 1), b' = α·b. α = 1 returns s and b exactly, so the
 * trained numbers are used as they are. */
static inline float rd_edit_scale_at(float s, float alpha) {
    return alpha == 1.0f ? s : 1.0f + alpha * (s - 1.0f);
}
static inline float rd_edit_bias_at(float b, float alpha) { return alpha == 1.0f ? b : alpha * b; }

/* Where the backward pass adds the gradients of the edit vectors: same shape as the view,
 * pointers into a gradient buffer (NULL where the view has no vector). */
typedef struct rd_site_grad {
    float *dscale; /* (dim) or NULL */
    float *dbias;  /* (dim) or NULL */
} rd_site_grad;

typedef struct rd_lora_grad {
    float *da[RD_N_PROJ]; /* (r, in) or NULL */
    float *db[RD_N_PROJ]; /* (out, r) or NULL */
} rd_lora_grad;

typedef struct rd_ia3_grad {
    float *dk, *dv, *dffn; /* (kv_dim), (kv_dim), (hidden_dim) or NULL */
} rd_ia3_grad;

typedef struct rd_edits_grad {
    const rd_site_grad *attn; /* (n_layers) or NULL */
    const rd_site_grad *ffn;  /* (n_layers) or NULL */
    const rd_lora_grad *lora; /* (n_layers) or NULL */
    const rd_ia3_grad *ia3;   /* (n_layers) or NULL */
} rd_edits_grad;

#endif
