"""What the ``koherent_*`` commands share: exit codes and the audit context of a command."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

#: Exit codes of the commands (besides 0 for success).
EXIT_USAGE = 1  # unknown or malformed assignation id, unknown user
EXIT_REFUSED = 2  # conflicts, or already reverted (without --force)
EXIT_FAILED = 3  # the database refused a write; nothing was changed


def add_database_option(
    parser: CommandParser,
    help: str = "The database to read and write (default: the one the database router picks).",
) -> None:
    parser.add_argument("--database", default=None, help=help)


def resolve_user(value: str | None, using: str | None) -> Any:
    """A user from a primary key or a username (``None`` for none)."""
    if value is None:
        return None
    model = get_user_model()
    manager = model._default_manager.db_manager(using)
    found = manager.filter(**{model.USERNAME_FIELD: value}).first()
    if found is None and value.isdigit():
        found = manager.filter(pk=int(value)).first()
    if found is None:
        raise CommandError(f"unknown user {value!r} (give a username or a primary key)")
    return found
