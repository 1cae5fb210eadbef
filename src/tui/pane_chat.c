/* The chat pane: one prompt, its answers side by side — the base model (left) and the
 * edited model at strength α (right), or the base beside several edit sets compared
 * (wb.compare / ":compare": each column titled with its run or file, the width split
 * between them) — streamed as the worker writes them; the session's transcript above,
 * scrollable; the prompt line at the bottom. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "redit/buf.h"
#include "textwrap.h"

/* One screen row of the transcript: a full-width prompt line, or a turn's header (the
 * columns' titles) or answer row. */
typedef struct vrow {
    int kind;           /* ROW_PROMPT, ROW_HEADER, ROW_ANSWERS, ROW_BLANK */
    const char *text;   /* ROW_PROMPT: the line and its prefix ("you: " or blanks) */
    size_t len;
    const char *prefix;
    size_t block;       /* ROW_HEADER, ROW_ANSWERS: the turn's answers (vrows.blocks) */
} vrow;

enum { ROW_PROMPT, ROW_HEADER, ROW_ANSWERS, ROW_BLANK };

/* The answers of a turn in n_cols columns col_w wide: rows [start, start + rows) of the
 * transcript, each column's title and wrapped lines (text[k] + span[k][i]). */
typedef struct answer_block {
    size_t start, rows;
    int n_cols, col_w;
    double strength; /* α of the edited columns; NAN when there is none */
    const char *title[TUI_CHAT_MAX_COLUMNS];
    const char *text[TUI_CHAT_MAX_COLUMNS];
    tui_span *span[TUI_CHAT_MAX_COLUMNS];
    size_t n[TUI_CHAT_MAX_COLUMNS];
} answer_block;

typedef struct vrows {
    vrow *v;
    size_t n, cap;
    answer_block *blocks;
    size_t n_blocks, cap_blocks;
} vrows;

static void push_row(vrows *rs, vrow r) {
    if (rd_array_reserve(&rs->v, &rs->cap, rs->n + 1, sizeof *rs->v)) return;
    rs->v[rs->n++] = r;
}

/* Wraps text to cols and returns its spans (malloc'ed, *n of them). */
static tui_span *wrap(const char *text, int cols, size_t *n) {
    size_t len = strlen(text);
    *n = tui_wrap(text, len, cols, NULL, 0);
    tui_span *s = malloc((*n ? *n : 1) * sizeof *s);
    if (s) tui_wrap(text, len, cols, s, *n);
    else *n = 0;
    return s;
}

static void draw_span(int y, int x, int w, const char *s, size_t len, int attr) {
    char buf[1024];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    draw_text(y, x, w, buf, attr);
}

/* The width of each of n columns in a pane w wide (a separator and a blank between two). */
static int column_width(int w, int n) {
    const int c = (w - 1 - 2 * (n - 1)) / n;
    return c > 1 ? c : 1;
}

/* A turn: its prompt, then n columns (texts and titles; n ≥ 2, the second one empty when
 * there was no edited answer: has_edited 0 leaves its title out). */
static void add_turn(vrows *rs, const char *prompt, int n, const char *const *texts,
                     const char *const *titles, double strength, int full_w, int has_edited) {
    size_t np;
    tui_span *ps = wrap(prompt, full_w - 5, &np);
    for (size_t i = 0; i < np; i++)
        push_row(rs, (vrow){ROW_PROMPT, prompt + ps[i].start, ps[i].len, i == 0 ? "you: " : "     ", 0});
    free(ps);
    answer_block b = {.start = rs->n + 1, .n_cols = n, .col_w = column_width(full_w, n),
                      .strength = has_edited ? strength : NAN};
    for (int k = 0; k < n; k++) {
        b.title[k] = titles[k];
        b.text[k] = texts[k];
        b.span[k] = wrap(texts[k], b.col_w, &b.n[k]);
        if (b.n[k] > b.rows) b.rows = b.n[k];
    }
    if (rd_array_reserve(&rs->blocks, &rs->cap_blocks, rs->n_blocks + 1, sizeof *rs->blocks)) {
        for (int k = 0; k < n; k++) free(b.span[k]);
        return;
    }
    push_row(rs, (vrow){ROW_HEADER, "", 0, "", rs->n_blocks});
    for (size_t i = 0; i < b.rows; i++) push_row(rs, (vrow){ROW_ANSWERS, "", 0, "", rs->n_blocks});
    rs->blocks[rs->n_blocks++] = b;
    push_row(rs, (vrow){ROW_BLANK, "", 0, "", 0});
}

/* The line of column side shown on transcript row `row` of block b when the view starts at
 * row `first`; -1 for none. A column shorter than its neighbour slides down with the view
 * while the top of the answers is scrolled away (as far as the bottom of the longest one), so
 * a one-line answer beside a long one stays in view. */
static long block_line(const answer_block *b, int side, size_t row, size_t first) {
    size_t shift = 0;
    if (first > b->start) {
        shift = first - b->start;
        if (shift > b->rows - b->n[side]) shift = b->rows - b->n[side];
    }
    size_t k = row - b->start;
    if (k < shift || k - shift >= b->n[side]) return -1;
    return (long)(k - shift);
}

