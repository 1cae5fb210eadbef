#!/usr/bin/env python3
"""Helpers for tests/reference/check.sh (run with /usr/bin/python3; numpy only).

  reference.py edits MODEL_DIM N_LAYERS SEED OUT.safetensors
      writes random RED vectors for both sites of every layer (s ~ 1 + 0.2 N, b ~ 0.2 N) as a
      redit edit file (its metadata, with a placeholder fingerprint: load it with --force)
  reference.py compare OURS.f32 REF.f32 REL_TOL WHAT
      max |ours - ref| <= REL_TOL * max(1, |ref|) per value (logits) -> exit 0, else 1
  reference.py compare-scaled OURS.f32 REF.f32 REL_TOL WHAT
      max |ours - ref| <= REL_TOL * max |ref| (gradients) -> exit 0, else 1
"""
import json, struct, sys
import numpy as np


def write_edits(dim, layers, seed, out):
    rng = np.random.default_rng(seed)
    tensors, blobs, off = {}, [], 0
    for l in range(layers):
        for site in ("attn", "ffn"):
            for kind in ("scale", "bias"):
                v = (1.0 if kind == "scale" else 0.0) + 0.2 * rng.standard_normal(dim)
                b = v.astype("<f4").tobytes()
                tensors[f"layers.{l}.{site}.{kind}"] = {"dtype": "F32", "shape": [dim],
                                                        "data_offsets": [off, off + len(b)]}
                blobs.append(b)
                off += len(b)
    meta = {"format": "redit-red", "version": "1", "base_model": "reference",
            "base_fingerprint": "0000000000000000", "sites": "both", "layers": "all",
            "dim": str(dim), "n_layers": str(layers), "scale": "true", "bias": "true"}
    header = json.dumps({"__metadata__": meta, **tensors}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + b"".join(blobs))


def compare(ours, ref, tol, what, scaled):
    a = np.fromfile(ours, dtype="<f4").astype(np.float64)
    b = np.fromfile(ref, dtype="<f4").astype(np.float64)
    if a.shape != b.shape:
        print(f"{what}: {a.size} values from redit, {b.size} from the reference")
        return 1
    diff = np.abs(a - b)
    if scaled:
        worst = diff.max() / max(np.abs(b).max(), 1e-30)
    else:
        worst = (diff / np.maximum(1.0, np.abs(b))).max()
    ok = worst <= tol
    print(f"{what}: {a.size} values, worst relative difference {worst:.2e} "
          f"(tolerance {tol:g}) {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "edits":
        write_edits(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif cmd in ("compare", "compare-scaled"):
        sys.exit(compare(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5],
                         cmd == "compare-scaled"))
    else:
        sys.exit(__doc__)
