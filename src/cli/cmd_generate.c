/* redit generate: stream a continuation of a prompt to stdout. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "redit/edits.h"
#include "redit/generate.h"
#include "redit/tokenizer.h"

static void usage(FILE *out) {
    rd_sampling d = rd_sampling_defaults();
    fprintf(out,
            "usage: redit generate -m MODEL -p PROMPT [options]\n\n"
            "Streams the model's continuation of PROMPT to stdout; tokens/s go to stderr.\n\n"
            "  -m, --model FILE          model file (GGUF, llama2.c .bin)\n"
            "  -p, --prompt TEXT         the prompt (BOS is added)\n"
            "      --ids LIST            prompt as token ids instead (models without tokenizer:\n"
            "                            the generated ids are printed)\n"
            "  -n, --max-tokens N        tokens to generate (default 256)\n"
            "  -t, --temperature T       0 = greedy (default %g)\n"
            "      --top-k K             keep the K most likely tokens, 0 = off (default %d)\n"
            "      --top-p P             nucleus sampling mass, 1 = off (default %g)\n"
            "      --repeat-penalty R    penalise tokens of the last 64, 1 = off (default %g)\n"
            "      --no-repeat-ngram N   never repeat an N-gram, 0 = off (default %d)\n"
            "      --seed S              random seed (default %llu)\n"
            "      --tokenizer FILE      llama2.c tokenizer.bin (default: beside the model)\n"
            "      --threads N           compute threads (default: all cores)\n"
            "      --compute C           auto (default), bf16 or f32: auto and bf16 decode\n"
            "                            quantized weights with 8-bit activation products\n"
            "                            (as llama.cpp; logits move ~1-2 %% of their range)\n"
            "                            and use bf16 prompt products where the CPU has\n"
            "                            AVX512-BF16; f32 is the reference numerics\n"
            "      --edits FILE          apply RED edits (safetensors edit file)\n"
            "      --strength A          edit strength α: s' = 1 + α(s − 1), b' = α·b (default 1)\n"
            "      --compare             print the base model's answer, then the edited one\n"
            "                            (same seed)\n"
            "      --edits-b FILE        compare two edit sets (implies --compare): the\n"
            "                            answer with --edits FILE, then the one with these\n"
            "                            (same seed and strength), each titled with its file\n"
            "      --force               load edits made for another base model\n"
            "  -h, --help                this text\n\n"
            "The RED paper's Llama-2 setup: --repeat-penalty 1.1 --no-repeat-ngram 5.\n",
            (double)d.temperature, d.top_k, (double)d.top_p, (double)d.repeat_penalty,
            d.no_repeat_ngram, (unsigned long long)d.seed);
}

typedef struct stream_state {
    int print_ids;
} stream_state;

static int on_token(void *user, int token, const char *text, size_t len) {
    const stream_state *s = user;
    if (s->print_ids)
        printf("%d ", token);
    else
        fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* One generation, streamed, then its statistics on stderr. */
