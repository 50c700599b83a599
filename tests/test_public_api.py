"""The public API of ``koherent``: exactly these names, each resolving to its object.

Adding or removing a public name is a decision: change ``koherent._API`` and this list together.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import koherent

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    # the audit context
    "AuditContext",
    "assignation",
    "bind",
    "context",
    "current",
    "get_current_app",
    "get_current_assignation_id",
    "get_current_task_id",
    "get_current_user_id",
    "new_assignation_id",
    "peek",
    # threads and asyncio tasks
    "ContextThread",
    "ContextThreadPoolExecutor",
    "create_task",
    "run_in_executor",
    "start_thread",
    # logging
    "AuditContextFilter",
    # errors
    "AssignationAccessDenied",
    "AssignationSpansDatabases",
    "AuditContextRequired",
    "InvalidRequestContext",
    "InvalidSignedContext",
    "KoherentError",
    # models
    "HistoricForeignKey",
    "HistoryField",
    "Assignation",
    "KoherentHistoryModel",
    # query
    "AssignationHistory",
    "AssignationSummary",
    "ChangeKind",
    "FieldChange",
    "HistoryEntry",
    "HistoryPage",
    "InvalidCursor",
    "change_counts",
    "effective_changes",
    "get_assignation",
    "history_for_assignation",
    "list_assignations",
    "load_entries",
    "model_counts",
    "object_histories",
    # revert
    "AlreadyReverted",
    "AssignationNotFound",
    "Conflict",
    "ConflictKind",
    "PlannedChange",
    "RevertAction",
    "RevertConflict",
    "RevertError",
    "RevertPermissionDenied",
    "RevertPlan",
    "RevertResult",
    "revert_assignation",
    # metadata
    "__version__",
}

#: The errors a caller catches, all of them Koherent's own.
ERRORS = {
    "AlreadyReverted",
    "AssignationAccessDenied",
    "AssignationNotFound",
    "AssignationSpansDatabases",
    "AuditContextRequired",
    "InvalidCursor",
    "InvalidRequestContext",
    "InvalidSignedContext",
    "RevertConflict",
    "RevertError",
    "RevertPermissionDenied",
}


def test_all_is_exactly_the_public_names() -> None:
    assert set(koherent.__all__) == PUBLIC
    assert koherent.__all__ == sorted(koherent.__all__)
    assert len(koherent.__all__) == len(PUBLIC)  # no name twice


def test_dir_lists_every_public_name() -> None:
    missing = PUBLIC - set(dir(koherent))
    assert not missing, missing
    assert "HistoryField" in dir(koherent)


@pytest.mark.parametrize("name", sorted(PUBLIC - {"__version__"}))
def test_each_name_resolves_to_the_object_of_its_module(name: str) -> None:
    value = getattr(koherent, name)
    module = importlib.import_module(koherent._API[name])
    assert value is getattr(module, name)


def test_star_import_gives_every_name() -> None:
    namespace: dict[str, object] = {}
    exec("from koherent import *", namespace)
    assert set(namespace) >= PUBLIC


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        koherent.not_a_name  # noqa: B018


def test_the_errors_users_catch_are_exported() -> None:
    for name in ERRORS:
        error = getattr(koherent, name)
        assert issubclass(error, koherent.KoherentError), name
    assert issubclass(koherent.RevertPermissionDenied, koherent.RevertError)
    assert issubclass(koherent.AssignationAccessDenied, koherent.InvalidRequestContext)


def test_context_is_the_function_even_after_importing_the_module() -> None:
    module = importlib.import_module("koherent.context")

    assert callable(koherent.context)
    assert koherent.context is module.context


def test_peek_tells_no_context_from_an_empty_one() -> None:
    assert koherent.peek() is None
    assert koherent.current() == koherent.AuditContext()
    with koherent.context(app="peeked"):
        seen = koherent.peek()
        assert seen is not None
        assert seen.app == "peeked"
    assert koherent.peek() is None


def _typing_imports() -> set[tuple[str, str]]:
    """The ``(name, module)`` pairs of the ``if TYPE_CHECKING:`` block of ``koherent``."""
    tree = ast.parse((ROOT / "koherent" / "__init__.py").read_text())
    found: set[tuple[str, str]] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                for alias in statement.names:
                    assert alias.asname == alias.name, alias.name  # an explicit re-export
                    found.add((alias.name, str(statement.module)))
    return found


def test_what_type_checkers_see_is_the_table() -> None:
    assert _typing_imports() == set(koherent._API.items())


def test_no_module_imports_the_private_context_variable_where_peek_does() -> None:
    """``peek()`` replaces ``_current.get()`` in the read-only integrations."""
    for path in (
        "koherent/_transactions.py",
        "koherent/http/propagation.py",
        "koherent/records.py",
    ):
        assert "_current" not in (ROOT / path).read_text(), path


@pytest.mark.processes
def test_import_before_django_setup_binds_the_eager_names() -> None:
    code = (
        "import sys, koherent\n"
        "assert callable(koherent.context) and callable(koherent.peek)\n"
        "assert koherent.KoherentError.__module__ == 'koherent.exceptions'\n"
        "assert 'koherent.query' not in sys.modules, 'query imported eagerly'\n"
        "assert 'HistoryField' in dir(koherent)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
