"""Limits: every entry point of a context value refuses an oversized or malformed one.

One table walks every entry point (``koherent.context``, ``koherent.assignation``,
``koherent.revert_assignation``, the middleware in its sync and async modes, the GraphQL
extension behind the sync and the async view, the ``header_app`` resolver) times every field
it takes (assignation id, app, origin, user primary key, task id, parent assignation id) with a
value one character over the limit of ``koherent._validation`` and with malformed values. Each
refusal must name the field and the limit (or what is wrong), come before anything runs, and
leave every history table and the ``Assignation`` records as they were. A value exactly at the
limit goes through the same entry point and is stored whole (PostgreSQL checks the column
lengths), so each refusal is shown to come from the limit, not from the entry point.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client, RequestFactory

import koherent
from koherent._registry import tracked_models
from koherent._validation import (
    MAX_APP_LENGTH,
    MAX_ASSIGNATION_ID_LENGTH,
    MAX_ORIGIN_LENGTH,
    MAX_TASK_ID_LENGTH,
    MAX_USER_PK_LENGTH,
)
from koherent.context import EMPTY
from koherent.exceptions import InvalidRequestContext
from koherent.resolvers import resolve_app
from tests.soak import support
from tests.testapp.models import Order

pytestmark = [support.soak, pytest.mark.django_db]

HEADER = "X-Assignation-ID"
APP_HEADER = "X-Koherent-App"
HEADER_APP = "koherent.resolvers.header_app"
MIDDLEWARE = "koherent.middleware.KoherentMiddleware"
CREATE = 'mutation { createOrder(reference: "limit") { id } }'


@dataclass(frozen=True)
class Field:
    """A context field: how errors name it, its limit, a character it may be made of."""

    name: str
    limit: int
    char: str

    def at_limit(self) -> str:
        return self.char * self.limit

    def over_limit(self) -> str:
        return self.char * (self.limit + 1)

    def too_long(self) -> str:
        """The message of a value one character over the limit, as a regular expression."""
        return re.escape(
            f"{self.name} is {self.limit + 1} characters long; the maximum is {self.limit}"
        )


# The documented limits (docs/settings.md, koherent._validation), written out: a change of a
# limit must show here.
ASSIGNATION = Field("assignation id", 1000, "a")
APP = Field("app", 100, "p")
ORIGIN = Field("origin", 32, "o")
USER = Field("user primary key", 64, "1")
TASK = Field("task id", 255, "t")
PARENT = Field("parent assignation id", 1000, "b")

#: Malformed values per field, with what the refusal says.
MALFORMED: dict[str, list[tuple[Any, str]]] = {
    "assignation id": [
        ("has space", "assignation id 'has space' is not allowed"),
        ("-leading", "assignation id '-leading' is not allowed"),
        ("", "assignation id must not be empty"),
        (42, "assignation id must be a string, not int"),
        ("new\nline", "assignation id 'new\\\\nline' is not allowed"),
    ],
    "app": [
        ("bad app", "app 'bad app' is not allowed"),
        ("", "app must not be empty"),
        (["app"], "app must be a string, not list"),
    ],
    "origin": [
        ("Upper", "origin 'Upper' is not allowed"),
        ("9lives", "origin '9lives' is not allowed"),
        ("", "origin must not be empty"),
    ],
    "user primary key": [
        ("evil\nline", "user primary key 'evil\\\\nline' contains control characters"),
        ("", "user primary key must not be empty"),
        (True, "not a bool"),
        (3.5, "primary key \\(int, str or UUID\\), not float"),
    ],
    "task id": [
        ("task id", "task id 'task id' is not allowed"),
        ("", "task id must not be empty"),
    ],
}
MALFORMED["parent assignation id"] = [
    (value, f"parent {message}") for value, message in MALFORMED["assignation id"]
]


def counts() -> dict[str, int]:
    """Rows of every history table (many-to-many ones included) and Assignation records."""
    found = {"assignations": koherent.Assignation.objects.count()}
    for tracked in tracked_models():
        found[tracked.label] = tracked.history_model._default_manager.count()
        for m2m in tracked.m2m:
            found[f"{tracked.label}.{m2m.field.name}"] = m2m.history_model._default_manager.count()
    return found


# -- koherent.context, koherent.assignation, koherent.revert_assignation -----------------------

Opener = Callable[[Any], AbstractContextManager[Any]]

#: (entry point, field, how to open it with a value, what a row written inside shows of it)
API: list[tuple[str, Field, Opener, Callable[[Any, Any], Any]]] = [
    (
        "context",
        ASSIGNATION,
        lambda v: koherent.context(assignation_id=v),
        lambda row, ctx: row.assignation_id,
    ),
    ("context", APP, lambda v: koherent.context(app=v), lambda row, ctx: row.app),
    (
        "context",
        ORIGIN,
        lambda v: koherent.context(assignation_id="origin-at-limit", origin=v),
        lambda row, ctx: koherent.Assignation.objects.get(pk=row.assignation_id).origin,
    ),
    ("context", USER, lambda v: koherent.context(user=v), lambda row, ctx: str(ctx.user_id)),
    ("context", TASK, lambda v: koherent.context(task_id=v), lambda row, ctx: row.task_id),
    (
        "context",
        PARENT,
        lambda v: koherent.context(assignation_id="child", parent_assignation_id=v),
        lambda row, ctx: koherent.Assignation.objects.get(pk=row.assignation_id).parent_id,
    ),
    (
        "assignation",
        ASSIGNATION,
        lambda v: koherent.assignation(v),
        lambda row, ctx: row.assignation_id,
    ),
    ("assignation", APP, lambda v: koherent.assignation(app=v), lambda row, ctx: row.app),
    (
        "assignation",
        ORIGIN,
        lambda v: koherent.assignation(origin=v),
        lambda row, ctx: koherent.Assignation.objects.get(pk=row.assignation_id).origin,
    ),
    (
        "assignation",
        USER,
        lambda v: koherent.assignation(user=v),
        lambda row, ctx: str(ctx.user_id),
    ),
    (
        "assignation",
        PARENT,
        lambda v: koherent.assignation(parent_assignation_id=v),
        lambda row, ctx: koherent.Assignation.objects.get(pk=row.assignation_id).parent_id,
    ),
]


def _api_cases() -> list[Any]:
    cases = []
    for entry, field, opener, _stored in API:
        key = f"{entry}-{field.name.replace(' ', '-')}-{field.char}"
        cases.append(pytest.param(opener, field.over_limit(), field.too_long(), id=f"{key}-long"))
        for k, (value, message) in enumerate(MALFORMED[field.name]):
            cases.append(pytest.param(opener, value, message, id=f"{key}-bad{k}"))
    return cases


@pytest.mark.parametrize(("opener", "value", "message"), _api_cases())
def test_context_and_assignation_refuse_before_anything_runs(
    opener: Opener, value: Any, message: str
) -> None:
    before = counts()
    ran = False
    with pytest.raises(ValueError, match=message), opener(value):
        ran = True
        Order.objects.create(reference="never")
    assert not ran
    assert counts() == before
    assert koherent.current() is EMPTY


@pytest.mark.parametrize(
    ("opener", "field", "stored"),
    [pytest.param(o, f, s, id=f"{e}-{f.name.replace(' ', '-')}-{f.char}") for e, f, o, s in API],
)
def test_control_a_value_at_the_limit_is_taken_and_stored_whole(
    opener: Opener, field: Field, stored: Callable[[Any, Any], Any]
) -> None:
    value = field.at_limit()
    with opener(value) as ctx:
        if field is USER:  # no user has a 64-digit key: the context holds it, nothing written
            assert str(ctx.user_id) == value
            return
        order = Order.objects.create(reference="at-limit")
    row = Order.history.get(id=order.pk)
    assert stored(row, ctx) == value


def test_revert_assignation_refuses_an_oversized_or_malformed_id() -> None:
    before = counts()
    with pytest.raises(ValueError, match=ASSIGNATION.too_long()):
        koherent.revert_assignation(ASSIGNATION.over_limit())
    for value, message in MALFORMED["assignation id"]:
        with pytest.raises(ValueError, match=message):
            koherent.revert_assignation(value)
    with pytest.raises(koherent.AssignationNotFound):  # control: a valid id is looked up
        koherent.revert_assignation(ASSIGNATION.at_limit())
    assert counts() == before


# -- the header_app resolver -------------------------------------------------------------------


def test_header_app_resolver_refuses_an_oversized_or_malformed_app(settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "APP_RESOLVER": HEADER_APP}
    factory = RequestFactory()

    def app_of(value: str) -> str | None:
        return resolve_app(factory.get("/", headers={APP_HEADER: value}))

    with pytest.raises(InvalidRequestContext, match=f"^Invalid app: {APP.too_long()}$"):
        app_of(APP.over_limit())
    with pytest.raises(InvalidRequestContext, match="Invalid app: app 'bad app' is not allowed"):
        app_of("bad app")
    assert app_of(APP.at_limit()) == APP.at_limit()
    # The resolver itself hands the raw value on: the check is resolve_app's, on every resolver.
    raw = koherent.resolvers.header_app(factory.get("/", headers={APP_HEADER: "bad app"}))
    assert raw == "bad app"


# -- the middleware and the GraphQL extension, over HTTP ---------------------------------------

#: (field, request header, header value, refusal detail as a regular expression)
HTTP_CASES: list[tuple[Field, str, str, str]] = [
    (ASSIGNATION, HEADER, ASSIGNATION.over_limit(), f"Invalid {HEADER} header: "),
    (APP, APP_HEADER, APP.over_limit(), "Invalid app: "),
]
HTTP_MALFORMED: list[tuple[str, str, str]] = [
    (HEADER, "has space", f"Invalid {HEADER} header: assignation id 'has space' is not allowed"),
    (HEADER, "../../etc", f"Invalid {HEADER} header: assignation id '../../etc' is not allowed"),
    (HEADER, "a,b", f"Invalid {HEADER} header: assignation id 'a,b' is not allowed"),
    (APP_HEADER, "bad app", "Invalid app: app 'bad app' is not allowed"),
    (APP_HEADER, "caf\u00e9", "Invalid app: app 'caf"),
]


def _http_cases() -> list[Any]:
    cases = [
        pytest.param(header, value, re.escape(prefix) + field.too_long(), id=f"{header}-long")
        for field, header, value, prefix in HTTP_CASES
    ]
    cases += [
        pytest.param(header, value, re.escape(detail), id=f"{header}-bad{k}")
        for k, (header, value, detail) in enumerate(HTTP_MALFORMED)
    ]
    return cases


def post(mode: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
    """POST through Django's sync test client, or its async one (the async handler)."""
    if mode == "sync":
        return Client().post(path, headers=headers, **kwargs)
    return async_to_sync(AsyncClient().post)(path, headers=headers, **kwargs)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def header_app(settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "APP_RESOLVER": HEADER_APP}


