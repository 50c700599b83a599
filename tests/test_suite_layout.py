"""The suite's own rules: fixtures are never imported, only tests marked ``processes`` start
processes (``make test-fast`` leaves those out and must not start any), and mypy --strict
checks the tests as it checks the package."""

from __future__ import annotations

import ast
import ctypes.util
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import process_guard
from tests.process_guard import ProcessStarted

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
#: A pytest run in a test (pytester): the guard, without the suite's other plugins.
GUARD_ONLY = ("-p", "tests.process_guard", "-p", "no:django", "-p", "no:asyncio", "-p", "no:anyio")


def modules() -> dict[str, Path]:
    """Every module of the suite by its dotted name (``tests.undo.scenario``)."""
    found = {}
    for path in sorted(TESTS.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, source: str | None = None) -> Iterator[str]:
    """What the module ``name`` imports: ``module`` for ``import module``, ``module.name`` for
    ``from module import name``, ``module.*`` for a star import."""
    tree = ast.parse(source if source is not None else path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)


def fixtures(name: str, path: Path) -> set[str]:
    """The fixtures the module defines, as ``module.fixture`` (and ``module.*``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if "fixture" in ast.unparse(target):
                    found.add(f"{name}.{node.name}")
    return found | {f"{name}.*"} if found else found


def forbidden_imports(
    name: str, path: Path, fixture_names: set[str], source: str | None = None
) -> list[str]:
    """What ``name`` imports from a conftest, and the fixtures it imports from elsewhere."""
    return sorted(
        {
            target
            for target in imported(name, path, source)
            if "conftest" in target.split(".") or target in fixture_names
        }
    )


def test_no_module_imports_a_conftest_or_a_fixture() -> None:
    """Tests import helpers from plain modules; fixtures come from a folder's conftest or a
    plugin in the root conftest's ``pytest_plugins``. An imported fixture would be a second
    fixture of the same name, with its own scope and instances."""
    found = modules()
    fixture_names = set().union(*(fixtures(name, path) for name, path in found.items()))
    assert {"tests.undo.fixtures.scenario", "tests.celery.fixtures.start_worker"} <= fixture_names
    offenders = {
        name: bad
        for name, path in found.items()
        if (bad := forbidden_imports(name, path, fixture_names))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "source",
    [
        "from tests.undo.conftest import Scenario",
        "import tests.graphql.conftest",
        "from tests.graphql import conftest",
        "from .conftest import Echo",
        "from . import conftest",
        "def f():\n    from tests.undo.fixtures import scenario",
        "from tests.undo.fixtures import *",
    ],
)
def test_the_import_rule_sees_every_spelling(source: str) -> None:
    path = TESTS / "http" / "test_example.py"
    fixture_names = fixtures("tests.undo.fixtures", TESTS / "undo" / "fixtures.py")
    assert forbidden_imports("tests.http.test_example", path, fixture_names, source)


def test_the_import_rule_lets_plain_modules_through() -> None:
    path = TESTS / "undo" / "test_example.py"
    source = (
        "from tests.undo.scenario import Scenario\nfrom . import scenario\n"
        "from tests.graphql.test_websocket import connect\nimport tests.undo.fixtures\n"
    )
    fixture_names = fixtures("tests.undo.fixtures", TESTS / "undo" / "fixtures.py")
    assert forbidden_imports("tests.undo.test_example", path, fixture_names, source) == []


def test_a_test_without_the_marker_cannot_start_a_process(request: pytest.FixtureRequest) -> None:
    with pytest.raises(ProcessStarted, match="refused outside the tests marked"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    with pytest.raises(ProcessStarted):
        os.system("true")
    with pytest.raises(ProcessStarted):
        os.posix_spawn("/bin/true", ["true"], {})
    attempts = process_guard.take_attempts(request.node.nodeid)
    assert [attempt.split("(")[0] for attempt in attempts] == [
        "subprocess.Popen",
        "os.system",
        "os.posix_spawn",
    ]


def test_a_library_lookup_is_refused_without_failing_the_test(
    request: pytest.FixtureRequest,
) -> None:
    """ctypes.util.find_library runs ldconfig, gcc and ld: refused, it finds nothing."""
    assert ctypes.util.find_library("c") is None
    assert process_guard.take_attempts(request.node.nodeid) == []


@pytest.mark.processes
def test_a_marked_test_may_start_one() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_a_module_that_starts_a_process_on_import_is_not_collected(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        "import subprocess, sys\n\n"
        "subprocess.run([sys.executable, '-c', 'pass'])\n\n"
        "def test_it():\n    pass\n"
    )
    result = pytester.runpytest_inprocess(*GUARD_ONLY, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "collecting the tests started a process: subprocess.Popen" in result.stderr.str()


CONFTEST = """
import pytest

@pytest.fixture
def start_worker():
    return "a worker"

@pytest.fixture
def worker(start_worker):
    return start_worker
"""


@pytest.mark.parametrize(
    ("mark", "refused"),
    [("", True), ("@pytest.mark.processes", False)],
    ids=["unmarked", "marked"],
)
def test_collection_refuses_a_process_fixture_without_the_marker(
    pytester: pytest.Pytester, mark: str, refused: bool
) -> None:
    """A test that uses a fixture starting processes, even through another fixture, must be
    marked: the session stops at collection otherwise (before ``-m`` deselects anything)."""
    pytester.makeini("[pytest]\nmarkers =\n    processes: starts processes\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(f"import pytest\n\n{mark}\ndef test_it(worker):\n    pass\n")
    result = pytester.runpytest_inprocess(*GUARD_ONLY, "--collect-only", "-m", "not processes")
    if refused:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert "test_it (uses start_worker)" in result.stderr.str()
    else:
        assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED  # deselected by -m


def test_mypy_checks_the_suite_too() -> None:
    """``mypy`` (``make lint``, the lint step of ``scripts/run_tests.py``) reads its files from
    pyproject.toml: the package and every test module but generated migrations and the
    koherent 0.2.0 project of the upgrade test."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert {"koherent", "tests"} <= set(config["files"])
    assert config["strict"] is True
    excluded = [re.compile(pattern) for pattern in config["exclude"]]
    checked = {
        path.relative_to(ROOT).as_posix()
        for path in TESTS.rglob("*.py")
        if not any(pattern.search(path.relative_to(ROOT).as_posix()) for pattern in excluded)
    }
    left_out = {path.relative_to(ROOT).as_posix() for path in TESTS.rglob("*.py")} - checked
    assert {
        p for p in left_out if "/migrations/" not in p and "/upgrade/project/" not in p
    } == set()
    assert "tests/test_suite_layout.py" in checked
    # Plain ``mypy``, without paths that would replace the configured files.
    assert '[python, "-m", "mypy"]' in (ROOT / "scripts" / "run_tests.py").read_text()
