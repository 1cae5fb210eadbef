/* redit command line: the option groups several sub-commands share, parsed in one place
 * (cli layer).
 *
 * Each group has its getopt_long entries (a macro to put in the command's table), a struct the
 * values go into, and one handler: cli_X_option(cmd, c, arg, &args) returns 1 when c was one
 * of the group's options (stored), 0 when it was not, -1 on a bad value (already printed as
 * "redit CMD: ..."). The long-only codes below are above every short option character.
 *
 * Where a flag exists in llama.cpp too it has llama.cpp's spelling and meaning: -m/--model,
 * -t/--threads, -c/--ctx-size, -n/--n-predict, -p/--prompt, -f/--file (prompt file), --temp,
 * --top-k, --top-p, --repeat-penalty, --repeat-last-n, --seed, --version. Every command parses
 * with cli_getopt_begin() and a short-option string starting with ':', and ends its switch
 * with cli_option_end(): --version, and one-line errors for unknown options and missing
 * values (exit status 2). */
#ifndef REDIT_CLI_OPTIONS_H
#define REDIT_CLI_OPTIONS_H

#include <getopt.h>

#include "redit/dataset.h"
#include "redit/edits.h"
#include "redit/model.h"

enum {
    CLI_O_VERSION = 0x1000,                                           /* every command */
    CLI_O_TOKENIZER, CLI_O_THREADS, CLI_O_COMPUTE, CLI_O_BF16_WEIGHTS, /* model group */
    CLI_O_EDITS, CLI_O_STRENGTH, CLI_O_FORCE,                         /* edits group */
    CLI_O_FORMAT, CLI_O_TEMPLATE, CLI_O_SYSTEM, CLI_O_MAX_LEN, CLI_O_FULL_LOSS,
    CLI_O_SKIP_BAD_LINES,                                             /* data group */
    CLI_O_TEMP, CLI_O_TOP_K, CLI_O_TOP_P, CLI_O_REPEAT_PENALTY, CLI_O_REPEAT_LAST_N,
    CLI_O_NO_REPEAT_NGRAM, CLI_O_SEED, CLI_O_MAX_TOKENS_OLD,          /* generation group */
    CLI_O_FIRST_FREE                                                  /* a command's own codes */
};

/* --help and --version, in every command's table ('h' is the short -h). */
#define CLI_COMMON_LONG_OPTIONS                                                                \
    {"help", no_argument, 0, 'h'}, { "version", no_argument, 0, CLI_O_VERSION }

/* Resets getopt for a command's parse (optind = 1) and turns its own messages off: the
 * command's short-option string starts with ':' and cli_option_end says what went wrong. */
void cli_getopt_begin(void);

/* The default case of a command's option switch, for a code c that none of its handlers
 * took: --version prints "redit VERSION" on stdout and returns 0; an unknown option ('?'),
 * an ambiguous abbreviation or a missing value (':') prints one line naming it and "see
 * 'redit CMD --help'" on stderr and returns 2. argv and opts are the parse's. Returns the
 * command's exit status. */
int cli_option_end(const char *cmd, int c, char *const *argv, const struct option *opts);

/* A usage error in one line: "redit CMD: <message>; see 'redit CMD --help'" on stderr.
 * Returns 2 (the exit status). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The end of a parse: a stray argument, or the first required option not given, is a usage
 * error ("-m MODEL is required"). After argv come pairs (const char *value, const char *name)
 * ended by (NULL, NULL): value is what the option set (NULL when it was not given), name how
 * to ask for it. Returns 0 when all is there, else 2 (printed). */
int cli_parse_end(const char *cmd, int argc, char *const *argv, ...);

/* A deprecated spelling that still works for this release: one line on stderr, "redit CMD:
 * OLD is deprecated and goes in the next release; use NEW". */
void cli_deprecated(const char *cmd, const char *old_spelling, const char *new_spelling);

/* -m/--model FILE, --tokenizer FILE, -t/--threads N, --compute f32|bf16|auto,
 * --bf16-weights auto|packed|on-the-fly (-t needs "t:" in the command's short options; generate
 * and chat take their -t through cli_threads_short first) */
#define CLI_MODEL_LONG_OPTIONS                                                                 \
    {"model", required_argument, 0, 'm'}, {"tokenizer", required_argument, 0, CLI_O_TOKENIZER}, \
        {"threads", required_argument, 0, CLI_O_THREADS},                                       \
        {"compute", required_argument, 0, CLI_O_COMPUTE},                                       \
        {"bf16-weights", required_argument, 0, CLI_O_BF16_WEIGHTS}

typedef struct cli_model_args {
    const char *path;      /* -m; NULL until given */
    const char *tokenizer; /* llama2.c tokenizer.bin, or NULL */
    const char *compute;   /* NULL: f32 */
    const char *bf16_weights; /* NULL: auto (rd_bf16_weights_from_name) */
    int threads;           /* 0: one per core */
} cli_model_args;

int cli_model_option(const char *cmd, int c, const char *arg, cli_model_args *a);

/* -t in generate and chat, where it meant --temperature before this release: a whole number
 * of 1 or more is the thread count (as in llama.cpp); 0 or a fraction was surely meant as a
 * temperature and is refused with a pointer to --temp rather than silently read as threads.
 * Returns 1, or -1 (printed). */
int cli_threads_short(const char *cmd, const char *arg, cli_model_args *a);

/* Sets the thread count, loads the model and applies --compute (backward: also the packs
 * training needs). Prints "redit CMD: ..." and returns NULL on failure; the caller frees the
 * model with rd_model_free. */
