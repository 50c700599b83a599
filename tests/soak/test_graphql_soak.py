"""Soak: concurrent GraphQL mutations through a real ASGI server, every history row checked.

uvicorn serves Django's ASGI handler with ``KoherentMiddleware`` and strawberry's
``AsyncGraphQLView`` on a schema with ``KoherentExtension``. The test fires its mutations at
once from ``httpx.AsyncClient``, a bounded number in flight, under many users (session cookies
of real logins), apps (``X-Koherent-App``, read by ``koherent.resolvers.header_app``) and
assignations (``X-Assignation-ID``; some requests send none and get a fresh one, named in the
response header). Each mutation writes orders whose reference names the request, so every
history row can be traced back to the request that wrote it and compared with what that
request was: its assignation, its user, its app. Nothing may be missing or misattributed, no
response may be a server error and the server's log must stay free of errors.

A negative control corrupts one row's assignation and deletes another row, and checks that the
checker reports exactly one misattribution and one lost row.

``capture`` is the way the history rows are written: ``signal`` (the mutations write
``testapp.Order``, simple-history's receivers) and ``trigger`` (they write ``tests.capture``'s
``FaultOrder``, ``HistoryField(capture="trigger")``: a PostgreSQL trigger writes the rows),
through the soak's schema (:mod:`tests.soak.graphql_schema`) at ``/graphql/soak/``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.test import Client

from koherent.models import Assignation
from tests.aio.servers import Server
from tests.graphql.server import graphql_server
from tests.soak import support
from tests.testapp.models import Order

pytestmark = [
    pytest.mark.processes,
    support.soak,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

REQUESTS = support.size(1000, 100)
USERS = support.size(40, 8)
CONCURRENCY = 64
HEADER = "X-Assignation-ID"
APP_HEADER = "X-Koherent-App"
DEFAULT_APP = "tests"  # KOHERENT["APP"] of the server: the app of requests naming none
PREFIX = "gs"
#: The mutation of each kind of request, by capture, and the history rows it writes.
FIELDS = {
    # An async resolver: two saves with awaits around them (two history rows).
    "async": (
        {
            "signal": "createOrderAsync",
            "trigger": "createTriggerOrderAsync",
        },
        "(reference: $r, delay: 0.002)",
        2,
    ),
    # A sync resolver, run in a thread by the async view (one row).
    "sync": (
        {"signal": "createOrder", "trigger": "createTriggerOrder"},
        "(reference: $r)",
        1,
    ),
}
CAPTURES = ("signal", "trigger")


def query_of(kind: str, capture: str) -> str:
    names, arguments, _ = FIELDS[kind]
    return (
        f"mutation($r: String!) {{ {names[capture]}{arguments} "
        "{ context { assignationId userId app } } }"
    )


def history_of(capture: str) -> Any:
    """The history manager of the model the mutations of ``capture`` write."""
    if capture == "trigger":
        from tests.capture.models import FaultOrder

        return FaultOrder.history
    return Order.history


@dataclass
class Sent:
    """One request: what it claims, and what came back."""

    n: int
    kind: str
    user_pk: int | None
    session: str | None
    app: str | None  # sent in X-Koherent-App (None: not sent)
    assignation: str | None  # sent in X-Assignation-ID (None: not sent, a fresh one)
    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    response_assignation: str | None = None
    failure: str | None = None

    @property
    def reference(self) -> str:
        return f"{PREFIX}-{self.n}"

    @property
    def rows(self) -> int:
        return FIELDS[self.kind][2]

    @property
    def expected(self) -> tuple[str | None, int | None, str]:
        """The assignation, user and app each of its history rows must carry."""
        assignation = self.assignation or self.response_assignation
        return assignation, self.user_pk, self.app or DEFAULT_APP


@dataclass
class Check:
    rows: int
    misattributed: list[str]
    lost: int


def check_rows(sent: list[Sent], capture: str) -> Check:
    """Compare every history row of the requests' orders with the request that wrote it."""
    by_reference = {s.reference: s for s in sent}
    rows = list(
        history_of(capture)
        .filter(reference__startswith=f"{PREFIX}-")
        .values_list("reference", "assignation_id", "history_user_id", "app")
    )
    found: Counter[str] = Counter()
    misattributed = []
    for reference, assignation, user_pk, app in rows:
        request = by_reference.get(reference)
        if request is None:
            misattributed.append(f"{reference}: no request wrote this reference")
            continue
        found[reference] += 1
        if (assignation, user_pk, app) != request.expected:
            misattributed.append(
                f"{reference}: row has {(assignation, user_pk, app)}, "
                f"the request was {request.expected}"
            )
    lost = sum(max(0, s.rows - found[s.reference]) for s in sent)
    return Check(rows=len(rows), misattributed=misattributed, lost=lost)


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Server]:
    with graphql_server("tests.soak.graphql_settings") as running:
        yield running


def session_of(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies["sessionid"].value)


