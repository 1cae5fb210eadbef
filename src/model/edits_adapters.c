/* LoRA and IA3 edit sets as the ecosystem's adapter files, both ways (model layer; see
 * redit/export.h): a PEFT adapter folder (adapter_model.safetensors + adapter_config.json)
 * and a llama.cpp LoRA adapter GGUF.
 *
 * Row order. redit keeps LoRA B's rows (and IA3's k vector) in the model's own stored order:
 * for GGUF/llama2.c models (RD_ROPE_ADJACENT) the q/k rows are in llama.cpp's permuted
 * adjacent-pair order, for Hugging Face folders (RD_ROPE_HALF) in HF's rotate-half order.
 * PEFT files are in HF order (they apply to transformers' q_proj/k_proj), llama.cpp adapters
 * in the GGUF order (convert_lora_to_gguf.py permutes lora_B's rows as it permutes the
 * model's), so q/k rows are permuted between the two on the way out and back in; A (r, in)
 * and every other projection keep their order. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "redit/atomic_file.h"
#include "redit/export.h"
#include "redit/gguf_writer.h"
#include "redit/safetensors.h"
#include "redit/util.h"

#define N_PROJ 7
static const char *const PEFT_MODULE[N_PROJ] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                "gate_proj", "up_proj", "down_proj"};
static const char *const PEFT_PARENT[N_PROJ] = {"self_attn", "self_attn", "self_attn", "self_attn",
                                                "mlp",       "mlp",       "mlp"};
static const char *const LLAMA_TENSOR[N_PROJ] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                 "ffn_gate", "ffn_up", "ffn_down"};
#define PEFT_PREFIX "base_model.model."
#define FP_META "redit_base_fingerprint" /* safetensors metadata of a PEFT export */
#define FP_KEY "redit.base_fingerprint"  /* GGUF key of a llama.cpp adapter export */

/* ---- row order --------------------------------------------------------------------- */

/* Whether rows of projection proj (an output of rows rows) change order between the RoPE
 * layouts: q and k only. */
static int rope_rows(int proj) { return proj == RD_PROJ_Q || proj == RD_PROJ_K; }

/* dst ← src (rows × cols) with its rows moved from layout `from` to layout `to` (head_dim hs
 * rows per head); a copy when the layouts agree. dst and src do not overlap. */
static void move_rows(float *dst, const float *src, int64_t rows, int64_t cols, int64_t hs,
                      rd_rope_layout from, rd_rope_layout to) {
    for (int64_t r = 0; r < rows; r++) {
        int64_t s = r;
        if (from == RD_ROPE_ADJACENT && to == RD_ROPE_HALF) s = rd_rope_adjacent_row(r, hs);
        else if (from == RD_ROPE_HALF && to == RD_ROPE_ADJACENT) s = rd_rope_half_row(r, hs);
        memcpy(dst + r * cols, src + s * cols, (size_t)cols * sizeof *dst);
    }
}

/* The rows of tensor t of e (its proj's output rows: LoRA B, IA3 k/v) and its columns. */
static int64_t t_cols(const rd_edit_tensor *t) { return t->n_dims == 2 ? t->shape[1] : 1; }

/* A copy of e's parameters with the rows of q/k outputs (LoRA B, IA3 k) in layout `to`.
 * NULL on out of memory. */
static float *params_in_layout(const rd_edits *e, rd_rope_layout to) {
    const rd_config *c = rd_edits_config(e);
    const size_t n = rd_edits_param_count(e);
    float *out = malloc((n ? n : 1) * sizeof *out);
    if (!out) return NULL;
    const float *p = rd_edits_params_const(e);
    memcpy(out, p, n * sizeof *out);
    const int lora = rd_edits_method(e) == RD_METHOD_LORA;
    for (int i = 0; i < rd_edits_tensor_count(e); i++) {
        const rd_edit_tensor *t = rd_edits_tensor_at(e, i);
        if (!rope_rows(t->proj) || (lora && t->kind != 1)) continue;
        move_rows(out + t->offset, p + t->offset, t->shape[0], t_cols(t),
                  rd_config_head_dim(c), c->rope_layout, to);
    }
    return out;
}

static int lora_or_ia3(const rd_edits *e, const char *path, const char *format, int lora_only,
                       rd_error *err) {
    const int method = rd_edits_method(e);
    if (method == RD_METHOD_LORA || (method == RD_METHOD_IA3 && !lora_only)) return 0;
    return rd_error_set(err, "%s: the %s format holds %s adapters; these are %s edits%s", path,
                        format, lora_only ? "LoRA" : "LoRA and IA3",
                        method == RD_METHOD_RED ? "RED" : "IA3",
                        method == RD_METHOD_RED ? " (RED exports: cvec, safetensors, merged)"
                                                : " (IA3 exports: peft, merged)");
}

