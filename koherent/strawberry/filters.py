"""Filter a model's objects by their history: ``HistoryFilterMixin``.

Mix it into a strawberry-django filter type of a tracked model::

    @strawberry_django.filter_type(Order)
    class OrderFilter(HistoryFilterMixin):
        reference: strawberry.auto

and its objects can be filtered by the changes they went through::

    orders(filters: {history: {userId: "4", kind: UPDATE, since: "2026-01-01T00:00:00Z"}})

An object matches when **one** of its history rows meets every condition given. The filter is
one ``IN (subquery)`` on the history table (using its indexes), also when the filter type is
nested under a relation (``items(filters: {order: {history: {...}}})``).

The filter reads the audit trail, so it asks ``KOHERENT["GRAPHQL_READ_PERMISSION"]`` as the
history fields do: for ``assignationId`` when given, else for a listing (``None``). A refusal
is a GraphQL error with code ``FORBIDDEN``: which objects a user, an app or an assignation
touched, and when, is not told to whom the trail is closed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry
import strawberry_django
from django.db.models import Q

from koherent import query
from koherent._registry import tracked_model
from koherent._validation import validate_assignation_id
from koherent.strawberry.permissions import require_read
from koherent.strawberry.types import optional


@strawberry.input(description="Conditions on one history row (every condition given holds).")
class HistoryFilter:
    assignation_id: strawberry.ID | None = optional("Changed under this assignation.")
    user_id: strawberry.ID | None = optional("Changed by this user (primary key).")
    app: str | None = optional("Changed through this app.")
    kind: query.ChangeKind | None = optional("Created, updated or deleted.")
    since: dt.datetime | None = optional("Changed at or after this time.")
    until: dt.datetime | None = optional("Changed before this time.")


_HISTORY_TYPES = {
    query.ChangeKind.CREATE: "+",
    query.ChangeKind.UPDATE: "~",
    query.ChangeKind.DELETE: "-",
}


def history_condition(model: Any, value: HistoryFilter) -> dict[str, Any]:
    """The lookups of ``value`` on ``model``'s history table."""
    conditions: dict[str, Any] = {}
    if value.assignation_id is not None:
        conditions["assignation_id"] = str(value.assignation_id)
    if value.user_id is not None:
        conditions["user_pk"] = str(value.user_id)
    if value.app is not None:
        conditions["app"] = value.app
    if value.kind is not None:
        conditions["history_type"] = _HISTORY_TYPES[query.ChangeKind(value.kind)]
    if value.since is not None:
        conditions["history_date__gte"] = value.since
    if value.until is not None:
        conditions["history_date__lt"] = value.until
    return conditions


F = TypeVar("F", bound="Callable[..., Any]")


def _filter_field(description: str) -> Callable[[F], F]:
    """``@strawberry_django.filter_field(description=...)``, typed for mypy."""
    return cast("Callable[[F], F]", strawberry_django.filter_field(description=description))


@strawberry.input
class HistoryFilterMixin:
    """Adds a ``history: HistoryFilter`` field to a strawberry-django filter type."""

    @_filter_field("Objects with a change meeting these conditions.")
    def history(
        self, info: strawberry.Info, value: HistoryFilter, prefix: str, queryset: Any
    ) -> Q:
        assignation_id = (
            None
            if value.assignation_id is None
            else validate_assignation_id(str(value.assignation_id))
        )
        require_read(info, assignation_id)
        definition = getattr(self, "__strawberry_django_definition__", None)
        model = getattr(definition, "model", None) or queryset.model
        tracked = tracked_model(model)
        rows = tracked.history_model._default_manager.filter(**history_condition(model, value))
        return Q(**{f"{prefix}pk__in": rows.values(tracked.pk_attname)})
