/* redit generate: stream a continuation of a prompt to stdout. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "generate_batch.h"
#include "options.h"
#include "redit/buf.h"
#include "redit/chat_format.h"
#include "redit/edits.h"
#include "redit/generate.h"
#include "redit/tokenizer.h"

static void usage(FILE *out) {
    rd_sampling d = rd_sampling_defaults();
    fprintf(out,
            "usage: redit generate -m MODEL (-p PROMPT | -f FILE | --ids LIST) [options]\n"
            "       redit generate -m MODEL --batch PROMPTS.jsonl [--edits NAME=FILE ...]\n"
            "                      [--parallel N] [-o FILE] [options]\n\n"
            "Streams the model's continuation of PROMPT to stdout; tokens/s go to stderr.\n"
            "With a chat template (--template, or the one an edit file was trained with) the\n"
            "prompt is rendered as the template's first turn and the answer ends where the\n"
            "template's next turn would begin.\n\n"
            "  -m, --model FILE          model: GGUF, Hugging Face folder or llama2.c .bin\n"
            "  -p, --prompt TEXT         the prompt (BOS is added)\n"
            "  -f, --file FILE           the prompt from a file (one final newline dropped)\n"
            "      --ids LIST            prompt as token ids instead (models without tokenizer:\n"
            "                            the generated ids are printed)\n"
            "      --template T          none (the prompt as given), llama2-chat, alpaca, plain,\n"
            "                            red, a custom string with {prompt} and {answer}, or a\n"
            "                            file holding one (default: the template --edits was\n"
            "                            trained with, else none)\n"
            "      --system TEXT         system prompt for templates that have one\n"
            "  -n, --n-predict N         tokens to generate (default 256; -1: until the context\n"
            "                            is full)\n"
            "  -c, --ctx-size N          context length (default 0: the model's)\n"
            "      --temp T              temperature, 0 = greedy (default %g)\n"
            "      --top-k K             keep the K most likely tokens, 0 = off (default %d)\n"
            "      --top-p P             nucleus sampling mass, 1 = off (default %g)\n"
            "      --repeat-penalty R    penalise tokens of the last --repeat-last-n, 1 = off\n"
            "                            (default %g)\n"
            "      --repeat-last-n N     the penalty's window (default %d; 0 = no penalty,\n"
            "                            -1 = the whole context)\n"
            "      --no-repeat-ngram N   never repeat an N-gram, 0 = off (default %d)\n"
            "      --seed S              random seed (default %llu)\n"
            "      --tokenizer FILE      tokenizer.model, tokenizer.bin or tokenizer.json (default: beside the model)\n"
            "  -t, --threads N           compute threads (default: all cores)\n"
            "      --compute C           auto (default), bf16 or f32: auto and bf16 decode\n"
            "                            quantized weights with 8-bit activation products\n"
            "                            (as llama.cpp; logits move ~1-2 %% of their range)\n"
            "                            and use bf16 prompt products where the CPU has\n"
            "                            AVX512-BF16; f32 is the reference numerics\n"
            "      --edits FILE          apply edits: a redit edit file (RED, LoRA, IA3), a PEFT\n"
            "                            adapter folder or a llama.cpp LoRA GGUF\n"
            "      --strength A          edit strength α: s' = 1 + α(s − 1), b' = α·b (default 1)\n"
            "      --compare             print the base model's answer, then the edited one\n"
            "                            (same seed and template)\n"
            "      --edits-b FILE        compare two edit sets (implies --compare): the\n"
            "                            answer with --edits FILE, then the one with these\n"
            "                            (same seed, strength and template), each titled with\n"
            "                            its file\n"
            "      --force               load edits made for another base model\n"
            "      --batch FILE          many prompts at once, one JSON object a line:\n"
            "                            \"prompt\" or \"messages\" (chat: [{\"role\",\n"
            "                            \"content\"}], through the template), and optionally\n"
            "                            \"edits\" (a NAME of --edits NAME=FILE, or null for\n"
            "                            the base model; default: the plain --edits),\n"
            "                            \"strength\", \"temperature\", \"top_k\", \"top_p\",\n"
            "                            \"seed\", \"max_tokens\", \"repeat_penalty\", \"id\";\n"
            "                            writes one JSON result a line in input order (id,\n"
            "                            line, text, tokens, stopped_by, seconds)\n"
            "      --edits NAME=FILE     an edit set --batch lines name (repeatable)\n"
            "      --parallel N          sequences decoded together with --batch (default 8)\n"
            "  -o, --output FILE         --batch results to FILE (atomically) instead of stdout\n"
            "  -h, --help                this text\n"
            "      --version             redit's version\n\n"
            "As in llama.cpp: -t is the thread count and --temp the temperature (-t meant the\n"
            "temperature before this release). The RED paper's Llama-2 setup:\n"
            "--repeat-penalty 1.1 --no-repeat-ngram 5.\n",
            (double)d.temperature, d.top_k, (double)d.top_p, (double)d.repeat_penalty,
            d.repeat_last_n, d.no_repeat_ngram, (unsigned long long)d.seed);
}

typedef struct stream_state {
    int print_ids;
    rd_chat_filter *filter; /* with a template: ends the answer at the next turn; else NULL */
} stream_state;

