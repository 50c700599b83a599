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
