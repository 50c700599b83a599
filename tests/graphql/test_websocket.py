"""GraphQL over websockets (Channels): the context of each operation comes from its
connection; mutations are refused unless allowed; subscriptions end without context errors."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from strawberry.channels.testing import GraphQLWebsocketCommunicator

import koherent
from koherent.context import EMPTY
from tests.graphql.asgi import application
from tests.graphql.schema import schema
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

TICKS = """subscription($n: Int!, $d: Float!) {
    ticks(count: $n, delay: $d) { assignationId userId app origin }
}"""
CREATE = 'mutation { createOrder(reference: "ws") { id context { assignationId userId } } }'


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run an async scenario from the test's thread, so Django's sync work (the session lookup
    of Channels' auth middleware, the ORM) comes back to it and sees the test's data."""
    return async_to_sync(scenario)()


def cookie_of(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


@pytest.fixture
def cookie(user: Any) -> list[tuple[bytes, bytes]]:
    """The session cookie of ``user``, logged in."""
    return cookie_of(user)


def connect(
    cookie: list[tuple[bytes, bytes]] | None = None,
    params: dict[str, Any] | None = None,
    path: str = "/graphql/",
) -> GraphQLWebsocketCommunicator:
    """A websocket to the test application, logged in with ``cookie`` (see :func:`cookie_of`)."""
    return GraphQLWebsocketCommunicator(
        application, path, headers=list(cookie or []), connection_params=params or {}
    )


async def operation(
    ws: GraphQLWebsocketCommunicator,
    op_id: str,
    query: str,
    variables: dict[str, Any] | None = None,
    extensions: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Send one operation and collect its messages up to ``complete`` or ``error``."""
    payload: dict[str, Any] = {"query": query, "variables": variables or {}}
    if extensions is not None:
        payload["extensions"] = extensions
    await ws.send_json_to({"id": op_id, "type": "subscribe", "payload": payload})
    messages = []
    while True:
        message = await ws.receive_json_from(timeout=5)
        assert message["id"] == op_id, message
        messages.append(message)
        if message["type"] in ("complete", "error"):
            return messages


def events(messages: list[dict[str, Any]]) -> list[Any]:
    return [m["payload"]["data"] for m in messages if m["type"] == "next"]


def test_subscription_runs_for_the_connection_user_and_assignation(user: Any, cookie: Any) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with connect(cookie, {"X-Assignation-ID": "conn-1"}) as ws:
            return await operation(ws, "1", TICKS, {"n": 3, "d": 0})

    messages = run(scenario)
    assert [m["type"] for m in messages] == ["next", "next", "next", "complete"]
    expected = {"assignationId": "conn-1", "userId": str(user.pk), "app": "tests"}
    for data in events(messages):
        assert data["ticks"] == {**expected, "origin": "graphql-ws"}
    assert koherent.current() is EMPTY


def test_anonymous_connection_without_parameters_has_no_user_and_no_assignation() -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with connect() as ws:
            return await operation(ws, "1", TICKS, {"n": 1, "d": 0})

    [data] = events(run(scenario))
    assert data["ticks"] == {
        "assignationId": None,
        "userId": None,
        "app": "tests",
        "origin": "graphql-ws",
    }


def test_two_connections_interleaved_each_see_their_own(user: Any, other_user: Any) -> None:
    cookies = {"conn-a": cookie_of(user), "conn-b": cookie_of(other_user)}

    async def one(name: str) -> list[dict[str, Any]]:
        async with connect(cookies[name], {"X-Assignation-ID": name}) as ws:
            return await operation(ws, "1", TICKS, {"n": 4, "d": 0.01})

    async def scenario() -> list[list[dict[str, Any]]]:
        return list(await asyncio.gather(one("conn-a"), one("conn-b")))

    first, second = run(scenario)
    assert {(d["ticks"]["assignationId"], d["ticks"]["userId"]) for d in events(first)} == {
        ("conn-a", str(user.pk))
    }
    assert {(d["ticks"]["assignationId"], d["ticks"]["userId"]) for d in events(second)} == {
        ("conn-b", str(other_user.pk))
    }
    assert len(events(first)) == len(events(second)) == 4


@pytest.mark.parametrize(
    ("path", "expected"), [("/graphql/", "op-own"), ("/graphql/plain/", "conn-1")]
)
def test_an_operation_names_its_own_assignation(cookie: Any, path: str, expected: str) -> None:
    """Koherent's consumer passes the subscribe message's extensions; strawberry's own
    consumer drops them, so the connection's assignation applies (the control)."""

    async def scenario() -> list[list[dict[str, Any]]]:
        async with connect(cookie, {"X-Assignation-ID": "conn-1"}, path) as ws:
            own = await operation(
                ws, "1", TICKS, {"n": 1, "d": 0}, {"koherent": {"assignationId": "op-own"}}
            )
            plain = await operation(ws, "2", TICKS, {"n": 1, "d": 0})
            return [own, plain]

    own, plain = run(scenario)
    assert events(own)[0]["ticks"]["assignationId"] == expected
    assert events(plain)[0]["ticks"]["assignationId"] == "conn-1"


def test_malformed_connection_parameter_is_a_graphql_error(cookie: Any) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with connect(cookie, {"X-Assignation-ID": "not valid"}) as ws:
            return await operation(ws, "1", TICKS, {"n": 1, "d": 0})

    messages = run(scenario)
    errors = [e for m in messages for e in (m["payload"] if m["type"] == "error" else [])]
    errors += [e for m in messages if m["type"] == "next" for e in m["payload"].get("errors", [])]
    assert any("X-Assignation-ID" in e["message"] for e in errors), messages


def test_mutation_over_websocket_is_refused_by_default(cookie: Any) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with connect(cookie, {"X-Assignation-ID": "conn-1"}) as ws:
            return await operation(ws, "1", CREATE)

    [message] = run(scenario)
    assert message["type"] == "error"
    [error] = message["payload"]
    assert error["extensions"]["code"] == "KOHERENT_WEBSOCKET_MUTATION_REFUSED"
    assert "Mutations are not accepted over a websocket" in error["message"]
    assert "GRAPHQL_WEBSOCKET_MUTATIONS" in error["message"]
    assert not Order.objects.exists()
    assert not Order.history.exists()


def test_allowed_mutations_get_an_assignation_per_operation(
    user: Any, cookie: Any, settings: Any
) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "GRAPHQL_WEBSOCKET_MUTATIONS": True}

    async def scenario() -> list[list[dict[str, Any]]]:
        async with connect(cookie, {"X-Assignation-ID": "conn-1"}) as ws:
            first = await operation(ws, "1", CREATE)
            second = await operation(ws, "2", CREATE)
            named = await operation(
                ws, "3", CREATE, extensions={"koherent": {"assignationId": "ws-op-3"}}
            )
            return [first, second, named]

    first, second, named = run(scenario)
    ids = [events(m)[0]["createOrder"]["context"]["assignationId"] for m in (first, second)]
    assert ids[0] != ids[1]
    assert "conn-1" not in ids
    assert events(named)[0]["createOrder"]["context"]["assignationId"] == "ws-op-3"
    # Each result names its operation's assignation in its extensions.
    reported = [
        m[0]["payload"]["extensions"]["koherent"]["assignationId"] for m in (first, second)
    ]
    assert reported == ids
    rows = Order.history.order_by("history_id")
    assert [r.assignation_id for r in rows] == [*ids, "ws-op-3"]
    assert {r.history_user_id for r in rows} == {user.pk}
    assert set(koherent.Assignation.objects.values_list("origin", flat=True)) == {"graphql-ws"}


def test_a_subscription_that_writes_stamps_its_rows(user: Any, cookie: Any) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with connect(cookie, {"X-Assignation-ID": "conn-w"}) as ws:
            return await operation(
                ws, "1", "subscription { createdOrders(count: 2) { reference } }"
            )

    assert len(events(run(scenario))) == 2
    assert set(Order.history.values_list("assignation_id", "history_user_id")) == {
        ("conn-w", user.pk)
    }


def test_completing_cancelling_and_disconnecting_raise_no_context_error(
    cookie: Any, caplog: pytest.LogCaptureFixture
) -> None:
    problems: list[Any] = []

    async def scenario() -> list[dict[str, Any]]:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: problems.append(ctx))
        async with connect(cookie, {"X-Assignation-ID": "conn-1"}) as ws:
            # Complete (cancel) a running subscription from the client.
            await ws.send_json_to(
                {
                    "id": "long",
                    "type": "subscribe",
                    "payload": {"query": TICKS, "variables": {"n": 1000, "d": 0.005}},
                }
            )
            for _ in range(2):
                assert (await ws.receive_json_from(timeout=5))["type"] == "next"
            await ws.send_json_to({"id": "long", "type": "complete"})
            await asyncio.sleep(0.05)
            while not await ws.receive_nothing(timeout=0.05):
                await ws.receive_json_from()
            # The connection carries on, and the next operation starts clean.
            after = await operation(ws, "next", TICKS, {"n": 1, "d": 0})
            # Disconnect in the middle of another subscription.
            await ws.send_json_to(
                {
                    "id": "cut",
                    "type": "subscribe",
                    "payload": {"query": TICKS, "variables": {"n": 1000, "d": 0.005}},
                }
            )
            assert (await ws.receive_json_from(timeout=5))["type"] == "next"
        return after

    with caplog.at_level(logging.DEBUG):
        after = run(scenario)
    assert events(after)[0]["ticks"]["assignationId"] == "conn-1"
    assert problems == []
    assert "different Context" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert koherent.current() is EMPTY


