"""Koherent's models: the abstract history base, the abstract tracked model, the record.

The classes are defined in the modules they belong to and gathered here, the path migrations
and projects name: :class:`KoherentHistoryBase` in :mod:`koherent._history_base`,
:class:`Assignation` and :class:`AssignationModel` in :mod:`koherent._assignations`.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from koherent import legacy
from koherent._assignations import Assignation, AssignationModel
from koherent._history_base import KOHERENT_HISTORY_COLUMNS, KoherentHistoryBase
from koherent.fields import HistoryField

__all__ = [
    "KOHERENT_HISTORY_COLUMNS",
    "Assignation",
    "AssignationModel",
    "KoherentHistoryBase",
    "KoherentHistoryModel",
]


class KoherentHistoryModel(models.Model):
    """Abstract model giving every concrete subclass a Koherent history.

    ``class Order(KoherentHistoryModel): ...`` is the same as adding
    ``history = HistoryField()`` to ``Order``.
    """

    history = HistoryField(inherit=True)

    class Meta:
        abstract = True


def __getattr__(name: str) -> Any:
    # koherent 0.2's ProvenanceEntryModel, with a DeprecationWarning (koherent.legacy).
    return legacy.resolve(__name__, name)
