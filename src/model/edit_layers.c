/* Edit sites by name and layer lists ("all", "0-5,9"): parsing and the canonical text the
 * edit sets, their files and the trainer's setup record carry. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit_layers.h"
#include "redit/edits.h"

/* ---- sites ------------------------------------------------------------------------ */

int rd_sites_from_name(const char *name, int *out) {
    static const struct { const char *name; int sites; } NAMES[] = {
        {"attn", RD_SITE_ATTN}, {"ffn", RD_SITE_FFN}, {"both", RD_SITE_BOTH}};
    for (size_t i = 0; name && i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(name, NAMES[i].name) == 0) {
            *out = NAMES[i].sites;
            return 0;
        }
    return -1;
}

const char *rd_sites_name(int sites) {
    switch (sites) {
    case RD_SITE_ATTN: return "attn";
    case RD_SITE_FFN: return "ffn";
    case RD_SITE_BOTH: return "both";
    default: return "none";
    }
}

/* ---- layer lists ------------------------------------------------------------------ */

static const char *skip_ws(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* A decimal layer number at *s (advanced past it); -1 when there are no digits. Values
 * past INT_MAX / 10 saturate: they are out of range for any model anyway. */
static long parse_number(const char **s) {
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) v = v < INT_MAX / 10 ? v * 10 + (*p - '0') : INT_MAX;
    *s = p;
    return v;
}

static int is_all(const char *text) {
    const char *s = skip_ws(text);
    if (strncmp(s, "all", 3) != 0) return 0;
    return *skip_ws(s + 3) == '\0';
}

/* What follows a parse position, for messages. */
static const char *at_text(const char *p) { return *p ? p : "(end)"; }

/* One item "A" or "A-B" at *s; sets on[A..B]. */
static int parse_item(const char **s, const char *text, int n_layers, unsigned char *on,
                      rd_error *err) {
    const char *p = skip_ws(*s), *digits = p;
    long a = parse_number(&p), b = a;
    if (a < 0)
        return rd_error_set(err, "layers \"%s\": expected a layer number at \"%s\"", text,
                            at_text(p));
    p = skip_ws(p);
    if (*p == '-') {
        p = skip_ws(p + 1);
        digits = p;
        b = parse_number(&p);
        if (b < 0)
            return rd_error_set(err, "layers \"%s\": expected the end of the range %ld- at "
                                     "\"%s\"", text, a, at_text(p));
        if (b < a)
            return rd_error_set(err, "layers \"%s\": the range %ld-%ld is reversed", text, a, b);
    }
    if (b >= n_layers) /* the digits as written: a huge number saturated in parse_number */
        return rd_error_set(err, "layers \"%s\": layer %.*s is beyond the model's %d layers "
                                 "(0-%d)", text, (int)strspn(digits, "0123456789"), digits,
                            n_layers, n_layers - 1);
    for (long l = a; l <= b; l++) on[l] = 1;
    *s = skip_ws(p);
    return 0;
}

/* Parses "all" or a comma-separated list of layers and ranges ("0-5,9", spaces allowed
 * around numbers) into on (n_layers, zeroed by the caller). NULL means "all". */
int rd_layer_list_parse(const char *text, int n_layers, unsigned char *on, rd_error *err) {
    if (!text || is_all(text)) {
        memset(on, 1, (size_t)n_layers);
        return 0;
    }
    if (*skip_ws(text) == '\0')
        return rd_error_set(err, "layers: the list is empty (give \"all\" or e.g. \"0-5,9\")");
    const char *s = text;
    for (;;) {
        if (parse_item(&s, text, n_layers, on, err)) return -1;
        if (*s == '\0') return 0;
        if (*s != ',')
            return rd_error_set(err, "layers \"%s\": unexpected \"%c\" (items are separated by "
                                     "commas)", text, *s);
        s++;
    }
}

/* Canonical text: "all", or ascending items "a" / "a-b" joined by commas. Malloc'ed. */
char *rd_layer_list_text(const unsigned char *on, int n_layers) {
    size_t cap = (size_t)n_layers * 24 + 8;
    char *out = malloc(cap);
    if (!out) return NULL;
    int all = 1;
    for (int l = 0; l < n_layers; l++) all &= on[l];
    if (all) {
        strcpy(out, "all");
        return out;
    }
    size_t k = 0;
    out[0] = '\0';
    for (int l = 0; l < n_layers;) {
        if (!on[l]) {
            l++;
            continue;
        }
        int end = l;
        while (end + 1 < n_layers && on[end + 1]) end++;
        k += (size_t)snprintf(out + k, cap - k, end > l ? "%s%d-%d" : "%s%d", k ? "," : "", l,
                              end);
        l = end + 1;
    }
    return out;
}