static int check_fit(const rd_edits *e, const rd_model *m, const char *path, rd_error *err) {
    const rd_config *c = rd_model_config(m);
    if (rd_edits_dim(e) == c->dim && rd_edits_n_layers(e) == c->n_layers) return 0;
    return rd_error_set(err, "%s: the edits (width %d, %d layers) do not fit the model "
                             "(width %d, %d layers)", path, rd_edits_dim(e), rd_edits_n_layers(e),
                        c->dim, c->n_layers);
}

/* ---- PEFT: writing ----------------------------------------------------------------- */

/* PEFT's tensor name of t: base_model.model.model.layers.{l}.{self_attn|mlp}.{x}_proj.
 * {lora_A.weight|lora_B.weight|ia3_l}. */
static void peft_name(const rd_edits *e, const rd_edit_tensor *t, char *buf, size_t cap) {
    const char *suffix = rd_edits_method(e) == RD_METHOD_IA3 ? "ia3_l"
                         : t->kind == 0                       ? "lora_A.weight"
                                                              : "lora_B.weight";
    snprintf(buf, cap, PEFT_PREFIX "model.layers.%d.%s.%s.%s", t->layer, PEFT_PARENT[t->proj],
             PEFT_MODULE[t->proj], suffix);
}

/* PEFT's shape of t: LoRA as redit's; IA3 (out, 1) for k/v, (1, in) for down_proj (the
 * feedforward module, whose input it scales). */
static void peft_shape(const rd_edits *e, const rd_edit_tensor *t, int64_t shape[2]) {
    shape[0] = t->shape[0];
    shape[1] = t->n_dims == 2 ? t->shape[1] : 1;
    if (rd_edits_method(e) == RD_METHOD_IA3 && t->proj == RD_PROJ_DOWN) {
        shape[0] = 1;
        shape[1] = t->shape[0];
    }
}

/* The selected projections' module names as a JSON list, or, when only some layers are
 * edited, one regular expression PEFT matches against full module names. */
static cJSON *peft_targets(const rd_edits *e, int mask) {
    if (!strcmp(rd_edits_layers_text(e), "all")) {
        cJSON *a = cJSON_CreateArray();
        for (int p = 0; p < N_PROJ; p++)
            if (mask & RD_PROJ_BIT(p)) cJSON_AddItemToArray(a, cJSON_CreateString(PEFT_MODULE[p]));
        return a;
    }
    rd_buf b = {0};
    rd_buf_printf(&b, "model\\.layers\\.(");
    for (int l = 0, first = 1; l < rd_edits_n_layers(e); l++)
        if (rd_edits_layer_on(e, l)) {
            rd_buf_printf(&b, "%s%d", first ? "" : "|", l);
            first = 0;
        }
    rd_buf_printf(&b, ")\\.(self_attn|mlp)\\.(");
    for (int p = 0, first = 1; p < N_PROJ; p++)
        if (mask & RD_PROJ_BIT(p)) {
            rd_buf_printf(&b, "%s%s", first ? "" : "|", PEFT_MODULE[p]);
            first = 0;
        }
    rd_buf_printf(&b, ")");
    cJSON *s = b.oom ? NULL : cJSON_CreateString(b.data);
    rd_buf_free(&b);
    return s;
}

