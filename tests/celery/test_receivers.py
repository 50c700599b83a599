"""The receivers and the header, at the level of a message's headers; install(); options;
system checks. No broker, no worker."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.app.task import Context
from celery.signals import after_task_publish, before_task_publish, task_postrun, task_prerun

import koherent
import koherent.celery
from koherent._users import StaticUserRef
from koherent.celery.header import HEADER, read_header, verify_message
from koherent.celery.options import KoherentTask, TaskOptions
from koherent.celery.receivers import (
    _installed_apps,
    on_before_task_publish,
    on_task_postrun,
    on_task_prerun,
)
from koherent.checks import check_celery_protocol, check_signing_keys
from koherent.context import AuditContext, peek, use
from koherent.exceptions import InvalidSignedContext


def message_headers(task_id: str | None = None) -> dict[str, Any]:
    return {"id": task_id or str(uuid.uuid4()), "task": "kt.write"}


#: A protocol 2 body: (args, kwargs, embedded canvas options).
BODY = (("x",), {"n": 1}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})


def test_header_is_written_from_the_context_and_bound_to_the_task() -> None:
    headers = message_headers()
    with koherent.context(user=5, app="web", assignation_id="op-1"):
        on_before_task_publish(sender="kt.write", body=BODY, headers=headers)
    back = verify_message(
        headers[HEADER], task_id=headers["id"], task_name="kt.write", args=["x"], kwargs={"n": 1}
    )
    assert (back.user_id, back.app, back.assignation_id) == (5, "web", "op-1")
    # Bound to the message: another id, task name, arguments or callback is refused.
    for changed in (
        {"task_id": str(uuid.uuid4())},
        {"task_name": "kt.spawn"},
        {"args": ["y"]},
        {"kwargs": {"n": 2}},
        {"options": {"callbacks": [{"task": "kt.write", "args": ["z"]}]}},
        {"options": {"group": "g-1"}},
        {"options": {"retries": 3}},
    ):
        given: dict[str, Any] = {
            "task_id": headers["id"],
            "task_name": "kt.write",
            "args": ["x"],
            "kwargs": {"n": 1},
            **changed,
        }
        with pytest.raises(InvalidSignedContext) as refused:
            verify_message(headers[HEADER], **given)
        assert refused.value.reason == "bad-signature", changed


def test_a_body_that_is_not_protocol_2_sends_no_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = message_headers()
    with koherent.context(app="web"), caplog.at_level(logging.WARNING):
        on_before_task_publish(sender="kt.write", body={"args": []}, headers=headers)
    assert HEADER not in headers
    assert "not a Celery protocol 2 message" in caplog.text


def test_header_is_overwritten_and_stripped() -> None:
    headers = message_headers()
    headers[HEADER] = "caller's value"
    headers["headers"] = {HEADER: "nested value", "sentry-trace": "t"}
    with koherent.context(app="web"):
        on_before_task_publish(sender="kt.write", body=BODY, headers=headers)
    assert headers[HEADER] != "caller's value"
    assert headers["headers"][HEADER] == headers[HEADER]
    on_before_task_publish(sender="kt.write", body=BODY, headers=headers)  # no context now
    assert HEADER not in headers
    assert headers["headers"] == {"sentry-trace": "t"}


def test_publishing_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Exploding:
        @property
        def pk(self) -> Any:
            raise RuntimeError("boom")

        def for_history(self) -> None:
            return None

    for broken in (
        AuditContext(app="web", user_ref=StaticUserRef("bad\x00pk")),
        AuditContext(app="web", user_ref=Exploding()),
    ):
        headers = message_headers()
        headers[HEADER] = "stale"
        with use(broken), caplog.at_level(logging.WARNING):
            on_before_task_publish(sender="kt.write", body=BODY, headers=headers)
        assert HEADER not in headers
        assert f"kt.write[{headers['id']}] is sent without its audit context" in caplog.text
    on_before_task_publish(sender="kt.write", headers=None)  # protocol 1: nothing to do


def test_read_header_attribute_first_then_nested() -> None:
    assert read_header(Context({"id": "t", HEADER: "top"})) == "top"
    assert read_header(Context({"id": "t", "headers": {HEADER: "nested"}})) == "nested"
    both = Context({"id": "t", HEADER: "top", "headers": {HEADER: "nested"}})
    assert read_header(both) == "top"
    assert read_header(Context({"id": "t"})) is None


def test_receivers_tolerate_odd_calls() -> None:
    on_task_prerun(task_id="x", task=None)
    on_task_postrun(task=None)
    on_task_postrun(task=object())
    assert peek() is None


def koherent_receivers(signal: Any) -> int:
    return sum(1 for key, _ in signal.receivers if str(key[0]).startswith("koherent.celery."))


def test_install_twice_connects_once_and_sends_one_header() -> None:
    app = Celery("install-twice", set_as_current=False)
    app.conf.update(broker_url="memory://", task_default_queue=f"q-{uuid.uuid4().hex}")
    published: list[dict[str, Any]] = []

    def capture(headers: Any = None, **kwargs: Any) -> None:
        published.append(dict(headers))

    try:
        koherent.celery.install(app)
        koherent.celery.install(app)
        assert app in koherent.celery.installed_apps()
        for signal in (before_task_publish, task_prerun, task_postrun):
            assert koherent_receivers(signal) == 1
        after_task_publish.connect(capture, weak=False, dispatch_uid="tests.capture")
        with koherent.context(app="web", assignation_id="op-2"):
            result = app.send_task("kt.write", args=["x"])
        [headers] = published
        assert [key for key in headers if "koherent" in key] == [HEADER]
        back = verify_message(
            headers[HEADER], task_id=result.id, task_name="kt.write", args=["x"], kwargs={}
        )
        assert back.app == "web"
    finally:
        after_task_publish.disconnect(dispatch_uid="tests.capture")
        _installed_apps.discard(app)
        app.close()


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        TaskOptions(fresh_assignation=True, require_context=True)
    with pytest.raises(ValueError, match="app"):
        TaskOptions(fresh_assignation=True, app="not valid")
    with pytest.raises(ValueError, match="origin"):
        koherent.celery.audited(origin="Not-Valid")
    with pytest.raises(ValueError, match="exclude each other"):

        class Both(KoherentTask):
            koherent_fresh_assignation = True
            koherent_require_context = True


@pytest.fixture
def protocol_one_app() -> Iterator[Celery]:
    app = Celery("old-protocol", set_as_current=False)
    app.conf.task_protocol = 1
    koherent.celery.install(app)
    yield app
    _installed_apps.discard(app)
    app.close()


def test_check_protocol(protocol_one_app: Celery) -> None:
    [message] = check_celery_protocol()
    assert message.id == "koherent.W010"
    assert "old-protocol" in message.msg
    _installed_apps.discard(protocol_one_app)
    assert check_celery_protocol() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"SIGNING_KEY": "  "}, ["koherent.E010"]),
        ({"SIGNING_KEY_FALLBACKS": ["ok", ""]}, ["koherent.E011"]),
        ({"SIGNING_KEY_FALLBACKS": ["ok", 5]}, ["koherent.E011"]),
        ({"SIGNING_KEY": "long-random-key", "SIGNING_KEY_FALLBACKS": ["older"]}, []),
    ],
)
def test_check_signing_keys(settings: Any, value: dict[str, Any], expected: list[str]) -> None:
    settings.KOHERENT = value
    assert [m.id for m in check_signing_keys()] == expected


@pytest.mark.django_db
def test_install_after_tasks_ran_covers_them() -> None:
    """Options are cached on tasks; a later ``install()`` is still seen."""
    from tests.celery.project import make_app

    app, tasks = make_app(
        "late-install",
        broker="memory://",
        backend="cache+memory://",
        queue="late",
        eager=True,
        install=False,
    )
    try:
        with koherent.context(app="web"):
            before = tasks.write.delay("before-install").get()
            koherent.celery.install(app)
            after = tasks.write.delay("after-install").get()
        assert before["context_task_id"] is None
        assert after["context_task_id"] == after["task_id"]
    finally:
        _installed_apps.discard(app)
        app.close()
