/* redit bench: throughput on random-weight models, against ceilings and peers measured in
 * the same run. Two sections: "small" — the llama2.c stories15M and stories110M shapes (f32
 * files): decode, prefill and training steps, in f32 and bf16 compute, against OpenBLAS
 * sgemm and (when torch is installed) PyTorch, f32 against f32 and bf16 against bf16
 * autocast; "7b" — a Llama-2-7B-shaped Q4_K_M GGUF (the file users run), made once and
 * cached: decode after a short and a long prompt, prompt processing and one RED training
 * step, against the read roofline and (when a llama-bench is given) llama.cpp on the same
 * file, in alternating rounds. Each measurement runs in a child process so its peak RSS is
 * its own. A benchmark, not a test: nothing here asserts a time. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "redit/backward.h"
#include "redit/batch.h"
#include "redit/buf.h"
#include "redit/edits.h"
#include "redit/forward.h"
#include "redit/model.h"
#include "redit/util.h"
#include "redit/vocab.h"

typedef struct shape {
    const char *name;
    rd_config cfg;
    int decode_tokens;
} shape;

static const shape SHAPES[] = {
    {"stories15M", {288, 768, 6, 6, 6, 32000, 256, 1e-5f, 10000.0f, RD_ROPE_ADJACENT}, 200},
    {"stories110M", {768, 2048, 12, 12, 12, 32000, 1024, 1e-5f, 10000.0f, RD_ROPE_ADJACENT}, 64},
};

/* Matmul weights per token, classifier counted once (BENCHMARKS.md's Nmm). */
static double nmm(const rd_config *c) {
    double d = c->dim, h = c->hidden_dim, kv = rd_config_kv_dim(c);
    return c->n_layers * (2 * d * d + 2 * d * kv + 3 * d * h) + (double)c->vocab_size * d;
}

static double fwd_flops_per_token(const rd_config *c, int T) {
    return 2 * nmm(c) + 2.0 * c->n_layers * T * c->dim;
}

static long peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Runs fn in a child process, passing its one-line result back through a pipe. */
static int in_child(void (*fn)(const void *arg, char *out, size_t cap), const void *arg,
                    char *out, size_t cap) {
    int fds[2];
    if (pipe(fds)) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        char buf[1024] = {0};
        fn(arg, buf, sizeof buf);
        ssize_t w = write(fds[1], buf, strlen(buf) + 1);
        _exit(w > 0 ? 0 : 1);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fds[0], out + got, cap - 1 - got)) > 0) got += (size_t)r;
    out[got] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && got > 0 ? 0 : -1;
}

typedef struct sgemm_arg {
    int threads, M, K, N;
} sgemm_arg;

static void run_sgemm(const void *p, char *out, size_t cap) {
    const sgemm_arg *a = p;
    openblas_set_num_threads(a->threads);
    float *A = calloc((size_t)a->M * a->K, 4), *B = calloc((size_t)a->N * a->K, 4),
          *C = calloc((size_t)a->M * a->N, 4);
    if (!A || !B || !C) {
        snprintf(out, cap, "out of memory");
        free(A);
        free(B);
        free(C);
        return;
    }
    for (size_t i = 0; i < (size_t)a->M * a->K; i++) A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)a->N * a->K; i++) B[i] = (float)(i % 5) * 0.1f;
    double best = 1e30;
    for (int it = 0; it < 12; it++) { /* best of 11 after a warm-up: the machine is shared */
        double t0 = cli_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a->M, a->N, a->K, 1.0f, A, a->K, B,
                    a->K, 0.0f, C, a->N);
        double t = cli_now() - t0;
        if (it > 0 && t < best) best = t;
    }
    snprintf(out, cap, "%.1f", 2.0 * a->M * a->N * a->K / best / 1e9);
    free(A);
    free(B);
    free(C);
}

typedef struct bandwidth_arg {
    int threads;
    size_t bytes;
} bandwidth_arg;

/* Streaming read bandwidth over a buffer larger than the caches, with the process's pool
 * (the decode path's threads, as many as OpenBLAS's): the roofline of a bandwidth-bound
 * decode step. */
static void run_bandwidth(const void *p, char *out, size_t cap) {
    const bandwidth_arg *a = p;
    openblas_set_num_threads(a->threads);
    snprintf(out, cap, "%.2f", rd_read_bandwidth(a->bytes, 7, NULL));
}

typedef struct model_arg {
    const char *path;
    const shape *s;
    int threads, B, T;
    long file_bytes;
    int bf16; /* rd_model_set_compute(RD_COMPUTE_BF16) before measuring; -1: as --compute
               * auto (8-bit activation products for quantized weights in decode and short
               * prompts, and the GEMM that measures faster here) */
    int checkpointing; /* training: keep each layer's input only */
    int passes;        /* training passes timed (0: 4, the first a warm-up) */
    int method;        /* run_train: RD_METHOD_* (RED ffn; LoRA r 8 on q, v; IA3) */
} model_arg;

