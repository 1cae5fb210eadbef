/* Tests of the Lua REPL step (lua_repl.h): expressions print their values, statements run,
 * incomplete chunks ask for more lines, errors go to the error output, and print/io.write
 * are redirected to the console's output function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "redit/lua_red.h"
#include "redit/lua_repl.h"

typedef struct capture {
    char out[4096], err[4096];
} capture;

static void append(char *buf, const char *text, size_t len) {
    size_t have = strlen(buf);
    if (have + len >= 4096) len = 4095 - have;
    memcpy(buf + have, text, len);
    buf[have + len] = '\0';
}

static void output(void *user, const char *text, size_t len, int is_error) {
    capture *c = user;
    append(is_error ? c->err : c->out, text, len);
}

/* Feeds the lines of `input` ('\n'-separated); runs every ready chunk. Returns the last
 * feed's status. */
static int feed_all(rd_lua_repl *r, const char *input) {
    char *copy = strdup(input), *save = NULL;
    int rc = RD_LUA_REPL_READY;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *chunk = NULL;
        rc = rd_lua_repl_feed(r, line, &chunk);
        if (rc == RD_LUA_REPL_READY) {
            assert_non_null(chunk);
            rd_lua_repl_run(r);
        }
        free(chunk);
    }
    free(copy);
    return rc;
}

static void test_repl(void **state) {
    rd_error err = {0};
    lua_State *L = rd_lua_new(&err);
    assert_non_null(L);
    capture c = {{0}, {0}};
    assert_int_equal(rd_lua_redirect_output(L, output, &c), 0);
    rd_lua_repl *r = rd_lua_repl_new(L, output, &c);
    assert_non_null(r);

    assert_int_equal(feed_all(r, "1+1"), RD_LUA_REPL_READY);
    assert_string_equal(c.out, "2\n");
    c.out[0] = '\0';
    feed_all(r, "x = 5\nx, 'a', nil");
    assert_string_equal(c.out, "5\ta\tnil\n");
    c.out[0] = '\0';
    feed_all(r, "print(1+1)\nlocal _ = io.write('a', 3, '\\n')");
    assert_string_equal(c.out, "2\na3\n");
    c.out[0] = '\0';

    /* A chunk across lines, with the chunk text for the history. */
    assert_int_equal(rd_lua_repl_feed(r, "function f(a)", NULL), RD_LUA_REPL_MORE);
    assert_true(rd_lua_repl_pending(r));
    assert_int_equal(rd_lua_repl_feed(r, "  return a * 2", NULL), RD_LUA_REPL_MORE);
    char *chunk = NULL;
    assert_int_equal(rd_lua_repl_feed(r, "end", &chunk), RD_LUA_REPL_READY);
    assert_string_equal(chunk, "function f(a)\n  return a * 2\nend");
    free(chunk);
    rd_lua_repl_run(r);
    feed_all(r, "f(21)");
    assert_string_equal(c.out, "42\n");
    assert_string_equal(c.err, "");

    /* Runtime and syntax errors go to the error output; the state goes on. */
    feed_all(r, "error('boom')");
    assert_non_null(strstr(c.err, "boom"));
    assert_non_null(strstr(c.err, "stack traceback"));
    c.err[0] = '\0';
    feed_all(r, "x = = 1");
    assert_non_null(strstr(c.err, "unexpected symbol"));
    c.err[0] = '\0';

    /* An open chunk at the end of the input reports <eof>; reset drops pending lines. */
    assert_int_equal(rd_lua_repl_feed(r, "t = {", NULL), RD_LUA_REPL_MORE);
    rd_lua_repl_finish(r);
    assert_non_null(strstr(c.err, "<eof>"));
    assert_false(rd_lua_repl_pending(r));
    assert_int_equal(rd_lua_repl_feed(r, "if true then", NULL), RD_LUA_REPL_MORE);
    rd_lua_repl_reset(r);
    c.out[0] = '\0';
    feed_all(r, "red ~= nil");
    assert_string_equal(c.out, "true\n");

    /* A stop request interrupts a running loop and is cleared afterwards. */
    c.err[0] = '\0';
    rd_lua_request_stop(L);
    feed_all(r, "while true do end");
    assert_non_null(strstr(c.err, "interrupted"));
    c.out[0] = '\0';
    feed_all(r, "'after'");
    assert_string_equal(c.out, "after\n");

    rd_lua_repl_free(r);
    rd_lua_close(L);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_repl)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
