"""Scenario: ``queryset.update()`` and a plain ``bulk_update()`` of many rows.

Plain Django writes no history; Koherent captures both in Python (``UPDATE ... RETURNING``,
then one ``INSERT`` of history rows per 1,000 objects, see :mod:`koherent.capture`);
django-pghistory's trigger writes an event per row inside the update's statement. Each sample
creates the rows (untimed, plain ``bulk_create``), runs one ``update()`` over all of them
(timed), changes one field of each loaded object in memory (untimed), runs ``bulk_update()``
in batches of 1,000 (timed), then checks the history and empties the tables (untimed). Every
contender runs under its context, in autocommit mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.db.models import F

from benchmarks import contexts
from benchmarks.harness import Entry, Step, count_queries, interleave, reset_database
from benchmarks.results import group, row_of, target

CONTENDERS = ("plain", "koherent", "pghistory")
#: Objects per statement of ``bulk_update()`` (Django's ``CASE`` grows with the batch).
BULK_BATCH = 1000


def _model(contender: str) -> Any:
    return apps.get_model(f"bench_{contender}", "Row")


def _updates_recorded(contender: str) -> int:
    if contender == "koherent":
        return int(_model("koherent").history.filter(history_type="~").count())
    if contender == "pghistory":
        events = apps.get_model("bench_pghistory", "RowEvent").objects
        return int(events.filter(pgh_label="update").count())
    return 0


def _unattributed(contender: str) -> int | None:
    if contender == "koherent":
        history = _model("koherent").history.filter(history_type="~")
        return int(
            history.filter(assignation_id__isnull=True).count()
            + history.filter(history_user__isnull=True).count()
        )
    if contender == "pghistory":
        events = apps.get_model("bench_pghistory", "RowEvent").objects
        return int(events.filter(pgh_label="update", pgh_context__isnull=True).count())
    return None


def run(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    rows, repetitions = size["rows"], size["repetitions"]
    reset_database()
    user = contexts.bench_user()
    opener: dict[str, Callable[[], Any]] = {
        "plain": contexts.nothing,
        "koherent": lambda: contexts.koherent_context(user),
        "pghistory": lambda: contexts.pghistory_context(user),
    }
    checks: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
    queries: dict[str, dict[str, int]] = {c: {} for c in CONTENDERS}
    history_inserts: dict[str, int] = {}
    history_table = _model("koherent").history.model._meta.db_table

    def entry(contender: str) -> Entry:
        model = _model(contender)
        objs: list[Any] = []

        def create() -> None:
            model.objects.bulk_create(model(name=f"row {i}", value=i) for i in range(rows))

        def update() -> None:
            with opener[contender]():
                model.objects.update(value=F("value") + 1)

        def load_and_change() -> None:
            objs[:] = list(model.objects.all())
            for obj in objs:
                obj.value += 1

        def bulk_update() -> None:
            with opener[contender]():
                model.objects.bulk_update(objs, ["value"], batch_size=BULK_BATCH)

        def check_and_empty() -> None:
            checks[contender].append(
                {
                    "rows": model.objects.count(),
                    "value_sum": sum(model.objects.values_list("value", flat=True)),
                    "updates_recorded": _updates_recorded(contender),
                    "unattributed": _unattributed(contender),
                }
            )
            reset_database()
            contexts.bench_user()

        return Entry(
            contender,
            [
                Step("update", update, ops=rows, before=create),
                Step("bulk_update", bulk_update, ops=rows, before=load_and_change),
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
            if contender == "koherent":
                history_inserts[step.name] = sum(
                    sql.lstrip().upper().startswith("INSERT") and history_table in sql
                    for sql in counter.statements
                )
        queries[contender] = counted
        reset_database()
        contexts.bench_user()

    groups = []
    for step, title in (
        ("update", f"queryset.update() of {rows:,} rows (one field)"),
        ("bulk_update", f"bulk_update() of {rows:,} rows (one field, batches of {BULK_BATCH:,})"),
    ):
        step_stats = {c: stats[f"{c}/{step}"] for c in CONTENDERS}
        extra = {c: {"queries": queries[c][step]} for c in CONTENDERS}
        groups.append(
            group(
                step,
                title,
                step_stats,
                baseline="plain",
                extra=extra,
                columns={"queries": "statements per call"},
            )
        )
    batches = math.ceil(rows / BULK_BATCH)
    expected = {"update": math.ceil(rows / 1000), "bulk_update": batches}
    targets = [
        target(
            f"{g['name']}: Koherent writes the history of {rows:,} rows in "
            f"{expected[g['name']]} INSERT(s), not one per row",
            f"{history_inserts[g['name']]} INSERT(s) of history rows",
            history_inserts[g["name"]] <= expected[g["name"]],
        )
        for g in groups
    ]
    update_group = groups[0]
    k, pg = row_of(update_group, "koherent"), row_of(update_group, "pghistory")
    return {
        "title": "update() and bulk_update()",
        "question": (
            "What does capturing queryset.update() and a plain bulk_update() cost per row, "
            "against plain Django and against django-pghistory's triggers?"
        ),
        "method": (
            f"Each sample: {rows:,} rows created (untimed), one update() over all of them "
            f"(timed), one field changed on each loaded object, bulk_update() in batches of "
            f"{BULK_BATCH:,} (timed), tables emptied; contenders alternate in random order for "
            f"{repetitions} rounds, each under its own context, in autocommit mode."
        ),
        "sizes": size,
        "unit": "µs per row",
        "groups": groups,
        "targets": targets,
        "notes": [
            "Plain Django writes no history at all; it is the floor. Koherent's capture is "
            "Python-side (signal capture, the portable mode): the update returns the changed "
            "rows, and their history goes in with one INSERT per 1,000 rows. pghistory's "
            "trigger writes each event inside the update's own statement. Koherent's "
            "statements include the assignation's record (a savepoint, an INSERT and its "
            "release), written once per assignation. update(), "
            f"Koherent vs pghistory: {k['median'] / pg['median']:.2f}x.",
        ],
        "checks": checks,
    }
