/* The version string (redit/version.h). RD_GIT_DESCRIBE comes from the Makefile, which
 * rebuilds this one file when `git describe` changes. */
#include "redit/version.h"

const char *rd_version_full(void) {
#ifdef RD_GIT_DESCRIBE
    return RD_VERSION " (git " RD_GIT_DESCRIBE ")";
#else
    return RD_VERSION;
#endif
}
