#!/bin/sh
# Installs the Debian 12 packages redit builds and tests with, when they are missing.
# Called by the Makefile before the first compile; prints what it installs.
# `install-deps.sh analyze` (make analyze) adds clang's static analyser, which the default
# build and CI do not need.
set -e
PKGS="build-essential pkg-config libopenblas-dev liblua5.4-dev libncurses-dev libreadline-dev libcmocka-dev libcjson-dev libxxhash-dev libprotobuf-c-dev libmicrohttpd-dev protobuf-c-compiler python3 python3-sentencepiece tmux strace libopenmpi-dev openmpi-bin"
[ "${1:-}" = analyze ] && PKGS="$PKGS clang clang-tools"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "redit: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
