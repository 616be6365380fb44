#!/usr/bin/env python3
"""Lists the longest non-test functions of Rust source folders, and files over a line limit.

    scripts/longest-functions.py [--top N] [--max-file LINES] DIR...

A function's length runs from its `fn` line to its closing brace; doc comments above it are not
counted. Test modules (`#[cfg(test)] mod ... {`, to the end of the file, as this project writes
them) are skipped. Braces inside strings, chars and comments are ignored. Exits 1 when a file
is longer than --max-file (default 1200) lines.
"""

import re
import sys
from pathlib import Path

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")


def code_only(line: str, in_block: bool) -> tuple[str, bool]:
    """The line without comments, strings and chars; whether a block comment is still open."""
    out, i = [], 0
    while i < len(line):
        if in_block:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out), True
            i, in_block = end + 2, False
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            in_block, i = True, i + 2
            continue
        if c == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
            continue
        if c == "'" and re.match(r"'(\\.|[^\\'])'", line[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", line[i:]).group(0))
            continue
        out.append(c)
        i += 1
    return "".join(out), in_block


def functions(path: Path):
    lines = path.read_text().splitlines()
    cut = next((n for n, l in enumerate(lines) if re.match(r"\s*#\[cfg\(test\)\]", l)
                and n + 1 < len(lines) and re.match(r"\s*(pub(\(\w+\))?\s+)?mod\s+\w+", lines[n + 1])), len(lines))
    lines = lines[:cut]
    cleaned, in_block = [], False
    for line in lines:
        text, in_block = code_only(line, in_block)
        cleaned.append(text)
    for start, line in enumerate(cleaned):
        match = FN.match(line)
        if not match:
            continue
        depth, opened = 0, False
        for end in range(start, len(cleaned)):
            for c in cleaned[end]:
                if c == "{":
                    depth, opened = depth + 1, True
                elif c == "}":
                    depth -= 1
                elif c == ";" and not opened and depth == 0:
                    break  # a declaration without a body
            else:
                if opened and depth == 0:
                    yield end - start + 1, match.group(1), start + 1
                    break
                continue
            break


def main():
    args = sys.argv[1:]
    top, max_file = 5, 1200
    if "--top" in args:
        i = args.index("--top"); top = int(args[i + 1]); del args[i:i + 2]
    if "--max-file" in args:
        i = args.index("--max-file"); max_file = int(args[i + 1]); del args[i:i + 2]
    found, too_long = [], []
    for folder in args or ["crates"]:
        for path in sorted(Path(folder).rglob("*.rs")):
            if "/tests/" in f"/{path}" or "/target/" in f"/{path}":
                continue
            count = len(path.read_text().splitlines())
            if count > max_file:
                too_long.append((count, path))
            for length, name, line in functions(path):
                found.append((length, f"{path}:{line}", name))
    for length, where, name in sorted(found, reverse=True)[:top]:
        print(f"{length:5} lines  {name}  ({where})")
    for count, path in too_long:
        print(f"file over {max_file} lines: {path} ({count})")
    sys.exit(1 if too_long else 0)


if __name__ == "__main__":
    main()
