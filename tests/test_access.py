"""Who may join an assignation a request names (``KOHERENT["ASSIGNATION_ACCESS"]``), through
KoherentMiddleware: sync and async middleware (Django's Client and AsyncClient), sync and async
views."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

import koherent
from koherent import access
from koherent.checks import check_assignation_access
from koherent.exceptions import AssignationAccessDenied, InvalidRequestContext
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

HEADER = "X-Assignation-ID"
RECORD_TABLE = koherent.Assignation._meta.db_table


class HttpClient:
    """Django's Client (sync middleware) or AsyncClient (async middleware), used from the
    test's thread: the async flavour runs under ``async_to_sync``, so the ORM work comes back
    to this thread and sees the test's transaction."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.client: Client | AsyncClient = Client() if mode == "sync" else AsyncClient()

    def login(self, user: Any) -> None:
        self.client.force_login(user)

    def logout(self) -> None:
        self.client.logout()

    def post(self, path: str, assignation: str | None = None) -> Any:
        headers = {HEADER: assignation} if assignation is not None else {}
        if isinstance(self.client, AsyncClient):
            return async_to_sync(self.client.post)(path, headers=headers)
        return self.client.post(path, headers=headers)

    def get(self, path: str, assignation: str | None = None) -> Any:
        headers = {HEADER: assignation} if assignation is not None else {}
        if isinstance(self.client, AsyncClient):
            return async_to_sync(self.client.get)(path, headers=headers)
        return self.client.get(path, headers=headers)


@pytest.fixture(params=["sync", "async"])
def http(request: pytest.FixtureRequest) -> HttpClient:
    """A client going through the sync middleware, then through the async one."""
    return HttpClient(request.param)


@pytest.fixture(params=["/orders/", "/orders-async/"])
def view(request: pytest.FixtureRequest) -> str:
    """A sync view, then an async view, both writing an order."""
    return str(request.param)


def written() -> tuple[int, int, int]:
    """Orders, their history rows, and assignation records."""
    return (
        Order.objects.count(),
        Order.history.count(),
        koherent.Assignation.objects.count(),
    )


def open_as(http: HttpClient, user: Any, assignation: str, view: str = "/orders/") -> None:
    """``user`` opens ``assignation`` with a first change."""
    http.login(user)
    response = http.post(view, assignation)
    assert response.status_code == 200, response.content
    assert koherent.Assignation.objects.get(pk=assignation).user_id == user.pk


