"""KoherentExtension through real HTTP requests to strawberry's sync and async Django views."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, override_settings

import koherent
from koherent._validation import MAX_ASSIGNATION_ID_LENGTH
from koherent.context import EMPTY
from tests.graphql.client import GraphQLClient
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

HEADER = "X-Assignation-ID"
CREATE = "mutation($r: String!) { createOrder(reference: $r) { id context { assignationId } } }"
CONTEXT = "{ context { assignationId userId app origin } }"


def test_mutation_with_header_stamps_its_rows(
    gql_client: GraphQLClient, user: Any, middleware: bool
) -> None:
    gql_client.login(user)
    result = gql_client.post(CREATE, {"r": "with-header"}, headers={HEADER: "op-42"})
    assert result.errors == []
    assert result.data["createOrder"]["context"]["assignationId"] == "op-42"
    row = Order.history.get()
    assert (row.assignation_id, row.app, row.history_user_id, row.user_pk) == (
        "op-42",
        "tests",
        user.pk,
        str(user.pk),
    )
    record = koherent.Assignation.objects.get(pk="op-42")
    assert (record.origin, record.user_id, record.app) == ("graphql", user.pk, "tests")
    assert result.assignation_id == "op-42"
    assert result.headers[HEADER] == "op-42"


def test_mutation_without_header_gets_a_fresh_assignation(
    gql_client: GraphQLClient, user: Any, middleware: bool
) -> None:
    gql_client.login(user)
    first = gql_client.post(CREATE, {"r": "one"})
    second = gql_client.post(CREATE, {"r": "two"})
    ids = [r.data["createOrder"]["context"]["assignationId"] for r in (first, second)]
    assert all(ids)
    assert ids[0] != ids[1]
    for result, assignation_id in zip((first, second), ids, strict=True):
        uuid.UUID(assignation_id)
        # The response names the assignation the rows carry, also behind the middleware
        # (which made its own id for the request).
        assert result.headers[HEADER] == assignation_id
        assert result.assignation_id == assignation_id
    rows = Order.history.order_by("history_id")
    assert [r.assignation_id for r in rows] == ids
    assert {r.history_user_id for r in rows} == {user.pk}
    assert set(koherent.Assignation.objects.values_list("id", "origin")) == {
        (ids[0], "graphql"),
        (ids[1], "graphql"),
    }


def test_query_gets_no_fresh_assignation_by_default(
    gql_client: GraphQLClient, user: Any, middleware: bool
) -> None:
    gql_client.login(user)
    result = gql_client.post(CONTEXT)
    assert result.data["context"] == {
        "assignationId": None,
        "userId": str(user.pk),
        "app": "tests",
        "origin": "graphql",
    }
    assert result.assignation_id is None
    named = gql_client.post(CONTEXT, headers={HEADER: "read-1"})
    assert named.data["context"]["assignationId"] == "read-1"


@pytest.mark.parametrize(
    ("mode", "query_fresh", "mutation_fresh"),
    [("operation", True, True), ("mutation", False, True), ("never", False, False)],
)
def test_fresh_assignation_modes(
    gql_client: GraphQLClient, settings: Any, mode: str, query_fresh: bool, mutation_fresh: bool
) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "GRAPHQL_FRESH_ASSIGNATION": mode}
    query = gql_client.post(CONTEXT).data["context"]["assignationId"]
    mutation = gql_client.post(CREATE, {"r": mode}).data["createOrder"]["context"]
    assert (query is not None) is query_fresh
    assert (mutation["assignationId"] is not None) is mutation_fresh
    assert Order.history.get().assignation_id == mutation["assignationId"]


def test_the_extension_gives_the_same_user_and_app_as_the_middleware(
    gql_client: GraphQLClient, user: Any, settings: Any
) -> None:
    """Both read the request with koherent.resolvers.context_from_request."""
    settings.KOHERENT = {**settings.KOHERENT, "APP_RESOLVER": "koherent.resolvers.header_app"}
    gql_client.login(user)
    headers = {HEADER: "same-1", "X-Koherent-App": "mobile"}
    view = gql_client.get("/whoami/", headers=headers).json()
    graphql = gql_client.post(CONTEXT, headers=headers).data["context"]
    assert (graphql["assignationId"], graphql["userId"], graphql["app"]) == (
        view["assignation_id"],
        str(view["user_id"]),
        view["app"],
    )
    assert (view["user_id"], view["app"]) == (user.pk, "mobile")
    assert (view["origin"], graphql["origin"]) == ("request", "graphql")


def test_operation_extensions_name_the_assignation(gql_client: GraphQLClient) -> None:
    result = gql_client.post(
        CREATE,
        {"r": "ext"},
        headers={HEADER: "from-header"},
        extensions={"koherent": {"assignationId": "from-operation"}},
    )
    assert result.data["createOrder"]["context"]["assignationId"] == "from-operation"
    assert Order.history.get().assignation_id == "from-operation"


@pytest.mark.parametrize("value", ["has spaces", "x" * (MAX_ASSIGNATION_ID_LENGTH + 1), "", 42])
def test_malformed_operation_assignation_is_refused_before_anything_runs(
    gql_client: GraphQLClient, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "koherent"):
        result = gql_client.post(
            CREATE, {"r": "no"}, extensions={"koherent": {"assignationId": value}}
        )
    assert result.data is None
    [error] = result.errors
    assert "extensions.koherent.assignationId" in error["message"]
    assert error["extensions"]["code"] == "KOHERENT_INVALID_AUDIT_CONTEXT"
    assert not Order.objects.exists()
    assert not Order.history.exists()
    assert "refused a GraphQL operation" in caplog.text


def test_malformed_header_without_the_middleware_is_a_graphql_error(
    gql_client: GraphQLClient, settings: Any
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "Koherent" not in m]
    result = gql_client.post(CREATE, {"r": "no"}, headers={HEADER: "not valid"})
    [error] = result.errors
    assert "X-Assignation-ID" in error["message"]
    assert not Order.objects.exists()


def test_malformed_header_with_the_middleware_is_refused_with_400(
    gql_client: GraphQLClient,
) -> None:
    result = gql_client.post(CREATE, {"r": "no"}, headers={HEADER: "not valid"})
    assert result.status_code == 400
    assert result.body["error"] == "invalid_audit_context"
    assert not Order.objects.exists()


def test_failing_operation_leaks_nothing(gql_client: GraphQLClient, user: Any) -> None:
    gql_client.login(user)
    failed = gql_client.post(
        'mutation { createThenFail(reference: "f") { id } }', headers={HEADER: "failing-op"}
    )
    assert failed.errors
    assert "failed after writing" in failed.errors[0]["message"]
    assert Order.history.get().assignation_id == "failing-op"
    # The caller's thread (sync client) is back to no context, and the next operation
    # starts from its own request only.
    assert koherent.current() is EMPTY
    after = gql_client.post(CONTEXT).data["context"]
    assert after["assignationId"] is None


def test_a_resolver_that_leaves_a_context_open_does_not_leak_it_to_siblings(
    gql_client: GraphQLClient,
) -> None:
    result = gql_client.post("{ first: leaky { app } second: context { app } }")
    assert result.data == {"first": {"app": "leaked"}, "second": {"app": "tests"}}


def test_a_mutation_that_leaves_a_context_open_does_not_leak_it_to_the_next(
    gql_client: GraphQLClient,
) -> None:
    result = gql_client.post(
        """mutation {
            first: leakyCreateOrder(reference: "a") { id }
            second: createOrder(reference: "b") { id context { app } }
        }""",
        headers={HEADER: "two-fields"},
    )
    assert result.errors == []
    assert result.data["second"]["context"]["app"] == "tests"
    apps = dict(Order.history.values_list("reference", "app"))
    assert apps == {"a": "leaked", "b": "tests"}
    assert koherent.current() is EMPTY


def test_concurrent_requests_to_the_async_view_never_mix(django_user_model: Any) -> None:
    """Interleaved requests (each awaits between its two saves) under distinct assignations,
    users and apps, plus anonymous ones without a header, through Django's async handler."""
    users = [django_user_model.objects.create_user(username=f"c{n}") for n in range(4)]
    clients = []
    for user in users:
        client = AsyncClient()
        client.force_login(user)
        clients.append(client)
    anonymous = AsyncClient()
    mutation = """mutation($r: String!, $d: Float!) {
        createOrderAsync(reference: $r, delay: $d) { context { assignationId userId app } }
    }"""

    async def one(n: int) -> tuple[int, Any]:
        named = n % 3 != 0
        client = clients[n % 4] if named else anonymous
        headers = {HEADER: f"req-{n}", "X-Koherent-App": f"app-{n}"} if named else {}
        body = {"query": mutation, "variables": {"r": f"r{n}", "d": (n * 7 % 5) / 250}}
        response = await client.post(
            "/graphql/async/", body, content_type="application/json", headers=headers
        )
        return n, response

    async def run() -> list[tuple[int, Any]]:
        return await asyncio.gather(*(one(n) for n in range(30)))

    with override_settings(
        KOHERENT={"APP": "tests", "APP_RESOLVER": "koherent.resolvers.header_app"}
    ):
        responses = async_to_sync(run)()
    seen = set()
    for n, response in responses:
        context = response.json()["data"]["createOrderAsync"]["context"]
        if n % 3:
            assert context == {
                "assignationId": f"req-{n}",
                "userId": str(users[n % 4].pk),
                "app": f"app-{n}",
            }
        else:
            assert context["userId"] is None
            assert context["app"] == "tests"
            assert context["assignationId"] not in seen
        assert response[HEADER] == context["assignationId"]
        seen.add(context["assignationId"])
    for row in Order.history.all():
        n = int(row.reference[1:])
        expected_user = users[n % 4].pk if n % 3 else None
        assert row.history_user_id == expected_user
        assert row.app == (f"app-{n}" if n % 3 else "tests")
        assert (row.assignation_id == f"req-{n}") is bool(n % 3)
    assert Order.history.count() == 60
    assert len(seen) == 30
