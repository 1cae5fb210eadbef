/* redit make-model: writes a random-weight Llama model of a given shape straight into a
 * storage type (GGUF), row by row, so a Llama-2-7B-shaped Q4_K file needs only its own
 * size in memory — for measuring load time, memory and throughput at scale. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "redit/model.h"
#include "redit/vocab.h"

typedef struct shape {
    const char *name;
    rd_config cfg;
} shape;

static const shape SHAPES[] = {
    {"llama2-7b", {4096, 11008, 32, 32, 32, 32000, 4096, 1e-5f, 10000.0f, RD_ROPE_ADJACENT}},
    {"stories110M", {768, 2048, 12, 12, 12, 32000, 1024, 1e-5f, 10000.0f, RD_ROPE_ADJACENT}},
    {"stories15M", {288, 768, 6, 6, 6, 32000, 256, 1e-5f, 10000.0f, RD_ROPE_ADJACENT}},
};

int cmd_make_model(int argc, char **argv) {
    static const struct option opts[] = {{"shape", required_argument, 0, 's'},
                                         {"type", required_argument, 0, 'T'},
                                         {"tokenizer", required_argument, 0, 'k'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"untied", no_argument, 0, 'u'},
                                         {"output", required_argument, 0, 'o'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *shape_name = "stories15M", *type_name = "F32", *tok = NULL, *out = NULL;
    int seed = 1, tied = 1, c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":s:t:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': shape_name = optarg; break;
        case 't': cli_deprecated("make-model", "-t TYPE", "--type TYPE"); /* fall through */
        case 'T': type_name = optarg; break;
        case 'k': tok = optarg; break;
        case 'S':
            if (cli_int("make-model", "--seed", optarg, 0, 0x7fffffff, &seed)) return 2;
            break;
        case 'o': out = optarg; break;
        case 'u': tied = 0; break;
        case 'h':
            printf("usage: redit make-model --shape SHAPE --type TYPE [--untied] [--tokenizer "
                   "tokenizer.bin] [--seed S] -o FILE.gguf\n\nWrites a random-weight Llama model "
                   "(GGUF) of SHAPE (llama2-7b, stories110M, stories15M)\nwith every matrix in TYPE "
                   "(F32, F16, BF16, Q8_0, Q4_0, Q4_K, ...), quantized row by\nrow: memory is the "
                   "file's size. TYPE Q4_K_M is llama.cpp's mixture of that name:\nQ4_K, with Q6_K "
                   "for the classifier and for attn_v and ffn_down of the first and\nlast eighth of "
                   "the layers and every third one between. --untied gives the model\nits own "
                   "classifier (Llama-2-7B has one; the stories shapes share the embeddings).\nWith "
                   "--tokenizer, a llama2.c tokenizer.bin of 32000 pieces goes inside. For\n"
                   "measuring load time, memory and throughput at scale; the text it generates is "
                   "noise.\n\n  --version  redit's version\n");
            return 0;
        default: return cli_option_end("make-model", c, argv, opts);
        }
    }
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++)
        if (!strcmp(SHAPES[i].name, shape_name)) sh = &SHAPES[i];
    rd_dtype type = RD_DTYPE_F32;
    rd_type_mix mix = RD_MIX_COUNT; /* none */
    const int bad_type = rd_type_mix_from_name(type_name, &mix) == 0
                             ? 0
                             : rd_dtype_from_name(type_name, &type);
    const int bad = cli_parse_end("make-model", argc, argv, out, "-o FILE", NULL, NULL);
    if (bad) return bad;
    if (!sh)
        return cli_usage_error("make-model", "unknown --shape \"%s\" (llama2-7b, stories110M, "
                                             "stories15M)", shape_name);
    if (bad_type)
        return cli_usage_error("make-model", "unknown --type \"%s\" (a storage type name, or "
                                             "Q4_K_M)", type_name);
    if (cli_check_output("make-model", "-o", out)) return 1;
    rd_error err = {0};
    rd_model_file f = {0};
    rd_vocab vocab = {0};
    double t0 = cli_now();
    int rc = 1;
    if ((tok && rd_vocab_load_llama2c(tok, sh->cfg.vocab_size, &vocab, &err)) ||
        (mix != RD_MIX_COUNT
             ? rd_model_file_random_mix(&f, &sh->cfg, tied, (uint64_t)seed, mix, &err)
             : rd_model_file_random(&f, &sh->cfg, tied, (uint64_t)seed, type, &err))) {
        fprintf(stderr, "redit make-model: %s\n", err.msg);
    } else {
        snprintf(f.name, sizeof f.name, "random %s %s", sh->name, type_name);
        f.vocab = vocab; /* moved into the file */
        memset(&vocab, 0, sizeof vocab);
        if (rd_gguf_write(out, &f, RD_DTYPE_COUNT, &err)) {
            fprintf(stderr, "redit make-model: %s\n", err.msg);
        } else {
            fprintf(stderr, "wrote %s (%s, %s, %.1f s)\n", out, sh->name, type_name,
                    cli_now() - t0);
            rc = 0;
        }
    }
    rd_vocab_release(&vocab);
    rd_model_file_release(&f);
    return rc;
}
