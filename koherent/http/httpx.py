"""httpx: a request event hook adding the assignation to calls to allowed hosts.

::

    import httpx
    import koherent.http.httpx

    client = koherent.http.httpx.install(httpx.Client(base_url="https://inventory.internal"))
    async_client = koherent.http.httpx.install(httpx.AsyncClient())

or give the hooks yourself::

    httpx.Client(event_hooks={"request": [koherent.http.httpx.RequestHook()]})
    httpx.AsyncClient(event_hooks={"request": [koherent.http.httpx.AsyncRequestHook()]})

httpx runs request hooks before every request it sends, redirects included, in the caller's
thread or task: each request gets the headers of the context it is sent under, and a redirect
to a host off the allow-list loses them. This module is the only part of Koherent that imports
httpx.
"""

from __future__ import annotations

from typing import Any, TypeVar, Unpack

from koherent.extras import require

require("koherent.http.httpx", "httpx", "httpx")

import httpx

from koherent.http.propagation import DEFAULT, Overrides, Propagation, propagation

ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)


def apply(request: httpx.Request, propagation: Propagation = DEFAULT) -> None:
    """Set (or take out) the context's headers of ``request``."""
    url = request.url
    propagation.apply(request.headers, url.scheme, url.raw_host.decode("ascii"), url.port)


class RequestHook:
    """A request event hook for :class:`httpx.Client`.

    The keyword arguments (``hosts``, ``assignation_header``, ``app_header``) override the
    settings (see :class:`koherent.http.Propagation`).
    """

    def __init__(self, **overrides: Unpack[Overrides]) -> None:
        self.propagation = propagation(**overrides)

    def __call__(self, request: httpx.Request) -> None:
        apply(request, self.propagation)


class AsyncRequestHook(RequestHook):
    """A request event hook for :class:`httpx.AsyncClient` (whose hooks are awaited)."""

    async def __call__(self, request: httpx.Request) -> None:  # type: ignore[override]
        apply(request, self.propagation)


def install(client: ClientT, **overrides: Unpack[Overrides]) -> ClientT:
    """Add Koherent's request hook to ``client`` (sync or async) and return the client.

    The keyword arguments are the hook's. Installing again replaces the hook (with the new
    options) instead of adding a second one.
    """
    hook_class = AsyncRequestHook if isinstance(client, httpx.AsyncClient) else RequestHook
    hook = hook_class(**overrides)
    hooks = dict(client.event_hooks)
    kept: list[Any] = [h for h in hooks.get("request", []) if not isinstance(h, RequestHook)]
    hooks["request"] = [*kept, hook]
    client.event_hooks = hooks
    return client


__all__ = ["AsyncRequestHook", "RequestHook", "apply", "install"]
