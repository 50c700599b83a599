"""Fixtures of the GraphQL tests (a plugin of the root conftest: tests import the client from
:mod:`tests.graphql.client`, never the fixtures)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.graphql.client import GraphQLClient

KOHERENT_MIDDLEWARE = "koherent.middleware.KoherentMiddleware"


@pytest.fixture(params=["sync", "async"])
def gql_client(request: pytest.FixtureRequest) -> GraphQLClient:
    """A client of the sync view, then of the async view."""
    return GraphQLClient(request.param)


@pytest.fixture(params=["with-middleware", "without-middleware"])
def middleware(request: pytest.FixtureRequest, settings: Any) -> bool:
    """Run with KoherentMiddleware in MIDDLEWARE, then without it."""
    present: bool = request.param == "with-middleware"
    if not present:
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != KOHERENT_MIDDLEWARE]
    return present
