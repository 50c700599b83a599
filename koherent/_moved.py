"""The old paths of the modules that were marked internal, kept working (internal).

Each old module is a file of three lines whose module ``__getattr__`` calls :func:`forward`:
every name is still found there, taken from the module's new path, with a
``DeprecationWarning`` that names it.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__all__ = ["MOVED", "forward"]

#: The old path of each module that moved, and its new one.
MOVED: dict[str, str] = {
    "koherent.config": "koherent._config",
    "koherent.registry": "koherent._registry",
    "koherent.transactions": "koherent._transactions",
    "koherent.triggers": "koherent._triggers",
    "koherent.users": "koherent._users",
    "koherent.validation": "koherent._validation",
}


def forward(old: str, name: str) -> Any:
    """``name`` of the module that was ``old``, with a ``DeprecationWarning``."""
    if name.startswith("__"):  # module dunders (__path__, __wrapped__...) asked by tools
        raise AttributeError(f"module {old!r} has no attribute {name!r}")
    new = MOVED[old]
    value = getattr(importlib.import_module(new), name)
    warnings.warn(
        f"{old} is internal and is now {new}; {old}.{name} still works for now but is deprecated.",
        DeprecationWarning,
        stacklevel=3,
    )
    return value
