"""The shape of a scenario's result, and helpers building it.

A scenario returns::

    {
        "title": str, "question": str, "method": str, "sizes": {...}, "unit": str,
        "groups": [                      # one table each
            {"name": str, "title": str, "baseline": contender, "reference": contender | None,
             "columns": {...extra column titles...},
             "rows": [{"contender": str, "label": str, "median": float, "q1": float,
                       "q3": float, "min": float, "max": float, "samples": int,
                       "ratio": float | None,            # to the group's baseline
                       "ratio_reference": float | None,  # to the group's reference
                       ...extra columns...}]},
        ],
        "targets": [{"text": str, "measured": str, "met": bool}],
        "notes": [str],
        "checks": {...},                 # correctness facts the CI test asserts
    }
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmarks.harness import Stats, ratio

LABELS = {
    "plain": "Plain Django (no history)",
    "simplehistory": "django-simple-history",
    "koherent": "Koherent",
    "koherent-trigger": "Koherent, trigger capture",
    "koherent-apart": "Koherent, ATOMIC_SAVES off",
    "koherent-signal": "Koherent, signal capture",
    "koherent-nocontext": "Koherent, trigger capture, no context",
    "no-handoff": "Trigger, context not handed over",
    "auditlog": "django-auditlog",
    "reversion": "django-reversion",
    "pghistory": "django-pghistory",
    "guid": "django-guid",
    "none": "No propagation",
    "orm": "Plain ORM (same rows)",
}


def group(
    name: str,
    title: str,
    stats: Mapping[str, Stats],
    *,
    baseline: str,
    reference: str | None = None,
    scale: float = 1e6,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    columns: Mapping[str, str] | None = None,
    order: list[str] | None = None,
) -> dict[str, Any]:
    """A table of ``stats`` (per-operation seconds) scaled by ``scale`` (default: µs)."""
    base = stats[baseline].median
    ref = stats[reference].median if reference is not None else None
    rows = []
    for contender in order or list(stats):
        s = stats[contender]
        row: dict[str, Any] = {"contender": contender, "label": LABELS.get(contender, contender)}
        row.update(s.as_dict(scale))
        row["ratio"] = ratio(s.median, base)
        row["ratio_reference"] = None if ref is None else ratio(s.median, ref)
        row.update((extra or {}).get(contender, {}))
        rows.append(row)
    return {
        "name": name,
        "title": title,
        "baseline": baseline,
        "reference": reference,
        "columns": dict(columns or {}),
        "rows": rows,
    }


def row_of(result_group: Mapping[str, Any], contender: str) -> dict[str, Any]:
    for row in result_group["rows"]:
        if row["contender"] == contender:
            return dict(row)
    raise KeyError(contender)


def target(text: str, measured: str, met: bool) -> dict[str, Any]:
    return {"text": text, "measured": measured, "met": bool(met)}
