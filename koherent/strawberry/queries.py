"""Query fields: ``assignation(id)`` and ``assignations(filters, pagination)``.

Add them to a schema by inheriting :class:`KoherentQuery`::

    @strawberry.type
    class Query(KoherentQuery):
        ...

Both read through :mod:`koherent.query` (``assignation(id)`` through
:func:`koherent.query.get_assignation`: a stand-in for history written without a record), for
the users ``KOHERENT["GRAPHQL_READ_PERMISSION"]`` allows (authenticated users by default):
``assignation(id)`` asks the hook for that id, ``assignations`` for the listing (``None``) and
then for each assignation listed, leaving out those it refuses.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from strawberry_django.pagination import OffsetPaginationInput  # noqa: TC002 (read at run time)

from koherent import query
from koherent._validation import validate_assignation_id
from koherent.strawberry.loaders import current_loaders
from koherent.strawberry.permissions import may_read, require_read
from koherent.strawberry.types import (
    MAX_PAGE_SIZE,
    AssignationType,
    described,
    optional,
    readable_assignation,
    run_db,
)

#: Assignations per page when ``pagination.limit`` is not given.
DEFAULT_LIMIT = 100


@strawberry.input(description="Which assignations to list (every condition given must hold).")
class AssignationFilter:
    user_id: strawberry.ID | None = optional("Opened by this user (primary key).")
    app: str | None = optional("Opened through this app.")
    origin: str | None = optional("Opened by: request, graphql, celery, manual, revert...")
    since: dt.datetime | None = optional("Created at or after this time.")
    until: dt.datetime | None = optional("Created before this time.")
    parent_id: strawberry.ID | None = optional("Opened under this assignation.")


@strawberry.type
class KoherentQuery:
    """The audit trail's query fields; inherit it in your ``Query`` type."""

    @described("One assignation: what one logical operation changed.")
    def assignation(self, info: strawberry.Info, id: strawberry.ID) -> AssignationType | None:
        assignation_id = validate_assignation_id(str(id))  # a clear error, before the hook
        return readable_assignation(info, assignation_id)

    @described(
        "Assignations, newest first (those the read permission refuses are left out, so a "
        "page may hold fewer than `limit`)."
    )
    def assignations(
        self,
        info: strawberry.Info,
        filters: AssignationFilter | None = None,
        pagination: OffsetPaginationInput | None = None,
    ) -> list[AssignationType]:
        given = filters or AssignationFilter()
        offset, limit = _page(pagination)

        def fetch() -> list[AssignationType]:
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
            return AssignationType.list_of([s.assignation for s in summaries])

        return run_db(fetch)  # type: ignore[no-any-return]


def _page(pagination: Any) -> tuple[int, int]:
    offset = getattr(pagination, "offset", 0) or 0
    limit = getattr(pagination, "limit", None)
    if not isinstance(limit, int) or limit < 0:
        limit = DEFAULT_LIMIT
    if offset < 0:
        raise ValueError("pagination.offset must not be negative")
    return offset, min(limit, MAX_PAGE_SIZE)
