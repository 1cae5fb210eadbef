/* redit demo: what `make run` shows until the bundled model exists — writes a small
 * random-weight Llama model with a byte-fallback vocabulary as GGUF, loads it back through
 * the same path a downloaded GGUF takes, and streams a generation. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "options.h"
#include "redit/forward.h"
#include "redit/generate.h"
#include "redit/vocab.h"

static const char *const WORDS[] = {
    "the", "and", "of", "to", "a", "in", "was", "he", "she", "it", "that", "with", "for", "on",
    "his", "her", "they", "is", "at", "one", "day", "little", "time", "upon", "once", "there",
    "girl", "boy", "named", "Lily", "Tom", "saw", "big", "happy", "said", "went", "play",
    "wanted", "sun", "tree", "friend", "very", "dog", "cat", "park", "home", "mom", "ball"};

/* A demo vocabulary: <unk> <s> </s>, 256 byte pieces, "▁", printable ASCII, then "▁word" pieces. */
static int demo_vocab(rd_vocab *out, rd_error *err) {
    enum { MAX = 3 + 256 + 1 + 94 + 64 };
    static char storage[MAX][16];
    const char *pieces[MAX];
    float scores[MAX];
    int n = 0;
    const char *special[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) snprintf(storage[n++], 16, "%s", special[i]);
    for (int b = 0; b < 256; b++) snprintf(storage[n++], 16, "<0x%02X>", b);
    snprintf(storage[n++], 16, "\xe2\x96\x81");
    for (int ch = 33; ch < 127; ch++) snprintf(storage[n++], 16, "%c", ch);
    for (size_t w = 0; w < sizeof WORDS / sizeof *WORDS; w++)
        snprintf(storage[n++], 16, "\xe2\x96\x81%s", WORDS[w]);
    /* Prompts encode character by character (BPE reaches a word piece only through pieces
     * of its prefixes, which this vocabulary lacks); the word pieces make the random
     * model's output look like text. */
    for (int i = 0; i < n; i++) {
        pieces[i] = storage[i];
        scores[i] = 0.0f;
    }
    rd_vocab_spec spec = {.n_pieces = n, .pieces = pieces, .scores = scores, .bos_id = 1,
                          .eos_id = 2, .unk_id = 0, .add_dummy_prefix = 1};
    return rd_vocab_from_spec(out, &spec, "demo vocabulary", err);
}

static void usage(FILE *out) {
    fprintf(out, "usage: redit demo [--dir DIR] [--prompt TEXT]\n\n"
                 "Writes a small random-weight Llama model (GGUF, F16) into DIR and streams a\n"
                 "generation from it. The text is noise: the weights are random. `make run`\n"
                 "shows this only when the bundled, trained model (models/redit-base.gguf) is\n"
                 "missing.\n\n"
                 "  -d, --dir DIR       where to write random-demo.gguf (default build/demo)\n"
                 "  -p, --prompt TEXT   the prompt (default \"Once upon a time\")\n"
                 "  -h, --help          this text\n"
                 "      --version       redit's version\n");
}

int cmd_demo(int argc, char **argv) {
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"prompt", required_argument, 0, 'p'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *dir = "build/demo", *prompt = "Once upon a time";
    int c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":d:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'p': prompt = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("demo", c, argv, opts);
        }
    }
    const int usage_rc = cli_parse_end("demo", argc, argv, NULL, NULL);
    if (usage_rc) return usage_rc;
    mkdir(dir, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/random-demo.gguf", dir);
    rd_error err = {0};
    rd_model_file f;
    rd_vocab vocab;
    int bad = demo_vocab(&vocab, &err);
    rd_config cfg = {.dim = 128, .hidden_dim = 344, .n_layers = 4, .n_heads = 8, .n_kv_heads = 4,
                     .vocab_size = vocab.n, .seq_len = 256,
                     .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_layout = RD_ROPE_ADJACENT};
    if (bad || rd_model_file_random(&f, &cfg, 1, 1, RD_DTYPE_F32, &err)) {
        fprintf(stderr, "redit demo: %s\n", err.msg);
        rd_vocab_release(&vocab);
        return 1;
    }
    f.vocab = vocab; /* moved: released with f */
    snprintf(f.name, sizeof f.name, "redit random demo");
    int rc = rd_gguf_write(path, &f, RD_DTYPE_F16, &err);
    rd_model_file_release(&f);
    if (rc) {
        fprintf(stderr, "redit demo: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s: a random-weight Llama model (dim %d, %d layers, GQA %d/%d heads, F16)\n"
           "its text is noise; the bundled trained model is models/redit-base.gguf (make\n"
           "default-model rebuilds it).\n\n",
           path, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads);
    /* the RED paper's Llama-2 sampling setup: repetition penalty 1.1, no repeated 5-grams */
    char *args[] = {"generate", "-m", path, "-p", (char *)prompt, "-n", "48", "--seed", "7",
                    "--repeat-penalty", "1.1", "--no-repeat-ngram", "5", NULL};
    return cmd_generate((int)(sizeof args / sizeof *args) - 1, args);
}
