"""Tasks on real Celery workers (solo, threads, prefork) write trigger-captured rows with
update() and raw SQL, stamped with the context the task was sent under; the next task on the
same worker connection, sent without context, is unattributed."""

from __future__ import annotations

from typing import Any

import pytest

import koherent
from tests.capture.models import Product
from tests.capture.support import UNATTRIBUTED, rows, stamp
from tests.celery.conftest import (  # noqa: F401  (fixtures)
    prefork_worker,
    redis_worker,
    start_worker,
    threads_worker,
)
from tests.celery.harness import Worker
from tests.soak import support

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TIMEOUT = 60


@pytest.fixture(params=["redis", "threads", "prefork"])
def any_worker(request: pytest.FixtureRequest) -> Worker:
    """The solo worker, the threads pool and the prefork pool."""
    worker: Worker = request.getfixturevalue(f"{request.param}_worker")
    return worker


def test_task_writes_with_update_and_raw_sql_stamped(any_worker: Worker, user: Any) -> None:
    Product.objects.create(name="celery", price=1, stock=1)
    with koherent.assignation("celery-a", user=user, app="shop"):
        result = any_worker.tasks.capture_update.delay("celery")
    seen = result.get(timeout=TIMEOUT)
    assert seen["assignation_id"] == "celery-a"
    # Now a task sent without any context, on the same worker.
    any_worker.tasks.capture_update.delay("celery").get(timeout=TIMEOUT)
    price, stock, price2, stock2 = rows(Product, history_type="~")
    expected = (user.pk, str(user.pk), "shop", "celery-a", result.id)
    assert (price.price, stamp(price)) == (2, expected)
    assert (stock.stock, stamp(stock)) == (2, expected)
    # The second task's rows: its own task id, no user, app or assignation of the first.
    for row in (price2, stock2):
        assert stamp(row)[:4] == UNATTRIBUTED[:4]
        assert row.task_id not in (None, result.id)


@support.soak
@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_many_tasks_with_mixed_contexts_none_misattributed_none_lost(
    pool: str, request: pytest.FixtureRequest, django_user_model: Any
) -> None:
    """Soak in trigger mode: tasks of several senders (one in four with no context) run
    concurrently and write with update() and raw SQL; every row carries its sender's context,
    exactly twice per task (``make soak``: 2,000 tasks per pool)."""
    import random

    worker: Worker = request.getfixturevalue(f"{pool}_worker")
    users = [django_user_model.objects.create_user(username=f"mix-{n}") for n in range(3)]
    tasks = support.size(2_000, 24)
    Product.objects.bulk_create([Product(name=f"mix-{n}") for n in range(tasks)])
    rng = random.Random(14)
    expected: dict[str, tuple[Any, ...]] = {}
    results = []
    for n in range(tasks):
        name = f"mix-{n}"
        if n % 4 == 0:
            results.append((name, worker.tasks.capture_update.delay(name)))
            expected[name] = (None, None, None, None)
            continue
        user = rng.choice(users)
        app = rng.choice(("shop", "billing", "importer"))
        with koherent.assignation(f"mix-a-{n}", user=user, app=app):
            results.append((name, worker.tasks.capture_update.delay(name)))
        expected[name] = (user.pk, str(user.pk), app, f"mix-a-{n}")
    task_ids = {name: result.get(timeout=TIMEOUT)["task_id"] for name, result in results}
    history = rows(Product, history_type="~")
    assert len(history) == 2 * tasks  # nothing lost, nothing written twice
    wrong = [
        (row.name, stamp(row))
        for row in history
        if stamp(row)[:4] != expected[row.name] or row.task_id != task_ids[row.name]
    ]
    support.report(
        f"capture-soak-{pool}",
        tasks=tasks,
        history_rows=len(history),
        misattributed=len(wrong),
        lost=2 * tasks - len(history),
    )
    assert wrong == []
