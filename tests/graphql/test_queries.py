"""The history types and the assignation queries, through the sync and the async view."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

import koherent
from tests.graphql.client import GraphQLClient
from tests.testapp.models import Item, Order

pytestmark = pytest.mark.django_db

HEADER = "X-Assignation-ID"

ASSIGNATION = """query($id: ID!, $first: Int! = 100, $after: String) {
  assignation(id: $id) {
    id origin app userId user { id username } changeCount
    models { modelLabel count }
    changes(first: $first, after: $after) {
      hasNextPage endCursor
      entries {
        kind modelLabel objectId userId app assignationId taskId
        user { username }
        changes { field oldValue newValue }
      }
    }
  }
}"""


def test_the_assignation_query_returns_the_changes_of_a_request(
    gql_client: GraphQLClient, user: Any
) -> None:
    gql_client.login(user)
    created = gql_client.post(
        'mutation { createOrder(reference: "gql") { id } }', headers={HEADER: "req-a"}
    )
    order_id = created.data["createOrder"]["id"]
    # A second request of the same assignation updates the order.
    with koherent.context(assignation_id="req-a", user=user, app="tests"):
        order = Order.objects.get(pk=order_id)
        order.status = "paid"
        order.total = 12
        order.save()
    result = gql_client.post(ASSIGNATION, {"id": "req-a"})
    assert result.errors == []
    data = result.data["assignation"]
    assert (data["id"], data["origin"], data["app"], data["userId"]) == (
        "req-a",
        "graphql",
        "tests",
        str(user.pk),
    )
    assert data["user"] == {"id": str(user.pk), "username": "alice"}
    assert data["changeCount"] == 2
    assert data["models"] == [{"modelLabel": "testapp.Order", "count": 2}]
    create, update = data["changes"]["entries"]
    assert data["changes"]["hasNextPage"] is False
    assert create["kind"] == "CREATE"
    assert (create["modelLabel"], create["objectId"], create["userId"]) == (
        "testapp.Order",
        order_id,
        str(user.pk),
    )
    assert create["user"] == {"username": "alice"}
    assert {c["field"]: (c["oldValue"], c["newValue"]) for c in create["changes"]} == {
        "id": (None, int(order_id)),
        "reference": (None, "gql"),
        "status": (None, "new"),
        "total": (None, 0),
    }
    assert update["kind"] == "UPDATE"
    assert sorted((c["field"], c["oldValue"], c["newValue"]) for c in update["changes"]) == [
        ("status", "new", "paid"),
        ("total", 0, 12),
    ]


def test_unknown_assignation_is_null(gql_client: GraphQLClient, user: Any) -> None:
    gql_client.login(user)
    assert gql_client.post(ASSIGNATION, {"id": "nothing-here"}).data == {"assignation": None}


def test_history_without_a_record_still_answers(
    gql_client: GraphQLClient, user: Any, settings: Any
) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "RECORD_ASSIGNATIONS": False}
    with koherent.context(assignation_id="no-record", user=user, app="script"):
        Order.objects.create(reference="x")
    gql_client.login(user)
    data = gql_client.post(ASSIGNATION, {"id": "no-record"}).data["assignation"]
    assert (data["origin"], data["app"], data["userId"], data["changeCount"]) == (
        "unknown",
        "script",
        str(user.pk),
        1,
    )


def test_reading_needs_a_logged_in_user(gql_client: GraphQLClient, user: Any) -> None:
    with koherent.context(assignation_id="secret", user=user):
        Order.objects.create(reference="x")
    refused = gql_client.post(ASSIGNATION, {"id": "secret"})
    assert refused.data is None or refused.data.get("assignation") is None
    [error] = refused.errors
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "not allowed to read the audit trail" in error["message"]
    listing = gql_client.post("{ assignations { id } }")
    assert listing.errors[0]["extensions"]["code"] == "FORBIDDEN"
    gql_client.login(user)
    assert gql_client.post(ASSIGNATION, {"id": "secret"}).data["assignation"]["id"] == "secret"


def test_read_permission_is_a_setting(gql_client: GraphQLClient, user: Any, settings: Any) -> None:
    with koherent.context(assignation_id="staff-only", user=user):
        Order.objects.create(reference="x")
    settings.KOHERENT = {
        **settings.KOHERENT,
        "GRAPHQL_READ_PERMISSION": "koherent.strawberry.permissions.staff_only",
    }
    gql_client.login(user)
    assert gql_client.post(ASSIGNATION, {"id": "staff-only"}).errors[0]["extensions"] == {
        "code": "FORBIDDEN"
    }
    user.is_staff = True
    user.save()
    assert gql_client.post(ASSIGNATION, {"id": "staff-only"}).errors == []


def test_changes_are_paged_with_cursors(gql_client: GraphQLClient, user: Any) -> None:
    with koherent.context(assignation_id="paged", user=user):
        orders = [Order.objects.create(reference=f"o{n}") for n in range(5)]
        Item.objects.create(order=orders[0], name="widget")
    gql_client.login(user)
    seen: list[tuple[str, str]] = []
    after = None
    for _ in range(4):
        page = gql_client.post(ASSIGNATION, {"id": "paged", "first": 2, "after": after})
        changes = page.data["assignation"]["changes"]
        seen += [(e["modelLabel"], e["objectId"]) for e in changes["entries"]]
        after = changes["endCursor"]
        if not changes["hasNextPage"]:
            break
    expected = [("testapp.Order", str(o.pk)) for o in orders]
    item = Item.objects.get()
    assert seen == [*expected, ("testapp.Item", str(item.pk))]
    bad = gql_client.post(ASSIGNATION, {"id": "paged", "after": "garbage"})
    assert "not a history cursor" in bad.errors[0]["message"]
    too_many = gql_client.post(ASSIGNATION, {"id": "paged", "first": 501})
    assert "first must be between 1 and 500" in too_many.errors[0]["message"]


LIST = """query($filters: AssignationFilter, $pagination: OffsetPaginationInput) {
  assignations(filters: $filters, pagination: $pagination) {
    id app origin userId changeCount parentId parent { id origin }
    models { modelLabel count }
  }
}"""


def test_listing_assignations_with_filters_and_pagination(
    gql_client: GraphQLClient, user: Any, other_user: Any
) -> None:
    with koherent.assignation("a-1", user=user, app="web"):
        Order.objects.create(reference="1")
        with koherent.assignation("a-1-child", app="worker", origin="celery"):
            Order.objects.create(reference="2")
            Order.objects.create(reference="3")
    with koherent.assignation("b-1", user=other_user, app="web"):
        order = Order.objects.create(reference="4")
        Item.objects.create(order=order, name="thing")
    old = timezone.now() - dt.timedelta(days=3)
    koherent.Assignation.objects.filter(pk="b-1").update(created=old)
    gql_client.login(user)

    def ids(**variables: Any) -> list[str]:
        result = gql_client.post(LIST, variables)
        assert result.errors == [], result.errors
        return [a["id"] for a in result.data["assignations"]]

    everything = gql_client.post(LIST).data["assignations"]
    by_id = {a["id"]: a for a in everything}
    assert [a["id"] for a in everything] == ["a-1-child", "a-1", "b-1"]
    assert by_id["a-1-child"]["changeCount"] == 2
    assert by_id["a-1-child"]["parent"] == {"id": "a-1", "origin": "manual"}
    assert by_id["b-1"]["models"] == [
        {"modelLabel": "testapp.Item", "count": 1},
        {"modelLabel": "testapp.Order", "count": 1},
    ]
    assert ids(filters={"userId": str(other_user.pk)}) == ["b-1"]
    assert ids(filters={"app": "worker"}) == ["a-1-child"]
    assert ids(filters={"origin": "manual"}) == ["a-1", "b-1"]
    assert ids(filters={"parentId": "a-1"}) == ["a-1-child"]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert ids(filters={"since": since}) == ["a-1-child", "a-1"]
    assert ids(filters={"until": since}) == ["b-1"]
    assert ids(pagination={"offset": 1, "limit": 1}) == ["a-1"]


def test_a_models_history_as_a_field_and_the_filter_mixin(
    gql_client: GraphQLClient, user: Any, other_user: Any
) -> None:
    with koherent.assignation("first", user=user, app="web"):
        kept = Order.objects.create(reference="kept")
        other = Order.objects.create(reference="other")
    with koherent.assignation("second", user=other_user, app="mobile"):
        kept.status = "paid"
        kept.save()
        Item.objects.create(order=other, name="gadget")
    gql_client.login(user)
    result = gql_client.post(
        "{ orders { reference history { kind assignationId user { username } } } }"
    )
    assert result.errors == []
    histories = {o["reference"]: o["history"] for o in result.data["orders"]}
    assert histories["kept"] == [
        {"kind": "CREATE", "assignationId": "first", "user": {"username": "alice"}},
        {"kind": "UPDATE", "assignationId": "second", "user": {"username": "bob"}},
    ]
    assert [h["kind"] for h in histories["other"]] == ["CREATE"]

    def references(history: dict[str, Any]) -> list[str]:
        result = gql_client.post(
            "query($f: OrderFilter) { orders(filters: $f) { reference } }",
            {"f": {"history": history}},
        )
        assert result.errors == [], result.errors
        return sorted(o["reference"] for o in result.data["orders"])

    assert references({"assignationId": "second"}) == ["kept"]
    assert references({"userId": str(other_user.pk)}) == ["kept"]
    assert references({"app": "web"}) == ["kept", "other"]
    assert references({"kind": "UPDATE"}) == ["kept"]
    # All conditions hold for one row: no row of "first" is an UPDATE.
    assert references({"assignationId": "first", "kind": "UPDATE"}) == []
    future = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    assert references({"since": future}) == []
    assert references({"until": future}) == ["kept", "other"]
    nested = gql_client.post(
        "query($f: ItemFilter) { items(filters: $f) { name } }",
        {"f": {"order": {"history": {"kind": "UPDATE"}}}},
    )
    assert nested.data == {"items": []}
    nested = gql_client.post(
        "query($f: ItemFilter) { items(filters: $f) { name } }",
        {"f": {"order": {"history": {"assignationId": "first"}}}},
    )
    assert nested.data == {"items": [{"name": "gadget"}]}
