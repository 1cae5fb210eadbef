/* redit — data layer internals shared by the files of src/data (not a public header).
 *
 * Loading runs in three steps: a JSONL line is parsed into an rd_record (jsonl.c), the
 * record's turns are rendered by an rd_template into prompt/answer text (template.c), and
 * the text is tokenized into ids with the answer positions marked (encode.c). load.c
 * drives them; dataset.c owns the examples (and splits sets); batch.c builds micro-batches. */
#ifndef REDIT_DATA_INTERNAL_H
#define REDIT_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "redit/dataset.h"

/* Longest JSONL line accepted by default; the environment variable RD_DATA_MAX_LINE_ENV
 * (a size such as 256M, read by rd_env_bytes) overrides it. A line's memory while it is
 * loaded: the line, its cJSON tree and the record's copy of its strings (about 3× the line),
 * then the rendered text and its ids once the line and the tree are freed. */
#define RD_DATA_MAX_LINE ((size_t)64 << 20)
#define RD_DATA_MAX_LINE_ENV "REDIT_MAX_LINE_BYTES"

/* ---- records (jsonl.c) ------------------------------------------------------------ */

typedef struct rd_turn {
    char *prompt; /* user text (classification: the text; documents: "") */
    char *answer; /* assistant text (classification: the label word; documents: the text) */
} rd_turn;

/* One parsed line, every string owned and valid UTF-8. */
typedef struct rd_record {
    long line;            /* 1-based line number in the file */
    char *system;         /* system message of a chat, or NULL */
    char *input;          /* Alpaca input, or NULL when absent or empty */
    rd_turn *turns;       /* (n_turns) n_turns >= 1 */
    int n_turns;
    int label_is_int;     /* classification: the label was an integer */
    long long label_int;  /* its value */
} rd_record;

void rd_data_record_clear(rd_record *r); /* frees the strings; r may be reused */

/* The format a JSONL object's keys say (RD_DATA_TEXT for "text" alone), or RD_DATA_AUTO
 * when the keys fit none. */
rd_data_format rd_data_detect_keys(const cJSON *obj);

/* Fills r (zeroed by the caller) from one JSON object in the given format (not AUTO),
 * moving the strings it keeps out of obj (their items are left without values; obj is still
 * the caller's to free). Returns 0, or -1 with *err saying what is wrong (no file/line
 * prefix); r is then cleared. */
int rd_data_record_parse(cJSON *obj, rd_data_format f, rd_record *r, rd_error *err);

/* Byte offset of the first byte of s[0..len) that does not start a well-formed UTF-8
 * character (no overlong forms, surrogates or values above U+10FFFF), len when none. */
size_t rd_data_utf8_check(const char *s, size_t len);

/* Buffered reader of '\n'-terminated lines (the '\n' and a '\r' before it removed). */
typedef struct rd_line_reader {
    FILE *f;
    char *buf;      /* (cap) the current line, NUL-terminated */
    size_t cap, len;
    char *in;       /* (RD_LINE_CHUNK) read buffer */
    size_t in_pos, in_len;
    long line_no;   /* number of the current line, 1-based */
    size_t max_line; /* longest line kept, in bytes */
    int too_long;   /* the current line exceeds max_line (buf holds its start) */
} rd_line_reader;

/* Starts reading f (borrowed), keeping lines of up to max_line bytes. Returns 0 or -1 (out
 * of memory). */
int rd_line_reader_init(rd_line_reader *r, FILE *f, size_t max_line);
void rd_line_reader_free(rd_line_reader *r);
/* Gives back the memory of a long current line once the caller is done with it (r->buf is
 * then invalid until the next rd_line_reader_next). */
void rd_line_reader_release(rd_line_reader *r);
/* Next line into r->buf/r->len. Returns 1, 0 at the end of the file, -1 on a read error
 * or out of memory (*err set). */
int rd_line_reader_next(rd_line_reader *r, rd_error *err);

/* ---- templates (template.c) ------------------------------------------------------- */

typedef struct rd_template {
    const char *main;        /* "...{prompt}...{answer}..." */
    const char *with_system; /* variant used when a system text is given, or NULL */
    const char *with_input;  /* variant used when an Alpaca input is given, or NULL */
    char *owned;             /* custom template text (main points into it), or NULL */
} rd_template;

/* Resolves a built-in name or checks a custom template string. name NULL: "plain" for
 * text/classification, else "alpaca". Returns 0 or -1 with *err. */
