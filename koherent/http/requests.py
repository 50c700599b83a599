"""requests: a transport adapter adding the assignation to calls to allowed hosts.

::

    import requests
    import koherent.http.requests

    session = koherent.http.requests.install(requests.Session())

:func:`install` wraps every adapter mounted on the session (so custom retries and pools are
kept); mount your own adapters first. requests sends every hop of a redirect through the
session's adapters, so each gets the headers of the context it is sent under, and a redirect to
a host off the allow-list loses them. The module-level ``requests.get()`` helpers make a new
session per call and are not covered: use a session. This module is the only part of Koherent
that imports requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Unpack

from koherent.extras import require

require("koherent.http.requests", "requests", "requests", "urllib3")

from requests.adapters import BaseAdapter
from urllib3.util import parse_url

from koherent.http.propagation import DEFAULT, Overrides, Propagation, propagation

if TYPE_CHECKING:
    from requests import PreparedRequest, Response, Session


def apply(request: PreparedRequest, propagation: Propagation = DEFAULT) -> None:
    """Set (or take out) the context's headers of a prepared request."""
    # Parsed as urllib3, which opens the connection, parses it.
    url = parse_url(request.url or "")
    propagation.apply(request.headers, url.scheme or "", url.host, url.port)


class KoherentAdapter(BaseAdapter):
    """Wraps a transport adapter; adds the context's headers to every request it sends."""

    def __init__(self, wrapped: BaseAdapter, propagation: Propagation = DEFAULT) -> None:
        super().__init__()
        self.wrapped = wrapped
        self.propagation = propagation

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        apply(request, self.propagation)
        return self.wrapped.send(
            request,
            stream=stream,
            timeout=timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )

    def close(self) -> None:
        self.wrapped.close()

    def __getattr__(self, name: str) -> Any:
        # Anything else (pool settings, max_retries, ...) is the wrapped adapter's.
        wrapped = self.__dict__.get("wrapped")
        if wrapped is None:
            raise AttributeError(name)
        return getattr(wrapped, name)


def install(session: Session, **overrides: Unpack[Overrides]) -> Session:
    """Wrap every adapter of ``session`` in a :class:`KoherentAdapter`; returns the session.

    The keyword arguments (``hosts``, ``assignation_header``, ``app_header``) override the
    settings (see :class:`koherent.http.Propagation`). Installing again rewraps the original
    adapters with the new options.
    """
    chosen = propagation(**overrides)
    for prefix, adapter in list(session.adapters.items()):
        original = adapter.wrapped if isinstance(adapter, KoherentAdapter) else adapter
        session.adapters[prefix] = KoherentAdapter(original, chosen)
    return session


__all__ = ["KoherentAdapter", "apply", "install"]