def plan(users: list[Any], sessions: list[str]) -> list[Sent]:
    sent = []
    for n in range(REQUESTS):
        anonymous = n % 11 == 0
        sent.append(
            Sent(
                n=n,
                kind="sync" if n % 3 == 0 else "async",
                user_pk=None if anonymous else users[n % USERS].pk,
                session=None if anonymous else sessions[n % USERS],
                app=None if n % 7 == 0 else f"client-{n % 13}",
                assignation=None if n % 10 == 0 else f"{PREFIX}-op-{n}",
            )
        )
    return sent


async def fire(url: str, sent: list[Sent], capture: str) -> int:
    """Post every request, at most CONCURRENCY in flight; returns the most seen in flight."""
    gate = asyncio.Semaphore(CONCURRENCY)
    in_flight = peak = 0
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)

    async def one(client: httpx.AsyncClient, request: Sent) -> None:
        nonlocal in_flight, peak
        headers = {}
        if request.session:
            headers["Cookie"] = f"sessionid={request.session}"
        if request.app:
            headers[APP_HEADER] = request.app
        if request.assignation:
            headers[HEADER] = request.assignation
        query = query_of(request.kind, capture)
        async with gate:
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                response = await client.post(
                    "/graphql/soak/",
                    json={"query": query, "variables": {"r": request.reference}},
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                request.failure = f"{type(exc).__name__}: {exc}"
                return
            finally:
                in_flight -= 1
        request.status = response.status_code
        request.response_assignation = response.headers.get(HEADER)
        if "set-cookie" in response.headers:
            request.failure = "the server set a cookie"
        try:
            request.body = response.json()
        except ValueError:
            request.failure = f"not JSON: {response.text[:200]}"

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await asyncio.gather(*(one(client, request) for request in sent))
    return peak


def errors_of(sent: list[Sent]) -> list[str]:
    errors = []
    for s in sent:
        if s.failure or s.status != 200 or s.body.get("errors"):
            errors.append(f"{s.reference}: {s.failure or s.status} {s.body.get('errors')}")
            continue
        context = next(iter(s.body["data"].values()))["context"]
        seen = (context["assignationId"], context["userId"], context["app"])
        assignation, user_pk, app = s.expected
        if seen != (assignation, None if user_pk is None else str(user_pk), app):
            errors.append(f"{s.reference}: the resolver saw {seen}, expected {s.expected}")
        if s.response_assignation != assignation:
            errors.append(f"{s.reference}: response header {s.response_assignation}")
    return errors


@pytest.mark.parametrize("capture", CAPTURES)
def test_concurrent_mutations_through_a_real_server_are_each_attributed_to_their_request(
    capture: str, server: Server, django_user_model: Any
) -> None:
    users = [django_user_model.objects.create_user(username=f"gs{k}") for k in range(USERS)]
    sessions = [session_of(user) for user in users]
    sent = plan(users, sessions)

    started = time.monotonic()
    peak = asyncio.run(fire(server.url, sent, capture))
    elapsed = time.monotonic() - started

    errors = errors_of(sent)
    server_errors = [s for s in sent if s.status >= 500]
    result = check_rows(sent, capture)
    fresh = [s.response_assignation for s in sent if s.assignation is None]
    records = {
        a.id: (a.user_id, a.app, a.origin)
        for a in Assignation.objects.filter(id__in=[s.expected[0] for s in sent])
    }
    wrong_records = [
        s.reference
        for s in sent
        if records.get(s.expected[0] or "") != (s.user_pk, s.expected[2], "graphql")
    ]
    log = server.output()
    log_problems = [
        line
        for line in log.splitlines()
        # "koherent:" is how Koherent's log lines start (a file path may contain "koherent").
        if any(word in line for word in ("Traceback", "ERROR", "koherent:", "context"))
    ]
    support.report(
        # The signal variant keeps the scenario's earlier name (its figures in results.md).
        "graphql-http" if capture == "signal" else f"graphql-http-{capture}",
        capture=capture,
        requests=len(sent),
        rows_checked=result.rows,
        misattributions=len(result.misattributed),
        lost=result.lost,
        errors=len(errors),
        server_errors=len(server_errors),
        concurrency=CONCURRENCY,
        peak_in_flight=peak,
        users=USERS,
        fresh_assignations=len(fresh),
        seconds=round(elapsed, 1),
    )
    assert not server_errors
    assert errors == [], errors[:10]
    assert result.misattributed == [], result.misattributed[:10]
    assert result.lost == 0
    assert result.rows == sum(s.rows for s in sent)
    # Requests naming no assignation each got a fresh one of their own.
    assert len(set(fresh)) == len(fresh) == REQUESTS // 10
    assert all(uuid.UUID(str(a)) for a in fresh)
    assert wrong_records == [], wrong_records[:10]
    assert log_problems == [], log[-4000:]
    assert peak > 1  # the requests did overlap

    # Negative control: the checker sees a row moved to another request's assignation, and a
    # row gone.
    moved, gone = sent[1], sent[2]
    history = history_of(capture)
    row = history.filter(reference=moved.reference).first()
    assert row is not None
    history.filter(pk=row.pk).update(assignation_id=sent[3].expected[0])
    history.filter(reference=gone.reference).first().delete()
    corrupted = check_rows(sent, capture)
    assert len(corrupted.misattributed) == 1
    assert corrupted.misattributed[0].startswith(f"{moved.reference}:")
    assert corrupted.lost == 1
