"""Moved to :mod:`koherent._transactions` (internal); this old path still works, with a
``DeprecationWarning`` (see :mod:`koherent._moved`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from koherent._moved import forward

if TYPE_CHECKING:  # what type checkers see: the module's names, as before
    from koherent._transactions import *  # noqa: F403


def __getattr__(name: str) -> Any:
    return forward(__name__, name)
