/* redit export --edits E -m MODEL --format cvec|merged|safetensors|peft|llama-lora -o FILE:
 * edits for other tools (llama.cpp control vectors and LoRA adapters, a merged GGUF, PEFT
 * adapter folders, Python). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "redit/edits.h"
#include "redit/export.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit export --edits FILE -m MODEL --format FORMAT -o FILE\n\n"
            "Exports trained edits (at strength 1). RED: cvec, merged, safetensors;\n"
            "LoRA: peft, llama-lora, merged; IA3: peft, merged.\n\n"
            "  cvec         llama.cpp control vector (GGUF, direction.N = ffn bias of layer N;\n"
            "               use with llama.cpp's --control-vector). Control vectors are added\n"
            "               after a layer's residual add, which equals RED's ffn bias exactly,\n"
            "               but llama.cpp never applies one to layer 0, and scale vectors and\n"
            "               attn-site edits cannot be expressed: those are dropped and listed.\n"
            "  merged       a full GGUF of the model with the edits folded in. RED: scales\n"
            "               multiply the rows of ffn_down / attn_output, biases become\n"
            "               blk.N.ffn_down.bias / blk.N.attn_output.bias; LoRA: W + (alpha/r)·B·A\n"
            "               on each target; IA3: the rows of attn_k / attn_v and the columns of\n"
            "               ffn_down scaled. Changed matrices are written F32 (F16/BF16 when\n"
            "               the model's matrix is; --type sets it, e.g. for a quantized model);\n"
            "               the others keep their type and bytes.\n"
            "  safetensors  the vectors for Python: model.layers.{i}.mlp.down_proj.red_scale /\n"
            "               .red_bias and model.layers.{i}.self_attn.o_proj.red_scale / .red_bias,\n"
            "               F32 [dim], applied to those projections' outputs:\n"
            "               out' = red_scale * out + red_bias.\n"
            "  peft         LoRA or IA3 as a PEFT adapter folder (-o DIR): adapter_config.json\n"
            "               and adapter_model.safetensors with PEFT's names and shapes (F32),\n"
            "               for PeftModel.from_pretrained on the Hugging Face model. q/k rows\n"
            "               are in Hugging Face's rotate-half order (a GGUF or llama2.c model's\n"
            "               are permuted back, as llama.cpp's converter permuted them).\n"
            "  llama-lora   LoRA as a llama.cpp LoRA adapter GGUF (llama.cpp's --lora):\n"
            "               blk.N.attn_q.weight.lora_a / .lora_b ..., adapter.lora.alpha;\n"
            "               F32 (--type f16 or bf16 for smaller files); rows in the GGUF\n"
            "               model's order.\n"
            "All of them load back as --edits on every command (a PEFT folder or a llama.cpp\n"
            "LoRA GGUF is read as LoRA/IA3 edits).\n\n"
            "  -e, --edits FILE     edit file written by redit train\n"
            "  -m, --model FILE     the base model the edits were trained on\n"
            "  -f, --format NAME    cvec, merged, safetensors, peft or llama-lora\n"
            "  -o, --output FILE    the file to write (atomically); peft: the folder\n"
            "      --type T         f32, f16 or bf16: merged: the type of changed matrices;\n"
            "                       llama-lora: the type of the factors (default f32)\n"
            "      --force          accept edits trained on another copy of the model\n"
            "  -h, --help           this text\n"
            "      --version        redit's version\n");
}

/* Appends layer l to a canonical list "1-5,9" held in buf (cap bytes); last and start track the
 * open range. Call with l = -1 to close it. */
static void list_add(char *buf, size_t cap, int *last, int *start, int l) {
    if (l >= 0 && *last >= 0 && l == *last + 1) {
        *last = l;
        return;
    }
    if (*last >= 0) {
        size_t used = strlen(buf);
        if (*start == *last) snprintf(buf + used, cap - used, "%s%d", used ? "," : "", *last);
        else snprintf(buf + used, cap - used, "%s%d-%d", used ? "," : "", *start, *last);
    }
    *start = *last = l;
}

