"""Schemas listing the test app's own types with ``history_field()``: a plain list, a nested
list (orders → items) and a relay connection, with strawberry-django's optimizer and without.

Without the optimizer the query fields prefetch the orders' items themselves (what a
strawberry-django project does for a nested list anyway: otherwise the items are one query
per order, whatever Koherent does).
"""

from __future__ import annotations

from collections.abc import Iterable

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import relay
from strawberry_django.optimizer import DjangoOptimizerExtension
from strawberry_django.relay import DjangoListConnection

from koherent.strawberry import HistoryEntryType, KoherentExtension, history_field
from tests.testapp.models import Item, Order


@strawberry_django.type(Item)
class ItemType:
    id: strawberry.auto
    name: strawberry.auto
    history: list[HistoryEntryType] = history_field()


@strawberry_django.type(Order)
class OrderType:
    id: strawberry.auto
    reference: strawberry.auto
    history: list[HistoryEntryType] = history_field()
    items: list[ItemType]


@strawberry_django.type(Order)
class OrderNode(relay.Node):
    pk: int = strawberry_django.field(field_name="pk")
    reference: strawberry.auto
    history: list[HistoryEntryType] = history_field()
    items: list[ItemType]


@strawberry.type
class OptimizedQuery:
    orders: list[OrderType] = strawberry_django.field()
    order_connection: DjangoListConnection[OrderNode] = strawberry_django.connection()


def _orders() -> QuerySet[Order]:
    return Order.objects.prefetch_related("items").order_by("pk")


@strawberry.type
class PlainQuery:
    @strawberry_django.field
    def orders(self) -> list[OrderType]:
        return _orders()  # type: ignore[return-value]

    @strawberry_django.connection(DjangoListConnection[OrderNode])  # type: ignore[untyped-decorator]
    def order_connection(self) -> Iterable[Order]:
        return _orders()


optimized_schema = strawberry.Schema(
    query=OptimizedQuery, extensions=[KoherentExtension, DjangoOptimizerExtension]
)
plain_schema = strawberry.Schema(query=PlainQuery, extensions=[KoherentExtension])
