"""Async views with the async ORM and async signal receivers, in process (both backends).

The same views run under real servers in ``test_servers.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import AsyncClient, Client

import koherent
from koherent.context import EMPTY
from tests.aioapp.models import Ticket, TicketEvent
from tests.pending_migrations import assert_in_sync

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "X-Assignation-ID"


async def _history() -> set[tuple[str, str, str | None, Any]]:
    """Every history row as (model, reference[, kind], assignation, user)."""
    rows: set[tuple[str, str, str | None, Any]] = set()
    async for t in Ticket.history.all():
        rows.add((f"ticket{t.history_type}", t.reference, t.assignation_id, t.history_user_id))
    async for e in TicketEvent.history.all():
        rows.add((f"event:{e.kind}", e.reference, e.assignation_id, e.history_user_id))
    return rows


def _expected(reference: str, assignation_id: str, user_id: Any) -> set[tuple[str, str, Any, Any]]:
    return {
        ("ticket+", reference, assignation_id, user_id),
        ("ticket~", reference, assignation_id, user_id),
        ("ticket+", f"{reference}:x", assignation_id, user_id),
        ("ticket-", f"{reference}:x", assignation_id, user_id),
        ("event:created", reference, assignation_id, user_id),
        ("event:created", f"{reference}:x", assignation_id, user_id),
        ("event:closed", reference, assignation_id, user_id),
        ("event:placed", reference, assignation_id, user_id),
    }


async def test_async_view_async_orm_and_async_receivers_are_stamped(
    async_client: AsyncClient, user: Any
) -> None:
    await async_client.aforce_login(user)
    response = await async_client.post(
        "/aio/tickets/", {"reference": "t1"}, headers={HEADER: "op-t1"}
    )
    assert response.status_code == 200
    assert response.json()["assignation_id"] == "op-t1"
    assert response.json()["user_id"] == user.pk
    assert await _history() == _expected("t1", "op-t1", user.pk)
    assert koherent.current() is EMPTY


async def test_failed_async_request_then_clean_ones(user: Any) -> None:
    async_client = AsyncClient(raise_request_exception=False)
    await async_client.aforce_login(user)
    failing = await async_client.post(
        "/aio/fail/", {"reference": "boom"}, headers={HEADER: "op-boom"}
    )
    assert failing.status_code == 500
    await async_client.alogout()
    clean = await async_client.post("/aio/tickets/", {"reference": "calm"})
    seen = clean.json()
    assert seen["user_id"] is None
    assert seen["assignation_id"] not in (None, "op-boom")
    rows = await _history()
    assert rows == {
        ("ticket+", "boom", "op-boom", user.pk),
        ("event:created", "boom", "op-boom", user.pk),
    } | _expected("calm", seen["assignation_id"], None)
    assert koherent.current() is EMPTY


def test_sync_view_sync_orm_and_async_receivers_are_stamped(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.post("/aio/tickets-sync/", {"reference": "s1"}, headers={HEADER: "op-s1"})
    assert response.status_code == 200
    assert koherent.current() is EMPTY
    rows = {
        (f"ticket{t.history_type}", t.reference, t.assignation_id, t.history_user_id)
        for t in Ticket.history.all()
    } | {
        (f"event:{e.kind}", e.reference, e.assignation_id, e.history_user_id)
        for e in TicketEvent.history.all()
    }
    assert rows == _expected("s1", "op-s1", user.pk)


def test_test_app_migrations_are_in_sync() -> None:
    assert_in_sync("aioapp")
