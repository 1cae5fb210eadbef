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
#include "redit/atomic_file.h"
#include "redit/backward.h"
#include "redit/dataset.h"
#include "redit/edits.h"
#include "redit/model_file.h"
#include "redit/train.h"

static atomic_int g_stop; /* set by SIGINT: the one piece of global state, for the handler */

static void on_sigint(int sig) {
    (void)sig;
    if (atomic_load(&g_stop)) _exit(130); /* a second Ctrl-C ends at once */
    atomic_store(&g_stop, 1);
}

static void usage(FILE *out) {
    rd_train_opts d = rd_train_opts_defaults();
    fprintf(out,
            "usage: redit train -m MODEL -d TRAIN.jsonl -o EDITS.safetensors [options]\n\n"
            "Trains RED edit vectors (h' = s ⊙ h + b on sub-layer outputs) on a frozen model.\n"
            "Ctrl-C stops at the next step and still writes the best edits so far.\n\n"
            "data\n"
            "  -d, --data FILE         training set (JSONL: alpaca, chat, prompt-completion,\n"
            "                          ultrafeedback, classification; or plain text)\n"
            "      --eval FILE         held-out set, evaluated every epoch (best edits kept)\n"
            "      --eval-split F      hold out this fraction of the training set instead\n"
            "      --format NAME       auto (default), alpaca, chat, prompt-completion,\n"
            "                          ultrafeedback, text, classification\n"
            "      --template T        llama2-chat, alpaca, plain, red, or a custom string with\n"
            "                          {prompt} and {answer}\n"
            "      --system TEXT       system prompt for templates that have one\n"
            "      --max-len N         tokens per example (default %d)\n"
            "      --full-loss         loss on the whole sequence (default: answer tokens only)\n"
            "      --skip-bad-lines    skip and count malformed lines instead of failing\n"
            "      --pack              pack several examples per row\n"
            "      --group-by-length   batches of examples of similar length (less padding)\n"
            "edits\n"
            "      --sites S           ffn (default), attn or both\n"
            "      --layers L          all (default) or a list like 0-5,9\n"
            "      --no-scale          train the bias only\n"
            "      --no-bias           train the scale only\n"
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
            "  -m, --model FILE        the frozen model\n"
            "      --tokenizer FILE    llama2.c tokenizer.bin for a .bin model\n"
            "      --threads N         compute threads (default: all cores)\n"
            "      --compute C         f32 (default: reference numerics) or bf16 (bf16 weights and\n"
            "                          activations in the matrix products, f32 accumulation and\n"
            "                          f32 edit vectors; ~1.5-2× faster on CPUs with AVX512-BF16)\n"
            "                          or auto (bf16 where the CPU has AVX512-BF16, else f32)\n"
            "  -h, --help              this text\n",
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
        if (ui->tty)
            fprintf(stderr, "\r\033[Kstep %d/%d · epoch %d/%d · loss %.4f · lr %.2e · |g| %.3f · "
                            "%.0f tok/s · %s elapsed · ETA %s",
                    p->step, p->total_steps, p->epoch, p->epochs, p->loss, p->lr, p->grad_norm,
                    p->tokens_per_s, el, eta);
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
        }
        fprintf(stderr, "%seval after step %d: loss %.4f (perplexity %.2f)%s%s\n", ui->tty ? "\n" : "",
                p->step, p->eval_loss, exp(p->eval_loss), acc, p->best ? " — best so far" : "");
    }
    return 0;
}

/* The training options as JSON for the edit file's metadata (malloc'ed). */
static char *options_json(const rd_train_opts *o, const char *data, const char *fmt,
                          const char *tmpl, int full_loss, const char *init) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "data", data);
    if (init) cJSON_AddStringToObject(j, "init", init);
    cJSON_AddStringToObject(j, "format", fmt ? fmt : "auto");
    if (tmpl) cJSON_AddStringToObject(j, "template", tmpl);
    cJSON_AddBoolToObject(j, "loss_on_answer_only", !full_loss);
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

