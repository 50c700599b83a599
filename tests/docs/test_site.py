"""The docs site builds with MkDocs in strict mode: a broken link, a missing anchor, a page
left out of the navigation or an API reference to a name that does not exist fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"

pytestmark = [
    pytest.mark.skipif(
        not MKDOCS.exists(), reason="the docs dependency group is not installed (make setup does)"
    ),
    pytest.mark.postgres,  # independent of the database: once, in the PostgreSQL pass
]


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )


def test_the_site_builds_strictly_with_the_api_reference(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    for name in ("history_for_assignation", "revert_assignation", "KoherentExtension",
                 "MissingExtra", "HistoryEntry"):  # fmt: skip
        assert name in reference, name
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")}
    built = {p.parent.name for p in (tmp_path / "site").glob("*/index.html")}
    assert pages - {"index"} <= built


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """Negative control: the same site with one dead link and one dead reference."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "koherent").symlink_to(ROOT / "koherent")
    with (copy / "docs" / "concepts.md").open("a") as page:
        page.write("\nSee [nowhere](nowhere.md) and [celery](celery.md#no-such-heading).\n")
    result = build(copy / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "nowhere.md" in result.stderr
    assert "no-such-heading" in result.stderr
