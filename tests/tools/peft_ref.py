#!/usr/bin/env python3
"""Independent PyTorch reference for LoRA and IA3 edits (issue 21), from PEFT's formulas.

Written from PEFT's definitions, not from redit's code.  The base model (llama2.c legacy .bin),
its loader, RMSNorm, RoPE and attention come from ../shared/tools/torch_ref/llama_red_ref.py
(itself checked against llama2.c's run.c); this file adds the two methods:

  LoRA (peft.tuners.lora.Linear, unmerged):  h = W x + a * (lora_alpha / r) * B (A x)
        A (r, in), B (out, r), on each targeted projection q k v o gate up down
        (gate = w1, up = w3, down = w2), added to the projection's output before RoPE.
  IA3 (peft.tuners.ia3, Llama defaults: target k_proj v_proj down_proj, feedforward down_proj):
        k = s_k * (Wk x), v = s_v * (Wv x) (before RoPE), ffn = W2 (s_f * (silu(W1 x) * W3 x)),
        at strength a each vector is s' = 1 + a (s - 1).
  a is redit's edit strength (--strength); a = 0 is the base model.

Adapter files (the issue-21 design): safetensors, F32 (F16/BF16 also read), tensors
  layers.{l}.{q|k|v|o|gate|up|down}.lora_a  [r, in]     layers.{l}.{...}.lora_b  [out, r]
  layers.{l}.k.ia3 [kv_dim]   layers.{l}.v.ia3 [kv_dim]   layers.{l}.ffn.ia3 [hidden_dim]
in the model's own row order (no permutation: the reference uses the llama2.c matrices and
adjacent-pair RoPE as stored).  __metadata__ (string -> string, as redit's edit files) gives
method (red|lora|ia3), rank, lora_alpha, lora_targets (names separated by , space | or +;
"all"; or a bit mask q=1 k=2 v=4 o=8 gate=16 up=32 down=64) and layers ("all" or "0,2-4");
a key missing at the top level is also looked up in the "training" JSON; command-line
--method/--rank/--lora-alpha/--lora-targets override the file.  Every tensor must be one of
the above, with the model's shapes, and the set must be exactly targets x layers.

Run with Debian's Python (/usr/bin/python3, python3-torch, python3-numpy):
  peft_ref.py make-adapter MODEL.bin --method lora|ia3 [--rank R] [--lora-alpha A]
        [--lora-targets q,v|all] [--layers all|0,2-3] [--seed S] [--meta KEY=VALUE ...] -o F
      a random adapter (LoRA: A ~ U(-1/sqrt(in), 1/sqrt(in)) as PEFT's kaiming init, B ~ 0.2 N;
      IA3: 1 + 0.3 N), metadata as redit's edit files with a placeholder fingerprint (--force)
  peft_ref.py logits MODEL.bin [--adapter F] [--strength a ...] --ids "1 5 9" [--f64] -o OUT ...
      teacher-forced logits, float32 [n_ids, vocab], raw little-endian, one file per strength
  peft_ref.py self-check [-v] MODEL.bin [...]
      B = 0, IA3 = 1 and a = 0 give llama_red_ref.py's base logits bit for bit; unmerged LoRA and
      IA3 equal the merged weights (f64: 1e-10 per value; f32: 1e-5 of max |logit|); a full-rank
      LoRA on o/down equal to a RED scale gives llama_red_ref.py's RED logits (f64, 1e-10);
      f32 agrees with f64 (5e-5 per value); the file round trip keeps every tensor
  peft_ref.py compare OURS.f32 REF.f32 TOL WHAT
      max |ours - ref| <= TOL * max(1, |ref|) -> exit 0, else 1 (tests/reference/reference.py's rule)
"""
import argparse, json, math, os, re, struct, sys, tempfile
import numpy as np
import torch
import torch.nn.functional as F

_HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_REF = os.environ.get("REDIT_TORCH_REF",
                           os.path.join(_HERE, "..", "..", "..", "shared", "tools", "torch_ref"))
sys.dont_write_bytecode = True  # no __pycache__ in ../shared (read-only to the project)
sys.path.insert(0, os.path.abspath(TORCH_REF))
try:
    from llama_red_ref import load_llama2c, LlamaRED  # noqa: E402
