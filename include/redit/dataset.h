/* redit — training and evaluation data (data layer).
 *
 * A data set is a list of tokenized examples: ids (n) and a loss mask (n) saying which
 * positions' next-token predictions count. Loaded from JSONL (Alpaca, chat messages,
 * prompt/completion, UltraFeedback prompt + chosen, classification text + label) or plain
 * text; rendered through a chat template; truncated to max_len. Files are untrusted: a
 * malformed line gives an error naming the file and line (or is skipped and counted when
 * skip_bad_lines is set).
 *
 * Tokenization. Each (prompt, answer) turn is rendered by the template into a prompt part P
 * (everything before {answer}) and an answer part A (the answer and any template text after
 * it); the two are tokenized apart so the mask boundary is exact:
 *     ids = [BOS] + enc(P) + enc(A) + [EOS]          (BOS/EOS inserted as ids, never as text)
 * SentencePiece prepends a dummy-prefix "▁" to every text it encodes, so enc(A) alone starts
 * with "▁". Two cases:
 *   - the template puts one space before {answer} ("[/INST] {answer}", "Assistant: {answer}")
 *     and the tokenizer adds a dummy prefix: that space is dropped from P and A's dummy "▁"
 *     stands for it — the ids are those SentencePiece gives the whole text (Llama's pieces
 *     never run across a space), and what Llama-2's reference code does;
 *   - otherwise ("### Response:\n{answer}", "{prompt}\n{answer}"): P + A is encoded as one
 *     text and the answer starts at the first id where that differs from enc(P) (a token that
 *     straddles the boundary counts as answer). The ids are again exactly the whole text's.
 * A "</s>" at the end of a template (the "red" template) is the EOS id; every template ends
 * the answer with EOS (a custom template without "</s>" gets one too). Texts are used as
 * given (no stripping); the tokenizer never produces control ids from text, so a literal
 * "<s>" in the data stays text.
 * Chat: a leading system message fills the template's system slot; roles must alternate
 * user, assistant, ...; each user/assistant pair is one turn in its own [BOS] … [EOS]
 * segment ("<s>[INST] u1 [/INST] a1</s><s>[INST] u2 [/INST] a2</s>"; unlike Meta's
 * chat_completion no "▁" token is put before EOS); a trailing user message with no answer is
 * ignored. A system text in a template without a {system} slot is put before the first
 * prompt followed by "\n\n"; Alpaca's input goes into the standard Alpaca "### Input:"
 * variant of the alpaca template, and after the instruction ("\n\n" between) in others.
 * Loss: mask_prompt = 1 puts loss on the answer tokens of every turn and their EOS;
 * mask_prompt = 0 on every position t >= 1. Truncation keeps the first max_len ids and
 * counts the example as truncated; an example left without any loss position (its answers
 * cut away) is dropped and counted by rd_dataset_dropped as well.
 * Plain text: the whole file is one document, tokenized once and cut into chunks of
 * max_len ids, each starting with BOS, loss on every position; JSONL lines holding only
 * "text" are documents of their own, each ending with EOS. */
#ifndef REDIT_DATASET_H
#define REDIT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "redit/error.h"
#include "redit/tokenizer.h"

typedef enum rd_data_format {
    RD_DATA_AUTO = 0,          /* from the first line's keys (.txt / non-JSON: text) */
    RD_DATA_ALPACA,            /* instruction, input (optional), output */
    RD_DATA_CHAT,              /* messages: [{role, content}...]; loss on assistant turns */
    RD_DATA_PROMPT_COMPLETION, /* prompt, completion */
    RD_DATA_ULTRAFEEDBACK,     /* prompt + chosen (a string, or a message list whose last
                                  assistant message is the answer) */
    RD_DATA_TEXT,              /* plain text file: language-model chunks of max_len tokens */
    RD_DATA_CLASSIFICATION     /* text + label (string or integer); the label word is the answer */
} rd_data_format;

/* Parses "auto", "alpaca", "chat", "prompt-completion", "ultrafeedback", "text",
 * "classification". -1 if unknown. */
int rd_data_format_from_name(const char *name, rd_data_format *out);
const char *rd_data_format_name(rd_data_format f);

