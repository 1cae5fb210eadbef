/* redit — multiple-choice item sets (data layer): a context, a list of choices and the
 * index of the right one, read from JSONL in one of three styles, detected per file from
 * the first item's keys (every item of the file must then be of that style):
 *
 *   plain      {"context": "...", "choices": ["...", ...], "gold": 0}
 *              scored text: context + choice, exactly as given (no delimiter added);
 *              acc_norm length: the choice's characters.
 *   ARC        {"question": "...", "choices": {"text": [...], "label": ["A", ...]},
 *              "answerKey": "B"} (the Hugging Face ai2_arc rows) — as lm-evaluation-
 *              harness's arc_easy / arc_challenge: context "Question: Q\nAnswer:", each
 *              choice " " + text, the gold index the position of answerKey among the labels;
 *              acc_norm length: the text's characters (without the space).
 *   HellaSwag  {"ctx": "...", "endings": [...], "label": 2 or "2"} (optional "ctx_a",
 *              "ctx_b", "activity_label") — as the harness's hellaswag: the query
 *              preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)) (ctx
 *              when ctx_a/ctx_b are absent, no "label: " without activity_label), each
 *              choice " " + preprocess(ending); preprocess strips, turns " [title]" into
 *              ". ", removes "[...]" and replaces "  " by " ".
 *
 * Files are untrusted: an error names the file and the line (the first item whose keys fit
 * no style, a missing or mistyped field, a gold index out of range, invalid UTF-8, more
 * than RD_MC_MAX_CHOICES choices or fewer than 2). Blank lines are skipped. */
#ifndef REDIT_MC_H
#define REDIT_MC_H

#include <stddef.h>

#include "redit/error.h"

enum { RD_MC_MAX_CHOICES = 64 };

typedef enum rd_mc_style { RD_MC_PLAIN = 1, RD_MC_ARC, RD_MC_HELLASWAG } rd_mc_style;

/* "context/choices/gold", "ARC", "HellaSwag". */
const char *rd_mc_style_name(rd_mc_style s);

typedef struct rd_mc_item {
    char *context;     /* the text before a choice (NUL-terminated) */
    char **choices;    /* (n_choices) continuations as scored: context + choice is the text */
    size_t *norm_len;  /* (n_choices) acc_norm's length of each choice, in characters
                          (UTF-8 code points) of the choice without the delimiter, as the
                          harness's len(choice) */
    int n_choices;     /* 2 .. RD_MC_MAX_CHOICES */
    int gold;          /* 0 .. n_choices - 1 */
    long line;         /* the item's line in the file (1-based) */
} rd_mc_item;

typedef struct rd_mc_set rd_mc_set;

/* Reads a multiple-choice JSONL file. Returns the set (free with rd_mc_free) or NULL with
 * *err naming the file (and line). */
rd_mc_set *rd_mc_load(const char *path, rd_error *err);
void rd_mc_free(rd_mc_set *s); /* NULL-safe */

size_t rd_mc_size(const rd_mc_set *s);
const rd_mc_item *rd_mc_get(const rd_mc_set *s, size_t i); /* borrowed, valid while s lives */
rd_mc_style rd_mc_style_of(const rd_mc_set *s);
const char *rd_mc_path(const rd_mc_set *s); /* the file it was read from (borrowed) */
int rd_mc_max_choices(const rd_mc_set *s);  /* the most choices of any item */

/* The items [i0, i1) of s as a set of their own (item i0 first; path, style and each item's
 * line as in s), for scoring a share of s: borrows the items' text, so it is valid while s
 * lives. Free with rd_mc_free (which then frees only the slice). NULL with *err when the
 * range is not within s or out of memory. */
rd_mc_set *rd_mc_slice(const rd_mc_set *s, size_t i0, size_t i1, rd_error *err);

/* Whether path looks like a multiple-choice file: its first non-blank line is a JSON object
 * with a "choices" or "endings" key. 0 for anything else (other data sets, unreadable
 * files: rd_mc_load or the data set loader then says what is wrong). Reads at most the
 * first 64 MiB line. */
int rd_mc_sniff(const char *path);

#endif
