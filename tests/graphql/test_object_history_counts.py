"""``history_field()`` on lists of the project's own types is free of N+1 queries: the same
number of queries for 10 objects as for 100, in sync (``GraphQLView``) and async
(``AsyncGraphQLView``) execution, for a plain list, a nested list (orders → items) and a relay
connection, with strawberry-django's optimizer and without (tests/graphql/list_schema.py)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

import koherent
from tests.graphql.client import GraphQLClient
from tests.graphql.list_schema import optimized_schema, plain_schema
from tests.testapp.models import Item, Order

pytestmark = pytest.mark.django_db

ENTRY = "kind objectId user { username } changes { field }"
ITEMS = f"items {{ id history {{ {ENTRY} }} }}"
QUERIES = {
    "list": f"{{ orders {{ id history {{ {ENTRY} }} }} }}",
    "nested": f"{{ orders {{ id history {{ {ENTRY} }} {ITEMS} }} }}",
    "connection": (
        f"{{ orderConnection(first: 100) {{ edges {{ node {{ id: pk history {{ {ENTRY} }} "
        f"{ITEMS} }} }} }} }}"
    ),
}


def list_client(schema: str, mode: str) -> GraphQLClient:
    client = GraphQLClient(mode)
    client.path = f"/graphql/{schema}/{mode}/"
    return client


def make_orders(n: int, user: Any) -> None:
    """``n`` orders, each created then updated, with two items each (created)."""
    Order.objects.all().delete()
    with koherent.context(assignation_id=f"orders-{n}", user=user):
        for index in range(n):
            order = Order.objects.create(reference=f"r{index}")
            order.status = "paid"
            order.save()
            for name in ("a", "b"):
                Item.objects.create(order=order, name=f"{index}-{name}")


def orders_of(shape: str, data: Any) -> list[Any]:
    if shape == "connection":
        return [edge["node"] for edge in data["orderConnection"]["edges"]]
    return list(data["orders"])


def check_histories(shape: str, orders: list[Any]) -> None:
    """Every object got its own history, complete: not another object's, not an empty one."""
    assert {int(o["id"]) for o in orders} == set(Order.objects.values_list("pk", flat=True))
    for order in orders:
        assert [e["kind"] for e in order["history"]] == ["CREATE", "UPDATE"]
        assert {e["objectId"] for e in order["history"]} == {str(order["id"])}
        assert {e["user"]["username"] for e in order["history"]} == {"alice"}
        assert {"reference", "status"} <= {c["field"] for c in order["history"][0]["changes"]}
        assert [c["field"] for c in order["history"][1]["changes"]] == ["status"]
        if shape == "list":
            continue
        assert len(order["items"]) == 2
        for item in order["items"]:
            assert [e["kind"] for e in item["history"]] == ["CREATE"]
            assert [e["objectId"] for e in item["history"]] == [str(item["id"])]


@pytest.mark.parametrize("shape", ["list", "nested", "connection"])
@pytest.mark.parametrize("schema", ["optimized", "plain"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_history_of_listed_objects_costs_the_same_for_10_and_100(
    mode: str, schema: str, shape: str, user: Any
) -> None:
    client = list_client(schema, mode)
    client.login(user)

    def count(n: int) -> int:
        make_orders(n, user)
        with CaptureQueriesContext(connection) as captured:
            result = client.post(QUERIES[shape])
        assert result.errors == [], result.errors
        orders = orders_of(shape, result.data)
        assert len(orders) == n
        check_histories(shape, orders)
        return len(captured)

    small, large = count(10), count(100)
    assert small == large, (small, large)


@pytest.mark.parametrize("shape", ["list", "nested", "connection"])
@pytest.mark.parametrize("schema", ["optimized", "plain"])
@pytest.mark.parametrize("execution", ["execute_sync", "execute"])
def test_schema_execute_costs_the_same_for_10_and_100(
    execution: str, schema: str, shape: str, user: Any
) -> None:
    """The same through ``schema.execute_sync`` and ``schema.execute``, called directly with
    a request in the context."""
    executed = optimized_schema if schema == "optimized" else plain_schema

    def count(n: int) -> int:
        make_orders(n, user)
        request = RequestFactory().post("/graphql/")
        request.user = user
        context = {"request": request}
        with CaptureQueriesContext(connection) as captured:
            if execution == "execute_sync":
                result = executed.execute_sync(QUERIES[shape], context_value=context)
            else:
                result = async_to_sync(executed.execute)(QUERIES[shape], context_value=context)
        assert result.errors is None, result.errors
        orders = orders_of(shape, result.data)
        assert len(orders) == n
        check_histories(shape, orders)
        return len(captured)

    small, large = count(10), count(100)
    assert small == large, (small, large)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_only_the_histories_asked_for_are_read(mode: str, user: Any) -> None:
    """The items' histories are asked for, the orders' are not: no query reads the orders'
    history table, and the items' is read once."""
    client = list_client("optimized", mode)
    client.login(user)
    make_orders(5, user)
    order_history = Order.history.model._meta.db_table
    item_history = Item.history.model._meta.db_table
    with CaptureQueriesContext(connection) as captured:
        result = client.post(f"{{ orders {{ id {ITEMS} }} }}")
    assert result.errors == [], result.errors
    assert all(len(item["history"]) == 1 for o in result.data["orders"] for item in o["items"])
    sql = [q["sql"] for q in captured.captured_queries]
    assert not [s for s in sql if order_history in s]
    assert len([s for s in sql if f'FROM "{item_history}"' in s]) == 1, sql


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_object_without_history_lists_none(mode: str, user: Any) -> None:
    """An order written outside of simple-history (a raw update of its table after its
    history was removed) lists no entries, and its neighbours keep theirs."""
    client = list_client("optimized", mode)
    client.login(user)
    make_orders(3, user)
    bare = Order.objects.order_by("pk").first()
    assert bare is not None
    Order.history.filter(id=bare.pk).delete()
    result = client.post(QUERIES["list"])
    assert result.errors == [], result.errors
    histories = {int(o["id"]): o["history"] for o in result.data["orders"]}
    assert histories.pop(bare.pk) == []
    assert all(len(h) == 2 for h in histories.values())


def test_a_long_list_is_read_in_chunks_the_database_takes(user: Any, monkeypatch: Any) -> None:
    """More objects than the database takes parameters in one statement: their histories are
    read in chunks (here of 3), each object's entries whole and in order."""
    # On the class: Django 6.0's SQLite reads the limit through a property without a setter.
    monkeypatch.setattr(type(connection.features), "max_query_params", 3)
    client = list_client("optimized", "sync")
    client.login(user)
    make_orders(10, user)
    order_history = Order.history.model._meta.db_table
    with CaptureQueriesContext(connection) as captured:
        result = client.post(QUERIES["list"])
    assert result.errors == [], result.errors
    check_histories("list", orders_of("list", result.data))
    # The histories' reads (not the entries' changes, which read the previous rows).
    reads = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith(f'SELECT "{order_history}".')
    ]
    assert len(reads) == 4, reads  # 3 + 3 + 3 + 1 orders
