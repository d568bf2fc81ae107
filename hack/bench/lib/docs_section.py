"""Replaces one benchmark's section of docs/benchmarks.md, leaving the others as they are.

Each benchmark owns the text between `<!-- NAME -->` and `<!-- /NAME -->`; a section not there
yet is appended.
"""
import os


def replace(path, name, body):
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before = text[:text.index(start)]
        after = text[text.index(end) + len(end):]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
