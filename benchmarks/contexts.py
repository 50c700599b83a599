"""How each library is told who is acting: its own "active context", as a request would set it.

* simple-history: the request in ``HistoricalRecords.context`` (what its middleware sets);
* Koherent: an assignation with user and app;
* django-auditlog: ``set_actor(user)`` and the correlation id read from a request header;
* django-reversion: a revision with ``set_user`` (opened by the scenario, since its scope is
  what groups versions);
* django-pghistory: ``pghistory.context(user=..., app=...)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.test import RequestFactory


def bench_user() -> Any:
    """The user every contender records (created once per database)."""
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench")
    return user


def request_for(user: Any, correlation_id: str | None = None) -> Any:
    headers = {"HTTP_X_CORRELATION_ID": correlation_id} if correlation_id else {}
    request = RequestFactory().post("/bench", **headers)
    request.user = user
    return request


@contextmanager
def simple_history_context(user: Any) -> Iterator[None]:
    from simple_history.models import HistoricalRecords

    HistoricalRecords.context.request = request_for(user)
    try:
        yield
    finally:
        del HistoricalRecords.context.request


@contextmanager
def koherent_context(user: Any) -> Iterator[str]:
    import koherent

    with koherent.assignation(user=user, app="bench") as ctx:
        assert ctx.assignation_id is not None
        yield ctx.assignation_id


@contextmanager
def auditlog_context(user: Any) -> Iterator[str]:
    from auditlog.cid import correlation_id, set_cid
    from auditlog.context import set_actor

    cid = str(uuid.uuid4())
    set_cid(request_for(user, correlation_id=cid))
    try:
        with set_actor(user):
            yield cid
    finally:
        correlation_id.set(None)


@contextmanager
def pghistory_context(user: Any) -> Iterator[None]:
    import pghistory

    with pghistory.context(user=user.pk, app="bench"):
        yield


@contextmanager
def reversion_revision(user: Any, *, atomic: bool = True) -> Iterator[None]:
    import reversion

    with reversion.create_revision(atomic=atomic):
        reversion.set_user(user)
        yield


@contextmanager
def nothing() -> Iterator[None]:
    yield


@contextmanager
def all_of(*managers: Any) -> Iterator[None]:
    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield
