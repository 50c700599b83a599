"""Write ``tests/soak/results.md`` from the figures of the last ``make soak``.

``python -m tests.soak.render`` reads ``tests/soak/last-run.jsonl`` (one JSON object per
scenario, appended by :func:`tests.soak.support.report`) and writes one table per scenario.
``make soak`` runs it after the scenarios. With ``--merge`` (after a run of some scenarios
only, e.g. ``KOHERENT_SOAK=medium ... -k memory``) the sections of the page already there
that the run has no figures for are kept, each with the date of its run.
"""

from __future__ import annotations

import json
import os
import platform
import re
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
    "graphql-http-trigger": "The same, the mutations writing a model captured by a PostgreSQL "
    "trigger (HistoryField(capture='trigger'))",
    "fuzz-celery-context-header": "Property-based fuzzing of the Celery context header "
    "(hypothesis)",
    "fuzz-http-assignation-header": "Property-based fuzzing of the HTTP assignation header "
    "through the middleware (hypothesis)",
    "limits": "Oversized and malformed values at every entry point",
    "revert-failure": "A database error (a trigger) in the middle of a large revert",
    "revert-race": "Reverts racing concurrent changes to their objects",
    "celery-broker-restart-aof-everysec": "The same restart, Redis with `appendonly yes`, "
    "`appendfsync everysec`",
    "celery-broker-restart-aof-always": "The same restart, Redis with `appendonly yes`, "
    "`appendfsync always`",
    "celery-broker-restart-rabbitmq": "The same restart with a RabbitMQ node of the test's own "
    "killed (SIGKILL) and started again: durable queue, persistent messages, publisher confirms, "
    "late acknowledgement",
    "database-faults-signal-off": "Tracked saves in tasks (real worker) and requests (real "
    "uvicorn) while PostgreSQL backends are terminated and the server crashes and restarts; "
    "CONN_MAX_AGE 0",
    "database-faults-signal-on": "The same, CONN_MAX_AGE 60 with CONN_HEALTH_CHECKS",
    "database-faults-signal-persistent-unchecked": "The same, CONN_MAX_AGE 60 without health "
    "checks",
    "database-faults-trigger-off": "The same database faults, the tasks and requests writing a "
    "model captured by a PostgreSQL trigger (HistoryField(capture='trigger')); CONN_MAX_AGE 0",
    "database-faults-trigger-on": "The same (trigger capture), CONN_MAX_AGE 60 with "
    "CONN_HEALTH_CHECKS",
    "database-faults-trigger-persistent-unchecked": "The same (trigger capture), CONN_MAX_AGE 60 "
    "without health checks",
    "memory-celery-threads": "Resident memory, caches and live contexts of a worker (threads) "
    "running tasks under fresh assignations",
    "memory-celery-prefork": "The same, prefork pool (main and pool processes)",
    "memory-uvicorn": "The same for a uvicorn server serving requests under fresh assignations",
    "capture-soak-threads": "Trigger capture, threads pool: tasks under random contexts (one in "
    "four without) write through save(), queryset.update() and raw SQL; every history row held "
    "against its sender (none lost, none misattributed, none of a task with a context "
    "unattributed, none of a task without one stamped)",
    "capture-soak-prefork": "Trigger capture, prefork pool: the same",
}
_META = ("scenario", "at", "python", "size")
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
        "A section from a partial run (`KOHERENT_SOAK=medium`, a tenth of the full size, and "
        "`render --merge`) says so: each gives the date and size of its run. Every scenario "
        "asserts what it reports: a misattribution, a lost row or an error fails it.",
        "",
        f"- Run started: {first}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}; "
        f"Python {platform.python_version()}",
        "",
    ]
    for name in order:
        record = by_name[name]
        lines += [f"## {name}", "", SCENARIOS.get(name, ""), ""]
        lines += [f"Run at {record['at']}, {record.get('size', 'full')} size.", ""]
        lines += ["| figure | value |", "|---|---|"]
        lines += [
            f"| {key.replace('_', ' ')} | {value if key in _VERBATIM else _value(value)} |"
            for key, value in record.items()
            if key not in _META
        ]
        lines.append("")
    return "\n".join(lines)


def merge(page: str, previous: str) -> str:
    """``page`` with the sections of ``previous`` (an earlier page) it has no figures for,
    after its own, each saying when it was run (a section of a page from before sections gave
    their run was written by ``make soak``: full size, at the page's start)."""
    head, *sections = previous.split("\n## ")
    started = next(
        (line.split(": ", 1)[1] for line in head.splitlines() if "Run started:" in line), "?"
    )
    have = {line[3:] for line in page.splitlines() if line.startswith("## ")}
    kept = []
    for section in sections:
        name, _, body = section.partition("\n")
        if name in have:
            continue
        if "\nRun at " not in body.split("| figure |")[0]:
            body = body.replace("\n| figure |", f"Run at {started}, full size.\n\n| figure |", 1)
        kept.append(f"## {name}\n{body.rstrip()}\n")
    if not kept:
        return page
    page = re.sub(
        r"^- Run started: (.*)$",
        r"- Run started: \1 (the sections kept from earlier runs give their own date)",
        page,
        count=1,
        flags=re.MULTILINE,
    )
    return page.rstrip() + "\n\n" + "\n".join(kept)


def main() -> int:
    if not RESULTS.exists():
        print(f"no figures: {RESULTS} is missing (run make soak)", file=sys.stderr)
        return 1
    records = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    page = render(records)
    if "--merge" in sys.argv and OUTPUT.exists():
        # A run of some scenarios only: the others keep the figures of their last run.
        page = merge(page, OUTPUT.read_text())
    OUTPUT.write_text(page)
    print(f"wrote {OUTPUT} ({len(records)} scenarios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
