"""Undo an assignation: every object it changed goes back to its state from before it.

:func:`revert_assignation` works out a plan per object from the history:

- an object the assignation **created** (its first row there is a creation) is deleted;
- an object it **deleted** (first row a deletion) is re-created, with the same primary key, from
  the state its deletion row kept;
- an object it **updated** gets back the state of its history row just before the
  assignation's first change to it (whoever wrote that row), many-to-many fields tracked by
  simple-history (``HistoryField(m2m_fields=[...])``) included.

Objects whose current state already is the target are left alone. Writes go in an order
foreign keys allow: re-creations first (referenced models before the models referring to them),
then restores, then deletions (referring models first), so no statement ever points at a row
that is not there, even where constraints are checked immediately.

**Conflicts.** Before writing, the objects are locked (``SELECT ... FOR UPDATE``) and their
history read again: a row written after the assignation's first change to an object by another
assignation is a conflict (the revert would silently undo that change), and so is an object
outside the revert that a deletion would take with it (a cascade), an update whose state
before cannot be known (the object predates its history), or an object changed by a write no
history row recorded (raw SQL, another process: see :func:`_read_unrecorded`; forced, the
revert leaves the fields only that write changed as they are). Conflicts raise
:class:`RevertConflict` listing each one, unless ``force=True``. A concurrent change to a
locked object waits for the revert to commit; one committed before the lock is seen.

**Atomic and audited.** Everything runs in one transaction: a failure anywhere leaves every row
as it was. The revert runs as its own assignation (origin ``revert``, parent the reverted one),
written with bulk statements whose history rows are stamped with it like any other change, so
it shows in the history and can itself be reverted. Reverting an assignation that a live revert
already undid raises :class:`AlreadyReverted`, unless ``force=True``.

**Permissions.** A revert made on someone's behalf (``user=``: the admin, the GraphQL
mutation) needs the add, change and delete permissions of everything it writes, including what
its deletions cascade to, as Django's admin asks before its own delete
(:func:`check_revert_permissions`); the check runs inside the transaction, against the plan
applied. Every revert, refusal and failure is logged at WARNING by the ``koherent.revert``
logger.

**Cost.** Queries grow with the number of models and of batches (``batch_size`` objects per
statement), not with the number of changes: reading, locking, conflict checks and writes are
all done per model and batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import graphlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connections, models, transaction
from django.db.models import F, Window
from django.db.models.deletion import Collector, ProtectedError, RestrictedError
from django.db.models.functions import RowNumber
from django.utils import timezone

from koherent._handoff import table_reason
from koherent._logging import get_logger
from koherent._sql import chunks, typed_values
from koherent.capture import captured_by_trigger, history_written_by_caller
from koherent.context import assignation as open_assignation
from koherent.exceptions import KoherentError
from koherent.query import history_for_assignation, previous_rows
from koherent.records import ensure_record, touch
from koherent.registry import TrackedM2M, TrackedModel, tracked_model, tracked_models
from koherent.routing import history_database, record_database
from koherent.validation import validate_assignation_id

if TYPE_CHECKING:
    from koherent.context import AuditContext

#: Every revert that writes, and every refusal, at WARNING: who reverted what, through what.
revert_logger = get_logger("koherent.revert")

__all__ = [
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
    "check_revert_permissions",
    "missing_revert_permissions",
    "revert_assignation",
]

#: Objects per statement (and per ``IN`` list) unless told otherwise.
DEFAULT_BATCH_SIZE = 1000
#: The origin of the assignations reverts run as.
REVERT_ORIGIN = "revert"

#: ``progress(stage, done, total)``: called as a revert goes through its stages.
ProgressCallback = Callable[[str, int, int], None]


# -- values ------------------------------------------------------------------------------------


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


# -- errors ------------------------------------------------------------------------------------


class RevertError(KoherentError):
    """A revert was refused or failed; nothing was changed."""


class AssignationNotFound(KoherentError, LookupError):
    """No record and no history row has this assignation id."""

    def __init__(self, assignation_id: str) -> None:
        self.assignation_id = assignation_id
        super().__init__(
            f"unknown assignation {assignation_id!r}: no Assignation record and no history row"
        )


class RevertConflict(RevertError):
    """Reverting would undo or break later changes; :attr:`conflicts` lists them."""

    def __init__(self, plan: RevertPlan) -> None:
        self.plan = plan
        self.conflicts = plan.conflicts
        super().__init__(self.message())

    def message(self, *, how: str = "pass force=True", name: str = "force=True") -> str:
        """The error, telling how to override it: ``how`` to do it, ``name`` of the switch.

        The admin and ``koherent_revert`` word it for their checkbox and ``--force``.
        """
        shown = "\n".join(f"  - {c}" for c in self.conflicts[:20])
        more = len(self.conflicts) - 20
        extra = f"\n  ... and {more} more" if more > 0 else ""
        if any(c.kind is ConflictKind.PROTECTED for c in self.conflicts):
            advice = f"Protected relations block the deletions, even with {name}."
        else:
            advice = f"{how[:1].upper()}{how[1:]} to revert anyway."
        return (
            f"cannot revert assignation {self.plan.assignation_id}: "
            f"{len(self.conflicts)} conflict(s):\n{shown}{extra}\n"
            f"Nothing was changed. {advice}"
        )


class RevertPermissionDenied(RevertError, PermissionDenied):
    """The user lacks permissions the revert needs; :attr:`missing` names them.

    A :class:`django.core.exceptions.PermissionDenied` too, so a view that lets it through
    answers 403.
    """

    def __init__(self, assignation_id: str, user: Any, missing: Sequence[str]) -> None:
        self.assignation_id = assignation_id
        self.user_pk = getattr(user, "pk", None)
        self.missing = tuple(missing)
        who = f"user {self.user_pk}" if self.user_pk is not None else "an anonymous user"
        super().__init__(
            f"{who} may not revert assignation {assignation_id}: missing permission(s) "
            f"{', '.join(self.missing)}. Nothing was changed."
        )


class AlreadyReverted(RevertError):
    """The assignation was reverted already (by a revert that is itself not reverted)."""

    def __init__(self, assignation_id: str, reverted_by: Sequence[str]) -> None:
        self.assignation_id = assignation_id
        self.reverted_by = tuple(reverted_by)
        super().__init__(self.message())

    def message(self, *, how: str = "pass force=True", name: str = "force=True") -> str:
        """The error, telling how to override it (see :meth:`RevertConflict.message`)."""
        return (
            f"assignation {self.assignation_id} was already reverted by "
            f"{', '.join(self.reverted_by)}; revert that revert to bring the changes back, "
            f"or {how} to revert again"
        )


# -- per-model working state -------------------------------------------------------------------


@dataclass
class _Object:
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
class _ModelWork:
    tracked: TrackedModel
    objects: dict[Any, _Object] = field(default_factory=dict)
    rows: int = 0

    def of(self, action: RevertAction) -> list[_Object]:
        return [o for o in self.objects.values() if o.action is action]


#: A model a revert writes, and how: ``"add"``, ``"change"`` or ``"delete"``.
_Reached = tuple[type[models.Model], str]


@dataclass
class _Work:
    assignation_id: str
    using: str
    batch_size: int
    models: list[_ModelWork]
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


def _concrete(model: type[models.Model]) -> type[models.Model]:
    return model._meta.concrete_model or model


def _batch_size(using: str, wanted: int | None) -> int:
    size = wanted or DEFAULT_BATCH_SIZE
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    limit = connections[using].features.max_query_params
    return min(size, limit) if limit else size


# -- reading -----------------------------------------------------------------------------------


def _revert_chain(using: str, assignation_id: str) -> tuple[tuple[str, ...], set[str]]:
    """The live reverts of ``assignation_id`` and every assignation in its revert chain.

    A revert is live when no live revert of it exists. One query per level of the chain.
    """
    from koherent.models import Assignation

    children: dict[str, list[str]] = defaultdict(list)
    frontier = [assignation_id]
    seen = {assignation_id}
    while frontier:
        found = list(
            Assignation.objects.using(record_database(using))
            .filter(origin=REVERT_ORIGIN, parent_id__in=frontier)
            .values_list("id", "parent_id")
        )
        frontier = []
        for child, parent in found:
            if child not in seen:
                seen.add(child)
                children[parent].append(child)
                frontier.append(child)

    def live(node: str) -> bool:
        return not any(live(child) for child in children.get(node, ()))

    reverted_by = tuple(sorted(c for c in children.get(assignation_id, ()) if live(c)))
    return reverted_by, seen - {assignation_id}


def _read_rows(work: _ModelWork, using: str, assignation_id: str) -> None:
    """Each object's first row under the assignation (a window function: one row per object)."""
    t = work.tracked
    first = Window(
        RowNumber(),
        partition_by=[F(t.history_key)],
        order_by=[F("history_date").asc(), F("pk").asc()],
    )
    rows = (
        t.history_model._default_manager.using(using)
        .filter(assignation_id=assignation_id)
        .annotate(koherent_n=first)
        .filter(koherent_n=1)
        .values_list(t.pk_attname, "pk", "history_date", "history_type")
    )
    for pk, history_id, date, history_type in rows:
        work.objects[pk] = _Object(
            pk=pk, first_id=history_id, first_date=date, first_type=history_type
        )