except ImportError as ex:
    sys.exit(f"peft_ref.py: cannot import llama_red_ref from {TORCH_REF} ({ex}); "
             "set REDIT_TORCH_REF to the folder holding llama_red_ref.py")

PROJS = ("q", "k", "v", "o", "gate", "up", "down")
WKEY = {"q": "wq", "k": "wk", "v": "wv", "o": "wo", "gate": "w1", "up": "w3", "down": "w2"}
IA3_SITES = ("k", "v", "ffn")


# ---- the model's shapes ---------------------------------------------------------------

def proj_shape(cfg, p):
    """(out, in) of projection p."""
    d, h = cfg["dim"], cfg["hidden"]
    qd = d  # n_heads * head_size
    kvd = cfg["n_kv_heads"] * (d // cfg["n_heads"])
    return {"q": (qd, d), "k": (kvd, d), "v": (kvd, d), "o": (d, qd),
            "gate": (h, d), "up": (h, d), "down": (d, h)}[p]


def ia3_len(cfg, site):
    kvd = cfg["n_kv_heads"] * (cfg["dim"] // cfg["n_heads"])
    return cfg["hidden"] if site == "ffn" else kvd


def parse_layers(text, n_layers):
    text = (text or "all").strip()
    if text == "all":
        return list(range(n_layers))
    on = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"layer list {text!r}: {part!r} is not N or N-M")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if not (0 <= lo <= hi < n_layers):
            raise ValueError(f"layer list {text!r}: {part!r} is outside 0-{n_layers - 1}")
        on.update(range(lo, hi + 1))
    return sorted(on)


def parse_targets(text):
    text = str(text).strip().lower()
    if text == "all":
        return list(PROJS)
    if re.fullmatch(r"\d+", text):
        mask = int(text)
        if mask < 1 or mask >= 1 << len(PROJS):
            raise ValueError(f"lora_targets mask {mask} is not in 1-127")
        return [p for i, p in enumerate(PROJS) if mask >> i & 1]
    names = [w for w in re.split(r"[,\s|+]+", text) if w]
    alias = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate",
             "up_proj": "up", "down_proj": "down"}
    names = [alias.get(w, w) for w in names]
    bad = [w for w in names if w not in PROJS]
    if bad or not names:
        raise ValueError(f"lora_targets {text!r}: {bad or 'nothing'} not among {' '.join(PROJS)}")
    return [p for p in PROJS if p in names]


# ---- safetensors (a small reader and writer of the format) ----------------------------

