"""Every write path of a trigger-captured model writes its history row, stamped."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import F
from simple_history.utils import (
    bulk_create_with_history,
    bulk_update_with_history,
    update_change_reason,
)

import koherent
from koherent.capture import capture_mode
from koherent.models import Assignation
from tests.capture.models import Counter, Ledger, Part, Product
from tests.capture.support import UNATTRIBUTED, raw, raw_unwrapped, rows, stamp

pytestmark = pytest.mark.django_db


def _stamp_of(user: Any, app: str, assignation_id: str) -> tuple[Any, ...]:
    return (user.pk, str(user.pk), app, assignation_id, None)


def test_capture_mode_of_each_model() -> None:
    assert capture_mode(Product) == "trigger"
    assert capture_mode(Part) == "trigger"
    assert capture_mode(Ledger) == "signal"
    with pytest.raises(LookupError):
        capture_mode(Assignation)


def test_save_create_update_delete_write_one_stamped_row_each(user: Any) -> None:
    with koherent.assignation("a-save", user=user, app="shop"):
        product = Product.objects.create(name="lamp", price=10, stock=5)
        product.stock = 4
        product.save()
        product.delete()
    history = rows(Product)
    assert [r.history_type for r in history] == ["+", "~", "-"]
    assert [r.stock for r in history] == [5, 4, 4]
    assert all(stamp(r) == _stamp_of(user, "shop", "a-save") for r in history)
    record = Assignation.objects.get(pk="a-save")
    assert (record.user_id, record.user_pk, record.app, record.origin) == (
        user.pk,
        str(user.pk),
        "shop",
        "manual",
    )


def test_save_without_change_writes_no_row_by_default() -> None:
    product = Product.objects.create(name="lamp", price=10)
    product.save()
    assert len(rows(Product)) == 1


def test_capture_unchanged_writes_a_row_for_every_update() -> None:
    counter = Counter.objects.create(name="c")
    counter.save()
    Counter.objects.update(value=F("value"))
    assert [r.history_type for r in rows(Counter)] == ["+", "~", "~"]


def test_queryset_update_writes_one_row_per_changed_object(user: Any) -> None:
    Product.objects.bulk_create(
        [Product(name="a", price=10), Product(name="b", price=20), Product(name="c", price=0)]
    )
    with koherent.assignation("a-update", user=user, app="batch"):
        changed = Product.objects.update(price=F("price") * 2)
    assert changed == 3  # the caller still sees its own statement's row count
    updates = rows(Product, history_type="~")
    # c's price 0 * 2 is still 0: no tracked column changed, no row.
    assert sorted(r.name for r in updates) == ["a", "b"]
    assert {r.price for r in updates} == {20, 40}
    assert all(stamp(r) == _stamp_of(user, "batch", "a-update") for r in updates)


def test_bulk_create_bulk_update_and_queryset_delete(user: Any) -> None:
    with koherent.assignation("a-bulk", user=user, app="import"):
        created = Product.objects.bulk_create([Product(name=f"p{i}") for i in range(5)])
        for product in created:
            product.price = 7
        Product.objects.bulk_update(created, ["price"])
        Product.objects.filter(name__in=["p0", "p1"]).delete()
    history = rows(Product)
    assert [r.history_type for r in history].count("+") == 5
    assert [r.history_type for r in history].count("~") == 5
    assert sorted(r.name for r in history if r.history_type == "-") == ["p0", "p1"]
    assert {stamp(r) for r in history} == {_stamp_of(user, "import", "a-bulk")}


def test_raw_sql_with_list_dict_and_no_params(user: Any) -> None:
    product = Product.objects.create(name="raw", price=1)
    with koherent.assignation("a-raw", user=user, app="sql"):
        assert raw("UPDATE capture_product SET price = %s WHERE id = %s", [2, product.pk]) == 1
        raw(
            "UPDATE capture_product SET price = %(price)s WHERE id = %(id)s",
            {"price": 3, "id": product.pk},
        )
        # No parameters: a literal % stays a literal %.
        raw(f"UPDATE capture_product SET name = 'fifty%' WHERE id = {product.pk}")
        # And with parameters, a literal %% is still one %.
        raw("UPDATE capture_product SET name = 'ten%%' || %s WHERE id = %s", ["!", product.pk])
    history = rows(Product, history_type="~")
    assert [(r.price, r.name) for r in history] == [
        (2, "raw"),
        (3, "raw"),
        (3, "fifty%"),
        (3, "ten%!"),
    ]
    assert {stamp(r) for r in history} == {_stamp_of(user, "sql", "a-raw")}


@pytest.mark.parametrize("atomic", [True, False])
def test_executemany(user: Any, atomic: bool) -> None:
    products = Product.objects.bulk_create([Product(name="x"), Product(name="y")])
    with koherent.assignation("a-many", user=user, app="many"), connection.cursor() as cursor:
        block = transaction.atomic() if atomic else _nothing()
        with block:
            cursor.executemany(
                "UPDATE capture_product SET price = %s WHERE id = %s",
                [(5, products[0].pk), (6, products[1].pk)],
            )
    history = rows(Product, history_type="~")
    assert sorted(r.price for r in history) == [5, 6]
    assert {stamp(r) for r in history} == {_stamp_of(user, "many", "a-many")}


def test_a_statement_without_context_after_an_executemany_with_context_is_unattributed(
    user: Any,
) -> None:
    """The context ``executemany`` hands over in a transaction is cleared for the next
    statement, as after a plain statement."""
    product = Product.objects.create(name="n", price=1)
    with transaction.atomic():
        with koherent.assignation("a-many", user=user, app="many"), connection.cursor() as c:
            c.executemany("UPDATE capture_product SET price = %s WHERE id = %s", [(2, product.pk)])
        Product.objects.filter(pk=product.pk).update(price=3)  # no context any more
    first, second = rows(Product, history_type="~")
    assert stamp(first) == _stamp_of(user, "many", "a-many")
    assert stamp(second) == UNATTRIBUTED


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_no_context_is_unattributed_never_refused() -> None:
    product = Product.objects.create(name="n", price=1)
    Product.objects.filter(pk=product.pk).update(price=2)
    history = rows(Product)
    assert len(history) == 2
    assert {stamp(r) for r in history} == {UNATTRIBUTED}


def test_statement_without_context_after_one_with_context_in_one_transaction(
    user: Any,
) -> None:
    product = Product.objects.create(name="n", price=1)
    with transaction.atomic():
        with koherent.assignation("a-first", user=user, app="one"):
            Product.objects.filter(pk=product.pk).update(price=2)
        Product.objects.filter(pk=product.pk).update(price=3)  # no context any more
    first, second = rows(Product, history_type="~")
    assert stamp(first) == _stamp_of(user, "one", "a-first")
    assert stamp(second) == UNATTRIBUTED


def test_a_malformed_setting_writes_the_row_unattributed() -> None:
    product = Product.objects.create(name="m", price=1)
    with transaction.atomic():
        raw_unwrapped(
            "SELECT set_config('koherent.assignation_id', 'fine-1', true), "
            "set_config('koherent.user_id', 'not-a-number', true); "
            f"UPDATE capture_product SET price = 9 WHERE id = {product.pk}"
        )
    (row,) = rows(Product, history_type="~")
    assert row.price == 9
    assert stamp(row) == UNATTRIBUTED
    assert not Assignation.objects.filter(pk="fine-1").exists()


def test_a_user_id_set_by_hand_that_fits_is_written(user: Any) -> None:
    product = Product.objects.create(name="m", price=1)
    with transaction.atomic():
        raw_unwrapped(
            "SELECT set_config('koherent.app', 'psql-fix', true); "
            f"UPDATE capture_product SET price = 9 WHERE id = {product.pk}"
        )
    (row,) = rows(Product, history_type="~")
    assert row.app == "psql-fix"


def test_no_double_rows_with_the_bulk_helpers(user: Any) -> None:
    with koherent.assignation("a-helpers", user=user, app="helpers"):
        created = bulk_create_with_history(
            [Product(name="h1"), Product(name="h2")],
            Product,
            default_change_reason="import",
        )
        for product in Product.objects.filter(name__in=["h1", "h2"]):
            product.price = 3
            created.append(product)
        bulk_update_with_history(created[2:], Product, ["price"], default_change_reason="reprice")
    history = rows(Product)
    assert [(r.history_type, r.history_change_reason) for r in history] == [
        ("+", "import"),
        ("+", "import"),
        ("~", "reprice"),
        ("~", "reprice"),
    ]
    assert {stamp(r) for r in history} == {_stamp_of(user, "helpers", "a-helpers")}


def test_change_reason_of_save_and_delete_and_update_change_reason() -> None:
    product = Product(name="r", price=1)
    product._change_reason = "created by hand"  # type: ignore[attr-defined]
    product.save()
    other = Product.objects.create(name="other")
    product.price = 2
    product._change_reason = "repriced"  # type: ignore[attr-defined]
    product.save()
    update_change_reason(product, "repriced, said later")
    product._change_reason = "gone"  # type: ignore[attr-defined]
    pk = product.pk
    product.delete()
    reasons = [(r.history_type, r.history_change_reason) for r in rows(Product, id=pk)]
    assert reasons == [("+", "created by hand"), ("~", "repriced, said later"), ("-", "gone")]
    # The other product's row does not get the reason of a save it was not part of.
    assert rows(Product, id=other.pk)[0].history_change_reason is None


def test_save_without_historical_record_is_honoured() -> None:
    product = Product.objects.create(name="s", price=1)
    product.price = 2
    product.save_without_historical_record()  # type: ignore[attr-defined]
    Product.objects.filter(pk=product.pk).update(price=3)
    assert [r.price for r in rows(Product)] == [1, 3]


def test_uuid_key_historic_foreign_key_excluded_field_uuid_history_id(user: Any) -> None:
    product = Product.objects.create(name="frame")
    with koherent.assignation("a-part", user=user, app="parts"):
        part = Part.objects.create(product=product, code="P1", weight=3, scratch="x")
        part.scratch = "only excluded"
        part.save()  # only the excluded field changed: no row
        part.weight = 4
        part._change_reason = "x" * 300  # type: ignore[attr-defined]
        part.save()
    history = rows(Part)
    assert [r.history_type for r in history] == ["+", "~"]
    assert all(isinstance(r.history_id, uuid.UUID) for r in history)
    assert {r.id for r in history} == {part.pk}
    assert history[1].history_change_reason == "x" * 300  # a TextField keeps it all
    assert history[1].product == product
    assert not hasattr(history[1], "scratch")
    assert Part.history.model._meta.db_table == "capture_part_audit"
    assert {stamp(r) for r in history} == {_stamp_of(user, "parts", "a-part")}


def test_signal_captured_model_is_untouched(user: Any) -> None:
    with koherent.assignation("a-ledger", user=user, app="books"):
        ledger = Ledger.objects.create(name="l", amount=1)
        ledger.save()
        Ledger.objects.update(amount=2)  # Koherent's update() capture, in Python
        raw("UPDATE capture_ledger SET amount = 3")  # invisible to signals
    history = rows(Ledger)
    assert [r.history_type for r in history] == ["+", "~", "~"]
    assert history[-1].amount == 2
    assert history[-1].history_changed_fields == "amount"


def test_the_change_and_its_row_roll_back_together() -> None:
    product = Product.objects.create(name="t", price=1)
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(price=2)
        raise RuntimeError
    assert [r.history_type for r in rows(Product)] == ["+"]


def test_a_rolled_back_savepoint_takes_the_record_with_it(user: Any) -> None:
    product = Product.objects.create(name="t", price=1)
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            with koherent.assignation("a-sp", user=user):
                Product.objects.filter(pk=product.pk).update(price=2)
            raise RuntimeError
        assert not Assignation.objects.filter(pk="a-sp").exists()
        with koherent.assignation("a-sp", user=user):
            Product.objects.filter(pk=product.pk).update(price=3)
    assert Assignation.objects.filter(pk="a-sp").exists()


def test_reads_and_ddl_are_sent_as_they_are() -> None:
    from django.test.utils import CaptureQueriesContext

    with koherent.assignation("a-read"), CaptureQueriesContext(connection) as queries:
        list(Product.objects.filter(name="none"))
        raw("CREATE TEMPORARY TABLE capture_scratch (id int)")
        Product.objects.create(name="w")
    sent = [q["sql"] for q in queries.captured_queries]
    assert sent[0].startswith("SELECT")
    assert "set_config" not in sent[0]
    assert sent[1].startswith("CREATE TEMPORARY TABLE")
    assert sent[2].startswith("/*koherent:1|a-read|")


def test_a_select_that_writes_after_a_handed_off_statement_reads_no_stale_context(
    user: Any,
) -> None:
    product = Product.objects.create(name="f", price=1)
    raw(
        "CREATE FUNCTION pg_temp.capture_bump(target bigint) RETURNS int AS $$ "
        "UPDATE capture_product SET price = price + 1 WHERE id = target RETURNING price "
        "$$ LANGUAGE sql"
    )
    with transaction.atomic():
        with koherent.assignation("a-before", user=user, app="one"):
            Product.objects.filter(pk=product.pk).update(price=10)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_temp.capture_bump(%s)", [product.pk])
            assert cursor.fetchone() == (11,)  # the caller still gets its own result
    first, second = rows(Product, history_type="~")
    assert stamp(first) == _stamp_of(user, "one", "a-before")
    assert (second.price, stamp(second)) == (11, UNATTRIBUTED)


@pytest.mark.django_db(transaction=True)
def test_one_record_per_assignation_across_autocommit_statements(user: Any) -> None:
    products = Product.objects.bulk_create([Product(name="r1"), Product(name="r2")])
    with koherent.assignation("a-auto", user=user, app="auto"):
        for product in products:  # two statements, two transactions
            Product.objects.filter(pk=product.pk).update(price=5)
    assert Assignation.objects.filter(pk="a-auto").count() == 1
    assert len(rows(Product, assignation_id="a-auto")) == 2


def test_no_record_when_records_are_off(user: Any, settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "RECORD_ASSIGNATIONS": False}
    with koherent.assignation("a-off", user=user):
        Product.objects.create(name="off")
    assert not Assignation.objects.filter(pk="a-off").exists()
    (row,) = rows(Product)
    assert row.assignation_id == "a-off"


def test_a_trigger_written_record_lists_the_tables_it_wrote_to(user: Any) -> None:
    """The trigger puts each table on the assignation's list, so reading the assignation
    reads only those tables (the list is complete: ``models_recorded``)."""
    from django.db import connection as db

    from koherent.records import model_key, touched_models
    from tests.history_reads import tables_read

    with koherent.assignation("a-touched", user=user, app="shop"):
        Product.objects.create(name="lamp", price=10)
        with db.cursor() as cursor:  # raw SQL: the trigger writes this row too
            cursor.execute(
                f"UPDATE {Product._meta.db_table} SET price = price + 1 WHERE name = %s", ["lamp"]
            )
        Counter.objects.create(name="bolts")
    record = Assignation.objects.get(pk="a-touched")
    assert record.models_recorded
    listed = touched_models("a-touched", "default")
    assert listed == frozenset(
        {model_key(Product.history.model), model_key(Counter.history.model)}
    )
    with tables_read() as read:
        entries = list(koherent.history_for_assignation("a-touched"))
    assert [(e.model_label, e.kind.value) for e in entries] == [
        ("capture.Product", "CREATE"),
        ("capture.Product", "UPDATE"),
        ("capture.Counter", "CREATE"),
    ]
    assert Ledger.history.model._meta.db_table not in read  # an untouched tracked table
    assert Product.history.model._meta.db_table in read


def test_a_list_entry_the_trigger_cannot_write_leaves_no_record_vouching_for_the_list(
    user: Any,
) -> None:
    """The trigger writes the record and the table's entry on its list together or not at
    all, and a record already there stops vouching for its list: the readers find every row
    either way (a list missing a table would hide that table's rows)."""
    from koherent._assignations import AssignationModel
    from koherent.records import model_key

    table = connection.ops.quote_name(AssignationModel._meta.db_table)
    counter = model_key(Counter.history.model)
    with connection.cursor() as cursor:  # Counter's entry cannot be written (undone after)
        cursor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT koherent_test_no_entry CHECK (model <> %s)",
            [counter],
        )
    with koherent.assignation("a-listless", user=user, app="shop"):
        Counter.objects.create(name="bolts")  # the assignation's first write
        Product.objects.create(name="cup")  # then a table whose entry can be written
    assert not Assignation.objects.get(pk="a-listless").models_recorded
    entries = list(koherent.history_for_assignation("a-listless"))
    assert [e.model_label for e in entries] == [counter, model_key(Product.history.model)]

    with koherent.assignation("a-partial", user=user, app="shop"):
        Product.objects.create(name="lamp")  # the record and Product's entry
        Counter.objects.create(name="nuts")  # Counter's entry fails
    assert not Assignation.objects.get(pk="a-partial").models_recorded
    entries = list(koherent.history_for_assignation("a-partial"))
    assert [e.model_label for e in entries] == [model_key(Product.history.model), counter]
