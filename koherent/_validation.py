"""What a context value may hold: the allowed patterns and lengths, checked where values enter.

Values are checked when a context is opened (``koherent.context``, ``koherent.assignation``),
when a request names an assignation (middleware, GraphQL extension) and when a Celery task
header is read, so a bad value is refused with a clear ``ValueError`` before anything is written.

=================  ==========================================  ===========
field              allowed pattern                             max length
=================  ==========================================  ===========
assignation id     ``[A-Za-z0-9][A-Za-z0-9._:-]*``             1000
app                ``[A-Za-z0-9][A-Za-z0-9._:@/+-]*``           100
origin             ``[a-z][a-z0-9_-]*``                        32
user primary key   an int, a UUID, or a string without control  64
                   characters
=================  ==========================================  ===========
"""

from __future__ import annotations

import re
import uuid
from typing import Any

#: The length koherent 0.2 allowed (its ``assignation_id`` column was ``varchar(1000)``), so
#: that every id a 0.2 service wrote or a 0.2 client sends is still accepted and stored whole.
MAX_ASSIGNATION_ID_LENGTH = 1000
MAX_APP_LENGTH = 100
MAX_ORIGIN_LENGTH = 32
MAX_USER_PK_LENGTH = 64
MAX_TASK_ID_LENGTH = 255

ASSIGNATION_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
APP_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]*")
ORIGIN_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(
    value: object, name: str, pattern: re.Pattern[str], max_length: int, allowed: str
) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}: {_shown(value)}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if len(value) > max_length:
        raise ValueError(f"{name} is {len(value)} characters long; the maximum is {max_length}")
    if pattern.fullmatch(value) is None:
        raise ValueError(f"{name} {_shown(value)} is not allowed: use {allowed}")
    return value


def validate_assignation_id(value: object) -> str:
    """Return ``value`` if it is a valid assignation id, else raise ``ValueError``."""
    return _check(
        value,
        "assignation id",
        ASSIGNATION_ID_PATTERN,
        MAX_ASSIGNATION_ID_LENGTH,
        "letters, digits and . _ : - (starting with a letter or digit)",
    )


def validate_app(value: object) -> str:
    """Return ``value`` if it is a valid app name, else raise ``ValueError``."""
    return _check(
        value,
        "app",
        APP_PATTERN,
        MAX_APP_LENGTH,
        "letters, digits and . _ : @ / + - (starting with a letter or digit)",
    )


def validate_origin(value: object) -> str:
    """Return ``value`` if it is a valid origin (``request``, ``celery``, ...)."""
    return _check(
        value,
        "origin",
        ORIGIN_PATTERN,
        MAX_ORIGIN_LENGTH,
        "lower-case letters, digits, _ and - (starting with a letter)",
    )


def validate_task_id(value: object) -> str:
    """Return ``value`` if it is a valid task id (Celery's are UUIDs)."""
    return _check(
        value,
        "task id",
        TASK_ID_PATTERN,
        MAX_TASK_ID_LENGTH,
        "letters, digits and . _ : - (starting with a letter or digit)",
    )


def validate_user_pk(value: object) -> Any:
    """Return ``value`` if it can be a user's primary key, else raise ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"user must be a user or a primary key, not a bool: {value!r}")
    if isinstance(value, int | uuid.UUID):
        return value
    if isinstance(value, str):
        if not value:
            raise ValueError("user primary key must not be empty")
        if len(value) > MAX_USER_PK_LENGTH:
            raise ValueError(
                f"user primary key is {len(value)} characters long; "
                f"the maximum is {MAX_USER_PK_LENGTH}"
            )
        if _CONTROL_CHARACTERS.search(value):
            raise ValueError(f"user primary key {_shown(value)} contains control characters")
        return value
    raise ValueError(
        f"user must be a user instance or a primary key (int, str or UUID), "
        f"not {type(value).__name__}"
    )
