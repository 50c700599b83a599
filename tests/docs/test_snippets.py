"""Every code block of README.md and docs/ is checked: a Python block is a repository file, a
module of a project Django checks, a run against the test project, or an excerpt whose names
resolve against the real code (tests/docs/snippets.py says which marker means what). Shell
blocks' commands must exist. A wrong name, a missing import or an attribute that does not
exist fails here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import get_commands

import koherent
from tests.docs.snippets import ROOT, Block, all_blocks, blocks, python_source
from tests.testapp.models import Order

BLOCKS = all_blocks()
PYTHON = [b for b in BLOCKS if b.lang == "python"]
EXCERPTS = [b for b in PYTHON if b.kind == "excerpt"]
FILES = [b for b in PYTHON if b.kind == "file"]
MODULES = [b for b in PYTHON if b.kind == "module"]
RUNS = [b for b in PYTHON if b.kind == "run"]
SHELL = [b for b in BLOCKS if b.lang in ("bash", "sh", "console")]
HOW = (
    "put one of <!-- snippet: excerpt [given=a,b] -->, <!-- snippet: run setup=NAME -->, "
    "<!-- snippet: module PATH --> or <!-- file: PATH --> on the line before the fence "
    "(tests/docs/snippets.py)"
)


def _ids(items: list[Block]) -> list[str]:
    return [b.id for b in items]


def test_every_python_block_is_marked() -> None:
    unmarked = [b.id for b in PYTHON if b.kind is None]
    assert unmarked == [], f"unchecked Python blocks {unmarked}: {HOW}"
    unknown = [b.id for b in BLOCKS if b.kind == "unknown"]
    assert unknown == [], f"unknown markers {unknown}: {HOW}"
    assert len(PYTHON) >= 40  # the parser finds the blocks (a guard against a silent zero)


def test_an_unmarked_block_is_found(tmp_path: Path) -> None:
    """Negative control: the parser reports a block without a marker as unmarked."""
    page = tmp_path / "page.md"
    page.write_text(
        "Text\n\n```python\nimport koherent\n```\n\n"
        "<!-- snippet: excerpt -->\n```python\nx = 1\n```\n"
    )
    found = blocks(page)
    assert [(b.lang, b.kind) for b in found] == [("python", None), ("python", "excerpt")]


@pytest.mark.parametrize("block", FILES, ids=_ids(FILES))
def test_a_file_block_is_the_file(block: Block) -> None:
    assert block.target is not None
    path = ROOT / block.target
    assert path.is_file(), block.target
    assert block.code == path.read_text().rstrip("\n"), (
        f"{block.id} differs from {block.target}: copy the file into the page"
    )


def test_the_quickstart_page_shows_every_file_of_its_project() -> None:
    project = ROOT / "examples" / "quickstart"
    shown = {b.target for b in FILES if b.document.name == "quickstart.md"}
    files = {
        str(p.relative_to(ROOT))
        for p in project.rglob("*.py")
        if "migrations" not in p.parts and p.name not in ("manage.py", "__init__.py")
    }
    assert files <= shown, files - shown
    assert "examples/quickstart/proj/__init__.py" in shown


# -- excerpts ----------------------------------------------------------------------------------


def check_excerpts(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.docs.excerpts"],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    problems: dict[str, list[str]] = json.loads(result.stdout)
    return problems


def _item(block: Block) -> dict[str, Any]:
    return {
        "id": block.id,
        "source": python_source(block),
        "given": sorted(block.given),
        "optional": [o for o in block.options.get("optional", "").split(",") if o],
    }


#: The checks in subprocesses do not use the test database: they run once, in the PostgreSQL
#: pass, not again on SQLite.
once = pytest.mark.postgres


@pytest.fixture(scope="module")
def excerpt_problems() -> dict[str, list[str]]:
    return check_excerpts([_item(b) for b in EXCERPTS])


@once
@pytest.mark.parametrize("block", EXCERPTS, ids=_ids(EXCERPTS))
def test_an_excerpt_uses_only_names_that_exist(
    block: Block, excerpt_problems: dict[str, list[str]]
) -> None:
    assert excerpt_problems[block.id] == [], f"{block.id}: {excerpt_problems[block.id]}"


@once
def test_the_excerpt_check_catches_what_users_hit() -> None:
    """Negative control: the issue's snippets, as they were, fail the check."""
    problems = check_excerpts(
        [
            {  # README "Across services", before the fix
                "id": "http",
                "source": "import koherent\n"
                "client = koherent.http.httpx.install(httpx.Client())\n",
                "given": [],
            },
            {
                "id": "name",
                "source": "import koherent\nkoherent.history_for_assignmen('x')\n",
                "given": [],
            },
            {"id": "from", "source": "from koherent.query import no_such_thing\n", "given": []},
            {"id": "syntax", "source": "def broken(:\n", "given": []},
            {
                "id": "fine",
                "source": "import koherent.http.httpx\nimport httpx\n"
                "koherent.http.httpx.install(httpx.Client())\n",
                "given": [],
            },
        ]
    )
    assert any("has no attribute 'http'" in p for p in problems["http"]), problems
    assert any("'httpx' is neither imported" in p for p in problems["http"]), problems
    assert any("'history_for_assignmen'" in p for p in problems["name"]), problems
    assert any("cannot import 'no_such_thing'" in p for p in problems["from"]), problems
    assert problems["syntax"][0].startswith("does not parse")
    assert problems["fine"] == []


# -- a project from the module blocks ----------------------------------------------------------


