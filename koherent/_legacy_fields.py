"""koherent 0.2.0's ``ProvenanceField`` (internal; reached, with a ``DeprecationWarning``, as
``koherent.fields.ProvenanceField``: see :mod:`koherent.legacy`)."""

from __future__ import annotations

from typing import Any

from koherent.fields import HistoryField
from koherent.legacy import provenance_entry_model

__all__ = ["ProvenanceField"]


def ProvenanceField(**kwargs: Any) -> Any:
    """0.2.0's ``ProvenanceField()``: a :class:`~koherent.fields.HistoryField` whose history
    model keeps 0.2.0's layout (``related_name="provenance_entries"``, hence
    ``obj.provenance_entries`` and the ``history_relation`` column, and ``client`` while
    ``authentikate`` is installed) and its table."""
    bases = (provenance_entry_model(), *kwargs.pop("bases", ()))
    kwargs.setdefault("related_name", "provenance_entries")
    return HistoryField(bases=bases, **kwargs)
