#!/bin/sh
# make bench-mpi: data-parallel RED training on localhost, 1 rank × 2 threads against
# 2 ranks × 1 thread (mpirun), on the stories110M shape (random F32 weights, RED on the ffn
# output of all 12 layers), batch 8 in micro-batches of 4 (one per rank), 128-token rows of
# datasets/sotu-obama. Alternating runs (A B A B …), medians: tokens/s, step time, bytes
# exchanged per step, seconds in the exchange per step and the wait for the slower rank
# (rank 0's side). docs/cluster.md reads these figures into its model of N machines.
set -eu
BUILD=${BUILD:-build}
REDIT=$BUILD/redit
ROUNDS=${BENCH_ROUNDS:-3}
STEPS=${BENCH_MPI_STEPS:-3}
DIR=$BUILD/bench
TOK=${BENCH_TOKENIZER:-../shared/fixtures/llama2-tokenizer/tokenizer.bin}
command -v mpirun >/dev/null 2>&1 || { echo "bench-mpi: mpirun is missing (apt-get install openmpi-bin libopenmpi-dev)"; exit 1; }
[ -f "$TOK" ] || { echo "bench-mpi: a llama2.c tokenizer.bin is needed (BENCH_TOKENIZER=…)"; exit 1; }
mkdir -p "$DIR"
M=$DIR/mpi-stories110M-f32.gguf
[ -f "$M" ] || "$REDIT" make-model --shape stories110M --type F32 --tokenizer "$TOK" -o "$M" >/dev/null
MPI="mpirun --allow-run-as-root --oversubscribe --bind-to none"
C="-m $M -d datasets/sotu-obama/train.txt --max-len 128 --sites ffn --layers all
   --batch 8 --micro-batch 4 --max-steps $STEPS --lr 0.01 --json -o $DIR/mpi-bench.safetensors"
: >"$DIR/mpi-bench.txt"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    # shellcheck disable=SC2086
    "$REDIT" train $C -t 2 2>/dev/null | tr -d '\n' | sed 's/^/1x2 /;s/$/\n/' >>"$DIR/mpi-bench.txt"
    # shellcheck disable=SC2086
    $MPI -np 2 "$REDIT" train $C -t 1 2>/dev/null | tr -d '\n' | sed 's/^/2x1 /;s/$/\n/' >>"$DIR/mpi-bench.txt"
    # shellcheck disable=SC2086
    "$REDIT" train $C -t 1 2>/dev/null | tr -d '\n' | sed 's/^/1x1 /;s/$/\n/' >>"$DIR/mpi-bench.txt"
    r=$((r + 1))
done
python3 - "$DIR/mpi-bench.txt" "$STEPS" <<'PY'
import json, statistics, sys
rows = {"1x2": [], "2x1": [], "1x1": []}
for line in open(sys.argv[1]):
    kind, js = line.split(" ", 1)
    rows[kind].append(json.loads(js))
steps = int(sys.argv[2])
med = lambda xs: statistics.median(xs)
print(f"RED ffn all layers, stories110M shape F32, batch 8 × 128 tokens, {steps} steps, {len(rows['1x2'])} alternating rounds (medians)")
for kind, label in (("1x2", "1 rank x 2 threads"), ("2x1", "2 ranks x 1 thread"), ("1x1", "1 rank x 1 thread")):
    r = rows[kind]
    tps = med([x["tokens_per_s"] for x in r])
    st = med([x["tokens"] / x["tokens_per_s"] / x["steps"] for x in r])
    line = f"{label:20s} {tps:8.1f} tok/s  {st:6.3f} s/step"
    if kind == "2x1":
        b = med([x["exchange_bytes"] / x["steps"] for x in r])
        s = med([x["exchange_seconds"] / x["steps"] for x in r])
        w = med([x["wait_seconds"] / x["steps"] for x in r])
        line += f"  exchange {b/1e3:.1f} kB/step in {1e3*s:.2f} ms/step ({100*s/st:.2f} % of the step); waiting for the slower rank {1e3*w:.1f} ms/step (rank 0)"
    print(line)
ratio = med([x["tokens_per_s"] for x in rows["2x1"]]) / med([x["tokens_per_s"] for x in rows["1x2"]])
print(f"2x1 / 1x2 throughput: {ratio:.3f} (target >= 0.9)")
# the step-time model (docs/cluster.md): T(N) = ceil(P/N) t_part + T_x(N); t_part from the
# 1 x 1 run (P = 2 parts a step), T_x(2) as measured
st = lambda k: med([x["tokens"] / x["tokens_per_s"] / x["steps"] for x in rows[k]])
t_part = st("1x1") / 2
tx = med([x["exchange_seconds"] / x["steps"] for x in rows["2x1"]])
print(f"model: t_part = {t_part:.3f} s (1 x 1 step / 2); predicted 2-rank step {t_part + tx:.3f} s, "
      f"measured {st('2x1'):.3f} s ({100 * (st('2x1') / (t_part + tx) - 1):+.1f} %)")
PY
