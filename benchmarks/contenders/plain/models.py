"""Plain Django: the baseline, no history."""

from __future__ import annotations

from benchmarks.contenders.common import make_model

Row = make_model(__name__, "Row")
