"""How the history of a tracked model is captured: the capture modes, public API.

A tracked model's history is written either by Python (``"signal"``, the default:
simple-history's signals for ``save()`` and ``delete()``, the bulk helpers, and Koherent's own
capture of ``queryset.update()`` and ``bulk_update()``) or by PostgreSQL triggers
(``"trigger"``: every INSERT, UPDATE and DELETE, whatever sent it, raw SQL included). The mode
is chosen per model with ``HistoryField(capture=...)``, or for every ``HistoryField`` that does
not say with ``KOHERENT["CAPTURE"]``. Trigger capture applies on PostgreSQL only; on another
database a model configured for triggers is still captured in Python (and the system check
``koherent.E071`` refuses the configuration).

Exactly one of the two writes a given change: where the triggers capture a model, simple-history's
receivers and the ``update()`` capture write nothing for it, so an ``update()`` gets one row per
object, not two.

The work is done in two internal modules above this one: :mod:`koherent._update` (the
``update()`` and ``bulk_update()`` capture, and what a save changed) and :mod:`koherent._handoff`
(handing the audit context to the triggers on every writing statement). This module holds what
a project uses, and what both ask: :func:`capture_mode`, :func:`configured_mode`,
:func:`captured_by_trigger` and :func:`history_written_by_caller`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Literal, cast

from django.db import connections, router

if TYPE_CHECKING:
    from django.db.models import Model

__all__ = [
    "CAPTURE_MODES",
    "CaptureMode",
    "capture_mode",
    "captured_by_trigger",
    "configured_mode",
    "history_written_by_caller",
]

CaptureMode = Literal["signal", "trigger"]
#: The capture modes ``HistoryField(capture=...)`` and ``KOHERENT["CAPTURE"]`` accept.
CAPTURE_MODES: tuple[CaptureMode, ...] = ("signal", "trigger")

#: Attribute of a tracked model class holding the mode it was configured with.
MODE_ATTRIBUTE = "_koherent_capture"


def configured_mode(model: type[Model]) -> CaptureMode:
    """The capture mode ``model`` was configured with (``HistoryField`` or the setting)."""
    mode = getattr(model, MODE_ATTRIBUTE, None)
    if mode is None:
        raise LookupError(f"{model.__name__} is not a model tracked by Koherent")
    return cast("CaptureMode", mode)


def capture_mode(model: type[Model], using: str | None = None) -> CaptureMode:
    """How the history of ``model`` is written on database ``using``.

    ``"trigger"`` when the model is configured for trigger capture and the database (``using``,
    or the router's database for writing ``model``) is PostgreSQL: every INSERT, UPDATE and
    DELETE of its table writes its history row in the database, and Koherent's Python code
    writes none. ``"signal"`` otherwise: simple-history's signals, the bulk helpers and
    Koherent's ``update()`` capture write the rows. Raises ``LookupError`` for a model Koherent
    does not track.
    """
    if configured_mode(model) != "trigger":
        return "signal"
    alias = using or router.db_for_write(model)
    return "trigger" if connections[alias].vendor == "postgresql" else "signal"


def captured_by_trigger(model: type[Model], using: str | None = None) -> bool:
    """Whether the database writes the history of ``model`` on ``using`` (never raises)."""
    if getattr(model, MODE_ATTRIBUTE, None) != "trigger":
        return False
    alias = using or router.db_for_write(model)
    return connections[alias].vendor == "postgresql"


#: True while the caller writes the history of its updates itself.
_suppressed: ContextVar[bool] = ContextVar("koherent_capture_suppressed", default=False)


@contextlib.contextmanager
def history_written_by_caller() -> Iterator[None]:
    """Within the block, ``update()`` and ``bulk_update()`` write no history row.

    For code that writes the history of its updates itself (Koherent's revert, a bulk helper
    of your own), so that each object gets one row, not two.
    """
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def caller_writes_history() -> bool:
    """Whether the code running now writes the history of its updates itself."""
    return _suppressed.get()