/* Templates render (system, prompt, answer) into text. Built-in names:
 *   "llama2-chat": "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{prompt} [/INST] {answer}" + EOS
 *                  (no <<SYS>> block without a system text); multi-turn chats repeat
 *                  "[INST] … [/INST] answer </s><s>" as Llama-2 does;
 *   "alpaca":      "Below is an instruction that describes a task. Write a response that
 *                  appropriately completes the request.\n\n### Instruction:\n{prompt}\n\n
 *                  ### Response:\n{answer}" + EOS;
 *   "plain":       "{prompt}\n{answer}" + EOS (no text around);
 *   "red":         the RED paper's "Human: {prompt}\n\nAssistant: {answer}</s>".
 * Any other string containing "{prompt}" and "{answer}" is a custom template ("\n" escapes
 * are the caller's business): one {answer}, after {prompt}, with only literal text after
 * it; "{system}" and "{input}" are optional slots. Placeholders are filled in one pass, so
 * data that contains "{answer}" stays text. */
typedef struct rd_data_opts {
    rd_data_format format;
    const char *template_name; /* NULL: "plain" for text/classification, else "alpaca" */
    int max_len;               /* tokens per example after truncation (BOS included); > 1 */
    int mask_prompt;           /* 1 (default): loss only on answer tokens; 0: whole sequence */
    int skip_bad_lines;        /* 0: a malformed line is an error; 1: skip it and count it */
    const char *system;        /* optional system text for templates that have one */
} rd_data_opts;

/* The prompt part of one turn for generation: template_name (a built-in name or a custom
 * string as in rd_data_opts; NULL: "alpaca") rendered with system (may be NULL) and prompt up
 * to {answer}, exactly as training tokenizes the prompt: when tok adds a dummy prefix and the
 * template puts exactly one space before {answer}, that space is left out (the answer's first
 * piece "▁…" stands for it; dataset.h's rule). So [BOS] + enc(result) are the ids a
 * training example has before its answer; e.g. "red" gives "Human: {prompt}\n\nAssistant:".
 * tok may be NULL (the text is returned whole). Returns a malloc'ed string the caller frees,
 * or NULL with *err (a bad custom template, out of memory). */
char *rd_data_render_prompt(const char *template_name, const char *system, const char *prompt,
                            const rd_tokenizer *tok, rd_error *err);

/* The template a format uses when none is named: "plain" for text and classification,
 * "alpaca" otherwise (static string). */
const char *rd_data_default_template(rd_data_format f);

/* Defaults: auto format, default template, max_len 512, mask_prompt 1, strict. */
rd_data_opts rd_data_opts_defaults(void);

typedef struct rd_example {
    int *ids;          /* (n) token ids, starting with BOS */
    unsigned char *loss; /* (n) loss[t] = 1 when predicting ids[t] from ids[<t] counts
                            (loss[0] is always 0) */
    int n;
    int n_prompt;      /* ids[0, n_prompt) are BOS and everything before the last answer
                          (1 for text chunks); the answer follows (n_prompt == n when the
                          answer was cut away) */
    int label;         /* classification: index into the label list; else -1 */
} rd_example;

typedef struct rd_dataset rd_dataset;

/* Loads and tokenizes a data set. tok is borrowed for the call only. Returns NULL with
 * *err naming the file (and line) on failure. */
rd_dataset *rd_dataset_load(const char *path, const rd_tokenizer *tok, const rd_data_opts *opts,
                            rd_error *err);
void rd_dataset_free(rd_dataset *d); /* NULL-safe */

size_t rd_dataset_size(const rd_dataset *d);
const rd_example *rd_dataset_get(const rd_dataset *d, size_t i); /* borrowed; NULL if out of range */
size_t rd_dataset_skipped(const rd_dataset *d);  /* bad lines skipped (skip_bad_lines) */
size_t rd_dataset_truncated(const rd_dataset *d); /* examples cut to max_len (dropped included) */
size_t rd_dataset_dropped(const rd_dataset *d);   /* examples dropped: no loss left after the cut */
rd_data_format rd_dataset_format(const rd_dataset *d);
uint64_t rd_dataset_loss_tokens(const rd_dataset *d); /* positions with loss = 1, in total */

