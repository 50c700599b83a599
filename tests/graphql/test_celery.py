"""The assignation query returns the changes of a request and of its Celery tasks (a real
worker, the Celery tests' own)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.celery.harness import Worker, wait_for
from tests.graphql.client import GraphQLClient
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CHANGES = """query($id: ID!) {
  assignation(id: $id) {
    changeCount
    changes { entries { kind modelLabel objectId taskId userId app assignationId } }
  }
}"""


def test_the_assignation_query_returns_the_changes_of_the_request_and_its_tasks(
    gql_client: GraphQLClient, redis_worker: Worker, user: Any
) -> None:
    gql_client.login(user)
    label = f"gql-{gql_client.mode}"
    created = gql_client.post(
        "mutation($r: String!, $w: String!) { createOrderAndEnqueue(reference: $r, worker: $w) "
        "{ id } }",
        {"r": label, "w": redis_worker.key},
        headers={"X-Assignation-ID": f"with-task-{gql_client.mode}"},
    )
    assert created.errors == [], created.errors
    # A task sent outside any request: its change must not show (the control).
    redis_worker.tasks.write.delay(f"{label}-stray")
    task_order = wait_for(
        lambda: Order.objects.filter(reference=f"{label}-task").first(), what="the task's order"
    )
    wait_for(lambda: Order.objects.filter(reference=f"{label}-stray").exists(), what="stray")
    result = gql_client.post(CHANGES, {"id": f"with-task-{gql_client.mode}"})
    assert result.errors == [], result.errors
    data = result.data["assignation"]
    assert data["changeCount"] == 2
    request_entry, task_entry = data["changes"]["entries"]
    common = {"kind": "CREATE", "modelLabel": "testapp.Order", "userId": str(user.pk)}
    assert request_entry == {
        **common,
        "objectId": created.data["createOrderAndEnqueue"]["id"],
        "taskId": None,
        "app": "tests",
        "assignationId": f"with-task-{gql_client.mode}",
    }
    assert task_entry["objectId"] == str(task_order.pk)
    assert task_entry["taskId"]  # written by the worker, under the request's assignation
    assert {k: task_entry[k] for k in common} == common
    assert task_entry["assignationId"] == f"with-task-{gql_client.mode}"
