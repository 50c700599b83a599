"""Koherent for services built on authentikate and kante, as koherent 0.2's were.

koherent 0.2 stamped each history row with the user and the ``authentikate.Client`` that
authentikate's Strawberry extension put in ``authentikate.vars``. With this integration
(``pip install "koherent[authentikate]"``) Koherent reads the same:

* the **app**: set ``KOHERENT["APP_RESOLVER"] = "koherent.contrib.authentikate.client_app"``;
  the app of an operation is its client's ``client_id`` (the value ``koherent_upgrade``
  carries from 0.2's ``client`` column into ``app``);
* the **user**: :class:`koherent.strawberry.KoherentExtension` reads a kante context
  (``HttpContext`` / ``WsContext``) itself: the user is the one authentikate's extension set
  on kante's request, read when a row is written;
* the **assignation**: the ``X-Assignation-ID`` header, as 0.2 read it.

List ``AuthentikateExtension`` before ``KoherentExtension`` in the schema's extensions: the app
is resolved when the operation starts. An operation that carries an authorization header but
whose client is not known yet is refused (``KOHERENT_INVALID_AUDIT_CONTEXT``) rather than
stamped without its app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from koherent.exceptions import InvalidRequestContext
from koherent.extras import require
from koherent.resolvers import static_app

require("koherent.contrib.authentikate", "authentikate", "authentikate")

if TYPE_CHECKING:
    from django.http import HttpRequest

#: The headers authentikate reads a token from by default.
AUTHORIZATION_HEADERS = ("authorization", "x-authorization")


def current_client() -> Any:
    """The ``authentikate.Client`` authentikate's extension set for this operation, or None."""
    try:
        from authentikate.vars import get_client  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - the extra is not installed
        return None
    return get_client()


def current_user() -> Any:
    """The user authentikate's extension set for this operation, or None."""
    try:
        from authentikate.vars import get_user  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - the extra is not installed
        return None
    return get_user()


def client_app(request: HttpRequest) -> str | None:
    """App resolver: the ``client_id`` of the request's authentikate client.

    The client is the one set on a kante request (``request.client`` of Koherent's adapter),
    else the one in ``authentikate.vars``; without one, ``KOHERENT["APP"]``. Raises
    :class:`~koherent.exceptions.InvalidRequestContext` for a kante operation that carries a
    token but has no client yet (``AuthentikateExtension`` listed after ``KoherentExtension``).
    """
    client = getattr(request, "client", None)
    if client is None:
        client = current_client()
    if client is None:
        universal = getattr(request, "universal", None)
        headers: Any = getattr(request, "headers", {})
        if universal is not None and any(headers.get(h) for h in AUTHORIZATION_HEADERS):
            raise InvalidRequestContext(
                "this kante operation carries a token, but no authentikate client is known "
                "yet: list AuthentikateExtension before KoherentExtension in the schema's "
                "extensions, so that its rows are stamped with their app"
            )
        return static_app(request)
    client_id = getattr(client, "client_id", None)
    return str(client_id) if client_id else static_app(request)
