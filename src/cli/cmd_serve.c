/* redit serve: the OpenAI-compatible HTTP server (include/redit/serve.h) until SIGTERM or
 * SIGINT. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "redit/serve.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit serve -m MODEL [--edits NAME=FILE ...] [options]\n\n"
            "An OpenAI-compatible HTTP API: POST /v1/completions, POST /v1/chat/completions\n"
            "(streaming with \"stream\": true), GET /v1/models, and edit sets added and removed\n"
            "while it runs (POST /v1/edits {\"name\", \"path\"}, DELETE /v1/edits/NAME). A\n"
            "request's \"model\" picks the edit set (the base model's id: no edits) and\n"
            "\"edit_strength\" its strength α. Sequences of every edit set are decoded together.\n"
            "SIGTERM or SIGINT: stop accepting, let running requests finish (--grace), exit 0.\n\n"
            "  -m, --model FILE        model: GGUF, Hugging Face folder or llama2.c .bin\n"
            "      --edits NAME=FILE   serve an edit file as model NAME (repeatable)\n"
            "      --force             load edits made for another base model\n"
            "      --alias ID          the base model's id (default: the model file's name)\n"
            "      --host ADDR         address to listen on (default 127.0.0.1)\n"
            "      --port N            port (default 8080; 0: any free port, printed)\n"
            "  -np, --parallel N       sequences decoded at once (default 4)\n"
            "      --queue N           requests waiting for a sequence at most, beyond: 429\n"
            "                          (default 64)\n"
            "  -c, --ctx N             context of each sequence (default: the model's)\n"
            "      --max-tokens N      the most tokens a request may ask for (default: the\n"
            "                          context); chat's default\n"
            "      --max-body BYTES    request body size limit, beyond: 413 (default 1048576)\n"
            "      --api-key KEY       require \"Authorization: Bearer KEY\" (default: none;\n"
            "                          also from REDIT_API_KEY)\n"
            "      --template T        chat template of the base model (default llama2-chat;\n"
            "                          an edit set uses the one it was trained with)\n"
            "      --grace SECONDS     on SIGTERM, how long running requests may finish\n"
            "                          before they are cancelled (default 10)\n"
            "      --tokenizer FILE    tokenizer.model, tokenizer.bin or tokenizer.json\n"
            "  -t, --threads N         compute threads (default: all cores)\n"
            "      --compute C         auto (default), bf16 or f32 (as in redit generate)\n"
            "  -h, --help              this text\n"
            "      --version           redit's version\n");
}

static void log_line(void *user, const char *line) {
    (void)user;
    fprintf(stderr, "redit serve: %s\n", line);
}

typedef struct edits_arg {
    char *name;
    const char *path;
} edits_arg;

/* The base model's id: the file name without its folder and extension. */
static void default_alias(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b && b[1] ? b + 1 : path;
    snprintf(out, cap, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
    if (!out[0]) snprintf(out, cap, "base");
}

int cmd_serve(int argc, char **argv) {
    enum { O_EDITS = CLI_O_FIRST_FREE, O_ALIAS, O_HOST, O_PORT, O_PARALLEL, O_QUEUE, O_CTX,
           O_MAX_TOKENS, O_MAX_BODY, O_API_KEY, O_GRACE };
    static const struct option opts[] = {
        CLI_MODEL_LONG_OPTIONS,
        {"edits", required_argument, 0, O_EDITS}, {"force", no_argument, 0, CLI_O_FORCE},
        {"alias", required_argument, 0, O_ALIAS}, {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT}, {"parallel", required_argument, 0, O_PARALLEL},
        {"np", required_argument, 0, O_PARALLEL}, {"queue", required_argument, 0, O_QUEUE},
        {"ctx", required_argument, 0, O_CTX}, {"ctx-size", required_argument, 0, O_CTX},
        {"max-tokens", required_argument, 0, O_MAX_TOKENS},
        {"max-body", required_argument, 0, O_MAX_BODY},
        {"api-key", required_argument, 0, O_API_KEY},
        {"template", required_argument, 0, CLI_O_TEMPLATE},
        {"grace", required_argument, 0, O_GRACE}, CLI_COMMON_LONG_OPTIONS, {0, 0, 0, 0}};
    cli_model_args ma = {.compute = "auto"};
    rd_server_opts so = {.port = 8080, .parallel = 4, .queue = 64, .max_body = 1 << 20,
                         .log = log_line};
    edits_arg *ed = NULL;
    int n_ed = 0, force = 0, rc = 2;
    double grace = 10;
    char *tmpl_owned = NULL;
    char alias[128];
    int c;
    for (int i = 1; i < argc; i++) /* llama.cpp's -np */
        if (!strcmp(argv[i], "-np")) argv[i] = "--parallel";
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:t:c:h", opts, NULL)) != -1) {
        int got = cli_model_option("serve", c, optarg, &ma);
        if (got < 0) goto out;
        if (got) continue;
        switch (c) {
        case O_EDITS: {
            const char *eq = strchr(optarg, '=');
            edits_arg *grown = realloc(ed, sizeof *ed * (size_t)(n_ed + 1));
            if (!grown) goto out;
            ed = grown;
            if (!eq || eq == optarg || !eq[1]) {
                rc = cli_usage_error("serve", "--edits takes NAME=FILE, not \"%s\"", optarg);
                goto out;
            }
            ed[n_ed].name = strndup(optarg, (size_t)(eq - optarg));
            ed[n_ed++].path = eq + 1;
            break;
        }
        case CLI_O_FORCE: force = 1; break;
        case O_ALIAS: so.model_id = optarg; break;
        case O_HOST: so.host = optarg; break;
        case O_PORT:
            if (cli_int("serve", "--port", optarg, 0, 65535, &so.port)) goto out;
            break;
        case O_PARALLEL:
            if (cli_int("serve", "--parallel", optarg, 1, 1024, &so.parallel)) goto out;
            break;
        case O_QUEUE:
            if (cli_int("serve", "--queue", optarg, 0, 1 << 20, &so.queue)) goto out;
            break;
        case 'c':
        case O_CTX:
            if (cli_int("serve", "--ctx", optarg, 0, 1 << 24, &so.ctx)) goto out;
            break;
        case O_MAX_TOKENS:
            if (cli_int("serve", "--max-tokens", optarg, 1, 1 << 24, &so.max_tokens)) goto out;
            break;
        case O_MAX_BODY: {
            double v;
            if (cli_double("serve", "--max-body", optarg, 64, 1e12, &v)) goto out;
            so.max_body = (size_t)v;
            break;
        }
        case O_API_KEY: so.api_key = optarg; break;
        case CLI_O_TEMPLATE:
            free(tmpl_owned);
            if (!(so.chat_template = cli_template_arg("serve", optarg, &tmpl_owned))) goto out;
            break;
        case O_GRACE:
            if (cli_double("serve", "--grace", optarg, 0, 3600, &grace)) goto out;
            break;
        case 'h': usage(stdout); rc = 0; goto out;
        default: rc = cli_option_end("serve", c, argv, opts); goto out;
        }
    }
    if ((rc = cli_parse_end("serve", argc, argv, ma.path, "-m MODEL", NULL, NULL))) goto out;
    const char *step_delay = getenv("REDIT_SERVE_STEP_DELAY_MS"); /* tests only: see rd_server_opts */
    if (step_delay) so.step_delay_ms = atoi(step_delay);
    const char *env_key = getenv("REDIT_API_KEY");
    if (!so.api_key && env_key && env_key[0]) so.api_key = env_key;
    if (!so.model_id) {
        default_alias(ma.path ? ma.path : "", alias, sizeof alias); /* -m is checked above */
        so.model_id = alias;
    }
    /* SIGTERM and SIGINT go to the waiting main thread: blocked before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = 1;
    rd_error err = {0};
    rd_model *m = cli_open_model("serve", &ma, 0);
    rd_server *s = m ? rd_server_new(m, &so, &err) : NULL;
    if (m && !s) fprintf(stderr, "redit serve: %s\n", err.msg);
    for (int i = 0; s && i < n_ed; i++)
        if (rd_server_add_edits(s, ed[i].name, ed[i].path, force, &err)) {
            fprintf(stderr, "redit serve: --edits %s=%s: %s\n", ed[i].name, ed[i].path, err.msg);
            goto stop;
        }
    if (s && rd_server_start(s, &err)) {
        fprintf(stderr, "redit serve: %s\n", err.msg);
        goto stop;
    }
    if (s) {
        fprintf(stderr, "redit serve: listening on http://%s:%d (model \"%s\", %d edit set%s, "
                        "%d parallel, context %d)\n",
                so.host ? so.host : "127.0.0.1", rd_server_port(s), so.model_id, n_ed,
                n_ed == 1 ? "" : "s", so.parallel, rd_model_config(m)->seq_len < so.ctx || !so.ctx
                                                       ? rd_model_config(m)->seq_len : so.ctx);
        int sig = 0;
        sigwait(&sigs, &sig);
        fprintf(stderr, "redit serve: %s: no new connections; running requests get %g s\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM", grace);
        const int cancelled = rd_server_stop(s, grace);
        fprintf(stderr, "redit serve: stopped (%d request%s cancelled)\n", cancelled,
                cancelled == 1 ? "" : "s");
        rc = 0;
    }
stop:
    rd_server_free(s);
    rd_model_free(m);
out:
    for (int i = 0; i < n_ed; i++) free(ed[i].name);
    free(ed);
    free(tmpl_owned);
    return rc;
}