/* Loads the benchmark model in the compute mode the measurement asks for. */
static rd_model *bench_model(const model_arg *a, int backward, rd_error *err) {
    rd_model *m = rd_model_load(a->path, NULL, err);
    rd_compute mode = a->bf16 > 0 ? RD_COMPUTE_BF16 : RD_COMPUTE_F32;
    if (a->bf16 < 0) rd_compute_from_name("auto", &mode);
    if (m && ((a->bf16 < 0 && rd_model_set_quant_products(m, 1, err)) ||
              (mode == RD_COMPUTE_BF16 && rd_model_set_compute(m, mode, backward, err)))) {
        rd_model_free(m);
        return NULL;
    }
    return m;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Decode at B = 1: greedy chain of decode_tokens positions after an 8-token warm-up. */
static void run_decode(const void *p, char *out, size_t cap) {
    const model_arg *a = p;
    openblas_set_num_threads(a->threads);
    rd_error err = {0};
    rd_model *m = rd_model_load(a->path, NULL, &err);
    int n = a->s->decode_tokens;
    rd_ctx *ctx = m ? rd_ctx_new(m, 1, n + 8, &err) : NULL;
    if (!ctx) {
        snprintf(out, cap, "error %s", err.msg);
        return;
    }
    const int V = rd_model_config(m)->vocab_size;
    float *logits = malloc(sizeof(float) * V);
    int tok = 1;
    double t0 = 0;
    for (int i = 0; i < n + 8; i++) {
        if (i == 8) t0 = cli_now();
        rd_forward(ctx, NULL, &tok, 1, 1, RD_LOGITS_LAST, logits, &err);
        tok = argmax(logits, V);
    }
    double t = cli_now() - t0;
    snprintf(out, cap, "%.1f %ld %zu", n / t, peak_rss_kb(), rd_ctx_bytes(ctx));
    free(logits);
    rd_ctx_free(ctx);
    rd_model_free(m);
}

/* Prefill (B, T) with logits of every position; best of 3 after a warm-up. */
static void run_prefill(const void *p, char *out, size_t cap) {
    const model_arg *a = p;
    openblas_set_num_threads(a->threads);
    rd_error err = {0};
    rd_model *m = bench_model(a, 0, &err);
    rd_ctx *ctx = m ? rd_ctx_new(m, a->B, a->T, &err) : NULL;
    if (!ctx) {
        snprintf(out, cap, "error %s", err.msg);
        return;
    }
    const int V = rd_model_config(m)->vocab_size;
    size_t n = (size_t)a->B * a->T;
    float *logits = malloc(sizeof(float) * n * V);
    int *tokens = malloc(sizeof(int) * n);
    for (size_t i = 0; i < n; i++) tokens[i] = (int)((i * 2654435761u) % (unsigned)V);
    double best = 1e30;
    for (int it = 0; it < 4; it++) {
        rd_ctx_reset(ctx);
        double t0 = cli_now();
        rd_forward(ctx, NULL, tokens, a->B, a->T, RD_LOGITS_ALL, logits, &err);
        double t = cli_now() - t0;
        if (it > 0 && t < best) best = t;
    }
    snprintf(out, cap, "%.1f %ld %zu", (double)n / best, peak_rss_kb(), rd_ctx_bytes(ctx));
    free(tokens);
    free(logits);
    rd_ctx_free(ctx);
    rd_model_free(m);
}

/* Tokens and next-token targets for a training pass over (n) positions, vocabulary V. */
static void bench_tokens(int V, size_t n, int *tokens, int *targets) {
    for (size_t i = 0; i < n; i++) {
        tokens[i] = (int)((i * 2654435761u) % (unsigned)V);
        targets[i] = (int)((i * 40503u + 7) % (unsigned)V);
    }
}

/* Best time of `passes` training passes (0: 3 after a warm-up): RED (view, gv) or full
 * fine-tuning (wg; in bf16 compute the weights are rounded again before each pass, as after an
 * update). Returns seconds, or a negative value with *err set. */
static double time_train_passes(rd_train_ctx *tc, rd_model *m, const rd_edits_view *view,
                                const rd_edits_grad *gv, float *wg, int B, int T, int passes,
                                rd_error *err) {
    const size_t n = (size_t)B * T;
    int *tokens = malloc(sizeof(int) * n), *targets = malloc(sizeof(int) * n);
    double best = 1e30, loss;
    int nt;
    if (!tokens || !targets) {
        rd_error_set(err, "out of memory");
        best = -1;
    } else
        bench_tokens(rd_model_config(m)->vocab_size, n, tokens, targets);
    const int n_pass = passes > 0 ? passes : 4, first = passes > 0 ? 0 : 1;
    for (int it = 0; best > 0 && it < n_pass; it++) {
        double t0 = cli_now();
        if ((wg && rd_model_compute(m) == RD_COMPUTE_BF16 && rd_model_repack(m, err)) ||
            rd_train_pass(tc, view, gv, wg, tokens, targets, B, T, &loss, &nt, err))
            best = -1;
        double t = cli_now() - t0;
        if (best > 0 && it >= first && t < best) best = t;
    }
    free(tokens);
    free(targets);
    return best;
}

/* The edit set a training-step measurement trains: RED on the ffn output (scale and bias),
 * LoRA r = 8 on q and v (PEFT's defaults), or IA3 — every layer. */
static rd_edit_spec bench_spec(int method) {
    if (method == RD_METHOD_LORA)
        return (rd_edit_spec){.method = RD_METHOD_LORA, .layers = "all", .rank = 8,
                              .lora_alpha = 8, .lora_targets = RD_LORA_DEFAULT_TARGETS,
                              .seed = 1};
    if (method == RD_METHOD_IA3) return (rd_edit_spec){.method = RD_METHOD_IA3, .layers = "all"};
    return (rd_edit_spec){.sites = RD_SITE_FFN, .layers = "all", .scale = 1, .bias = 1};
}

/* Training step of an edit set (forward, cross-entropy, backward to the trained numbers on
 * all layers; a->method: RED ffn, LoRA r 8 q v or IA3) at (B, T), with checkpointing when
 * the argument asks; best of a->passes (0: 3 after a warm-up). The optimizer update of the
 * trained numbers is small (RED 2·L·d, LoRA r·L·(3d + kv) numbers) and is not included. */
static void run_train(const void *p, char *out, size_t cap) {
    const model_arg *a = p;
    openblas_set_num_threads(a->threads);
    rd_error err = {0};
    rd_model *m = bench_model(a, 1, &err);
    rd_edit_spec spec = bench_spec(a->method);
    rd_edits *e = m ? rd_edits_new(rd_model_config(m), &spec, &err) : NULL;
    rd_train_ctx *tc = e ? rd_train_ctx_new(m, a->B, a->T, a->checkpointing, &err) : NULL;
    float *grad = tc ? calloc(rd_edits_param_count(e), sizeof(float)) : NULL;
    rd_edits_grad gv = {0};
    if (!grad || rd_edits_grad_new(e, grad, &gv, &err)) {
        snprintf(out, cap, "error %s", err.msg);
        return;
    }
    rd_edits_view view = rd_edits_view_at(e, 1.0f);
    const double best = time_train_passes(tc, m, &view, &gv, NULL, a->B, a->T, a->passes, &err);
    if (best < 0)
        snprintf(out, cap, "error %s", err.msg);
    else
        snprintf(out, cap, "%.1f %ld %zu", (double)a->B * a->T / best, peak_rss_kb(),
                 rd_train_ctx_bytes(tc));
    rd_edits_grad_free(&gv);
    free(grad);
    rd_train_ctx_free(tc);
    rd_edits_free(e);
    rd_model_free(m);
}

/* Full fine-tuning step (forward, cross-entropy, backward through every weight; in bf16 the
 * weights re-rounded first) at (B, T); best of 3 after a warm-up. The AdamW update is left
 * out, as in the PyTorch peer (tools/bench/torch_peer.py). */
static void run_full_train(const void *p, char *out, size_t cap) {
    const model_arg *a = p;
    openblas_set_num_threads(a->threads);
    rd_error err = {0};
    rd_model *m = bench_model(a, 1, &err);
    rd_train_ctx *tc = m && rd_model_make_trainable(m, &err) == 0
                           ? rd_train_ctx_new(m, a->B, a->T, 0, &err)
                           : NULL;
    float *wg = tc ? calloc(m->n_params, sizeof(float)) : NULL;
    const double best =
        wg ? time_train_passes(tc, m, NULL, NULL, wg, a->B, a->T, a->passes, &err) : -1;
    if (best < 0)
        snprintf(out, cap, "error %s", wg || err.msg[0] ? err.msg : "out of memory");
    else
        snprintf(out, cap, "%.1f %ld %zu", (double)a->B * a->T / best, peak_rss_kb(),
                 rd_train_ctx_bytes(tc) + m->n_params * 2 * sizeof(float));
    free(wg);
    rd_train_ctx_free(tc);
    rd_model_free(m);
}

static double train_flops_per_token(const rd_config *c, int T) {
    return 4 * nmm(c) + 6.0 * c->n_layers * T * c->dim;
}

static double full_train_flops_per_token(const rd_config *c, int T) {
    return 6 * nmm(c) + 6.0 * c->n_layers * T * c->dim;
}

/* The PyTorch peer (tools/bench/torch_peer.py) on the same checkpoint, mode "fwd", "red",
 * "full" or one of them with "-bf16": tokens/s and peak RSS (MB). */
static int torch_run(const char *script, const char *model, const char *mode, int B, int T,
                     int threads, double *tok_s, double *rss_mb) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 '%s' '%s' --mode %s --threads %d --B %d --T %d --iters 3 "
             "2>/dev/null", script, model, mode, threads, B, T);
    FILE *fp = popen(cmd, "r");
    if (!fp) return -1;
    char line[8192], last[8192] = {0};
    while (fgets(line, sizeof line, fp)) memcpy(last, line, sizeof last);
    if (pclose(fp) != 0) return -1;
    cJSON *j = cJSON_Parse(last);
    cJSON *v = j ? cJSON_GetObjectItem(j, "tok_s") : NULL;
    cJSON *r = j ? cJSON_GetObjectItem(j, "peak_rss_mb") : NULL;
    int ok = v && cJSON_IsNumber(v);
    if (ok) *tok_s = v->valuedouble;
    *rss_mb = r && cJSON_IsNumber(r) ? r->valuedouble : 0.0;
    cJSON_Delete(j);
    return ok ? 0 : -1;
}

static int ensure_model(const char *path, const shape *s) {
    struct stat st;
    if (stat(path, &st) == 0) return 0;
    fprintf(stderr, "writing %s (random weights, f32)...\n", path);
    rd_error err = {0};
    rd_model_file f;
    if (rd_model_file_random(&f, &s->cfg, 1, 1234, RD_DTYPE_F32, &err) ||
        rd_llama2c_write(path, &f.cfg, &f.w, &err)) {
        fprintf(stderr, "redit bench: %s\n", err.msg);
        rd_model_file_release(&f);
        return -1;
    }
    rd_model_file_release(&f);
    return 0;
}

/* The CPU's model name, the flags that decide which kernels run here, the core count, and the
 * build (compiler, the instruction sets it compiled for). */
static void print_machine(void) {
    char line[8192], cpu[256] = "unknown CPU", flags[512] = "";
    static const char *const WANT[] = {"avx2",        "fma",       "f16c",     "avx512f",
                                       "avx512_vnni", "avx_vnni",  "avx512_bf16", "avx512_fp16",
                                       "amx_tile",    "amx_bf16",  "amx_int8"};
    FILE *fp = fopen("/proc/cpuinfo", "r");
    int have_cpu = 0, have_flags = 0;
    while (fp && fgets(line, sizeof line, fp) && !(have_cpu && have_flags)) {
        char *c = strchr(line, ':');
        if (!c) continue;
        if (!have_cpu && !strncmp(line, "model name", 10)) {
            snprintf(cpu, sizeof cpu, "%s", c + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            have_cpu = 1;
        } else if (!have_flags && !strncmp(line, "flags", 5)) {
            for (size_t i = 0; i < sizeof WANT / sizeof *WANT; i++) {
                char word[40];
                snprintf(word, sizeof word, " %s", WANT[i]);
                const char *at = strstr(c, word);
                const size_t n = strlen(word);
                if (at && (at[n] == ' ' || at[n] == '\n'))
                    snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "%s%s",
                             flags[0] ? " " : "", WANT[i]);
            }
            have_flags = 1;
        }
    }
    if (fp) fclose(fp);
    printf("machine: %s, %ld cores; flags: %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
           flags[0] ? flags : "(none of interest)");
    printf("build: compiler %s, code for%s%s%s%s%s; %s\n", __VERSION__,
#if defined(__AVX2__)
           " avx2",
#else
           " (no avx2)",
#endif
#if defined(__AVX512F__)
           " avx512f",
#else
           "",
#endif
#if defined(__AVX512VNNI__)
           " avx512_vnni",
#else
           "",
#endif
#if defined(__AVX512BF16__)
           " avx512_bf16",
#else
           "",
#endif
#if defined(__AMX_BF16__)
           " amx_bf16",
#else
           "",
#endif
           openblas_get_config());
}