static char *peft_config_json(const rd_edits *e, const rd_model *m) {
    cJSON *j = cJSON_CreateObject();
    const int lora = rd_edits_method(e) == RD_METHOD_LORA;
    const int mask = lora ? rd_edits_lora_targets(e)
                          : RD_PROJ_BIT(RD_PROJ_K) | RD_PROJ_BIT(RD_PROJ_V) | RD_PROJ_BIT(RD_PROJ_DOWN);
    cJSON_AddStringToObject(j, "peft_type", lora ? "LORA" : "IA3");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddStringToObject(j, "base_model_name_or_path", m->file.name);
    cJSON_AddNullToObject(j, "revision");
    cJSON_AddItemToObject(j, "target_modules", peft_targets(e, mask));
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    if (lora) {
        char num[32];
        cJSON_AddNumberToObject(j, "r", rd_edits_rank(e));
        /* the float's shortest decimal, as a JSON number */
        cJSON_AddRawToObject(j, "lora_alpha", rd_format_double(rd_edits_lora_alpha(e), num, sizeof num));
        cJSON_AddRawToObject(j, "lora_dropout",
                             rd_format_double(rd_edits_lora_dropout(e), num, sizeof num));
        cJSON_AddStringToObject(j, "bias", "none");
        cJSON_AddBoolToObject(j, "use_rslora", 0);
        cJSON_AddBoolToObject(j, "use_dora", 0);
        cJSON_AddBoolToObject(j, "init_lora_weights", 1);
        cJSON_AddItemToObject(j, "rank_pattern", cJSON_CreateObject());
        cJSON_AddItemToObject(j, "alpha_pattern", cJSON_CreateObject());
        cJSON_AddNullToObject(j, "layers_to_transform");
        cJSON_AddNullToObject(j, "layers_pattern");
    } else {
        cJSON *ff = cJSON_CreateArray();
        cJSON_AddItemToArray(ff, cJSON_CreateString("down_proj"));
        cJSON_AddItemToObject(j, "feedforward_modules", ff);
        cJSON_AddBoolToObject(j, "init_ia3_weights", 1);
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}

static int write_text(const char *path, const char *text, rd_error *err) {
    rd_atomic_file f;
    if (rd_atomic_file_open(&f, path, err)) return -1;
    if (rd_atomic_file_write(&f, text, strlen(text)) || rd_atomic_file_write(&f, "\n", 1)) {
        const int e = errno;
        rd_atomic_file_abort(&f);
        return rd_error_set(err, "%s: write failed: %s", path, strerror(e));
    }
    return rd_atomic_file_commit(&f, err);
}

static int make_folder(const char *dir, rd_error *err) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        return rd_error_set(err, "%s: exists and is not a folder (a PEFT adapter is a folder)", dir);
    }
    if (mkdir(dir, 0777) != 0)
        return rd_error_set(err, "%s: cannot make the folder: %s", dir, strerror(errno));
    return 0;
}

int rd_export_peft(rd_edits *e, const rd_model *m, const char *dir, rd_error *err) {
    if (lora_or_ia3(e, dir, "peft", 0, err) || check_fit(e, m, dir, err) || make_folder(dir, err))
        return -1;
    char path[4096], fp[32];
    float *data = params_in_layout(e, RD_ROPE_HALF);
    rd_st_writer *w = data ? rd_st_writer_new(err) : NULL;
    int rc = -1;
    if (!data) rd_error_set(err, "%s: out of memory", dir);
    if (!w) goto done;
    snprintf(fp, sizeof fp, "%016" PRIx64, rd_model_fingerprint(m));
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    rc = rd_st_writer_meta(w, "format", "pt", err) || rd_st_writer_meta(w, FP_META, fp, err) ||
         rd_st_writer_meta(w, "redit_base_model", m->file.name, err);
    for (int i = 0; !rc && i < rd_edits_tensor_count(e); i++) {
        const rd_edit_tensor *t = rd_edits_tensor_at(e, i);
        char name[160];
        int64_t shape[2];
        peft_name(e, t, name, sizeof name);
        peft_shape(e, t, shape);
        rc = rd_st_writer_add(w, name, RD_DTYPE_F32, shape, 2, data + t->offset, err);
    }
    if (!rc) rc = rd_st_writer_commit(w, path, err);
    if (!rc) {
        char *json = peft_config_json(e, m);
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        rc = json ? write_text(path, json, err) : rd_error_set(err, "%s: out of memory", dir);
        free(json);
    }
done:
    rd_st_writer_free(w);
    free(data);
    return rc ? -1 : 0;
}

/* ---- llama.cpp LoRA GGUF: writing --------------------------------------------------- */

