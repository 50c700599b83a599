"""Scenario 3, propagation: what carrying the context through Celery costs, per message.

Contenders: no propagation, Koherent (a signed header, verified in the worker), and
django-guid's Celery integration (an unsigned correlation id).

* **End to end**: ``tasks`` no-op tasks published through the local Redis and run by a real
  worker (``celery worker -P solo``, one per contender, each on its own queue, started before
  the measurements), then one task that reports, in a Redis list, which context it saw. A
  sample is the time from the first publish to that report, per task. Each contender
  publishes under its own context; "no propagation" publishes under both and shows that
  nothing arrives without hooks.
* **Hooks in process**: the per-message cost of each library's receivers, through Celery's own
  signals (``before_task_publish`` with a protocol-2 header, then ``task_prerun`` and
  ``task_postrun`` around a pushed task request, as a worker does), minus the cost of the same
  signals without receivers. End-to-end throughput on a shared machine varies by several per
  cent between runs, so this is the figure that decides.
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


def _hooks(calls: int, rounds: int, user: Any) -> dict[str, dict[str, list[float]]]:
    """Per message, in seconds, per mode and round: publish, prerun and postrun receivers."""
    import random

    from celery.signals import before_task_publish, task_postrun, task_prerun

    from benchmarks.celery_app import app, noop

    rng = random.Random(3)
    timings: dict[str, dict[str, list[float]]] = {
        mode: {"publish": [], "before": [], "after": []} for mode in MODES
    }
    clock = time.perf_counter_ns
    for _ in range(rounds + 1):  # round 0 warms up and is not kept
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
                    messages.append(headers)
            timings[mode]["publish"].append(spent / calls / 1e9)
            before = after = 0
            for headers in messages:  # in the worker: no context of the publisher's
                noop.push_request(**headers, args=[], kwargs={}, is_eager=False)
                try:
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
                    noop.pop_request()
                before += middle - started
                after += ended - middle
            timings[mode]["before"].append(before / calls / 1e9)
            timings[mode]["after"].append(after / calls / 1e9)
    propagation.select("none", app)
    for parts in timings.values():
        for values in parts.values():
            del values[0]
    return timings


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

    from koherent.celery.header import message_binding, sign_message, verify_message
    from koherent.context import AuditContext
    from koherent.signing import _bound, _current_signer
    from koherent.users import StaticUserRef

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


def run(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    import statistics

    tasks, repetitions = size["tasks"], size["repetitions"]
    user = contexts.bench_user()
    e2e, e2e_checks = _end_to_end(tasks, repetitions, user, log)
    hooks = _hooks(size["hook_calls"], size["hook_rounds"], user)
    signature = _signature_costs(max(size["hook_calls"] // 10, 100))

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

    def per_round_total(mode: str) -> list[float]:
        t = hooks[mode]
        return [sum(parts) for parts in zip(t["publish"], t["before"], t["after"], strict=True)]

    totals = {mode: Stats(per_round_total(mode)) for mode in MODES}
    baseline = {part: statistics.median(hooks["none"][part]) for part in hooks["none"]}

    def net(mode: str, part: str) -> float:
        return (statistics.median(hooks[mode][part]) - baseline[part]) * 1e6

    hook_table = group(
        "hooks",
        "Each library's hooks per message, in process (net: minus the signals without receivers)",
        totals,
        baseline="none",
        extra={
            m: {
                "net_publish": round(net(m, "publish"), 2),
                "net_before": round(net(m, "before"), 2),
                "net_after": round(net(m, "after"), 2),
                "net_total": round(sum(net(m, p) for p in ("publish", "before", "after")), 2),
            }
            for m in MODES
        },
        columns={
            "net_publish": "publish µs",
            "net_before": "worker before µs",
            "net_after": "worker after µs",
            "net_total": "net µs per message",
        },
    )
    k, g = row_of(hook_table, "koherent"), row_of(hook_table, "guid")
    k_e2e, g_e2e = row_of(end_to_end, "koherent"), row_of(end_to_end, "guid")
    return {
        "title": "Propagation through Celery",
        "question": "What does carrying the context through Celery cost per message?",
        "method": (
            f"End to end: {repetitions} rounds; in each, every contender (random order) "
            f"publishes {tasks:,} no-op tasks to its own worker through the local Redis and "
            f"waits for the last one to report what context it saw. Hooks: {size['hook_rounds']} "
            f"rounds of {size['hook_calls']:,} messages per contender through Celery's signals, "
            "in the benchmark process."
        ),
        "sizes": size,
        "unit": "µs per task",
        "groups": [end_to_end, hook_table],
        "targets": [
            target(
                "Koherent's hooks, signing and verification included, cost no more than "
                "django-guid's",
                f"{k['net_total']:.1f} µs vs {g['net_total']:.1f} µs per message",
                k["net_total"] <= g["net_total"],
            )
        ],
        "headlines": [
            {
                "text": "end to end, Koherent vs no propagation (noisy: several % run to run)",
                "measured": f"{k_e2e['ratio']:.3f}x (django-guid {g_e2e['ratio']:.3f}x)",
            }
        ],
        "notes": [
            "Koherent signs the context (HMAC-SHA256 over a ~60-character payload bound to the "
            "task id, the task name and a SHA-256 digest of the arguments and canvas options) "
            "on publish and verifies it in the worker; django-guid copies an unsigned id. Both "
            "restore and clear their context around each task.",
            "The figures of the hooks table are per message; the last column, the total minus "
            "the same signals sent without receivers, is the library's own cost.",
            f"Where Koherent's time goes: signing a context costs {signature['sign']:.1f} µs "
            f"and verifying one {signature['verify']:.1f} µs (best of 5, in process), of which "
            f"the HMAC-SHA256 itself is {signature['hmac']:.1f} µs and the message's digest "
            f"{signature['digest']:.1f} µs each way; the rest of its "
            "hooks (reading the task request, setting and resetting the context) is the same "
            "work django-guid's hooks do. Against django-guid: publish "
            f"{k['net_publish']:+.1f} vs {g['net_publish']:+.1f} µs, worker before "
            f"{k['net_before']:+.1f} vs {g['net_before']:+.1f} µs, after "
            f"{k['net_after']:+.1f} vs {g['net_after']:+.1f} µs.",
        ],
        "signature_us": signature,
        "checks": e2e_checks,
    }
