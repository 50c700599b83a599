"""The public names of koherent 0.2.0, kept working with a ``DeprecationWarning`` each.

koherent 0.2.0 (the release on the package index) exported, besides its Strawberry extension:

==========================================  ==================================================
0.2.0 name                                  replacement
==========================================  ==================================================
``koherent.fields.ProvenanceField``         ``koherent.fields.HistoryField`` (with
                                            ``related_name="provenance_entries"`` to keep
                                            ``obj.provenance_entries``)
``koherent.fields.GenericRelation``         ``django.contrib.contenttypes.fields.GenericRelation``
``koherent.models.ProvenanceEntryModel``    ``koherent.models.KoherentHistoryBase``
``koherent.vars.current_assignation_id``    ``koherent.assignation()`` / ``koherent.context()``
``koherent.vars.get_current_assignation_id``  ``koherent.get_current_assignation_id``
``koherent.signals`` (``add_history_app``)  nothing: history rows are stamped by Koherent's
                                            column defaults, without a signal
``koherent.utils.get_assignation_id_or_none``  ``koherent.resolvers.assignation_id_from_headers``
``koherent.admin.KoherentAdmin``            ``koherent.admin.KoherentHistoryAdmin``
``koherent.strawberry.ProvenanceEntry``     ``koherent.strawberry.HistoryEntryType``
``koherent.strawberry.types.HistoryKind``   ``koherent.ChangeKind``
``koherent.strawberry.types.ModelChange``   ``koherent.strawberry.FieldChangeType``
==========================================  ==================================================

:data:`DEPRECATED` is that table in code; ``tests/upgrade/test_names.py`` pins it. Each module
named there looks the old name up here from its module ``__getattr__``, so the old name warns
where it is used and costs nothing to the code that does not use it. The old objects live here
when they need only the layers below the models, else beside what they use (imported by name
on first use): 0.2's model field in :mod:`koherent._legacy_fields`, its
header reader in :mod:`koherent.utils`.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from contextvars import Token
from typing import Any

from django.apps import apps
from django.db import models

#: ``(module, 0.2.0 name) -> (replacement, where the working object comes from)``. The second
#: item is ``"module:attribute"``.
DEPRECATED: dict[tuple[str, str], tuple[str, str]] = {
    ("koherent.fields", "ProvenanceField"): (
        'koherent.fields.HistoryField(related_name="provenance_entries")',
        "koherent._legacy_fields:ProvenanceField",
    ),
    ("koherent.fields", "GenericRelation"): (
        "django.contrib.contenttypes.fields.GenericRelation",
        "django.contrib.contenttypes.fields:GenericRelation",
    ),
    ("koherent.models", "ProvenanceEntryModel"): (
        "koherent.models.KoherentHistoryBase (bases of HistoryField)",
        "koherent.legacy:provenance_entry_model",
    ),
    ("koherent.vars", "current_assignation_id"): (
        "koherent.assignation() or koherent.context(assignation_id=...)",
        "koherent.legacy:current_assignation_id",
    ),
    ("koherent.vars", "get_current_assignation_id"): (
        "koherent.get_current_assignation_id",
        "koherent.context:get_current_assignation_id",
    ),
    ("koherent.signals", "add_history_app"): (
        "nothing: Koherent stamps history rows itself (remove the import)",
        "koherent.legacy:add_history_app",
    ),
    ("koherent.utils", "get_assignation_id_or_none"): (
        "koherent.resolvers.assignation_id_from_headers",
        "koherent.utils:_get_assignation_id_or_none",
    ),
    ("koherent.admin", "KoherentAdmin"): (
        "koherent.admin.KoherentHistoryAdmin",
        "koherent.admin.core:KoherentHistoryAdmin",
    ),
    ("koherent.strawberry", "ProvenanceEntry"): (
        "koherent.strawberry.HistoryEntryType",
        "koherent.strawberry.legacy:provenance_entry_type",
    ),
    ("koherent.strawberry.types", "ProvenanceEntry"): (
        "koherent.strawberry.HistoryEntryType",
        "koherent.strawberry.legacy:provenance_entry_type",
    ),
    ("koherent.strawberry.types", "HistoryKind"): (
        "koherent.ChangeKind (GraphQL: HistoryEntry.kind)",
        "koherent.strawberry.legacy:HistoryKind",
    ),
    ("koherent.strawberry.types", "ModelChange"): (
        "koherent.strawberry.FieldChangeType",
        "koherent.strawberry.legacy:ModelChange",
    ),
}

#: Whole modules of 0.2.0 whose import alone warns (their names warn again when used).
DEPRECATED_MODULES: dict[str, str] = {
    "koherent.vars": "koherent.context (koherent.assignation(), koherent.current())",
    "koherent.signals": "nothing: Koherent wires itself from its AppConfig",
    "koherent.utils": "koherent.resolvers",
}

#: Objects that are made by a factory on first use (the value of DEPRECATED names a function).
_FACTORIES = {"provenance_entry_model", "provenance_entry_type"}


def warn_deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` (a koherent 0.2.0 name) is deprecated in favour of ``new``."""
    warnings.warn(
        f"{old} is a koherent 0.2 name and is deprecated; use {new} instead "
        f"(see docs/upgrading.md).",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def warn_module(module: str) -> None:
    """Warn that the 0.2.0 module ``module`` was imported."""
    warn_deprecated(f"the module {module}", DEPRECATED_MODULES[module], stacklevel=4)


def resolve(module: str, name: str) -> Any:
    """The working object behind the 0.2.0 name ``module.name``, with a warning.

    Called by the module ``__getattr__`` of ``module``; raises ``AttributeError`` for a name
    that is not a 0.2.0 name of that module.
    """
    entry = DEPRECATED.get((module, name))
    if entry is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    replacement, source = entry
    warn_deprecated(f"{module}.{name}", replacement)
    source_module, attribute = source.split(":")
    target = getattr(importlib.import_module(source_module), attribute)
    return target() if attribute in _FACTORIES else target


# -- koherent.models ---------------------------------------------------------------------------


def client_field() -> models.ForeignKey[Any, Any]:
    """0.2.0's ``client`` column: a nullable foreign key to ``authentikate.Client``."""
    return models.ForeignKey(
        "authentikate.Client", on_delete=models.SET_NULL, null=True, blank=True
    )


@functools.cache
def provenance_entry_model() -> type[models.Model]:
    """0.2.0's ``ProvenanceEntryModel``: Koherent's history base, plus ``client`` when
    ``authentikate`` is installed, so that the history tables of a 0.2.0 project keep that
    column (and its values) until they are carried into ``app``.

    Built on first use: whether ``authentikate`` is installed is known once the app registry
    has read ``INSTALLED_APPS``.
    """
    from koherent._history_base import KoherentHistoryBase

    attrs: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": "koherent 0.2's history base (deprecated): see koherent.legacy.",
        "Meta": type("Meta", (), {"abstract": True}),
    }
    if apps.is_installed("authentikate"):
        attrs["client"] = client_field()
    return type("ProvenanceEntryModel", (KoherentHistoryBase,), attrs)