int rd_export_llama_lora(rd_edits *e, const rd_model *m, const char *path, rd_dtype type,
                         rd_error *err) {
    if (lora_or_ia3(e, path, "llama-lora", 1, err) || check_fit(e, m, path, err)) return -1;
    if (type != RD_DTYPE_F32 && type != RD_DTYPE_F16 && type != RD_DTYPE_BF16)
        return rd_error_set(err, "%s: a llama.cpp LoRA adapter is written as F32, F16 or BF16",
                            path);
    const size_t n = rd_edits_param_count(e);
    const size_t esize = (size_t)rd_dtype_info_of(type)->block_bytes;
    float *data = params_in_layout(e, RD_ROPE_ADJACENT);
    char *bytes = type == RD_DTYPE_F32 ? (char *)data : malloc(n * esize + 1);
    rd_gguf_writer *w = data && bytes ? rd_gguf_writer_new(err) : NULL;
    int rc = -1;
    if (!data || !bytes) rd_error_set(err, "%s: out of memory", path);
    if (w) {
        char fp[32];
        snprintf(fp, sizeof fp, "%016" PRIx64, rd_model_fingerprint(m));
        if (type != RD_DTYPE_F32) rd_dtype_info_of(type)->from_f32(data, bytes, n);
        rd_gguf_writer_kv_str(w, "general.architecture", "llama");
        rd_gguf_writer_kv_str(w, "general.type", "adapter");
        rd_gguf_writer_kv_str(w, "general.name", m->file.name);
        rd_gguf_writer_kv_str(w, "adapter.type", "lora");
        rd_gguf_writer_kv_f32(w, "adapter.lora.alpha", rd_edits_lora_alpha(e));
        rd_gguf_writer_kv_str(w, FP_KEY, fp);
        rc = 0;
        for (int i = 0; !rc && i < rd_edits_tensor_count(e); i++) {
            const rd_edit_tensor *t = rd_edits_tensor_at(e, i);
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", t->layer,
                     LLAMA_TENSOR[t->proj], t->kind == 0 ? 'a' : 'b');
            /* {r, in} and {out, r} outermost first: GGUF's ne [in, r] and [r, out] */
            rc = rd_gguf_writer_add(w, name, type, t->shape, 2, bytes + t->offset * esize, err);
        }
        if (rc) rd_error_prefix(err, "%s", path);
        else rc = rd_gguf_writer_commit(w, path, err);
    }
    rd_gguf_writer_free(w);
    if (bytes != (char *)data) free(bytes);
    free(data);
    return rc ? -1 : 0;
}

/* ---- reading: common ---------------------------------------------------------------- */

/* One adapter tensor found in a file, mapped to redit's (layer, proj, kind). */
typedef struct found {
    int layer, proj, kind;
    int64_t rows, cols; /* as redit's tensor: LoRA A (r, in), B (out, r); IA3 (n, 1) */
    const void *data;   /* in type `type` */
    rd_dtype type;
    char name[160];
} found;

typedef struct import_ctx {
    const char *path;
    const rd_model *m;
    rd_rope_layout file_layout;
    found *t;
    int n;
    size_t cap;
    rd_error *err;
} import_ctx;

static found *add_found(import_ctx *c) {
    if (rd_array_reserve(&c->t, &c->cap, (size_t)c->n + 1, sizeof *c->t)) return NULL;
    found *f = &c->t[c->n++];
    memset(f, 0, sizeof *f);
    return f;
}

static const found *find(const import_ctx *c, int layer, int proj, int kind) {
    for (int i = 0; i < c->n; i++)
        if (c->t[i].layer == layer && c->t[i].proj == proj && c->t[i].kind == kind)
            return &c->t[i];
    return NULL;
}

/* The canonical layer list of the found tensors ("all" when every layer has one). */
static void layer_list(const import_ctx *c, char *buf, size_t cap) {
    const int L = rd_model_config(c->m)->n_layers;
    rd_buf b = {0};
    int n_on = 0, start = -1;
    for (int l = 0; l <= L; l++) {
        int on = 0;
        for (int i = 0; i < c->n && l < L && !on; i++) on = c->t[i].layer == l;
        n_on += on;
        if (on && start < 0) start = l;
        if (!on && start >= 0) {
            if (l - 1 == start) rd_buf_printf(&b, "%s%d", b.len ? "," : "", start);
            else rd_buf_printf(&b, "%s%d-%d", b.len ? "," : "", start, l - 1);
            start = -1;
        }
    }
    snprintf(buf, cap, "%s", n_on == L ? "all" : b.oom || !b.data ? "" : b.data);
    rd_buf_free(&b);
}

/* Builds the edit set the found tensors declare and copies them in (rows of q/k outputs
 * moved from the file's layout to the model's). method LoRA: rank r and alpha given. */
