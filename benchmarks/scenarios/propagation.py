"""Scenario 3, propagation: what carrying the context through Celery costs, per message.

Contenders: no propagation, Koherent (a signed header, verified in the worker), and
django-guid's Celery integration (an unsigned correlation id).

* **End to end**: ``tasks`` no-op tasks published through the local Redis and run by a real
  worker (``celery worker -P solo``, one per contender, each on its own queue, started before
  the measurements), then one task that reports, in a Redis list, which context it saw. A
  sample is the time from the first publish to that report, per task. Each contender
  publishes under its own context; "no propagation" publishes under both and shows that
  nothing arrives without hooks.
* **Hooks in process**: the per-message cost of each library's receivers, one message at a
  time: publish (``before_task_publish`` with a protocol-2 header) under the publisher's
  context, leave that context, then ``task_prerun`` and ``task_postrun`` around the pushed
  task request, as a worker does. Measured twice, interleaved: *through Celery's signals*
  (``Signal.send`` with only that library's receivers connected, minus the same sends with no
  receivers: signal dispatch included) and *receivers called directly* (minus calling a no-op:
  signal dispatch excluded). Thread CPU time (``time.thread_time_ns``), so other processes on a
  shared machine do not count; the heap is frozen (``gc.freeze()``) first, so a garbage
  collection scans what the loop allocates, not the whole Django process. End-to-end
  throughput on a shared machine varies by several per cent between runs, so these are the
  figures that decide.
* **Batch (the method of earlier reports)**: every message of a round published first, kept in
  a list, then all run; wall clock, heap not frozen. Kept to show why it reported several
  times more: the list of kept messages makes the collector run full collections of the whole
  process inside the timed calls (the time it spent there is reported per message).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks import contexts, propagation
from benchmarks.harness import Entry, Stats, interleave
from benchmarks.results import group, row_of, target

ROOT = Path(__file__).resolve().parents[2]
MODES = propagation.MODES
READY_TIMEOUT = 120.0
BATCH_TIMEOUT = 600.0


def missing() -> str | None:
    try:
        import koherent.celery  # noqa: F401
    except ImportError:
        return "koherent.celery is not available"
    return None


class Workers:
    """One ``celery worker`` per mode, each on a queue of its own; stopped on exit."""

    def __init__(self) -> None:
        self.run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.queues = {mode: f"koherent_bench.{self.run_id}.{mode}" for mode in MODES}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = Path(tempfile.mkdtemp(prefix="koherent-bench-workers-"))

    def __enter__(self) -> Workers:
        for mode, queue in self.queues.items():
            env = {**os.environ, "KOHERENT_BENCH_PROPAGATION": mode, "PYTHONPATH": str(ROOT)}
            command = [
                sys.executable, "-m", "celery", "-A", "benchmarks.celery_app", "worker",
                "-P", "solo", "-Q", queue, "-n", f"{queue}@%h", "-l", "WARNING",
                "--without-heartbeat", "--without-gossip", "--without-mingle",
            ]  # fmt: skip
            with open(self.logs / f"{mode}.log", "wb") as log:
                self.processes[mode] = subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        client = propagation.redis()
        for queue in self.queues.values():
            client.delete(queue)

    def log_of(self, mode: str) -> str:
        return (self.logs / f"{mode}.log").read_text(errors="replace")[-3000:]

    def wait(self, key: str, mode: str, timeout: float) -> dict[str, Any]:
        """The report the worker of ``mode`` pushed to ``key``."""
        import json

        deadline = time.monotonic() + timeout
        client = propagation.redis()
        while True:
            popped = client.blpop([key], timeout=1)
            if popped is not None:
                return dict(json.loads(popped[1]))
            if self.processes[mode].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the {mode} worker did not report (exit {self.processes[mode].poll()}):\n"
                    + self.log_of(mode)
                )


def _publishing_context(mode: str, user: Any) -> tuple[ExitStack, dict[str, Any]]:
    """Enter the context ``mode`` publishes under; what the worker should then see."""
    from django_guid import clear_guid, set_guid

    import koherent

    stack = ExitStack()
    expected: dict[str, Any] = {"koherent": None, "guid": None}
    if mode in ("koherent", "none"):
        ctx = stack.enter_context(koherent.assignation(user=user, app="bench"))
        if mode == "koherent":
            expected["koherent"] = ctx.assignation_id
    if mode in ("guid", "none"):
        guid = uuid.uuid4().hex
        set_guid(guid)
        stack.callback(clear_guid)
        if mode == "guid":
            expected["guid"] = guid
    return stack, expected


def _end_to_end(
    tasks: int, repetitions: int, user: Any, log: Callable[[str], None]
) -> tuple[dict[str, Stats], dict[str, Any]]:
    from benchmarks.celery_app import app, noop, report

    seen: dict[str, list[bool]] = {mode: [] for mode in MODES}
    publish: dict[str, list[float]] = {mode: [] for mode in MODES}
    with Workers() as workers:
        started = time.monotonic()
        for mode in MODES:  # ready, and warm: the first task of each worker
            key = f"{workers.queues[mode]}.ready"
            report.apply_async(args=[key], queue=workers.queues[mode])
            workers.wait(key, mode, READY_TIMEOUT)
        log(f"workers ready in {time.monotonic() - started:.1f} s")

        def entry(mode: str) -> tuple[Entry, Callable[..., None]]:
            queue = workers.queues[mode]

            def batch(n: int = tasks) -> None:
                key = f"{queue}.done.{uuid.uuid4().hex}"
                propagation.select(mode, app)
                stack, expected = _publishing_context(mode, user)
                with stack:
                    t0 = time.perf_counter()
                    for _ in range(n):
                        noop.apply_async(queue=queue)
                    report.apply_async(args=[key], queue=queue)
                    publish[mode].append((time.perf_counter() - t0) / n)
                got = workers.wait(key, mode, BATCH_TIMEOUT)
                seen[mode].append(got == expected)

            return Entry.single(mode, batch, ops=tasks), batch

        made = [entry(mode) for mode in MODES]
        entries = [e for e, _ in made]
        for _, batch in made:  # warm up both ends of each contender (signers, caches)
            batch(min(tasks, 200))
        for values in (*seen.values(), *publish.values()):
            values.clear()
        stats = interleave(entries, repetitions, progress=log)
    propagation.select("none", app)
    return stats, {"propagated_as_expected": seen, "publish": publish}


def _receivers(mode: str) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """``mode``'s publish, prerun and postrun receivers, to be called directly."""
    if mode == "koherent":
        from koherent.celery import receivers

        return (
            receivers.on_before_task_publish,
            receivers.on_task_prerun,
            receivers.on_task_postrun,
        )
    if mode == "guid":
        from django_guid.integrations.celery import signals

        return signals.publish_task_from_worker_or_request, signals.worker_prerun, signals.clean_up

    def nothing(**kwargs: Any) -> None:
        return None

    return nothing, nothing, nothing