def test_a_subscription_dropped_unclosed_is_finalised_without_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An abandoned generator is closed by asyncio's finaliser in another task, where the
    operation's token cannot be used: the reset falls back to restoring by value."""
    problems: list[Any] = []

    async def scenario() -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, ctx: problems.append(ctx))
        request = _request()

        async def consume_one() -> Any:
            stream = await schema.subscribe(
                "subscription { ticks(count: 100) { assignationId } }",
                context_value={"request": request},
            )
            first = await stream.__anext__()
            del stream  # dropped without aclose()
            return first

        with koherent.context(app="caller"):
            first = await asyncio.create_task(consume_one())
            gc.collect()
            for _ in range(5):
                await asyncio.sleep(0)
            return first, koherent.current().app

    with caplog.at_level(logging.DEBUG, "koherent"):
        first, app_after = run(scenario)
    assert first.data == {"ticks": {"assignationId": "ws-gc"}}
    assert app_after == "caller"
    assert problems == []
    # The finaliser ran in another task: the token could not be used there.
    assert "restored by value" in caplog.text
    assert koherent.current() is EMPTY


def test_a_subscription_closed_from_another_task_raises_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> Any:
        stream = await schema.subscribe(
            "subscription { ticks(count: 100) { assignationId } }",
            context_value={"request": _request()},
        )
        first = await asyncio.create_task(stream.__anext__())
        await asyncio.create_task(stream.aclose())
        return first

    with caplog.at_level(logging.DEBUG, "koherent"):
        assert run(scenario).data == {"ticks": {"assignationId": "ws-gc"}}
    assert "restored by value" in caplog.text


def _request() -> Any:
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    request = RequestFactory().get("/", headers={"X-Assignation-ID": "ws-gc"})
    request.user = AnonymousUser()
    return request


def test_the_app_comes_from_the_connection_parameters(cookie: Any, settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "APP_RESOLVER": "koherent.resolvers.header_app"}

    async def scenario() -> list[list[dict[str, Any]]]:
        async with connect(cookie, {"X-Koherent-App": "mobile"}) as ws:
            named = await operation(ws, "1", TICKS, {"n": 1, "d": 0})
        async with connect(cookie) as ws:
            default = await operation(ws, "1", TICKS, {"n": 1, "d": 0})
        return [named, default]

    named, default = run(scenario)
    assert events(named)[0]["ticks"]["app"] == "mobile"
    assert events(default)[0]["ticks"]["app"] == "tests"
