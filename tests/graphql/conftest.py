"""The GraphQL tests' URLs (the client and the fixtures: tests.graphql.client, .fixtures)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _graphql_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.graphql.urls"
