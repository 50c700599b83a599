"""Who may join an assignation a GraphQL operation names (``KOHERENT["ASSIGNATION_ACCESS"]``),
through KoherentExtension: strawberry's sync and async Django views, with and without the
middleware, and websocket operations."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import koherent
from koherent.strawberry.extension import ASSIGNATION_ACCESS_DENIED
from tests.graphql.client import GraphQLClient
from tests.graphql.test_websocket import connect, cookie_of, events, operation, run
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

HEADER = "X-Assignation-ID"
CREATE = "mutation($r: String!) { createOrder(reference: $r) { id context { assignationId } } }"
CONTEXT = "{ context { assignationId userId } }"
RECORD_TABLE = koherent.Assignation._meta.db_table


def written() -> tuple[int, int, int]:
    return (
        Order.objects.count(),
        Order.history.count(),
        koherent.Assignation.objects.count(),
    )


def open_as(user: Any, assignation: str) -> None:
    """``user`` opens ``assignation`` with a first change."""
    with koherent.context(user=user, assignation_id=assignation):
        Order.objects.create(reference=f"opened by {user.username}")
    assert koherent.Assignation.objects.get(pk=assignation).user_id == user.pk


def denied(errors: list[dict[str, Any]]) -> list[str]:
    return [e["message"] for e in errors if e["extensions"]["code"] == ASSIGNATION_ACCESS_DENIED]


def test_another_users_assignation_named_by_the_operation_is_refused(
    gql_client: GraphQLClient,
    user: Any,
    other_user: Any,
    middleware: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_as(user, "op-alice")
    before = written()
    gql_client.login(other_user)
    with caplog.at_level(logging.WARNING, "koherent"):
        result = gql_client.post(
            CREATE, {"r": "intruder"}, extensions={"koherent": {"assignationId": "op-alice"}}
        )
    assert result.data is None
    [message] = denied(result.errors)
    assert f"user {other_user.pk} may not join assignation 'op-alice'" in message
    assert written() == before
    assert result.assignation_id is None
    assert result.headers.get(HEADER) != "op-alice"  # the middleware's own id, if any
    assert "koherent: refused a GraphQL operation: user" in caplog.text
    assert "ASSIGNATION_ACCESS'] = 'owner'" in caplog.text


def test_another_users_assignation_in_the_header_is_refused(
    gql_client: GraphQLClient, user: Any, other_user: Any, middleware: bool
) -> None:
    """Behind the middleware the request gets its 403; without it, a GraphQL error."""
    open_as(user, "op-alice")
    before = written()
    gql_client.login(other_user)
    result = gql_client.post(CREATE, {"r": "intruder"}, headers={HEADER: "op-alice"})
    if middleware:
        assert result.status_code == 403
        assert result.body["error"] == "assignation_access_denied"
    else:
        assert result.data is None
        assert len(denied(result.errors)) == 1
    assert written() == before


def test_the_owner_may_join(
    gql_client: GraphQLClient, user: Any, middleware: bool, settings: Any
) -> None:
    open_as(user, "op-alice")
    gql_client.login(user)
    by_header = gql_client.post(CREATE, {"r": "a"}, headers={HEADER: "op-alice"})
    by_operation = gql_client.post(
        CREATE, {"r": "b"}, extensions={"koherent": {"assignationId": "op-alice"}}
    )
    for result in (by_header, by_operation):
        assert result.errors == []
        assert result.data["createOrder"]["context"]["assignationId"] == "op-alice"
    assert Order.history.filter(assignation_id="op-alice").count() == 3


def test_any_lets_another_user_join(
    gql_client: GraphQLClient, user: Any, other_user: Any, middleware: bool, settings: Any
) -> None:
    """Control: the refusals above come from the policy."""
    open_as(user, "op-alice")
    settings.KOHERENT = {**settings.KOHERENT, "ASSIGNATION_ACCESS": "any"}
    gql_client.login(other_user)
    result = gql_client.post(
        CREATE, {"r": "joined"}, extensions={"koherent": {"assignationId": "op-alice"}}
    )
    assert result.errors == []
    assert Order.history.get(reference="joined").assignation_id == "op-alice"


def test_anonymous_operation_and_unknown_assignation(
    gql_client: GraphQLClient, user: Any, other_user: Any
) -> None:
    open_as(user, "op-alice")
    anonymous = gql_client.post(CONTEXT, extensions={"koherent": {"assignationId": "op-alice"}})
    assert anonymous.data is None
    assert "an anonymous request may not join" in denied(anonymous.errors)[0]
    gql_client.login(other_user)
    fresh = gql_client.post(
        CREATE, {"r": "new"}, extensions={"koherent": {"assignationId": "new-op"}}
    )
    assert fresh.errors == []
    assert koherent.Assignation.objects.get(pk="new-op").user_id == other_user.pk


def only_prefixed(user: Any, assignation_id: str, record: Any) -> bool:
    return assignation_id.startswith("shared-")


def test_a_custom_policy(
    gql_client: GraphQLClient, user: Any, other_user: Any, settings: Any
) -> None:
    settings.KOHERENT = {
        **settings.KOHERENT,
        "ASSIGNATION_ACCESS": "tests.graphql.test_access.only_prefixed",
    }
    open_as(user, "shared-1")
    open_as(user, "private-1")
    gql_client.login(other_user)
    ok = gql_client.post(
        CREATE, {"r": "x"}, extensions={"koherent": {"assignationId": "shared-1"}}
    )
    no = gql_client.post(
        CREATE, {"r": "y"}, extensions={"koherent": {"assignationId": "private-1"}}
    )
    assert ok.errors == []
    assert len(denied(no.errors)) == 1
    assert not Order.objects.filter(reference="y").exists()


def test_one_query_per_request_shared_by_the_middleware_and_the_extension(
    gql_client: GraphQLClient, user: Any, middleware: bool
) -> None:
    open_as(user, "op-alice")
    gql_client.login(user)
    gql_client.post(CONTEXT)  # warm up the session
    with CaptureQueriesContext(connection) as unnamed:
        assert gql_client.post(CONTEXT).errors == []
    with CaptureQueriesContext(connection) as named:
        assert gql_client.post(CONTEXT, headers={HEADER: "op-alice"}).errors == []
    assert [q for q in unnamed.captured_queries if RECORD_TABLE in q["sql"]] == []
    assert len([q for q in named.captured_queries if RECORD_TABLE in q["sql"]]) == 1
    assert len(named) == len(unnamed) + 1


# -- websockets -------------------------------------------------------------------------------
def ws_errors(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    errors = [e for m in messages if m["type"] == "error" for e in m["payload"]]
    return errors + [
        e for m in messages if m["type"] == "next" for e in m["payload"].get("errors", [])
    ]


SUBSCRIBE_WRITES = "subscription { createdOrders(count: 2) { reference } }"

# Channels closes the connections of the thread it runs the ORM in (the test's, under
# async_to_sync): these tests commit, so the next query reconnects.
websocket_db = pytest.mark.django_db(transaction=True)


@websocket_db
def test_websocket_connection_naming_another_users_assignation(user: Any, other_user: Any) -> None:
    open_as(user, "op-alice")
    before = written()

    cookies = {"intruder": cookie_of(other_user), "owner": cookie_of(user)}
    who = ["intruder"]

    async def scenario() -> list[list[dict[str, Any]]]:
        async with connect(cookies[who[0]], {HEADER: "op-alice"}) as ws:
            read = await operation(ws, "1", CONTEXT)
            writes = await operation(ws, "2", SUBSCRIBE_WRITES)
            return [read, writes]

    read, writes = run(scenario)
    for messages in (read, writes):
        assert len(denied(ws_errors(messages))) == 1, messages
        assert [e for e in events(messages) if e] == []
    assert written() == before
    # The owner's connection runs the same operations.
    who[0] = "owner"
    read, writes = run(scenario)
    assert events(read)[0]["context"] == {"assignationId": "op-alice", "userId": str(user.pk)}
    assert len(events(writes)) == 2
    assert Order.history.filter(assignation_id="op-alice").count() == 3


@websocket_db
def test_websocket_operation_naming_another_users_assignation(user: Any, other_user: Any) -> None:
    open_as(user, "op-alice")
    before = written()
    cookie = cookie_of(other_user)

    async def scenario() -> list[dict[str, Any]]:
        async with connect(cookie) as ws:
            return await operation(
                ws, "1", SUBSCRIBE_WRITES, extensions={"koherent": {"assignationId": "op-alice"}}
            )

    messages = run(scenario)
    assert len(denied(ws_errors(messages))) == 1, messages
    assert written() == before
