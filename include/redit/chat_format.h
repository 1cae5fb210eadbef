/* redit — conversations for chat front ends (data layer): the prompt ids of a multi-turn
 * conversation rendered by a chat template, and a streaming filter that ends a reply where
 * the template's next turn would begin.
 *
 * The ids are exactly those the data layer gives a chat example with the same messages
 * (dataset.h), up to the last answer: for each finished exchange
 *     [BOS] + enc(P) + enc(A) + [EOS]
 * and for the new user message [BOS] + enc(P) (without the space before {answer}, which the
 * answer's dummy-prefix "▁" stands for) — so a model trained on chat data with a template
 * sees in chat the same ids it was trained on. The system text goes into the first turn. */
#ifndef REDIT_CHAT_FORMAT_H
#define REDIT_CHAT_FORMAT_H

#include <stddef.h>

#include "redit/error.h"
#include "redit/tokenizer.h"

/* One finished exchange of a conversation: what the user said and the assistant's reply.
 * Both NUL-terminated, borrowed. */
typedef struct rd_chat_exchange {
    const char *user;
    const char *assistant;
} rd_chat_exchange;

/* The prompt ids for the model to answer `user` after the exchanges past[0..n_past)
 * (past may be NULL when n_past is 0). template_name: a built-in name or a custom template
 * as in dataset.h (NULL: "llama2-chat"); system may be NULL or "". On success *ids is a
 * malloc'ed array of *n ids the caller frees. Returns 0, or -1 with *err (unknown or bad
 * template, out of memory). */
int rd_chat_prompt_ids(const rd_tokenizer *tok, const char *template_name, const char *system,
                       const rd_chat_exchange *past, size_t n_past, const char *user, int **ids,
                       size_t *n, rd_error *err);

/* The text a template starts each turn with — what a model continuing past its answer
 * writes when it begins the next turn itself: the text before {prompt} with no system text,
 * without surrounding whitespace ("[INST]" for llama2-chat, "Human:" for red, "" for
 * plain). Returns a malloc'ed string the caller frees, or NULL with *err. */
char *rd_chat_turn_start(const char *template_name, rd_error *err);

/* A streaming filter for one reply. Text is pushed as the model produces it; the filter
 * hands back the part that can be shown now: leading whitespace is dropped, trailing
 * whitespace and any text that may be the beginning of the stop text are held back until
 * what follows decides, and the reply ends at the stop text (which is never shown). */
typedef struct rd_chat_filter rd_chat_filter;

/* stop: the text that ends a reply (copied; NULL or "" for none). NULL on out of memory. */
rd_chat_filter *rd_chat_filter_new(const char *stop);
void rd_chat_filter_free(rd_chat_filter *f); /* NULL-safe */

/* Starts a new reply (keeps the stop text). */
void rd_chat_filter_reset(rd_chat_filter *f);

/* Adds len bytes of reply text. *show / *show_len receive the text to show now (borrowed,
 * valid until the next call on f; may be empty). Returns 1 when the stop text has been seen
 * (the reply is over: later pushes show nothing), 0 when the reply goes on, -1 when out of
 * memory (nothing to show). */
int rd_chat_filter_push(rd_chat_filter *f, const char *text, size_t len, const char **show,
                        size_t *show_len);

/* The end of the reply: the held text still to show (trailing whitespace dropped), as in
 * rd_chat_filter_push. */
void rd_chat_filter_finish(rd_chat_filter *f, const char **show, size_t *show_len);

/* The reply so far as shown (NUL-terminated, borrowed until the next call on f): after
 * rd_chat_filter_finish or a stop, the whole reply without leading and trailing whitespace. */
const char *rd_chat_filter_reply(const rd_chat_filter *f);

/* 1 when the stop text has ended the reply. */
int rd_chat_filter_stopped(const rd_chat_filter *f);

#endif
