/* redit convert: writes a model (any format redit reads) as GGUF in a storage type — F16 or
 * BF16 to halve an f32 file, or a quantised type (Q8_0, Q4_K, ...) for a smaller frozen base
 * to train RED edits on. The tokenizer goes inside. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "redit/dtype.h"
#include "redit/model_file.h"

static void usage(FILE *out) {
    fprintf(out, "usage: redit convert -m MODEL --type TYPE -o OUT.gguf [--name NAME]\n\n"
                 "Writes MODEL (GGUF, Hugging Face folder or llama2.c .bin) as a GGUF file whose\n"
                 "matrices are stored as TYPE (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,\n"
                 "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS); norms stay f32. The tokenizer goes inside.\n"
                 "Written atomically.\n\n"
                 "  -m, --model FILE      the model to convert\n"
                 "      --tokenizer FILE  tokenizer.model, .bin or .json for a .bin model\n"
                 "      --type TYPE       storage type of the matrices\n"
                 "  -o, --output FILE     the GGUF file to write\n"
                 "      --name NAME       general.name of the written model\n"
                 "  -h, --help            this text\n"
                 "      --version         redit's version\n\n"
                 "-t TYPE, the short form of --type before this release, still works with a note;\n"
                 "it goes in the next (-t is the thread count in llama.cpp and in redit's other\n"
                 "commands).\n");
}

int cmd_convert(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"tokenizer", required_argument, 0, 'k'},
                                         {"type", required_argument, 0, 'T'},
                                         {"output", required_argument, 0, 'o'},
                                         {"name", required_argument, 0, 'n'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *in = NULL, *tok = NULL, *type_name = NULL, *out = NULL, *name = NULL;
    int c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:t:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': in = optarg; break;
        case 'k': tok = optarg; break;
        case 't': cli_deprecated("convert", "-t TYPE", "--type TYPE"); /* fall through */
        case 'T': type_name = optarg; break;
        case 'o': out = optarg; break;
        case 'n': name = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("convert", c, argv, opts);
        }
    }
    const int bad = cli_parse_end("convert", argc, argv, in, "-m MODEL", type_name, "--type TYPE",
                                  out, "-o OUT.gguf", NULL, NULL);
    if (bad) return bad;
    rd_dtype type;
    if (rd_dtype_from_name(type_name, &type)) {
        fprintf(stderr, "redit convert: unknown storage type \"%s\"\n", type_name);
        return 2;
    }
    if (cli_check_output("convert", "-o", out)) return 1;
    rd_model *m = cli_load_model(in, tok);
    if (!m) return 1;
    if (name) snprintf(m->file.name, sizeof m->file.name, "%s", name);
    rd_error err = {0};
    int rc = rd_gguf_write(out, &m->file, type, &err);
    if (rc) fprintf(stderr, "redit convert: %s\n", err.msg);
    else fprintf(stderr, "wrote %s (%s)\n", out, rd_dtype_info_of(type)->name);
    rd_model_free(m);
    return rc ? 1 : 0;
}
