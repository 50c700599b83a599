"""The GraphQL soak's schema: the GraphQL tests' schema, with mutations writing a model captured
by a PostgreSQL trigger (``tests.capture``'s ``FaultOrder``; the soak's ``trigger`` variant).

Kept apart from ``tests/graphql/schema.py``, whose printed schema is pinned as the one Koherent's
types make; the model is imported where a mutation runs, as ``tests.capture`` is installed on
PostgreSQL only."""

from __future__ import annotations

import asyncio
from typing import Any

import strawberry
import strawberry_django
from strawberry_django.optimizer import DjangoOptimizerExtension

from koherent.strawberry import KoherentExtension
from tests.graphql.schema import ContextInfo, Mutation, Query, context_info


def fault_order() -> Any:
    from tests.capture.models import FaultOrder

    return FaultOrder


@strawberry.type
class TriggerOrderType:
    """A trigger-captured order, and the context its mutation ran under."""

    reference: str
    status: str

    @strawberry.field
    def context(self) -> ContextInfo:
        return context_info()


@strawberry.type
class SoakMutation(Mutation):
    @strawberry_django.mutation
    def create_trigger_order(self, reference: str) -> TriggerOrderType:
        """One INSERT: one history row, written by the trigger (a sync strawberry-django
        resolver: the async view runs it in a thread)."""
        order = fault_order().objects.create(reference=reference)
        return TriggerOrderType(reference=order.reference, status=order.status)

    @strawberry.mutation
    async def create_trigger_order_async(
        self, reference: str, delay: float = 0.0
    ) -> TriggerOrderType:
        """Two saves with awaits around them: two history rows, written by the trigger."""
        order = fault_order()(reference=reference)
        await asyncio.sleep(delay)
        await order.asave()
        await asyncio.sleep(delay)
        order.status = "saved"
        await order.asave()
        return TriggerOrderType(reference=order.reference, status=order.status)


schema = strawberry.Schema(
    query=Query,
    mutation=SoakMutation,
    extensions=[KoherentExtension, DjangoOptimizerExtension],
)
