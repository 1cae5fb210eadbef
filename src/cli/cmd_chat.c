/* redit chat: a line-mode multi-turn chat on readline. Each turn renders the whole
 * conversation with the chat template (chat_format.h: the ids training uses) and streams
 * the reply; with --compare the base and the edited model answer in turn, each continuing
 * its own conversation (with --edits-b: the two edit sets). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "cli.h"
#include "options.h"
#include "line_input.h"
#include "redit/buf.h"
#include "redit/chat_format.h"
#include "redit/edits.h"
#include "redit/generate.h"
#include "redit/tokenizer.h"

static void usage(FILE *out) {
    rd_sampling d = rd_sampling_defaults();
    fprintf(out,
            "usage: redit chat -m MODEL [--edits FILE [--compare | --edits-b FILE]] [options]\n\n"
            "A multi-turn chat in the terminal. Each turn renders the conversation so far with\n"
            "the chat template and streams the model's reply; the reply ends at the end of\n"
            "text or where the template's next turn would begin. Ctrl-C stops a reply.\n"
            "Commands: /reset (forget the conversation), /help, /quit (or Ctrl-D).\n\n"
            "  -m, --model FILE          model: GGUF, Hugging Face folder or llama2.c .bin, with\n"
            "                            a tokenizer\n"
            "      --template T          llama2-chat (default; or the edit file's training\n"
            "                            template), red, plain, alpaca, a custom string with\n"
            "                            {prompt} and {answer}, or a file holding one\n"
            "      --system TEXT         system prompt (first turn)\n"
            "      --edits FILE          apply edits: a redit edit file (RED, LoRA, IA3), a PEFT\n"
            "                            adapter folder or a llama.cpp LoRA GGUF\n"
            "      --strength A          edit strength α (default 1)\n"
            "      --compare             each turn: the base model's answer, then the edited one\n"
            "      --edits-b FILE        compare two edit sets (implies --compare): each turn,\n"
            "                            the answer with --edits FILE, then the one with these\n"
            "                            (same strength; the template of --edits FILE), each\n"
            "                            titled with its file and continuing its own\n"
            "                            conversation\n"
            "      --force               load edits made for another base model\n"
            "  -n, --n-predict N         tokens per reply at most (default 256)\n"
            "  -c, --ctx-size N          context length (default 0: the model's)\n"
            "      --temp T              temperature, 0 = greedy (default %g)\n"
            "      --top-k K             (default %d)\n"
            "      --top-p P             (default %g)\n"
            "      --repeat-penalty R    (default %g)\n"
            "      --repeat-last-n N     the penalty's window (default %d; 0 = no penalty,\n"
            "                            -1 = the whole context)\n"
            "      --no-repeat-ngram N   (default %d)\n"
            "      --seed S              random seed of the first turn; turn k uses S + k\n"
            "                            (default %llu)\n"
            "      --tokenizer FILE      tokenizer.model, tokenizer.bin or tokenizer.json (default: beside the model)\n"
            "  -t, --threads N           compute threads (default: all cores; -t was the\n"
            "                            temperature before this release: now --temp)\n"
            "      --compute C           auto (default), bf16 or f32: auto and bf16 decode\n"
            "                            quantized weights with 8-bit activation products\n"
            "                            (as llama.cpp; logits move ~1-2 %% of their range)\n"
            "                            and use bf16 prompt products where the CPU has\n"
            "                            AVX512-BF16; f32 is the reference numerics\n"
            "  -h, --help                this text\n"
            "      --version             redit's version\n",
            (double)d.temperature, d.top_k, (double)d.top_p, (double)d.repeat_penalty,
            d.repeat_last_n, d.no_repeat_ngram, (unsigned long long)d.seed);
}

static const char HELP[] =
    "/reset   forget the conversation (both of them with --compare)\n"
    "/help    this text\n"
    "/quit    leave (Ctrl-D too)\n"
    "Ctrl-C stops a reply. Start a message with // to send a text beginning with /.\n";

/* One conversation: the finished exchanges (strings owned). */
typedef struct convo {
    rd_chat_exchange *ex; /* (cap) n used */
    size_t n, cap;
} convo;

static void convo_drop_first(convo *c) {
    if (c->n == 0) return;
    free((char *)c->ex[0].user);
    free((char *)c->ex[0].assistant);
    memmove(c->ex, c->ex + 1, (c->n - 1) * sizeof *c->ex);
    c->n--;
}

static void convo_clear(convo *c) {
    while (c->n) convo_drop_first(c);
}

