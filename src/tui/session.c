/* Workbench sessions on disk: ROOT/NAME/{session.json, loss-G.csv, chat-G.jsonl,
 * edits-G.safetensors, runs/ID/edits.safetensors, runs/ID/model.gguf}, saved as one unit (session.json is the
 * commit point) and read back as untrusted data. */
#include "session.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "redit/atomic_file.h"
#include "redit/buf.h"
#include "redit/model_file.h"

#define SESSION_FORMAT "redit-session"
#define SESSION_VERSION 2
#define MAX_GENERATION 1e15 /* generations and run ids fit a double exactly below this */
#define MAX_SESSION_FILE ((size_t)64 << 20) /* bytes: larger files are refused */
#define LOSS_HEADER "run,step,kind,loss"

/* ---- names and paths ------------------------------------------------------------------------ */

int tui_session_name_ok(const char *name, rd_error *err) {
    if (!name || !*name) {
        rd_error_set(err, "session name: the name is empty");
        return 0;
    }
    const size_t n = strlen(name);
    if (n > 64) {
        rd_error_set(err, "session name: %zu characters is too long (at most 64)", n);
        return 0;
    }
    if (name[0] == '.') {
        rd_error_set(err, "session name \"%s\": must not start with '.'", name);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-')) {
            rd_error_set(err, "session name \"%s\": only letters, digits, '.', '_' and '-' are "
                              "allowed", name);
            return 0;
        }
    }
    return 1;
}

static const char *root_dir(const char *root) { return root && *root ? root : "."; }

/* root/name[/file] into buf; -1 with *err when it does not fit. */
static int session_path(const char *root, const char *name, const char *file, char *buf,
                        size_t cap, rd_error *err) {
    const int n = file ? snprintf(buf, cap, "%s/%s/%s", root_dir(root), name, file)
                       : snprintf(buf, cap, "%s/%s", root_dir(root), name);
    if (n < 0 || (size_t)n >= cap)
        return rd_error_set(err, "session \"%s\": the folder path \"%s\" is too long", name,
                            root_dir(root));
    return 0;
}

void tui_session_edits_path(const tui_session *s, char *buf, size_t cap) {
    if (cap == 0) return;
    if (!s->edits_file[0]) buf[0] = '\0';
    else snprintf(buf, cap, "%s/%s/%s", root_dir(s->root), s->name, s->edits_file);
}

void tui_session_run_edits_path(const tui_session *s, const tui_run *r, char *buf, size_t cap) {
    if (cap == 0) return;
    if (!r->edits_file[0]) buf[0] = '\0';
    else snprintf(buf, cap, "%s/%s/%s", root_dir(s->root), s->name, r->edits_file);
}

void tui_session_run_model_path(const tui_session *s, const tui_run *r, char *buf, size_t cap) {
    if (cap == 0) return;
    if (!r->model_file[0]) buf[0] = '\0';
    else snprintf(buf, cap, "%s/%s/%s", root_dir(s->root), s->name, r->model_file);
}

/* 1 when name is prefix, 1 to 15 digits, then suffix (the digits' value in *num); else 0. */
static int numbered_name(const char *name, const char *prefix, const char *suffix,
                         unsigned long *num) {
    const size_t p = strlen(prefix);
    if (strncmp(name, prefix, p) != 0) return 0;
    const size_t d = strspn(name + p, "0123456789");
    if (d == 0 || d > 15 || strcmp(name + p + d, suffix) != 0) return 0;
    if (num) *num = strtoul(name + p, NULL, 10);
    return 1;
}

/* The file names a session may give (checked on load: a name cannot leave the folder). */
static int edits_name_ok(const char *f) {
    return !strcmp(f, "edits.safetensors") || numbered_name(f, "edits-", ".safetensors", NULL);
}
static int run_edits_name_ok(const char *f) {
    return !strcmp(f, "edits.safetensors") || numbered_name(f, "runs/", "/edits.safetensors", NULL);
}

static int run_model_name_ok(const char *f) {
    return numbered_name(f, "runs/", "/model.gguf", NULL);
}

int tui_session_exists(const char *root, const char *name) {
    char path[1200];
    struct stat st;
    if (!tui_session_name_ok(name, NULL) ||
        session_path(root, name, "session.json", path, sizeof path, NULL))
        return 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tui_session_check_writable(const char *root, const char *name, rd_error *err) {
    char dir[1200], probe[2500];
    if (!tui_session_name_ok(name, err) || session_path(root, name, NULL, dir, sizeof dir, err))
        return -1;
    /* the file the check creates beside: session.json in the session's folder, else the
     * first missing folder's name in the nearest existing one */
    const char *file = "session.json";
    char missing[1200] = "";
    for (;;) {
        struct stat st;
        if (stat(dir, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return rd_error_set(err, "session \"%s\" cannot be saved: %s is not a folder",
                                    name, dir);
            break;
        }
        if (errno == ENOTDIR)
            return rd_error_set(err, "session \"%s\" cannot be saved: the folder %s cannot "
                                     "exist (part of it is a file, not a folder)", name, dir);
        if (errno != ENOENT)
            return rd_error_set(err, "session \"%s\" cannot be saved: %s: %s", name, dir,
                                strerror(errno));
        char *slash = strrchr(dir, '/');
        while (slash && slash > dir && slash[1] == '\0') { /* "a/b/" */
            *slash = '\0';
            slash = strrchr(dir, '/');
        }
        snprintf(missing, sizeof missing, "%s", slash ? slash + 1 : dir);
        file = missing;
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == dir) snprintf(dir, sizeof dir, "/");
        else *slash = '\0';
    }
    snprintf(probe, sizeof probe, "%s/%s", dir, file);
    rd_error e = {0};
    if (rd_atomic_file_check(probe, &e))
        return rd_error_set(err, "session \"%s\" cannot be saved in %s: %s", name,
                            root_dir(root), e.msg);
    return 0;
}

uint64_t tui_session_model_bytes(const rd_model *m) {
    const rd_vocab *v = &m->file.vocab;
    uint64_t vocab = 0; /* the pieces, a score and a type each, GGUF's string lengths */
    if (v->n > 0) vocab = (uint64_t)v->off[v->n] + (uint64_t)v->n * (8 + 4 + 4);
    /* every weight as f32, the metadata and tensor table, alignment */
    return rd_model_param_count(m) * 4 + vocab + ((uint64_t)1 << 20);
}

int tui_session_check_space(const char *root, const char *name, uint64_t bytes, rd_error *err) {
    char dir[1200];
    if (!tui_session_name_ok(name, err) || session_path(root, name, NULL, dir, sizeof dir, err))
        return -1;
    struct statvfs fs;
    while (statvfs(dir, &fs) != 0) { /* the nearest existing folder above it */
        const int e = errno;
        char *slash = strrchr(dir, '/');
        if (e != ENOENT || !strcmp(dir, ".") || !strcmp(dir, "/"))
            return rd_error_set(err, "session \"%s\": cannot tell the free disk space of %s: %s",
                                name, dir, strerror(e));
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == dir) slash[1] = '\0';
        else *slash = '\0';
    }
    const uint64_t avail = (uint64_t)fs.f_bavail * (uint64_t)fs.f_frsize;
    if (avail < bytes)
        return rd_error_set(err, "session \"%s\": %.1f MB of disk space is needed in %s, %.1f MB "
                                 "is free", name, (double)bytes / 1e6, dir, (double)avail / 1e6);
    return 0;
}

