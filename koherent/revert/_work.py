"""What a revert knows while it works: per object, per model, and for the whole revert (internal).

:func:`koherent.revert._plan.gather` fills it in, :func:`koherent.revert._apply.apply` writes
it, and :meth:`Work.plan` turns it into the :class:`~koherent.revert.RevertPlan` a caller sees.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connections, models

from koherent.revert._values import (
    DEFAULT_BATCH_SIZE,
    Conflict,
    PlannedChange,
    RevertAction,
    RevertPlan,
)

if TYPE_CHECKING:
    from django.db.models.deletion import Collector

    from koherent._registry import TrackedModel

__all__ = ["ModelWork", "ObjectWork", "Work", "concrete", "effective_batch_size"]


@dataclass
class ObjectWork:
    """What the revert knows about one object."""

    pk: Any
    first_id: Any
    first_date: dt.datetime
    first_type: str
    #: The history row holding the target state (None: the object must not exist).
    target: models.Model | None = None
    #: The history row whose many-to-many snapshot is the target set.
    m2m_from: models.Model | None = None
    #: The state before is unknown (an update with no earlier row).
    unknown: bool = False
    current: models.Model | None = None
    changed_fields: tuple[str, ...] = ()
    m2m_target: dict[str, list[models.Model]] = field(default_factory=dict)
    m2m_current: dict[str, list[models.Model]] = field(default_factory=dict)
    action: RevertAction | None = None
    #: Fields changed by writes no history row recorded.
    unrecorded: frozenset[str] = frozenset()
    #: Fields the assignation's own rows recorded as changed (None: not known).
    own_fields: frozenset[str] | None = None


@dataclass
class ModelWork:
    """What the revert knows about the objects of one tracked model."""

    tracked: TrackedModel
    objects: dict[Any, ObjectWork] = field(default_factory=dict)
    rows: int = 0

    def of(self, action: RevertAction) -> list[ObjectWork]:
        return [o for o in self.objects.values() if o.action is action]


#: A model a revert writes, and how: ``"add"``, ``"change"`` or ``"delete"``.
_Reached = tuple[type[models.Model], str]


@dataclass
class Work:
    """What the revert knows: every model's objects, the conflicts, the deletions."""

    assignation_id: str
    using: str
    batch_size: int
    models: list[ModelWork]
    conflicts: list[Conflict]
    reverted_by: tuple[str, ...]
    chain: set[str]
    deletion: Collector | None = None
    expected_fast_deletes: list[Any] = field(default_factory=list)
    #: ``(model, "delete" | "change")`` for every model with rows the deletions reach.
    reached: set[_Reached] = field(default_factory=set)

    def plan(self) -> RevertPlan:
        def changes(action: RevertAction) -> tuple[PlannedChange, ...]:
            return tuple(
                PlannedChange(action, w.tracked.label, o.pk, o.changed_fields)
                for w in self.models
                for o in w.of(action)
            )

        return RevertPlan(
            assignation_id=self.assignation_id,
            change_count=sum(w.rows for w in self.models),
            models=tuple(w.tracked.label for w in self.models),
            deletes=changes(RevertAction.DELETE),
            restores=changes(RevertAction.RESTORE),
            recreates=changes(RevertAction.RECREATE),
            unchanged=sum(
                1
                for w in self.models
                for o in w.objects.values()
                if o.action is None and not o.unknown
            ),
            conflicts=tuple(self.conflicts),
            reverted_by=self.reverted_by,
            required_permissions=self.required_permissions(),
        )

    def required_permissions(self) -> tuple[str, ...]:
        """Add/change/delete permissions of everything the revert writes, cascades included."""
        needed: set[tuple[type[models.Model], str]] = set()
        for w in self.models:
            model = w.tracked.model
            for action in RevertAction:
                if w.of(action):
                    needed.add((model, _ACTION_PERMISSION[action]))
        # What Django's deletion collector reaches, as the admin's delete asks for it: the rows
        # it deletes (cascades, parent rows of multi-table children), the rows it would delete
        # without loading them, and the rows whose foreign key it sets (SET_NULL, SET(...)).
        needed.update(self.reached)
        return tuple(
            sorted(
                {
                    _permission_name(model, action)
                    for model, action in needed
                    if not model._meta.auto_created  # a many-to-many's own through table
                }
            )
        )


_ACTION_PERMISSION = {
    RevertAction.DELETE: "delete",
    RevertAction.RESTORE: "change",
    RevertAction.RECREATE: "add",
}


def _permission_name(model: type[models.Model], action: str) -> str:
    from django.contrib.auth import get_permission_codename

    meta = model._meta
    return f"{meta.app_label}.{get_permission_codename(action, meta)}"


def concrete(model: type[models.Model]) -> type[models.Model]:
    return model._meta.concrete_model or model


def effective_batch_size(using: str, wanted: int | None) -> int:
    size = wanted or DEFAULT_BATCH_SIZE
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    limit = connections[using].features.max_query_params
    return min(size, limit) if limit else size
