"""The package reads bottom-up: no import cycles, and modules small enough to read.

import-linter (``lint-imports``, the contracts in pyproject.toml) keeps the layers of
docs/architecture.md; it lets the modules of one layer import each other both ways. These tests
read grimp's graph of ``koherent`` (imports inside functions and under ``TYPE_CHECKING``
included) and fail on any cycle, listing its imports with their lines, and on any module over
:data:`MAX_LINES` lines that :data:`LONG_MODULES` does not name.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import grimp
import pytest

from koherent._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "koherent"

#: A module longer than this holds more than one concern, unless listed below.
MAX_LINES = 400

#: Modules allowed over :data:`MAX_LINES`, each because it holds one concern.
LONG_MODULES: dict[str, str] = {
    # The lazy Assignation record: written once per process, rollback-safe, in the history
    # row's round trip; and the reading of its list of touched models.
    "koherent/records.py": "one concern",
    # The capture of QuerySet.update() and bulk_update(), and what a save changed.
    "koherent/_update.py": "one concern",
    # The SQL of the capture triggers (one function per statement it installs).
    "koherent/_triggers.py": "one concern",
    # The AuditContext, its ContextVar and the ways to set it.
    "koherent/context.py": "one concern",
    # The signed text form of a context: format, keys, verification.
    "koherent/signing.py": "one concern",
    # The audit context handed to the capture triggers with every writing statement (and the
    # record written where the router keeps it when the triggers cannot write it).
    "koherent/_handoff.py": "one concern",
}


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module: each holds a cycle."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Tarjan's algorithm, iteratively (the graph is deep enough for Python's recursion).
        work: list[tuple[str, int]] = [(start, 0)]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, position = work[-1]
            targets = edges[module]
            if position < len(targets):
                work[-1] = (module, position + 1)
                target = targets[position]
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, 0))
                elif target in on_stack:
                    low[module] = min(low[module], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return sorted(found)


def describe_cycles(graph: grimp.ImportGraph) -> list[str]:
    """Each cycle as its modules and the imports between them (``a -> b [lines]``)."""
    described: list[str] = []
    for component in import_cycles(graph):
        members = set(component)
        lines = [f"{len(component)} modules import each other: {', '.join(component)}"]
        for importer in component:
            for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
                details = graph.get_import_details(importer=importer, imported=imported)
                numbers = ", ".join(str(d["line_number"]) for d in details)
                lines.append(f"    {importer} -> {imported} [line {numbers}]")
        described.append("\n".join(lines))
    return described


def long_modules(package: Path, allowed: dict[str, str]) -> list[str]:
    """The modules of ``package`` over :data:`MAX_LINES` lines that ``allowed`` does not name."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).as_posix()
        if "/migrations/" in relative or relative in allowed:
            continue
        count = len(path.read_text().splitlines())
        if count > MAX_LINES:
            found.append(f"{relative}: {count} lines")
    return found


def test_koherent_has_no_import_cycle() -> None:
    cycles = describe_cycles(grimp.build_graph("koherent", cache_dir=None))
    assert not cycles, "import cycles in koherent:\n" + "\n".join(cycles)


def test_every_module_is_short_or_listed() -> None:
    found = long_modules(PACKAGE, LONG_MODULES)
    assert not found, (
        f"modules over {MAX_LINES} lines (split them, or add them to LONG_MODULES with why "
        "they hold one concern):\n" + "\n".join(found)
    )


def test_the_allow_list_names_long_modules_only() -> None:
    short = [
        path for path in LONG_MODULES if len((ROOT / path).read_text().splitlines()) <= MAX_LINES
    ]
    assert not short, f"listed in LONG_MODULES but not long (remove them): {short}"


