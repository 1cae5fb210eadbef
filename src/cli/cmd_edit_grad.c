/* redit edit-grad: gradients of the mean next-token cross-entropy over a token sequence
 * with respect to every edit vector, for checking numerics against other implementations
 * (the layout of ../shared/tools/torch_ref/llama_red_ref.py --mode edit-grad). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "redit/atomic_file.h"
#include "redit/backward.h"
#include "redit/edits.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit edit-grad -m MODEL --ids \"1 5 9 ...\" -o FILE [--edits E] [--strength A]\n\n"
            "Writes the gradient of the mean next-token cross-entropy over the sequence (position\n"
            "t predicts ids[t+1]) with respect to every RED vector of every layer, as raw\n"
            "little-endian float32 in this order: for each layer 0..L-1: ffn.scale, ffn.bias,\n"
            "attn.scale, attn.bias (dim floats each) — 4·L·dim floats. Vectors the edit file\n"
            "lacks (or all, without --edits) are taken at identity (s = 1, b = 0); their\n"
            "gradients are written too. At strength α the gradient is taken with respect to the\n"
            "applied vectors s' = 1 + α(s − 1), b' = α·b (as the PyTorch reference does). The\n"
            "loss goes to stderr.\n\n"
            "  -m, --model FILE   model: GGUF, Hugging Face folder or llama2.c .bin\n"
            "      --ids LIST     token ids (at least 2), spaces or commas\n"
            "  -o, --output FILE  where to write (atomically)\n"
            "      --edits FILE   edit file whose vectors the gradient is taken at\n"
            "      --strength A   edit strength α (default 1)\n"
            "      --force        load edits made for another base model\n"
            "      --tokenizer F  tokenizer.model, .bin or .json (not needed for ids)\n"
            "  -t, --threads N    compute threads (default: all cores)\n"
            "      --compute C    f32 (default: the reference numerics), bf16 or auto\n"
            "  -h, --help         this text\n"
            "      --version      redit's version\n");
}

/* Copies every vector e has into full (both sites, all layers, scale and bias) as applied
 * at strength α: s' = 1 + α(s − 1), b' = α·b. */
static void copy_vectors(rd_edits *full, rd_edits *e, int L, int d, float alpha) {
    for (int l = 0; l < L; l++)
        for (int site = RD_SITE_ATTN; site <= RD_SITE_FFN; site++)
            for (int kind = 0; kind < 2; kind++) {
                const float *src = rd_edits_vector(e, l, site, kind);
                float *dst = rd_edits_vector(full, l, site, kind);
                if (!src) continue;
                for (int j = 0; j < d; j++)
                    dst[j] = kind ? rd_edit_bias_at(src[j], alpha)
                                  : rd_edit_scale_at(src[j], alpha);
            }
}

