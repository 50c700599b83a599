"""Scenario 5, many tracked models, few touched: the query scenario in a project tracking 64.

The same kept data set as :mod:`benchmarks.scenarios.query` (every operation touched the 10
``Tracked`` models), in a project that also tracks the 50 ``Extra`` models of
``contenders/koherentwide``, whose tables are empty: 64 tracked models (with the trigger
capture contender's) instead of 13. An
assignation's history reads the tables on its record's list of touched models
(:mod:`koherent.records`), so its cost should not move; without the list (records written
before it existed, rows without a record) every tracked table is read.

* ``koherent``: ``list(history_for_assignation(id).rows())``, the list in use;
* ``koherent_13``: the same lookup with Koherent's registry limited to the 13 models of the
  query scenario's project (as if the 50 were not tracked), in the same process;
* ``koherent_scan``: the same with ``RECORD_ASSIGNATIONS`` off, so no list is read: the full
  scan of the 64 tables, the fallback;
* ``reversion``: ``Version.objects.filter(revision_id=id)``, the reference.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from benchmarks import dataset
from benchmarks.harness import Entry, count_queries, interleave
from benchmarks.results import LABELS, group, row_of, target
from benchmarks.scenarios.query import (
    WARM_UP,
    _server_side,
    install_history_function,
    tables_scanned,
)

CONTENDERS = ("koherent", "koherent_13", "koherent_scan", "reversion")
LABELS.setdefault("koherent_13", "Koherent, registry limited to the 13 models")
LABELS.setdefault("koherent_scan", "Koherent, full scan (no list of touched models)")
WIDE_APP = "bench_koherent_wide"
_T = TypeVar("_T")


def _as_if_13(call: Callable[[], _T]) -> _T:
    """``call()`` with Koherent's registry limited to the 13 models of the query scenario's
    project (as if the 50 were not tracked)."""
    import koherent._registry as registry

    everything = registry._all
    base = tuple(t for t in everything() if t.model._meta.app_label != WIDE_APP)
    registry._all = lambda: base  # type: ignore[assignment]
    try:
        return call()
    finally:
        registry._all = everything


def _fetchers(using: str) -> dict[str, Callable[[int], list[Any]]]:
    from django.conf import settings
    from reversion.models import Version

    from koherent.query import history_for_assignation

    def koherent(a: int) -> list[Any]:
        return list(history_for_assignation(dataset.assignation_id(a), using=using).rows())

    def koherent_13(a: int) -> list[Any]:
        return _as_if_13(lambda: koherent(a))

    def koherent_scan(a: int) -> list[Any]:
        conf = settings.KOHERENT
        conf["RECORD_ASSIGNATIONS"] = False
        try:
            return koherent(a)
        finally:
            del conf["RECORD_ASSIGNATIONS"]

    return {
        "koherent": koherent,
        "koherent_13": koherent_13,
        "koherent_scan": koherent_scan,
        "reversion": lambda a: list(
            Version.objects.using(using).filter(revision_id=dataset.revision_id(a))
        ),
    }


def run(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    from koherent._registry import tracked_models

    tracked = len(tracked_models())
    spec = dataset.Spec(
        rows=size["rows"],
        models=size["models"],
        changes_per_assignation=size["changes_per_assignation"],
    )
    built = dataset.ensure(spec, log)
    rng = random.Random(5)
    lookups = [rng.randrange(spec.assignations) for _ in range(size["lookups"])]
    fetchers = _fetchers("default")
    # Each project's migrate: the history function of the 64 tracked models, and of the 13.
    install_history_function("default")
    _as_if_13(lambda: install_history_function("default"))
    returned: dict[str, set[int]] = {c: set() for c in CONTENDERS}
    for fetch in fetchers.values():
        for a in lookups[:WARM_UP]:
            fetch(a)

    def entry(contender: str) -> Entry:
        fetch = fetchers[contender]
        done = [0]

        def one() -> None:
            rows = fetch(lookups[done[0]])
            done[0] += 1
            returned[contender].add(len(rows))

        return Entry.single(contender, one)

    log(f"{len(CONTENDERS)} contenders x {len(lookups)} lookups, {tracked} tracked models")
    stats = interleave([entry(c) for c in CONTENDERS], len(lookups), progress=None)
    queries: dict[str, int] = {}
    tables: dict[str, int] = {}
    server: dict[str, dict[str, float]] = {}
    for contender, fetch in fetchers.items():
        with count_queries() as counter:
            fetch(lookups[0])
        queries[contender] = counter.count
        tables[contender] = tables_scanned(lambda f=fetch: f(lookups[0]), "default")
        server[contender] = _server_side(fetch, lookups[: min(len(lookups), 20)], "default")
    result = group(
        "lookup-wide",
        f"One operation's {spec.changes_per_assignation} changes among {spec.rows:,} history "
        f"rows of {spec.models} models, in a project tracking {tracked} models (Django's "
        "default connection options)",
        {c: stats[c] for c in CONTENDERS},
        baseline="koherent",
        scale=1e3,
        extra={
            c: {
                "queries": queries[c],
                "tables": tables[c],
                "server_ms": round(server[c]["server_ms"], 3),
            }
            for c in CONTENDERS
        },
        columns={
            "queries": "queries",
            "tables": "tables scanned (the server's count)",
            "server_ms": "server ms (plan + run)",
        },
    )
    k, k13, scan, rev = (row_of(result, c) for c in CONTENDERS)
    targets = [
        target(
            f"unchanged by 50 more tracked models: {tracked} tracked within 5 % of 13",
            f"{k['median']:.2f} ms vs {k13['median']:.2f} ms ({k['median'] / k13['median']:.3f}x)",
            k["median"] <= 1.05 * k13["median"],
        ),
        target(
            f"{tracked} tracked models: Koherent at or under django-reversion",
            f"{k['median']:.2f} ms vs {rev['median']:.2f} ms",
            k["median"] <= rev["median"],
        ),
        target(
            f"{tracked} tracked models: Koherent's median at or under 1.2 ms",
            f"{k['median']:.2f} ms",
            k["median"] <= 1.2,
        ),
    ]
    return {
        "title": "Query by assignation, many tracked models",
        "question": (
            "Does an assignation's history cost what it touched, however many models the "
            "project tracks?"
        ),
        "method": (
            f"The query scenario's data set ({spec.rows:,} history rows per contender, "
            f"{spec.models} models, operations of {spec.changes_per_assignation} changes each "
            f"touching every one of the {spec.models} models) in a project that tracks "
            f"{tracked} models: the 13 of the query scenario and 50 more with empty tables. "
            f"{len(lookups)} rounds, each fetching one random operation's changes with every "
            f"contender in random order, after {WARM_UP} warm-up lookups. Compare Koherent's "
            "ratio to django-reversion here with the same ratio in the query scenario (13 "
            "tracked models) of the same run."
        ),
        "sizes": size,
        "unit": "ms per lookup",
        "groups": [result],
        "targets": targets,
        "headlines": [
            {
                "text": f"{tracked} tracked models: the full scan (no list) vs the list",
                "measured": f"{scan['median']:.2f} ms vs {k['median']:.2f} ms "
                f"({tables['koherent_scan']} vs {tables['koherent']} tables read)",
            }
        ],
        "notes": [
            "Where the time goes: client CPU Koherent "
            f"{k['cpu'] or 0:.2f} ms vs django-reversion {rev['cpu'] or 0:.2f} ms; server "
            f"{k['server_ms']:.2f} ms vs {rev['server_ms']:.2f} ms (plan + run; the history "
            "function's own statements are planned once per session): Koherent probes the "
            f"index of each of the {spec.models} touched tables, where reversion reads one "
            "index of one table.",
            "Koherent's history function (created by migrate; koherent.query._function) reads "
            f"the record's list of touched models, then only the {spec.models} touched tables, "
            "each with a statement of its own: the 50 tables this operation did not touch are "
            "not read (the tables column is the server's count of the tables it scanned). The "
            "full scan (RECORD_ASSIGNATIONS off, so no list, and the two-query path) reads all "
            f"{tracked}: what every lookup cost before the list, and what rows without a list "
            "cost on a database without the function.",
            "The data set is built once per size and kept in its own database"
            + (" (built in this run)." if built else " (reused)."),
        ],
        "checks": {
            "rows_returned": {c: sorted(v) for c, v in returned.items()},
            "expected": spec.changes_per_assignation,
            "tracked_models": tracked,
            "tables": tables,
        },
    }
