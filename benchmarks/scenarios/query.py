"""Scenario 4, query by assignation: one operation's changes, across models, as model rows.

On the kept data set (:mod:`benchmarks.dataset`: the same history in each contender's
tables), fetch every change of one operation:

* Koherent: ``list(koherent.query.history_for_assignation(id).rows())``: the history rows of every
  tracked model, in order;
* django-pghistory: ``Events.objects.filter(pgh_context_id=id)``, its cross-model aggregate;
* django-auditlog: ``LogEntry.objects.filter(cid=id)``;
* django-reversion: ``Version.objects.filter(revision_id=id)`` (the versions, not
  deserialised).

Each round looks up one operation chosen at random (seeded), the same for every contender.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from benchmarks import dataset
from benchmarks.harness import Entry, count_queries, interleave
from benchmarks.results import group, row_of, target

CONTENDERS = ("koherent", "pghistory", "auditlog", "reversion")
WARM_UP = 5


def missing() -> str | None:
    try:
        import koherent.query  # noqa: F401
    except ImportError:
        return "koherent.query is not available"
    return None


#: The two ways of connecting that are measured: Django's defaults (no prepared statements,
#: for connection poolers), and psycopg's prepared statements (``server_side_binding`` with
#: ``prepare_threshold``), the ``prepared`` alias of the benchmark settings.
CONFIGURATIONS = {
    "default": "Django's default connection options (no prepared statements)",
    "prepared": ("prepared statements on (OPTIONS server_side_binding=True, prepare_threshold=5)"),
}


def _fetchers(using: str) -> dict[str, Callable[[int], list[Any]]]:
    from auditlog.models import LogEntry
    from pghistory.models import Events
    from reversion.models import Version

    from koherent.query import history_for_assignation

    return {
        "koherent": lambda a: list(
            history_for_assignation(dataset.assignation_id(a), using=using).rows()
        ),
        "pghistory": lambda a: list(
            Events.objects.using(using).filter(pgh_context_id=dataset.context_id(a))
        ),
        "auditlog": lambda a: list(
            LogEntry.objects.using(using).filter(cid=dataset.assignation_id(a))
        ),
        "reversion": lambda a: list(
            Version.objects.using(using).filter(revision_id=dataset.revision_id(a))
        ),
    }


def _server_side(
    fetch: Callable[[int], list[Any]], lookups: list[int], using: str
) -> dict[str, float]:
    """Median server time (planning + execution, ms) and pages touched per lookup.

    Each statement of a lookup is run again under ``EXPLAIN (ANALYZE, BUFFERS)`` (planned
    afresh: with prepared statements the planning is paid once per connection, not per
    lookup).
    """
    import json
    import statistics

    from django.db import connections

    connection = connections[using]

    times: list[float] = []
    pages: list[float] = []
    statements: list[tuple[str, Any]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, params))
        return execute(sql, params, many, context)

    for a in lookups:
        statements.clear()
        with connection.execute_wrapper(record):
            fetch(a)
        spent = touched = 0.0
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
                raw = cursor.fetchone()[0]
                report = (json.loads(raw) if isinstance(raw, str) else raw)[0]
                spent += report["Planning Time"] + report["Execution Time"]
                plan = report["Plan"]
                touched += plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
        times.append(spent)
        pages.append(touched)
    return {"server_ms": statistics.median(times), "pages": statistics.median(pages)}


_PROFILED = "koherent_profile"


def install_history_function(alias: str) -> str | None:
    """The history function ``migrate`` creates for the tracked models of this process.

    The kept data database was migrated once, for the tracked models of the process that
    built it; a project tracking other models (the wide scenario's 64, this one's 13) runs
    ``migrate`` and gets its own (koherent.query._function).
    """
    from koherent.query import _function

    return _function.install(alias)


def tables_scanned(fetch: Callable[[], Any], using: str) -> int:
    """The tables the server scanned for ``fetch()`` (its count of sequential and index
    scans per table in one transaction): the SQL sent no longer names every table read."""
    from django.db import connections, transaction

    connection = connections[using]
    query = "SELECT relid, seq_scan, COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables"
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(query)
        before = {relid: (seq, idx) for relid, seq, idx in cursor.fetchall()}
        fetch()
        cursor.execute(query)
        after = {relid: (seq, idx) for relid, seq, idx in cursor.fetchall()}
    return sum(1 for relid, scans in after.items() if before.get(relid, (0, 0)) != scans)


def _server_profile(lookups: list[int], using: str, repeat: int = 5) -> dict[str, float]:
    """Where the server's time of Koherent's two-query lookup goes (ms, medians; Django's
    defaults): the path of a database without the history function.

    Its UNION ALL statement is sent, on the same connection and for the same
    assignations, four ways: ``SELECT 1`` (one round trip, nothing else), ``PREPARE`` and
    ``DEALLOCATE`` in one message (parsed and analysed, not planned), ``EXPLAIN`` (parsed and
    planned, not run) and as itself (run, its rows sent back). The differences give parsing,
    planning and running. The same is done for a narrow copy of the statement that reads
    only ``history_id`` from the same tables, to show what the width of the rows costs.
    """
    import statistics
    import time

    from django.db import connections

    from koherent._registry import tracked_models
    from koherent.query import history_for_assignation
    from koherent.query._page import _first_page_sql
    from koherent.records import touched_models

    connection = connections[using]
    first = dataset.assignation_id(lookups[0])
    touched = touched_models(first, using) or frozenset()
    group = tuple(t for t in tracked_models(using) if t.label in touched)
    limit = history_for_assignation(first, using=using).batch_size + 1
    wide = _first_page_sql(group, using, connection.vendor, limit)
    wide_params = [first] * len(group)
    quote = connection.ops.quote_name
    tables = [t.history_model._meta.db_table for t in group]
    narrow = " UNION ALL ".join(
        f"SELECT history_id FROM {quote(t)} WHERE assignation_id = %s" for t in tables
    )

    def timed(cursor: Any, sql: str, params: list[Any]) -> float:
        start = time.perf_counter()
        cursor.execute(sql, params)
        if cursor.description is not None:
            cursor.fetchall()
        return (time.perf_counter() - start) * 1e3

    samples: dict[str, list[float]] = {}
    with connection.cursor() as cursor:
        for _ in range(repeat):
            for a in lookups:
                value = dataset.assignation_id(a)
                for name, sql, count in (
                    ("wide", wide, len(wide_params)),
                    ("narrow", narrow, len(tables)),
                ):
                    params = [value] * count
                    for step, text in (
                        ("trip", "SELECT 1"),
                        ("parse", f"PREPARE {_PROFILED} AS {sql}; DEALLOCATE {_PROFILED}"),
                        ("plan", f"EXPLAIN {sql}"),
                        ("run", sql),
                    ):
                        got = timed(cursor, text, [] if step == "trip" else params)
                        samples.setdefault(f"{name}_{step}", []).append(got)
    m = {key: statistics.median(values) for key, values in samples.items()}
    out: dict[str, float] = {"tables": float(len(tables))}
    for name in ("wide", "narrow"):
        out[f"{name}_parse"] = max(m[f"{name}_parse"] - m[f"{name}_trip"], 0.0)
        out[f"{name}_plan"] = max(m[f"{name}_plan"] - m[f"{name}_parse"], 0.0)
        out[f"{name}_run"] = max(m[f"{name}_run"] - m[f"{name}_plan"], 0.0)
        out[f"{name}_total"] = m[f"{name}_run"]
    out["trip"] = m["wide_trip"]
    return out


def run(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    spec = dataset.Spec(
        rows=size["rows"],
        models=size["models"],
        changes_per_assignation=size["changes_per_assignation"],
    )
    built = dataset.ensure(spec, log)
    for alias in CONFIGURATIONS:
        install_history_function(alias)
    rng = random.Random(4)
    lookups = [rng.randrange(spec.assignations) for _ in range(size["lookups"])]

    # Every contender in both configurations, interleaved in one run: 8 entries per round.
    fetchers = {
        (config, contender): fetch
        for config in CONFIGURATIONS
        for contender, fetch in _fetchers(config).items()
    }
    returned: dict[str, set[int]] = {c: set() for c in CONTENDERS}
    for fetch in fetchers.values():
        for a in lookups[:WARM_UP]:
            fetch(a)

    def entry(config: str, contender: str) -> Entry:
        fetch = fetchers[(config, contender)]
        done = [0]

        def one() -> None:
            rows = fetch(lookups[done[0]])
            done[0] += 1
            returned[contender].add(len(rows))

        return Entry.single(f"{config}:{contender}", one)

    log(
        f"{len(CONTENDERS)} contenders x {len(CONFIGURATIONS)} configurations x "
        f"{len(lookups)} lookups"
    )
    stats = interleave(
        [entry(config, c) for config in CONFIGURATIONS for c in CONTENDERS],
        len(lookups),
        progress=None,
    )

    groups = []
    rows: dict[str, dict[str, Any]] = {}
    for config, description in CONFIGURATIONS.items():
        queries = {}
        server = {}
        for contender in CONTENDERS:
            fetch = fetchers[(config, contender)]
            with count_queries(config) as counter:
                fetch(lookups[0])
            queries[contender] = counter.count
            server[contender] = _server_side(fetch, lookups[: min(len(lookups), 20)], config)
        result = group(
            f"lookup-{config}",
            f"One operation's {spec.changes_per_assignation} changes among {spec.rows:,} "
            f"history rows of {spec.models} models: {description}",
            {c: stats[f"{config}:{c}"] for c in CONTENDERS},
            baseline="koherent",
            scale=1e3,
            extra={
                c: {
                    "queries": queries[c],
                    "server_ms": round(server[c]["server_ms"], 3),
                    "pages": int(server[c]["pages"]),
                }
                for c in CONTENDERS
            },
            columns={
                "queries": "queries",
                "server_ms": "server ms (plan + run, planned afresh)",
                "pages": "pages touched",
            },
        )
        groups.append(result)
        rows[config] = {c: row_of(result, c) for c in CONTENDERS}
    k = rows["default"]["koherent"]
    rev = rows["default"]["reversion"]
    from koherent._registry import tracked_models

    tracked_count = len(tracked_models())
    targets = []
    for config, label in (("default", "Django's defaults"), ("prepared", "prepared statements")):
        mine = rows[config]["koherent"]
        targets.append(
            target(
                f"{label}: Koherent's median at or under 1.2 ms",
                f"{mine['median']:.2f} ms",
                mine["median"] <= 1.2,
            )
        )
        for peer in ("pghistory", "auditlog", "reversion"):
            p = rows[config][peer]
            targets.append(
                target(
                    f"{label}: Koherent ahead of {p['label']}",
                    f"{mine['median']:.2f} ms vs {p['median']:.2f} ms",
                    mine["median"] < p["median"],
                )
            )
    kp = rows["prepared"]["koherent"]
    profile = _server_profile(lookups[: min(len(lookups), 20)], "default")
    return {
        "title": "Query by assignation",
        "question": "How long does fetching every change of one operation take, at scale?",
        "method": (
            f"{spec.rows:,} history rows per contender ({spec.models} models, "
            f"{spec.assignations:,} operations of {spec.changes_per_assignation} changes, "
            f"{spec.objects_per_model:,} objects per model, written with COPY in time order, "
            f"then VACUUM ANALYZE). {len(lookups)} rounds, each fetching one random "
            f"operation's changes with every contender in random order, after {WARM_UP} "
            "warm-up lookups."
        ),
        "sizes": size,
        "unit": "ms per lookup",
        "groups": groups,
        "targets": targets,
        "notes": [
            "Where the time goes: Koherent keeps one history table per tracked model (the "
            f"{tracked_count} of this project, {spec.models} of them with history). A lookup "
            "is one call of the history function `migrate` created "
            "(koherent.query._function): it reads the record's list of the models the "
            f"operation touched (all {spec.models} here), then probes the (assignation_id, "
            "history_date, history_id) index of each of their tables with a statement of its "
            "own, which PostgreSQL plans once per connection and keeps (a bitmap heap scan "
            f"each: {k['pages']} pages per lookup, against {rev['pages']} for reversion's one "
            "indexed table, where an operation's rows lie together). Server time "
            f"{k['server_ms']:.2f} ms against {rev['server_ms']:.2f} ms for reversion; client "
            f"CPU {k['cpu']:.2f} ms to build {spec.changes_per_assignation} typed rows against "
            f"{rev['cpu']:.2f} ms for reversion, whose rows keep their serialized data as text. "
            "With prepared statements Koherent's median is "
            f"{kp['median']:.2f} ms (the function's statements are planned once per connection "
            "either way).",
            "Without the function (connections that do not persist, HISTORY_FUNCTION "
            "'never', or before migrate created it) a lookup is two queries: the list, then "
            "one UNION ALL over the touched tables, which PostgreSQL parses and plans on every "
            "lookup with Django's defaults. The profile below is of that UNION ALL.",
            "Profile of the server's part of the two-query path (Django's defaults; its "
            "UNION ALL sent four "
            "ways on one connection for the same 20 assignations, medians; `_server_profile` in "
            "benchmarks/scenarios/query.py): one round trip "
            f"{profile['trip']:.2f} ms; parsing and analysis {profile['wide_parse']:.2f} ms; "
            f"planning {profile['wide_plan']:.2f} ms; running it and sending the rows back "
            f"{profile['wide_run']:.2f} ms. The same UNION ALL over the same "
            f"{int(profile['tables'])} tables reading only history_id: parsing "
            f"{profile['narrow_parse']:.2f} ms, planning {profile['narrow_plan']:.2f} ms. "
            "PostgreSQL's parse analysis and planning grow with every column of every branch "
            "(each branch names the row's columns, each is resolved, typed and given a width "
            "estimate), so a lookup that brings whole rows of ten tables back costs more to "
            "prepare than to run; reversion's one table and one condition cost neither. The "
            "history function and prepared statements each pay it once per connection.",
            "Django turns psycopg's prepared statements off by default so that connection "
            "poolers in transaction mode keep working; deployments connecting directly (or "
            "through a pooler that supports them) can turn them on (docs/undo.md).",
            "Each contender returns its own model rows: Koherent the typed history rows, "
            "pghistory Events rows (JSON data and diff), auditlog LogEntry rows, reversion "
            "Version rows (their serialized data left as text).",
            "The data set is built once per size and kept in its own database"
            + (" (built in this run)." if built else " (reused)."),
        ],
        "checks": {
            "server_profile_ms": {k: round(v, 3) for k, v in profile.items()},
            "rows_returned": {c: sorted(v) for c, v in returned.items()},
            "expected": spec.changes_per_assignation,
        },
    }
