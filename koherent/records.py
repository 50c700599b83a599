"""Lazy :class:`~koherent.models.Assignation` records.

The first history row an assignation writes creates its record (``INSERT ... ON CONFLICT DO
NOTHING``, in a savepoint, in the same transaction as the row). After that the process knows
the record exists and writes nothing more for it: at most one write per assignation per process
in the steady state.

The process learns that a record exists only when the transaction that wrote it commits. Until
then the insert is remembered as pending in *that* transaction; if the transaction rolls back,
the next change under the same assignation writes the record again. A record that cannot be
written (say, the table is missing) is logged and skipped: it never fails the change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, router, transaction

from koherent._logging import get_logger
from koherent.config import get_setting
from koherent.context import AuditContext

if TYPE_CHECKING:
    from django.db.models import Model

logger = get_logger("koherent")

_CACHE_SIZE = 10_000
_committed: OrderedDict[tuple[str, str], None] = OrderedDict()
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget which records this process has written (for tests that flush the database)."""
    with _lock:
        _committed.clear()


def _mark_committed(key: tuple[str, str]) -> None:
    with _lock:
        _committed[key] = None
        _committed.move_to_end(key)
        while len(_committed) > _CACHE_SIZE:
            _committed.popitem(last=False)


class _Promote:
    """``on_commit`` callback moving a record from pending to known."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key

    def __call__(self) -> None:
        _mark_committed(self.key)


def _pending(connection: Any) -> dict[tuple[str, str], Any]:
    pending: dict[tuple[str, str], Any] | None = getattr(connection, "_koherent_pending", None)
    if pending is None:
        pending = {}
        connection._koherent_pending = pending
    return pending


def ensure_record(ctx: AuditContext, assignation_id: str, using: str) -> None:
    """Make sure ``assignation_id`` has its record in database ``using``.

    Called when a history row is about to be written under ``ctx``.
    """
    key = (using, assignation_id)
    if key in _committed:
        return
    if not get_setting("RECORD_ASSIGNATIONS"):
        return
    connection = connections[using]
    pending = _pending(connection)
    # Django replaces ``run_on_commit`` with a new list on every commit and rollback, so the
    # list we registered in is still the current one only within the same transaction.
    if connection.in_atomic_block and pending.get(key) is connection.run_on_commit:
        return
    if _write(ctx, assignation_id, using):
        if connection.in_atomic_block:
            transaction.on_commit(_Promote(key), using=using)
            pending[key] = connection.run_on_commit
        else:
            _mark_committed(key)


def _write(ctx: AuditContext, assignation_id: str, using: str) -> bool:
    from koherent.models import Assignation

    same = ctx.assignation_id == assignation_id
    user = ctx.user_ref.for_history() if same and ctx.user_ref is not None else None
    user_pk = ctx.user_id if same else None
    record = Assignation(
        id=assignation_id,
        user_id=None if user is None else user.pk,
        user_pk=None if user_pk is None else str(user_pk),
        app=ctx.app if same else None,
        origin=(ctx.origin or "manual") if same else "unknown",
        parent_id=ctx.parent_assignation_id if same else None,
        task_id=ctx.task_id if same else None,
    )
    try:
        with transaction.atomic(using=using):
            Assignation.objects.using(using).bulk_create([record], ignore_conflicts=True)
    except DatabaseError as exc:
        logger.warning(
            "koherent: could not write the record of assignation %s (%s); the change and its "
            "history row are kept",
            assignation_id,
            exc,
        )
        return False
    return True


def ensure_record_for_row(row: Model, using: str | None) -> None:
    """Ensure the record of the assignation a history row is being written under."""
    from koherent.context import _current

    assignation_id = getattr(row, "assignation_id", None)
    if not assignation_id:
        return
    ctx = _current.get()
    db = using or router.db_for_write(type(row), instance=row)
    ensure_record(ctx if ctx is not None else AuditContext(), assignation_id, db)


def ensure_record_for_model(history_model: type[Model]) -> None:
    """Ensure the record of the assignation in effect, for rows of ``history_model``."""
    from koherent.context import _current

    ctx = _current.get()
    if ctx is None or not ctx.assignation_id:
        return
    ensure_record(ctx, ctx.assignation_id, router.db_for_write(history_model))
