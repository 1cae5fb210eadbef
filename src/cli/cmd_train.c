/* redit train: RED edit vectors on a frozen model, with a live progress line, CSV logging
 * and Ctrl-C that stops at the next step and still writes the best edits. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "redit/atomic_file.h"
#include "redit/backward.h"
#include "redit/dataset.h"
#include "redit/edits.h"
#include "redit/model_file.h"
#include "redit/train.h"

/* Ctrl-C, the one piece of global state (a signal handler has no user pointer): g_stop is the
 * trainer's stop flag; the others say what the handler prints and what a press does. */
static atomic_int g_stop;
static volatile sig_atomic_t g_has_eval; /* the run has a held-out set */
static volatile sig_atomic_t g_tty;      /* stderr is a terminal (the progress line is live) */
static volatile sig_atomic_t g_writing;  /* training is over and the results are being written */

/* Prints a message from the handler (write(2) is async-signal-safe): on a terminal it
 * replaces the progress line. */
static void say(const char *msg) {
    if (g_tty && write(STDERR_FILENO, "\r\033[K", 4) < 0) return;
    if (write(STDERR_FILENO, msg, strlen(msg)) < 0) return;
}

/* First press: stop after this step and evaluate it (Ctrl-C again skips that); second: skip
 * the evaluation, keeping the best edits evaluated so far; third: quit at once, writing
 * nothing. While the results are written, Ctrl-C is ignored (never a half-written run). */
static void on_sigint(int sig) {
    (void)sig;
    if (g_writing) {
        say("redit train: writing the results; Ctrl-C waits until they are written\n");
        return;
    }
    const int level = atomic_load(&g_stop);
    if (level >= RD_STOP_SKIP_EVAL) {
        say("redit train: interrupted: quit without writing the edits\n");
        _exit(130);
    }
    if (level == 0 && g_has_eval) {
        atomic_store(&g_stop, RD_STOP_AT_STEP);
        say("stopping: evaluating… (Ctrl-C again to skip)\n");
    } else { /* nothing left to evaluate */
        atomic_store(&g_stop, RD_STOP_SKIP_EVAL);
        say(g_has_eval ? "stopping: evaluation skipped, keeping the best edits evaluated so far "
                         "(Ctrl-C again to quit without writing)\n"
                       : "stopping after this step (Ctrl-C again to quit without writing)\n");
    }
}

