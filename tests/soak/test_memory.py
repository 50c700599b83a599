"""Memory over long runs: flat resident memory, bounded caches, no context outliving its scope.

A real Celery worker (threads x4, prefork x2) runs tasks and a real uvicorn server serves
requests, each under a fresh assignation (so every one writes a new assignation record and
a new entry of the process's memory of written records). Along the way the resident memory
of the worker (main process and pool processes) or server is read from ``/proc`` after each
batch; after the warm-up (the first fifth) it must stay within 10 % of what it was then.
At the end, inside the process under test (:mod:`tests.soak.introspect`), every cache
Koherent keeps must be within its bound, and the audit contexts alive after a full garbage
collection must be the handful in use right then, not one per task or request.

Negative control: tasks and requests that keep their context on purpose (``kt.leak``,
``/aio/leak/``) are counted by the same check, one per leak.

With ``KOHERENT_SOAK_TRACEMALLOC=1`` the worker runs under tracemalloc, and the figures name
the source lines whose allocations grew most after the warm-up (what a process keeps per task).
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import koherent
from tests.aio.servers import running_server
from tests.celery.harness import Worker, WorkerConfig, wait_for
from tests.soak import support
from tests.soak.celery_audit import log_problems, make_users, running
from tests.soak.introspect import caches
from tests.testapp.models import Order

pytestmark = [
    pytest.mark.processes,
    support.soak,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

POOLS = {
    "threads": WorkerConfig("redis", pool="threads", concurrency=4),
    "prefork": WorkerConfig("redis", pool="prefork", concurrency=2),
}
#: Resident memory samples per run; the first WARM_UP of them are the warm-up.
SAMPLES = 20
WARM_UP = 4
#: Allowed growth of resident memory after the warm-up.
GROWTH = 0.10
#: Contexts alive in an idle process: ``EMPTY`` and the one of the task or request reading
#: them, with room for a pool thread's last one not yet collected.
LIVE_CONTEXTS = 8
LEAKS = 50


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (pool processes), in KiB, from /proc."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        if int(status.parent.name) == pid or int(fields.get("PPid", "0")) == pid:
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total


def sampled(count: int, run_batch: Callable[[int, int], None], pid: int) -> list[int]:
    """Run ``count`` units in SAMPLES batches (``run_batch(start, stop)``), reading the
    resident memory of ``pid`` after each."""
    samples = []
    step = count // SAMPLES
    for k in range(SAMPLES):
        run_batch(k * step, count if k == SAMPLES - 1 else (k + 1) * step)
        samples.append(rss_kib(pid))
    return samples


def growth(samples: list[int]) -> float:
    """How much the largest sample after the warm-up exceeds the one ending it."""
    baseline = samples[WARM_UP - 1]
    return max(samples[WARM_UP:]) / baseline - 1


def over_bound(found: dict[str, list[int | None]]) -> list[str]:
    return [
        f"{name}: {size} > {bound}"
        for name, (size, bound) in found.items()
        if bound is not None and size is not None and size > bound
    ]


def test_every_cache_koherent_keeps_is_listed() -> None:
    """The check reads every cache: each lru_cache of Koherent with a bound, the memory of
    written records, the converted user primary keys (a cache missing here goes unchecked)."""
    found = caches()
    assert "records._committed" in found
    assert "signing._user_pks" in found
    assert "signing._payload" in found
    assert "signing._fields" in found
    assert "query._cached_plan" in found
    import functools
    import importlib
    import pkgutil

    import koherent as package

    bounded = set()
    for module_info in pkgutil.walk_packages(package.__path__, "koherent."):
        try:
            module = importlib.import_module(module_info.name)
        except ImportError:
            continue
        for name, value in vars(module).items():
            if (
                isinstance(value, functools._lru_cache_wrapper)
                and value.__module__ == module.__name__
            ):
                bounded.add(name)
    listed = {name.rsplit(".", 1)[1] for name in found}
    assert bounded <= listed, bounded - listed
    # And the bound check reports an overflow.
    assert over_bound({"x": [11, 10], "y": [3, 10]}) == ["x: 11 > 10"]


@pytest.mark.parametrize("pool", list(POOLS))
def test_a_worker_running_tasks_under_fresh_assignations_keeps_flat_memory(
    pool: str, tmp_path: Path
) -> None:
    tasks = support.size(50_000, 120)
    users = make_users(10)
    rng = random.Random()
    config = POOLS[pool]
    tracing = os.environ.get("KOHERENT_SOAK_TRACEMALLOC") == "1"
    if tracing:
        config = dataclasses.replace(config, env=(("PYTHONTRACEMALLOC", "1"),))
    started = time.monotonic()
    with running(f"memory-{pool}", config, tmp_path) as worker:
        assert worker.process is not None
        pid = worker.process.pid

        def run_batch(start: int, stop: int) -> None:
            for n in range(start, stop):
                with koherent.assignation(user=rng.choice(users), app=f"app-{n % 5}"):
                    worker.tasks.soak.delay(f"m{n}")
            wait_for(
                lambda: Order.history.count() >= stop,
                timeout=120 + (stop - start) * 0.2,
                what=f"{stop} tasks",
            )
            if tracing and stop == tasks // SAMPLES * WARM_UP:  # the allocations' baseline
                introspect_worker(worker, config.concurrency, timeout=600)

        samples = sampled(tasks, run_batch, pid)
        worker.drain()
        snapshots = introspect_worker(worker, config.concurrency, 600 if tracing else 60)
        leaked_before = max(s["live_contexts"] for s in snapshots)
        leaked_after = None
        if pool == "threads":
            # Negative control: tasks keeping their context are seen, one live context each.
            for n in range(LEAKS):
                with koherent.assignation(user=users[0], app="leak"):
                    worker.tasks.leak.delay(f"leak{n}")
            worker.drain()
            leaked_after = introspect_worker(worker, 1)[0]["live_contexts"]
        log = worker.log()
    duration = time.monotonic() - started

    merged = merge(snapshots)
    support.report(
        f"memory-celery-{pool}",
        size=support.size_name(),
        pool=f"{pool} x{POOLS[pool].concurrency}",
        tasks=tasks,
        fresh_assignations=tasks,
        rss_after_warm_up_kib=samples[WARM_UP - 1],
        rss_last_kib=samples[-1],
        rss_max_kib=max(samples[WARM_UP:]),
        growth_after_warm_up_pct=round(growth(samples) * 100, 2),
        processes_introspected=len(snapshots),
        live_contexts_after=leaked_before,
        live_contexts_after_leaking=leaked_after if leaked_after is not None else "-",
        records_cache=f"{merged['records._committed'][0]:,} / {merged['records._committed'][1]:,}",
        caches_over_bound=len(over_bound(merged)),
        duration_s=round(duration, 1),
    )
    for snapshot in snapshots:
        print("\n".join(snapshot["grown_allocations"]))
    assert growth(samples) < GROWTH, samples
    for snapshot in snapshots:
        assert over_bound(snapshot["caches"]) == [], snapshot
        assert snapshot["live_contexts"] <= LIVE_CONTEXTS, snapshot
    if leaked_after is not None:
        assert leaked_after >= LEAKS > LIVE_CONTEXTS
    assert log_problems(log) == []


def introspect_worker(worker: Worker, processes: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Snapshots of the worker's pool processes: ``processes`` calls at once, each holding its
    process a moment so that the next goes to another (one snapshot per process reached)."""
    results = [
        worker.tasks.introspect.delay(0.5 if processes > 1 else 0) for _ in range(processes)
    ]
    by_pid = {}
    for result in results:
        snapshot = result.get(timeout=timeout)
        by_pid[snapshot["pid"]] = snapshot
    return list(by_pid.values())


