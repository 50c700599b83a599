"""Who may read the audit trail, and who may revert an assignation, through GraphQL.

Two settings name a function ``fn(user, assignation_id) -> bool``; ``user`` is the operation's
authenticated user or ``None``:

``KOHERENT["GRAPHQL_READ_PERMISSION"]``
    the audit trail. Called with the id of the assignation whose record or rows a field
    reads: ``assignation(id)``, ``Assignation.parent``, ``Assignation.changes``,
    ``RevertResult.revertAssignation``, each item of ``assignations`` (refused items are left
    out) and each entry of an object's history field (entries of a refused assignation are
    left out); with ``None`` for a listing or a search that is not about one assignation
    (``assignations``, an object's history field, the history filter without
    ``assignationId``), asked before the per-assignation calls. The history filter with
    ``assignationId`` asks for that id. Default: :func:`authenticated`.
``KOHERENT["GRAPHQL_REVERT_PERMISSION"]``
    the ``revertAssignation`` mutation, dry runs included. Default: :func:`staff_only`.

A refusal is a GraphQL error with ``extensions.code`` ``FORBIDDEN``; nothing is read or changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from graphql import GraphQLError

from koherent._config import get_setting, import_hook
from koherent._logging import get_logger
from koherent.strawberry.loaders import current_loaders
from koherent.strawberry.operation import user_of

logger = get_logger("koherent")

E = TypeVar("E")

Permission = Callable[[Any, "str | None"], bool]

#: ``extensions.code`` of a refusal.
FORBIDDEN = "FORBIDDEN"


def authenticated(user: Any, assignation_id: str | None) -> bool:
    """Allow any authenticated, active user (the default for reading)."""
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
    )


def staff_only(user: Any, assignation_id: str | None) -> bool:
    """Allow active staff users (the default for reverting)."""
    return authenticated(user, assignation_id) and bool(getattr(user, "is_staff", False))


def superusers_only(user: Any, assignation_id: str | None) -> bool:
    """Allow active superusers."""
    return staff_only(user, assignation_id) and bool(getattr(user, "is_superuser", False))


def view_permission(user: Any, assignation_id: str | None) -> bool:
    """Allow active users with the ``koherent.view_assignation`` permission (superusers, and
    the users and groups you give it): the permission the admin's assignation pages ask for.
    The safer choice for reading: the audit trail shows every field value of every tracked
    model."""
    return authenticated(user, assignation_id) and bool(user.has_perm("koherent.view_assignation"))


def anyone(user: Any, assignation_id: str | None) -> bool:
    """Allow everyone, anonymous users included."""
    return True


#: The hooks that run no query once the user is resolved and the listing decided
#: (``view_permission`` reads the permissions Django cached on the user the first decision
#: loaded.)
_BUILT_IN: tuple[Permission, ...] = (
    authenticated,
    staff_only,
    superusers_only,
    view_permission,
    anyone,
)


def _import(path: str) -> Permission:
    hook: Permission = import_hook(path)
    return hook


def allowed(setting: str, user: Any, assignation_id: str | None) -> bool:
    """Whether the hook named by ``setting`` allows ``user``."""
    return bool(_import(get_setting(setting))(user, assignation_id))


def _decide(setting: str, info: Any, assignation_id: str | None) -> bool:
    # Decided once per operation (a list of objects asks for each of them).
    decisions = current_loaders().permissions
    key = (setting, assignation_id)
    if key not in decisions:
        decisions[key] = allowed(setting, user_of(info.context), assignation_id)
    return decisions[key]


def decided(info: Any, assignation_id: str | None) -> bool:
    """Whether the read permission for ``assignation_id`` can be decided without a query:
    it is known already in this operation, or the hook is a built-in one (they read only the
    user's flags) and the operation's user is resolved (the listing was decided). Async code
    may then ask directly, without a hop to Django's sync thread (which would split the
    operation's batches)."""
    decisions = current_loaders().permissions
    if ("GRAPHQL_READ_PERMISSION", assignation_id) in decisions:
        return True
    return ("GRAPHQL_READ_PERMISSION", None) in decisions and _import(
        get_setting("GRAPHQL_READ_PERMISSION")
    ) in _BUILT_IN


def may_read(info: Any, assignation_id: str | None) -> bool:
    """Whether the operation's user may read ``assignation_id`` (no error; sync code)."""
    return _decide("GRAPHQL_READ_PERMISSION", info, assignation_id)


async def arequire_read(info: Any, assignation_id: str | None = None) -> None:
    """:func:`require_read` from async code (the hook runs in Django's sync thread when the
    decision is not known yet)."""
    if decided(info, assignation_id):
        require_read(info, assignation_id)
    else:
        await sync_to_async(require_read)(info, assignation_id)


def readable_entries(info: Any, entries: Sequence[E]) -> list[E]:
    """The history entries (anything with an ``assignation_id``) the operation's user may
    read: those of an assignation the read permission refuses are left out (sync code)."""
    return [
        e
        for e in entries
        if e.assignation_id is None or may_read(info, e.assignation_id)  # type: ignore[attr-defined]
    ]


async def areadable_entries(info: Any, entries: Sequence[E]) -> list[E]:
    """:func:`readable_entries` from async code."""
    ids = {e.assignation_id for e in entries} - {None}  # type: ignore[attr-defined]
    if all(decided(info, i) for i in ids):
        return readable_entries(info, entries)
    return await sync_to_async(readable_entries)(info, entries)


def _require(setting: str, info: Any, assignation_id: str | None, action: str) -> None:
    if not _decide(setting, info, assignation_id):
        user = user_of(info.context)
        logger.warning(
            "koherent: refused to %s for user %s (%s, assignation %r)",
            action,
            getattr(user, "pk", None),
            setting,
            assignation_id,
        )
        raise GraphQLError(f"You are not allowed to {action}.", extensions={"code": FORBIDDEN})


def require_read(info: Any, assignation_id: str | None = None) -> None:
    """Refuse (a GraphQL error) unless the operation's user may read the audit trail.

    Call it from sync code the first time in an operation (it may read a lazy
    ``request.user``); the decision is kept for the rest of the operation.
    """
    _require("GRAPHQL_READ_PERMISSION", info, assignation_id, "read the audit trail")


def require_revert(info: Any, assignation_id: str) -> None:
    """Refuse (a GraphQL error) unless the operation's user may revert ``assignation_id``."""
    _require("GRAPHQL_REVERT_PERMISSION", info, assignation_id, "revert assignations")
