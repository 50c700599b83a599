"""Koherent with trigger capture: the same simple-history tables, written by PostgreSQL."""

from __future__ import annotations

from benchmarks.contenders.common import make_model
from koherent.fields import HistoryField

Row = make_model(__name__, "Row", {"history": HistoryField(capture="trigger")})
