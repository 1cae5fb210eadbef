/* redit — entry point: dispatches to the sub-commands. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The bundled base model `redit` with no command opens (make default-model). */
#define DEFAULT_MODEL "models/redit-base.gguf"

#include "cli.h"
#include "redit/version.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} COMMANDS[] = {
    {"info", cmd_info, "show a model file's format, tensor types, config and tokenizer"},
    {"generate", cmd_generate, "generate text from a prompt, streamed to stdout"},
    {"tokenize", cmd_tokenize, "text on stdin to token ids (or JSONL with --jsonl)"},
    {"logits", cmd_logits, "write float32 logits for a token sequence (teacher forcing)"},
    {"train", cmd_train, "train RED edit vectors (or --full fine-tuning) on a data set"},
    {"eval", cmd_eval, "loss, perplexity and classification metrics, with or without edits"},
    {"edit-grad", cmd_edit_grad, "write edit-vector gradients of a token sequence's loss"},
    {"chat", cmd_chat, "multi-turn chat in the terminal (--compare: base and edited)"},
    {"lua", cmd_lua, "interactive Lua prompt with the red module (-m: a model preloaded)"},
    {"tui", cmd_tui, "the workbench: edits, live loss chart, chat base vs edited, Lua console"},
    {"session", cmd_session, "a workbench session's runs: list, use, delete, their edits files"},
    {"convert", cmd_convert, "write a model as GGUF in another storage type (F16, Q8_0, Q4_K, ...)"},
    {"export", cmd_export, "export RED edits: llama.cpp control vector, merged GGUF, safetensors"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server: many edit sets, batched together"},
    {"run", cmd_run, "run a Lua script with the red module (redit run SCRIPT.lua [args])"},
    {"demo", cmd_demo, "write a small random model and generate from it (make run)"},
    {"make-model", cmd_make_model, "write a random-weight model of a given shape and type (GGUF)"},
    {"bench", cmd_bench, "measure decode and prefill throughput (make bench)"},
};

static void usage(FILE *out) {
    fprintf(out,
            "redit — a workbench for RED (representation editing) fine-tuning of Llama-2-family "
            "models\n\nusage: redit COMMAND [options]    (redit COMMAND --help for its "
            "options)\n       redit --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\nModel files: GGUF v2/v3 (F32, F16, BF16, Q8_0, Q4_0–Q5_1, Q2_K–Q6_K, IQ4_NL, IQ4_XS), Hugging Face "
                 "folders (config.json + safetensors) and llama2.c .bin "
                 "checkpoints; the format is detected from the file's content.\n"
                 "Shared flags mean what they mean in llama.cpp: -m/--model, -t/--threads, "
                 "-c/--ctx-size, -n/--n-predict, -p/--prompt, -f/--file, --temp, --top-k, "
                 "--top-p, --repeat-penalty, --repeat-last-n, --seed.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { /* the workbench on the bundled model, when there is one */
        if (access(DEFAULT_MODEL, R_OK) == 0 && isatty(STDIN_FILENO)) {
            char *tui_argv[] = {"redit tui", "-m", DEFAULT_MODEL, NULL};
            return cmd_tui(3, tui_argv);
        }
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("redit %s\n", rd_version_full());
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) {
            /* getopt names argv[0] in its messages: "redit info: unrecognized option" */
            char name[32];
            snprintf(name, sizeof name, "redit %s", COMMANDS[i].name);
            argv[1] = name;
            return COMMANDS[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "redit: unknown %s \"%s\"; see 'redit --help'\n",
            argv[1][0] == '-' ? "option" : "command", argv[1]);
    return 2;
}
