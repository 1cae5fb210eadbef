/* redit export --edits E -m MODEL --format cvec|merged|safetensors -o FILE: RED edits for
 * other tools (llama.cpp control vectors, a merged GGUF, Python). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "redit/edits.h"
#include "redit/export.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit export --edits FILE -m MODEL --format cvec|merged|safetensors -o FILE\n\n"
            "Exports trained RED edits (at strength 1).\n\n"
            "  cvec         llama.cpp control vector (GGUF, direction.N = ffn bias of layer N;\n"
            "               use with llama.cpp's --control-vector). Control vectors are added\n"
            "               after a layer's residual add, which equals RED's ffn bias exactly,\n"
            "               but llama.cpp never applies one to layer 0, and scale vectors and\n"
            "               attn-site edits cannot be expressed: those are dropped and listed.\n"
            "  merged       a full GGUF of the model with the edits folded in: scales multiply\n"
            "               the rows of ffn_down / attn_output (written F32, or F16/BF16 when\n"
            "               the model is), biases become blk.N.ffn_down.bias /\n"
            "               blk.N.attn_output.bias; other matrices keep their type.\n"
            "  safetensors  the vectors for Python: model.layers.{i}.mlp.down_proj.red_scale /\n"
            "               .red_bias and model.layers.{i}.self_attn.o_proj.red_scale / .red_bias,\n"
            "               F32 [dim], applied to those projections' outputs:\n"
            "               out' = red_scale * out + red_bias.\n\n"
            "  -e, --edits FILE     edit file written by redit train\n"
            "  -m, --model FILE     the base model the edits were trained on\n"
            "  -f, --format NAME    cvec, merged or safetensors\n"
            "  -o, --output FILE    the file to write (atomically)\n"
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

static int export_merged(rd_edits *e, const rd_model *m, const char *out) {
    rd_error err = {0};
    if (rd_export_merged(e, m, out, &err)) {
        fprintf(stderr, "redit export: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s: GGUF with the edits of layers %s (%s) folded in at strength 1\n", out,
           rd_edits_layers_text(e), rd_sites_name(rd_edits_sites(e)));
    return 0;
}

int cmd_export(int argc, char **argv) {
    static const struct option opts[] = {
        {"edits", required_argument, 0, 'e'}, {"model", required_argument, 0, 'm'},
        {"format", required_argument, 0, 'f'}, {"output", required_argument, 0, 'o'},
        {"force", no_argument, 0, 'F'},        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0}};
    const char *edits = NULL, *model = NULL, *format = NULL, *out = NULL;
    int force = 0, c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":e:m:f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e': edits = optarg; break;
        case 'm': model = optarg; break;
        case 'f': format = optarg; break;
        case 'o': out = optarg; break;
        case 'F': force = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("export", c, argv, opts);
        }
    }
    const int bad = cli_parse_end("export", argc, argv, edits, "--edits FILE", model, "-m MODEL",
                                  format, "--format NAME", out, "-o FILE", NULL, NULL);
    if (bad) return bad;
    if (strcmp(format, "cvec") && strcmp(format, "merged") && strcmp(format, "safetensors")) {
        fprintf(stderr,
                "redit export: --format must be cvec, merged or safetensors, not \"%s\"\n",
                format);
        return 2;
    }
    if (cli_check_output("export", "-o", out)) return 1;
    rd_model *m = cli_load_model(model, NULL);
    if (!m) return 1;
    rd_edits *e = cli_load_edits(edits, m, force, NULL);
    int rc = 1;
    if (e && rd_edits_method(e) != RD_METHOD_RED) {
        fprintf(stderr, "redit export: %s holds %s edits; exporting them is not yet supported "
                        "(RED edits only for now)\n", edits,
                rd_edits_method(e) == RD_METHOD_LORA ? "LoRA" : "IA3");
        rd_edits_free(e);
        e = NULL;
    }
    if (e && !strcmp(format, "cvec")) rc = export_cvec(e, out);
    else if (e && !strcmp(format, "merged")) rc = export_merged(e, m, out);
    else if (e) rc = export_safetensors(e, m, out);
    rd_edits_free(e);
    rd_model_free(m);
    return rc;
}
