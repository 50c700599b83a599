"""Everything built on history rows works unchanged on rows the triggers wrote."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import koherent
from koherent.models import Assignation
from tests.capture.models import Product
from tests.capture.support import rows, stamp

pytestmark = pytest.mark.django_db


@pytest.fixture
def product(user: Any) -> Product:
    """A product with a creation, a task's update() and a user's save, all trigger-written."""
    product = Product.objects.create(name="lamp", price=10, stock=5)
    with koherent.assignation("task-raise", app="worker", origin="celery"):
        # The example: a background job raises every price with update().
        Product.objects.filter(pk=product.pk).update(price=F("price") * 11 / 10)
    product.refresh_from_db()
    with koherent.assignation("user-stock", user=user, app="shop"):
        product.stock = 4
        product.save()
    return product


def test_the_update_is_its_own_row_and_the_save_shows_only_the_stock(
    product: Product, user: Any
) -> None:
    _created, raised, stocked = rows(Product)
    assert (raised.history_type, raised.assignation_id, raised.app, raised.price) == (
        "~",
        "task-raise",
        "worker",
        11,
    )
    assert raised.history_user_id is None
    assert stamp(stocked) == (user.pk, str(user.pk), "shop", "user-stock", None)
    delta = stocked.diff_against(raised)
    assert [(c.field, c.old, c.new) for c in delta.changes] == [("stock", 5, 4)]


def test_revert_of_the_users_assignation_restores_only_the_stock(product: Product) -> None:
    result = koherent.revert_assignation("user-stock")
    assert result is not None
    product.refresh_from_db()
    assert (product.price, product.stock) == (11, 5)
    # The revert's own write is a trigger-written row under the revert's assignation.
    last = rows(Product)[-1]
    assert (last.stock, last.price, last.history_type) == (5, 11, "~")
    assert last.history_change_reason == "revert of user-stock"
    assert last.assignation_id not in (None, "user-stock", "task-raise")
    # One row for the object the revert wrote: the trigger's, none from the revert itself.
    assert len(rows(Product, assignation_id=last.assignation_id)) == 1
    assert Assignation.objects.get(pk=last.assignation_id).origin == "revert"


def test_history_manager_as_of_and_most_recent(product: Product) -> None:
    history = list(product.history.all())
    assert [h.history_type for h in history] == ["~", "~", "+"]  # newest first
    raised_at = history[1].history_date
    old = product.history.as_of(raised_at)
    assert (old.price, old.stock) == (11, 5)
    before = product.history.as_of(history[2].history_date)
    assert (before.price, before.stock) == (10, 5)
    recent = product.history.most_recent()
    assert (recent.price, recent.stock) == (11, 4)
    assert history[0].prev_record == history[1]
    assert history[0].history_user is not None


def test_history_for_assignation(product: Product, user: Any) -> None:
    entries: list[Any] = list(koherent.history_for_assignation("user-stock").rows())
    assert len(entries) == 1
    assert entries[0].history_type == "~"
    assert entries[0].history_user_id == user.pk
    raised: Any = next(iter(koherent.history_for_assignation("task-raise").rows()))
    assert raised.price == 11


def test_assignation_records_written_by_the_trigger(product: Product, user: Any) -> None:
    task = Assignation.objects.get(pk="task-raise")
    assert (task.origin, task.app, task.user_id, task.user_pk) == ("celery", "worker", None, None)
    shop = Assignation.objects.get(pk="user-stock")
    assert (shop.origin, shop.app, shop.user_id, shop.user_pk) == (
        "manual",
        "shop",
        user.pk,
        str(user.pk),
    )
    assert timezone.now() - shop.created < dt.timedelta(minutes=5)


def test_admin_timeline_and_simple_history_view(product: Product, admin_client: Client) -> None:
    detail = admin_client.get(reverse("admin:koherent_assignation_change", args=["user-stock"]))
    assert detail.status_code == 200
    assert "capture.Product" in detail.content.decode() or "product" in detail.content.decode()
    page = admin_client.get(reverse("admin:capture_product_history", args=[product.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "user-stock" in body
    assert "task-raise" in body


def test_management_commands(product: Product) -> None:
    out = StringIO()
    call_command("koherent_history", "user-stock", "--json", stdout=out)
    payload = json.loads(out.getvalue())
    text = json.dumps(payload)
    assert "capture.Product" in text
    assert "stock" in text
    out = StringIO()
    call_command("koherent_revert", "user-stock", "--dry-run", stdout=out)
    assert "capture.Product" in out.getvalue()
    product.refresh_from_db()
    assert product.stock == 4  # a dry run writes nothing


ASSIGNATION = """query($id: ID!) {
  assignation(id: $id) {
    id app userId changeCount
    changes(first: 10) {
      entries { kind modelLabel objectId userId changes { field oldValue newValue } }
    }
  }
}"""


def test_graphql_types(product: Product, user: Any, settings: Any) -> None:
    from tests.graphql.client import GraphQLClient

    settings.ROOT_URLCONF = "tests.graphql.urls"
    client = GraphQLClient("sync")
    client.login(user)
    result = client.post(ASSIGNATION, {"id": "user-stock"})
    assert result.errors == []
    data = result.data["assignation"]
    assert (data["id"], data["app"], data["userId"], data["changeCount"]) == (
        "user-stock",
        "shop",
        str(user.pk),
        1,
    )
    (entry,) = data["changes"]["entries"]
    assert (entry["kind"], entry["modelLabel"], entry["objectId"]) == (
        "UPDATE",
        "capture.Product",
        str(product.pk),
    )
    assert entry["changes"] == [{"field": "stock", "oldValue": 5, "newValue": 4}]