def _lock_and_read_current(work: _ModelWork, using: str, batch: int, lock: bool) -> None:
    t = work.tracked
    manager = t.model._base_manager.using(using)
    pks = list(work.objects)
    for chunk in chunks(pks, batch):
        qs = manager.filter(pk__in=chunk)
        if lock:
            qs = qs.select_for_update()
        for obj in qs:
            work.objects[obj.pk].current = obj


def _read_targets(work: _ModelWork, using: str, batch: int) -> None:
    """Each object's target state: a deletion row, or the row before its first change.

    simple-history writes a deletion row after the through rows are gone, so the many-to-many
    state of a deleted object is read from the row before its deletion row.
    """
    t = work.tracked
    manager = t.history_model._default_manager.using(using)
    pk = t.pk_attname
    deleted = [o.first_id for o in work.objects.values() if o.first_type == "-"]
    points = [
        (o.pk, o.first_date, o.first_id)
        for o in work.objects.values()
        if o.first_type == "~" or (o.first_type == "-" and t.m2m)
    ]
    deletion_rows: dict[Any, models.Model] = {}
    for chunk in chunks(deleted, batch):
        for row in manager.filter(pk__in=chunk):
            deletion_rows[getattr(row, pk)] = row
    before: dict[Any, models.Model] = {}
    limited = connections[using].features.max_query_params is not None
    for part in chunks(points, max(1, batch // 3) if limited else batch):  # 3 params a point
        for row in previous_rows(using, t, part):
            before[getattr(row, pk)] = row
    for obj in work.objects.values():
        prev = before.get(obj.pk)
        if obj.first_type == "+":
            obj.target = None
        elif obj.first_type == "-":
            obj.target = deletion_rows.get(obj.pk)
            if prev is not None and prev.history_type != "-":  # type: ignore[attr-defined]
                obj.m2m_from = prev
        elif prev is None:
            obj.unknown = True
        elif prev.history_type == "-":  # type: ignore[attr-defined]
            obj.target = None
        else:
            obj.target = prev
            obj.m2m_from = prev


def _read_m2m(work: _ModelWork, using: str, batch: int) -> None:
    """Target and current through rows of the tracked many-to-many fields."""
    t = work.tracked
    if not t.m2m:
        return
    by_history: dict[Any, _Object] = {
        o.m2m_from.pk: o for o in work.objects.values() if o.m2m_from is not None
    }
    for m2m in t.m2m:
        name = m2m.field.name
        history_ids = list(by_history)
        for chunk in chunks(history_ids, batch):
            rows = m2m.history_model._default_manager.using(using).filter(history_id__in=chunk)
            for row in rows:
                by_history[row.history_id].m2m_target.setdefault(name, []).append(row)  # type: ignore[attr-defined]
        present = [o.pk for o in work.objects.values() if o.current is not None]
        through = m2m.through._base_manager.using(using)
        for chunk in chunks(present, batch):
            for row in through.filter(**{f"{m2m.source_attname}__in": chunk}):
                work.objects[getattr(row, m2m.source_attname)].m2m_current.setdefault(
                    name, []
                ).append(row)


def _read_conflicts(
    work: _ModelWork, using: str, assignation_id: str, batch: int, exclude: set[str]
) -> list[Conflict]:
    """Rows of the objects after the assignation's first change, by other assignations."""
    t = work.tracked
    if not work.objects:
        return []
    manager = t.history_model._default_manager.using(using)
    pk = t.pk_attname
    since = min(o.first_date for o in work.objects.values())
    earliest: dict[tuple[Any, str | None], dt.datetime] = {}
    for chunk in chunks(list(work.objects), batch):
        rows = (
            manager.filter(**{f"{pk}__in": chunk}, history_date__gte=since)
            .exclude(assignation_id=assignation_id)
            .values_list(pk, "assignation_id", "history_date", "pk")
        )
        for obj_pk, other, date, history_id in rows:
            obj = work.objects[obj_pk]
            if (date, history_id) <= (obj.first_date, obj.first_id):
                continue
            if other is not None and other in exclude:
                continue
            key = (obj_pk, other)
            if key not in earliest or date < earliest[key]:
                earliest[key] = date
    return [
        Conflict(ConflictKind.CHANGED_LATER, t.label, obj_pk, other, date)
        for (obj_pk, other), date in sorted(
            earliest.items(), key=lambda item: (str(item[0][0]), item[1])
        )
    ]


def _recorded_fields(row: models.Model) -> frozenset[str] | None:
    """The fields a history row records its write changed (None: the writer did not say)."""
    value = getattr(row, "history_changed_fields", None)
    if value is None:
        return None
    return frozenset(name for name in value.split(",") if name)


def _read_unrecorded(
    work: _ModelWork, using: str, assignation_id: str, batch: int
) -> list[Conflict]:
    """Changes to the objects that no history row recorded.

    Each update row (``~``) written by a capture that knows which fields its write changed
    (``history_changed_fields``: signal saves of loaded instances, captured ``update()`` and
    ``bulk_update()``, the update trigger of trigger capture) is compared with the object's
    previous row: a field that differs between the two but that the write did not change was
    changed in between by something no row recorded (raw SQL, another process). From the row
    before the assignation's first change onward, every such gap is found, and the object's
    live state is compared with its last row (a change since then). Rows that do not say
    (the bulk helpers, rows older than the column) are taken as complete. Under trigger
    capture every write has its row, so nothing is found unless a write skipped its row
    (``save_without_historical_record``).
    """
    t = work.tracked
    if not work.objects:
        return []
    manager = t.history_model._default_manager.using(using)
    pk = t.pk_attname
    since = min(o.first_date for o in work.objects.values())
    chains: dict[Any, list[models.Model]] = defaultdict(list)
    for chunk in chunks(list(work.objects), batch):
        rows = manager.filter(**{f"{pk}__in": chunk}, history_date__gte=since).order_by(
            pk, "history_date", "pk"
        )
        for row in rows:
            chains[getattr(row, pk)].append(row)
    compared = [f for f in t.fields if not f.primary_key]
    conflicts = []
    for obj in work.objects.values():
        start = (obj.first_date, obj.first_id)
        chain = [r for r in chains.get(obj.pk, ()) if (r.history_date, r.pk) >= start]  # type: ignore[attr-defined]
        prev: models.Model | None = obj.target if obj.first_type == "~" else None
        found: dict[str, dt.datetime | None] = {}
        own: set[str] | None = set()
        for row in chain:
            mine = row.assignation_id == assignation_id  # type: ignore[attr-defined]
            recorded = _recorded_fields(row) if row.history_type == "~" else None  # type: ignore[attr-defined]
            if recorded is not None and prev is not None and prev.history_type != "-":  # type: ignore[attr-defined]
                for f in compared:
                    if f.name not in recorded and getattr(prev, f.attname) != getattr(
                        row, f.attname
                    ):
                        found.setdefault(f.name, row.history_date)  # type: ignore[attr-defined]
            if mine and own is not None:
                own = None if recorded is None else own | recorded
            prev = row
        if obj.current is not None and prev is not None and prev.history_type != "-":  # type: ignore[attr-defined]
            for f in compared:
                if getattr(obj.current, f.attname) != getattr(prev, f.attname):
                    found.setdefault(f.name, None)
        if not found:
            continue
        obj.unrecorded = frozenset(found)
        obj.own_fields = None if own is None else frozenset(own)
        dates = [d for d in found.values() if d is not None]
        conflicts.append(
            Conflict(
                ConflictKind.UNRECORDED_CHANGE,
                t.label,
                obj.pk,
                None,
                min(dates) if dates else None,
                fields=tuple(f.name for f in compared if f.name in found),
            )
        )
    return conflicts


def _decide(work: _ModelWork) -> list[Conflict]:
    """Set each object's action; the objects whose earlier state is unknown are returned."""
    t = work.tracked
    unknown = []
    for obj in work.objects.values():
        obj.action = None
        if obj.unknown:
            unknown.append(Conflict(ConflictKind.NO_PRIOR_STATE, t.label, obj.pk))
            continue
        if obj.target is None:
            if obj.current is not None:
                obj.action = RevertAction.DELETE
            continue
        if obj.current is None:
            obj.action = RevertAction.RECREATE
            continue
        # A field only unrecorded writes changed is left as it is: the revert undoes what the
        # assignation did, never a change it did not see.
        foreign = obj.unrecorded - obj.own_fields if obj.own_fields is not None else frozenset()
        changed = [
            f.name
            for f in t.fields
            if not f.primary_key
            and f.name not in foreign
            and getattr(obj.current, f.attname) != getattr(obj.target, f.attname)
        ]
        for m2m in t.m2m:
            name = m2m.field.name
            if _targets_of(m2m, obj.m2m_target.get(name, ())) != _targets_of(
                m2m, obj.m2m_current.get(name, ())
            ):
                changed.append(name)
        if changed:
            obj.action = RevertAction.RESTORE
            obj.changed_fields = tuple(changed)
    return unknown


def _targets_of(m2m: TrackedM2M, rows: Iterable[models.Model]) -> list[Any]:
    return sorted(getattr(row, m2m.target_attname) for row in rows)


def _collect_deletions(work: _Work) -> list[Conflict]:
    """Run Django's deletion collector over the objects to delete; report what else it takes."""
    doomed: dict[type[models.Model], list[models.Model]] = {}
    wanted: set[tuple[type[models.Model], Any]] = set()
    for w in work.models:
        objs = [o.current for o in w.of(RevertAction.DELETE) if o.current is not None]
        if objs:
            doomed[w.tracked.model] = objs
            for obj in objs:
                wanted.add((_concrete(w.tracked.model), obj.pk))
    if not doomed:
        return []
    collector = Collector(using=work.using)
    conflicts: list[Conflict] = []
    try:
        for objs in doomed.values():
            collector.collect(objs)
    except (ProtectedError, RestrictedError) as exc:
        blocking = (
            exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
        )
        for obj in list(blocking)[:100]:
            conflicts.append(Conflict(ConflictKind.PROTECTED, obj._meta.label, obj.pk))
        return conflicts
    work.deletion = collector
    dependents: list[models.Model] = []
    doomed_models = {_concrete(m) for m in doomed}
    for model, instances in collector.data.items():
        for obj in instances:
            key = (_concrete(model), obj.pk)
            if key in wanted:
                continue
            if any(
                (parent, obj.pk) in wanted for parent in _children_sharing_pk(model, doomed_models)
            ):
                continue  # the parent row of a multi-table child being deleted
            dependents.append(obj)
    for model, instances in collector.data.items():
        if instances:
            work.reached.add((model, "delete"))
    for (update_field, _value), instances_list in collector.field_updates.items():
        for updated in instances_list:
            found_updates = list(updated)[:100]  # type: ignore[call-overload]
            if found_updates:
                work.reached.add((update_field.model, "change"))
            dependents.extend(found_updates)
    for qs in collector.fast_deletes:
        if _is_own_through_rows(qs.model, doomed_models):
            work.expected_fast_deletes.append(qs)
            continue
        found = list(qs[:100])
        if found:
            work.reached.add((qs.model, "delete"))
            dependents.extend(found)
        else:
            work.expected_fast_deletes.append(qs)
    conflicts.extend(_dependent_conflicts(work.using, dependents))
    return conflicts


def _children_sharing_pk(
    model: type[models.Model], doomed: set[type[models.Model]]
) -> list[type[models.Model]]:
    """The doomed models that are multi-table children of ``model``."""
    return [m for m in doomed if model in m._meta.get_parent_list()]


def _is_own_through_rows(through: type[models.Model], doomed: set[type[models.Model]]) -> bool:
    """Through rows of a many-to-many field declared on a model being deleted."""
    if not through._meta.auto_created:
        return False
    owner: Any = through._meta.auto_created
    return isinstance(owner, type) and _concrete(owner) in doomed


def _dependent_conflicts(using: str, objects: Sequence[models.Model]) -> list[Conflict]:
    by_model: dict[type[models.Model], list[Any]] = defaultdict(list)
    for obj in objects:
        by_model[type(obj)].append(obj.pk)
    conflicts = []
    for model, pks in by_model.items():
        last: dict[Any, tuple[str | None, dt.datetime]] = {}
        try:
            t = tracked_model(model)
        except LookupError:
            t = None
        if t is not None:
            rows = (
                t.history_model._default_manager.using(using)
                .filter(**{f"{t.pk_attname}__in": pks[:1000]})
                .order_by("history_date", "pk")
                .values_list(t.pk_attname, "assignation_id", "history_date")
            )
            for pk, assignation_id, date in rows:
                last[pk] = (assignation_id, date)
        for pk in sorted(set(pks), key=str):
            assignation_id, date = last.get(pk, (None, None))
            conflicts.append(
                Conflict(ConflictKind.DEPENDENT, model._meta.label, pk, assignation_id, date)
            )
    return conflicts


def _gather(
    assignation_id: str,
    *,
    using: str,
    batch_size: int,
    lock: bool,
    progress: ProgressCallback | None,
) -> _Work:
    from koherent.models import Assignation

    records = record_database(using)
    record_exists = Assignation.objects.using(records).filter(pk=assignation_id).exists()
    history = history_for_assignation(assignation_id, using=using)
    counts = history.counts()
    touched = [t for t in tracked_models(using) if t.label in counts]
    if not touched and not record_exists:
        raise AssignationNotFound(assignation_id)
    models_work = [
        _ModelWork(tracked=t, rows=counts[t.label]) for t in _in_dependency_order(touched)
    ]
    for index, w in enumerate(models_work):
        _read_rows(w, using, assignation_id)
        _lock_and_read_current(w, using, batch_size, lock)
        if progress:
            progress("read", index + 1, len(models_work))
    # Read after the locks: a revert committed meanwhile is seen here.
    reverted_by, chain = _revert_chain(using, assignation_id)
    exclude = chain if not reverted_by else set()
    work = _Work(
        assignation_id=assignation_id,
        using=using,
        batch_size=batch_size,
        models=models_work,
        conflicts=[],
        reverted_by=reverted_by,
        chain=chain,
    )
    for w in models_work:
        work.conflicts.extend(_read_conflicts(w, using, assignation_id, batch_size, exclude))
        _read_targets(w, using, batch_size)
        work.conflicts.extend(_read_unrecorded(w, using, assignation_id, batch_size))
        _read_m2m(w, using, batch_size)
        work.conflicts.extend(_decide(w))
    work.conflicts.extend(_collect_deletions(work))
    return work


def _in_dependency_order(tracked: Sequence[TrackedModel]) -> list[TrackedModel]:
    """Referenced models before the models whose foreign keys point at them."""
    by_model = {_concrete(t.model): t for t in tracked}
    sorter: graphlib.TopologicalSorter[TrackedModel] = graphlib.TopologicalSorter()
    for t in sorted(tracked, key=lambda t: t.label):
        needs = []
        for f in t.model._meta.concrete_fields:
            target = f.related_model if f.many_to_one or f.one_to_one else None
            if isinstance(target, type):
                other = by_model.get(_concrete(target))
                if other is not None and other is not t:
                    needs.append(other)
        for parent in t.model._meta.get_parent_list():
            other = by_model.get(_concrete(parent))
            if other is not None and other is not t:
                needs.append(other)
        sorter.add(t, *needs)
    try:
        return list(sorter.static_order())
    except graphlib.CycleError:
        return sorted(tracked, key=lambda t: t.label)


# -- writing -----------------------------------------------------------------------------------


def _target_instance(t: TrackedModel, row: models.Model) -> models.Model:
    """A model instance holding the tracked fields of a history row."""
    values = {f.attname: getattr(row, f.attname) for f in t.fields}
    return t.model(**values)


def _trigger_reason(
    model: type[models.Model], using: str, reason: str
) -> contextlib.AbstractContextManager[None]:
    """The revert's change reason, for the rows the triggers write for ``model``'s table."""
    if captured_by_trigger(model, using):
        return table_reason(model, reason)
    return contextlib.nullcontext()


def _write_history(
    t: TrackedModel,
    instances: Sequence[models.Model],
    history_type: str,
    using: str,
    date: dt.datetime,
    reason: str | None,
    batch: int,
) -> list[tuple[Any, Any]]:
    """History rows for ``instances`` (their current state), stamped by the context.

    Returns ``(object key, history id)`` pairs. What does not depend on the object (date,
    type, user, reason, the audit columns) is worked out once, from one row built the usual
    way (so the stamping defaults apply); on PostgreSQL it is sent once per statement, with the
    objects' values in a ``VALUES`` list, elsewhere each row goes through ``bulk_create``.
    """
    if not instances:
        return []
    hm = t.history_model
    touch(hm, using)  # the revert's record lists the model (see koherent.records)
    if captured_by_trigger(t.model, using):
        return []  # the triggers wrote them with the writes (no m2m fields there: E073)
    user = hm.get_default_history_user(instances[0])  # type: ignore[attr-defined]
    relation = hasattr(hm, "history_relation")

    def row_for(obj: models.Model) -> models.Model:
        row = hm(
            history_date=date,
            history_type=history_type,
            history_user=user,
            history_change_reason=reason,
            **{f.attname: getattr(obj, f.attname) for f in t.fields},
        )
        if relation:
            row.history_relation_id = obj.pk  # type: ignore[attr-defined]
        return row

    if connections[using].vendor == "postgresql":
        return _insert_history(t, instances, row_for(instances[0]), using, batch)
    created = hm._default_manager.using(using).bulk_create(
        [row_for(obj) for obj in instances], batch_size=batch
    )
    return [(getattr(row, t.pk_attname), row.pk) for row in created]


def _insert_history(
    t: TrackedModel,
    instances: Sequence[models.Model],
    template: models.Model,
    using: str,
    batch: int,
) -> list[tuple[Any, Any]]:
    """``INSERT INTO history (...) SELECT v.*, <shared values> FROM (VALUES ...) v``."""
    hm = t.history_model
    connection = connections[using]
    qn = connection.ops.quote_name
    tracked = {f.attname for f in t.fields}
    pk: Any = hm._meta.pk
    per_object: list[Any] = []  # from the object (or, for unique fields, a fresh default)
    shared: list[Any] = []
    for f in hm._meta.concrete_fields:
        if f is pk and isinstance(f, models.AutoField):
            continue  # numbered by the database
        if f.attname in tracked or f.attname == "history_relation_id" or f is pk or f.unique:
            per_object.append(f)
        else:
            shared.append(f)
    shared_params = [f.get_db_prep_save(f.pre_save(template, True), connection) for f in shared]

    def value(f: Any, obj: models.Model) -> Any:
        if f.attname in tracked:
            raw = getattr(obj, f.attname)
        elif f.attname == "history_relation_id":
            raw = obj.pk
        else:
            raw = f.get_default()
        return f.get_db_prep_save(raw, connection)

    names = [f"koherent_v{i}" for i in range(len(per_object))]
    columns = ", ".join(qn(str(f.column)) for f in [*per_object, *shared])
    select = ", ".join([*names, *(f"CAST(%s AS {f.cast_db_type(connection)})" for f in shared)])
    key: Any = hm._meta.get_field(t.history_key)
    returning = f"{qn(str(pk.column))}, {qn(str(key.column))}"
    written: list[tuple[Any, Any]] = []
    for chunk in chunks(instances, batch):
        params = list(shared_params)
        for obj in chunk:
            params.extend(value(f, obj) for f in per_object)
        rows = typed_values(per_object, len(chunk), connection)
        sql = (
            f"INSERT INTO {qn(hm._meta.db_table)} ({columns}) SELECT {select} "
            f"FROM (VALUES {rows}) koherent_v({', '.join(names)}) RETURNING {returning}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            written.extend((object_key, history_id) for history_id, object_key in cursor)
    return written


def _write_m2m_history(
    t: TrackedModel,
    written: Sequence[tuple[Any, Any]],
    using: str,
    batch: int,
) -> None:
    """simple-history's many-to-many snapshot of each new history row (its through rows)."""
    if not t.m2m or not written:
        return
    by_object = dict(written)
    for m2m in t.m2m:
        through = m2m.through._base_manager.using(using)
        names = [f.attname for f in m2m.through._meta.concrete_fields]
        snapshot = []
        for chunk in chunks(list(by_object), batch):
            for link in through.filter(**{f"{m2m.source_attname}__in": chunk}):
                values = {name: getattr(link, name) for name in names}
                history_id = by_object[getattr(link, m2m.source_attname)]
                snapshot.append(m2m.history_model(history_id=history_id, **values))
        m2m.history_model._default_manager.using(using).bulk_create(snapshot, batch_size=batch)


def _set_m2m(t: TrackedModel, objects: Sequence[_Object], using: str, batch: int) -> None:
    """Bring the through rows of ``objects`` to their target sets."""
    for m2m in t.m2m:
        name = m2m.field.name
        through = m2m.through._base_manager.using(using)
        stale: list[Any] = []
        missing: list[models.Model] = []
        for obj in objects:
            target_rows = {getattr(r, m2m.target_attname): r for r in obj.m2m_target.get(name, ())}
            current_rows = {
                getattr(r, m2m.target_attname): r for r in obj.m2m_current.get(name, ())
            }
            stale.extend(r.pk for key, r in current_rows.items() if key not in target_rows)
            for key, row in target_rows.items():
                if key not in current_rows:
                    values = {a: getattr(row, a) for a in m2m.value_attnames}
                    values[m2m.source_attname] = obj.pk
                    missing.append(m2m.through(**values))
        for chunk in chunks(stale, batch):
            through.filter(pk__in=chunk)._raw_delete(using)  # no signals: history is ours
        if missing:
            through.bulk_create(missing, batch_size=batch)


def _bulk_update(
    model: type[models.Model],
    objs: Sequence[models.Model],
    names: Sequence[str],
    using: str,
    batch: int,
) -> None:
    """Write ``names`` of ``objs``: one ``UPDATE ... FROM (VALUES ...)`` per batch on
    PostgreSQL (Django's ``bulk_update`` builds a ``CASE`` per field, quadratic in the batch),
    Django's ``bulk_update`` elsewhere."""
    connection = connections[using]
    concrete = {f.name: f for f in model._meta.concrete_fields}
    fields = [concrete[name] for name in names]
    if connection.vendor != "postgresql" or model._meta.parents or not objs:
        with history_written_by_caller():  # the revert writes these rows itself
            model._base_manager.using(using).bulk_update(objs, list(names), batch_size=batch)
        return
    qn = connection.ops.quote_name
    pk = model._meta.pk
    assert pk is not None
    columns = [pk, *fields]
    table = qn(model._meta.db_table)
    assignments = ", ".join(f"{qn(str(f.column))} = v.{qn(str(f.column))}" for f in fields)
    names_sql = ", ".join(qn(str(f.column)) for f in columns)
    for chunk in chunks(objs, batch):
        params: list[Any] = []
        for obj in chunk:
            params.extend(
                f.get_db_prep_save(getattr(obj, str(f.attname)), connection) for f in columns
            )
        rows = typed_values(columns, len(chunk), connection)
        sql = (
            f"UPDATE {table} SET {assignments} FROM (VALUES {rows}) AS v({names_sql}) "
            f"WHERE {table}.{qn(str(pk.column))} = v.{qn(str(pk.column))}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _apply(
    work: _Work,
    *,
    force: bool,
    progress: ProgressCallback | None,
) -> tuple[int, int, int]:
    using, batch = work.using, work.batch_size
    now = timezone.now()
    reason = f"revert of {work.assignation_id}"[:100]
    total = sum(len(w.of(a)) for w in work.models for a in RevertAction)
    done = 0

    def advance(stage: str, count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(stage, done, total)

    recreated = restored = deleted = 0
    # 1. Re-create, referenced models first.
    for w in work.models:
        t = w.tracked
        objs = w.of(RevertAction.RECREATE)
        for chunk in chunks(objs, batch):
            instances = [_target_instance(t, o.target) for o in chunk if o.target is not None]
            if t.model._meta.parents:
                # Multi-table children cannot be bulk-created; save() inserts the parent
                # rows too, and simple-history writes the history rows.
                for instance in instances:
                    instance.save(force_insert=True, using=using)
                _set_m2m(t, chunk, using, batch)
            else:
                with _trigger_reason(t.model, using, reason):
                    t.model._base_manager.using(using).bulk_create(instances, batch_size=batch)
                _set_m2m(t, chunk, using, batch)
                rows = _write_history(t, instances, "+", using, now, reason, batch)
                _write_m2m_history(t, rows, using, batch)
            recreated += len(instances)
            advance("recreate", len(chunk))
    # 2. Restore, same order.
    for w in work.models:
        t = w.tracked
        objs = w.of(RevertAction.RESTORE)
        for chunk in chunks(objs, batch):
            instances = []
            fields: set[str] = set()
            m2m_names = {m.field.name for m in t.m2m}
            for o in chunk:
                assert o.current is not None
                assert o.target is not None
                for f in t.fields:
                    if f.name in o.changed_fields:
                        setattr(o.current, f.attname, getattr(o.target, f.attname))
                        fields.add(f.name)
                instances.append(o.current)
            if fields:
                with _trigger_reason(t.model, using, reason):
                    _bulk_update(t.model, instances, sorted(fields), using, batch)
            if any(name in m2m_names for o in chunk for name in o.changed_fields):
                _set_m2m(t, chunk, using, batch)
            rows = _write_history(t, instances, "~", using, now, reason, batch)
            _write_m2m_history(t, rows, using, batch)
            restored += len(instances)
            advance("restore", len(chunk))
    # 3. Delete, referring models first.
    collector = work.deletion
    if collector is not None:
        deleted = _delete(work, collector, force=force, now=now, reason=reason)
        advance("delete", deleted)
    return deleted, restored, recreated


def _delete(
    work: _Work, collector: Collector, *, force: bool, now: dt.datetime, reason: str
) -> int:
    using, batch = work.using, work.batch_size
    doomed = {
        (_concrete(w.tracked.model), o.current.pk): o.current
        for w in work.models
        for o in w.of(RevertAction.DELETE)
        if o.current is not None
    }
    if any(c.kind is ConflictKind.DEPENDENT for c in work.conflicts):
        # Forced past objects outside the revert: Django's own deletion, cascades and
        # signals included (simple-history writes those rows, stamped with the revert).
        assert force
        collector.delete()
        return len(doomed)
    for qs in work.expected_fast_deletes:
        qs._raw_delete(using=using)
    collector.sort()
    models_in_order = [m for m in collector.data if collector.data[m]]
    for model in models_in_order:
        pks = [obj.pk for obj in collector.data[model]]
        for chunk in chunks(pks, batch):
            with _trigger_reason(model, using, reason):
                model._base_manager.using(using).filter(pk__in=chunk)._raw_delete(using)
    by_model: dict[type[models.Model], list[models.Model]] = defaultdict(list)
    for (_, _pk), obj in doomed.items():
        by_model[type(obj)].append(obj)
    for model, objs in by_model.items():
        t = tracked_model(model)
        _write_history(t, objs, "-", using, now, reason, batch)
    return len(doomed)


# -- entry point -------------------------------------------------------------------------------


@overload
def revert_assignation(
    assignation_id: str,
    *,
    dry_run: Literal[True],
    force: bool = ...,
    using: str | None = ...,
    batch_size: int | None = ...,
    progress: ProgressCallback | None = ...,
    user: Any = ...,
    via: str | None = ...,
) -> RevertPlan: ...


@overload
def revert_assignation(
    assignation_id: str,
    *,
    dry_run: Literal[False] = ...,
    force: bool = ...,
    using: str | None = ...,
    batch_size: int | None = ...,
    progress: ProgressCallback | None = ...,
    user: Any = ...,
    via: str | None = ...,
) -> RevertResult: ...


def revert_assignation(
    assignation_id: str,
    *,
    dry_run: bool = False,
    force: bool = False,
    using: str | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    user: Any = None,
    via: str | None = None,
) -> RevertPlan | RevertResult:
    """Undo every change of an assignation, in one transaction.

    With ``dry_run=True`` returns the :class:`RevertPlan` (what would be deleted, restored,
    re-created, and the conflicts) and writes nothing. Otherwise returns a
    :class:`RevertResult`, or raises:

    - :class:`AssignationNotFound` for an id with no record and no history;
    - :class:`AlreadyReverted` when a live revert of it exists (unless ``force``);
    - :class:`RevertConflict` listing the conflicts (unless ``force``);
    - :class:`RevertPermissionDenied` when ``user`` lacks a permission the revert needs;
    - :class:`RevertError` when the database refuses a write (a unique value taken since, a
      protected relation); nothing is changed then.

    The revert runs as a new assignation with origin ``revert`` and parent
    ``assignation_id``, under the user and app of the context it is called in.

    ``user``: the user on whose behalf the revert runs (a view's ``request.user``). It is
    recorded as the revert's user (and so owns the revert's assignation), and must hold the
    add, change and delete permissions of everything the revert writes, the objects its
    deletions cascade to included (:func:`check_revert_permissions`). The check is made inside
    the revert's transaction, against the plan read under the locks, i.e. the one applied.
    A dry run is not refused: compare its ``required_permissions`` with
    :func:`missing_revert_permissions`. Without ``user`` (trusted code: a script, a command)
    nothing is checked. ``via`` names the entry point in the WARNING the ``koherent.revert``
    logger writes for each revert (``"admin"``, ``"graphql"``, ``"command"``; default
    ``"python"``).

    ``using`` names the database; without it, the one the database router writes the
    assignation's history to (see :mod:`koherent.routing`), the lock reads included.

    ``batch_size`` is the number of objects per statement (default 1,000); ``progress`` is
    called as ``progress(stage, done, total)`` while writing.
    """
    validate_assignation_id(assignation_id)
    db = using or history_database(assignation_id, write=True)
    batch = _batch_size(db, batch_size)
    if dry_run:
        return _gather(
            assignation_id, using=db, batch_size=batch, lock=False, progress=None
        ).plan()
    acting = _authenticated(user)
    who = _describe(acting) if user is not None else _describe_context()
    try:
        with (
            transaction.atomic(using=db),
            # The revert's record, when it lives on another database, commits with the revert.
            (
                transaction.atomic(using=records)
                if (records := record_database(db, write=True)) != db
                else contextlib.nullcontext()
            ),
            open_assignation(
                origin=REVERT_ORIGIN,
                parent_assignation_id=assignation_id,
                **({"user": acting} if acting is not None else {}),
            ) as ctx,
        ):
            work = _gather(
                assignation_id, using=db, batch_size=batch, lock=True, progress=progress
            )
            plan = work.plan()
            if user is not None:
                # Against the plan read under the locks: the one applied below.
                check_revert_permissions(user, plan)
            if work.reverted_by and not force:
                raise AlreadyReverted(assignation_id, work.reverted_by)
            if any(c.kind is ConflictKind.PROTECTED for c in plan.conflicts):
                raise RevertConflict(plan)
            if plan.conflicts and not force:
                raise RevertConflict(plan)
            _ensure_revert_record(ctx, db)
            deleted, restored, recreated = _apply(work, force=force, progress=progress)
    except DatabaseError as exc:
        revert_logger.warning(
            "koherent: reverting assignation %s failed (%s via %s), nothing was changed: %s",
            assignation_id,
            who,
            via or "python",
            exc,
        )
        raise RevertError(
            f"reverting assignation {assignation_id} failed and nothing was changed: {exc}"
        ) from exc
    except RevertError as exc:
        revert_logger.warning(
            "koherent: revert of assignation %s refused (%s via %s): %s",
            assignation_id,
            who,
            via or "python",
            str(exc).splitlines()[0],
        )
        raise
    revert_logger.warning(
        "koherent: %s reverted assignation %s via %s as %s (%d deleted, %d restored, "
        "%d re-created%s)",
        who,
        assignation_id,
        via or "python",
        ctx.assignation_id,
        deleted,
        restored,
        recreated,
        f", {len(plan.conflicts)} conflict(s) forced" if plan.conflicts else "",
    )
    return RevertResult(
        assignation_id=assignation_id,
        revert_assignation_id=ctx.assignation_id or "",
        plan=plan,
        deleted=deleted,
        restored=restored,
        recreated=recreated,
        forced_conflicts=plan.conflicts if force else (),
    )


def missing_revert_permissions(user: Any, plan: RevertPlan) -> list[str]:
    """The permissions of ``plan.required_permissions`` that ``user`` lacks (all of them for
    ``None`` or an inactive user), sorted."""
    if user is None or not getattr(user, "is_active", True):
        return sorted(plan.required_permissions)
    return sorted(p for p in plan.required_permissions if not user.has_perm(p))


def check_revert_permissions(user: Any, plan: RevertPlan) -> None:
    """Raise :class:`RevertPermissionDenied` unless ``user`` may make the writes of ``plan``.

    The one check of every revert made on someone's behalf (the admin, the GraphQL mutation,
    ``revert_assignation(user=...)``): the add, change and delete permissions
    (``user.has_perm``) of every model the revert writes, and, as Django's admin asks before
    its own delete (``django.contrib.admin.utils.get_deleted_objects``), the delete
    permission of every model the deletion collector cascades to and the change permission
    of every model whose rows it sets to null.
    """
    missing = missing_revert_permissions(user, plan)
    if missing:
        raise RevertPermissionDenied(plan.assignation_id, user, missing)


def _authenticated(user: Any) -> Any:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def _describe(user: Any) -> str:
    if user is None:
        return "an anonymous user"
    get_username = getattr(user, "get_username", None)
    name = get_username() if callable(get_username) else ""
    return f"user {user.pk} ({name!r})" if name else f"user {user.pk}"


def _describe_context() -> str:
    from koherent.context import current

    ctx = current()
    try:
        user_pk = ctx.user_id
    except Exception:  # the log line must not fail the revert
        user_pk = None
    parts = [f"user {user_pk}" if user_pk is not None else "no user"]
    if ctx.app:
        parts.append(f"app {ctx.app!r}")
    return " ".join(parts)


def _ensure_revert_record(ctx: AuditContext, using: str) -> None:
    """The revert's record, written even when it changes nothing (it marks the revert)."""
    if ctx.assignation_id:
        ensure_record(ctx, ctx.assignation_id, using)  # on the records' database (routing)
