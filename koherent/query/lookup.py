"""Looking assignations up: finding one (:func:`get_assignation`), listing them with their change
counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from koherent.query.counts import change_counts
from koherent.query.timeline import history_for_assignation
from koherent.routing import record_database

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from koherent.models import Assignation

__all__ = [
    "AssignationFilters",
    "AssignationSummary",
    "assignations",
    "get_assignation",
    "list_assignations",
]

#: The ``origin`` of the stand-in :func:`get_assignation` makes for history without a record.
UNKNOWN_ORIGIN = "unknown"


def get_assignation(assignation_id: str, *, using: str | None = None) -> Assignation | None:
    """The assignation ``assignation_id``: its record, else a stand-in, else ``None``.

    The record is read from the database the router keeps the records of the history on
    ``using`` in (:func:`koherent.routing.record_database`). History written without a record
    (rows written with ``RECORD_ASSIGNATIONS`` off, or by raw SQL) gets a stand-in: an unsaved
    :class:`~koherent.models.Assignation` (``_state.adding`` is true) made from its first
    history row (user, app, task, date; origin ``"unknown"``), read where the router reads
    the assignation's history (:func:`koherent.routing.history_database`, or ``using``); its
    ``_state.db`` is the database its record would be on.
    ``None`` when there is neither: each front end says "not found" its own way.

    One query when there is a record; else that one, the lookup of the touched tables and the
    first row.
    """
    from koherent.models import Assignation

    records = Assignation.objects.using(record_database(using))
    record = records.filter(pk=assignation_id).first()
    if record is not None:
        return record
    history = history_for_assignation(assignation_id, using=using)
    page = history.page(first=1)
    if not page.rows:
        return None
    first = page.entries[0]
    stand_in = Assignation(
        id=assignation_id,
        user_pk=first.user_id,
        app=first.app,
        origin=UNKNOWN_ORIGIN,
        created=first.date,
        task_id=first.task_id,
    )
    stand_in._state.db = records.db  # where its record would be
    return stand_in


@dataclass(frozen=True, slots=True)
class AssignationSummary:
    """An assignation record with the number of history rows written under it."""

    assignation: Assignation
    change_count: int


class AssignationFilters(TypedDict, total=False):
    """The conditions of :func:`assignations`, as keyword arguments of
    :func:`list_assignations`."""

    user: Any
    app: str | None
    origin: str | None
    since: dt.datetime | None
    until: dt.datetime | None
    parent: str | None


def assignations(
    *,
    user: Any = None,
    app: str | None = None,
    origin: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    parent: str | None = None,
    using: str | None = None,
) -> QuerySet[Assignation]:
    """Assignation records, newest first, filtered by what is given.

    ``user`` takes a user or a primary key; ``since`` and ``until`` bound ``created``
    (inclusive, exclusive). Only assignations with a record are listed (see the
    ``RECORD_ASSIGNATIONS`` setting).
    """
    from koherent.models import Assignation

    qs = Assignation.objects.using(record_database(using)).all()
    if user is not None:
        qs = qs.filter(user_pk=str(getattr(user, "pk", user)))
    if app is not None:
        qs = qs.filter(app=app)
    if origin is not None:
        qs = qs.filter(origin=origin)
    if since is not None:
        qs = qs.filter(created__gte=since)
    if until is not None:
        qs = qs.filter(created__lt=until)
    if parent is not None:
        qs = qs.filter(parent_id=parent)
    return qs.order_by("-created", "id")


def list_assignations(
    *,
    limit: int = 100,
    offset: int = 0,
    using: str | None = None,
    **filters: Unpack[AssignationFilters],
) -> list[AssignationSummary]:
    """A page of :func:`assignations` (filtered by the same keyword arguments) with their
    change counts: two queries (the count is one more on each further database the router
    reads tracked history from)."""
    records = list(assignations(using=using, **filters)[offset : offset + limit])
    counts = change_counts([r.pk for r in records], using=using)
    return [AssignationSummary(assignation=r, change_count=counts.get(r.pk, 0)) for r in records]