def test_another_users_assignation_is_refused_with_403_and_nothing_written(
    http: HttpClient, view: str, user: Any, other_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    open_as(http, user, "op-alice")
    before = written()
    http.login(other_user)
    with caplog.at_level(logging.WARNING, "koherent"):
        response = http.post(view, "op-alice")
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "assignation_access_denied"
    assert f"user {other_user.pk} may not join assignation 'op-alice'" in body["detail"]
    assert written() == before
    assert set(Order.history.values_list("history_user_id", flat=True)) == {user.pk}
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    # The log says who was refused what, and under which policy.
    assert f"user {other_user.pk}" in line
    assert "'op-alice'" in line
    assert "ASSIGNATION_ACCESS'] = 'owner'" in line
    assert view in line


def test_the_owner_may_join_again(http: HttpClient, view: str, user: Any) -> None:
    open_as(http, user, "op-alice")
    response = http.post(view, "op-alice")
    assert response.status_code == 200
    assert set(Order.history.values_list("assignation_id", "history_user_id")) == {
        ("op-alice", user.pk)
    }


def test_anonymous_request_naming_an_owned_assignation_is_refused(
    http: HttpClient, view: str, user: Any
) -> None:
    open_as(http, user, "op-alice")
    before = written()
    http.logout()
    response = http.post(view, "op-alice")
    assert response.status_code == 403
    assert "an anonymous request may not join" in response.json()["detail"]
    assert written() == before


def test_authentication_in_the_view_counts_for_the_owner(user: Any) -> None:
    """Anonymous when the middleware runs, authenticated in the view (Django REST framework
    style): the check runs again at the first write, with the user known then."""
    http = HttpClient("sync")
    open_as(http, user, "op-alice")
    http.logout()
    assert isinstance(http.client, Client)
    response = http.client.post(
        "/late-auth/", headers={HEADER: "op-alice", "X-Test-User": user.username}
    )
    assert response.status_code == 200, response.content
    assert set(Order.history.values_list("assignation_id", "history_user_id")) == {
        ("op-alice", user.pk)
    }


def test_authentication_in_the_view_as_another_user_is_refused_at_the_first_write(
    user: Any, other_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    http = HttpClient("sync")
    open_as(http, user, "op-alice")
    http.logout()
    before = written()
    assert isinstance(http.client, Client)
    with caplog.at_level(logging.WARNING, "koherent"):
        response = http.client.post(
            "/late-auth/", headers={HEADER: "op-alice", "X-Test-User": other_user.username}
        )
    assert response.status_code == 403
    assert f"user {other_user.pk} may not join assignation 'op-alice'" in response.json()["detail"]
    assert written() == before  # the order rolled back with its history row
    assert "refused POST /late-auth/" in caplog.text


def test_any_lets_another_user_join(
    http: HttpClient, view: str, user: Any, other_user: Any, settings: Any
) -> None:
    """Control: the refusal above comes from the policy."""
    open_as(http, user, "op-alice")
    settings.KOHERENT = {**settings.KOHERENT, "ASSIGNATION_ACCESS": "any"}
    http.login(other_user)
    response = http.post(view, "op-alice")
    assert response.status_code == 200
    assert {r.history_user_id for r in Order.history.filter(assignation_id="op-alice")} == {
        user.pk,
        other_user.pk,
    }


def test_an_unknown_assignation_is_open_and_its_first_writer_owns_it(
    http: HttpClient, user: Any, other_user: Any
) -> None:
    http.login(other_user)
    assert http.post("/orders/", "new-op").status_code == 200
    record = koherent.Assignation.objects.get(pk="new-op")
    assert (record.user_id, record.user_pk) == (other_user.pk, str(other_user.pk))
    http.login(user)
    assert http.post("/orders/", "new-op").status_code == 403


def test_an_assignation_without_an_owner_is_open_to_anyone(
    http: HttpClient, user: Any, other_user: Any
) -> None:
    with koherent.context(assignation_id="script-op"):  # a script: no user
        Order.objects.create(reference="by a script")
    assert koherent.Assignation.objects.get(pk="script-op").user_pk is None
    for who in (user, other_user):
        http.login(who)
        assert http.post("/orders/", "script-op").status_code == 200
    http.logout()
    assert http.post("/orders/", "script-op").status_code == 200
    assert Order.history.filter(assignation_id="script-op").count() == 4


def test_the_owner_is_known_by_user_pk_after_the_user_is_deleted(
    http: HttpClient, user: Any, other_user: Any, django_user_model: Any
) -> None:
    open_as(http, user, "op-alice")
    koherent.Assignation.objects.filter(pk="op-alice").update(user=None)
    http.login(other_user)
    assert http.post("/orders/", "op-alice").status_code == 403


def test_a_malformed_header_is_still_a_400(http: HttpClient, other_user: Any) -> None:
    http.login(other_user)
    response = http.post("/orders/", "not valid")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_audit_context"


# -- custom policies ----------------------------------------------------------------------------
def prefix_policy(user: Any, assignation_id: str, record: Any) -> bool:
    """Users join only the assignations whose id starts with ``u<their pk>-``."""
    return user is not None and assignation_id.startswith(f"u{user.pk}-")


seen_by_policy: list[tuple[Any, str, Any]] = []


def recording_policy(user: Any, assignation_id: str, record: Any) -> bool:
    seen_by_policy.append((user, assignation_id, record))
    return True


def test_a_custom_policy_decides(
    http: HttpClient, view: str, user: Any, other_user: Any, settings: Any
) -> None:
    settings.KOHERENT = {
        **settings.KOHERENT,
        "ASSIGNATION_ACCESS": "tests.test_access.prefix_policy",
    }
    http.login(user)
    assert http.post(view, f"u{user.pk}-checkout").status_code == 200
    before = written()
    assert http.post(view, f"u{other_user.pk}-checkout").status_code == 403
    assert written() == before
    http.login(other_user)
    assert http.post(view, f"u{other_user.pk}-checkout").status_code == 200


def test_a_custom_policy_gets_the_user_the_id_and_the_record(
    http: HttpClient, user: Any, other_user: Any, settings: Any
) -> None:
    open_as(http, user, "op-alice")
    settings.KOHERENT = {
        **settings.KOHERENT,
        "ASSIGNATION_ACCESS": "tests.test_access.recording_policy",
    }
    seen_by_policy.clear()
    http.login(other_user)
    assert http.post("/orders/", "op-alice").status_code == 200
    assert http.post("/orders/", "unknown-op").status_code == 200
    http.logout()
    assert http.get("/whoami/", "op-alice").status_code == 200
    [(first_user, first_id, record), (_, second_id, none), (anonymous, _, _)] = seen_by_policy
    assert (first_user.pk, first_id, record.user_id) == (other_user.pk, "op-alice", user.pk)
    assert (second_id, none, anonymous) == ("unknown-op", None, None)


def test_owner_or_superuser(
    http: HttpClient, user: Any, other_user: Any, settings: Any, django_user_model: Any
) -> None:
    open_as(http, user, "op-alice")
    settings.KOHERENT = {
        **settings.KOHERENT,
        "ASSIGNATION_ACCESS": "koherent.access.owner_or_superuser",
    }
    http.login(other_user)
    assert http.post("/orders/", "op-alice").status_code == 403
    admin = django_user_model.objects.create_superuser(username="root", password="pw")
    http.login(admin)
    assert http.post("/orders/", "op-alice").status_code == 200
    admin.is_active = False  # an inactive superuser is no exception
    record = koherent.Assignation.objects.get(pk="op-alice")
    assert not access.owner_or_superuser(admin, "op-alice", record)
    assert access.owner_or_superuser(admin, "op-alice", None)  # no owner: open to anyone


# -- cost -------------------------------------------------------------------------------------
def assignation_queries(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if RECORD_TABLE in q["sql"]]


def test_one_indexed_query_per_request_naming_an_assignation(
    http: HttpClient, user: Any, other_user: Any, settings: Any
) -> None:
    open_as(http, user, "op-alice")
    http.login(user)
    http.get("/whoami/")  # warm up the session
    with CaptureQueriesContext(connection) as unnamed:
        assert http.get("/whoami/").status_code == 200
    with CaptureQueriesContext(connection) as named:
        assert http.get("/whoami/", "op-alice").status_code == 200
    assert assignation_queries(unnamed) == []
    [query] = assignation_queries(named)
    assert len(named) == len(unnamed) + 1
    assert f'"{RECORD_TABLE}"."id" = ' in query  # by primary key
    http.login(other_user)
    with CaptureQueriesContext(connection) as refused:
        assert http.get("/whoami/", "op-alice").status_code == 403
    assert len(assignation_queries(refused)) == 1
    settings.KOHERENT = {**settings.KOHERENT, "ASSIGNATION_ACCESS": "any"}
    with CaptureQueriesContext(connection) as unchecked:
        assert http.get("/whoami/", "op-alice").status_code == 200
    assert assignation_queries(unchecked) == []


# -- pieces -----------------------------------------------------------------------------------
def test_the_exception_is_a_refused_context_with_status_403() -> None:
    error = AssignationAccessDenied("op-1", 5, "owner")
    assert isinstance(error, InvalidRequestContext)
    assert (error.status_code, InvalidRequestContext.status_code) == (403, 400)
    back = pickle.loads(pickle.dumps(error))
    assert (back.assignation_id, back.user_pk, back.policy, str(back)) == (
        "op-1",
        5,
        "owner",
        str(error),
    )


def test_an_unknown_policy_fails_loudly(settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "ASSIGNATION_ACCESS": "nobody"}
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="ASSIGNATION_ACCESS"):
        access.check_request(object(), "op-1", user=None)


@pytest.mark.parametrize(
    ("koherent_settings", "expected"),
    [
        ({}, []),
        ({"ASSIGNATION_ACCESS": "owner"}, []),
        ({"ASSIGNATION_ACCESS": "any"}, []),
        ({"ASSIGNATION_ACCESS": "koherent.access.owner_or_superuser"}, []),
        ({"ASSIGNATION_ACCESS": "tests.test_access.prefix_policy"}, []),
        ({"ASSIGNATION_ACCESS": "nobody"}, ["koherent.E060"]),
        ({"ASSIGNATION_ACCESS": "tests.test_access.missing"}, ["koherent.E060"]),
        ({"ASSIGNATION_ACCESS": "tests.test_access.HEADER"}, ["koherent.E060"]),
        ({"ASSIGNATION_ACCESS": "owner", "RECORD_ASSIGNATIONS": False}, ["koherent.W060"]),
        ({"RECORD_ASSIGNATIONS": False}, ["koherent.W060"]),
        ({"ASSIGNATION_ACCESS": "any", "RECORD_ASSIGNATIONS": False}, []),
    ],
)
def test_system_check(
    settings: Any, koherent_settings: dict[str, Any], expected: list[str]
) -> None:
    settings.KOHERENT = koherent_settings
    assert [m.id for m in check_assignation_access()] == expected


@pytest.mark.parametrize(
    "policy",
    ["nobody", "tests.test_access.missing", "tests.test_access.HEADER", 5],
)
def test_the_run_time_refusal_is_the_system_checks(settings: Any, policy: object) -> None:
    """One function decides a policy, for the requests and for koherent.E060 alike."""
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured) as refused:
        access.policy_named(policy)
    settings.KOHERENT = {"ASSIGNATION_ACCESS": policy}
    with pytest.raises(ImproperlyConfigured, match="ASSIGNATION_ACCESS"):
        access.check_request(object(), "op-1", user=None)
    messages = check_assignation_access()
    if isinstance(policy, str):  # another type is koherent.E004's
        assert [(m.id, m.msg) for m in messages] == [
            ("koherent.E060", f"settings.{refused.value}")
        ]