@pytest.mark.usefixtures("header_app")
@pytest.mark.parametrize(("header", "value", "detail"), _http_cases())
def test_middleware_answers_400_before_the_view_runs(
    mode: str, header: str, value: str, detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = "/orders/" if mode == "sync" else "/orders-async/"
    before = counts()
    with caplog.at_level(logging.WARNING, "koherent"):
        response = post(mode, path, {header: value}, data={"reference": "never"})
    assert response.status_code == 400
    body = json.loads(response.content)
    assert body["error"] == "invalid_audit_context"
    assert re.match(detail, body["detail"]), body["detail"]
    assert f"koherent: refused POST {path}: " in caplog.text
    assert re.search(detail, caplog.text)
    assert not Order.objects.exists()
    assert counts() == before


@pytest.mark.usefixtures("header_app")
@pytest.mark.parametrize(("header", "field"), [(HEADER, ASSIGNATION), (APP_HEADER, APP)])
def test_control_the_middleware_takes_and_stores_a_header_at_the_limit(
    mode: str, header: str, field: Field
) -> None:
    path = "/orders/" if mode == "sync" else "/orders-async/"
    response = post(mode, path, {header: field.at_limit()}, data={"reference": "at-limit"})
    assert response.status_code == 200
    row = Order.history.first()
    assert row is not None
    assert (row.assignation_id if header == HEADER else row.app) == field.at_limit()


@pytest.fixture
def graphql_without_middleware(settings: Any, header_app: None) -> None:
    """The GraphQL views, with the extension as the only entry point of the request."""
    settings.ROOT_URLCONF = "tests.graphql.urls"
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE]


