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

/* Runs `expr` as one chunk and checks what it printed. */
static void shows(rd_lua_repl *r, capture *c, const char *expr, const char *want) {
    c->out[0] = c->err[0] = '\0';
    feed_all(r, expr);
    assert_string_equal(c->err, "");
    assert_string_equal(c->out, want);
}

/* A table result shows its fields (not "table: 0x..."): sorted, the array part first, nested
 * tables one level deep and deeper ones by size, long tables and strings cut with a count,
 * a field a line when the one-line form is long; the REPL and the workbench console share
 * it (both print results through rd_lua_repl). print() still uses tostring. */
static void test_tables(void **state) {
    (void)state;
    rd_error err = {0};
    lua_State *L = rd_lua_new(&err);
    assert_non_null(L);
    capture c = {{0}, {0}};
    assert_int_equal(rd_lua_redirect_output(L, output, &c), 0);
    rd_lua_repl *r = rd_lua_repl_new(L, output, &c);
    assert_non_null(r);

    shows(r, &c, "{}", "{}\n");
    shows(r, &c, "{b = 2, a = 'x', 10, 20}", "{10, 20, a = \"x\", b = 2}\n");
    shows(r, &c, "{[3] = 'c', [1.5] = true, [-1] = 0, z = {y = {1, 2}, x = 1}}",
          "{[-1] = 0, [1.5] = true, [3] = \"c\", z = {x = 1, y = {\xe2\x80\xa6 2 entries}}}\n");
    shows(r, &c, "{['end'] = 1, ['a b'] = 2, ok_1 = 3}", "{[\"a b\"] = 2, [\"end\"] = 1, ok_1 = 3}\n");
    shows(r, &c, "{'q\"\\n'}", "{\"q\\\"\\n\"}\n");
    /* strings inside a table are cut at 60 bytes with their length */
    shows(r, &c, "{string.rep('x', 100)}",
          "{\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xe2\x80\xa6\" (100 bytes)}\n");
    /* a long array: its first 12 entries and a count, on one line */
    shows(r, &c, "(function() local t = {} for i = 1, 100 do t[i] = i end return t end)()",
          "{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, \xe2\x80\xa6 (88 more)}\n");
    /* a long record: a field a line, nested tables inline */
    shows(r, &c,
          "{name = 'stories15M', dim = 288, layers = 6, heads = 6, vocab = 32000, "
          "tensors = {F32 = 57}, format = 'llama2c'}",
          "{\n"
          "  dim = 288,\n"
          "  format = \"llama2c\",\n"
          "  heads = 6,\n"
          "  layers = 6,\n"
          "  name = \"stories15M\",\n"
          "  tensors = {F32 = 57},\n"
          "  vocab = 32000\n"
          "}\n");
    /* several results, tab-separated; strings at the top level as they are */
    shows(r, &c, "{1}, 'a', {}", "{1}\ta\t{}\n");
    /* __tostring and userdata through tostring; a cycle stops at the depth limit */
    shows(r, &c, "setmetatable({}, {__tostring = function() return 'obj' end})", "obj\n");
    shows(r, &c, "{setmetatable({}, {__tostring = function() return 'obj' end})}", "{obj}\n");
    shows(r, &c, "(function() local t = {} t.self = t return t end)()",
          "{self = {self = {\xe2\x80\xa6 1 entry}}}\n");
    /* print() is unchanged */
    c.out[0] = '\0';
    feed_all(r, "print({})");
    assert_non_null(strstr(c.out, "table: 0x"));
    /* the top level of a long table stops after 40 fields */
    c.out[0] = '\0';
    feed_all(r, "(function() local t = {} for i = 1, 50 do t['k' .. i] = i end return t end)()");
    assert_non_null(strstr(c.out, "\n  \xe2\x80\xa6 (10 more)\n}\n"));

    rd_lua_repl_free(r);
    rd_lua_close(L);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_repl), cmocka_unit_test(test_tables)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