static void usage(FILE *out) {
    rd_train_opts d = rd_train_opts_defaults();
    fprintf(out,
            "usage: redit train -m MODEL -d TRAIN.jsonl -o EDITS.safetensors [options]\n\n"
            "Trains RED edit vectors (h' = s ⊙ h + b on sub-layer outputs) on a frozen model.\n"
            "Ctrl-C stops at the next step, evaluates it and writes the best edits so far (exit\n"
            "status 130); Ctrl-C again skips that evaluation, a third time quits at once.\n\n"
            "data\n"
            "  -d, --data FILE         training set (JSONL: alpaca, chat, prompt-completion,\n"
            "                          ultrafeedback, classification; or plain text)\n"
            "      --eval FILE         held-out set, evaluated every epoch (best edits kept)\n"
            "      --eval-split F      hold out this fraction of the training set instead\n"
            "      --format NAME       auto (default), alpaca, chat, prompt-completion,\n"
            "                          ultrafeedback, text, classification\n"
            "      --template T        llama2-chat, alpaca, plain, red, a custom string with\n"
            "                          {prompt} and {answer}, or a file holding one (default:\n"
            "                          alpaca; plain for text and classification); the edit\n"
            "                          file records it for chat, generate and eval\n"
            "      --system TEXT       system prompt for templates that have one\n"
            "      --max-len N         tokens per example (default %d)\n"
            "      --full-loss         loss on the whole sequence (default: answer tokens only)\n"
            "      --skip-bad-lines    skip and count malformed lines instead of failing\n"
            "      --pack              pack several examples per row\n"
            "      --group-by-length   batches of examples of similar length (less padding)\n"
            "edits\n"
            "      --method M          red (default), lora, ia3 or full (= --full)\n"
            "      --sites S           red: ffn (default), attn or both\n"
            "      --layers L          all (default) or a list like 0-5,9\n"
            "      --no-scale          train the bias only\n"
            "      --no-bias           train the scale only\n"
            "      --rank R            lora: rank r (default 8)\n"
            "      --lora-alpha A      lora: the alpha of alpha/r (default 8)\n"
            "      --lora-targets T    lora: projections among q,k,v,o,gate,up,down or all\n"
            "                          (default q,v)\n"
            "      --lora-dropout P    lora: dropout on the LoRA input in training (default 0)\n"
            "      --init EDITS        start from this edit file's vectors (its sites, layers\n"
            "                          and kinds) instead of the identity edit: train on, or\n"
            "                          adapt trained edits to new data (AdamW starts afresh)\n"
            "      --force             with --init: accept edits made for another base model\n"
            "      --full              full fine-tuning instead (every weight; the paper's FT\n"
            "                          baseline): -o then writes the whole model as GGUF (F32)\n"
            "optimisation\n"
            "      --lr X              peak learning rate (default %g)\n"
            "      --epochs N          (default %d)\n"
            "      --batch N           examples per step (default %d)\n"
            "      --micro-batch N     examples per forward/backward (default: the batch)\n"
            "      --schedule S        linear (default), cosine or constant\n"
            "      --warmup R          warm-up fraction of the steps (default %g)\n"
            "      --weight-decay W    towards the identity edit (default %g)\n"
            "      --clip C            gradient-norm clip, 0 = off (default %g)\n"
            "      --dropout P         drop each sub-layer output element with probability P\n"
            "                          in training passes (a regulariser for pretraining and\n"
            "                          full fine-tuning on small data; default 0)\n"
            "      --beta1 B           AdamW's first-moment decay (default %g)\n"
            "      --beta2 B           AdamW's second-moment decay (default %g; pretraining\n"
            "                          often uses 0.95 against loss spikes)\n"
            "      --seed S            (default %llu)\n"
            "      --eval-every N      evaluate every N steps (default: every epoch)\n"
            "      --max-steps N       stop after N steps\n"
            "      --checkpointing     recompute activations in backward (less memory)\n"
            "output\n"
            "  -o, --output FILE       edit file (safetensors) to write\n"
            "      --log FILE          loss history as CSV\n"
            "      --state FILE        keep the training state (numbers, AdamW's moments, data\n"
            "                          position, random streams, history) in FILE, written at\n"
            "                          every evaluation point and on a stop; when FILE exists,\n"
            "                          resume from it: the run continues exactly as if it had\n"
            "                          not stopped (same data, options and model required)\n"
            "      --mpi-timeout S     under mpirun (data-parallel training, docs/cluster.md):\n"
            "                          the longest wait for another rank before every rank\n"
            "                          stops with a message (default 600)\n"
            "      --json              at the end, a JSON summary on stdout (steps, best\n"
            "                          evaluation, last loss, edits file, time, tokens/s, what\n"
            "                          stopped the run); the progress stays on stderr\n"
            "  -m, --model FILE        the frozen model (GGUF, HF folder or llama2.c .bin)\n"
            "      --tokenizer FILE    tokenizer.model, .bin or .json for a .bin model\n"
            "  -t, --threads N         compute threads (default: all cores)\n"
            "      --compute C         f32 (default: reference numerics) or bf16 (bf16 weights and\n"
            "                          activations in the matrix products, f32 accumulation and\n"
            "                          f32 edit vectors; ~1.5-2× faster on CPUs with AVX512-BF16)\n"
            "                          or auto (bf16 where the CPU has AVX512-BF16, else f32)\n"
            "      --bf16-weights W    auto (default: packed bf16 copies when they fit in memory),\n"
            "                          packed, or on-the-fly (no copies: slices packed per product)\n"
            "  -h, --help              this text\n"
            "      --version           redit's version\n",
            d.max_len, d.lr, d.epochs, d.batch, d.warmup_ratio, d.weight_decay, d.clip,
            d.beta1, d.beta2, (unsigned long long)d.seed);
}

typedef struct train_ui {
    int tty;
    FILE *log;
} train_ui;

static void fmt_time(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) s = 0;
    int t = (int)s;
    if (t >= 3600) snprintf(buf, cap, "%dh%02dm", t / 3600, t / 60 % 60);
    else snprintf(buf, cap, "%dm%02ds", t / 60, t % 60);
}

static int on_progress(void *user, const rd_progress *p) {
    train_ui *ui = user;
    char el[32], eta[32];
    fmt_time(p->elapsed, el, sizeof el);
    fmt_time(p->eta, eta, sizeof eta);
    if (p->kind == RD_PROGRESS_STEP) {
        if (ui->log)
            fprintf(ui->log, "%d,%d,%.6f,%.6g,%.6g,%.1f,%.2f,,\n", p->step, p->epoch, p->loss, p->lr,
                    p->grad_norm, p->tokens_per_s, p->elapsed);
        if (ui->log) fflush(ui->log); /* line by line: red.follow / wb.follow read it live */
        const int stop = atomic_load(&g_stop);
        if (ui->tty)
            fprintf(stderr, "\r\033[Kstep %d/%d · epoch %d/%d · loss %.4f · lr %.2e · |g| %.3f · "
                            "%.0f tok/s · %s elapsed · ETA %s%s",
                    p->step, p->total_steps, p->epoch, p->epochs, p->loss, p->lr, p->grad_norm,
                    p->tokens_per_s, el, eta,
                    !stop                     ? ""
                    : stop == RD_STOP_AT_STEP ? " · stopping: evaluating… (Ctrl-C again to skip)"
                                              : " · stopping");
        else if (p->step == 1 || p->step % 10 == 0 || p->step == p->total_steps)
            fprintf(stderr, "step %d/%d epoch %d loss %.4f lr %.2e grad-norm %.3f %.0f tok/s\n",
                    p->step, p->total_steps, p->epoch, p->loss, p->lr, p->grad_norm,
                    p->tokens_per_s);
    } else {
        char acc[48] = "";
        if (isfinite(p->eval_accuracy)) snprintf(acc, sizeof acc, ", accuracy %.2f %%", 100 * p->eval_accuracy);
        if (ui->log) {
            fprintf(ui->log, "%d,%d,,,,,%.2f,%.6f,", p->step, p->epoch, p->elapsed, p->eval_loss);
            if (isfinite(p->eval_accuracy)) fprintf(ui->log, "%.6f", p->eval_accuracy);
            fputc('\n', ui->log);
            fflush(ui->log);
        }
        fprintf(stderr, "%seval after step %d: loss %.4f (perplexity %.2f)%s%s\n", ui->tty ? "\n" : "",
                p->step, p->eval_loss, exp(p->eval_loss), acc, p->best ? " — best so far" : "");
    }
    return 0;
}

