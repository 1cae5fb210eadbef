/* rd_atomic_file_check (redit/atomic_file.h): an output path is refused before any work when
 * its folder is missing, is a file, or takes no new file, or when the path is a folder; a
 * writable path, an existing file and a device pass; nothing is left behind and an existing
 * target is untouched. Tests run as root, so the refusals use cases root meets too. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redit/atomic_file.h"
#include "tiny_model.h"

typedef struct fixture {
    char dir[512];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_int_equal(tiny_tempdir(f->dir, sizeof f->dir), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    rmdir(sub);
    tiny_rmdir(f->dir);
    free(f);
    return 0;
}

/* path must be refused with a message containing each of the given parts. */
static void expect_refused(const char *path, const char *part1, const char *part2) {
    rd_error err = {0};
    assert_int_equal(rd_atomic_file_check(path, &err), -1);
    printf("refused: %s\n", err.msg);
    if (part1 && !strstr(err.msg, part1)) fail_msg("\"%s\" lacks \"%s\"", err.msg, part1);
    if (part2 && !strstr(err.msg, part2)) fail_msg("\"%s\" lacks \"%s\"", err.msg, part2);
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void test_writable_paths_pass(void **state) {
    fixture *f = *state;
    rd_error err = {0};
    char path[700];
    snprintf(path, sizeof path, "%s/new.safetensors", f->dir);
    assert_int_equal(rd_atomic_file_check(path, &err), 0);
    assert_int_equal(access(path, F_OK), -1); /* nothing created */
    assert_int_equal(tiny_count_entries(f->dir), 0); /* the probe was removed */
    /* an existing file passes and keeps its contents */
    write_text(path, "keep me");
    assert_int_equal(rd_atomic_file_check(path, &err), 0);
    char buf[16] = {0};
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_int_equal(fread(buf, 1, sizeof buf - 1, fp), 7);
    fclose(fp);
    assert_string_equal(buf, "keep me");
    assert_int_equal(tiny_count_entries(f->dir), 1);
    unlink(path);
    /* a double slash, and a device written in place */
    snprintf(path, sizeof path, "%s//x.csv", f->dir);
    assert_int_equal(rd_atomic_file_check(path, &err), 0);
    assert_int_equal(rd_atomic_file_check("/dev/null", &err), 0);
    /* a bare name: the current folder */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(rd_atomic_file_check("plain.gguf", &err), 0);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(tiny_count_entries(f->dir), 0);
}

static void test_bad_paths_refused(void **state) {
    fixture *f = *state;
    char path[1200], sub[600], file[600];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    snprintf(file, sizeof file, "%s/plain.txt", f->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    write_text(file, "x");
    expect_refused("", "empty", NULL);
    /* a missing folder: named in the message */
    snprintf(path, sizeof path, "%s/nodir/x.safetensors", f->dir);
    expect_refused(path, "the folder", "nodir does not exist");
    /* a folder given as the file, with or without a slash */
    expect_refused(sub, "is a folder", NULL);
    snprintf(path, sizeof path, "%s/", sub);
    expect_refused(path, "is a folder", NULL);
    /* a name ending in a slash that is no folder */
    snprintf(path, sizeof path, "%s/newdir/", f->dir);
    expect_refused(path, "not a folder", NULL);
    /* a file where the folder should be, directly or further up */
    snprintf(path, sizeof path, "%s/x.gguf", file);
    expect_refused(path, "plain.txt is a file, not a folder", NULL);
    snprintf(path, sizeof path, "%s/deeper/x.gguf", file);
    expect_refused(path, "part of it is a file", NULL);
    /* a folder that takes no new file (even for root): a name too long */
    char longname[400];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    snprintf(path, sizeof path, "%s/%s", f->dir, longname);
    expect_refused(path, "cannot create a file in the folder", NULL);
    /* a read-only folder, where the permission bits bind (not as root) */
    if (geteuid() != 0) {
        assert_int_equal(chmod(sub, 0555), 0);
        snprintf(path, sizeof path, "%s/x.gguf", sub);
        expect_refused(path, "cannot create a file in the folder", NULL);
        assert_int_equal(chmod(sub, 0755), 0);
    }
    assert_int_equal(tiny_count_entries(sub), 0);
    assert_int_equal(tiny_count_entries(f->dir), 2); /* sub and plain.txt only */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writable_paths_pass),
        cmocka_unit_test(test_bad_paths_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
