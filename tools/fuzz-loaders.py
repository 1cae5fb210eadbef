"""Mutation smoke-fuzzing of redit's file readers under AddressSanitizer + UBSan.

usage: python3 tools/fuzz-loaders.py REDIT [--runs N] [--seed S] [--timeout S] [--only KIND ...]

REDIT is a sanitizer build of the redit command (`make fuzz` builds build/asan/redit and
runs this). For each kind of untrusted file it writes N mutated copies of a valid file
(random bytes, flipped bits, boundary integers such as 0xffffffff or 2^64-1 written over
4 or 8 bytes, or a cut at a random offset) and runs the command that reads it:

  gguf      a small random GGUF model with its tokenizer (`redit demo`)  -> generate
  edits     an edit file trained on it for two steps                    -> logits --edits
  bin       llama2.c's stories260K.bin (../shared/fixtures)               -> logits
  tokbin    llama2.c's tokenizer.bin of Llama-2 (../shared/fixtures)      -> tokenize
  tokjson   a Hugging Face tokenizer.json (../shared/fixtures, Mistral)   -> tokenize
  tokmodel  SentencePiece's tokenizer.model (models/, the bundled one)     -> tokenize
  jsonl     the head of datasets/define-words/eval.jsonl (Alpaca)          -> eval
  jsonlskip the head of datasets/spam-ham/eval.jsonl (classification)
                                                          -> eval --skip-bad-lines
  hfconfig  config.json of a tiny Hugging Face folder (tokenizer.json of  -> generate
            ../shared/fixtures' Mistral, F32 safetensors written here)
  hfweights that folder's model.safetensors (its header)                  -> generate
  state     a training state (`train --state`, two steps)                -> train --state

Every command is first run on its valid file and must succeed, so the mutations reach the
readers' depths rather than an early refusal.

A run passes when every command ended with status 0, 1 or 2 within --timeout seconds
(default 60; the valid file gets at least 120) and printed no sanitizer report. A command
that runs longer is killed and counted as a finding (a hang or a blow-up on that input) like
a crash: its input is kept under the work folder and named in the report with the command,
and the run goes on with the remaining inputs and kinds. A kind whose valid file is refused
or times out is reported and skipped; the other kinds still run. Exit status: 1 when any run
failed, else 2 when a kind could not be set up (or on a usage error), else 0. Reads
../shared/fixtures; writes only to a temporary folder, removed at the end (also on Ctrl-C
or an error) unless something failed: then it keeps the failing inputs and the files their
commands read, and the killed commands' temporary files are removed from it.
Standard library only.
"""

import argparse
import glob
import json
import os
import random
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "fixtures")
BOUNDARY = [0, 0xff, 0x7f, 0x80, 0x7fffffff, 0x80000000, 0xffffffff, 1 << 40, 2**64 - 1]
TEXT = "hello world, h\u00e9llo \U0001F600 123".encode()


def mutate(rng, data, region):
    """A copy of data with 1-8 mutations in its first `region` bytes, or cut short."""
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 8])):
        i = rng.randrange(min(region, len(b)))
        r = rng.random()
        if r < 0.5:
            b[i] = rng.randrange(256)
        elif r < 0.7:
            b[i] ^= 1 << rng.randrange(8)
        elif r < 0.85:
            width = rng.choice([4, 8])
            i = max(0, min(i, len(b) - width))
            b[i:i + width] = (rng.choice(BOUNDARY) & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        else:
            return bytes(b[:rng.randrange(len(b))])
    return bytes(b)


def write_hf_folder(folder, rng):
    """A Llama-shaped Hugging Face folder: dim 16, 2 layers, 2 heads, 1 KV head, vocab 32000
    (Mistral's tokenizer.json from the fixtures), tied classifier, F32 safetensors."""
    os.makedirs(folder)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
              "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1, "vocab_size": 32000, "max_position_embeddings": 64,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
              "torch_dtype": "float32"}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copy(os.path.join(FIX, "mistral-tokenizer", "tokenizer.json"), folder)
    shapes = {"model.embed_tokens.weight": [32000, 16], "model.norm.weight": [16]}
    for l in range(2):
        p = "model.layers.%d." % l
        shapes.update({p + "input_layernorm.weight": [16], p + "post_attention_layernorm.weight": [16],
                       p + "self_attn.q_proj.weight": [16, 16], p + "self_attn.k_proj.weight": [8, 16],
                       p + "self_attn.v_proj.weight": [8, 16], p + "self_attn.o_proj.weight": [16, 16],
                       p + "mlp.gate_proj.weight": [32, 16], p + "mlp.up_proj.weight": [32, 16],
                       p + "mlp.down_proj.weight": [16, 32]})
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, shape in shapes.items():
        n = shape[0] * (shape[1] if len(shape) > 1 else 1)
        values = [1.0] * n if len(shape) == 1 else [rng.gauss(0, 0.05) for _ in range(n)]
        blobs.append(struct.pack("<%df" % n, *values))
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * n]}
        offset += 4 * n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return 8 + len(text)