static rd_edits *build(import_ctx *c, int method, int rank, float alpha, float dropout) {
    const rd_config *cfg = rd_model_config(c->m);
    char layers[1024];
    layer_list(c, layers, sizeof layers);
    rd_edit_spec spec = {.method = method, .layers = layers, .rank = rank, .lora_alpha = alpha,
                         .lora_dropout = dropout};
    for (int i = 0; i < c->n; i++)
        if (method == RD_METHOD_LORA) spec.lora_targets |= RD_PROJ_BIT(c->t[i].proj);
    if (c->n == 0) {
        rd_error_set(c->err, "%s: the adapter holds no tensor", c->path);
        return NULL;
    }
    rd_edits *e = rd_edits_new(cfg, &spec, c->err);
    if (!e) {
        rd_error_prefix(c->err, "%s", c->path);
        return NULL;
    }
    int64_t largest = 1;
    for (int i = 0; i < rd_edits_tensor_count(e); i++)
        if ((int64_t)rd_edits_tensor_at(e, i)->count > largest)
            largest = (int64_t)rd_edits_tensor_at(e, i)->count;
    float *tmp = malloc((size_t)largest * sizeof *tmp);
    int rc = tmp ? 0 : rd_error_set(c->err, "%s: out of memory", c->path);
    for (int i = 0; !rc && i < rd_edits_tensor_count(e); i++) {
        const rd_edit_tensor *t = rd_edits_tensor_at(e, i);
        const found *f = find(c, t->layer, t->proj, t->kind);
        const int64_t cols = t_cols(t);
        if (!f) {
            /* every edited layer has every target (redit's sets are uniform) */
            const found *any = NULL;
            for (int k = 0; k < c->n && !any; k++)
                if (c->t[k].layer == t->layer) any = &c->t[k];
            rc = rd_error_set(c->err, "%s: layer %d has %s but no %s %s tensor (redit reads "
                                      "adapters whose edited layers all carry the same projections)",
                              c->path, t->layer, any ? any->name : "tensors",
                              rd_proj_name(t->proj),
                              method == RD_METHOD_IA3 ? "IA3" : t->kind ? "lora_B" : "lora_A");
        } else if (f->rows != t->shape[0] || f->cols != cols) {
            rc = rd_error_set(c->err, "%s: tensor \"%s\" is %" PRId64 " × %" PRId64 " but this "
                                      "model's %s projection (rank %d) needs %" PRId64 " × %" PRId64
                                      " (hint: another base model?)",
                              c->path, f->name, f->rows, f->cols, rd_proj_name(t->proj), rank,
                              t->shape[0], cols);
        } else {
            float *dst = rd_edits_params(e) + t->offset;
            const int move = rope_rows(t->proj) && (method == RD_METHOD_IA3 || t->kind == 1);
            rd_dtype_info_of(f->type)->to_f32(f->data, move ? tmp : dst, t->count);
            if (move)
                move_rows(dst, tmp, t->shape[0], cols, rd_config_head_dim(cfg), c->file_layout,
                          cfg->rope_layout);
            for (size_t j = 0; j < t->count && !rc; j++)
                if (!isfinite(dst[j]))
                    rc = rd_error_set(c->err, "%s: tensor \"%s\" holds a non-finite value",
                                      c->path, f->name);
        }
    }
    free(tmp);
    if (rc) {
        rd_edits_free(e);
        return NULL;
    }
    return e;
}

static int check_fp(import_ctx *c, const char *theirs, int force, rd_fp_match *match) {
    *match = RD_FP_OTHER;
    if (!theirs || force) return 0; /* foreign adapters carry no fingerprint: shapes decide */
    *match = rd_model_fingerprint_match(c->m, theirs, 0);
    if (*match == RD_FP_SAME) return 0;
    return rd_error_set(c->err, "%s: the adapter was exported from another model (fingerprint "
                                "%.20s, this model's is %016" PRIx64 "); --force skips this check",
                        c->path, theirs, rd_model_fingerprint(c->m));
}

/* ---- PEFT: reading ------------------------------------------------------------------ */

/* Parses "model.layers.{l}.{parent}.{module}.{rest}" (after an optional
 * "base_model.model." prefix) into layer, proj and rest; -1 when it is not of that form. */
static int parse_peft_name(const char *name, int *layer, int *proj, const char **rest) {
    if (!strncmp(name, PEFT_PREFIX, strlen(PEFT_PREFIX))) name += strlen(PEFT_PREFIX);
    if (strncmp(name, "model.layers.", 13)) return -1;
    name += 13;
    char *end;
    errno = 0;
    const long l = strtol(name, &end, 10);
    if (end == name || *end != '.' || errno || l < 0 || l > RD_EDITS_MAX_LAYERS) return -1;
    name = end + 1;
    for (int p = 0; p < N_PROJ; p++) {
        const size_t a = strlen(PEFT_PARENT[p]), b = strlen(PEFT_MODULE[p]);
        if (!strncmp(name, PEFT_PARENT[p], a) && name[a] == '.' &&
            !strncmp(name + a + 1, PEFT_MODULE[p], b) && name[a + 1 + b] == '.') {
            *layer = (int)l;
            *proj = p;
            *rest = name + a + b + 2;
            return 0;
        }
    }
    return -1;
}

