"""A real server (uvicorn: Django's ASGI handler for HTTP, Channels for websockets): HTTP
mutations to both views and websocket subscriptions at once, each in its own context."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from websockets.asyncio.client import connect

from koherent.models import Assignation
from tests.graphql.server import running_server
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

HTTP_OPERATIONS = 40
TICKS = """subscription { ticks(count: 5, delay: 0.02) { assignationId userId app origin } }"""


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    with running_server() as url:
        yield url


def session_of(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies["sessionid"].value)


async def http_operation(url: str, n: int, session: str | None) -> dict[str, Any]:
    view = "async" if n % 2 else "sync"
    field = (
        "createOrderAsync(reference: $r, delay: 0.01)"
        if view == "async"
        else ("createOrder(reference: $r)")
    )
    mutation = f"mutation($r: String!) {{ {field} {{ context {{ assignationId userId }} }} }}"
    cookies = {"sessionid": session} if session else {}
    headers = {"X-Assignation-ID": f"http-{n}"} if session else {}
    async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=60) as client:
        response = await client.post(
            f"/graphql/{view}/",
            json={"query": mutation, "variables": {"r": f"h{n}"}},
            headers=headers,
        )
    body = response.json()
    assert "errors" not in body, body
    data = body["data"]
    return {
        "context": next(iter(data.values()))["context"],
        "header": response.headers.get("X-Assignation-ID"),
    }


async def websocket_operations(url: str, session: str, name: str) -> dict[str, Any]:
    ws_url = url.replace("http://", "ws://") + "/graphql/"
    async with connect(
        ws_url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"Cookie": f"sessionid={session}"},
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"X-Assignation-ID": name}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {"query": TICKS}}))
        await ws.send(
            json.dumps(
                {
                    "id": "m",
                    "type": "subscribe",
                    "payload": {"query": 'mutation { createOrder(reference: "ws") { id } }'},
                }
            )
        )
        ticks: list[Any] = []
        refusal: Any = None
        done: set[str] = set()
        while done != {"s", "m"}:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message["id"] == "s" and message["type"] == "next":
                ticks.append(message["payload"]["data"]["ticks"])
            elif message["id"] == "m" and message["type"] == "error":
                refusal = message["payload"][0]
            if message["type"] in ("complete", "error"):
                done.add(message["id"])
        return {"ticks": ticks, "refusal": refusal}


def test_http_operations_and_subscriptions_on_a_real_server(
    server: str, django_user_model: Any
) -> None:
    users = [django_user_model.objects.create_user(username=f"s{n}") for n in range(4)]
    sessions = [session_of(user) for user in users]

    async def everything() -> tuple[list[Any], list[Any]]:
        http = [
            http_operation(server, n, None if n % 5 == 0 else sessions[n % 4])
            for n in range(HTTP_OPERATIONS)
        ]
        ws = [websocket_operations(server, sessions[k], f"ws-{k}") for k in range(2)]
        results = await asyncio.gather(*http, *ws)
        return list(results[:HTTP_OPERATIONS]), list(results[HTTP_OPERATIONS:])

    http, ws = async_to_sync(everything)()
    fresh = set()
    for n, result in enumerate(http):
        context = result["context"]
        if n % 5 == 0:  # anonymous, no header: a fresh assignation, no user
            assert context["userId"] is None
            fresh.add(context["assignationId"])
        else:
            assert context == {"assignationId": f"http-{n}", "userId": str(users[n % 4].pk)}
        assert result["header"] == context["assignationId"]
    assert len(fresh) == HTTP_OPERATIONS // 5
    for n in range(HTTP_OPERATIONS):
        rows = Order.history.filter(reference=f"h{n}")
        expected_user = None if n % 5 == 0 else users[n % 4].pk
        assert {r.history_user_id for r in rows} == {expected_user}
        assert len({r.assignation_id for r in rows}) == 1
    for k, result in enumerate(ws):
        assert len(result["ticks"]) == 5
        assert {(t["assignationId"], t["userId"], t["origin"]) for t in result["ticks"]} == {
            (f"ws-{k}", str(users[k].pk), "graphql-ws")
        }
        assert result["refusal"]["extensions"]["code"] == "KOHERENT_WEBSOCKET_MUTATION_REFUSED"
    assert not Order.objects.filter(reference="ws").exists()
    assert Assignation.objects.filter(origin="graphql").count() == HTTP_OPERATIONS
