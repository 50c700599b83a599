"""The models every contender shares, built the same way in each app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models

#: How many models the query scenario spreads its history over.
TRACKED_MODELS = 10


def row_fields() -> dict[str, Any]:
    """The fields of every benchmark model: a short name and a number."""
    return {
        "name": models.CharField(max_length=64),
        "value": models.IntegerField(default=0),
    }


def make_model(
    module: str,
    name: str,
    extra: dict[str, Any] | None = None,
    decorate: Callable[[type[models.Model]], type[models.Model]] | None = None,
) -> type[models.Model]:
    """A concrete model ``name`` in ``module`` with :func:`row_fields` and ``extra``."""
    attrs: dict[str, Any] = {"__module__": module, **row_fields(), **(extra or {})}
    attrs["__str__"] = lambda self: self.name
    model = type(name, (models.Model,), attrs)
    return decorate(model) if decorate is not None else model


def make_tracked(
    module: str,
    history: Callable[[], dict[str, Any]] | None = None,
    decorate: Callable[[type[models.Model]], type[models.Model]] | None = None,
) -> list[type[models.Model]]:
    """``Tracked0`` to ``Tracked9``; ``history()`` gives each one's history attribute."""
    return [
        make_model(module, f"Tracked{i}", history() if history else None, decorate)
        for i in range(TRACKED_MODELS)
    ]
