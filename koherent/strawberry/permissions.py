"""Who may read the audit trail, and who may revert an assignation, through GraphQL.

Two settings name a function ``fn(user, assignation_id) -> bool``; ``user`` is the operation's
authenticated user or ``None``:

``KOHERENT["GRAPHQL_READ_PERMISSION"]``
    the ``assignation``, ``assignations`` and history fields (``assignation_id`` is the one
    asked for, or ``None`` for a listing). Default: :func:`authenticated`.
``KOHERENT["GRAPHQL_REVERT_PERMISSION"]``
    the ``revertAssignation`` mutation, dry runs included. Default: :func:`staff_only`.

A refusal is a GraphQL error with ``extensions.code`` ``FORBIDDEN``; nothing is read or changed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string
from graphql import GraphQLError

from koherent._logging import get_logger
from koherent.config import get_setting
from koherent.strawberry.loaders import current_loaders
from koherent.strawberry.operation import user_of

logger = get_logger("koherent")

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


def anyone(user: Any, assignation_id: str | None) -> bool:
    """Allow everyone, anonymous users included."""
    return True


@functools.lru_cache(maxsize=16)
def _import(path: str) -> Permission:
    hook: Permission = import_string(path)
    return hook


def allowed(setting: str, user: Any, assignation_id: str | None) -> bool:
    """Whether the hook named by ``setting`` allows ``user``."""
    return bool(_import(get_setting(setting))(user, assignation_id))


def _require(setting: str, info: Any, assignation_id: str | None, action: str) -> None:
    # Decided once per operation (a list of objects asks for each of them).
    decisions = current_loaders().permissions
    key = (setting, assignation_id)
    if decisions.get(key):
        return
    user = user_of(info.context)
    if key not in decisions:
        decisions[key] = allowed(setting, user, assignation_id)
    if not decisions[key]:
        logger.warning(
            "koherent: refused to %s for user %s (%s)",
            action,
            getattr(user, "pk", None),
            setting,
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
