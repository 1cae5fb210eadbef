/* The option groups sub-commands share (options.h). */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "redit/buf.h"
#include "redit/generate.h"
#include "redit/version.h"

void cli_getopt_begin(void) {
    optind = 1;
    opterr = 0;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "redit %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "; see 'redit %s --help'\n", cmd);
    va_end(ap);
    return 2;
}

int cli_parse_end(const char *cmd, int argc, char *const *argv, ...) {
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    va_list ap;
    va_start(ap, argv);
    const char *missing = NULL;
    for (;;) {
        const char *value = va_arg(ap, const char *), *name = va_arg(ap, const char *);
        if (!name) break;
        if (!value && !missing) missing = name;
    }
    va_end(ap);
    return missing ? cli_usage_error(cmd, "%s is required", missing) : 0;
}

void cli_deprecated(const char *cmd, const char *old_spelling, const char *new_spelling) {
    fprintf(stderr, "redit %s: %s is deprecated and goes in the next release; use %s\n", cmd,
            old_spelling, new_spelling);
}

/* What is wrong with a "--name[=value]" argument getopt_long refused: an option that takes no
 * value given one, an abbreviation of several options, or an unknown name. */
static int bad_long_option(const char *cmd, const char *word, const struct option *opts) {
    const char *name = word + 2, *eq = strchr(name, '=');
    const size_t len = eq ? (size_t)(eq - name) : strlen(name);
    char names[160] = "";
    size_t used = 0;
    int matches = 0, last_val = -1;
    for (const struct option *o = opts; o && o->name; o++) {
        if (strncmp(o->name, name, len)) continue;
        if (strlen(o->name) == len) /* getopt refused an exact name: it was given a value */
            return cli_usage_error(cmd, o->has_arg == no_argument ? "--%s takes no value"
                                                                   : "bad option '--%s'", o->name);
        if (o->val == last_val) continue; /* an alias of the previous match */
        last_val = o->val;
        if (matches++ < 4 && used < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s--%s",
                                     used ? ", " : "", o->name);
    }
    if (matches > 1)
        return cli_usage_error(cmd, "option '--%.*s' is ambiguous (%s%s)", (int)len, name, names,
                               matches > 4 ? ", ..." : "");
    if (matches == 1 && eq) return cli_usage_error(cmd, "%s takes no value", names);
    return cli_usage_error(cmd, "unknown option '%.*s'", (int)len + 2, word);
}

int cli_option_end(const char *cmd, int c, char *const *argv, const struct option *opts) {
    if (c == CLI_O_VERSION) {
        printf("redit %s\n", rd_version_full());
        return 0;
    }
    /* the word getopt stopped at: the last one it consumed */
    const char *word = optind > 0 ? argv[optind - 1] : "";
    const int is_long = !strncmp(word, "--", 2);
    if (c == ':') {
        if (is_long) return cli_usage_error(cmd, "%s needs a value", word);
        return cli_usage_error(cmd, "-%c needs a value", optopt);
    }
    if (is_long) return bad_long_option(cmd, word, opts);
    if (optopt > ' ' && optopt < 127) return cli_usage_error(cmd, "unknown option '-%c'", optopt);
    return cli_usage_error(cmd, "bad option '%s'", word);
}

int cli_threads_short(const char *cmd, const char *arg, cli_model_args *a) {
    char *end;
    errno = 0;
    const double v = strtod(arg, &end);
    if (end != arg && !*end && !errno && (!isfinite(v) || v < 1 || v != floor(v))) {
        cli_usage_error(cmd, "-t is the thread count now, as in llama.cpp (it was the "
                             "temperature before): for temperature %s give --temp %s", arg, arg);
        return -1;
    }
    return cli_int(cmd, "-t/--threads", arg, 1, 1024, &a->threads) ? -1 : 1;
}

