"""The GraphQL schema of the multi-database tests: Koherent's fields over the routed app."""

from __future__ import annotations

import strawberry
import strawberry_django

from koherent.strawberry import (
    HistoryEntryType,
    KoherentExtension,
    KoherentMutation,
    KoherentQuery,
    history_field,
)
from tests.multidbapp.models import Ticket


@strawberry_django.type(Ticket)
class TicketType:
    id: strawberry.auto
    title: strawberry.auto
    status: strawberry.auto
    history: list[HistoryEntryType] = history_field()


@strawberry.type
class Query(KoherentQuery):
    tickets: list[TicketType] = strawberry_django.field()


@strawberry.type
class Mutation(KoherentMutation):
    """Koherent's ``revertAssignation``, nothing else."""


schema = strawberry.Schema(query=Query, mutation=Mutation, extensions=[KoherentExtension])
