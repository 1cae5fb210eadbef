/* redit — the workbench's session settings and the field table that edits them (tui layer,
 * no curses).
 *
 * The config pane and the Lua console both change settings through one table of fields:
 * tui_config_set parses and validates a value typed as text, so a setting is checked the
 * same way whether it comes from a key press, a Lua call or a hand-edited session file.
 * Keys are the struct member names ("micro_batch", "template_name", ...). */
#ifndef REDIT_TUI_CONFIG_H
#define REDIT_TUI_CONFIG_H

#include <stddef.h>

#include "redit/dataset.h"
#include "redit/edits.h"
#include "redit/error.h"
#include "redit/sampler.h"
#include "redit/train.h"

typedef struct tui_config {
    char method[8];           /* "red" | "lora" | "ia3" (rd_method_from_name) | "full" (full
                                 fine-tuning: no edit set) */
    char sites[8];            /* RED: "ffn" | "attn" | "both" */
    char layers[64];          /* "all" or a list like "0-5,9" (rd_edit_spec syntax) */
    int scale, bias;          /* RED: 0/1: train scale / bias vectors */
    int rank;                 /* LoRA: r, [1, RD_LORA_MAX_RANK] */
    double lora_alpha;        /* LoRA: the alpha of alpha/r, (0, 1e6] */
    char lora_targets[48];    /* LoRA: projections, "q,v" (rd_lora_targets_parse) */
    double lora_dropout;      /* LoRA: dropout on the LoRA input in training, [0, 0.99] */
    double lr;
    int epochs, batch, micro_batch, max_len;
    char schedule[16];        /* linear | cosine | constant */
    double warmup, weight_decay;
    double clip;              /* gradient-norm clip, 0 = off */
    double dropout;           /* [0, 1): sub-layer outputs dropped in training passes */
    double beta1, beta2;      /* AdamW's moment decays, [0, 1) */
    long long seed;
    int eval_every;           /* 0 = every epoch */
    int max_steps;            /* 0 = no limit */
    int group_by_length;      /* 0/1: rd_train_opts.group_by_length */
    char compute[8];          /* "auto" | "f32" | "bf16" (rd_compute_from_name) */
    char train_path[512];     /* data set files ("" = none chosen yet) */
    char eval_path[512];      /* "" = none (then eval_split applies) */
    double eval_split;        /* [0, 0.5]: share of the train set held out when eval_path is "" */
    char mc_path[512];        /* a multiple-choice JSONL file for app_eval_mc ("" = none) */
    char format[24];          /* rd_data_format name: auto, alpaca, chat, prompt-completion,
                                 ultrafeedback, text, classification */
    char template_name[256];  /* "" = the format's default; else a built-in name or a custom
                                 template (dataset.h) */
    char system[512];         /* system text for chat and templates ("" none) */
    double temperature, top_p;
    int max_tokens;           /* chat sampling */
    double strength;          /* α applied to the edits in chat, [0, 4] */
} tui_config;

/* method red, sites ffn, layers all, scale 1, bias 1; LoRA rank 8, alpha 8, targets q,v,
 * dropout 0 (PEFT's LoraConfig); lr, epochs, batch, micro_batch, max_len, schedule,
 * warmup, weight_decay, clip, dropout, beta1, beta2 and seed from rd_train_opts_defaults();
 * eval_every 0, max_steps 0, no length grouping, compute auto; no data files, format auto,
 * default template, no system text, eval_split 0; chat: temperature 0 (greedy), top_p 0.9,
 * max_tokens 64, strength 1. */
tui_config tui_config_defaults(void);

typedef enum tui_field_kind {
    TUI_FIELD_BOOL,
    TUI_FIELD_INT,
    TUI_FIELD_REAL,
    TUI_FIELD_CHOICE,
    TUI_FIELD_TEXT
} tui_field_kind;

typedef struct tui_field {
    const char *key;            /* Lua/JSON name, e.g. "micro_batch" (the member name) */
    const char *label;          /* shown in the pane, e.g. "micro-batch" */
    const char *group;          /* "edits", "training", "data", "chat" */
    tui_field_kind kind;
    const char *const *choices; /* CHOICE: NULL-terminated list; else NULL */
    double min, max;            /* INT/REAL: inclusive range; TEXT: max = longest text in
                                   bytes; else 0 */
    const char *help;           /* one line shown while editing */
} tui_field;

/* The fields in display order, grouped (edits, training, data, chat). Every pointer returned
 * below points into one static, read-only table: valid for the whole program. */
/* 1 when field f applies to c's method (the pane hides the others): sites, scale and bias
 * for RED, rank, lora_alpha, lora_targets and lora_dropout for LoRA, layers for every method
 * but full; every other field always. */