def _per_message(
    calls: int, rounds: int, user: Any
) -> dict[tuple[str, bool], dict[str, list[float]]]:
    """Per message, in seconds of thread CPU time, per ``(mode, through signals)`` and round."""
    import gc
    import random

    from celery.signals import before_task_publish, task_postrun, task_prerun

    from benchmarks.celery_app import app, noop

    rng = random.Random(5)
    keys = [(mode, signals) for mode in MODES for signals in (True, False)]
    timings: dict[tuple[str, bool], dict[str, list[float]]] = {
        key: {"publish": [], "before": [], "after": []} for key in keys
    }
    clock = time.thread_time_ns
    # Koherent's receivers act only for the apps its install() was given (it stays given).
    propagation.select("koherent", app)
    gc.collect()
    gc.freeze()
    try:
        for round_ in range(rounds + 1):  # round 0 warms up and is not kept
            rng.shuffle(keys)
            for mode, signals in keys:
                if signals:
                    propagation.select(mode, app)
                    publish, prerun, postrun = (
                        before_task_publish.send,
                        task_prerun.send,
                        task_postrun.send,
                    )
                else:
                    propagation.select("none", app)  # no receiver connected
                    publish, prerun, postrun = _receivers(mode)
                spent = [0, 0, 0]
                for _ in range(calls):
                    task_id = str(uuid.uuid4())
                    headers = _protocol_2_headers(task_id)
                    stack, _expected = _publishing_context(mode, user)
                    with stack:
                        started = clock()
                        publish(
                            sender=noop.name,
                            body=((), {}, {}),
                            exchange="",
                            routing_key="bench",
                            headers=headers,
                            properties={"correlation_id": task_id},
                            declare=[],
                            retry_policy=None,
                        )
                        spent[0] += clock() - started
                    # In the worker: none of the publisher's context.
                    noop.push_request(**headers, args=[], kwargs={}, is_eager=False)
                    try:
                        started = clock()
                        prerun(sender=noop, task_id=task_id, task=noop, args=[], kwargs={})
                        middle = clock()
                        postrun(
                            sender=noop,
                            task_id=task_id,
                            task=noop,
                            args=[],
                            kwargs={},
                            retval=None,
                            state="SUCCESS",
                        )
                        ended = clock()
                    finally:
                        noop.pop_request()
                    spent[1] += middle - started
                    spent[2] += ended - middle
                if round_:
                    for part, ns in zip(("publish", "before", "after"), spent, strict=True):
                        timings[mode, signals][part].append(ns / calls / 1e9)
    finally:
        gc.unfreeze()
        propagation.select("none", app)
    return timings


