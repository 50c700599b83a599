"""History rows stamped with the audit context: every write path, query counts, atomicity."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from simple_history.signals import pre_create_historical_record
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

import koherent
from koherent.capture import capture_mode
from koherent.models import Assignation
from tests.testapp.models import Item, Note, Order, Project

pytestmark = pytest.mark.django_db


def stamps(row: Any) -> tuple[Any, ...]:
    return (row.assignation_id, row.app, row.history_user_id, row.user_pk, row.task_id)


def test_save_update_delete_are_stamped(user: Any) -> None:
    with koherent.assignation(user=user, app="web") as ctx:
        order = Order.objects.create(reference="A")
        order.status = "paid"
        order.save()
        order.delete()
    rows = list(Order.history.order_by("history_id"))
    assert [r.history_type for r in rows] == ["+", "~", "-"]
    expected = (ctx.assignation_id, "web", user.pk, str(user.pk), None)
    assert all(stamps(r) == expected for r in rows)


def test_model_tracked_by_inheritance_is_stamped(user: Any) -> None:
    with koherent.assignation(user=user, app="web") as ctx:
        Project.objects.create(name="P")
    row = Project.history.get()
    assert stamps(row) == (ctx.assignation_id, "web", user.pk, str(user.pk), None)


def test_no_context_writes_unstamped_rows() -> None:
    Order.objects.create(reference="plain")
    row = Order.history.get()
    assert stamps(row) == (None, None, None, None, None)
    assert not Assignation.objects.exists()


def test_task_id_is_stamped() -> None:
    with koherent.context(assignation_id="A-1", task_id="5b9a2a5e-task"):
        Order.objects.create(reference="t")
    assert Order.history.get().task_id == "5b9a2a5e-task"


@pytest.mark.django_db(transaction=True)
async def test_asave_and_adelete_are_stamped(user: Any) -> None:
    async with koherent.assignation(user=user, app="async") as ctx:
        order = Order(reference="async")
        await order.asave()
        order.total = 5
        await order.asave()
        await order.adelete()
    rows = [r async for r in Order.history.order_by("history_id")]
    assert [r.history_type for r in rows] == ["+", "~", "-"]
    assert {stamps(r) for r in rows} == {
        (ctx.assignation_id, "async", user.pk, str(user.pk), None)
    }


@pytest.fixture
def history_signals() -> Iterator[list[Any]]:
    sent: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(sender)

    pre_create_historical_record.connect(receiver, weak=False)
    yield sent
    pre_create_historical_record.disconnect(receiver)


@pytest.mark.signal_capture
def test_bulk_helpers_are_stamped_without_any_signal(
    user: Any, history_signals: list[Any]
) -> None:
    with koherent.assignation(user=user, app="bulk") as ctx:
        orders = bulk_create_with_history([Order(reference=f"b{n}") for n in range(5)], Order)
        for order in Order.objects.all():
            order.status = "bulk-updated"
        bulk_update_with_history(list(Order.objects.all()), Order, ["status"])
    assert history_signals == []  # simple-history's bulk path sends no signal ...
    rows = list(Order.history.all())
    assert len(rows) == 10
    assert len(orders) == 5
    expected = (ctx.assignation_id, "bulk", user.pk, str(user.pk), None)
    assert {stamps(r) for r in rows} == {expected}  # ... and the rows are stamped anyway
    assert Assignation.objects.get().id == ctx.assignation_id


@pytest.mark.signal_capture
def test_a_bulk_call_reads_the_context_once_not_once_per_row(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The context's columns are read once per bulk call (they cannot change during it),
    and every row still holds them."""
    field = Order.history.model._meta.get_field("app")
    original = field.default
    calls: list[None] = []

    def counted() -> Any:
        calls.append(None)
        return original()

    monkeypatch.setattr(field, "default", counted)
    # Django caches the default's getter on the field: made again from ``counted``.
    monkeypatch.delitem(field.__dict__, "_get_default", raising=False)
    try:
        with koherent.assignation(user=user, app="bulk") as ctx:
            bulk_create_with_history([Order(reference=f"c{n}") for n in range(20)], Order)
            for order in Order.objects.all():
                order.status = "bulk-updated"
            bulk_update_with_history(list(Order.objects.all()), Order, ["status"])
    finally:
        field.__dict__.pop("_get_default", None)
    assert len(calls) == 2  # one per bulk call, not one per row (40)
    rows = list(Order.history.all())
    assert len(rows) == 40
    expected = (ctx.assignation_id, "bulk", user.pk, str(user.pk), None)
    assert {stamps(r) for r in rows} == {expected}