/* Everything the command line says. */
typedef struct train_args {
    cli_model_args model;
    cli_data_args data;
    rd_train_opts opts;
    const char *train_path, *eval_path, *out, *log_path, *init, *sites_name, *layers;
    float split;      /* --eval-split fraction, 0 = none */
    int scale, bias;  /* which vectors to train */
    int full;         /* full fine-tuning */
    int method;       /* RD_METHOD_* when not full */
    int method_given; /* --method or --full */
    int rank, lora_targets; /* LoRA settings (0: defaults) */
    float lora_alpha, lora_dropout;
    int lora_given;   /* --rank, --lora-alpha, --lora-targets or --lora-dropout */
    int force;        /* --init: accept another base model's edits */
    int edit_shape_given; /* --sites, --layers, --no-scale or --no-bias */
    int red_given;    /* --sites, --no-scale or --no-bias (RED's own) */
    int sites;        /* RD_SITE_* from sites_name */
    int json;         /* --json: the summary on stdout at the end */
    double mpi_timeout; /* --mpi-timeout: the longest wait for another rank, seconds */
} train_args;

/* The training options as JSON for the edit file's metadata (malloc'ed). The template is
 * the one the data was rendered with (--template, else the format's default; none for plain
 * text), so chat, generate and eval can use it. */
static char *options_json(const train_args *a, rd_data_format format) {
    const rd_train_opts *o = &a->opts;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "data", a->train_path);
    if (a->init) cJSON_AddStringToObject(j, "init", a->init);
    cJSON_AddStringToObject(j, "format", a->data.format_name ? a->data.format_name : "auto");
    if (a->data.opts.template_name)
        cJSON_AddStringToObject(j, "template", a->data.opts.template_name);
    else if (format != RD_DATA_TEXT)
        cJSON_AddStringToObject(j, "template", rd_data_default_template(format));
    cJSON_AddBoolToObject(j, "loss_on_answer_only", a->data.opts.mask_prompt);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "epochs", o->epochs);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "micro_batch", o->micro_batch);
    cJSON_AddNumberToObject(j, "max_len", o->max_len);
    cJSON_AddStringToObject(j, "schedule", rd_schedule_name(o->schedule));
    cJSON_AddNumberToObject(j, "warmup_ratio", o->warmup_ratio);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "clip", o->clip);
    if (o->dropout > 0) cJSON_AddNumberToObject(j, "dropout", o->dropout);
    cJSON_AddNumberToObject(j, "beta1", o->beta1);
    cJSON_AddNumberToObject(j, "beta2", o->beta2);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

enum { O_EVAL = CLI_O_FIRST_FREE, O_SPLIT, O_PACK, O_SITES, O_LAYERS, O_NOSCALE, O_NOBIAS, O_LR,
       O_EPOCHS, O_BATCH, O_MICRO, O_SCHED, O_WARMUP, O_WD, O_CLIP, O_SEED, O_EVALEVERY,
       O_MAXSTEPS, O_CKPT, O_LOG, O_FULL, O_GROUP, O_BETA1, O_BETA2, O_INIT, O_FORCE, O_DROPOUT,
       O_STATE, O_JSON, O_MPI_TIMEOUT, O_METHOD, O_RANK, O_LALPHA, O_LTARGETS, O_LDROPOUT };

/* One option of train's own (not of a shared group). Returns 0, 1 for --help (printed),
 * or 2 on a bad value or unknown option (printed). */
