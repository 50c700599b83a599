"""django-auditlog: one ``LogEntry`` table for every model (registered in the app config)."""

from __future__ import annotations

from benchmarks.contenders.common import make_model, make_tracked

Row = make_model(__name__, "Row")
TRACKED = make_tracked(__name__)
globals().update({model.__name__: model for model in TRACKED})
