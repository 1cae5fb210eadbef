#!/bin/sh
# redit run: a Lua script with arguments (arg table and ...), the red module on a model the
# demo writes, exit status 0; an error exits 1 with the message and traceback on stderr;
# syntax errors, missing scripts and precompiled chunks are refused; Ctrl-C interrupts an
# endless loop (exit 1, "interrupted"); require finds lua/ modules.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
M="$TMP/random-demo.gguf"

cat >"$TMP/ok.lua" <<'LUA'
local model_path, n = ...
assert(select('#', ...) == 3 and arg[0]:find("ok%.lua$") and arg[3] == "--flag")
local m <close> = red.load(model_path)
local text = m:generate("Hello", {max_tokens = tonumber(n), temperature = 0})
print("info", m:info().format, m:info().layers)
print("version", red.version)
local e = m:edits{layers = "0"}
print("params", e:params())
LUA
expect_ok "run ok.lua" "$REDIT" run "$TMP/ok.lua" "$M" 4 --flag
expect_grep "script output" "$TMP/out" "^info	GGUF	[0-9]+$"
expect_grep "version" "$TMP/out" "^version	[0-9]+\.[0-9]+\.[0-9]+$"
expect_grep "edit params" "$TMP/out" "^params	[0-9]+$"

cat >"$TMP/fail.lua" <<'LUA'
print("before the error")
local function deep() error("something broke: " .. tostring(arg[1])) end
deep()
LUA
expect_fail "error exits 1" "fail.lua:2: something broke: xyz" "$REDIT" run "$TMP/fail.lua" xyz
grep -q "stack traceback:" "$TMP/err" || fail "no traceback on stderr: $(cat "$TMP/err")"
grep -q "in local 'deep'" "$TMP/err" || fail "the traceback lacks the function: $(cat "$TMP/err")"
grep -q "^before the error$" "$TMP/out" || fail "stdout before the error was lost"
set +e
"$REDIT" run "$TMP/fail.lua" >/dev/null 2>&1
[ $? -eq 1 ] || fail "a failing script must exit with status 1"
set -e

cat >"$TMP/engine.lua" <<'LUA'
red.load(arg[1] .. "/missing-model.gguf")
LUA
expect_fail "engine error" "missing-model\.gguf" "$REDIT" run "$TMP/engine.lua" "$TMP"

printf 'x = = 1\n' >"$TMP/syntax.lua"
expect_fail "syntax error" "syntax\.lua:1:" "$REDIT" run "$TMP/syntax.lua"
expect_fail "missing script" "nope\.lua" "$REDIT" run "$TMP/nope.lua"
printf '\033Lua binary' >"$TMP/binary.lua"
expect_fail "binary chunk" "binary" "$REDIT" run "$TMP/binary.lua"

set +e
"$REDIT" run >/dev/null 2>&1
[ $? -eq 2 ] || fail "redit run without a script must exit 2"
set -e
expect_ok "help" "$REDIT" run --help
expect_grep "help text" "$TMP/out" "usage: redit run SCRIPT.lua"

# require: modules in ./lua (the working directory) and beside the binary's source tree
mkdir -p "$TMP/work/lua/mylib"
printf 'return {answer = 42}\n' >"$TMP/work/lua/mylib/init.lua"
printf 'assert(require("mylib").answer == 42); print("required")\n' >"$TMP/work/req.lua"
ABS_REDIT=$(cd "$(dirname "$REDIT")" && pwd)/$(basename "$REDIT")
(cd "$TMP/work" && "$ABS_REDIT" run req.lua) >"$TMP/out" 2>"$TMP/err" ||
    fail "require from ./lua failed: $(cat "$TMP/err")"
expect_grep "require" "$TMP/out" "^required$"
printf 'print(package.path)\n' >"$TMP/path.lua"
expect_ok "package.path" "$REDIT" run "$TMP/path.lua"
expect_grep "the source tree's lua/ folder" "$TMP/out" "^$(pwd -P)/lua/\\?\\.lua;"

# Ctrl-C stops an endless loop: exit 1 with "interrupted"
printf 'io.stdout:write("looping\\n"); io.stdout:flush(); while true do end\n' >"$TMP/loop.lua"
"$REDIT" run "$TMP/loop.lua" >"$TMP/out" 2>"$TMP/err" &
pid=$!
n=0
until grep -q looping "$TMP/out" 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 300 ] || { kill $pid; fail "the loop script never started"; }
    sleep 0.1
done
kill -INT $pid
set +e
wait $pid
status=$?
set -e
[ $status -eq 1 ] || fail "interrupted script exited $status, expected 1"
grep -q "interrupted" "$TMP/err" || fail "no 'interrupted' message: $(cat "$TMP/err")"
echo "tests/cli/lua.sh: ok"