static int train_option(train_args *a, int c, const char *arg, int *micro) {
    rd_train_opts *o = &a->opts;
    float f;
    int bad = 0, seed;
    switch (c) {
    case 'd': a->train_path = arg; break;
    case 'o': a->out = arg; break;
    case O_EVAL: a->eval_path = arg; break;
    case O_SPLIT: bad = cli_float("train", "--eval-split", arg, 1e-6, 0.99, &a->split); break;
    case O_PACK: o->pack = 1; break;
    case O_GROUP: o->group_by_length = 1; break;
    case O_SITES: a->sites_name = arg; a->edit_shape_given = a->red_given = 1; break;
    case O_LAYERS: a->layers = arg; a->edit_shape_given = 1; break;
    case O_NOSCALE: a->scale = 0; a->edit_shape_given = a->red_given = 1; break;
    case O_NOBIAS: a->bias = 0; a->edit_shape_given = a->red_given = 1; break;
    case O_INIT: a->init = arg; break;
    case O_FORCE: a->force = 1; break;
    case O_LR: bad = cli_float("train", "--lr", arg, 1e-12, 10, &f); o->lr = f; break;
    case O_EPOCHS: bad = cli_int("train", "--epochs", arg, 1, 100000, &o->epochs); break;
    case O_BATCH: bad = cli_int("train", "--batch", arg, 1, 1 << 20, &o->batch); break;
    case O_MICRO: bad = cli_int("train", "--micro-batch", arg, 1, 1 << 20, micro); break;
    case O_SCHED:
        if (rd_schedule_from_name(arg, &o->schedule)) {
            fprintf(stderr, "redit train: --schedule must be linear, cosine or constant\n");
            bad = 1;
        }
        break;
    case O_WARMUP: bad = cli_float("train", "--warmup", arg, 0, 0.99, &f); o->warmup_ratio = f; break;
    case O_WD: bad = cli_float("train", "--weight-decay", arg, 0, 100, &f); o->weight_decay = f; break;
    case O_CLIP: bad = cli_float("train", "--clip", arg, 0, 1e6, &f); o->clip = f; break;
    case O_BETA1: bad = cli_double("train", "--beta1", arg, 0, 0.999999, &o->beta1); break;
    case O_BETA2: bad = cli_double("train", "--beta2", arg, 0, 0.999999, &o->beta2); break;
    case O_DROPOUT: bad = cli_double("train", "--dropout", arg, 0, 0.99, &o->dropout); break;
    case O_SEED: bad = cli_int("train", "--seed", arg, 0, 0x7fffffff, &seed); o->seed = (uint64_t)seed; break;
    case O_EVALEVERY: bad = cli_int("train", "--eval-every", arg, 0, 1 << 30, &o->eval_every); break;
    case O_MAXSTEPS: bad = cli_int("train", "--max-steps", arg, 0, 1 << 30, &o->max_steps); break;
    case O_CKPT: o->checkpointing = 1; break;
    case O_LOG: a->log_path = arg; break;
    case O_STATE: o->state_path = arg; break;
    case O_FULL: a->full = 1; a->method_given = 1; break;
    case O_METHOD:
        a->method_given = 1;
        a->full = !strcmp(arg, "full");
        if (!a->full && rd_method_from_name(arg, &a->method)) {
            fprintf(stderr, "redit train: --method must be red, lora, ia3 or full\n");
            bad = 1;
        }
        break;
    case O_RANK: bad = cli_int("train", "--rank", arg, 1, RD_LORA_MAX_RANK, &a->rank); a->lora_given = 1; break;
    case O_LALPHA: bad = cli_float("train", "--lora-alpha", arg, 1e-6, 1e6, &a->lora_alpha); a->lora_given = 1; break;
    case O_LDROPOUT: bad = cli_float("train", "--lora-dropout", arg, 0, 0.99, &a->lora_dropout); a->lora_given = 1; break;
    case O_LTARGETS: {
        rd_error err = {0};
        if (rd_lora_targets_parse(arg, &a->lora_targets, &err)) {
            fprintf(stderr, "redit train: --lora-targets: %s\n", err.msg);
            bad = 1;
        }
        a->lora_given = 1;
        break;
    }
    case O_JSON: a->json = 1; break;
    case O_MPI_TIMEOUT: bad = cli_double("train", "--mpi-timeout", arg, 1, 1e7, &a->mpi_timeout); break;
    case 'h': usage(stdout); return 1;
    default: return 2; /* not reached: parse_train_args passes only options of train's table */
    }
    return bad ? 2 : 0;
}

/* Parses and checks the command line into *a. Returns 0 to go on, or -1 with *exit_code set
 * (0 after --help, 2 on a usage error; the message is printed). */
