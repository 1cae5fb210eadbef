/* Reading a training run's --log CSV, finished or still being written (redit/train_log.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "redit/buf.h"
#include "redit/train_log.h"

#define LOG_HEADER "step,epoch,loss,lr,grad_norm,tokens_per_s,elapsed_s,eval_loss,eval_accuracy"

void rd_train_log_release(rd_train_log *l) {
    if (!l) return;
    free(l->step);
    free(l->loss);
    free(l->eval_step);
    free(l->eval_loss);
    free(l->eval_accuracy);
    memset(l, 0, sizeof *l);
}

/* The comma-separated fields of line (cut in place), at most 9. */
static int split_fields(char *line, char **f) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < 9; p++)
        if (*p == ',') {
            *p = 0;
            f[n++] = p + 1;
        }
    return n;
}

static double num(const char *s) { return *s ? strtod(s, NULL) : NAN; }

/* Appends to the arrays (grown in doubling steps). */
static int push_step(rd_train_log *l, size_t *cap, int step, double loss) {
    if (l->n_steps == *cap) {
        const size_t c = *cap ? *cap * 2 : 64;
        int *s = realloc(l->step, c * sizeof *s);
        if (!s) return -1;
        l->step = s;
        double *v = realloc(l->loss, c * sizeof *v);
        if (!v) return -1;
        l->loss = v;
        *cap = c;
    }
    l->step[l->n_steps] = step;
    l->loss[l->n_steps++] = loss;
    return 0;
}

static int push_eval(rd_train_log *l, size_t *cap, int step, double loss, double acc) {
    if (l->n_evals == *cap) {
        const size_t c = *cap ? *cap * 2 : 16;
        int *s = realloc(l->eval_step, c * sizeof *s);
        if (!s) return -1;
        l->eval_step = s;
        double *v = realloc(l->eval_loss, c * sizeof *v), *a;
        if (!v) return -1;
        l->eval_loss = v;
        if (!(a = realloc(l->eval_accuracy, c * sizeof *a))) return -1;
        l->eval_accuracy = a;
        *cap = c;
    }
    l->eval_step[l->n_evals] = step;
    l->eval_loss[l->n_evals] = loss;
    l->eval_accuracy[l->n_evals++] = acc;
    return 0;
}

int rd_train_log_read(const char *path, rd_train_log *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.partial", path);
    struct stat st;
    out->done = stat(partial, &st) != 0; /* a .partial is a run still writing */
    const char *file = out->done ? path : partial;
    FILE *f = fopen(file, "rb");
    if (!f) return rd_error_set(err, "%s: no training log there (nor %s.partial)", path, path);
    rd_buf text = {0};
    char chunk[65536];
    size_t got;
    int rc = 0;
    while (rc == 0 && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (rd_buf_append(&text, chunk, got)) rc = rd_error_set(err, "out of memory");
    fclose(f);
    char empty[1] = "";
    char *s = rc ? NULL : text.data ? text.data : empty; /* rd_buf keeps data NUL-terminated */
    if (rc == 0 && strncmp(s, LOG_HEADER, strlen(LOG_HEADER)) != 0)
        rc = rd_error_set(err, "%s: not a redit training log (its first line is not \"%s\")",
                          file, LOG_HEADER);
    size_t cap_s = 0, cap_e = 0;
    char *line = s ? strchr(s, '\n') : NULL;
    while (rc == 0 && line) {
        line++;
        char *end = strchr(line, '\n');
        if (!end) break; /* half-written: the next read gets it whole */
        *end = 0;
        char *fl[9];
        if (split_fields(line, fl) == 9) {
            const int step = atoi(fl[0]);
            if (*fl[2]) {
                if (push_step(out, &cap_s, step, num(fl[2]))) rc = rd_error_set(err, "out of memory");
                out->tokens_per_s = num(fl[5]);
            } else if (*fl[7] && push_eval(out, &cap_e, step, num(fl[7]), num(fl[8]))) {
                rc = rd_error_set(err, "out of memory");
            }
            out->elapsed = num(fl[6]);
        }
        line = end;
    }
    rd_buf_free(&text);
    if (rc) rd_train_log_release(out);
    return rc;
}
