/* redit command line: shared helpers of the sub-commands (cli layer; may print). */
#ifndef REDIT_CLI_H
#define REDIT_CLI_H

#include <stddef.h>

#include "redit/model.h"

/* Sub-commands: argv[0] is the command's name. Return the process exit code. */
int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_make_model(int argc, char **argv);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_edit_grad(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_lua(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_tui(int argc, char **argv);
int cmd_session(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_serve(int argc, char **argv);

struct rd_edits;
/* Loads an edit file for m, printing "redit: <message>" on failure (force: skip only the
 * base-model fingerprint check). options_json (may be NULL) receives the file's training
 * options as JSON text (malloc'ed, the caller frees it; NULL when it has none). */
struct rd_edits *cli_load_edits(const char *path, const rd_model *m, int force,
                                char **options_json);

/* Prints a note on stderr when an edit file's model fingerprint matched only as the sampled
 * one of earlier versions (rd_edits_load_match); nothing otherwise. */
void cli_fingerprint_note(const char *path, rd_fp_match match);

/* Applies --compute NAME ("f32", "bf16" or "auto"; NULL = f32) to m, packing the backward layout too
 * when training needs it. Prints "redit CMD: …" and returns -1 on failure. */
int cli_set_compute(const char *cmd, rd_model *m, const char *name, int backward);

/* Checks, before any work starts, that an output file can be written at path (its folder
 * exists and takes a new file; path is not a folder): rd_atomic_file_check. what names the
 * option ("-o", "--log"); path may be NULL (nothing to check). Prints "redit CMD: <what>
 * <reason>" and returns -1 when it cannot. */
int cli_check_output(const char *cmd, const char *what, const char *path);

/* Loads a model, printing "redit: <message>" on failure and a warning naming the tensor
 * when weights are not finite (rd_model_nonfinite). */
rd_model *cli_load_model(const char *path, const char *tokenizer_path);

/* Parses space- or comma-separated integers into a malloc'ed array; NULL with a printed
 * message on bad input. */
int *cli_parse_ids(const char *text, size_t *n);

/* Parses a number option strictly; prints "redit CMD: bad value for --opt" and returns -1. */
int cli_int(const char *cmd, const char *opt, const char *text, long lo, long hi, int *out);
int cli_float(const char *cmd, const char *opt, const char *text, double lo, double hi, float *out);
int cli_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
               double *out);

/* Sets the number of compute threads (OpenBLAS). n <= 0: number of cores. */
void cli_set_threads(int n);

/* Seconds on a monotonic clock. */
double cli_now(void);

#endif
