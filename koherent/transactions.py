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
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import models, router, transaction

from koherent.config import get_setting

_MARK = "_koherent_atomic"


def make_saves_atomic(model: type[models.Model]) -> None:
    """Wrap ``model.save_base`` so a save and its history row share one transaction."""
    original: Callable[..., Any] = model.save_base
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def save_base(self: models.Model, *args: Any, **kwargs: Any) -> Any:
        if not get_setting("ATOMIC_SAVES"):
            return original(self, *args, **kwargs)
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using, savepoint=False):
            return original(self, *args, **kwargs)

    setattr(save_base, _MARK, True)
    model.save_base = save_base  # type: ignore[method-assign]
