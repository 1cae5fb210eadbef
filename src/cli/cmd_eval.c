/* redit eval: loss, perplexity (and classification metrics) of a model with or without
 * edits on a data set. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "redit/dataset.h"
#include "redit/edits.h"
#include "redit/train.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit eval -m MODEL -d DATA [--edits E] [options]\n\n"
            "Prints the mean token loss and perplexity on DATA, and the bytes of text the\n"
            "scored tokens stand for with the loss in bits per byte (which, unlike perplexity,\n"
            "compares models with different tokenizers); for classification sets also\n"
            "accuracy, Matthews correlation and F1 (label words scored after the prompt).\n\n"
            "  -m, --model FILE     the model\n"
            "  -d, --data FILE      data set (formats as in redit train)\n"
            "      --edits FILE     RED edits to apply (default: the base model)\n"
            "      --strength A     edit strength α (default 1)\n"
            "      --force          load edits made for another base model\n"
            "      --format NAME    data format (default auto)\n"
            "      --template T     template (as in redit train)\n"
            "      --system TEXT    system prompt\n"
            "      --max-len N      tokens per example (default 512)\n"
            "      --full-loss      loss on whole sequences (default: answer tokens)\n"
            "      --skip-bad-lines skip and count malformed lines instead of failing\n"
            "      --batch N        sequences per pass (default 8)\n"
            "      --tokenizer F    llama2.c tokenizer.bin for a .bin model\n"
            "      --threads N      compute threads (default: all cores)\n"
            "      --compute C      f32 (default), bf16 or auto matrix products\n"
            "  -h, --help           this text\n");
}

int cmd_eval(int argc, char **argv) {
    enum { O_EDITS = 256, O_STRENGTH, O_FORCE, O_FORMAT, O_TEMPLATE, O_SYSTEM, O_MAXLEN,
           O_FULLLOSS, O_BATCH, O_TOK, O_THREADS, O_COMPUTE, O_SKIP };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"edits", required_argument, 0, O_EDITS}, {"strength", required_argument, 0, O_STRENGTH},
        {"force", no_argument, 0, O_FORCE}, {"format", required_argument, 0, O_FORMAT},
        {"template", required_argument, 0, O_TEMPLATE}, {"system", required_argument, 0, O_SYSTEM},
        {"max-len", required_argument, 0, O_MAXLEN}, {"full-loss", no_argument, 0, O_FULLLOSS},
        {"batch", required_argument, 0, O_BATCH}, {"tokenizer", required_argument, 0, O_TOK},
        {"threads", required_argument, 0, O_THREADS}, {"compute", required_argument, 0, O_COMPUTE},
        {"skip-bad-lines", no_argument, 0, O_SKIP},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = NULL, *data = NULL, *edits_path = NULL, *tok = NULL, *compute = NULL;
    rd_data_opts dopt = rd_data_opts_defaults();
    float strength = 1.0f;
    int force = 0, batch = 8, threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:d:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case O_EDITS: edits_path = optarg; break;
        case O_STRENGTH: bad = cli_float("eval", "--strength", optarg, -100, 100, &strength); break;
        case O_FORCE: force = 1; break;
        case O_FORMAT:
            if ((bad = rd_data_format_from_name(optarg, &dopt.format) != 0))
                fprintf(stderr, "redit eval: unknown --format \"%s\"\n", optarg);
            break;
        case O_TEMPLATE: dopt.template_name = optarg; break;
        case O_SYSTEM: dopt.system = optarg; break;
        case O_MAXLEN: bad = cli_int("eval", "--max-len", optarg, 2, 1 << 20, &dopt.max_len); break;
        case O_FULLLOSS: dopt.mask_prompt = 0; break;
        case O_SKIP: dopt.skip_bad_lines = 1; break;
        case O_BATCH: bad = cli_int("eval", "--batch", optarg, 1, 4096, &batch); break;
        case O_TOK: tok = optarg; break;
        case O_THREADS: bad = cli_int("eval", "--threads", optarg, 0, 1024, &threads); break;
        case O_COMPUTE: compute = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) return 2;
    }
    if (!model || !data || optind != argc) {
        usage(stderr);
        return 2;
    }
    cli_set_threads(threads);
    rd_model *m = cli_load_model(model, tok);
    if (!m) return 1;
    int rc = 1;
    rd_error err = {0};
    rd_edits *e = NULL;
    rd_dataset *d = NULL;
    rd_eval_metrics r;
    if (!rd_model_tokenizer(m)) {
        fprintf(stderr, "redit eval: %s has no tokenizer; data sets need one (--tokenizer)\n", model);
        goto done;
    }
    if (cli_set_compute("eval", m, compute, 0)) goto done;
    if (dopt.max_len > rd_model_config(m)->seq_len) dopt.max_len = rd_model_config(m)->seq_len;
    if (edits_path && !(e = cli_load_edits(edits_path, m, force))) goto done;
    if (!(d = rd_dataset_load(data, rd_model_tokenizer(m), &dopt, &err)) ||
        rd_evaluate(m, e, strength, d, batch, dopt.max_len, &r, &err)) {
        fprintf(stderr, "redit eval: %s\n", err.msg);
        goto done;
    }
    printf("examples    %zu\n", rd_dataset_size(d));
    char cuts[256];
    if (*rd_dataset_cuts_text(d, dopt.max_len, cuts, sizeof cuts)) printf("left out    %s\n", cuts);
    printf("tokens      %llu\n", (unsigned long long)r.tokens);
    printf("loss        %.6f\n", r.loss);
    printf("perplexity  %.4f\n", r.perplexity);
    if (r.bytes) {
        const double bpb = rd_eval_bits_per_byte(&r);
        printf("bytes       %llu (%.3f a token)\n", (unsigned long long)r.bytes,
               (double)r.bytes / (double)r.tokens);
        printf("bits/byte   %.4f (%.4f nats a byte: compares across tokenizers)\n", bpb,
               bpb * M_LN2);
    }
    if (rd_dataset_n_labels(d) > 0) {
        printf("labels      %d (", rd_dataset_n_labels(d));
        for (int k = 0; k < rd_dataset_n_labels(d); k++)
            printf("%s%s", k ? ", " : "", rd_dataset_label(d, k));
        printf(")\naccuracy    %.4f (%d examples scored)\n", r.accuracy, r.n_examples);
        printf("mcc         %.4f\n", r.mcc);
        printf("f1          %.4f\n", r.f1);
    }
    rc = 0;
done:
    rd_dataset_free(d);
    rd_edits_free(e);
    rd_model_free(m);
    return rc;
}
