"""The documentation holds together: every page is listed in the index and the README, and
every relative link (and its #anchor) leads somewhere. The README is also the package index's
page, so its links into the repository are absolute (and must lead somewhere too)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
DOCUMENTS = [ROOT / "README.md", ROOT / "examples" / "README.md", *PAGES]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
#: Where the README's links into the repository point.
REPOSITORY = "https://github.com/koherent/koherent/blob/main/"


def local(target: str) -> str:
    """A link into the repository, as a path relative to its root (others unchanged)."""
    return target.removeprefix(REPOSITORY)


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # not inside code blocks
    return LINK.findall(text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_the_docs_folder_has_the_pages_a_newcomer_needs() -> None:
    names = {page.name for page in PAGES}
    assert {
        "index.md",
        "concepts.md",
        "django.md",
        "celery.md",
        "asyncio.md",
        "graphql.md",
        "undo.md",
        "admin.md",
        "settings.md",
        "security.md",
        "upgrading.md",
    } <= names


@pytest.mark.parametrize("index", ["docs/index.md", "README.md"])
def test_every_docs_page_is_listed(index: str) -> None:
    listed = {
        (ROOT / index).parent.joinpath(local(target).split("#")[0]).resolve()
        for target in links(ROOT / index)
    }
    missing = [page.name for page in PAGES if page.name != "index.md" and page not in listed]
    assert missing == [], f"{index} does not link {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(document: Path) -> None:
    broken = []
    for target in links(document):
        if document.name == "README.md" and document.parent == ROOT:
            # The package index shows the README: a relative link would be dead there.
            assert not re.match(r"[\w.]+/|[\w-]+\.md", target), f"relative link {target}"
        if document.parent == DOCS:
            # The docs site has only docs/: a link out of it goes to the repository.
            assert not target.startswith("../"), f"link out of docs/: {target}"
        if target.startswith(REPOSITORY):
            target = str(Path(os.path.relpath(ROOT / local(target), document.parent)))
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (document.parent / file_part).resolve() if file_part else document
        checks_anchor = anchor and destination.suffix == ".md" and destination.exists()
        if not destination.exists() or (checks_anchor and anchor not in anchors(destination)):
            broken.append(target)
    assert broken == [], f"{document.name}: broken links {broken}"
