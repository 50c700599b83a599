"""What goes into a history row from the audit context.

The Koherent columns of a history model take their values from the context through callable
field defaults, evaluated when simple-history builds the row. That covers ``save()``,
``delete()`` and the bulk helpers alike (the bulk path sends no signal). The user goes through
simple-history's ``get_user`` hook, which both paths call.

The functions named here are referenced by the migrations of every project that tracks a model
with :class:`~koherent.fields.HistoryField`; they keep their names and module.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.db import models

from koherent.context import get_current_app, get_current_assignation_id, get_current_task_id, peek

if TYPE_CHECKING:
    from django.http import HttpRequest


def current_assignation_id() -> str | None:
    """Default of the ``assignation_id`` column."""
    return get_current_assignation_id()


def current_app() -> str | None:
    """Default of the ``app`` column."""
    return get_current_app()


def current_task_id() -> str | None:
    """Default of the ``task_id`` column."""
    return get_current_task_id()


def current_user_pk() -> str | None:
    """Default of the ``user_pk`` column: the context user's primary key as text."""
    value = peek()
    if value is None or value.user_ref is None:
        return None
    pk = value.user_ref.pk
    return None if pk is None else str(pk)


#: The fields the history row being written records as changed by its write (set around the
#: write by :mod:`koherent.capture`); ``None`` when the writer does not know.
_changed_fields: ContextVar[str | None] = ContextVar("koherent_changed_fields", default=None)


def current_changed_fields() -> str | None:
    """Default of the ``history_changed_fields`` column (see :mod:`koherent.capture`)."""
    return _changed_fields.get()


def get_history_user(
    instance: models.Model | None = None, request: HttpRequest | None = None, **kwargs: Any
) -> models.Model | None:
    """simple-history's ``get_user`` hook: the context's user, without fetching it.

    An explicit ``instance._history_user`` still wins (simple-history checks it first). With no
    user in the context, the request simple-history's own middleware recorded is used, as
    simple-history would.
    """
    value = peek()
    if value is not None and value.user_ref is not None:
        return value.user_ref.for_history()
    if request is not None:
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return user  # type: ignore[no-any-return]
    return None


class UserPkField(models.CharField):  # type: ignore[type-arg]
    """The primary key of a history row's user, kept as text.

    It is written from ``history_user`` when the row has one (also one set explicitly with
    ``_history_user`` or ``default_user``), else from the context, so the id survives when the
    user does not exist when the row is written, and when the user is deleted later (which
    empties ``history_user``).
    """

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        user_id = getattr(model_instance, "history_user_id", None)
        if user_id is not None:
            value = str(user_id)
            setattr(model_instance, self.attname, value)
            return value
        return super().pre_save(model_instance, add)


class AssignationIdField(models.CharField):  # type: ignore[type-arg]
    """A column holding assignation ids (the record's key, its references, the history rows').

    Assignation ids are ASCII by validation (:data:`koherent._validation.ASSIGNATION_ID_PATTERN`),
    up to 1,000 characters. On MySQL and MariaDB the column is declared ``CHARACTER SET ascii
    COLLATE ascii_bin``: with a project's ``utf8mb4`` an index on 1,000 characters would need
    4,000 bytes, over InnoDB's 3,072-byte key limit, and ``migrate`` would fail; in ASCII it
    needs 1,000, and ids compare case-sensitively, as everywhere else. Other databases get
    the plain ``CharField`` column.
    """

    def db_type(self, connection: Any) -> str | None:
        declared = super().db_type(connection)
        if connection.vendor == "mysql" and declared is not None:
            return f"{declared} CHARACTER SET ascii COLLATE ascii_bin"
        return declared
