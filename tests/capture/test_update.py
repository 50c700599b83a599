"""``queryset.update()`` and ``bulk_update()`` on tracked models write stamped history rows."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from simple_history.utils import bulk_update_with_history

import koherent
from koherent import _update, capture
from koherent.models import Assignation
from tests.captureapp.models import (
    Category,
    FridgeShelf,
    Product,
    ProductQuerySet,
    SaleProduct,
    Shelf,
)
from tests.pending_migrations import assert_in_sync
from tests.undoapp.models import Invoice, Label

pytestmark = pytest.mark.django_db

History = Product.history.model

#: Backends whose UPDATE returns the changed rows (others read and lock the keys first).
RETURNING_UPDATE = connection.vendor in ("postgresql", "sqlite")


def _history_writes(queries: CaptureQueriesContext) -> list[str]:
    """The statements that are not transaction control (BEGIN, SAVEPOINT, ...), also those
    sent together in one multi-statement query (an assignation's record and its list)."""
    control = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT")
    return [
        statement
        for q in queries.captured_queries
        for statement in q["sql"].split("; ")
        if not statement.lstrip().upper().startswith(control)
    ]


@pytest.fixture(autouse=True)
def _forget_update_calls() -> Iterator[None]:
    ProductQuerySet.update_calls.clear()
    yield
    ProductQuerySet.update_calls.clear()


@pytest.fixture
def products() -> list[Product]:
    kitchen = Category.objects.create(name="kitchen")
    return [
        Product.objects.create(name="pan", price=Decimal("10.00"), stock=5, category=kitchen),
        Product.objects.create(name="pot", price=Decimal("20.00"), stock=0, category=kitchen),
        Product.objects.create(name="cup", price=Decimal("3.00"), stock=7),
        Product.everything.create(name="old", price=Decimal("1.00"), stock=1, archived=True),
    ]


def _updates(**filters: Any) -> list[Any]:
    return list(History.objects.filter(history_type="~", **filters).order_by("history_id"))


def test_update_writes_one_stamped_row_per_object(products: list[Product], user: Any) -> None:
    with koherent.assignation(user=user, app="importer", origin="script") as ctx:
        count = Product.objects.filter(category__name="kitchen").update(price=F("price") * 2)

    assert count == 2
    rows = _updates()
    assert [r.name for r in rows] == ["pan", "pot"]
    assert [r.price for r in rows] == [Decimal("20.00"), Decimal("40.00")]
    assert {(r.assignation_id, r.app, r.user_pk, r.history_user_id, r.task_id) for r in rows} == {
        (ctx.assignation_id, "importer", str(user.pk), user.pk, None)
    }
    assert {r.history_changed_fields for r in rows} == {"price"}
    record = Assignation.objects.get(pk=ctx.assignation_id)
    assert (record.origin, record.app, record.user_id) == ("script", "importer", user.pk)
    # The live rows are what the history says.
    assert sorted(Product.everything.values_list("name", "price")) == [
        ("cup", Decimal("3.00")),
        ("old", Decimal("1.00")),
        ("pan", Decimal("20.00")),
        ("pot", Decimal("40.00")),
    ]


def test_an_update_without_context_right_after_one_with_it_is_unattributed(
    products: list[Product], user: Any
) -> None:
    with koherent.assignation(user=user, app="importer"):
        Product.objects.filter(name="pan").update(stock=1)
    Product.objects.filter(name="pan").update(stock=2)

    first, second = _updates(name="pan")
    assert (first.stock, first.user_pk, first.app) == (1, str(user.pk), "importer")
    assert first.assignation_id is not None
    assert (second.stock, second.assignation_id, second.app, second.user_pk) == (
        2,
        None,
        None,
        None,
    )
    assert (second.history_user_id, second.task_id) == (None, None)


def test_rows_the_update_does_not_match_get_no_history(products: list[Product]) -> None:
    before = History.objects.count()
    assert Product.objects.filter(name="nothing").update(stock=3) == 0
    # The default manager hides archived products: they are not updated, and get no row.
    assert Product.objects.update(stock=9) == 3
    assert History.objects.count() == before + 3
    assert Product.everything.get(name="old").stock == 1
    assert not _updates(name="old")


def test_the_projects_manager_and_queryset_keep_working(products: list[Product]) -> None:
    count = Product.objects.in_stock().update(stock=F("stock") - 1)

    assert count == 2  # pan and cup; pot has no stock, old is archived
    assert ProductQuerySet.update_calls == [{"stock": F("stock") - 1}]
    assert [(r.name, r.stock) for r in _updates()] == [("pan", 4), ("cup", 6)]
    assert isinstance(Product.objects.all(), ProductQuerySet)


def test_related_and_other_managers_are_captured(products: list[Product]) -> None:
    kitchen = Category.objects.get(name="kitchen")
    assert kitchen.products.update(stock=11) == 2
    assert Product.everything.filter(archived=True).update(stock=12) == 1
    assert Product._base_manager.filter(name="cup").update(stock=13) == 1

    assert sorted((r.name, r.stock) for r in _updates()) == [
        ("cup", 13),
        ("old", 12),
        ("pan", 11),
        ("pot", 11),
    ]


def test_related_manager_writes_and_set_null_deletions_are_captured(
    products: list[Product], user: Any
) -> None:
    kitchen = Category.objects.get(name="kitchen")
    kitchen_id, cup = kitchen.pk, products[2]
    with koherent.assignation(user=user) as ctx:
        kitchen.products.add(cup)  # bulk: an update() of the product's key
        kitchen.delete()  # on_delete=SET_NULL: an update() of every product pointing at it

    rows = [(r.name, r.category_id, r.assignation_id) for r in _updates()]
    assert rows[0] == ("cup", kitchen_id, ctx.assignation_id)
    assert sorted(rows[1:]) == [
        ("cup", None, ctx.assignation_id),
        ("pan", None, ctx.assignation_id),
        ("pot", None, ctx.assignation_id),
    ]


def test_a_proxy_models_update_is_the_tracked_models(products: list[Product]) -> None:
    assert SaleProduct.objects.filter(name="pan").update(stock=1) == 1
    assert [(r.name, r.stock) for r in _updates()] == [("pan", 1)]


def test_fields_left_out_of_the_history_are_neither_returned_nor_recorded(
    products: list[Product],
) -> None:
    Product.objects.filter(name="pan").update(internal_note="call the supplier")
    Product.objects.filter(name="pot").update(internal_note="discontinued", stock=9)

    pan, pot = _updates()
    assert (pan.name, pan.history_changed_fields) == ("pan", "")
    assert (pot.name, pot.stock, pot.history_changed_fields) == ("pot", 9, "stock")
    assert not hasattr(pan, "internal_note")
    assert Product.everything.get(name="pan").internal_note == "call the supplier"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_aupdate_is_captured(user: Any) -> None:
    product = await Product.objects.acreate(name="pan", price=Decimal("1.00"))
    async with koherent.assignation(user=user, app="async") as ctx:
        await Product.objects.filter(pk=product.pk).aupdate(stock=4)

    rows = [r async for r in History.objects.filter(history_type="~")]
    assert [(r.stock, r.assignation_id, r.app) for r in rows] == [(4, ctx.assignation_id, "async")]


def test_one_update_statement_and_one_history_insert_per_thousand_rows() -> None:
    Product.everything.bulk_create(
        Product(name=f"p{i}", price=Decimal("1.00"), stock=i) for i in range(2500)
    )
    with koherent.assignation(app="bulk"):
        Product.objects.filter(name="p0").update(stock=0)  # writes the assignation record
        with CaptureQueriesContext(connection) as queries:
            count = Product.objects.update(price=F("price") + 1)

    assert count == 2500
    writes = _history_writes(queries)
    others = [s for s in writes if not s.startswith("INSERT")]
    inserts = [s for s in writes if s.startswith("INSERT")]
    if RETURNING_UPDATE:
        assert [s.split()[0] for s in others] == ["UPDATE"]
        assert "RETURNING" in others[0]
    else:  # the keys, locked; the update of those rows; their new state
        assert [s.split()[0] for s in others] == ["SELECT", "UPDATE", "SELECT"]
        assert others[0].endswith("FOR UPDATE")
    # One INSERT per 1,000 rows (fewer per statement where the database caps parameters).
    columns = [f for f in History._meta.concrete_fields if f is not History._meta.pk]
    per_insert = min(1000, connection.ops.bulk_batch_size(columns, [None] * 2500))
    assert len(inserts) == math.ceil(2500 / per_insert)
    assert all(History._meta.db_table in s for s in inserts)
    assert len(writes) == len(others) + len(inserts)
    assert len(_updates(price=Decimal("2.00"))) == 2500


def test_the_assignation_record_is_written_once(products: list[Product]) -> None:
    with koherent.assignation(app="once") as ctx:
        with CaptureQueriesContext(connection) as first:
            Product.objects.filter(name="pan").update(stock=1)
        with CaptureQueriesContext(connection) as second:
            Product.objects.filter(name="pan").update(stock=2)
    record_table = connection.ops.quote_name(Assignation._meta.db_table)
    entry_table = connection.ops.quote_name("koherent_assignationmodel")
    assert sum(record_table in s for s in _history_writes(first)) == 1
    assert not any(record_table in s for s in _history_writes(second))
    # The model goes on the record's list with it, in the same round trip, once.
    entries = [s for s in _history_writes(first) if entry_table in s]
    assert len(entries) == 1
    assert not any("koherent_assignationmodel" in s for s in _history_writes(second))
    assert len(_history_writes(second)) == (2 if RETURNING_UPDATE else 4)
    assert Assignation.objects.filter(pk=ctx.assignation_id).exists()


def test_bulk_update_writes_one_row_per_object(products: list[Product], user: Any) -> None:
    pan, pot, cup, _ = products
    pan.price, pot.price, cup.stock = Decimal("11.00"), Decimal("21.00"), 70
    with koherent.assignation(user=user) as ctx, CaptureQueriesContext(connection) as queries:
        Product.objects.bulk_update([pan, pot, cup], ["price", "stock"])

    rows = _updates()
    assert [(r.name, r.price, r.stock) for r in rows] == [
        ("pan", Decimal("11.00"), 5),
        ("pot", Decimal("21.00"), 0),
        ("cup", Decimal("3.00"), 70),
    ]
    assert {(r.assignation_id, r.history_changed_fields) for r in rows} == {
        (ctx.assignation_id, "price,stock")
    }
    writes = _history_writes(queries)
    assert sum(s.startswith("UPDATE") for s in writes) == 1
    assert sum(s.startswith("INSERT") and History._meta.db_table in s for s in writes) == 1


def test_bulk_update_with_history_writes_its_own_rows_once(products: list[Product]) -> None:
    pan, pot, *_ = products
    pan.stock, pot.stock = 50, 60
    with koherent.assignation(app="helper") as ctx:
        bulk_update_with_history(
            [pan, pot],
            Product,
            ["stock"],
            default_change_reason="restock",
            manager=Product.everything,
        )

    rows = _updates()
    assert [(r.name, r.stock, r.history_change_reason) for r in rows] == [
        ("pan", 50, "restock"),
        ("pot", 60, "restock"),
    ]
    assert {r.assignation_id for r in rows} == {ctx.assignation_id}


def test_queryset_delete_writes_a_row_per_object(products: list[Product]) -> None:
    with koherent.assignation(app="cleanup") as ctx:
        deleted, _ = Product.objects.filter(category__name="kitchen").delete()

    assert deleted == 2
    rows = History.objects.filter(history_type="-")
    assert sorted((r.name, r.assignation_id) for r in rows) == [
        ("pan", ctx.assignation_id),
        ("pot", ctx.assignation_id),
    ]


@pytest.mark.django_db(transaction=True)
def test_the_update_and_its_rows_commit_or_fail_together(
    products: list[Product], monkeypatch: pytest.MonkeyPatch
) -> None:
    from koherent import _history_rows

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("history table unavailable")

    monkeypatch.setattr(_history_rows, "write_history", broken)
    with pytest.raises(DatabaseError):
        Product.objects.filter(name="pan").update(stock=99)  # autocommit: its own transaction
    assert Product.everything.get(name="pan").stock == 5

    # In the caller's transaction, catching the error cannot commit the update alone.
    with pytest.raises(transaction.TransactionManagementError), transaction.atomic():
        with contextlib.suppress(DatabaseError):
            Product.objects.filter(name="pan").update(stock=98)
        Product.everything.count()  # the transaction is marked for rollback
    assert Product.everything.get(name="pan").stock == 5
    assert not _updates()


def test_a_multi_table_child_is_updated_through_its_keys(user: Any) -> None:
    cold = FridgeShelf.objects.create(label="dairy", temperature=4)
    Shelf.objects.create(label="dry")
    with koherent.assignation(user=user) as ctx:
        assert FridgeShelf.objects.filter(temperature=4).update(label="milk", temperature=2) == 1

    rows = list(FridgeShelf.history.filter(history_type="~"))
    assert [(r.label, r.temperature, r.assignation_id) for r in rows] == [
        ("milk", 2, ctx.assignation_id)
    ]
    assert rows[0].history_changed_fields == "label,temperature"
    # Like a save of the child, it writes the child's history, not the parent's.
    assert not Shelf.history.filter(history_type="~").exists()
    cold.refresh_from_db()
    assert (cold.label, cold.temperature) == ("milk", 2)


def test_an_update_keeps_the_tracked_many_to_many_state() -> None:
    invoice = Invoice.objects.create(number="I-1")
    red = Label.objects.create(name="red")
    invoice.labels.add(red)
    Invoice.objects.filter(pk=invoice.pk).update(status="sent")

    row = Invoice.history.filter(history_type="~").latest("history_date", "history_id")
    assert row.status == "sent"
    assert [link.label_id for link in row.labels.all()] == [red.pk]


def test_simple_historys_switch_turns_the_capture_off(
    products: list[Product], settings: Any
) -> None:
    settings.SIMPLE_HISTORY_ENABLED = False
    assert Product.objects.update(stock=1) == 3
    assert not _updates()


def test_history_written_by_caller_writes_no_row(products: list[Product]) -> None:
    with capture.history_written_by_caller():
        assert Product.objects.update(stock=1) == 3
    assert not _updates()
    Product.objects.filter(name="pan").update(stock=2)
    assert len(_updates()) == 1


def test_the_capture_mode_is_decided_in_one_place(
    products: list[Product], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_update, "_captures_updates_in_python", lambda model, using=None: False)
    assert Product.objects.update(stock=1) == 3
    assert not _updates()


def test_untracked_models_are_left_alone() -> None:
    Category.objects.create(name="garden")
    with CaptureQueriesContext(connection) as queries:
        assert Category.objects.update(name="yard") == 1
    assert len(_history_writes(queries)) == 1
    assert "RETURNING" not in queries.captured_queries[-1]["sql"]


# -- what a save changed ---------------------------------------------------------------------


def test_a_save_records_the_fields_it_changed(products: list[Product]) -> None:
    pan = Product.objects.get(name="pan")
    pan.stock = 6
    pan.save()
    pan.price = Decimal("12.00")
    pan.save()  # compared with the state the first save left
    pan.save()  # nothing changed
    fresh = Product.objects.get(name="pot")
    fresh.refresh_from_db(fields=["stock"])
    fresh.name = "pot2"
    fresh.save()
    built = Product(pk=products[2].pk, name="cup", price=Decimal("3.00"), stock=8)
    built.save()  # never loaded: the row cannot say

    assert [r.history_changed_fields for r in _updates()] == ["stock", "price", "", "name", None]
    # Creations and deletions do not record it.
    assert set(
        History.objects.filter(history_type="+").values_list("history_changed_fields", flat=True)
    ) == {None}


def test_the_capture_test_apps_migrations_are_in_sync() -> None:
    assert_in_sync("captureapp")
