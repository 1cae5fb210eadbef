/* The growable byte buffer and typed-array growth (redit/buf.h), and the error macros
 * (redit/error.h): growth, NUL termination, printf of any length, reading a stream, the
 * latched out-of-memory state (a size overflow, and a request malloc refuses) and
 * rd_array_reserve's overflow check. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redit/buf.h"
#include "redit/error.h"

/* Under AddressSanitizer an impossible malloc returns NULL (as glibc's does) instead of
 * stopping the program: the out-of-memory tests below need it. Unused elsewhere. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* A request no allocator grants (past PTRDIFF_MAX): a deterministic out of memory. */
#define IMPOSSIBLE ((size_t)1 << 62)

static void test_empty(void **state) {
    (void)state;
    rd_buf b = {0};
    char *s = rd_buf_take(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    assert_null(b.data);
    rd_buf_free(&b);
    rd_buf_free(NULL);
    assert_int_equal(rd_buf_append(&b, NULL, 0), 0);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    rd_buf_free(&b);
    assert_null(b.data);
}

static void test_growth(void **state) {
    (void)state;
    rd_buf b = {0};
    size_t last_cap = 0;
    int grows = 0;
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(rd_buf_putc(&b, (char)('a' + i % 26)), 0);
        assert_int_equal(b.len, (size_t)i + 1);
        assert_int_equal(b.data[b.len], '\0'); /* NUL-terminated after every append */
        assert_true(b.cap > b.len);
        if (b.cap != last_cap) {
            assert_true(last_cap == 0 || b.cap >= 2 * last_cap); /* doubling */
            last_cap = b.cap;
            grows++;
        }
    }
    assert_true(grows <= 10);
    for (int i = 0; i < 10000; i++) assert_int_equal(b.data[i], 'a' + i % 26);
    /* bytes with NULs inside, then a string */
    static const char bin[] = {'x', 0, 'y'};
    assert_int_equal(rd_buf_append(&b, bin, 3), 0);
    assert_int_equal(rd_buf_puts(&b, "end"), 0);
    assert_int_equal(b.len, 10006);
    assert_memory_equal(b.data + 10000, "x\0yend", 7);
    /* reserve makes room without changing the content */
    const size_t len = b.len;
    assert_int_equal(rd_buf_reserve(&b, 100000), 0);
    assert_true(b.cap >= len + 100001);
    assert_int_equal(b.len, len);
    memset(b.data + b.len, 'z', 100000); /* the room is writable (ASan checks) */
    b.data[b.len] = '\0';
    rd_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_true(b.cap >= len + 100001); /* memory kept */
    rd_buf_free(&b);
}

