/* Micro-batches: examples laid out in (B, T) rows, padded on the right or packed. */
#include "data_internal.h"

#include <stdlib.h>
#include <string.h>

void rd_batch_release(rd_batch *b) {
    if (!b) return;
    free(b->tokens);
    free(b->targets);
    memset(b, 0, sizeof *b);
}

/* Writes example e from flat position p of (tokens, targets): target t = the next id when
 * its position counts for the loss. Returns the number of targets written. */
static int place(const rd_example *e, int *tokens, int *targets, size_t p, int n) {
    int nt = 0;
    for (int t = 0; t < n; t++) {
        tokens[p + (size_t)t] = e->ids[t];
        int tgt = t + 1 < e->n && e->loss[t + 1] ? e->ids[t + 1] : -1;
        targets[p + (size_t)t] = tgt;
        nt += tgt >= 0;
    }
    return nt;
}

/* Pack layout: the start (flat position) of each example and the number of rows. An
 * example that does not fit in what is left of the row starts the next one; one longer
 * than a row runs on through as many rows as it needs. */
static size_t pack_plan(const rd_dataset *d, const size_t *idx, size_t count, size_t T,
                        size_t *start) {
    size_t p = 0; /* next free flat position */
    for (size_t i = 0; i < count; i++) {
        size_t n = (size_t)d->items[idx[i]].ex.n;
        size_t used = p % T;
        if (used && (n > T || used + n > T)) p += T - used;
        start[i] = p;
        p += n;
    }
    return (p + T - 1) / T;
}

static int grow(int **buf, size_t n, rd_error *err) {
    int *p = realloc(*buf, n * sizeof *p);
    if (!p) return rd_error_set(err, "batch: out of memory for %zu tokens", n);
    *buf = p;
    return 0;
}

int rd_batch_fill(rd_batch *out, const rd_dataset *d, const size_t *idx, size_t count, int T_max,
                  int pack, int pad_id, rd_error *err) {
    if (!out || !d || !idx || count == 0) return rd_error_set(err, "batch: no examples");
    if (T_max < 2) return rd_error_set(err, "batch: T_max must be at least 2 (got %d)", T_max);
    for (size_t i = 0; i < count; i++)
        if (idx[i] >= d->n)
            return rd_error_set(err, "batch: example %zu out of range (%zu examples)", idx[i], d->n);
    size_t T = (size_t)T_max, B = count;
    size_t *start = NULL;
    if (pack) {
        start = malloc(count * sizeof *start);
        if (!start) return rd_error_set(err, "batch: out of memory");
        B = pack_plan(d, idx, count, T, start);
    } else {
        size_t longest = 0;
        for (size_t i = 0; i < count; i++)
            if ((size_t)d->items[idx[i]].ex.n > longest) longest = (size_t)d->items[idx[i]].ex.n;
        if (longest < T) T = longest;
        if (T == 0) return rd_error_set(err, "batch: every example is empty");
    }
    if (B > (size_t)INT32_MAX / T) {
        free(start);
        return rd_error_set(err, "batch: %zu rows of %zu tokens is too many", B, T);
    }
    size_t cells = B * T;
    if (grow(&out->tokens, cells, err) < 0 || grow(&out->targets, cells, err) < 0) {
        free(start);
        return -1;
    }
    for (size_t c = 0; c < cells; c++) {
        out->tokens[c] = pad_id;
        out->targets[c] = -1;
    }
    int n_targets = 0;
    for (size_t i = 0; i < count; i++) {
        const rd_example *e = &d->items[idx[i]].ex;
        size_t p = pack ? start[i] : i * T;
        int n = pack || (size_t)e->n <= T ? e->n : (int)T;
        n_targets += place(e, out->tokens, out->targets, p, n);
    }
    free(start);
    out->B = (int)B;
    out->T = (int)T;
    out->n_targets = n_targets;
    return 0;
}
