/* redit generate --batch (generate_batch.h): the prompts of a JSONL file, each line
 *   {"prompt": TEXT | "messages": [{"role", "content"}, ...], "edits": NAME, "strength": A,
 *    "temperature": T, "top_k": K, "top_p": P, "seed": S, "max_tokens": N,
 *    "repeat_penalty": R, "id": ANY}
 * (everything but the prompt optional, defaulting to the command line), run through one
 * rd_batch --parallel sequences at a time; results in input order as they complete. */
#include "generate_batch.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "redit/atomic_file.h"
#include "redit/batch.h"
#include "redit/buf.h"
#include "redit/chat_format.h"
#include "redit/edits.h"
#include "redit/tokenizer.h"
#include "redit/vocab.h"

/* An edit set the lines may name: "" is the plain --edits (or the base model). */
typedef struct edit_set {
    const char *name;
    rd_edits *edits; /* NULL: the base model */
    char *tmpl;      /* the chat template it was trained with, or NULL */
} edit_set;

typedef struct job {
    int line;
    cJSON *id;               /* "id" as given (owned), or NULL: the line number */
    int *ids;
    size_t n_ids;
    rd_edits_view view;
    int has_view;
    rd_gen_opts opts;
    rd_chat_filter *filter;  /* with a template: ends the answer at its next turn */
    rd_buf text;
    int n_tokens, stopped_by, done, template_stop;
    double started, seconds;
} job;

static const char *message(const rd_error *err) {
    return strncmp(err->msg, "chat: ", 6) ? err->msg : err->msg + 6;
}

/* The set a line's "edits" names; NULL when none is called so (printed). */
static const edit_set *find_set(const edit_set *sets, int n, const char *name, const char *file,
                                int line) {
    for (int i = 0; i < n; i++)
        if (!strcmp(sets[i].name, name)) return &sets[i];
    fprintf(stderr, "redit generate: %s line %d: \"edits\": \"%s\" names no edit set (give "
                    "--edits %s=FILE)\n", file, line, name, name);
    return NULL;
}

/* A number field of obj into *out when present; -1 (printed) when it is not a number in
 * [lo, hi]. */
