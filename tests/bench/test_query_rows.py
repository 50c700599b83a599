"""Loading an assignation's rows of several models in one narrow ``UNION ALL``.

The load query shares its columns between models (the n-th column of a type holds the n-th
field of that type of every model), so its width does not grow with the number of models and
PostgreSQL plans it quickly. These tests prove the shared layout loses nothing: every field of
every model comes back exactly as the ORM reads it, on both backends.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

import koherent
from koherent._registry import tracked_model
from koherent.query import _function, history_for_assignation
from koherent.query._rows import _plan
from koherent.query.changes import previous_rows
from tests.bench.sql import capture_sql
from tests.history_reads import first_page_in_one_query
from tests.testapp.models import Item, Order, Project
from tests.undoapp.models import Invoice, Line

pytestmark = pytest.mark.django_db


def _write_some_of_everything(user: Any) -> str:
    with koherent.assignation(user=user, app="shop") as ctx:
        order = Order.objects.create(reference="o-1", total=7)
        Item.objects.create(order=order, name="pen", quantity=3)
        invoice = Invoice.objects.create(number="A-1", total=12)
        Line.objects.create(invoice=invoice, position=1, product="ink", quantity=2)
        Project.objects.create(name="p", description="a longer text")
        order.status = "paid"
        order.save()
        invoice.delete()
    assert ctx.assignation_id is not None
    return ctx.assignation_id


def test_every_field_of_every_model_reads_as_the_orm_reads_it(user: Any) -> None:
    assignation_id = _write_some_of_everything(user)
    rows = list(history_for_assignation(assignation_id).rows())
    assert len(rows) == 8  # the invoice deletion also deletes (and records) its line
    assert len({type(row) for row in rows}) == 5
    for row in rows:
        expected = type(row)._default_manager.get(pk=row.pk)
        for f in type(row)._meta.concrete_fields:
            got, want = getattr(row, f.attname), getattr(expected, f.attname)
            assert got == want, (type(row).__name__, f.attname)
            assert type(got) is type(want), (type(row).__name__, f.attname)


def test_models_of_the_same_shape_share_every_column() -> None:
    order, invoice = tracked_model(Order), tracked_model(Invoice)
    width = len(order.history_model._meta.concrete_fields)
    assert len(invoice.history_model._meta.concrete_fields) == width
    plan = _plan([order, invoice], connection)
    assert plan.layout[0] == plan.layout[1]
    assert len(plan.selects[0].split(", ")) == width
    # A model with other fields needs only the columns of the types it has more of.
    item = tracked_model(Item)
    mixed = _plan([order, invoice, item], connection)
    assert len(mixed.selects[0].split(", ")) < 2 * width
    for placement in mixed.layout:
        assert len(set(placement)) == len(placement)  # one field per column in a branch


@pytest.mark.postgres
def test_load_query_text_does_not_depend_on_the_number_of_rows(user: Any) -> None:
    with koherent.assignation(user=user) as small:
        Order.objects.create(reference="one")
    with koherent.assignation(user=user) as large:
        for n in range(5):
            Order.objects.create(reference=f"many {n}")
    texts = []
    for ctx in (small, large):
        assert ctx.assignation_id is not None
        with capture_sql() as statements:
            rows = list(history_for_assignation(ctx.assignation_id).rows())
        # The tables the assignation touched (its record's list), then the rows in one query;
        # on PostgreSQL one call of the history function reads both.
        one = first_page_in_one_query()
        assert len(statements) == (1 if one else 2)
        if not one:
            assert '"koherent_assignation"' in statements[0]
        texts.append(statements[-1])
        assert len(rows) in (1, 5)
    assert texts[0] == texts[1]
    # Later pages load their rows by key: pages of 2 and of 1 row send the same text.
    assert large.assignation_id is not None
    with capture_sql() as statements:
        rows = list(history_for_assignation(large.assignation_id, batch_size=2).rows())
    assert len(rows) == 5
    # The first page (after the touched tables, without the function), then the touched
    # tables (with it: read once, for the later pages), keys and rows for each of two more.
    assert len(statements) == 6
    assert statements[3] == statements[5]


def _assert_dates_as_the_orm_reads_them(rows: list[Any]) -> None:
    assert rows
    for row in rows:
        expected = type(row)._default_manager.get(pk=row.pk)
        for name in ("history_date",):
            got, want = getattr(row, name), getattr(expected, name)
            assert got == want
            assert got.tzinfo == want.tzinfo, (got, want)
            assert got.isoformat() == want.isoformat()


@pytest.mark.parametrize(
    "options",
    [
        {},  # USE_TZ, the connection in UTC: aware values in UTC
        {"USE_TZ": False, "TIME_ZONE": "America/New_York"},  # naive local wall clock
        {"USE_TZ": False, "TIME_ZONE": "Asia/Kolkata"},
    ],
    ids=["aware-utc", "naive-new-york", "naive-kolkata"],
)
def test_dates_read_as_the_orm_reads_them_in_every_time_zone_setting(
    user: Any, options: dict[str, Any], settings: Any
) -> None:
    for name, value in options.items():
        setattr(settings, name, value)  # the connection's time zone follows (setting_changed)
    assignation_id = _write_some_of_everything(user)
    rows: list[Any] = list(history_for_assignation(assignation_id).rows())
    assert len(rows) == 8
    _assert_dates_as_the_orm_reads_them(rows)
    # Later pages load rows by key (another query, the same layout).
    paged = list(history_for_assignation(assignation_id, batch_size=3).rows())
    assert [r.pk for r in paged] == [r.pk for r in rows]
    _assert_dates_as_the_orm_reads_them(paged)
    # The rows before an assignation's (changes and the revert read them in one query).
    order = tracked_model(Order)
    updates: list[Any] = [r for r in rows if r.history_type == "~"]
    update: Any = next(r for r in updates if isinstance(r, order.history_model))
    before: list[Any] = previous_rows(
        "default", order, [(update.id, update.history_date, update.history_id)]
    )
    assert [r.history_type for r in before] == ["+"]
    _assert_dates_as_the_orm_reads_them(before)


@pytest.mark.postgres
def test_postgres_reads_history_dates_without_djangos_python_loader(user: Any) -> None:
    """Django reads ``timestamptz`` through a Python loader (about 12 µs a value); the
    history reads cast the column to ``timestamp`` (psycopg's C loader) and set the zone."""
    assignation_id = _write_some_of_everything(user)
    with capture_sql() as statements:
        rows = list(history_for_assignation(assignation_id).rows())
    assert len(rows) == 8
    # The SQL that reads the rows: the two-query path's, or the history function's.
    found = _function.reader("default")
    sql = statements[-1] if found is None else found.create
    if found is not None:
        assert found.name in statements[-1]
    assert 'CAST("history_date" AS timestamp)' in sql
    assert "CAST(NULL AS timestamp with time zone)" not in sql