@pytest.mark.django_db(transaction=True)
def test_a_user_reference_may_refuse_a_tracked_save_before_it_writes() -> None:
    """The atomic save asks the context's user reference (its before_write hook), whatever
    the access policy: nothing is written, neither the row nor its history."""
    from koherent._users import StaticUserRef
    from koherent.context import AuditContext, reset_context, set_context

    class Refusing(StaticUserRef):
        __slots__ = ()

        def before_write(self) -> None:
            raise AssignationAccessDenied("op-refused", None, "test")

    token = set_context(AuditContext(assignation_id="op-refused", user_ref=Refusing(None)))
    try:
        with pytest.raises(AssignationAccessDenied):
            Order.objects.create(reference="A-1")
    finally:
        reset_context(token)
    assert not Order.objects.exists()
    assert not Order.history.exists()


def test_the_any_policy_function_is_named_apart_from_the_graphql_hook() -> None:
    from koherent import access
    from koherent.strawberry import permissions

    assert access.any_request(None, "a-1", None) is True
    assert "anyone" not in access.__all__
    with pytest.warns(DeprecationWarning, match="koherent.access.any_request"):
        former = access.anyone
    assert former is access.any_request
    # The GraphQL hook keeps its documented name and its two arguments.
    assert permissions.anyone(None, None) is True
    with pytest.raises(AttributeError):
        _ = access.no_such_policy