static int parse_train_args(int argc, char **argv, train_args *a, int *exit_code) {
    static const struct option opts[] = {
        CLI_MODEL_LONG_OPTIONS, CLI_DATA_LONG_OPTIONS,
        {"data", required_argument, 0, 'd'},
        {"output", required_argument, 0, 'o'}, {"eval", required_argument, 0, O_EVAL},
        {"eval-split", required_argument, 0, O_SPLIT}, {"pack", no_argument, 0, O_PACK},
        {"group-by-length", no_argument, 0, O_GROUP},
        {"sites", required_argument, 0, O_SITES}, {"layers", required_argument, 0, O_LAYERS},
        {"no-scale", no_argument, 0, O_NOSCALE}, {"no-bias", no_argument, 0, O_NOBIAS},
        {"lr", required_argument, 0, O_LR}, {"epochs", required_argument, 0, O_EPOCHS},
        {"batch", required_argument, 0, O_BATCH}, {"micro-batch", required_argument, 0, O_MICRO},
        {"schedule", required_argument, 0, O_SCHED}, {"warmup", required_argument, 0, O_WARMUP},
        {"weight-decay", required_argument, 0, O_WD}, {"clip", required_argument, 0, O_CLIP},
        {"seed", required_argument, 0, O_SEED}, {"eval-every", required_argument, 0, O_EVALEVERY},
        {"max-steps", required_argument, 0, O_MAXSTEPS}, {"checkpointing", no_argument, 0, O_CKPT},
        {"log", required_argument, 0, O_LOG}, {"full", no_argument, 0, O_FULL},
        {"beta1", required_argument, 0, O_BETA1}, {"beta2", required_argument, 0, O_BETA2},
        {"init", required_argument, 0, O_INIT}, {"force", no_argument, 0, O_FORCE},
        {"dropout", required_argument, 0, O_DROPOUT}, {"state", required_argument, 0, O_STATE},
        {"json", no_argument, 0, O_JSON}, {"mpi-timeout", required_argument, 0, O_MPI_TIMEOUT}, {"method", required_argument, 0, O_METHOD},
        {"rank", required_argument, 0, O_RANK}, {"lora-alpha", required_argument, 0, O_LALPHA},
        {"lora-targets", required_argument, 0, O_LTARGETS},
        {"lora-dropout", required_argument, 0, O_LDROPOUT}, CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0}};
    *a = (train_args){.data = CLI_DATA_ARGS_DEFAULT, .opts = rd_train_opts_defaults(),
                      .mpi_timeout = 600,
                      .sites_name = "ffn", .layers = "all", .scale = 1, .bias = 1};
    int micro = 0, c;
    *exit_code = 2;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":m:d:o:t:h", opts, NULL)) != -1) {
        if (c == '?' || c == ':' || c == CLI_O_VERSION) {
            *exit_code = cli_option_end("train", c, argv, opts);
            return -1;
        }
        int got = cli_model_option("train", c, optarg, &a->model);
        if (!got) got = cli_data_option("train", c, optarg, &a->data);
        if (got < 0) return -1;
        if (got) continue;
        const int rc = train_option(a, c, optarg, &micro);
        if (rc == 1) *exit_code = 0;
        if (rc) return -1;
    }
    if (cli_parse_end("train", argc, argv, a->model.path, "-m MODEL", a->train_path, "-d DATA",
                      a->out, "-o EDITS", NULL, NULL))
        return -1;
    if (a->eval_path && a->split > 0) {
        fprintf(stderr, "redit train: give --eval or --eval-split, not both\n");
        return -1;
    }
    if (a->init && (a->full || a->edit_shape_given || a->method_given || a->lora_given)) {
        fprintf(stderr, "redit train: --init takes the method, sites, layers and kinds of its edit "
                        "file; %s\n", a->full ? "it does not combine with --full"
                        : "give --init or --method/--sites/--layers/--no-scale/--no-bias/--rank/--lora-*");
        return -1;
    }
    if (a->lora_given && (a->full || a->method != RD_METHOD_LORA)) {
        fprintf(stderr, "redit train: --rank, --lora-alpha, --lora-targets and --lora-dropout "
                        "need --method lora\n");
        return -1;
    }
    if (a->red_given && (a->full || a->method != RD_METHOD_RED)) {
        fprintf(stderr, "redit train: --sites, --no-scale and --no-bias are RED's (--method red)\n");
        return -1;
    }
    if (a->force && !a->init) {
        fprintf(stderr, "redit train: --force only applies to --init\n");
        return -1;
    }
    if (rd_sites_from_name(a->sites_name, &a->sites)) {
        fprintf(stderr, "redit train: --sites must be ffn, attn or both\n");
        return -1;
    }
    a->opts.micro_batch = micro ? micro : a->opts.batch;
    a->opts.max_len = a->data.max_len_given ? a->data.opts.max_len : a->opts.max_len;
    return 0;
}

/* What a run needs besides the arguments; released by release_run. */
typedef struct train_run {
    rd_model *m;
    rd_dataset *train, *eval;
    rd_edits *e; /* RED; NULL in full fine-tuning */
} train_run;

static void release_run(train_run *r) {
    rd_edits_free(r->e);
    rd_dataset_free(r->train);
    rd_dataset_free(r->eval);
    rd_model_free(r->m);
}

/* The training and held-out sets (split off the training file with --eval-split). */
static int load_data(train_args *a, train_run *r, rd_error *err) {
    const rd_tokenizer *tok = rd_model_tokenizer(r->m);
    rd_dataset *all = rd_dataset_load(a->train_path, tok, &a->data.opts, err);
    if (!all) return -1;
    if (a->split > 0) {
        const int rc = rd_dataset_split(all, a->split, a->opts.seed, &r->train, &r->eval, err);
        rd_dataset_free(all);
        return rc;
    }
    r->train = all;
    if (a->eval_path && !(r->eval = rd_dataset_load(a->eval_path, tok, &a->data.opts, err)))
        return -1;
    return 0;
}

