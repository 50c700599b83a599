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
from koherent.models import Assignation
from koherent.records import touched_models
from tests.capture.models import Product

PREFIX = "SELECT set_config('koherent.assignation_id', "


def _statements(queries: CaptureQueriesContext) -> list[str]:
    """The first word of each statement sent, the context hand-off left out."""
    words = []
    for query in queries.captured_queries:
        sql = query["sql"]
        if sql.startswith(PREFIX):
            sql = sql.split("; ", 1)[1]
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
    assert first.captured_queries[1]["sql"].startswith(PREFIX + "E'a-count'")
    assert second.captured_queries[0]["sql"].startswith(PREFIX + "E'a-count'")
    assert _statements(third) == ["SELECT", "UPDATE"]
    # What the first save's trigger wrote besides the row.
    record = Assignation.objects.get(pk="a-count")
    assert (record.app, record.user_pk, record.origin) == ("web", str(user.pk), "manual")
    assert touched_models("a-count", "default") == frozenset({"capture.Product"})
    assert Product.history.filter(assignation_id="a-count").count() == 3