def merge(snapshots: list[dict[str, Any]]) -> dict[str, list[int | None]]:
    """The largest size of each cache among ``snapshots``."""
    merged: dict[str, list[int | None]] = {}
    for snapshot in snapshots:
        for name, (size, bound) in snapshot["caches"].items():
            if name not in merged or (merged[name][0] or 0) < size:
                merged[name] = [size, bound]
    return merged


def test_a_server_serving_requests_under_fresh_assignations_keeps_flat_memory() -> None:
    requests = support.size(50_000, 200)
    started = time.monotonic()
    with (
        running_server("uvicorn") as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
        ThreadPoolExecutor(4) as pool,
    ):

        def one(n: int) -> int:
            response = client.post(
                "/aio/order/",
                data={"reference": f"s{n}"},
                headers={"X-Assignation-ID": str(uuid.uuid4())},
            )
            return response.status_code

        statuses: list[int] = []

        def run_batch(start: int, stop: int) -> None:
            statuses.extend(pool.map(one, range(start, stop)))

        samples = sampled(requests, run_batch, server.pid)
        snapshot = client.get("/aio/introspect/").json()
        for _ in range(LEAKS):
            client.post("/aio/leak/", headers={"X-Assignation-ID": str(uuid.uuid4())})
        leaked = client.get("/aio/introspect/").json()
        log = server.output()
    duration = time.monotonic() - started

    support.report(
        "memory-uvicorn",
        size=support.size_name(),
        requests=requests,
        fresh_assignations=requests,
        rss_after_warm_up_kib=samples[WARM_UP - 1],
        rss_last_kib=samples[-1],
        rss_max_kib=max(samples[WARM_UP:]),
        growth_after_warm_up_pct=round(growth(samples) * 100, 2),
        live_contexts_after=snapshot["live_contexts"],
        live_contexts_after_leaking=leaked["live_contexts"],
        records_cache=(
            f"{snapshot['caches']['records._committed'][0]:,} / "
            f"{snapshot['caches']['records._committed'][1]:,}"
        ),
        caches_over_bound=len(over_bound(snapshot["caches"])),
        duration_s=round(duration, 1),
    )
    assert statuses == [200] * requests
    assert Order.history.filter(reference__startswith="s").count() == requests
    assert growth(samples) < GROWTH, samples
    assert over_bound(snapshot["caches"]) == [], snapshot
    assert snapshot["live_contexts"] <= LIVE_CONTEXTS, snapshot
    # Negative control: requests keeping their context are seen, one live context each.
    assert leaked["live_contexts"] >= LEAKS > LIVE_CONTEXTS
    assert "Traceback" not in log, log[-4000:]
