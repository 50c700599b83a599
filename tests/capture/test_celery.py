"""Tasks on real Celery workers (solo, threads, prefork) write trigger-captured rows with
save(), update() and raw SQL, stamped with the context the task was sent under; the next task
on the same worker connection, sent without context, is unattributed."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

import koherent
from tests.capture.models import Product
from tests.capture.support import UNATTRIBUTED, rows, stamp
from tests.celery.harness import Worker
from tests.soak import support

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

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


#: The (price, stock) of a product's history rows after one ``kt.capture_three_ways`` task on a
#: product at (0, 0): its save(), its queryset.update(), its raw SQL, in that order.
THREE_WAYS = {(10, 0): "save", (10, 1): "update", (11, 1): "raw"}


@dataclass
class Audit:
    """What :func:`audit` found: ``"<product> <way>: <what>"`` lines for each kind of damage."""

    rows: int = 0
    misattributed: list[str] = field(default_factory=list)
    unattributed: list[str] = field(default_factory=list)
    stamped_without_context: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    written_twice: list[str] = field(default_factory=list)
    by_way: Counter[str] = field(default_factory=Counter)

    @property
    def clean(self) -> bool:
        return not (
            self.misattributed
            or self.unattributed
            or self.stamped_without_context
            or self.lost
            or self.written_twice
        )


def audit(
    history: list[Any], expected: dict[str, tuple[Any, ...]], task_ids: dict[str, str]
) -> Audit:
    """Hold each product's history rows against its task: one row per way of writing, each
    stamped with the sender's (user id, user pk, app, assignation) and the task's id; a task
    sent without context (``expected`` all ``None``) leaves unattributed rows.

    A row of a task with a context but no stamp is *unattributed*, one with another stamp
    *misattributed*; a context-less task's row with a stamp is *stamped without context*."""
    found = Audit(rows=len(history))
    seen: dict[str, Counter[str]] = {name: Counter() for name in expected}
    for row in history:
        way = THREE_WAYS.get((row.price, row.stock), f"unknown {(row.price, row.stock)}")
        where = f"{row.name} {way}"
        found.by_way[way] += 1
        seen.setdefault(row.name, Counter())[way] += 1
        wanted = expected.get(row.name)
        if wanted is None:
            found.misattributed.append(f"{where}: no such task")
            continue
        got = stamp(row)[:4]
        if row.task_id != task_ids[row.name]:
            found.misattributed.append(f"{where}: task {row.task_id} instead of its own")
        if got == wanted:
            continue
        if wanted == UNATTRIBUTED[:4]:
            found.stamped_without_context.append(f"{where}: {got}")
        elif got == UNATTRIBUTED[:4]:
            found.unattributed.append(f"{where}: no stamp instead of {wanted}")
        else:
            found.misattributed.append(f"{where}: {got} instead of {wanted}")
    for name, ways in seen.items():
        for way in THREE_WAYS.values():
            if ways[way] == 0:
                found.lost.append(f"{name} {way}")
            elif ways[way] > 1:
                found.written_twice.append(f"{name} {way}: {ways[way]} rows")
    return found


@support.soak
@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_many_tasks_with_mixed_contexts_none_misattributed_none_lost(
    pool: str, request: pytest.FixtureRequest, django_user_model: Any
) -> None:
    """Soak in trigger mode: tasks of several senders (one in four with no context) run
    concurrently and write through save(), queryset.update() and raw SQL; every row carries
    its sender's context (none for a context-less task), one row per way and task (``make
    soak``: 2,000 tasks per pool). The checker is shown to catch a mis-stamped and an
    unattributed row."""
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
            results.append((name, worker.tasks.capture_three_ways.delay(name)))
            expected[name] = UNATTRIBUTED[:4]
            continue
        user = rng.choice(users)
        app = rng.choice(("shop", "billing", "importer"))
        with koherent.assignation(f"mix-a-{n}", user=user, app=app):
            results.append((name, worker.tasks.capture_three_ways.delay(name)))
        expected[name] = (user.pk, str(user.pk), app, f"mix-a-{n}")
    task_ids = {name: result.get(timeout=TIMEOUT)["task_id"] for name, result in results}
    history = rows(Product, history_type="~")
    found = audit(history, expected, task_ids)
    with_context = [name for name, wanted in expected.items() if wanted != UNATTRIBUTED[:4]]
    support.report(
        f"capture-soak-{pool}",
        tasks=tasks,
        tasks_without_context=tasks - len(with_context),
        writes=3 * tasks,
        history_rows=found.rows,
        rows_by_way=dict(sorted(found.by_way.items())),
        misattributed=len(found.misattributed),
        unattributed_with_context=len(found.unattributed),
        stamped_without_context=len(found.stamped_without_context),
        lost=len(found.lost),
        written_twice=len(found.written_twice),
    )
    assert found.clean, found
    assert found.rows == 3 * tasks
    assert dict(found.by_way) == dict.fromkeys(THREE_WAYS.values(), tasks)
    # Both directions were exercised: rows with a context and rows without.
    assert with_context
    assert len(with_context) < tasks

    # Negative control: a row moved to another sender's assignation and a row with its stamp
    # wiped (of a task that had a context) are each caught, and nothing else.
    history_model: Any = Product.history.model
    first, second = with_context[0], with_context[1]
    history_model.objects.filter(name=first, price=10, stock=1).update(
        assignation_id=expected[second][3]
    )
    history_model.objects.filter(name=second, price=11, stock=1).update(
        history_user_id=None, user_pk=None, app=None, assignation_id=None
    )
    damaged = audit(rows(Product, history_type="~"), expected, task_ids)
    assert damaged.misattributed == [
        f"{first} update: {(*expected[first][:3], expected[second][3])} instead of "
        f"{expected[first]}"
    ], damaged
    assert damaged.unattributed == [f"{second} raw: no stamp instead of {expected[second]}"], (
        damaged
    )
    assert not damaged.lost
    assert not damaged.stamped_without_context
    assert not damaged.written_twice
    # And a context-less task's row given a stamp.
    bare = next(name for name, wanted in expected.items() if wanted == UNATTRIBUTED[:4])
    history_model.objects.filter(name=bare, price=10, stock=0).update(app="shop")
    assert (
        len(audit(rows(Product, history_type="~"), expected, task_ids).stamped_without_context)
        == 1
    )
