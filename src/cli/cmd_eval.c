/* redit eval: loss, perplexity (and classification metrics) of a model with or without
 * edits on a data set; multiple-choice files scored as lm-evaluation-harness does; --compare
 * puts base and edited side by side with a paired test. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "options.h"
#include "redit/dataset.h"
#include "redit/dp.h"
#include "redit/edits.h"
#include "redit/mc.h"
#include "redit/mc_eval.h"
#include "redit/train.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit eval -m MODEL -d DATA [--edits E] [options]\n\n"
            "Prints the mean token loss and perplexity on DATA, and the bytes of text the\n"
            "scored tokens stand for with the loss in bits per byte (which, unlike perplexity,\n"
            "compares models with different tokenizers); for classification sets also\n"
            "accuracy, Matthews correlation and F1 (label words scored after the prompt).\n"
            "A multiple-choice JSONL file ({\"context\", \"choices\", \"gold\"}, ARC-style\n"
            "{\"question\", \"choices\": {\"text\", \"label\"}, \"answerKey\"} or HellaSwag-style\n"
            "{\"ctx\", \"endings\", \"label\"}) is scored as lm-evaluation-harness does: acc\n"
            "(highest summed log-probability of the choice's tokens after the context) and\n"
            "acc_norm (divided by the choice's length in characters), with standard errors.\n"
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
            "      --compare        base model and edits side by side (needs --edits): the\n"
            "                       difference and, for accuracies, McNemar's exact test\n"
            "      --per-item FILE  multiple choice: each item's log-likelihoods and choices\n"
            "                       as JSON lines\n"
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

/* One scoring's numbers as a JSON object. */
static cJSON *mc_json(const rd_mc_scores *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "acc", r->acc);
    cJSON_AddNumberToObject(o, "acc_stderr", r->acc_stderr);
    cJSON_AddNumberToObject(o, "acc_norm", r->acc_norm);
    cJSON_AddNumberToObject(o, "acc_norm_stderr", r->acc_norm_stderr);
    return o;
}

static void print_json_text(cJSON *j) {
    char *text = cJSON_Print(j);
    if (text) puts(text);
    else fprintf(stderr, "redit eval: out of memory\n");
    fflush(stdout);
    free(text);
}

/* An evaluation failed on this rank: says why and, with several ranks, ends them all (the
 * others would wait for this one's share). */
static void eval_failed(rd_dp *dp, const char *msg) {
    if (rd_dp_size(dp) > 1) {
        fprintf(stderr, "redit eval: rank %d: %s\n", rd_dp_rank(dp), msg);
        rd_dp_abort(dp, 1);
    }
    fprintf(stderr, "redit eval: %s\n", msg);
}

