#!/usr/bin/env python3
"""file-deps.py DIR — which .c files of DIR call functions defined in which
others (by the names they define at file scope), and the circles among them.
Prints one line per file ("a.c -> b.c c.c"), then "circles: none" or each
circle; exits 1 when there is one. Used by tests/integration/0050-structure.sh
on cmd/omsd (the gateway's layering, conn.h)."""
import os
import re
import sys

# definitions at file scope: a function with its body, or data with a value
DEF = re.compile(r'^[A-Za-z_][\w \*]*?[\s\*](\w+)\s*(?:\([^;{]*\)\s*\{|(?:\[[^\]]*\])?\s*=)',
                 re.M)


TOKENS = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def strip(src):
    """Comments, strings and character constants out, in one pass."""
    return TOKENS.sub(lambda m: ' ' if m.group(0)[0] == '/' else '""', src)


def main(d):
    files = sorted(f for f in os.listdir(d) if f.endswith('.c'))
    text = {f: strip(open(os.path.join(d, f), encoding='utf-8').read()) for f in files}
    defs = {}
    for f, src in text.items():
        for m in DEF.finditer(src):
            line = src[src.rfind('\n', 0, m.start()) + 1:m.end()]
            if line.startswith(('static', 'typedef', 'extern', '#', 'return', 'else')):
                continue
            defs.setdefault(m.group(1), f)
    graph = {}
    for f, src in text.items():
        used = set(re.findall(r'\b\w+\b', src))
        graph[f] = sorted({defs[n] for n in used if n in defs and defs[n] != f})
    for f in files:
        print(f"{f} -> {' '.join(graph[f])}")
    # circles: strongly connected components of more than one file
    index, low, stack, on, comps = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for f in files:
        if f not in index:
            visit(f)
    if not comps:
        print("circles: none")
        return 0
    for c in comps:
        print("circle: " + " <-> ".join(c))
    return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else 'cmd/omsd'))
