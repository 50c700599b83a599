"""Where the revert sits among Koherent's modules: a service, in no import cycle.

The import graph is read from the source (every import, those inside functions and under
``TYPE_CHECKING`` included), so that a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "koherent"
FRONT_ENDS = (
    "koherent.admin",
    "koherent.apps",
    "koherent.celery",
    "koherent.checks",
    "koherent.contrib",
    "koherent.http",
    "koherent.management",
    "koherent.middleware",
    "koherent.strawberry",
    "koherent.structlog",
    "koherent.tasks",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_graph() -> dict[str, set[str]]:
    """Each module of ``koherent`` and the modules of ``koherent`` it imports."""
    sources = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, path in sources.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in sources else base
                    for alias in node.names
                ]
            graph[name].update(t for t in targets if t in sources and t != name)
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    return seen


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return _import_graph()


def _revert_modules(graph: dict[str, set[str]]) -> list[str]:
    return sorted(m for m in graph if m == "koherent.revert" or m.startswith("koherent.revert."))


def test_the_graph_sees_imports_inside_functions(graph: dict[str, set[str]]) -> None:
    assert "koherent._history_rows" in graph["koherent._update"]  # a function-level import
    assert len(_revert_modules(graph)) > 5


def test_no_module_of_the_revert_is_in_an_import_cycle(graph: dict[str, set[str]]) -> None:
    in_cycles = [m for m in _revert_modules(graph) if m in _reachable(graph, m)]
    assert not in_cycles, in_cycles


def test_the_revert_imports_no_front_end(graph: dict[str, set[str]]) -> None:
    for module in _revert_modules(graph):
        reached = sorted(m for m in _reachable(graph, module) if m.startswith(FRONT_ENDS))
        assert not reached, (module, reached)


def test_the_history_row_writers_sit_below_the_query_and_the_revert(
    graph: dict[str, set[str]],
) -> None:
    reached = _reachable(graph, "koherent._history_rows")
    above = sorted(m for m in reached if m.startswith(("koherent.query", "koherent.revert")))
    assert not above, above
    assert not any(m.startswith(FRONT_ENDS) for m in reached)
