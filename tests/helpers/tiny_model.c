#include "tiny_model.h"

#include "redit/model.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

rd_config tiny_config(void) {
    rd_config c = {.dim = 64, .hidden_dim = 172, .n_layers = 3, .n_heads = 8, .n_kv_heads = 4,
                   .vocab_size = 300, .seq_len = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                   .rope_layout = RD_ROPE_ADJACENT};
    return c;
}

int tiny_vocab(rd_vocab *out, int n, int add_prefix, int with_types, rd_error *err) {
    if (n <= 259) return rd_error_set(err, "tiny_vocab: %d pieces, need more than 259", n);
    const char **pieces = calloc((size_t)n, sizeof *pieces);
    char (*store)[16] = calloc((size_t)n, sizeof *store);
    float *scores = calloc((size_t)n, sizeof *scores);
    int *types = calloc((size_t)n, sizeof *types);
    int rc = -1;
    if (!pieces || !store || !scores || !types) {
        rd_error_set(err, "tiny_vocab: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (i == 0) snprintf(store[i], 16, "<unk>");
        else if (i == 1) snprintf(store[i], 16, "<s>");
        else if (i == 2) snprintf(store[i], 16, "</s>");
        else if (i < 259) snprintf(store[i], 16, "<0x%02X>", i - 3);
        else snprintf(store[i], 16, RD_SPACE_MARK "w%c%c", 'a' + (i - 259) % 26, 'a' + (i - 259) / 26);
        pieces[i] = store[i];
        types[i] = i == 0       ? RD_TOKEN_UNKNOWN
                   : i < 3      ? RD_TOKEN_CONTROL
                   : i < 259    ? RD_TOKEN_BYTE
                   : i == n - 1 ? RD_TOKEN_USER_DEFINED
                                : RD_TOKEN_NORMAL;
        scores[i] = i < 259 ? 0.0f : -0.25f * (float)i;
    }
    rd_vocab_spec spec = {.n_pieces = n, .pieces = pieces, .scores = scores,
                          .types = with_types ? types : NULL, .bos_id = 1, .eos_id = 2,
                          .unk_id = -1, .add_dummy_prefix = add_prefix};
    rd_error made = {{0}};
    rc = rd_vocab_from_spec(out, &spec, "tiny vocab", &made);
    if (rc) rd_error_set(err, "%s", made.msg);
done:
    free(pieces);
    free(store);
    free(scores);
    free(types);
    return rc;
}

int tiny_model_init(rd_model_file *out, const rd_config *cfg, int tied, uint64_t seed) {
    return rd_model_file_random(out, cfg, tied, seed, RD_DTYPE_F32, NULL);
}

int tiny_tempdir(char *buf, size_t cap) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    if ((size_t)snprintf(buf, cap, "%s/redit-test-XXXXXX", base) >= cap) return -1;
    return mkdtemp(buf) ? 0 : -1;
}

int tiny_count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

void tiny_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

const char *shared_fixture(const char *rel) {
    static char path[4096];
    snprintf(path, sizeof path, "../shared/fixtures/%s", rel);
    return access(path, R_OK) == 0 ? path : NULL;
}
