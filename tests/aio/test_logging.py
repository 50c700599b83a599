"""The audit context on log records: the logging filter, the structlog processor, check W020."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from django.core.checks import run_checks
from django.db import connection
from django.test.utils import CaptureQueriesContext

import koherent
from koherent.log import AuditContextFilter
from koherent.structlog import AddAuditContext, add_audit_context

FORMAT = "%(assignation_id)s|%(user_id)s|%(app)s|%(task_id)s|%(message)s"


@pytest.fixture
def audit_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger ``audit.test`` whose child records reach a handler carrying the filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(AuditContextFilter())
    parent = logging.getLogger("audit")
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False
    try:
        yield logging.getLogger("audit.test"), stream
    finally:
        parent.removeHandler(handler)
        parent.propagate = True


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_filter_adds_the_fields_and_empty_strings_when_unset(
    audit_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = audit_logger
    log.info("outside")
    with koherent.assignation("op-1", user=12, app="web"):
        log.info("inside")
        with koherent.context(task_id="task-9"):
            log.info("in a task")
    log.info("after")
    assert _lines(stream) == [
        "||||outside",
        "op-1|12|web||inside",
        "op-1|12|web|task-9|in a task",
        "||||after",
    ]


def test_without_the_filter_the_format_breaks() -> None:
    """Negative control: what the filter prevents."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "message", None, None)
    with pytest.raises(ValueError, match="assignation_id"):
        logging.Formatter(FORMAT).format(record)
    AuditContextFilter().filter(record)
    assert logging.Formatter(FORMAT).format(record) == "||||message"


def test_filter_keeps_fields_the_record_already_has(
    audit_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = audit_logger
    with koherent.context(app="ctx-app"):
        log.info("explicit", extra={"app": "from-extra"})
    assert _lines(stream) == ["||from-extra||explicit"]


def test_filter_never_filters_and_takes_another_empty_value() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert AuditContextFilter(empty="-").filter(record) is True
    assert (record.assignation_id, record.user_id, record.app, record.task_id) == ("-",) * 4  # type: ignore[attr-defined]


async def test_concurrent_tasks_log_their_own_context(
    audit_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = audit_logger

    async def work(n: int) -> None:
        async with koherent.assignation(f"op-{n}", user=n):
            await asyncio.sleep(0)
            log.info("n=%d", n)
            await asyncio.sleep(0)
            log.info("n=%d", n)

    await asyncio.gather(*(work(n) for n in range(1, 21)))
    lines = _lines(stream)
    assert len(lines) == 40
    for line in lines:
        assignation_id, user_id, _app, _task_id, message = line.split("|")
        n = message.removeprefix("n=")
        assert (assignation_id, user_id) == (f"op-{n}", n), line


def test_filter_survives_a_user_that_cannot_be_read() -> None:
    class Broken:
        @property
        def pk(self) -> Any:
            raise RuntimeError("no database")

        def for_history(self) -> None:
            return None

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    with koherent.context(app="a"), _with_user_ref(Broken()):
        AuditContextFilter().filter(record)
    assert (record.user_id, record.app) == ("", "a")  # type: ignore[attr-defined]


def _with_user_ref(ref: Any) -> Any:
    from koherent.context import use

    return use(koherent.current().evolve(user_ref=ref))


@pytest.mark.django_db
def test_reading_a_request_user_whose_query_logs_does_not_recurse(
    user: Any, rf: Any, settings: Any
) -> None:
    """Reading a lazy ``request.user`` runs queries, and with DEBUG those queries log too."""
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.http import HttpResponse

    from koherent._users import RequestUserRef

    settings.DEBUG = True
    request = rf.get("/")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    request.session["_auth_user_id"] = str(user.pk)
    request.session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    request.session["_auth_user_hash"] = user.get_session_auth_hash()
    AuthenticationMiddleware(lambda r: HttpResponse()).process_request(request)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(AuditContextFilter())
    db_logger = logging.getLogger("django.db.backends")
    db_logger.addHandler(handler)
    old_level = db_logger.level
    db_logger.setLevel(logging.DEBUG)
    try:
        ctx = koherent.AuditContext(assignation_id="req", user_ref=RequestUserRef(request))
        with _with_ctx(ctx), CaptureQueriesContext(connection) as queries:
            logging.getLogger("django.db.backends").debug("a line in the request")
    finally:
        db_logger.removeHandler(handler)
        db_logger.setLevel(old_level)
    # The user was loaded once, and that query logged through the filter without reading it again.
    assert len(queries) == 1
    mine = [r for r in records if r.getMessage() == "a line in the request"]
    assert [r.user_id for r in mine] == [user.pk]  # type: ignore[attr-defined]
    nested = [r for r in records if r is not mine[0]]
    assert nested
    assert {r.user_id for r in nested} == {""}  # type: ignore[attr-defined]


def _with_ctx(ctx: koherent.AuditContext) -> Any:
    from koherent.context import use

    return use(ctx)


def test_dict_config_example_from_the_docs() -> None:
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"audit": {"()": "koherent.log.AuditContextFilter"}},
            "formatters": {"audit": {"format": FORMAT}},
            "handlers": {
                "mine": {
                    "class": "logging.StreamHandler",
                    "stream": stream,
                    "filters": ["audit"],
                    "formatter": "audit",
                }
            },
            "loggers": {"docs.example": {"handlers": ["mine"], "level": "INFO"}},
        }
    )
    try:
        with koherent.assignation("op-docs", app="docs"):
            logging.getLogger("docs.example.child").info("hello")
    finally:
        logging.getLogger("docs.example").handlers.clear()
    assert stream.getvalue() == "op-docs||docs||hello\n"