static int run_one(rd_ctx *ctx, const rd_edits_view *edits, const int *ids, size_t n,
                   const rd_gen_opts *g, stream_state *s, const char *prompt, int *out_ids,
                   rd_error *err) {
    if (prompt) fputs(prompt, stdout);
    rd_gen_stats st = {0};
    if (rd_generate(ctx, edits, ids, n, g, on_token, s, out_ids, &st, err)) return -1;
    printf("\n");
    fflush(stdout); /* the text before the statistics on stderr */
    static const char *why[] = {"token limit", "end of text", "stopped", "context full"};
    fprintf(stderr, "prompt %d tokens: %.1f tok/s · generated %d tokens: %.1f tok/s (%s)\n",
            st.n_prompt, st.prefill_seconds > 0 ? st.n_prompt / st.prefill_seconds : 0.0,
            st.n_generated, st.decode_seconds > 0 ? st.n_generated / st.decode_seconds : 0.0,
            why[st.stopped_by >= 0 && st.stopped_by < 4 ? st.stopped_by : 0]);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    enum { O_IDS = CLI_O_FIRST_FREE, O_COMPARE, O_EDITS_B };
    static const struct option opts[] = {
        CLI_MODEL_LONG_OPTIONS, CLI_EDITS_LONG_OPTIONS, CLI_GEN_LONG_OPTIONS,
        {"prompt", required_argument, 0, 'p'},  {"ids", required_argument, 0, O_IDS},
        {"compare", no_argument, 0, O_COMPARE}, {"edits-b", required_argument, 0, O_EDITS_B},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    cli_model_args ma = {.compute = "auto"};
    cli_edits_args ea = CLI_EDITS_ARGS_DEFAULT;
    const char *prompt = NULL, *ids_text = NULL, *edits_b_path = NULL;
    rd_gen_opts g = {.sampling = rd_sampling_defaults(), .max_tokens = 256, .stop_at_eos = 1};
    int c, compare = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:t:h", opts, NULL)) != -1) {
        int got = cli_gen_option("generate", c, optarg, &g);
        if (!got) got = cli_model_option("generate", c, optarg, &ma);
        if (!got) got = cli_edits_option("generate", c, optarg, &ea);
        if (got < 0) return 2;
        if (got) continue;
        switch (c) {
        case 'p': prompt = optarg; break;
        case O_IDS: ids_text = optarg; break;
        case O_COMPARE: compare = 1; break;
        case O_EDITS_B: edits_b_path = optarg, compare = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (compare && !ea.path) {
        fprintf(stderr, "redit generate: %s needs --edits\n",
                edits_b_path ? "--edits-b" : "--compare");
        return 2;
    }
    if (!ma.path || (!prompt == !ids_text) || optind != argc) {
        fprintf(stderr, "redit generate: give -m MODEL and exactly one of -p PROMPT or --ids\n");
        usage(stderr);
        return 2;
    }
    rd_model *m = cli_open_model("generate", &ma, 0);
    if (!m) return 1;
    const rd_tokenizer *t = rd_model_tokenizer(m);
    rd_error err = {0};
    int *ids = NULL, *out_ids = NULL;
    size_t n = 0;
    int rc = 1;
    rd_ctx *ctx = NULL;
    rd_edits *edits = NULL, *edits_b = NULL;
    if (prompt) {
        if (!t) {
            fprintf(stderr, "redit generate: %s has no tokenizer; text needs one (give "
                            "--tokenizer FILE, or the prompt as --ids)\n", ma.path);
            goto done;
        }
        if (rd_tokenizer_encode(t, prompt, strlen(prompt), 1, 0, &ids, &n, &err)) {
            fprintf(stderr, "redit generate: %s\n", err.msg);
            goto done;
        }
    } else if (!(ids = cli_parse_ids(ids_text, &n))) {
        goto done; /* cli_parse_ids said why */
    } else if (n == 0) {
        fprintf(stderr, "redit generate: --ids needs at least one id\n");
        goto done;
    }
    if (!(ctx = rd_ctx_new(m, 1, rd_model_config(m)->seq_len, &err)) ||
        !(out_ids = malloc(sizeof(int) * (size_t)g.max_tokens))) {
        fprintf(stderr, "redit generate: %s\n", ctx ? "out of memory" : err.msg);
        goto done;
    }
    if (cli_open_edits(&ea, m, &edits)) goto done;
    cli_edits_args eb = ea;
    eb.path = edits_b_path;
    if (cli_open_edits(&eb, m, &edits_b)) goto done;
    stream_state s = {.print_ids = !t || !prompt};
    /* pass 0: base, or --edits with --edits-b; pass 1: --edits, or --edits-b */
    rd_edits_view view = cli_edits_view(&ea, edits), view_b = cli_edits_view(&eb, edits_b);
    const rd_edits_view *views[2] = {edits_b ? &view : NULL, edits_b ? &view_b : &view};
    const char *titles[2] = {edits_b ? ea.path : "base", edits_b ? eb.path : "edited"};
    for (int pass = compare ? 0 : 1; pass < 2; pass++) {
        const rd_edits_view *v = edits ? views[pass] : NULL;
        if (compare) printf("%s── %s ──\n", pass ? "\n" : "", titles[pass]);
        if (run_one(ctx, v, ids, n, &g, &s, prompt, out_ids, &err)) {
            fprintf(stderr, "\nredit %s\n", err.msg); /* rd_generate's messages start "generate: " */
            goto done;
        }
    }
    rc = 0;
done:
    rd_edits_free(edits);
    rd_edits_free(edits_b);
    free(out_ids);
    free(ids);
    rd_ctx_free(ctx);
    rd_model_free(m);
    return rc;
}
