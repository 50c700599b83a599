"""django-pghistory: ``<Model>Event`` tables written by PostgreSQL triggers."""

from __future__ import annotations

import pghistory

from benchmarks.contenders.common import make_model, make_tracked

Row = make_model(__name__, "Row", decorate=pghistory.track())
TRACKED = make_tracked(__name__, decorate=pghistory.track())
globals().update({model.__name__: model for model in TRACKED})
