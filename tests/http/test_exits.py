"""Outgoing HTTP calls apply the request's access verdict before the assignation leaves.

A real uvicorn server runs the test project behind ``KoherentMiddleware``; its views call the
echo server (on its ``OUTGOING_HOSTS``) through Koherent's httpx hook and answer with the
``X-Assignation-ID`` the echo server received. A request naming user A's assignation that is
anonymous, or authenticated only inside the view as someone else (Django REST framework's
way), is not refused by the middleware (authentication may still come), but its calls must not
carry A's assignation: the verdict is asked again, with the user known then, before the header
leaves. User A's own request, and an anonymous one naming an assignation nobody owns, do send
it (the controls).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import koherent
from koherent.models import Assignation
from tests.aio.servers import Server, running_server
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any, echo_port: int) -> Iterator[Server]:
    with running_server(
        "uvicorn",
        application="tests.http.asgi:application",
        settings="tests.http.exits_settings",
        ready_path="/whoami/",
        env={"KOHERENT_ECHO_HOST": f"127.0.0.1:{echo_port}"},
    ) as running:
        yield running


def owned_by(user: Any) -> str:
    """An assignation ``user`` opened (its record names them as owner)."""
    with koherent.assignation(f"owned-{uuid.uuid4().hex[:12]}", user=user, app="web") as ctx:
        Order.objects.create(reference=f"opened-{ctx.assignation_id}")
    assert ctx.assignation_id is not None
    assert Assignation.objects.get(id=ctx.assignation_id).user_id == user.pk
    return ctx.assignation_id


def sent(server: Server, view: str, echo_port: int, assignation_id: str, **headers: str) -> Any:
    response = httpx.get(
        f"{server.url}/{view}/",
        params={"to": f"http://127.0.0.1:{echo_port}/echo"},
        headers={"X-Assignation-ID": assignation_id, **headers},
        timeout=30,
    )
    assert response.status_code == 200, server.output()[-3000:]
    return response.json()["sent"]


VIEWS = ["call", "acall"]  # a sync view (run in a thread by Django) and an async one


@pytest.mark.parametrize("view", VIEWS)
def test_anonymous_request_does_not_send_anothers_assignation(
    server: Server, echo_port: int, view: str, user: Any
) -> None:
    assignation_id = owned_by(user)
    assert sent(server, view, echo_port, assignation_id) is None
    line = next(line for line in server.output().splitlines() if assignation_id in line)
    assert f"HTTP request to http://127.0.0.1:{echo_port} goes without the audit context" in line
    assert "which may not leave this process" in line
    assert "an anonymous request may not join assignation" in line


@pytest.mark.parametrize("view", VIEWS)
def test_user_authenticated_in_the_view_does_not_send_anothers_assignation(
    server: Server, echo_port: int, view: str, user: Any, other_user: Any
) -> None:
    assignation_id = owned_by(user)
    got = sent(server, view, echo_port, assignation_id, **{"X-Test-User": other_user.username})
    assert got is None
    assert f"user {other_user.pk} may not join assignation '{assignation_id}'" in server.output()


@pytest.mark.parametrize("view", VIEWS)
def test_the_owner_authenticated_in_the_view_sends_it(
    server: Server, echo_port: int, view: str, user: Any
) -> None:
    """Control: the verdict allows the owner, known only once the view authenticated them."""
    assignation_id = owned_by(user)
    got = sent(server, view, echo_port, assignation_id, **{"X-Test-User": user.username})
    assert got == assignation_id


@pytest.mark.parametrize("view", VIEWS)
def test_anonymous_request_sends_an_assignation_nobody_owns(
    server: Server, echo_port: int, view: str
) -> None:
    """Control: an anonymous request may join (and pass on) an assignation without owner."""
    assignation_id = f"free-{uuid.uuid4().hex[:12]}"
    assert sent(server, view, echo_port, assignation_id) == assignation_id
