"""Timing contenders fairly: interleaved samples, medians, ratios, query counts.

A scenario hands :func:`interleave` its *entries* (one per contender, or per contender and
mode). Each round runs every entry once, in a fresh random order (seeded, so runs are
repeatable), so a slow spell of the shared machine lands on all contenders alike instead of on
whichever happened to run then. Each run is one *sample*; the figure reported is the median of
the samples, per operation, with the quartiles beside it. Set-up and clean-up of each sample
run outside the timed section.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection


@dataclass
class Step:
    """One timed part of an entry: ``run()`` does ``ops`` operations (or returns how many)."""

    name: str
    run: Callable[[], int | None]
    ops: int = 1
    #: Untimed preparation run just before this step.
    before: Callable[[], None] | None = None


@dataclass
class Entry:
    """One contender (or contender and mode): its steps run in order, each timed on its own.

    Stats are keyed ``name`` for an unnamed single step, else ``name/step``.
    """

    name: str
    steps: list[Step]
    #: Untimed clean-up after the last step.
    after: Callable[[], None] | None = None

    @classmethod
    def single(cls, name: str, run: Callable[[], int | None], ops: int = 1) -> Entry:
        return cls(name, [Step("", run, ops)])

    def stat_keys(self) -> list[str]:
        return [self.name if not step.name else f"{self.name}/{step.name}" for step in self.steps]


@dataclass
class Stats:
    """Per-operation timings of one entry, in seconds."""

    samples: list[float] = field(default_factory=list)
    #: The benchmark process's own CPU time per operation, for each sample (when measured).
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[0], q[2]

    def as_dict(self, scale: float) -> dict[str, Any]:
        q1, q3 = self.quartiles
        return {
            "median": self.median * scale,
            "q1": q1 * scale,
            "q3": q3 * scale,
            "min": min(self.samples) * scale,
            "max": max(self.samples) * scale,
            "samples": len(self.samples),
            "cpu": statistics.median(self.cpu) * scale if self.cpu else None,
        }


def interleave(
    entries: Sequence[Entry],
    rounds: int,
    *,
    seed: int = 20250101,
    between_rounds: Callable[[int], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Stats]:
    """Run every entry once per round, in a shuffled order; per-operation seconds per entry.

    ``between_rounds(r)`` runs (untimed) after round ``r``, e.g. to empty tables.
    """
    rng = random.Random(seed)
    stats = {key: Stats() for entry in entries for key in entry.stat_keys()}
    order = list(entries)
    for r in range(rounds):
        rng.shuffle(order)
        for entry in order:
            for key, step in zip(entry.stat_keys(), entry.steps, strict=True):
                if step.before is not None:
                    step.before()
                gc.collect()
                cpu_started = time.process_time()
                started = time.perf_counter()
                done = step.run()
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
                ops = max(step.ops if done is None else done, 1)
                stats[key].samples.append(elapsed / ops)
                stats[key].cpu.append(cpu / ops)
            if entry.after is not None:
                entry.after()
        if between_rounds is not None:
            between_rounds(r)
        if progress is not None:
            progress(f"round {r + 1}/{rounds}")
    return stats


class QueryCounter:
    """Counts the statements Django sends (``connection.execute_wrapper``), by kind."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.statements.append(sql)
        return execute(sql, params, many, context)

    @property
    def count(self) -> int:
        return len(self.statements)

    def by_kind(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for sql in self.statements:
            word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
            kinds[word] = kinds.get(word, 0) + 1
        return kinds


@contextmanager
def count_queries(using: str = "default") -> Iterator[QueryCounter]:
    """Count the statements sent to the database inside the block."""
    from django.db import connections

    counter = QueryCounter()
    with connections[using].execute_wrapper(counter):
        yield counter


def ratio(value: float, reference: float) -> float | None:
    return None if reference <= 0 else value / reference


def truncate(tables: Sequence[str]) -> None:
    """Empty ``tables`` and restart their id sequences (untimed clean-up between samples)."""
    if not tables:
        return
    quoted = ", ".join(connection.ops.quote_name(t) for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


def benchmark_tables() -> list[str]:
    """Every table the contenders write: their apps' and the libraries' shared ones."""
    from django.apps import apps

    labels = {"auditlog", "reversion", "pghistory", "koherent"}
    return sorted(
        model._meta.db_table
        for model in apps.get_models()
        if (model._meta.app_label.startswith("bench_") or model._meta.app_label in labels)
        and model._meta.managed
        and not model._meta.proxy
    )


def reset_database() -> None:
    """Empty every benchmark table (and forget Koherent's cached assignation records)."""
    from koherent import records

    truncate(benchmark_tables())
    records.clear_cache()