int cmd_train(int argc, char **argv) {
    enum { O_EVAL = 256, O_SPLIT, O_FORMAT, O_TEMPLATE, O_SYSTEM, O_MAXLEN, O_FULLLOSS, O_SKIP,
           O_PACK, O_SITES, O_LAYERS, O_NOSCALE, O_NOBIAS, O_LR, O_EPOCHS, O_BATCH, O_MICRO,
           O_SCHED, O_WARMUP, O_WD, O_CLIP, O_SEED, O_EVALEVERY, O_MAXSTEPS, O_CKPT, O_LOG,
           O_TOK, O_THREADS, O_FULL, O_COMPUTE, O_GROUP, O_BETA1, O_BETA2, O_INIT, O_FORCE, O_DROPOUT,
           O_STATE };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"output", required_argument, 0, 'o'}, {"eval", required_argument, 0, O_EVAL},
        {"eval-split", required_argument, 0, O_SPLIT}, {"format", required_argument, 0, O_FORMAT},
        {"template", required_argument, 0, O_TEMPLATE}, {"system", required_argument, 0, O_SYSTEM},
        {"max-len", required_argument, 0, O_MAXLEN}, {"full-loss", no_argument, 0, O_FULLLOSS},
        {"skip-bad-lines", no_argument, 0, O_SKIP}, {"pack", no_argument, 0, O_PACK},
        {"group-by-length", no_argument, 0, O_GROUP},
        {"sites", required_argument, 0, O_SITES}, {"layers", required_argument, 0, O_LAYERS},
        {"no-scale", no_argument, 0, O_NOSCALE}, {"no-bias", no_argument, 0, O_NOBIAS},
        {"lr", required_argument, 0, O_LR}, {"epochs", required_argument, 0, O_EPOCHS},
        {"batch", required_argument, 0, O_BATCH}, {"micro-batch", required_argument, 0, O_MICRO},
        {"schedule", required_argument, 0, O_SCHED}, {"warmup", required_argument, 0, O_WARMUP},
        {"weight-decay", required_argument, 0, O_WD}, {"clip", required_argument, 0, O_CLIP},
        {"seed", required_argument, 0, O_SEED}, {"eval-every", required_argument, 0, O_EVALEVERY},
        {"max-steps", required_argument, 0, O_MAXSTEPS}, {"checkpointing", no_argument, 0, O_CKPT},
        {"log", required_argument, 0, O_LOG}, {"tokenizer", required_argument, 0, O_TOK},
        {"threads", required_argument, 0, O_THREADS}, {"full", no_argument, 0, O_FULL},
        {"compute", required_argument, 0, O_COMPUTE},
        {"beta1", required_argument, 0, O_BETA1}, {"beta2", required_argument, 0, O_BETA2},
        {"init", required_argument, 0, O_INIT}, {"force", no_argument, 0, O_FORCE},
        {"dropout", required_argument, 0, O_DROPOUT}, {"state", required_argument, 0, O_STATE},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = NULL, *data = NULL, *out = NULL, *eval_path = NULL, *fmt = NULL;
    const char *log_path = NULL, *tok = NULL, *sites_name = "ffn", *layers = "all";
    const char *compute = NULL, *init = NULL;
    rd_train_opts o = rd_train_opts_defaults();
    rd_data_opts dopt = rd_data_opts_defaults();
    int micro = 0, threads = 0, scale = 1, bias = 1, full_loss = 0, seed = 42, full = 0, c;
    int max_len_given = 0, edit_shape_given = 0, force = 0;
    float split = 0.0f, f;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:d:o:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case O_EVAL: eval_path = optarg; break;
        case O_SPLIT: bad = cli_float("train", "--eval-split", optarg, 1e-6, 0.99, &split); break;
        case O_FORMAT:
            fmt = optarg;
            if (rd_data_format_from_name(optarg, &dopt.format)) {
                fprintf(stderr, "redit train: unknown --format \"%s\"\n", optarg);
                bad = 1;
            }
            break;
        case O_TEMPLATE: dopt.template_name = optarg; break;
        case O_SYSTEM: dopt.system = optarg; break;
        case O_MAXLEN:
            bad = cli_int("train", "--max-len", optarg, 2, 1 << 20, &o.max_len);
            max_len_given = 1;
            break;
        case O_FULLLOSS: full_loss = 1; break;
        case O_SKIP: dopt.skip_bad_lines = 1; break;
        case O_PACK: o.pack = 1; break;
        case O_GROUP: o.group_by_length = 1; break;
        case O_SITES: sites_name = optarg; edit_shape_given = 1; break;
        case O_LAYERS: layers = optarg; edit_shape_given = 1; break;
        case O_NOSCALE: scale = 0; edit_shape_given = 1; break;
        case O_NOBIAS: bias = 0; edit_shape_given = 1; break;
        case O_INIT: init = optarg; break;
        case O_FORCE: force = 1; break;
        case O_LR: bad = cli_float("train", "--lr", optarg, 1e-12, 10, &f); o.lr = f; break;
        case O_EPOCHS: bad = cli_int("train", "--epochs", optarg, 1, 100000, &o.epochs); break;
        case O_BATCH: bad = cli_int("train", "--batch", optarg, 1, 1 << 20, &o.batch); break;
        case O_MICRO: bad = cli_int("train", "--micro-batch", optarg, 1, 1 << 20, &micro); break;
        case O_SCHED:
            if (rd_schedule_from_name(optarg, &o.schedule)) {
                fprintf(stderr, "redit train: --schedule must be linear, cosine or constant\n");
                bad = 1;
            }
            break;
        case O_WARMUP: bad = cli_float("train", "--warmup", optarg, 0, 0.99, &f); o.warmup_ratio = f; break;
        case O_WD: bad = cli_float("train", "--weight-decay", optarg, 0, 100, &f); o.weight_decay = f; break;
        case O_CLIP: bad = cli_float("train", "--clip", optarg, 0, 1e6, &f); o.clip = f; break;
        case O_BETA1: bad = cli_double("train", "--beta1", optarg, 0, 0.999999, &o.beta1); break;
        case O_BETA2: bad = cli_double("train", "--beta2", optarg, 0, 0.999999, &o.beta2); break;
        case O_DROPOUT: bad = cli_double("train", "--dropout", optarg, 0, 0.99, &o.dropout); break;
        case O_SEED: bad = cli_int("train", "--seed", optarg, 0, 0x7fffffff, &seed); o.seed = (uint64_t)seed; break;
        case O_EVALEVERY: bad = cli_int("train", "--eval-every", optarg, 0, 1 << 30, &o.eval_every); break;
        case O_MAXSTEPS: bad = cli_int("train", "--max-steps", optarg, 0, 1 << 30, &o.max_steps); break;
        case O_CKPT: o.checkpointing = 1; break;
        case O_LOG: log_path = optarg; break;
        case O_STATE: o.state_path = optarg; break;
        case O_TOK: tok = optarg; break;
        case O_THREADS: bad = cli_int("train", "--threads", optarg, 0, 1024, &threads); break;
        case O_FULL: full = 1; break;
        case O_COMPUTE: compute = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) return 2;
    }
    if (!model || !data || !out || optind != argc) {
        fprintf(stderr, "redit train: -m MODEL, -d DATA and -o EDITS are required\n");
        usage(stderr);
        return 2;
    }
    if (eval_path && split > 0) {
        fprintf(stderr, "redit train: give --eval or --eval-split, not both\n");
        return 2;
    }
    if (init && (full || edit_shape_given)) {
        fprintf(stderr, "redit train: --init takes the sites, layers and kinds of its edit file; "
                        "%s\n", full ? "it does not combine with --full"
                                     : "give --init or --sites/--layers/--no-scale/--no-bias");
        return 2;
    }
    if (force && !init) {
        fprintf(stderr, "redit train: --force only applies to --init\n");
        return 2;
    }
    int sites;
    if (rd_sites_from_name(sites_name, &sites)) {
        fprintf(stderr, "redit train: --sites must be ffn, attn or both\n");
        return 2;
    }
    o.micro_batch = micro ? micro : o.batch;
    dopt.mask_prompt = !full_loss;
    cli_set_threads(threads);
    rd_error err = {0};
    int rc = 1;
    rd_model *m = cli_load_model(model, tok);
    rd_dataset *train = NULL, *eval = NULL, *all = NULL;
    rd_edits *e = NULL;
    FILE *logf = NULL;
    char *meta = NULL, log_tmp[4096] = "";
    rd_train_result res = {0};
    if (!m) return 1;
    if (!rd_model_tokenizer(m)) {
        fprintf(stderr, "redit train: %s has no tokenizer; training data needs one (--tokenizer)\n", model);
        goto done;
    }
    if (cli_set_compute("train", m, compute, 1)) goto done;
    if (!max_len_given && o.max_len > rd_model_config(m)->seq_len)
        o.max_len = rd_model_config(m)->seq_len; /* the default, capped at the context */
    if (o.max_len > rd_model_config(m)->seq_len) {
        fprintf(stderr, "redit train: --max-len %d exceeds the model's context of %d\n", o.max_len,
                rd_model_config(m)->seq_len);
        goto done;
    }
    dopt.max_len = o.max_len;
    if (!(all = rd_dataset_load(data, rd_model_tokenizer(m), &dopt, &err))) {
        fprintf(stderr, "redit train: %s\n", err.msg);
        goto done;
    }
    if (split > 0) {
        if (rd_dataset_split(all, split, o.seed, &train, &eval, &err)) {
            fprintf(stderr, "redit train: %s\n", err.msg);
            goto done;
        }
    } else {
        train = all;
        all = NULL;
        if (eval_path && !(eval = rd_dataset_load(eval_path, rd_model_tokenizer(m), &dopt, &err))) {
            fprintf(stderr, "redit train: %s\n", err.msg);
            goto done;
        }
    }
    rd_edit_spec spec = {.sites = sites, .layers = layers, .scale = scale, .bias = bias};
    if (full) {
        fprintf(stderr, "model %s: full fine-tuning of all %llu parameters\n", m->file.name,
                (unsigned long long)rd_model_param_count(m));
    } else if (!(e = init ? rd_edits_load(init, m, force, NULL, &err)
                          : rd_edits_new(rd_model_config(m), &spec, &err))) {
        fprintf(stderr, "redit train: %s\n", err.msg);
        goto done;
    } else {
        scale = rd_edits_has_scale(e);
        bias = rd_edits_has_bias(e);
        fprintf(stderr, "model %s: %llu parameters · edits%s%s: %s, layers %s, %s%s%s: %zu trainable "
                        "(1/%.0f of the model)\n",
                m->file.name, (unsigned long long)rd_model_param_count(m), init ? " from " : "",
                init ? init : "", rd_sites_name(rd_edits_sites(e)), rd_edits_layers_text(e),
                scale ? "scale" : "", scale && bias ? " + " : "", bias ? "bias" : "",
                rd_edits_param_count(e), rd_edits_ratio(e, m));
    }
    fprintf(stderr, "data: %zu training examples (%llu loss tokens)", rd_dataset_size(train),
            (unsigned long long)rd_dataset_loss_tokens(train));
    if (eval) fprintf(stderr, " · %zu held out", rd_dataset_size(eval));
    fprintf(stderr, "\n");
    char cuts[256];
    if (*rd_dataset_cuts_text(train, o.max_len, cuts, sizeof cuts))
        fprintf(stderr, "training set: %s\n", cuts);
    if (eval && *rd_dataset_cuts_text(eval, o.max_len, cuts, sizeof cuts))
        fprintf(stderr, "held-out set: %s\n", cuts);
    fprintf(stderr, "memory: %.0f MB of activations for %d × %d tokens%s, %.0f MB available\n",
            (double)rd_train_ctx_estimate(rd_model_config(m), o.micro_batch, o.max_len,
                                          o.checkpointing) / 1e6,
            o.micro_batch, o.max_len, o.checkpointing ? " (checkpointing)" : "",
            (double)rd_memory_available() / 1e6);
    if (log_path) {
        snprintf(log_tmp, sizeof log_tmp, "%s.partial", log_path);
        if (!(logf = fopen(log_tmp, "w"))) {
            fprintf(stderr, "redit train: cannot write %s\n", log_tmp);
            goto done;
        }
        fprintf(logf, "step,epoch,loss,lr,grad_norm,tokens_per_s,elapsed_s,eval_loss,eval_accuracy\n");
    }
    struct sigaction sa = {0}, old_sa;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    atomic_store(&g_stop, 0);
    o.stop = &g_stop;
    if (o.state_path)
        fprintf(stderr, access(o.state_path, F_OK) == 0 ? "state: resuming from %s\n"
                                                        : "state: kept in %s\n", o.state_path);
    train_ui ui = {.tty = isatty(STDERR_FILENO), .log = logf};
    int trc = full ? rd_train_full(m, train, eval, &o, on_progress, &ui, &res, &err)
                   : rd_train(m, e, train, eval, &o, on_progress, &ui, &res, &err);
    sigaction(SIGINT, &old_sa, NULL);
    if (ui.tty) fprintf(stderr, "\n");
    if (trc) {
        fprintf(stderr, "redit train: %s\n", err.msg);
        goto done;
    }
    if (res.stopped != RD_STOP_DONE) fprintf(stderr, "redit train: %s\n", res.message);
    meta = options_json(&o, data, fmt, dopt.template_name, full_loss, init);
    if (full ? rd_gguf_write(out, &m->file, RD_DTYPE_F32, &err)
             : rd_edits_save(e, m, meta, out, &err)) {
        fprintf(stderr, "redit train: %s\n", err.msg);
        goto done;
    }
    fprintf(stderr, "%d steps", res.steps);
    if (res.resumed_step) fprintf(stderr, " (resumed after step %d)", res.resumed_step);
    fprintf(stderr, " in %.1f s · %.0f tokens/s · last loss %.4f", res.seconds, res.tokens_per_s,
            res.final_loss);
    if (eval && isfinite(res.best_eval_accuracy))
        fprintf(stderr, " · best held-out accuracy %.2f %% (loss %.4f) at step %d",
                100 * res.best_eval_accuracy, res.best_eval_loss, res.best_step);
    else if (eval)
        fprintf(stderr, " · best held-out loss %.4f at step %d", res.best_eval_loss, res.best_step);
    fprintf(stderr, "\nwrote %s\n", out);
    rc = res.stopped == RD_STOP_NONFINITE ? 1 : 0;
done:
    if (logf) {
        int bad = fclose(logf) != 0 || rename(log_tmp, log_path) != 0;
        if (bad) fprintf(stderr, "redit train: cannot write %s\n", log_path);
    }
    free(meta);
    rd_train_result_release(&res);
    rd_edits_free(e);
    rd_dataset_free(all);
    rd_dataset_free(train);
    rd_dataset_free(eval);
    rd_model_free(m);
    return rc;
}
