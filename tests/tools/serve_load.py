#!/usr/bin/env python3
"""Load on `redit serve` (make test-serve-load): CLIENTS threads stream completions for SECONDS,
each request picking a (model, strength, prompt) case and greedy or sampled decoding. Every
response must complete (HTTP 200, a finish_reason, "data: [DONE]"); greedy ones must equal the
single-sequence output given in REFS (JSON: {"model|strength|prompt": text}). Prints a summary;
exit status 1 on any failure.

usage: serve_load.py PORT REFS CLIENTS SECONDS MAX_TOKENS
"""
import http.client
import json
import random
import sys
import threading
import time


def stream(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", "/v1/completions", body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        data = resp.read()
        conn.close()
        return resp.status, None, None, data[:200]
    raw = resp.read()
    conn.close()
    events = raw.decode("utf-8").split("\n\n")
    if events[-1] != "" or events[-2] != "data: [DONE]":
        return 200, None, None, raw[-200:]
    text, finish, tokens = [], None, 0
    for ev in events[:-2]:
        obj = json.loads(ev[6:])
        for c in obj["choices"]:
            text.append(c["text"])
            finish = c.get("finish_reason") or finish
        if obj.get("usage"):
            tokens = obj["usage"]["completion_tokens"]
    return 200, "".join(text), finish, tokens


def main():
    port, refs_path, clients, seconds, max_tokens = (int(sys.argv[1]), sys.argv[2],
                                                     int(sys.argv[3]), float(sys.argv[4]),
                                                     int(sys.argv[5]))
    refs = json.load(open(refs_path))
    cases = [k.split("|", 2) for k in refs]
    lock = threading.Lock()
    stats = {"requests": 0, "greedy": 0, "tokens": 0, "failures": [], "latency": []}
    end = time.monotonic() + seconds

    def client(seed):
        rng = random.Random(seed)
        while time.monotonic() < end:
            model, strength, prompt = rng.choice(cases)
            greedy = rng.random() < 0.5
            body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                    "edit_strength": float(strength), "stream_options": {"include_usage": True},
                    "temperature": 0 if greedy else 0.9, "seed": rng.randrange(1 << 30)}
            t0 = time.monotonic()
            try:
                status, text, finish, tokens = stream(port, body)
            except Exception as e:  # a dropped connection is a failure too
                status, text, finish, tokens = -1, None, None, repr(e)
            dt = time.monotonic() - t0
            with lock:
                stats["requests"] += 1
                stats["latency"].append(dt)
                if status != 200 or text is None or finish not in ("stop", "length"):
                    stats["failures"].append(f"{model}: status {status}: {tokens!r}")
                    continue
                stats["tokens"] += tokens
                if greedy:
                    stats["greedy"] += 1
                    want = refs[f"{model}|{strength}|{prompt}"]
                    if text != want:
                        stats["failures"].append(f"greedy {model}@{strength} '{prompt}': "
                                                 f"{text!r} != {want!r}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    lat = sorted(stats["latency"]) or [0]
    print(f"serve load: {clients} clients for {wall:.0f} s: {stats['requests']} requests "
          f"({stats['greedy']} greedy, checked), {stats['tokens']} tokens, "
          f"{stats['tokens'] / wall:.1f} tok/s aggregate, latency median "
          f"{lat[len(lat) // 2]:.2f} s, max {lat[-1]:.2f} s, {len(stats['failures'])} failures")
    for f in stats["failures"][:10]:
        print(f"  FAIL {f}")
    sys.exit(1 if stats["failures"] or not stats["requests"] else 0)


if __name__ == "__main__":
    main()