/* A JSON member that must be absent, null, false, empty or equal to `ok` (a string). */
static int refuse_member(import_ctx *c, const cJSON *j, const char *key, const char *ok,
                         const char *why) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 0;
    if ((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child) return 0;
    if (ok && cJSON_IsString(v) && !strcmp(v->valuestring, ok)) return 0;
    return rd_error_set(c->err, "%s/adapter_config.json: \"%s\" is set: %s", c->path, key, why);
}

static int json_number(import_ctx *c, const cJSON *j, const char *key, int required,
                       double def, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v && !required) {
        *out = def;
        return 0;
    }
    if (!v || !cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return rd_error_set(c->err, "%s/adapter_config.json: \"%s\" is %s, expected a number",
                            c->path, key, v ? "not a number" : "missing");
    *out = v->valuedouble;
    return 0;
}

static rd_edits *import_peft(import_ctx *c, int force, rd_fp_match *match) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", c->path);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        rd_error_set(c->err, "%s: a folder without adapter_config.json (%s) is not a PEFT adapter",
                     c->path, strerror(errno));
        return NULL;
    }
    rd_buf text = {0};
    const int bad = rd_buf_read(&text, fp);
    fclose(fp);
    cJSON *j = bad || !text.data ? NULL : cJSON_Parse(text.data);
    rd_buf_free(&text);
    rd_st_file *st = NULL;
    rd_edits *e = NULL;
    if (!cJSON_IsObject(j)) {
        rd_error_set(c->err, "%s: adapter_config.json is not a JSON object", c->path);
        goto done;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
    const char *ts = cJSON_IsString(type) ? type->valuestring : NULL;
    const int method = ts && !strcmp(ts, "LORA") ? RD_METHOD_LORA
                       : ts && !strcmp(ts, "IA3") ? RD_METHOD_IA3
                                                  : -1;
    if (method < 0) {
        rd_error_set(c->err, "%s/adapter_config.json: peft_type is %s%.40s%s; redit reads LORA "
                             "and IA3 adapters", c->path, ts ? "\"" : "", ts ? ts : "missing",
                     ts ? "\"" : "");
        goto done;
    }
    double r = 0, alpha = 0, dropout = 0;
    if (refuse_member(c, j, "fan_in_fan_out", NULL, "Llama's projections are not Conv1D") ||
        refuse_member(c, j, "modules_to_save", NULL, "redit cannot load whole modules") ||
        (method == RD_METHOD_LORA &&
         (refuse_member(c, j, "use_dora", NULL, "DoRA is not LoRA") ||
          refuse_member(c, j, "use_rslora", NULL, "redit scales LoRA by lora_alpha/r") ||
          refuse_member(c, j, "rank_pattern", NULL, "redit uses one rank") ||
          refuse_member(c, j, "alpha_pattern", NULL, "redit uses one lora_alpha") ||
          refuse_member(c, j, "bias", "none", "redit's LoRA trains no biases") ||
          json_number(c, j, "r", 1, 0, &r) || json_number(c, j, "lora_alpha", 1, 0, &alpha) ||
          json_number(c, j, "lora_dropout", 0, 0, &dropout))))
        goto done;
    if (method == RD_METHOD_LORA && (r < 1 || r > RD_LORA_MAX_RANK || r != floor(r) ||
                                     !(alpha > 0) || !(dropout >= 0 && dropout < 1))) {
        rd_error_set(c->err, "%s/adapter_config.json: r = %g, lora_alpha = %g, lora_dropout = %g "
                             "are out of range", c->path, r, alpha, dropout);
        goto done;
    }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", c->path);
    st = rd_st_open(path, c->err);
    if (!st) {
        rd_error_prefix(c->err, "%s: reading the PEFT adapter (adapter_model.safetensors; the "
                                "pickled adapter_model.bin is not read)", c->path);
        goto done;
    }
    const int L = rd_model_config(c->m)->n_layers;
    for (int i = 0; i < rd_st_count(st); i++) {
        const rd_st_tensor *t = rd_st_at(st, i);
        int layer, proj, kind = 0;
        const char *rest;
        int ok = !parse_peft_name(t->name, &layer, &proj, &rest);
        if (ok && method == RD_METHOD_LORA)
            ok = !strcmp(rest, "lora_A.weight") || (kind = 1, !strcmp(rest, "lora_B.weight"));
        else if (ok)
            ok = !strcmp(rest, "ia3_l") &&
                 (proj == RD_PROJ_K || proj == RD_PROJ_V || proj == RD_PROJ_DOWN);
        if (!ok) {
            rd_error_set(c->err, "%s: unexpected tensor \"%.100s\" in a %s adapter (redit reads "
                                 "model.layers.N.{self_attn|mlp}.X_proj.%s)", c->path, t->name,
                         ts, method == RD_METHOD_LORA ? "lora_A.weight / lora_B.weight" : "ia3_l");
            goto done;
        }
        if (layer >= L) {
            rd_error_set(c->err, "%s: tensor \"%.100s\" is for layer %d, but this model has %d "
                                 "layers", c->path, t->name, layer, L);
            goto done;
        }
        if (!t->has_rd_dtype || t->n_dims < 1 || t->n_dims > 2) {
            rd_error_set(c->err, "%s: tensor \"%.100s\" is %s in %d dimensions (adapter tensors "
                                 "are F32, F16 or BF16 matrices)", c->path, t->name, t->dtype,
                         t->n_dims);
            goto done;
        }
        if (find(c, layer, proj, kind)) {
            rd_error_set(c->err, "%s: tensor \"%.100s\" appears twice", c->path, t->name);
            goto done;
        }
        found *f = add_found(c);
        if (!f) {
            rd_error_set(c->err, "%s: out of memory", c->path);
            goto done;
        }
        *f = (found){.layer = layer, .proj = proj, .kind = kind, .data = t->data, .type = t->type};
        snprintf(f->name, sizeof f->name, "%s", t->name);
        f->rows = t->shape[0];
        f->cols = t->n_dims == 2 ? t->shape[1] : 1;
        if (method == RD_METHOD_IA3 && f->rows == 1 && f->cols > 1) { /* (1, in): down_proj */
            f->rows = f->cols;
            f->cols = 1;
        }
    }
    if (!check_fp(c, rd_st_metadata(st, FP_META), force, match))
        e = build(c, method, (int)r, (float)alpha, (float)dropout);
done:
    rd_st_close(st);
    cJSON_Delete(j);
    return e;
}