int rd_data_template_init(rd_template *t, const char *name, rd_data_format f, rd_error *err);
void rd_data_template_free(rd_template *t);

/* One rendered turn: P = text before {answer}, A = answer + template text after it (a
 * trailing "</s>" removed: it is the EOS id). ctx = the template's literal text directly
 * before {answer}. All malloc'ed; release with rd_data_rendered_free. */
typedef struct rd_rendered {
    char *P, *A, *ctx;
} rd_rendered;

/* Renders (system, prompt, input, answer); system and input may be NULL or "". Returns 0
 * or -1 (out of memory) with *err. */
int rd_data_template_render(const rd_template *t, const char *system, const char *prompt,
                            const char *input, const char *answer, rd_rendered *out,
                            rd_error *err);
void rd_data_rendered_free(rd_rendered *r);

/* ---- tokenization (encode.c) ------------------------------------------------------ */

/* A growing token sequence with the answer positions marked. With a limit, only the first
 * `limit` tokens are held (an example is cut to its max_len anyway): n still counts all. */
typedef struct rd_seq {
    int *ids;           /* (cap) the first min(n, limit) tokens (all n when limit is 0) */
    unsigned char *ans; /* (cap) 1 on answer tokens and the EOS after them */
    int n, cap;
    int n_prompt;       /* start of the last turn's answer */
    int limit;          /* tokens held at most; 0: no limit */
} rd_seq;

void rd_seq_free(rd_seq *s);

/* Appends one rendered turn: [BOS] + prompt ids + answer ids + [EOS] (BOS/EOS when the
 * tokenizer has them), by the rule of dataset.h: when the tokenizer adds a dummy prefix and
 * r->ctx (the template text before {answer}) ends in exactly one space, P without that
 * space and A are encoded apart; otherwise P + A is encoded whole and the answer starts
 * where it leaves enc(P). prompt_len, when not NULL, receives the byte length of P that
 * counts as the prompt. Returns 0 or -1 with *err. */
int rd_seq_add_turn(rd_seq *s, const rd_tokenizer *tok, const rd_rendered *r,
                    size_t *prompt_len, rd_error *err);

/* Appends [BOS] + the prompt ids only, as rd_seq_add_turn would (classification: the
 * answer comes from the label's precomputed ids). */
int rd_seq_add_prompt(rd_seq *s, const rd_tokenizer *tok, const rd_rendered *r,
                      size_t *prompt_len, rd_error *err);

/* Appends ids marked as answer (ans = 1). */
int rd_seq_add_answer_ids(rd_seq *s, const int *ids, int n, rd_error *err);

/* The ids an answer text A gets after a prompt ending in ctx (the template text right
 * before {answer}), EOS included: what rd_seq_add_turn would append as the answer. *ids is
 * malloc'ed. Returns 0 or -1 with *err. */
int rd_data_answer_ids(const rd_tokenizer *tok, const char *ctx, const char *A, int **ids,
                       int *n, rd_error *err);

/* Cuts a document's text into examples of at most max_len ids, each starting with BOS,
 * loss on every position (EOS after the text when add_eos), added to d. */
int rd_data_add_document(rd_dataset *d, const rd_tokenizer *tok, const char *text, size_t len,
                         int add_eos, int max_len, rd_error *err);

/* ---- the data set (dataset.c) ----------------------------------------------------- */

typedef struct rd_item {
    rd_example ex;     /* ids/loss owned */
    char *prompt_text; /* owned */
    char *answer_text; /* owned */
    int truncated;     /* cut to max_len */
} rd_item;

struct rd_dataset {
    rd_data_format format;
    rd_item *items; /* (cap) n used */
    size_t n, cap;
    char **labels;  /* (n_labels) classification label words */
    int **label_ids; /* (n_labels) answer ids of each label word */
    int *label_n;   /* (n_labels) */
    int n_labels;
    size_t skipped, truncated, dropped;
    uint64_t loss_tokens;
};

/* malloc'ed copy of s, or NULL. */
char *rd_data_strdup(const char *s);

/* Adds an example built from seq: truncated to max_len, loss from the answer marks
 * (mask_prompt) or on every position >= 1; dropped when no loss is left. prompt_text and
 * answer_text are copied. Returns 0 or -1 (out of memory) with *err. */
int rd_data_add_example(rd_dataset *d, const rd_seq *seq, int max_len, int mask_prompt,
                        int label, const char *prompt_text, const char *answer_text,
                        rd_error *err);

#endif
