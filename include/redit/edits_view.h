/* redit — the view of RED edit vectors the forward pass reads (model layer).
 *
 * RED edits a sub-layer's output h before its residual add: h' = s ⊙ h + b. At strength
 * α the applied vectors are s' = 1 + α(s − 1) and b' = α·b (α = 1: the trained edit,
 * α = 0: the base model). The owning edit-set object (training issue) hands out this view;
 * the forward pass only borrows it. */
#ifndef REDIT_EDITS_VIEW_H
#define REDIT_EDITS_VIEW_H

typedef struct rd_site_edit {
    const float *scale; /* (dim) or NULL: s = 1 */
    const float *bias;  /* (dim) or NULL: b = 0 */
} rd_site_edit;

typedef struct rd_edits_view {
    const rd_site_edit *attn; /* (n_layers): o_proj output; NULL = site not edited */
    const rd_site_edit *ffn;  /* (n_layers): down_proj output; NULL = site not edited */
    float strength;           /* α */
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

typedef struct rd_edits_grad {
    const rd_site_grad *attn; /* (n_layers) or NULL */
    const rd_site_grad *ffn;  /* (n_layers) or NULL */
} rd_edits_grad;

#endif