/* ---- llama.cpp LoRA GGUF: reading --------------------------------------------------- */

static int gguf_string_is(const rd_gguf *g, const char *key, const char *want, char *got,
                          size_t cap) {
    const rd_gguf_value *v = rd_gguf_get(g, key);
    if (!v || v->type != RD_GGUF_STRING) {
        snprintf(got, cap, "%s", v ? "not a string" : "missing");
        return 0;
    }
    rd_gguf_printable(got, cap, v->as.s, v->n);
    return v->n == strlen(want) && !memcmp(v->as.s, want, v->n);
}

static rd_edits *import_gguf(import_ctx *c, int force, rd_fp_match *match) {
    rd_weights w = {0};
    rd_gguf *g = NULL;
    rd_edits *e = NULL;
    if (rd_weights_map_file(&w, c->path, c->err) ||
        rd_gguf_parse(w.map, w.map_size, c->path, &g, c->err))
        goto done;
    char got[64];
    if (!gguf_string_is(g, "general.type", "adapter", got, sizeof got)) {
        rd_error_set(c->err, "%s: a GGUF whose general.type is %s, not \"adapter\": --edits takes "
                             "an edit file, a PEFT adapter folder or a llama.cpp LoRA adapter, "
                             "not a model", c->path, got);
        goto done;
    }
    if (!gguf_string_is(g, "adapter.type", "lora", got, sizeof got) ||
        !gguf_string_is(g, "general.architecture", "llama", got, sizeof got)) {
        rd_error_set(c->err, "%s: redit reads llama.cpp adapters with adapter.type \"lora\" and "
                             "general.architecture \"llama\" (found %s)", c->path, got);
        goto done;
    }
    const rd_gguf_value *va = rd_gguf_get(g, "adapter.lora.alpha");
    double alpha = 0;
    if (va && (va->type != RD_GGUF_FLOAT32 || rd_gguf_value_float(va, &alpha) || !isfinite(alpha) ||
               alpha < 0)) {
        rd_error_set(c->err, "%s: adapter.lora.alpha is not a non-negative float32", c->path);
        goto done;
    }
    const int L = rd_model_config(c->m)->n_layers;
    int rank = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const rd_gguf_tensor *t = &g->tensors[i];
        char name[RD_GGUF_MAX_NAME + 1], module[32], ab = 0;
        rd_gguf_printable(name, sizeof name, t->name, t->name_len);
        int layer = -1, proj = -1, used = 0;
        if (t->name_len < sizeof name &&
            sscanf(name, "blk.%d.%31[a-z_].weight.lora_%c%n", &layer, module, &ab, &used) == 3 &&
            (size_t)used == t->name_len && (ab == 'a' || ab == 'b'))
            for (int p = 0; p < N_PROJ; p++)
                if (!strcmp(module, LLAMA_TENSOR[p])) proj = p;
        if (proj < 0 || layer < 0) {
            rd_error_set(c->err, "%s: unexpected tensor \"%s\" (redit reads blk.N.{attn_q|attn_k|"
                                 "attn_v|attn_output|ffn_gate|ffn_up|ffn_down}.weight.lora_a / "
                                 ".lora_b)", c->path, name);
            goto done;
        }
        if (layer >= L) {
            rd_error_set(c->err, "%s: tensor \"%s\" is for layer %d, but this model has %d layers",
                         c->path, name, layer, L);
            goto done;
        }
        if (t->n_dims > 2 || t->type->dtype < 0) {
            rd_error_set(c->err, "%s: tensor \"%s\" is %s in %u dimensions (redit reads 2-D "
                                 "F32/F16/BF16/quantized factors it knows)", c->path, name,
                         t->type->name, t->n_dims);
            goto done;
        }
        const int kind = ab == 'b';
        if (find(c, layer, proj, kind)) {
            rd_error_set(c->err, "%s: tensor \"%s\" appears twice", c->path, name);
            goto done;
        }
        /* lora_a: ne [in, r]; lora_b: ne [r, out] (row-major (r, in) and (out, r)) */
        const int64_t r = (int64_t)(kind ? t->ne[0] : t->ne[1]);
        if (rank == 0 && r >= 1 && r <= RD_LORA_MAX_RANK) rank = (int)r;
        if (r != rank) {
            rd_error_set(c->err, "%s: tensor \"%s\" has rank %" PRId64 " where others have %d "
                                 "(redit reads adapters of one rank)", c->path, name, r, rank);
            goto done;
        }
        found *f = add_found(c);
        if (!f) {
            rd_error_set(c->err, "%s: out of memory", c->path);
            goto done;
        }
        *f = (found){.layer = layer, .proj = proj, .kind = kind, .data = t->data,
                     .type = (rd_dtype)t->type->dtype, .rows = (int64_t)t->ne[1],
                     .cols = (int64_t)t->ne[0]};
        snprintf(f->name, sizeof f->name, "%s", name);
    }
    const rd_gguf_value *vf = rd_gguf_get(g, FP_KEY);
    char fp[32] = "";
    if (vf && vf->type == RD_GGUF_STRING) rd_gguf_printable(fp, sizeof fp, vf->as.s, vf->n);
    /* llama.cpp scales by alpha/r, or by 1 when alpha is 0 or absent: alpha = r then */
    if (!check_fp(c, vf ? fp : NULL, force, match))
        e = build(c, RD_METHOD_LORA, rank, alpha > 0 ? (float)alpha : (float)rank, 0.0f);
