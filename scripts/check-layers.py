#!/usr/bin/env python3
"""Fails when files of a crate's src/ import each other in a circle.

    scripts/check-layers.py crates/wsgate/src [more src dirs...]

Every `crate::a::b`, `super::x` and `self::x` path in a file (in `use` lines and inline) is
resolved to the file of the deepest module it names; an item of a module counts as that module's
file. A file's `mod x;` line alone is not an import; using `x::` after it is. Test modules (`#[cfg(test)] mod tests { ... }` to
the end of the file) are left out: a test may use whatever it tests. Prints the edges of every
circle and exits 1 when there is one, else prints the file count and exits 0.
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def modules(src: Path):
    """Module path (tuple) -> file, for every .rs file below src."""
    found = {}
    for file in src.rglob("*.rs"):
        parts = list(file.relative_to(src).with_suffix("").parts)
        if parts in (["lib"], ["main"]):
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        found[tuple(parts)] = file
    return found


def own_module(src: Path, file: Path):
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        return tuple(parts[:-1])
    return tuple(parts)


def without_tests(text: str) -> str:
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    text = text[: cut.start()] if cut else text
    # Comments and doc comments name paths without importing them.
    return re.sub(r"//[^\n]*", "", text)


def resolve(mods, here, root, rest):
    """The file a path names: the deepest existing module along it."""
    if root == "crate":
        base = []
    elif root == "self":
        base = list(here)
    else:
        base = list(here[:-1])
    path = base + [p for p in rest if p]
    while path and tuple(path) not in mods:
        path.pop()
    return mods.get(tuple(path))


def edges(src: Path):
    mods = modules(src)
    graph = {f: set() for f in mods.values()}
    for file in mods.values():
        here = own_module(src, file)
        # main.rs is a crate of its own (the binary): its `crate::` is not the library's.
        if file.name == "main.rs":
            continue
        text = without_tests(file.read_text())
        targets = []
        for root, prefix, group in USE_GROUP.findall(text):
            stem = prefix.strip(":").split("::") if prefix else []
            for item in group.split(","):
                item = item.strip().split(" as ")[0].strip()
                if not item or item == "self":
                    targets.append((root, stem))
                    continue
                targets.append((root, stem + [p for p in item.split("::") if p and p != "{"]))
        for root, rest in PATH.findall(text):
            targets.append((root, rest.strip(":").split("::")))
        # A parent that calls into its own child modules (`mod x;` then `x::f()`) depends on them.
        for child in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M):
            if re.search(rf"(?<![:\w]){child}::", text):
                targets.append(("self", [child]))
        for root, rest in targets:
            target = resolve(mods, here, root, [p for p in rest if p not in ("{", "*")])
            if target is not None and target != file:
                graph[file].add(target)
    return graph


def cycles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    failed = False
    for arg in sys.argv[1:] or ["crates/wsgate/src"]:
        src = Path(arg)
        graph = edges(src)
        found = cycles(graph)
        for component in found:
            failed = True
            members = set(component)
            print(f"import circle in {src}:")
            for f in sorted(component):
                for t in sorted(graph[f] & members):
                    print(f"  {f.relative_to(src)} -> {t.relative_to(src)}")
        if not found:
            print(f"{src}: {len(graph)} files, no import circle")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
