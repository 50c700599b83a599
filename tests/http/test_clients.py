"""httpx (sync and async) and requests, against a real server on loopback: the assignation goes
to allowed hosts only, under a context only, and a redirect off the allow-list loses it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter

import koherent
import koherent.http.httpx
import koherent.http.requests
from tests.http.echo import Echo

HEADER = "x-assignation-id"
APP_HEADER = "x-koherent-app"


def httpx_get(url: str, headers: dict[str, str] | None = None, **options: Any) -> dict[str, str]:
    client = koherent.http.httpx.install(httpx.Client(follow_redirects=True), **options)
    with client:
        return dict(client.get(url, headers=headers).json()["headers"])


def httpx_async_get(
    url: str, headers: dict[str, str] | None = None, **options: Any
) -> dict[str, str]:
    async def get() -> dict[str, str]:
        client = koherent.http.httpx.install(httpx.AsyncClient(follow_redirects=True), **options)
        async with client:
            return dict((await client.get(url, headers=headers)).json()["headers"])

    return asyncio.run(get())  # the loop's task starts with the caller's context


def requests_get(
    url: str, headers: dict[str, str] | None = None, **options: Any
) -> dict[str, str]:
    with koherent.http.requests.install(requests.Session(), **options) as session:
        return dict(session.get(url, headers=headers, timeout=30).json()["headers"])


CLIENTS: dict[str, Callable[..., dict[str, str]]] = {
    "httpx": httpx_get,
    "httpx-async": httpx_async_get,
    "requests": requests_get,
}


@pytest.fixture(params=list(CLIENTS))
def get(request: pytest.FixtureRequest) -> Callable[..., dict[str, str]]:
    return CLIENTS[request.param]


def test_allowed_host_under_a_context_gets_the_assignation(echo: Echo, get: Any) -> None:
    with koherent.assignation(app="shop") as ctx:
        received = get(f"{echo.allowed}/echo")
    assert received[HEADER] == ctx.assignation_id
    assert APP_HEADER not in received  # the app is sent only when configured


def test_no_context_sends_nothing(echo: Echo, get: Any) -> None:
    assert HEADER not in get(f"{echo.allowed}/echo")


def test_host_off_the_allow_list_gets_nothing(echo: Echo, get: Any) -> None:
    with koherent.assignation():
        received = get(f"{echo.unlisted}/echo")
        control = get(f"{echo.allowed}/echo")
    assert HEADER not in received
    assert HEADER in control


def test_the_default_allow_list_is_empty(echo: Echo, get: Any, settings: Any) -> None:
    settings.KOHERENT = {"APP": "tests"}
    with koherent.assignation():
        assert HEADER not in get(f"{echo.allowed}/echo")


def test_a_redirect_off_the_allow_list_loses_the_header(echo: Echo, get: Any) -> None:
    target = quote(f"{echo.unlisted}/echo", safe="")
    with koherent.assignation():
        received = get(f"{echo.allowed}/redirect?to={target}")
    assert HEADER not in received


def test_a_redirect_onto_the_allow_list_gets_the_header(echo: Echo, get: Any) -> None:
    target = quote(f"{echo.allowed}/echo", safe="")
    with koherent.assignation() as ctx:
        received = get(f"{echo.unlisted}/redirect?to={target}")
    assert received[HEADER] == ctx.assignation_id


def test_app_header_when_configured(echo: Echo, get: Any, settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "OUTGOING_APP_HEADER": "X-Koherent-App"}
    with koherent.assignation(app="shop") as ctx:
        received = get(f"{echo.allowed}/echo")
        unlisted = get(f"{echo.unlisted}/echo")
    assert (received[HEADER], received[APP_HEADER]) == (ctx.assignation_id, "shop")
    assert APP_HEADER not in unlisted


def test_header_names_are_configurable(echo: Echo, get: Any, settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "OUTGOING_ASSIGNATION_HEADER": "X-Op"}
    with koherent.assignation() as ctx:
        received = get(f"{echo.allowed}/echo")
    assert received["x-op"] == ctx.assignation_id
    assert HEADER not in received


def test_the_name_follows_the_incoming_header_setting(echo: Echo, get: Any, settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "ASSIGNATION_HEADER": "X-Correlation"}
    with koherent.assignation() as ctx:
        received = get(f"{echo.allowed}/echo")
    assert received["x-correlation"] == ctx.assignation_id


def test_options_given_to_install_override_the_settings(echo: Echo, get: Any) -> None:
    with koherent.assignation(app="shop") as ctx:
        received = get(
            f"{echo.unlisted}/echo",
            hosts=[f"localhost:{echo.port}"],
            assignation_header="X-Op",
            app_header="X-App",
        )
        refused = get(f"{echo.allowed}/echo", hosts=[])
    assert (received["x-op"], received["x-app"]) == (ctx.assignation_id, "shop")
    assert "x-op" not in refused
    assert HEADER not in refused


def test_callers_headers(echo: Echo, get: Any) -> None:
    """On an allowed host the context's value wins; elsewhere the caller's own is kept."""
    with koherent.assignation() as ctx:
        allowed = get(f"{echo.allowed}/echo", headers={"X-Assignation-ID": "set-by-hand"})
        unlisted = get(f"{echo.unlisted}/echo", headers={"X-Assignation-ID": "set-by-hand"})
    assert allowed[HEADER] == ctx.assignation_id
    assert unlisted[HEADER] == "set-by-hand"
    no_context = get(f"{echo.allowed}/echo", headers={"X-Assignation-ID": "set-by-hand"})
    assert no_context[HEADER] == "set-by-hand"


def test_a_wrong_port_is_not_allowed(echo: Echo, get: Any, settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "OUTGOING_HOSTS": [f"127.0.0.1:{echo.port + 1}"]}
    with koherent.assignation():
        assert HEADER not in get(f"{echo.allowed}/echo")


def test_concurrent_async_requests_carry_their_own_assignations(echo: Echo) -> None:
    async def one(client: httpx.AsyncClient, n: int) -> tuple[str, str]:
        async with koherent.assignation(app=f"c{n}") as ctx:
            await asyncio.sleep(0)
            response = await client.get(f"{echo.allowed}/echo")
            return str(ctx.assignation_id), response.json()["headers"][HEADER]

    async def main() -> list[tuple[str, str]]:
        async with koherent.http.httpx.install(httpx.AsyncClient()) as client:
            return await asyncio.gather(*(one(client, n) for n in range(10)))

    pairs = asyncio.run(main())
    assert all(sent == received for sent, received in pairs)
    assert len({sent for sent, _ in pairs}) == 10


def test_httpx_install_is_idempotent() -> None:
    client = httpx.Client(event_hooks={"request": [print]})
    koherent.http.httpx.install(client)
    koherent.http.httpx.install(client, hosts=["a.example"])
    hooks = client.event_hooks["request"]
    assert hooks[0] is print
    assert len(hooks) == 2
    assert isinstance(hooks[1], koherent.http.httpx.RequestHook)
    assert hooks[1].propagation.hosts == ["a.example"]
    async_client = koherent.http.httpx.install(httpx.AsyncClient())
    assert isinstance(async_client.event_hooks["request"][0], koherent.http.httpx.AsyncRequestHook)


def test_requests_install_keeps_the_mounted_adapters(echo: Echo) -> None:
    session = requests.Session()
    custom = HTTPAdapter(max_retries=3)
    session.mount(echo.allowed, custom)
    koherent.http.requests.install(session)
    koherent.http.requests.install(session)  # again: rewraps, does not nest
    adapter = session.get_adapter(f"{echo.allowed}/echo")
    assert isinstance(adapter, koherent.http.requests.KoherentAdapter)
    assert adapter.wrapped is custom
    assert adapter.max_retries.total == 3
    with koherent.assignation() as ctx:
        assert session.get(f"{echo.allowed}/echo").json()["headers"][HEADER] == ctx.assignation_id
