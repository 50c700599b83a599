"""Scenario 2, bulk helpers: simple-history's ``bulk_create_with_history`` and
``bulk_update_with_history``, Koherent vs simple-history alone.

Koherent stamps bulk rows with the audit context, read once per call and given to
simple-history as ``custom_historical_attrs`` (the bulk path sends no signal), and records the
assignation once; the question is what that costs per row.
Each sample creates the rows (timed), changes one field of each in memory (untimed), updates
them with history (timed), then empties the tables (untimed). Both contenders run under their
context, in autocommit mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import apps
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from benchmarks import contexts
from benchmarks.harness import Entry, Step, count_queries, interleave, reset_database
from benchmarks.results import group, row_of, target

CONTENDERS = ("simplehistory", "koherent")


def _model(contender: str) -> Any:
    return apps.get_model(f"bench_{contender}", "Row")


def run(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    rows, repetitions = size["rows"], size["repetitions"]
    reset_database()
    user = contexts.bench_user()
    opener: dict[str, Callable[[], Any]] = {
        "simplehistory": lambda: contexts.simple_history_context(user),
        "koherent": lambda: contexts.koherent_context(user),
    }
    checks: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
    queries: dict[str, dict[str, int]] = {c: {} for c in CONTENDERS}

    def entry(contender: str) -> Entry:
        model = _model(contender)
        objs: list[Any] = []

        def new_objects() -> None:
            objs[:] = [model(name=f"row {i}", value=i) for i in range(rows)]

        def create() -> None:
            with opener[contender]():
                objs[:] = bulk_create_with_history(objs, model)

        def change() -> None:
            for obj in objs:
                obj.value += 1

        def update() -> None:
            with opener[contender]():
                bulk_update_with_history(objs, model, ["value"])

        def check_and_empty() -> None:
            history = model.history
            checks[contender].append(
                {
                    "rows": model.objects.count(),
                    "history_rows": history.count(),
                    "updates": history.filter(history_type="~").count(),
                    "without_user": history.filter(history_user__isnull=True).count(),
                    "without_assignation": (
                        history.filter(assignation_id__isnull=True).count()
                        if contender == "koherent"
                        else None
                    ),
                }
            )
            reset_database()
            contexts.bench_user()

        return Entry(
            contender,
            [
                Step("create", create, ops=rows, before=new_objects),
                Step("update", update, ops=rows, before=change),
            ],
            after=check_and_empty,
        )

    entries = [entry(c) for c in CONTENDERS]
    log(f"{len(entries)} contenders x {repetitions} rounds of {rows:,} rows")
    stats = interleave(entries, repetitions, progress=log)

    for contender, e in zip(CONTENDERS, entries, strict=True):
        counted = {}
        for step in e.steps:
            if step.before is not None:
                step.before()
            with count_queries() as counter:
                step.run()
            counted[step.name] = counter.count
        queries[contender] = counted
        reset_database()
        contexts.bench_user()

    groups = []
    for step, title in (
        ("create", f"bulk_create_with_history of {rows:,} rows"),
        ("update", f"bulk_update_with_history of {rows:,} rows (one field)"),
    ):
        step_stats = {c: stats[f"{c}/{step}"] for c in CONTENDERS}
        extra = {c: {"queries": queries[c][step]} for c in CONTENDERS}
        groups.append(
            group(
                step,
                title,
                step_stats,
                baseline="simplehistory",
                extra=extra,
                columns={"queries": "statements per call"},
            )
        )
    targets = [
        target(
            f"bulk_{g['name']}_with_history: Koherent within 5 % of simple-history alone",
            f"{row_of(g, 'koherent')['ratio']:.3f}x simple-history",
            row_of(g, "koherent")["ratio"] <= 1.05,
        )
        for g in groups
    ]
    return {
        "title": "Bulk helpers",
        "question": "What does Koherent add to simple-history's bulk helpers, per row?",
        "method": (
            f"Each sample: bulk_create_with_history of {rows:,} new rows (timed), one field "
            f"changed on each, bulk_update_with_history (timed), tables emptied; the two "
            f"contenders alternate in random order for {repetitions} rounds."
        ),
        "sizes": size,
        "unit": "µs per row",
        "groups": groups,
        "targets": targets,
        "notes": [
            "Koherent's history rows carry five more columns (assignation_id, app, task_id, "
            "user_pk, history_changed_fields); their values are read from the context once "
            "per call (koherent.fields.KoherentHistoryManager), not by a default per row. Django "
            "prepares every value of every column of every row in Python (pre_save, "
            "get_db_prep_save) and psycopg adapts each one as a parameter: "
            f"{5 * rows:,} more values per call. That costs Koherent "
            + ", ".join(
                f"{row_of(g, 'koherent')['cpu'] - row_of(g, 'simplehistory')['cpu']:.1f} µs "
                f"of client CPU per row in {g['name']}"
                for g in groups
            )
            + " more than simple-history (the client CPU column), and the server stores wider "
            "rows; the columns are what Koherent records, so this is its price."
        ],
        "checks": checks,
    }
