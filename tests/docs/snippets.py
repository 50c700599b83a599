"""The code blocks of README.md and docs/*.md, and what each one's marker says to do with it.

A Python block is preceded (on the line just before its fence) by one HTML comment, which
Markdown renderers do not show:

``<!-- file: PATH -->``
    The block is the file ``PATH`` of the repository, verbatim (the quick start's files).
``<!-- snippet: module PATH -->``
    The block is the module ``PATH`` of one throwaway project built from every such block
    (docs/django.md's models, docs/graphql.md's schema...); the project is set up and checked
    by Django in a subprocess, so a field or a name that does not exist fails.
``<!-- snippet: run [setup=NAME] -->``
    The block runs against the test project; the blocks of one page share one namespace, in
    page order, primed by the named setup (see ``tests/docs/test_snippets.py``).
``<!-- snippet: excerpt [given=a,b] -->``
    A fragment that cannot run alone: it must parse, its imports must import, every attribute
    it reads from what it imports must exist (``koherent.http.httpx.install`` after only
    ``import koherent`` does not), and every other name it uses must be defined in the block,
    a builtin, or listed in ``given`` (so a missing import fails).

Shell blocks need no marker: the commands a user types are checked (``pip install`` extras
exist, ``make`` targets exist, ``manage.py`` commands exist), and the quick start's are run by
tests/demo/test_quickstart.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "examples" / "README.md",
]

FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*(file|snippet):\s*(.*?)\s*-->\s*$")
KINDS = {"file", "module", "run", "excerpt"}


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    kind: str | None = None  # file, module, run, excerpt; None when unmarked
    target: str | None = None  # the path of a file or module block
    options: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def given(self) -> set[str]:
        names = self.options.get("given", "")
        return {n for n in names.split(",") if n}


def _marker(line: str) -> tuple[str | None, str | None, dict[str, str]]:
    found = MARKER.match(line)
    if found is None:
        return None, None, {}
    if found.group(1) == "file":
        return "file", found.group(2), {}
    words = found.group(2).split()
    if not words:
        return "unknown", None, {}
    kind, rest = words[0], words[1:]
    target = None
    options: dict[str, str] = {}
    for word in rest:
        if "=" in word:
            key, _, value = word.partition("=")
            options[key] = value
        else:
            target = word
    return (kind if kind in KINDS else "unknown"), target, options


def blocks(document: Path) -> list[Block]:
    """Every fenced block of ``document``, with the marker just above it."""
    lines = document.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        before = lines[index - 1] if index else ""
        kind, target, options = _marker(before)
        found.append(
            Block(
                document=document,
                line=index + 1,
                lang=opening.group(1),
                code="\n".join(lines[index + 1 : end]),
                kind=kind,
                target=target,
                options=options,
            )
        )
        index = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in blocks(document)]


def python_source(block: Block) -> str:
    """The block as Python source: a doctest-style block keeps its statements only."""
    lines = block.code.splitlines()
    if not any(line.startswith(">>> ") for line in lines):
        return block.code
    source = []
    for line in lines:
        if line.startswith((">>> ", "... ")):
            source.append(line[4:])
        elif line in (">>>", "..."):
            source.append("")
    return "\n".join(source)
