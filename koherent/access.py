"""Who may join an assignation that a request names: ``KOHERENT["ASSIGNATION_ACCESS"]``.

A request joins an assignation by naming it (the ``X-Assignation-ID`` header, a GraphQL
operation's ``extensions``, a websocket's connection parameters). The policy decides whether
the request's *authenticated* user may:

``"owner"`` (default)
    Only the user who opened the assignation may join it: the user of its
    :class:`~koherent.models.Assignation` record. An assignation without a record yet (nothing
    written under it, or ``RECORD_ASSIGNATIONS`` off) or whose record has no user (opened by
    an anonymous request, a script, a task sent without a user) may be joined by anyone,
    except a revert's; the first change written under a new id records its user as the owner.
    An anonymous request naming an assignation that a user opened is refused.
``"any"``
    No check: any request may join any assignation (Koherent 0.3 before this setting).
a dotted path
    ``fn(user, assignation_id, record) -> bool``: ``user`` is the request's authenticated
    user or ``None``, ``record`` the ``Assignation`` or ``None``. Built in:
    ``koherent.access.owner_or_superuser`` (the owner, and active superusers) and
    ``koherent.access.owned_only`` (only the owner of an assignation that has one: unknown ids
    and assignations without an owner are refused).

A refusal raises :class:`~koherent.exceptions.AssignationAccessDenied` (HTTP 403 from the
middleware, a GraphQL error from the extension) before anything runs, so nothing is written.

The same verdict decides whether the context may *leave* the process: every exit (an outgoing
HTTP call's headers, a Celery message's header, a tasks-framework task's argument, the threads
and asyncio tasks :mod:`koherent.aio` starts) asks :func:`leaving_context` (or
:func:`may_leave`) first, and a context whose request may not join its assignation, or whose
late-authenticated user is not known yet and is refused as anonymous, does not leave: the call
or task goes without it, and a WARNING says why.

Cost: requests that name no assignation cost nothing; one that names one costs one query by
primary key on the ``Assignation`` table (none under ``"any"``). The record and the verdict
are kept on the request, so the middleware and the GraphQL extension handling the same
request share that one query.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db import router

from koherent._config import ASSIGNATION_ACCESS_POLICIES, get_setting, import_hook
from koherent._django import cached_async_user
from koherent._logging import get_logger
from koherent._users import RequestUserRef
from koherent.context import may_leave, peek
from koherent.exceptions import AssignationAccessDenied
from koherent.loop import in_event_loop

if TYPE_CHECKING:
    from koherent.context import AuditContext
    from koherent.models import Assignation

logger = get_logger("koherent")

__all__ = [
    "AccessPolicy",
    "CheckedLaterUserRef",
    "acheck_request",
    "afind_record",
    "any_request",
    "check_request",
    "find_record",
    "leaving_context",
    "may_leave",
    "owned_only",
    "owner_of",
    "owner_only",
    "owner_or_superuser",
    "policy_named",
]

#: ``fn(user, assignation_id, record) -> bool``: may ``user`` join ``assignation_id``?
AccessPolicy = Callable[[Any, str, "Assignation | None"], bool]

#: Attribute of a request holding what was learnt about the assignations it names.
_CACHE_ATTRIBUTE = "_koherent_assignation_access"
_MISSING = object()


def owner_of(record: Assignation | None) -> str | None:
    """The primary key (as text) of the user who opened the assignation of ``record``."""
    if record is None:
        return None
    if record.user_pk:
        return str(record.user_pk)
    if record.user_id is not None:
        return str(record.user_id)
    return None


#: The origin of revert assignations (``koherent.revert.REVERT_ORIGIN``).
_REVERT_ORIGIN = "revert"


def owner_only(user: Any, assignation_id: str, record: Assignation | None) -> bool:
    """The ``"owner"`` policy: no owner yet, or ``user`` is the owner.

    A revert's assignation without an owner (``koherent_revert`` run without ``--user``) is
    not open to anyone: changes joined to it would be undone with the revert, and redone
    when it is reverted.
    """
    owner = owner_of(record)
    if owner is None:
        return record is None or record.origin != _REVERT_ORIGIN
    return user is not None and str(user.pk) == owner


def owned_only(user: Any, assignation_id: str, record: Assignation | None) -> bool:
    """The strict policy: only the owner may join, and only an assignation that has one.

    Unknown ids and assignations without an owner are refused, so a client can no longer
    open an assignation under an id of its choosing (trust on first use) nor join one a
    script, a task or an anonymous request opened: it joins the ids the server made (the
    response header of a request that wrote) under its own user. Anonymous requests are
    refused.
    """
    owner = owner_of(record)
    return owner is not None and user is not None and str(user.pk) == owner


def owner_or_superuser(user: Any, assignation_id: str, record: Assignation | None) -> bool:
    """The ``"owner"`` policy, and active superusers may join any assignation."""
    if (
        user is not None
        and getattr(user, "is_superuser", False)
        and getattr(user, "is_active", True)
    ):
        return True
    return owner_only(user, assignation_id, record)


def any_request(user: Any, assignation_id: str, record: Assignation | None) -> bool:
    """Every request may join every assignation (what ``"any"`` does, as a function).

    Named apart from the GraphQL permission hook ``koherent.strawberry.permissions.anyone``,
    which takes other arguments; ``koherent.access.anyone`` is its former name.
    """
    return True


def __getattr__(name: str) -> Any:
    if name == "anyone":
        warnings.warn(
            "koherent.access.anyone is now koherent.access.any_request",
            DeprecationWarning,
            stacklevel=2,
        )
        return any_request
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def policy_named(name: object) -> tuple[str, AccessPolicy | None]:
    """The policy ``KOHERENT["ASSIGNATION_ACCESS"] = name`` names, and its function (``None``
    for ``"any"``); ``ImproperlyConfigured`` saying why not. Asked at run time and by the
    system check ``koherent.E060``."""
    if name == "any":
        return name, None
    if name == "owner":
        return name, owner_only
    if isinstance(name, str) and "." in name:
        try:
            policy = import_hook(name)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"KOHERENT['ASSIGNATION_ACCESS'] = {name!r} does not import: {exc}"
            ) from None
        if not callable(policy):
            raise ImproperlyConfigured(
                f"KOHERENT['ASSIGNATION_ACCESS'] = {name!r} is not callable."
            )
        return name, cast("AccessPolicy", policy)
    raise ImproperlyConfigured(
        f"KOHERENT['ASSIGNATION_ACCESS'] = {name!r} is not a policy Koherent knows: use one "
        f"of {', '.join(map(repr, ASSIGNATION_ACCESS_POLICIES))} or a dotted path."
    )


def current_policy() -> tuple[str, AccessPolicy | None]:
    """The configured policy's name, and its function (``None`` for ``"any"``)."""
    return policy_named(get_setting("ASSIGNATION_ACCESS"))


