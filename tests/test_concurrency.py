"""Many concurrent operations: each row carries its own context and nobody else's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import koherent
from koherent.context import EMPTY
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


async def test_200_concurrent_coroutines_each_stamp_their_own(django_user_model: Any) -> None:
    users = [await django_user_model.objects.acreate(username=f"user{n}") for n in range(10)]

    async def operation(n: int) -> tuple[str | None, Any]:
        user = users[n % len(users)]
        async with koherent.assignation(user=user, app=f"app{n % 3}") as ctx:
            first = Order(reference=f"op{n}")
            await first.asave()
            await asyncio.sleep(0)  # let the others interleave
            first.status = "updated"
            await first.asave()
            await Order(reference=f"op{n}-second").asave()
            assert koherent.get_current_assignation_id() == ctx.assignation_id
        return ctx.assignation_id, user.pk

    results = await asyncio.gather(*(operation(n) for n in range(200)))
    assert koherent.current() is EMPTY
    expected = dict(results)
    assert len(expected) == 200
    rows = [r async for r in Order.history.all()]
    assert len(rows) == 600
    for row in rows:
        n = int(row.reference.removeprefix("op").split("-")[0])
        assert row.assignation_id == results[n][0], row.reference
        assert row.history_user_id == expected[row.assignation_id]
        assert row.app == f"app{n % 3}"
