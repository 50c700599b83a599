"""Koherent for strawberry-graphql-django: the audit context of each operation, history types,
assignation queries and a revert mutation.

This subpackage is the only part of Koherent that imports strawberry (and, for websockets,
Channels). ``KoherentExtension`` is importable before Django's app registry is ready; the
other names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from koherent.strawberry.extension import KoherentExtension

if TYPE_CHECKING:
    from koherent.strawberry.websocket import KoherentGraphQLWSConsumer

_LAZY = {
    "KoherentGraphQLWSConsumer": "koherent.strawberry.websocket",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'koherent.strawberry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "KoherentExtension",
    "KoherentGraphQLWSConsumer",
]