def build_project(modules: dict[str, str], where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.docs.project", str(where)],
        input=json.dumps(modules),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


@once
def test_the_module_blocks_make_a_project_django_accepts(tmp_path: Path) -> None:
    modules = {}
    for block in MODULES:
        assert block.target is not None
        assert block.target not in modules, f"{block.id}: {block.target} shown twice"
        modules[block.target] = block.code
    assert {"shop/models.py", "myproject/schema.py", "myproject/urls.py"} <= set(modules)
    result = build_project(modules, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "project ok" in result.stdout


@once
def test_a_schema_naming_a_field_the_model_lacks_is_refused(tmp_path: Path) -> None:
    """Negative control (the issue's graphql.md schema): a field the model does not have."""
    modules = {b.target: b.code for b in MODULES if b.target}
    modules["shop/models.py"] = modules["shop/models.py"].replace(
        '    status = models.CharField(max_length=20, default="new")\n', ""
    )
    assert "status" not in modules["shop/models.py"]
    result = build_project(modules, tmp_path)
    assert result.returncode != 0
    assert "status" in result.stderr


# -- blocks run against the test project -------------------------------------------------------

README_ID = "3f6c2b1e-8d4a-4c55-9a0e-7b1d2c3e4f50"
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def _readme(user: Any) -> dict[str, Any]:
    with (
        koherent.context(task_id="9b2e4c1a-0000-4000-8000-000000000000"),
        koherent.assignation(README_ID, user=user, app="backoffice"),
    ):
        order = Order.objects.create(reference="A-1")
        order.status = "paid"
        order.save()
    return {"Order": Order}


def _undo(user: Any) -> dict[str, Any]:
    with koherent.assignation(user=user, app="backoffice") as ctx:
        order = Order.objects.create(reference="U-1")
        order.total = 12
        order.save()
        Order.objects.create(reference="U-2")
    return {
        "assignation_id": ctx.assignation_id,
        "alice": user,
        "monday": T0 - dt.timedelta(days=3650),
        "tuesday": T0 + dt.timedelta(days=3650),
    }


SETUPS: dict[str, Callable[[Any], dict[str, Any]]] = {"readme": _readme, "undo": _undo}
PAGES = sorted({(b.document.relative_to(ROOT).as_posix(), b.options["setup"]) for b in RUNS})


def run_blocks(page_blocks: list[Block], namespace: dict[str, Any]) -> None:
    for block in page_blocks:
        code = compile(python_source(block), block.id, "exec")
        exec(code, namespace)


@pytest.mark.django_db
@pytest.mark.parametrize(("page", "setup"), PAGES, ids=[p for p, _ in PAGES])
def test_the_run_blocks_of_a_page_run(page: str, setup: str, user: Any) -> None:
    namespace = SETUPS[setup](user)
    page_blocks = [b for b in RUNS if b.document == ROOT / page]
    run_blocks(page_blocks, namespace)
    if setup == "readme":
        assert not Order.objects.filter(reference="A-1").exists()  # the revert ran
    else:
        assert namespace["result"].deleted == 2  # docs/undo.md's revert ran
        assert len(namespace["entries"]) == 3


@pytest.mark.django_db
def test_the_readme_snippet_as_it_was_fails(user: Any) -> None:
    """Negative control: the README line the issue reports, run on rows, fails as it did."""
    namespace = _readme(user)
    namespace["koherent"] = koherent
    namespace["README_ID"] = README_ID
    source = (
        "[(e.model_label, e.kind) for e in koherent.history_for_assignation(README_ID).rows()]"
    )
    with pytest.raises(AttributeError, match="model_label"):
        exec(source, namespace)


# -- shell blocks ------------------------------------------------------------------------------

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MAKE_TARGETS = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])


#: Management commands of the example projects (not installed in the test settings).
EXAMPLE_COMMANDS = {p.stem for p in (ROOT / "examples").glob("**/management/commands/*.py")}


def _commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuations joined, comments, prompts and leading
    ``VAR=value`` assignments dropped, programs by their name (``../.venv/bin/celery``)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip().removeprefix("$ ")
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]
        if words:
            commands.append([Path(words[0]).name, *words[1:]])
    return commands


def shell_problems(block: Block) -> list[str]:
    problems = []
    commands = {*get_commands(), *EXAMPLE_COMMANDS}
    for words in _commands(block.code):
        if words[:2] == ["pip", "install"]:
            for word in words[2:]:
                found = re.fullmatch(r"koherent\[([a-z,]+)\]", word)
                if found:
                    problems += [f"no extra {e!r}" for e in found.group(1).split(",")
                                 if e not in EXTRAS]  # fmt: skip
        elif words[0] == "make":
            problems += [f"no make target {t!r}" for t in words[1:2] if t not in MAKE_TARGETS]
        elif "manage.py" in words[:2]:
            name = words[words.index("manage.py") + 1]
            if name not in commands and name not in ("makemigrations", "migrate"):
                problems.append(f"no management command {name!r}")
        elif words[:2] == ["celery", "-A"]:
            problems += [f"not a celery command {w!r}" for w in words[3:4]
                         if w not in ("worker", "beat")]  # fmt: skip
    return problems


@pytest.mark.parametrize("block", SHELL, ids=_ids(SHELL))
def test_a_shell_block_names_commands_that_exist(block: Block) -> None:
    assert shell_problems(block) == []


def test_the_shell_check_catches_a_wrong_command(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '```bash\npip install "koherent[celery,test]"\nmake nothing\n'
        "python manage.py koherent_histories x\n```\n"
    )
    (block,) = blocks(page)
    assert shell_problems(block) == [
        "no extra 'test'",
        "no make target 'nothing'",
        "no management command 'koherent_histories'",
    ]