/* Scores a multiple-choice file with the base model and/or the edits (--compare: both). */
static int eval_mc(const rd_model *m, const rd_edits *e, const cli_edits_args *ea,
                   const char *path, int max_len, int compare, const char *per_item, int json,
                   rd_dp *dp) {
    rd_error err = {0};
    rd_mc_scores r[2] = {{0}, {0}}; /* base, edited */
    rd_mc_set *s = rd_mc_load(path, &err);
    int rc = s ? 0 : -1;
    const rd_edits_view view = e ? rd_edits_view_at(e, ea->strength) : (rd_edits_view){0};
    const int first = compare || !e ? 0 : 1, last = e ? 1 : 0;
    for (int k = first; k <= last && rc == 0; k++)
        rc = rd_mc_score_dp(m, k ? &view : NULL, s, max_len, NULL, dp, &r[k], &err);
    const int root = rd_dp_rank(dp) == 0; /* rank 0 alone holds the scores, writes and prints */
    if (rc == 0 && per_item && root)
        rc = rd_mc_write_per_item(per_item, s, &r[first], compare ? &r[1] : NULL, &err);
    if (rc || !root) { /* the ranks fail together (rd_mc_score_dp): rank 0 says why */
        if (rc && root) fprintf(stderr, "redit eval: %s\n", err.msg);
        rd_mc_scores_release(&r[0]);
        rd_mc_scores_release(&r[1]);
        rd_mc_free(s);
        return rc ? 1 : 0;
    }
    FILE *out = json ? stderr : stdout;
    size_t nc = 0;
    for (size_t i = 0; i < rd_mc_size(s); i++) nc += (size_t)rd_mc_get(s, i)->n_choices;
    fprintf(out, "items       %zu (%s style; %zu choices, %.2f an item)\n", rd_mc_size(s),
            rd_mc_style_name(rd_mc_style_of(s)), nc, (double)nc / (double)rd_mc_size(s));
    if (r[first].truncated)
        fprintf(out, "cut         %zu contexts lost their oldest tokens to --max-len %d\n",
                r[first].truncated, max_len);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "items", (double)rd_mc_size(s));
    cJSON_AddStringToObject(j, "style", rd_mc_style_name(rd_mc_style_of(s)));
    if (!compare) {
        const rd_mc_scores *x = &r[first];
        fprintf(out, "edits       %s\n", e ? ea->path : "none (the base model)");
        fprintf(out, "acc         %.4f ± %.4f\n", x->acc, x->acc_stderr);
        fprintf(out, "acc_norm    %.4f ± %.4f\n", x->acc_norm, x->acc_norm_stderr);
        cJSON *o = mc_json(x);
        for (cJSON *c = o->child; c; c = c->next)
            cJSON_AddNumberToObject(j, c->string, c->valuedouble);
        cJSON_Delete(o);
    } else {
        long b[2], c[2];
        const double p[2] = {rd_mc_mcnemar(s, r[0].pred, r[1].pred, &b[0], &c[0]),
                             rd_mc_mcnemar(s, r[0].pred_norm, r[1].pred_norm, &b[1], &c[1])};
        fprintf(out, "edits       %s (strength %g)\n", ea->path, (double)ea->strength);
        fprintf(out, "            base               edited             difference  McNemar\n");
        const char *name[2] = {"acc", "acc_norm"};
        for (int k = 0; k < 2; k++) {
            const double vb = k ? r[0].acc_norm : r[0].acc, ve = k ? r[1].acc_norm : r[1].acc;
            const double sb = k ? r[0].acc_norm_stderr : r[0].acc_stderr;
            const double se = k ? r[1].acc_norm_stderr : r[1].acc_stderr;
            fprintf(out, "%-10s  %.4f ± %.4f    %.4f ± %.4f    %+.4f     p = %.3g (%ld base only, "
                         "%ld edited only)\n",
                    name[k], vb, sb, ve, se, ve - vb, p[k], b[k], c[k]);
        }
        fprintf(out, "McNemar: exact two-sided binomial test on the items only one of the two "
                     "got right\n");
        cJSON_AddItemToObject(j, "base", mc_json(&r[0]));
        cJSON_AddItemToObject(j, "edited", mc_json(&r[1]));
        cJSON *d = cJSON_AddObjectToObject(j, "difference");
        cJSON_AddNumberToObject(d, "acc", r[1].acc - r[0].acc);
        cJSON_AddNumberToObject(d, "acc_norm", r[1].acc_norm - r[0].acc_norm);
        cJSON *mn = cJSON_AddObjectToObject(j, "mcnemar");
        for (int k = 0; k < 2; k++) {
            cJSON *o = cJSON_AddObjectToObject(mn, name[k]);
            cJSON_AddNumberToObject(o, "base_only", (double)b[k]);
            cJSON_AddNumberToObject(o, "edited_only", (double)c[k]);
            cJSON_AddNumberToObject(o, "p", p[k]);
        }
        cJSON_AddStringToObject(mn, "test", "exact two-sided binomial");
    }
    if (ea->path) cJSON_AddStringToObject(j, "edits", ea->path);
    else cJSON_AddNullToObject(j, "edits");
    if (json) print_json_text(j);
    cJSON_Delete(j);
    rd_mc_scores_release(&r[0]);
    rd_mc_scores_release(&r[1]);
    rd_mc_free(s);
    return 0;
}

/* A loss-type evaluation's numbers as a JSON object. */
static cJSON *loss_json(const rd_dataset *d, const rd_eval_metrics *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "loss", r->loss);
    cJSON_AddNumberToObject(o, "perplexity", r->perplexity);
    if (r->bytes) cJSON_AddNumberToObject(o, "bits_per_byte", rd_eval_bits_per_byte(r));
    if (rd_dataset_n_labels(d) > 0) {
        cJSON_AddNumberToObject(o, "accuracy", r->accuracy);
        cJSON_AddNumberToObject(o, "mcc", r->mcc);
        cJSON_AddNumberToObject(o, "f1", r->f1);
    }
    return o;
}

