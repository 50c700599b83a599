"""The plan of a revert: what it reads, decides and checks before writing (internal).

:func:`gather` reads an assignation's history and the objects' current state, model by model
in foreign-key order, decides each object's action, and finds the conflicts;
:func:`check_revert_permissions` is the permission check of a revert made on someone's
behalf.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from koherent._registry import TrackedM2M, TrackedModel, tracked_models
from koherent.query import history_for_assignation
from koherent.revert._conflicts import collect_deletions, read_conflicts, read_unrecorded
from koherent.revert._read import (
    lock_and_read_current,
    read_m2m,
    read_rows,
    read_targets,
    revert_chain,
)
from koherent.revert._values import (
    Conflict,
    ConflictKind,
    ProgressCallback,
    RevertAction,
    RevertPlan,
)
from koherent.revert._work import ModelWork, Work, concrete
from koherent.revert.errors import AssignationNotFound, RevertPermissionDenied
from koherent.routing import record_database

if TYPE_CHECKING:
    from django.db import models

__all__ = ["check_revert_permissions", "gather", "missing_revert_permissions"]


def gather(
    assignation_id: str,
    *,
    using: str,
    batch_size: int,
    lock: bool,
    progress: ProgressCallback | None,
) -> Work:
    """Everything a revert of ``assignation_id`` needs to know, its conflicts included.

    With ``lock``, the objects' current rows are locked (``SELECT ... FOR UPDATE``) before the
    rest is read, so that the plan is the one applied. Raises :class:`AssignationNotFound`.
    """
    from koherent.models import Assignation

    records = record_database(using)
    record_exists = Assignation.objects.using(records).filter(pk=assignation_id).exists()
    history = history_for_assignation(assignation_id, using=using)
    counts = history.counts()
    touched = [t for t in tracked_models(using) if t.label in counts]
    if not touched and not record_exists:
        raise AssignationNotFound(assignation_id)
    models_work = [
        ModelWork(tracked=t, rows=counts[t.label]) for t in _in_dependency_order(touched)
    ]
    for index, w in enumerate(models_work):
        read_rows(w, using, assignation_id)
        lock_and_read_current(w, using, batch_size, lock)
        if progress:
            progress("read", index + 1, len(models_work))
    # Read after the locks: a revert committed meanwhile is seen here.
    reverted_by, chain = revert_chain(using, assignation_id)
    exclude = chain if not reverted_by else set()
    work = Work(
        assignation_id=assignation_id,
        using=using,
        batch_size=batch_size,
        models=models_work,
        conflicts=[],
        reverted_by=reverted_by,
        chain=chain,
    )
    for w in models_work:
        work.conflicts.extend(read_conflicts(w, using, assignation_id, batch_size, exclude))
        read_targets(w, using, batch_size)
        work.conflicts.extend(read_unrecorded(w, using, assignation_id, batch_size))
        read_m2m(w, using, batch_size)
        work.conflicts.extend(_decide(w))
    work.conflicts.extend(collect_deletions(work))
    return work


def _decide(work: ModelWork) -> list[Conflict]:
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


def _in_dependency_order(tracked: Sequence[TrackedModel]) -> list[TrackedModel]:
    """Referenced models before the models whose foreign keys point at them."""
    by_model = {concrete(t.model): t for t in tracked}
    sorter: graphlib.TopologicalSorter[TrackedModel] = graphlib.TopologicalSorter()
    for t in sorted(tracked, key=lambda t: t.label):
        meta = t.model._meta
        referenced = [
            f.related_model for f in meta.concrete_fields if f.many_to_one or f.one_to_one
        ]
        needs = []
        for target in [*referenced, *meta.get_parent_list()]:
            other = by_model.get(concrete(target)) if isinstance(target, type) else None
            if other is not None and other is not t:
                needs.append(other)
        sorter.add(t, *needs)
    try:
        return list(sorter.static_order())
    except graphlib.CycleError:
        return sorted(tracked, key=lambda t: t.label)


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
