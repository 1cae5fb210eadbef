/* redit eval: loss, perplexity (and classification metrics) of a model with or without
 * edits on a data set. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "options.h"
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
    enum { O_BATCH = CLI_O_FIRST_FREE };
    static const struct option opts[] = {
        CLI_MODEL_LONG_OPTIONS, CLI_EDITS_LONG_OPTIONS, CLI_DATA_LONG_OPTIONS,
        {"data", required_argument, 0, 'd'}, {"batch", required_argument, 0, O_BATCH},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    cli_model_args ma = {0};
    cli_edits_args ea = CLI_EDITS_ARGS_DEFAULT;
    cli_data_args da = CLI_DATA_ARGS_DEFAULT;
    const char *data = NULL;
    int batch = 8, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:d:h", opts, NULL)) != -1) {
        int got = cli_model_option("eval", c, optarg, &ma);
        if (!got) got = cli_edits_option("eval", c, optarg, &ea);
        if (!got) got = cli_data_option("eval", c, optarg, &da);
        if (got < 0) return 2;
        if (got) continue;
        switch (c) {
        case 'd': data = optarg; break;
        case O_BATCH:
            if (cli_int("eval", "--batch", optarg, 1, 4096, &batch)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!ma.path || !data || optind != argc) {
        usage(stderr);
        return 2;
    }
    rd_model *m = cli_open_model("eval", &ma, 0);
    if (!m) return 1;
    int rc = 1;
    rd_error err = {0};
    rd_edits *e = NULL;
    rd_dataset *d = NULL;
    rd_eval_metrics r;
    const rd_data_opts *dopt = &da.opts;
    if (!rd_model_tokenizer(m)) {
        fprintf(stderr, "redit eval: %s has no tokenizer; data sets need one (--tokenizer)\n",
                ma.path);
        goto done;
    }
    if (cli_data_fit_context("eval", &da, m) || cli_open_edits(&ea, m, &e)) goto done;
    if (!(d = rd_dataset_load(data, rd_model_tokenizer(m), dopt, &err)) ||
        rd_evaluate(m, e, ea.strength, d, batch, dopt->max_len, &r, &err)) {
        fprintf(stderr, "redit eval: %s\n", err.msg);
        goto done;
    }
    printf("examples    %zu\n", rd_dataset_size(d));
    char cuts[256];
    if (*rd_dataset_cuts_text(d, dopt->max_len, cuts, sizeof cuts)) printf("left out    %s\n", cuts);
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
