/* redit tokenize: text on stdin → token ids on stdout. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "redit/buf.h"
#include "redit/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit tokenize -m MODEL_OR_TOKENIZER [-p TEXT | -f FILE] [--jsonl] [--bos]\n\n"
            "Prints the token ids of a text separated by spaces: of TEXT, of FILE's contents, or\n"
            "else of stdin. The whole input is one text, byte for byte (a trailing newline is\n"
            "part of it).\n\n"
            "  -m, --model FILE   a model with a tokenizer (GGUF; Hugging Face folder;\n"
            "                     llama2.c .bin with its tokenizer.bin or tokenizer.model\n"
            "                     beside it), a SentencePiece tokenizer.model, a llama2.c\n"
            "                     tokenizer.bin or a Hugging Face tokenizer.json (its\n"
            "                     tokenizer_config.json beside it is read when present)\n"
            "      --tokenizer F  tokenizer.model or tokenizer.bin for a .bin model\n"
            "  -p, --prompt TEXT  the text (as llama.cpp's llama-tokenize)\n"
            "  -f, --file FILE    read the text from FILE\n"
            "      --jsonl        read lines {\"text\": ...}, write {\"text\": ..., \"ids\": [...]}\n"
            "      --bos          add the BOS id in front (off by default, like SentencePiece's\n"
            "                     encode)\n"
            "  -h, --help         this text\n"
            "      --version      redit's version\n");
}

/* A tokenizer from a model file, else from a tokenizer file (rd_tokenizer_load_file tells
 * tokenizer.json — with the tokenizer_config.json beside it —, tokenizer.model and
 * tokenizer.bin apart by content). *model keeps the model alive when one was loaded. */
static const rd_tokenizer *open_tokenizer(const char *path, const char *tok_path, rd_model **model,
                                          rd_tokenizer **owned) {
    rd_error err = {0};
    if (rd_detect_format(path, &err) != RD_FORMAT_UNKNOWN) {
        if (!(*model = cli_load_model(path, tok_path))) return NULL;
        if (!rd_model_tokenizer(*model))
            fprintf(stderr, "redit tokenize: %s has no tokenizer (give --tokenizer FILE)\n", path);
        return rd_model_tokenizer(*model);
    }
    rd_error err2 = {0};
    *owned = rd_tokenizer_load_file(path, 0, &err2);
    if (!*owned)
        fprintf(stderr, "redit tokenize: %s\n  (as a model: %s)\n", err2.msg, err.msg);
    return *owned;
}

/* All of fp; NULL (after a message) when it cannot be read or held. */
static char *read_all(FILE *fp, size_t *n) {
    rd_buf b = {0};
    if (rd_buf_read(&b, fp)) {
        fprintf(stderr, "redit tokenize: %s\n", b.oom ? "out of memory reading the text" : "cannot read the text");
        rd_buf_free(&b);
        return NULL;
    }
    *n = b.len;
    return rd_buf_take(&b);
}

static int print_ids(const rd_tokenizer *t, const char *text, size_t len, int bos) {
    int *ids;
    size_t n;
    rd_error err = {0};
    if (rd_tokenizer_encode(t, text, len, bos, 0, &ids, &n, &err)) {
        fprintf(stderr, "redit tokenize: %s\n", err.msg);
        return -1;
    }
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    return 0;
}

static int jsonl(const rd_tokenizer *t, int bos) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (len == 0 || line[0] == '\n') continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        cJSON *text = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
        if (!text || !cJSON_IsString(text)) {
            fprintf(stderr, "redit tokenize: stdin line %ld: expected a JSON object with a string "
                            "\"text\"\n", lineno);
            cJSON_Delete(j);
            rc = 1;
            break;
        }
        int *ids;
        size_t n;
        rd_error err = {0};
        if (rd_tokenizer_encode(t, text->valuestring, strlen(text->valuestring), bos, 0, &ids, &n,
                                &err)) {
            fprintf(stderr, "redit tokenize: line %ld: %s\n", lineno, err.msg);
            cJSON_Delete(j);
            rc = 1;
            break;
        }
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "text", text->valuestring);
        cJSON *arr = cJSON_AddArrayToObject(out, "ids");
        for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
        char *s = cJSON_PrintUnformatted(out);
        if (s) puts(s);
        free(s);
        cJSON_Delete(out);
        cJSON_Delete(j);
        free(ids);
    }
    free(line);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"tokenizer", required_argument, 0, 'k'},
                                         {"jsonl", no_argument, 0, 'J'},
                                         {"bos", no_argument, 0, 'B'},
                                         {"prompt", required_argument, 0, 'p'},
                                         {"file", required_argument, 0, 'f'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *path = NULL, *tok_path = NULL, *prompt = NULL, *file = NULL;
    int use_jsonl = 0, bos = 0, c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:p:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': path = optarg; break;
        case 'k': tok_path = optarg; break;
        case 'J': use_jsonl = 1; break;
        case 'B': bos = 1; break;
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("tokenize", c, argv, opts);
        }
    }
    const int bad =
        cli_parse_end("tokenize", argc, argv, path, "-m MODEL_OR_TOKENIZER", NULL, NULL);
    if (bad || !path) return bad ? bad : 2; /* cli_parse_end refused a missing -m */
    if ((prompt && file) || (use_jsonl && (prompt || file))) {
        fprintf(stderr, "redit tokenize: give one of -p TEXT, -f FILE and --jsonl (stdin); see "
                        "'redit tokenize --help'\n");
        return 2;
    }
    FILE *in = stdin;
    if (file && !(in = fopen(file, "rb"))) {
        fprintf(stderr, "redit tokenize: cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    rd_model *model = NULL;
    rd_tokenizer *owned = NULL;
    const rd_tokenizer *t = open_tokenizer(path, tok_path, &model, &owned);
    int rc = 1;
    if (t) {
        if (use_jsonl) {
            rc = jsonl(t, bos);
        } else if (prompt) {
            rc = print_ids(t, prompt, strlen(prompt), bos) == 0 ? 0 : 1;
        } else {
            size_t n;
            char *text = read_all(in, &n);
            rc = text && print_ids(t, text, n, bos) == 0 ? 0 : 1;
            free(text);
        }
    }
    if (in != stdin) fclose(in);
    rd_tokenizer_free(owned);
    rd_model_free(model);
    return rc;
}
