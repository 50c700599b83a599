"""Koherent's settings: one ``KOHERENT`` dict in Django settings, read at call time.

Every key has a documented default below; :func:`get_setting` merges the project's
``settings.KOHERENT`` over :data:`DEFAULTS` each time it is called, so Django's
``override_settings`` and pytest-django's ``settings`` fixture work without any cache to clear.
Unknown keys are reported by the system check ``koherent.E002``.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, TypedDict, cast, overload

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


class KoherentSettings(TypedDict, total=False):
    """The keys of the ``KOHERENT`` settings dict."""

    #: Request header carrying the assignation id (HTTP middleware and GraphQL extension).
    ASSIGNATION_HEADER: str
    #: Who may join an assignation a request names: ``"owner"`` (the user who opened it),
    #: ``"any"`` (no check), or the dotted path of ``fn(user, assignation_id, record) -> bool``.
    ASSIGNATION_ACCESS: str
    #: Open a fresh assignation for every request that does not name one.
    FRESH_ASSIGNATION_PER_REQUEST: bool
    #: Echo the request's assignation id in the response, under ``ASSIGNATION_HEADER``.
    RESPONSE_HEADER: bool
    #: Dotted path of ``fn(request) -> str | None`` naming the client app of a request.
    APP_RESOLVER: str
    #: Request header read by the ``koherent.resolvers.header_app`` resolver.
    APP_HEADER: str
    #: App name used by ``koherent.resolvers.static_app`` and as the other resolvers' fallback.
    APP: str | None
    #: Run a tracked save and its history row in one transaction (one commit in autocommit mode).
    ATOMIC_SAVES: bool
    #: Write an ``Assignation`` record the first time an assignation writes history.
    RECORD_ASSIGNATIONS: bool
    #: PostgreSQL: ``migrate`` creates a function reading an assignation's first page of
    #: history in one query (``koherent.query._function``), which reads use on connections
    #: that persist (``"persistent"``), on every connection (``"always"``), or never
    #: (``"never"``: nothing is created).
    HISTORY_FUNCTION: str
    #: Which GraphQL operations that name no assignation get a fresh one: ``"mutation"``,
    #: ``"operation"`` (every operation) or ``"never"``.
    GRAPHQL_FRESH_ASSIGNATION: str
    #: Accept mutations over a GraphQL websocket (each gets its own assignation).
    GRAPHQL_WEBSOCKET_MUTATIONS: bool
    #: Dotted path of ``fn(user, assignation_id) -> bool`` allowing the ``revertAssignation``
    #: mutation.
    GRAPHQL_REVERT_PERMISSION: str
    #: Dotted path of ``fn(user, assignation_id) -> bool`` allowing the GraphQL history fields.
    GRAPHQL_READ_PERMISSION: str
    #: Key signing the audit context in task headers (``koherent.signing``); ``None`` means
    #: ``SECRET_KEY``.
    SIGNING_KEY: str | None
    #: Older keys still accepted when verifying; ``None``: ``SECRET_KEY_FALLBACKS``, or none with
    #: a ``SIGNING_KEY`` of its own.
    SIGNING_KEY_FALLBACKS: list[str] | None
    #: Hosts whose outgoing HTTP calls (``koherent.http``) carry the assignation: ``host``,
    #: ``host:port`` or ``*.domain`` entries. Empty: no host.
    OUTGOING_HOSTS: list[str] | tuple[str, ...]
    #: Header carrying the assignation id on outgoing calls; ``None``: ``ASSIGNATION_HEADER``.
    OUTGOING_ASSIGNATION_HEADER: str | None
    #: Header carrying the app on outgoing calls; ``None``: the app is not sent.
    OUTGOING_APP_HEADER: str | None
    #: How the history of a ``HistoryField`` that does not say is written: ``"signal"``
    #: (simple-history's signals) or ``"trigger"`` (PostgreSQL triggers). Read when models load.
    CAPTURE: str


DEFAULTS: KoherentSettings = {
    "ASSIGNATION_HEADER": "X-Assignation-ID",
    "ASSIGNATION_ACCESS": "owner",
    "FRESH_ASSIGNATION_PER_REQUEST": True,
    "RESPONSE_HEADER": True,
    "APP_RESOLVER": "koherent.resolvers.static_app",
    "APP_HEADER": "X-Koherent-App",
    "APP": None,
    "ATOMIC_SAVES": True,
    "RECORD_ASSIGNATIONS": True,
    "HISTORY_FUNCTION": "persistent",
    "GRAPHQL_FRESH_ASSIGNATION": "mutation",
    "GRAPHQL_WEBSOCKET_MUTATIONS": False,
    "GRAPHQL_REVERT_PERMISSION": "koherent.strawberry.permissions.staff_only",
    "GRAPHQL_READ_PERMISSION": "koherent.strawberry.permissions.authenticated",
    "SIGNING_KEY": None,
    "SIGNING_KEY_FALLBACKS": None,
    "OUTGOING_HOSTS": (),
    "OUTGOING_ASSIGNATION_HEADER": None,
    "OUTGOING_APP_HEADER": None,
    "CAPTURE": "signal",
}

#: The values of ``HISTORY_FUNCTION``.
HISTORY_FUNCTION_MODES = ("persistent", "always", "never")

#: Keys whose value is a dotted import path (checked by ``koherent.E003``).
DOTTED_PATH_KEYS: tuple[str, ...] = (
    "APP_RESOLVER",
    "GRAPHQL_REVERT_PERMISSION",
    "GRAPHQL_READ_PERMISSION",
)

#: The named policies ``ASSIGNATION_ACCESS`` accepts besides a dotted path (``koherent.E060``).
ASSIGNATION_ACCESS_POLICIES: tuple[str, ...] = ("owner", "any")

#: The values ``GRAPHQL_FRESH_ASSIGNATION`` accepts (checked by ``koherent.E030``).
GRAPHQL_FRESH_ASSIGNATION_MODES: tuple[str, ...] = ("mutation", "operation", "never")


def fresh_assignation_mode(mode: object) -> str:
    """``mode`` when it is a ``GRAPHQL_FRESH_ASSIGNATION`` value, else ``ImproperlyConfigured``.

    Asked at run time by the GraphQL extension and by the system check ``koherent.E030``.
    """
    if isinstance(mode, str) and mode in GRAPHQL_FRESH_ASSIGNATION_MODES:
        return mode
    raise ImproperlyConfigured(
        f"GRAPHQL_FRESH_ASSIGNATION must be one of "
        f"{', '.join(GRAPHQL_FRESH_ASSIGNATION_MODES)}, not {mode!r}"
    )


def user_settings() -> dict[str, Any]:
    """The project's raw ``KOHERENT`` dict (empty when not set)."""
    value = getattr(settings, "KOHERENT", None)
    return value if isinstance(value, dict) else {}


