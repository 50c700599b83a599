"""The GraphQL side of the audit trail's permissions (sync and async view): the revert's model
permissions, the read hook told which assignation, and the history filter asking it too."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

import koherent
from koherent._validation import MAX_ASSIGNATION_ID_LENGTH
from koherent.models import Assignation as Record
from tests.graphql.client import GraphQLClient
from tests.testapp.models import Item, Order

pytestmark = pytest.mark.django_db

REVERT = """mutation($id: ID!, $force: Boolean! = false) {
  revertAssignation(id: $id, force: $force) {
    __typename
    ... on RevertResult { deleted revertAssignation { id user { username } } }
  }
}"""

PLAN = """mutation($id: ID!) {
  revertAssignation(id: $id, dryRun: true) {
    ... on RevertPlan { requiredPermissions }
  }
}"""

#: Every call of :func:`owner_hook`: ``(user pk, assignation id)``.
CALLS: list[tuple[Any, str | None]] = []


def owner_hook(user: Any, assignation_id: str | None) -> bool:
    """A per-assignation read permission: listings for logged-in users, an assignation for its
    owner."""
    CALLS.append((getattr(user, "pk", None), assignation_id))
    if user is None:
        return False
    if assignation_id is None:
        return True
    return Record.objects.filter(pk=assignation_id, user_pk=str(user.pk)).exists()


def fail_closed_hook(user: Any, assignation_id: str | None) -> bool:
    """Refuses anything not about one assignation the user owns (``None`` included)."""
    return assignation_id is not None and owner_hook(user, assignation_id)


@pytest.fixture
def hook(settings: Any) -> list[tuple[Any, str | None]]:
    settings.KOHERENT = {
        **settings.KOHERENT,
        "GRAPHQL_READ_PERMISSION": "tests.graphql.test_security.owner_hook",
    }
    CALLS.clear()
    return CALLS


@pytest.fixture
def operations(user: Any, other_user: Any) -> None:
    """alice's ``a-op`` (an order, "secret") with bob's ``b-child`` opened under it."""
    with koherent.assignation("a-op", user=user, app="web"):
        order = Order.objects.create(reference="secret", total=100)
        with koherent.assignation("b-child", user=other_user, app="web"):
            Item.objects.create(order=order, name="bob's item")
    with koherent.assignation("b-op", user=other_user, app="web"):
        Order.objects.create(reference="bob's")


def forbidden(result: Any) -> list[dict[str, Any]]:
    return [e for e in result.errors if e["extensions"]["code"] == "FORBIDDEN"]


# -- finding: revertAssignation ignored the model permissions ---------------------------------


@pytest.fixture
def order_with_anothers_item(user: Any, other_user: Any) -> Order:
    with koherent.assignation("made", user=user, app="web"):
        order = Order.objects.create(reference="to-undo")
    with koherent.assignation(user=other_user, app="web"):
        Item.objects.create(order=order, name="bob's")
    return order


def test_staff_without_model_permissions_cannot_force_a_revert(
    gql_client: GraphQLClient, django_user_model: Any, order_with_anothers_item: Order
) -> None:
    carol = django_user_model.objects.create_user(username="carol", is_staff=True)
    gql_client.login(carol)
    refused = gql_client.post(REVERT, {"id": "made", "force": True})
    assert Order.objects.filter(pk=order_with_anothers_item.pk).exists()
    assert Item.objects.filter(order=order_with_anothers_item).exists()
    assert not Record.objects.filter(origin="revert").exists()
    [error] = forbidden(refused)
    assert error["extensions"]["missingPermissions"] == [
        "testapp.delete_item",
        "testapp.delete_order",
    ]
    assert "missing permission(s) testapp.delete_item, testapp.delete_order" in error["message"]
    # A dry run says what a revert needs.
    plan = gql_client.post(PLAN, {"id": "made"})
    assert plan.data["revertAssignation"]["requiredPermissions"] == [
        "testapp.delete_item",
        "testapp.delete_order",
    ]


def test_the_cascade_needs_its_own_permission(
    gql_client: GraphQLClient, django_user_model: Any, order_with_anothers_item: Order
) -> None:
    carol = django_user_model.objects.create_user(username="carol", is_staff=True)
    carol.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_order", "change_order", "delete_order"])
    )
    gql_client.login(carol)
    refused = gql_client.post(REVERT, {"id": "made", "force": True})
    assert forbidden(refused)[0]["extensions"]["missingPermissions"] == ["testapp.delete_item"]
    assert Item.objects.filter(order=order_with_anothers_item).exists()
    carol.user_permissions.add(Permission.objects.get(codename="delete_item"))
    gql_client.login(django_user_model.objects.get(pk=carol.pk))
    done = gql_client.post(REVERT, {"id": "made", "force": True})
    assert done.errors == []
    assert done.data["revertAssignation"]["deleted"] == 1
    # Recorded as carol's, whether or not KoherentMiddleware ran.
    assert done.data["revertAssignation"]["revertAssignation"]["user"] == {"username": "carol"}
    assert not Item.objects.exists()


# -- finding: the read hook was never told which assignation ---------------------------------

ASSIGNATION = """query($id: ID!) {
  assignation(id: $id) {
    id
    changes { entries { modelLabel changes { field newValue } } }
    parent { id changes { entries { modelLabel } } }
  }
}"""


def test_the_hook_is_told_the_assignation_asked_for(
    gql_client: GraphQLClient, hook: list[Any], operations: None, user: Any, other_user: Any
) -> None:
    gql_client.login(other_user)
    refused = gql_client.post(ASSIGNATION, {"id": "a-op"})
    assert forbidden(refused)
    assert (refused.data or {}).get("assignation") is None
    assert "secret" not in str(refused.body)
    assert (other_user.pk, "a-op") in hook
    gql_client.login(user)
    own = gql_client.post(ASSIGNATION, {"id": "a-op"})
    assert own.errors == []
    assert own.data["assignation"]["id"] == "a-op"
    assert "secret" in str(own.data)


def test_a_fail_closed_hook_lets_the_owner_read_their_own(
    gql_client: GraphQLClient, settings: Any, operations: None, user: Any
) -> None:
    settings.KOHERENT = {
        **settings.KOHERENT,
        "GRAPHQL_READ_PERMISSION": "tests.graphql.test_security.fail_closed_hook",
    }
    gql_client.login(user)
    own = gql_client.post('query { assignation(id: "a-op") { id changes { entries { kind } } } }')
    assert own.errors == []
    assert own.data["assignation"]["changes"]["entries"] == [{"kind": "CREATE"}]


def test_the_parent_is_checked_again(
    gql_client: GraphQLClient, hook: list[Any], operations: None, other_user: Any
) -> None:
    gql_client.login(other_user)
    result = gql_client.post(ASSIGNATION, {"id": "b-child"})
    assert result.data["assignation"]["id"] == "b-child"
    assert result.data["assignation"]["changes"]["entries"][0]["modelLabel"] == "testapp.Item"
    assert result.data["assignation"]["parent"] is None
    [error] = forbidden(result)
    assert error["path"] == ["assignation", "parent"]
    assert "secret" not in str(result.body)
    assert (other_user.pk, "a-op") in hook


def test_listings_leave_out_the_assignations_the_hook_refuses(
    gql_client: GraphQLClient, hook: list[Any], operations: None, other_user: Any
) -> None:
    gql_client.login(other_user)
    listing = gql_client.post("{ assignations { id changes { entries { modelLabel } } } }")
    assert listing.errors == []
    assert sorted(a["id"] for a in listing.data["assignations"]) == ["b-child", "b-op"]
    assert (other_user.pk, None) in hook
    assert (other_user.pk, "a-op") in hook


def test_an_objects_history_leaves_out_the_entries_the_hook_refuses(
    gql_client: GraphQLClient, hook: list[Any], operations: None, user: Any, other_user: Any
) -> None:
    query = "{ items { name order { reference history { assignationId } } } }"
    gql_client.login(other_user)
    result = gql_client.post(query)
    assert result.errors == []
    [item] = result.data["items"]
    assert item["order"]["history"] == []  # the order's only change is alice's
    gql_client.login(user)
    [item] = gql_client.post(query).data["items"]
    assert item["order"]["history"] == [{"assignationId": "a-op"}]


# -- finding: the history filter was a side channel -------------------------------------------

FILTERED = """query($f: OrderFilter) { orders(filters: $f) { reference } }"""


@pytest.mark.parametrize(
    "condition",
    [
        {"assignationId": "a-op"},
        {"userId": "1"},
        {"app": "web"},
        {"kind": "CREATE"},
    ],
)
def test_anonymous_clients_cannot_filter_by_history(
    gql_client: GraphQLClient, operations: None, condition: dict[str, Any]
) -> None:
    result = gql_client.post(FILTERED, {"f": {"history": condition}})
    assert forbidden(result)
    assert not (result.data or {}).get("orders")
    assert "secret" not in str(result.body)
    # The plain listing (no history condition) is not the audit trail's to refuse.
    assert gql_client.post(FILTERED, {"f": {"reference": {"exact": "secret"}}}).errors == []


def test_the_history_filter_asks_for_the_assignation_it_names(
    gql_client: GraphQLClient, hook: list[Any], operations: None, user: Any, other_user: Any
) -> None:
    gql_client.login(other_user)
    refused = gql_client.post(FILTERED, {"f": {"history": {"assignationId": "a-op"}}})
    assert forbidden(refused)
    assert (other_user.pk, "a-op") in hook
    own = gql_client.post(FILTERED, {"f": {"history": {"assignationId": "b-op"}}})
    assert own.errors == []
    assert own.data["orders"] == [{"reference": "bob's"}]
    gql_client.login(user)
    mine = gql_client.post(FILTERED, {"f": {"history": {"assignationId": "a-op"}}})
    assert mine.data["orders"] == [{"reference": "secret"}]


# -- the safer read permission, next to the default -------------------------------------------


def test_view_permission_reads_like_the_admin(
    gql_client: GraphQLClient, settings: Any, operations: None, user: Any, django_user_model: Any
) -> None:
    settings.KOHERENT = {
        **settings.KOHERENT,
        "GRAPHQL_READ_PERMISSION": "koherent.strawberry.permissions.view_permission",
    }
    query = '{ assignation(id: "a-op") { id } assignations { id } }'
    gql_client.login(user)  # logged in, but without koherent.view_assignation
    assert forbidden(gql_client.post(query))
    auditor = django_user_model.objects.create_user(username="auditor")
    auditor.user_permissions.add(Permission.objects.get(codename="view_assignation"))
    gql_client.login(auditor)
    allowed = gql_client.post(query)
    assert allowed.errors == []
    assert allowed.data["assignation"] == {"id": "a-op"}
    assert {a["id"] for a in allowed.data["assignations"]} == {"a-op", "b-child", "b-op"}


def test_a_hook_of_your_own_keeps_object_histories_in_one_batch(
    hook: list[Any], user: Any
) -> None:
    """A hook that queries (it runs in Django's sync thread) does not break the batching of
    the objects' histories and their nested fields: the count does not grow with the list."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    gql_client = GraphQLClient("async")
    gql_client.login(user)
    query = "{ orders { reference history { kind user { username } changes { field } } } }"

    def orders(n: int) -> int:
        Order.objects.all().delete()
        with koherent.assignation(f"objects-{n}", user=user):
            for index in range(n):
                Order.objects.create(reference=f"r{index}")
        with CaptureQueriesContext(connection) as queries:
            result = gql_client.post(query)
        assert result.errors == []
        assert len(result.data["orders"]) == n
        assert all(len(o["history"]) == 1 for o in result.data["orders"])
        return len(queries)

    assert orders(10) == orders(100)


@pytest.mark.parametrize(
    "bad", ["", "a b", "x" * (MAX_ASSIGNATION_ID_LENGTH + 1), "line\nbreak", "-leading"]
)
def test_a_malformed_id_is_a_clear_error_and_never_reaches_the_hook(
    gql_client: GraphQLClient, hook: list[Any], user: Any, bad: str
) -> None:
    gql_client.login(user)
    result = gql_client.post("query($id: ID!) { assignation(id: $id) { id } }", {"id": bad})
    assert result.data is None or result.data.get("assignation") is None
    [error] = result.errors
    assert "assignation id" in error["message"]
    filtered = gql_client.post(FILTERED, {"f": {"history": {"assignationId": bad}}})
    assert "assignation id" in filtered.errors[0]["message"]
    assert all(asked != bad for _, asked in hook)
