"""What the Celery soak scenarios share: their workers, their users, and the audit of the rows.

Every task of a scenario writes ``Order`` rows whose ``reference`` names the task that wrote
them (``<label>.<attempt>``, children ``<label>-c<n>.<attempt>``). The test remembers, for each
label it published, the context it published under (:class:`Sent`); :func:`audit` then holds
every history row against it: the row's assignation, app and user must be the sender's, its task
id the task's, and rows of tasks sent without a context must carry none of them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth import get_user_model
from django.db import connection

from tests import services
from tests.celery.harness import Worker, WorkerConfig, wait_for
from tests.testapp.models import Order


@dataclass(frozen=True)
class Context:
    """The context a task was published under."""

    assignation_id: str
    app: str
    user_id: int


@dataclass(frozen=True)
class Sent:
    """A task the test published: its context (``None``: published without one), its task id
    when known, and the references of every row it and its children must write."""

    context: Context | None
    task_id: str | None
    references: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """The audit columns of one history row of ``Order``."""

    reference: str
    assignation_id: str | None
    app: str | None
    user_id: int | None
    user_pk: str | None
    task_id: str | None


@dataclass
class Audit:
    """What :func:`audit` found; every list holds ``"<reference>: <what>"`` lines."""

    checked: int = 0
    #: Rows stamped with another context than their task's, or another task's id.
    misattributed: list[str] = field(default_factory=list)
    #: Rows of tasks sent without a context that carry an assignation, app or user.
    contextless_stamped: list[str] = field(default_factory=list)
    #: Rows no published task accounts for.
    unexpected: list[str] = field(default_factory=list)
    #: Expected rows that are not there.
    missing: list[str] = field(default_factory=list)
    #: Rows present more often than expected.
    extra: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.misattributed
            or self.contextless_stamped
            or self.unexpected
            or self.missing
            or self.extra
        )

    def summary(self, limit: int = 20) -> str:
        lines = [
            f"{name}: {len(found)} {found[:limit]}"
            for name in ("misattributed", "contextless_stamped", "unexpected", "missing", "extra")
            if (found := getattr(self, name))
        ]
        return "\n".join(lines) or "clean"


def label_of(reference: str) -> str:
    """The label of the published task that accounts for ``reference``."""
    return reference.split(".", 1)[0].split("-", 1)[0]


def audit(
    rows: Iterable[Row],
    sent: dict[str, Sent],
    *,
    repeatable: Callable[[str], bool] = lambda reference: False,
) -> Audit:
    """Hold every row against the task that wrote it. ``repeatable`` references may appear
    more than once (a task redelivered after its worker died writes them again)."""
    found = Audit()
    counts: Counter[str] = Counter()
    for row in rows:
        found.checked += 1
        counts[row.reference] += 1
        task = sent.get(label_of(row.reference))
        if task is None or row.reference not in task.references:
            found.unexpected.append(f"{row.reference}: written by no published task")
            continue
        stamped = (row.assignation_id, row.app, row.user_id, row.user_pk)
        if task.context is None:
            if stamped != (None, None, None, None):
                found.contextless_stamped.append(f"{row.reference}: {stamped}")
        else:
            ctx = task.context
            expected = (ctx.assignation_id, ctx.app, ctx.user_id, str(ctx.user_id))
            if stamped != expected:
                found.misattributed.append(f"{row.reference}: {stamped} instead of {expected}")
        own_row = "-" not in row.reference
        if row.task_id is None:
            found.misattributed.append(f"{row.reference}: no task id")
        elif task.task_id is not None and (row.task_id == task.task_id) != own_row:
            found.misattributed.append(
                f"{row.reference}: task id {row.task_id} (the published task is {task.task_id})"
            )
    for task in sent.values():
        for reference in task.references:
            if not counts[reference]:
                found.missing.append(f"{reference}: not written")
            elif counts[reference] > 1 and not repeatable(reference):
                found.extra.append(f"{reference}: written {counts[reference]} times")
    return found


def stored_rows() -> list[Row]:
    """Every history row of ``Order``, oldest first."""
    columns = ("reference", "assignation_id", "app", "history_user_id", "user_pk", "task_id")
    return [Row(*values) for values in Order.history.order_by("history_id").values_list(*columns)]


def make_users(count: int) -> list[Any]:
    """``count`` real users (no password: they only sign the contexts)."""
    model = get_user_model()
    model.objects.bulk_create(model(username=f"soak-{n}") for n in range(count))
    return list(model.objects.filter(username__startswith="soak-").order_by("pk"))


#: A line starting a log record of the workers (``tests/celery/worker.py``'s format).
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) (\S+): ", re.MULTILINE)
#: What a lost or mixed-up context would write.
CONTEXT_TROUBLE = re.compile(r"different Context|ContextVar|audit context", re.IGNORECASE)


def log_problems(log: str, *, intended: str | None = None, strict: bool = True) -> list[str]:
    """Lines of a worker's log that say something went wrong with the audit context.

    Always: any WARNING or worse from a ``koherent`` logger, and any mention of a context
    error. With ``strict``, also any other ERROR record and any traceback, except those of the
    ``intended`` exception (its class name), which the tasks raise on purpose.
    """
    problems = [line for line in log.splitlines() if CONTEXT_TROUBLE.search(line)]
    intended_tracebacks = 0
    starts = list(RECORD.finditer(log))
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(log)
        record = log[match.start() : end].rstrip()
        level, logger = match.group(1), match.group(2)
        first = record.splitlines()[0]
        if logger.startswith("koherent") and level in ("WARNING", "ERROR", "CRITICAL"):
            problems.append(first)
        elif not strict:
            continue
        elif level in ("ERROR", "CRITICAL") or "Traceback (most recent call last)" in record:
            last = record.splitlines()[-1]
            if intended is None or intended not in first or intended not in last:
                problems.append(f"{first} ... {last}")
            else:
                intended_tracebacks += record.count("Traceback (most recent call last)")
    tracebacks = log.count("Traceback (most recent call last)")
    if strict and tracebacks != intended_tracebacks:
        problems.append(f"{tracebacks - intended_tracebacks} traceback(s) of something else")
    return problems


@contextlib.contextmanager
def running(key: str, config: WorkerConfig, logs: Path, *, ping: bool = True) -> Iterator[Worker]:
    """A worker of ``config`` on the test database, stopped (and its queue deleted) at the end."""
    services.need(config.broker)
    services.need("redis")
    worker = Worker(key, config, connection.settings_dict["NAME"], logs / f"{key}.log")
    try:
        worker.start(ping=ping)
        yield worker
    finally:
        worker.stop()


@dataclass
class RedisServer:
    """A ``redis-server`` of the test's own on a free port: without persistence, or with the
    append-only file (``appendonly yes``) synced ``everysec`` or ``always`` (``appendfsync``)."""

    directory: Path
    appendfsync: str | None = None
    port: int = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers."""
        program = shutil.which("redis-server")
        if program is None:
            message = "redis-server is not on PATH"
            if services.required():
                pytest.fail(message)
            pytest.skip(message)
        self.starts += 1
        command = [program, "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--dir", str(self.directory)]
        if self.appendfsync is None:
            command += ["--appendonly", "no"]
        else:
            command += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        with (self.directory / f"redis-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.answers, timeout=30, what=f"redis-server on port {self.port}")

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL it: what it held in memory is gone."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=30)


@contextlib.contextmanager
def own_redis(directory: Path, appendfsync: str | None = None) -> Iterator[RedisServer]:
    """A running :class:`RedisServer` (``appendfsync``: see there), killed at the end."""
    server = RedisServer(directory, appendfsync)
    server.start()
    try:
        yield server
    finally:
        server.kill()


#: The RabbitMQ server program run directly (``/usr/sbin/rabbitmq-server`` is a wrapper that
#: switches to the shared server's user and directories).
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


@dataclass
class RabbitServer:
    """A RabbitMQ node of the test's own (no plugins) on free ports, with its data in
    ``directory``: durable queues and persistent messages survive a SIGKILL and a start."""

    directory: Path
    port: int = field(init=False)
    #: The Erlang distribution port (a free one of its own, not ``port + 1``, which may be
    #: taken).
    dist_port: int = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        with socket.socket() as probe, socket.socket() as dist:
            probe.bind(("127.0.0.1", 0))
            dist.bind(("127.0.0.1", 0))
            self.port, self.dist_port = probe.getsockname()[1], dist.getsockname()[1]
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
        )

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def environment(self) -> dict[str, str]:
        base = self.directory
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(base),  # its own Erlang cookie
            "RABBITMQ_NODENAME": f"koherent-test-{self.port}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(base / "pid"),
            # A node killed on purpose writes its crash dump here, not in the working directory.
            "ERL_CRASH_DUMP": str(base / "erl_crash.dump"),
        }

    def start(self) -> None:
        """Start it (again, on the same port and data) and wait until it takes connections."""
        if not RABBITMQ_SERVER.exists():
            message = f"{RABBITMQ_SERVER} is missing: no RabbitMQ node of the test's own"
            if services.required():
                pytest.fail(message)
            pytest.skip(message)
        self.starts += 1
        with (self.directory / f"rabbitmq-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [str(RABBITMQ_SERVER)],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.directory,
            )
        wait_for(self.answers, timeout=120, what=f"RabbitMQ on port {self.port}")

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"RabbitMQ ended: see {self.directory}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                return bool(sock.recv(8))
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the node (its whole process group): what it had not written down is gone."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@contextlib.contextmanager
def own_rabbitmq(directory: Path) -> Iterator[RabbitServer]:
    """A running :class:`RabbitServer`, killed at the end."""
    server = RabbitServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
