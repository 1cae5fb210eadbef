/* redit logits: float32 logits per input position, for checking numerics. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "options.h"
#include "redit/atomic_file.h"
#include "redit/edits.h"
#include "redit/forward.h"

static void usage(FILE *out) {
    fprintf(out, "usage: redit logits -m MODEL --ids \"1 461 461\" -o FILE\n\n"
                 "Runs the ids through the model (teacher forcing) and writes raw little-endian\n"
                 "float32 logits, one row of vocab_size values per input position.\n\n"
                 "  -m, --model FILE      model: GGUF, Hugging Face folder or llama2.c .bin\n"
                 "      --ids LIST        token ids, separated by spaces or commas\n"
                 "  -o, --output FILE     where to write (atomically)\n"
                 "      --tokenizer FILE  tokenizer.model, .bin or .json (not needed for ids)\n"
                 "  -t, --threads N       compute threads (default: all cores)\n"
                 "      --edits FILE      apply edits: a redit edit file (RED, LoRA, IA3), a PEFT\n"
                 "                        adapter folder or a llama.cpp LoRA GGUF\n"
                 "      --strength A      edit strength α: s' = 1 + α(s − 1), b' = α·b (default 1)\n"
                 "      --force           load edits made for another base model\n"
                 "      --compute C       f32 (default), bf16 or auto matrix products\n"
                 "  -h, --help            this text\n"
                 "      --version         redit's version\n");
}

int cmd_logits(int argc, char **argv) {
    enum { O_IDS = CLI_O_FIRST_FREE };
    static const struct option opts[] = {CLI_MODEL_LONG_OPTIONS, CLI_EDITS_LONG_OPTIONS,
                                         {"ids", required_argument, 0, O_IDS},
                                         {"output", required_argument, 0, 'o'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    cli_model_args ma = {0};
    cli_edits_args ea = CLI_EDITS_ARGS_DEFAULT;
    const char *ids_text = NULL, *out = NULL;
    int c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:o:t:h", opts, NULL)) != -1) {
        int got = cli_model_option("logits", c, optarg, &ma);
        if (!got) got = cli_edits_option("logits", c, optarg, &ea);
        if (got < 0) return 2;
        if (got) continue;
        switch (c) {
        case O_IDS: ids_text = optarg; break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("logits", c, argv, opts);
        }
    }
    const int bad = cli_parse_end("logits", argc, argv, ma.path, "-m MODEL", ids_text,
                                  "--ids LIST", out, "-o FILE", NULL, NULL);
    if (bad) return bad;
    size_t n;
    int *ids = cli_parse_ids(ids_text, &n);
    if (!ids) return 2;
    if (n == 0) {
        fprintf(stderr, "redit logits: --ids is empty\n");
        free(ids);
        return 2;
    }
    if (cli_check_output("logits", "-o", out)) {
        free(ids);
        return 1;
    }
    int rc = 1;
    rd_error err = {0};
    rd_edits *edits = NULL;
    rd_model *m = cli_open_model("logits", &ma, 0);
    if (!m || cli_open_edits(&ea, m, &edits, NULL)) {
        rd_model_free(m);
        free(ids);
        return 1;
    }
    rd_edits_view view = cli_edits_view(&ea, edits);
    const int V = rd_model_config(m)->vocab_size;
    rd_ctx *ctx = rd_ctx_new(m, 1, (int)(n < 0x7fffffff ? n : 0x7fffffff), &err);
    float *logits = ctx ? malloc(n * (size_t)V * sizeof(float)) : NULL;
    rd_atomic_file f;
    if (!ctx || !logits) {
        fprintf(stderr, "redit logits: %s\n", ctx ? "out of memory" : err.msg);
    } else if (rd_forward(ctx, edits ? &view : NULL, ids, 1, (int)n, RD_LOGITS_ALL, logits, &err) ||
               rd_atomic_file_open(&f, out, &err)) {
        fprintf(stderr, "redit logits: %s\n", err.msg);
    } else if (rd_atomic_file_write(&f, logits, n * (size_t)V * sizeof(float))) {
        rd_atomic_file_abort(&f);
        fprintf(stderr, "redit logits: %s: write failed\n", out);
    } else if (rd_atomic_file_commit(&f, &err)) {
        fprintf(stderr, "redit logits: %s\n", err.msg);
    } else {
        fprintf(stderr, "wrote %zu × %d float32 logits to %s\n", n, V, out);
        rc = 0;
    }
    free(logits);
    rd_edits_free(edits);
    rd_ctx_free(ctx);
    rd_model_free(m);
    free(ids);
    return rc;
}