@pytest.mark.signal_capture
def test_a_bulk_call_without_context_right_after_one_with_it_is_unstamped(user: Any) -> None:
    with koherent.assignation(user=user, app="bulk"):
        bulk_create_with_history([Order(reference="with")], Order)
    bulk_create_with_history([Order(reference="without")], Order)
    stamped = Order.history.get(reference="with")
    unstamped = Order.history.get(reference="without")
    assert stamped.app == "bulk"
    assert stamps(unstamped) == (None, None, None, None, None)


@pytest.mark.signal_capture
def test_the_callers_historical_attrs_win_over_the_context(user: Any) -> None:
    with koherent.assignation(user=user, app="bulk"):
        bulk_create_with_history(
            [Order(reference="given")], Order, custom_historical_attrs={"app": "given-app"}
        )
    assert Order.history.get(reference="given").app == "given-app"


@pytest.mark.signal_capture
def test_explicit_history_user_wins_and_user_pk_follows_it(user: Any, other_user: Any) -> None:
    with koherent.assignation(user=user):
        order = Order(reference="explicit")
        order._history_user = other_user  # type: ignore[attr-defined]
        order.save()
        bulk_create_with_history([Order(reference="d")], Order, default_user=other_user)
    for row in Order.history.all():
        assert row.history_user_id == other_user.pk
        assert row.user_pk == str(other_user.pk)


@pytest.mark.signal_capture
def test_steady_state_costs_no_extra_query(user: Any) -> None:
    """Stamping reads no user and writes the record once: later saves are plain saves."""
    with koherent.assignation(user=user.pk, app="web"):
        with CaptureQueriesContext(connection) as first:
            Order.objects.create(reference="first")
        with CaptureQueriesContext(connection) as second:
            Order.objects.create(reference="second")
        with CaptureQueriesContext(connection) as third:
            order = Order.objects.get(reference="second")
            order.status = "x"
            order.save()
    # The first save checks the user once and writes the assignation record once.
    assert any("koherent_assignation" in q["sql"] for q in first.captured_queries)
    # After that: the model's INSERT and the history INSERT, nothing else.
    assert len(second.captured_queries) == 2, second.captured_queries
    assert [q["sql"].split()[0] for q in third.captured_queries] == ["SELECT", "UPDATE", "INSERT"]


def test_request_user_instance_is_not_fetched(user: Any) -> None:
    with koherent.assignation(user=user), CaptureQueriesContext(connection) as queries:
        Order.objects.create(reference="x")
    assert not any('"testapp_user"' in q["sql"] for q in queries.captured_queries)


