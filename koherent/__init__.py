"""Koherent: who changed this row, through which app, and as part of which operation.

The public API. Names that need Django's app registry (``HistoryField``, ``Assignation``, ...)
are imported on first use, so ``import koherent`` works in settings files and before
``django.setup()``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from koherent.aio import (
    ContextThread,
    ContextThreadPoolExecutor,
    create_task,
    run_in_executor,
    start_thread,
)
from koherent.context import (
    AuditContext,
    assignation,
    bind,
    context,
    current,
    get_current_app,
    get_current_assignation_id,
    get_current_task_id,
    get_current_user_id,
    new_assignation_id,
)
from koherent.exceptions import (
    AuditContextRequired,
    InvalidRequestContext,
    InvalidSignedContext,
    KoherentError,
)
from koherent.log import AuditContextFilter

try:
    __version__ = version("koherent")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from koherent.fields import HistoricForeignKey, HistoryField
    from koherent.models import Assignation, KoherentHistoryModel
    from koherent.query import (
        AssignationHistory,
        AssignationSummary,
        ChangeKind,
        FieldChange,
        HistoryEntry,
        HistoryPage,
        InvalidCursor,
        change_counts,
        effective_changes,
        history_for_assignation,
        list_assignations,
        load_entries,
    )
    from koherent.revert import (
        AlreadyReverted,
        AssignationNotFound,
        Conflict,
        ConflictKind,
        PlannedChange,
        RevertAction,
        RevertConflict,
        RevertError,
        RevertPlan,
        RevertResult,
        revert_assignation,
    )

_LAZY = {
    "HistoryField": "koherent.fields",
    "HistoricForeignKey": "koherent.fields",
    "KoherentHistoryModel": "koherent.models",
    "Assignation": "koherent.models",
    # query by assignation (koherent/query.py)
    "AssignationHistory": "koherent.query",
    "AssignationSummary": "koherent.query",
    "ChangeKind": "koherent.query",
    "FieldChange": "koherent.query",
    "HistoryEntry": "koherent.query",
    "HistoryPage": "koherent.query",
    "InvalidCursor": "koherent.query",
    "change_counts": "koherent.query",
    "effective_changes": "koherent.query",
    "history_for_assignation": "koherent.query",
    "list_assignations": "koherent.query",
    "load_entries": "koherent.query",
    # revert (koherent/revert.py)
    "AlreadyReverted": "koherent.revert",
    "AssignationNotFound": "koherent.revert",
    "Conflict": "koherent.revert",
    "ConflictKind": "koherent.revert",
    "PlannedChange": "koherent.revert",
    "RevertAction": "koherent.revert",
    "RevertConflict": "koherent.revert",
    "RevertError": "koherent.revert",
    "RevertPlan": "koherent.revert",
    "RevertResult": "koherent.revert",
    "revert_assignation": "koherent.revert",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'koherent' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AlreadyReverted",
    "Assignation",
    "AssignationHistory",
    "AssignationNotFound",
    "AssignationSummary",
    "AuditContext",
    "AuditContextFilter",
    "AuditContextRequired",
    "ChangeKind",
    "Conflict",
    "ConflictKind",
    "ContextThread",
    "ContextThreadPoolExecutor",
    "FieldChange",
    "HistoricForeignKey",
    "HistoryEntry",
    "HistoryField",
    "HistoryPage",
    "InvalidCursor",
    "InvalidRequestContext",
    "InvalidSignedContext",
    "KoherentError",
    "KoherentHistoryModel",
    "PlannedChange",
    "RevertAction",
    "RevertConflict",
    "RevertError",
    "RevertPlan",
    "RevertResult",
    "__version__",
    "assignation",
    "bind",
    "change_counts",
    "context",
    "create_task",
    "current",
    "effective_changes",
    "get_current_app",
    "get_current_assignation_id",
    "get_current_task_id",
    "get_current_user_id",
    "history_for_assignation",
    "list_assignations",
    "load_entries",
    "new_assignation_id",
    "revert_assignation",
    "run_in_executor",
    "start_thread",
]
