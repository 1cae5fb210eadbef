#!/bin/sh
# The lua/ library and the example scripts: red.grid's statistics and tables checked against
# hand-computed values, and every lua/examples script run in quick mode (3 steps per run) on
# the demo model, writing its tables — so the examples cannot rot.
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/cli/common.inc

cat >"$TMP/grid_check.lua" <<'LUA'
local grid = require("red.grid")
local m, s = grid.mean_std({1, 2, 3, 4})
assert(math.abs(m - 2.5) < 1e-12, "mean")
assert(math.abs(s - math.sqrt(5 / 3)) < 1e-12, "sample std")
local one_m, one_s = grid.mean_std({7})
assert(one_m == 7 and one_s == 0, "one value")
local calls = 0
local r = grid.run{
  variants = {{name = "a", k = 1}, {name = "b", k = 3}},
  seeds = {1, 2},
  run = function(v, seed) calls = calls + 1; return {x = v.k * seed, y = 10} end,
}
assert(calls == 4, "every variant × seed runs once")
assert(r.metrics[1] == "x" and r.metrics[2] == "y", "metric columns, sorted")
assert(r.rows[2].mean.x == 4.5, "mean of 3 and 6")
local md = grid.markdown(r)
assert(md:find("| b | 4.5000 ± 2.1213 | 10 ± 0 |", 1, true), md)
r.fixed = {y = true} -- the same in every run: shown once
assert(grid.markdown(r):find("| b | 4.5000 ± 2.1213 | 10 |", 1, true), grid.markdown(r))
r.fixed = {x = true} -- (only when it is: x varies, so it keeps its spread)
assert(grid.markdown(r):find("| b | 4.5000 ± 2.1213 | 10 ± 0 |", 1, true), grid.markdown(r))
local csv = grid.csv(r)
assert(csv:find("variant,seed,x,y\na,1,1,10\na,2,2,10\nb,1,3,10\nb,2,6,10\n", 1, true), csv)
local sweep = require("red.sweep")
local sr = sweep.lr{lrs = {0.1, 0.01}, run = function(lr) return {loss = lr} end}
assert(sweep.best(sr, "loss") == 0.01, "the lowest loss wins")
print("lua library ok")
LUA
expect_ok "grid and sweep" "$REDIT" run "$TMP/grid_check.lua"
grep -q "lua library ok" "$TMP/out" || fail "the library check printed nothing"

expect_ok "demo model" "$REDIT" demo --dir "$TMP"
for ex in ablation_vectors ablation_sites red_vs_ft chat_compare; do
    expect_ok "example $ex" env REDIT_QUICK=1 "$REDIT" run "lua/examples/$ex.lua" \
        "$TMP/random-demo.gguf" --out "$TMP" --group-by-length --compute auto
    [ -s "$TMP/$ex.md" ] || fail "$ex wrote no $TMP/$ex.md"
    # progress while it runs (stderr): a line per group of steps with the loss and the time
    expect_grep "$ex progress" "$TMP/err" ': step [0-9]+/[0-9]+  loss [0-9]+\.[0-9]{4}  [0-9]+\.[0-9] s$'
done
# one number format a column: losses %.4f, counts whole, seconds %.1f
[ "$(grep -Ec '^\| (ffn|attn|both) \| [0-9]+\.[0-9]{4} \| [0-9]+ \|$' "$TMP/ablation_sites.md")" -eq 3 ] ||
    fail "ablation_sites table formats: $(cat "$TMP/ablation_sites.md")"
[ "$(grep -Ec '^\| [^|]+ \| [0-9]+\.[0-9]{4} \| [0-9]+ \| [0-9]+ \|$' "$TMP/ablation_vectors.md")" -eq 3 ] ||
    fail "ablation_vectors table formats: $(cat "$TMP/ablation_vectors.md")"
[ "$(grep -Ec '^\| [^|]+ \| [0-9]+ \| [0-9]+ \| [0-9]+\.[0-9]{4} \| [0-9]+\.[0-9] \|$' "$TMP/red_vs_ft.md")" -eq 2 ] ||
    fail "red_vs_ft table formats: $(cat "$TMP/red_vs_ft.md")"
grep -q "bias only" "$TMP/ablation_vectors.md" || fail "ablation_vectors table lacks its variants"
grep -q "| both |" "$TMP/ablation_sites.md" || fail "ablation_sites table lacks 'both'"
grep -q "full fine-tuning" "$TMP/red_vs_ft.md" || fail "red_vs_ft table lacks full fine-tuning"
# methods.lua (the paper's Table 5): a tiny configuration — quick mode (3 steps a run, one
# seed) on 24 training and 12 held-out examples of each bundled task — every method's row
# with its trained numbers, ratio, score and seconds, on both tasks
expect_ok "example methods" env REDIT_QUICK=1 "$REDIT" run lua/examples/methods.lua \
    "$TMP/random-demo.gguf" --out "$TMP" --n-train 24 --n-eval 12 --compute auto
[ -s "$TMP/methods.md" ] || fail "methods.lua wrote no $TMP/methods.md"
for t in define-words spam-ham; do
    [ -s "$TMP/methods_$t.csv" ] || fail "methods.lua wrote no methods_$t.csv"
    grep -q "^$t (held-out " "$TMP/methods.md" || fail "methods.md lacks the $t table: $(cat "$TMP/methods.md")"
done
expect_grep "methods progress" "$TMP/err" ': step [0-9]+/[0-9]+  loss [0-9]+\.[0-9]{4}  [0-9]+\.[0-9] s$'
expect_grep "methods run lines" "$TMP/err" '^spam-ham, IA3 seed 1: held-out accuracy [0-9.]+ '
# per task: RED ffn and both, LoRA r=1 and r=8, IA3, full fine-tuning — params, ratio, score, s
for row in 'RED \(ffn\)' 'RED \(both\)' 'LoRA r=1 \(q,v\)' 'LoRA r=8 \(q,v\)' 'IA3' 'full fine-tuning'; do
    [ "$(grep -Ec "^\| $row \| [0-9]+ \| [0-9]+ \| [0-9]+\.[0-9]{4} \| [0-9]+\.[0-9] \|$" "$TMP/methods.md")" -eq 2 ] ||
        fail "methods.md: no row /$row/ in both tables: $(cat "$TMP/methods.md")"
done
grep -Eq '^\| full fine-tuning \| [0-9]+ \| 1 \|' "$TMP/methods.md" || fail "full fine-tuning's ratio is not 1"
expect_fail "methods.lua --only matching nothing" "no variant's name contains it" env REDIT_QUICK=1 \
    "$REDIT" run lua/examples/methods.lua "$TMP/random-demo.gguf" --out "$TMP" --only nothing
expect_fail "example without a model" "no model given" "$REDIT" run lua/examples/ablation_sites.lua
# a results folder that cannot be written fails before any run, naming the folder
expect_fail "example with a missing --out" "$TMP/none: cannot write there" env REDIT_QUICK=1 \
    "$REDIT" run lua/examples/ablation_sites.lua "$TMP/random-demo.gguf" --out "$TMP/none"
grep -q "step" "$TMP/err" && fail "the example trained before checking --out: $(cat "$TMP/err")"
echo "tests/cli/lua_examples.sh: ok"
