"""Real Celery worker (and beat) processes for the tests, sharing the test database.

A :class:`Worker` runs ``celery -A tests.celery.worker worker`` as a subprocess with its own
queue (named with a random suffix, so parallel test runs never take each other's messages),
pointed at the test database pytest-django created (``KOHERENT_TEST_DB_NAME``, read by
``tests/settings.py``). The test process talks to it through a Celery app made the same way
(:func:`tests.celery.project.make_app`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery

from tests import services
from tests.celery.project import make_app

ROOT = Path(__file__).resolve().parents[2]
SESSION_SUFFIX = uuid.uuid4().hex[:10]

#: Apps of the running workers, by key (the test views look them up here).
running_apps: dict[str, Celery] = {}


@dataclass(frozen=True)
class WorkerConfig:
    broker: str  # "redis" or "rabbitmq"
    pool: str = "solo"
    concurrency: int = 1
    install: bool = True
    sentry: bool = False
    #: The ``celery -A`` module and the Django settings of the worker process.
    app_module: str = "tests.celery.worker"
    settings_module: str = "tests.settings"
    #: More environment variables for the worker process.
    env: tuple[tuple[str, str], ...] = ()
    #: The broker's URL, when not the shared service's (a test's own Redis).
    broker_url: str | None = None
    #: Late acknowledgement, redelivery of the task of a dead process (see ``make_app``).
    acks_late: bool = False
    visibility_timeout: float | None = None
    #: Publisher confirms (RabbitMQ): a publish returns once the broker has the message.
    confirm_publish: bool = False
    #: Run the worker in a session (and process group) of its own, so :meth:`Worker.kill`
    #: kills the main process and its pool processes at once.
    own_session: bool = False


CONFIGS: dict[str, WorkerConfig] = {
    "redis": WorkerConfig("redis"),
    # Not solo: with py-amqp a solo worker sees a message published while it ran a task only
    # about ten seconds later (it sits in the client's buffer); a threads pool of one does not.
    "rabbitmq": WorkerConfig("rabbitmq", pool="threads"),
    "threads": WorkerConfig("redis", pool="threads", concurrency=4),
    "prefork": WorkerConfig("redis", pool="prefork", concurrency=1),
    "sentry": WorkerConfig("redis", sentry=True),
    "optin": WorkerConfig("redis", install=False),
}


def broker_url(broker: str) -> str:
    return services.url(broker)


def backend_url() -> str:
    return services.url("redis")


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 30, what: str = "a condition"
) -> Any:
    """Poll ``predicate`` until it returns something true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def terminate(process: subprocess.Popen[bytes], how: signal.Signals, grace: float = 20) -> None:
    """Stop ``process`` with the signal ``how``, killing it if it does not end in ``grace``."""
    if process.poll() is not None:
        return
    process.send_signal(how)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _group_alive(group: int) -> bool:
    """Whether a live process (not a zombie) of the process group ``group`` is left (Linux)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


@dataclass
class Worker:
    key: str
    config: WorkerConfig
    database_name: str
    log_path: Path
    queue: str = field(init=False)
    app: Celery = field(init=False)
    tasks: SimpleNamespace = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    queue_suffix: str = SESSION_SUFFIX

    def __post_init__(self) -> None:
        self.queue = f"koherent-test-{self.key}-{self.queue_suffix}"
        self.app, self.tasks = make_app(
            self.key,
            broker=self.broker,
            backend=backend_url(),
            queue=self.queue,
            install=True,  # the test process always publishes with Koherent on
            confirm_publish=self.config.confirm_publish,
        )

    @property
    def broker(self) -> str:
        return self.config.broker_url or broker_url(self.config.broker)

    def environment(self, **extra: str) -> dict[str, str]:
        visibility_timeout = self.config.visibility_timeout
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": self.config.settings_module,
            "KOHERENT_TEST_DB": "postgres",
            "KOHERENT_TEST_DB_NAME": self.database_name,
            "KOHERENT_CELERY_KEY": self.key,
            "KOHERENT_CELERY_BROKER": self.broker,
            "KOHERENT_CELERY_BACKEND": backend_url(),
            "KOHERENT_CELERY_QUEUE": self.queue,
            "KOHERENT_CELERY_INSTALL": "1" if self.config.install else "0",
            "KOHERENT_CELERY_SENTRY": "1" if self.config.sentry else "0",
            "KOHERENT_CELERY_ACKS_LATE": "1" if self.config.acks_late else "0",
            "KOHERENT_CELERY_CONFIRM_PUBLISH": "1" if self.config.confirm_publish else "0",
            "KOHERENT_CELERY_VISIBILITY_TIMEOUT": (
                "" if visibility_timeout is None else str(visibility_timeout)
            ),
            "CELERY_SKIP_CHECKS": "1",
            **dict(self.config.env),
        }
        env.update(extra)
        return env

    def start(self, *, ping: bool = True) -> None:
        """Start the worker and wait until it runs a ``ping`` task, or, with ``ping=False``
        (its pool may be busy with tasks already queued), until it logs that it is ready."""
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.config.app_module,
            "worker",
            "--pool",
            self.config.pool,
            "--concurrency",
            str(self.config.concurrency),
            "--queues",
            self.queue,
            "--hostname",
            f"{self.key}-{SESSION_SUFFIX}@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.config.own_session,
            )
        try:
            if ping:
                self.tasks.ping.delay().get(timeout=90)
            else:
                wait_for(self._ready, timeout=90, what=f"worker {self.key} to be ready")
        except (Exception, pytest.fail.Exception) as exc:
            self.stop()
            pytest.fail(f"worker {self.key} did not start ({exc!r}):\n{self.log()[-4000:]}")
        running_apps[self.key] = self.app

    def drain(self) -> None:
        """Wait until the worker has run everything sent to it so far."""
        self.tasks.ping.delay().get(timeout=90)

    def _ready(self) -> bool:
        if not self.alive():
            raise RuntimeError("the worker process ended")
        return " ready." in self.log()

    def kill(self) -> None:
        """SIGKILL the worker: its whole process group when it has one (``own_session``)."""
        running_apps.pop(self.key, None)
        process = self.process
        if process is None or process.poll() is not None:
            return
        if self.config.own_session:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait(timeout=30)
        if self.config.own_session:
            wait_for(lambda: not _group_alive(process.pid), what="the killed worker's processes")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        running_apps.pop(self.key, None)
        process, self.process = self.process, None
        if process is not None:
            # Every test waits for its tasks, so a cold shutdown loses nothing; the kill
            # after a short grace spares the seconds an AMQP connection takes to close.
            terminate(process, signal.SIGQUIT, grace=2)
            if self.config.own_session:  # pool processes left behind by a killed main process
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
        self._delete_queue()
        self.app.close()

    def _delete_queue(self) -> None:
        try:
            with self.app.connection_for_write() as connection:
                self.app.amqp.queues[self.queue].bind(connection.default_channel).delete()
        except Exception:  # best effort: the broker may be gone
            pass


@dataclass
class Beat:
    """``celery beat`` sending ``kt.fresh`` every second to a worker's queue."""

    worker: Worker
    label: str
    schedule_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Beat:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery.worker",
            "beat",
            "--schedule",
            str(self.schedule_path),
            "--max-interval",
            "1",
            "--loglevel",
            "INFO",
        ]
        env = self.worker.environment(KOHERENT_CELERY_BEAT_LABEL=self.label)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self.process = self.process, None
        if process is not None:
            terminate(process, signal.SIGTERM)
