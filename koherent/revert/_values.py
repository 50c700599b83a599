"""The values a revert hands back: its plan, its result, its conflicts (internal).

Re-exported by :mod:`koherent.revert`; import them from there.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "REVERT_ORIGIN",
    "Conflict",
    "ConflictKind",
    "PlannedChange",
    "ProgressCallback",
    "RevertAction",
    "RevertPlan",
    "RevertResult",
]

#: Objects per statement (and per ``IN`` list) unless told otherwise.
DEFAULT_BATCH_SIZE = 1000
#: The origin of the assignations reverts run as.
REVERT_ORIGIN = "revert"

#: ``progress(stage, done, total)``: called as a revert goes through its stages.
ProgressCallback = Callable[[str, int, int], None]


class RevertAction(enum.StrEnum):
    """What a revert does to one object."""

    DELETE = "delete"
    RESTORE = "restore"
    RECREATE = "recreate"


class ConflictKind(enum.StrEnum):
    """Why an object stops a revert (unless it is forced)."""

    #: Another assignation changed the object after this one first did.
    CHANGED_LATER = "changed-later"
    #: An object outside the revert refers to one the revert deletes (a cascade would take it).
    DEPENDENT = "dependent"
    #: The assignation updated an object whose earlier state is not in the history.
    NO_PRIOR_STATE = "no-prior-state"
    #: A deletion the database refuses (``on_delete=PROTECT``/``RESTRICT``); force cannot help.
    PROTECTED = "protected"
    #: The object was changed by a write no history row recorded (raw SQL, another process),
    #: between its history rows or after the last one (see "Unrecorded changes" below).
    UNRECORDED_CHANGE = "unrecorded-change"


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """One write of a revert."""

    action: RevertAction
    #: ``app_label.ModelName`` of the object's model.
    model_label: str
    object_id: Any
    #: For a restore, the fields (and tracked many-to-many fields) that get their old value.
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        suffix = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action} {self.model_label} {self.object_id}{suffix}"


@dataclass(frozen=True, slots=True)
class Conflict:
    """An object whose revert would lose or break something."""

    kind: ConflictKind
    model_label: str
    object_id: Any
    #: The assignation that changed the object later (``None``: outside any assignation, or
    #: not known).
    assignation_id: str | None = None
    #: When it did (the first such change), if known.
    date: dt.datetime | None = None
    #: For an unrecorded change: the fields it changed.
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        what = f"{self.model_label} {self.object_id}"
        if self.kind is ConflictKind.UNRECORDED_CHANGE:
            when = (
                f" before the row of {self.date.isoformat()}"
                if self.date
                else " since its last row"
            )
            return (
                f"{what} was changed by a write no history row recorded{when} "
                f"({', '.join(self.fields)})"
            )
        if self.kind is ConflictKind.CHANGED_LATER:
            by = self.assignation_id or "a change outside any assignation"
            when = f" at {self.date.isoformat()}" if self.date else ""
            return f"{what} was changed later by {by}{when}"
        if self.kind is ConflictKind.DEPENDENT:
            by = f" (last changed by {self.assignation_id})" if self.assignation_id else ""
            return f"{what} refers to an object the revert deletes{by}"
        if self.kind is ConflictKind.NO_PRIOR_STATE:
            return f"{what} has no history from before the assignation changed it"
        return f"{what} protects an object the revert deletes"


@dataclass(frozen=True)
class RevertPlan:
    """What reverting an assignation does (``dry_run=True``), or did."""

    assignation_id: str
    #: History rows the assignation wrote.
    change_count: int
    #: Labels of the models it touched.
    models: tuple[str, ...]
    deletes: tuple[PlannedChange, ...]
    restores: tuple[PlannedChange, ...]
    recreates: tuple[PlannedChange, ...]
    #: Objects already in their state from before the assignation.
    unchanged: int
    conflicts: tuple[Conflict, ...]
    #: Live reverts of this assignation (empty unless it was reverted already).
    reverted_by: tuple[str, ...] = ()
    #: The Django permissions (``app_label.codename``) a user needs to make this revert: add,
    #: change or delete on every model it writes, the models its deletions cascade to (or set
    #: to null) included, as the admin's own delete asks (see :func:`check_revert_permissions`).
    required_permissions: tuple[str, ...] = ()

    @property
    def changes(self) -> tuple[PlannedChange, ...]:
        """Every write, in the order they are made."""
        return self.recreates + self.restores + self.deletes

    @property
    def is_empty(self) -> bool:
        """True when the revert has nothing to write."""
        return not self.changes

    def summary(self) -> str:
        """One line: how many objects are deleted, restored, re-created."""
        return (
            f"{len(self.deletes)} to delete, {len(self.restores)} to restore, "
            f"{len(self.recreates)} to re-create, {self.unchanged} unchanged, "
            f"{len(self.conflicts)} conflict(s)"
        )


@dataclass(frozen=True)
class RevertResult:
    """What :func:`revert_assignation` did."""

    assignation_id: str
    #: The assignation the revert ran as (origin ``revert``, parent ``assignation_id``).
    revert_assignation_id: str
    plan: RevertPlan
    deleted: int
    restored: int
    recreated: int
    #: The conflicts ``force=True`` overrode (empty when there were none).
    forced_conflicts: tuple[Conflict, ...] = ()

    def summary(self) -> str:
        return (
            f"reverted {self.assignation_id} as {self.revert_assignation_id}: "
            f"{self.deleted} deleted, {self.restored} restored, {self.recreated} re-created"
        )