def _hooks(
    calls: int, rounds: int, user: Any
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """Batch method: per message, in seconds, per mode and round: publish, prerun, postrun;
    and the garbage collection time spent inside each mode's timed calls, µs per message."""
    import gc
    import random

    from celery.signals import before_task_publish, task_postrun, task_prerun

    from benchmarks.celery_app import app, noop

    rng = random.Random(3)
    timings: dict[str, dict[str, list[float]]] = {
        mode: {"publish": [], "before": [], "after": []} for mode in MODES
    }
    clock = time.perf_counter_ns
    timed: list[str | None] = [None]
    collecting: dict[str, Any] = {"since": 0, "ns": dict.fromkeys(MODES, 0)}

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting["since"] = clock()
        elif timed[0] is not None:
            collecting["ns"][timed[0]] += clock() - collecting["since"]

    gc.callbacks.append(on_collection)
    for round_ in range(rounds + 1):  # round 0 warms up and is not kept
        if round_ == 1:
            collecting["ns"] = dict.fromkeys(MODES, 0)
        order = list(MODES)
        rng.shuffle(order)
        for mode in order:
            propagation.select(mode, app)
            messages = []
            spent = 0
            stack, _expected = _publishing_context(mode, user)
            with stack:
                for _ in range(calls):
                    task_id = str(uuid.uuid4())
                    headers = _protocol_2_headers(task_id)
                    timed[0] = mode
                    started = clock()
                    before_task_publish.send(
                        sender=noop.name,
                        body=((), {}, {}),
                        exchange="",
                        routing_key="bench",
                        headers=headers,
                        properties={"correlation_id": task_id},
                        declare=[],
                        retry_policy=None,
                    )
                    spent += clock() - started
                    timed[0] = None
                    messages.append(headers)
            timings[mode]["publish"].append(spent / calls / 1e9)
            before = after = 0
            for headers in messages:  # in the worker: no context of the publisher's
                noop.push_request(**headers, args=[], kwargs={}, is_eager=False)
                try:
                    timed[0] = mode
                    started = clock()
                    task_prerun.send(
                        sender=noop, task_id=headers["id"], task=noop, args=[], kwargs={}
                    )
                    middle = clock()
                    task_postrun.send(
                        sender=noop,
                        task_id=headers["id"],
                        task=noop,
                        args=[],
                        kwargs={},
                        retval=None,
                        state="SUCCESS",
                    )
                    ended = clock()
                finally:
                    timed[0] = None
                    noop.pop_request()
                before += middle - started
                after += ended - middle
            timings[mode]["before"].append(before / calls / 1e9)
            timings[mode]["after"].append(after / calls / 1e9)
    gc.callbacks.remove(on_collection)
    propagation.select("none", app)
    for parts in timings.values():
        for values in parts.values():
            del values[0]
    per_message = {m: ns / 1e3 / (calls * rounds) for m, ns in collecting["ns"].items()}
    return timings, per_message


def _protocol_2_headers(task_id: str) -> dict[str, Any]:
    """The headers Celery builds for a message (protocol 2), before the publish hooks."""
    return {
        "lang": "py",
        "task": "bench.noop",
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "()",
        "kwargsrepr": "{}",
        "origin": "bench@localhost",
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }


def _signature_costs(calls: int) -> dict[str, float]:
    """µs per call of the HMAC alone, of the message digest, and of signing and verifying a
    context for a message (digest included), best of 5."""
    import timeit

    from koherent._users import StaticUserRef
    from koherent.celery.header import message_binding, sign_message, verify_message
    from koherent.context import AuditContext
    from koherent.signing import _bound, _current_signer

    ctx = AuditContext(assignation_id=str(uuid.uuid4()), app="bench", user_ref=StaticUserRef(1))
    task_id = str(uuid.uuid4())
    message: dict[str, Any] = {
        "task_id": task_id,
        "task_name": "bench.noop",
        "args": (),
        "kwargs": {},
    }
    signed = sign_message(ctx, **message)
    bound = _bound(message_binding(task_id, "bench.noop", (), {}), signed.rpartition(":")[0])
    signer = _current_signer("celery")
    runs = {
        "hmac": lambda: signer.signature(bound),
        "digest": lambda: message_binding(task_id, "bench.noop", (), {}),
        "sign": lambda: sign_message(ctx, **message),
        "verify": lambda: verify_message(signed, **message),
    }
    return {
        name: min(timeit.repeat(fn, number=calls, repeat=5)) / calls * 1e6
        for name, fn in runs.items()
    }


def _hook_group(
    name: str,
    title: str,
    hooks: dict[str, dict[str, list[float]]],
    extra_columns: dict[str, dict[str, Any]] | None = None,
    extra_titles: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A table of per-message hook costs; ``net_*`` columns are minus the ``none`` mode."""
    import statistics

    def per_round_total(mode: str) -> list[float]:
        t = hooks[mode]
        return [sum(parts) for parts in zip(t["publish"], t["before"], t["after"], strict=True)]

    totals = {mode: Stats(per_round_total(mode)) for mode in MODES}
    baseline = {part: statistics.median(hooks["none"][part]) for part in hooks["none"]}

    def net(mode: str, part: str) -> float:
        return (statistics.median(hooks[mode][part]) - baseline[part]) * 1e6

    return group(
        name,
        title,
        totals,
        baseline="none",
        extra={
            m: {
                "net_publish": round(net(m, "publish"), 2),
                "net_before": round(net(m, "before"), 2),
                "net_after": round(net(m, "after"), 2),
                "net_total": round(sum(net(m, p) for p in ("publish", "before", "after")), 2),
                **(extra_columns or {}).get(m, {}),
            }
            for m in MODES
        },
        columns={
            "net_publish": "publish µs",
            "net_before": "worker before µs",
            "net_after": "worker after µs",
            "net_total": "net µs per message",
            **(extra_titles or {}),
        },
    )


def run(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    import statistics

    tasks, repetitions = size["tasks"], size["repetitions"]
    calls, rounds = size["hook_calls"], size["hook_rounds"]
    user = contexts.bench_user()
    e2e, e2e_checks = _end_to_end(tasks, repetitions, user, log)
    log(f"hooks: {rounds} rounds of {calls:,} messages, per message, 6 variants")
    per_message = _per_message(calls, rounds, user)
    log("hooks: the batch method")
    batch, collected = _hooks(calls, rounds, user)
    signature = _signature_costs(max(calls // 10, 100))

    publish_us = {m: statistics.median(v) * 1e6 for m, v in e2e_checks["publish"].items()}
    end_to_end = group(
        "end-to-end",
        f"{tasks:,} no-op tasks through Redis and a real worker (solo pool)",
        e2e,
        baseline="none",
        extra={
            m: {
                "tasks_per_second": round(1 / e2e[m].median),
                "publish_us": round(publish_us[m], 1),
            }
            for m in MODES
        },
        columns={"tasks_per_second": "tasks per second", "publish_us": "publish µs per task"},
    )
    through_signals = _hook_group(
        "hooks-signals",
        "Hooks per message, through Celery's signals (signal dispatch included; thread CPU "
        "time, net: minus the same signals sent without receivers)",
        {m: per_message[m, True] for m in MODES},
    )
    direct = _hook_group(
        "hooks-direct",
        "Hooks per message, receivers called directly (signal dispatch excluded; thread CPU "
        "time, net: minus calling a no-op)",
        {m: per_message[m, False] for m in MODES},
    )
    batch_table = _hook_group(
        "hooks-batch",
        "The earlier method: a round's messages all published, kept, then all run (wall "
        "clock, heap not frozen): inflated by garbage collection",
        batch,
        extra_columns={m: {"gc_us": round(collected[m], 2)} for m in MODES},
        extra_titles={"gc_us": "of which garbage collection µs"},
    )
    k, g = row_of(through_signals, "koherent"), row_of(through_signals, "guid")
    kd, gd = row_of(direct, "koherent"), row_of(direct, "guid")
    kb, gb = row_of(batch_table, "koherent"), row_of(batch_table, "guid")
    k_e2e, g_e2e = row_of(end_to_end, "koherent"), row_of(end_to_end, "guid")
    return {
        "title": "Propagation through Celery",
        "question": "What does carrying the context through Celery cost per message?",
        "method": (
            f"End to end: {repetitions} rounds; in each, every contender (random order) "
            f"publishes {tasks:,} no-op tasks to its own worker through the local Redis and "
            f"waits for the last one to report what context it saw. Hooks: {rounds} rounds "
            f"(after a warm-up round) of {calls:,} messages per contender and variant, in the "
            "benchmark process, interleaved in random order. Per message: a fresh publisher "
            "context (a Koherent assignation with user and app; a django-guid id), the publish "
            "hook under it, then, outside it, the worker hooks around the pushed task request. "
            "Through Celery's signals: Signal.send with only that library's receivers "
            "connected, net of the same sends without receivers (dispatch included). Receivers "
            "called directly: net of calling a no-op (dispatch excluded). Thread CPU time "
            "(time.thread_time_ns), heap frozen (gc.freeze()) before the rounds; medians of the "
            "rounds. The batch method (earlier reports) publishes a round's messages, keeps "
            "them in a list, then runs them all, timed with the wall clock."
        ),
        "sizes": size,
        "unit": "µs per task",
        "groups": [end_to_end, through_signals, direct, batch_table],
        "targets": [
            target(
                "through Celery's signals: Koherent's hooks, signing and verification "
                "included, cost no more than django-guid's",
                f"{k['net_total']:.1f} µs vs {g['net_total']:.1f} µs per message",
                k["net_total"] <= g["net_total"],
            ),
            target(
                "receivers called directly: Koherent's hooks cost no more than django-guid's",
                f"{kd['net_total']:.1f} µs vs {gd['net_total']:.1f} µs per message",
                kd["net_total"] <= gd["net_total"],
            ),
        ],
        "headlines": [
            {
                "text": "end to end, Koherent vs no propagation (noisy: several % run to run)",
                "measured": f"{k_e2e['ratio']:.3f}x (django-guid {g_e2e['ratio']:.3f}x)",
            },
            {
                "text": "the earlier batch method (not a measure of the hooks: see the notes)",
                "measured": (
                    f"{kb['net_total']:.1f} µs vs {gb['net_total']:.1f} µs per message, of "
                    f"which garbage collection {kb['gc_us']:.1f} vs {gb['gc_us']:.1f} µs"
                ),
            },
        ],
        "notes": [
            "Koherent signs the context (HMAC-SHA256 over a ~60-character payload bound to the "
            "task id, the task name and a SHA-256 digest of the arguments and canvas options) "
            "on publish and verifies it in the worker; django-guid copies an unsigned id. Both "
            "restore and clear their context around each task.",
            "Which figure is right: the per-message ones. Signal dispatch is what separates "
            f"the two per-message tables (Koherent {k['net_total'] - kd['net_total']:+.1f} µs, "
            f"django-guid {g['net_total'] - gd['net_total']:+.1f} µs per message for its three "
            "signals: Celery's Signal.send looks its receivers up for the sender on every send "
            "and calls each in a try block, while a signal without receivers returns at once). "
            "The batch method of earlier reports kept every published message of a round in a "
            "list: the heap grew by the round's messages, so Python ran full collections of "
            "the whole Django process inside the timed calls, and which library's call "
            "happened to trigger one decided where tens of milliseconds landed "
            f"(here {kb['gc_us']:.1f} µs per message for Koherent, {gb['gc_us']:.1f} for "
            "django-guid). Its wall clock also counts other processes of a shared machine, and "
            "its one publisher context for a whole round let Koherent reuse the signed header "
            "it keeps per context, which a fresh context per message (one request, one task, "
            "as measured here) does not.",
            f"Where Koherent's time goes: signing a context costs {signature['sign']:.1f} µs "
            f"and verifying one {signature['verify']:.1f} µs (best of 5, in process), of which "
            f"the HMAC-SHA256 itself is {signature['hmac']:.1f} µs and the message's digest "
            f"{signature['digest']:.1f} µs each way; the rest of its "
            "hooks (reading the task request and the task's options, validating the arriving "
            "values, setting and resetting the context) is the work django-guid's hooks do "
            f"without a signature. Directly: publish {kd['net_publish']:+.1f} vs "
            f"{gd['net_publish']:+.1f} µs, worker before {kd['net_before']:+.1f} vs "
            f"{gd['net_before']:+.1f} µs, after {kd['net_after']:+.1f} vs "
            f"{gd['net_after']:+.1f} µs.",
        ],
        "signature_us": signature,
        "checks": e2e_checks,
    }
