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