int cmd_edit_grad(int argc, char **argv) {
    enum { O_IDS = CLI_O_FIRST_FREE };
    static const struct option opts[] = {
        CLI_MODEL_LONG_OPTIONS, CLI_EDITS_LONG_OPTIONS, {"ids", required_argument, 0, O_IDS},
        {"output", required_argument, 0, 'o'}, CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0}};
    cli_model_args ma = {0};
    cli_edits_args ea = CLI_EDITS_ARGS_DEFAULT;
    const char *ids_text = NULL, *out = NULL;
    int c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:o:t:h", opts, NULL)) != -1) {
        int got = cli_model_option("edit-grad", c, optarg, &ma);
        if (!got) got = cli_edits_option("edit-grad", c, optarg, &ea);
        if (got < 0) return 2;
        if (got) continue;
        switch (c) {
        case O_IDS: ids_text = optarg; break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("edit-grad", c, argv, opts);
        }
    }
    const int bad = cli_parse_end("edit-grad", argc, argv, ma.path, "-m MODEL", ids_text,
                                  "--ids LIST", out, "-o FILE", NULL, NULL);
    if (bad) return bad;
    size_t n;
    int *ids = cli_parse_ids(ids_text, &n);
    if (!ids) return 2;
    if (n < 2) {
        fprintf(stderr, "redit edit-grad: --ids needs at least 2 ids\n");
        free(ids);
        return 2;
    }
    if (cli_check_output("edit-grad", "-o", out)) {
        free(ids);
        return 1;
    }
    rd_model *m = cli_open_model("edit-grad", &ma, 1);
    if (!m) {
        free(ids);
        return 1;
    }
    const rd_config *cfg = rd_model_config(m);
    const int L = cfg->n_layers, d = cfg->dim, T = (int)n - 1;
    rd_error err = {0};
    int rc = 1;
    rd_edits *e = NULL, *full = NULL;
    rd_train_ctx *tc = NULL;
    rd_edits_grad gv = {0};
    float *grad = NULL, *outbuf = NULL;
    rd_edit_spec all = {.sites = RD_SITE_BOTH, .layers = "all", .scale = 1, .bias = 1};
    if (cli_open_edits(&ea, m, &e, NULL)) goto done;
    if (e && rd_edits_method(e) != RD_METHOD_RED) { /* the output is RED's per-site layout */
        fprintf(stderr, "redit edit-grad: %s holds %s edits; edit-grad reports the gradients of "
                        "RED's site vectors and takes RED edit files only\n", ea.path,
                rd_edits_method(e) == RD_METHOD_LORA ? "LoRA" : "IA3");
        goto done;
    }
    if (!(full = rd_edits_new(cfg, &all, &err)) ||
        !(tc = rd_train_ctx_new(m, 1, T < 2 ? 2 : T, 0, &err))) {
        fprintf(stderr, "redit edit-grad: %s\n", err.msg);
        goto done;
    }
    if (e) copy_vectors(full, e, L, d, ea.strength);
    grad = calloc(rd_edits_param_count(full), sizeof(float));
    outbuf = malloc((size_t)4 * L * d * sizeof(float));
    if (!grad || !outbuf || rd_edits_grad_new(full, grad, &gv, &err)) {
        fprintf(stderr, "redit edit-grad: out of memory\n");
        goto done;
    }
    rd_edits_view view = rd_edits_view_at(full, 1.0f); /* α is in the vectors */
    double loss;
    int nt;
    if (rd_train_pass(tc, &view, &gv, NULL, ids, ids + 1, 1, T, &loss, &nt, &err)) {
        fprintf(stderr, "redit edit-grad: %s\n", err.msg);
        goto done;
    }
    /* the token sequence predicts ids[1..n): targets = ids + 1 */
    size_t k = 0;
    for (int l = 0; l < L; l++)
        for (int site = RD_SITE_FFN; site >= RD_SITE_ATTN; site--)
            for (int kind = 0; kind < 2; kind++) {
                const float *g = grad + (rd_edits_vector(full, l, site, kind) - rd_edits_params(full));
                for (int j = 0; j < d; j++) outbuf[k++] = g[j] / (float)nt;
            }
    rd_atomic_file f;
    if (rd_atomic_file_open(&f, out, &err)) {
        fprintf(stderr, "redit edit-grad: %s\n", err.msg);
        goto done;
    }
    if (rd_atomic_file_write(&f, outbuf, k * sizeof(float))) {
        rd_atomic_file_abort(&f);
        fprintf(stderr, "redit edit-grad: %s: write failed\n", out);
        goto done;
    }
    if (rd_atomic_file_commit(&f, &err)) {
        fprintf(stderr, "redit edit-grad: %s\n", err.msg);
        goto done;
    }
    fprintf(stderr, "loss %.6f over %d predictions; wrote %zu float32 gradients (%d layers × 4 × %d) to %s\n",
            loss / nt, nt, k, L, d, out);
    rc = 0;
done:
    rd_edits_grad_free(&gv);
    free(grad);
    free(outbuf);
    rd_train_ctx_free(tc);
    rd_edits_free(full);
    rd_edits_free(e);
    rd_model_free(m);
    free(ids);
    return rc;
}
