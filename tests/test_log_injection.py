"""A CR or LF in an untrusted value cannot start a new Koherent log line.

Every entry point that logs a value from outside (a refused request's path, a task id or name,
a signed-context value, a tasks-framework result id, the host of an outgoing call) is driven
with a value holding a forged line, ``"\\nkoherent: reverted assignation fake"``; each record's
message stays on one line, with the value escaped as Django escapes the request path since
CVE-2025-48432. A walk over Koherent's modules checks that each logger escapes, so a new one
cannot slip in unescaped.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

import koherent
from koherent._logging import EscapingLogger, escape
from koherent.access import may_leave
from koherent.celery.header import HEADER
from koherent.celery.receivers import (
    _installed_apps,
    on_before_task_publish,
    on_task_postrun,
    on_task_prerun,
)
from koherent.context import AuditContext, use
from koherent.django_tasks.kwarg import KWARG, arriving_context
from koherent.extras import MissingExtra
from koherent.resolvers import context_from_request
from tests.testapp.models import Order

FORGED = "\nkoherent: reverted assignation fake (1 deleted)\r\n"


def one_line(caplog: pytest.LogCaptureFixture, needle: str) -> str:
    """The one Koherent record mentioning ``needle``; fails unless it stays on one line."""
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("koherent")]
    matching = [line for line in lines if needle in line]
    assert matching, lines
    for line in matching:
        assert "\n" not in line, line
        assert "\r" not in line, line
        assert escape(FORGED) in line, line
    formatted = logging.Formatter("%(levelname)s %(name)s: %(message)s").format(
        next(r for r in caplog.records if needle in r.getMessage())
    )
    assert formatted.count("\n") == 0
    return matching[0]


def test_escape_is_what_django_does_for_the_request_path() -> None:
    assert escape("a\nb\rc\x1bd\\e") == "a\\nb\\rc\\x1bd\\\\e"
    assert escape("café") == "caf\\xe9"
    assert escape(FORGED) == FORGED.encode("unicode_escape").decode("ascii")
    assert escape(42) == "42"


def _koherent_modules() -> Iterator[Any]:
    for info in pkgutil.walk_packages(koherent.__path__, "koherent."):
        if ".migrations" in info.name or info.name.endswith("management.commands"):
            continue
        try:
            yield importlib.import_module(info.name)
        except MissingExtra:  # an integration whose extra is not installed here
            continue


def test_every_koherent_logger_escapes() -> None:
    loggers = {
        module.__name__: getattr(module, "logger", None)
        for module in _koherent_modules()
        if hasattr(module, "logger")
    }
    assert "koherent.celery.receivers" in loggers
    assert "koherent.middleware" in loggers
    unescaped = [
        name for name, logger in loggers.items() if not isinstance(logger, EscapingLogger)
    ]
    assert unescaped == []


def test_escaping_logger_reports_the_callers_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = koherent.log.get_logger("koherent.test")
    with caplog.at_level(logging.INFO, logger="koherent.test"):
        logger.info("value %s, pk %r", FORGED, 5)
    [record] = caplog.records
    assert record.getMessage() == f"value {escape(FORGED)}, pk 5"
    assert record.funcName == "test_escaping_logger_reports_the_callers_line"


@pytest.mark.django_db
def test_refused_request_path(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="koherent"):
        response = client.get(
            "/whoami/%0Akoherent:%20reverted%20assignation%20fake%20(1%20deleted)%0D%0A",
            headers={"X-Assignation-ID": "not a valid id"},
        )
    assert response.status_code == 400
    line = one_line(caplog, "refused GET")
    assert line.startswith("koherent: refused GET /whoami/\\nkoherent: reverted")


def test_celery_publish_of_an_unsignable_context(caplog: pytest.LogCaptureFixture) -> None:
    headers = {"id": f"id{FORGED}", "task": f"kt.write{FORGED}"}
    with use(AuditContext(app="web")), caplog.at_level(logging.WARNING, logger="koherent"):
        on_before_task_publish(sender="kt.write", body={"protocol": 1}, headers=headers)
    assert HEADER not in headers
    one_line(caplog, "is sent without its audit context")


def test_celery_refused_header(caplog: pytest.LogCaptureFixture) -> None:
    app = Celery("log-injection", set_as_current=False)
    app.conf.update(broker_url="memory://", task_default_queue=f"q-{uuid.uuid4().hex}")

    @app.task(name="log.write")
    def write() -> None: ...

    koherent.celery.install(app)
    try:
        write.push_request(
            id=f"t{FORGED}", args=[], kwargs={}, is_eager=False, **{HEADER: f"1|op||{FORGED}"}
        )
        try:
            with caplog.at_level(logging.WARNING, logger="koherent"):
                on_task_prerun(task_id=f"t{FORGED}", task=write)
        finally:
            on_task_postrun(task=write)
            write.pop_request()
    finally:
        _installed_apps.discard(app)
        app.close()
    one_line(caplog, "audit context header refused")


def test_tasks_framework_refused_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="koherent"):
        ctx = arriving_context(
            "tests.tasks.jobs.write", ["x"], {KWARG: f"1|op{FORGED}:sig"}, f"r{FORGED}"
        )
    assert isinstance(ctx, AuditContext)
    assert ctx.assignation_id is None
    one_line(caplog, "audit context refused")


@pytest.mark.django_db
def test_context_held_back_at_an_exit(user: Any, caplog: pytest.LogCaptureFixture) -> None:
    with koherent.assignation("owned-by-a", user=user):
        Order.objects.create(reference="opened")
    request = RequestFactory().get("/", headers={"X-Assignation-ID": "owned-by-a"})
    request.user = AnonymousUser()
    ctx = context_from_request(request, defer_anonymous=True)
    with caplog.at_level(logging.WARNING, logger="koherent"):
        assert not may_leave(ctx, "HTTP request to", f"http://evil{FORGED}")
    one_line(caplog, "goes without the audit context")