done:
    rd_gguf_free(g);
    rd_weights_release(&w);
    return e;
}

/* ---- dispatch ----------------------------------------------------------------------- */

int rd_adapter_kind(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return RD_ADAPTER_REDIT;
    if (S_ISDIR(st.st_mode)) return RD_ADAPTER_PEFT;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    const int n = f ? (int)fread(magic, 1, 4, f) : 0;
    if (f) fclose(f);
    return n == 4 && !memcmp(magic, "GGUF", 4) ? RD_ADAPTER_LLAMA_LORA : RD_ADAPTER_REDIT;
}

rd_edits *rd_edits_import(const char *path, const rd_model *m, int force, rd_fp_match *match,
                          rd_error *err) {
    rd_fp_match how = RD_FP_OTHER;
    const int kind = rd_adapter_kind(path);
    import_ctx c = {.path = path, .m = m, .err = err,
                    .file_layout = kind == RD_ADAPTER_PEFT ? RD_ROPE_HALF : RD_ROPE_ADJACENT};
    rd_edits *e = NULL;
    if (kind == RD_ADAPTER_PEFT) e = import_peft(&c, force, &how);
    else if (kind == RD_ADAPTER_LLAMA_LORA) e = import_gguf(&c, force, &how);
    else rd_error_set(err, "%s: neither a PEFT adapter folder nor a llama.cpp LoRA GGUF", path);
    free(c.t);
    if (match) *match = how;
    return e;
}
