"""Koherent: simple-history tables stamped with user, app, assignation and task."""

from __future__ import annotations

from django.db import models

from benchmarks.contenders.common import make_model, make_tracked
from koherent.fields import HistoryField

Row = make_model(__name__, "Row", {"history": HistoryField()})
TRACKED = make_tracked(__name__, lambda: {"history": HistoryField()})
globals().update({model.__name__: model for model in TRACKED})
Parent = make_model(__name__, "Parent", {"history": HistoryField()})
Child = make_model(
    __name__,
    "Child",
    {
        "parent": models.ForeignKey(Parent, on_delete=models.CASCADE, related_name="children"),
        "history": HistoryField(),
    },
)