def test_deleted_user_keeps_the_change_and_the_raw_id(
    user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user_pk = user.pk
    user.delete()
    with caplog.at_level(logging.WARNING, "koherent"), koherent.assignation(user=user_pk) as ctx:
        order = Order.objects.create(reference="orphan")
        order.status = "still-works"
        order.save()
    assert Order.objects.get(pk=order.pk).status == "still-works"
    rows = list(Order.history.all())
    assert len(rows) == 2
    assert all(r.history_user_id is None and r.user_pk == str(user_pk) for r in rows)
    record = Assignation.objects.get(pk=ctx.assignation_id)
    assert record.user_id is None
    assert record.user_pk == str(user_pk)
    assert f"user {user_pk!r} does not exist" in caplog.text


def test_user_deleted_later_keeps_the_raw_id(user: Any) -> None:
    with koherent.assignation(user=user):
        Order.objects.create(reference="x")
    user_pk = user.pk
    user.delete()
    row = Order.history.get()
    assert row.history_user_id is None  # simple-history's SET_NULL
    assert row.user_pk == str(user_pk)


def test_untracked_model_is_untouched() -> None:
    with koherent.assignation(), CaptureQueriesContext(connection) as queries:
        Note.objects.create(text="n")
    assert len(queries.captured_queries) == 1


def test_foreign_key_children_stamped(user: Any) -> None:
    with koherent.assignation(user=user) as ctx:
        order = Order.objects.create(reference="o")
        Item.objects.create(order=order, name="i")
        order.delete()  # cascades to the item: both delete rows stamped
    assert {r.assignation_id for r in Item.history.all()} == {ctx.assignation_id}
    assert Item.history.filter(history_type="-").count() == 1


class _FailingHistory:
    """Makes the database refuse the next history row (a real failed INSERT)."""

    def __init__(self) -> None:
        self.armed = True

    def __call__(self, sender: Any, history_instance: Any, **kwargs: Any) -> None:
        if self.armed:
            history_instance.history_type = "TOO-LONG-FOR-THE-COLUMN"


@pytest.fixture
def failing_history() -> Iterator[_FailingHistory]:
    failer = _FailingHistory()
    pre_create_historical_record.connect(failer, weak=False)
    yield failer
    pre_create_historical_record.disconnect(failer)


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_failed_history_insert_rolls_the_change_back(failing_history: _FailingHistory) -> None:
    """Autocommit mode: the model row must not survive its history row's failure."""
    assert connection.get_autocommit()
    with pytest.raises(DatabaseError), koherent.assignation():
        Order.objects.create(reference="lost")
    assert not Order.objects.exists()
    assert not Order.history.exists()


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_atomic_saves_the_change_survives(
    failing_history: _FailingHistory, settings: Any
) -> None:
    """Negative control: simple-history's own behaviour leaves an unaudited change."""
    settings.KOHERENT = {**settings.KOHERENT, "ATOMIC_SAVES": False}
    with pytest.raises(DatabaseError), koherent.assignation():
        Order.objects.create(reference="unaudited")
    assert Order.objects.filter(reference="unaudited").exists()
    assert not Order.history.exists()


def _xmin(table: str, column: str, value: Any) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT xmin::text::bigint FROM {table} WHERE {column} = %s", [value])
        return int(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic", [True, False])
def test_autocommit_save_commits_once(user: Any, settings: Any, atomic: bool) -> None:
    """The model row and its history row share one transaction id (``xmin``): through
    ``ATOMIC_SAVES`` under signal capture, through the statement under trigger capture."""
    settings.KOHERENT = {**settings.KOHERENT, "ATOMIC_SAVES": atomic}
    assert connection.get_autocommit()
    with koherent.assignation(user=user) as ctx:
        order = Order.objects.create(reference="one-commit")
    history = Order.history.get()
    row_txid = _xmin("testapp_order", "id", order.pk)
    history_txid = _xmin("testapp_historicalorder", "history_id", history.history_id)
    assert Assignation.objects.filter(pk=ctx.assignation_id).exists()
    if atomic or capture_mode(Order) == "trigger":
        assert row_txid == history_txid
    else:  # simple-history alone: two transactions
        assert row_txid != history_txid


@pytest.mark.signal_capture
@pytest.mark.django_db(transaction=True)
def test_autocommit_save_runs_every_statement_in_one_transaction(user: Any) -> None:
    """Backend-neutral form of the check above: one commit, every statement inside it."""
    commits: list[int] = []
    in_block: list[bool] = []
    original_commit = connection.commit

    def counting_commit() -> None:
        commits.append(1)
        original_commit()

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql != "BEGIN":  # SQLite's explicit start of the transaction
            in_block.append(connection.in_atomic_block)
        return execute(sql, params, many, context)

    with koherent.assignation(user=user):
        Order.objects.create(reference="warm-up")  # record written; later saves are steady
        connection.commit = counting_commit  # type: ignore[method-assign]
        try:
            with connection.execute_wrapper(wrapper):
                Order.objects.create(reference="measured")
        finally:
            del connection.commit
    assert in_block == [True, True]
    assert commits == [1]
