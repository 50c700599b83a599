"""Sizes and figures of the soak scenarios.

``make soak`` sets ``KOHERENT_SOAK=full``: every scenario runs at its full size and appends its
figures to ``tests/soak/last-run.jsonl`` (one JSON object per scenario), from which
``tests/soak/results.md`` is written. The normal suite runs the same code at a reduced size.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path

import pytest

RESULTS = Path(__file__).with_name("last-run.jsonl")


def full() -> bool:
    """True under ``make soak``."""
    return os.environ.get("KOHERENT_SOAK") == "full"


def medium() -> bool:
    """True with ``KOHERENT_SOAK=medium``: a tenth of the full size (at least the reduced
    one), figures recorded as under ``make soak`` (for a machine that cannot spare a full run)."""
    return os.environ.get("KOHERENT_SOAK") == "medium"


def size(full_size: int, reduced: int) -> int:
    """``full_size`` under ``make soak``, else ``reduced`` (CI and ``make test``)."""
    if full():
        return full_size
    if medium():
        return max(reduced, full_size // 10)
    return reduced


def size_name() -> str:
    """``full``, ``medium`` or ``reduced``: the size the scenarios run at."""
    return "full" if full() else "medium" if medium() else "reduced"


def report(scenario: str, **figures: object) -> None:
    """Print a scenario's figures; under ``make soak`` also append them to ``RESULTS``."""
    line = ", ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\nSOAK {scenario}: {line}")
    if full() or medium():
        record = {
            "scenario": scenario,
            "at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "python": platform.python_version(),
            "size": size_name(),
            **figures,
        }
        with RESULTS.open("a") as out:
            out.write(json.dumps(record, default=str) + "\n")


class LogLines(logging.Handler):
    """Keeps the messages it receives (hypothesis examples cannot share pytest's caplog)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


#: Marks a scenario of this suite (``make soak`` selects them with ``-m soak``).
soak = pytest.mark.soak