static void convo_free(convo *c) {
    convo_clear(c);
    free(c->ex);
    c->ex = NULL;
    c->cap = 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static int convo_add(convo *c, const char *user, const char *assistant) {
    if (rd_array_reserve(&c->ex, &c->cap, c->n + 1, sizeof *c->ex)) return -1;
    char *u = dup_str(user), *a = dup_str(assistant);
    if (!u || !a) {
        free(u);
        free(a);
        return -1;
    }
    c->ex[c->n++] = (rd_chat_exchange){u, a};
    return 0;
}

/* Everything a chat session uses. */
typedef struct chat {
    rd_model *model;
    rd_ctx *ctx;
    rd_edits *edits, *edits_b;
    rd_edits_view view, view_b;
    const rd_edits_view *side_view[2]; /* the edits each conversation answers with */
    const char *title[2];              /* the compared answers' titles */
    const char *tmpl;   /* template name or text */
    char *tmpl_owned;   /* the edit file's template, when taken from there */
    char *tmpl_file;    /* a --template FILE's text */
    const char *system;
    rd_gen_opts gen;
    uint64_t seed;
    int compare;
    int turn;           /* exchanges so far (the seed of a turn is seed + turn) */
    convo side[2];      /* [0] base (--edits-b: --edits), [1] edited (--edits-b) */
    rd_chat_filter *filter;
} chat;

static int on_token(void *user, int token, const char *text, size_t len) {
    (void)token;
    rd_chat_filter *f = user;
    const char *show;
    size_t n;
    int rc = rd_chat_filter_push(f, text, len, &show, &n);
    if (n) {
        fwrite(show, 1, n, stdout);
        fflush(stdout);
    }
    return rc != 0 || cli_input_interrupted();
}

/* The prompt ids for `user` after conversation c, leaving the oldest exchanges out while
 * the prompt and `room` tokens for the reply do not fit the context. A message that does not
 * fit even alone is refused and the conversation kept. */
static int fit_prompt(chat *ch, convo *c, const char *user, int **ids, size_t *n) {
    const rd_tokenizer *tok = rd_model_tokenizer(ch->model);
    size_t max_seq = (size_t)rd_ctx_max_seq(ch->ctx);
    size_t room = (size_t)ch->gen.max_tokens < max_seq / 2 ? (size_t)ch->gen.max_tokens : max_seq / 2;
    rd_error err = {0};
    for (size_t skip = 0;; skip++) {
        if (rd_chat_prompt_ids(tok, ch->tmpl, ch->system, c->ex + skip, c->n - skip, user, ids,
                               n, &err)) {
            fprintf(stderr, "redit %s\n", err.msg);
            return -1;
        }
        if (*n + room <= max_seq || (skip == c->n && *n < max_seq)) {
            for (size_t i = 0; i < skip; i++) convo_drop_first(c);
            if (skip)
                fprintf(stderr, "(the conversation outgrew the context of %zu tokens: its %zu "
                                "oldest exchange%s left out)\n",
                        max_seq, skip, skip == 1 ? " is" : "s are");
            return 0;
        }
        free(*ids);
        *ids = NULL;
        if (skip == c->n) {
            fprintf(stderr, "redit chat: the message takes %zu tokens; the context holds %zu\n",
                    *n, max_seq);
            return -1;
        }
    }
}

/* One reply to `user` in conversation `which` (0 base, 1 edited; with --edits-b the two edit
 * sets), streamed, then added to
 * the conversation. Returns 0, or -1 when the turn could not run (the message is dropped). */
static int reply(chat *ch, int which, const char *user) {
    convo *c = &ch->side[which];
    int *ids = NULL;
    size_t n = 0;
    if (fit_prompt(ch, c, user, &ids, &n)) return -1;
    rd_gen_opts g = ch->gen;
    g.sampling.seed = ch->seed + (uint64_t)ch->turn;
    rd_chat_filter_reset(ch->filter);
    cli_input_clear_interrupt();
    rd_error err = {0};
    rd_gen_stats st = {0};
    int rc = rd_generate(ch->ctx, ch->side_view[which], ids, n, &g, on_token, ch->filter,
                         NULL, &st, &err);
    free(ids);
    const char *show;
    size_t len;
    rd_chat_filter_finish(ch->filter, &show, &len);
    fwrite(show, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (rc) {
        fprintf(stderr, "redit %s\n", err.msg);
        return -1;
    }
    if (cli_input_interrupted() && !rd_chat_filter_stopped(ch->filter))
        fprintf(stderr, "(reply stopped)\n");
    else if (st.stopped_by == 0 || st.stopped_by == 3)
        fprintf(stderr, "(reply cut at %d tokens: %s)\n", st.n_generated,
                st.stopped_by ? "the context is full" : "--max-tokens");
    cli_input_clear_interrupt();
    if (convo_add(c, user, rd_chat_filter_reply(ch->filter))) {
        fprintf(stderr, "redit chat: out of memory\n");
        return -1;
    }
    return 0;
}

/* A user message: one reply, or with --compare the base then the edited one (--edits-b: the
 * two edit sets). */
static void turn(chat *ch, const char *user) {
    if (!ch->compare) {
        reply(ch, ch->edits ? 1 : 0, user);
    } else {
        for (int which = 0; which < 2; which++) {
            printf("%s── %s ──\n", which ? "\n" : "", ch->title[which]);
            fflush(stdout);
            if (reply(ch, which, user)) break;
        }
    }
    ch->turn++;
}

/* Handles a line starting with '/'. Returns 1 to quit. */
static int command(chat *ch, const char *line) {
    char name[16];
    size_t k = 0;
    while (line[k] && line[k] != ' ' && k + 1 < sizeof name) {
        name[k] = line[k];
        k++;
    }
    name[k] = '\0';
    if (!strcmp(name, "/quit") || !strcmp(name, "/exit") || !strcmp(name, "/q")) return 1;
    if (!strcmp(name, "/help") || !strcmp(name, "/?")) {
        fputs(HELP, stdout);
    } else if (!strcmp(name, "/reset")) {
        convo_clear(&ch->side[0]);
        convo_clear(&ch->side[1]);
        ch->turn = 0;
        printf("(conversation cleared)\n");
    } else {
        printf("unknown command %s: /help lists the commands\n", name);
    }
    fflush(stdout);
    return 0;
}

/* Without/with surrounding whitespace: the message text in line (modified). */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Tab completes the /commands and nothing else (no file names). */
static char *command_names(const char *text, int state) {
    static const char *const names[] = {"/help", "/quit", "/reset"};
    static size_t next;
    if (!state) next = 0;
    while (next < sizeof names / sizeof *names) {
        const char *n = names[next++];
        if (!strncmp(n, text, strlen(text))) return dup_str(n);
    }
    return NULL;
}

static char **complete(const char *text, int start, int end) {
    (void)end;
    rl_attempted_completion_over = 1;
    return start == 0 && text[0] == '/' ? rl_completion_matches(text, command_names) : NULL;
}

static void loop(chat *ch) {
    if (cli_input_is_tty())
        fprintf(stderr, "chat with %s%s — /help for the commands, Ctrl-D to leave\n",
                ch->model->file.name[0] ? ch->model->file.name : ch->model->path,
                ch->edits_b ? " (two edit sets)" : ch->compare ? " (base, then edited)"
                : ch->edits ? " (edited)" : "");
    rl_attempted_completion_function = complete;
    for (;;) {
        char *line = NULL;
        cli_in_status st = cli_input_read("you> ", &line);
        if (st == CLI_IN_EOF) break;
        if (st == CLI_IN_INTERRUPTED) continue;
        char *msg = trim(line);
        int quit = 0;
        if (*msg) {
            if (cli_input_is_tty()) add_history(msg);
            if (msg[0] == '/' && msg[1] != '/') quit = command(ch, msg);
            else turn(ch, msg[0] == '/' ? msg + 1 : msg);
        }
        free(line);
        if (quit) break;
    }
}

static int load_edits(chat *ch, const char *path, int force, float strength, int tmpl_given) {
    char *json = NULL;
    if (!(ch->edits = cli_load_edits(path, ch->model, force, &json))) return -1;
    ch->view = rd_edits_view_at(ch->edits, strength);
    if (!tmpl_given && (ch->tmpl_owned = rd_edits_training_template(json))) {
        ch->tmpl = ch->tmpl_owned;
        fprintf(stderr, "(template \"%s\", as the edits were trained with)\n", ch->tmpl);
    }
    free(json);
    return 0;
}

/* The second edit set of --edits-b (the template stays the first set's: a note when this one
 * was trained with another). */
static int load_edits_b(chat *ch, const char *path, const cli_edits_args *ea, int tmpl_given) {
    char *json = NULL;
    if (!(ch->edits_b = cli_load_edits(path, ch->model, ea->force, &json))) return -1;
    ch->view_b = rd_edits_view_at(ch->edits_b, ea->strength);
    char *tmpl = tmpl_given ? NULL : rd_edits_training_template(json);
    if (tmpl && strcmp(tmpl, ch->tmpl))
        fprintf(stderr, "(%s was trained with the template \"%s\"; both answer with \"%s\": "
                        "--template chooses)\n", path, tmpl, ch->tmpl);
    free(tmpl);
    free(json);
    return 0;
}

static void chat_release(chat *ch) {
    convo_free(&ch->side[0]);
    convo_free(&ch->side[1]);
    rd_chat_filter_free(ch->filter);
    rd_edits_free(ch->edits);
    rd_edits_free(ch->edits_b);
    free(ch->tmpl_owned);
    free(ch->tmpl_file);
    rd_ctx_free(ch->ctx);
    rd_model_free(ch->model);
}

/* Model, context, edits and reply filter; the template checked. */
static int chat_setup(chat *ch, const cli_model_args *ma, const cli_edits_args *ea,
                      const char *edits_b, int tmpl_given, cli_gen_args *ga) {
    rd_error err = {0};
    if (!(ch->model = cli_open_model("chat", ma, 0))) return -1;
    if (!rd_model_tokenizer(ch->model)) {
        fprintf(stderr, "redit chat: %s has no tokenizer; chat needs one (give --tokenizer "
                        "FILE)\n", ma->path);
        return -1;
    }
    if (ea->path && load_edits(ch, ea->path, ea->force, ea->strength, tmpl_given)) return -1;
    if (edits_b && load_edits_b(ch, edits_b, ea, tmpl_given)) return -1;
    ch->side_view[0] = ch->edits_b ? &ch->view : NULL;
    ch->side_view[1] = ch->edits_b ? &ch->view_b : &ch->view;
    ch->title[0] = ch->edits_b ? ea->path : "base";
    ch->title[1] = ch->edits_b ? edits_b : "edited";
    char *stop = rd_chat_turn_start(ch->tmpl, &err);
    if (!stop) {
        fprintf(stderr, "redit %s\n", err.msg);
        return -1;
    }
    ch->filter = rd_chat_filter_new(stop);
    free(stop);
    ch->ctx = rd_ctx_new(ch->model, 1, cli_gen_finish("chat", ga, ch->model), &err);
    if (!ch->filter || !ch->ctx) {
        fprintf(stderr, "redit chat: %s\n", ch->ctx ? "out of memory" : err.msg);
        return -1;
    }
    return 0;
}

int cmd_chat(int argc, char **argv) {
    enum { O_COMPARE = CLI_O_FIRST_FREE, O_EDITS_B };
    static const struct option opts[] = {
        CLI_MODEL_LONG_OPTIONS, CLI_EDITS_LONG_OPTIONS, CLI_GEN_LONG_OPTIONS,
        {"compare", no_argument, 0, O_COMPARE},    {"edits-b", required_argument, 0, O_EDITS_B},
        {"template", required_argument, 0, CLI_O_TEMPLATE},
        {"system", required_argument, 0, CLI_O_SYSTEM}, CLI_COMMON_LONG_OPTIONS, {0, 0, 0, 0}};
    chat ch = {.gen = {.sampling = rd_sampling_defaults(), .max_tokens = 256, .stop_at_eos = 1}};
    cli_gen_args ga = CLI_GEN_ARGS(&ch.gen);
    cli_model_args ma = {.compute = "auto"};
    cli_edits_args ea = CLI_EDITS_ARGS_DEFAULT;
    const char *edits_b = NULL;
    int c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:n:t:c:h", opts, NULL)) != -1) {
        int got = c == 't' ? cli_threads_short("chat", optarg, &ma) : 0;
        if (!got) got = cli_gen_option("chat", c, optarg, &ga);
        if (!got) got = cli_model_option("chat", c, optarg, &ma);
        if (!got) got = cli_edits_option("chat", c, optarg, &ea);
        if (got < 0) return 2;
        if (got) continue;
        switch (c) {
        case O_COMPARE: ch.compare = 1; break;
        case O_EDITS_B: edits_b = optarg, ch.compare = 1; break;
        case CLI_O_TEMPLATE:
            free(ch.tmpl_file);
            if (!(ch.tmpl = cli_template_arg("chat", optarg, &ch.tmpl_file))) return 2;
            break;
        case CLI_O_SYSTEM: ch.system = optarg; break;
        case 'h': free(ch.tmpl_file); usage(stdout); return 0;
        default: free(ch.tmpl_file); return cli_option_end("chat", c, argv, opts);
        }
    }
    int bad = 0;
    if (optind != argc) bad = cli_usage_error("chat", "unexpected argument '%s'", argv[optind]);
    else if (!ma.path) bad = cli_usage_error("chat", "-m MODEL is required");
    else if (ch.compare && !ea.path)
        bad = cli_usage_error("chat", "%s needs --edits", edits_b ? "--edits-b" : "--compare");
    else if (ch.tmpl && !strcmp(ch.tmpl, "none"))
        bad = cli_usage_error("chat", "chat needs a template (--template none is generate's)");
    if (bad) {
        free(ch.tmpl_file);
        return bad;
    }
    ch.seed = ch.gen.sampling.seed;
    int tmpl_given = ch.tmpl != NULL;
    if (!ch.tmpl) ch.tmpl = "llama2-chat";
    int rc = 1;
    if (chat_setup(&ch, &ma, &ea, edits_b, tmpl_given, &ga) == 0) {
        cli_input_begin("redit-chat");
        loop(&ch);
        cli_input_end();
        rc = 0;
    }
    chat_release(&ch);
    return rc;
}
