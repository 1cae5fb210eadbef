/* redit info -m MODEL: what a model file holds. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "redit/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out, "usage: redit info -m MODEL [--tokenizer FILE]\n\n"
                 "Prints the file format, tensor types, model config, parameter count and a\n"
                 "tokenizer summary.\n\n"
                 "  -m, --model FILE      GGUF, Hugging Face folder or llama2.c .bin (detected\n"
                 "                        from the content)\n"
                 "      --tokenizer FILE  tokenizer.model, tokenizer.bin or tokenizer.json (default: beside the model)\n"
                 "  -h, --help            this text\n"
                 "      --version         redit's version\n");
}

/* The matrices of each storage type, as "F16 ×43, Q8_0 ×1". */
static void type_summary(const rd_model_info *info, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = 0;
    for (int t = 0; t < RD_DTYPE_COUNT; t++)
        if (info->count[t] && used < cap)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s ×%d", used ? ", " : "",
                                     rd_dtype_info_of((rd_dtype)t)->name, info->count[t]);
}

/* What --compute auto picks here and where bf16 compute would take its weights (the default
 * --bf16-weights auto policy), without packing anything. */
static void print_compute(const rd_model *m) {
    const char *why = "";
    const rd_compute c = rd_compute_auto(&why);
    printf("compute     auto → %s (%s)\n", c == RD_COMPUTE_BF16 ? "bf16" : "f32", why);
    if (!rd_compute_available(RD_COMPUTE_BF16)) return;
    size_t fwd, both;
    const int packed = rd_model_bf16_plan(m, 0, &fwd);
    const int packed_train = rd_model_bf16_plan(m, 1, &both);
    printf("bf16        weights %s for inference (copies %.1f MB), %s for training (%.1f MB)\n",
           packed ? "packed" : "on the fly", (double)fwd / 1e6,
           packed_train ? "packed" : "on the fly", (double)both / 1e6);
}

int cmd_info(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"tokenizer", required_argument, 0, 'k'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *model = NULL, *tok = NULL;
    int c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': tok = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("info", c, argv, opts);
        }
    }
    const int bad = cli_parse_end("info", argc, argv, model, "-m MODEL", NULL, NULL);
    if (bad) return bad;
    rd_model *m = cli_load_model(model, tok);
    if (!m) return 1;
    const rd_config *cfg = rd_model_config(m);
    rd_model_info info;
    rd_model_describe(m, &info);
    char types[256];
    type_summary(&info, types, sizeof types);
    printf("file        %s\n", model);
    printf("format      %s", rd_file_format_name(info.format));
    if (info.format == RD_FORMAT_GGUF) printf(" v%u", info.gguf_version);
    printf("\nname        %s\n", info.name);
    printf("matrices    %s (norms F32)\n", types);
    printf("dim %d · hidden %d · layers %d · heads %d · kv heads %d%s · head dim %d\n", cfg->dim,
           cfg->hidden_dim, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads,
           cfg->n_kv_heads < cfg->n_heads ? " (grouped-query)" : "", rd_config_head_dim(cfg));
    printf("vocab %d · context %d · norm eps %g · rope theta %g (%s pairs)\n", cfg->vocab_size,
           cfg->seq_len, (double)cfg->norm_eps, (double)cfg->rope_theta,
           cfg->rope_layout == RD_ROPE_ADJACENT ? "adjacent" : "half-split");
    printf("parameters  %llu (%s classifier)\n", (unsigned long long)rd_model_param_count(m),
           info.tied_classifier ? "tied" : "untied");
    printf("mapped      %.1f MB of the file, %d heap buffers (%.1f MB)\n",
           (double)info.mapped_bytes / 1e6, info.heap_buffers, (double)info.heap_bytes / 1e6);
    printf("weights     %s\n", info.nonfinite ? info.nonfinite : "all finite");
    print_compute(m);
    const rd_tokenizer *t = rd_model_tokenizer(m);
    if (t) {
        int bytes = 0, control = 0;
        for (int i = 0; i < rd_tokenizer_vocab_size(t); i++) {
            bytes += rd_tokenizer_type(t, i) == RD_TOKEN_BYTE;
            control += rd_tokenizer_type(t, i) == RD_TOKEN_CONTROL;
        }
        printf("tokenizer   SentencePiece BPE, %d pieces (%d byte, %d control) · BOS %d · EOS %d "
               "· UNK %d · dummy prefix %s\n",
               rd_tokenizer_vocab_size(t), bytes, control, rd_tokenizer_bos(t),
               rd_tokenizer_eos(t), rd_tokenizer_unk(t),
               rd_tokenizer_adds_dummy_prefix(t) ? "on" : "off");
    } else {
        printf("tokenizer   none (work in token ids; give --tokenizer FILE for text)\n");
    }
    rd_model_free(m);
    return 0;
}
