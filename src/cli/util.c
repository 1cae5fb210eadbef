#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "redit/atomic_file.h"
#include "redit/buf.h"
#include "redit/edits.h"

int cli_check_output(const char *cmd, const char *what, const char *path) {
    rd_error err = {0};
    if (!path || !rd_atomic_file_check(path, &err)) return 0;
    fprintf(stderr, "redit %s: %s %s\n", cmd, what, err.msg);
    return -1;
}

rd_model *cli_load_model(const char *path, const char *tokenizer_path) {
    rd_error err = {0};
    rd_load_opts opts = {.tokenizer_path = tokenizer_path};
    rd_model *m = rd_model_load(path, &opts, &err);
    if (!m) fprintf(stderr, "redit: %s\n", err.msg);
    else if (rd_model_nonfinite(m))
        fprintf(stderr, "redit: warning: %s: %s; the model is broken (its outputs through that "
                        "tensor are NaN)\n", path, rd_model_nonfinite(m));
    return m;
}

rd_edits *cli_load_edits(const char *path, const rd_model *m, int force, char **options_json) {
    rd_error err = {0};
    rd_fp_match match;
    rd_edits *e = rd_edits_load_match(path, m, force, options_json, &match, &err);
    if (!e) fprintf(stderr, "redit: %s\n", err.msg);
    else cli_fingerprint_note(path, match);
    return e;
}

void cli_fingerprint_note(const char *path, rd_fp_match match) {
    if (match == RD_FP_SAME_SAMPLED)
        fprintf(stderr, "redit: note: %s was written by an earlier redit, whose model fingerprint "
                        "samples the weights; it matches this model's sample (save the edits again "
                        "to record the full fingerprint)\n", path);
}

int cli_set_compute(const char *cmd, rd_model *m, const char *name, int backward) {
    rd_compute mode = RD_COMPUTE_F32;
    if (name && rd_compute_from_name(name, &mode)) {
        fprintf(stderr, "redit %s: --compute must be f32, bf16 or auto\n", cmd);
        return -1;
    }
    if (name && !strcmp(name, "auto")) {
        const char *why;
        rd_compute_auto(&why);
        fprintf(stderr, "redit %s: compute: %s (%s)\n", cmd, mode == RD_COMPUTE_BF16 ? "bf16" : "f32",
                why);
    }
    rd_error err = {0};
    /* every mode but the f32 reference also decodes quantized weights with 8-bit activation
     * products (by name: "auto" does so even where its GEMMs stay f32) */
    if (rd_model_set_quant_products(m, name && strcmp(name, "f32") != 0, &err)) {
        fprintf(stderr, "redit %s: %s\n", cmd, err.msg);
        return -1;
    }
    if (mode == RD_COMPUTE_F32) return 0;
    if (rd_model_set_compute(m, mode, backward, &err)) {
        fprintf(stderr, "redit %s: %s\n", cmd, err.msg);
        return -1;
    }
    return 0;
}

int *cli_parse_ids(const char *text, size_t *n) {
    size_t cap = 0, len = 0;
    int *ids = NULL;
    const char *p = text;
    /* an empty list is still an array (of room for 16) */
    int oom = rd_array_reserve(&ids, &cap, 16, sizeof *ids);
    while (!oom) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff) {
            fprintf(stderr, "redit: bad token id near \"%.20s\"\n", p);
            free(ids);
            return NULL;
        }
        if ((oom = rd_array_reserve(&ids, &cap, len + 1, sizeof *ids))) break;
        ids[len++] = (int)v;
        p = end;
    }
    if (oom) {
        free(ids);
        fprintf(stderr, "redit: out of memory\n");
        return NULL;
    }
    *n = len;
    return ids;
}

int cli_int(const char *cmd, const char *opt, const char *text, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "redit %s: bad value for %s: \"%s\" (expected an integer in [%ld, %ld])\n",
                cmd, opt, text, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
               double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "redit %s: bad value for %s: \"%s\" (expected a number in [%g, %g])\n",
                cmd, opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_float(const char *cmd, const char *opt, const char *text, double lo, double hi, float *out) {
    double v;
    if (cli_double(cmd, opt, text, lo, hi, &v)) return -1;
    *out = (float)v;
    return 0;
}

void cli_set_threads(int n) {
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    openblas_set_num_threads(n);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
