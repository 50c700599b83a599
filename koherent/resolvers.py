"""From a request to its audit context: shared by the middleware and the GraphQL extension.

The app of a request comes from the resolver named by ``KOHERENT["APP_RESOLVER"]``, a dotted
path to ``fn(request) -> str | None``. Built in:

``koherent.resolvers.static_app`` (default)
    ``KOHERENT["APP"]`` for every request (``None`` unless set).
``koherent.resolvers.header_app``
    The ``KOHERENT["APP_HEADER"]`` request header (``X-Koherent-App``), else ``KOHERENT["APP"]``.
    Clients choose this value themselves: use it for attribution, not for security.
``koherent.resolvers.oauth2_app``
    The client id of the OAuth2 application behind ``request.auth`` (django-oauth-toolkit and
    similar), else ``KOHERENT["APP"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from koherent import access
from koherent._config import get_setting, import_hook
from koherent._users import RequestUserRef
from koherent._validation import validate_app, validate_assignation_id
from koherent.context import AuditContext, new_assignation_id
from koherent.exceptions import AssignationAccessDenied, InvalidRequestContext

if TYPE_CHECKING:
    from django.http import HttpRequest

AppResolver = Callable[["HttpRequest"], "str | None"]


def static_app(request: HttpRequest) -> str | None:
    """The app named by ``KOHERENT["APP"]``."""
    value: str | None = get_setting("APP")
    return value


def header_app(request: HttpRequest) -> str | None:
    """The app named by the request's ``KOHERENT["APP_HEADER"]`` header."""
    value = request.headers.get(get_setting("APP_HEADER"))
    return value if value else static_app(request)


def oauth2_app(request: HttpRequest) -> str | None:
    """The client id of the OAuth2 application that authenticated the request."""
    application = getattr(getattr(request, "auth", None), "application", None)
    client_id = getattr(application, "client_id", None)
    return str(client_id) if client_id else static_app(request)


def resolve_app(request: HttpRequest) -> str | None:
    """The request's app, from the configured resolver, validated."""
    resolver: AppResolver = import_hook(get_setting("APP_RESOLVER"))
    value = resolver(request)
    if value is None:
        return None
    try:
        return validate_app(value)
    except ValueError as exc:
        raise InvalidRequestContext(f"Invalid app: {exc}") from None


def assignation_id_from_headers(headers: Any) -> str | None:
    """The assignation id a request names in ``KOHERENT["ASSIGNATION_HEADER"]``, validated.

    ``headers`` is any mapping with ``get`` (``request.headers``, a websocket's headers).
    Returns ``None`` when the header is absent; raises :class:`InvalidRequestContext` when it
    is malformed.
    """
    name: str = get_setting("ASSIGNATION_HEADER")
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return validate_assignation_id(raw.strip() if isinstance(raw, str) else raw)
    except ValueError as exc:
        raise InvalidRequestContext(f"Invalid {name} header: {exc}") from None


def context_from_request(
    request: HttpRequest,
    *,
    origin: str = "request",
    fresh: bool | None = None,
    check_access: bool = True,
    defer_anonymous: bool = False,
) -> AuditContext:
    """The audit context of ``request``: its user (read late), app and assignation.

    The assignation comes from the ``KOHERENT["ASSIGNATION_HEADER"]`` header; without one a
    fresh id is made when ``fresh`` is true (by default when
    ``KOHERENT["FRESH_ASSIGNATION_PER_REQUEST"]`` is). A named assignation must be one the
    request's user may join (``KOHERENT["ASSIGNATION_ACCESS"]``, :mod:`koherent.access`),
    unless ``check_access`` is false (the caller checks it itself).
    Raises :class:`InvalidRequestContext` for a malformed header, and its subclass
    :class:`~koherent.exceptions.AssignationAccessDenied` for an assignation the user may not
    join. With ``defer_anonymous``, a request that is anonymous now is not refused yet: its user
    is checked when first read (:class:`koherent.access.CheckedLaterUserRef`), so that
    authentication in the view still counts. In async code, ``await aprepare_request(request)``
    first.
    """
    assignation_id = assignation_id_from_headers(request.headers)
    user_ref: RequestUserRef = RequestUserRef(request)
    if assignation_id is not None and check_access:
        try:
            access.check_request(request, assignation_id)
        except AssignationAccessDenied as refusal:
            if not (defer_anonymous and refusal.user_pk is None):
                raise
            user_ref = access.CheckedLaterUserRef(request, assignation_id)
    if assignation_id is None:
        if fresh is None:
            fresh = bool(get_setting("FRESH_ASSIGNATION_PER_REQUEST"))
        if fresh:
            assignation_id = new_assignation_id()
    return AuditContext(
        assignation_id=assignation_id,
        app=resolve_app(request),
        origin=origin,
        user_ref=user_ref,
    )


async def aprepare_request(request: HttpRequest, *, defer_anonymous: bool = False) -> None:
    """Resolve, in async code, what :func:`context_from_request` reads with queries.

    Awaits ``request.auser()`` (an async caller cannot evaluate the lazy ``request.user``
    later) and checks the access to the assignation the request names, keeping the verdict on
    the request, so that ``context_from_request`` then runs without a query. Raises what
    ``context_from_request`` raises (with ``defer_anonymous``, as it does).
    """
    auser = getattr(request, "auser", None)
    if auser is not None:
        await auser()
    assignation_id = assignation_id_from_headers(request.headers)
    if assignation_id is not None:
        try:
            await access.acheck_request(request, assignation_id)
        except AssignationAccessDenied as refusal:
            if not (defer_anonymous and refusal.user_pk is None):
                raise
