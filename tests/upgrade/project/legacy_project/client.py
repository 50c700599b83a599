"""Runs operations against the schema the way kante's consumer does: a kante HttpContext."""

import asyncio
from typing import Any

from kante.context import HttpContext, UniversalRequest


def run(
    schema: Any, query: str, *, token: str | None, assignation: str | None, **variables: Any
) -> Any:
    headers = {}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if assignation is not None:
        headers["x-assignation-id"] = assignation
    context = HttpContext(request=UniversalRequest(_extensions={}), headers=headers)
    return asyncio.run(schema.execute(query, variable_values=variables, context_value=context))


def data(result: Any) -> Any:
    assert not result.errors, result.errors
    return result.data
