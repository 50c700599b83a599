"""Two real Django services on loopback, each with its own PostgreSQL database, under uvicorn.

A request to service A writes an order and sends a Celery task; A's worker writes an order too
and calls service B's GraphQL API through httpx, once by the name on A's ``OUTGOING_HOSTS``
and once by a name that is not on it. The rows of both databases written for the request carry
one assignation; the call to the unlisted name carries nothing, and B opens an assignation of
its own for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import koherent
import koherent.http.httpx
from koherent.models import Assignation
from tests import services
from tests.aio.servers import Server, running_server
from tests.celery.harness import Worker, WorkerConfig
from tests.http.servers import query, service_database
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@dataclass
class TwoServices:
    a: Server
    b: Server
    worker: Worker
    b_database: str
    settings_dict: dict[str, Any]

    def b_rows(self, statement: str, *params: Any) -> list[Any]:
        return query(self.b_database, self.settings_dict, statement, *params)


#: Either service's ASGI application (its settings module comes from the environment).
APPLICATION = "tests.http.asgi:application"


@pytest.fixture(scope="module")
def two(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoServices]:
    from django.db import connection

    services.need("redis")
    settings_dict = dict(connection.settings_dict)
    a_database = str(settings_dict["NAME"])
    b_database = f"{a_database.removeprefix('test_')}_svcb"
    logs = tmp_path_factory.mktemp("two-services")
    with (
        service_database(b_database, "tests.http.service_b", settings_dict),
        running_server(
            "uvicorn",
            application=APPLICATION,
            settings="tests.http.service_b",
            ready_path="/whoami/",
            env={"KOHERENT_TEST_DB": "postgres", "KOHERENT_TEST_DB_NAME": b_database},
        ) as b,
    ):
        config = WorkerConfig(
            "redis",
            app_module="tests.http.service_celery",
            settings_module="tests.http.service_a",
            env=(("KOHERENT_SERVICE_B_HOST", f"127.0.0.1:{b.port}"),),
        )
        worker = Worker("services", config, a_database, logs / "worker-a.log")
        worker.start()
        try:
            with running_server(
                "uvicorn",
                application=APPLICATION,
                settings="tests.http.service_a",
                ready_path="/whoami/",
                env=worker.environment(),
            ) as a:
                yield TwoServices(a, b, worker, b_database, settings_dict)
        finally:
            worker.stop()


def test_one_assignation_spans_both_services(two: TwoServices) -> None:
    label = f"span-{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{two.a.url}/orders/",
        data={
            "label": label,
            "service_b": two.b.url,
            "service_b_unlisted": f"http://localhost:{two.b.port}",
        },
        timeout=30,
    )
    assert response.status_code == 200, two.a.output()
    placed = response.json()
    assignation_id = placed["assignation_id"]
    assert assignation_id
    assert response.headers["X-Assignation-ID"] == assignation_id
    seen = two.worker.app.AsyncResult(placed["task_id"]).get(timeout=90)

    # Service A: the request, then its task in the worker.
    assert seen["task_context"]["assignation_id"] == assignation_id
    rows_a = {
        row.reference: (row.assignation_id, row.app, row.task_id)
        for row in Order.history.filter(reference__startswith=label)
    }
    assert rows_a == {
        f"{label}-a-web": (assignation_id, "service-a", None),
        f"{label}-a-task": (assignation_id, "service-a", placed["task_id"]),
    }
    assert Assignation.objects.get(id=assignation_id).origin == "request"

    # Service B, by the allowed name: the same assignation, and A's app.
    allowed = seen["allowed"]
    assert allowed["received"]["headers"] == {
        "X-Assignation-ID": assignation_id,
        "X-Koherent-App": "service-a",
    }
    assert allowed["graphql"]["data"] == {
        "createOrder": {"context": {"assignationId": assignation_id, "app": "service-a"}}
    }
    assert allowed["graphql"]["extensions"]["koherent"]["assignationId"] == assignation_id
    assert allowed["response_header"] == assignation_id

    # Service B, by a name off A's allow-list: nothing sent, B opened its own assignation.
    unlisted = seen["unlisted"]
    assert unlisted["received"]["headers"] == {"X-Assignation-ID": None, "X-Koherent-App": None}
    fresh = unlisted["graphql"]["data"]["createOrder"]["context"]
    assert fresh["app"] == "service-b"
    assert fresh["assignationId"] not in (None, assignation_id)
    assert unlisted["received"]["assignation_id"] not in (None, assignation_id)

    rows_b = {
        reference: (row_assignation, app)
        for reference, row_assignation, app in two.b_rows(
            "SELECT reference, assignation_id, app FROM testapp_historicalorder "
            "WHERE reference LIKE %s",
            f"{label}-%",
        )
    }
    assert rows_b == {
        f"{label}-b-allowed": (assignation_id, "service-a"),
        f"{label}-b-unlisted": (fresh["assignationId"], "service-b"),
    }
    records_b = dict(
        two.b_rows(
            "SELECT id, app FROM koherent_assignation WHERE id IN (%s, %s)",
            assignation_id,
            fresh["assignationId"],
        )
    )
    assert records_b == {assignation_id: "service-a", fresh["assignationId"]: "service-b"}


def test_a_call_outside_any_context_sends_nothing(two: TwoServices) -> None:
    client = koherent.http.httpx.install(
        httpx.Client(timeout=30), hosts=[f"127.0.0.1:{two.b.port}"]
    )
    with client:
        outside = client.get(f"{two.b.url}/received/").json()
        with koherent.assignation() as ctx:  # control: the same call under a context
            inside = client.get(f"{two.b.url}/received/").json()
    assert outside["headers"]["X-Assignation-ID"] is None
    assert outside["assignation_id"] is not None  # B's own, fresh
    assert inside["headers"]["X-Assignation-ID"] == ctx.assignation_id
    assert inside["assignation_id"] == ctx.assignation_id