/* Column k's left edge in a pane at x. */
static int column_x(const answer_block *b, int x, int k) { return x + 1 + k * (b->col_w + 2); }

/* Draws the header row of block b at y: the columns' titles, α after the edited ones'. */
static void draw_header(const answer_block *b, int y, int x) {
    for (int k = 0; k < b->n_cols; k++) {
        const int cx = column_x(b, x, k);
        if (k == 0) {
            draw_text(y, cx, b->col_w, b->title[0],
                      (has_colors() ? COLOR_PAIR(PAIR_BASE) : 0) | A_UNDERLINE);
            continue;
        }
        if (isnan(b->strength)) continue;
        char hdr[120];
        size_t tl = strlen(b->title[k]); /* the title is cut so that α stays in view */
        const size_t room = b->col_w > 10 ? (size_t)b->col_w - 9 : 1;
        if (tl > room) {
            tl = room;
            while (tl > 0 && ((unsigned char)b->title[k][tl] & 0xC0) == 0x80) tl--;
        }
        snprintf(hdr, sizeof hdr, "%.*s  α=%.2g", (int)tl, b->title[k], b->strength);
        draw_text(y, cx, b->col_w, hdr, (has_colors() ? COLOR_PAIR(PAIR_EDITED) : 0) | A_UNDERLINE);
    }
}

/* Draws answer row `row` of block b at y: each column's line, separators between. */
static void draw_answers(const answer_block *b, size_t row, size_t first, int y, int x, int utf8) {
    for (int k = 0; k < b->n_cols; k++) {
        const int cx = column_x(b, x, k);
        const long i = block_line(b, k, row, first);
        if (i >= 0)
            draw_span(y, cx, b->col_w, b->text[k] + b->span[k][i].start, b->span[k][i].len, 0);
        if (k + 1 < b->n_cols)
            draw_text(y, cx + b->col_w, 1, utf8 ? "│" : "|", has_colors() ? COLOR_PAIR(PAIR_DIM) : 0);
    }
}

void pane_chat_draw(tui_app *a, tui_rect r) {
    int focused = a->focus == PANE_CHAT;
    char right[80];
    snprintf(right, sizeof right, "α=%.2g  F7/F8", a->session.config.strength);
    char title[320];
    if (a->n_compare > 0) { /* "Chat: base | run #1 | run #2 | e.safetensors (...)" */
        size_t used = (size_t)snprintf(title, sizeof title, "Chat: base");
        for (int k = 0; k < a->n_compare && used < sizeof title; k++)
            used += a->compare_run[k]
                        ? (size_t)snprintf(title + used, sizeof title - used, " | run #%d",
                                           a->compare_run[k])
                        : (size_t)snprintf(title + used, sizeof title - used, " | %.24s",
                                           a->compare_title[k]);
        if (used < sizeof title)
            snprintf(title + used, sizeof title - used, " (:compare ends)");
    } else {
        snprintf(title, sizeof title, "Chat: base | edited");
    }
    draw_title(r, title, right, focused);
    int hist_h = r.h - 2;
    vrows rs = {0};
    /* The transcript; its strings stay alive while the session is not changed (drawing). */
    for (size_t i = 0; i < a->session.n_chat; i++) {
        const tui_chat_turn *t = &a->session.chat[i];
        const char *texts[TUI_CHAT_MAX_COLUMNS] = {t->base, t->edited};
        const char *titles[TUI_CHAT_MAX_COLUMNS] = {t->left[0] ? t->left : "base",
                                                    t->right[0] ? t->right : "edited"};
        int n = 2;
        for (size_t k = 0; k < t->n_more && n < TUI_CHAT_MAX_COLUMNS; k++, n++) {
            texts[n] = t->more[k];
            titles[n] = t->more_titles[k];
        }
        add_turn(&rs, t->prompt, n, texts, titles, t->strength, r.w,
                 t->edited[0] != 0 || a->edits || n > 2);
    }
    if (a->chatting) {
        const char *texts[TUI_CHAT_MAX_COLUMNS], *titles[TUI_CHAT_MAX_COLUMNS];
        const int n = a->n_answers >= 2 && a->n_answers <= TUI_CHAT_MAX_COLUMNS ? a->n_answers : 2;
        for (int k = 0; k < n; k++) {
            texts[k] = app_answer(a, k);
            titles[k] = a->answer_title[k][0] ? a->answer_title[k] : k == 0 ? "base" : "edited";
        }
        add_turn(&rs, a->chat_prompt, n, texts, titles, a->session.config.strength, r.w, 1);
    }
    if (rs.n == 0 && hist_h > 2) { /* the hint, wrapped */
        static const char hint[] = "Type a prompt and press Enter: the base model answers on the "
                                   "left, the edited model on the right.";
        tui_span hs[4];
        size_t nh = tui_wrap(hint, sizeof hint - 1, r.w - 4, hs, 4);
        for (size_t i = 0; i < nh && i < 4 && (int)i + 2 < hist_h + 1; i++)
            draw_span(r.y + 2 + (int)i, r.x + 2, r.w - 4, hint + hs[i].start, hs[i].len,
                      has_colors() ? COLOR_PAIR(PAIR_DIM) : 0);
    }
    int max_scroll = (int)rs.n > hist_h ? (int)rs.n - hist_h : 0;
    if (a->chat_scroll > max_scroll) a->chat_scroll = max_scroll;
    int first = (int)rs.n - hist_h - a->chat_scroll;
    if (first < 0) first = 0;
    for (int i = 0; i < hist_h && first + i < (int)rs.n; i++) {
        const vrow *v = &rs.v[first + i];
        int y = r.y + 1 + i;
        switch (v->kind) {
        case ROW_PROMPT:
            draw_text(y, r.x + 1, 5, v->prefix, A_BOLD);
            draw_span(y, r.x + 6, r.w - 7, v->text, v->len, A_BOLD);
            break;
        case ROW_HEADER: draw_header(&rs.blocks[v->block], y, r.x); break;
        case ROW_ANSWERS:
            draw_answers(&rs.blocks[v->block], (size_t)(first + i), (size_t)first, y, r.x, a->utf8);
            break;
        default: break;
        }
    }
    free(rs.v);
    for (size_t i = 0; i < rs.n_blocks; i++)
        for (int k = 0; k < rs.blocks[i].n_cols; k++) free(rs.blocks[i].span[k]);
    free(rs.blocks);
    /* the prompt line */
    int y = r.y + r.h - 1;
    const char *prefix = a->chatting ? "… " : "> ";
    draw_text(y, r.x + 1, 2, prefix, A_BOLD);
    a->chat_input[a->chat_len] = '\0';
    const char *shown = a->chat_input;
    int room = r.w - 4;
    while (tui_text_width(shown, strlen(shown)) > room) { /* keep the end in view */
        shown++;
        while (((unsigned char)*shown & 0xC0) == 0x80) shown++;
    }
    int used = draw_text(y, r.x + 3, room, shown, 0);
    if (focused) move(y, r.x + 3 + used);
}

