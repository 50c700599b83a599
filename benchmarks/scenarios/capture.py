"""Scenario 7, trigger capture: what it costs to have PostgreSQL write Koherent's history.

Koherent with ``HistoryField(capture="trigger")`` ("koherent" in these tables) against plain
Django, django-simple-history alone, Koherent's default signal capture and django-pghistory
(whose triggers write its events the same way):

* **saves**, autocommit and inside a transaction: new rows saved one by one under each
  library's context;
* **bulk_create** of many rows, and **queryset.update()** of all of them: plain Django, trigger
  capture and pghistory (signal-based libraries see neither);
* **the hand-off** on its own: one single-row ``UPDATE`` of a trigger-captured table in
  autocommit, with the context handed over, with no context to hand over, and with Koherent's
  execute wrapper taken off the connection (the trigger still runs and finds nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from itertools import count
from typing import Any

from django.apps import apps
from django.db import connection, transaction
from django.db.models import F

from benchmarks import contexts
from benchmarks.harness import Entry, Step, count_queries, interleave, reset_database
from benchmarks.results import group, row_of, target

SAVERS = ("plain", "simplehistory", "koherent", "koherent-signal", "pghistory")
BULK = ("plain", "koherent", "pghistory")
HANDOFF = ("koherent", "koherent-nocontext", "no-handoff")
_names = count()

_APPS = {
    "plain": "bench_plain",
    "simplehistory": "bench_simplehistory",
    "koherent": "bench_koherenttrigger",
    "koherent-signal": "bench_koherent",
    "pghistory": "bench_pghistory",
}


def _model(contender: str) -> Any:
    return apps.get_model(_APPS[contender], "Row")


def _opener(contender: str, user: Any) -> Callable[[], Any]:
    return {
        "plain": nullcontext,
        "simplehistory": lambda: contexts.simple_history_context(user),
        "koherent": lambda: contexts.koherent_context(user),
        "koherent-signal": lambda: contexts.koherent_context(user),
        "pghistory": lambda: contexts.pghistory_context(user),
    }[contender]


def _history_rows(contender: str) -> int:
    if contender == "plain":
        return 0
    if contender == "pghistory":
        return int(apps.get_model("bench_pghistory", "RowEvent").objects.count())
    return int(_model(contender).history.count())


def _unstamped(contender: str) -> int:
    """History rows of ``contender`` without the context's user (or grouping id)."""
    if contender == "plain":
        return 0
    if contender == "pghistory":
        events = apps.get_model("bench_pghistory", "RowEvent").objects
        return int(events.filter(pgh_context__isnull=True).count())
    history = _model(contender).history
    if contender == "simplehistory":
        return int(history.filter(history_user__isnull=True).count())
    return int(history.filter(assignation_id__isnull=True).count())


@contextmanager
def _without_handoff() -> Iterator[None]:
    """Koherent's execute wrapper taken off the connection for the block."""
    from koherent._handoff import hand_off

    connection.ensure_connection()
    wrappers = connection.execute_wrappers
    index = wrappers.index(hand_off)
    wrappers.pop(index)
    try:
        yield
    finally:
        wrappers.insert(index, hand_off)