SETUP_TIMEOUT = 300  # seconds for each command that makes the valid inputs
VALID_TIMEOUT = 120  # at least this for the command on a valid file


def remove_partial_files(work):
    """Removes what killed commands leave behind: the temporary files of atomic writes
    (NAME.tmp-XXXXXX) and partial logs (NAME.partial)."""
    for pattern in ("*.tmp-*", "*.partial"):
        for path in glob.glob(os.path.join(work, "**", pattern), recursive=True):
            try:
                os.remove(path)
            except OSError:
                pass


def setup(redit, work):
    """Writes the valid inputs; returns {kind: (valid bytes, mutated region, the file the
    command reads, argv)}."""
    subprocess.run([redit, "demo", "--dir", work], check=True, capture_output=True,
                   timeout=SETUP_TIMEOUT)
    model = os.path.join(work, "random-demo.gguf")
    train = os.path.join(work, "train.jsonl")
    with open(train, "w") as f:
        for i in range(16):
            f.write('{"instruction": "Name %d.", "output": "a cat"}\n' % i)
    # an edit file and a training state from one run; the same command resumes from a state
    edits = os.path.join(work, "edits.safetensors")
    state = os.path.join(work, "valid.state")
    train_cmd = [redit, "train", "-m", model, "-d", train, "-o", edits, "--max-steps", "2",
                 "--sites", "both", "--batch", "4", "--dropout", "0.1"]
    subprocess.run(train_cmd + ["--state", state], check=True, capture_output=True,
                   timeout=SETUP_TIMEOUT)
    here = os.path.dirname(os.path.abspath(__file__))
    spam = os.path.join(here, "..", "datasets", "spam-ham", "eval.jsonl")
    words = os.path.join(here, "..", "datasets", "define-words", "eval.jsonl")
    bin_tok = os.path.join(FIX, "llama2-tokenizer", "tokenizer.bin")
    read = lambda p: open(p, "rb").read()
    def head(p, n):  # the whole lines in a file's first n bytes
        b = read(p)[:n]
        return b[:b.rindex(b"\n") + 1]
    hf = os.path.join(work, "hf")
    hf_header = write_hf_folder(hf, random.Random(7))
    logits = os.path.join(work, "logits.f32")
    hf_run = [redit, "generate", "-m", hf, "-p", "hello", "-n", "2", "--temp", "0"]
    m = lambda suffix: os.path.join(work, "mutated" + suffix)
    return {
        "gguf": (read(model), 40000, m(".gguf"),
                 [redit, "generate", "-m", m(".gguf"), "-p", "hello there", "-n", "2", "--temp", "0"]),
        "edits": (read(edits), 4000, m(".safetensors"), [redit, "logits", "-m", model, "--ids",
                  "1 5 9", "-o", logits, "--edits", m(".safetensors")]),
        "bin": (read(os.path.join(FIX, "stories260K", "stories260K.bin")), 64, m(".bin"),
                [redit, "logits", "-m", m(".bin"), "--ids", "1 2 3", "-o", logits]),
        "tokbin": (read(bin_tok), 1 << 30, m(".bin"), [redit, "tokenize", "-m", m(".bin")]),
        "tokjson": (read(os.path.join(FIX, "mistral-tokenizer", "tokenizer.json")), 1 << 30,
                    m(".json"), [redit, "tokenize", "-m", m(".json")]),
        "tokmodel": (read(os.path.join(here, "..", "models", "redit-base.tokenizer.model")),
                     1 << 30, m(".model"), [redit, "tokenize", "-m", m(".model")]),
        "jsonl": (head(words, 3000), 3000, m(".jsonl"), [redit, "eval", "-m", model, "-d", m(".jsonl")]),
        "jsonlskip": (head(spam, 6000), 6000, m(".jsonl"),
                      [redit, "eval", "-m", model, "-d", m(".jsonl"), "--skip-bad-lines"]),
        "hfconfig": (read(os.path.join(hf, "config.json")), 1 << 30, os.path.join(hf, "config.json"),
                     hf_run),
        "state": (read(state), 8 + struct.unpack("<Q", read(state)[:8])[0], m(".state"),
                  train_cmd + ["--state", m(".state")]),
        "hfweights": (read(os.path.join(hf, "model.safetensors")), hf_header,
                      os.path.join(hf, "model.safetensors"), hf_run),
    }


