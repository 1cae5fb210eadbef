/* redit — layer lists of edit sets (model layer, internal to src/model).
 *
 * A layer list is "all" or a comma-separated list of layers and ranges ("0-5,9", spaces allowed
 * around numbers). */
#ifndef REDIT_MODEL_EDIT_LAYERS_H
#define REDIT_MODEL_EDIT_LAYERS_H

#include "redit/error.h"

/* Parses text (NULL means "all") into on (n_layers flags, zeroed by the caller). Returns 0, or
 * -1 with *err naming the text and what is wrong (a layer beyond n_layers, a reversed range,
 * a stray character, an empty list). */
int rd_layer_list_parse(const char *text, int n_layers, unsigned char *on, rd_error *err);

/* The canonical text of on (n_layers flags): "all", or ascending items "a" / "a-b" joined by
 * commas. Malloc'ed (the caller frees); NULL when out of memory. */
char *rd_layer_list_text(const unsigned char *on, int n_layers);

#endif
