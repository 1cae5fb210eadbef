/* Test helpers: cmocka assertions shared by several suites. */
#ifndef TEST_CHECKS_H
#define TEST_CHECKS_H

#include "redit/weights.h"

/* Every field of two configurations is equal (fails the running cmocka test otherwise). */
void assert_config_equal(const rd_config *a, const rd_config *b);

#endif
