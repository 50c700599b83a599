"""The fast paths of a tracked save keep their guarantees.

* Inside an enclosing transaction a tracked save does not build an ``Atomic``; it must still
  mark the transaction for rollback when the save fails after its row was written, so that a
  caller catching the error cannot commit a change without its history row. Under trigger
  capture the change and its row are one statement: they are kept or lost together, and there
  is nothing to mark.
* The ``Model.history`` descriptor builds its manager class once; every access must still give
  a manager bound to the model or to the instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_save

import koherent
from koherent.capture import capture_mode
from koherent.fields import KoherentHistoryDescriptor
from tests.bench.sql import capture_sql
from tests.testapp.models import Item, Order, Project

pytestmark = pytest.mark.django_db


class _Boom(RuntimeError):
    pass


@pytest.fixture
def failing_after_history() -> Iterator[None]:
    """A receiver that fails after simple-history wrote the row's history (a Python error)."""

    def fail(sender: Any, instance: Any, **kwargs: Any) -> None:
        raise _Boom("a receiver failed after the history row was written")

    post_save.connect(fail, sender=Order, weak=False, dispatch_uid="bench-fail")
    yield
    post_save.disconnect(sender=Order, dispatch_uid="bench-fail")


@pytest.mark.django_db(transaction=True)
def test_failed_save_in_a_transaction_rolls_the_transaction_back(
    failing_after_history: None,
) -> None:
    by_trigger = capture_mode(Order) == "trigger"
    with transaction.atomic():
        with pytest.raises(_Boom), koherent.assignation():
            Order.objects.create(reference="caught")
        assert connection.needs_rollback is not by_trigger
    if by_trigger:  # the caller caught the error: the change commits with its row
        assert Order.objects.filter(reference="caught").exists()
        assert [row.reference for row in Order.history.all()] == ["caught"]
    else:
        assert not Order.objects.exists()
        assert not Order.history.exists()


@pytest.mark.django_db(transaction=True)
def test_without_atomic_saves_a_caught_failure_commits_the_change(
    failing_after_history: None, settings: Any
) -> None:
    """Negative control: without Koherent's wrapper nothing marks the transaction."""
    settings.KOHERENT = {**settings.KOHERENT, "ATOMIC_SAVES": False}
    with transaction.atomic():
        with pytest.raises(_Boom), koherent.assignation():
            Order.objects.create(reference="caught")
        assert not connection.needs_rollback
    assert Order.objects.filter(reference="caught").exists()


def test_a_save_in_a_transaction_opens_no_savepoint(user: Any) -> None:
    with transaction.atomic(), koherent.assignation(user=user):
        Order.objects.create(reference="warm-up")  # the assignation record, once
        with capture_sql() as statements:
            Order.objects.create(reference="steady")
    # The INSERT and simple-history's row; under trigger capture one statement writes both.
    assert len(statements) == (1 if capture_mode(Order) == "trigger" else 2)
    assert not [sql for sql in statements if "SAVEPOINT" in sql.upper()]


def test_history_descriptor_builds_its_manager_class_once() -> None:
    assert isinstance(Order.__dict__["history"], KoherentHistoryDescriptor)
    assert isinstance(Project.__dict__["history"], KoherentHistoryDescriptor)  # inherited
    assert type(Order.history) is type(Order.history)
    assert type(Order.history) is not type(Item.history)


def test_history_managers_stay_bound_to_model_or_instance(user: Any) -> None:
    with koherent.assignation(user=user):
        first = Order.objects.create(reference="a")
        second = Order.objects.create(reference="b")
        first.status = "paid"
        first.save()
    assert Order.history.count() == 3
    assert first.history.count() == 2
    assert second.history.count() == 1
    assert first.history.instance is first
    assert Order.history.instance is None
    assert {row.reference for row in first.history.all()} == {"a"}
    assert first.history.latest().status == "paid"
