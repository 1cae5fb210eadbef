#!/usr/bin/env python3
"""Client-side checks of `redit serve` for tests/cli/serve.sh and tests/serve-load.sh (Python's
standard library only: http.client, sockets, threads).

  serve_check.py sse FILE                 a saved event stream: prints the concatenated text;
                                          fails unless it is well-formed and ends "data: [DONE]"
  serve_check.py conns PORT N             opens N connections (some sending half a request)
                                          and drops them
  serve_check.py burst PORT KEY N BODY    N concurrent POST /v1/completions of BODY; prints
                                          the statuses, sorted
  serve_check.py disconnect PORT KEY BODY reads a streamed completion's first event, then
                                          closes the connection
  serve_check.py logprobs RESP LOGITS V   a completion with echo + logprobs against `redit
                                          logits` rows (float32, V per position): equal to 1e-5
  serve_check.py drain PORT PID MAX_TOKENS  starts a long stream, sends the server SIGTERM,
                                          then a request on a kept-alive connection: prints
                                          that request's status and how the stream ended
  serve_check.py generated GEN_OUT PROMPT `redit generate` output to the completion text the
                                          server gives (prompt and final newline dropped,
                                          ill-formed UTF-8 replaced as the server does)
  serve_check.py gen_logprobs RESP K IDS LOGITS_CMD...  a greedy completion's (or chat's)
                                          logprobs of its generated tokens with K alternatives
                                          against teacher forcing: LOGITS_CMD (`redit logits
                                          -m M ...`, given --ids and -o here) over the prompt
                                          IDS and the greedy ids found one by one: each
                                          logprob and the top list equal to 1e-5, the list
                                          sorted, its first entry the greedy token
  serve_check.py sse_logprobs FILE        a saved event stream's logprobs, the chunks'
                                          lists joined (legacy or chat format), as JSON
"""
import http.client
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading


def fail(msg):
    print(f"serve_check: {msg}", file=sys.stderr)
    sys.exit(1)


def parse_sse(raw):
    """(text, finish_reason, usage, chunks) of an event stream's bytes."""
    text, finish, usage, chunks = [], None, None, 0
    events = raw.decode("utf-8").split("\n\n")
    if events[-1] != "":
        fail(f"the stream does not end with a blank line: {raw[-80:]!r}")
    events = events[:-1]
    if not events or events[-1] != "data: [DONE]":
        fail(f"the stream does not end with data: [DONE]: {raw[-200:]!r}")
    for ev in events[:-1]:
        if not ev.startswith("data: "):
            fail(f"an event without 'data: ': {ev[:200]!r}")
        obj = json.loads(ev[6:])
        if "error" in obj:
            fail(f"an error event: {obj}")
        chunks += 1
        if obj.get("usage"):
            usage = obj["usage"]
        for c in obj.get("choices", []):
            if "delta" in c:
                text.append(c["delta"].get("content") or "")
            else:
                text.append(c.get("text", ""))
            if c.get("finish_reason"):
                finish = c["finish_reason"]
    return "".join(text), finish, usage, chunks


