"""``update()`` on a trigger-captured model: the trigger writes the row, Python writes none.

Signal-captured models get their ``update()`` and ``bulk_update()`` rows from Koherent's
Python capture (``koherent._update``); for a model whose history the database writes, that
capture must stand aside, or every update would have two rows. The trigger fills
``history_changed_fields`` the way a signal save does, so the revert's unrecorded-change rule
reads trigger rows as it reads the others.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

import koherent
from koherent import _update
from koherent.capture import captured_by_trigger, history_written_by_caller
from koherent.revert import ConflictKind, RevertConflict
from tests.capture.models import Counter, Ledger, Product
from tests.capture.support import raw, rows

pytestmark = pytest.mark.django_db


def test_the_update_capture_stands_aside_for_trigger_models_only() -> None:
    assert captured_by_trigger(Product)
    assert not _update._captures_updates_in_python(Product)
    assert not _update._captures_updates_in_python(Product, "default")
    assert _update._captures_updates_in_python(Ledger)


def test_an_update_of_a_trigger_model_writes_one_row_per_object_from_the_trigger(
    user: Any,
) -> None:
    Product.objects.bulk_create([Product(name=f"p{i}", price=i + 1) for i in range(3)])
    with (
        koherent.assignation("a-once", user=user, app="batch"),
        CaptureQueriesContext(connection) as queries,
    ):
        assert Product.objects.update(price=F("price") * 10) == 3
    updates = rows(Product, history_type="~")
    assert sorted(r.price for r in updates) == [10, 20, 30]
    assert {r.assignation_id for r in updates} == {"a-once"}
    # One statement, no RETURNING and no INSERT of history rows from Python.
    sql = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in sql if "RETURNING" in s]
    assert not [s for s in sql if "INSERT" in s and "historical" in s]


def test_bulk_update_and_history_written_by_caller_change_nothing_for_trigger_models() -> None:
    created = Product.objects.bulk_create([Product(name=f"b{i}") for i in range(4)])
    for product in created:
        product.stock = 5
    Product.objects.bulk_update(created, ["stock"])
    with history_written_by_caller():
        # Suppresses the Python capture only: the database still writes the rows.
        Product.objects.update(stock=6)
    updates = rows(Product, history_type="~")
    assert len(updates) == 8
    assert {r.history_changed_fields for r in updates} == {"stock"}


def test_the_trigger_records_which_tracked_fields_an_update_changed() -> None:
    product = Product.objects.create(name="cup", price=1, stock=1)
    Product.objects.filter(pk=product.pk).update(price=2, stock=1)
    raw("UPDATE capture_product SET stock = 9, name = 'mug' WHERE id = %s", [product.pk])
    counter = Counter.objects.create(name="c")
    Counter.objects.update(value=F("value"))  # capture_unchanged: a row, nothing changed
    created, by_update, by_sql = rows(Product)
    assert created.history_changed_fields is None
    assert by_update.history_changed_fields == "price"
    assert by_sql.history_changed_fields == "name,stock"
    assert [r.history_changed_fields for r in rows(Counter)] == [None, ""]
    counter.delete()
    assert rows(Counter)[-1].history_changed_fields is None


def test_a_raw_sql_change_of_a_trigger_model_is_a_recorded_later_change(user: Any) -> None:
    product = Product.objects.create(name="pan", price=10, stock=5)
    with koherent.assignation("a-stock", user=user, app="shop"):
        Product.objects.filter(pk=product.pk).update(stock=4)
    # Under signal capture this would be an unrecorded change; the trigger records it.
    raw("UPDATE capture_product SET price = 11 WHERE id = %s", [product.pk])

    with pytest.raises(RevertConflict) as refused:
        koherent.revert_assignation("a-stock")
    assert [c.kind for c in refused.value.conflicts] == [ConflictKind.CHANGED_LATER]

    koherent.revert_assignation("a-stock", force=True)
    product.refresh_from_db()
    assert (product.price, product.stock) == (10, 5)
