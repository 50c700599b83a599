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

from koherent.strawberry._renamed import RENAMED, renamed
from koherent.strawberry.extension import KoherentExtension

if TYPE_CHECKING:
    from koherent.strawberry.fields import history_field
    from koherent.strawberry.filters import HistoryFilter, HistoryFilterMixin
    from koherent.strawberry.mutations import (
        AlreadyRevertedError,
        AssignationNotFoundError,
        KoherentMutation,
        PlannedChangeType,
        RevertConflictError,
        RevertConflictItem,
        RevertFailedError,
        RevertPlanType,
        RevertResultType,
    )
    from koherent.strawberry.queries import AssignationFilter, KoherentQuery
    from koherent.strawberry.types import (
        AssignationType,
        FieldChangeType,
        HistoryEntryPage,
        HistoryEntryType,
        HistoryUser,
        ModelChanges,
    )
    from koherent.strawberry.websocket import KoherentGraphQLWSConsumer

_LAZY = {
    "AlreadyRevertedError": "koherent.strawberry.mutations",
    "AssignationNotFoundError": "koherent.strawberry.mutations",
    "KoherentMutation": "koherent.strawberry.mutations",
    "PlannedChangeType": "koherent.strawberry.mutations",
    "RevertConflictError": "koherent.strawberry.mutations",
    "RevertConflictItem": "koherent.strawberry.mutations",
    "RevertFailedError": "koherent.strawberry.mutations",
    "RevertPlanType": "koherent.strawberry.mutations",
    "RevertResultType": "koherent.strawberry.mutations",
    "AssignationType": "koherent.strawberry.types",
    "AssignationFilter": "koherent.strawberry.queries",
    "FieldChangeType": "koherent.strawberry.types",
    "HistoryEntryType": "koherent.strawberry.types",
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
    if module is None and name in RENAMED:
        # The types' former Python names (Assignation, HistoryEntry, ...), deprecated.
        return renamed(__name__, name)
    if module is None:
        # koherent 0.2's ProvenanceEntry, with a DeprecationWarning (koherent.legacy).
        return importlib.import_module("koherent.legacy").resolve(__name__, name)
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AlreadyRevertedError",
    "AssignationFilter",
    "AssignationNotFoundError",
    "AssignationType",
    "FieldChangeType",
    "HistoryEntryPage",
    "HistoryEntryType",
    "HistoryFilter",
    "HistoryFilterMixin",
    "HistoryUser",
    "KoherentExtension",
    "KoherentGraphQLWSConsumer",
    "KoherentMutation",
    "KoherentQuery",
    "ModelChanges",
    "PlannedChangeType",
    "RevertConflictError",
    "RevertConflictItem",
    "RevertFailedError",
    "RevertPlanType",
    "RevertResultType",
    "history_field",
]