static int on_token(void *user, int token, const char *text, size_t len) {
    const stream_state *s = user;
    if (s->print_ids) {
        printf("%d ", token);
    } else if (s->filter) {
        const char *show;
        size_t n;
        const int rc = rd_chat_filter_push(s->filter, text, len, &show, &n);
        fwrite(show, 1, n, stdout);
        fflush(stdout);
        return rc != 0;
    } else {
        fwrite(text, 1, len, stdout);
    }
    fflush(stdout);
    return 0;
}

/* One generation, streamed, then its statistics on stderr. prompt: the text to print first
 * (the user's prompt; with a template on a line of its own), or NULL. */
static int run_one(rd_ctx *ctx, const rd_edits_view *edits, const int *ids, size_t n,
                   const rd_gen_opts *g, stream_state *s, const char *prompt, int *out_ids,
                   rd_error *err) {
    if (prompt) printf("%s%s", prompt, s->filter ? "\n" : "");
    if (s->filter) rd_chat_filter_reset(s->filter);
    rd_gen_stats st = {0};
    if (rd_generate(ctx, edits, ids, n, g, on_token, s, out_ids, &st, err)) return -1;
    if (s->filter) {
        const char *show;
        size_t len;
        rd_chat_filter_finish(s->filter, &show, &len);
        fwrite(show, 1, len, stdout);
    }
    printf("\n");
    fflush(stdout); /* the text before the statistics on stderr */
    static const char *why[] = {"token limit", "end of text", "stopped", "context full"};
    const char *stop = s->filter && rd_chat_filter_stopped(s->filter)
                           ? "the template's next turn"
                           : why[st.stopped_by >= 0 && st.stopped_by < 4 ? st.stopped_by : 0];
    fprintf(stderr, "prompt %d tokens: %.1f tok/s · generated %d tokens: %.1f tok/s (%s)\n",
            st.n_prompt, st.prefill_seconds > 0 ? st.n_prompt / st.prefill_seconds : 0.0,
            st.n_generated, st.decode_seconds > 0 ? st.n_generated / st.decode_seconds : 0.0,
            stop);
    return 0;
}

/* What the command line says. */
typedef struct gen_args {
    cli_model_args model;
    cli_edits_args edits;
    rd_gen_opts gen;
    cli_gen_args ga;
    const char *prompt, *prompt_file, *ids_text, *edits_b, *tmpl, *system;
    char *tmpl_owned;    /* a --template FILE's text */
    char *prompt_owned;  /* -f's text */
    int compare;
    const char *batch, *output; /* --batch FILE, -o FILE */
    int parallel;               /* --parallel N (0: not given) */
    cli_named_edits named[64];  /* --edits NAME=FILE */
    int n_named;
} gen_args;