tui_model_check tui_session_check_model(const tui_session *s, const rd_model *m, rd_error *err) {
    if (!s->model_fingerprint[0]) return TUI_MODEL_NEW;
    switch (rd_model_fingerprint_match(m, s->model_fingerprint, 1)) {
    case RD_FP_SAME: return TUI_MODEL_SAME;
    case RD_FP_SAME_SAMPLED: return TUI_MODEL_SAME_SAMPLED;
    case RD_FP_OTHER: break;
    }
    const uint64_t mine = rd_model_fingerprint(m);
    struct stat st;
    if (s->model_path[0] && stat(s->model_path, &st) != 0)
        rd_error_set(err, "session %s's model %s is not found (moved or deleted?), and the "
                          "model given is another one (fingerprint %016" PRIx64 ", the "
                          "session's is %s): give the session's model by its new path with -m",
                     s->name, s->model_path, mine, s->model_fingerprint);
    else
        rd_error_set(err, "session %s was made with another model: %s (fingerprint %s); the "
                          "model given has fingerprint %016" PRIx64 ": open the session with "
                          "its model (-m %s), or choose another --session",
                     s->name, s->model_path[0] ? s->model_path : "(path not recorded)",
                     s->model_fingerprint, mine, s->model_path[0] ? s->model_path : "FILE");
    return TUI_MODEL_OTHER;
}

/* ---- runs and chat in memory ------------------------------------------------------------------ */

/* The capacity an array holding n elements has (0, 16, 32, 64, ...): grown by the add
 * functions only, so it follows from the count and needs no field of its own. */
static size_t capacity_for(size_t n) {
    if (n == 0) return 0;
    size_t cap = 16;
    while (cap < n) cap *= 2;
    return cap;
}

/* Makes the array *arrp (T **; n elements of elem bytes) able to hold n + 1. -1 when out of
 * memory. */
static int reserve_one(void *arrp, size_t n, size_t elem) {
    size_t cap = capacity_for(n);
    return rd_array_reserve(arrp, &cap, n + 1, elem);
}

int tui_run_add_step(tui_run *r, double loss) {
    if (reserve_one(&r->loss, r->n_steps, sizeof *r->loss)) return -1;
    r->loss[r->n_steps++] = loss;
    return 0;
}

int tui_run_add_eval(tui_run *r, int step, double loss) {
    if (step < 0 || (r->n_evals > 0 && step < r->eval_step[r->n_evals - 1])) return -1;
    if (reserve_one(&r->eval_step, r->n_evals, sizeof *r->eval_step) ||
        reserve_one(&r->eval_loss, r->n_evals, sizeof *r->eval_loss))
        return -1;
    r->eval_step[r->n_evals] = step;
    r->eval_loss[r->n_evals++] = loss;
    return 0;
}

static void run_release(tui_run *r) {
    rd_edits_free(r->edits);
    r->edits = NULL;
    free(r->loss);
    free(r->eval_step);
    free(r->eval_loss);
    r->loss = r->eval_loss = NULL;
    r->eval_step = NULL;
    r->n_steps = r->n_evals = 0;
}

void tui_session_drop_last_run(tui_session *s) {
    if (s->n_runs == 0) return;
    run_release(&s->runs[--s->n_runs]);
}

tui_run *tui_session_find_run(tui_session *s, int id) {
    for (size_t i = 0; i < s->n_runs; i++)
        if (s->runs[i].id == id) return &s->runs[i];
    return NULL;
}

int tui_session_delete_run(tui_session *s, int id) {
    tui_run *r = tui_session_find_run(s, id);
    if (!r) return -1;
    const size_t i = (size_t)(r - s->runs);
    run_release(r);
    memmove(&s->runs[i], &s->runs[i + 1], (s->n_runs - i - 1) * sizeof *s->runs);
    s->n_runs--;
    if (s->current_run == id) s->current_run = 0;
    return 0;
}

int tui_run_keep_edits(tui_run *r, const rd_edits *e, rd_error *err) {
    rd_edits *copy = rd_edits_clone(e, err);
    if (!copy) return -1;
    rd_edits_free(r->edits);
    r->edits = copy;
    return 0;
}

static void chat_turn_release(tui_chat_turn *t) {
    free(t->prompt);
    free(t->base);
    free(t->edited);
    t->prompt = t->base = t->edited = NULL;
    for (size_t i = 0; i < t->n_more; i++) free(t->more[i]);
    free(t->more);
    free(t->more_titles);
    t->more = NULL;
    t->more_titles = NULL;
    t->n_more = 0;
}

void tui_session_init(tui_session *s, const char *root, const char *name) {
    memset(s, 0, sizeof *s);
    snprintf(s->root, sizeof s->root, "%s", root ? root : "");
    snprintf(s->name, sizeof s->name, "%s", name ? name : "");
    s->config = tui_config_defaults();
    s->next_run_id = 1;
}

void tui_session_release(tui_session *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_runs; i++) run_release(&s->runs[i]);
    for (size_t i = 0; i < s->n_chat; i++) chat_turn_release(&s->chat[i]);
    free(s->runs);
    free(s->chat);
    s->runs = NULL;
    s->chat = NULL;
    s->n_runs = s->n_chat = 0;
}

tui_run *tui_session_new_run(tui_session *s, const char *label) {
    if (reserve_one(&s->runs, s->n_runs, sizeof *s->runs)) return NULL;
    tui_run *r = &s->runs[s->n_runs++];
    memset(r, 0, sizeof *r);
    r->id = s->next_run_id++;
    snprintf(r->label, sizeof r->label, "%s", label ? label : "");
    r->best_eval_loss = r->best_eval_accuracy = NAN;
    r->stopped = -1;
    return r;
}

static char *copy_text(const char *text) {
    const char *t = text ? text : "";
    const size_t n = strlen(t) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, t, n);
    return c;
}

int tui_session_add_chat(tui_session *s, const char *prompt, const char *base, const char *edited,
                         double strength) {
    return tui_session_add_chat_titled(s, prompt, base, edited, strength, NULL, NULL);
}

