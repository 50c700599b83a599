"""One transaction for a tracked save and its history row.

With django-simple-history alone, in autocommit mode a model's write and its history row are two
transactions: a failure or a crash between them leaves an unaudited change, and every tracked
save pays two commits. Koherent wraps the ``save_base`` of every tracked model in
``transaction.atomic(savepoint=False)``: the write, the ``post_save`` receivers (which write the
history row) and the assignation record commit together, once; inside an enclosing transaction
the save simply joins it, without a savepoint.

Deletes need nothing: Django's deletion collector already runs the delete and its
``post_delete`` receivers in one transaction.

Disable with ``KOHERENT = {"ATOMIC_SAVES": False}``.

The wrapper also asks, before anything is written, whether the user of a request
authenticated after the middleware may join the assignation it names
(:class:`koherent.access.CheckedLaterUserRef`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import connections, models, router, transaction

from koherent import _handoff, capture
from koherent.access import CheckedLaterUserRef
from koherent.config import get_setting
from koherent.context import peek

_MARK = "_koherent_atomic"


def make_saves_atomic(model: type[models.Model]) -> None:
    """Wrap ``model.save_base`` so a save and its history row share one transaction."""
    original: Callable[..., Any] = model.save_base
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def save_base(self: models.Model, *args: Any, **kwargs: Any) -> Any:
        ctx = peek()
        if ctx is not None and type(ctx.user_ref) is CheckedLaterUserRef:
            # A request authenticated after the middleware: may its user join the assignation?
            # Asked before anything is written.
            ctx.user_ref.check()
        if getattr(type(self), capture.MODE_ATTRIBUTE, None) == "trigger":
            using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
            if capture.captured_by_trigger(type(self), using):
                # The statement itself writes the history row: nothing to make atomic. Only
                # the instance's change reason (or skip flag) is handed to the trigger.
                with _handoff.row_context(self, adding=self._state.adding):
                    return original(self, *args, **kwargs)
        if not get_setting("ATOMIC_SAVES"):
            return original(self, *args, **kwargs)
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        connection = connections[using]
        if connection.in_atomic_block:
            # Already in a transaction: the save and its history row commit or roll back
            # with it. All atomic(savepoint=False) would add is marking the transaction for
            # rollback if the save fails, so that a caller catching the error cannot commit a
            # change without its history row; done here without the cost of an Atomic.
            try:
                return original(self, *args, **kwargs)
            except BaseException:
                connection.needs_rollback = True
                raise
        with transaction.atomic(using=using, savepoint=False):
            return original(self, *args, **kwargs)

    setattr(save_base, _MARK, True)
    model.save_base = save_base  # type: ignore[method-assign]


_DELETE_MARK = "_koherent_delete_hand_off"


def make_deletes_hand_off(model: type[models.Model]) -> None:
    """Wrap ``model.delete`` so trigger capture sees the instance's ``_change_reason``."""
    original: Callable[..., Any] = model.delete
    if getattr(original, _DELETE_MARK, False):
        return

    @functools.wraps(original)
    def delete(self: models.Model, *args: Any, **kwargs: Any) -> Any:
        with _handoff.row_context(self, adding=False):
            return original(self, *args, **kwargs)

    setattr(delete, _DELETE_MARK, True)
    model.delete = delete  # type: ignore[method-assign]
