/* redit — atomic file writing (core layer): write to a temporary file beside the target,
 * fsync, then rename over it, so readers see the old file or the whole new one, never a
 * partial one. A target that exists and is neither a regular file nor a folder (a device
 * such as /dev/null or /dev/stdout, a FIFO) is written in place instead: renaming over it
 * would replace the node itself. */
#ifndef REDIT_ATOMIC_FILE_H
#define REDIT_ATOMIC_FILE_H

#include <stdio.h>

#include "redit/error.h"

typedef struct rd_atomic_file {
    FILE *fp;           /* buffered stream on the temporary file */
    char *path;         /* target path (owned) */
    char *tmp_path;     /* temporary path (owned); NULL when writing in place */
} rd_atomic_file;

/* Creates a temporary file "<path>.tmp-XXXXXX" in the target's directory (or opens a
 * device or FIFO target itself). */
int rd_atomic_file_open(rd_atomic_file *f, const char *path, rd_error *err);

/* Appends n bytes; returns 0 or -1 (errno set). */
int rd_atomic_file_write(rd_atomic_file *f, const void *data, size_t n);

/* Flushes, fsyncs and renames the temporary file over the target; on failure removes the
 * temporary file. Frees f's resources either way. */
int rd_atomic_file_commit(rd_atomic_file *f, rd_error *err);

/* Removes the temporary file and frees f's resources (the target is untouched). */
void rd_atomic_file_abort(rd_atomic_file *f);

/* Checks, before any work, that rd_atomic_file_open/commit could write path: its folder
 * exists and is a folder, path itself is not a folder, and a temporary file can be created
 * beside it (one is made and removed at once, so a read-only folder or file system, a full
 * inode table or a name too long is found too). A device or FIFO target passes (it is written
 * in place). Returns 0, or -1 with *err naming path and the reason. Touches nothing else; does
 * not prove the data will fit on the disk. */
int rd_atomic_file_check(const char *path, rd_error *err);

#endif
