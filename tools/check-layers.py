#!/usr/bin/env python3
"""The layering of src/, checked from the #include lines (DESIGN.md: data flows downward only).

Floors, bottom to top: core, io, text, model, gen, data, train, lua, serve, tui, cli. A file in
src/FLOOR/ may include
  - a public header include/redit/X.h whose first comment names its floor "(F layer" with F at or
    below FLOOR; headers tagged "(F layer, engine-internal)" only from the engine floors
    (core .. train);
  - a header of its own folder ("x.h"), or the one protoc-c generates into the build folder
    from a .proto of its folder ("x.pb-c.h" from src/FLOOR/x.proto);
  - another folder's header "F/x.h" only when F is an engine floor at or below FLOOR and FLOOR is
    an engine floor (the engine's internal headers: src/core/*.h and the like).
A public header may include public headers of its floor or below. Every public header must carry
its floor tag. Since every allowed edge points down or stays on its floor, the folder graph has no
cycle. Exit status 1 and one line per violation when any is found; with --graph, prints the
folder-to-folder edges (with counts) too.
"""
import os
import re
import sys

FLOORS = ["core", "io", "text", "model", "gen", "data", "train", "lua", "serve", "tui", "cli"]
ENGINE = set(FLOORS[: FLOORS.index("train") + 1])
RANK = {f: i for i, f in enumerate(FLOORS)}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
TAG = re.compile(r"\((\w+) layer(, engine-internal)?")


def header_floors(root):
    """{name: (floor, internal)} for include/redit/*.h, and the list of problems."""
    out, problems = {}, []
    folder = os.path.join(root, "include", "redit")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".h"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            head = f.read(600)
        m = TAG.search(head)
        if not m or m.group(1) not in RANK:
            problems.append(f"include/redit/{name}: the first comment names no floor "
                            f"(\"(core layer)\" ... \"(cli layer)\")")
            continue
        out[name] = (m.group(1), bool(m.group(2)))
    return out, problems


def includes(path):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield n, m.group(1)


def check(root):
    public, problems = header_floors(root)
    edges = {}

    def edge(src_floor, dst_floor):
        if src_floor != dst_floor:
            edges[(src_floor, dst_floor)] = edges.get((src_floor, dst_floor), 0) + 1

    def target_of(inc, own_floor):
        """(floor, kind) of an include seen from own_floor; kind public/internal/own/other."""
        if inc.startswith("redit/"):
            name = inc[len("redit/"):]
            if name not in public:
                return None, "unknown"
            floor, internal = public[name]
            return floor, "internal" if internal else "public"
        parts = inc.split("/")
        if len(parts) == 1:
            return own_floor, "own"
        if len(parts) == 2 and parts[0] in RANK:
            return parts[0], "private"
        return None, "unknown"

    # public headers
    for name, (floor, _) in public.items():
        path = os.path.join(root, "include", "redit", name)
        for n, inc in includes(path):
            dst, kind = target_of(inc, floor)
            where = f"include/redit/{name}:{n}"
            if kind not in ("public", "internal"):
                problems.append(f"{where}: a public header includes \"{inc}\" (not a public header)")
            elif RANK[dst] > RANK[floor]:
                problems.append(f"{where}: {floor} header includes \"{inc}\" of the {dst} floor above it")
            else:
                edge(floor, dst)

    # sources
    for floor in FLOORS:
        folder = os.path.join(root, "src", floor)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".c", ".h")):
                continue
            for n, inc in includes(os.path.join(folder, name)):
                where = f"src/{floor}/{name}:{n}"
                dst, kind = target_of(inc, floor)
                if kind == "unknown":
                    problems.append(f"{where}: \"{inc}\" is neither a public header, nor one of "
                                    f"this folder, nor an engine floor's")
                    continue
                if kind == "own":
                    # protoc-c's reader of src/FLOOR/X.proto, generated into the build folder
                    generated = inc.endswith(".pb-c.h") and os.path.exists(
                        os.path.join(folder, inc[: -len(".pb-c.h")] + ".proto"))
                    if not generated and not os.path.exists(os.path.join(folder, inc)):
                        problems.append(f"{where}: \"{inc}\" is not in src/{floor}/")
                    continue
                if RANK[dst] > RANK[floor]:
                    problems.append(f"{where}: the {floor} floor includes \"{inc}\" of the {dst} "
                                    f"floor above it")
                    continue
                if kind == "private" and dst not in ENGINE:
                    problems.append(f"{where}: \"{inc}\" is private to src/{dst}/; give it a "
                                    f"public header")
                    continue
                if kind in ("internal", "private") and floor not in ENGINE:
                    problems.append(f"{where}: \"{inc}\" is internal to the engine; the {floor} "
                                    f"floor uses the public API")
                    continue
                edge(floor, dst)
    return problems, edges


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    problems, edges = check(root)
    if "--graph" in sys.argv:
        for (a, b), count in sorted(edges.items(), key=lambda e: (RANK[e[0][0]], RANK[e[0][1]])):
            print(f"{a} -> {b} ({count})")
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} violation(s) of the layering (tools/check-layers.py)")
        return 1
    print(f"check-layers: {len(edges)} folder edges, all downward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
