"""No leak: a task without a context never sees the context of a task before it.

Tasks with a context alternate with tasks without one on workers whose pools reuse their
threads and processes: solo (the worker's main thread), threads (four threads) and prefork
with one child process, so every task runs where many others ran before it. Again when the
tasks with a context raise, when they retry, and when they reject their message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import koherent
from tests.celery.harness import Worker, wait_for
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

#: How many tasks each scenario sends (half of them with a context).
COUNTS = {"ok": 200, "raise": 100, "retry": 100, "reject": 60}


@pytest.mark.parametrize("mode", list(COUNTS))
@pytest.mark.parametrize("pool", ["redis", "threads", "prefork"])
def test_tasks_without_context_see_none(
    pool: str, mode: str, start_worker: Callable[[str], Worker], user: Any
) -> None:
    worker = start_worker(pool)
    probe = worker.tasks.probe
    sent: dict[str, tuple[Any, str | None]] = {}  # label -> (result, assignation sent)
    for n in range(COUNTS[mode]):
        if n % 2 == 0:
            with koherent.assignation(user=user, app="leaky") as ctx:
                sent[f"w{n}"] = (probe.delay(f"w{n}", mode), ctx.assignation_id)
        else:
            sent[f"n{n}"] = (probe.delay(f"n{n}", "ok"), None)
    for label, (result, _) in sent.items():
        if mode != "reject" or label[0] == "n":  # a rejected task stores no result
            result.get(timeout=120, propagate=False)
    attempts = 2 if mode == "retry" else 1
    expected = (COUNTS[mode] // 2) * (1 + attempts)
    if mode == "reject":
        # A rejected task stores no result to wait for, and on a pool of several threads a
        # ping can come back while the last of them is still running: wait for their rows.
        worker.drain()
        wait_for(lambda: Order.history.count() >= expected, what="the rejected tasks' rows")

    rows = {row.reference: row for row in Order.history.all()}
    assert len(rows) == expected
    for label, (result, assignation_id) in sent.items():
        for attempt in range(attempts if label[0] == "w" else 1):
            row = rows[f"{label}-{attempt}"]
            assert row.task_id == result.id, (label, attempt)
            if assignation_id is None:
                assert (row.assignation_id, row.app, row.history_user_id, row.user_pk) == (
                    None,
                    None,
                    None,
                    None,
                ), label
            else:
                assert (row.assignation_id, row.app, row.history_user_id) == (
                    assignation_id,
                    "leaky",
                    user.pk,
                ), label
    assert {result.state for label, (result, _) in sent.items() if label[0] == "n"} == {"SUCCESS"}
    if mode in ("ok", "retry"):
        assert {result.state for result, _ in sent.values()} == {"SUCCESS"}
    if mode == "raise":
        assert {result.state for label, (result, _) in sent.items() if label[0] == "w"} == {
            "FAILURE"
        }
