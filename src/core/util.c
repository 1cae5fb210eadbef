/* Small helpers shared across layers: the exact decimal text of a double. */
#include "redit/util.h"

#include <stdio.h>
#include <stdlib.h>

const char *rd_format_double(double v, char *buf, size_t cap) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}