/* Prints "dropped: WHAT of layers LIST (WHY)" when some layer has the vector. */
static void print_dropped(rd_edits *e, int site, int want_bias, const char *what,
                          const char *why) {
    char list[1024] = "";
    int last = -1, start = -1, any = 0;
    for (int l = 0; l < rd_edits_n_layers(e); l++)
        if (rd_edits_vector(e, l, site, want_bias)) {
            list_add(list, sizeof list, &last, &start, l);
            any = 1;
        }
    list_add(list, sizeof list, &last, &start, -1);
    if (any) printf("dropped: %s of layers %s (%s)\n", what, list, why);
}

static int export_cvec(rd_edits *e, const char *out) {
    rd_error err = {0};
    rd_cvec_report rep;
    int rc = rd_export_cvec(e, out, &rep, &err);
    if (rep.layer0_ffn_bias)
        printf("dropped: ffn bias of layer 0 (llama.cpp applies no control vector to layer 0)\n");
    print_dropped(e, RD_SITE_FFN, 0, "ffn scale",
                  "a control vector is added: it cannot scale");
    print_dropped(e, RD_SITE_ATTN, 0, "attn scale",
                  "a control vector is added: it cannot scale");
    print_dropped(e, RD_SITE_ATTN, 1, "attn bias",
                  "control vectors act after the whole layer, not between attention and FFN");
    if (rc) {
        fprintf(stderr, "redit export: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s: llama.cpp control vector, %d direction tensors (ffn bias of layers ≥ 1)\n",
           out, rep.n_written);
    return 0;
}

static int export_safetensors(rd_edits *e, const rd_model *m, const char *out) {
    rd_error err = {0};
    if (rd_export_safetensors(e, m, out, &err)) {
        fprintf(stderr, "redit export: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s: safetensors, %zu vectors (model.layers.{i}.mlp.down_proj / "
           "self_attn.o_proj .red_scale / .red_bias)\n",
           out, rd_edits_param_count(e) / (size_t)rd_edits_dim(e));
    return 0;
}

/* What the edits are, for messages: "RED (ffn)", "LoRA r 8 on q,v", "IA3". */
static const char *describe(rd_edits *e, char *buf, size_t cap) {
    char targets[64];
    if (rd_edits_method(e) == RD_METHOD_LORA)
        snprintf(buf, cap, "LoRA r %d, alpha %g on %s", rd_edits_rank(e),
                 (double)rd_edits_lora_alpha(e),
                 rd_lora_targets_text(rd_edits_lora_targets(e), targets, sizeof targets));
    else if (rd_edits_method(e) == RD_METHOD_IA3)
        snprintf(buf, cap, "IA3 on k, v and the FFN input");
    else snprintf(buf, cap, "RED (%s)", rd_sites_name(rd_edits_sites(e)));
    return buf;
}

static int export_merged(rd_edits *e, const rd_model *m, const char *out, rd_dtype type) {
    rd_error err = {0};
    if (rd_export_merged_as(e, m, out, type, &err)) {
        fprintf(stderr, "redit export: %s\n", err.msg);
        return 1;
    }
    char what[96];
    printf("wrote %s: GGUF with the edits of layers %s (%s) folded in at strength 1; changed "
           "matrices written %s, the others keep their type\n", out, rd_edits_layers_text(e),
           describe(e, what, sizeof what),
           type == RD_DTYPE_COUNT ? "F32 (F16/BF16 where the model's matrix is)"
                                  : rd_dtype_info_of(type)->name);
    return 0;
}

static int export_adapter(rd_edits *e, const rd_model *m, const char *out, int peft,
                          rd_dtype type) {
    rd_error err = {0};
    const int permuted = rd_model_config(m)->rope_layout != (peft ? RD_ROPE_HALF : RD_ROPE_ADJACENT);
    if (peft ? rd_export_peft(e, m, out, &err)
             : rd_export_llama_lora(e, m, out, type == RD_DTYPE_COUNT ? RD_DTYPE_F32 : type, &err)) {
        fprintf(stderr, "redit export: %s\n", err.msg);
        return 1;
    }
    char what[96];
    const int qk = rd_edits_method(e) == RD_METHOD_IA3 ||
                   (rd_edits_lora_targets(e) & (RD_PROJ_BIT(RD_PROJ_Q) | RD_PROJ_BIT(RD_PROJ_K)));
    printf("wrote %s: %s, %s on layers %s, %d tensors%s\n", out,
           peft ? "PEFT adapter folder (adapter_config.json, adapter_model.safetensors)"
                : "llama.cpp LoRA adapter GGUF",
           describe(e, what, sizeof what), rd_edits_layers_text(e), rd_edits_tensor_count(e),
           !permuted || !qk ? ""
           : peft ? "; q/k rows permuted from the GGUF's adjacent-pair order to Hugging Face's "
                    "rotate-half order"
                  : "; q/k rows permuted from Hugging Face's rotate-half order to the GGUF's "
                    "adjacent-pair order");
    return 0;
}

int cmd_export(int argc, char **argv) {
    static const struct option opts[] = {
        {"edits", required_argument, 0, 'e'}, {"model", required_argument, 0, 'm'},
        {"format", required_argument, 0, 'f'}, {"output", required_argument, 0, 'o'},
        {"force", no_argument, 0, 'F'},        {"type", required_argument, 0, 'T'},
        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0}};
    const char *edits = NULL, *model = NULL, *format = NULL, *out = NULL, *type_name = NULL;
    int force = 0, c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":e:m:f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e': edits = optarg; break;
        case 'm': model = optarg; break;
        case 'f': format = optarg; break;
        case 'o': out = optarg; break;
        case 'F': force = 1; break;
        case 'T': type_name = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("export", c, argv, opts);
        }
    }
    const int bad = cli_parse_end("export", argc, argv, edits, "--edits FILE", model, "-m MODEL",
                                  format, "--format NAME", out, "-o FILE", NULL, NULL);
    if (bad || !format) return bad ? bad : 2; /* cli_parse_end refused a missing --format */
    const int peft = !strcmp(format, "peft"), llama = !strcmp(format, "llama-lora");
    if (strcmp(format, "cvec") && strcmp(format, "merged") && strcmp(format, "safetensors") &&
        !peft && !llama) {
        fprintf(stderr, "redit export: --format must be cvec, merged, safetensors, peft or "
                        "llama-lora, not \"%s\"\n", format);
        return 2;
    }
    rd_dtype type = RD_DTYPE_COUNT;
    if (type_name && ((strcmp(type_name, "f32") && strcmp(type_name, "f16") &&
                       strcmp(type_name, "bf16")) || (!llama && strcmp(format, "merged")))) {
        fprintf(stderr, "redit export: --type takes f32, f16 or bf16, with --format merged or "
                        "llama-lora\n");
        return 2;
    }
    if (type_name)
        type = !strcmp(type_name, "f16") ? RD_DTYPE_F16 : !strcmp(type_name, "bf16") ? RD_DTYPE_BF16
                                                                                     : RD_DTYPE_F32;
    if (!peft && cli_check_output("export", "-o", out)) return 1;
    rd_model *m = cli_load_model(model, NULL);
    if (!m) return 1;
    rd_edits *e = cli_load_edits(edits, m, force, NULL);
    int rc = 1;
    const int red_format = !strcmp(format, "cvec") || !strcmp(format, "safetensors");
    const int method = e ? rd_edits_method(e) : RD_METHOD_RED;
    if (e && ((red_format && method != RD_METHOD_RED) || ((peft || llama) && method == RD_METHOD_RED) ||
              (llama && method == RD_METHOD_IA3))) {
        fprintf(stderr, "redit export: %s holds %s edits; --format %s takes %s edits (%s edits "
                        "export as %s)\n", edits, rd_method_name(method), format,
                red_format ? "RED" : llama ? "LoRA" : "LoRA or IA3", rd_method_name(method),
                method == RD_METHOD_RED    ? "cvec, safetensors or merged"
                : method == RD_METHOD_LORA ? "peft, llama-lora or merged"
                                           : "peft or merged");
        rd_edits_free(e);
        e = NULL;
    }
    if (e && !strcmp(format, "cvec")) rc = export_cvec(e, out);
    else if (e && !strcmp(format, "merged")) rc = export_merged(e, m, out, type);
    else if (e && (peft || llama)) rc = export_adapter(e, m, out, peft, type);
    else if (e) rc = export_safetensors(e, m, out);
    rd_edits_free(e);
    rd_model_free(m);
    return rc;
}
