"""The undo never blames or reverts what it did not see.

The example of the issue: a background task raises every price with ``update()``, later user A
changes only the stock of one product. With ``update()`` captured, A's row shows only the stock
and reverting A restores only the stock. A change that still escaped capture (raw SQL) is
reported as an unrecorded change, refused unless forced, and even forced it is not undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.models import F

import koherent
from koherent.query import ChangeKind, FieldChange
from koherent.revert import ConflictKind, RevertAction, RevertConflict
from tests.captureapp.models import Product

pytestmark = pytest.mark.django_db

History = Product.history.model


@dataclass
class Shop:
    pan: Product
    cup: Product


@pytest.fixture
def shop() -> Shop:
    with koherent.assignation(app="setup"):
        pan = Product.objects.create(name="pan", price=Decimal("10.00"), stock=5)
        cup = Product.objects.create(name="cup", price=Decimal("20.00"), stock=3)
    return Shop(pan=pan, cup=cup)


def _raw_price(product: Product, price: str) -> None:
    """A change no history row records: raw SQL through a cursor."""
    table = connection.ops.quote_name(Product._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET price = %s WHERE id = %s", [Decimal(price), product.pk]
        )


def _a_changes_the_stock(product: Product, user: Any, stock: int) -> str:
    with koherent.assignation(user=user, app="shop") as ctx:
        mine = Product.objects.get(pk=product.pk)
        mine.stock = stock
        mine.save()
    return ctx.assignation_id or ""


def _state(product: Product) -> tuple[Decimal, int]:
    fresh = Product.everything.get(pk=product.pk)
    return fresh.price, fresh.stock


def test_the_price_rise_is_its_own_row_and_reverting_a_restores_only_the_stock(
    shop: Shop, user: Any
) -> None:
    with koherent.assignation(app="worker", origin="celery") as task:
        Product.objects.update(price=F("price") * Decimal("1.1"))
    a = _a_changes_the_stock(shop.pan, user, 4)

    rise: list[Any] = list(koherent.history_for_assignation(task.assignation_id or "").rows())
    assert sorted((r.name, r.price) for r in rise) == [
        ("cup", Decimal("22.00")),
        ("pan", Decimal("11.00")),
    ]
    entries = list(koherent.history_for_assignation(a).entries())
    assert [e.kind for e in entries] == [ChangeKind.UPDATE]
    assert koherent.effective_changes(entries) == [[FieldChange("stock", 5, 4)]]

    plan = koherent.revert_assignation(a, dry_run=True)
    assert plan.conflicts == ()
    assert [(c.action, c.fields) for c in plan.changes] == [(RevertAction.RESTORE, ("stock",))]
    koherent.revert_assignation(a)

    assert _state(shop.pan) == (Decimal("11.00"), 5)  # the rise stays, the stock is back
    assert _state(shop.cup) == (Decimal("22.00"), 3)


def test_reverting_the_update_sees_the_later_save(shop: Shop, user: Any) -> None:
    with koherent.assignation(app="worker") as task:
        Product.objects.update(price=F("price") * 2)
    _a_changes_the_stock(shop.pan, user, 4)

    with pytest.raises(RevertConflict) as refused:
        koherent.revert_assignation(task.assignation_id or "")
    assert [c.kind for c in refused.value.conflicts] == [ConflictKind.CHANGED_LATER]

    # Forced, the later (recorded) change is overwritten, as for any later change.
    koherent.revert_assignation(task.assignation_id or "", force=True)
    assert _state(shop.pan) == (Decimal("10.00"), 5)
    assert _state(shop.cup) == (Decimal("20.00"), 3)


def test_raw_sql_before_a_save_is_an_unrecorded_change(shop: Shop, user: Any) -> None:
    _raw_price(shop.pan, "11.00")
    a = _a_changes_the_stock(shop.pan, user, 4)

    with pytest.raises(RevertConflict) as refused:
        koherent.revert_assignation(a)
    (conflict,) = refused.value.conflicts
    assert conflict.kind is ConflictKind.UNRECORDED_CHANGE
    assert (conflict.model_label, conflict.object_id, conflict.fields) == (
        "captureapp.Product",
        shop.pan.pk,
        ("price",),
    )
    assert conflict.assignation_id is None
    assert conflict.date is not None
    assert "no history row recorded" in str(conflict)
    assert _state(shop.pan) == (Decimal("11.00"), 4)  # nothing was changed

    result = koherent.revert_assignation(a, force=True)
    assert result.forced_conflicts == (conflict,)
    assert [c.fields for c in result.plan.restores] == [("stock",)]
    # A's stock is undone; the change A did not make is not.
    assert _state(shop.pan) == (Decimal("11.00"), 5)


def test_raw_sql_after_the_last_row_is_an_unrecorded_change(shop: Shop, user: Any) -> None:
    a = _a_changes_the_stock(shop.pan, user, 4)
    _raw_price(shop.pan, "12.00")

    plan = koherent.revert_assignation(a, dry_run=True)
    (conflict,) = plan.conflicts
    assert (conflict.kind, conflict.fields, conflict.date) == (
        ConflictKind.UNRECORDED_CHANGE,
        ("price",),
        None,
    )
    assert "since its last row" in str(conflict)
    with pytest.raises(RevertConflict):
        koherent.revert_assignation(a)

    koherent.revert_assignation(a, force=True)
    assert _state(shop.pan) == (Decimal("12.00"), 5)


def test_raw_sql_on_a_field_the_assignation_changed_is_overwritten_when_forced(
    shop: Shop, user: Any
) -> None:
    a = _a_changes_the_stock(shop.pan, user, 4)
    table = connection.ops.quote_name(Product._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET stock = 40 WHERE id = %s", [shop.pan.pk])

    plan = koherent.revert_assignation(a, dry_run=True)
    assert [(c.kind, c.fields) for c in plan.conflicts] == [
        (ConflictKind.UNRECORDED_CHANGE, ("stock",))
    ]
    koherent.revert_assignation(a, force=True)
    assert _state(shop.pan) == (Decimal("10.00"), 5)


def test_the_same_raw_change_without_capture_knowledge_is_not_invented(
    shop: Shop, user: Any
) -> None:
    """Negative control: rows that do not say what their write changed are taken as complete."""
    _raw_price(shop.pan, "11.00")
    with koherent.assignation(user=user) as ctx:
        built = Product(pk=shop.pan.pk, name="pan", price=Decimal("11.00"), stock=4)
        built.save()  # never loaded: its row cannot say which fields it changed

    plan = koherent.revert_assignation(ctx.assignation_id or "", dry_run=True)
    assert plan.conflicts == ()
    assert [c.fields for c in plan.restores] == [("price", "stock")]


def test_an_unrecorded_change_between_two_rows_of_the_assignation(shop: Shop, user: Any) -> None:
    with koherent.assignation(user=user) as ctx:
        mine = Product.objects.get(pk=shop.cup.pk)
        mine.stock = 2
        mine.save()
        _raw_price(shop.cup, "25.00")
        mine.refresh_from_db()
        mine.stock = 1
        mine.save()

    plan = koherent.revert_assignation(ctx.assignation_id or "", dry_run=True)
    assert [(c.kind, c.object_id, c.fields) for c in plan.conflicts] == [
        (ConflictKind.UNRECORDED_CHANGE, shop.cup.pk, ("price",))
    ]
    koherent.revert_assignation(ctx.assignation_id or "", force=True)
    assert _state(shop.cup) == (Decimal("25.00"), 3)
