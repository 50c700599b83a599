"""The GraphQL types' former Python names, kept as deprecated aliases (internal).

Six GraphQL types had the Python name of a core class (``Assignation``, ``FieldChange``,
``HistoryEntry``, ``PlannedChange``, ``RevertPlan``, ``RevertResult``), so code using both had
to rename one on import. They are now ``...Type`` in Python; their GraphQL names did not
change. The old names still work, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

#: Old Python name -> (module, new name).
RENAMED = {
    "Assignation": ("koherent.strawberry.types", "AssignationType"),
    "FieldChange": ("koherent.strawberry.types", "FieldChangeType"),
    "HistoryEntry": ("koherent.strawberry.types", "HistoryEntryType"),
    "PlannedChange": ("koherent.strawberry.mutations", "PlannedChangeType"),
    "RevertPlan": ("koherent.strawberry.mutations", "RevertPlanType"),
    "RevertResult": ("koherent.strawberry.mutations", "RevertResultType"),
}


def renamed(module: str, name: str) -> Any:
    """The type ``module.name`` used to name, with a ``DeprecationWarning``; raises
    ``AttributeError`` for a name that was not renamed."""
    if name not in RENAMED:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    where, new = RENAMED[name]
    warnings.warn(
        f"{module}.{name} is now {where}.{new} (importable from koherent.strawberry); "
        f"its GraphQL name is still {name}",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(where), new)