/* --edits NAME=FILE (NAME of letters, digits, '_', '-', '.'; an existing file named so
 * stays a plain --edits FILE): 1 with *a's list extended, 0 when arg is a plain path, -1 on
 * too many (printed). */
static int named_edits(const char *arg, gen_args *a) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1] || access(arg, F_OK) == 0) return 0;
    for (const char *c = arg; c < eq; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", *c))
            return 0;
    if (a->n_named == (int)(sizeof a->named / sizeof *a->named))
        return cli_usage_error("generate", "at most %d --edits NAME=FILE",
                               (int)(sizeof a->named / sizeof *a->named)), -1;
    char *name = strndup(arg, (size_t)(eq - arg));
    if (!name) return -1;
    for (int i = 0; i < a->n_named; i++)
        if (!strcmp(a->named[i].name, name)) {
            cli_usage_error("generate", "--edits %s= given twice", name);
            free(name);
            return -1;
        }
    a->named[a->n_named++] = (cli_named_edits){name, eq + 1};
    return 1;
}

/* An engine message for generate's own prefix (the chat-format functions start theirs
 * "chat: "). */
static const char *message(const rd_error *err) {
    return strncmp(err->msg, "chat: ", 6) ? err->msg : err->msg + 6;
}

/* The stop text of a template (what begins its next turn), checking the template; NULL with
 * the reason printed. */
static char *turn_start(const char *tmpl) {
    rd_error err = {0};
    char *stop = rd_chat_turn_start(tmpl, &err);
    if (!stop) fprintf(stderr, "redit generate: %s\n", message(&err));
    return stop;
}

/* Parses argv into *a. Returns -1 to go on, else the exit status (0 after --help or
 * --version, 2 on a usage error: printed). */
static int parse_args(int argc, char **argv, gen_args *a) {
    enum { O_IDS = CLI_O_FIRST_FREE, O_COMPARE, O_EDITS_B, O_BATCH, O_PARALLEL };
    static const struct option opts[] = {
        CLI_MODEL_LONG_OPTIONS, CLI_EDITS_LONG_OPTIONS, CLI_GEN_LONG_OPTIONS,
        {"prompt", required_argument, 0, 'p'},  {"file", required_argument, 0, 'f'},
        {"ids", required_argument, 0, O_IDS},   {"compare", no_argument, 0, O_COMPARE},
        {"edits-b", required_argument, 0, O_EDITS_B},
        {"template", required_argument, 0, CLI_O_TEMPLATE},
        {"system", required_argument, 0, CLI_O_SYSTEM}, {"batch", required_argument, 0, O_BATCH},
        {"parallel", required_argument, 0, O_PARALLEL}, {"output", required_argument, 0, 'o'},
        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0}};
    int c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:p:f:n:t:c:o:h", opts, NULL)) != -1) {
        int got = c == 't' ? cli_threads_short("generate", optarg, &a->model) : 0;
        if (!got && c == CLI_O_EDITS) got = named_edits(optarg, a);
        if (!got) got = cli_gen_option("generate", c, optarg, &a->ga);
        if (!got) got = cli_model_option("generate", c, optarg, &a->model);
        if (!got) got = cli_edits_option("generate", c, optarg, &a->edits);
        if (got < 0) return 2;
        if (got) continue;
        switch (c) {
        case 'p': a->prompt = optarg; break;
        case 'f': a->prompt_file = optarg; break;
        case O_IDS: a->ids_text = optarg; break;
        case O_COMPARE: a->compare = 1; break;
        case O_EDITS_B: a->edits_b = optarg, a->compare = 1; break;
        case O_BATCH: a->batch = optarg; break;
        case 'o': a->output = optarg; break;
        case O_PARALLEL:
            if (cli_int("generate", "--parallel", optarg, 1, 4096, &a->parallel)) return 2;
            break;
        case CLI_O_TEMPLATE:
            free(a->tmpl_owned);
            if (!(a->tmpl = cli_template_arg("generate", optarg, &a->tmpl_owned))) return 2;
            break;
        case CLI_O_SYSTEM: a->system = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("generate", c, argv, opts);
        }
    }
    if (optind != argc)
        return cli_usage_error("generate", "unexpected argument '%s'", argv[optind]);
    if (!a->model.path) return cli_usage_error("generate", "-m MODEL is required");
    if (a->batch && (a->prompt || a->prompt_file || a->ids_text || a->compare))
        return cli_usage_error("generate", "--batch takes its prompts from the file: no -p, "
                                           "-f, --ids or --compare");
    if (!a->batch && (a->output || a->parallel || a->n_named))
        return cli_usage_error("generate", "%s needs --batch",
                               a->output ? "-o" : a->parallel ? "--parallel" : "--edits NAME=FILE");
    if (a->batch) return -1;
    if (!!a->prompt + !!a->prompt_file + !!a->ids_text != 1)
        return cli_usage_error("generate", "give exactly one of -p PROMPT, -f FILE or --ids");
    if (a->compare && !a->edits.path)
        return cli_usage_error("generate", "%s needs --edits",
                               a->edits_b ? "--edits-b" : "--compare");
    if (a->ids_text && (a->tmpl || a->system))
        return cli_usage_error("generate", "%s applies to a text prompt, not to --ids",
                               a->tmpl ? "--template" : "--system");
    if (a->tmpl && strcmp(a->tmpl, "none")) { /* a bad template, before the model loads */
        char *stop = turn_start(a->tmpl);
        if (!stop) return 2;
        free(stop);
    }
    return -1;
}