/* The bytes of text that d's loss positions t < max_len stand for: the sum of each scored
 * token's rd_tokenizer_decode_piece after the token before it (a control token such as EOS
 * adds 0 bytes; the dummy-prefix space of a piece right after BOS is not counted). The
 * summed loss over these bytes is the loss per byte, which, unlike perplexity, compares
 * models whose tokenizers differ. tok is the tokenizer d was loaded with (borrowed for the
 * call). 0 for a NULL d or tok. */
uint64_t rd_dataset_loss_bytes(const rd_dataset *d, const rd_tokenizer *tok, int max_len);

/* A 64-bit FNV-1a hash of d's examples in order (lengths, ids, loss masks, labels): equal for the
 * same data tokenized the same way, so a saved training state can tell whether it is
 * resumed on the data it was made with. 0 for NULL. */
uint64_t rd_dataset_fingerprint(const rd_dataset *d);

/* What loading left out or cut, for a person: e.g. "826 examples dropped (no answer left
 * within max length 128), 40 more truncated, 3 bad lines skipped"; "" when nothing was.
 * Writes at most cap bytes into buf (NUL included) and returns buf. */
const char *rd_dataset_cuts_text(const rd_dataset *d, int max_len, char *buf, size_t cap);

/* The source text of example i as rendered by the template: prompt part and answer part
 * (borrowed, NUL-terminated). The prompt part is the text tokenized as the prompt — for a
 * single turn [BOS] + enc(prompt text) == ids[0, n_prompt), so it lacks the space before
 * {answer} that the answer's dummy prefix stands for ("...Assistant:"); earlier chat turns
 * appear whole with "</s><s>" where the EOS and BOS ids go. The answer part is the last
 * answer with any template text after it, without EOS. For plain text the prompt is "" and
 * the answer the chunk (decoded). */
const char *rd_dataset_prompt_text(const rd_dataset *d, size_t i);
const char *rd_dataset_answer_text(const rd_dataset *d, size_t i);

/* Classification sets: the label words (in first-seen order, or sorted integers), each
 * scored as the answer after the rendered prompt. */
int rd_dataset_n_labels(const rd_dataset *d);
const char *rd_dataset_label(const rd_dataset *d, int k);
/* The answer ids of label word k (its tokens and EOS, *n of them; borrowed) as they follow
 * every example's prompt: candidate k of example e is e.ids[0, e.n_prompt) + these ids
 * (the example itself is that with k = e.label, before truncation). NULL if out of range. */
const int *rd_dataset_label_ids(const rd_dataset *d, int k, int *n);

/* Splits d into a seeded random (1 − frac, frac) partition: *train and *held_out are new
 * data sets (copies) the caller frees. frac in (0, 1); d needs 2 examples or more. The
 * held-out part has round(frac · n) examples, clamped to [1, n − 1], chosen by a
 * Fisher-Yates shuffle driven by rd_rng_next (same seed, same split); both parts keep the
 * source order. Their truncated counts are those of their examples; skipped and dropped
 * counts stay with the source (0 in the parts). */
int rd_dataset_split(const rd_dataset *d, double frac, uint64_t seed, rd_dataset **train,
                     rd_dataset **held_out, rd_error *err);

/* A micro-batch: tokens (B, T) and targets (B, T), targets[b][t] = the id to predict at
 * position t or -1 (padding, masked prompt). Padding is on the right. */
typedef struct rd_batch {
    int B, T;
    int *tokens;  /* (B, T) */
    int *targets; /* (B, T) */
    int n_targets; /* targets that are not -1 */
} rd_batch;

/* Fills out with the examples idx[0..count) of d: one example per row, T = the longest
 * (at most T_max) — or, with pack, examples concatenated into rows of T_max (an example
 * never spans two rows unless it alone is longer than T_max), as many rows as needed.
 * In a row, targets never cross from one example into the next; a row ending inside an
 * example that spans rows targets the first id of the next row. T_max >= 2; every idx < the
 * set's size. out must be zeroed before its first use; its buffers are reused and grown;
 * free them with rd_batch_release. On failure out keeps its previous buffers. */
int rd_batch_fill(rd_batch *out, const rd_dataset *d, const size_t *idx, size_t count, int T_max,
                  int pack, int pad_id, rd_error *err);
void rd_batch_release(rd_batch *b);

#endif