/* Model (with its compute mode), data, and the edit set to train (fresh or --init). Prints
 * what went wrong. */
static int setup_run(train_args *a, train_run *r) {
    rd_error err = {0};
    if (!(r->m = cli_open_model("train", &a->model, 1))) return -1;
    if (!rd_model_tokenizer(r->m)) {
        fprintf(stderr, "redit train: %s has no tokenizer; training data needs one (--tokenizer)\n",
                a->model.path);
        return -1;
    }
    a->data.opts.max_len = a->opts.max_len;
    if (cli_data_fit_context("train", &a->data, r->m)) return -1;
    a->opts.max_len = a->data.opts.max_len;
    if (load_data(a, r, &err)) {
        fprintf(stderr, "redit train: %s\n", err.msg);
        return -1;
    }
    if (a->full) return 0;
    const rd_edit_spec spec = {.sites = a->sites, .layers = a->layers, .scale = a->scale,
                               .bias = a->bias, .method = a->method, .rank = a->rank,
                               .lora_alpha = a->lora_alpha, .lora_targets = a->lora_targets,
                               .lora_dropout = a->lora_dropout, .seed = a->opts.seed};
    rd_fp_match match = RD_FP_SAME;
    r->e = a->init ? rd_edits_load_match(a->init, r->m, a->force, NULL, &match, &err)
                   : rd_edits_new(rd_model_config(r->m), &spec, &err);
    if (!r->e) {
        fprintf(stderr, "redit train: %s\n", err.msg);
        return -1;
    }
    if (a->init) cli_fingerprint_note(a->init, match);
    return 0;
}

/* What will be trained, on what, and in how much memory. */
static void print_setup(const train_args *a, const train_run *r) {
    const rd_train_opts *o = &a->opts;
    const rd_model *m = r->m;
    if (a->full) {
        fprintf(stderr, "model %s: full fine-tuning of all %llu parameters\n", m->file.name,
                (unsigned long long)rd_model_param_count(m));
    } else {
        const int scale = rd_edits_has_scale(r->e), bias = rd_edits_has_bias(r->e);
        char what[160], targets[64];
        if (rd_edits_method(r->e) == RD_METHOD_LORA)
            snprintf(what, sizeof what, "LoRA r %d, alpha %g on %s, layers %s", rd_edits_rank(r->e),
                     (double)rd_edits_lora_alpha(r->e),
                     rd_lora_targets_text(rd_edits_lora_targets(r->e), targets, sizeof targets),
                     rd_edits_layers_text(r->e));
        else if (rd_edits_method(r->e) == RD_METHOD_IA3)
            snprintf(what, sizeof what, "IA3 on k, v and the FFN input, layers %s",
                     rd_edits_layers_text(r->e));
        else
            snprintf(what, sizeof what, "RED %s, layers %s, %s%s%s",
                     rd_sites_name(rd_edits_sites(r->e)), rd_edits_layers_text(r->e),
                     scale ? "scale" : "", scale && bias ? " + " : "", bias ? "bias" : "");
        fprintf(stderr, "model %s: %llu parameters · edits%s%s: %s: %zu trainable "
                        "(1/%.0f of the model)\n",
                m->file.name, (unsigned long long)rd_model_param_count(m), a->init ? " from " : "",
                a->init ? a->init : "", what, rd_edits_param_count(r->e), rd_edits_ratio(r->e, m));
    }
    fprintf(stderr, "data: %zu training examples (%llu loss tokens)", rd_dataset_size(r->train),
            (unsigned long long)rd_dataset_loss_tokens(r->train));
    if (r->eval) fprintf(stderr, " · %zu held out", rd_dataset_size(r->eval));
    fprintf(stderr, "\n");
    char cuts[256];
    if (*rd_dataset_cuts_text(r->train, o->max_len, cuts, sizeof cuts))
        fprintf(stderr, "training set: %s\n", cuts);
    if (r->eval && *rd_dataset_cuts_text(r->eval, o->max_len, cuts, sizeof cuts))
        fprintf(stderr, "held-out set: %s\n", cuts);
    fprintf(stderr, "memory: %.0f MB of activations for %d × %d tokens%s, %.0f MB available\n",
            (double)rd_train_ctx_estimate(rd_model_config(m), o->micro_batch, o->max_len,
                                          o->checkpointing) / 1e6,
            o->micro_batch, o->max_len, o->checkpointing ? " (checkpointing)" : "",
            (double)rd_memory_available() / 1e6);
    if (o->state_path)
        fprintf(stderr, access(o->state_path, F_OK) == 0 ? "state: resuming from %s\n"
                                                         : "state: kept in %s\n", o->state_path);
}