def logits_rows(cmd, ids):
    """Teacher forcing: `cmd --ids IDS -o F`'s float32 rows (one per position)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.f32")
        r = subprocess.run(cmd + ["--ids", " ".join(map(str, ids)), "-o", out],
                           capture_output=True, text=True)
        if r.returncode:
            fail(f"{' '.join(cmd)}: {r.stderr.strip()}")
        raw = open(out, "rb").read()
    V = len(raw) // 4 // len(ids)
    return [struct.unpack_from(f"<{V}f", raw, i * V * 4) for i in range(len(ids))]


def gen_logprobs(resp, k, prompt, cmd):
    c = resp["choices"][0]
    chat = "message" in c
    lp = c["logprobs"]
    if chat:
        got = [(e["logprob"], [(a["logprob"], bytes(a["bytes"])) for a in e["top_logprobs"]],
                bytes(e["bytes"])) for e in lp["content"]]
    else:
        got = [(l, [(v, t.encode()) for t, v in top.items()], t.encode())
               for l, top, t in zip(lp["token_logprobs"], lp["top_logprobs"], lp["tokens"])]
    n = resp["usage"]["completion_tokens"]
    if len(got) != n or n < 2:
        fail(f"{len(got)} logprobs entries for {n} generated tokens")
    ids = list(prompt)
    rows = []
    for i in range(n):  # the greedy ids, one forward run per token
        rows = logits_rows(cmd, ids)
        ids.append(max(range(len(rows[-1])), key=lambda v: (rows[-1][v], -v)))
    worst = 0.0
    for i, (logprob, top, text) in enumerate(got):
        row = rows[len(prompt) - 1 + i]
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        want = sorted((row[v] - lse for v in range(len(row))), reverse=True)[:k]
        worst = max(worst, abs(logprob - (row[ids[len(prompt) + i]] - lse)))
        if len(top) != k and (chat or len(top) < min(k, 2)):  # (legacy: see below)
            fail(f"token {i}: {len(top)} alternatives, {k} asked for")
        if not top or [v for v, _ in top] != sorted((v for v, _ in top), reverse=True):
            fail(f"token {i}: the alternatives are not sorted: {top}")
        if top[0][0] != logprob or top[0][1] != text:
            fail(f"token {i}: the first alternative {top[0]} is not the greedy token "
                 f"{text!r} {logprob}")
        for v, _ in top:  # (legacy: texts that coincide keep one entry)
            worst = max(worst, min(abs(v - w) for w in want))
        if chat:
            worst = max(worst, max(abs(v - w) for (v, _), w in zip(top, want)))
    if worst > 1e-5:
        fail(f"generated tokens' logprobs differ from teacher forcing by {worst:.3g} (> 1e-5)")
    print(f"{n} generated tokens' logprobs within {worst:.2g}")


def sse_logprobs(raw):
    legacy = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    content = []
    chat = False
    for ev in raw.decode("utf-8").split("\n\n"):
        if not ev.startswith("data: {"):
            continue
        for c in json.loads(ev[6:]).get("choices", []):
            chat = chat or "delta" in c
            lp = c.get("logprobs")
            if lp is None:
                continue
            if "content" in lp:
                content += lp["content"]
            else:
                for key in legacy:
                    legacy[key] += lp[key]
    return {"content": content, "refusal": None} if chat else legacy


def post(port, key, path, body, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def main():
    cmd = sys.argv[1]
    if cmd == "sse":
        text, finish, usage, chunks = parse_sse(open(sys.argv[2], "rb").read())
        if finish not in ("stop", "length"):
            fail(f"no finish_reason in the stream (got {finish!r})")
        sys.stdout.write(json.dumps({"text": text, "finish": finish, "usage": usage,
                                     "chunks": chunks}))
    elif cmd == "conns":
        port, n = int(sys.argv[2]), int(sys.argv[3])
        socks = []
        for i in range(n):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                continue
            if i % 3 == 1:
                s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
            elif i % 3 == 2:
                s.sendall(b"GET /v1/mod")
            socks.append(s)
            if len(socks) >= 100:
                for t in socks:
                    t.close()
                socks = []
        for t in socks:
            t.close()
        print(n)
    elif cmd == "burst":
        port, key, n, body = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
        statuses = []
        lock = threading.Lock()

        def one():
            st, _ = post(port, key, "/v1/completions", body)
            with lock:
                statuses.append(st)
        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(" ".join(str(s) for s in sorted(statuses)))
    elif cmd == "disconnect":
        port, key, body = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        req = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}")
        s.sendall(req.encode())
        got = b""
        while b"data: " not in got:
            part = s.recv(4096)
            if not part:
                fail("the stream closed before its first event")
            got += part
        s.close()
        print("dropped")
    elif cmd == "logprobs":
        resp = json.load(open(sys.argv[2]))
        raw = open(sys.argv[3], "rb").read()
        V = int(sys.argv[4])
        ids = [int(x) for x in sys.argv[5].split()]
        rows = [struct.unpack_from(f"<{V}f", raw, i * V * 4) for i in range(len(raw) // (4 * V))]
        lp = resp["choices"][0]["logprobs"]
        n = len(ids)
        if len(rows) != n or len(lp["token_logprobs"]) != n or len(lp["tokens"]) != n:
            fail(f"{n} ids, {len(rows)} logits rows, {len(lp['token_logprobs'])} token_logprobs")
        if lp["token_logprobs"][0] is not None or lp["top_logprobs"][0] is not None:
            fail("the first token's logprob and top_logprobs must be null")
        if len(lp["text_offset"]) != n or lp["text_offset"] != sorted(lp["text_offset"]):
            fail(f"text_offset {lp['text_offset']} is not one rising offset per token")
        worst = 0.0
        for i in range(1, n):
            row = rows[i - 1]
            m = max(row)
            lse = m + math.log(sum(math.exp(v - m) for v in row))
            want = row[ids[i]] - lse
            worst = max(worst, abs(want - lp["token_logprobs"][i]))
            top = lp["top_logprobs"][i]
            best = max(range(V), key=lambda v: row[v])
            if abs(max(top.values()) - (row[best] - lse)) > 1e-5:
                fail(f"position {i}: top logprob {max(top.values())} vs {row[best] - lse}")
        if worst > 1e-5:
            fail(f"token_logprobs differ from redit logits by {worst:.3g} (> 1e-5)")
        print(f"{n - 1} logprobs within {worst:.2g}")
    elif cmd == "drain":
        port, pid, max_tokens = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        keep = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        keep.request("GET", "/v1/models")
        r = keep.getresponse()
        r.read()
        if r.status != 200:
            fail(f"GET /v1/models: {r.status}")
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        body = json.dumps({"prompt": [1], "max_tokens": max_tokens, "temperature": 0,
                           "ignore_eos": True, "stream": True})
        s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        got = b""
        while b"data: " not in got:
            part = s.recv(4096)
            if not part:
                fail("the stream closed before its first event")
            got += part
        os.kill(pid, signal.SIGTERM)
        import time
        time.sleep(0.3)
        keep.request("POST", "/v1/completions", body=json.dumps({"prompt": [1], "max_tokens": 1}),
                     headers={"Content-Type": "application/json"})
        r = keep.getresponse()
        late = json.loads(r.read())
        while True:
            part = s.recv(65536)
            if not part:
                break
            got += part
        print(json.dumps({"late_status": r.status, "late_code": late["error"]["code"],
                          "done": b"data: [DONE]" in got,
                          "error_event": b'data: {"error"' in got,
                          "finished": b'"finish_reason":"length"' in got}))
    elif cmd == "generated":
        out = open(sys.argv[2], "rb").read()
        prompt = sys.argv[3].encode()
        if not out.startswith(prompt) or not out.endswith(b"\n"):
            fail(f"unexpected redit generate output {out[:200]!r}")
        sys.stdout.write(out[len(prompt):-1].decode("utf-8", errors="replace"))
    elif cmd == "gen_logprobs":
        gen_logprobs(json.load(open(sys.argv[2])), int(sys.argv[3]),
                     [int(x) for x in sys.argv[4].split()], sys.argv[5:])
    elif cmd == "sse_logprobs":
        print(json.dumps(sse_logprobs(open(sys.argv[2], "rb").read())))
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
