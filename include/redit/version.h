/* redit — the program's version (core layer).
 *
 * RD_VERSION is the release number, written here and nowhere else: `redit --version`,
 * `redit CMD --version` and the Lua module's red.version all read it. A build from a git
 * checkout adds `git describe` (the Makefile's GIT_DESCRIBE) to the full version string. */
#ifndef REDIT_VERSION_H
#define REDIT_VERSION_H

#define RD_VERSION "0.20.0"

/* "0.20.0 (git 4f2bf0c-dirty)" when built from a git checkout, else RD_VERSION. A static
 * string. */
const char *rd_version_full(void);

#endif