/* Trains with Ctrl-C as a stop request (on_sigint, installed here; *old_sa receives the
 * handler to put back once the results are written) and the progress line (and CSV log) on. */
static int run_training(train_args *a, train_run *r, FILE *logf, struct sigaction *old_sa,
                        rd_train_result *res, rd_error *err) {
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    atomic_store(&g_stop, 0);
    g_has_eval = r->eval != NULL;
    g_tty = isatty(STDERR_FILENO);
    g_writing = 0;
    sigaction(SIGINT, &sa, old_sa);
    a->opts.stop = &g_stop;
    train_ui ui = {.tty = g_tty, .log = logf};
    const int rc = a->full ? rd_train_full(r->m, r->train, r->eval, &a->opts, on_progress, &ui, res, err)
                           : rd_train(r->m, r->e, r->train, r->eval, &a->opts, on_progress, &ui, res, err);
    g_writing = 1;
    if (ui.tty) fprintf(stderr, "\n");
    return rc;
}

/* Writes the edits (or, in full fine-tuning, the model) and says how the run went. */
static int write_result(const train_args *a, const train_run *r, const rd_train_result *res) {
    rd_error err = {0};
    char *meta = options_json(a, rd_dataset_format(r->train));
    const int bad = a->full ? rd_gguf_write(a->out, &r->m->file, RD_DTYPE_F32, &err)
                            : rd_edits_save(r->e, r->m, meta, a->out, &err);
    free(meta);
    if (bad) {
        fprintf(stderr, "redit train: %s\n", err.msg);
        return -1;
    }
    fprintf(stderr, "%d steps", res->steps);
    if (res->resumed_step) fprintf(stderr, " (resumed after step %d)", res->resumed_step);
    if (res->resumed_sampled)
        fprintf(stderr, " (the state was written by an earlier redit: only a sample of the "
                        "model's weights could be compared)");
    fprintf(stderr, " in %.1f s · %.0f tokens/s · last loss %.4f", res->seconds, res->tokens_per_s,
            res->final_loss);
    if (r->eval && isfinite(res->best_eval_accuracy))
        fprintf(stderr, " · best held-out accuracy %.2f %% (loss %.4f) at step %d",
                100 * res->best_eval_accuracy, res->best_eval_loss, res->best_step);
    else if (r->eval && res->n_evals > 0) /* none: a stop skipped the only one (said above) */
        fprintf(stderr, " · best held-out loss %.4f at step %d", res->best_eval_loss, res->best_step);
    fprintf(stderr, "\nwrote %s\n", a->out);
    return 0;
}

/* --json: the run's summary as one JSON object on stdout. */
static void print_json(const train_args *a, const train_run *r, const rd_train_result *res) {
    static const char *const stopped[] = {"done", "interrupted", "nonfinite"};
    const char *by = res->stopped >= 0 && res->stopped < 3 ? stopped[res->stopped] : "stopped";
    if (res->stopped == RD_STOP_DONE && a->opts.max_steps > 0 && res->steps >= a->opts.max_steps)
        by = "max-steps";
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, a->full ? "model" : "edits", a->out);
    cJSON_AddNumberToObject(j, "steps", res->steps);
    cJSON_AddStringToObject(j, "stopped_by", by);
    cJSON_AddBoolToObject(j, "eval_skipped", res->eval_skipped);
    if (isfinite(res->final_loss)) cJSON_AddNumberToObject(j, "final_loss", res->final_loss);
    else cJSON_AddNullToObject(j, "final_loss");
    if (r->eval && isfinite(res->best_eval_loss)) {
        cJSON_AddNumberToObject(j, "best_eval_loss", res->best_eval_loss);
        cJSON_AddNumberToObject(j, "best_step", res->best_step);
    } else {
        cJSON_AddNullToObject(j, "best_eval_loss");
        cJSON_AddNullToObject(j, "best_step");
    }
    if (isfinite(res->best_eval_accuracy))
        cJSON_AddNumberToObject(j, "best_eval_accuracy", res->best_eval_accuracy);
    cJSON_AddNumberToObject(j, "seconds", res->seconds);
    cJSON_AddNumberToObject(j, "tokens", (double)res->tokens);
    cJSON_AddNumberToObject(j, "tokens_per_s", res->tokens_per_s);
    if (a->opts.dp) { /* rank 0's side of the exchange */
        const rd_dp_stats st = rd_dp_get_stats(a->opts.dp);
        cJSON_AddNumberToObject(j, "ranks", rd_dp_size(a->opts.dp));
        cJSON_AddNumberToObject(j, "exchange_bytes", (double)st.bytes);
        cJSON_AddNumberToObject(j, "exchange_seconds", st.seconds);
        cJSON_AddNumberToObject(j, "wait_seconds", st.wait_seconds);
    }
    if (res->resumed_step) cJSON_AddNumberToObject(j, "resumed_after_step", res->resumed_step);
    char *text = cJSON_Print(j);
    if (text) puts(text);
    else fprintf(stderr, "redit train: out of memory\n");
    fflush(stdout);
    free(text);
    cJSON_Delete(j);
}

