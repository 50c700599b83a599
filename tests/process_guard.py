"""Only tests marked ``processes`` may start a process (a plugin of the root conftest).

``make test-fast`` leaves out ``-m processes`` and must not start any worker, server or other
subprocess. Three checks keep the marker true:

* at collection, a test that uses a fixture starting processes (:data:`PROCESS_FIXTURES`, or a
  fixture that depends on one) without the marker is an error;
* while a test without the marker sets up and runs, an audit hook refuses every way of starting
  a process (``subprocess``, ``os.system``, ``os.fork``, ``os.posix_spawn``, ``os.exec*``,
  ``os.spawn*``, ``pty``): the attempt raises :class:`ProcessStarted` and the test fails, even
  if the code under test swallowed the exception;
* while test modules are collected (imported), the hook refuses too: a module that starts a
  process on import fails to collect.

Library lookups by ``ctypes.util.find_library`` (``ldconfig``, ``gcc``, ``ld``: importing
strawberry_django tries GDAL through ``django.contrib.gis``, a dozen names) are refused without
failing anything: they take :class:`ProcessStarted`, a :class:`PermissionError`, for a tool
they cannot run, and find nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterable
from types import FrameType
from typing import Any

import pytest

#: The shared fixtures that start worker processes (Celery's, the tasks framework's
#: ``db_worker``). A test that uses one of them, or a fixture depending on one of them
#: (``item.fixturenames`` is the closure), needs the marker. Servers that a test module starts
#: in a fixture of its own, and any other process, are caught by the audit hook when the test
#: runs. (``live_server`` and the echo server of tests/http run in threads of this process.)
PROCESS_FIXTURES = frozenset({"start_worker", "db_worker"})

#: The audit events of starting a process (https://docs.python.org/3/library/audit_events.html).
SPAWN_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.exec",
        "os.spawn",
        "os.startfile",
        "pty.spawn",
    }
)


class ProcessStarted(PermissionError):
    """A test without the ``processes`` marker tried to start a process (an ``OSError``, as
    when the program cannot be run: probing code takes it for "not available")."""


#: The modules whose attempts are probes, refused without failing the test.
PROBES = frozenset({"ctypes.util"})


#: The test that may not start a process right now (None: any code may).
_forbidden: str | None = None
#: What tests without the marker tried, by test id (read and cleared by the guard).
_attempts: dict[str, list[str]] = {}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in SPAWN_EVENTS:
        return
    test = _forbidden
    if test is None:
        return
    what = f"{event}{_describe(args)}"
    if not _probing():
        _attempts.setdefault(test, []).append(what)
    raise ProcessStarted(
        f"{test}: starting a process ({what}) is refused outside the tests marked "
        "@pytest.mark.processes (make test-fast leaves those out)"
    )


def _probing() -> bool:
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__") in PROBES:
            return True
        frame = frame.f_back
    return False


def _describe(args: tuple[Any, ...]) -> str:
    shown = repr(args[:2])
    return shown if len(shown) <= 200 else shown[:197] + "..."


sys.addaudithook(_audit)


def take_attempts(test: str) -> list[str]:
    """What ``test`` tried to start so far (forgotten once read)."""
    return _attempts.pop(test, [])


def marked(item: pytest.Item) -> bool:
    return item.get_closest_marker("processes") is not None


def unmarked_process_users(items: Iterable[pytest.Item]) -> list[str]:
    """The tests that use a fixture of :data:`PROCESS_FIXTURES` without the marker."""
    return [
        f"{item.nodeid} (uses {', '.join(sorted(PROCESS_FIXTURES & set(fixtures)))})"
        for item in items
        if (fixtures := getattr(item, "fixturenames", ()))
        and PROCESS_FIXTURES & set(fixtures)
        and not marked(item)
    ]


@pytest.hookimpl(tryfirst=True)  # before -m deselects: every collected test
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    offenders = unmarked_process_users(items)
    if offenders:
        raise pytest.UsageError(
            "tests that start processes must be marked @pytest.mark.processes:\n  "
            + "\n  ".join(offenders)
        )


def _guarded(item: pytest.Item) -> Generator[None, object, object]:
    global _forbidden
    if marked(item):
        return (yield)
    before, _forbidden = _forbidden, item.nodeid
    try:
        return (yield)
    finally:
        _forbidden = before
        attempts = take_attempts(item.nodeid)
        if attempts:  # also when the test went on after the refusal, or failed otherwise
            pytest.fail(
                f"{item.nodeid} is not marked processes but started a process: "
                + "; ".join(attempts),
                pytrace=False,
            )


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    global _forbidden
    before, _forbidden = _forbidden, "collection"
    try:
        return (yield)
    finally:
        _forbidden = before
        attempts = take_attempts("collection")
        if attempts:
            raise pytest.UsageError(
                "collecting the tests started a process: " + "; ".join(attempts)
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))