def fuzz(a, work):
    """Runs every kind; returns the exit status (see the module's text)."""
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1",
               OPENBLAS_NUM_THREADS="1")
    rng = random.Random(a.seed)
    failed = skipped = 0

    def run(path, argv, data, timeout):
        """Writes data to path, the file argv reads, and runs argv: (status, stderr), status
        None when it ran past timeout seconds (it was killed)."""
        with open(path, "wb") as f:
            f.write(data)
        try:
            p = subprocess.run(argv, capture_output=True, env=env, timeout=timeout, input=TEXT)
        except subprocess.TimeoutExpired as e:
            remove_partial_files(work)
            err = e.stderr.decode("utf-8", "replace") if e.stderr else ""
            return None, err
        return p.returncode, p.stderr.decode("utf-8", "replace")

    try:
        inputs = setup(a.redit, work)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        err = getattr(e, "stderr", b"") or b""
        print("fuzz-loaders: making the valid inputs failed: %s\n%s"
              % (e, err.decode("utf-8", "replace")[-800:]), file=sys.stderr)
        return 2
    for kind, (data, region, path, argv) in inputs.items():
        if a.only and kind not in a.only:
            continue
        status, err = run(path, argv, data, max(a.timeout, VALID_TIMEOUT))
        if status != 0:
            why = ("ran past %g s" % max(a.timeout, VALID_TIMEOUT) if status is None
                   else "is refused (status %d)" % status)
            print("fuzz-loaders: %s: the valid file %s; kind skipped: %s"
                  % (kind, why, err[-800:]))
            skipped += 1
            if status is None:
                failed += 1
            continue
        accepted = timeouts = 0
        for i in range(a.runs):
            status, err = run(path, argv, mutate(rng, data, region), a.timeout)
            if status in (0, 1, 2) and "Sanitizer" not in err and "runtime error" not in err:
                accepted += status == 0
                continue
            failed += 1
            keep = os.path.join(work, "failed-%s-%d%s" % (kind, i, os.path.splitext(path)[1]))
            shutil.copy(path, keep)
            command = shlex.join(keep if x == path else x for x in argv)
            if path not in argv:  # the file is read from a folder: put it back there first
                command = "cp %s %s && %s" % (keep, path, command)
            if status is None:
                timeouts += 1
                print("TIMEOUT %s run %d: still running after %g s (killed), input kept as %s\n"
                      "  command: %s" % (kind, i, a.timeout, keep, command))
            else:
                print("FAIL %s run %d: status %d, input kept as %s\n  command: %s\n%s"
                      % (kind, i, status, keep, command, err[-2000:]))
        with open(path, "wb") as f:  # the next kind may read it (the HF folder's files)
            f.write(data)
        print("%-9s %d mutated files read: %d accepted, %d timed out, the rest refused with an "
              "error" % (kind, a.runs, accepted, timeouts))
    if failed:
        print("fuzz-loaders: %d failures; inputs kept in %s" % (failed, work))
        return 1
    if skipped:
        print("fuzz-loaders: %d kinds could not be set up" % skipped)
        return 2
    print("fuzz-loaders: every run ended with a clean error or success, no sanitizer report")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("redit")
    ap.add_argument("--runs", type=int, default=60, help="mutated files per kind (default 60)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60,
                    help="seconds a command may take on a mutated file before it is killed and "
                         "counted as a finding (default 60)")
    ap.add_argument("--only", nargs="*", help="kinds to fuzz (default: all)")
    a = ap.parse_args()
    if a.timeout <= 0:
        print("fuzz-loaders: --timeout must be above 0", file=sys.stderr)
        return 2
    for need in (a.redit, os.path.join(FIX, "stories260K", "stories260K.bin")):
        if not os.path.exists(need):
            print("fuzz-loaders: %s is missing" % need, file=sys.stderr)
            return 2
    work = tempfile.mkdtemp(prefix="redit-fuzz-")
    status = 2
    try:
        status = fuzz(a, work)
    finally:  # kept only with findings in it; removed on success, errors and Ctrl-C
        if status != 1:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
