"""A read through a named (server-side) cursor inside a context: ``queryset.iterator()`` on
PostgreSQL declares one, and a cursor declaration cannot take the context's prefix. The read is
sent as it is, whole, and the writes around it are stamped as usual."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

import koherent
from tests.capture.models import Product
from tests.capture.support import UNATTRIBUTED, rows, stamp

pytestmark = pytest.mark.django_db(transaction=True)


def _stamp_of(user: Any, app: str, assignation_id: str) -> tuple[Any, ...]:
    return (user.pk, str(user.pk), app, assignation_id, None)


@pytest.mark.parametrize("atomic", [True, False], ids=["in-transaction", "autocommit"])
def test_an_iterator_read_between_two_writes(user: Any, atomic: bool) -> None:
    products = [Product.objects.create(name=f"p{i}", price=i) for i in range(5)]
    block = transaction.atomic() if atomic else contextlib.nullcontext()
    assignation = koherent.assignation("a-iter", user=user, app="one")
    with block, assignation, CaptureQueriesContext(connection) as queries:
        Product.objects.filter(pk=products[0].pk).update(price=F("price") + 10)
        # Several chunks: the cursor is declared once, then fetched from.
        names = [p.name for p in Product.objects.order_by("pk").iterator(chunk_size=2)]
        Product.objects.filter(pk=products[1].pk).update(price=F("price") + 10)
    assert names == ["p0", "p1", "p2", "p3", "p4"]
    sent = [q["sql"] for q in queries.captured_queries]
    assert len(sent) == 3
    assert sent[0].startswith("/*koherent:1|a-iter|")
    # The read, as it is: a cursor declared on the server.
    assert re.match(r'DECLARE "[^"]+" [A-Z ]*CURSOR [A-Z ]*FOR SELECT "capture_product"', sent[1])
    assert "koherent" not in sent[1]
    assert sent[2].startswith("/*koherent:1|a-iter|")
    updates = rows(Product, history_type="~")
    assert [(r.name, r.price) for r in updates] == [("p0", 10), ("p1", 11)]
    assert [stamp(r) for r in updates] == [_stamp_of(user, "one", "a-iter")] * 2


def test_a_write_without_context_after_an_iterator_read_in_one_transaction(user: Any) -> None:
    product = Product.objects.create(name="p", price=1)
    with transaction.atomic():
        with koherent.assignation("a-iter", user=user, app="one"):
            Product.objects.filter(pk=product.pk).update(price=2)
            assert [p.name for p in Product.objects.iterator(chunk_size=1)] == ["p"]
        Product.objects.filter(pk=product.pk).update(price=3)  # no context any more
    first, second = rows(Product, history_type="~")
    assert stamp(first) == _stamp_of(user, "one", "a-iter")
    assert stamp(second) == UNATTRIBUTED