def read_safetensors(path):
    """Returns (metadata dict, {name: float64 ndarray of its shape})."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    n = struct.unpack("<Q", raw[:8])[0]
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = hdr.pop("__metadata__", {}) or {}
    out = {}
    sizes = {"F32": 4, "F16": 2, "BF16": 2}
    for name, info in hdr.items():
        dt, shape, (a, b) = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in sizes:
            raise ValueError(f"{path}: tensor {name!r} has dtype {dt} (F32, F16 or BF16 expected)")
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= a <= b <= len(data)) or b - a != count * sizes[dt]:
            raise ValueError(f"{path}: tensor {name!r}: offsets {a}-{b} do not fit shape {shape} {dt}")
        buf = data[a:b]
        if dt == "BF16":
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype="<f4" if dt == "F32" else "<f2")
        out[name] = arr.astype(np.float64).reshape(shape)
    return meta, out


def write_safetensors(path, meta, tensors):
    """tensors: {name: ndarray}, written F32 in insertion order."""
    header, blobs, off = {"__metadata__": {k: str(v) for k, v in meta.items()}}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- adapters ------------------------------------------------------------------------

class Adapter:
    """method 'lora' or 'ia3'. lora: {(l, proj): (A (r,in), B (out,r))} float64 ndarrays;
    ia3: {(l, site): s} float64 ndarrays."""

    def __init__(self, method, rank=None, lora_alpha=None, lora=None, ia3=None):
        self.method, self.rank, self.lora_alpha = method, rank, lora_alpha
        self.lora, self.ia3 = lora or {}, ia3 or {}

    def lora_scale(self):
        return self.lora_alpha / self.rank


def _meta_get(meta, *keys):
    for k in keys:
        if k in meta:
            return meta[k]
    try:
        tr = json.loads(meta.get("training", "") or "null")
    except ValueError:
        tr = None
    if isinstance(tr, dict):
        for k in keys:
            if k in tr:
                return tr[k]
    return None


def load_adapter(path, cfg, method=None, rank=None, lora_alpha=None, targets=None):
    meta, T = read_safetensors(path)
    L = cfg["n_layers"]
    lora_re = re.compile(r"layers\.(\d+)\.(q|k|v|o|gate|up|down)\.lora_(a|b)")
    ia3_re = re.compile(r"layers\.(\d+)\.(k|v|ffn)\.ia3")
    found_lora, found_ia3 = {}, {}
    for name, arr in T.items():
        m = lora_re.fullmatch(name)
        if m:
            found_lora[(int(m.group(1)), m.group(2), m.group(3))] = arr
            continue
        m = ia3_re.fullmatch(name)
        if m:
            found_ia3[(int(m.group(1)), m.group(2))] = arr
            continue
        raise ValueError(f"{path}: tensor {name!r} is neither a LoRA nor an IA3 tensor")
    method = (method or _meta_get(meta, "method") or
              ("lora" if found_lora and not found_ia3 else "ia3" if found_ia3 and not found_lora else None))
    method = str(method).lower() if method else None
    if method not in ("lora", "ia3"):
        raise ValueError(f"{path}: method {method!r}: this reference reads lora or ia3 files")
    layers = parse_layers(_meta_get(meta, "layers"), L)
    if method == "lora":
        if found_ia3:
            raise ValueError(f"{path}: a LoRA file holds IA3 tensors")
        tg = targets or _meta_get(meta, "lora_targets")
        tg = parse_targets(tg) if tg is not None else ["q", "v"]
        ranks = {arr.shape[0] for (l, p, ab), arr in found_lora.items() if ab == "a"}
        r = rank if rank is not None else _meta_get(meta, "rank", "lora_rank", "r")
        r = int(r) if r is not None else (ranks.pop() if len(ranks) == 1 else None)
        la = lora_alpha if lora_alpha is not None else _meta_get(meta, "lora_alpha", "alpha")
        if r is None or la is None:
            raise ValueError(f"{path}: rank or lora_alpha is not recorded; give --rank/--lora-alpha")
        la = float(la)
        want = {(l, p, ab) for l in layers for p in tg for ab in "ab"}
        if set(found_lora) != want:
            miss, extra = sorted(want - set(found_lora)), sorted(set(found_lora) - want)
            raise ValueError(f"{path}: LoRA tensors do not match targets {','.join(tg)} x layers "
                             f"{layers}: missing {miss[:4]}, unexpected {extra[:4]}")
        lora = {}
        for l in layers:
            for p in tg:
                out_f, in_f = proj_shape(cfg, p)
                A, B = found_lora[(l, p, "a")], found_lora[(l, p, "b")]
                if A.shape != (r, in_f) or B.shape != (out_f, r):
                    raise ValueError(f"{path}: layers.{l}.{p}: lora_a {A.shape}, lora_b {B.shape}; "
                                     f"expected ({r}, {in_f}) and ({out_f}, {r})")
                lora[(l, p)] = (A, B)
        return Adapter("lora", r, la, lora=lora)
    if found_lora:
        raise ValueError(f"{path}: an IA3 file holds LoRA tensors")
    want = {(l, s) for l in layers for s in IA3_SITES}
    if set(found_ia3) != want:
        raise ValueError(f"{path}: IA3 tensors do not match k, v, ffn x layers {layers}")
    for (l, s), arr in found_ia3.items():
        if arr.shape != (ia3_len(cfg, s),):
            raise ValueError(f"{path}: layers.{l}.{s}.ia3 has shape {arr.shape}, "
                             f"expected ({ia3_len(cfg, s)},)")
    return Adapter("ia3", ia3=found_ia3)


def random_adapter(cfg, method, rank=8, lora_alpha=8.0, targets=("q", "v"), layers=None,
                   seed=0, b_std=0.2, ia3_std=0.3):
    rng = np.random.default_rng(seed)
    layers = list(range(cfg["n_layers"])) if layers is None else layers
    if method == "lora":
        lora = {}
        for l in layers:
            for p in PROJS:
                if p not in targets:
                    continue
                out_f, in_f = proj_shape(cfg, p)
                bound = 1.0 / math.sqrt(in_f)  # kaiming_uniform(a=sqrt(5)), as PEFT inits A
                A = rng.uniform(-bound, bound, (rank, in_f))
                B = b_std * rng.standard_normal((out_f, rank))
                lora[(l, p)] = (A, B)
        return Adapter("lora", rank, float(lora_alpha), lora=lora)
    ia3 = {(l, s): 1.0 + ia3_std * rng.standard_normal(ia3_len(cfg, s))
           for l in layers for s in IA3_SITES}
    return Adapter("ia3", ia3=ia3)


def label(ad):
    if ad.method == "ia3":
        return "IA3"
    tg = [p for p in PROJS if any(k[1] == p for k in ad.lora)]
    return f"LoRA r={ad.rank} alpha={ad.lora_alpha:g} on {','.join(tg)}"


def adapter_metadata(cfg, ad, layers_text, targets):
    """The __metadata__ of a generated file: redit's edit-file fields (format, version,
    placeholder fingerprint: load with --force) plus the issue-21 method fields.  ONE place
    to adapt if the engine settles on other spellings (or pass --meta KEY=VALUE)."""
    meta = {"format": "redit-red", "version": "1", "base_model": "reference",
            "base_fingerprint": "0000000000000000", "base_fingerprint_kind": "xxh3-64",
            "layers": layers_text, "dim": cfg["dim"], "n_layers": cfg["n_layers"],
            "method": ad.method}
    if ad.method == "lora":
        meta.update(rank=ad.rank, lora_alpha=f"{ad.lora_alpha:g}",
                    lora_targets=",".join(p for p in PROJS if p in targets), lora_dropout="0")
    return meta


def adapter_tensors(ad):
    t = {}
    for l in sorted({k[0] for k in list(ad.lora) + list(ad.ia3)}):
        for p in PROJS:
            if (l, p) in ad.lora:
                t[f"layers.{l}.{p}.lora_a"], t[f"layers.{l}.{p}.lora_b"] = ad.lora[(l, p)]
        for s in IA3_SITES:
            if (l, s) in ad.ia3:
                t[f"layers.{l}.{s}.ia3"] = ad.ia3[(l, s)]
    return t


# ---- the forward pass ----------------------------------------------------------------

class Runner:
    """A llama2.c model in one dtype; forward() mirrors LlamaRED.forward (teacher-forced,
    batch 1, no cache) op for op, with LoRA/IA3 hooks at the projections."""

    def __init__(self, path, dtype=torch.float32):
        self.dtype = dtype
        self.cfg, self.W = load_llama2c(path, dtype)
        self.red = LlamaRED(self.cfg, self.W, dtype)  # RMSNorm, RoPE tables; RED stays identity

    def base_logits(self, ids):
        """llama_red_ref.py's own forward, identity RED vectors: the base model."""
        with torch.inference_mode():
            return self.red(torch.tensor([ids]))[0]

    def logits(self, ids, ad=None, strength=1.0, W=None):
        cfg, m = self.cfg, self.red
        W = W or self.W
        dt = self.dtype
        T = len(ids)
        nh, nkv, hs = cfg["n_heads"], cfg["n_kv_heads"], m.hs
        rep = nh // nkv
        lora = ad.lora if ad is not None and ad.method == "lora" else {}
        ia3 = ad.ia3 if ad is not None and ad.method == "ia3" else {}
        tens = lambda a: torch.from_numpy(np.asarray(a)).to(dt)

        def proj(l, p, h):
            y = F.linear(h, W[WKEY[p]][l])
            if (l, p) in lora:  # PEFT: result + lora_B(lora_A(dropout(x))) * scaling
                A, B = lora[(l, p)]
                y = y + F.linear(F.linear(h, tens(A)), tens(B)) * (strength * ad.lora_scale())
            return y

        def ia3_vec(l, s):  # s' = 1 + a (s - 1)
            return tens(1.0 + strength * (ia3[(l, s)] - 1.0)) if (l, s) in ia3 else None

        with torch.inference_mode():
            x = F.embedding(torch.tensor([ids]), W["emb"])
            mask = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1) if T > 1 else None
            for l in range(cfg["n_layers"]):
                h = m.rmsnorm(x, W["rms_att"][l])
                q = proj(l, "q", h)
                k = proj(l, "k", h)
                v = proj(l, "v", h)
                sk, sv = ia3_vec(l, "k"), ia3_vec(l, "v")
                if sk is not None:
                    k = k * sk
                if sv is not None:
                    v = v * sv
                q, k, v = q.view(1, T, nh, hs), k.view(1, T, nkv, hs), v.view(1, T, nkv, hs)
                q, k = m.rope(q, 0), m.rope(k, 0)
                if rep > 1:
                    k = k.repeat_interleave(rep, dim=2)
                    v = v.repeat_interleave(rep, dim=2)
                q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
                att = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(hs))
                if mask is not None:
                    att = att + mask
                att = torch.softmax(att, dim=-1)
                o = torch.matmul(att, v).transpose(1, 2).reshape(1, T, nh * hs)
                x = x + proj(l, "o", o)
                h = m.rmsnorm(x, W["rms_ffn"][l])
                act = F.silu(proj(l, "gate", h)) * proj(l, "up", h)
                sf = ia3_vec(l, "ffn")
                if sf is not None:
                    act = act * sf
                x = x + proj(l, "down", act)
            x = m.rmsnorm(x, W["rms_final"])
            return F.linear(x, W["wcls"])[0]

    def merged_weights(self, ad, strength):
        """W with the adapter folded in (computed in float64): LoRA W + a (alpha/r) B A;
        IA3 rows of Wk, Wv and columns of W2 scaled by s'."""
        W = dict(self.W)
        for key in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
            W[key] = self.W[key].clone()
        for (l, p), (A, B) in ad.lora.items():
            w = self.W[WKEY[p]][l].to(torch.float64).numpy()
            W[WKEY[p]][l] = torch.from_numpy(w + strength * ad.lora_scale() * (B @ A)).to(self.dtype)
        for (l, s), vec in ad.ia3.items():
            s2 = 1.0 + strength * (vec - 1.0)
            if s == "ffn":
                w = self.W["w2"][l].to(torch.float64).numpy() * s2[None, :]
                W["w2"][l] = torch.from_numpy(w).to(self.dtype)
            else:
                key = "wk" if s == "k" else "wv"
                w = self.W[key][l].to(torch.float64).numpy() * s2[:, None]
                W[key][l] = torch.from_numpy(w).to(self.dtype)
        return W


