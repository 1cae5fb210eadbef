#include "redit/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rd_atomic_file_open(rd_atomic_file *f, const char *path, rd_error *err) {
    memset(f, 0, sizeof *f);
    size_t n = strlen(path);
    struct stat st;
    /* a device or pipe (/dev/null, /dev/stdout, a FIFO) is written in place: a rename would
     * replace the node itself with a regular file */
    const int in_place = stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
    f->path = malloc(n + 1);
    f->tmp_path = in_place ? NULL : malloc(n + 16);
    if (!f->path || (!in_place && !f->tmp_path)) {
        rd_atomic_file_abort(f);
        return rd_error_set(err, "%s: out of memory", path);
    }
    memcpy(f->path, path, n + 1);
    if (in_place) {
        if (!(f->fp = fopen(path, "wb"))) {
            int e = errno;
            rd_atomic_file_abort(f);
            return rd_error_set(err, "%s: cannot open for writing: %s", path, strerror(e));
        }
        return 0;
    }
    snprintf(f->tmp_path, n + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(f->tmp_path);
    if (fd < 0) {
        int e = errno;
        free(f->tmp_path);
        f->tmp_path = NULL;
        rd_atomic_file_abort(f);
        return rd_error_set(err, "%s: cannot create a temporary file beside it: %s", path,
                            strerror(e));
    }
    fchmod(fd, 0644); /* mkstemp creates 0600; a model or edit file is meant to be shared */
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        close(fd);
        rd_atomic_file_abort(f);
        return rd_error_set(err, "%s: cannot open a stream: %s", path, strerror(errno));
    }
    return 0;
}

int rd_atomic_file_write(rd_atomic_file *f, const void *data, size_t n) {
    if (n == 0) return 0;
    return fwrite(data, 1, n, f->fp) == n ? 0 : -1;
}

/* fsyncs the directory holding path so the rename survives a crash (best effort). */
static void sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash == path ? strdup("/") : slash ? strndup(path, (size_t)(slash - path))
                                                    : strdup(".");
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int rd_atomic_file_commit(rd_atomic_file *f, rd_error *err) {
    const int in_place = f->tmp_path == NULL; /* a device or pipe: no fsync, no rename */
    int bad = fflush(f->fp) != 0 || (!in_place && fsync(fileno(f->fp)) != 0);
    int e = errno;
    bad |= fclose(f->fp) != 0;
    f->fp = NULL;
    if (!bad && (in_place || rename(f->tmp_path, f->path) == 0)) {
        if (!in_place) sync_dir(f->path);
        free(f->tmp_path);
        f->tmp_path = NULL;
        rd_atomic_file_abort(f);
        return 0;
    }
    if (!bad) e = errno;
    rd_error_set(err, "%s: cannot write: %s", f->path, strerror(e));
    rd_atomic_file_abort(f);
    return -1;
}

void rd_atomic_file_abort(rd_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp_path) unlink(f->tmp_path);
    free(f->tmp_path);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* The folder part of path ("." when it has none, "/" for a file at the root); malloc'ed. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    while (slash > path && slash[-1] == '/') slash--; /* "a//b" -> "a" */
    return slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
}

int rd_atomic_file_check(const char *path, rd_error *err) {
    if (!path || !*path) return rd_error_set(err, "the output path is empty");
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return rd_error_set(err, "%s is a folder; give a file name (e.g. %s%sout)", path, path,
                                path[strlen(path) - 1] == '/' ? "" : "/");
        if (!S_ISREG(st.st_mode)) return 0; /* a device or FIFO: written in place */
    }
    const size_t n = strlen(path);
    if (path[n - 1] == '/')
        return rd_error_set(err, "%s: ends in '/' but is not a folder; give a file name", path);
    char *dir = dir_of(path);
    if (!dir) return rd_error_set(err, "%s: out of memory", path);
    int rc = 0;
    if (stat(dir, &st) != 0) {
        const int e = errno;
        rc = e == ENOENT ? rd_error_set(err, "%s: the folder %s does not exist", path, dir)
           : e == ENOTDIR ? rd_error_set(err, "%s: the folder %s cannot exist: part of it is a "
                                         "file, not a folder", path, dir)
                          : rd_error_set(err, "%s: cannot reach the folder %s: %s", path, dir,
                                         strerror(e));
    } else if (!S_ISDIR(st.st_mode)) {
        rc = rd_error_set(err, "%s: %s is a file, not a folder", path, dir);
    } else {
        char *tmp = malloc(n + 16);
        int fd = -1;
        if (tmp) {
            snprintf(tmp, n + 16, "%s.tmp-XXXXXX", path);
            fd = mkstemp(tmp);
        }
        if (fd < 0) {
            const int e = tmp ? errno : ENOMEM;
            rc = rd_error_set(err, "%s: cannot create a file in the folder %s: %s", path, dir,
                              strerror(e));
        } else {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
    }
    free(dir);
    return rc;
}
