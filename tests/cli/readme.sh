#!/bin/sh
# The README's commands run as written from a fresh clone. Every `build/redit …` line of the
# ```sh blocks of README.md and docs/*.md (continuation lines joined) and every Lua example
# whose first line says how to run it (`-- build/redit run NAME.lua ARGS`) run in order,
# from a scratch folder that sees the repository's build/, models/, datasets/ and lua/, so a
# file a command writes (edits.safetensors) is there for the commands after it. To keep
# `make test` short (and `make test-asan` within reach), training commands get `--max-steps 3`
# appended and their `--eval` set cut to its first 40 examples (their flags and files are
# still all checked), and interactive ones read `/quit` from stdin. Commands on files a user
# brings (a Llama-2-7B GGUF, `my-train.jsonl`) are only named as skipped.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

ROOT=$(pwd)
WORK="$TMP/clone"
mkdir -p "$WORK"
for d in models datasets lua; do ln -s "$ROOT/$d" "$WORK/$d"; done
mkdir -p "$WORK/build"
ln -s "$(cd "$BUILD" && pwd)/redit" "$WORK/build/redit"

# The shell commands, one per line (continuations joined), README.md first; the Lua examples
# as files lua-N.lua with their command lines in luacmds.
"$PY" - "$TMP/commands" "$TMP/luacmds" "$TMP" README.md docs/*.md <<'PY'
import re, sys
cmds, luacmds = [], []
for path in sys.argv[4:]:
    text = open(path, encoding="utf-8").read()
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.split("\n"):
            line = line.strip()
            if line.startswith("build/redit") or line.startswith("printf"):
                cmds.append(line)
    for block in re.findall(r"```lua\n(.*?)```", text, re.S):
        m = re.match(r"-- (build/redit run (\S+\.lua)\b.*)\n", block)
        if not m:
            continue
        name = "lua-%d.lua" % len(luacmds)
        open(sys.argv[3] + "/" + name, "w").write(block)
        luacmds.append(m.group(1).replace(m.group(2), name, 1))
if len(cmds) < 10 or not luacmds:
    sys.exit("README.md/docs: too few ```sh commands or no runnable ```lua example found")
open(sys.argv[1], "w").write("\n".join(cmds) + "\n")
open(sys.argv[2], "w").write("\n".join(luacmds) + "\n")
PY

n=0
skipped=0
while IFS= read -r cmd; do
    case "$cmd" in
    *llama-2-7b*|*my-train.jsonl*)
        printf 'tests/cli/readme.sh: SKIPPED (needs a model or data the user brings): %s\n' "$cmd" >&2
        skipped=$((skipped + 1))
        continue ;;
    esac
    run=$cmd
    # A comment at the end of a line is part of the README, not of the command.
    run=$(printf '%s' "$run" | sed 's/[[:space:]]#.*$//')
    case "$run" in
    *" train "*)
        run="$run --max-steps 3"
        ev=$(printf '%s' "$run" | sed -n 's/.*--eval \([^ ]*\).*/\1/p')
        if [ -n "$ev" ]; then
            [ -f "$ev" ] || fail "README command names a missing held-out set $ev: $cmd"
            mkdir -p "$TMP/evalhead/$(dirname "$ev")"
            head -n 40 "$ev" >"$TMP/evalhead/$ev"
            run=$(printf '%s' "$run" | sed "s#--eval $ev#--eval $TMP/evalhead/$ev#")
        fi ;;
    esac
    stdin=/dev/null
    case "$run" in
    *" chat "*|*" tui "*) stdin="$TMP/quit" ;;
    esac
    printf '/quit\n' >"$TMP/quit"
    case "$run" in
    *" serve "*)
        printf 'tests/cli/readme.sh: SKIPPED here (the server is driven in tests/cli/serve.sh): %s\n' "$cmd" >&2
        skipped=$((skipped + 1))
        continue ;;
    *" tui "*)
        printf 'tests/cli/readme.sh: SKIPPED here (the workbench is driven in tests/cli/tui.sh): %s\n' "$cmd" >&2
        skipped=$((skipped + 1))
        continue ;;
    esac
    if ! (cd "$WORK" && timeout 300 sh -c "$run" <"$stdin" >"$TMP/out" 2>"$TMP/err"); then
        fail "documented command failed: $cmd
stderr: $(tail -c 1200 "$TMP/err")"
    fi
    # A comment "# → OUTPUT" in the README states the command's output: check it.
    case "$cmd" in
    *"# → "*)
        want=$(printf '%s' "$cmd" | sed 's/.*# → //; s/[[:space:]]*$//')
        got=$(tr -s ' \n' ' ' <"$TMP/out" | sed 's/^ //; s/ $//')
        [ "$got" = "$want" ] || fail "README says '$cmd' gives '$want', it gave '$got'" ;;
    esac
    n=$((n + 1))
done <"$TMP/commands"
[ "$n" -ge 10 ] || fail "only $n README commands ran: the extraction is broken"

# The Lua examples, as written (each trains one epoch), with the arguments their first line names.
nl=0
while IFS= read -r cmd; do
    cp "$TMP/$(printf '%s' "$cmd" | awk '{print $3}')" "$WORK/"
    rm -f "$WORK/edits.safetensors"
    (cd "$WORK" && timeout 300 sh -c "$cmd" >"$TMP/out" 2>"$TMP/err") ||
        fail "Lua example failed: $cmd: $(tail -c 1200 "$TMP/err")"
    [ -s "$WORK/edits.safetensors" ] || fail "Lua example wrote no edits.safetensors: $cmd"
    nl=$((nl + 1))
done <"$TMP/luacmds"
echo "tests/cli/readme.sh: $n commands and $nl Lua examples of README.md and docs/ ran ($skipped skipped, named above)"
