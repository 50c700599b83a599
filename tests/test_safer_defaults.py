"""The stricter assignation policy, ``koherent.access.owned_only``, next to the default
``"owner"``: a client joins only an assignation it owns, never an id of its choosing nor one
nobody owns (through KoherentMiddleware and Django's test client)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

import koherent
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

HEADER = "X-Assignation-ID"


@pytest.fixture
def owned_only(settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "ASSIGNATION_ACCESS": "koherent.access.owned_only"}


def post(client: Client, assignation: str | None = None) -> Any:
    headers = {HEADER: assignation} if assignation is not None else {}
    return client.post("/orders/", headers=headers)


def test_under_the_default_a_client_may_choose_a_new_id(client: Client, user: Any) -> None:
    """What "owner" allows and owned_only refuses: trust on first use."""
    client.force_login(user)
    assert post(client, "checkout-42").status_code == 200
    assert koherent.Assignation.objects.get(pk="checkout-42").user_pk == str(user.pk)


def test_owned_only_refuses_an_id_the_client_chose(
    client: Client, user: Any, owned_only: None
) -> None:
    client.force_login(user)
    response = post(client, "checkout-42")
    assert response.status_code == 403
    assert not koherent.Assignation.objects.filter(pk="checkout-42").exists()
    assert not Order.objects.exists()


def test_owned_only_refuses_an_assignation_nobody_owns(
    client: Client, user: Any, owned_only: None
) -> None:
    with koherent.context(assignation_id="script-op"):  # a script: no user
        Order.objects.create(reference="by a script")
    client.force_login(user)
    assert post(client, "script-op").status_code == 403
    client.logout()
    assert post(client, "script-op").status_code == 403
    assert Order.history.filter(assignation_id="script-op").count() == 1


def test_owned_only_lets_the_owner_join_the_id_the_server_made(
    client: Client, user: Any, other_user: Any, owned_only: None
) -> None:
    client.force_login(user)
    first = post(client)  # no header: the server opens a fresh assignation
    assert first.status_code == 200
    made = first.headers[HEADER]
    assert post(client, made).status_code == 200
    assert Order.history.filter(assignation_id=made).count() == 2
    client.force_login(other_user)
    assert post(client, made).status_code == 403
