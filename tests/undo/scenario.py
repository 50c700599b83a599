"""Helpers of the query and revert tests: a scenario over two related models, snapshots.

The ``scenario`` fixture (:mod:`tests.undo.fixtures`) builds it; tests import the class and
:func:`snapshot` from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import koherent
from tests.undoapp.models import Invoice, Label, Line


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the undo app's tables, as plain tuples."""
    through = Invoice.labels.through
    return {
        "invoices": sorted(Invoice.objects.values_list("id", "number", "status", "total")),
        "lines": sorted(
            Line.objects.values_list("id", "invoice_id", "position", "product", "quantity")
        ),
        "labels": sorted(through.objects.values_list("invoice_id", "label_id")),
    }


@dataclass
class Scenario:
    """Objects before the assignation, the assignation, and the state before and after it."""

    kept: Invoice  # updated by the assignation (fields and labels)
    removed_id: int  # deleted by the assignation, with its line (a cascade)
    created: Invoice  # created by the assignation, with two lines
    assignation_id: str
    before: dict[str, list[tuple[Any, ...]]]
    after: dict[str, list[tuple[Any, ...]]]


def make_scenario(user: Any) -> Scenario:
    """Objects, then an assignation by ``user`` that updates, deletes and creates some."""
    red = Label.objects.create(name="red")
    blue = Label.objects.create(name="blue")
    with koherent.assignation(app="setup"):
        kept = Invoice.objects.create(number="K-1", total=10)
        kept.labels.add(red)
        first = Line.objects.create(invoice=kept, position=1, product="apple", quantity=1)
        Line.objects.create(invoice=kept, position=2, product="pear", quantity=2)
        removed = Invoice.objects.create(number="R-1", total=20)
        Line.objects.create(invoice=removed, position=1, product="plum")
    before = snapshot()
    with koherent.assignation(user=user, app="shop") as ctx:
        kept.status = "sent"
        kept.total = 11
        kept.save()
        kept.labels.remove(red)
        kept.labels.add(blue)
        first.quantity = 5
        first.save()
        Line.objects.get(invoice=kept, position=2).delete()
        removed_id = removed.pk
        removed.delete()  # cascades to its line
        created = Invoice.objects.create(number="C-1", total=30)
        Line.objects.create(invoice=created, position=1, product="fig")
        Line.objects.create(invoice=created, position=2, product="kiwi")
        created.labels.add(red)
    after = snapshot()
    assert after != before
    return Scenario(
        kept=kept,
        removed_id=removed_id,
        created=created,
        assignation_id=ctx.assignation_id or "",
        before=before,
        after=after,
    )