/* src into a title field of 64 bytes, cut at a UTF-8 character boundary. */
static void copy_title(char dst[64], const char *src) {
    size_t n = src ? strlen(src) : 0;
    if (n > 63) {
        n = 63;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

int tui_session_add_chat_titled(tui_session *s, const char *prompt, const char *base,
                                const char *edited, double strength, const char *left,
                                const char *right) {
    const char *answers[2] = {base, edited}, *titles[2] = {left, right};
    return tui_session_add_chat_columns(s, prompt, 2, answers, titles, strength);
}

int tui_session_add_chat_columns(tui_session *s, const char *prompt, int n,
                                 const char *const *answers, const char *const *titles,
                                 double strength) {
    if (n < 1 || n > TUI_CHAT_TURN_MAX_COLUMNS) return -1;
    tui_chat_turn t = {copy_text(prompt), copy_text(answers[0]), copy_text(n > 1 ? answers[1] : ""),
                       strength, "", "", 0, NULL, NULL};
    copy_title(t.left, titles ? titles[0] : NULL);
    copy_title(t.right, titles && n > 1 ? titles[1] : NULL);
    int bad = !t.prompt || !t.base || !t.edited;
    if (!bad && n > 2) {
        t.more = calloc((size_t)n - 2, sizeof *t.more);
        t.more_titles = calloc((size_t)n - 2, sizeof *t.more_titles);
        bad = !t.more || !t.more_titles;
        for (int k = 2; k < n && !bad; k++) {
            bad = !(t.more[t.n_more] = copy_text(answers[k]));
            copy_title(t.more_titles[t.n_more], titles ? titles[k] : NULL);
            t.n_more += !bad;
        }
    }
    if (bad || reserve_one(&s->chat, s->n_chat, sizeof *s->chat)) {
        chat_turn_release(&t);
        return -1;
    }
    s->chat[s->n_chat++] = t;
    return 0;
}

/* ---- writing ----------------------------------------------------------------------------------- */

/* Creates dir and its missing parents (as mkdir -p). */
static int make_dirs(const char *dir, rd_error *err) {
    char path[1200];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return rd_error_set(err, "%s: the path is too long", dir);
    for (char *p = path + 1;; p++) {
        const int end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                return rd_error_set(err, "%s: cannot create the folder: %s", path, strerror(errno));
            if (end) break;
            *p = '/';
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rd_error_set(err, "%s: exists but is not a folder", dir);
    return 0;
}

static int write_file_atomically(const char *path, const char *data, size_t len, rd_error *err) {
    rd_atomic_file f;
    if (rd_atomic_file_open(&f, path, err)) return -1;
    if (rd_atomic_file_write(&f, data, len)) {
        const int e = errno;
        rd_atomic_file_abort(&f);
        return rd_error_set(err, "%s: cannot write: %s", path, strerror(e));
    }
    return rd_atomic_file_commit(&f, err);
}

static char *loss_csv_text(const tui_session *s) {
    rd_buf b = {0}; /* a failure is latched in b.oom: rd_buf_take gives NULL */
    rd_buf_puts(&b, LOSS_HEADER "\n");
    for (size_t r = 0; r < s->n_runs; r++) {
        const tui_run *run = &s->runs[r];
        for (size_t i = 0; i < run->n_steps; i++)
            rd_buf_printf(&b, "%zu,%zu,train,%.9g\n", r, i + 1, run->loss[i]);
        for (size_t i = 0; i < run->n_evals; i++)
            rd_buf_printf(&b, "%zu,%d,eval,%.9g\n", r, run->eval_step[i], run->eval_loss[i]);
    }
    return rd_buf_take(&b);
}

/* "more": [{"title", "text"}...]: the columns after the first two. 1, or 0 when out of
 * memory. */
static int add_more_columns(cJSON *obj, const tui_chat_turn *t) {
    cJSON *more = cJSON_AddArrayToObject(obj, "more");
    if (!more) return 0;
    for (size_t k = 0; k < t->n_more; k++) {
        cJSON *col = cJSON_CreateObject();
        if (col && !cJSON_AddItemToArray(more, col)) {
            cJSON_Delete(col);
            return 0;
        }
        if (!col || !cJSON_AddStringToObject(col, "title", t->more_titles[k]) ||
            !cJSON_AddStringToObject(col, "text", t->more[k]))
            return 0;
    }
    return 1;
}

static char *chat_jsonl_text(const tui_session *s) {
    rd_buf b = {0};
    for (size_t i = 0; i < s->n_chat && !b.oom; i++) {
        const tui_chat_turn *t = &s->chat[i];
        cJSON *obj = cJSON_CreateObject();
        char *line = NULL;
        if (obj && cJSON_AddStringToObject(obj, "prompt", t->prompt ? t->prompt : "") &&
            cJSON_AddStringToObject(obj, "base", t->base ? t->base : "") &&
            cJSON_AddStringToObject(obj, "edited", t->edited ? t->edited : "") &&
            cJSON_AddNumberToObject(obj, "strength", t->strength) &&
            (!t->left[0] || cJSON_AddStringToObject(obj, "left", t->left)) &&
            (!t->right[0] || cJSON_AddStringToObject(obj, "right", t->right)) &&
            (!t->n_more || add_more_columns(obj, t)))
            line = cJSON_PrintUnformatted(obj);
        cJSON_Delete(obj);
        if (!line) {
            b.oom = 1;
            break;
        }
        rd_buf_puts(&b, line);
        rd_buf_putc(&b, '\n');
        cJSON_free(line);
    }
    return rd_buf_take(&b);
}

/* A JSON number in full precision (cJSON prints only ~15 digits), or null for a value JSON
 * cannot hold (NaN, infinity). */
static cJSON *number_or_null(double v) {
    char num[48];
    if (!isfinite(v)) return cJSON_CreateNull();
    tui_format_real(v, num, sizeof num);
    return cJSON_CreateRaw(num);
}

/* A string, or null for "". */
static cJSON *string_or_null(const char *v) {
    return v[0] ? cJSON_CreateString(v) : cJSON_CreateNull();
}

/* edits_file, model_file: the run's files as this save names them. */
static cJSON *run_json(const tui_run *r, const char *edits_file, const char *model_file) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddNumberToObject(o, "id", r->id) ||
        !cJSON_AddStringToObject(o, "label", r->label) ||
        !cJSON_AddItemToObject(o, "edits", string_or_null(edits_file)) ||
        !cJSON_AddItemToObject(o, "seconds", number_or_null(r->seconds)) ||
        !cJSON_AddItemToObject(o, "tokens_per_s", number_or_null(r->tokens_per_s)) ||
        !cJSON_AddItemToObject(o, "best_eval_loss", number_or_null(r->best_eval_loss)) ||
        !cJSON_AddItemToObject(o, "best_eval_accuracy", number_or_null(r->best_eval_accuracy)) ||
        !cJSON_AddNumberToObject(o, "stopped", r->stopped) ||
        !cJSON_AddItemToObject(o, "model", string_or_null(model_file))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* What one save writes: its generation and the file names its session.json gives. */
typedef struct save_plan {
    unsigned long gen;
    char loss[64], chat[64], edits[64];
    char (*run_edits)[64]; /* (n_runs) each run's edits file; "" none */
    char (*run_models)[64]; /* (n_runs) each run's model file; "" none */
} save_plan;

static char *session_json_text(const tui_session *s, const save_plan *p, const char *config_json,
                               const char *fingerprint) {
    cJSON *o = cJSON_CreateObject();
    cJSON *config = cJSON_CreateRaw(config_json);
    cJSON *runs = cJSON_CreateArray();
    cJSON *files = cJSON_CreateObject();
    char *text = NULL;
    if (!o || !config || !runs || !files) goto done;
    if (!cJSON_AddStringToObject(files, "loss", p->loss) ||
        !cJSON_AddStringToObject(files, "chat", p->chat) ||
        !cJSON_AddItemToObject(files, "edits", string_or_null(p->edits)))
        goto done;
    if (!cJSON_AddStringToObject(o, "format", SESSION_FORMAT) ||
        !cJSON_AddNumberToObject(o, "version", SESSION_VERSION) ||
        !cJSON_AddStringToObject(o, "name", s->name) ||
        !cJSON_AddStringToObject(o, "model_path", s->model_path) ||
        !cJSON_AddStringToObject(o, "model_fingerprint", fingerprint) ||
        !cJSON_AddNumberToObject(o, "generation", (double)p->gen) ||
        !cJSON_AddNumberToObject(o, "next_run", s->next_run_id) ||
        !cJSON_AddNumberToObject(o, "current_run", s->current_run))
        goto done;
    if (!cJSON_AddItemToObject(o, "files", files)) goto done;
    files = NULL;
    if (!cJSON_AddItemToObject(o, "config", config)) goto done;
    config = NULL;
    for (size_t i = 0; i < s->n_runs; i++) {
        cJSON *r = run_json(&s->runs[i], p->run_edits[i], p->run_models[i]);
        if (!r || !cJSON_AddItemToArray(runs, r)) {
            cJSON_Delete(r);
            goto done;
        }
    }
    if (!cJSON_AddItemToObject(o, "runs", runs)) goto done;
    runs = NULL;
    text = cJSON_Print(o);
done:
    cJSON_Delete(o);
    cJSON_Delete(config);
    cJSON_Delete(runs);
    cJSON_Delete(files);
    return text;
}

/* Writes one of the session's text files (text NULL: out of memory building it). */
static int write_session_file(const tui_session *s, const char *file, const char *text,
                              rd_error *err) {
    char path[1200];
    if (session_path(s->root, s->name, file, path, sizeof path, err)) return -1;
    if (!text) return rd_error_set(err, "%s: out of memory", path);
    return write_file_atomically(path, text, strlen(text), err);
}

/* Writes the runs' edits kept in memory to runs/ID/edits.safetensors and their models not
 * yet on disk to runs/ID/model.gguf (names in p), each atomically. */
static int write_run_files(const tui_session *s, const save_plan *p, const rd_model *m,
                           const char *config_json, rd_error *err) {
    char path[1200];
    for (size_t i = 0; i < s->n_runs; i++) {
        const tui_run *r = &s->runs[i];
        if (!r->edits && !r->model) continue;
        char dir[80];
        snprintf(dir, sizeof dir, "runs/%d", r->id);
        if (session_path(s->root, s->name, dir, path, sizeof path, err) || make_dirs(path, err))
            return -1;
        if (r->edits && (session_path(s->root, s->name, p->run_edits[i], path, sizeof path, err) ||
                         rd_edits_save(r->edits, m, config_json, path, err)))
            return -1;
        if (r->model && (session_path(s->root, s->name, p->run_models[i], path, sizeof path, err) ||
                         rd_gguf_write(path, &r->model->file, RD_DTYPE_F32, err)))
            return -1;
    }
    return 0;
}

int tui_session_save(tui_session *s, const rd_edits *e, const rd_model *m, rd_error *err) {
    char dir[1200], path[1200], fingerprint[17];
    if (!tui_session_name_ok(s->name, err)) return -1;
    int pending = 0;
    for (size_t i = 0; i < s->n_runs; i++) pending |= s->runs[i].edits != NULL;
    if ((e || pending) && !m)
        return rd_error_set(err, "session \"%s\": saving the edits needs the model", s->name);
    if (tui_config_check_fields(&s->config, err))
        return rd_error_prefix(err, "session \"%s\": config", s->name);
    if ((double)s->generation + 1 >= MAX_GENERATION)
        return rd_error_set(err, "session \"%s\": too many saves", s->name);
    if (session_path(s->root, s->name, NULL, dir, sizeof dir, err) || make_dirs(dir, err))
        return -1;
    if (m) snprintf(fingerprint, sizeof fingerprint, "%016" PRIx64, rd_model_fingerprint(m));
    else snprintf(fingerprint, sizeof fingerprint, "%s", s->model_fingerprint);
    save_plan p = {.gen = s->generation + 1};
    snprintf(p.loss, sizeof p.loss, "loss-%lu.csv", p.gen);
    snprintf(p.chat, sizeof p.chat, "chat-%lu.jsonl", p.gen);
    if (e) snprintf(p.edits, sizeof p.edits, "edits-%lu.safetensors", p.gen);
    else snprintf(p.edits, sizeof p.edits, "%s", s->edits_file);
    p.run_edits = calloc(s->n_runs ? s->n_runs : 1, sizeof *p.run_edits);
    p.run_models = calloc(s->n_runs ? s->n_runs : 1, sizeof *p.run_models);
    char *config_json = tui_config_to_json(&s->config);
    if (!config_json || !p.run_edits || !p.run_models) {
        free(p.run_edits);
        free(p.run_models);
        cJSON_free(config_json);
        return rd_error_set(err, "session \"%s\": out of memory", s->name);
    }
    for (size_t i = 0; i < s->n_runs; i++) {
        const tui_run *r = &s->runs[i];
        if (r->edits) snprintf(p.run_edits[i], sizeof p.run_edits[i], "runs/%d/edits.safetensors", r->id);
        else snprintf(p.run_edits[i], sizeof p.run_edits[i], "%s", r->edits_file);
        if (r->model) snprintf(p.run_models[i], sizeof p.run_models[i], "runs/%d/model.gguf", r->id);
        else snprintf(p.run_models[i], sizeof p.run_models[i], "%s", r->model_file);
    }
    int rc = -1;
    char *csv = NULL, *jsonl = NULL, *json = NULL;
    if (write_run_files(s, &p, m, config_json, err)) goto done;
    if (e) {
        if (session_path(s->root, s->name, p.edits, path, sizeof path, err) ||
            rd_edits_save(e, m, config_json, path, err))
            goto done;
    }
    csv = loss_csv_text(s);
    if (write_session_file(s, p.loss, csv, err)) goto done;
    jsonl = chat_jsonl_text(s);
    if (write_session_file(s, p.chat, jsonl, err)) goto done;
    json = session_json_text(s, &p, config_json, fingerprint);
    if (write_session_file(s, "session.json", json, err)) goto done; /* the commit point */
    /* committed: s now describes what is on disk */
    s->generation = p.gen;
    snprintf(s->edits_file, sizeof s->edits_file, "%s", p.edits);
    snprintf(s->model_fingerprint, sizeof s->model_fingerprint, "%s", fingerprint);
    for (size_t i = 0; i < s->n_runs; i++) {
        tui_run *r = &s->runs[i];
        snprintf(r->edits_file, sizeof r->edits_file, "%s", p.run_edits[i]);
        snprintf(r->model_file, sizeof r->model_file, "%s", p.run_models[i]);
        rd_edits_free(r->edits);
        r->edits = NULL;
        r->model = NULL;
    }
    tui_session_tidy(s);
    rc = 0;
done:
    free(p.run_edits);
    free(p.run_models);
    free(csv);
    free(jsonl);
    cJSON_free(json);
    cJSON_free(config_json);
    return rc;
}

static int read_session_file(const char *path, int missing_ok, char **data, size_t *len,
                             rd_error *err);

int tui_session_save_using_run(tui_session *s, int id, rd_error *err) {
    const tui_run *r = tui_session_find_run(s, id);
    if (!r) return rd_error_set(err, "session \"%s\": there is no run #%d", s->name, id);
    if (r->edits || !r->edits_file[0])
        return rd_error_set(err, "session \"%s\": run #%d has no saved edits", s->name, id);
    if ((double)s->generation + 1 >= MAX_GENERATION)
        return rd_error_set(err, "session \"%s\": too many saves", s->name);
    char from[1200], to[1200], file[64];
    snprintf(file, sizeof file, "edits-%lu.safetensors", s->generation + 1);
    if (session_path(s->root, s->name, r->edits_file, from, sizeof from, err) ||
        session_path(s->root, s->name, file, to, sizeof to, err))
        return -1;
    /* the run's file, byte for byte, under the name of the next generation's current edits
     * (a run's edits are written once and never change; no model is needed) */
    char *data = NULL;
    size_t len = 0;
    if (read_session_file(from, 0, &data, &len, err)) return -1;
    const int wrote = write_file_atomically(to, data, len, err);
    free(data);
    if (wrote) return -1;
    char old_file[64];
    const int old_current = s->current_run;
    snprintf(old_file, sizeof old_file, "%s", s->edits_file);
    snprintf(s->edits_file, sizeof s->edits_file, "%s", file);
    s->current_run = id;
    if (tui_session_save(s, NULL, NULL, err)) {
        snprintf(s->edits_file, sizeof s->edits_file, "%s", old_file);
        s->current_run = old_current;
        unlink(to); /* named by no session.json (tidying would remove it too) */
        return -1;
    }
    return 0;
}

/* ---- tidying and moving aside ------------------------------------------------------------ */

/* 1 when file (relative to the session folder) is one s names. */
static int named_by(const tui_session *s, const char *file) {
    if (!strcmp(file, s->edits_file)) return 1;
    for (size_t i = 0; i < s->n_runs; i++)
        if (!strcmp(file, s->runs[i].edits_file) || !strcmp(file, s->runs[i].model_file)) return 1;
    if (s->generation == 0) return !strcmp(file, "loss.csv") || !strcmp(file, "chat.jsonl");
    char name[64];
    snprintf(name, sizeof name, "loss-%lu.csv", s->generation);
    if (!strcmp(file, name)) return 1;
    snprintf(name, sizeof name, "chat-%lu.jsonl", s->generation);
    return !strcmp(file, name);
}

/* 1 when a file of this name is one a save writes (so tidying may remove it). */
static int session_file_name(const tui_session *s, const char *f) {
    if (strstr(f, ".tmp-")) return 1;
    if (numbered_name(f, "loss-", ".csv", NULL) || numbered_name(f, "chat-", ".jsonl", NULL) ||
        numbered_name(f, "edits-", ".safetensors", NULL))
        return 1;
    /* version 1 files, once a version 2 save exists */
    return s->generation > 0 && (!strcmp(f, "loss.csv") || !strcmp(f, "chat.jsonl") ||
                                 !strcmp(f, "edits.safetensors"));
}

static int remove_file(const char *dir, const char *file) {
    char path[1600];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%.255s", dir, file) >= (int)sizeof path) return 0;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0;
}

/* Tidies dir/runs/ID/ (rel: "runs/ID"): its temporary files, and its edits and model when
 * s does not name them (then the folder too, when nothing else is in it). */
static int tidy_run_dir(const tui_session *s, const char *dir, const char *rel) {
    char sub[1600], file[128];
    snprintf(sub, sizeof sub, "%s/%s", dir, rel);
    snprintf(file, sizeof file, "%s/edits.safetensors", rel);
    const int edits_named = named_by(s, file);
    snprintf(file, sizeof file, "%s/model.gguf", rel);
    const int model_named = named_by(s, file);
    int removed = 0;
    DIR *d = opendir(sub);
    if (!d) return 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (strstr(ent->d_name, ".tmp-") ||
            (!edits_named && !strcmp(ent->d_name, "edits.safetensors")) ||
            (!model_named && !strcmp(ent->d_name, "model.gguf")))
            removed += remove_file(sub, ent->d_name);
    closedir(d);
    if (!edits_named && !model_named && rmdir(sub) == 0) removed++;
    return removed;
}

int tui_session_tidy(const tui_session *s) {
    char dir[1200], runs[1300];
    if (!tui_session_name_ok(s->name, NULL) ||
        session_path(s->root, s->name, NULL, dir, sizeof dir, NULL))
        return 0;
    int removed = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (session_file_name(s, ent->d_name) && !named_by(s, ent->d_name))
            removed += remove_file(dir, ent->d_name);
    closedir(d);
    snprintf(runs, sizeof runs, "%s/runs", dir);
    if (!(d = opendir(runs))) return removed;
    while ((ent = readdir(d))) {
        char rel[80];
        if (!numbered_name(ent->d_name, "", "", NULL)) continue; /* at most 15 digits */
        snprintf(rel, sizeof rel, "runs/%.15s", ent->d_name);
        removed += tidy_run_dir(s, dir, rel);
    }
    closedir(d);
    return removed;
}

int tui_session_move_aside(const char *root, const char *name, char *moved, size_t cap,
                           rd_error *err) {
    char from[1200], stamp[32];
    if (!tui_session_name_ok(name, err) || session_path(root, name, NULL, from, sizeof from, err))
        return -1;
    const time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    for (int k = 1; k < 100; k++) {
        struct stat st;
        int n = k == 1 ? snprintf(moved, cap, "%s.damaged-%s", from, stamp)
                       : snprintf(moved, cap, "%s.damaged-%s-%d", from, stamp, k);
        if (n < 0 || (size_t)n >= cap)
            return rd_error_set(err, "%s: the folder path is too long", from);
        if (lstat(moved, &st) == 0) continue; /* rename would replace an empty folder */
        if (rename(from, moved) == 0) return 0;
        return rd_error_set(err, "%s: cannot move the damaged session aside to %s: %s", from,
                            moved, strerror(errno));
    }
    return rd_error_set(err, "%s: cannot move the damaged session aside: too many", from);
}

/* ---- reading ----------------------------------------------------------------------------------- */

/* Reads a whole file of at most MAX_SESSION_FILE bytes into a malloc'ed, NUL-terminated
 * buffer. A missing file gives 1 (with *data NULL) when missing_ok, else an error. */
static int read_session_file(const char *path, int missing_ok, char **data, size_t *len,
                             rd_error *err) {
    *data = NULL;
    *len = 0;
    const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
    if (fd < 0) {
        if (errno == ENOENT && missing_ok) return 1;
        return rd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    int rc = -1;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rd_error_set(err, "%s: not a regular file", path);
        goto done;
    }
    if ((uint64_t)st.st_size > MAX_SESSION_FILE) {
        rd_error_set(err, "%s: %lld bytes is more than a session file may hold (64 MiB)", path,
                     (long long)st.st_size);
        goto done;
    }
    const size_t size = (size_t)st.st_size;
    buf = calloc(size + 1, 1); /* zeroed: clang's analyser cannot see read() fill it */
    if (!buf) {
        rd_error_set(err, "%s: out of memory", path);
        goto done;
    }
    size_t got = 0;
    while (got < size) {
        const ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rd_error_set(err, "%s: cannot read: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0) break; /* the file shrank: parse what is there */
        got += (size_t)n;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    close(fd);
    return rc;
}

/* Line number (from 1) of position pos in text. */
static size_t line_of(const char *text, size_t pos) {
    size_t line = 1;
    for (size_t i = 0; i < pos; i++) line += text[i] == '\n';
    return line;
}

/* Parses len bytes of JSON; NULL with *err "path line N: not valid JSON" on failure. */
static cJSON *parse_json(const char *path, size_t line_base, const char *text, size_t len,
                         rd_error *err) {
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    int trailing = 0;
    if (v) {
        /* only white space may follow the value */
        size_t i = (size_t)(end - text);
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
            i++;
        if (i == len) return v;
        cJSON_Delete(v);
        end = text + i;
        trailing = 1;
    }
    const size_t pos = end && end >= text && (size_t)(end - text) <= len ? (size_t)(end - text) : 0;
    rd_error_set(err, "%s line %zu: not valid JSON%s", path, line_base + line_of(text, pos) - 1,
                 trailing ? " (text after the value)" : "");
    return NULL;
}

/* A member that must be a string of fewer than cap bytes, copied into out. */
static int json_string(const cJSON *obj, const char *key, char *out, size_t cap, const char *where,
                       rd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || !v->valuestring)
        return rd_error_set(err, "%s: \"%s\" must be a string", where, key);
    if (strlen(v->valuestring) >= cap)
        return rd_error_set(err, "%s: \"%s\" is longer than %zu bytes", where, key, cap - 1);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* A member that must be a number (or, with null_ok, null = NAN). */
static int json_number(const cJSON *obj, const char *key, int null_ok, double *out,
                       const char *where, rd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (null_ok && cJSON_IsNull(v)) return *out = NAN, 0;
    if (!cJSON_IsNumber(v))
        return rd_error_set(err, "%s: \"%s\" must be a number%s", where, key, null_ok ? " or null" : "");
    *out = v->valuedouble;
    return 0;
}

static int fingerprint_ok(const char *fp) {
    const size_t n = strlen(fp);
    if (n == 0) return 1;
    if (n != 16) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", fp[i])) return 0;
    return 1;
}

/* A member that must be a whole number in [lo, hi]. */
static int json_whole(const cJSON *obj, const char *key, double lo, double hi, double *out,
                      const char *where, rd_error *err) {
    if (json_number(obj, key, 0, out, where, err)) return -1;
    if (!(*out >= lo && *out <= hi) || *out != floor(*out))
        return rd_error_set(err, "%s: \"%s\" %g is not a whole number from %g to %g", where, key,
                            *out, lo, hi);
    return 0;
}

/* A member that must be null ("") or a string that check accepts. */
static int json_file_name(const cJSON *obj, const char *key, int (*check)(const char *),
                          char *out, size_t cap, const char *where, rd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNull(v)) return out[0] = '\0', 0;
    if (json_string(obj, key, out, cap, where, err)) return -1;
    if (!check(out))
        return rd_error_set(err, "%s: \"%s\" \"%s\" is not a session file name", where, key, out);
    return 0;
}

static int load_run(const cJSON *item, size_t i, int version, tui_session *out, const char *path,
                    rd_error *err) {
    char where[1300];
    snprintf(where, sizeof where, "%s: run %zu", path, i);
    if (!cJSON_IsObject(item)) return rd_error_set(err, "%s: expected an object", where);
    tui_run *r = tui_session_new_run(out, "");
    if (!r) return rd_error_set(err, "%s: out of memory", where);
    if (version >= 2) {
        double id = 0;
        if (json_whole(item, "id", 1, MAX_GENERATION, &id, where, err) ||
            json_file_name(item, "edits", run_edits_name_ok, r->edits_file, sizeof r->edits_file,
                           where, err) ||
            /* absent in sessions written before full fine-tuning runs kept their model */
            (cJSON_HasObjectItem(item, "model") &&
             json_file_name(item, "model", run_model_name_ok, r->model_file, sizeof r->model_file,
                            where, err)))
            return -1;
        for (size_t k = 0; k + 1 < out->n_runs; k++)
            if (out->runs[k].id == (int)id)
                return rd_error_set(err, "%s: \"id\" %g is used twice", where, id);
        r->id = (int)id;
    }
    double stopped = 0;
    if (json_string(item, "label", r->label, sizeof r->label, where, err) ||
        json_number(item, "seconds", 1, &r->seconds, where, err) ||
        json_number(item, "tokens_per_s", 1, &r->tokens_per_s, where, err) ||
        json_number(item, "best_eval_loss", 1, &r->best_eval_loss, where, err) ||
        /* absent in sessions written before it existed */
        (cJSON_HasObjectItem(item, "best_eval_accuracy")
             ? json_number(item, "best_eval_accuracy", 1, &r->best_eval_accuracy, where, err)
             : (r->best_eval_accuracy = NAN, 0)) ||
        json_number(item, "stopped", 0, &stopped, where, err))
        return -1;
    if (stopped != -1 && stopped != RD_STOP_DONE && stopped != RD_STOP_REQUESTED &&
        stopped != RD_STOP_NONFINITE)
        return rd_error_set(err, "%s: \"stopped\" %g is not -1, 0, 1 or 2", where, stopped);
    r->stopped = (int)stopped;
    return 0;
}

/* Version 2's generation, run counter, current run and file names. */
static int load_v2_fields(const cJSON *root, const char *path, tui_session *out, rd_error *err) {
    double gen = 0, next = 0, current = 0;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    if (json_whole(root, "generation", 1, MAX_GENERATION, &gen, path, err) ||
        json_whole(root, "next_run", 1, MAX_GENERATION, &next, path, err) ||
        json_whole(root, "current_run", 0, MAX_GENERATION, &current, path, err))
        return -1;
    if (next > INT32_MAX || current > INT32_MAX)
        return rd_error_set(err, "%s: \"next_run\" or \"current_run\" is too large", path);
    out->generation = (unsigned long)gen;
    out->next_run_id = (int)next;
    out->current_run = (int)current;
    for (size_t i = 0; i < out->n_runs; i++)
        if (out->runs[i].id >= out->next_run_id)
            return rd_error_set(err, "%s: run %zu: \"id\" %d is not below \"next_run\" %d", path,
                                i, out->runs[i].id, out->next_run_id);
    if (out->current_run && !tui_session_find_run(out, out->current_run))
        return rd_error_set(err, "%s: \"current_run\" %d is not a run", path, out->current_run);
    if (!cJSON_IsObject(files)) return rd_error_set(err, "%s: \"files\" must be an object", path);
    char where[1300], want[64], name[64];
    snprintf(where, sizeof where, "%s: files", path);
    const char *keys[2] = {"loss", "chat"}, *forms[2] = {"loss-%lu.csv", "chat-%lu.jsonl"};
    for (int k = 0; k < 2; k++) {
        if (json_string(files, keys[k], name, sizeof name, where, err)) return -1;
        snprintf(want, sizeof want, forms[k], out->generation);
        if (strcmp(name, want))
            return rd_error_set(err, "%s: \"%s\" is \"%s\", not \"%s\" of generation %lu", where,
                                keys[k], name, want, out->generation);
    }
    return json_file_name(files, "edits", edits_name_ok, out->edits_file, sizeof out->edits_file,
                          where, err);
}

static int load_session_json(const char *path, const char *text, size_t len, tui_session *out,
                             rd_error *err) {
    cJSON *root = parse_json(path, 1, text, len, err);
    if (!root) return -1;
    int rc = -1;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "config");
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs");
    if (!cJSON_IsObject(root)) {
        rd_error_set(err, "%s: expected a JSON object", path);
        goto done;
    }
    if (!cJSON_IsString(format) || strcmp(format->valuestring, SESSION_FORMAT) != 0) {
        rd_error_set(err, "%s: not a redit session (\"format\" is not \"%s\")", path, SESSION_FORMAT);
        goto done;
    }
    if (!cJSON_IsNumber(version)) {
        rd_error_set(err, "%s: \"version\" is missing or not a number", path);
        goto done;
    }
    if (version->valuedouble != 1 && version->valuedouble != SESSION_VERSION) {
        rd_error_set(err, "%s: session version %g is not supported (this redit reads versions 1 "
                          "and %d)", path, version->valuedouble, SESSION_VERSION);
        goto done;
    }
    const int v = (int)version->valuedouble;
    if (json_string(root, "model_path", out->model_path, sizeof out->model_path, path, err) ||
        json_string(root, "model_fingerprint", out->model_fingerprint,
                    sizeof out->model_fingerprint, path, err))
        goto done;
    if (!fingerprint_ok(out->model_fingerprint)) {
        rd_error_set(err, "%s: \"model_fingerprint\" must be 16 hex digits or \"\"", path);
        goto done;
    }
    if (!cJSON_IsObject(config)) {
        rd_error_set(err, "%s: \"config\" must be an object", path);
        goto done;
    }
    if (tui_config_from_cjson(config, &out->config, err)) {
        rd_error_prefix(err, "%s", path);
        goto done;
    }
    if (!cJSON_IsArray(runs)) {
        rd_error_set(err, "%s: \"runs\" must be an array", path);
        goto done;
    }
    size_t i = 0;
    for (const cJSON *item = runs->child; item; item = item->next, i++)
        if (load_run(item, i, v, out, path, err)) goto done;
    if (v >= 2 && load_v2_fields(root, path, out, err)) goto done;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* The next line of text[*pos, len) (without "\n" or "\r\n"): start and length. 0 at the end. */
static int next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n) {
    if (*pos >= len) return 0;
    const char *start = text + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    size_t l = nl ? (size_t)(nl - start) : len - *pos;
    *pos += l + (nl ? 1 : 0);
    if (l > 0 && start[l - 1] == '\r') l--;
    *line = start;
    *n = l;
    return 1;
}

/* Splits a CSV row of n bytes into exactly count fields copied into fields (each < 64
 * bytes). -1 when the count differs, a field is too long or holds a NUL byte. */
static int split_row(const char *row, size_t n, char fields[][64], int count) {
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && row[i] == '\0') return -1;
        if (i == n || row[i] == ',') {
            const size_t l = i - start;
            if (k == count || l >= 64) return -1;
            memcpy(fields[k], row + start, l);
            fields[k][l] = '\0';
            k++;
            start = i + 1;
        }
    }
    return k == count ? 0 : -1;
}

/* A non-negative decimal integer of at most 9 digits; -1 otherwise. */
static long small_count(const char *s) {
    const size_t n = strlen(s);
    if (n == 0 || n > 9 || strspn(s, "0123456789") != n) return -1;
    return strtol(s, NULL, 10);
}

static int load_loss_row(const char *path, size_t line_no, const char *row, size_t n,
                         tui_session *out, rd_error *err) {
    char f[4][64];
    if (split_row(row, n, f, 4))
        return rd_error_set(err, "%s line %zu: expected 4 fields: run,step,kind,loss", path, line_no);
    const long run = small_count(f[0]), step = small_count(f[1]);
    if (run < 0) return rd_error_set(err, "%s line %zu: run \"%s\" is not a run number", path, line_no, f[0]);
    if ((size_t)run >= out->n_runs)
        return rd_error_set(err, "%s line %zu: run %ld is unknown (session.json lists %zu runs)",
                            path, line_no, run, out->n_runs);
    if (step < 0) return rd_error_set(err, "%s line %zu: step \"%s\" is not a step number", path, line_no, f[1]);
    char *end;
    const double loss = strtod(f[3], &end);
    if (end == f[3] || *end != '\0')
        return rd_error_set(err, "%s line %zu: loss \"%s\" is not a number", path, line_no, f[3]);
    tui_run *r = &out->runs[run];
    if (!strcmp(f[2], "train")) {
        if ((size_t)step != r->n_steps + 1)
            return rd_error_set(err, "%s line %zu: train step %ld of run %ld is out of order "
                                     "(expected step %zu)", path, line_no, step, run, r->n_steps + 1);
        if (tui_run_add_step(r, loss)) return rd_error_set(err, "%s: out of memory", path);
        return 0;
    }
    if (!strcmp(f[2], "eval")) {
        if (r->n_evals > 0 && step < r->eval_step[r->n_evals - 1])
            return rd_error_set(err, "%s line %zu: eval step %ld of run %ld is out of order "
                                     "(after step %d)", path, line_no, step, run,
                                r->eval_step[r->n_evals - 1]);
        if (tui_run_add_eval(r, (int)step, loss)) return rd_error_set(err, "%s: out of memory", path);
        return 0;
    }
    return rd_error_set(err, "%s line %zu: kind \"%s\" is not train or eval", path, line_no, f[2]);
}

static int load_loss_csv(const char *path, const char *text, size_t len, tui_session *out,
                         rd_error *err) {
    size_t pos = 0, line_no = 0, n;
    const char *line;
    if (!next_line(text, len, &pos, &line, &n) || n != strlen(LOSS_HEADER) ||
        memcmp(line, LOSS_HEADER, n) != 0)
        return rd_error_set(err, "%s line 1: expected the header \"" LOSS_HEADER "\"", path);
    line_no = 1;
    while (next_line(text, len, &pos, &line, &n)) {
        line_no++;
        if (n == 0) continue;
        if (load_loss_row(path, line_no, line, n, out, err)) return -1;
    }
    return 0;
}

static int load_chat_line(const char *path, size_t line_no, const char *line, size_t n,
                          tui_session *out, rd_error *err) {
    cJSON *obj = parse_json(path, line_no, line, n, err);
    if (!obj) return -1;
    char where[1300];
    snprintf(where, sizeof where, "%s line %zu", path, line_no);
    int rc = -1;
    const char *keys[3] = {"prompt", "base", "edited"};
    const char *texts[3];
    double strength = 0;
    if (!cJSON_IsObject(obj)) {
        rd_error_set(err, "%s: expected a JSON object", where);
        goto done;
    }
    for (int k = 0; k < 3; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, keys[k]);
        if (!cJSON_IsString(v) || !v->valuestring) {
            rd_error_set(err, "%s: \"%s\" must be a string", where, keys[k]);
            goto done;
        }
        texts[k] = v->valuestring;
    }
    if (json_number(obj, "strength", 0, &strength, where, err)) goto done;
    if (!isfinite(strength)) {
        rd_error_set(err, "%s: \"strength\" must be finite", where);
        goto done;
    }
    const char *titles[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) { /* optional: the columns' titles of a comparison */
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, k ? "right" : "left");
        if (!v) continue;
        if (!cJSON_IsString(v) || !v->valuestring) {
            rd_error_set(err, "%s: \"%s\" must be a string", where, k ? "right" : "left");
            goto done;
        }
        titles[k] = v->valuestring;
    }
    const char *answers[TUI_CHAT_TURN_MAX_COLUMNS] = {texts[1], texts[2]};
    const char *all_titles[TUI_CHAT_TURN_MAX_COLUMNS] = {titles[0], titles[1]};
    int n_cols = 2;
    const cJSON *more = cJSON_GetObjectItemCaseSensitive(obj, "more");
    if (more) { /* optional: the columns after the first two */
        if (!cJSON_IsArray(more) || cJSON_GetArraySize(more) < 1 ||
            cJSON_GetArraySize(more) > TUI_CHAT_TURN_MAX_COLUMNS - 2) {
            rd_error_set(err, "%s: \"more\" must be an array of 1 to %d columns", where,
                         TUI_CHAT_TURN_MAX_COLUMNS - 2);
            goto done;
        }
        for (const cJSON *col = more->child; col; col = col->next, n_cols++) {
            const cJSON *title = cJSON_GetObjectItemCaseSensitive(col, "title");
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(col, "text");
            if (!cJSON_IsString(title) || !title->valuestring || !cJSON_IsString(text) ||
                !text->valuestring) {
                rd_error_set(err, "%s: \"more\": each column must be {\"title\": string, "
                                  "\"text\": string}", where);
                goto done;
            }
            answers[n_cols] = text->valuestring;
            all_titles[n_cols] = title->valuestring;
        }
    }
    if (tui_session_add_chat_columns(out, texts[0], n_cols, answers, all_titles, strength)) {
        rd_error_set(err, "%s: out of memory", where);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(obj);
    return rc;
}

