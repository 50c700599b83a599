"""Koherent for strawberry-graphql-django: the audit context of each operation, history types,
assignation queries and a revert mutation.

This subpackage is the only part of Koherent that imports strawberry (and, for websockets,
Channels). ``KoherentExtension`` is importable before Django's app registry is ready; the
other names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from koherent.extras import require

require("koherent.strawberry", "strawberry", "strawberry", "strawberry_django", "graphql")

from koherent.strawberry.extension import KoherentExtension

if TYPE_CHECKING:
    from koherent.strawberry.fields import history_field
    from koherent.strawberry.filters import HistoryFilter, HistoryFilterMixin
    from koherent.strawberry.mutations import (
        AlreadyRevertedError,
        AssignationNotFoundError,
        KoherentMutation,
        PlannedChange,
        RevertConflictError,
        RevertConflictItem,
        RevertFailedError,
        RevertPlan,
        RevertResult,
    )
    from koherent.strawberry.queries import AssignationFilter, KoherentQuery
    from koherent.strawberry.types import (
        Assignation,
        FieldChange,
        HistoryEntry,
        HistoryEntryPage,
        HistoryUser,
        ModelChanges,
    )
    from koherent.strawberry.websocket import KoherentGraphQLWSConsumer

_LAZY = {
    "AlreadyRevertedError": "koherent.strawberry.mutations",
    "AssignationNotFoundError": "koherent.strawberry.mutations",
    "KoherentMutation": "koherent.strawberry.mutations",
    "PlannedChange": "koherent.strawberry.mutations",
    "RevertConflictError": "koherent.strawberry.mutations",
    "RevertConflictItem": "koherent.strawberry.mutations",
    "RevertFailedError": "koherent.strawberry.mutations",
    "RevertPlan": "koherent.strawberry.mutations",
    "RevertResult": "koherent.strawberry.mutations",
    "Assignation": "koherent.strawberry.types",
    "AssignationFilter": "koherent.strawberry.queries",
    "FieldChange": "koherent.strawberry.types",
    "HistoryEntry": "koherent.strawberry.types",
    "HistoryEntryPage": "koherent.strawberry.types",
    "HistoryFilter": "koherent.strawberry.filters",
    "HistoryFilterMixin": "koherent.strawberry.filters",
    "HistoryUser": "koherent.strawberry.types",
    "KoherentGraphQLWSConsumer": "koherent.strawberry.websocket",
    "KoherentQuery": "koherent.strawberry.queries",
    "ModelChanges": "koherent.strawberry.types",
    "history_field": "koherent.strawberry.fields",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'koherent.strawberry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AlreadyRevertedError",
    "Assignation",
    "AssignationFilter",
    "AssignationNotFoundError",
    "FieldChange",
    "HistoryEntry",
    "HistoryEntryPage",
    "HistoryFilter",
    "HistoryFilterMixin",
    "HistoryUser",
    "KoherentExtension",
    "KoherentGraphQLWSConsumer",
    "KoherentMutation",
    "KoherentQuery",
    "ModelChanges",
    "PlannedChange",
    "RevertConflictError",
    "RevertConflictItem",
    "RevertFailedError",
    "RevertPlan",
    "RevertResult",
    "history_field",
]