def _authenticated(user: Any) -> Any:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def request_user(request: Any) -> Any:
    """The authenticated user of ``request`` (``None`` when anonymous), read now (sync)."""
    cached = cached_async_user(request)
    return _authenticated(cached if cached is not None else getattr(request, "user", None))


async def arequest_user(request: Any) -> Any:
    """The authenticated user of ``request``, resolved with ``request.auser()`` when it can."""
    auser = getattr(request, "auser", None)
    if auser is not None:
        return _authenticated(await auser())
    return _authenticated(getattr(request, "user", None))


def _cache(request: Any) -> dict[str, Any]:
    cache: dict[str, Any] | None = getattr(request, _CACHE_ATTRIBUTE, None)
    if cache is None:
        cache = {"records": {}, "allowed": set(), "refused": {}}
        # A request object that takes no attributes gets no cache (one query per check).
        with contextlib.suppress(AttributeError, TypeError):
            setattr(request, _CACHE_ATTRIBUTE, cache)
    return cache


def _queryset(assignation_id: str) -> Any:
    from koherent.models import Assignation

    db = router.db_for_read(Assignation)
    return Assignation.objects.using(db).filter(pk=assignation_id).order_by()


def find_record(assignation_id: str, request: Any = None) -> Assignation | None:
    """The record of ``assignation_id`` (one query by primary key; kept on ``request``)."""
    records = _cache(request)["records"] if request is not None else {}
    record = records.get(assignation_id, _MISSING)
    if record is _MISSING:
        if in_event_loop():
            raise RuntimeError(
                f"koherent: the access to assignation {assignation_id!r} cannot be checked "
                "from async code without a query; await "
                "koherent.resolvers.aprepare_request(request) before reading the context"
            )
        record = _queryset(assignation_id).first()
        records[assignation_id] = record
    return record  # type: ignore[no-any-return]