int cmd_train(int argc, char **argv) {
    train_args a;
    int exit_code;
    if (parse_train_args(argc, argv, &a, &exit_code)) {
        cli_data_args_release(&a.data);
        return exit_code;
    }
    /* every output is checked before the model and data load: a run must not train for
     * hours to find its output folder missing */
    if (cli_check_output("train", "-o", a.out) || cli_check_output("train", "--log", a.log_path) ||
        cli_check_output("train", "--state", a.opts.state_path)) {
        cli_data_args_release(&a.data);
        return 1;
    }
    int rc = 1;
    train_run r = {0};
    FILE *logf = NULL;
    char log_tmp[4096] = "";
    rd_train_result res = {0};
    rd_error err = {0};
    struct sigaction old_sa;
    int handler = 0; /* on_sigint is installed (until the results are written) */
    /* under mpirun: the ranks of a data-parallel run; rank 0 alone writes and reports */
    rd_dp *dp = rd_dp_open(a.mpi_timeout, &err);
    if (!dp && err.msg[0]) {
        fprintf(stderr, "redit train: %s\n", err.msg);
        cli_data_args_release(&a.data);
        return 1;
    }
    const int root = rd_dp_rank(dp) == 0;
    a.opts.dp = dp;
    if (setup_run(&a, &r)) goto done;
    if (root) print_setup(&a, &r);
    if (dp && root)
        fprintf(stderr, "data-parallel: %d ranks (MPI); each runs micro-batches of %d examples\n",
                rd_dp_size(dp), a.opts.micro_batch);
    if (dp && root && (a.opts.batch + a.opts.micro_batch - 1) / a.opts.micro_batch < rd_dp_size(dp))
        fprintf(stderr, "note: a batch of %d in micro-batches of %d is %d part(s) for %d ranks: "
                        "some ranks idle (--micro-batch %d gives each rank one; compare with a "
                        "one-process run of the same --micro-batch)\n",
                a.opts.batch, a.opts.micro_batch,
                (a.opts.batch + a.opts.micro_batch - 1) / a.opts.micro_batch, rd_dp_size(dp),
                (a.opts.batch + rd_dp_size(dp) - 1) / rd_dp_size(dp));
    if (a.log_path && root) {
        snprintf(log_tmp, sizeof log_tmp, "%s.partial", a.log_path);
        if (!(logf = fopen(log_tmp, "w"))) {
            fprintf(stderr, "redit train: cannot write %s\n", log_tmp);
            goto done;
        }
        fprintf(logf, "step,epoch,loss,lr,grad_norm,tokens_per_s,elapsed_s,eval_loss,eval_accuracy\n");
    }
    handler = 1;
    if (run_training(&a, &r, logf, &old_sa, &res, &err)) {
        fprintf(stderr, "redit train: %s\n", err.msg);
        if (dp && rd_dp_size(dp) > 1) rd_dp_abort(dp, 1); /* the other ranks stop too */
        goto done;
    }
    if (!root) {
        rc = res.stopped == RD_STOP_NONFINITE ? 1 : res.stopped == RD_STOP_REQUESTED ? 130 : 0;
        goto done;
    }
    if (res.stopped != RD_STOP_DONE) fprintf(stderr, "redit train: %s\n", res.message);
    if (write_result(&a, &r, &res)) goto done;
    if (dp) {
        const rd_dp_stats st = rd_dp_get_stats(dp);
        const int steps = res.steps - res.resumed_step > 0 ? res.steps - res.resumed_step : 1;
        fprintf(stderr, "exchange (rank 0): %.3f MB in %.3f s, %.1f kB and %.2f ms per step; "
                        "%.2f ms per step waiting for the slowest rank\n",
                (double)st.bytes / 1e6, st.seconds, (double)st.bytes / steps / 1e3,
                1e3 * st.seconds / steps, 1e3 * st.wait_seconds / steps);
    }
    if (a.json) print_json(&a, &r, &res);
    /* stopped by Ctrl-C: 130 (128 + SIGINT) as a shell reports an interrupted command, after
     * the results were written */
    rc = res.stopped == RD_STOP_NONFINITE ? 1 : res.stopped == RD_STOP_REQUESTED ? 130 : 0;
done:
    if (logf) {
        int bad = fclose(logf) != 0 || rename(log_tmp, a.log_path) != 0;
        if (bad) fprintf(stderr, "redit train: cannot write %s\n", a.log_path);
    }
    if (handler) sigaction(SIGINT, &old_sa, NULL);
    rd_train_result_release(&res);
    release_run(&r);
    cli_data_args_release(&a.data);
    if (dp && rc == 1 && rd_dp_size(dp) > 1) rd_dp_abort(dp, 1); /* a rank failed alone */
    rd_dp_close(dp);
    return rc;
}
