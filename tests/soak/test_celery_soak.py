"""Soak: thousands of tasks on real workers, every history row attributed to its sender.

Each task is published under a fresh assignation, a user drawn from a pool of real users and an
app drawn from a few, except one in ten, published with no context at all. Some send children,
some retry once, some fail; all write ``Order`` rows naming the task. On a threads pool of 8 and
a prefork pool of 2, every row must then carry exactly its sender's context (children and
retries inherit it), rows of context-less tasks none, nothing may be lost or written twice, and
the worker's log must show no context error and no traceback but the intended failures.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import koherent
from koherent.context import use
from tests.celery.harness import WorkerConfig, wait_for
from tests.soak import support
from tests.soak.celery_audit import (
    Context,
    Row,
    Sent,
    audit,
    label_of,
    log_problems,
    make_users,
    running,
    stored_rows,
)
from tests.testapp.models import Order

pytestmark = [
    pytest.mark.processes,
    support.soak,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

POOLS = {
    "threads": WorkerConfig("redis", pool="threads", concurrency=8),
    "prefork": WorkerConfig("redis", pool="prefork", concurrency=2),
}
APPS = ("shop", "billing", "importer", "reports", "mobile")
INTENDED = "SoakFailure"


def plan(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """A task's mode and its children's modes."""
    draw = rng.random()
    if draw < 0.15:
        return "fail", ()
    if draw < 0.30:
        return "retry", ()
    if draw < 0.50:
        return rng.choice(("ok", "fail")), tuple(
            rng.choice(("ok", "retry")) for _ in range(rng.randint(1, 3))
        )
    return "ok", ()


def references(label: str, mode: str, children: tuple[str, ...]) -> tuple[str, ...]:
    """The rows a task and its children write (a retrying task writes one per attempt)."""
    own = (f"{label}.0", f"{label}.1") if mode == "retry" else (f"{label}.0",)
    return own + tuple(
        reference
        for n, child in enumerate(children)
        for reference in references(f"{label}-c{n}", child, ())
    )


@pytest.mark.parametrize("pool", list(POOLS))
def test_every_row_carries_its_senders_context(pool: str, tmp_path: Path) -> None:
    tasks = support.size(10_000, 150)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    users = make_users(20)
    with running(f"soak-{pool}", POOLS[pool], tmp_path) as worker:
        sent: dict[str, Sent] = {}
        modes: dict[str, int] = {"fail": 0, "retry": 0}
        started = time.monotonic()
        for n in range(tasks):
            label = f"t{n}"
            mode, children = plan(rng)
            modes[mode] = modes.get(mode, 0) + 1
            for child in children:
                modes[child] = modes.get(child, 0) + 1
            expected = references(label, mode, children)
            if n % 10 == 9:
                with use(None):
                    result = worker.tasks.soak.delay(label, mode, children)
                sent[label] = Sent(None, result.id, expected)
            else:
                user = rng.choice(users)
                app = rng.choice(APPS)
                with koherent.assignation(user=user, app=app) as ctx:
                    result = worker.tasks.soak.delay(label, mode, children)
                assert ctx.assignation_id is not None
                sent[label] = Sent(Context(ctx.assignation_id, app, user.pk), result.id, expected)
        published = time.monotonic() - started
        rows_expected = sum(len(task.references) for task in sent.values())
        wait_for(
            lambda: Order.history.count() >= rows_expected,
            timeout=120 + tasks * 0.2,
            what=f"{rows_expected} rows",
        )
        duration = time.monotonic() - started
        worker.drain()  # anything written twice is written by now
        rows = stored_rows()
        log = worker.log()

    found = audit(rows, sent)
    contextless = sum(task.context is None for task in sent.values())
    support.report(
        f"celery-soak-{pool}",
        pool=f"{pool} x{POOLS[pool].concurrency}",
        tasks=tasks,
        executions=len(rows),
        context_less_tasks=contextless,
        failing=modes["fail"],
        retrying=modes["retry"],
        rows_checked=found.checked,
        misattributions=len(found.misattributed),
        context_less_rows_with_assignation=len(found.contextless_stamped),
        lost=len(found.missing),
        unexpected=len(found.unexpected) + len(found.extra),
        publish_s=round(published, 1),
        duration_s=round(duration, 1),
        seed=seed,
    )
    assert found.clean, found.summary()
    assert len(rows) == rows_expected
    assert found.checked == rows_expected
    problems = log_problems(log, intended=INTENDED)
    assert not problems, "\n".join(problems[:20])
    # The intended failures did happen, and were logged as such.
    assert log.count(f"raised unexpected: {INTENDED}(") == modes["fail"]

    # The audit would have noticed: each kind of damage to these very rows is caught.
    for kind, damaged_rows in damaged(rows, sent).items():
        assert getattr(audit(damaged_rows, sent), kind.removesuffix("_task")), kind


def damaged(rows: list[Row], sent: dict[str, Sent]) -> dict[str, list[Row]]:
    """Copies of ``rows`` with one kind of damage each, by the ``Audit`` list that must say so."""
    with_context = [i for i, row in enumerate(rows) if sent[label_of(row.reference)].context]
    without = [i for i, row in enumerate(rows) if not sent[label_of(row.reference)].context]
    first = with_context[0]
    other = next(
        i for i in with_context if label_of(rows[i].reference) != label_of(rows[first].reference)
    )
    own = next(i for i in with_context if "-" not in rows[i].reference)

    def changed(index: int, **values: Any) -> list[Row]:
        copy = list(rows)
        copy[index] = replace(rows[index], **values)
        return copy

    return {
        "misattributed": changed(first, assignation_id=rows[other].assignation_id),
        "contextless_stamped": changed(without[0], user_id=rows[first].user_id),
        "unexpected": [*rows, replace(rows[0], reference="t999999.0")],
        "missing": rows[:-1],
        "extra": [*rows, rows[-1]],
        "misattributed_task": changed(own, task_id=rows[other].task_id),
    }


def test_the_audit_catches_damage() -> None:
    """Negative control on made-up rows: clean as written, and every damage is reported."""
    sent = {
        "t0": Sent(Context("a0", "shop", 1), "id-0", ("t0.0", "t0-c0.0", "t0-c0.1")),
        "t1": Sent(Context("a1", "shop", 2), "id-1", ("t1.0",)),
        "t2": Sent(None, "id-2", ("t2.0", "t2-c0.0")),
    }
    rows = []
    for label, task in sent.items():
        ctx = task.context
        for reference in task.references:
            task_id = task.task_id if "-" not in reference else f"child-of-{task.task_id}"
            if ctx is None:
                rows.append(Row(reference, None, None, None, None, task_id))
            else:
                stamp = (ctx.assignation_id, ctx.app, ctx.user_id, str(ctx.user_id))
                rows.append(Row(reference, *stamp, task_id))
        assert label_of(task.references[-1]) == label
    assert audit(rows, sent).clean
    for kind, damaged_rows in damaged(rows, sent).items():
        found = audit(damaged_rows, sent)
        assert not found.clean, kind
        assert getattr(found, kind.removesuffix("_task")), (kind, found.summary())


INTENDED_RECORD = (
    "2026-01-01 10:00:00,001 ERROR celery.app.trace: "
    "Task kt.soak[1] raised unexpected: SoakFailure('t1 fails on purpose')\n"
    "Traceback (most recent call last):\n"
    '  File "tasks.py", line 1, in soak\n'
    "tests.celery.tasks.SoakFailure: t1 fails on purpose\n"
    "2026-01-01 10:00:00,002 INFO celery.app.trace: Task kt.soak[2] succeeded in 0.01s: None\n"
)


@pytest.mark.parametrize(
    "bad",
    [
        "2026-01-01 10:00:00,003 WARNING koherent.celery: task kt.soak[3]: header refused\n",
        "2026-01-01 10:00:00,003 ERROR celery.app.trace: Task kt.soak[3] raised unexpected: "
        "ValueError('<Token> was created in a different Context')\n",
        "2026-01-01 10:00:00,003 ERROR celery.worker: something else\n",
        "Traceback (most recent call last):\n  File \"x.py\"\nKeyError: 'x'\n",
    ],
)
def test_the_log_check_catches_trouble(bad: str) -> None:
    """Negative control: the intended failures pass, anything else in the log does not."""
    assert log_problems(INTENDED_RECORD, intended=INTENDED) == []
    assert log_problems(INTENDED_RECORD + bad, intended=INTENDED)
    assert log_problems(bad + INTENDED_RECORD, intended=INTENDED)