/* -f's text, one final newline dropped (as llama.cpp reads it). */
static char *read_prompt_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "redit generate: -f %s: cannot open the file\n", path);
        return NULL;
    }
    rd_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) rd_buf_append(&b, chunk, n);
    const int bad = ferror(f) || b.oom;
    fclose(f);
    if (bad) {
        fprintf(stderr, "redit generate: -f %s: cannot read the file\n", path);
        rd_buf_free(&b);
        return NULL;
    }
    if (b.len && b.data[b.len - 1] == '\n') b.data[--b.len] = '\0';
    if (!b.data) rd_buf_append(&b, "", 0);
    return rd_buf_take(&b);
}

/* The prompt ids: the text as given, or rendered by the template (tmpl NULL or "none": as
 * given). */
static int prompt_ids(const rd_tokenizer *t, const char *tmpl, const char *system,
                      const char *prompt, int **ids, size_t *n, rd_error *err) {
    if (!tmpl || !strcmp(tmpl, "none"))
        return rd_tokenizer_encode(t, prompt, strlen(prompt), 1, 0, ids, n, err);
    return rd_chat_prompt_ids(t, tmpl, system, NULL, 0, prompt, ids, n, err);
}

int cmd_generate(int argc, char **argv) {
    gen_args a = {.model = {.compute = "auto"}, .edits = CLI_EDITS_ARGS_DEFAULT,
                  .gen = {.sampling = rd_sampling_defaults(), .max_tokens = 256,
                          .stop_at_eos = 1}};
    a.ga = CLI_GEN_ARGS(&a.gen);
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) {
        for (int i = 0; i < a.n_named; i++) free((char *)a.named[i].name);
        free(a.tmpl_owned);
        return rc;
    }
    rc = 1;
    rd_model *m = NULL;
    rd_error err = {0};
    int *ids = NULL, *out_ids = NULL;
    size_t n = 0;
    rd_ctx *ctx = NULL;
    rd_edits *edits = NULL, *edits_b = NULL;
    char *stored_tmpl = NULL;
    stream_state s = {0};
    if (a.prompt_file && !(a.prompt = a.prompt_owned = read_prompt_file(a.prompt_file)))
        goto done;
    if (!(m = cli_open_model("generate", &a.model, 0))) goto done;
    const rd_tokenizer *t = rd_model_tokenizer(m);
    if (a.prompt && !t) {
        fprintf(stderr, "redit generate: %s has no tokenizer; text needs one (give "
                        "--tokenizer FILE, or the prompt as --ids)\n", a.model.path);
        goto done;
    }
    if (a.batch) {
        const cli_batch_args ba = {.input = a.batch, .output = a.output,
                                   .parallel = a.parallel ? a.parallel : 8, .named = a.named,
                                   .n_named = a.n_named, .edits = &a.edits, .tmpl = a.tmpl,
                                   .system = a.system, .gen = &a.gen,
                                   .context = cli_gen_finish("generate", &a.ga, m)};
        rc = cli_generate_batch(m, &ba);
        goto done;
    }
    if (cli_open_edits(&a.edits, m, &edits, &stored_tmpl)) goto done;
    cli_edits_args eb = a.edits;
    eb.path = a.edits_b;
    if (cli_open_edits(&eb, m, &edits_b, NULL)) goto done;
    const char *tmpl = a.tmpl;
    if (!tmpl && stored_tmpl && a.prompt) {
        tmpl = stored_tmpl;
        fprintf(stderr, "redit generate: template \"%s\", as the edits were trained with "
                        "(--template none: the prompt as given)\n", tmpl);
    }
    if (a.prompt && prompt_ids(t, tmpl, a.system, a.prompt, &ids, &n, &err)) {
        fprintf(stderr, "redit generate: %s\n", message(&err));
        goto done;
    }
    if (a.ids_text && !(ids = cli_parse_ids(a.ids_text, &n))) goto done; /* it said why */
    if (a.ids_text && n == 0) {
        fprintf(stderr, "redit generate: --ids needs at least one id\n");
        goto done;
    }
    const int context = cli_gen_finish("generate", &a.ga, m);
    if (!(ctx = rd_ctx_new(m, 1, context, &err)) ||
        !(out_ids = malloc(sizeof(int) * (size_t)a.gen.max_tokens))) {
        fprintf(stderr, "redit generate: %s\n", ctx ? "out of memory" : err.msg);
        goto done;
    }
    s.print_ids = !t || !a.prompt;
    if (tmpl && strcmp(tmpl, "none") && !s.print_ids) {
        char *stop = turn_start(tmpl);
        if (!stop) goto done;
        s.filter = rd_chat_filter_new(stop);
        free(stop);
        if (!s.filter) {
            fprintf(stderr, "redit generate: out of memory\n");
            goto done;
        }
    }
    /* pass 0: base, or --edits with --edits-b; pass 1: --edits, or --edits-b */
    rd_edits_view view = cli_edits_view(&a.edits, edits), view_b = cli_edits_view(&eb, edits_b);
    const rd_edits_view *views[2] = {edits_b ? &view : NULL, edits_b ? &view_b : &view};
    const char *titles[2] = {edits_b ? a.edits.path : "base", edits_b ? eb.path : "edited"};
    for (int pass = a.compare ? 0 : 1; pass < 2; pass++) {
        const rd_edits_view *v = edits ? views[pass] : NULL;
        if (a.compare) printf("%s── %s ──\n", pass ? "\n" : "", titles[pass]);
        if (run_one(ctx, v, ids, n, &a.gen, &s, a.prompt, out_ids, &err)) {
            fprintf(stderr, "\nredit %s\n", err.msg); /* rd_generate's messages start "generate: " */
            goto done;
        }
    }
    rc = 0;
done:
    for (int i = 0; i < a.n_named; i++) free((char *)a.named[i].name);
    rd_chat_filter_free(s.filter);
    free(stored_tmpl);
    free(a.tmpl_owned);
    free(a.prompt_owned);
    rd_edits_free(edits);
    rd_edits_free(edits_b);
    free(out_ids);
    free(ids);
    rd_ctx_free(ctx);
    rd_model_free(m);
    return rc;
}
