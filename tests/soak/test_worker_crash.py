"""Worker crash: a task whose worker is SIGKILLed runs again, under its original context.

Workers acknowledge late (``acks_late``, ``task_reject_on_worker_lost``) and the broker, a Redis
of the test's own, gives an unacknowledged message back after a few seconds
(``visibility_timeout``). Tasks, each published under its own assignation and user, write
``<label>.start`` and then, on a "holding" worker, stay there; the whole worker (main process
and pool processes) is killed with SIGKILL while they do, and a new one started, as many times
as the scenario has rounds; a last, normal worker then runs everything to completion. Every
task must finish, and every row of every attempt must carry the task's original context.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from django.db import connection

import koherent
from tests.celery.harness import Worker, WorkerConfig, wait_for
from tests.celery.tasks import HOLD_VARIABLE
from tests.soak import support
from tests.soak.celery_audit import (
    Context,
    Sent,
    audit,
    log_problems,
    make_users,
    own_redis,
    stored_rows,
)
from tests.testapp.models import Order

pytestmark = [
    pytest.mark.processes,
    support.soak,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

#: Seconds before Redis gives an unacknowledged message to another consumer.
VISIBILITY_TIMEOUT = 3


def started_rows() -> int:
    count: int = Order.history.filter(reference__endswith=".start").count()
    return count


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_task_of_a_killed_worker_runs_again_under_its_context(pool: str, tmp_path: Path) -> None:
    kills = support.size(5, 1)
    tasks = support.size(30, 4)
    rng = random.Random()
    users = make_users(5)
    database = connection.settings_dict["NAME"]
    key = f"crash-{pool}"
    started = time.monotonic()
    with own_redis(tmp_path) as broker:
        normal = WorkerConfig(
            "redis",
            pool=pool,
            concurrency=2,
            broker_url=broker.url,
            acks_late=True,
            visibility_timeout=VISIBILITY_TIMEOUT,
            own_session=True,
        )
        holding = replace(normal, env=((HOLD_VARIABLE, "1"),))
        publisher = Worker(key, holding, database, tmp_path / "publisher.log")
        sent: dict[str, Sent] = {}
        for n in range(tasks):
            user, app = rng.choice(users), f"app-{n % 3}"
            with koherent.assignation(user=user, app=app) as ctx:
                result = publisher.tasks.hold.delay(f"h{n}")
            assert ctx.assignation_id is not None
            sent[f"h{n}"] = Sent(
                Context(ctx.assignation_id, app, user.pk), result.id, (f"h{n}.start", f"h{n}.done")
            )
        publisher.app.close()

        logs: list[str] = []
        for round_ in range(kills):
            worker = Worker(key, holding, database, tmp_path / f"killed-{round_}.log")
            before = started_rows()
            worker.start(ping=False)
            wait_for(
                lambda before=before: started_rows() > before,  # type: ignore[misc]
                timeout=60,
                what=f"a task started on worker {round_}",
            )
            assert not Order.history.filter(reference__endswith=".done").exists()
            worker.kill()
            worker.app.close()
            logs.append(worker.log())

        last = Worker(key, normal, database, tmp_path / "last.log")
        last.start(ping=False)
        try:
            wait_for(
                lambda: Order.history.filter(reference__endswith=".done").count() >= tasks,
                timeout=90 + tasks * 2,
                what=f"{tasks} tasks done",
            )
            last.drain()
            final_log = last.log()
        finally:
            last.stop()
    duration = time.monotonic() - started

    rows = stored_rows()
    found = audit(rows, sent, repeatable=lambda reference: True)
    written = Counter(row.reference for row in rows)
    attempts = sum(count for reference, count in written.items() if reference.endswith(".start"))
    rerun = sum(1 for label in sent if written[f"{label}.start"] > 1)
    done_twice = sum(1 for label in sent if written[f"{label}.done"] > 1)
    support.report(
        f"celery-worker-crash-{pool}",
        pool=f"{pool} x2",
        tasks=tasks,
        sigkills=kills,
        attempts=attempts,
        tasks_run_again=rerun,
        completed_twice=done_twice,
        rows_checked=found.checked,
        misattributions=len(found.misattributed),
        unattributed=len(found.contextless_stamped),
        lost=len(found.missing),
        duration_s=round(duration, 1),
    )
    assert found.clean, found.summary()
    # The interrupted tasks did run again: at least one per kill (each killed worker had one
    # task started, and nothing ended on it).
    assert rerun >= 1
    assert attempts >= tasks + kills
    problems = [line for log in logs for line in log_problems(log, strict=False)]
    problems += log_problems(final_log)
    assert not problems, "\n".join(problems[:20])
