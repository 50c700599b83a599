"""Query fields: ``assignation(id)`` and ``assignations(filters, pagination)``.

Add them to a schema by inheriting :class:`KoherentQuery`::

    @strawberry.type
    class Query(KoherentQuery):
        ...

Both read through :mod:`koherent.query`, for the users ``KOHERENT["GRAPHQL_READ_PERMISSION"]``
allows (authenticated users by default): ``assignation(id)`` asks the hook for that id,
``assignations`` for the listing (``None``) and then for each assignation listed, leaving out
those it refuses.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry_django.pagination import OffsetPaginationInput  # noqa: TC002 (read at run time)

from koherent import query
from koherent.strawberry.loaders import current_loaders
from koherent.strawberry.permissions import may_read, require_read
from koherent.strawberry.types import MAX_PAGE_SIZE, Assignation, described, run_db
from koherent.validation import validate_assignation_id

if TYPE_CHECKING:
    from koherent.models import Assignation as AssignationRecord

#: Assignations per page when ``pagination.limit`` is not given.
DEFAULT_LIMIT = 100


@strawberry.input(description="Which assignations to list (every condition given must hold).")
class AssignationFilter:
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="Opened by this user (primary key)."
    )
    app: str | None = strawberry.field(default=None, description="Opened through this app.")
    origin: str | None = strawberry.field(
        default=None, description="Opened by: request, graphql, celery, manual, revert..."
    )
    since: dt.datetime | None = strawberry.field(
        default=None, description="Created at or after this time."
    )
    until: dt.datetime | None = strawberry.field(
        default=None, description="Created before this time."
    )
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="Opened under this assignation."
    )


def load_assignation(assignation_id: str) -> AssignationRecord | None:
    """The record of ``assignation_id``; for history written without a record (with
    ``RECORD_ASSIGNATIONS`` off) an unsaved one made from its first change; else ``None``."""
    from koherent.models import Assignation as Record

    record = Record.objects.filter(pk=assignation_id).first()
    if record is not None:
        return record
    page = query.history_for_assignation(assignation_id).page(first=1)
    if not page.rows:
        return None
    first = page.entries[0]
    return Record(
        id=assignation_id,
        user_pk=first.user_id,
        app=first.app,
        origin="unknown",
        created=first.date,
        task_id=first.task_id,
    )


@strawberry.type
class KoherentQuery:
    """The audit trail's query fields; inherit it in your ``Query`` type."""

    @described("One assignation: what one logical operation changed.")
    def assignation(self, info: strawberry.Info, id: strawberry.ID) -> Assignation | None:
        assignation_id = validate_assignation_id(str(id))  # a clear error, before the hook

        def fetch() -> Assignation | None:
            require_read(info, assignation_id)
            return Assignation.of(load_assignation(assignation_id))

        return run_db(fetch)  # type: ignore[no-any-return]

    @described(
        "Assignations, newest first (those the read permission refuses are left out, so a "
        "page may hold fewer than `limit`)."
    )
    def assignations(
        self,
        info: strawberry.Info,
        filters: AssignationFilter | None = None,
        pagination: OffsetPaginationInput | None = None,
    ) -> list[Assignation]:
        given = filters or AssignationFilter()
        offset, limit = _page(pagination)

        def fetch() -> list[Assignation]:
            require_read(info)
            summaries = query.list_assignations(
                user=None if given.user_id is None else str(given.user_id),
                app=given.app,
                origin=given.origin,
                since=given.since,
                until=given.until,
                parent=None if given.parent_id is None else str(given.parent_id),
                limit=limit,
                offset=offset,
            )
            # The hook decides per assignation too: an item it refuses is left out.
            summaries = [s for s in summaries if may_read(info, s.assignation.pk)]
            loaders = current_loaders()
            for summary in summaries:
                loaders.change_counts.prime(summary.assignation.pk, summary.change_count)
            return Assignation.list_of([s.assignation for s in summaries])

        return run_db(fetch)  # type: ignore[no-any-return]


def _page(pagination: Any) -> tuple[int, int]:
    offset = getattr(pagination, "offset", 0) or 0
    limit = getattr(pagination, "limit", None)
    if not isinstance(limit, int) or limit < 0:
        limit = DEFAULT_LIMIT
    if offset < 0:
        raise ValueError("pagination.offset must not be negative")
    return offset, min(limit, MAX_PAGE_SIZE)