async def afind_record(assignation_id: str, request: Any = None) -> Assignation | None:
    """:func:`find_record` for async code."""
    records = _cache(request)["records"] if request is not None else {}
    record = records.get(assignation_id, _MISSING)
    if record is _MISSING:
        record = await _queryset(assignation_id).afirst()
        records[assignation_id] = record
    return record  # type: ignore[no-any-return]


def _key(assignation_id: str, user: Any) -> tuple[str, str | None]:
    return (assignation_id, None if user is None else str(user.pk))


def _refuse(assignation_id: str, user: Any, policy: str) -> AssignationAccessDenied:
    return AssignationAccessDenied(assignation_id, None if user is None else user.pk, policy)


def _known_verdict(cache: dict[str, Any], key: tuple[str, str | None], user: Any) -> bool:
    """True when this request was allowed already; raises when it was refused already."""
    if key in cache["allowed"]:
        return True
    if key in cache["refused"]:
        raise _refuse(key[0], user, cache["refused"][key])
    return False


def _record_verdict(
    cache: dict[str, Any], key: tuple[str, str | None], user: Any, allowed: bool, name: str
) -> None:
    """Keep the verdict on the request; raise when it is a refusal."""
    if not allowed:
        cache["refused"][key] = name
        raise _refuse(key[0], user, name)
    cache["allowed"].add(key)


def check_request(request: Any, assignation_id: str, *, user: Any = _MISSING) -> None:
    """Raise :class:`AssignationAccessDenied` unless ``request`` may join ``assignation_id``.

    ``user`` defaults to the request's authenticated user. At most one query (none under
    ``"any"``, none when this request was checked already).
    """
    name, policy = current_policy()
    if policy is None:
        return
    if user is _MISSING:
        user = request_user(request)
    cache = _cache(request)
    key = _key(assignation_id, user)
    if _known_verdict(cache, key, user):
        return
    record = find_record(assignation_id, request)
    _record_verdict(cache, key, user, policy(user, assignation_id, record), name)


async def acheck_request(request: Any, assignation_id: str, *, user: Any = _MISSING) -> None:
    """:func:`check_request` for async code; a policy of your own runs in a thread."""
    name, policy = current_policy()
    if policy is None:
        return
    if user is _MISSING:
        user = await arequest_user(request)
    cache = _cache(request)
    key = _key(assignation_id, user)
    if _known_verdict(cache, key, user):
        return
    record = await afind_record(assignation_id, request)
    if policy in (owner_only, owner_or_superuser, owned_only, any_request):
        allowed = policy(user, assignation_id, record)
    else:  # may query (groups, permissions): not from the event loop
        allowed = await sync_to_async(policy)(user, assignation_id, record)
    _record_verdict(cache, key, user, allowed, name)


class CheckedLaterUserRef(RequestUserRef):
    """The user of a request that was anonymous when it named an assignation it may not join.

    Authentication may still happen in the view (Django REST framework authenticates there),
    so such a request is not refused yet: the check runs again, with the user known then, when
    the request's user is first read for the audit trail, that is, when it first writes
    history, sends a task or opens a child assignation. A refusal raises
    :class:`~koherent.exceptions.AssignationAccessDenied` there (the write rolls back with its
    history row); once allowed, the user is read as :class:`RequestUserRef` reads it.
    """

    __slots__ = ("_allowed", "_assignation_id")

    def __init__(self, request: Any, assignation_id: str) -> None:
        super().__init__(request)
        self._assignation_id = assignation_id
        self._allowed = False

    def __repr__(self) -> str:
        return f"CheckedLaterUserRef(assignation_id={self._assignation_id!r})"

    def _user(self) -> Any:
        user = super()._user()
        if not self._allowed:
            check_request(self._request, self._assignation_id, user=user)
            self._allowed = True
        return user

    def check(self) -> None:
        """Raise :class:`~koherent.exceptions.AssignationAccessDenied` unless the request's
        user, read now, may join the assignation."""
        if not self._allowed:
            self._user()

    #: A tracked save asks before writing (:func:`koherent._users.check_before_write`).
    before_write = check
    #: A context asks before it leaves the process (:func:`koherent.context.may_leave`).
    before_leaving = check


def leaving_context(exit: str, what: object = None) -> AuditContext | None:
    """The context in effect, if there is one and it :func:`may_leave` through ``exit``."""
    ctx = peek()
    if ctx is None or ctx.is_empty or not may_leave(ctx, exit, what):
        return None
    return ctx
