"""Where a GraphQL operation comes from, and the audit context that follows from it.

An operation's ``context_value`` says what it runs for:

* a Django ``HttpRequest`` (strawberry's ``GraphQLView`` and ``AsyncGraphQLView``, or any
  ``schema.execute(..., context_value={"request": request})``): the request's context, made by
  :func:`koherent.resolvers.context_from_request`, the code the middleware uses;
* a Channels connection (strawberry's ``GraphQLWSConsumer``, or its ``GraphQLHTTPConsumer``):
  the same function, given a :class:`ConnectionRequest` made from the ASGI scope (the user
  that Channels' ``AuthMiddleware`` put in ``scope["user"]``, the handshake headers) and, for
  websockets, the ``connection_init`` parameters, which count as headers;
* nothing Koherent knows: the operation runs in the caller's context, untouched.

An operation may also name its own assignation in its ``extensions``
(``{"koherent": {"assignationId": "..."}}``); that wins over the request's header.

The context is read here without checking who may join a named assignation: the extension
checks the assignation the operation finally runs under (:mod:`koherent.access`), once the
operation type is known, with a query that async execution awaits.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.http import HttpRequest
from django.utils.datastructures import CaseInsensitiveMapping
from django.utils.functional import SimpleLazyObject

from koherent._django import cached_async_user, lazy_object_resolved
from koherent._validation import validate_assignation_id
from koherent.exceptions import InvalidRequestContext
from koherent.loop import in_event_loop
from koherent.resolvers import context_from_request

if TYPE_CHECKING:
    from koherent.context import AuditContext

#: Origin recorded for assignations opened by GraphQL operations over HTTP.
HTTP_ORIGIN = "graphql"
#: Origin recorded for assignations opened by GraphQL operations over a websocket.
WEBSOCKET_ORIGIN = "graphql-ws"

HTTP = "http"
WEBSOCKET = "websocket"

#: Where the operation's assignation was named.
NAMED_BY_OPERATION = "operation"
NAMED_BY_REQUEST = "request"
NAMED_BY_CONNECTION = "connection"

#: The ``extensions`` of the websocket message that started the operation running here (set by
#: :class:`koherent.strawberry.websocket.KoherentGraphQLWSConsumer` around the creation of the
#: operation's task, which copies it).
websocket_operation_extensions: contextvars.ContextVar[Mapping[str, Any] | None] = (
    contextvars.ContextVar("koherent_websocket_operation_extensions", default=None)
)


@dataclass(frozen=True, slots=True)
class OperationSource:
    """What an operation runs for, and the audit context that follows from it."""

    #: ``"http"``, ``"websocket"``, or ``None`` when the operation carries no request.
    transport: str | None
    #: The operation's context before the operation type is known (``None``: leave the
    #: caller's context alone).
    context: AuditContext | None
    #: Where the assignation came from: ``"operation"``, ``"request"``, ``"connection"``, or
    #: ``None`` when nothing named one.
    named_by: str | None
    #: The response whose headers may carry the assignation back (HTTP only).
    response: Any = None
    #: What the context was read from (a Django request, or a :class:`ConnectionRequest`):
    #: the holder of the user the access to a named assignation is checked for.
    request: Any = None


class ConnectionRequest:
    """What Koherent's request resolvers read, made from an ASGI scope.

    ``headers`` are the scope's headers with ``params`` (a websocket's ``connection_init``
    payload) on top, case-insensitively; ``user`` is ``scope["user"]``; ``auth`` is
    ``scope.get("auth")``. App resolvers written for Django requests work with it when they
    read only these.
    """

    def __init__(self, scope: Mapping[str, Any], params: Mapping[str, Any] | None = None):
        self.scope = scope
        merged: dict[str, str] = {}
        for name, value in scope.get("headers") or ():
            merged[name.decode("latin1").lower()] = value.decode("latin1")
        for name, value in (params or {}).items():
            if isinstance(name, str) and isinstance(value, str):
                merged[name.lower()] = value
        self.headers: Mapping[str, str] = CaseInsensitiveMapping(merged)
        self.user: Any = scope.get("user")
        self.auth: Any = scope.get("auth")

    def __repr__(self) -> str:
        return f"ConnectionRequest({self.scope.get('type')!r}, {self.scope.get('path')!r})"


class KanteRequest:
    """What Koherent's request resolvers read, made from a kante context (koherent 0.2's
    services: ``kante.context.HttpContext`` / ``WsContext``).

    kante hands the operation a ``UniversalRequest`` (no Django request): ``headers`` are the
    context's headers (with a websocket's ``connection_params`` on top), case-insensitively;
    ``user`` and ``client`` are what the authenticating extension (authentikate's) set on the
    ``UniversalRequest``, read when asked, so the extension may run before or after
    Koherent's. Recognised by shape, without importing kante.
    """

    def __init__(self, context_value: Any) -> None:
        self.universal = lookup(context_value, "request")
        merged: dict[str, str] = {}
        headers = lookup(context_value, "headers")
        if headers is None:
            scope = scope_of(lookup(context_value, "consumer")) or {}
            headers = {
                name.decode("latin1"): value.decode("latin1")
                for name, value in scope.get("headers") or ()
            }
        for name, value in (headers or {}).items():
            if isinstance(name, str) and isinstance(value, str):
                merged[name.lower()] = value
        params = lookup(context_value, "connection_params")
        for name, value in (params if isinstance(params, Mapping) else {}).items():
            if isinstance(name, str) and isinstance(value, str):
                merged[name.lower()] = value
        self.headers: Mapping[str, str] = CaseInsensitiveMapping(merged)
        self.is_websocket = lookup(context_value, "type") == "ws"

    @property
    def user(self) -> Any:
        return getattr(self.universal, "_user", None)

    @property
    def client(self) -> Any:
        return getattr(self.universal, "_client", None)

    auth = None

    def __repr__(self) -> str:
        return f"KanteRequest({'ws' if self.is_websocket else 'http'!r})"


def is_kante_context(context_value: Any) -> bool:
    """Whether ``context_value`` is a kante ``HttpContext`` or ``WsContext`` (by shape)."""
    request = lookup(context_value, "request")
    return (
        request is not None
        and not isinstance(request, HttpRequest)
        and hasattr(request, "set_extension")
        and hasattr(request, "_user")
        and lookup(context_value, "type") in ("http", "ws")
    )


def as_request(adapter: ConnectionRequest | KanteRequest) -> HttpRequest:
    """``adapter`` typed as the request the resolvers take (they read only what it has)."""
    return cast("HttpRequest", adapter)


def lookup(container: Any, key: str) -> Any:
    """``container[key]`` for mappings, ``container.key`` for objects, else ``None``."""
    if container is None:
        return None
    if isinstance(container, Mapping):
        return container.get(key)
    return getattr(container, key, None)


def scope_of(request: Any) -> Mapping[str, Any] | None:
    """The ASGI scope of a Channels consumer or of strawberry's ``ChannelsRequest``."""
    for holder in (request, getattr(request, "consumer", None)):
        scope = getattr(holder, "scope", None)
        if isinstance(scope, Mapping) and "type" in scope:
            return scope
    return None


def operation_assignation(extensions: Any) -> str | None:
    """The assignation an operation names in ``extensions.koherent.assignationId``.

    Raises :class:`InvalidRequestContext` when it is malformed.
    """
    ours = lookup(extensions, "koherent") if isinstance(extensions, Mapping) else None
    value = ours.get("assignationId") if isinstance(ours, Mapping) else None
    try:
        return None if value is None else validate_assignation_id(value)
    except ValueError as exc:
        raise InvalidRequestContext(f"Invalid extensions.koherent.assignationId: {exc}") from None


def source_of(context_value: Any, operation_extensions: Any) -> OperationSource:
    """Work out the audit context of an operation from its ``context_value``.

    Raises :class:`InvalidRequestContext` when the request names a malformed assignation or
    app; the operation is then refused before anything runs.
    """
    request = lookup(context_value, "request")
    named = operation_assignation(operation_extensions)
    if is_kante_context(context_value):
        kante = KanteRequest(context_value)
        if kante.is_websocket:
            named = named or operation_assignation(websocket_operation_extensions.get())
            ctx = context_from_request(
                as_request(kante), origin=WEBSOCKET_ORIGIN, fresh=False, check_access=False
            )
            return _with_named(WEBSOCKET, ctx, named, NAMED_BY_CONNECTION, None, kante)
        ctx = context_from_request(
            as_request(kante), origin=HTTP_ORIGIN, fresh=False, check_access=False
        )
        return _with_named(HTTP, ctx, named, NAMED_BY_REQUEST, None, kante)
    scope = None if isinstance(request, HttpRequest) else scope_of(request)
    if scope is not None and scope.get("type") == "websocket":
        named = named or operation_assignation(websocket_operation_extensions.get())
        params = lookup(context_value, "connection_params")
        adapter = ConnectionRequest(scope, params if isinstance(params, Mapping) else None)
        ctx = context_from_request(
            as_request(adapter), origin=WEBSOCKET_ORIGIN, fresh=False, check_access=False
        )
        return _with_named(WEBSOCKET, ctx, named, NAMED_BY_CONNECTION, None, adapter)
    if scope is not None:
        adapter = ConnectionRequest(scope)
        ctx = context_from_request(
            as_request(adapter), origin=HTTP_ORIGIN, fresh=False, check_access=False
        )
        response = lookup(context_value, "response")
        return _with_named(HTTP, ctx, named, NAMED_BY_REQUEST, response, adapter)
    if request is not None and hasattr(request, "headers"):
        ctx = context_from_request(request, origin=HTTP_ORIGIN, fresh=False, check_access=False)
        response = lookup(context_value, "response")
        return _with_named(HTTP, ctx, named, NAMED_BY_REQUEST, response, request)
    if request is not None:
        # A request Koherent cannot read: running the operation would write history rows
        # without user, app or assignation, so it is refused instead.
        raise UnreadableContext(
            f"KoherentExtension cannot read the audit context of this operation: its "
            f"context's request is a {type(request).__module__}.{type(request).__qualname__}, "
            f"which is neither a Django HttpRequest, a Channels request nor a kante context. "
            f"Pass the Django request as context_value['request'] (or context.request)."
        )
    return OperationSource(transport=None, context=None, named_by=None)


class UnreadableContext(InvalidRequestContext):
    """The operation's context carries a request Koherent does not know how to read."""


def _with_named(
    transport: str,
    ctx: AuditContext,
    named: str | None,
    default_by: str,
    response: Any,
    request: Any,
) -> OperationSource:
    if named is not None:
        return OperationSource(
            transport, ctx.evolve(assignation_id=named), NAMED_BY_OPERATION, response, request
        )
    by = default_by if ctx.assignation_id is not None else None
    return OperationSource(transport, ctx, by, response, request)


def unresolved_async_user(context_value: Any) -> HttpRequest | None:
    """The request of an async operation whose lazy ``request.user`` is not resolved yet.

    Async code cannot evaluate Django's lazy ``request.user`` (it needs a query); the extension
    awaits ``request.auser()`` for such a request before the first field, after which the
    request's user reference reads the cached result. ``KoherentMiddleware`` resolves it
    already, so behind the middleware this returns ``None``.
    """
    request = lookup(context_value, "request")
    if not isinstance(request, HttpRequest) or not hasattr(request, "auser"):
        return None
    if cached_async_user(request) is not None:
        return None
    user = getattr(request, "user", None)
    if not isinstance(user, SimpleLazyObject) or lazy_object_resolved(user):
        return None
    if not in_event_loop():  # sync execution: the lazy user is read when needed
        return None
    return request


def user_of(context_value: Any) -> Any:
    """The user an operation runs for (``None`` when anonymous or unknown).

    Reads ``request.user`` (a lazy user is resolved here: call it from sync code, as
    strawberry-django runs sync resolvers) or, for Channels, ``scope["user"]``.
    """
    request = lookup(context_value, "request")
    if request is None:
        return None
    scope = None if isinstance(request, HttpRequest) else scope_of(request)
    if scope is not None:
        user = scope.get("user")
    else:  # the user async code resolved (request.auser()), else the lazy request.user
        user = cached_async_user(request) or getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user
