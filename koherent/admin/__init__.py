"""Koherent's admin: assignations with their timeline and a revert with preview.

An opt-in app: add ``"koherent.admin"`` to ``INSTALLED_APPS`` (after ``"django.contrib.admin"``
and ``"koherent"``) and the default admin site gets an *Assignations* page. For the history
pages of your own tracked models, register them with :class:`KoherentHistoryAdmin`::

    from django.contrib import admin
    from koherent.admin import KoherentHistoryAdmin

    @admin.register(Order)
    class OrderAdmin(KoherentHistoryAdmin):
        ...

This package imports nothing at import time, so ``"koherent.admin"`` can be listed in
``INSTALLED_APPS``; the classes load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from koherent.admin.core import AssignationAdmin, KoherentHistoryAdmin

__all__ = ["AssignationAdmin", "KoherentHistoryAdmin"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("koherent.admin.core"), name)
    if name == "KoherentAdmin":  # koherent 0.2's name, with a DeprecationWarning
        return importlib.import_module("koherent.legacy").resolve(__name__, name)
    raise AttributeError(f"module 'koherent.admin' has no attribute {name!r}")
