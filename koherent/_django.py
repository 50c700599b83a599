"""Every use of Django's private internals, in one place (internal).

Koherent leans on a few attributes and methods Django does not document. Each is reached
through a function here, so that a new Django release is checked against this one module.
"""

from __future__ import annotations

__all__: list[str] = []


# -- requests ----------------------------------------------------------------------------------


# -- transactions and connections --------------------------------------------------------------


# -- inserts -----------------------------------------------------------------------------------


# -- deletion ----------------------------------------------------------------------------------
#
# The revert deletes with Django's own deletion collector: what it would take with the objects
# (cascades, parent rows of multi-table children), what it would set to null, what it refuses
# (``ProtectedError``, ``RestrictedError``), and in what order. It writes the history rows
# itself, so the rows are deleted without signals (``QuerySet._raw_delete``).

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db.models.deletion import Collector

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet


def raw_delete(queryset: QuerySet[Any], using: str) -> int:
    """Delete the rows of ``queryset`` in one statement: no signals, no cascades."""
    return queryset._raw_delete(using)


def deletion_collector(using: str, groups: Iterable[Sequence[Model]]) -> Collector:
    """Django's deletion collector over ``groups`` of objects (each a list of one model's).

    Raises ``ProtectedError`` or ``RestrictedError`` when a relation refuses the deletion.
    """
    collector = Collector(using=using)
    for objs in groups:
        collector.collect(objs)
    return collector


def collected_objects(collector: Collector) -> list[tuple[type[Model], list[Model]]]:
    """The objects the collector deletes, by model, in its order (see :func:`deletion_order`)."""
    return [(model, list(objs)) for model, objs in collector.data.items() if objs]


def collected_updates(collector: Collector) -> list[tuple[type[Model], list[Model]]]:
    """The rows the deletion updates (``SET_NULL``, ``SET(...)``), by the model of the field."""
    updates: list[tuple[type[Model], list[Model]]] = []
    for (field, _value), groups in collector.field_updates.items():
        for objs in groups:
            rows: Iterable[Model] = objs  # type: ignore[assignment]  # querysets, not models
            updates.append((field.model, list(rows)))
    return updates


def collected_fast_deletes(collector: Collector) -> list[QuerySet[Any]]:
    """The querysets the collector deletes in one statement each, without loading them."""
    return list(collector.fast_deletes)


def deletion_order(collector: Collector) -> list[tuple[type[Model], list[Model]]]:
    """The collected objects by model, referring models first (the collector's sort)."""
    collector.sort()
    return collected_objects(collector)


def run_deletion(collector: Collector) -> int:
    """Django's own deletion of what the collector holds: cascades and signals included."""
    deleted, _ = collector.delete()
    return deleted
