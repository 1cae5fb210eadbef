/* redit bench: decode and prefill throughput on random-weight models of the llama2.c
 * "stories" shapes, with an OpenBLAS sgemm figure and (when torch is installed) the
 * PyTorch reference measured in the same run. Each measurement runs in a child process so
 * its peak RSS is its own. A benchmark, not a test: nothing here asserts a time. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "redit/backward.h"
#include "redit/edits.h"
#include "redit/forward.h"
#include "redit/util.h"

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
    int bf16; /* rd_model_set_compute(RD_COMPUTE_BF16) before measuring */
} model_arg;

/* Loads the benchmark model in the compute mode the measurement asks for. */
static rd_model *bench_model(const model_arg *a, int backward, rd_error *err) {
    rd_model *m = rd_model_load(a->path, NULL, err);
    if (m && a->bf16 && rd_model_set_compute(m, RD_COMPUTE_BF16, backward, err)) {
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

/* Best time of 3 training passes after a warm-up: RED (view, gv) or full fine-tuning (wg; in
 * bf16 compute the weights are rounded again before each pass, as after an update). Returns
 * seconds, or a negative value with *err set. */
static double time_train_passes(rd_train_ctx *tc, rd_model *m, const rd_edits_view *view,
                                const rd_edits_grad *gv, float *wg, int B, int T, rd_error *err) {
    const size_t n = (size_t)B * T;
    int *tokens = malloc(sizeof(int) * n), *targets = malloc(sizeof(int) * n);
    double best = 1e30, loss;
    int nt;
    if (!tokens || !targets) {
        rd_error_set(err, "out of memory");
        best = -1;
    } else
        bench_tokens(rd_model_config(m)->vocab_size, n, tokens, targets);
    for (int it = 0; best > 0 && it < 4; it++) {
        double t0 = cli_now();
        if ((wg && rd_model_compute(m) == RD_COMPUTE_BF16 && rd_model_repack(m, err)) ||
            rd_train_pass(tc, view, gv, wg, tokens, targets, B, T, &loss, &nt, err))
            best = -1;
        double t = cli_now() - t0;
        if (best > 0 && it > 0 && t < best) best = t;
    }
    free(tokens);
    free(targets);
    return best;
}

/* RED training step (forward, cross-entropy, backward to ffn edit vectors on all layers)
 * at (B, T); best of 3 after a warm-up. The optimizer update of the edit vectors is
 * negligible (2·L·d numbers) and is not included. */
static void run_train(const void *p, char *out, size_t cap) {
    const model_arg *a = p;
    openblas_set_num_threads(a->threads);
    rd_error err = {0};
    rd_model *m = bench_model(a, 1, &err);
    rd_edit_spec spec = {.sites = RD_SITE_FFN, .layers = "all", .scale = 1, .bias = 1};
    rd_edits *e = m ? rd_edits_new(rd_model_config(m), &spec, &err) : NULL;
    rd_train_ctx *tc = e ? rd_train_ctx_new(m, a->B, a->T, 0, &err) : NULL;
    float *grad = tc ? calloc(rd_edits_param_count(e), sizeof(float)) : NULL;
    rd_edits_grad gv = {0};
    if (!grad || rd_edits_grad_new(e, grad, &gv, &err)) {
        snprintf(out, cap, "error %s", err.msg);
        return;
    }
    rd_edits_view view = rd_edits_view_at(e, 1.0f);
    const double best = time_train_passes(tc, m, &view, &gv, NULL, a->B, a->T, &err);
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
 * out, as in the PyTorch reference (tools/bench/torch_full_ft.py). */
static void run_full_train(const void *p, char *out, size_t cap) {
    const model_arg *a = p;
    openblas_set_num_threads(a->threads);
    rd_error err = {0};
    rd_model *m = bench_model(a, 1, &err);
    rd_train_ctx *tc = m && rd_model_make_trainable(m, &err) == 0
                           ? rd_train_ctx_new(m, a->B, a->T, 0, &err)
                           : NULL;
    float *wg = tc ? calloc(m->n_params, sizeof(float)) : NULL;
    const double best = wg ? time_train_passes(tc, m, NULL, NULL, wg, a->B, a->T, &err) : -1;
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

/* PyTorch on the same checkpoint (mode "fwd" or "train"): tokens/s and peak RSS (MB). */
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

static void print_machine(void) {
    char line[512], cpu[256] = "unknown CPU";
    FILE *fp = fopen("/proc/cpuinfo", "r");
    while (fp && fgets(line, sizeof line, fp))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) snprintf(cpu, sizeof cpu, "%s", c + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    if (fp) fclose(fp);
    printf("machine: %s, %ld cores; OpenBLAS %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
           openblas_get_config());
}

static int known_shape(const char *name) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++)
        if (!strcmp(SHAPES[i].name, name)) return 1;
    return 0;
}

static void usage(FILE *out) {
    fprintf(out, "usage: redit bench [--dir DIR] [--only SHAPE] [--no-torch] [--torch-ref "
                 "SCRIPT]\n\nWrites random-weight models of the stories15M and stories110M "
                 "shapes into DIR\n(kept for later runs) and measures decode (B=1), prefill "
                 "(B=8, T=256, all\nlogits), a RED and a full fine-tuning training step: "
                 "tokens/s with 1 and 2\nthreads, GFLOP/s against OpenBLAS sgemm measured in "
                 "the same run, and peak\nRSS. With torch installed, PyTorch runs the same jobs "
                 "too (full fine-tuning\nwith tools/bench/torch_full_ft.py, found from the "
                 "repository root), for\nsame-run ratios.\n\n"
                 "  -d, --dir DIR        models and results (default build/bench)\n"
                 "      --only SHAPE     stories15M or stories110M only\n"
                 "      --no-torch       skip the PyTorch reference\n"
                 "      --torch-ref FILE the PyTorch reference script\n"
                 "  -h, --help           this text\n");
}

/* The batched jobs (B=8, T=256): measured with 1 and 2 threads, in f32 and (where the CPU
 * has it) bf16 compute, then PyTorch's same job on 2 threads for a same-run ratio. */
typedef struct batched_job {
    const char *label, *label_bf16;
    void (*run)(const void *arg, char *out, size_t cap);
    double (*flops_per_token)(const rd_config *c, int T);
    const char *torch_mode, *torch_label;
    const char *torch_script;          /* NULL: the shared reference (--torch-ref) */
    const char *torch_mode_bf16, *torch_label_bf16; /* NULL: no bf16 counterpart */
} batched_job;

/* redit's own PyTorch reference for full fine-tuning, relative to the repository root. */
#define TORCH_FULL_FT "tools/bench/torch_full_ft.py"

static const batched_job BATCHED[] = {
    {"prefill B=8 T=256, all logits", "prefill B=8 T=256, bf16 compute", run_prefill,
     fwd_flops_per_token, "fwd", "PyTorch forward (same run)", NULL, NULL, NULL},
    {"RED train step B=8 T=256 (ffn)", "RED train step, bf16 compute", run_train,
     train_flops_per_token, "train", "PyTorch RED train step (same run)", NULL, NULL, NULL},
    {"full FT step B=8 T=256", "full FT step, bf16 compute", run_full_train,
     full_train_flops_per_token, "full", "PyTorch full FT step (same run)", TORCH_FULL_FT,
     "full-bf16", "PyTorch full FT step, bf16 autocast"},
};

static void bench_batched(const batched_job *job, const char *path, const shape *s,
                          long file_bytes, int have_bf16, const double *gemm,
                          const char *torch_script) {
    static const int threads[] = {1, 2};
    char out[1024];
    for (int k = 0; k < 2 * (have_bf16 ? 2 : 1); k++) {
        const int ti = k % 2, bf16 = k / 2;
        model_arg a = {path, s, threads[ti], 8, 256, file_bytes, bf16};
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
        if (!torch_script || threads[ti] != 2 || !mode) continue;
        double t_tok, t_rss;
        if (torch_run(job->torch_script ? job->torch_script : torch_script, path, mode, 8, 256,
                      2, &t_tok, &t_rss) == 0)
            printf("  %-34s %8d %9.1f %11s %6.0f MB → redit/torch = %.2f× speed, %.2f× memory\n",
                   label, 2, t_tok, "", t_rss, tok_s / t_tok, rss / 1024.0 / t_rss);
        else
            printf("  %s failed to run\n", label);
    }
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"torch-ref", required_argument, 0, 'r'},
                                         {"no-torch", no_argument, 0, 'n'},
                                         {"only", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = "build/bench", *script = "../shared/tools/torch_ref/llama_red_ref.py";
    const char *only = NULL;
    int use_torch = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'r': script = optarg; break;
        case 'n': use_torch = 0; break;
        case 'o': only = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !dir || !script) { /* (getopt gives -d and -r their argument) */
        usage(stderr);
        return 2;
    }
    if (only && !known_shape(only)) {
        fprintf(stderr, "redit bench: unknown shape for --only: \"%s\" (stories15M or "
                        "stories110M)\n", only);
        return 2;
    }
    mkdir(dir, 0755);
    if (use_torch && access(script, R_OK) != 0) use_torch = 0;
    if (use_torch && system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("(PyTorch not installed: no same-run torch ratio; apt-get install python3-torch)\n");
        use_torch = 0;
    }
    print_machine();
    const int have_bf16 = rd_compute_available(RD_COMPUTE_BF16);
    if (!have_bf16) printf("(no AVX512-BF16 on this CPU: bf16 compute rows are skipped)\n");
    const int threads[] = {1, 2};
    double gemm[2] = {0};
    char out[1024];
    for (int ti = 0; ti < 2; ti++) {
        sgemm_arg a = {threads[ti], 2048, 768, 2048};
        if (in_child(run_sgemm, &a, out, sizeof out) == 0) gemm[ti] = atof(out);
        printf("OpenBLAS sgemm 2048×768 · 768×2048, %d thread%s: %.1f GFLOP/s\n", threads[ti],
               ti ? "s" : "", gemm[ti]);
    }
    double bandwidth[2] = {0};
    for (int ti = 0; ti < 2; ti++) {
        bandwidth_arg a = {threads[ti], (size_t)512 << 20};
        if (in_child(run_bandwidth, &a, out, sizeof out) == 0) bandwidth[ti] = atof(out);
        printf("memory read bandwidth (512 MiB), %d thread%s: %.1f GB/s\n", threads[ti],
               ti ? "s" : "", bandwidth[ti]);
    }
    for (size_t si = 0; si < sizeof SHAPES / sizeof *SHAPES; si++) {
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
        printf("  %-34s %8s %9s %11s %10s\n", "job", "threads", "tok/s", "GFLOP/s", "peak RSS");
        for (int ti = 0; ti < 2; ti++) {
            model_arg a = {path, s, threads[ti], 1, 1, (long)st.st_size, 0};
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
    }
    printf("\npeak RSS includes the mapped model file; GFLOP/s counts 2·Nmm + 2·L·T·d per token "
           "(forward),\n4·Nmm + 6·L·T·d (RED training: activation gradients only), as "
           "BENCHMARKS.md does,\nand 6·Nmm + 6·L·T·d (full fine-tuning: weight gradients "
           "too); the percentage is of\nthe f32 sgemm rate measured above (bf16 rows can pass "
           "100%%).\n");
    return 0;
}
