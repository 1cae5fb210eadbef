/* Model file formats: detection from content, and releasing what a loader produced. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"
#include "redit/model_file.h"

const char *rd_file_format_name(rd_file_format f) {
    switch (f) {
    case RD_FORMAT_LLAMA2C: return "llama2.c";
    case RD_FORMAT_GGUF: return "GGUF";
    case RD_FORMAT_SAFETENSORS: return "safetensors";
    default: return "unknown";
    }
}

rd_file_format rd_detect_format(const char *path, rd_error *err) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) { /* a Hugging Face folder */
        char cfg[4096];
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        if (access(cfg, R_OK) == 0) return RD_FORMAT_SAFETENSORS;
        rd_error_set(err, "%s: is a directory, not a model file (nor a Hugging Face model "
                          "folder: it has no config.json)", path);
        return RD_FORMAT_UNKNOWN;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        rd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return RD_FORMAT_UNKNOWN;
    }
    unsigned char head[64];
    size_t n = fread(head, 1, sizeof head, fp);
    int read_error = ferror(fp) ? errno : 0;
    fclose(fp);
    if (read_error) {
        rd_error_set(err, "%s: cannot read: %s", path, strerror(read_error));
        return RD_FORMAT_UNKNOWN;
    }
    if (n == 0) {
        rd_error_set(err, "%s: the file is empty", path);
        return RD_FORMAT_UNKNOWN;
    }
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0) return RD_FORMAT_GGUF;
    if (n >= 9 && head[8] == '{') {
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--) len = len << 8 | head[i];
        if (len > 1 && len < (1ull << 32)) return RD_FORMAT_SAFETENSORS;
    }
    int l2c = rd_llama2c_probe(head, n, path, err);
    if (l2c > 0) return RD_FORMAT_LLAMA2C;
    if (l2c < 0) return RD_FORMAT_UNKNOWN; /* a broken llama2.c header: *err says why */
    if (n < 28)
        rd_error_set(err, "%s: truncated: %zu bytes, too short for the header of any model file",
                     path, n);
    else
        rd_error_set(err, "%s: not a model file redit knows (no GGUF magic, no safetensors "
                          "header, no plausible llama2.c header)",
                     path);
    return RD_FORMAT_UNKNOWN;
}

void rd_model_file_release(rd_model_file *f) {
    if (!f) return;
    rd_weights_release(&f->w);
    rd_vocab_release(&f->vocab);
    memset(f, 0, sizeof *f);
}
