"""KoherentExtension with ``schema.execute`` / ``execute_sync`` called directly."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
import strawberry
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from strawberry.extensions import SchemaExtension

import koherent
from koherent.context import EMPTY
from koherent.strawberry import KoherentExtension
from tests.graphql.schema import Mutation, Query, Subscription, schema
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

CONTEXT = "{ context { assignationId userId app origin } }"


def request_for(user: Any = None, **headers: str) -> Any:
    request = RequestFactory().post("/graphql/", headers=headers)
    request.user = user if user is not None else AnonymousUser()
    return request


class Unguarded(KoherentExtension):
    """The extension without its per-field guard: the control for the leak tests."""

    resolve = SchemaExtension.resolve


unguarded_schema = strawberry.Schema(
    query=Query, mutation=Mutation, subscription=Subscription, extensions=[Unguarded]
)


def test_execute_sync_with_a_request_in_the_context(user: Any) -> None:
    result = schema.execute_sync(
        'mutation { createOrder(reference: "direct") { id } }',
        context_value={"request": request_for(user, X_Assignation_ID="direct-1")},
    )
    assert result.errors is None
    row = Order.history.get()
    assert (row.assignation_id, row.app, row.history_user_id) == ("direct-1", "tests", user.pk)
    assert result.extensions == {"koherent": {"assignationId": "direct-1"}}
    assert koherent.current() is EMPTY


def test_execute_async_with_a_request_in_the_context(user: Any) -> None:
    async def run() -> Any:
        return await schema.execute(
            'mutation { createOrderAsync(reference: "direct-async") { id } }',
            context_value={"request": request_for(user)},
        )

    result = async_to_sync(run)()
    assert result.errors is None
    assignation_id = result.extensions["koherent"]["assignationId"]
    rows = Order.history.all()
    assert {(r.assignation_id, r.history_user_id) for r in rows} == {(assignation_id, user.pk)}
    assert rows.count() == 2


def test_without_a_request_the_operation_runs_in_the_callers_context() -> None:
    with koherent.assignation(app="script") as ctx:
        result = schema.execute_sync('mutation { createOrder(reference: "s") { id } }')
        assert koherent.current() == ctx
    assert result.errors is None
    row = Order.history.get()
    assert (row.assignation_id, row.app) == (ctx.assignation_id, "script")
    assert koherent.current() is EMPTY


def test_the_extension_overwrites_the_callers_context_when_it_has_a_request() -> None:
    with koherent.assignation(app="outer", assignation_id="outer-op"):
        result = schema.execute_sync(CONTEXT, context_value={"request": request_for()})
        assert koherent.current().assignation_id == "outer-op"
    assert result.data == {
        "context": {"assignationId": None, "userId": None, "app": "tests", "origin": "graphql"}
    }


def test_concurrent_async_operations_never_mix(django_user_model: Any) -> None:
    users = [django_user_model.objects.create_user(username=f"u{n}") for n in range(6)]

    async def one(n: int) -> tuple[int, Any]:
        user = users[n % len(users)]
        delay = (n * 7 % 5) / 250
        result = await schema.execute(
            """mutation($r: String!, $d: Float!) {
                createOrderAsync(reference: $r, delay: $d) {
                    reference context { assignationId userId }
                }
            }""",
            variable_values={"r": f"c{n}", "d": delay},
            context_value={"request": request_for(user, X_Assignation_ID=f"op-{n}")},
        )
        return n, result

    async def run() -> list[tuple[int, Any]]:
        with koherent.context(app="caller"):
            results = await asyncio.gather(*(one(n) for n in range(24)))
            assert koherent.current().app == "caller"
        return results

    for n, result in async_to_sync(run)():
        assert result.errors is None, result.errors
        data = result.data["createOrderAsync"]
        assert data["context"] == {
            "assignationId": f"op-{n}",
            "userId": str(users[n % len(users)].pk),
        }
    for row in Order.history.all():
        n = int(row.reference[1:])
        assert (row.assignation_id, row.history_user_id) == (f"op-{n}", users[n % 6].pk)
    assert Order.history.count() == 48


def test_sibling_fields_see_the_operation_context_after_a_leaky_resolver() -> None:
    guarded = schema.execute_sync(
        "{ first: leaky { app } second: context { app } }",
        context_value={"request": request_for()},
    )
    assert guarded.data == {"first": {"app": "leaked"}, "second": {"app": "tests"}}
    # The control: without the guard the second field sees what the first left behind.
    unguarded = unguarded_schema.execute_sync(
        "{ first: leaky { app } second: context { app } }",
        context_value={"request": request_for()},
    )
    assert unguarded.data == {"first": {"app": "leaked"}, "second": {"app": "leaked"}}
    assert koherent.current() is EMPTY


@pytest.mark.parametrize(("target", "expected"), [(schema, "tests"), (unguarded_schema, "leaked")])
def test_a_sync_mutation_leaking_into_the_async_operation(target: Any, expected: str) -> None:
    """strawberry-django runs a sync mutation in a thread whose context asgiref copies back
    into the operation: the guard undoes it before the next mutation field."""

    async def run() -> Any:
        return await target.execute(
            """mutation {
                first: leakyCreateOrder(reference: "a") { id }
                second: createOrderAsync(reference: "b") { context { app } }
            }""",
            context_value={"request": request_for()},
        )

    result = async_to_sync(run)()
    assert result.errors is None
    assert result.data["second"]["context"]["app"] == expected


def test_async_leaky_resolver_stays_in_its_task() -> None:
    async def run() -> Any:
        return await schema.execute(
            "{ first: asyncLeaky { app } second: asyncContext(delay: 0.01) { app } }",
            context_value={"request": request_for()},
        )

    result = async_to_sync(run)()
    assert result.data == {"first": {"app": "leaked-async"}, "second": {"app": "tests"}}


def test_an_extension_instance_is_refused() -> None:
    with pytest.warns(DeprecationWarning, match="instance"):
        shared = strawberry.Schema(query=Query, extensions=[KoherentExtension()])  # type: ignore[list-item]
    result = shared.execute_sync(CONTEXT, context_value={"request": request_for()})
    assert result.data is None
    assert result.errors is not None
    [error] = result.errors
    assert "must be registered as a class" in error.message


def test_options_per_schema_by_subclass_or_partial() -> None:
    class EveryOperation(KoherentExtension):
        fresh_assignation = "operation"
        report_assignation = False

    quiet = strawberry.Schema(query=Query, extensions=[EveryOperation])
    result = quiet.execute_sync(CONTEXT, context_value={"request": request_for()})
    assert result.data is not None
    assert result.data["context"]["assignationId"] is not None  # a query got a fresh one
    assert result.extensions == {}  # and does not report it
    never = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=[functools.partial(KoherentExtension, fresh_assignation="never")],
    )
    created = never.execute_sync(
        'mutation { createOrder(reference: "n") { id } }',
        context_value={"request": request_for()},
    )
    assert created.errors is None
    assert created.extensions == {}
    assert Order.history.get().assignation_id is None


def test_an_unknown_mode_fails_the_operation_clearly(settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "GRAPHQL_FRESH_ASSIGNATION": "sometimes"}
    result = schema.execute_sync(
        'mutation { createOrder(reference: "x") { id } }', context_value={"request": request_for()}
    )
    assert result.errors is not None
    assert "GRAPHQL_FRESH_ASSIGNATION must be one of" in result.errors[0].message
    assert not Order.objects.exists()
