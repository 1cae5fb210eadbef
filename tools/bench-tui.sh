#!/bin/sh
# Training throughput under the workbench against `redit train` on the same job (the TUI
# issue asks for no more than 10 % loss). Runs each twice, alternating, on a stories15M-shaped
# model (random weights, the Llama-2 tokenizer) with 160 generated instruction examples of
# ~200 tokens: RED on ffn, all layers, batch 8, max length 256, one epoch (20 steps),
# 2 threads. Both report the trainer's own tokens/s (rd_train_result.tokens_per_s).
#   usage: sh tools/bench-tui.sh [BUILD]      (needs tmux and ../shared/fixtures)
set -eu
BUILD=${1:-build}
REDIT="$(pwd)/$BUILD/redit"
TOK=../shared/fixtures/llama2-tokenizer/tokenizer.bin
TMP=$(mktemp -d)
SOCK="redit-bench-$$"
trap 'tmux -L "$SOCK" kill-server 2>/dev/null; rm -rf "$TMP"' EXIT
[ -f "$TOK" ] || { echo "bench-tui: $TOK is missing" >&2; exit 1; }

"$REDIT" make-model --shape stories15M --type F32 --tokenizer "$TOK" -o "$TMP/m.gguf" >/dev/null
/usr/bin/python3 - "$TMP/data.jsonl" <<'PY'
import json, random, sys
random.seed(1)
words = "the cat sat on a mat while birds sang over hills and rivers under bright skies".split()
with open(sys.argv[1], "w") as f:
    for i in range(160):
        ins = " ".join(random.choice(words) for _ in range(60))
        out = " ".join(random.choice(words) for _ in range(120))
        f.write(json.dumps({"instruction": ins, "output": out}) + "\n")
PY

cli_rate() {
    "$REDIT" train -m "$TMP/m.gguf" -d "$TMP/data.jsonl" -o "$TMP/e.safetensors" --epochs 1 \
        --batch 8 --micro-batch 8 --max-len 256 --threads 2 --compute auto 2>&1 |
        sed -n 's/.* · \([0-9.]*\) tokens\/s.*/\1/p' | tail -n 1
}

tui_rate() {
    rm -rf "$TMP/sessions"
    tmux -L "$SOCK" new-session -d -s b -x 100 -y 30 \
        "cd '$TMP' && LANG=C.UTF-8 REDIT_HISTORY= '$REDIT' tui -m m.gguf --train data.jsonl \
         --sessions sessions --session bench --threads 2; sleep 30"
    until tmux -L "$SOCK" capture-pane -p -t b | grep -q "Configuration"; do sleep 0.2; done
    tmux -L "$SOCK" send-keys -t b F5 "wb.set{epochs = 1, batch = 8, micro_batch = 8, max_len = 256, compute = 'auto'}" Enter F6
    until tmux -L "$SOCK" capture-pane -p -t b | grep -q "done: "; do sleep 0.2; done
    tmux -L "$SOCK" send-keys -t b F10
    until [ -f "$TMP/sessions/bench/session.json" ] &&
        tmux -L "$SOCK" capture-pane -p -t b | grep -q "session saved"; do sleep 0.2; done
    tmux -L "$SOCK" kill-server
    /usr/bin/python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["runs"][0]["tokens_per_s"]))' \
        "$TMP/sessions/bench/session.json"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
total_cli=0
total_tui=0
for i in 1 2; do
    c=$(cli_rate)
    t=$(tui_rate)
    echo "round $i: redit train $c tok/s, workbench $t tok/s"
    total_cli=$(/usr/bin/python3 -c "print($total_cli + $c)")
    total_tui=$(/usr/bin/python3 -c "print($total_tui + $t)")
done
/usr/bin/python3 -c "print('mean: redit train %.0f tok/s, workbench %.0f tok/s, ratio %.3f' % ($total_cli / 2, $total_tui / 2, $total_tui / $total_cli))"
