"""Koherent: who changed this row, through which app, and as part of which operation.

The public API, kept in one table (:data:`_API`): ``__all__``, ``dir(koherent)`` and the lazy
imports are derived from it. Names that need Django's app registry (``HistoryField``,
``Assignation``, ...) are imported on first use, so ``import koherent`` works in settings
files and before ``django.setup()``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("koherent")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

#: Every public name, and the module it comes from.
_API: dict[str, str] = {
    # the audit context (koherent/context.py)
    "AuditContext": "koherent.context",
    "assignation": "koherent.context",
    "bind": "koherent.context",
    "context": "koherent.context",
    "current": "koherent.context",
    "get_current_app": "koherent.context",
    "get_current_assignation_id": "koherent.context",
    "get_current_task_id": "koherent.context",
    "get_current_user_id": "koherent.context",
    "new_assignation_id": "koherent.context",
    "peek": "koherent.context",
    # threads and asyncio tasks (koherent/aio.py)
    "ContextThread": "koherent.aio",
    "ContextThreadPoolExecutor": "koherent.aio",
    "create_task": "koherent.aio",
    "run_in_executor": "koherent.aio",
    "start_thread": "koherent.aio",
    # logging (koherent/log.py)
    "AuditContextFilter": "koherent.log",
    # the errors users catch (koherent/exceptions.py)
    "AssignationAccessDenied": "koherent.exceptions",
    "AssignationSpansDatabases": "koherent.exceptions",
    "AuditContextRequired": "koherent.exceptions",
    "InvalidRequestContext": "koherent.exceptions",
    "InvalidSignedContext": "koherent.exceptions",
    "KoherentError": "koherent.exceptions",
    # models (koherent/fields.py, koherent/models.py)
    "HistoricForeignKey": "koherent.fields",
    "HistoryField": "koherent.fields",
    "Assignation": "koherent.models",
    "KoherentHistoryModel": "koherent.models",
    # query by assignation (koherent/query/)
    "AssignationHistory": "koherent.query",
    "AssignationSummary": "koherent.query",
    "ChangeKind": "koherent.query",
    "FieldChange": "koherent.query",
    "HistoryEntry": "koherent.query",
    "HistoryPage": "koherent.query",
    "InvalidCursor": "koherent.query",
    "change_counts": "koherent.query",
    "effective_changes": "koherent.query",
    "get_assignation": "koherent.query",
    "history_for_assignation": "koherent.query",
    "list_assignations": "koherent.query",
    "load_entries": "koherent.query",
    "model_counts": "koherent.query",
    "object_histories": "koherent.query",
    # revert (koherent/revert.py)
    "AlreadyReverted": "koherent.revert",
    "AssignationNotFound": "koherent.revert",
    "Conflict": "koherent.revert",
    "ConflictKind": "koherent.revert",
    "PlannedChange": "koherent.revert",
    "RevertAction": "koherent.revert",
    "RevertConflict": "koherent.revert",
    "RevertError": "koherent.revert",
    "RevertPermissionDenied": "koherent.revert",
    "RevertPlan": "koherent.revert",
    "RevertResult": "koherent.revert",
    "revert_assignation": "koherent.revert",
}

#: The modules imported with the package (they work before ``django.setup()``). Their names
#: are bound now, which also keeps ``koherent.context`` the function rather than the module
#: (importing ``koherent.context`` sets the attribute to the module; the binding comes after).
_EAGER = frozenset({"koherent.aio", "koherent.context", "koherent.exceptions", "koherent.log"})

for _name, _module in _API.items():
    if _module in _EAGER:
        globals()[_name] = getattr(importlib.import_module(_module), _name)
del _name, _module

__all__ = sorted([*_API, "__version__"])  # derived from the table above


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'koherent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup finds it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


if TYPE_CHECKING:  # what type checkers see; tests/test_public_api.py keeps it equal to _API
    from koherent.aio import ContextThread as ContextThread
    from koherent.aio import ContextThreadPoolExecutor as ContextThreadPoolExecutor
    from koherent.aio import create_task as create_task
    from koherent.aio import run_in_executor as run_in_executor
    from koherent.aio import start_thread as start_thread
    from koherent.context import AuditContext as AuditContext
    from koherent.context import assignation as assignation
    from koherent.context import bind as bind
    from koherent.context import context as context
    from koherent.context import current as current
    from koherent.context import get_current_app as get_current_app
    from koherent.context import get_current_assignation_id as get_current_assignation_id
    from koherent.context import get_current_task_id as get_current_task_id
    from koherent.context import get_current_user_id as get_current_user_id
    from koherent.context import new_assignation_id as new_assignation_id
    from koherent.context import peek as peek
    from koherent.exceptions import AssignationAccessDenied as AssignationAccessDenied
    from koherent.exceptions import AssignationSpansDatabases as AssignationSpansDatabases
    from koherent.exceptions import AuditContextRequired as AuditContextRequired
    from koherent.exceptions import InvalidRequestContext as InvalidRequestContext
    from koherent.exceptions import InvalidSignedContext as InvalidSignedContext
    from koherent.exceptions import KoherentError as KoherentError
    from koherent.fields import HistoricForeignKey as HistoricForeignKey
    from koherent.fields import HistoryField as HistoryField
    from koherent.log import AuditContextFilter as AuditContextFilter
    from koherent.models import Assignation as Assignation
    from koherent.models import KoherentHistoryModel as KoherentHistoryModel
    from koherent.query import AssignationHistory as AssignationHistory
    from koherent.query import AssignationSummary as AssignationSummary
    from koherent.query import ChangeKind as ChangeKind
    from koherent.query import FieldChange as FieldChange
    from koherent.query import HistoryEntry as HistoryEntry
    from koherent.query import HistoryPage as HistoryPage
    from koherent.query import InvalidCursor as InvalidCursor
    from koherent.query import change_counts as change_counts
    from koherent.query import effective_changes as effective_changes
    from koherent.query import get_assignation as get_assignation
    from koherent.query import history_for_assignation as history_for_assignation
    from koherent.query import list_assignations as list_assignations
    from koherent.query import load_entries as load_entries
    from koherent.query import model_counts as model_counts
    from koherent.query import object_histories as object_histories
    from koherent.revert import AlreadyReverted as AlreadyReverted
    from koherent.revert import AssignationNotFound as AssignationNotFound
    from koherent.revert import Conflict as Conflict
    from koherent.revert import ConflictKind as ConflictKind
    from koherent.revert import PlannedChange as PlannedChange
    from koherent.revert import RevertAction as RevertAction
    from koherent.revert import RevertConflict as RevertConflict
    from koherent.revert import RevertError as RevertError
    from koherent.revert import RevertPermissionDenied as RevertPermissionDenied
    from koherent.revert import RevertPlan as RevertPlan
    from koherent.revert import RevertResult as RevertResult
    from koherent.revert import revert_assignation as revert_assignation
