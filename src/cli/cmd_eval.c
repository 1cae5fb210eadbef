/* redit eval: loss, perplexity (and classification metrics) of a model with or without
 * edits on a data set. */
#include <cjson/cJSON.h>
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
            "accuracy, Matthews correlation and F1 (label words scored after the prompt).\n"
            "The template used is printed too: --template, else the one the edit file was\n"
            "trained with, else the data format's default.\n\n"
            "  -m, --model FILE     model: GGUF, Hugging Face folder or llama2.c .bin\n"
            "  -d, --data FILE      data set (formats as in redit train)\n"
            "      --edits FILE     edits to apply: RED, LoRA or IA3 edit file, PEFT folder or\n"
            "                       llama.cpp LoRA GGUF (default: the base model)\n"
            "      --strength A     edit strength α (default 1)\n"
            "      --force          load edits made for another base model\n"
            "      --format NAME    data format (default auto)\n"
            "      --template T     template: a name, a custom string or a file (as in redit\n"
            "                       train; default: the edit file's training template, else\n"
            "                       the format's default)\n"
            "      --system TEXT    system prompt\n"
            "      --max-len N      tokens per example (default 512)\n"
            "      --full-loss      loss on whole sequences (default: answer tokens)\n"
            "      --skip-bad-lines skip and count malformed lines instead of failing\n"
            "      --batch N        sequences per pass (default 8)\n"
            "      --json           the results as one JSON object on stdout (the table goes\n"
            "                       to stderr)\n"
            "      --tokenizer F    tokenizer.model, .bin or .json for a .bin model\n"
            "  -t, --threads N      compute threads (default: all cores)\n"
            "      --compute C      f32 (default), bf16 or auto matrix products\n"
            "  -h, --help           this text\n"
            "      --version        redit's version\n");
}

/* The results as JSON on stdout: one object, printed whole. */
static void print_json(const rd_dataset *d, const rd_eval_metrics *r, const char *tmpl,
                       const char *tmpl_from, const char *edits) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "examples", (double)rd_dataset_size(d));
    cJSON_AddNumberToObject(j, "tokens", (double)r->tokens);
    cJSON_AddNumberToObject(j, "loss", r->loss);
    cJSON_AddNumberToObject(j, "perplexity", r->perplexity);
    if (r->bytes) {
        cJSON_AddNumberToObject(j, "bytes", (double)r->bytes);
        cJSON_AddNumberToObject(j, "bits_per_byte", rd_eval_bits_per_byte(r));
    }
    if (rd_dataset_n_labels(d) > 0) {
        cJSON_AddNumberToObject(j, "accuracy", r->accuracy);
        cJSON_AddNumberToObject(j, "mcc", r->mcc);
        cJSON_AddNumberToObject(j, "f1", r->f1);
        cJSON_AddNumberToObject(j, "scored_examples", r->n_examples);
    }
    if (tmpl) cJSON_AddStringToObject(j, "template", tmpl);
    else cJSON_AddNullToObject(j, "template");
    cJSON_AddStringToObject(j, "template_from", tmpl_from);
    if (edits) cJSON_AddStringToObject(j, "edits", edits);
    else cJSON_AddNullToObject(j, "edits");
    char *text = cJSON_Print(j);
    if (text) puts(text);
    else fprintf(stderr, "redit eval: out of memory\n");
    fflush(stdout);
    free(text);
    cJSON_Delete(j);
}

/* The template eval uses and where it comes from: --template, the edit file's, the format's
 * default; NULL for plain text (no template). */
static const char *template_used(const cli_data_args *da, const char *stored,
                                 const rd_dataset *d, const char **from) {
    const rd_data_format f = rd_dataset_format(d);
    if (f == RD_DATA_TEXT) {
        *from = "none: plain text";
        return NULL;
    }
    if (da->opts.template_name) {
        *from = "--template";
        return da->opts.template_name;
    }
    if (stored) {
        *from = "the edit file's training template";
        return stored;
    }
    *from = "the format's default";
    return rd_data_default_template(f);
}

