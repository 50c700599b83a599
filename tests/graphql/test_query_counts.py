"""N+1-freedom: listing history entries with their changes and users costs a constant number
of queries, whatever the number of entries (sync and async view)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import koherent
from tests.graphql.client import GraphQLClient, Result
from tests.testapp.models import Item, Order
from tests.undoapp.models import Invoice, Label

pytestmark = pytest.mark.django_db

ENTRIES = """query($id: ID!, $first: Int!) {
  assignation(id: $id) {
    id user { username } changeCount models { modelLabel count }
    changes(first: $first) {
      entries {
        id kind date modelLabel objectId app assignationId
        user { id username }
        changes { field oldValue newValue }
      }
    }
  }
}"""


def make_history(assignation_id: str, size: int, users: list[Any]) -> None:
    """``size`` history rows under one assignation: creations, updates and deletions of
    three models (one with a tracked many-to-many field), by alternating users."""
    labels = [Label.objects.create(name=f"{assignation_id}-{n}") for n in range(2)]
    written = 0
    n = 0
    while written < size:
        with koherent.context(assignation_id=assignation_id, user=users[n % len(users)]):
            step = n % 5
            if step == 0:
                Order.objects.create(reference=f"{assignation_id}-{n}")
            elif step == 1:
                order = Order.objects.filter(reference__startswith=assignation_id).last()
                assert order is not None
                order.status = f"s{n}"
                order.save()
            elif step == 2:
                order = Order.objects.filter(reference__startswith=assignation_id).last()
                Item.objects.create(order=order, name=f"i{n}")
            elif step == 3:
                invoice = Invoice.objects.create(number=f"{assignation_id}-{n}")
                invoice.labels.set(labels)  # an m2m change writes no extra history row
            else:
                item = Item.objects.filter(order__reference__startswith=assignation_id).last()
                assert item is not None
                item.delete()
        written += 1
        n += 1


def count_queries(
    client: GraphQLClient, query: str, variables: dict[str, Any]
) -> tuple[int, Result]:
    with CaptureQueriesContext(connection) as captured:
        result = client.post(query, variables)
    assert result.errors == [], result.errors
    return len(captured), result


def test_listing_entries_with_changes_and_users_is_constant(
    gql_client: GraphQLClient, user: Any, other_user: Any
) -> None:
    make_history("small", 10, [user, other_user])
    make_history("large", 100, [user, other_user])
    gql_client.login(user)
    small, small_result = count_queries(gql_client, ENTRIES, {"id": "small", "first": 500})
    large, large_result = count_queries(gql_client, ENTRIES, {"id": "large", "first": 500})
    small_entries = small_result.data["assignation"]["changes"]["entries"]
    large_entries = large_result.data["assignation"]["changes"]["entries"]
    assert len(small_entries) == small_result.data["assignation"]["changeCount"] >= 10
    assert len(large_entries) == large_result.data["assignation"]["changeCount"] >= 100
    assert {e["user"]["username"] for e in large_entries} == {"alice", "bob"}
    assert {e["kind"] for e in large_entries} == {"CREATE", "UPDATE", "DELETE"}
    assert any(c["field"] == "labels" for e in large_entries for c in e["changes"])
    assert small == large
    # 12 today: the request's session and user; the record and its user; the change count
    # and the per-model counts (one UNION ALL each); the page (keys, rows); the previous rows
    # of the two updated models; the many-to-many snapshots; the entries' users. None of
    # them grows with the entries, nor with the number of tracked models.
    assert large <= 14, large


def test_object_histories_are_loaded_together(gql_client: GraphQLClient, user: Any) -> None:
    """The objects' history fields land in one batch, in sync and async execution (more
    shapes of lists in test_object_history_counts.py)."""
    query = "{ orders { reference history { kind user { username } changes { field } } } }"

    def orders(n: int) -> int:
        Order.objects.all().delete()
        with koherent.context(assignation_id=f"objects-{n}", user=user):
            for index in range(n):
                order = Order.objects.create(reference=f"r{index}")
                order.status = "paid"
                order.save()
        count, result = count_queries(gql_client, query, {})
        assert len(result.data["orders"]) == n
        assert all(len(o["history"]) == 2 for o in result.data["orders"])
        return count

    gql_client.login(user)
    assert orders(10) == orders(100)


def test_listing_assignations_is_constant(gql_client: GraphQLClient, user: Any) -> None:
    query = """{ assignations(pagination: {limit: 500}) {
        id user { username } parent { id } changeCount models { modelLabel count }
    } }"""

    def assignations(n: int) -> int:
        koherent.Assignation.objects.all().delete()
        with koherent.assignation(f"parent-{n}", user=user):
            Order.objects.create(reference="p")
            for index in range(n - 1):
                with koherent.assignation(f"child-{n}-{index}"):
                    Order.objects.create(reference=f"c{index}")
        count, result = count_queries(gql_client, query, {})
        assert len(result.data["assignations"]) == n
        return count

    gql_client.login(user)
    assert assignations(10) == assignations(100)
