"""django-simple-history alone: one ``Historical<Model>`` table per model."""

from __future__ import annotations

from django.db import models
from simple_history.models import HistoricalRecords

from benchmarks.contenders.common import make_model

Row = make_model(__name__, "Row", {"history": HistoricalRecords()})
Parent = make_model(__name__, "Parent", {"history": HistoricalRecords()})
Child = make_model(
    __name__,
    "Child",
    {
        "parent": models.ForeignKey(Parent, on_delete=models.CASCADE, related_name="children"),
        "history": HistoricalRecords(),
    },
)