static int known_shape(const char *name) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++)
        if (!strcmp(SHAPES[i].name, name)) return 1;
    return 0;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: redit bench [--dir DIR] [--sections small|methods|7b|all] [--only SHAPE]\n"
            "                   [--rounds N] [--llama-bench PATH] [--no-torch] [--torch-ref SCRIPT]\n\n"
            "Section small (about 20 minutes on 2 cores): random-weight models of the\n"
            "stories15M and stories110M shapes (f32, kept in DIR) — decode (B=1), prefill (B=8,\n"
            "T=256, all logits), a RED and a full fine-tuning training step: tokens/s with 1\n"
            "and 2 threads, GFLOP/s against OpenBLAS sgemm measured in the same run, peak RSS;\n"
            "the training step of RED (ffn), LoRA (r 8 on q, v) and IA3 in alternating rounds,\n"
            "each method's time per step against RED's in the same round;\n"
            "with torch installed, PyTorch runs the same jobs (tools/bench/torch_peer.py, found\n"
            "from the repository root): f32 against f32, bf16 compute against bf16 autocast.\n\n"
            "Section 7b (about 20 minutes on 2 cores today; 4.1 GB of disk, 5 GB of memory): a\n"
            "Llama-2-7B-shaped Q4_K_M GGUF with random weights, written into DIR once (about\n"
            "4 minutes) and reused — decode after a 5- and a 512-token prompt, prompt processing\n"
            "of 5 and 512 tokens, one RED training step (ffn, all 32 layers, 512 tokens,\n"
            "checkpointing), on 2 threads, against the read roofline (bandwidth measured in\n"
            "the round ÷ bytes of weights read per token) and, when a llama-bench is given or on\n"
            "PATH, llama.cpp on the same file; the two run in alternating rounds, the figures\n"
            "are medians and the ratios are of the same rounds. llama.cpp is never built here.\n\n"
            "  -d, --dir DIR          models and results (default build/bench)\n"
            "      --sections S       small, methods, serve, 7b or all (default all);\n"
            "                         methods: only the small section's training step by\n"
            "                         method (RED, LoRA, IA3); serve: only the serving rows\n"
            "                         (one sequence against 16 decoded together with 16\n"
            "                         different RED edit sets, and with one shared set; the\n"
            "                         7B file's 1 against 8 when DIR holds it; and one\n"
            "                         client's completion streamed by redit serve to curl\n"
            "                         against the engine as redit generate runs it), in\n"
            "                         --rounds alternating rounds (at least 3 for the small\n"
            "                         shapes)\n"
            "      --only SHAPE       small section: stories15M or stories110M only\n"
            "      --rounds N         7b section: alternating rounds (default 2)\n"
            "      --llama-bench PATH llama.cpp's llama-bench (default $LLAMA_BENCH, else PATH)\n"
            "      --no-torch         skip PyTorch\n"
            "      --torch-ref FILE   the PyTorch peer script (default tools/bench/torch_peer.py)\n"
            "  -h, --help             this text\n"
            "      --version          redit's version\n");
}

/* The batched jobs (B=8, T=256): measured with 1 and 2 threads, in f32 and (where the CPU
 * has it) bf16 compute, each then against PyTorch's same job in the same precision (f32, or
 * bf16 autocast) on 2 threads for a same-run ratio. */
typedef struct batched_job {
    const char *label, *label_bf16;
    void (*run)(const void *arg, char *out, size_t cap);
    double (*flops_per_token)(const rd_config *c, int T);
    const char *torch_mode, *torch_label;
    const char *torch_mode_bf16, *torch_label_bf16;
} batched_job;

static const batched_job BATCHED[] = {
    {"prefill B=8 T=256, all logits", "prefill B=8 T=256, bf16 compute", run_prefill,
     fwd_flops_per_token, "fwd", "PyTorch forward, f32", "fwd-bf16",
     "PyTorch forward, bf16 autocast"},
    {"RED train step B=8 T=256 (ffn)", "RED train step, bf16 compute", run_train,
     train_flops_per_token, "red", "PyTorch RED train step, f32", "red-bf16",
     "PyTorch RED step, bf16 autocast"},
    {"full FT step B=8 T=256", "full FT step, bf16 compute", run_full_train,
     full_train_flops_per_token, "full", "PyTorch full FT step, f32", "full-bf16",
     "PyTorch full FT, bf16 autocast"},
};

static void bench_batched(const batched_job *job, const char *path, const shape *s,
                          long file_bytes, int have_bf16, const double *gemm,
                          const char *torch_script) {
    static const int threads[] = {1, 2};
    char out[1024];
    for (int k = 0; k < 2 * (have_bf16 ? 2 : 1); k++) {
        const int ti = k % 2, bf16 = k / 2;
        model_arg a = {path, s, threads[ti], 8, 256, file_bytes, bf16, 0, 0, RD_METHOD_RED};
        if (in_child(job->run, &a, out, sizeof out) || !strncmp(out, "error", 5)) {
            printf("  %s failed: %s\n", job->label, out);
            continue;
        }
        const double tok_s = atof(out), gf = tok_s * job->flops_per_token(&s->cfg, 256) / 1e9;
        long rss = 0;
        sscanf(out, "%*f %ld", &rss);
        printf("  %-34s %8d %9.1f %7.1f (%2.0f%%) %6.0f MB\n", bf16 ? job->label_bf16 : job->label,
               threads[ti], tok_s, gf, 100 * gf / gemm[ti], rss / 1024.0);
        const char *mode = bf16 ? job->torch_mode_bf16 : job->torch_mode;
        const char *label = bf16 ? job->torch_label_bf16 : job->torch_label;
        if (!torch_script || threads[ti] != 2) continue;
        double t_tok, t_rss;
        if (torch_run(torch_script, path, mode, 8, 256, 2, &t_tok, &t_rss) == 0)
            printf("  %-34s %8d %9.1f %11s %6.0f MB → redit/torch = %.2f× speed, %.2f× memory\n",
                   label, 2, t_tok, "", t_rss, tok_s / t_tok, rss / 1024.0 / t_rss);
        else
            printf("  %s failed to run\n", label);
    }
}

/* ---- serving: many sequences with their own edit sets, decoded together ------------- */

typedef struct serve_arg {
    const char *path;
    int seqs;     /* sequences decoded together */
    int distinct; /* each with its own RED edit set (else all share one) */
    int tokens;   /* tokens each generates after its prompt */
    int quant;    /* --compute auto's 8-bit activation products (quantized files) */
} serve_arg;

static int count_token(void *user, int id, int token, const char *text, size_t len, float lp) {
    (void)id, (void)token, (void)text, (void)len, (void)lp;
    ++*(long *)user;
    return 0;
}

/* Greedy decode of a->seqs sequences through one rd_batch (2 threads), each with a RED edit
 * set (ffn and attention scale and bias on every layer, moved off the identity; distinct
 * sets, or one shared): the aggregate tokens/s of the decode steps once every prompt is in.
 * Prints "tok_s". */
