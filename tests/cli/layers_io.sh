#!/bin/sh
# The io layer includes nothing above it: every `#include "redit/..."` of src/io/*.c and
# src/io/*.h, and of the io layer's public headers, names a core or io header; src/io's own
# includes name files of src/io; and no io file calls the tokenizer (text) or the edits
# (model). DESIGN.md: core < io < text < model < ...
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

CORE="error dtype weights atomic_file util kernels pool gemm_bf16"
IO="model_file safetensors vocab gguf_writer"
IO_HEADERS="include/redit/model_file.h include/redit/safetensors.h include/redit/vocab.h
include/redit/gguf_writer.h"

allowed() {
    for h in $CORE $IO; do [ "$1" = "redit/$h.h" ] && return 0; done
    return 1
}

n=0
for f in src/io/*.c src/io/*.h $IO_HEADERS; do
    [ -f "$f" ] || fail "$f is missing"
    n=$((n + 1))
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" >"$TMP/inc"
    while read -r inc; do
        case $inc in
        redit/*) allowed "$inc" || fail "$f includes \"$inc\", which is not a core or io header" ;;
        */*) fail "$f includes \"$inc\" (outside src/io)" ;;
        *) [ -f "src/io/$inc" ] || fail "$f includes \"$inc\", which is not a file of src/io" ;;
        esac
    done <"$TMP/inc"
done
[ "$n" -ge 10 ] || fail "only $n io files found: run from the repository root"

calls='rd_tokenizer_[a-z_]*[[:space:]]*(\|rd_edits_[a-z_]*[[:space:]]*('
if grep -n "$calls" src/io/*.c src/io/*.h $IO_HEADERS >"$TMP/calls"; then
    fail "io calls the text or model layer: $(head -c 600 "$TMP/calls")"
fi
echo "tests/cli/layers_io.sh: ok"