def _saves(size: dict[str, Any], user: Any, log: Callable[[str], None]) -> list[dict[str, Any]]:
    chunk, repetitions = size["chunk"], size["repetitions"]
    per_repetition = max(size["saves"] // chunk, 1)

    def runner(contender: str, atomic: bool) -> Callable[[], None]:
        model = _model(contender)
        opener = _opener(contender, user)

        def run() -> None:
            with opener(), transaction.atomic() if atomic else nullcontext():
                for _ in range(chunk):
                    i = next(_names)
                    model(name=f"row {i}", value=i).save()

        return run

    modes = (("autocommit", False), ("transaction", True))
    entries = [
        Entry.single(f"{c}/{mode}", runner(c, atomic), ops=chunk)
        for c in SAVERS
        for mode, atomic in modes
    ]
    checks: list[dict[str, Any]] = []

    def between_rounds(r: int) -> None:
        if (r + 1) % per_repetition:
            return
        expected = per_repetition * chunk * len(modes)
        checks.append(
            {
                "expected": expected,
                "history_rows": {c: _history_rows(c) for c in SAVERS},
                "unstamped": {c: _unstamped(c) for c in SAVERS},
            }
        )
        reset_database()
        contexts.bench_user()

    log(f"saves: {len(entries)} entries x {per_repetition * repetitions} rounds of {chunk}")
    stats = interleave(
        entries, per_repetition * repetitions, between_rounds=between_rounds, progress=log
    )
    queries: dict[tuple[str, str], float] = {}
    for c in SAVERS:
        for mode, atomic in modes:
            model = _model(c)
            with _opener(c, user)(), transaction.atomic() if atomic else nullcontext():
                model(name="warm", value=0).save()
                with count_queries() as counter:
                    for i in range(10):
                        model(name=f"q {i}", value=i).save()
            queries[c, mode] = counter.count / 10
    reset_database()
    contexts.bench_user()
    groups = [
        group(
            f"save-{mode}",
            title,
            {c: stats[f"{c}/{mode}"] for c in SAVERS},
            baseline="plain",
            reference="simplehistory",
            extra={c: {"queries": round(queries[c, mode], 2)} for c in SAVERS},
            columns={"queries": "statements per save"},
        )
        for (mode, _), title in zip(
            modes,
            (
                "save() in autocommit: each save on its own",
                "save() inside a transaction: the saves of a sample in one atomic block",
            ),
            strict=True,
        )
    ]
    return [{"groups": groups, "checks": checks}]


def _bulk(size: dict[str, Any], user: Any, log: Callable[[str], None]) -> dict[str, Any]:
    rows, repetitions = size["rows"], size["bulk_repetitions"]
    checks: dict[str, list[dict[str, int]]] = {c: [] for c in BULK}

    def entry(contender: str) -> Entry:
        model = _model(contender)
        opener = _opener(contender, user)
        objs: list[Any] = []

        def new_objects() -> None:
            objs[:] = [model(name=f"row {i}", value=i) for i in range(rows)]

        def create() -> None:
            with opener():
                model.objects.bulk_create(objs)

        def update() -> None:
            with opener():
                model.objects.update(value=F("value") + 1)

        def check_and_empty() -> None:
            checks[contender].append(
                {"history_rows": _history_rows(contender), "unstamped": _unstamped(contender)}
            )
            reset_database()
            contexts.bench_user()

        return Entry(
            contender,
            [
                Step("bulk_create", create, ops=rows, before=new_objects),
                Step("update", update, ops=rows),
            ],
            after=check_and_empty,
        )

    entries = [entry(c) for c in BULK]
    log(f"bulk: {len(entries)} contenders x {repetitions} rounds of {rows:,} rows")
    stats = interleave(entries, repetitions, progress=log)
    groups = [
        group(
            step,
            title,
            {c: stats[f"{c}/{step}"] for c in BULK},
            baseline="plain",
        )
        for step, title in (
            ("bulk_create", f"Model.objects.bulk_create() of {rows:,} rows"),
            ("update", f"queryset.update() of {rows:,} rows (one field, every row)"),
        )
    ]
    return {"groups": groups, "checks": checks, "expected": 2 * rows}


def _handoff(size: dict[str, Any], user: Any, log: Callable[[str], None]) -> dict[str, Any]:
    statements = size["statements"]
    model = _model("koherent")
    target_row = model.objects.create(name="handoff", value=0)
    update = model.objects.filter(pk=target_row.pk)

    def runner(contender: str) -> Callable[[], None]:
        def run() -> None:
            if contender == "koherent-nocontext":
                block: Any = nullcontext()
            else:
                block = contexts.koherent_context(user)
            with block, _without_handoff() if contender == "no-handoff" else nullcontext():
                for _ in range(statements):
                    update.update(value=F("value") + 1)

        return run

    entries = [Entry.single(c, runner(c), ops=statements) for c in HANDOFF]
    log(f"hand-off: {len(entries)} entries x 9 rounds of {statements} statements")
    stats = interleave(entries, 9, progress=log)
    rows = model.history.filter(history_type="~")
    checks = {
        "updates": rows.count(),
        "stamped": rows.filter(assignation_id__isnull=False).count(),
        "expected_stamped": 9 * statements,
    }
    reset_database()
    contexts.bench_user()
    measured = group(
        "handoff",
        f"One single-row UPDATE of a trigger-captured table, autocommit ({statements:,} per "
        "sample)",
        {c: stats[c] for c in HANDOFF},
        baseline="no-handoff",
    )
    return {"groups": [measured], "checks": checks}


def _profile(size: dict[str, Any], user: Any) -> dict[str, float]:
    """Where a save's time goes inside a transaction (µs, medians of 5 rounds).

    The statements one save sends are recorded through Django, then replayed on the driver's
    own cursor in an open transaction: server time and round trip without Django or the
    hand-off. The hand-off is timed on its own (the comment Koherent sends, and one
    ``set_config`` call, against a bare ``SELECT 1``), and so is encoding the context in
    Python, which every statement does.
    """
    import statistics
    import time
    import timeit

    from koherent._handoff import context_comment, encoded_context

    calls = max(min(size["statements"], 300), 5)
    sent: dict[str, list[str]] = {}
    for contender in ("plain", "koherent", "pghistory"):
        model = _model(contender)
        statements: list[str] = []

        def record(
            execute: Any,
            sql: str,
            params: Any,
            many: bool,
            context: Any,
            statements: list[str] = statements,
        ) -> Any:
            statements.append(connection.ops.compose_sql(sql, params) if params else sql)
            return execute(sql, params, many, context)

        with transaction.atomic(), _opener(contender, user)():
            model(name="warm", value=0).save()
            with connection.execute_wrapper(record):
                model(name="profiled", value=0).save()
            transaction.set_rollback(True)
        sent[contender] = statements
    with transaction.atomic(), contexts.koherent_context(user):
        comment = context_comment(encoded_context())
        encode_us = min(
            timeit.repeat(lambda: context_comment(encoded_context()), number=calls, repeat=5)
        )
        transaction.set_rollback(True)
    sent["comment"] = [comment + "SELECT 1"]
    sent["one setting"] = ["SELECT set_config('koherent.bench', E'x', true); SELECT 1"]
    sent["bare"] = ["SELECT 1"]
    connection.ensure_connection()
    cursor = connection.connection.cursor()
    spent: dict[str, list[float]] = {name: [] for name in sent}
    try:
        cursor.execute("BEGIN")
        for _ in range(5):
            for name, statements in sent.items():
                started = time.perf_counter()
                for _ in range(calls):
                    for sql in statements:
                        cursor.execute(sql)
                        while cursor.nextset():
                            pass
                spent[name].append((time.perf_counter() - started) / calls * 1e6)
    finally:
        cursor.execute("ROLLBACK")
        cursor.close()
    result = {name: statistics.median(values) for name, values in spent.items()}
    result["encode"] = encode_us / calls * 1e6
    return result


def _comment_cost(profile: dict[str, float]) -> str:
    """The comment's cost over a bare ``SELECT``, in words (below a microsecond it is noise)."""
    cost = profile["comment"] - profile["bare"]
    if cost >= 1:
        return f"{cost:.0f} µs over a bare SELECT"
    return f"nothing measurable over a bare SELECT ({cost:.0f} µs in this run)"


def run(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    reset_database()
    user = contexts.bench_user()
    saves = _saves(size, user, log)[0]
    bulk = _bulk(size, user, log)
    handoff = _handoff(size, user, log)
    profile = _profile(size, user)  # writes nothing: its saves are rolled back
    groups = [*saves["groups"], *bulk["groups"], *handoff["groups"]]

    auto, inside, create, update, handed = groups
    k_auto, k_in = row_of(auto, "koherent"), row_of(inside, "koherent")
    pg_auto, pg_in = row_of(auto, "pghistory"), row_of(inside, "pghistory")
    targets = [
        target(
            "autocommit: trigger capture at most 0.5x simple-history alone",
            f"{k_auto['ratio_reference']:.3f}x simple-history",
            k_auto["ratio_reference"] <= 0.5,
        ),
        target(
            "autocommit: trigger capture at or under django-pghistory",
            f"{k_auto['median'] / pg_auto['median']:.3f}x pghistory",
            k_auto["median"] <= pg_auto["median"],
        ),
        target(
            "inside a transaction: trigger capture at or under django-pghistory",
            f"{k_in['median'] / pg_in['median']:.3f}x pghistory",
            k_in["median"] <= pg_in["median"],
        ),
    ]
    for g in (create, update):
        k, pg = row_of(g, "koherent"), row_of(g, "pghistory")
        targets.append(
            target(
                f"{g['name']}: trigger capture at or under django-pghistory",
                f"{k['median'] / pg['median']:.3f}x pghistory, {k['ratio']:.2f}x plain Django",
                k["median"] <= pg["median"],
            )
        )
    with_context = row_of(handed, "koherent")
    no_context = row_of(handed, "koherent-nocontext")
    cost = with_context["median"] - row_of(handed, "no-handoff")["median"]
    headlines = [
        {
            "text": "the context hand-off on its own, per statement",
            "measured": f"{cost:.1f} µs ({with_context['ratio']:.3f}x the bare statement; "
            f"{no_context['ratio']:.3f}x with no context to hand over)",
        }
    ]
    return {
        "title": "Trigger capture",
        "question": "What does having PostgreSQL write Koherent's history cost?",
        "method": (
            f"Saves: {size['saves']:,} new rows per contender, mode and repetition, in "
            f"samples of {size['chunk']:,} interleaved in random order, {size['repetitions']} "
            f"repetitions. Bulk: bulk_create() of {size['rows']:,} rows then update() of all "
            f"of them, {size['bulk_repetitions']} interleaved rounds. Hand-off: "
            f"{size['statements']:,} single-row UPDATEs per sample, 9 interleaved rounds."
        ),
        "sizes": size,
        "unit": "µs per row or statement",
        "groups": groups,
        "targets": targets,
        "headlines": headlines,
        "notes": [
            "'Koherent' is Koherent with HistoryField(capture=\"trigger\"): triggers write the "
            "simple-history rows in the statement of the change (statement-level for inserts "
            "and deletes, row-level for updates), like pghistory's row-level triggers; the "
            "context reaches them in a comment leading that statement (a transaction-local "
            "setting for a statement longer than 8 KB). 'Koherent, signal capture' is the "
            "default mode (one transaction per "
            "save, the history row written by simple-history's post_save).",
            "Signal-based libraries see neither bulk_create() nor update(): they are not in "
            "the bulk tables.",
            "Where the time goes against django-pghistory (per save, inside a transaction): "
            f"client CPU {k_in['cpu']:.0f} vs {pg_in['cpu']:.0f} µs; replayed on the driver's "
            "cursor in an open transaction (server and round trip, no Django), a save's "
            f"statements take {profile['koherent']:.0f} µs for Koherent against "
            f"{profile['pghistory']:.0f} µs for pghistory ({profile['plain']:.0f} µs with no "
            f"history). The context's comment costs {_comment_cost(profile)}, where a "
            f"set_config prefix costs {profile['one setting'] - profile['bare']:.0f} µs "
            "(pghistory sends its two settings in one); encoding the context takes "
            f"{profile['encode']:.1f} µs of Python per statement. The "
            "trigger then parses the comment, checks each value (an id pattern, a user that "
            "exists) and writes the wider simple-history row (five indexes against "
            "pghistory's three). In autocommit each statement is also a transaction of its "
            "own: its commit is most of the difference with a transaction, and the record "
            "statement is skipped once the connection noted the assignation's record.",
        ],
        "profile": {name: round(value, 1) for name, value in profile.items()},
        "checks": {
            "saves": saves["checks"],
            "bulk": bulk["checks"],
            "bulk_expected": bulk["expected"],
            "handoff": handoff["checks"],
        },
    }