static void run_serve(const void *p, char *out, size_t cap) {
    const serve_arg *a = p;
    openblas_set_num_threads(2);
    rd_error err = {0};
    rd_model *m = rd_model_load(a->path, NULL, &err);
    if (m && a->quant && rd_model_set_quant_products(m, 1, &err)) {
        rd_model_free(m);
        m = NULL;
    }
    enum { PROMPT = 8, MAX_SEQS = 64 };
    const int n_sets = a->distinct ? a->seqs : 1;
    rd_edits *sets[MAX_SEQS] = {0};
    const rd_edit_spec spec = {.sites = RD_SITE_BOTH, .layers = "all", .scale = 1, .bias = 1};
    int ok = m != NULL && a->seqs <= MAX_SEQS;
    for (int i = 0; ok && i < n_sets; i++) {
        ok = (sets[i] = rd_edits_new(rd_model_config(m), &spec, &err)) != NULL;
        float *v = ok ? rd_edits_params(sets[i]) : NULL;
        for (size_t k = 0; ok && k < rd_edits_param_count(sets[i]); k++)
            v[k] += 0.01f * (float)((k * 2654435761u + (size_t)i * 40503u) % 201 - 100) / 100.0f;
    }
    const rd_batch_opts bo = {.slots = a->seqs, .max_seq = PROMPT + a->tokens + a->seqs + 1};
    rd_batch *b = ok ? rd_batch_new(m, &bo, &err) : NULL;
    rd_edits_view views[MAX_SEQS];
    rd_gen_opts go = {.sampling = rd_sampling_defaults(), .max_tokens = a->tokens};
    go.sampling.temperature = 0;
    long tokens = 0;
    for (int i = 0; b && i < a->seqs; i++) {
        int prompt[PROMPT];
        for (int k = 0; k < PROMPT; k++) prompt[k] = 1 + (int)((i * 7919u + k * 104729u) % 1000u);
        views[i] = rd_edits_view_at(sets[a->distinct ? i : 0], 1.0f);
        go.max_tokens = a->tokens + (a->seqs - 1 - i); /* joined at step i: all end together */
        if (rd_batch_add(b, &views[i], prompt, PROMPT, &go, &tokens, &err) < 0) ok = 0;
    }
    /* prefill every prompt (one per step; those done decode meanwhile), then time */
    ok = ok && b;
    for (int i = 0; ok && i < a->seqs + 1; i++) ok = rd_batch_step(b, NULL, NULL, &err) >= 0;
    const double t0 = cli_now();
    int running = 1;
    while (ok && running > 0) ok = (running = rd_batch_step(b, count_token, NULL, &err)) >= 0;
    const double t = cli_now() - t0;
    if (ok && tokens > 0)
        snprintf(out, cap, "%.2f", (double)tokens / t);
    else
        snprintf(out, cap, "error %s", err.msg[0] ? err.msg : "nothing decoded");
    rd_batch_free(b);
    for (int i = 0; i < n_sets; i++) rd_edits_free(sets[i]);
    rd_model_free(m);
}

static double median(double *v, int n);

/* The serving rows: single-sequence decode, `seqs` sequences with different RED edit sets
 * and `seqs` with one shared set (when same_too), in alternating rounds: median tok/s, and
 * the same-round ratios' median (range). */
static void bench_serve(const char *path, const char *what, int seqs, int tokens, int quant,
                        int rounds, int same_too) {
    enum { MAX_R = 8 };
    if (rounds > MAX_R) rounds = MAX_R;
    double v[3][MAX_R] = {{0}};
    char out[1024];
    const int jobs = same_too ? 3 : 2;
    int n = 0;
    printf("  serving, %s: greedy decode through the batch engine, 2 threads, %d alternating "
           "rounds\n", what, rounds);
    for (int r = 0; r < rounds; r++, n++) {
        for (int k = 0; k < jobs; k++) {
            serve_arg a = {path, k == 0 ? 1 : seqs, k != 2, tokens, quant};
            if (in_child(run_serve, &a, out, sizeof out) || !strncmp(out, "error", 5)) {
                printf("  serving run failed: %s\n", out);
                return;
            }
            v[k][r] = atof(out);
        }
        printf("  round %d: 1 sequence %.1f tok/s, %d with different edit sets %.1f", r + 1,
               v[0][r], seqs, v[1][r]);
        if (same_too) printf(", %d with one shared set %.1f", seqs, v[2][r]);
        printf("\n");
        fflush(stdout);
    }
    double q[MAX_R], w[MAX_R];
    for (int r = 0; r < n; r++) q[r] = v[1][r] / v[0][r], w[r] = v[0][r];
    const double single = median(w, n);
    double mq = median(q, n);
    printf("  %-46s %9.1f tok/s\n", "decode, 1 sequence (RED edits)", single);
    for (int r = 0; r < n; r++) w[r] = v[1][r];
    char label[96];
    snprintf(label, sizeof label, "decode, %d sequences, %d different RED sets", seqs, seqs);
    printf("  %-46s %9.1f tok/s aggregate: %.2f× one sequence (%.2f–%.2f)\n", label,
           median(w, n), mq, q[0], q[n - 1]);
    if (!same_too) return;
    for (int r = 0; r < n; r++) q[r] = v[2][r] / v[1][r], w[r] = v[2][r];
    mq = median(q, n);
    snprintf(label, sizeof label, "decode, %d sequences, one shared RED set", seqs);
    printf("  %-46s %9.1f tok/s aggregate: different sets take %.3f× its time (%.3f–%.3f)\n",
           label, median(w, n), mq, q[0], q[n - 1]);
}

/* ---- serving overhead: a streamed completion against the engine alone ---------------- */

static int placeholder_vocab(int n, rd_vocab *out, rd_error *err);

enum { OV_PROMPT = 8 };

typedef struct overhead_arg {
    const char *model, *edits;
    int tokens, ctx;
} overhead_arg;

/* The prompt both sides decode: ids of the placeholder vocabulary's "▁tN" pieces. */
static void overhead_prompt(int *ids) {
    for (int k = 0; k < OV_PROMPT; k++) ids[k] = 300 + (int)((k * 104729u) % 20000u);
}

static int overhead_token(void *user, int token, const char *text, size_t len) {
    double *t = user; /* first and last token's time, count */
    (void)token, (void)text, (void)len;
    t[1] = cli_now();
    if (t[2]++ == 0) t[0] = t[1];
    return 0;
}

/* The engine as `redit generate -t 2 --edits FILE --temp 0 --ids …` runs it (the CLI's own
 * model and edit loading, one context, rd_generate): tokens/s from the first token to the
 * last of the second of two runs (the first warms up, as the server's first request does).
 * Prints "tok_s". */
static void run_engine_stream(const void *p, char *out, size_t cap) {
    const overhead_arg *a = p;
    rd_error err = {0};
    const cli_model_args ma = {.path = a->model, .threads = 2, .compute = "auto"}; /* its default */
    cli_edits_args ea = CLI_EDITS_ARGS_DEFAULT;
    ea.path = a->edits;
    rd_edits *e = NULL;
    rd_model *m = cli_open_model("bench", &ma, 0);
    rd_ctx *ctx = m && !cli_open_edits(&ea, m, &e, NULL) ? rd_ctx_new(m, 1, a->ctx, &err) : NULL;
    const rd_edits_view view = cli_edits_view(&ea, e);
    rd_gen_opts go = {.sampling = rd_sampling_defaults(), .max_tokens = a->tokens};
    go.sampling.temperature = 0;
    int prompt[OV_PROMPT];
    overhead_prompt(prompt);
    double t[3] = {0};
    rd_gen_stats st;
    int bad = !ctx;
    for (int run = 0; run < 2 && !bad; run++) {
        t[2] = 0;
        if (run) rd_ctx_reset(ctx);
        bad = rd_generate(ctx, &view, prompt, OV_PROMPT, &go, overhead_token, t, NULL, &st,
                          &err) || t[2] < 2;
    }
    if (bad)
        snprintf(out, cap, "error %s", err.msg[0] ? err.msg : "the model or edits did not load");
    else
        snprintf(out, cap, "%.3f", (t[2] - 1) / (t[1] - t[0]));
    rd_ctx_free(ctx);
    rd_edits_free(e);
    rd_model_free(m);
}

/* One streamed greedy completion through `curl -sN` (read through a pipe, each event
 * time-stamped as it arrives): tokens/s from the first event with text to the last, over
 * the usage chunk's completion_tokens less one (an event carries more than one token when
 * the server holds back an unfinished UTF-8 character); *events gets the count of events
 * with text, *status curl's wait status. -1 when curl fails. */
static double curl_stream(int port, const overhead_arg *a, int *events, int *status) {
    char cmd[1024];
    int prompt[OV_PROMPT], n = snprintf(cmd, sizeof cmd, "curl -sN --max-time 600 "
                                        "-H 'Content-Type: application/json' http://127.0.0.1:%d"
                                        "/v1/completions -d '{\"model\": \"red\", \"prompt\": [",
                                        port);
    overhead_prompt(prompt);
    for (int k = 0; k < OV_PROMPT; k++) n += snprintf(cmd + n, sizeof cmd - (size_t)n, "%s%d", k ? ", " : "", prompt[k]);
    snprintf(cmd + n, sizeof cmd - (size_t)n, "], \"max_tokens\": %d, \"temperature\": 0, "
             "\"ignore_eos\": true, \"stream\": true, \"stream_options\": "
             "{\"include_usage\": true}}'", a->tokens);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char line[4096];
    double first = 0, last = 0;
    int tokens = 0;
    *events = 0;
    while (fgets(line, sizeof line, f)) {
        const double now = cli_now();
        const char *u = strstr(line, "\"completion_tokens\":");
        if (u) tokens = atoi(u + 20);
        if (strncmp(line, "data: {", 7) || !strstr(line, "\"text\":\"") ||
            strstr(line, "\"text\":\"\""))
            continue; /* blank lines, [DONE], the final chunk (no text) */
        if ((*events)++ == 0) first = now;
        last = now;
    }
    *status = pclose(f);
    return *status == 0 && *events > 1 && tokens > 1 ? (tokens - 1) / (last - first) : -1;
}