def koherent_settings() -> KoherentSettings:
    """The effective settings: the defaults with the project's ``KOHERENT`` dict on top."""
    merged: dict[str, Any] = {**DEFAULTS, **user_settings()}
    return cast("KoherentSettings", merged)


@overload
def get_setting(name: Literal["ASSIGNATION_HEADER"]) -> str: ...


@overload
def get_setting(name: Literal["ASSIGNATION_ACCESS"]) -> str: ...


@overload
def get_setting(name: Literal["FRESH_ASSIGNATION_PER_REQUEST"]) -> bool: ...


@overload
def get_setting(name: Literal["RESPONSE_HEADER"]) -> bool: ...


@overload
def get_setting(name: Literal["APP_RESOLVER"]) -> str: ...


@overload
def get_setting(name: Literal["APP_HEADER"]) -> str: ...


@overload
def get_setting(name: Literal["APP"]) -> str | None: ...


@overload
def get_setting(name: Literal["ATOMIC_SAVES"]) -> bool: ...


@overload
def get_setting(name: Literal["RECORD_ASSIGNATIONS"]) -> bool: ...


@overload
def get_setting(name: Literal["HISTORY_FUNCTION"]) -> str: ...


@overload
def get_setting(name: Literal["GRAPHQL_FRESH_ASSIGNATION"]) -> str: ...


@overload
def get_setting(name: Literal["GRAPHQL_WEBSOCKET_MUTATIONS"]) -> bool: ...


@overload
def get_setting(name: Literal["GRAPHQL_REVERT_PERMISSION"]) -> str: ...


@overload
def get_setting(name: Literal["GRAPHQL_READ_PERMISSION"]) -> str: ...


@overload
def get_setting(name: Literal["SIGNING_KEY"]) -> str | None: ...


@overload
def get_setting(name: Literal["SIGNING_KEY_FALLBACKS"]) -> list[str] | None: ...


@overload
def get_setting(name: Literal["OUTGOING_HOSTS"]) -> list[str] | tuple[str, ...]: ...


@overload
def get_setting(name: Literal["OUTGOING_ASSIGNATION_HEADER"]) -> str | None: ...


@overload
def get_setting(name: Literal["OUTGOING_APP_HEADER"]) -> str | None: ...


@overload
def get_setting(name: Literal["CAPTURE"]) -> str: ...


@overload
def get_setting(name: str) -> Any: ...  # a key known only at run time


def get_setting(name: str) -> Any:
    """One effective setting, read now. Raises ``KeyError`` for a key Koherent does not know.

    Typed per key (the overloads above follow :class:`KoherentSettings`): the project's value
    is taken as given; the system checks (:mod:`koherent.checks`) report one of another type.
    """
    overrides = user_settings()
    if name in overrides:
        return overrides[name]
    return DEFAULTS[name]  # type: ignore[literal-required]


@functools.lru_cache(maxsize=32)
def import_hook(path: str) -> Any:
    """The object a dotted path in the settings names (a policy, resolver or permission hook).

    Imported once per path; the callers type the result with the protocol of their hook.
    """
    return import_string(path)