static int load_chat_jsonl(const char *path, const char *text, size_t len, tui_session *out,
                           rd_error *err) {
    size_t pos = 0, line_no = 0, n;
    const char *line;
    while (next_line(text, len, &pos, &line, &n)) {
        line_no++;
        if (strspn(line, " \t") >= n) continue; /* blank line */
        if (load_chat_line(path, line_no, line, n, out, err)) return -1;
    }
    return 0;
}

typedef int (*file_loader)(const char *path, const char *text, size_t len, tui_session *out,
                           rd_error *err);

/* Reads root/name/file and hands it to load; a missing optional file is empty (a missing
 * required one is "root/name/file: cannot open: No such file or directory"). */
static int load_part(const char *root, const char *name, const char *file, int optional,
                     file_loader load, tui_session *out, rd_error *err) {
    char path[1200];
    char *text;
    size_t len;
    if (session_path(root, name, file, path, sizeof path, err)) return -1;
    const int rc = read_session_file(path, optional, &text, &len, err);
    if (rc < 0) return -1;
    if (rc == 1) return 0;
    const int bad = load(path, text, len, out, err);
    free(text);
    return bad ? -1 : 0;
}

int tui_session_load(const char *root, const char *name, tui_session *out, rd_error *err) {
    memset(out, 0, sizeof *out);
    if (!tui_session_name_ok(name, err)) return -1;
    if (strlen(root_dir(root)) >= sizeof out->root)
        return rd_error_set(err, "session \"%s\": the folder path is too long", name);
    tui_session_init(out, root, name);
    if (!tui_session_exists(root, name)) {
        rd_error_set(err, "%s/%s: no session there (session.json is missing)", root_dir(root), name);
        goto fail;
    }
    if (load_part(root, name, "session.json", 0, load_session_json, out, err)) goto fail;
    if (out->generation == 0) { /* version 1: fixed names, loss and chat optional */
        if (load_part(root, name, "loss.csv", 1, load_loss_csv, out, err) ||
            load_part(root, name, "chat.jsonl", 1, load_chat_jsonl, out, err))
            goto fail;
        char path[1200];
        struct stat st;
        if (session_path(root, name, "edits.safetensors", path, sizeof path, err)) goto fail;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) { /* the last run's edits */
            snprintf(out->edits_file, sizeof out->edits_file, "edits.safetensors");
            if (out->n_runs) {
                tui_run *last = &out->runs[out->n_runs - 1];
                snprintf(last->edits_file, sizeof last->edits_file, "edits.safetensors");
                out->current_run = last->id;
            }
        }
        return 0;
    }
    char loss[64], chat[64];
    snprintf(loss, sizeof loss, "loss-%lu.csv", out->generation);
    snprintf(chat, sizeof chat, "chat-%lu.jsonl", out->generation);
    if (load_part(root, name, loss, 0, load_loss_csv, out, err) ||
        load_part(root, name, chat, 0, load_chat_jsonl, out, err))
        goto fail;
    return 0;
fail:
    tui_session_release(out);
    memset(out, 0, sizeof *out);
    return -1;
}
