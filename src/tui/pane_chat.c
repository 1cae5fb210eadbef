/* The chat pane: one prompt, two answers side by side — the base model (left) and the
 * edited model at strength α (right), or two runs compared (wb.compare: each column titled
 * with its run) — streamed as the worker writes them; the session's transcript above,
 * scrollable; the prompt line at the bottom. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "redit/buf.h"
#include "textwrap.h"

/* One screen row of the transcript: a full-width line (prompt, header) or two columns. */
typedef struct vrow {
    int kind; /* ROW_PROMPT, ROW_HEADER, ROW_ANSWERS, ROW_BLANK */
    const char *left;
    size_t left_len;
    const char *right;
    size_t right_len;
    double strength; /* ROW_HEADER: α of the edited answer; NAN when there is none */
    size_t block;    /* ROW_ANSWERS: the turn's answers (vrows.blocks) */
} vrow;

enum { ROW_PROMPT, ROW_HEADER, ROW_ANSWERS, ROW_BLANK };

/* The two answers of a turn: rows [start, start + rows) of the transcript, each column's
 * wrapped lines (text[side] + span[side][i]). */
typedef struct answer_block {
    size_t start, rows;
    const char *text[2];
    tui_span *span[2];
    size_t n[2];
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

/* left, right: the columns' titles ("" for base / edited). */
static void add_turn(vrows *rs, const char *prompt, const char *base, const char *edited,
                     double strength, int col_w, int full_w, int has_edited, const char *left,
                     const char *right) {
    size_t np;
    tui_span *ps = wrap(prompt, full_w - 5, &np);
    for (size_t i = 0; i < np; i++)
        push_row(rs, (vrow){ROW_PROMPT, prompt + ps[i].start, ps[i].len, i == 0 ? "you: " : "     ", 5, NAN, 0});
    free(ps);
    push_row(rs, (vrow){ROW_HEADER, left[0] ? left : "base", strlen(left[0] ? left : "base"),
                        right[0] ? right : "edited", strlen(right[0] ? right : "edited"),
                        has_edited ? strength : NAN, 0});
    answer_block b = {.start = rs->n, .text = {base, edited}};
    b.span[0] = wrap(base, col_w, &b.n[0]);
    b.span[1] = wrap(edited, col_w, &b.n[1]);
    b.rows = b.n[0] > b.n[1] ? b.n[0] : b.n[1];
    if (rd_array_reserve(&rs->blocks, &rs->cap_blocks, rs->n_blocks + 1, sizeof *rs->blocks)) {
        free(b.span[0]);
        free(b.span[1]);
        return;
    }
    for (size_t i = 0; i < b.rows; i++)
        push_row(rs, (vrow){ROW_ANSWERS, "", 0, "", 0, NAN, rs->n_blocks});
    rs->blocks[rs->n_blocks++] = b;
    push_row(rs, (vrow){ROW_BLANK, "", 0, "", 0, NAN, 0});
}

/* The line of column side shown on transcript row `row` of block b when the view starts at
 * row `first`; -1 for none. A column shorter than its neighbour slides down with the view
 * while the top of the answers is scrolled away (as far as the bottom of the longer one), so
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

/* Draws column side of answer row `row` at (y, x), w columns wide. */
static void draw_answer(const vrows *rs, const vrow *v, int side, size_t row, size_t first, int y,
                        int x, int w) {
    const answer_block *b = &rs->blocks[v->block];
    long i = block_line(b, side, row, first);
    if (i < 0) return;
    const tui_span *sp = &b->span[side][i];
    draw_span(y, x, w, b->text[side] + sp->start, sp->len, 0);
}

void pane_chat_draw(tui_app *a, tui_rect r) {
    int focused = a->focus == PANE_CHAT;
    char right[80];
    snprintf(right, sizeof right, "α=%.2g  F7/F8", a->session.config.strength);
    char title[160];
    if (a->compare_edits[0])
        snprintf(title, sizeof title, "Chat: run #%d | run #%d (wb.compare() ends)",
                 a->compare_run[0], a->compare_run[1]);
    else
        snprintf(title, sizeof title, "Chat: base | edited");
    draw_title(r, title, right, focused);
    int hist_h = r.h - 2;
    int col_w = (r.w - 3) / 2;
    vrows rs = {0};
    /* The transcript; its strings stay alive while the session is not changed (drawing). */
    for (size_t i = 0; i < a->session.n_chat; i++) {
        const tui_chat_turn *t = &a->session.chat[i];
        add_turn(&rs, t->prompt, t->base, t->edited, t->strength, col_w, r.w,
                 t->edited[0] != 0 || a->edits, t->left, t->right);
    }
    if (a->chatting)
        add_turn(&rs, a->chat_prompt, app_answer(a, 0), app_answer(a, 1),
                 a->session.config.strength, col_w, r.w, 1,
                 a->answer_title[0], a->answer_title[1]);
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
            draw_text(y, r.x + 1, 5, v->right, A_BOLD);
            draw_span(y, r.x + 6, r.w - 7, v->left, v->left_len, A_BOLD);
            break;
        case ROW_HEADER:
            draw_span(y, r.x + 1, col_w, v->left, v->left_len,
                      (has_colors() ? COLOR_PAIR(PAIR_BASE) : 0) | A_UNDERLINE);
            if (!isnan(v->strength)) {
                char hdr[120];
                size_t tl = v->right_len; /* the title is cut so that α stays in view */
                const size_t room = col_w > 10 ? (size_t)col_w - 9 : 1;
                if (tl > room) {
                    tl = room;
                    while (tl > 0 && ((unsigned char)v->right[tl] & 0xC0) == 0x80) tl--;
                }
                snprintf(hdr, sizeof hdr, "%.*s  α=%.2g", (int)tl, v->right, v->strength);
                draw_text(y, r.x + 2 + col_w + 1, col_w, hdr,
                          (has_colors() ? COLOR_PAIR(PAIR_EDITED) : 0) | A_UNDERLINE);
            }
            break;
        case ROW_ANSWERS:
            draw_answer(&rs, v, 0, (size_t)(first + i), (size_t)first, y, r.x + 1, col_w);
            draw_text(y, r.x + 1 + col_w, 1, a->utf8 ? "│" : "|", has_colors() ? COLOR_PAIR(PAIR_DIM) : 0);
            draw_answer(&rs, v, 1, (size_t)(first + i), (size_t)first, y, r.x + 2 + col_w + 1, col_w);
            break;
        default: break;
        }
    }
    free(rs.v);
    for (size_t i = 0; i < rs.n_blocks; i++) {
        free(rs.blocks[i].span[0]);
        free(rs.blocks[i].span[1]);
    }
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