int tui_config_field_applies(const tui_config *c, const tui_field *f);
size_t tui_config_field_count(void);
const tui_field *tui_config_field(size_t i);       /* NULL when i >= the count */
const tui_field *tui_config_find(const char *key); /* NULL when unknown (or key NULL) */

/* The value of field f in c as text, written into buf (cap bytes, always NUL-terminated when
 * cap > 0, cut to fit): "on"/"off" for bools, the shortest text that reads back as the same
 * double for reals ("0.002"), decimal integers, the string itself for choices and texts.
 * Returns the full length of the value (as snprintf does), or -1 when f is not a field of
 * the table. */
int tui_config_get(const tui_config *c, const tui_field *f, char *buf, size_t cap);

/* Parses text (leading/trailing spaces ignored except for TEXT fields) and validates it as
 * the value of field f, then stores it in c. Bools accept on/off, true/false, yes/no, 1/0
 * (any case); numbers must be fully parsed, finite (integers: whole numbers) and within
 * [min, max]; choices must match exactly; layers must follow the rd_edit_spec syntax;
 * template_name must be "" or a valid built-in name or custom template; texts must fit,
 * be valid UTF-8 and (all but system and template_name) hold no control characters.
 * Returns 0, or -1 with c unchanged and *err like "lr: 'abc' is not a number" or
 * "epochs: 0 is below the minimum 1" (always starting with the key). */
int tui_config_set(tui_config *c, const tui_field *f, const char *text, rd_error *err);

/* Every field of c checked as tui_config_set would check its text (so a struct filled by
 * code is held to the same rules). 0, or -1 with the first bad field in *err. */
int tui_config_check_fields(const tui_config *c, rd_error *err);

/* Checks before training: every field (tui_config_check_fields), the trainer's own checks
 * (rd_train_opts_validate: 1 <= micro_batch <= batch, ...), the chat sampling
 * (rd_sampling_validate), something to train (RED: scale or bias on), a training file chosen,
 * and — when n_layers > 0 (the loaded model's layer count) — every listed layer within
 * [0, n_layers). n_layers <= 0 skips the layer range check (no model loaded yet).
 * 0, or -1 with the first problem in *err. */
int tui_config_validate(const tui_config *c, int n_layers, rd_error *err);

/* The settings as the engine's option structs. Values that fail validation are passed
 * through (or, for names, mapped to a value the engine rejects) so the engine reports them. */
rd_train_opts tui_config_train_opts(const tui_config *c); /* rd_train_opts_defaults() for the
                                                             rest; stop flag NULL */
rd_edit_spec tui_config_edit_spec(const tui_config *c);   /* layers points into c: valid while
                                                             c lives and is unchanged; method
                                                             "full": an invalid method (no edit
                                                             set) */
rd_data_opts tui_config_data_opts(const tui_config *c);   /* template_name and system point
                                                             into c (NULL when ""); mask_prompt
                                                             1, strict */
/* rd_sampling_defaults() with the config's temperature and top_p, top_k off (0: the pane
 * shows only temperature and top-p) and the config's seed. max_tokens is not a sampling
 * setting: read c->max_tokens. */
rd_sampling tui_config_sampling(const tui_config *c);

/* A JSON object with one key per field in table order (bools as true/false, numbers as
 * numbers, choices and texts as strings). Malloc'ed text the caller frees; NULL on out of
 * memory. */
char *tui_config_to_json(const tui_config *c);

/* Reads a JSON object (json: len bytes, need not be NUL-terminated) into *out: starts from
 * tui_config_defaults() and passes each present key through tui_config_set, so a
 * hand-edited file is checked like typing. Keys missing from the object keep their
 * defaults. Not an object, a value of the wrong JSON type, an invalid value or an unknown
 * key → -1 with *err naming the key ("config: lr: expected a number, not a string",
 * "config: epochs: 0 is below the minimum 1", "config: unknown key \"foo\"")
 * and *out untouched. */
int tui_config_from_json(const char *json, size_t len, tui_config *out, rd_error *err);

/* The same from a parsed cJSON object (borrowed; e.g. the "config" member of a session
 * file), so numbers are read at full precision. */
struct cJSON;
int tui_config_from_cjson(const struct cJSON *obj, tui_config *out, rd_error *err);

/* The shortest text that reads back (strtod) as the same double: whole numbers below 1e17
 * in full ("100000"), else %g with the fewest digits ("0.002", "1e-07"). Returns the
 * length as snprintf does. */
int tui_format_real(double v, char *buf, size_t cap);

#endif