static void test_printf(void **state) {
    (void)state;
    rd_buf b = {0};
    assert_int_equal(rd_buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "42-x");
    /* longer than the room there is, and longer than any stack line */
    char big[5000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(rd_buf_printf(&b, "[%s]%zu", big, sizeof big), 0);
    assert_int_equal(b.len, 4 + 1 + 4999 + 1 + 4);
    assert_memory_equal(b.data + 4, "[qq", 3);
    assert_string_equal(b.data + b.len - 5, "]5000");
    /* exactly filling the room: the NUL still fits */
    rd_buf c = {0};
    assert_int_equal(rd_buf_reserve(&c, 0), 0);
    const size_t room = c.cap - 1;
    char fill[256];
    assert_true(room < sizeof fill);
    memset(fill, 'f', room);
    fill[room] = '\0';
    assert_int_equal(rd_buf_printf(&c, "%s", fill), 0);
    assert_int_equal(c.len, room);
    assert_int_equal(rd_buf_printf(&c, "%s", "g"), 0);
    assert_int_equal(c.len, room + 1);
    assert_int_equal(c.data[room], 'g');
    char *s = rd_buf_take(&c);
    assert_int_equal(strlen(s), room + 1);
    free(s);
    rd_buf_free(&b);
}

static void test_read(void **state) {
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    const size_t n = 200000; /* more than one 64 KiB read */
    for (size_t i = 0; i < n; i++) fputc((int)(i * 7 % 251), f);
    rewind(f);
    rd_buf b = {0};
    assert_int_equal(rd_buf_puts(&b, "head"), 0);
    assert_int_equal(rd_buf_read(&b, f), 0);
    assert_int_equal(b.len, 4 + n);
    assert_int_equal(b.data[b.len], '\0');
    for (size_t i = 0; i < n; i++) assert_int_equal((unsigned char)b.data[4 + i], i * 7 % 251);
    /* at the end: nothing more, still 0 */
    assert_int_equal(rd_buf_read(&b, f), 0);
    assert_int_equal(b.len, 4 + n);
    fclose(f);
    rd_buf_free(&b);
    /* an empty stream gives an empty string */
    f = tmpfile();
    assert_int_equal(rd_buf_read(&b, f), 0);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    fclose(f);
    rd_buf_free(&b);
}

static void test_overflow_latches(void **state) {
    (void)state;
    rd_buf b = {0};
    assert_int_equal(rd_buf_puts(&b, "kept"), 0);
    assert_int_equal(rd_buf_reserve(&b, SIZE_MAX), -1); /* len + extra + 1 overflows */
    assert_true(b.oom);
    assert_string_equal(b.data, "kept"); /* the content is untouched */
    assert_int_equal(rd_buf_puts(&b, "more"), -1);
    assert_int_equal(rd_buf_printf(&b, "%d", 1), -1);
    assert_int_equal(rd_buf_reserve(&b, 0), -1);
    assert_int_equal(b.len, 4);
    assert_null(rd_buf_take(&b)); /* frees; the buffer is reusable */
    assert_null(b.data);
    assert_false(b.oom);
    assert_int_equal(rd_buf_puts(&b, "again"), 0);
    assert_string_equal(b.data, "again");
    assert_int_equal(rd_buf_reserve(&b, SIZE_MAX - b.len - 1), -1); /* exactly SIZE_MAX + 1 */
    rd_buf_free(&b);
}

static void test_out_of_memory(void **state) {
    (void)state;
    rd_buf b = {0};
    assert_int_equal(rd_buf_puts(&b, "kept"), 0);
    assert_int_equal(rd_buf_reserve(&b, IMPOSSIBLE), -1);
    assert_true(b.oom);
    assert_string_equal(b.data, "kept");
    assert_int_equal(rd_buf_append(&b, "x", 1), -1);
    rd_buf_free(&b);
    assert_false(b.oom);
}

static void test_array(void **state) {
    (void)state;
    double *a = NULL;
    size_t cap = 0;
    assert_int_equal(rd_array_reserve(&a, &cap, 1, sizeof *a), 0);
    assert_non_null(a);
    assert_int_equal(cap, 16);
    for (size_t i = 0; i < 1000; i++) {
        assert_int_equal(rd_array_reserve(&a, &cap, i + 1, sizeof *a), 0);
        assert_true(cap >= i + 1);
        a[i] = (double)i;
    }
    assert_int_equal(cap, 1024);
    for (size_t i = 0; i < 1000; i++) assert_true(a[i] == (double)i);
    /* no growth when it fits */
    double *same = a;
    assert_int_equal(rd_array_reserve(&a, &cap, 1024, sizeof *a), 0);
    assert_ptr_equal(a, same);
    /* need * elem overflows: nothing changes */
    assert_int_equal(rd_array_reserve(&a, &cap, SIZE_MAX / sizeof *a + 1, sizeof *a), -1);
    assert_ptr_equal(a, same);
    assert_int_equal(cap, 1024);
    /* malloc refuses: nothing changes, the array is still the caller's */
    assert_int_equal(rd_array_reserve(&a, &cap, IMPOSSIBLE / sizeof *a, sizeof *a), -1);
    assert_ptr_equal(a, same);
    assert_int_equal(cap, 1024);
    assert_true(a[999] == 999.0);
    /* elements of 0 bytes are refused */
    size_t none = 0;
    char *c = NULL;
    assert_int_equal(rd_array_reserve(&c, &none, 1, 0), -1);
    assert_null(c);
    free(a);
}

/* ---- the error macros ------------------------------------------------------------------ */

static int count_calls;
static rd_error *counted(rd_error *e) {
    count_calls++;
    return e;
}

static void test_error_macros(void **state) {
    (void)state;
    rd_error err = {{0}};
    assert_int_equal(rd_error_set(&err, "%s: bad %d", "f.gguf", 3), -1);
    assert_string_equal(err.msg, "f.gguf: bad 3");
    assert_int_equal(rd_error_prefix(&err, "loading %s", "m"), -1);
    assert_string_equal(err.msg, "loading m: f.gguf: bad 3");
    assert_int_equal(rd_error_set(NULL, "dropped"), -1);
    assert_int_equal(rd_error_prefix(NULL, "dropped"), -1);
    /* usable as a statement, in a condition, and err is evaluated once */
    rd_error_set(counted(&err), "once");
    assert_int_equal(count_calls, 1);
    int rc = err.msg[0] ? rd_error_set(counted(&err), "twice") : 0;
    assert_int_equal(rc, -1);
    assert_int_equal(count_calls, 2);
    assert_string_equal(err.msg, "twice");
    /* a prefix that does not fit leaves the message as it is */
    char long_prefix[RD_ERROR_MAX + 8];
    memset(long_prefix, 'p', sizeof long_prefix - 1);
    long_prefix[sizeof long_prefix - 1] = '\0';
    assert_int_equal(rd_error_prefix(&err, "%s", long_prefix), -1);
    assert_string_equal(err.msg, "twice");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_overflow_latches),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_array),
        cmocka_unit_test(test_error_macros),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
