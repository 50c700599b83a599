"""The benchmark project's GraphQL schema: Koherent's query fields and its extension."""

from __future__ import annotations

import strawberry

from koherent.strawberry import KoherentExtension, KoherentQuery


@strawberry.type
class Query(KoherentQuery):
    """Only Koherent's fields: ``assignation(id)`` and ``assignations``."""


schema = strawberry.Schema(query=Query, extensions=[KoherentExtension])
