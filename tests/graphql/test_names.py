"""The GraphQL types' Python names: apart from the core's, the former ones deprecated; and the
GraphQL subpackage's modules import each other without a cycle."""

from __future__ import annotations

import importlib

import grimp
import pytest

import koherent
import koherent.strawberry
from koherent.strawberry import mutations, types

RENAMED = {
    "Assignation": (types, "AssignationType", koherent.Assignation),
    "FieldChange": (types, "FieldChangeType", koherent.FieldChange),
    "HistoryEntry": (types, "HistoryEntryType", koherent.HistoryEntry),
    "PlannedChange": (mutations, "PlannedChangeType", koherent.PlannedChange),
    "RevertPlan": (mutations, "RevertPlanType", koherent.RevertPlan),
    "RevertResult": (mutations, "RevertResultType", koherent.RevertResult),
}


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_a_type_keeps_its_graphql_name_under_a_python_name_of_its_own(old: str) -> None:
    module, new, core = RENAMED[old]
    graphql_type = getattr(koherent.strawberry, new)
    assert graphql_type is getattr(module, new)
    assert graphql_type.__strawberry_definition__.name == old
    assert graphql_type is not core
    assert new in koherent.strawberry.__all__
    assert old not in koherent.strawberry.__all__


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_the_former_python_name_still_works_with_a_warning(old: str) -> None:
    module, new, _ = RENAMED[old]
    with pytest.warns(DeprecationWarning, match=f"{old} is now .*{new}"):
        assert getattr(koherent.strawberry, old) is getattr(module, new)


def test_the_defining_modules_keep_the_former_names_too() -> None:
    with pytest.warns(DeprecationWarning, match="HistoryEntry is now"):
        assert types.HistoryEntry is types.HistoryEntryType
    with pytest.warns(DeprecationWarning, match="RevertPlan is now"):
        assert mutations.RevertPlan is mutations.RevertPlanType
    # Assignation too: the module imports the core's model under another name.
    with pytest.warns(DeprecationWarning, match="Assignation is now"):
        assert types.Assignation is types.AssignationType


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = mutations.NoSuchType


def _cycles(package: str) -> list[set[str]]:
    """The strongly connected components (of more than one module) of ``package``'s imports,
    imports inside functions and under ``TYPE_CHECKING`` included."""
    graph = grimp.build_graph("koherent")
    modules = sorted(m for m in graph.modules if m.startswith(package))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph.find_modules_directly_imported_by(module):
            if not other.startswith(package):
                continue
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in modules:
        if module not in index:
            visit(module)
    return found


@pytest.mark.parametrize("package", ["koherent.strawberry", "koherent.query"])
def test_no_import_cycle_inside_the_read_side(package: str) -> None:
    importlib.import_module(package)
    assert _cycles(package) == []