# -- koherent.vars ----------------------------------------------------------------------------


class _AssignationIdVar:
    """0.2.0's ``current_assignation_id`` context variable, on top of Koherent's context.

    ``set(value)`` puts ``value`` (validated) as the assignation of the context in effect and
    returns a token for ``reset(token)``, as a ``ContextVar`` does; ``get()`` reads it.
    """

    name = "current_assignation_id"

    def get(self, default: Any = None) -> Any:
        from koherent.context import get_current_assignation_id

        value = get_current_assignation_id()
        return default if value is None else value

    def set(self, value: str | None) -> Token[Any]:
        from koherent._validation import validate_assignation_id
        from koherent.context import AuditContext, peek, set_context

        checked = None if value is None else validate_assignation_id(value)
        ctx = peek() or AuditContext()
        return set_context(ctx.evolve(assignation_id=checked))

    def reset(self, token: Token[Any]) -> None:
        from koherent.context import reset_context

        reset_context(token)

    def __repr__(self) -> str:
        return "<koherent 0.2 current_assignation_id (deprecated)>"


current_assignation_id = _AssignationIdVar()


# -- koherent.signals / koherent.utils --------------------------------------------------------


def add_history_app(sender: Any, **kwargs: Any) -> None:
    """0.2.0's ``pre_create_historical_record`` receiver, no longer connected.

    Koherent stamps every history row itself; calling this fills what the row lacks from the
    context in effect, as 0.2.0 did (without ``client``: see ``app``).
    """
    from koherent import stamping

    row = kwargs["history_instance"]
    if getattr(row, "assignation_id", None) is None:
        row.assignation_id = stamping.current_assignation_id()
    if getattr(row, "app", None) is None:
        row.app = stamping.current_app()
    if getattr(row, "history_user_id", None) is None:
        row.history_user = stamping.get_history_user()