static int num_field(const cJSON *obj, const char *key, double lo, double hi, double *out,
                     const char *file, int line) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        fprintf(stderr, "redit generate: %s line %d: \"%s\" must be a number in [%g, %g]\n", file,
                line, key, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

/* The prompt ids of "messages": the exchanges before the last user message through the
 * template (NULL: llama2-chat), a first "system" message as the system prompt. */
static int messages_ids(const rd_tokenizer *t, const char *tmpl, const char *system,
                        const cJSON *msgs, int **ids, size_t *n, const char *file, int line) {
    const int count = cJSON_GetArraySize(msgs);
    rd_chat_exchange *past = calloc((size_t)count + 1, sizeof *past);
    size_t n_past = 0;
    const char *user = NULL;
    int rc = -1;
    if (!past) {
        fprintf(stderr, "redit generate: out of memory\n");
        return -1;
    }
    for (int i = 0; i < count; i++) {
        const cJSON *msg = cJSON_GetArrayItem(msgs, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            fprintf(stderr, "redit generate: %s line %d: message %d needs \"role\" and "
                            "\"content\" strings\n", file, line, i + 1);
            goto done;
        }
        const char *r = role->valuestring;
        if (!strcmp(r, "system") && i == 0) {
            system = content->valuestring;
        } else if (!strcmp(r, "user") && !user) {
            user = content->valuestring;
        } else if (!strcmp(r, "assistant") && user) {
            past[n_past++] = (rd_chat_exchange){user, content->valuestring};
            user = NULL;
        } else {
            fprintf(stderr, "redit generate: %s line %d: message %d: role \"%s\" out of turn "
                            "(system first, then user and assistant in turn, ending with "
                            "user)\n", file, line, i + 1, r);
            goto done;
        }
    }
    if (!user) {
        fprintf(stderr, "redit generate: %s line %d: \"messages\" must end with a user "
                        "message\n", file, line);
        goto done;
    }
    rd_error err = {0};
    if (rd_chat_prompt_ids(t, tmpl, system, past, n_past, user, ids, n, &err)) {
        fprintf(stderr, "redit generate: %s line %d: %s\n", file, line, message(&err));
        goto done;
    }
    rc = 0;
done:
    free(past);
    return rc;
}

/* Fills j from the JSON text of one line; -1 (printed) when the line is bad. */
static int parse_line(job *j, const char *text, const cli_batch_args *a, const edit_set *sets,
                      int n_sets, const rd_model *m, int context) {
    const char *file = a->input;
    const int line = j->line;
    cJSON *obj = cJSON_Parse(text);
    int rc = -1;
    if (!cJSON_IsObject(obj)) {
        fprintf(stderr, "redit generate: %s line %d: not a JSON object\n", file, line);
        goto done;
    }
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    if (!!prompt + !!msgs != 1 || (prompt && !cJSON_IsString(prompt)) ||
        (msgs && (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0))) {
        fprintf(stderr, "redit generate: %s line %d: give exactly one of \"prompt\" (a string) "
                        "or \"messages\" (a non-empty list)\n", file, line);
        goto done;
    }
    const cJSON *ed = cJSON_GetObjectItemCaseSensitive(obj, "edits");
    const edit_set *set = &sets[0];
    if (ed && cJSON_IsNull(ed)) {
        set = NULL; /* explicitly the base model */
    } else if (ed && !cJSON_IsString(ed)) {
        fprintf(stderr, "redit generate: %s line %d: \"edits\" must be a name or null\n", file,
                line);
        goto done;
    } else if (ed && !(set = find_set(sets, n_sets, ed->valuestring, file, line))) {
        goto done;
    }
    double strength = a->edits->strength, temp = a->gen->sampling.temperature,
           top_k = a->gen->sampling.top_k, top_p = a->gen->sampling.top_p,
           seed = (double)a->gen->sampling.seed, max_tokens = a->gen->max_tokens,
           penalty = a->gen->sampling.repeat_penalty;
    if (num_field(obj, "strength", -100, 100, &strength, file, line) ||
        num_field(obj, "temperature", 0, 100, &temp, file, line) ||
        num_field(obj, "top_k", 0, 1e9, &top_k, file, line) ||
        num_field(obj, "top_p", 1e-9, 1, &top_p, file, line) ||
        num_field(obj, "seed", 0, 9007199254740992.0, &seed, file, line) ||
        num_field(obj, "max_tokens", 0, 1e9, &max_tokens, file, line) ||
        num_field(obj, "repeat_penalty", 1e-6, 100, &penalty, file, line))
        goto done;
    j->opts = *a->gen;
    j->opts.sampling.temperature = (float)temp;
    j->opts.sampling.top_k = (int)top_k;
    j->opts.sampling.top_p = (float)top_p;
    j->opts.sampling.seed = (uint64_t)seed;
    j->opts.sampling.repeat_penalty = (float)penalty;
    j->opts.max_tokens = (int)max_tokens;
    rd_error err = {0};
    if (rd_sampling_validate(&j->opts.sampling, &err)) {
        fprintf(stderr, "redit generate: %s line %d: %s\n", file, line, err.msg);
        goto done;
    }
    if (set && set->edits) {
        j->view = rd_edits_view_at(set->edits, (float)strength);
        j->has_view = 1;
    }
    /* the template: --template, else the edit set's; messages always take one */
    const char *tmpl = a->tmpl ? a->tmpl : set ? set->tmpl : NULL;
    const rd_tokenizer *t = rd_model_tokenizer(m);
    if (msgs) {
        if (messages_ids(t, tmpl && strcmp(tmpl, "none") ? tmpl : NULL, a->system, msgs, &j->ids,
                         &j->n_ids, file, line))
            goto done;
        if (!tmpl || !strcmp(tmpl, "none")) tmpl = "llama2-chat";
    } else if (!tmpl || !strcmp(tmpl, "none")) {
        tmpl = NULL;
        if (rd_tokenizer_encode(t, prompt->valuestring, strlen(prompt->valuestring), 1, 0,
                                &j->ids, &j->n_ids, &err)) {
            fprintf(stderr, "redit generate: %s line %d: %s\n", file, line, err.msg);
            goto done;
        }
    } else if (rd_chat_prompt_ids(t, tmpl, a->system, NULL, 0, prompt->valuestring, &j->ids,
                                  &j->n_ids, &err)) {
        fprintf(stderr, "redit generate: %s line %d: %s\n", file, line, message(&err));
        goto done;
    }
    if (j->n_ids == 0 || j->n_ids > (size_t)context) {
        fprintf(stderr, "redit generate: %s line %d: the prompt has %zu tokens; the context "
                        "holds %d\n", file, line, j->n_ids, context);
        goto done;
    }
    if (tmpl) {
        char *stop = rd_chat_turn_start(tmpl, &err);
        if (!stop) {
            fprintf(stderr, "redit generate: %s line %d: %s\n", file, line, message(&err));
            goto done;
        }
        j->filter = rd_chat_filter_new(stop);
        free(stop);
        if (!j->filter) {
            fprintf(stderr, "redit generate: out of memory\n");
            goto done;
        }
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    if (id && !(j->id = cJSON_Duplicate(id, 1))) {
        fprintf(stderr, "redit generate: out of memory\n");
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(obj);
    return rc;
}

/* The lines of the input as jobs (blank lines skipped); -1 (printed) on the first bad one. */
static int read_jobs(const cli_batch_args *a, const edit_set *sets, int n_sets,
                     const rd_model *m, job **out, int *n_out) {
    FILE *f = fopen(a->input, "rb");
    if (!f) {
        fprintf(stderr, "redit generate: --batch %s: cannot open the file\n", a->input);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0, room = 0, number = 0, rc = 0;
    job *jobs = NULL;
    while ((len = getline(&line, &cap, f)) >= 0) {
        number++;
        size_t k = 0;
        while (k < (size_t)len && strchr(" \t\r\n", line[k])) k++;
        if (k == (size_t)len) continue;
        if (n == room) {
            room = room ? 2 * room : 16;
            job *grown = realloc(jobs, (size_t)room * sizeof *grown);
            if (!grown) {
                fprintf(stderr, "redit generate: out of memory\n");
                rc = -1;
                break;
            }
            jobs = grown;
        }
        jobs[n] = (job){.line = number};
        if (parse_line(&jobs[n], line, a, sets, n_sets, m, a->context)) {
            rc = -1;
            n++;
            break;
        }
        n++;
    }
    if (!rc && ferror(f)) {
        fprintf(stderr, "redit generate: --batch %s: cannot read the file\n", a->input);
        rc = -1;
    }
    if (!rc && n == 0) {
        fprintf(stderr, "redit generate: --batch %s holds no prompt\n", a->input);
        rc = -1;
    }
    free(line);
    fclose(f);
    *out = jobs;
    *n_out = n;
    return rc;
}

static int on_token(void *user, int id, int token, const char *text, size_t len, float lp) {
    job *j = user;
    (void)id, (void)token, (void)lp;
    j->n_tokens++;
    if (!j->filter) return rd_buf_append(&j->text, text, len);
    const char *show;
    size_t n;
    const int stop = rd_chat_filter_push(j->filter, text, len, &show, &n);
    if (rd_buf_append(&j->text, show, n)) return 1;
    if (stop) j->template_stop = 1;
    return stop != 0;
}

static void on_done(void *user, int id, const rd_gen_stats *st) {
    job *j = user;
    (void)id;
    if (j->filter && !j->template_stop) {
        const char *show;
        size_t n;
        rd_chat_filter_finish(j->filter, &show, &n);
        rd_buf_append(&j->text, show, n);
    }
    j->stopped_by = st->stopped_by;
    j->seconds = cli_now() - j->started;
    j->done = 1;
}

/* s[0..n) as valid UTF-8 into out (NUL-terminated): each byte that does not start a
 * well-formed character becomes U+FFFD (a random or cut-off answer can end mid-character;
 * JSON text must be UTF-8). 0 or -1 (out of memory). */
static int valid_utf8(const char *s, size_t n, rd_buf *out) {
    out->len = 0;
    if (rd_buf_append(out, "", 0)) return -1;
    for (size_t i = 0; i < n;) {
        const size_t k = rd_utf8_char_len((const unsigned char *)s + i, n - i);
        if (rd_buf_append(out, k ? s + i : "\xEF\xBF\xBD", k ? k : 3)) return -1;
        i += k ? k : 1;
    }
    return 0;
}

/* One result line (NUL-terminated, malloc'ed), or NULL when out of memory. */
static char *result_line(const job *j) {
    static const char *why[] = {"length", "eos", "stop", "context"};
    rd_buf text = {0};
    if (valid_utf8(j->text.data, j->text.len, &text)) {
        rd_buf_free(&text);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        rd_buf_free(&text);
        return NULL;
    }
    cJSON_AddItemToObject(o, "id", j->id ? cJSON_Duplicate(j->id, 1) : cJSON_CreateNumber(j->line));
    cJSON_AddNumberToObject(o, "line", j->line);
    cJSON_AddStringToObject(o, "text", text.data);
    rd_buf_free(&text);
    cJSON_AddNumberToObject(o, "tokens", j->n_tokens);
    cJSON_AddStringToObject(o, "stopped_by",
                            j->template_stop ? "template"
                                             : why[j->stopped_by >= 0 && j->stopped_by < 4
                                                       ? j->stopped_by : 2]);
    cJSON_AddNumberToObject(o, "seconds", round(j->seconds * 1e4) / 1e4);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int cli_generate_batch(const rd_model *m, const cli_batch_args *a) {
    int rc = 1, n_jobs = 0, n_sets = 1 + a->n_named;
    job *jobs = NULL;
    rd_batch *b = NULL;
    rd_atomic_file out = {0};
    int out_open = 0;
    edit_set *sets = calloc((size_t)n_sets, sizeof *sets);
    if (!sets) {
        fprintf(stderr, "redit generate: out of memory\n");
        return 1;
    }
    if (!rd_model_tokenizer(m)) {
        fprintf(stderr, "redit generate: --batch needs a model with a tokenizer\n");
        goto done;
    }
    sets[0].name = "";
    if (cli_open_edits(a->edits, m, &sets[0].edits, &sets[0].tmpl)) goto done;
    for (int i = 0; i < a->n_named; i++) {
        cli_edits_args e = *a->edits;
        e.path = a->named[i].path;
        sets[i + 1].name = a->named[i].name;
        if (cli_open_edits(&e, m, &sets[i + 1].edits, &sets[i + 1].tmpl)) goto done;
    }
    if (read_jobs(a, sets, n_sets, m, &jobs, &n_jobs)) goto done;
    rd_error err = {0};
    if (a->output && rd_atomic_file_open(&out, a->output, &err)) {
        fprintf(stderr, "redit generate: -o %s: %s\n", a->output, err.msg);
        goto done;
    }
    out_open = a->output != NULL;
    const rd_batch_opts bo = {.slots = a->parallel, .max_seq = a->context};
    if (!(b = rd_batch_new(m, &bo, &err))) {
        fprintf(stderr, "redit generate: %s\n", err.msg);
        goto done;
    }
    int next = 0, written = 0;
    long total_tokens = 0;
    const double t0 = cli_now();
    while (written < n_jobs) {
        while (next < n_jobs && rd_batch_free_slots(b) > 0) {
            job *j = &jobs[next];
            j->started = cli_now();
            if (rd_batch_add(b, j->has_view ? &j->view : NULL, j->ids, j->n_ids, &j->opts, j,
                             &err) < 0) {
                fprintf(stderr, "redit generate: %s line %d: %s\n", a->input, j->line, err.msg);
                goto done;
            }
            next++;
        }
        if (rd_batch_step(b, on_token, on_done, &err) < 0) {
            fprintf(stderr, "redit generate: %s\n", err.msg);
            goto done;
        }
        for (; written < n_jobs && jobs[written].done; written++) {
            char *s = result_line(&jobs[written]);
            total_tokens += jobs[written].n_tokens;
            const size_t len = s ? strlen(s) : 0;
            const int bad = !s || (out_open ? rd_atomic_file_write(&out, s, len) ||
                                                  rd_atomic_file_write(&out, "\n", 1)
                                            : fwrite(s, 1, len, stdout) != len ||
                                                  fputc('\n', stdout) == EOF);
            free(s);
            if (bad) {
                fprintf(stderr, "redit generate: cannot write the result of line %d\n",
                        jobs[written].line);
                goto done;
            }
            if (!out_open) fflush(stdout);
        }
    }
    if (out_open) {
        out_open = 0;
        if (rd_atomic_file_commit(&out, &err)) {
            fprintf(stderr, "redit generate: -o %s: %s\n", a->output, err.msg);
            goto done;
        }
    }
    const double secs = cli_now() - t0;
    fprintf(stderr, "%d prompts, %ld tokens in %.2f s: %.1f tok/s (%d at once)\n", n_jobs,
            total_tokens, secs, secs > 0 ? (double)total_tokens / secs : 0.0, a->parallel);
    rc = 0;
done:
    if (out_open) rd_atomic_file_abort(&out);
    rd_batch_free(b);
    for (int i = 0; i < n_jobs; i++) {
        cJSON_Delete(jobs[i].id);
        free(jobs[i].ids);
        rd_chat_filter_free(jobs[i].filter);
        rd_buf_free(&jobs[i].text);
    }
    free(jobs);
    for (int i = 0; i < n_sets; i++) {
        rd_edits_free(sets[i].edits);
        free(sets[i].tmpl);
    }
    free(sets);
    return rc;
}