/* `redit serve` (2 threads, one RED edit set) on a free loopback port with its log in
 * log_path; its pid, and its port in *port, or -1. */
static pid_t start_server(const char *model, const char *edits, int ctx, const char *log_path,
                          int *port) {
    char exe[4096], arg_edits[4200], arg_ctx[32];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = '\0';
    snprintf(arg_edits, sizeof arg_edits, "red=%s", edits);
    snprintf(arg_ctx, sizeof arg_ctx, "%d", ctx);
    unlink(log_path); /* (a former run's "listening" line must not be read) */
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        const int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 2);
        execl(exe, exe, "serve", "-m", model, "--edits", arg_edits, "--port", "0", "-t", "2",
              "--ctx", arg_ctx, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; pid > 0 && i < 1800; i++) { /* up to 3 minutes: a 7B file loads slowly */
        FILE *f = fopen(log_path, "r");
        char l[512];
        while (f && fgets(l, sizeof l, f)) {
            const char *at = strstr(l, "listening on http://");
            if (at && sscanf(strchr(at + 20, ':'), ":%d", port) == 1) {
                fclose(f);
                return pid;
            }
        }
        if (f) fclose(f);
        if (waitpid(pid, NULL, WNOHANG) == pid) return -1;
        usleep(100000);
    }
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    return -1;
}

/* The server's overhead for one client: a streamed greedy completion of `tokens` tokens
 * with one RED edit set through `redit serve` and curl, against the same prompt and edits
 * decoded by the engine as `redit generate` does (a child process), in alternating rounds:
 * median tokens/s of each, the median of the same rounds' ratios (range). model must have a
 * tokenizer (each token an event with text). */
