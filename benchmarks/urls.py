"""URLs of the benchmark project (the GraphQL scenario mounts its view here)."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
