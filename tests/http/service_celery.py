"""Service A's Celery app: ``celery -A`` this in its worker; its views send through it.

Made like the Celery tests' apps (broker, backend and queue from the environment set by
:class:`tests.celery.harness.Worker`), with one more task: ``svc.call_b``, which writes an
order in A and calls service B's GraphQL API through httpx, once by the name on A's
``OUTGOING_HOSTS`` and once by a name that is not.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.http.service_a")

import django

django.setup()

import httpx  # noqa: E402

import koherent  # noqa: E402
import koherent.http.httpx  # noqa: E402
from tests.celery.project import make_app  # noqa: E402
from tests.testapp.models import Order  # noqa: E402

CREATE = "mutation($r: String!) { createOrder(reference: $r) { context { assignationId app } } }"

app, tasks = make_app(
    os.environ["KOHERENT_CELERY_KEY"],
    broker=os.environ["KOHERENT_CELERY_BROKER"],
    backend=os.environ["KOHERENT_CELERY_BACKEND"],
    queue=os.environ["KOHERENT_CELERY_QUEUE"],
)


@app.task(shared=False, name="svc.call_b")
def call_b(label: str, service_b: str, service_b_unlisted: str) -> dict[str, Any]:
    Order.objects.create(reference=f"{label}-a-task")
    seen: dict[str, Any] = {"task_context": koherent.current().as_dict()}
    with koherent.http.httpx.install(httpx.Client(timeout=30)) as client:
        for name, base in (("allowed", service_b), ("unlisted", service_b_unlisted)):
            graphql = client.post(
                f"{base}/graphql/",
                json={"query": CREATE, "variables": {"r": f"{label}-b-{name}"}},
            )
            seen[name] = {
                "graphql": graphql.json(),
                "response_header": graphql.headers.get("X-Assignation-ID"),
                "received": client.get(f"{base}/received/").json(),
            }
    return seen