def graphql(mode: str, headers: dict[str, str], extensions: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"query": CREATE}
    if extensions is not None:
        body["extensions"] = extensions
    response = post(
        mode,
        f"/graphql/{mode}/",
        headers,
        data=json.dumps(body),
        content_type="application/json",
    )
    result: dict[str, Any] = json.loads(response.content)
    return result


def _graphql_cases() -> list[Any]:
    cases = _http_cases()
    over = ASSIGNATION.over_limit()
    prefix = re.escape("Invalid extensions.koherent.assignationId: ")
    cases.append(
        pytest.param("extensions", over, prefix + ASSIGNATION.too_long(), id="extensions-long")
    )
    for k, (value, message) in enumerate(MALFORMED["assignation id"]):
        cases.append(pytest.param("extensions", value, prefix + message, id=f"extensions-bad{k}"))
    return cases


@pytest.mark.usefixtures("graphql_without_middleware")
@pytest.mark.parametrize(("where", "value", "message"), _graphql_cases())
def test_graphql_extension_refuses_with_a_graphql_error_before_the_resolver_runs(
    mode: str, where: str, value: Any, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = counts()
    with caplog.at_level(logging.WARNING, "koherent"):
        if where == "extensions":
            result = graphql(mode, {}, {"koherent": {"assignationId": value}})
        else:
            result = graphql(mode, {where: value})
    assert result["data"] is None
    [error] = result["errors"]
    assert re.match(message, error["message"]), error["message"]
    assert error["extensions"]["code"] == "KOHERENT_INVALID_AUDIT_CONTEXT"
    assert "koherent: refused a GraphQL operation: " in caplog.text
    assert not Order.objects.exists()
    assert counts() == before


@pytest.mark.usefixtures("graphql_without_middleware")
@pytest.mark.parametrize("where", [HEADER, APP_HEADER, "extensions"])
def test_control_the_graphql_extension_takes_and_stores_values_at_the_limit(
    mode: str, where: str
) -> None:
    field = APP if where == APP_HEADER else ASSIGNATION
    if where == "extensions":
        result = graphql(mode, {}, {"koherent": {"assignationId": field.at_limit()}})
    else:
        result = graphql(mode, {where: field.at_limit()})
    assert "errors" not in result, result
    row = Order.history.get()
    assert (row.app if field is APP else row.assignation_id) == field.at_limit()


def test_the_table_walks_every_entry_point_and_every_field() -> None:
    """Every field of koherent._validation has a case at each entry point that takes it."""
    assert [f.limit for f in (ASSIGNATION, APP, ORIGIN, USER, TASK)] == [
        MAX_ASSIGNATION_ID_LENGTH,
        MAX_APP_LENGTH,
        MAX_ORIGIN_LENGTH,
        MAX_USER_PK_LENGTH,
        MAX_TASK_ID_LENGTH,
    ]
    api = {(entry, field.name) for entry, field, _, _ in API}
    fields = {f.name for f in (ASSIGNATION, APP, ORIGIN, USER, TASK, PARENT)}
    assert {name for entry, name in api if entry == "context"} == fields
    assert {name for entry, name in api if entry == "assignation"} == fields - {"task id"}
    assert set(MALFORMED) == fields
    http = len(_http_cases())
    graphql_cases = len(_graphql_cases())
    support.report(
        "limits",
        entry_points=8,  # context, assignation, revert, header_app, middleware x2, GraphQL x2
        fields=len(fields),  # the parent assignation id among them
        api_cases=len(_api_cases()) + len(API),
        middleware_cases=2 * (http + 2),
        graphql_cases=2 * (graphql_cases + 3),
    )
