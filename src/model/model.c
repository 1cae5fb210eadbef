/* Loading a frozen model from any supported file. */
#include "redit/model.h"

#include <stdlib.h>
#include <string.h>

rd_model *rd_model_load(const char *path, const rd_load_opts *opts, rd_error *err) {
    rd_file_format fmt = rd_detect_format(path, err);
    if (fmt == RD_FORMAT_UNKNOWN) return NULL;
    rd_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        rd_error_set(err, "%s: out of memory", path);
        return NULL;
    }
    int rc;
    switch (fmt) {
    case RD_FORMAT_LLAMA2C:
        rc = rd_llama2c_load(path, opts ? opts->tokenizer_path : NULL, &m->file, err);
        break;
    case RD_FORMAT_GGUF:
        if (opts && opts->tokenizer_path) {
            rd_error_set(err, "%s: a GGUF file carries its own tokenizer; --tokenizer is only "
                              "for llama2.c checkpoints", path);
            rc = -1;
            break;
        }
        rc = rd_gguf_load(path, &m->file, err);
        break;
    default:
        rd_error_set(err, "%s: %s models are not supported yet", path, rd_file_format_name(fmt));
        rc = -1;
    }
    if (rc) {
        rd_model_free(m);
        return NULL;
    }
    return m;
}

rd_model *rd_model_from_file(rd_model_file *f, const char *path, rd_error *err) {
    rd_model *m = calloc(1, sizeof *m);
    if (!m || (path && !(m->path = strdup(path)))) {
        free(m);
        rd_model_file_release(f);
        rd_error_set(err, "out of memory");
        return NULL;
    }
    m->file = *f;
    memset(f, 0, sizeof *f);
    return m;
}

void rd_model_free(rd_model *m) {
    if (!m) return;
    rd_model_file_release(&m->file);
    free(m->path);
    free(m);
}

uint64_t rd_model_param_count(const rd_model *m) {
    return rd_config_param_count(&m->file.cfg, m->file.w.tied_classifier);
}