static void send_prompt(tui_app *a) {
    a->chat_input[a->chat_len] = '\0';
    if (!a->chat_len) return;
    rd_error err = {0};
    static const char cmd[] = ":compare";
    if (!strncmp(a->chat_input, cmd, sizeof cmd - 1) &&
        (a->chat_input[sizeof cmd - 1] == '\0' || a->chat_input[sizeof cmd - 1] == ' ')) {
        /* ":compare 1 3 file.safetensors": the base beside those runs or files; ":compare"
         * alone ends the comparison */
        if (app_compare_command(a, a->chat_input + sizeof cmd - 1, &err)) {
            app_notify(a, 1, "%s", err.msg);
            return;
        }
        if (a->n_compare)
            app_notify(a, 0, "the chat compares the base model with %d edit set%s (:compare "
                             "alone ends it)", a->n_compare, a->n_compare > 1 ? "s" : "");
        else
            app_notify(a, 0, "the chat compares the base model with the current edits");
        a->chat_len = 0;
        a->chat_input[0] = '\0';
        return;
    }
    if (app_chat(a, a->chat_input, &err)) {
        app_notify(a, 1, "%s", err.msg);
        return;
    }
    a->chat_len = 0;
    a->chat_input[0] = '\0';
}

int pane_chat_key(tui_app *a, tui_key k) {
    if (k.is_key) {
        switch (k.code) {
        case KEY_PPAGE: a->chat_scroll += 5; return 1;
        case KEY_NPAGE: a->chat_scroll = a->chat_scroll > 5 ? a->chat_scroll - 5 : 0; return 1;
        case KEY_UP: /* recall the last prompt */
            if (!a->chat_len && a->session.n_chat) {
                snprintf(a->chat_input, sizeof a->chat_input, "%s",
                         a->session.chat[a->session.n_chat - 1].prompt);
                a->chat_len = strlen(a->chat_input);
            }
            return 1;
        case KEY_ENTER: send_prompt(a); return 1;
        case KEY_BACKSPACE: break;
        default: return 0;
        }
    }
    if (!k.is_key && (k.code == '\r' || k.code == '\n')) {
        send_prompt(a);
        return 1;
    }
    if ((k.is_key && k.code == KEY_BACKSPACE) || (!k.is_key && (k.code == 127 || k.code == 8))) {
        while (a->chat_len > 0) {
            a->chat_len--;
            if (((unsigned char)a->chat_input[a->chat_len] & 0xC0) != 0x80) break;
        }
        return 1;
    }
    if (!k.is_key && k.code == 21) { /* Ctrl-U */
        a->chat_len = 0;
        return 1;
    }
    if (!k.is_key && k.code >= 32 && k.code != 127) {
        char mb[8];
        int n = (int)wctomb(mb, (wchar_t)k.code);
        if (n > 0 && a->chat_len + (size_t)n < sizeof a->chat_input - 1) {
            memcpy(a->chat_input + a->chat_len, mb, (size_t)n);
            a->chat_len += (size_t)n;
        }
        return 1;
    }
    return 0;
}
