"""Writes a randomly initialised Llama model as a llama2.c (legacy v0) checkpoint, the start
of the default model's pretraining (`redit train --full` then trains every weight).

usage: init_model.py OUT.bin [--dim 256] [--hidden 768] [--layers 6] [--heads 8]
                     [--kv-heads 8] [--vocab 4096] [--seq 256] [--tied] [--seed 1234]

The initialisation is llama2.c's (model.py, GPT-2's): every matrix and the embedding
N(0, 0.02²), the residual-stream outputs (attention wo, FFN w2) N(0, (0.02/√(2·layers))²),
norm weights 1. Untied classifier by default (negative vocab size in the header, as
llama2.c writes it). The file: 7 int32 (dim, hidden, layers, heads, kv heads, ±vocab,
seq_len), then float32 embedding, attention norms, wq, wk, wv, wo, FFN norms, w1, w2, w3,
final norm, the legacy RoPE tables (cos, sin) and the classifier. Standard library only;
the same seed gives the same bytes.

Why not `redit make-model`: it knows only the named shapes llama2-7b, stories110M and
stories15M (vocab 32000), and its values are for throughput tests (embedding std 0.3,
matrices 1/√fan-in, norms 1 + 0.1·noise), not a pretraining start.
"""

import argparse
import array
import math
import random
import struct
import sys


def gaussian_block(rng, n, std):
    a = array.array("f", (rng.gauss(0.0, std) for _ in range(n)))
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def ones(n):
    a = array.array("f", [1.0]) * n
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def rope_tables(seq, head_dim):
    cos, sin = array.array("f"), array.array("f")
    for t in range(seq):
        for i in range(head_dim // 2):
            angle = t / (10000.0 ** (2 * i / head_dim))
            cos.append(math.cos(angle))
            sin.append(math.sin(angle))
    if sys.byteorder != "little":
        cos.byteswap()
        sin.byteswap()
    return cos.tobytes() + sin.tobytes()


def main():
    ap = argparse.ArgumentParser(description="random llama2.c checkpoint")
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    if a.dim % a.heads or a.heads % a.kv_heads or (a.dim // a.heads) % 2:
        raise SystemExit("init_model: dim must divide into heads of even size, heads into kv heads")
    rng = random.Random(a.seed)
    d, h, L, hd = a.dim, a.hidden, a.layers, a.dim // a.heads
    kv = a.kv_heads * hd
    std, out_std = 0.02, 0.02 / math.sqrt(2 * L)
    n_params = 0
    with open(a.out, "wb") as f:
        f.write(struct.pack("<7i", d, h, L, a.heads, a.kv_heads,
                            a.vocab if a.tied else -a.vocab, a.seq))

        def put(blob):
            nonlocal n_params
            f.write(blob)
            n_params += len(blob) // 4

        put(gaussian_block(rng, a.vocab * d, std))          # token embedding (vocab, dim)
        put(ones(L * d))                                     # attention norms (layer, dim)
        put(gaussian_block(rng, L * d * d, std))             # wq (layer, dim, dim)
        put(gaussian_block(rng, L * kv * d, std))            # wk (layer, kv_dim, dim)
        put(gaussian_block(rng, L * kv * d, std))            # wv (layer, kv_dim, dim)
        put(gaussian_block(rng, L * d * d, out_std))         # wo (layer, dim, dim)
        put(ones(L * d))                                     # FFN norms (layer, dim)
        put(gaussian_block(rng, L * h * d, std))             # w1 (layer, hidden, dim)
        put(gaussian_block(rng, L * d * h, out_std))         # w2 (layer, dim, hidden)
        put(gaussian_block(rng, L * h * d, std))             # w3 (layer, hidden, dim)
        put(ones(d))                                         # final norm (dim)
        f.write(rope_tables(a.seq, hd))                      # legacy freq_cis (seq, hd/2) x2
        if not a.tied:
            put(gaussian_block(rng, a.vocab * d, std))      # classifier (vocab, dim)
    print("init_model: wrote %s (dim %d, hidden %d, %d layers, %d heads, %d kv heads, vocab %d, "
          "seq %d, %s classifier: %d parameters)" % (a.out, d, h, L, a.heads, a.kv_heads,
                                                      a.vocab, a.seq,
                                                      "tied" if a.tied else "untied", n_params))


if __name__ == "__main__":
    main()
