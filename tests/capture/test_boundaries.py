"""The context reaches the triggers from every entry point, and never outlives its statement:
reused persistent connections, pooled connections and sync_to_async's reused thread included."""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.db.utils import ConnectionHandler
from django.test import Client

import koherent
from tests.capture import jobs
from tests.capture.models import Product
from tests.capture.support import UNATTRIBUTED, rows, stamp


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_requests_on_a_reused_persistent_connection(user: Any, settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.capture.urls"
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = None
    try:
        Product.objects.create(name="p", price=1)
        client = Client()
        client.force_login(user)
        first = client.post("/raise/", headers={"X-Assignation-ID": "req-one"}).json()
        anonymous = Client().post("/raise/").json()
        Product.objects.update(price=F("price") + 1)  # no request, no context
        assert first["pid"] == anonymous["pid"] == _backend_pid()  # one connection throughout
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = 0
        connection.close()
    one, two, three = rows(Product, history_type="~")
    assert stamp(one) == (user.pk, str(user.pk), "tests", "req-one", None)
    # The anonymous request's own fresh assignation and app, no user: not the first's.
    assert (two.history_user_id, two.user_pk, two.app) == (None, None, "tests")
    assert two.assignation_id not in (None, "req-one")
    assert stamp(three) == UNATTRIBUTED


@pytest.mark.django_db(transaction=True)
def test_a_pooled_connection_carries_nothing_to_its_next_user(user: Any) -> None:
    product = Product.objects.create(name="p", price=1)
    pooled = {
        **settings.DATABASES["default"],
        "NAME": connection.settings_dict["NAME"],
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"pool": {"min_size": 1, "max_size": 1}},
    }
    handler = ConnectionHandler({"default": pooled})
    db = handler["default"]
    update = f"UPDATE capture_product SET price = price + 1 WHERE id = {product.pk}"
    pids = []
    try:
        for context in (
            koherent.assignation("pool-a", user=user, app="pool"),
            koherent.context(),
        ):
            with context:
                db.connect()
                with db.cursor() as cursor:
                    cursor.execute(update)
                    cursor.execute("SELECT pg_backend_pid()")
                    pids.append(cursor.fetchone()[0])
            db.close()  # back to the pool
    finally:
        db.close_pool()  # type: ignore[attr-defined]
    assert pids[0] == pids[1]  # the same physical connection, handed out twice
    first, second = rows(Product, history_type="~")
    assert stamp(first) == (user.pk, str(user.pk), "pool", "pool-a", None)
    assert stamp(second) == UNATTRIBUTED


@pytest.mark.django_db(transaction=True)
async def test_sync_to_async_thread_reuse(user: Any) -> None:
    product = await Product.objects.acreate(name="p", price=1)

    def write() -> int:
        Product.objects.filter(pk=product.pk).update(price=F("price") + 1)
        return _backend_pid()

    with koherent.assignation("async-a", user=user, app="aio"):
        first = await sync_to_async(write)()
    second = await sync_to_async(write)()
    assert first == second  # the same thread, the same connection
    one, two = await sync_to_async(rows)(Product, history_type="~")
    assert stamp(one) == (user.pk, str(user.pk), "aio", "async-a", None)
    assert stamp(two) == UNATTRIBUTED


@pytest.mark.django_db(transaction=True)
async def test_asyncio_tasks_each_write_under_their_own_context(user: Any) -> None:
    await Product.objects.acreate(name="a")
    await Product.objects.acreate(name="b")

    async def job(name: str) -> None:
        await asyncio.sleep(0)
        await Product.objects.filter(name=name).aupdate(price=F("price") + 1)

    with koherent.assignation("task-a", user=user, app="aio"):
        first = asyncio.create_task(job("a"))
    with koherent.assignation("task-b", app="other"):
        second = asyncio.create_task(job("b"))
    await asyncio.gather(first, second)
    history = await sync_to_async(rows)(Product, history_type="~")
    by_name = {r.name: r for r in history}
    assert stamp(by_name["a"]) == (user.pk, str(user.pk), "aio", "task-a", None)
    assert stamp(by_name["b"]) == (None, None, "other", "task-b", None)


@pytest.mark.django_db
def test_a_task_of_the_tasks_framework(user: Any) -> None:
    Product.objects.create(name="t", price=1)
    with koherent.assignation("tasks-a", user=user, app="jobs"):
        result = jobs.raise_price.enqueue("t")
    assert result.status == "SUCCESSFUL"
    (row,) = rows(Product, history_type="~")
    assert (row.history_user_id, row.app, row.assignation_id) == (user.pk, "jobs", "tasks-a")
    assert row.task_id == str(result.id)


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_write_from_a_separate_psql_process_is_recorded_unattributed(user: Any) -> None:
    product = Product.objects.create(name="psql", price=1)
    db = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    command = [
        "psql",
        "-h",
        db.get("HOST") or "127.0.0.1",
        "-p",
        str(db.get("PORT") or 5432),
        "-U",
        db.get("USER") or "postgres",
        "-d",
        db["NAME"],
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        f"UPDATE capture_product SET price = 2 WHERE id = {product.pk}",
        "-c",
        "BEGIN; SET LOCAL koherent.app = 'psql-fix'; "
        f"UPDATE capture_product SET price = 3 WHERE id = {product.pk}; COMMIT;",
    ]
    with koherent.assignation("in-python", user=user):  # not seen by another process
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    plain, labelled = rows(Product, history_type="~")
    assert (plain.price, stamp(plain)) == (2, UNATTRIBUTED)
    # A maintenance session may say who it is, with the settings the triggers read.
    assert (labelled.price, labelled.app, labelled.assignation_id) == (3, "psql-fix", None)
