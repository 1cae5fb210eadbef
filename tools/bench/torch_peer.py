#!/usr/bin/env python3
"""PyTorch peer for `redit bench`: throughput of the jobs redit measures, on a Llama model.

usage: torch_peer.py MODEL.bin --mode fwd|fwd-bf16|red|red-bf16|full|full-bf16
                     [--threads 2] [--B 8] [--T 256] [--iters 3]

Reads the shape (dim, hidden, layers, heads, kv heads, vocab, tied) from the llama2.c header of
MODEL.bin and times, on random tokens:
  fwd   the forward pass with the logits of every position (inference mode);
  red   one RED training step's compute: forward with a scale s and bias b per layer on the
        ffn output (x + s*ffn(x) + b; the base weights frozen), cross-entropy on every
        position, backward to s and b;
  full  one full fine-tuning step's compute: forward, cross-entropy, backward through every
        weight.
The optimizer update is left out of red and full, as `redit bench` leaves it out of redit's.
The `-bf16` modes run the same step under torch.autocast(bfloat16) (bf16 matrix products, f32
master weights and loss): the counterpart of redit's --compute bf16. A bf16 row is compared
with a bf16 row and an f32 row with an f32 row, never across.
The weights are freshly initialised: throughput depends on the shape only. Prints one JSON
line: {"tok_s": ..., "peak_rss_mb": ...}. Debian's /usr/bin/python3 with python3-torch. The
architecture is llama2.c's: RMSNorm (eps 1e-5), RoPE on adjacent pairs, grouped-query
attention, SwiGLU.
"""
import argparse
import json
import math
import resource
import struct
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, dim, hidden, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.hs = heads, kv_heads, dim // heads
        kv = kv_heads * self.hs
        self.attn_norm = torch.nn.Parameter(torch.ones(dim))
        self.ffn_norm = torch.nn.Parameter(torch.ones(dim))
        self.wq = torch.nn.Linear(dim, dim, bias=False)
        self.wk = torch.nn.Linear(dim, kv, bias=False)
        self.wv = torch.nn.Linear(dim, kv, bias=False)
        self.wo = torch.nn.Linear(dim, dim, bias=False)
        self.w1 = torch.nn.Linear(dim, hidden, bias=False)
        self.w2 = torch.nn.Linear(hidden, dim, bias=False)
        self.w3 = torch.nn.Linear(dim, hidden, bias=False)
        self.red = None  # (s, b) of the RED edit on the ffn output, when set

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = rmsnorm(x, self.attn_norm)
        q = rope(self.wq(h).view(B, T, self.heads, self.hs), cos, sin).transpose(1, 2)
        k = rope(self.wk(h).view(B, T, self.kv_heads, self.hs), cos, sin).transpose(1, 2)
        v = self.wv(h).view(B, T, self.kv_heads, self.hs).transpose(1, 2)
        g = self.heads // self.kv_heads
        if g > 1:
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hs) + mask
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.wo(o)
        h = rmsnorm(x, self.ffn_norm)
        f = self.w2(F.silu(self.w1(h)) * self.w3(h))
        if self.red is not None:
            f = self.red[0] * f + self.red[1]
        return x + f


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def rope(x, cos, sin):
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)


class Llama(torch.nn.Module):
    def __init__(self, dim, hidden, layers, heads, kv_heads, vocab, tied):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.blocks = torch.nn.ModuleList(Block(dim, hidden, heads, kv_heads) for _ in range(layers))
        self.norm = torch.nn.Parameter(torch.ones(dim))
        self.out = torch.nn.Linear(dim, vocab, bias=False)
        if tied:
            self.out.weight = self.emb.weight
        self.hs = dim // heads

    def forward(self, ids):
        T = ids.shape[1]
        f = 1.0 / (10000.0 ** (torch.arange(0, self.hs, 2).float() / self.hs))
        ang = torch.outer(torch.arange(T).float(), f)
        cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.emb(ids)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        return self.out(rmsnorm(x, self.norm))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--mode", choices=["fwd", "fwd-bf16", "red", "red-bf16", "full", "full-bf16"],
                    default="full")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--T", type=int, default=256)
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.model, "rb") as f:
        dim, hidden, layers, heads, kv_heads, vocab, _ = struct.unpack("<7i", f.read(28))
    m = Llama(dim, hidden, layers, heads, kv_heads, abs(vocab), vocab > 0)
    ids = torch.randint(0, abs(vocab), (a.B, a.T + 1))
    job, bf16 = a.mode.split("-")[0], a.mode.endswith("-bf16")
    if job == "red":
        m.requires_grad_(False)
        for blk in m.blocks:
            blk.red = (torch.nn.Parameter(torch.ones(dim)), torch.nn.Parameter(torch.zeros(dim)))

    def step():
        if job == "fwd":
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                m(ids[:, :-1])
            return
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = m(ids[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, abs(vocab)), ids[:, 1:].reshape(-1))
        loss.backward()
        m.zero_grad(set_to_none=True)
        for blk in m.blocks:
            if blk.red is not None:
                blk.red[0].grad = blk.red[1].grad = None

    step()  # warm-up: allocations
    t = time.perf_counter()
    for _ in range(a.iters):
        step()
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"tok_s": a.iters * a.B * a.T / dt, "peak_rss_mb": rss}))


if __name__ == "__main__":
    main()