@pytest.mark.processes  # lint-imports runs as a subprocess
def test_import_contracts_are_kept() -> None:
    """The contracts of pyproject.toml: the core's layers, independent front ends."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


#: Core modules that import before Django is set up (a settings file, a tool reading the
#: package): they reach the models only inside functions.
IMPORTABLE_BEFORE_SETUP = (
    "koherent._config",
    "koherent._handoff",
    "koherent._registry",
    "koherent._trigger_context",
    "koherent._transactions",
    "koherent._update",
    "koherent._users",
    "koherent._validation",
    "koherent.access",
    "koherent.capture",
    "koherent.checks",
    "koherent.fields",
    "koherent.legacy",
    "koherent.operations",
    "koherent.records",
    "koherent.resolvers",
    "koherent.routing",
    "koherent.stamping",
    "koherent.upgrade",
)


@pytest.mark.processes
def test_the_core_imports_before_django_is_set_up() -> None:
    code = "".join(f"import {module}\n" for module in IMPORTABLE_BEFORE_SETUP)
    result = subprocess.run(
        [sys.executable, "-c", code + "print('ok')"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr


# -- the checks themselves fail on a cycle ----------------------------------------------------


def _package(root: Path, name: str, files: dict[str, str]) -> None:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, source in files.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))


def _lint_imports(cwd: Path, *extra_path: Path) -> subprocess.CompletedProcess[str]:
    paths = [str(p) for p in (*extra_path, ROOT)]
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": ":".join(paths), "PATH": ""},
        check=False,
    )


def test_a_cycle_through_an_import_inside_a_function_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package(
        tmp_path,
        "cyclic",
        {
            "low": "def f() -> None:\n    from cyclic import high  # noqa\n",
            "high": "from cyclic import low  # noqa\n",
            "alone": "import cyclic.low  # noqa\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclic", cache_dir=None)
    assert import_cycles(graph) == [["cyclic.high", "cyclic.low"]]
    (described,) = describe_cycles(graph)
    assert "cyclic.low -> cyclic.high [line 2]" in described
    assert "cyclic.high -> cyclic.low [line 1]" in described


def test_no_cycle_is_reported_for_a_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _package(tmp_path, "acyclic", {"low": "", "high": "from acyclic import low  # noqa\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(grimp.build_graph("acyclic", cache_dir=None)) == []


def test_a_long_module_is_reported_unless_listed(tmp_path: Path) -> None:
    _package(tmp_path, "big", {"long": "x = 1\n" * (MAX_LINES + 1), "short": "x = 1\n"})
    assert long_modules(tmp_path / "big", {}) == [f"big/long.py: {MAX_LINES + 1} lines"]
    assert long_modules(tmp_path / "big", {"big/long.py": "one concern"}) == []


@pytest.mark.processes  # lint-imports runs as a subprocess
def test_lint_imports_refuses_a_lower_layer_importing_a_higher_one(tmp_path: Path) -> None:
    """The same kind of contract as pyproject.toml's, on a copy that breaks it."""
    _package(tmp_path, "layered", {"low": "", "high": "from layered import low  # noqa\n"})
    config = textwrap.dedent(
        """
        [tool.importlinter]
        root_package = "layered"

        [[tool.importlinter.contracts]]
        name = "layers"
        type = "layers"
        layers = ["layered.high", "layered.low"]
        """
    )
    (tmp_path / "pyproject.toml").write_text(config)
    assert _lint_imports(tmp_path, tmp_path).returncode == 0
    (tmp_path / "layered" / "low.py").write_text(
        "def f() -> None:\n    from layered import high  # noqa\n"
    )
    result = _lint_imports(tmp_path, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "layered.low is not allowed to import layered.high" in result.stdout


# -- the old paths of the modules marked internal -------------------------------------------


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_still_works_and_warns(old: str) -> None:
    if old == "koherent.triggers":
        pytest.importorskip("pgtrigger")
    new = importlib.import_module(MOVED[old])
    names = [
        name
        for name, value in vars(new).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == new.__name__
    ]
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old} is internal and is now")):
        value = getattr(importlib.import_module(old), names[0])
    assert value is getattr(new, names[0])
    assert not hasattr(importlib.import_module(old), "no_such_name")
