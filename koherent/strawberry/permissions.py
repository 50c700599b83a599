"""Who may revert an assignation through GraphQL.

``KOHERENT["GRAPHQL_REVERT_PERMISSION"]`` names a function ``fn(user, assignation_id) -> bool``;
``user`` is the operation's authenticated user or ``None``. The default allows active staff
users only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from koherent.config import get_setting

RevertPermission = Callable[[Any, str], bool]


def staff_only(user: Any, assignation_id: str) -> bool:
    """Allow active staff users (the default)."""
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "is_staff", False)
    )


def superusers_only(user: Any, assignation_id: str) -> bool:
    """Allow active superusers."""
    return staff_only(user, assignation_id) and bool(getattr(user, "is_superuser", False))


@functools.lru_cache(maxsize=8)
def _import(path: str) -> RevertPermission:
    hook: RevertPermission = import_string(path)
    return hook


def may_revert(user: Any, assignation_id: str) -> bool:
    """Whether ``user`` may revert ``assignation_id``, by the configured hook."""
    return bool(_import(get_setting("GRAPHQL_REVERT_PERMISSION"))(user, assignation_id))
