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

Before anything is written, the wrapper lets the context's user reference refuse the write
(:func:`koherent._users.check_before_write`: a request authenticated after the middleware, whose
user may not join the assignation it names). A model whose history the database writes itself
(trigger capture) needs no transaction: its wrapper is given a ``direct`` hook
(:data:`DirectSave`) that says so, and runs those saves in the context manager it returns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from django.db import connections, models, router, transaction

from koherent._config import get_setting
from koherent._users import check_before_write
from koherent.context import peek

__all__ = ["DirectSave", "in_one_transaction", "make_saves_atomic"]

_MARK = "_koherent_atomic"

#: ``direct(instance, save_kwargs)``: a context manager to run the save in *instead of* a
#: transaction (the database writes its history itself), or ``None`` to make it atomic.
DirectSave = Callable[[models.Model, dict[str, Any]], "AbstractContextManager[Any] | None"]


def in_one_transaction(using: str, write: Callable[[], Any]) -> Any:
    """Run ``write`` so that it commits or rolls back as one, with what it writes.

    Already in a transaction: the writes commit or roll back with it. All
    ``atomic(savepoint=False)`` would add is marking the transaction for rollback if ``write``
    fails, so that a caller catching the error cannot commit a change without its history
    row; done here without the cost of an ``Atomic``. Otherwise one transaction of its own.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        try:
            return write()
        except BaseException:
            transaction.set_rollback(True, using=using)
            raise
    with transaction.atomic(using=using, savepoint=False):
        return write()


def make_saves_atomic(model: type[models.Model], direct: DirectSave | None = None) -> None:
    """Wrap ``model.save_base`` so a save and its history row share one transaction."""
    original: Callable[..., Any] = model.save_base
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def save_base(self: models.Model, *args: Any, **kwargs: Any) -> Any:
        ctx = peek()
        if ctx is not None:
            # May the user of the context write now? Asked before anything is written.
            check_before_write(ctx.user_ref)
        if direct is not None:
            block = direct(self, kwargs)
            if block is not None:
                with block:
                    return original(self, *args, **kwargs)
        if not get_setting("ATOMIC_SAVES"):
            return original(self, *args, **kwargs)
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        return in_one_transaction(using, lambda: original(self, *args, **kwargs))

    setattr(save_base, _MARK, True)
    model.save_base = save_base  # type: ignore[method-assign]
