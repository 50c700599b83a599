"""The GraphQL schema the tests run: tracked models of the test app, and fields that show the
audit context each resolver sees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import strawberry
import strawberry_django
from strawberry_django.optimizer import DjangoOptimizerExtension

import koherent
from koherent.context import set_context
from koherent.strawberry import (
    HistoryEntryType,
    HistoryFilterMixin,
    KoherentExtension,
    KoherentMutation,
    KoherentQuery,
    history_field,
)
from tests.testapp.models import Item, Order


@strawberry.type
class ContextInfo:
    assignation_id: str | None
    user_id: str | None
    app: str | None
    origin: str | None


def context_info() -> ContextInfo:
    ctx = koherent.current()
    return ContextInfo(
        assignation_id=ctx.assignation_id,
        user_id=None if ctx.user_id is None else str(ctx.user_id),
        app=ctx.app,
        origin=ctx.origin,
    )


@strawberry_django.filter_type(Order, lookups=True)
class OrderFilter(HistoryFilterMixin):
    reference: strawberry.auto


@strawberry_django.filter_type(Item, lookups=True)
class ItemFilter(HistoryFilterMixin):
    name: strawberry.auto
    order: OrderFilter | None


@strawberry_django.type(Order, filters=OrderFilter)
class OrderType:
    id: strawberry.auto
    reference: strawberry.auto
    status: strawberry.auto
    total: strawberry.auto
    history: list[HistoryEntryType] = history_field()

    @strawberry.field
    def context(self) -> ContextInfo:
        return context_info()


@strawberry_django.type(Item, filters=ItemFilter)
class ItemType:
    id: strawberry.auto
    name: strawberry.auto
    order: OrderType


@strawberry.type
class Query(KoherentQuery):
    orders: list[OrderType] = strawberry_django.field()
    items: list[ItemType] = strawberry_django.field()

    @strawberry.field
    def context(self) -> ContextInfo:
        return context_info()

    @strawberry.field
    async def async_context(self, delay: float = 0.0) -> ContextInfo:
        await asyncio.sleep(delay)
        return context_info()

    @strawberry.field
    def leaky(self) -> ContextInfo:
        """Opens a context of its own and never closes it."""
        koherent.context(app="leaked").__enter__()
        return context_info()

    @strawberry.field
    async def async_leaky(self) -> ContextInfo:
        set_context(koherent.current().evolve(app="leaked-async"))
        return context_info()

    @strawberry_django.field
    def order_count(self) -> int:
        return Order.objects.count()


@strawberry.type
class Mutation(KoherentMutation):
    @strawberry_django.mutation
    def create_order(self, reference: str) -> OrderType:
        return Order.objects.create(reference=reference)  # type: ignore[return-value]

    @strawberry.mutation
    async def create_order_async(self, reference: str, delay: float = 0.0) -> OrderType:
        order = Order(reference=reference)
        await asyncio.sleep(delay)
        await order.asave()
        await asyncio.sleep(delay)
        order.status = "saved"
        await order.asave()
        return order  # type: ignore[return-value]

    @strawberry_django.mutation
    def leaky_create_order(self, reference: str) -> OrderType:
        """Changes the context for itself and never restores it."""
        koherent.context(app="leaked").__enter__()
        return Order.objects.create(reference=reference)  # type: ignore[return-value]

    @strawberry_django.mutation
    def create_order_and_enqueue(self, reference: str, worker: str) -> OrderType:
        """Writes an order, and has a Celery worker write another (tests/celery's workers)."""
        from tests.celery.harness import running_apps

        order = Order.objects.create(reference=reference)
        running_apps[worker].tasks["kt.write"].delay(f"{reference}-task")
        return order  # type: ignore[return-value]

    @strawberry_django.mutation
    def create_then_fail(self, reference: str) -> OrderType:
        Order.objects.create(reference=reference)
        raise RuntimeError("the mutation failed after writing")


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, count: int = 3, delay: float = 0.0) -> AsyncGenerator[ContextInfo]:
        for _ in range(count):
            yield context_info()
            await asyncio.sleep(delay)

    @strawberry.subscription
    async def created_orders(self, count: int = 2) -> AsyncGenerator[OrderType]:
        for n in range(count):
            order = Order(reference=f"sub-{n}")
            await order.asave()
            yield order  # type: ignore[misc]


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[KoherentExtension, DjangoOptimizerExtension],
)
