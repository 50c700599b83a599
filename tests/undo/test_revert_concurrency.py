"""A revert racing a concurrent change on PostgreSQL: it waits for the row lock, then sees it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction

import koherent
from tests.undoapp.models import Invoice

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(cursor.fetchone()[0])


def _race(commit_concurrent_change: bool) -> tuple[Any, str]:
    """Revert an assignation while another transaction holds a changed row of it."""
    with koherent.assignation() as original:
        invoice = Invoice.objects.create(number="race")
        invoice.total = 1
        invoice.save()
    locked = threading.Event()
    release = threading.Event()
    outcome: dict[str, Any] = {}

    def concurrent_change() -> None:
        try:
            with transaction.atomic(), koherent.assignation() as ctx:
                outcome["concurrent"] = ctx.assignation_id
                row = Invoice.objects.select_for_update().get(pk=invoice.pk)
                row.total = 42
                row.save()
                locked.set()
                release.wait(timeout=30)
                if not commit_concurrent_change:
                    transaction.set_rollback(True)
        finally:
            connections.close_all()

    def revert() -> None:
        try:
            outcome["result"] = koherent.revert_assignation(original.assignation_id or "")
        except Exception as exc:
            outcome["result"] = exc
        finally:
            connections.close_all()

    changer = threading.Thread(target=concurrent_change)
    changer.start()
    assert locked.wait(timeout=30)
    reverter = threading.Thread(target=revert)
    reverter.start()
    _wait_until(_someone_waits_for_a_lock, "the revert to wait for the row lock")
    release.set()
    changer.join(timeout=30)
    reverter.join(timeout=30)
    return outcome["result"], outcome["concurrent"]


def test_revert_waits_and_sees_a_concurrent_change_as_a_conflict() -> None:
    result, concurrent = _race(commit_concurrent_change=True)
    assert isinstance(result, koherent.RevertConflict), result
    assert [c.assignation_id for c in result.conflicts] == [concurrent]
    assert Invoice.objects.get(number="race").total == 42  # the later change is kept


def test_control_without_the_concurrent_change_the_revert_goes_through() -> None:
    result, _ = _race(commit_concurrent_change=False)
    assert isinstance(result, koherent.RevertResult), result
    assert not Invoice.objects.filter(number="race").exists()  # created by the assignation
