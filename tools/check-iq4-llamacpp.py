#!/usr/bin/python3
"""Cross-checks redit's IQ4_NL / IQ4_XS against llama.cpp (manual; not part of `make test`:
CI has no llama.cpp).

  tools/check-iq4-llamacpp.py LLAMA_CPP_DIR [MODEL.gguf]

MODEL (default models/redit-base.gguf; its rows must be whole blocks of 256) is quantised
by llama.cpp's build/bin/llama-quantize to IQ4_NL and IQ4_XS. Then, per type:
  dequantisation: every quantised tensor of llama.cpp's file widened by gguf-py's numpy
    dequantizer (gguf-py/gguf/quants.py) against the same tensor in the F32 file that
    `redit convert --type F32` writes from llama.cpp's file: elements that differ in their
    bits (expected 0);
  quantisation: `redit convert --type TYPE` of MODEL against llama-quantize's blocks, for the
    tensors both store in TYPE: blocks whose bytes differ.
Needs /usr/bin/python3 with numpy (Debian's python3-numpy)."""
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tensors(gguf, path):
    r = gguf.GGUFReader(path)
    return {t.name: t for t in r.tensors}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    lcpp = sys.argv[1]
    model = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "models/redit-base.gguf")
    sys.path.insert(0, os.path.join(lcpp, "gguf-py"))
    import gguf
    from gguf import quants

    quantize = os.path.join(lcpp, "build/bin/llama-quantize")
    redit = os.path.join(ROOT, "build/redit")
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for tname in ("IQ4_NL", "IQ4_XS"):
            qtype = gguf.GGMLQuantizationType[tname]
            lc = os.path.join(tmp, "lc.gguf")
            wide = os.path.join(tmp, "wide.gguf")
            rd = os.path.join(tmp, "rd.gguf")
            subprocess.run([quantize, model, lc, tname, "1"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for args in (["-m", lc, "--type", "F32", "-o", wide],
                         ["-m", model, "--type", tname, "-o", rd]):
                subprocess.run([redit, "convert"] + args, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            T_lc, T_wide, T_rd = tensors(gguf, lc), tensors(gguf, wide), tensors(gguf, rd)
            n_el = n_diff = n_t = 0
            worst = 0.0
            for name, t in T_lc.items():
                if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
                    continue
                ref = quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
                got = np.asarray(T_wide[name].data, dtype=np.float32).reshape(-1)
                n_t += 1
                n_el += ref.size
                n_diff += int(np.count_nonzero(ref.view(np.uint32) != got.view(np.uint32)))
                worst = max(worst, float(np.max(np.abs(ref - got))))
            print(f"{tname} dequantisation: {n_t} quantised tensors, {n_el} elements, "
                  f"{n_diff} differ in their bits from gguf-py's (max |diff| {worst:g})")
            bad += n_diff
            blocks = differ = same_t = 0
            bb = gguf.GGML_QUANT_SIZES[qtype][1]
            for name, t in T_lc.items():
                if t.tensor_type != qtype or T_rd[name].tensor_type != qtype:
                    continue
                a = np.asarray(t.data, dtype=np.uint8).reshape(-1, bb)
                b = np.asarray(T_rd[name].data, dtype=np.uint8).reshape(-1, bb)
                same_t += 1
                blocks += a.shape[0]
                differ += int(np.count_nonzero(np.any(a != b, axis=1)))
            print(f"{tname} quantisation: {same_t} tensors in {tname} in both files, {blocks} "
                  f"blocks, {differ} differ from llama-quantize's bytes")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