int cmd_eval(int argc, char **argv) {
    enum { O_BATCH = CLI_O_FIRST_FREE, O_JSON };
    static const struct option opts[] = {
        CLI_MODEL_LONG_OPTIONS, CLI_EDITS_LONG_OPTIONS, CLI_DATA_LONG_OPTIONS,
        {"data", required_argument, 0, 'd'}, {"batch", required_argument, 0, O_BATCH},
        {"json", no_argument, 0, O_JSON}, CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0}};
    cli_model_args ma = {0};
    cli_edits_args ea = CLI_EDITS_ARGS_DEFAULT;
    cli_data_args da = CLI_DATA_ARGS_DEFAULT;
    const char *data = NULL;
    int batch = 8, json = 0, c, rc = -1;
    cli_getopt_begin();
    while (rc < 0 && (c = getopt_long(argc, argv, ":m:d:t:h", opts, NULL)) != -1) {
        int got = cli_model_option("eval", c, optarg, &ma);
        if (!got) got = cli_edits_option("eval", c, optarg, &ea);
        if (!got) got = cli_data_option("eval", c, optarg, &da);
        if (got < 0) rc = 2;
        if (got) continue;
        switch (c) {
        case 'd': data = optarg; break;
        case O_BATCH:
            if (cli_int("eval", "--batch", optarg, 1, 4096, &batch)) rc = 2;
            break;
        case O_JSON: json = 1; break;
        case 'h': usage(stdout); rc = 0; break;
        default: rc = cli_option_end("eval", c, argv, opts);
        }
    }
    if (rc < 0 && (rc = cli_parse_end("eval", argc, argv, ma.path, "-m MODEL", data, "-d DATA",
                                      NULL, NULL)) == 0)
        rc = -1;
    if (rc >= 0) {
        cli_data_args_release(&da);
        return rc;
    }
    rc = 1;
    rd_model *m = cli_open_model("eval", &ma, 0);
    rd_error err = {0};
    rd_edits *e = NULL;
    rd_dataset *d = NULL;
    char *stored = NULL;
    rd_eval_metrics r;
    rd_data_opts *dopt = &da.opts;
    if (!m) goto done;
    if (!rd_model_tokenizer(m)) {
        fprintf(stderr, "redit eval: %s has no tokenizer; data sets need one (--tokenizer)\n",
                ma.path);
        goto done;
    }
    if (cli_data_fit_context("eval", &da, m) || cli_open_edits(&ea, m, &e, &stored)) goto done;
    /* the edit file's template, unless --template says otherwise */
    const char *given = dopt->template_name;
    if (!given && stored) dopt->template_name = stored;
    if (!(d = rd_dataset_load(data, rd_model_tokenizer(m), dopt, &err)) ||
        rd_evaluate(m, e, ea.strength, d, batch, dopt->max_len, &r, &err)) {
        fprintf(stderr, "redit eval: %s\n", err.msg);
        goto done;
    }
    dopt->template_name = given;
    const char *from, *tmpl = template_used(&da, stored, d, &from);
    FILE *out = json ? stderr : stdout; /* the table; with --json the JSON is stdout's */
    fprintf(out, "examples    %zu\n", rd_dataset_size(d));
    char cuts[256];
    if (*rd_dataset_cuts_text(d, dopt->max_len, cuts, sizeof cuts))
        fprintf(out, "left out    %s\n", cuts);
    fprintf(out, "template    %s (%s)\n", tmpl ? tmpl : "-", from);
    fprintf(out, "tokens      %llu\n", (unsigned long long)r.tokens);
    fprintf(out, "loss        %.6f\n", r.loss);
    fprintf(out, "perplexity  %.4f\n", r.perplexity);
    if (r.bytes) {
        const double bpb = rd_eval_bits_per_byte(&r);
        fprintf(out, "bytes       %llu (%.3f a token)\n", (unsigned long long)r.bytes,
                (double)r.bytes / (double)r.tokens);
        fprintf(out, "bits/byte   %.4f (%.4f nats a byte: compares across tokenizers)\n", bpb,
                bpb * M_LN2);
    }
    if (rd_dataset_n_labels(d) > 0) {
        fprintf(out, "labels      %d (", rd_dataset_n_labels(d));
        for (int k = 0; k < rd_dataset_n_labels(d); k++)
            fprintf(out, "%s%s", k ? ", " : "", rd_dataset_label(d, k));
        fprintf(out, ")\naccuracy    %.4f (%d examples scored)\n", r.accuracy, r.n_examples);
        fprintf(out, "mcc         %.4f\n", r.mcc);
        fprintf(out, "f1          %.4f\n", r.f1);
    }
    if (json) print_json(d, &r, tmpl, from, ea.path);
    rc = 0;
done:
    free(stored);
    cli_data_args_release(&da);
    rd_dataset_free(d);
    rd_edits_free(e);
    rd_model_free(m);
    return rc;
}
