/* redit tui (and `redit` with no command): the ncurses workbench. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "redit/workbench.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit tui [-m MODEL] [--session NAME] [options]\n\n"
            "The workbench: configure RED edits, train with a live loss chart, chat with the\n"
            "base and the edited model side by side, and a Lua console (F1 in it lists the\n"
            "keys). Sessions are kept in sessions/NAME/ and restored with --session NAME:\n"
            "a restored session keeps its settings, runs, edits and chat; it finds its model\n"
            "by fingerprint, whatever the path (a moved model: give its new path with -m;\n"
            "another model is refused). A session that could not be saved (its folder\n"
            "unwritable, a bad name) is refused before anything starts.\n\n"
            "  -m, --model FILE       model: GGUF, Hugging Face folder or llama2.c .bin\n"
            "                         (default: the model the session records)\n"
            "      --tokenizer FILE   tokenizer.model, .bin or .json for a .bin model\n"
            "  -s, --session NAME     session to open or create (default: \"default\")\n"
            "      --sessions DIR     where sessions live (default: sessions)\n"
            "      --train FILE       training set of a new session (a restored one keeps its own)\n"
            "      --eval FILE        evaluation set of a new session\n"
            "  -t, --threads N        compute threads (default: all cores)\n"
            "      --init-set KEY=VALUE\n"
            "                         a setting of a NEW session only: a restored session keeps\n"
            "                         what it saved (make run seeds its session so); repeatable\n"
            "      --set KEY=VALUE    a setting (as in the configuration pane; wb.help() lists\n"
            "                         the keys), e.g. --set lr=0.01 --set sites=attn; applied\n"
            "                         over a restored session's settings too; repeatable\n"
            "      --stats FILE       write UI latency figures to FILE on exit\n"
            "  -h, --help             this text\n"
            "      --version          redit's version\n");
}

int cmd_tui(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"tokenizer", required_argument, 0, 'k'},
                                         {"session", required_argument, 0, 's'},
                                         {"sessions", required_argument, 0, 'R'},
                                         {"train", required_argument, 0, 'T'},
                                         {"eval", required_argument, 0, 'E'},
                                         {"threads", required_argument, 0, 'j'},
                                         {"stats", required_argument, 0, 'S'},
                                         {"set", required_argument, 0, 'V'},
                                         {"init-set", required_argument, 0, 'I'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    rd_workbench_args a = {0};
    enum { MAX_SETS = 64 };
    const char *sets[MAX_SETS], *init_sets[MAX_SETS];
    a.sets = sets;
    a.init_sets = init_sets;
    int c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:s:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a.model_path = optarg; break;
        case 'k': a.tokenizer_path = optarg; break;
        case 's': a.session = optarg; break;
        case 'R': a.sessions_root = optarg; break;
        case 'T': a.train_path = optarg; break;
        case 'E': a.eval_path = optarg; break;
        case 't':
        case 'j':
            if (cli_int("tui", "-t/--threads", optarg, 1, 1024, &a.threads)) return 2;
            break;
        case 'S': a.stats_path = optarg; break;
        case 'V':
            if (a.n_sets == MAX_SETS) {
                fprintf(stderr, "redit tui: at most %d --set options\n", MAX_SETS);
                return 2;
            }
            sets[a.n_sets++] = optarg;
            break;
        case 'I':
            if (a.n_init_sets == MAX_SETS) {
                fprintf(stderr, "redit tui: at most %d --init-set options\n", MAX_SETS);
                return 2;
            }
            init_sets[a.n_init_sets++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("tui", c, argv, opts);
        }
    }
    const int bad = cli_parse_end("tui", argc, argv, NULL, NULL);
    if (bad) return bad;
    rd_error err = {0};
    if (rd_workbench_check(&a, &err)) { /* before the terminal: scripts see it too */
        fprintf(stderr, "redit tui: %s\n", err.msg);
        return 2;
    }
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "redit tui: the workbench needs a terminal (use redit train / redit run "
                        "for scripts)\n");
        return 2;
    }
    cli_set_threads(a.threads);
    return rd_workbench_run(&a);
}
