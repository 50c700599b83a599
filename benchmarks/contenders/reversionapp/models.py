"""django-reversion: revisions of serialized versions (models registered in the app config)."""

from __future__ import annotations

from django.db import models

from benchmarks.contenders.common import make_model, make_tracked

Row = make_model(__name__, "Row")
TRACKED = make_tracked(__name__)
globals().update({model.__name__: model for model in TRACKED})
Parent = make_model(__name__, "Parent")
Child = make_model(
    __name__,
    "Child",
    {"parent": models.ForeignKey(Parent, on_delete=models.CASCADE, related_name="children")},
)
