/* redit — helpers shared by the generation loops of the gen layer (rd_generate and the
 * batched engine); private to src/gen. */
#ifndef REDIT_GEN_INTERNAL_H
#define REDIT_GEN_INTERNAL_H

#include <stddef.h>

#include "redit/buf.h"
#include "redit/tokenizer.h"

/* The text `id` adds after `prev` through tok (empty without a tokenizer), decoded into b
 * (a scratch buffer: its len stays 0). Sets *text (borrowed from b until its next use) and
 * *len; returns 0, or -1 when out of memory. */
int rd_gen_piece_text(const rd_tokenizer *tok, int prev, int id, rd_buf *b, const char **text,
                      size_t *len);

/* Seconds on the monotonic clock. */
double rd_gen_now(void);

#endif