/* --compare on a loss or classification set: base and edited side by side. */
static int eval_compare(const rd_model *m, const rd_edits *e, const cli_edits_args *ea,
                        cli_data_args *da, const char *stored, const char *path, int batch,
                        int json, rd_dp *dp) {
    rd_error err = {0};
    rd_data_opts *dopt = &da->opts;
    const char *given = dopt->template_name;
    if (!given && stored) dopt->template_name = stored;
    rd_eval_metrics r[2];
    rd_dataset *d = rd_dataset_load(path, rd_model_tokenizer(m), dopt, &err);
    dopt->template_name = given;
    if (!d) { /* the same on every rank */
        if (rd_dp_rank(dp) == 0) fprintf(stderr, "redit eval: %s\n", err.msg);
        return 1;
    }
    if (rd_evaluate_dp(m, NULL, 1.0f, d, batch, dopt->max_len, dp, &r[0], &err) ||
        rd_evaluate_dp(m, e, ea->strength, d, batch, dopt->max_len, dp, &r[1], &err)) {
        eval_failed(dp, err.msg);
        rd_dataset_free(d);
        return 1;
    }
    /* the paired test: per-example losses of both */
    const size_t n = rd_dataset_size(d);
    double *sums = malloc(sizeof *sums * 2 * (n + 1));
    int *counts = malloc(sizeof *counts * (n + 1));
    const rd_edits_view view = rd_edits_view_at(e, ea->strength);
    if (!sums || !counts ||
        rd_eval_example_losses_dp(m, NULL, d, batch, dopt->max_len, dp, sums, counts, &err) ||
        rd_eval_example_losses_dp(m, &view, d, batch, dopt->max_len, dp, sums + n, counts, &err)) {
        eval_failed(dp, sums && counts ? err.msg : "out of memory");
        free(sums);
        free(counts);
        rd_dataset_free(d);
        return 1;
    }
    double pdiff;
    const double pse = rd_paired_loss_stderr(sums, sums + n, counts, n, &pdiff);
    free(sums);
    free(counts);
    if (rd_dp_rank(dp) > 0) { /* rank 0 alone prints */
        rd_dataset_free(d);
        return 0;
    }
    const char *from, *tmpl = template_used(da, stored, d, &from);
    FILE *out = json ? stderr : stdout;
    fprintf(out, "examples    %zu\n", rd_dataset_size(d));
    fprintf(out, "template    %s (%s)\n", tmpl ? tmpl : "-", from);
    fprintf(out, "tokens      %llu\n", (unsigned long long)r[0].tokens);
    fprintf(out, "edits       %s (strength %g)\n", ea->path, (double)ea->strength);
    fprintf(out, "            base        edited      difference\n");
    fprintf(out, "loss        %-10.6f  %-10.6f  %+.6f\n", r[0].loss, r[1].loss,
            r[1].loss - r[0].loss);
    fprintf(out, "perplexity  %-10.4f  %-10.4f  %+.4f\n", r[0].perplexity, r[1].perplexity,
            r[1].perplexity - r[0].perplexity);
    if (r[0].bytes) {
        const double b0 = rd_eval_bits_per_byte(&r[0]), b1 = rd_eval_bits_per_byte(&r[1]);
        fprintf(out, "bits/byte   %-10.4f  %-10.4f  %+.4f\n", b0, b1, b1 - b0);
    }
    fprintf(out, "paired      loss difference %+.6f ± %.6f (z = %.2f; standard error over "
                 "examples)\n", pdiff, pse, pdiff / pse);
    if (rd_dataset_n_labels(d) > 0) {
        fprintf(out, "accuracy    %-10.4f  %-10.4f  %+.4f\n", r[0].accuracy, r[1].accuracy,
                r[1].accuracy - r[0].accuracy);
        fprintf(out, "mcc         %-10.4f  %-10.4f  %+.4f\n", r[0].mcc, r[1].mcc,
                r[1].mcc - r[0].mcc);
        fprintf(out, "f1          %-10.4f  %-10.4f  %+.4f\n", r[0].f1, r[1].f1, r[1].f1 - r[0].f1);
    }
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "examples", (double)rd_dataset_size(d));
        cJSON_AddNumberToObject(j, "tokens", (double)r[0].tokens);
        cJSON_AddItemToObject(j, "base", loss_json(d, &r[0]));
        cJSON_AddItemToObject(j, "edited", loss_json(d, &r[1]));
        cJSON *df = cJSON_AddObjectToObject(j, "difference");
        cJSON_AddNumberToObject(df, "loss", r[1].loss - r[0].loss);
        cJSON_AddNumberToObject(df, "loss_stderr", pse); /* paired, over examples */
        if (rd_dataset_n_labels(d) > 0)
            cJSON_AddNumberToObject(df, "accuracy", r[1].accuracy - r[0].accuracy);
        if (tmpl) cJSON_AddStringToObject(j, "template", tmpl);
        else cJSON_AddNullToObject(j, "template");
        cJSON_AddStringToObject(j, "edits", ea->path);
        print_json_text(j);
        cJSON_Delete(j);
    }
    rd_dataset_free(d);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    enum { O_BATCH = CLI_O_FIRST_FREE, O_JSON, O_COMPARE, O_PER_ITEM };
    static const struct option opts[] = {
        CLI_MODEL_LONG_OPTIONS, CLI_EDITS_LONG_OPTIONS, CLI_DATA_LONG_OPTIONS,
        {"data", required_argument, 0, 'd'}, {"batch", required_argument, 0, O_BATCH},
        {"json", no_argument, 0, O_JSON}, {"compare", no_argument, 0, O_COMPARE},
        {"per-item", required_argument, 0, O_PER_ITEM}, CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0}};
    cli_model_args ma = {0};
    cli_edits_args ea = CLI_EDITS_ARGS_DEFAULT;
    cli_data_args da = CLI_DATA_ARGS_DEFAULT;
    const char *data = NULL, *per_item = NULL;
    int batch = 8, json = 0, compare = 0, c, rc = -1;
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
        case O_COMPARE: compare = 1; break;
        case O_PER_ITEM: per_item = optarg; break;
        case 'h': usage(stdout); rc = 0; break;
        default: rc = cli_option_end("eval", c, argv, opts);
        }
    }
    if (rc < 0 && (rc = cli_parse_end("eval", argc, argv, ma.path, "-m MODEL", data, "-d DATA",
                                      NULL, NULL)) == 0)
        rc = -1;
    if (rc < 0 && compare && !ea.path) rc = cli_usage_error("eval", "--compare needs --edits");
    const int mc = rc < 0 && rd_mc_sniff(data);
    if (rc < 0 && per_item && !mc)
        rc = cli_usage_error("eval", "--per-item is for multiple-choice files; %s is not one",
                             data);
    if (rc < 0 && per_item && cli_check_output("eval", "--per-item", per_item)) rc = 1;
    if (rc >= 0) {
        cli_data_args_release(&da);
        return rc;
    }
    rc = 1;
    rd_error err = {0};
    /* under mpirun: the ranks share the evaluation's passes (items); rank 0 alone prints */
    rd_dp *dp = rd_dp_open(0, &err);
    if (!dp && err.msg[0]) {
        fprintf(stderr, "redit eval: %s\n", err.msg);
        cli_data_args_release(&da);
        return 1;
    }
    const int root = rd_dp_rank(dp) == 0;
    if (dp && root)
        fprintf(stderr, "data-parallel: %d ranks (MPI); each scores a share of the %s\n",
                rd_dp_size(dp), mc ? "items" : "passes");
    rd_model *m = cli_open_model("eval", &ma, 0);
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
    if (mc) {
        rc = eval_mc(m, e, &ea, data, dopt->max_len, compare, per_item, json, dp);
        goto done;
    }
    if (compare) {
        rc = eval_compare(m, e, &ea, &da, stored, data, batch, json, dp);
        goto done;
    }
    /* the edit file's template, unless --template says otherwise */
    const char *given = dopt->template_name;
    if (!given && stored) dopt->template_name = stored;
    if (!(d = rd_dataset_load(data, rd_model_tokenizer(m), dopt, &err))) {
        if (root) fprintf(stderr, "redit eval: %s\n", err.msg); /* the same on every rank */
        goto done;
    }
    if (rd_evaluate_dp(m, e, ea.strength, d, batch, dopt->max_len, dp, &r, &err)) {
        eval_failed(dp, err.msg);
        goto done;
    }
    dopt->template_name = given;
    if (!root) {
        rc = 0;
        goto done;
    }
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
    rd_dp_close(dp);
    return rc;
}