# --- structlog ---------------------------------------------------------------------------------


def test_structlog_processor() -> None:
    output = io.StringIO()
    structlog.configure(
        processors=[add_audit_context, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(output),
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger()
        log.info("outside")
        with koherent.assignation("op-s", user=3, app="api"):
            log.info("inside")
            log.info("explicit", app="mine")
        structlog.configure(
            processors=[AddAuditContext(empty=None), structlog.processors.JSONRenderer()],
            logger_factory=structlog.PrintLoggerFactory(output),
        )
        structlog.get_logger().info("nulls")
    finally:
        structlog.reset_defaults()
    events = [json.loads(line) for line in output.getvalue().splitlines()]
    keys = ("assignation_id", "user_id", "app", "task_id")
    assert [tuple(e[k] for k in keys) for e in events] == [
        ("", "", "", ""),
        ("op-s", 3, "api", ""),
        ("op-s", 3, "mine", ""),
        (None, None, None, None),
    ]


# --- check W020 --------------------------------------------------------------------------------


def _logging_with(handler_filters: list[str], filters: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "filters": filters,
        "formatters": {"audit": {"format": FORMAT}, "plain": {"format": "%(message)s"}},
        "handlers": {
            "audited": {
                "class": "logging.StreamHandler",
                "formatter": "audit",
                "filters": handler_filters,
            },
            "plain": {"class": "logging.StreamHandler", "formatter": "plain"},
        },
    }


def _w020(settings: Any, config: Any) -> list[str]:
    settings.LOGGING = config
    return [m.msg for m in run_checks() if m.id == "koherent.W020"]


def test_w020_handler_formatting_the_fields_without_the_filter(settings: Any) -> None:
    messages = _w020(settings, _logging_with([], {}))
    assert messages == [
        "LOGGING handler 'audited' formats assignation_id but has no "
        "koherent.log.AuditContextFilter."
    ]
    other = {"other": {"()": "logging.Filter"}}
    assert len(_w020(settings, _logging_with(["other"], other))) == 1


@pytest.mark.parametrize(
    "spec",
    [
        {"()": "koherent.log.AuditContextFilter"},
        {"()": AuditContextFilter},
        AuditContextFilter(),
    ],
)
def test_w020_quiet_with_the_filter(settings: Any, spec: Any) -> None:
    assert _w020(settings, _logging_with(["audit"], {"audit": spec})) == []


def test_w020_quiet_for_configs_it_cannot_read(settings: Any) -> None:
    assert _w020(settings, None) == []
    assert _w020(settings, {"version": 1, "handlers": {"h": "not a dict"}}) == []
    assert _w020(settings, _logging_with(["x"], {"x": {"()": "no.such.Filter"}})) != []
