/* redit session NAME: lists a saved workbench session's runs, prints a run's edits file,
 * makes a run the current edits or deletes one (no model needed). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "options.h"
#include "redit/train.h"
#include "redit/workbench.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit session NAME [--root DIR] [--edits N | --use N | --delete N]\n\n"
            "Lists the runs of the workbench session NAME (sessions/NAME/, as redit tui\n"
            "--session NAME keeps it): each run's id (#id on the chart, wb.runs() in the\n"
            "console), label, training steps, best evaluation loss (and accuracy on a\n"
            "classification set), how it ended, and its edits file, which redit export,\n"
            "chat and eval take with --edits. '*' marks the run whose edits are the\n"
            "session's current ones. No model is loaded. A damaged session is refused and\n"
            "left as it is (redit tui --session NAME moves it aside).\n\n"
            "      --root DIR   where sessions live (default: sessions; tui's --sessions)\n"
            "      --edits N    print the path of run N's edits file only, e.g.\n"
            "                   redit chat --edits \"$(redit session NAME --edits 2)\"\n"
            "      --use N      make run N's edits the session's current edits (as\n"
            "                   wb.use_run(N)); the session is saved as one unit\n"
            "      --delete N   delete run N: its curve and its edits file (as\n"
            "                   wb.delete_run(N)); the current edits stay as they are\n"
            "  -h, --help       this text\n"
            "      --version    redit's version\n\n"
            "Do not change a session that a workbench has open: its next save replaces it.\n"
            "Two runs side by side: redit chat (or generate) --edits FILE1 --edits-b FILE2.\n");
}

static const char *stopped_name(int stopped) {
    switch (stopped) {
    case RD_STOP_DONE: return "done";
    case RD_STOP_REQUESTED: return "stopped";
    case RD_STOP_NONFINITE: return "non-finite";
    default: return "unfinished";
    }
}

/* A run id: 1 to 10^9 in decimal; else -1. */
static int run_id(const char *text) {
    char *end;
    const long v = strtol(text, &end, 10);
    if (end == text || *end || v < 1 || v > 1000000000L) return -1;
    return (int)v;
}

int cmd_session(int argc, char **argv) {
    static const struct option opts[] = {{"root", required_argument, 0, 'R'},
                                         {"edits", required_argument, 0, 'e'},
                                         {"use", required_argument, 0, 'u'},
                                         {"delete", required_argument, 0, 'd'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *root = "sessions";
    int c, action = 0, id = 0;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'R': root = optarg; break;
        case 'e':
        case 'u':
        case 'd':
            if (action) {
                fprintf(stderr, "redit session: give one of --edits, --use and --delete\n");
                return 2;
            }
            action = c;
            if ((id = run_id(optarg)) < 0) {
                fprintf(stderr, "redit session: \"%s\" is not a run id (1, 2, ... as listed)\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("session", c, argv, opts);
        }
    }
    if (optind >= argc) return cli_usage_error("session", "a session NAME is required");
    if (optind + 1 < argc)
        return cli_usage_error("session", "unexpected argument '%s'", argv[optind + 1]);
    const char *name = argv[optind];
    rd_session_summary s;
    rd_error err = {0};
    if (action == 'e') {
        char path[1200];
        if (rd_session_run_edits(root, name, id, path, sizeof path, &err)) {
            fprintf(stderr, "redit session: %s\n", err.msg);
            return 1;
        }
        printf("%s\n", path);
        return 0;
    }
    if (action == 'u' || action == 'd') {
        if ((action == 'u' ? rd_session_use_run : rd_session_delete_run)(root, name, id, &err)) {
            fprintf(stderr, "redit session: %s\n", err.msg);
            return 1;
        }
        printf(action == 'u' ? "session %s: run #%d's edits are now the current ones\n"
                             : "session %s: run #%d deleted\n",
               name, id);
        return 0;
    }
    if (rd_session_summarize(root, name, &s, &err)) {
        fprintf(stderr, "redit session: %s\n", err.msg);
        return 1;
    }
    printf("session %s (%s/%s): model %s (fingerprint %s), %zu run(s), %zu chat turn(s)\n",
           name, root, name, s.model_path[0] ? s.model_path : "(none)",
           s.model_fingerprint[0] ? s.model_fingerprint : "none", s.n_runs, s.n_chat);
    if (s.n_runs) printf("   id  steps  best eval       ended       label / edits\n");
    for (size_t i = 0; i < s.n_runs; i++) {
        const rd_session_run *r = &s.runs[i];
        char best[48];
        rd_eval_best_text(r->best_eval_loss, r->best_eval_accuracy, best, sizeof best);
        printf("%s%4d  %5zu  %-14s  %-10s  %s\n", r->current ? "*" : " ", r->id, r->steps, best,
               stopped_name(r->stopped), r->label);
        if (r->model_path[0] && !r->edits_path[0]) printf("%32s  model: %s\n", "", r->model_path);
        else printf("%32s  edits: %s\n", "", r->edits_path[0] ? r->edits_path : "(none)");
    }
    rd_session_summary_release(&s);
    return 0;
}