rd_model *cli_open_model(const char *cmd, const cli_model_args *a, int backward);

/* --edits FILE, --strength A, --force */
#define CLI_EDITS_LONG_OPTIONS                                                                 \
    {"edits", required_argument, 0, CLI_O_EDITS},                                              \
        {"strength", required_argument, 0, CLI_O_STRENGTH}, {"force", no_argument, 0, CLI_O_FORCE}

typedef struct cli_edits_args {
    const char *path; /* NULL: the base model */
    float strength;   /* α, 1 unless given */
    int force;        /* accept edits made for another base model */
} cli_edits_args;

#define CLI_EDITS_ARGS_DEFAULT ((cli_edits_args){.strength = 1.0f})

int cli_edits_option(const char *cmd, int c, const char *arg, cli_edits_args *a);

/* The edits a->path names for m into *out (NULL without --edits). Prints "redit: ..." and
 * returns -1 on failure. The caller frees *out with rd_edits_free. With tmpl non-NULL, *tmpl
 * receives the chat template the edits were trained with (malloc'ed, the caller frees it) or
 * NULL when the file records none. */
int cli_open_edits(const cli_edits_args *a, const rd_model *m, rd_edits **out, char **tmpl);


/* The view of e at the args' strength; a zero view (the base model) when e is NULL. */
rd_edits_view cli_edits_view(const cli_edits_args *a, const rd_edits *e);

/* A --template argument: a built-in name or a custom template string as given, or, when it is
 * neither and names a readable file, that file's text (one final newline dropped) in *owned
 * (malloc'ed; the caller frees it). Returns the template (arg or *owned), or NULL when the
 * file cannot be read (printed). */
const char *cli_template_arg(const char *cmd, const char *arg, char **owned);

/* --format NAME, --template T, --system TEXT, --max-len N, --full-loss, --skip-bad-lines */
#define CLI_DATA_LONG_OPTIONS                                                                  \
    {"format", required_argument, 0, CLI_O_FORMAT},                                            \
        {"template", required_argument, 0, CLI_O_TEMPLATE},                                    \
        {"system", required_argument, 0, CLI_O_SYSTEM},                                        \
        {"max-len", required_argument, 0, CLI_O_MAX_LEN},                                      \
        {"full-loss", no_argument, 0, CLI_O_FULL_LOSS},                                        \
        {"skip-bad-lines", no_argument, 0, CLI_O_SKIP_BAD_LINES}

typedef struct cli_data_args {
    rd_data_opts opts;       /* rd_data_opts_defaults() plus what was given */
    const char *format_name; /* as given, NULL for auto */
    int max_len_given;       /* --max-len was given (else opts.max_len is the default) */
    char *template_owned;    /* a --template FILE's text (opts.template_name points to it) */
} cli_data_args;

#define CLI_DATA_ARGS_DEFAULT ((cli_data_args){.opts = rd_data_opts_defaults()})

int cli_data_option(const char *cmd, int c, const char *arg, cli_data_args *a);

/* Frees what cli_data_option allocated (a --template FILE's text). */
void cli_data_args_release(cli_data_args *a);

/* Caps the data's max length at m's context unless --max-len was given; a given length
 * beyond the context is refused (printed, -1). */
int cli_data_fit_context(const char *cmd, cli_data_args *a, const rd_model *m);

struct rd_gen_opts;

/* The generation options generate and chat share: -n/--n-predict N (also --predict; -1 or -2:
 * until the context is full), --temp T (also --temperature), --top-k, --top-p,
 * --repeat-penalty, --repeat-last-n N (0 = no penalty, -1 = the whole context, as in
 * llama.cpp), --no-repeat-ngram, --seed, -c/--ctx-size N (0 = the model's), and the
 * deprecated --max-tokens. Needs "n:c:" in the command's short options. */
#define CLI_GEN_LONG_OPTIONS                                                                   \
    {"n-predict", required_argument, 0, 'n'}, {"predict", required_argument, 0, 'n'},         \
        {"max-tokens", required_argument, 0, CLI_O_MAX_TOKENS_OLD},                            \
        {"temp", required_argument, 0, CLI_O_TEMP},                                            \
        {"temperature", required_argument, 0, CLI_O_TEMP},                                     \
        {"top-k", required_argument, 0, CLI_O_TOP_K},                                          \
        {"top-p", required_argument, 0, CLI_O_TOP_P},                                          \
        {"repeat-penalty", required_argument, 0, CLI_O_REPEAT_PENALTY},                        \
        {"repeat-last-n", required_argument, 0, CLI_O_REPEAT_LAST_N},                          \
        {"no-repeat-ngram", required_argument, 0, CLI_O_NO_REPEAT_NGRAM},                      \
        {"seed", required_argument, 0, CLI_O_SEED}, {"ctx-size", required_argument, 0, 'c'}

typedef struct cli_gen_args {
    struct rd_gen_opts *gen; /* sampling and max_tokens are written here (borrowed) */
    int until_full;          /* -n -1 or -2: until the context is full */
    int repeat_last_n;       /* as given; -2 when not given */
    int ctx;                 /* -c; 0: the model's context */
} cli_gen_args;

#define CLI_GEN_ARGS(g) ((cli_gen_args){.gen = (g), .repeat_last_n = -2})

int cli_gen_option(const char *cmd, int c, const char *arg, cli_gen_args *a);

/* After the parse and once the model is open: the context length to run with (-c, capped at
 * m's with a note), -n -1 as that length, --repeat-last-n in the engine's terms. Returns the
 * context length. */
int cli_gen_finish(const char *cmd, cli_gen_args *a, const rd_model *m);

#endif