int cli_model_option(const char *cmd, int c, const char *arg, cli_model_args *a) {
    switch (c) {
    case 'm': a->path = arg; return 1;
    case 't': return cli_int(cmd, "-t/--threads", arg, 0, 1024, &a->threads) ? -1 : 1;
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

int cli_open_edits(const cli_edits_args *a, const rd_model *m, rd_edits **out, char **tmpl) {
    *out = NULL;
    if (tmpl) *tmpl = NULL;
    if (!a->path) return 0;
    char *json = NULL;
    if (!(*out = cli_load_edits(a->path, m, a->force, tmpl ? &json : NULL))) return -1;
    if (tmpl) *tmpl = rd_edits_training_template(json);
    free(json);
    return 0;
}

const char *cli_template_arg(const char *cmd, const char *arg, char **owned) {
    static const char *const builtin[] = {"llama2-chat", "alpaca", "plain", "red", "none"};
    *owned = NULL;
    for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++)
        if (!strcmp(arg, builtin[i])) return arg;
    FILE *f = strstr(arg, "{prompt}") ? NULL : fopen(arg, "rb");
    if (!f) return arg; /* a custom template (the data layer checks it) */
    rd_buf b = {0};
    char chunk[4096];
    size_t n;
    /* templates are short (the data layer refuses long ones): read a little more than that */
    while (b.len < (1u << 16) && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rd_buf_append(&b, chunk, n);
    const int bad = ferror(f) || b.oom;
    fclose(f);
    if (bad || !b.len) {
        fprintf(stderr, "redit %s: --template %s: %s\n", cmd, arg,
                bad ? "cannot read the file" : "the file is empty");
        rd_buf_free(&b);
        return NULL;
    }
    if (b.data[b.len - 1] == '\n') b.data[--b.len] = '\0';
    return *owned = rd_buf_take(&b);
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
    case CLI_O_TEMPLATE:
        free(a->template_owned);
        return (o->template_name = cli_template_arg(cmd, arg, &a->template_owned)) ? 1 : -1;
    case CLI_O_SYSTEM: o->system = arg; return 1;
    case CLI_O_FULL_LOSS: o->mask_prompt = 0; return 1;
    case CLI_O_SKIP_BAD_LINES: o->skip_bad_lines = 1; return 1;
    case CLI_O_MAX_LEN:
        a->max_len_given = 1;
        return cli_int(cmd, "--max-len", arg, 2, 1 << 20, &o->max_len) ? -1 : 1;
    default: return 0;
    }
}

void cli_data_args_release(cli_data_args *a) {
    free(a->template_owned);
    a->template_owned = NULL;
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

int cli_gen_option(const char *cmd, int c, const char *arg, cli_gen_args *a) {
    rd_sampling *s = &a->gen->sampling;
    int bad, v;
    switch (c) {
    case CLI_O_MAX_TOKENS_OLD:
        cli_deprecated(cmd, "--max-tokens", "-n/--n-predict");
        /* fall through */
    case 'n':
        bad = cli_int(cmd, "-n/--n-predict", arg, -2, 1 << 24, &v);
        if (!bad && v == 0) bad = cli_int(cmd, "-n/--n-predict", arg, 1, 1 << 24, &v);
        if (!bad) {
            a->until_full = v < 0;
            a->gen->max_tokens = v < 0 ? 1 : v;
        }
        break;
    case CLI_O_TEMP: bad = cli_float(cmd, "--temp", arg, 0, 100, &s->temperature); break;
    case CLI_O_TOP_K: bad = cli_int(cmd, "--top-k", arg, 0, 1 << 24, &s->top_k); break;
    case CLI_O_TOP_P: bad = cli_float(cmd, "--top-p", arg, 1e-6, 1, &s->top_p); break;
    case CLI_O_REPEAT_PENALTY:
        bad = cli_float(cmd, "--repeat-penalty", arg, 1e-3, 100, &s->repeat_penalty);
        break;
    case CLI_O_REPEAT_LAST_N:
        bad = cli_int(cmd, "--repeat-last-n", arg, -1, 1 << 24, &a->repeat_last_n);
        break;
    case CLI_O_NO_REPEAT_NGRAM:
        bad = cli_int(cmd, "--no-repeat-ngram", arg, 0, 1 << 16, &s->no_repeat_ngram);
        break;
    case CLI_O_SEED:
        bad = cli_int(cmd, "--seed", arg, 0, 0x7fffffff, &v);
        if (!bad) s->seed = (uint64_t)v;
        break;
    case 'c': bad = cli_int(cmd, "-c/--ctx-size", arg, 0, 1 << 24, &a->ctx); break;
    default: return 0;
    }
    return bad ? -1 : 1;
}

int cli_gen_finish(const char *cmd, cli_gen_args *a, const rd_model *m) {
    const int context = rd_model_config(m)->seq_len;
    int ctx = a->ctx > 0 ? a->ctx : context;
    if (ctx > context) {
        fprintf(stderr, "redit %s: -c %d is beyond the model's context of %d: %d used\n", cmd,
                ctx, context, context);
        ctx = context;
    }
    if (a->until_full) a->gen->max_tokens = ctx;
    rd_sampling *s = &a->gen->sampling;
    if (a->repeat_last_n == 0) s->repeat_penalty = 1.0f; /* llama.cpp: 0 = no penalty */
    else if (a->repeat_last_n == -1) s->repeat_last_n = 0; /* the whole history (the context) */
    else if (a->repeat_last_n > 0) s->repeat_last_n = a->repeat_last_n;
    return ctx;
}