# ---- checks --------------------------------------------------------------------------

def rel_diff(ours, ref, scaled=False):
    """max |ours - ref| / max(1, |ref|) per value (check-reference's logits rule), or with
    scaled, max |ours - ref| / max |ref| (relative to the logits' scale)."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if scaled:
        return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
    return float((np.abs(a - b) / np.maximum(1.0, np.abs(b))).max())


def self_check(paths, ids, verbose=False):
    fails = checks = 0

    def report(what, ok, detail):
        nonlocal fails, checks
        fails += not ok
        checks += 1
        if verbose or not ok:
            print(f"peft_ref self-check: {what}: {detail} {'ok' if ok else 'FAILED'}")

    for path in paths:
        name = os.path.basename(path)
        r32, r64 = Runner(path, torch.float32), Runner(path, torch.float64)
        cfg = r32.cfg
        ids_m = [i % cfg["vocab"] for i in ids]
        base = r32.base_logits(ids_m)
        lora_all = random_adapter(cfg, "lora", rank=3, lora_alpha=5.0, targets=PROJS, seed=11)
        lora_qv = random_adapter(cfg, "lora", rank=8, lora_alpha=8.0, seed=12)
        ia3 = random_adapter(cfg, "ia3", seed=13)
        # the file round trip: write, read back through load_adapter
        with tempfile.TemporaryDirectory() as tmp:
            for ad, tg in ((lora_all, PROJS), (lora_qv, ("q", "v")), (ia3, ())):
                f = os.path.join(tmp, "a.safetensors")
                write_safetensors(f, adapter_metadata(cfg, ad, "all", tg), adapter_tensors(ad))
                back = load_adapter(f, cfg)
                same = (back.method == ad.method and back.rank == ad.rank and
                        back.lora_alpha == ad.lora_alpha and set(back.lora) == set(ad.lora) and
                        set(back.ia3) == set(ad.ia3) and
                        all(np.array_equal(back.lora[k][i], ad.lora[k][i].astype(np.float32))
                            for k in ad.lora for i in (0, 1)) and
                        all(np.array_equal(back.ia3[k], ad.ia3[k].astype(np.float32)) for k in ad.ia3))
                report(f"{name} {label(ad)} file round trip", same, "tensors and settings")
        # identity adapters and strength 0: the base logits bit for bit
        zero_b = Adapter("lora", 3, 5.0, lora={k: (A, np.zeros_like(B)) for k, (A, B) in lora_all.lora.items()})
        ones = Adapter("ia3", ia3={k: np.ones_like(v) for k, v in ia3.ia3.items()})
        for what, ad, a in (("LoRA with B = 0", zero_b, 1.0), ("IA3 all ones", ones, 1.0),
                            ("LoRA (all seven) at strength 0", lora_all, 0.0),
                            ("IA3 at strength 0", ia3, 0.0)):
            got = r32.logits(ids_m, ad, a)
            report(f"{name} {what} == llama_red_ref base", torch.equal(got, base),
                   f"max |diff| {float((got - base).abs().max()):.1e},")
        # the adapters do move the logits (else the checks below prove nothing)
        for ad in (lora_all, lora_qv, ia3):
            d = float((r32.logits(ids_m, ad, 1.0) - base).abs().max())
            report(f"{name} {label(ad)} changes the logits", d > 0.05, f"max |diff| {d:.3f} > 0.05,")
        # unmerged == merged: in f64 per value to 1e-10 (the formula), in f32 to 1e-5 of the
        # logits' scale (per value, f32 rounding alone reaches 1.4e-5 on stories260K)
        for ad in (lora_all, lora_qv, ia3):
            for a in (1.0, 0.5):
                for r, tol, scaled in ((r64, 1e-10, False), (r32, 1e-5, True)):
                    un = r.logits(ids_m, ad, a).numpy()
                    mg = r.logits(ids_m, None, 1.0, W=r.merged_weights(ad, a)).numpy()
                    d = rel_diff(un, mg, scaled)
                    report(f"{name} {label(ad)} unmerged vs "
                           f"merged, strength {a:g}, {'f64' if r is r64 else 'f32'}", d <= tol,
                           f"{d:.1e} <= {tol:g}{' of max |logit|' if scaled else ''}")
        # a full-rank LoRA on o and down with A = W, B = diag(s - 1) is a RED scale at the attn
        # and ffn sites: llama_red_ref.py's RED forward must give the same logits (f64)
        rng = np.random.default_rng(14)
        s_att = 1 + 0.3 * rng.standard_normal((cfg["n_layers"], cfg["dim"]))
        s_ffn = 1 + 0.3 * rng.standard_normal((cfg["n_layers"], cfg["dim"]))
        as_red = {}
        for l in range(cfg["n_layers"]):
            as_red[(l, "o")] = (r64.W["wo"][l].numpy(), np.diag(s_att[l] - 1))
            as_red[(l, "down")] = (r64.W["w2"][l].numpy(), np.diag(s_ffn[l] - 1))
        red = LlamaRED(cfg, r64.W, torch.float64)
        for a in (1.0, 0.5):
            with torch.no_grad():
                red.red_as.copy_(torch.from_numpy(1 + a * (s_att - 1)))
                red.red_s.copy_(torch.from_numpy(1 + a * (s_ffn - 1)))
                want = red(torch.tensor([ids_m]))[0].numpy()
            got = r64.logits(ids_m, Adapter("lora", cfg["dim"], float(cfg["dim"]), lora=as_red), a)
            d = rel_diff(got.numpy(), want)
            report(f"{name} LoRA on o, down as RED scales == llama_red_ref RED, strength {a:g}, f64",
                   d <= 1e-10, f"{d:.1e} <= 1e-10")
        # f32 agrees with f64 (check.sh compares redit with the f64 reference at 1e-4 per value;
        # the f32 reference must sit well inside that)
        for ad in (None, lora_all, ia3):
            for a in (1.0, 0.5):
                d = rel_diff(r32.logits(ids_m, ad, a).numpy(), r64.logits(ids_m, ad, a).numpy())
                report(f"{name} {'base' if ad is None else label(ad)} f32 vs f64, strength {a:g}",
                       d <= 5e-5, f"{d:.1e} <= 5e-05")
    print(f"peft_ref self-check: {checks} checks on {len(paths)} models, "
          f"{'all agree' if not fails else f'{fails} FAILED'}")
    return 1 if fails else 0


def compare(ours, ref, tol, what):
    a = np.fromfile(ours, dtype="<f4")
    b = np.fromfile(ref, dtype="<f4")
    if a.shape != b.shape:
        print(f"{what}: {a.size} values from redit, {b.size} from the reference FAILED")
        return 1
    worst = rel_diff(a, b)
    ok = worst <= tol
    print(f"{what}: {a.size} values, worst relative difference {worst:.2e} "
          f"(tolerance {tol:g}) {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def parse_ids(text):
    return [int(x) for x in text.replace(",", " ").split()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("make-adapter")
    g.add_argument("model")
    g.add_argument("--method", choices=["lora", "ia3"], required=True)
    g.add_argument("--rank", type=int, default=8)
    g.add_argument("--lora-alpha", type=float, default=8.0)
    g.add_argument("--lora-targets", default="q,v")
    g.add_argument("--layers", default="all")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="add or replace a metadata entry (KEY= removes it)")
    g.add_argument("-o", "--out", required=True)
    lg = sub.add_parser("logits")
    lg.add_argument("model")
    lg.add_argument("--adapter")
    lg.add_argument("--strength", type=float, nargs="+", default=[1.0],
                    help="one or more strengths, one -o file each")
    lg.add_argument("--ids", required=True)
    lg.add_argument("--f64", action="store_true", help="compute in float64 (stored float32)")
    lg.add_argument("--method", choices=["lora", "ia3"])
    lg.add_argument("--rank", type=int)
    lg.add_argument("--lora-alpha", type=float)
    lg.add_argument("--lora-targets")
    lg.add_argument("--threads", type=int, default=2)
    lg.add_argument("-o", "--out", nargs="+", required=True)
    sc = sub.add_parser("self-check")
    sc.add_argument("models", nargs="+")
    sc.add_argument("-v", "--verbose", action="store_true", help="print every check, not only failures")
    sc.add_argument("--ids", default="1 17 42 300 5 99 256 7 128 64 3 511 200 11 90 45")
    cp = sub.add_parser("compare")
    cp.add_argument("ours")
    cp.add_argument("ref")
    cp.add_argument("tol", type=float)
    cp.add_argument("what")
    a = ap.parse_args()
    torch.set_num_threads(getattr(a, "threads", 2))
    try:
        if a.cmd == "make-adapter":
            cfg, _ = load_llama2c(a.model)
            tg = parse_targets(a.lora_targets)
            layers = parse_layers(a.layers, cfg["n_layers"])
            ad = random_adapter(cfg, a.method, a.rank, a.lora_alpha, tg, layers, a.seed)
            meta = adapter_metadata(cfg, ad, a.layers, tg)
            for kv in a.meta:
                k, _, v = kv.partition("=")
                if v:
                    meta[k] = v
                else:
                    meta.pop(k, None)
            write_safetensors(a.out, meta, adapter_tensors(ad))
        elif a.cmd == "logits":
            r = Runner(a.model, torch.float64 if a.f64 else torch.float32)
            ad = None
            if a.adapter:
                ad = load_adapter(a.adapter, r.cfg, a.method, a.rank, a.lora_alpha,
                                  parse_targets(a.lora_targets) if a.lora_targets else None)
            ids = parse_ids(a.ids)
            if not ids or min(ids) < 0 or max(ids) >= r.cfg["vocab"]:
                raise ValueError(f"--ids must be token ids in 0-{r.cfg['vocab'] - 1}")
            if len(a.out) != len(a.strength):
                raise ValueError(f"{len(a.strength)} strengths but {len(a.out)} -o files")
            for st, out in zip(a.strength, a.out):
                r.logits(ids, ad, st).to(torch.float32).numpy().astype("<f4").tofile(out)
        elif a.cmd == "self-check":
            return self_check(a.models, parse_ids(a.ids), a.verbose)
        elif a.cmd == "compare":
            return compare(a.ours, a.ref, a.tol, a.what)
    except (ValueError, OSError, KeyError) as ex:
        print(f"peft_ref.py: {ex}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
