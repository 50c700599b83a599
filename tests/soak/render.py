"""Write ``tests/soak/results.md`` from the figures of the last ``make soak``.

``python -m tests.soak.render`` reads ``tests/soak/last-run.jsonl`` (one JSON object per
scenario, appended by :func:`tests.soak.support.report`) and writes one table per scenario.
``make soak`` runs it after the scenarios.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from tests.soak.support import RESULTS

OUTPUT = Path(__file__).with_name("results.md")

#: What each scenario is, in the order the page shows them.
SCENARIOS: dict[str, str] = {
    "celery-soak-threads": "Celery soak, threads pool: tasks under random contexts (one in ten "
    "without), children, retries, failures; every history row held against its sender",
    "celery-soak-prefork": "Celery soak, prefork pool: the same",
    "celery-worker-crash-prefork": "Worker SIGKILLed mid-task (acks_late, "
    "task_reject_on_worker_lost), prefork: redelivered tasks keep their context",
    "celery-worker-crash-threads": "Worker SIGKILLed mid-task, threads pool",
    "celery-broker-restart": "Redis (the test's own) killed and restarted while tasks are "
    "published and consumed",
    "graphql-http": "Concurrent async GraphQL mutations through uvicorn, distinct users and "
    "assignations",
    "fuzz-celery-context-header": "Property-based fuzzing of the Celery context header "
    "(hypothesis)",
    "fuzz-http-assignation-header": "Property-based fuzzing of the HTTP assignation header "
    "through the middleware (hypothesis)",
    "limits": "Oversized and malformed values at every entry point",
    "revert-failure": "A database error (a trigger) in the middle of a large revert",
    "revert-race": "Reverts racing concurrent changes to their objects",
    "capture-soak-threads": "Trigger capture, threads pool: tasks under random contexts (one in "
    "four without) write with queryset.update() and raw SQL; every history row held against "
    "its sender",
    "capture-soak-prefork": "Trigger capture, prefork pool: the same",
}
_META = ("scenario", "at", "python")
#: Figures that are identifiers, not quantities: shown as they are.
_VERBATIM = ("seed",)


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def render(records: list[dict[str, Any]]) -> str:
    by_name = {record["scenario"]: record for record in records}  # the last run of each wins
    order = [name for name in SCENARIOS if name in by_name]
    order += sorted(name for name in by_name if name not in SCENARIOS)
    first = min((by_name[name]["at"] for name in order), default="-")
    lines = [
        "# Soak, crash, restart and hostile-input results",
        "",
        "Written by `make soak` (`python -m tests.soak.render`) from the scenarios at full size "
        "(`KOHERENT_SOAK=full`) on PostgreSQL; CI runs the same scenarios at a reduced size. "
        "Every scenario asserts what it reports: a misattribution, a lost row or an error fails "
        "it.",
        "",
        f"- Run started: {first}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}; "
        f"Python {platform.python_version()}",
        "",
    ]
    for name in order:
        record = by_name[name]
        lines += [f"## {name}", "", SCENARIOS.get(name, ""), "", "| figure | value |", "|---|---|"]
        lines += [
            f"| {key.replace('_', ' ')} | {value if key in _VERBATIM else _value(value)} |"
            for key, value in record.items()
            if key not in _META
        ]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    if not RESULTS.exists():
        print(f"no figures: {RESULTS} is missing (run make soak)", file=sys.stderr)
        return 1
    records = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    OUTPUT.write_text(render(records))
    print(f"wrote {OUTPUT} ({len(records)} scenarios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
