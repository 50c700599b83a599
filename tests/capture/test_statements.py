"""What a save sends under trigger capture: the trigger-mode figures of the statement counts
the signal path pins (``tests/test_history.py``, ``tests/test_touched_models.py``,
``tests/test_records.py``). One statement per save, the first of an assignation included: the
triggers write the history row, the record and the model list."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

import koherent
from koherent.models import Assignation, AssignationModel
from koherent.records import touched_models
from tests.capture.models import Product

#: How a statement that carries the context starts (a comment, the first field the version).
PREFIX = "/*koherent:1|"


def _statements(queries: CaptureQueriesContext) -> list[str]:
    """The first word of each statement sent, the context hand-off left out."""
    words = []
    for query in queries.captured_queries:
        sql = query["sql"]
        if sql.startswith(PREFIX):
            sql = sql.split("*/ ", 1)[1]
        words.append(sql.split()[0])
    return words


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic", [True, False], ids=["in-transaction", "autocommit"])
def test_every_save_is_one_statement_the_first_one_included(user: Any, atomic: bool) -> None:
    block = transaction.atomic() if atomic else contextlib.nullcontext()
    with block, koherent.assignation("a-count", user=user.pk, app="web"):
        with CaptureQueriesContext(connection) as first:
            Product.objects.create(name="first")
        with CaptureQueriesContext(connection) as second:
            Product.objects.create(name="second")
        with CaptureQueriesContext(connection) as third:
            product = Product.objects.get(name="second")
            product.price = 5
            product.save()
    # The first save checks the user (given by key) once; the saves are one statement each.
    assert _statements(first) == ["SELECT", "INSERT"]
    assert _statements(second) == ["INSERT"]
    assert first.captured_queries[1]["sql"].startswith(PREFIX + "a-count|web|")
    assert second.captured_queries[0]["sql"].startswith(PREFIX + "a-count|web|")
    assert _statements(third) == ["SELECT", "UPDATE"]
    # What the first save's trigger wrote besides the row.
    record = Assignation.objects.get(pk="a-count")
    assert (record.app, record.user_pk, record.origin) == ("web", str(user.pk), "manual")
    assert touched_models("a-count", "default") == frozenset({"capture.Product"})
    assert Product.history.filter(assignation_id="a-count").count() == 3


@pytest.fixture
def record_insert_attempts() -> Any:
    """Counts the INSERTs tried on the record and model-list tables (a BEFORE trigger fires
    for ``INSERT ... ON CONFLICT DO NOTHING`` even when the row is there already)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE koherent_test_attempts (tbl text); "
            "CREATE FUNCTION koherent_test_attempt() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN INSERT INTO koherent_test_attempts VALUES (TG_TABLE_NAME); RETURN NEW; END $$; "
            "CREATE TRIGGER koherent_test_attempt BEFORE INSERT ON koherent_assignation "
            "FOR EACH ROW EXECUTE FUNCTION koherent_test_attempt(); "
            "CREATE TRIGGER koherent_test_attempt BEFORE INSERT ON koherent_assignationmodel "
            "FOR EACH ROW EXECUTE FUNCTION koherent_test_attempt()"
        )

    def attempts() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT tbl FROM koherent_test_attempts ORDER BY tbl")
            return [row[0] for row in cursor.fetchall()]

    try:
        yield attempts
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER koherent_test_attempt ON koherent_assignation; "
                "DROP TRIGGER koherent_test_attempt ON koherent_assignationmodel; "
                "DROP FUNCTION koherent_test_attempt(); DROP TABLE koherent_test_attempts"
            )


@pytest.mark.django_db(transaction=True)
def test_autocommit_statements_of_a_recorded_assignation_try_no_record_insert(
    user: Any, record_insert_attempts: Any
) -> None:
    """In autocommit every statement is a transaction of its own: once a connection wrote the
    record and this table's entry (or found them), its later statements under the
    assignation try no insert (the session notes it, koherent.recorded). Another connection
    tries both once, in one statement, and writes only what is missing."""
    both = ["koherent_assignation", "koherent_assignationmodel"]
    with koherent.assignation("a-lookup", user=user.pk, app="web"):
        first = Product.objects.create(name="first")
        assert record_insert_attempts() == both
        for n in range(3):
            Product.objects.filter(pk=first.pk).update(price=n + 1)
        Product.objects.create(name="second")
    assert record_insert_attempts() == both
    assert Product.history.filter(assignation_id="a-lookup").count() == 5
    # Another connection (a worker's, say): one try of both, which finds them.
    connection.close()
    with koherent.assignation("a-lookup", user=user.pk, app="web"):
        Product.objects.filter(pk=first.pk).update(price=8)
        Product.objects.filter(pk=first.pk).update(price=9)
    assert record_insert_attempts() == sorted(both * 2)
    assert Assignation.objects.filter(pk="a-lookup").count() == 1
    assert AssignationModel.objects.filter(assignation_id="a-lookup").count() == 1
    # What is missing is written again: the record and its entry ...
    Assignation.objects.filter(pk="a-lookup").delete()  # the entry goes with it (cascade)
    connection.close()  # a connection that wrote them remembers them (koherent.recorded)
    with koherent.assignation("a-lookup", user=user.pk, app="web"):
        Product.objects.filter(pk=first.pk).update(price=10)
    assert record_insert_attempts() == sorted(both * 3)
    assert touched_models("a-lookup", "default") == frozenset({"capture.Product"})
    # ... the entry alone ...
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM koherent_assignationmodel WHERE assignation_id = 'a-lookup'")
    connection.close()
    with koherent.assignation("a-lookup", user=user.pk, app="web"):
        Product.objects.filter(pk=first.pk).update(price=11)
    assert touched_models("a-lookup", "default") == frozenset({"capture.Product"})
    assert Assignation.objects.filter(pk="a-lookup").count() == 1
    # ... and the record alone, deleted by SQL that left its entry.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM koherent_assignation WHERE id = 'a-lookup'")
    connection.close()
    with koherent.assignation("a-lookup", user=user.pk, app="web"):
        Product.objects.filter(pk=first.pk).update(price=12)
    record = Assignation.objects.get(pk="a-lookup")
    assert (record.app, record.user_pk, record.models_recorded) == ("web", str(user.pk), True)
    assert touched_models("a-lookup", "default") == frozenset({"capture.Product"})


def _recorded() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('koherent.recorded', true)")
        row = cursor.fetchone()
    return None if row is None else row[0]


@pytest.mark.django_db(transaction=True)
def test_a_connection_remembers_a_committed_record_and_forgets_a_rolled_back_one(
    user: Any,
) -> None:
    """The trigger notes on the session what it recorded: a committed record stays noted (the
    next autocommit statements skip the lookup), a rolled-back one is forgotten with it."""
    with koherent.assignation("a-kept", user=user.pk):
        Product.objects.create(name="a")  # autocommit: a transaction of its own
    assert _recorded() == "a-kept|capture_historicalproduct"
    with pytest.raises(RuntimeError), transaction.atomic():
        with koherent.assignation("a-gone", user=user.pk):
            Product.objects.create(name="b")
            assert _recorded() == "a-gone|capture_historicalproduct"
        raise RuntimeError
    assert _recorded() == "a-kept|capture_historicalproduct"
    assert not Assignation.objects.filter(pk="a-gone").exists()
    with koherent.assignation("a-gone", user=user.pk):
        Product.objects.create(name="c")
    assert Assignation.objects.filter(pk="a-gone").exists()
    assert touched_models("a-gone", "default") == frozenset({"capture.Product"})
