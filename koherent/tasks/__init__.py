"""Deprecated: Django's tasks framework integration is :mod:`koherent.django_tasks`.

This package's name is the module Celery's ``app.autodiscover_tasks()`` imports from every
installed app, so it keeps that import empty: importing ``koherent.tasks`` loads nothing and
warns nothing. Using a name from it (``koherent.tasks.audited``, ``from koherent.tasks import
task``, ``import koherent.tasks.kwarg``) gives the object of :mod:`koherent.django_tasks` and
emits a ``DeprecationWarning`` naming the new path. This alias goes in the release after 0.3.0.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import Any

__all__: list[str] = []  # nothing to import with *: use koherent.django_tasks

NEW: str = "koherent.django_tasks"
#: The names ``koherent.django_tasks`` exports, and its submodules.
NAMES = frozenset(
    {"KWARG", "ORIGIN", "PURPOSE", "AuditedTask", "audited", "task"}
    | {"compat", "kwarg", "running"}
)


def _warn(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(
        f"{old} is deprecated: use {new} (Celery's autodiscover_tasks() imports every app's "
        f"'tasks' module); the old path is removed in the release after 0.3.0",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def alias_submodule(name: str) -> None:
    """Make the deprecated submodule ``name`` the module of :mod:`koherent.django_tasks`."""
    new = NEW + name.removeprefix(__name__)
    _warn(f"import {name}", new, stacklevel=3)
    sys.modules[name] = importlib.import_module(new)


class _Alias(types.ModuleType):
    """This package: its names are looked up in :mod:`koherent.django_tasks` on each use."""

    def __getattr__(self, name: str) -> Any:
        if name not in NAMES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        _warn(f"{__name__}.{name}", f"{NEW}.{name}", stacklevel=2)
        return getattr(importlib.import_module(NEW), name)

    def __setattr__(self, name: str, value: Any) -> None:
        # The import system binds each imported submodule here; it is not kept, so every use
        # of the name goes through __getattr__ (and ``audited`` stays the decorator).
        if name not in NAMES:
            super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *NAMES})


sys.modules[__name__].__class__ = _Alias