static void bench_serve_overhead(const char *model, const char *dir, const char *what,
                                 int tokens, int ctx, int rounds) {
    enum { MAX_R = 8 };
    if (rounds > MAX_R) rounds = MAX_R;
    printf("  serving overhead, %s: one client streaming %d greedy tokens (RED edit set) "
           "through redit serve + curl vs the engine as redit generate runs it, 2 threads, %d "
           "alternating rounds\n", what, tokens, rounds);
    if (system("command -v curl >/dev/null 2>&1") != 0) {
        printf("  SKIPPED: curl is not installed (apt-get install curl)\n");
        return;
    }
    char edits[4096], log_path[4096], out[1024];
    snprintf(edits, sizeof edits, "%s/serve-overhead-red.safetensors", dir);
    snprintf(log_path, sizeof log_path, "%s/serve-overhead.log", dir);
    rd_error err = {0};
    rd_model *m = rd_model_load(model, NULL, &err);
    const rd_edit_spec spec = {.sites = RD_SITE_BOTH, .layers = "all", .scale = 1, .bias = 1};
    rd_edits *e = m ? rd_edits_new(rd_model_config(m), &spec, &err) : NULL;
    for (size_t k = 0; e && k < rd_edits_param_count(e); k++)
        rd_edits_params(e)[k] += 0.01f * (float)((k * 2654435761u) % 201 - 100) / 100.0f;
    const int saved = e && rd_edits_save(e, m, NULL, edits, &err) == 0;
    rd_edits_free(e);
    rd_model_free(m);
    if (!saved) {
        printf("  serving overhead failed: %s\n", err.msg);
        return;
    }
    int port = 0, events = 0, status = 0;
    const pid_t pid = start_server(model, edits, ctx, log_path, &port);
    if (pid < 0) {
        printf("  serving overhead failed: redit serve did not start (its log: %s)\n", log_path);
        return;
    }
    const overhead_arg a = {model, edits, tokens, ctx};
    double v[2][MAX_R], q[MAX_R];
    int n = 0;
    curl_stream(port, &a, &events, &status); /* warm-up: the model's pages, the threads */
    for (int r = 0; r < rounds; r++) {
        v[0][r] = curl_stream(port, &a, &events, &status);
        if (v[0][r] <= 0) {
            printf("  serving overhead failed: the curl stream (wait status %d, %d events; the "
                   "server's log: %s)\n", status, events, log_path);
            break;
        }
        if (in_child(run_engine_stream, &a, out, sizeof out) || !strncmp(out, "error", 5)) {
            printf("  serving overhead failed: %s\n", out);
            break;
        }
        v[1][r] = atof(out);
        q[r] = v[0][r] / v[1][r];
        printf("  round %d: redit serve + curl %.2f tok/s (%d events with text), engine %.2f "
               "tok/s\n", r + 1, v[0][r], events, v[1][r]);
        fflush(stdout);
        n++;
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (n == 0) return;
    const double mq = median(q, n); /* (sorts q: the range is q[0]..q[n - 1]) */
    printf("  %-46s %9.2f tok/s: %.3f× the engine's %.2f tok/s (%.3f–%.3f)\n",
           "streamed completion through redit serve", median(v[0], n), mq, median(v[1], n),
           q[0], q[n - 1]);
}

/* The stories shape as a GGUF with the placeholder vocabulary (the same weights as its .bin),
 * so that every token the server streams has text. */
static int ensure_vocab_model(const char *path, const shape *s) {
    struct stat st;
    if (stat(path, &st) == 0) return 0;
    rd_error err = {0};
    rd_model_file f;
    int rc = -1;
    if (!rd_model_file_random(&f, &s->cfg, 1, 1234, RD_DTYPE_F32, &err)) {
        rc = placeholder_vocab(s->cfg.vocab_size, &f.vocab, &err) ||
             rd_gguf_write(path, &f, RD_DTYPE_COUNT, &err);
        rd_model_file_release(&f);
    }
    if (rc) printf("  (cannot write %s: %s)\n", path, err.msg);
    return rc;
}

/* ---- the 7b section ----------------------------------------------------------------- */

static const rd_config LLAMA2_7B = {4096, 11008, 32, 32, 32, 32000, 4096,
                                    1e-5f, 10000.0f, RD_ROPE_ADJACENT};
enum { PROMPT_SHORT = 5, PROMPT_LONG = 512, DECODE_7B = 32 };

/* A 32000-piece placeholder vocabulary (<unk> <s> </s>, the 256 byte pieces, then "▁tN"),
 * so that llama.cpp, which needs one, loads the file: the bench works in token ids. */
static int placeholder_vocab(int n, rd_vocab *out, rd_error *err) {
    char **pieces = calloc((size_t)n, sizeof *pieces);
    char *text = malloc((size_t)n * 16);
    int rc = -1;
    if (pieces && text) {
        for (int i = 0; i < n; i++) {
            pieces[i] = text + (size_t)i * 16;
            if (i < 3)
                snprintf(pieces[i], 16, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            else if (i < 3 + 256)
                snprintf(pieces[i], 16, "<0x%02X>", i - 3);
            else
                snprintf(pieces[i], 16, RD_SPACE_MARK "t%d", i);
        }
        rd_vocab_spec spec = {.n_pieces = n, .pieces = (const char *const *)pieces,
                              .bos_id = 1, .eos_id = 2, .unk_id = 0, .add_dummy_prefix = 1};
        rc = rd_vocab_from_spec(out, &spec, "the bench's placeholder vocabulary", err);
    } else
        rd_error_set(err, "out of memory");
    free(pieces);
    free(text);
    return rc;
}

/* Writes the 7B-shaped Q4_K_M model (untied, as Llama-2-7B; seed 1) at the path given. */
static void run_make_7b(const void *p, char *out, size_t cap) {
    const char *path = p;
    rd_error err = {0};
    rd_model_file f = {0};
    double t0 = cli_now();
    if (rd_memory_check((size_t)4400 << 20, "the 7B Q4_K_M model", &err) ||
        rd_model_file_random_mix(&f, &LLAMA2_7B, 0, 1, RD_MIX_Q4_K_M, &err) ||
        placeholder_vocab(LLAMA2_7B.vocab_size, &f.vocab, &err)) {
        snprintf(out, cap, "error %s", err.msg);
        rd_model_file_release(&f);
        return;
    }
    snprintf(f.name, sizeof f.name, "random llama2-7b Q4_K_M");
    if (rd_gguf_write(path, &f, RD_DTYPE_COUNT, &err))
        snprintf(out, cap, "error %s", err.msg);
    else
        snprintf(out, cap, "%.1f", cli_now() - t0);
    rd_model_file_release(&f);
}

/* Bytes of weights one decode step reads: every layer's matrices and norms, the final norm
 * and the classifier (the embeddings only when they are the classifier). */
static double weights_per_token(const rd_model_file *f) {
    const rd_weights *w = &f->w;
    double b = (double)w->classifier.rows * w->classifier.row_bytes;
    for (int l = 0; l < f->cfg.n_layers; l++) {
        const rd_layer_weights *L = &w->layers[l];
        const rd_matrix *m[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (size_t i = 0; i < sizeof m / sizeof *m; i++) b += (double)m[i]->rows * m[i]->row_bytes;
        b += 2.0 * f->cfg.dim * sizeof(float);
    }
    return b + (double)f->cfg.dim * sizeof(float);
}

/* One greedy decode of n tokens after what ctx holds; returns seconds or -1. */
static double decode_chain(rd_ctx *ctx, float *logits, int V, int tok, int n, rd_error *err) {
    double t0 = cli_now();
    for (int i = 0; i < n; i++) {
        if (rd_forward(ctx, NULL, &tok, 1, 1, RD_LOGITS_LAST, logits, err)) return -1;
        tok = argmax(logits, V);
    }
    return cli_now() - t0;
}

/* redit's inference jobs on the 7B file, 2 threads: a warm-up token, then prompt 5 + decode
 * DECODE_7B, then (context reset) prompt 512 + decode DECODE_7B. Prints "pp5 tg5 pp512
 * tg512 rss_kb" (tokens/s). */
static void run_7b_infer(const void *p, char *out, size_t cap) {
    const model_arg *a = p;
    openblas_set_num_threads(a->threads);
    rd_error err = {0};
    rd_model *m = bench_model(a, 0, &err);
    rd_ctx *ctx = m ? rd_ctx_new(m, 1, PROMPT_LONG + DECODE_7B + 8, &err) : NULL;
    const int V = m ? rd_model_config(m)->vocab_size : 1;
    float *logits = malloc(sizeof(float) * (size_t)V);
    int tokens[PROMPT_LONG];
    for (int i = 0; i < PROMPT_LONG; i++) tokens[i] = 3 + (int)((i * 2654435761u) % (unsigned)(V - 3));
    double r[4] = {0};
    int ok = ctx && logits;
    if (ok) { /* warm-up: the mapped file's pages and the pool */
        ok = decode_chain(ctx, logits, V, 1, 1, &err) >= 0;
        rd_ctx_reset(ctx);
    }
    for (int k = 0; ok && k < 2; k++) {
        const int n = k ? PROMPT_LONG : PROMPT_SHORT;
        rd_ctx_reset(ctx);
        double t0 = cli_now();
        ok = rd_forward(ctx, NULL, tokens, 1, n, RD_LOGITS_LAST, logits, &err) == 0;
        const double tp = cli_now() - t0;
        const double td = ok ? decode_chain(ctx, logits, V, argmax(logits, V), DECODE_7B,
                                            &err)
                             : -1;
        ok = ok && td > 0;
        r[2 * k] = n / tp;
        r[2 * k + 1] = DECODE_7B / td;
    }
    if (ok)
        snprintf(out, cap, "%.3f %.3f %.3f %.3f %ld", r[0], r[1], r[2], r[3], peak_rss_kb());
    else
        snprintf(out, cap, "error %s", err.msg[0] ? err.msg : "out of memory");
    free(logits);
    rd_ctx_free(ctx);
    rd_model_free(m);
}

/* A llama-bench: the path given, else $LLAMA_BENCH, else "llama-bench" on PATH; NULL when
 * none is executable. Never built by the project. */
static const char *find_llama_bench(const char *given, char *buf, size_t cap) {
    if (!given) given = getenv("LLAMA_BENCH");
    if (given && given[0]) return access(given, X_OK) == 0 ? given : NULL;
    const char *path = getenv("PATH");
    while (path && *path) {
        const size_t n = strcspn(path, ":");
        snprintf(buf, cap, "%.*s/llama-bench", (int)n, path);
        if (n && access(buf, X_OK) == 0) return buf;
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* Runs llama-bench with `args` (2 threads, one repetition, JSON) and collects the tokens/s
 * of its tests: pp (n_gen 0) by n_prompt, tg (n_prompt 0) by n_depth. */
typedef struct llama_rates {
    double pp5, pp512, tg0, tg512;
} llama_rates;

static int llama_run(const char *exe, const char *model, const char *args, llama_rates *r) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -t 2 -r 1 -o json %s 2>/dev/null", exe, model, args);
    FILE *fp = popen(cmd, "r");
    if (!fp) return -1;
    rd_buf text = {0};
    int ok = rd_buf_read(&text, fp) == 0;
    if (pclose(fp) != 0) ok = 0;
    cJSON *j = ok && text.data ? cJSON_Parse(text.data) : NULL;
    int found = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, j) {
        const cJSON *np = cJSON_GetObjectItem(t, "n_prompt"), *ng = cJSON_GetObjectItem(t, "n_gen"),
                    *nd = cJSON_GetObjectItem(t, "n_depth"), *ts = cJSON_GetObjectItem(t, "avg_ts");
        if (!cJSON_IsNumber(np) || !cJSON_IsNumber(ng) || !cJSON_IsNumber(ts)) continue;
        const int depth = cJSON_IsNumber(nd) ? nd->valueint : 0;
        if (ng->valueint == 0 && np->valueint == PROMPT_SHORT) r->pp5 = ts->valuedouble, found++;
        if (ng->valueint == 0 && np->valueint == PROMPT_LONG) r->pp512 = ts->valuedouble, found++;
        if (np->valueint == 0 && depth == 0) r->tg0 = ts->valuedouble, found++;
        if (np->valueint == 0 && depth == PROMPT_LONG) r->tg512 = ts->valuedouble, found++;
    }
    cJSON_Delete(j);
    rd_buf_free(&text);
    return found ? 0 : -1;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (n ≥ 1; sorts them). */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

enum { MAX_ROUNDS = 16 };

/* The training step of each method (RED ffn, LoRA r 8 on q v, IA3; B=8, T=256, 2 threads)
 * in alternating rounds (RED, LoRA, IA3, RED, ...), in f32 and (where the CPU has it) bf16
 * compute: median tokens/s, and each method's time per step over RED's in the same round —
 * the median (range) of the rounds. */
static void bench_methods(const char *path, const shape *s, long file_bytes, int have_bf16) {
    enum { ROUNDS = 3, N_METHODS = 3 };
    static const int METHODS[N_METHODS] = {RD_METHOD_RED, RD_METHOD_LORA, RD_METHOD_IA3};
    static const char *const LABELS[N_METHODS] = {"RED (ffn)", "LoRA r=8 (q,v)", "IA3"};
    printf("  training step by method, B=8 T=256, 2 threads, %d alternating rounds: median "
           "tok/s;\n  time per step ÷ RED's in the same round, median (range)\n", ROUNDS);
    char out[1024];
    for (int bf16 = 0; bf16 <= (have_bf16 ? 1 : 0); bf16++) {
        double tok[N_METHODS][ROUNDS] = {{0}};
        int ok = 1;
        for (int r = 0; r < ROUNDS && ok; r++)
            for (int k = 0; k < N_METHODS && ok; k++) {
                model_arg a = {path, s, 2, 8, 256, file_bytes, bf16, 0, 0, METHODS[k]};
                if (in_child(run_train, &a, out, sizeof out) || !strncmp(out, "error", 5)) {
                    printf("  %s train step failed: %s\n", LABELS[k], out);
                    ok = 0;
                } else {
                    tok[k][r] = atof(out);
                }
            }
        for (int k = 0; ok && k < N_METHODS; k++) {
            double q[ROUNDS], v[ROUNDS];
            for (int r = 0; r < ROUNDS; r++) {
                q[r] = tok[0][r] / tok[k][r];
                v[r] = tok[k][r];
            }
            const double mq = median(q, ROUNDS); /* (sorts q: q[0] low, q[ROUNDS-1] high) */
            char label[64];
            snprintf(label, sizeof label, "%s step, %s", LABELS[k], bf16 ? "bf16" : "f32");
            printf("  %-34s %8d %9.1f   %.2f× RED (%.2f–%.2f)\n", label, 2, median(v, ROUNDS), mq,
                   q[0], q[ROUNDS - 1]);
        }
    }
}

/* One row of the 7b table: redit's and llama.cpp's figures of every round. */
typedef struct row7 {
    const char *label;
    double redit[MAX_ROUNDS], llama[MAX_ROUNDS];
} row7;

static void print_row7(const row7 *r, int rounds, int have_llama, const char *note) {
    double a[MAX_ROUNDS], b[MAX_ROUNDS], q[MAX_ROUNDS];
    int nq = 0;
    for (int i = 0; i < rounds; i++) {
        a[i] = r->redit[i];
        b[i] = r->llama[i];
        if (b[i] > 0 && a[i] > 0) q[nq++] = a[i] / b[i];
    }
    printf("  %-42s %8.2f", r->label, median(a, rounds));
    if (have_llama && nq) {
        double low = q[0], hi = q[0];
        for (int i = 1; i < nq; i++) low = q[i] < low ? q[i] : low, hi = q[i] > hi ? q[i] : hi;
        printf(" %10.2f %7.2f× (%.2f–%.2f)", median(b, rounds), median(q, nq), low, hi);
    } else
        printf(" %10s %7s %11s", "—", "", "");
    printf("  %s\n", note);
}

/* What --compute auto picks here and why ("bf16 GEMMs for ... (auto: ...)"). */
static void run_compute_auto(const void *unused, char *out, size_t cap) {
    (void)unused;
    const char *why = "";
    rd_compute mode = RD_COMPUTE_F32;
    rd_compute_auto(&why);
    rd_compute_from_name("auto", &mode);
    snprintf(out, cap, "%s GEMMs for long prompts and training (%s)",
             mode == RD_COMPUTE_BF16 ? "bf16" : "f32", why);
}

/* The 7b section: the model (made once in dir), then `rounds` alternating rounds of redit's
 * inference, llama.cpp's (when exe is not NULL) and redit's RED training step. */
static int bench_7b(const char *dir, int rounds, const char *exe, const double *gemm) {
    char path[4096], out[1024];
    snprintf(path, sizeof path, "%s/llama2-7b-q4km.gguf", dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("\nwriting %s (random weights, Q4_K_M, 4.1 GB; once)...\n", path);
        if (in_child(run_make_7b, path, out, sizeof out) || !strncmp(out, "error", 5)) {
            printf("  7b section skipped: %s\n", out);
            return 0;
        }
        printf("  written in %.0f s\n", atof(out));
    }
    rd_error err = {0};
    rd_model_file f = {0};
    if (stat(path, &st) != 0 || rd_gguf_load(path, &f, &err)) {
        printf("  7b section skipped: %s\n", err.msg[0] ? err.msg : "no model file");
        return 0;
    }
    const double per_token = weights_per_token(&f);
    rd_model_file_release(&f);
    const rd_config *c = &LLAMA2_7B;
    printf("\nllama2-7b Q4_K_M (random weights, untied; dim %d, hidden %d, %d layers, vocab %d): "
           "file %.2f GB, weights read per token %.2f GB\n", c->dim, c->hidden_dim, c->n_layers,
           c->vocab_size, (double)st.st_size / 1e9, per_token / 1e9);
    /* measured in a child: the parent must not start the thread pool, or every fork()ed
     * measurement after it would run on one thread (the pool of a forked child has no
     * workers) */
    char why[1024];
    if (in_child(run_compute_auto, NULL, why, sizeof why)) snprintf(why, sizeof why, "?");
    printf("redit runs as --compute auto (what generate, chat and the workbench use): 8-bit "
           "activation products for decode and short prompts; %s\n", why);
    printf("2 threads, %d alternating round%s (redit, llama.cpp, redit training); medians, and "
           "the ratio's median (range) over the rounds\n", rounds, rounds > 1 ? "s" : "");
    if (!exe) printf("llama.cpp: not measured: set LLAMA_BENCH=/path/to/llama-bench (or put it on "
                     "PATH; never built here)\n");
    else
        printf("llama.cpp: %s\n", exe);
    row7 rows[5] = {{.label = "decode tok/s, after a 5-token prompt"},
                    {.label = "decode tok/s, after a 512-token prompt"},
                    {.label = "prompt tok/s, 5 tokens"},
                    {.label = "prompt tok/s, 512 tokens"},
                    {.label = "RED train step tok/s (ffn×32, T=512, ckpt)"}};
    double bw[MAX_ROUNDS] = {0};
    long rss_infer = 0, rss_train = 0;
    int n = 0;
    for (int r = 0; r < rounds; r++, n++) {
        bandwidth_arg ba = {2, (size_t)1 << 30};
        bw[r] = in_child(run_bandwidth, &ba, out, sizeof out) == 0 ? atof(out) : 0;
        model_arg a = {path, NULL, 2, 1, PROMPT_LONG, (long)st.st_size, -1, 1, 1, RD_METHOD_RED};
        double v[4] = {0};
        if (in_child(run_7b_infer, &a, out, sizeof out) || !strncmp(out, "error", 5)) {
            printf("  redit inference failed: %s\n", out);
            break;
        }
        sscanf(out, "%lf %lf %lf %lf %ld", &v[2], &v[0], &v[3], &v[1], &rss_infer);
        for (int k = 0; k < 4; k++) rows[k].redit[r] = v[k];
        llama_rates lr = {0};
        if (exe) {
            char args[128];
            snprintf(args, sizeof args, "-p %d,%d -n %d", PROMPT_SHORT, PROMPT_LONG, DECODE_7B);
            if (llama_run(exe, path, args, &lr)) printf("  llama-bench failed: %s %s\n", exe, args);
            snprintf(args, sizeof args, "-p 0 -n %d -d %d", DECODE_7B, PROMPT_LONG);
            if (llama_run(exe, path, args, &lr)) printf("  llama-bench failed: %s %s\n", exe, args);
        }
        rows[0].llama[r] = lr.tg0, rows[1].llama[r] = lr.tg512;
        rows[2].llama[r] = lr.pp5, rows[3].llama[r] = lr.pp512;
        printf("  round %d: read bandwidth %.1f GB/s; decode after 5 / 512, prompt 5 / 512 "
               "tok/s: redit %.2f / %.2f, %.2f / %.2f", r + 1, bw[r], v[0], v[1], v[2], v[3]);
        if (exe)
            printf("; llama.cpp %.2f / %.2f, %.2f / %.2f", lr.tg0, lr.tg512, lr.pp5, lr.pp512);
        printf("\n");
        fflush(stdout);
        if (in_child(run_train, &(model_arg){path, NULL, 2, 1, PROMPT_LONG, 0, -1, 1, 1, RD_METHOD_RED}, out,
                     sizeof out) ||
            !strncmp(out, "error", 5)) {
            printf("  redit RED training step failed: %s\n", out);
            break;
        }
        rows[4].redit[r] = atof(out);
        sscanf(out, "%*f %ld", &rss_train);
        printf("  round %d: redit RED training step %.2f tok/s\n", r + 1, rows[4].redit[r]);
        fflush(stdout);
    }
    if (n == 0) return 0;
    const double bwm = median(bw, n), roof = bwm * 1e9 / per_token;
    const double pp_flops = 2 * (nmm(c) - (double)c->vocab_size * c->dim) +
                            2.0 * c->n_layers * PROMPT_LONG * c->dim; /* logits of the last only */
    double rr[MAX_ROUNDS], rl[MAX_ROUNDS];
    for (int i = 0; i < n; i++) rr[i] = rows[0].redit[i], rl[i] = rows[0].llama[i];
    const double d_r = median(rr, n), d_l = median(rl, n);
    printf("  %-42s %8s %10s %8s %11s  %s\n", "job", "redit", "llama.cpp", "ratio", "(range)",
           "ceiling");
    char note[256];
    snprintf(note, sizeof note, "read roofline %.1f tok/s (%.1f GB/s): redit %.0f%%", roof, bwm,
             100 * d_r / roof);
    if (exe && d_l > 0)
        snprintf(note + strlen(note), sizeof note - strlen(note), ", llama.cpp %.0f%%",
                 100 * d_l / roof);
    print_row7(&rows[0], n, exe != NULL, note);
    print_row7(&rows[1], n, exe != NULL, "(the roofline plus the KV cache's reads)");
    print_row7(&rows[2], n, exe != NULL, "");
    for (int i = 0; i < n; i++) rr[i] = rows[3].redit[i];
    const double pp = median(rr, n);
    snprintf(note, sizeof note, "redit %.0f GFLOP/s (%.0f%% of f32 sgemm)", pp * pp_flops / 1e9,
             100 * pp * pp_flops / 1e9 / gemm[1]);
    print_row7(&rows[3], n, exe != NULL, note);
    for (int i = 0; i < n; i++) rr[i] = rows[4].redit[i];
    const double tr = median(rr, n), tf = train_flops_per_token(c, PROMPT_LONG);
    snprintf(note, sizeof note, "%.0f GFLOP/s (%.0f%% of f32 sgemm); no llama.cpp counterpart",
             tr * tf / 1e9, 100 * tr * tf / 1e9 / gemm[1]);
    print_row7(&rows[4], n, 0, note);
    bench_serve(path, "llama2-7b Q4_K_M, --compute auto", 8, 16, 1, n, 0);
    printf("  peak RSS: redit inference %.0f MB, RED training %.0f MB (the mapped file included)\n",
           rss_infer / 1024.0, rss_train / 1024.0);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"torch-ref", required_argument, 0, 'r'},
                                         {"no-torch", no_argument, 0, 'n'},
                                         {"only", required_argument, 0, 'o'},
                                         {"sections", required_argument, 0, 's'},
                                         {"rounds", required_argument, 0, 'R'},
                                         {"llama-bench", required_argument, 0, 'L'},
                                         CLI_COMMON_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *dir = "build/bench", *script = "tools/bench/torch_peer.py";
    const char *only = NULL, *sections = "all", *llama = NULL;
    int use_torch = 1, rounds = 2, c;
    cli_getopt_begin();
    while ((c = getopt_long(argc, argv, ":d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'r': script = optarg; break;
        case 'n': use_torch = 0; break;
        case 'o': only = optarg; break;
        case 's': sections = optarg; break;
        case 'R':
            if (cli_int("bench", "--rounds", optarg, 1, MAX_ROUNDS, &rounds)) return 2;
            break;
        case 'L': llama = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_option_end("bench", c, argv, opts);
        }
    }
    const int bad = cli_parse_end("bench", argc, argv, NULL, NULL);
    if (bad || !dir || !script || !sections) return bad ? bad : 2; /* (getopt gives them their argument) */
    if (only && !known_shape(only)) {
        fprintf(stderr, "redit bench: unknown shape for --only: \"%s\" (stories15M or "
                        "stories110M)\n", only);
        return 2;
    }
    const int serve_only = !strcmp(sections, "serve");
    const int methods_only = !strcmp(sections, "methods");
    const int small = !strcmp(sections, "small") || !strcmp(sections, "all") || serve_only ||
                      methods_only;
    const int big = !strcmp(sections, "7b") || !strcmp(sections, "all");
    if (!small && !big) {
        fprintf(stderr, "redit bench: --sections must be small, methods, serve, 7b or all, not \"%s\"\n",
                sections);
        return 2;
    }
    char llama_buf[4096];
    const char *exe = big ? find_llama_bench(llama, llama_buf, sizeof llama_buf) : NULL;
    if (big && llama && !exe) {
        fprintf(stderr, "redit bench: --llama-bench %s is not an executable file\n", llama);
        return 2;
    }
    mkdir(dir, 0755);
    if (!small || methods_only) use_torch = 0;
    if (use_torch && access(script, R_OK) != 0) use_torch = 0;
    if (use_torch && system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("(PyTorch not installed: no same-run torch ratio; apt-get install python3-torch)\n");
        use_torch = 0;
    }
    print_machine();
    const int have_bf16 = rd_compute_available(RD_COMPUTE_BF16);
    if (small && !have_bf16) printf("(no AVX512-BF16 on this CPU: bf16 compute rows are skipped)\n");
    const int threads[] = {1, 2};
    double gemm[2] = {0};
    char out[1024];
    for (int ti = 0; ti < 2 && !methods_only; ti++) { /* (the method rows need neither) */
        sgemm_arg a = {threads[ti], 2048, 768, 2048};
        if (in_child(run_sgemm, &a, out, sizeof out) == 0) gemm[ti] = atof(out);
        printf("OpenBLAS sgemm 2048×768 · 768×2048, %d thread%s: %.1f GFLOP/s\n", threads[ti],
               ti ? "s" : "", gemm[ti]);
    }
    double bandwidth[2] = {0};
    for (int ti = 0; ti < 2 && !methods_only; ti++) {
        bandwidth_arg a = {threads[ti], (size_t)512 << 20};
        if (in_child(run_bandwidth, &a, out, sizeof out) == 0) bandwidth[ti] = atof(out);
        printf("memory read bandwidth (512 MiB), %d thread%s: %.1f GB/s\n", threads[ti],
               ti ? "s" : "", bandwidth[ti]);
    }
    for (size_t si = 0; small && si < sizeof SHAPES / sizeof *SHAPES; si++) {
        const shape *s = &SHAPES[si];
        if (only && strcmp(only, s->name)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.bin", dir, s->name);
        if (ensure_model(path, s)) return 1;
        struct stat st;
        stat(path, &st);
        printf("\n%s (dim %d, hidden %d, %d layers, %d heads, vocab %d): f32 file %.1f MB\n",
               s->name, s->cfg.dim, s->cfg.hidden_dim, s->cfg.n_layers, s->cfg.n_heads,
               s->cfg.vocab_size, (double)st.st_size / 1e6);
        if (serve_only) { /* --rounds, at least 3 */
            bench_serve(path, s->name, 16, s->decode_tokens, 0, rounds > 3 ? rounds : 3, 1);
            char vpath[4200];
            snprintf(vpath, sizeof vpath, "%s/%s-vocab.gguf", dir, s->name);
            if (!ensure_vocab_model(vpath, s))
                bench_serve_overhead(vpath, dir, s->name,
                                     2 * s->decode_tokens < s->cfg.seq_len - 16
                                         ? 2 * s->decode_tokens : s->cfg.seq_len - 16,
                                     512, rounds > 3 ? rounds : 3);
            continue;
        }
        if (methods_only) {
            bench_methods(path, s, st.st_size, have_bf16);
            continue;
        }
        printf("  %-34s %8s %9s %11s %10s\n", "job", "threads", "tok/s", "GFLOP/s", "peak RSS");
        for (int ti = 0; ti < 2; ti++) {
            model_arg a = {path, s, threads[ti], 1, 1, (long)st.st_size, 0, 0, 0, RD_METHOD_RED};
            if (in_child(run_decode, &a, out, sizeof out) || !strncmp(out, "error", 5)) {
                printf("  decode failed: %s\n", out);
                continue;
            }
            double tok_s = atof(out);
            long rss = 0;
            size_t ctxb = 0;
            sscanf(out, "%*f %ld %zu", &rss, &ctxb);
            double roof = bandwidth[ti] * 1e9 / (double)st.st_size; /* every weight once */
            printf("  %-34s %8d %9.1f %11.1f %8.0f MB   (%.0f%% of the %.0f tok/s bandwidth "
                   "roofline)\n", "decode B=1 (greedy)", threads[ti], tok_s,
                   tok_s * fwd_flops_per_token(&s->cfg, s->decode_tokens / 2) / 1e9, rss / 1024.0,
                   100 * tok_s / roof, roof);
        }
        for (size_t j = 0; j < sizeof BATCHED / sizeof *BATCHED; j++)
            bench_batched(&BATCHED[j], path, s, st.st_size, have_bf16, gemm,
                          use_torch ? script : NULL);
        bench_methods(path, s, st.st_size, have_bf16);
        bench_serve(path, s->name, 16, s->decode_tokens, 0, 3, 1);
    }
    if (serve_only) { /* the 7B row when the 7b section's file is there (it takes minutes) */
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/llama2-7b-q4km.gguf", dir);
        if (stat(path, &st) == 0) {
            bench_serve(path, "llama2-7b Q4_K_M, --compute auto", 8, 16, 1, rounds, 0);
            bench_serve_overhead(path, dir, "llama2-7b Q4_K_M, --compute auto", 32, 256, rounds);
        } else
            printf("\n(no %s: the 7B serving row needs the 7b section's file)\n", path);
        return 0;
    }
    if (small && !methods_only)
        printf("\npeak RSS includes the mapped model file; GFLOP/s counts 2·Nmm + 2·L·T·d per token "
               "(forward),\n4·Nmm + 6·L·T·d (RED training: activation gradients only), as "
               "BENCHMARKS.md does,\nand 6·Nmm + 6·L·T·d (full fine-tuning: weight gradients "
               "too); the percentage is of\nthe f32 sgemm rate measured above (bf16 rows can pass "
               "100%%). PyTorch rows: f32 against\nredit's f32 row, bf16 autocast against redit's "
               "bf16 compute row.\n");
    if (big && bench_7b(dir, rounds, exe, gemm)) return 1;
    return 0;
}
