/* The option groups sub-commands share (options.h). */
#include "options.h"

#include <stdio.h>

#include "cli.h"

int cli_model_option(const char *cmd, int c, const char *arg, cli_model_args *a) {
    switch (c) {
    case 'm': a->path = arg; return 1;
    case CLI_O_TOKENIZER: a->tokenizer = arg; return 1;
    case CLI_O_COMPUTE: a->compute = arg; return 1;
    case CLI_O_BF16_WEIGHTS: a->bf16_weights = arg; return 1;
    case CLI_O_THREADS: return cli_int(cmd, "--threads", arg, 0, 1024, &a->threads) ? -1 : 1;
    default: return 0;
    }
}

rd_model *cli_open_model(const char *cmd, const cli_model_args *a, int backward) {
    rd_bf16_weights bw = RD_BF16_WEIGHTS_AUTO;
    if (a->bf16_weights && rd_bf16_weights_from_name(a->bf16_weights, &bw)) {
        fprintf(stderr, "redit %s: --bf16-weights must be auto, packed or on-the-fly\n", cmd);
        return NULL;
    }
    cli_set_threads(a->threads);
    rd_model *m = cli_load_model(a->path, a->tokenizer);
    if (m) rd_model_set_bf16_weights(m, bw);
    if (m && cli_set_compute(cmd, m, a->compute, backward)) {
        rd_model_free(m);
        return NULL;
    }
    if (m && rd_model_bf16_on_the_fly(m))
        fprintf(stderr, "redit %s: bf16 weights packed on the fly (no copies held; they would "
                        "take %.0f MB)\n", cmd, (double)rd_model_bf16_copy_bytes(m, backward) / 1e6);
    return m;
}

int cli_edits_option(const char *cmd, int c, const char *arg, cli_edits_args *a) {
    switch (c) {
    case CLI_O_EDITS: a->path = arg; return 1;
    case CLI_O_FORCE: a->force = 1; return 1;
    case CLI_O_STRENGTH: return cli_float(cmd, "--strength", arg, -100, 100, &a->strength) ? -1 : 1;
    default: return 0;
    }
}

int cli_open_edits(const cli_edits_args *a, const rd_model *m, rd_edits **out) {
    *out = NULL;
    if (!a->path) return 0;
    return (*out = cli_load_edits(a->path, m, a->force)) ? 0 : -1;
}

rd_edits_view cli_edits_view(const cli_edits_args *a, const rd_edits *e) {
    return e ? rd_edits_view_at(e, a->strength) : (rd_edits_view){0};
}

int cli_data_option(const char *cmd, int c, const char *arg, cli_data_args *a) {
    rd_data_opts *o = &a->opts;
    switch (c) {
    case CLI_O_FORMAT:
        if (rd_data_format_from_name(arg, &o->format)) {
            fprintf(stderr, "redit %s: unknown --format \"%s\"\n", cmd, arg);
            return -1;
        }
        a->format_name = arg;
        return 1;
    case CLI_O_TEMPLATE: o->template_name = arg; return 1;
    case CLI_O_SYSTEM: o->system = arg; return 1;
    case CLI_O_FULL_LOSS: o->mask_prompt = 0; return 1;
    case CLI_O_SKIP_BAD_LINES: o->skip_bad_lines = 1; return 1;
    case CLI_O_MAX_LEN:
        a->max_len_given = 1;
        return cli_int(cmd, "--max-len", arg, 2, 1 << 20, &o->max_len) ? -1 : 1;
    default: return 0;
    }
}

int cli_data_fit_context(const char *cmd, cli_data_args *a, const rd_model *m) {
    const int context = rd_model_config(m)->seq_len;
    if (a->opts.max_len <= context) return 0;
    if (!a->max_len_given) {
        a->opts.max_len = context; /* the default, capped at the context */
        return 0;
    }
    fprintf(stderr, "redit %s: --max-len %d exceeds the model's context of %d\n", cmd,
            a->opts.max_len, context);
    return -1;
}
