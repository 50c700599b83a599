"""KoherentMiddleware through Django's test clients, sync and async."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import AsyncClient, Client

import koherent
from koherent._validation import MAX_ASSIGNATION_ID_LENGTH
from koherent.context import EMPTY
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

HEADER = "X-Assignation-ID"


def test_header_assignation_user_and_app_stamped(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.post("/orders/", {"reference": "r1"}, headers={HEADER: "op-42"})
    assert response.status_code == 200
    assert response.json()["assignation_id"] == "op-42"
    assert response[HEADER] == "op-42"
    row = Order.history.get()
    assert (row.assignation_id, row.app, row.history_user_id) == ("op-42", "tests", user.pk)
    record = koherent.Assignation.objects.get(pk="op-42")
    assert (record.origin, record.user_id, record.app) == ("request", user.pk, "tests")


def test_fresh_assignation_per_request(client: Client) -> None:
    first = client.post("/orders/").json()["assignation_id"]
    second = client.post("/orders/").json()["assignation_id"]
    assert first
    assert second
    assert first != second
    assert set(Order.history.values_list("assignation_id", flat=True)) == {first, second}


def test_fresh_assignation_can_be_turned_off(client: Client, settings: Any) -> None:
    settings.KOHERENT = {"FRESH_ASSIGNATION_PER_REQUEST": False}
    response = client.post("/orders/")
    assert response.json()["assignation_id"] is None
    assert HEADER not in response
    assert Order.history.get().assignation_id is None


@pytest.mark.parametrize(
    "value",
    ["has spaces", "x" * (MAX_ASSIGNATION_ID_LENGTH + 1), "../../etc/passwd", "", "-dash", "a,b"],
)
def test_malformed_header_gets_400_and_writes_nothing(
    client: Client, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "koherent"):
        response = client.post("/orders/", {"reference": "no"}, headers={HEADER: value})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_audit_context"
    assert "X-Assignation-ID" in body["detail"]
    assert not Order.objects.exists()
    assert not Order.history.exists()
    assert "refused POST /orders/" in caplog.text


def test_user_resolved_late_counts(client: Client, user: Any) -> None:
    """Authentication after the middleware (DRF style) is what gets recorded."""
    response = client.post("/late-auth/", headers={"X-Test-User": user.username})
    assert response.status_code == 200
    assert Order.history.get().history_user_id == user.pk


def test_anonymous_request_has_no_user(client: Client) -> None:
    assert client.get("/whoami/").json()["user_id"] is None


def test_context_reset_after_response_and_after_exception(client: Client, user: Any) -> None:
    client.force_login(user)
    client.get("/whoami/")
    assert koherent.current() is EMPTY
    client.raise_request_exception = False
    response = client.get("/fail/", headers={HEADER: "failing-op"})
    assert response.status_code == 500
    assert koherent.current() is EMPTY
    client.logout()
    after = client.get("/whoami/").json()
    assert after["user_id"] is None
    assert after["assignation_id"] != "failing-op"


def test_leaked_context_is_overwritten_at_entry(client: Client) -> None:
    """Whatever the thread carried before a request, the request sees only its own."""
    with koherent.context(user=999, app="leaked", assignation_id="leaked-op"):
        seen = client.get("/whoami/").json()
        assert koherent.get_current_app() == "leaked"  # and the caller's is restored after
    assert seen["user_id"] is None
    assert seen["assignation_id"] != "leaked-op"
    assert seen["app"] == "tests"


def test_streaming_body_runs_in_the_request_context(client: Client) -> None:
    response = client.get("/stream/", headers={HEADER: "stream-op"})
    lines = []
    for chunk in response.streaming_content:  # type: ignore[attr-defined]
        lines.append(chunk.decode())
        assert koherent.current() is EMPTY  # between chunks: nothing leaks to the consumer
    assert [line.strip().split(":")[1] for line in lines] == ["stream-op"] * 3
    assert set(Order.history.values_list("assignation_id", flat=True)) == {"stream-op"}


def test_app_from_header_resolver(client: Client, settings: Any) -> None:
    settings.KOHERENT = {"APP_RESOLVER": "koherent.resolvers.header_app", "APP": "fallback"}
    assert client.get("/whoami/", headers={"X-Koherent-App": "mobile"}).json()["app"] == "mobile"
    assert client.get("/whoami/").json()["app"] == "fallback"
    bad = client.get("/whoami/", headers={"X-Koherent-App": "no spaces allowed"})
    assert bad.status_code == 400
    assert "Invalid app" in bad.json()["detail"]


def test_custom_header_name(client: Client, settings: Any) -> None:
    settings.KOHERENT = {"ASSIGNATION_HEADER": "X-Operation"}
    response = client.get("/whoami/", headers={"X-Operation": "custom-op"})
    assert response.json()["assignation_id"] == "custom-op"
    assert response["X-Operation"] == "custom-op"


@pytest.mark.django_db(transaction=True)
async def test_async_view_with_async_orm(async_client: AsyncClient, user: Any) -> None:
    await async_client.aforce_login(user)
    response = await async_client.post("/orders-async/", headers={HEADER: "async-op"})
    assert response.status_code == 200
    rows = [r async for r in Order.history.all()]
    assert len(rows) == 2
    assert {(r.assignation_id, r.history_user_id, r.app) for r in rows} == {
        ("async-op", user.pk, "tests")
    }
    assert koherent.current() is EMPTY


@pytest.mark.django_db(transaction=True)
async def test_async_malformed_header_gets_400(async_client: AsyncClient) -> None:
    response = await async_client.post("/orders-async/", headers={HEADER: "bad value"})
    assert response.status_code == 400
    assert not await Order.objects.aexists()


@pytest.mark.django_db(transaction=True)
async def test_async_streaming_body(async_client: AsyncClient) -> None:
    response = await async_client.get("/stream-async/", headers={HEADER: "astream-op"})
    lines = []
    async for chunk in response.streaming_content:  # type: ignore[attr-defined]
        lines.append(chunk.decode())
        assert koherent.current() is EMPTY
    assert [line.strip().split(":")[1] for line in lines] == ["astream-op"] * 3
    assert {r.assignation_id async for r in Order.history.all()} == {"astream-op"}


@pytest.mark.django_db(transaction=True)
async def test_async_whoami_sees_logged_in_user(async_client: AsyncClient, user: Any) -> None:
    await async_client.aforce_login(user)
    seen = (await async_client.get("/whoami-async/")).json()
    assert seen["user_id"] == user.pk
    assert seen["origin"] == "request"
